//! The request side of query string forwarding: deciding whether a response is a manifest to
//! rewrite, with what, and rewriting its body as it is sent. The cache keeps the origin's body;
//! the rewrite is per request, so per-viewer tokens never split the cache, and streamed, so a
//! viewer (however slow) holds a piece of the rewritten manifest, never a copy of it.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Frame;
use tollgate_model::{Forwarding, ValidResource};
use tollgate_token::verify::LinkParams;
use tollgate_token::{RemoteAddr, Target};

use crate::body::{BodyError, EdgeBody};
use crate::client_io::Serving;
use crate::routes::Site;
use tollgate_manifest::{self as manifest, Addition, Kind, Rewrite, Rewriter};

/// Largest manifest rewritten when it is too large for the cache (and so streamed from the
/// origin for each request); the response of a larger one is cut off there.
pub const MANIFEST_CAP: u64 = 64 << 20;

/// A manifest response to rewrite, decided from the request.
pub struct Plan {
    kind: Kind,
    /// `Copy`: the parameters to add. Sign mode: the request's `expires`.
    params: Vec<u8>,
    sign: Option<Signing>,
    /// Encoded directory of the playlist, for resolving relative links.
    base_dir: Vec<u8>,
    /// Decoded directory of the playlist: the sign mode's scope.
    scope: Vec<u8>,
}

struct Signing {
    ip: Option<RemoteAddr>,
}

/// The names of the parameters a resource forwards, for the "already carries one" check.
const TOKEN_PARAMS: [&[u8]; 2] = [b"md5", b"expires"];

/// Whether (and how) the response to this request is rewritten.
pub fn plan(res: &ValidResource, target: &Target<'_>, client: IpAddr) -> Option<Plan> {
    let f: &Forwarding = res.forwarding.as_ref()?;
    let uri = target.uri();
    let ext = manifest::extension(uri)?;
    if !f.from_types.contains(&ext) {
        return None;
    }
    let kind = Kind::of_extension(&ext)?;
    let scope = tollgate_token::target::directory(uri).to_vec();
    let mut base_dir = Vec::with_capacity(scope.len());
    tollgate_token::sign::encode_path(&mut base_dir, &scope);
    let (params, sign) = match (&res.secure_key, f.sign_each_directory) {
        (Some(sk), true) => {
            // Validation gives a resource with the token on a key; without one, no rewrite.
            sk.signing_key()?;
            let expires = LinkParams::from_args(target.args()).expires?.to_vec();
            let ip = sk.binding(client);
            (expires, Some(Signing { ip }))
        }
        _ => {
            let mut params = Vec::new();
            for p in tollgate_token::query::params(target.args()) {
                if f.keys.forwards(p.name) {
                    if !params.is_empty() {
                        params.push(b'&');
                    }
                    params.extend_from_slice(p.text);
                }
            }
            if params.is_empty() {
                return None;
            }
            (params, None)
        }
    };
    Some(Plan {
        kind,
        params,
        sign,
        base_dir,
        scope,
    })
}

/// Request headers without the ones a rewritten body cannot honour (ranges and validators
/// refer to the origin's bytes, not to what this viewer gets).
pub fn request_headers(req: &HeaderMap) -> std::borrow::Cow<'_, HeaderMap> {
    const DROPPED: [header::HeaderName; 4] = [
        header::RANGE,
        header::IF_RANGE,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
    ];
    if !DROPPED.iter().any(|n| req.contains_key(n)) {
        return std::borrow::Cow::Borrowed(req);
    }
    let mut h = req.clone();
    for name in DROPPED {
        h.remove(name);
    }
    std::borrow::Cow::Owned(h)
}

/// Makes a 200 response's body the rewritten manifest, streamed: the source (the cached body,
/// or the origin's stream for one too large for the cache) is rewritten a piece at a time as
/// the viewer takes it, so a viewer holds at most one rewritten piece (tens of kilobytes), never
/// a rewritten copy of the manifest. Returns the bytes sent when known (for the log: the
/// rewritten length of a small manifest, the origin's length of a streamed cached one, 0 for
/// one streamed from the origin), or `None` when the response is left as it is.
pub fn apply(
    plan: Plan,
    site: &Arc<Site>,
    resp: &mut Response<EdgeBody>,
    head: bool,
) -> Option<u64> {
    if resp.status() != StatusCode::OK {
        return None;
    }
    let h = resp.headers_mut();
    // The body is this viewer's: no validators, no ranges, no shared caching downstream; its
    // length is known only once it is rewritten.
    for name in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::ETAG,
        header::LAST_MODIFIED,
        header::ACCEPT_RANGES,
    ] {
        h.remove(name);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if head {
        return Some(0);
    }
    let (source, len) = match std::mem::replace(resp.body_mut(), EdgeBody::empty()) {
        EdgeBody::Full(Some(b)) => {
            let len = b.len() as u64;
            (Source::Cached(b), Some(len))
        }
        // Streamed from the origin, or read from a stored body's slices.
        b @ (EdgeBody::Stream(_) | EdgeBody::Held { .. } | EdgeBody::Slices(_)) => {
            (Source::Origin(b, Bytes::new(), 0), None)
        }
        other => {
            *resp.body_mut() = other;
            return None;
        }
    };
    let mut body = RewriteBody {
        rewriter: Rewriter::new(plan.kind),
        site: Arc::clone(site),
        plan,
        source,
        done: false,
        serving: None,
    };
    // A small cached manifest (a live playlist, a master playlist: nearly all of them) is
    // rewritten at once and sent with its length, as one buffer.
    if let Source::Cached(b) = &body.source {
        if b.len() <= WHOLE_UP_TO {
            let input = b.clone();
            let mut out = Vec::with_capacity(input.len() * 2 + 64);
            body.step(Some(&input), &mut out);
            body.step(None, &mut out);
            let sent = out.len() as u64;
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
            *resp.body_mut() = EdgeBody::Full(Some(Bytes::from(out)));
            return Some(sent);
        }
    }
    *resp.body_mut() = EdgeBody::Rewritten(Box::new(body));
    Some(len.unwrap_or(0))
}

/// Cached manifests up to this size are rewritten whole (the result is a few times larger, a
/// few hundred kilobytes at most); larger ones are streamed.
const WHOLE_UP_TO: usize = 64 << 10;

/// Input rewritten per step: small, so that a step's output (short segment names grow several
/// times with a token) stays tens of kilobytes.
const STEP_IN: usize = 2 << 10;
/// A piece is sent once this much output is ready.
const PIECE_OUT: usize = 16 << 10;

enum Source {
    /// The cached body, what is left of it.
    Cached(Bytes),
    /// A streamed body (the origin's, or a stored one's slices): the stream, what is left of
    /// its current frame, and the bytes read (at most [`MANIFEST_CAP`]).
    Origin(EdgeBody, Bytes, u64),
}

/// A manifest rewritten as it is sent (see [`apply`]).
pub struct RewriteBody {
    rewriter: Rewriter,
    site: Arc<Site>,
    plan: Plan,
    source: Source,
    done: bool,
    serving: Option<Serving>,
}

impl crate::body::Rewritten for RewriteBody {
    fn hold(&mut self, serving: Serving) {
        self.serving = Some(serving);
    }
}

impl RewriteBody {
    /// Rewrites `input` (or, with `None`, the end) into `out`.
    fn step(&mut self, input: Option<&[u8]>, out: &mut Vec<u8>) {
        let res = &self.site.res;
        let own_host = |authority: &[u8]| res.is_own_host(authority);
        let to_types = res
            .forwarding
            .as_ref()
            .map(|f| f.to_types.as_slice())
            .unwrap_or_default();
        let signing_key = res.secure_key.as_ref().and_then(|sk| sk.signing_key());
        let addition = match (&self.plan.sign, signing_key) {
            (Some(s), Some(key)) => Addition::SignEachDirectory {
                key,
                expires: &self.plan.params,
                ip: s.ip,
                scope: &self.plan.scope,
            },
            _ => Addition::Copy(&self.plan.params),
        };
        let rw = Rewrite {
            to_types,
            param_names: &TOKEN_PARAMS,
            addition,
            base_dir: &self.plan.base_dir,
            own_host: &own_host,
        };
        match input {
            Some(i) => self.rewriter.push(i, &rw, out),
            None => self.rewriter.finish(&rw, out),
        }
    }
}

impl http_body::Body for RewriteBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let mut out = Vec::new();
        let piece = |out: Vec<u8>| Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
        while !this.done {
            let input = match &mut this.source {
                Source::Cached(rest) if rest.is_empty() => None,
                Source::Cached(rest) => Some(rest.split_to(rest.len().min(STEP_IN))),
                Source::Origin(_, left, _) if !left.is_empty() => {
                    Some(left.split_to(left.len().min(STEP_IN)))
                }
                Source::Origin(origin, left, read) => match Pin::new(origin).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            *read = read.saturating_add(data.len() as u64);
                            if *read > MANIFEST_CAP {
                                return Poll::Ready(Some(Err(BodyError::TooLarge(MANIFEST_CAP))));
                            }
                            *left = data;
                        }
                        continue;
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => None,
                    Poll::Pending if out.is_empty() => return Poll::Pending,
                    Poll::Pending => return piece(out),
                },
            };
            match input {
                Some(i) => this.step(Some(&i), &mut out),
                None => {
                    this.step(None, &mut out);
                    this.done = true;
                    this.serving = None;
                }
            }
            if out.len() >= PIECE_OUT {
                return piece(out);
            }
        }
        if out.is_empty() {
            Poll::Ready(None)
        } else {
            piece(out)
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
