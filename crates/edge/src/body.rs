//! The response body: a buffered object from the cache, or a stream from the origin.
//! An enum rather than a boxed trait object, so a cache hit costs no allocation here.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::client_io::Serving;

/// Response body of the edge.
pub enum EdgeBody {
    /// A whole body in memory (cache hits, short error bodies); `None` once sent.
    Full(Option<Bytes>),
    /// Streamed from the origin.
    Stream(Incoming),
    /// Streamed from the origin, the client connection's request counted as in progress until
    /// the stream ends (so a pause of the origin is bounded by the origin's read timeout, not
    /// by the client's header timeout).
    Held(Incoming, Serving),
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
            other => other,
        }
    }
}

impl Body for EdgeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            EdgeBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            EdgeBody::Stream(s) | EdgeBody::Held(s, _) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EdgeBody::Full(b) => b.is_none(),
            EdgeBody::Stream(s) | EdgeBody::Held(s, _) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EdgeBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            EdgeBody::Stream(s) | EdgeBody::Held(s, _) => s.size_hint(),
        }
    }
}
