//! A client connection's byte stream, as the HTTP server sees it: cuts off clients that are too
//! slow (a request head not finished in time, a response not read), and turns a small
//! vectored write into one plain write.
//!
//! Why not hyper's `header_read_timeout`: it boxes a timer for every request and registers and
//! cancels it in the runtime's timer wheel, about a tenth of the CPU time of a refused request
//! (measured in docs/architecture.md). Here a connection's deadline is two atomics, and one
//! sweep per worker (a few times per timeout) cuts off the connections past theirs, as nginx
//! checks its timer tree once per event-loop turn.
//!
//! Deadlines, as nginx's `client_header_timeout` and `send_timeout`:
//! - no request in progress (a new connection, or the last response byte written): the next
//!   request head must arrive within the header timeout;
//! - a request being served (waiting on the cache or the origin): none here; the origin's
//!   timeouts bound it;
//! - a write the client does not take: the send timeout, counted again from each write that
//!   makes progress.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes of at most this many bytes in several buffers are copied into one: a `write` of one
/// buffer costs the kernel less than a `writev` of two (a response head and a short body);
/// larger bodies go out as they are, without the copy.
const COALESCE_BYTES: usize = 4096;

thread_local! {
    /// Where small vectored writes are joined: one buffer per worker thread, reused.
    static JOINED: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(COALESCE_BYTES));
}

/// Milliseconds since a worker started, advanced by its sweeps: reading it costs an atomic
/// load instead of a clock read per request.
#[derive(Debug)]
struct CoarseClock {
    start: Instant,
    now_ms: AtomicU64,
}

impl CoarseClock {
    fn new() -> CoarseClock {
        CoarseClock {
            start: Instant::now(),
            now_ms: AtomicU64::new(1),
        }
    }

    fn now(&self) -> u64 {
        self.now_ms.load(Relaxed)
    }

    fn tick(&self) -> u64 {
        // Never 0: a deadline of 0 means "none".
        let ms = self.start.elapsed().as_millis() as u64 + 1;
        self.now_ms.store(ms, Relaxed);
        ms
    }
}

/// One connection's state, shared by its stream, its requests and the worker's sweeps.
#[derive(Debug)]
pub struct Guard {
    clock: Arc<CoarseClock>,
    header_ms: u64,
    send_ms: u64,
    /// Requests being served (several on HTTP/2); a streamed response counts until it ends.
    in_flight: AtomicU32,
    /// A write is waiting for the client to read.
    stalled: AtomicBool,
    /// Coarse-clock milliseconds after which the connection is cut off; 0 for none.
    deadline: AtomicU64,
    expired: AtomicBool,
    /// The task to wake when the deadline passes (the connection's, from its last pending read
    /// or write).
    waker: Mutex<Option<Waker>>,
}

impl Guard {
    /// Marks a request as being served until the returned value is dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        self.in_flight.fetch_add(1, Relaxed);
        if !self.stalled.load(Relaxed) {
            self.deadline.store(0, Relaxed);
        }
        Serving(Arc::clone(self))
    }

    /// With no request in progress, the next request head is due within the header timeout.
    fn expect_head(&self) {
        if self.in_flight.load(Relaxed) == 0 {
            self.deadline
                .store(self.clock.now() + self.header_ms, Relaxed);
        } else {
            self.deadline.store(0, Relaxed);
        }
    }

    fn wrote(&self, r: &Poll<io::Result<usize>>, cx: &Context<'_>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.stalled.store(false, Relaxed);
                self.expect_head();
            }
            Poll::Pending => {
                // The send clock starts at the first write the client does not take, and only
                // progress restarts it: a wake-up for other reasons does not.
                if !self.stalled.swap(true, Relaxed) {
                    self.deadline
                        .store(self.clock.now() + self.send_ms, Relaxed);
                }
                self.remember(cx);
            }
            _ => {}
        }
    }

    fn remember(&self, cx: &Context<'_>) {
        if let Ok(mut w) = self.waker.lock() {
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.expired.load(Relaxed) {
            Err(io::Error::new(io::ErrorKind::TimedOut, "client too slow"))
        } else {
            Ok(())
        }
    }

    /// Cuts the connection off if its deadline has passed: a waiting request head, or a
    /// client not reading; a request waiting on the origin is bounded by the origin timeouts.
    fn sweep(&self, now: u64) {
        let deadline = self.deadline.load(Relaxed);
        let due = deadline != 0 && deadline < now;
        if due && (self.in_flight.load(Relaxed) == 0 || self.stalled.load(Relaxed)) {
            self.expired.store(true, Relaxed);
            if let Some(w) = self.waker.lock().ok().and_then(|mut w| w.take()) {
                w.wake();
            }
        }
    }
}

/// A request in progress on a connection (see [`Guard::serving`]).
#[derive(Debug)]
pub struct Serving(Arc<Guard>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
        if !self.0.stalled.load(Relaxed) {
            self.0.expect_head();
        }
    }
}

/// A worker's connections and its clock; [`Sweeper::sweep`] runs a few times per timeout.
#[derive(Debug)]
pub struct Sweeper {
    clock: Arc<CoarseClock>,
    header_ms: u64,
    send_ms: u64,
    guards: Vec<Weak<Guard>>,
}

impl Sweeper {
    /// A sweeper for connections with these timeouts.
    pub fn new(header_timeout: Duration, send_timeout: Duration) -> Sweeper {
        let clock = Arc::new(CoarseClock::new());
        clock.tick();
        Sweeper {
            clock,
            header_ms: header_timeout.as_millis().max(1) as u64,
            send_ms: send_timeout.as_millis().max(1) as u64,
            guards: Vec::new(),
        }
    }

    /// How often to sweep: a quarter of the shorter timeout, between 10 ms and 1 s, so a
    /// connection is cut off at most 25% late.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.header_ms.min(self.send_ms) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// A guard for a new connection, whose first request head is due within the header
    /// timeout.
    pub fn guard(&mut self) -> Arc<Guard> {
        let g = Arc::new(Guard {
            clock: Arc::clone(&self.clock),
            header_ms: self.header_ms,
            send_ms: self.send_ms,
            in_flight: AtomicU32::new(0),
            stalled: AtomicBool::new(false),
            deadline: AtomicU64::new(0),
            expired: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        g.expect_head();
        self.guards.push(Arc::downgrade(&g));
        g
    }

    /// Advances the clock, cuts off the connections past their deadline, forgets closed ones.
    pub fn sweep(&mut self) {
        let now = self.clock.tick();
        self.guards.retain(|w| match w.upgrade() {
            Some(g) => {
                g.sweep(now);
                true
            }
            None => false,
        });
    }
}

/// A client stream under a [`Guard`].
#[derive(Debug)]
pub struct ClientIo<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S> ClientIo<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, guard: Arc<Guard>) -> ClientIo<S> {
        ClientIo { inner, guard }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.guard.check()?;
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_pending() {
            self.guard.remember(cx);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard.check()?;
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard.wrote(&r, cx);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard.check()?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let r = if bufs.len() > 1 && total <= COALESCE_BYTES {
            JOINED.with_borrow_mut(|joined| {
                joined.clear();
                for b in bufs {
                    joined.extend_from_slice(b);
                }
                Pin::new(&mut self.inner).poll_write(cx, joined)
            })
        } else {
            Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        };
        self.guard.wrote(&r, cx);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that records how it was written to, and has nothing to read.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(&'static str, usize)>,
        full: bool,
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.full {
                return Poll::Pending;
            }
            self.writes.push(("write", buf.len()));
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            if self.full {
                return Poll::Pending;
            }
            let n = bufs.iter().map(|b| b.len()).sum();
            self.writes.push(("writev", n));
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const SHORT: Duration = Duration::from_millis(30);
    const LONG: Duration = Duration::from_secs(600);

    fn read(io: &mut ClientIo<Recorder>) -> Poll<io::Result<()>> {
        let mut space = [0u8; 16];
        let mut buf = ReadBuf::new(&mut space);
        Pin::new(io).poll_read(&mut Context::from_waker(Waker::noop()), &mut buf)
    }

    fn write(io: &mut ClientIo<Recorder>, bufs: &[&[u8]]) -> Poll<io::Result<usize>> {
        let slices: Vec<io::IoSlice<'_>> = bufs.iter().map(|b| io::IoSlice::new(b)).collect();
        Pin::new(io).poll_write_vectored(&mut Context::from_waker(Waker::noop()), &slices)
    }

    /// A sweeper with these timeouts, and one connection under it.
    fn open(header: Duration, send: Duration) -> (Sweeper, Arc<Guard>, ClientIo<Recorder>) {
        let mut sweeper = Sweeper::new(header, send);
        let guard = sweeper.guard();
        let io = ClientIo::new(Recorder::default(), Arc::clone(&guard));
        (sweeper, guard, io)
    }

    /// Lets `SHORT` pass twice over, then sweeps.
    fn after_short(sweeper: &mut Sweeper) {
        std::thread::sleep(SHORT * 2);
        sweeper.sweep();
    }

    fn timed_out(p: Poll<io::Result<()>>) -> bool {
        matches!(p, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut)
    }

    #[test]
    fn a_small_response_goes_out_in_one_write_a_large_one_as_it_is() {
        let (_, _, mut io) = open(LONG, LONG);
        let head = [b'h'; 200];
        let body = vec![b'b'; 1024];
        assert!(matches!(
            write(&mut io, &[&head, &body]),
            Poll::Ready(Ok(1224))
        ));
        let big = vec![b'b'; 100 * 1024];
        assert!(matches!(write(&mut io, &[&head, &big]), Poll::Ready(Ok(_))));
        assert_eq!(
            io.inner.writes,
            vec![("write", 1224), ("writev", 200 + 100 * 1024)]
        );
    }

    #[test]
    fn a_connection_without_a_request_is_cut_off_after_the_header_timeout() {
        let (mut sweeper, _, mut io) = open(SHORT, LONG);
        assert!(read(&mut io).is_pending());
        sweeper.sweep();
        assert!(read(&mut io).is_pending(), "cut off before its time");
        after_short(&mut sweeper);
        assert!(timed_out(read(&mut io)));
    }

    #[test]
    fn a_request_in_progress_is_not_cut_off_and_its_end_restarts_the_clock() {
        let (mut sweeper, guard, mut io) = open(SHORT, LONG);
        let serving = guard.serving();
        after_short(&mut sweeper);
        assert!(
            read(&mut io).is_pending(),
            "cut off while waiting on the origin"
        );
        drop(serving);
        sweeper.sweep();
        assert!(read(&mut io).is_pending(), "the clock did not restart");
        after_short(&mut sweeper);
        assert!(timed_out(read(&mut io)));
    }

    #[test]
    fn a_client_that_does_not_read_is_cut_off_even_mid_response() {
        let (mut sweeper, guard, mut io) = open(LONG, SHORT);
        let _streaming = guard.serving();
        io.inner.full = true;
        assert!(write(&mut io, &[b"x"]).is_pending());
        std::thread::sleep(SHORT * 2);
        // Later attempts that stay pending do not restart the send clock.
        assert!(write(&mut io, &[b"x"]).is_pending());
        sweeper.sweep();
        assert!(timed_out(read(&mut io)));
    }

    #[test]
    fn closed_connections_are_forgotten() {
        let mut sweeper = Sweeper::new(LONG, LONG);
        let kept = sweeper.guard();
        drop(sweeper.guard());
        sweeper.sweep();
        assert_eq!(sweeper.guards.len(), 1);
        drop(kept);
        sweeper.sweep();
        assert!(sweeper.guards.is_empty());
    }
}
