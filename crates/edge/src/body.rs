//! The response body: a buffered object from the cache, or a stream from the origin.
//! An enum rather than a boxed trait object, so a cache hit costs no allocation here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

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
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Origin(e) => write!(f, "origin body: {e}"),
            BodyError::Stalled(d) => write!(f, "the origin sent nothing for {d:?}"),
            BodyError::TooLarge(n) => write!(f, "a manifest over {n} bytes"),
        }
    }
}

impl std::error::Error for BodyError {}

/// A body streamed from the origin, with the origin's read timeout between two chunks (as
/// nginx's `proxy_read_timeout`): an origin that stalls mid-body ends the response instead of
/// holding the viewer and the connection.
pub struct OriginBody {
    incoming: Incoming,
    timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl OriginBody {
    /// `incoming`, failing when the origin sends nothing for `timeout`.
    pub fn new(incoming: Incoming, timeout: Duration) -> OriginBody {
        OriginBody {
            incoming,
            timeout,
            idle: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// The origin's body itself, for a caller that reads it whole with its own timeouts.
    pub fn into_incoming(self) -> Incoming {
        self.incoming
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(frame) => {
                // The timeout counts from the last chunk to the next one.
                let next = tokio::time::Instant::now() + this.timeout;
                this.idle.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(BodyError::Origin)))
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Stalled(this.timeout)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
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
    Held(OriginBody, Serving),
    /// A manifest rewritten as it is sent (boxed: rarer, and larger than the rest).
    Rewritten(Box<crate::forwarding::RewriteBody>),
}

impl EdgeBody {
    /// A body from static text.
    pub fn text(s: &'static str) -> EdgeBody {
        EdgeBody::Full(Some(Bytes::from_static(s.as_bytes())))
    }

    /// An empty body.
    pub fn empty() -> EdgeBody {
        EdgeBody::Full(None)
    }

    /// Keeps `serving` until a streamed body ends; a body in memory drops it now.
    pub fn hold(self, serving: Serving) -> EdgeBody {
        match self {
            EdgeBody::Stream(s) => EdgeBody::Held(s, serving),
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
            EdgeBody::Stream(s) | EdgeBody::Held(s, _) => Pin::new(s).poll_frame(cx),
            EdgeBody::Rewritten(r) => Pin::new(r.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EdgeBody::Full(b) => b.is_none(),
            EdgeBody::Stream(s) | EdgeBody::Held(s, _) => s.is_end_stream(),
            EdgeBody::Rewritten(r) => r.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EdgeBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            EdgeBody::Stream(s) | EdgeBody::Held(s, _) => s.size_hint(),
            EdgeBody::Rewritten(_) => SizeHint::default(),
        }
    }
}
