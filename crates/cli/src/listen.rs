//! The control plane's listener, with the edge's discipline: a header timeout from the
//! connection's start and from the end of each response (so idle keep-alive connections close
//! too), a send timeout, a cap on connections (further clients wait to be accepted) and on
//! connections per address (more are closed at once), and limits on request bodies (size, and
//! the time to send one, so a body that drips is cut off). A request being served has no
//! client deadline: the edges' long-polls (`GET /edge/v1/config?wait=25`) outlast the header
//! timeout.
//!
//! The timeouts are the edge's `client_io` (a deadline per connection, swept a few times per
//! timeout); the router is axum's, called as a plain service with the peer's address as
//! `ConnectInfo`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tollgate_control::error::ApiError;
use tollgate_edge::PerAddress;
use tollgate_edge::{ClientIo, Serving, Sweeper};

/// Limits on the control plane's clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; further clients wait to be accepted.
    pub max_connections: usize,
    /// Open connections from one address at most (0 for no cap); more are closed at once.
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request head, from connecting or from the end of the
    /// previous response.
    pub header_timeout: Duration,
    /// Time a client may leave a response unread.
    pub send_timeout: Duration,
    /// Time a client has to send a whole request body, from the end of its head.
    pub body_timeout: Duration,
    /// Largest request body, in bytes.
    pub max_body_bytes: u64,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What became of a request body.
const BODY_OK: u8 = 0;
const BODY_TOO_LARGE: u8 = 1;
const BODY_TOO_SLOW: u8 = 2;

/// A request body under the size and time limits; what went wrong is left in `state` for the
/// answer (the router's handlers see only a failed read).
struct Bounded {
    inner: Incoming,
    left: u64,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    state: Arc<AtomicU8>,
}

/// Why a request body was refused.
#[derive(Debug)]
struct BodyRefused(&'static str);

impl std::fmt::Display for BodyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyRefused {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for Bounded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(d) = self.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                self.state.store(BODY_TOO_SLOW, Relaxed);
                return Poll::Ready(Some(Err(Box::new(BodyRefused("request body too slow")))));
            }
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                match self.left.checked_sub(n) {
                    Some(left) => {
                        self.left = left;
                        Poll::Ready(Some(Ok(frame)))
                    }
                    None => {
                        self.state.store(BODY_TOO_LARGE, Relaxed);
                        Poll::Ready(Some(Err(Box::new(BodyRefused("request body too large")))))
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as being served until it ends, so the
/// header timeout does not run while a response streams.
struct Held<B> {
    inner: B,
    _serving: Serving,
}

impl<B: Body + Unpin> Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An error answer that also closes the connection (the rest of the body is not read).
fn refuse(status: StatusCode, code: &'static str, message: String) -> Response<axum::body::Body> {
    let mut r = ApiError::new(status, code, message).into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Serves one request: the size of a declared body checked before the router runs, the body
/// bounded while it reads it.
async fn handle(
    mut router: Router,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    limits: Limits,
) -> Response<axum::body::Body> {
    use tower_service::Service as _;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are {} bytes at most", limits.max_body_bytes),
        );
    }
    req.extensions_mut().insert(ConnectInfo(peer));
    let state = Arc::new(AtomicU8::new(BODY_OK));
    let req = req.map(|inner| {
        let deadline =
            (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(limits.body_timeout)));
        Bounded {
            inner,
            left: limits.max_body_bytes,
            deadline,
            state: Arc::clone(&state),
        }
    });
    let resp = match router.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    match state.load(Relaxed) {
        BODY_TOO_LARGE => refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are {} bytes at most", limits.max_body_bytes),
        ),
        BODY_TOO_SLOW => refuse(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} ms",
                limits.body_timeout.as_millis()
            ),
        ),
        _ => resp,
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish (at most `limits.shutdown_grace`). HTTP/1.1 only.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_ip);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slow clients are cut off by `client_io`.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let mut sweeper = Sweeper::new(limits.header_timeout, limits.send_timeout);
    let mut sweeps = tokio::time::interval(sweeper.interval());
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let accept = || async {
        let permit = Arc::clone(&slots).acquire_owned().await;
        let accepted = listener.accept().await;
        (permit, accepted)
    };
    loop {
        let (permit, accepted) = tokio::select! {
            a = accept() => a,
            _ = sweeps.tick() => { sweeper.sweep(); continue; }
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over its address's cap: closed before anything is read.
        let address = if per_address.is_capped() {
            match per_address.try_acquire(peer.ip()) {
                Some(slot) => Some(slot),
                None => continue,
            }
        } else {
            None
        };
        let _ = stream.set_nodelay(true);
        let guard = sweeper.guard();
        let on_request = Arc::clone(&guard);
        let router = router.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let serving = on_request.serving();
            let router = router.clone();
            async move {
                let resp = handle(router, req, peer, limits).await;
                Ok::<_, Infallible>(resp.map(|inner| Held {
                    inner,
                    _serving: serving,
                }))
            }
        });
        let conn = graceful.watch(
            builder
                .serve_connection(TokioIo::new(ClientIo::new(stream, guard)), svc)
                .into_owned(),
        );
        tokio::spawn(async move {
            let _ = conn.await;
            drop((permit, address));
        });
    }
    drop(listener);
    tollgate_edge::drain(graceful, sweeper, limits.shutdown_grace).await;
}
