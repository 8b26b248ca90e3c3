//! Requests to origins: HTTP/1.1 with a keep-alive pool, connect and read timeouts, and errors
//! that say whose fault a failure is (502 for a refused or broken origin, 504 for a slow one).

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// Origin timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To establish a connection.
    pub connect: Duration,
    /// For the response headers, and between two body reads.
    pub read: Duration,
}

/// Why an origin request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginError {
    /// Could not connect, or the connection broke: 502.
    Unreachable,
    /// No answer in time: 504.
    Timeout,
    /// The body was larger than the caller's limit.
    TooLarge,
}

impl OriginError {
    /// Status to answer with.
    pub fn status(self) -> StatusCode {
        match self {
            OriginError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// Reason for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            OriginError::Unreachable => "origin_unreachable",
            OriginError::Timeout => "origin_timeout",
            OriginError::TooLarge => "origin_too_large",
        }
    }
}

/// The pooled origin client.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl OriginClient {
    /// A client with these timeouts.
    pub fn new(timeouts: Timeouts) -> OriginClient {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(timeouts.connect));
        conn.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(conn);
        OriginClient { client, timeouts }
    }

    /// `GET` (or `HEAD`) `http://{host}:{port}{path_and_query}` with `Host: {host_header}`;
    /// `range` is forwarded when given. Returns once the response headers are in.
    pub async fn get(
        &self,
        host: &str,
        port: u16,
        host_header: &str,
        path_and_query: &str,
        range: Option<&HeaderValue>,
        head: bool,
    ) -> Result<Response<Incoming>, OriginError> {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let uri = format!("http://{authority}{path_and_query}");
        let method = if head {
            http::Method::HEAD
        } else {
            http::Method::GET
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, host_header)
            .header(header::USER_AGENT, "tollgate-edge")
            // The cache key ignores Accept-Encoding, so ask for the identity encoding.
            .header(header::ACCEPT_ENCODING, "identity")
            .body(Empty::new())
            .map_err(|_| OriginError::Unreachable)?;
        if let Some(r) = range {
            req.headers_mut().insert(header::RANGE, r.clone());
        }
        match tokio::time::timeout(self.timeouts.read, self.client.request(req)).await {
            Err(_) => Err(OriginError::Timeout),
            Ok(Err(e)) if is_connect_timeout(&e) => Err(OriginError::Timeout),
            Ok(Err(_)) => Err(OriginError::Unreachable),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Reads a whole body of at most `limit` bytes, each read within the read timeout.
    pub async fn read_body(&self, mut body: Incoming, limit: u64) -> Result<Bytes, OriginError> {
        let mut buf = bytes::BytesMut::new();
        loop {
            let frame = match tokio::time::timeout(self.timeouts.read, body.frame()).await {
                Err(_) => return Err(OriginError::Timeout),
                Ok(None) => break,
                Ok(Some(Err(_))) => return Err(OriginError::Unreachable),
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > limit {
                    return Err(OriginError::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }
}

fn is_connect_timeout(e: &hyper_util::client::legacy::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        src = s.source();
    }
    false
}
