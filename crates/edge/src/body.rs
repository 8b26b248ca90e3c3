//! The response body: a buffered object from the cache, or a stream from the origin.
//! An enum rather than a boxed trait object, so a cache hit costs no allocation here.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::client_io::Serving;

/// Why a streamed body ended early.
#[derive(Debug)]
pub enum BodyError {
    /// The origin's connection failed.
    Origin(hyper::Error),
    /// The origin sent nothing for its read timeout.
    Stalled(Duration),
    /// A manifest to rewrite went past this many bytes.
    TooLarge(u64),
    /// The viewer took nothing for the send timeout; the origin's connection was dropped.
    ViewerStalled,
    /// The fill this body followed stopped before the end.
    Fill(crate::slices::FillFailed),
    /// A slice of a stored body is in no tier (evicted, or unreadable on disk).
    SliceMissing,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Origin(e) => write!(f, "origin body: {e}"),
            BodyError::Stalled(d) => write!(f, "the origin sent nothing for {d:?}"),
            BodyError::TooLarge(n) => write!(f, "a manifest over {n} bytes"),
            BodyError::ViewerStalled => f.write_str("the viewer took nothing for the send timeout"),
            BodyError::Fill(e) => write!(f, "the origin's body stopped: {e:?}"),
            BodyError::SliceMissing => f.write_str("a stored slice could not be read"),
        }
    }
}

impl std::error::Error for BodyError {}

/// A body streamed from the origin. A small task of its own reads the origin and hands the
/// viewer one frame at a time, and gives up, dropping the origin's connection:
/// - when the origin sends nothing for its read timeout (as nginx's `proxy_read_timeout`);
/// - when the viewer takes nothing for the send timeout. Over HTTP/2 a viewer can stop taking
///   a stream without stalling its connection (a zero window), which the connection's own
///   send timeout never sees; without this, such streams held origin connections for good.
///
/// The viewer's side then ends with an error, and the stream is reset (HTTP/2) or the
/// connection closed (HTTP/1.1) when it is next polled.
pub struct OriginBody(Frames);

/// The viewer's end of a body that a task of its own sends frame by frame (an origin's,
/// relayed; a stored one's, read from its slices): what it hands the connection, and whether
/// the task finished (a channel that closes before then is an error, never a short body).
pub struct Frames {
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BodyError>>,
    complete: Arc<AtomicBool>,
    hint: SizeHint,
    ended: bool,
}

/// The task's end of [`Frames`]: where frames go, and the flag it sets once the body is whole.
pub struct FrameSender {
    pub tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, BodyError>>,
    pub done: Arc<AtomicBool>,
}

impl Frames {
    /// A body of `hint`'s size, sent one frame at a time.
    pub fn channel(hint: SizeHint) -> (FrameSender, Frames) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let complete = Arc::new(AtomicBool::new(false));
        let sender = FrameSender {
            tx,
            done: Arc::clone(&complete),
        };
        (
            sender,
            Frames {
                rx,
                complete,
                hint,
                ended: false,
            },
        )
    }
}

impl FrameSender {
    /// The body is whole: the channel's close is its end.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Release);
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                if self.complete.load(Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(BodyError::ViewerStalled)))
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

impl OriginBody {
    /// Starts relaying `incoming`; `read` bounds the wait for the origin's next frame, `send`
    /// the wait for the viewer to take one.
    pub fn new(incoming: Incoming, read: Duration, send: Duration) -> OriginBody {
        let (out, frames) = Frames::channel(incoming.size_hint());
        tokio::spawn(async move {
            let tx = &out.tx;
            let mut incoming = incoming;
            loop {
                // A viewer gone while the origin pauses releases the origin at once.
                let next = tokio::select! {
                    r = tokio::time::timeout(read, incoming.frame()) => r,
                    () = tx.closed() => return,
                };
                let item = match next {
                    Err(_) => Err(BodyError::Stalled(read)),
                    Ok(None) => return out.finish(),
                    Ok(Some(r)) => r.map_err(BodyError::Origin),
                };
                let last = item.is_err();
                match tokio::time::timeout(send, tx.send(item)).await {
                    Ok(Ok(())) if !last => {}
                    // The viewer is gone, has taken nothing for the send timeout, or was
                    // just told of an error: the origin's connection goes.
                    _ => return,
                }
            }
        });
        OriginBody(frames)
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Response body of the edge.
pub enum EdgeBody {
    /// A whole body in memory (cache hits, short error bodies); `None` once sent.
    Full(Option<Bytes>),
    /// Streamed from the origin.
    Stream(OriginBody),
    /// Streamed from the origin, the client connection's request counted as in progress until
    /// the stream ends (so a pause of the origin is bounded by the origin's read timeout, not
    /// by the client's header timeout).
    Held {
        body: OriginBody,
        /// Dropped with the body.
        _serving: Serving,
    },
    /// Read from a sliced object's slices (or the fill that is storing them).
    Slices(crate::slices::SliceBody),
    /// A manifest rewritten as it is sent (boxed: rarer, and larger than the rest).
    Rewritten(Box<dyn Rewritten>),
}

/// A body made from another as it is sent (a rewritten playlist, `manifests`); behind a box
/// so that this module need not know how.
pub(crate) trait Rewritten: Body<Data = Bytes, Error = BodyError> + Send + Unpin {
    /// Keeps the client connection's request counted as in progress until the body ends (as a
    /// streamed body does).
    fn hold(&mut self, serving: Serving);
}

impl EdgeBody {
    /// A body from static text.
    pub fn text(s: &'static str) -> EdgeBody {
        EdgeBody::Full(Some(Bytes::from_static(s.as_bytes())))
    }

    pub fn empty() -> EdgeBody {
        EdgeBody::Full(None)
    }

    /// Keeps `serving` until a streamed body ends; a body in memory drops it now.
    pub fn hold(self, serving: Serving) -> EdgeBody {
        match self {
            EdgeBody::Stream(body) => EdgeBody::Held {
                body,
                _serving: serving,
            },
            EdgeBody::Slices(mut s) => {
                s.hold(serving);
                EdgeBody::Slices(s)
            }
            EdgeBody::Rewritten(mut r) => {
                r.hold(serving);
                EdgeBody::Rewritten(r)
            }
            other => other,
        }
    }
}

impl Body for EdgeBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            EdgeBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            EdgeBody::Stream(s) | EdgeBody::Held { body: s, .. } => Pin::new(s).poll_frame(cx),
            EdgeBody::Slices(s) => Pin::new(s).poll_frame(cx),
            EdgeBody::Rewritten(r) => Pin::new(r.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EdgeBody::Full(b) => b.is_none(),
            EdgeBody::Stream(s) | EdgeBody::Held { body: s, .. } => s.is_end_stream(),
            EdgeBody::Slices(s) => s.is_end_stream(),
            EdgeBody::Rewritten(r) => r.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EdgeBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            EdgeBody::Stream(s) | EdgeBody::Held { body: s, .. } => s.size_hint(),
            EdgeBody::Slices(s) => s.size_hint(),
            EdgeBody::Rewritten(_) => SizeHint::default(),
        }
    }
}
