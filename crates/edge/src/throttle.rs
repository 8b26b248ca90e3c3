//! `limit_bandwidth`: an answer's body sent at most `rate` bytes a second after its first
//! `after` bytes, as nginx's `limit_rate` with `limit_rate_after` (per request: each answer on
//! a kept-alive connection starts its own budget). The body is cut into pieces of a tenth of
//! a second's worth, each sent once the budget since the answer started covers it.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::{BodyError, EdgeBody, Rewritten};
use crate::client_io::Serving;

/// A body sent at a limited rate.
pub(crate) struct Throttled {
    inner: EdgeBody,
    rate: u64,
    after: u64,
    started: Instant,
    sent: u64,
    /// What is left of the frame being sent.
    pending: Option<Bytes>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Throttled {
    /// `inner` at `rate` bytes a second (above 0) after `after` bytes.
    pub(crate) fn new(inner: EdgeBody, rate: u64, after: u64) -> Throttled {
        Throttled {
            inner,
            rate: rate.max(1),
            after,
            started: Instant::now(),
            sent: 0,
            pending: None,
            sleep: None,
        }
    }

    /// The most bytes sent at once: a tenth of a second's, at least 1 KiB.
    fn piece(&self) -> usize {
        usize::try_from(self.rate / 10)
            .unwrap_or(usize::MAX)
            .max(1024)
    }
}

impl Body for Throttled {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = &mut this.sleep {
                if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            let mut chunk = match this.pending.take() {
                Some(c) => c,
                None => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                    other => return other,
                },
            };
            let elapsed = this.started.elapsed().as_secs_f64();
            let budget = this.after as f64 + this.rate as f64 * elapsed;
            let allowed = budget - this.sent as f64;
            let piece = this.piece().min(chunk.len());
            if allowed < piece as f64 {
                // Wait until the budget covers the next piece.
                let due = (this.sent as f64 + piece as f64 - this.after as f64) / this.rate as f64;
                let wait = Duration::from_secs_f64((due - elapsed).clamp(0.001, 3600.0));
                this.sleep = Some(Box::pin(tokio::time::sleep(wait)));
                this.pending = Some(chunk);
                continue;
            }
            let n = (allowed as usize)
                .min(chunk.len())
                .min(this.piece().max(piece));
            let out = chunk.split_to(n);
            if !chunk.is_empty() {
                this.pending = Some(chunk);
            }
            this.sent = this.sent.saturating_add(n as u64);
            return Poll::Ready(Some(Ok(Frame::data(out))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Rewritten for Throttled {
    fn hold(&mut self, serving: Serving) {
        let inner = std::mem::replace(&mut self.inner, EdgeBody::empty());
        self.inner = inner.hold(serving);
    }
}

/// The rate and buffer a request asks for with `limit_bandwidth` dynamic: `speed` and
/// `buffer` of its query, as nginx sizes (`50k`); none without a valid `speed` above 0.
pub(crate) fn from_query(args: &[u8]) -> Option<(u64, u64)> {
    let mut speed = None;
    let mut buffer = 0;
    for p in tollgate_token::query::params(args) {
        let value = p.text.get(p.name.len() + 1..).unwrap_or_default();
        if p.name == b"speed" {
            speed = tollgate_model::parse_size(value);
        } else if p.name == b"buffer" {
            buffer = tollgate_model::parse_size(value).unwrap_or(0);
        }
    }
    speed.filter(|s| *s > 0).map(|s| (s, buffer))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dynamic_figures_from_the_query() {
        assert_eq!(
            super::from_query(b"speed=50k&buffer=500k"),
            Some((51_200, 512_000))
        );
        assert_eq!(super::from_query(b"x=1&speed=100"), Some((100, 0)));
        assert_eq!(super::from_query(b"speed=0"), None);
        assert_eq!(super::from_query(b"speed=fast"), None);
        assert_eq!(super::from_query(b"buffer=1m"), None);
    }
}
