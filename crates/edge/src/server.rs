//! Listeners: the public one (HTTP/1.1 and HTTP/2 with prior knowledge, limits on connections
//! and on header size and read time) and the admin one (`/metrics`, `/healthz`), both stopping
//! gracefully: no new connections, requests in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::{proxy, Edge};

/// Limits on client connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; further clients wait to be accepted.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (slow clients are cut off).
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(limits.max_header_bytes as u32);
    b
}

/// Serves the edge on `listener` until `shutdown` completes, then waits for requests in
/// flight (at most `limits.shutdown_grace`). With `tls`, connections are TLS (HTTP/2 or
/// HTTP/1.1 by ALPN); without, HTTP/1.1 or HTTP/2 with prior knowledge.
pub async fn serve(
    edge: Arc<Edge>,
    listener: TcpListener,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let builder = builder(&limits);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        edge.metrics.connections.fetch_add(1, Relaxed);
        let edge = Arc::clone(&edge);
        let is_tls = tls.is_some();
        let svc = service_fn(move |req: Request<Incoming>| {
            let edge = Arc::clone(&edge);
            async move { Ok::<_, Infallible>(proxy::handle(edge, req, peer.ip(), is_tls).await) }
        });
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's task, bounded like a request head, so
                // a slow or silent client holds a slot no longer than that.
                let accept =
                    tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    if let Ok(Ok(stream)) = accept.await {
                        let conn = builder
                            .serve_connection(TokioIo::new(stream), svc)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => {}
    }
}

/// Serves `/metrics` and `/healthz` until `shutdown` completes.
pub async fn serve_admin(
    edge: Arc<Edge>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let builder = builder(&Limits::default());
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = &mut shutdown => return,
        };
        let edge = Arc::clone(&edge);
        let svc = service_fn(move |req: Request<Incoming>| {
            let edge = Arc::clone(&edge);
            async move {
                let (status, ctype, body) = match req.uri().path() {
                    "/metrics" => (
                        StatusCode::OK,
                        "text/plain; version=0.0.4",
                        edge.render_metrics(),
                    ),
                    "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
                    _ => (
                        StatusCode::NOT_FOUND,
                        "text/plain",
                        "not found\n".to_owned(),
                    ),
                };
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = status;
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
                Ok::<_, Infallible>(r)
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(conn);
    }
}
