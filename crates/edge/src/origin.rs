//! Requests to origins: HTTP/1.1 (over TLS for HTTPS origins) with a keep-alive pool, connect
//! and read timeouts, and errors that say whose fault a failure is (502 for a refused or broken
//! origin, 504 for a slow one). HTTPS origins are verified against the system's trust anchors
//! plus any given with `--origin-ca`.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;

/// Origin timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To establish a connection.
    pub connect: Duration,
    /// For the response headers, and between two body reads.
    pub read: Duration,
    /// For a whole fetch into the cache (head and body), however steadily the origin drips:
    /// viewers waiting on a fetch are not held longer than this.
    pub total: Duration,
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
    /// A Range request (the `slice` option) answered with another range than asked: 502.
    BadRange,
}

impl OriginError {
    /// Reason for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            OriginError::Unreachable => "origin_unreachable",
            OriginError::Timeout => "origin_timeout",
            OriginError::TooLarge => "origin_too_large",
            OriginError::BadRange => "origin_bad_range",
        }
    }
}

/// A `GET` (or `HEAD`) of `http(s)://{host}:{port}{path_and_query}` with `Host: {host_header}`.
pub(crate) struct OriginRequest<'a> {
    pub https: bool,
    pub host: &'a str,
    pub port: u16,
    pub host_header: &'a str,
    pub path_and_query: &'a str,
    /// Forwarded when given.
    pub range: Option<&'a HeaderValue>,
    /// `If-None-Match` / `If-Modified-Since` of a stored copy being revalidated.
    pub conditional: &'a [(http::HeaderName, HeaderValue)],
    pub head: bool,
    /// Another method than `GET`/`HEAD` (a viewer's unsafe request passed through), with
    /// the viewer's body.
    pub unsafe_method: Option<(http::Method, OriginBody)>,
    /// Added after the edge's own headers (`staticRequestHeaders`), replacing the viewer's
    /// of the same names.
    pub extra: &'a [(String, String)],
    /// The viewer this request is made for, whose headers are forwarded.
    pub viewer: Option<Viewer<'a>>,
}

/// A viewer's request, as the origin is told of it.
#[derive(Clone, Copy)]
pub(crate) struct Viewer<'a> {
    pub headers: &'a HeaderMap,
    /// Its address (as the trusted proxies tell it).
    pub client: std::net::IpAddr,
    pub tls: bool,
}

impl Viewer<'_> {
    /// Whether the request carries `Authorization` (RFC 9111 3.5: its response is stored
    /// only when the response says it may be).
    pub fn authorized(&self) -> bool {
        self.headers.contains_key(header::AUTHORIZATION)
    }
}

/// The header names `Connection` lists (hop-by-hop, RFC 9110 7.6.1), in lower case.
pub(crate) fn connection_named(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// The viewer's request headers that go to the origin, as nginx's `proxy_pass` sends them:
/// its end-to-end headers, without those the edge sets or answers itself (the hop-by-hop
/// ones and those `Connection` names, `Host`, the body's framing, `Range` and the
/// conditionals, which the cache answers, `Accept-Encoding`, since the edge asks for the
/// identity encoding, and the forwarding headers it sets).
fn forwardable(viewer: &HeaderMap) -> impl Iterator<Item = (&http::HeaderName, &HeaderValue)> {
    let named = connection_named(viewer);
    viewer.iter().filter(move |(name, _)| {
        let n = name.as_str();
        !matches!(
            n,
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "host"
                | "content-length"
                | "expect"
                | "range"
                | "if-range"
                | "if-match"
                | "if-none-match"
                | "if-modified-since"
                | "if-unmodified-since"
                | "accept-encoding"
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-real-ip"
        ) && !named.iter().any(|c| c == n)
    })
}

/// A request body for the origin: none, or a viewer's (bounded by the caller).
pub(crate) type OriginBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// No body.
pub(crate) fn no_body() -> OriginBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

type Pool = Client<HttpsConnector<HttpConnector>, OriginBody>;

thread_local! {
    /// One connection pool per thread and per client, so that a request and the origin
    /// connection it rides on are usually polled by the same worker thread (fewer cross-thread
    /// wake-ups), and a pool never outlives the runtime its connections run on.
    static POOLS: std::cell::RefCell<Vec<(usize, Pool)>> = const { std::cell::RefCell::new(Vec::new()) };
}

static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// TLS client settings trusting the system's anchors and `extra_roots`: for HTTPS origins and
/// for a control plane's `https://` URL.
pub fn client_tls(extra_roots: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates leave only the explicit ones; HTTPS origins then fail
    // verification with a 502 instead of the edge refusing to start.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(extra_roots.iter().cloned());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| unreachable_tls_config())
}

/// The origin client: per-thread keep-alive pools sharing one TLS configuration.
#[derive(Clone)]
pub struct OriginClient {
    id: usize,
    tls: rustls::ClientConfig,
    pub timeouts: Timeouts,
}

impl OriginClient {
    /// A client with these timeouts, trusting the system's anchors and `extra_roots`.
    pub fn new(timeouts: Timeouts, extra_roots: &[CertificateDer<'static>]) -> OriginClient {
        OriginClient {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            tls: client_tls(extra_roots),
            timeouts,
        }
    }

    /// The TLS settings HTTPS origins are reached with (the same trust anchors serve the
    /// control plane's URL).
    pub fn tls_config(&self) -> rustls::ClientConfig {
        self.tls.clone()
    }

    /// This thread's pool, made on first use.
    fn pool(&self) -> Pool {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some((_, p)) = pools.iter().find(|(id, _)| *id == self.id) {
                return p.clone();
            }
            let https = connector(self.tls.clone(), self.timeouts.connect);
            let pool = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .build(https);
            pools.push((self.id, pool.clone()));
            pool
        })
    }

    /// Sends `r`; returns once the response headers are in.
    pub(crate) async fn get(
        &self,
        r: OriginRequest<'_>,
    ) -> Result<Response<Incoming>, OriginError> {
        let authority = if r.host.contains(':') {
            format!("[{}]:{}", r.host, r.port)
        } else {
            format!("{}:{}", r.host, r.port)
        };
        let scheme = if r.https { "https" } else { "http" };
        let uri = format!("{scheme}://{authority}{}", r.path_and_query);
        let (method, body) = match r.unsafe_method {
            Some((m, body)) => (m, body),
            None if r.head => (http::Method::HEAD, no_body()),
            None => (http::Method::GET, no_body()),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|_| OriginError::Unreachable)?;
        let h = req.headers_mut();
        if let Some(v) = &r.viewer {
            for (name, value) in forwardable(v.headers) {
                h.append(name, value.clone());
            }
            // nginx's usual set: the viewer's chain plus its address, its address, its scheme.
            let client = v.client.to_string();
            let mut chain = String::new();
            for prior in v.headers.get_all("x-forwarded-for") {
                if let Ok(p) = prior.to_str().map(str::trim) {
                    if !p.is_empty() {
                        chain.push_str(p);
                        chain.push_str(", ");
                    }
                }
            }
            chain.push_str(&client);
            for (name, value) in [
                ("x-forwarded-for", chain),
                ("x-real-ip", client),
                (
                    "x-forwarded-proto",
                    (if v.tls { "https" } else { "http" }).into(),
                ),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    h.insert(name, value);
                }
            }
        }
        h.insert(
            header::HOST,
            HeaderValue::from_str(r.host_header).map_err(|_| OriginError::Unreachable)?,
        );
        if !h.contains_key(header::USER_AGENT) {
            h.insert(
                header::USER_AGENT,
                HeaderValue::from_static("tollgate-edge"),
            );
        }
        // The cache key ignores Accept-Encoding, so ask for the identity encoding.
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if let Some(range) = r.range {
            req.headers_mut().insert(header::RANGE, range.clone());
        }
        for (name, value) in r.conditional {
            req.headers_mut().insert(name, value.clone());
        }
        // Validated with the resource (`staticRequestHeaders`), so none is skipped here. They
        // win over the viewer's headers of the same names.
        let mut replaced: Vec<http::HeaderName> = Vec::new();
        for (name, value) in r.extra {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                if !replaced.contains(&n) {
                    req.headers_mut().remove(&n);
                    replaced.push(n.clone());
                }
                req.headers_mut().append(n, v);
            }
        }
        match tokio::time::timeout(self.timeouts.read, self.pool().request(req)).await {
            Err(_) => Err(OriginError::Timeout),
            Ok(Err(e)) if is_connect_timeout(&e) => Err(OriginError::Timeout),
            Ok(Err(_)) => Err(OriginError::Unreachable),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Reads a whole body of at most `limit` bytes, each read within the read timeout, into a
    /// buffer of its exact size (`expected` is the Content-Length, when known).
    pub async fn read_body(
        &self,
        mut body: Incoming,
        limit: u64,
        expected: Option<u64>,
    ) -> Result<Bytes, OriginError> {
        let mut buf = bytes::BytesMut::with_capacity(expected.unwrap_or(0).min(limit) as usize);
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
        if buf.capacity() > buf.len() + buf.len() / 8 {
            // Grown by doubling: keep only what is used, since the cache holds it for long.
            return Ok(Bytes::copy_from_slice(&buf));
        }
        Ok(buf.freeze())
    }
}

/// HTTP/1.1 connections, over TLS for `https://` URLs: to origins and to the control plane.
pub(crate) fn connector(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
) -> HttpsConnector<HttpConnector> {
    let mut conn = HttpConnector::new();
    conn.set_connect_timeout(Some(connect_timeout));
    conn.set_nodelay(true);
    conn.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(conn)
}

/// The ring provider's safe defaults always build; this is never reached, and exists so that
/// the constructor has no panic path.
fn unreachable_tls_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
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
