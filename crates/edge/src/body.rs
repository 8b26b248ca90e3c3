//! The response body: a buffered object from the cache, or a stream from the origin.
//! An enum rather than a boxed trait object, so a cache hit costs no allocation here.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Response body of the edge.
pub enum EdgeBody {
    /// A whole body in memory (cache hits, short error bodies); `None` once sent.
    Full(Option<Bytes>),
    /// Streamed from the origin.
    Stream(Incoming),
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
            EdgeBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EdgeBody::Full(b) => b.is_none(),
            EdgeBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EdgeBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            EdgeBody::Stream(s) => s.size_hint(),
        }
    }
}
