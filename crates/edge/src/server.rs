//! Listeners: the public ones (HTTP/1.1 and HTTP/2 with prior knowledge, or TLS; limits on
//! connections, on connections per client address, and on header size and read time) and the
//! admin one (`/metrics`, `/healthz`), both stopping gracefully: no new connections, requests
//! in flight finish.

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
use std::net::SocketAddr;
use tokio::net::TcpListener;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::client_io::{ClientIo, Sweeper};
use crate::conn_limit::{AddressSlot, PerAddress};
use crate::{proxy, Edge};

/// Limits on client connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; further clients wait to be accepted.
    pub max_connections: usize,
    /// Open connections from one peer address at most (0 for no cap); a connection over it is
    /// closed at once, before anything is read. Trusted proxies are not capped.
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers, counted from the connection's start or
    /// the end of the previous response (slow and idle clients are cut off).
    pub header_read_timeout: Duration,
    /// Time a client may leave a response unread before it is cut off.
    pub send_timeout: Duration,
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
            header_read_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // Slow clients are cut off by `client_io`, cheaper than hyper's timer per request.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(limits.max_header_bytes as u32);
    b
}

/// What an accepted connection holds until its task ends: its slot among all connections and
/// its slot among its address's.
pub struct Slots {
    _all: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// A connection on its way from the acceptor to a worker.
struct Dealt {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slots: Slots,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A bound public listener, plain or TLS.
pub struct Listener {
    /// Accepts the connections.
    pub tcp: TcpListener,
    /// With it, connections are TLS (HTTP/2 or HTTP/1.1 by ALPN).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Binds `addr` for listening as nginx does: an IPv6 address accepts IPv6 only
/// (`IPV6_V6ONLY`), so `[::]` does not also take IPv4 clients as `::ffff:a.b.c.d` (whose
/// IP-bound links would not match); bind `0.0.0.0` as well for both families.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // As tokio's `TcpListener::bind`: a restart does not wait for old connections' TIME_WAIT.
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

/// Accepts from whichever listener has a connection first (starting the scan at `next`, so
/// a busy listener does not starve the others). Returns the listener's index.
async fn accept_any(
    listeners: &[Listener],
    next: usize,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, usize)> {
    std::future::poll_fn(|cx| {
        let n = listeners.len();
        for k in 0..n {
            let i = (next + k) % n;
            if let std::task::Poll::Ready(r) = listeners[i].tcp.poll_accept(cx) {
                return std::task::Poll::Ready(r.map(|(s, a)| (s, a, i)));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Serves the edge on `listener` until `shutdown` completes, then lets requests in flight
/// finish (at most `limits.shutdown_grace`). With `tls`, connections are TLS (HTTP/2 or
/// HTTP/1.1 by ALPN); without, HTTP/1.1 or HTTP/2 with prior knowledge.
///
/// One acceptor deals connections round-robin to `workers` single-threaded runtimes, each on
/// a thread of its own, and a connection stays on its worker: no cross-thread wake-ups per
/// request (as nginx's worker processes), and, unlike `SO_REUSEPORT` hashing, an even share of
/// connections for every worker. Measured against one work-stealing runtime and against
/// per-worker `SO_REUSEPORT` sockets in docs/architecture.md.
pub async fn serve(
    edge: Arc<Edge>,
    listener: TcpListener,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    workers: usize,
    shutdown: impl Future<Output = ()>,
) {
    let listener = Listener { tcp: listener, tls };
    serve_all(edge, vec![listener], limits, workers, shutdown).await;
}

/// Serves the edge on every listener in `listeners` as [`serve`] does on one: one acceptor,
/// one set of workers, and the limits (`max_connections`, `max_connections_per_ip`) counted
/// over all the listeners together.
pub async fn serve_all(
    edge: Arc<Edge>,
    listeners: Vec<Listener>,
    limits: Limits,
    workers: usize,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_ip);
    let mut deal = Vec::new();
    let mut threads = Vec::new();
    for i in 0..workers.max(1) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Dealt>();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => break,
        };
        let edge = Arc::clone(&edge);
        let spawned = std::thread::Builder::new()
            .name(format!("edge-worker-{i}"))
            .spawn(move || rt.block_on(worker(edge, rx, limits)));
        if let Ok(t) = spawned {
            deal.push(tx);
            threads.push(t);
        }
    }
    tokio::pin!(shutdown);
    let mut next = 0usize;
    let mut from = 0usize;
    while !deal.is_empty() && !listeners.is_empty() {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer, i) = tokio::select! {
            r = accept_any(&listeners, from) => match r {
                Ok(s) => s,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = &mut shutdown => break,
        };
        from = i.wrapping_add(1);
        // Over its address's cap: closed before anything is read (nginx's limit_conn would
        // answer 503; closing costs less and tells the client as much).
        let address = if per_address.is_capped() && !edge.trusted.trusts(peer.ip()) {
            match per_address.try_acquire(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    edge.metrics
                        .connections_over_address_cap
                        .fetch_add(1, Relaxed);
                    continue;
                }
            }
        } else {
            None
        };
        let _ = stream.set_nodelay(true);
        edge.metrics.connections.fetch_add(1, Relaxed);
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let dealt = Dealt {
            stream,
            peer,
            slots: Slots {
                _all: permit,
                _address: address,
            },
            tls: listeners[i].tls.clone(),
        };
        if deal[next % deal.len()].send(dealt).is_err() {
            break;
        }
        next = next.wrapping_add(1);
    }
    drop(listeners);
    // Closing the channels tells each worker to drain its connections and stop.
    drop(deal);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
}

/// One worker: serves the connections dealt to it until the acceptor stops, then drains.
async fn worker(
    edge: Arc<Edge>,
    mut dealt: tokio::sync::mpsc::UnboundedReceiver<Dealt>,
    limits: Limits,
) {
    let graceful = GracefulShutdown::new();
    let builder = builder(&limits);
    let mut sweeper = Sweeper::new(limits.header_read_timeout, limits.send_timeout);
    let mut sweeps = tokio::time::interval(sweeper.interval());
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Dealt {
            stream,
            peer,
            slots: permit,
            tls,
        } = tokio::select! {
            d = dealt.recv() => match d { Some(d) => d, None => break },
            _ = sweeps.tick() => { sweeper.sweep(); continue; }
        };
        let is_tls = tls.is_some();
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
            continue;
        };
        let guard = sweeper.guard();
        let edge = Arc::clone(&edge);
        let on_request = Arc::clone(&guard);
        let svc = service_fn(move |req: Request<Incoming>| {
            let edge = Arc::clone(&edge);
            let serving = on_request.serving();
            async move {
                let resp = proxy::handle(edge, req, peer.ip(), is_tls).await;
                Ok::<_, Infallible>(resp.map(|b| b.hold(serving)))
            }
        });
        match &tls {
            None => {
                let conn = graceful.watch(
                    builder
                        .serve_connection(TokioIo::new(ClientIo::new(stream, guard)), svc)
                        .into_owned(),
                );
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
                            .serve_connection(TokioIo::new(ClientIo::new(stream, guard)), svc)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    drop(permit);
                });
            }
        }
    }
    crate::server::drain(graceful, sweeper, limits.shutdown_grace).await;
}

/// Lets the connections watched by `graceful` finish, at most `grace`, still sweeping them
/// (a slow or idle client is cut off while draining, as before).
pub async fn drain(graceful: GracefulShutdown, mut sweeper: Sweeper, grace: Duration) {
    let mut sweeps = tokio::time::interval(sweeper.interval());
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sweeping = async {
        loop {
            sweeps.tick().await;
            sweeper.sweep();
        }
    };
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {}
        _ = sweeping => {}
    }
}

/// Serves `/metrics` and `/healthz` until `shutdown` completes.
pub async fn serve_admin(
    edge: Arc<Edge>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut builder = builder(&Limits::default());
    // Not swept by `client_io`: hyper's own timer is cheap enough at the admin's rate.
    builder
        .http1()
        .header_read_timeout(Limits::default().header_read_timeout);
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
                    "/healthz" => match edge.problem() {
                        None => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
                        Some(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain",
                            format!("unhealthy: {why}\n"),
                        ),
                    },
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
