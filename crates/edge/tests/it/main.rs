//! Integration tests of the edge, in one binary: a real edge on loopback in front of a real
//! origin (the std-only test origin, and Debian's nginx), driven by a raw HTTP client.
#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

mod behaviour;
mod caching;
mod caching_diff;
mod dir_links;
mod hardening;
mod https_origin;
mod large;
mod methods;
mod nginx_diff;
mod nginx_origin;
mod options;
mod options_diff;
mod origin_groups;
mod revalidate;
mod slice;
mod tls_h2;
mod token_ext;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tollgate_edge::Routes;
use tollgate_edge::{Edge, EdgeConfig};
use tollgate_testkit::http::{request, RawResponse};

/// An edge running on its own runtime, stopped on drop.
pub struct RunningEdge {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its state, for metrics.
    pub edge: Arc<Edge>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningEdge {
    /// Starts a cleartext edge.
    pub fn start(resources: &str, config: EdgeConfig) -> RunningEdge {
        Self::start_with(resources, config, None)
    }

    /// Starts an edge, with TLS when `tls` is given.
    pub fn start_with(
        resources: &str,
        config: EdgeConfig,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> RunningEdge {
        let resources = tollgate_model::parse_resources(resources).unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let edge = Arc::new(Edge::new(&config, Routes::new(resources, None)).unwrap());
                ready_tx.send((port, Arc::clone(&edge))).unwrap();
                tollgate_edge::serve(edge, listener, config.limits, tls, 2, async {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        let (port, edge) = ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        RunningEdge {
            port,
            edge,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// GET (or another method) from 127.0.0.1 with a Host header.
    pub fn get(&self, host: &str, target: &str, extra: &[(&str, &str)]) -> RawResponse {
        self.send(Ipv4Addr::LOCALHOST, "GET", host, target, extra)
    }

    /// Any method from `source` with a Host header.
    pub fn send(
        &self,
        source: Ipv4Addr,
        method: &str,
        host: &str,
        target: &str,
        extra: &[(&str, &str)],
    ) -> RawResponse {
        let mut headers = vec![("Host", host)];
        headers.extend_from_slice(extra);
        request(source, self.port, method, target.as_bytes(), &headers).unwrap()
    }
}

impl Drop for RunningEdge {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An edge for one resource, `host` signed with type 2 on `origin_port`, with `options` besides
/// its token.
pub fn edge_with_options(
    origin_port: u16,
    host: &str,
    options: serde_json::Value,
    config: EdgeConfig,
) -> RunningEdge {
    let mut json: serde_json::Value =
        serde_json::from_str(&resources(origin_port, &[(host, Some(2))])).unwrap();
    for (k, v) in options.as_object().unwrap() {
        json[0]["options"][k] = v.clone();
    }
    RunningEdge::start(&json.to_string(), config)
}

/// Resources JSON with one resource per (host, type) on `origin_port`.
pub fn resources(origin_port: u16, list: &[(&str, Option<u8>)]) -> String {
    let items: Vec<serde_json::Value> = list
        .iter()
        .enumerate()
        .map(|(i, (host, ty))| {
            let mut sk = serde_json::json!({"enabled": ty.is_some(), "key": "secret_key"});
            if let Some(t) = ty {
                sk["type"] = (*t).into();
            }
            serde_json::json!({
                "id": i + 1, "cname": host, "origin": format!("127.0.0.1:{origin_port}"),
                "originProtocol": "HTTP", "options": {"secure_key": sk}
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}
