//! `gzipOn` and `brotli_compression`: answers of the listed types compressed at the edge for
//! viewers whose `Accept-Encoding` takes it (Brotli first, then gzip), with `Vary:
//! Accept-Encoding` on every answer of those types. The origin is asked for the identity
//! encoding and one copy is stored: a stored body held whole is compressed once, on its first
//! compressed answer, and the result kept with it (the stored object's encoded copies);
//! anything else (a body read from slices, a stream, a rewritten manifest, which differs per
//! viewer) is compressed as it is sent, at a fast level. Only 200 answers are compressed: a
//! range (206) refers to the identity bytes, and a body already encoded stays as it is. The
//! codecs are `flate2` (miniz_oxide) and `brotli`, both pure Rust.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BodyError, EdgeBody, Rewritten};
use crate::cache::{Body as Stored, Object};
use crate::client_io::Serving;

/// The smallest body compressed (nginx's `gzip_min_length` is 20; Gcore's Brotli is 128): below
/// it, the codec's framing outweighs what it saves.
pub const MIN_BYTES: usize = 128;

/// gzip level of a stored body (compressed once), and of a body compressed as it is sent.
const GZIP_STORED: u32 = 6;
const GZIP_STREAM: u32 = 1;
/// Brotli quality of a stored body, and of one compressed as it is sent.
const BROTLI_STORED: u32 = 5;
const BROTLI_STREAM: u32 = 1;
/// Brotli window (log2): 4 MiB, the library's default.
const BROTLI_WINDOW: u32 = 22;

/// An encoding the edge compresses in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `br` (RFC 7932).
    Brotli,
    /// `gzip` (RFC 1952).
    Gzip,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The slot of an object's encoded copies.
    pub fn index(self) -> usize {
        match self {
            Encoding::Brotli => 0,
            Encoding::Gzip => 1,
        }
    }
}

/// Whether `accept` (the request's `Accept-Encoding` lines) takes `coding`: listed, or `*`
/// listed, with a `q` above 0 (RFC 9110 12.5.3; a coding listed with `q=0` is refused even if
/// `*` is not).
fn accepts(accept: &HeaderMap, coding: &str) -> bool {
    let mut star = false;
    for v in accept.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                let p = p.trim();
                p.len() >= 2
                    && p[..2].eq_ignore_ascii_case("q=")
                    && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            });
            if name.eq_ignore_ascii_case(coding) || (coding == "gzip" && name == "x-gzip") {
                return !q_zero;
            }
            if name == "*" && !q_zero {
                star = true;
            }
        }
    }
    star
}

/// Compresses the answer `resp` to a request with headers `req` when the resource's
/// `compression` says so; `stored` is the stored object it was made from, if any (its body,
/// when held whole, is compressed once and kept). Returns the bytes of body to be sent, when
/// it knows them.
pub(crate) fn apply(
    compression: &tollgate_model::Compression,
    req: &HeaderMap,
    head: bool,
    stored: Option<&Object>,
    resp: &mut Response<EdgeBody>,
) -> Option<u64> {
    let h = resp.headers();
    let content_type = h.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (br, gz) = compression.for_type(content_type);
    if !br && !gz {
        return None;
    }
    // The answer depends on Accept-Encoding from here on, compressed or not.
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    let h = resp.headers();
    if resp.status() != StatusCode::OK || h.contains_key(header::CONTENT_ENCODING) {
        return None;
    }
    if h.contains_key(header::CONTENT_RANGE) {
        return None;
    }
    let len = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| resp.body().size_hint().exact());
    if len.is_some_and(|n| n < MIN_BYTES as u64) {
        return None;
    }
    let encoding = if br && accepts(req, "br") {
        Encoding::Brotli
    } else if gz && accepts(req, "gzip") {
        Encoding::Gzip
    } else {
        return None;
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.token()),
    );
    // The encoded body is another representation: a strong validator would claim the same
    // bytes (nginx's gzip weakens it too).
    if let Some(etag) = h.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        if !etag.starts_with("W/") {
            if let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}")) {
                h.insert(header::ETAG, weak);
            }
        }
    }
    h.remove(header::ACCEPT_RANGES);
    let whole = stored.and_then(|o| match &o.body {
        Stored::Whole(b) => Some((o, b)),
        Stored::Sliced(_) => None,
    });
    if let Some((obj, body)) = whole {
        let encoded = obj.encoded[encoding.index()]
            .get_or_init(|| whole_body(encoding, body))
            .clone();
        let n = encoded.len() as u64;
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        if !head {
            *resp.body_mut() = EdgeBody::Full(Some(encoded));
        }
        return Some(if head { 0 } else { n });
    }
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    if !head {
        let body = std::mem::replace(resp.body_mut(), EdgeBody::empty());
        *resp.body_mut() = EdgeBody::Rewritten(Box::new(Encoded::new(body, encoding)));
    }
    None
}

/// `body` compressed whole, at the stored level (once per stored object).
pub fn whole_body(encoding: Encoding, body: &[u8]) -> Bytes {
    let mut enc = Encoder::new(encoding, GZIP_STORED, BROTLI_STORED);
    enc.write(body);
    Bytes::from(enc.finish())
}

/// `body` compressed at the level of a body compressed as it is sent (a rewritten playlist),
/// in one piece: what a body compressed as it is sent amounts to, for benchmarks.
pub fn per_response(encoding: Encoding, body: &[u8]) -> Vec<u8> {
    let mut enc = Encoder::new(encoding, GZIP_STREAM, BROTLI_STREAM);
    enc.write(body);
    enc.finish()
}

/// A streaming encoder writing into a buffer taken as it fills.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(encoding: Encoding, gzip_level: u32, brotli_quality: u32) -> Encoder {
        match encoding {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(gzip_level),
            )),
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                brotli_quality,
                BROTLI_WINDOW,
            ))),
        }
    }

    /// Feeds `data`; writing into a `Vec` cannot fail.
    fn write(&mut self, data: &[u8]) {
        let _ = match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Brotli(e) => e.write_all(data),
        };
    }

    /// What the encoder has written so far, taken out.
    fn take(&mut self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => std::mem::take(e.get_mut()),
            Encoder::Brotli(e) => std::mem::take(e.get_mut()),
        }
    }

    /// The rest of the stream.
    fn finish(self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.finish().unwrap_or_default(),
            Encoder::Brotli(e) => e.into_inner(),
        }
    }
}

/// A body compressed as it is sent, at the fast level.
pub(crate) struct Encoded {
    inner: EdgeBody,
    encoder: Option<Encoder>,
}

impl Encoded {
    fn new(inner: EdgeBody, encoding: Encoding) -> Encoded {
        Encoded {
            inner,
            encoder: Some(Encoder::new(encoding, GZIP_STREAM, BROTLI_STREAM)),
        }
    }
}

impl Body for Encoded {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    encoder.write(&data);
                    let out = encoder.take();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(None) => {
                    let rest = this.encoder.take().map(Encoder::finish).unwrap_or_default();
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Rewritten for Encoded {
    fn hold(&mut self, serving: Serving) {
        let inner = std::mem::replace(&mut self.inner, EdgeBody::empty());
        self.inner = inner.hold(serving);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in accept {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_static(a));
        }
        h
    }

    #[test]
    fn accept_encoding_as_rfc_9110_reads_it() {
        assert!(accepts(&headers(&["gzip, deflate, br"]), "br"));
        assert!(accepts(&headers(&["gzip;q=0.5"]), "gzip"));
        assert!(!accepts(&headers(&["gzip;q=0"]), "gzip"));
        assert!(!accepts(&headers(&["gzip; Q=0.0, *"]), "gzip"));
        assert!(accepts(&headers(&["*"]), "br"));
        assert!(!accepts(&headers(&["*;q=0"]), "br"));
        assert!(accepts(&headers(&["identity", "x-gzip"]), "gzip"));
        assert!(!accepts(&headers(&[]), "gzip"));
        assert!(!accepts(&headers(&["gzip"]), "br"));
    }

    #[test]
    fn both_codecs_round_trip() {
        use std::io::Read;
        let body: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let gz = whole_body(Encoding::Gzip, &body);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let br = whole_body(Encoding::Brotli, &body);
        let mut out = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert!(br.len() < body.len() / 4 && gz.len() < body.len() / 4);
    }
}
