//! A small blocking JSON client for the control plane's API, over plain TCP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// The API of a control plane on 127.0.0.1:`port`, called with `token`.
#[derive(Debug, Clone)]
pub struct Api {
    /// Port of the control listener.
    pub port: u16,
    /// API token.
    pub token: String,
}

impl Api {
    /// Sends `method path` with an optional JSON body; returns the status and the parsed
    /// body (`Null` when empty or not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_with(
            method,
            path,
            body,
            &[("Authorization", &format!("APIKey {}", self.token))],
        )
    }

    /// Like [`Api::call`] with the given header lines instead of the token.
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, text) = self
            .raw(
                method,
                path,
                body.map(|b| b.to_string()).as_deref(),
                headers,
            )
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends a raw body; returns the status and the body text.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), String> {
        let mut s =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(70)))
            .map_err(|e| e.to_string())?;
        let body = body.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).map_err(|e| format!("read: {e}"))?;
        let r = crate::http::parse_response(&resp, method == "HEAD")?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }
}
