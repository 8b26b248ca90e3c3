//! The one HTTP client for a control plane's API: the edge's long-polls and reports, and the
//! `tollgate token` commands. HTTP or HTTPS (the origin client's trust anchors), the token as
//! `Authorization: Bearer`, every call bounded in time and in the size of the answer.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// A control plane's base URL and the token to call it with.
#[derive(Clone)]
pub struct ControlClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    token: String,
}

impl ControlClient {
    /// A client for the control plane at `base` (`http://host:port`, `https://...`).
    pub fn new(base: &str, token: &str, tls: rustls::ClientConfig) -> ControlClient {
        let https = crate::origin::connector(tls, Duration::from_secs(5));
        ControlClient {
            // Idle connections are dropped before the control plane's header timeout (10 s by
            // default) would close them, so a call rarely races a closing connection.
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build(https),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `method path` with an optional JSON body; the answer's status and body, which
    /// may be at most `limit` bytes and must come within `timeout`. Errors name the URL.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
        limit: usize,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let url = self.url(path);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if json.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(json.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the body: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("{url}: no answer in {} s", timeout.as_secs()))?
    }
}

/// An error with its causes ("client error (Connect): tcp connect error: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
