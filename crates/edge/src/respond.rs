//! The respond phase: every answer the request path decides on becomes a response here, in
//! one place. From a cached object: `Range` (one range, 206 / 416), conditional requests (304)
//! and `HEAD`, with `Age`; from the origin's stream: its headers without the hop-by-hop ones;
//! Gcore's `Cache: HIT|MISS|STALE` header on both. Refusals and failures get a short text.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{EdgeBody, OriginBody};
use crate::cache::{Body, Object};
use crate::fetch::strip_hop_by_hop;
use crate::metrics::Outcome;
use crate::origin::OriginError;
use crate::slices::{SliceBody, Tiers};

/// Gcore's cache status header.
static CACHE: HeaderName = HeaderName::from_static("cache");

/// A request refused before the cache is looked at.
pub(crate) enum Refusal {
    /// The edge's own refusal, before any resource's rules (unknown host, two Host headers),
    /// counted for no resource.
    Own {
        status: StatusCode,
        text: &'static str,
        reason: &'static str,
    },
    /// A method the resource does not answer.
    /// A method the resource does not answer; the ones it does.
    MethodNotAllowed(tollgate_model::Methods),
    /// Refused by the token gate (400 for a target nginx refuses, 403, 410).
    Gate { status: u16, reason: &'static str },
}

/// What the request path decided to answer.
pub(crate) enum Answer {
    Refused(Refusal),
    /// A cached or just-fetched object, as of `now`, found in `tier`.
    Object {
        obj: Arc<Object>,
        served: Served,
        reason: &'static str,
        now: Instant,
        tier: Tier,
    },
    /// The origin's response, streamed through unstored.
    Streamed(Response<Incoming>),
    Failed(OriginError),
    /// A 301 to this `Location` (`redirect_http_to_https`).
    Redirect(HeaderValue),
    /// The edge's answer to a CORS preflight (`cors`): the origin allowed, if it is, the
    /// resource's methods, and the request headers asked for.
    Preflight {
        allow_origin: Option<HeaderValue>,
        methods: tollgate_model::Methods,
        headers: Option<HeaderValue>,
    },
}

/// How an object answer came about; its `Cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// Fresh in the cache.
    Hit,
    /// Fetched from the origin and stored.
    Miss,
    /// Past its freshness, because the origin failed.
    Stale,
    /// Past its freshness, within its `stale-while-revalidate`: served while one request
    /// revalidates it in the background.
    Updating,
    /// Past its freshness, and confirmed by the origin (a 304): the stored body.
    Revalidated,
    /// Fetched for this viewer alone, or streamed: not stored.
    Pass,
}

impl Served {
    fn outcome(self) -> Outcome {
        match self {
            Served::Hit | Served::Revalidated => Outcome::Hit,
            Served::Miss => Outcome::Miss,
            Served::Stale | Served::Updating => Outcome::Stale,
            Served::Pass => Outcome::Pass,
        }
    }

    /// The `Cache` header's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Served::Hit => "HIT",
            Served::Miss | Served::Pass => "MISS",
            Served::Stale => "STALE",
            Served::Updating => "UPDATING",
            Served::Revalidated => "REVALIDATED",
        }
    }

    fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// Where an object answer's object was found, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    Memory,
    Disk,
    /// Just fetched.
    Origin,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Disk => "disk",
            Tier::Origin => "origin",
        }
    }
}

/// A response, and what the log and the metrics need to know about it.
pub(crate) struct Rendered {
    pub resp: Response<EdgeBody>,
    /// `None` for the edge's own answers, which no resource counts.
    pub outcome: Option<Outcome>,
    /// How an object or stream was served; `None` for refusals and failures.
    pub served: Option<Served>,
    /// Where an object answer's object was found.
    pub tier: Option<Tier>,
    pub reason: &'static str,
    /// Body bytes sent (0 for `HEAD`; a streamed body's `Content-Length`, when it has one).
    pub bytes: u64,
}

/// How long a streamed body may wait for the origin, and for the viewer.
#[derive(Clone, Copy)]
pub(crate) struct StreamTimeouts {
    pub read: Duration,
    pub send: Duration,
}

/// The response for `answer` to a request with headers `req`.
pub(crate) fn render(
    answer: Answer,
    req: &HeaderMap,
    head: bool,
    timeouts: StreamTimeouts,
    tiers: &Tiers,
) -> Rendered {
    match answer {
        Answer::Refused(Refusal::Own {
            status,
            text,
            reason,
        }) => short(status, text, None, reason),
        Answer::Refused(Refusal::MethodNotAllowed(methods)) => {
            let mut r = short(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed\n",
                None,
                "method_not_allowed",
            );
            let allow = methods.names().collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::from_str(&allow) {
                r.resp.headers_mut().insert(header::ALLOW, v);
            }
            r
        }
        Answer::Refused(Refusal::Gate { status, reason }) => {
            let (code, text) = match status {
                400 => (StatusCode::BAD_REQUEST, "400 Bad Request\n"),
                410 => (StatusCode::GONE, "410 Gone\n"),
                503 => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503 Service Unavailable: country_acl needs a GeoIP database on this edge\n",
                ),
                _ => (StatusCode::FORBIDDEN, "403 Forbidden\n"),
            };
            short(code, text, Some(Outcome::Refused(reason)), reason)
        }
        Answer::Failed(e) => {
            let (code, text) = match e {
                OriginError::Timeout => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "504 Gateway Timeout: the origin did not answer in time\n",
                ),
                OriginError::BadRange => (
                    StatusCode::BAD_GATEWAY,
                    "502 Bad Gateway: the origin answered a slice with another range\n",
                ),
                _ => (
                    StatusCode::BAD_GATEWAY,
                    "502 Bad Gateway: the origin could not be reached\n",
                ),
            };
            short(
                code,
                text,
                Some(Outcome::OriginError(e.reason())),
                e.reason(),
            )
        }
        Answer::Object {
            obj,
            served,
            reason,
            now,
            tier,
        } => {
            let (resp, bytes) = from_object(&obj, req, head, served, now, tiers, timeouts.send);
            Rendered {
                resp,
                outcome: Some(served.outcome()),
                served: Some(served),
                tier: Some(tier),
                reason,
                bytes,
            }
        }
        Answer::Streamed(resp) => streamed(resp, head, timeouts),
        Answer::Redirect(location) => {
            let mut r = short(
                StatusCode::MOVED_PERMANENTLY,
                "301 Moved Permanently\n",
                None,
                "redirect_https",
            );
            r.resp.headers_mut().insert(header::LOCATION, location);
            r
        }
        Answer::Preflight {
            allow_origin,
            methods,
            headers,
        } => {
            let mut resp = Response::new(EdgeBody::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            let h = resp.headers_mut();
            if let Some(o) = allow_origin {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            }
            let allow = methods.names().collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::from_str(&allow) {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
            }
            if let Some(v) = headers {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            h.append(
                header::VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            );
            Rendered {
                resp,
                outcome: None,
                served: None,
                tier: None,
                reason: "cors_preflight",
                bytes: 0,
            }
        }
    }
}

fn short(
    status: StatusCode,
    text: &'static str,
    outcome: Option<Outcome>,
    reason: &'static str,
) -> Rendered {
    let mut resp = Response::new(EdgeBody::text(text));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Rendered {
        resp,
        outcome,
        served: None,
        tier: None,
        reason,
        bytes: text.len() as u64,
    }
}

fn streamed(resp: Response<Incoming>, head: bool, timeouts: StreamTimeouts) -> Rendered {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(CACHE.clone(), Served::Pass.header());
    let bytes = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let body = if head {
        EdgeBody::empty()
    } else {
        EdgeBody::Stream(OriginBody::new(body, timeouts.read, timeouts.send))
    };
    Rendered {
        resp: Response::from_parts(parts, body),
        outcome: Some(Served::Pass.outcome()),
        served: Some(Served::Pass),
        tier: None,
        reason: "",
        bytes: if head { 0 } else { bytes },
    }
}

/// The statuses nginx's `expires` and `add_header` (without `always`) apply to.
fn decorated(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// The resource's `static_response_headers` on a response to a viewer, appended to those the
/// response has (nginx's `add_header`): with `always` on any status, else on [`decorated`] ones.
pub(crate) fn add_headers(list: &[tollgate_model::ResponseHeader], resp: &mut Response<EdgeBody>) {
    let decorate = decorated(resp.status());
    for h in list.iter().filter(|h| h.always || decorate) {
        // Validated with the resource: names are tokens, values visible ASCII.
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            continue;
        };
        for v in &h.value {
            if let Ok(v) = HeaderValue::from_str(v) {
                resp.headers_mut().append(name.clone(), v);
            }
        }
    }
}

/// `response_headers_hiding_policy`: the headers it hides dropped from the answer (before the
/// edge adds its own: `cors`, `browser_cache_settings`, `static_response_headers`).
pub(crate) fn hide_headers(hiding: &tollgate_model::Hiding, resp: &mut Response<EdgeBody>) {
    let h = resp.headers_mut();
    let hidden: Vec<HeaderName> = h
        .keys()
        .filter(|n| hiding.hides(n.as_str()))
        .cloned()
        .collect();
    for n in hidden {
        h.remove(n);
    }
}

/// `cors`: `Access-Control-Allow-Origin` for the request's `origin` when it gets one (on the
/// statuses of [`decorated`], or every one with `always`), and `Vary: Origin` whenever the
/// value depends on it, so that a browser's cache keeps one answer per origin.
pub(crate) fn cors(
    cors: &tollgate_model::ValidCors,
    origin: Option<&HeaderValue>,
    resp: &mut Response<EdgeBody>,
) {
    if !cors.always && !decorated(resp.status()) {
        return;
    }
    let h = resp.headers_mut();
    if cors.varies() {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    let allow = cors
        .allow_origin(origin.map(|o| o.as_bytes()))
        .and_then(|v| HeaderValue::from_bytes(v).ok());
    if let Some(v) = allow {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

/// The resource's `browser_cache_settings` on a response to a viewer, as nginx's `expires`
/// sets it (and for the statuses it does: 200, 201, 204, 206, 301, 302, 303, 304, 307, 308):
/// `Cache-Control: max-age=N` and `Expires` N seconds from `now`, or for 0 `no-cache` without
/// `Expires`, in place of the origin's. The edge's own cache time is not changed.
pub(crate) fn browser_cache(secs: Option<u64>, resp: &mut Response<EdgeBody>, now: SystemTime) {
    let Some(secs) = secs else {
        return;
    };
    if !decorated(resp.status()) {
        return;
    }
    let h = resp.headers_mut();
    h.remove(header::EXPIRES);
    if secs == 0 {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&format!("max-age={secs}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    let at = now.checked_add(Duration::from_secs(secs)).unwrap_or(now);
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
        h.insert(header::EXPIRES, v);
    }
}

/// `Age` values up to an hour, made once: a hit then clones a static value (no allocation,
/// no shared reference count) instead of formatting a number.
fn age_value(age: u64) -> HeaderValue {
    static AGES: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
        (0..=3600u64)
            .map(|n| HeaderValue::from_static(Box::leak(n.to_string().into_boxed_str())))
            .collect()
    });
    match AGES.get(age as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(age),
    }
}

/// The first byte a request's single `Range` asks of a body of `len` bytes, if it asks one.
pub(crate) fn range_start(req: &HeaderMap, len: u64) -> Option<u64> {
    match byte_range(req.get(header::RANGE)?, len)? {
        Ok((start, _)) => Some(start),
        Err(()) => None,
    }
}

/// A single byte range as asked, before the length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// `bytes=start-` or `bytes=start-end`.
    From(u64, Option<u64>),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// A `Range` header of one byte range; `None` for anything else (several ranges, another
/// unit, a malformed one), which is answered with the whole object as RFC 9110 allows.
pub(crate) fn range_spec(value: &HeaderValue) -> Option<RangeSpec> {
    let spec = value.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return Some(RangeSpec::Suffix(b.parse().ok()?));
    }
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    Some(RangeSpec::From(start, end))
}

/// A parsed single byte range, resolved against a length.
fn byte_range(value: &HeaderValue, len: u64) -> Option<Result<(u64, u64), ()>> {
    let r = match range_spec(value)? {
        RangeSpec::Suffix(n) => {
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        RangeSpec::From(start, end) => {
            if start >= len {
                return Some(Err(()));
            }
            (start, end.unwrap_or(u64::MAX).min(len - 1))
        }
    };
    Some(Ok(r))
}

fn etag_matches(list: &str, etag: &HeaderValue) -> bool {
    let tag = etag.to_str().unwrap_or("");
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.trim() == "*" || list.split(',').any(|t| strip(t) == strip(tag))
}

fn not_modified(obj: &Object, req: &HeaderMap) -> bool {
    if obj.status != StatusCode::OK {
        return false;
    }
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return obj.etag.as_ref().is_some_and(|e| etag_matches(inm, e));
    }
    let ims = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::freshness::http_date(v, SystemTime::now()));
    matches!((ims, obj.last_modified), (Some(ims), Some(lm)) if lm <= ims)
}

fn if_range_allows(obj: &Object, req: &HeaderMap) -> bool {
    let Some(v) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if let Some(date) = crate::freshness::http_date(v, SystemTime::now()) {
        return obj.last_modified.is_some_and(|lm: SystemTime| lm <= date);
    }
    // A strong comparison: weak tags never satisfy If-Range.
    obj.etag
        .as_ref()
        .and_then(|e| e.to_str().ok())
        .is_some_and(|e| !e.starts_with("W/") && e == v.trim())
}

/// The bytes of an answer: all of a body, or one range of it.
#[derive(Debug, Clone, Copy)]
enum Part {
    All,
    Range(u64, u64),
}

/// The response to `req` from `obj`, and the body bytes it carries.
fn from_object(
    obj: &Arc<Object>,
    req: &HeaderMap,
    head: bool,
    served: Served,
    now: Instant,
    tiers: &Tiers,
    send: Duration,
) -> (Response<EdgeBody>, u64) {
    let mut headers = obj.headers.clone();
    headers.insert(header::AGE, age_value(obj.age(now)));
    headers.insert(CACHE.clone(), served.header());
    // A body still arriving without a length is sent whole: a range needs the length.
    let len = obj.len();

    let (status, part) = if not_modified(obj, req) {
        (StatusCode::NOT_MODIFIED, None)
    } else if let (StatusCode::OK, Some(len)) = (obj.status, len) {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        match req
            .get(header::RANGE)
            .filter(|_| if_range_allows(obj, req))
            .and_then(|r| byte_range(r, len))
        {
            Some(Ok((start, end))) => {
                let cr = format!("bytes {start}-{end}/{len}");
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&cr).unwrap_or(HeaderValue::from_static("bytes */0")),
                );
                (StatusCode::PARTIAL_CONTENT, Some(Part::Range(start, end)))
            }
            Some(Err(())) => {
                let cr = format!("bytes */{len}");
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&cr).unwrap_or(HeaderValue::from_static("bytes */0")),
                );
                (StatusCode::RANGE_NOT_SATISFIABLE, None)
            }
            None => (StatusCode::OK, Some(Part::All)),
        }
    } else {
        (obj.status, Some(Part::All))
    };

    let sent = match part {
        None => Some(0),
        Some(Part::All) => len,
        Some(Part::Range(a, b)) => Some(b - a + 1),
    };
    // A body in hand has an exact size, from which hyper writes Content-Length itself; only a
    // HEAD answer (sent without its body) needs it set here.
    if head && status != StatusCode::NOT_MODIFIED {
        if let Some(n) = sent {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    let body = match part {
        _ if head || sent == Some(0) => EdgeBody::empty(),
        None => EdgeBody::empty(),
        Some(part) => body_of(obj, part, tiers, send),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    (resp, if head { 0 } else { sent.unwrap_or(0) })
}

/// The body for `part` of `obj`: in memory when it is (a small object, or bytes within one
/// slice the memory tier holds), else read from the slices as they are found.
fn body_of(obj: &Arc<Object>, part: Part, tiers: &Tiers, send: Duration) -> EdgeBody {
    match (&obj.body, part) {
        (Body::Whole(b), Part::All) => EdgeBody::Full(Some(b.clone())),
        (Body::Whole(b), Part::Range(start, end)) => {
            EdgeBody::Full(Some(b.slice(start as usize..=end as usize)))
        }
        (Body::Sliced(s), part) => {
            let (start, end) = match part {
                Part::All => (0, s.len().map(|n| n.saturating_sub(1))),
                Part::Range(a, b) => (a, Some(b)),
            };
            if let Some(b) = end
                .filter(|_| s.is_complete())
                .and_then(|end| s.in_memory(tiers, start, end))
            {
                return EdgeBody::Full(Some(b));
            }
            EdgeBody::Slices(SliceBody::new(
                Arc::clone(obj),
                tiers.clone(),
                start,
                end,
                send,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range(&v("bytes=0-9"), 100), Some(Ok((0, 9))));
        assert_eq!(byte_range(&v("bytes=90-"), 100), Some(Ok((90, 99))));
        assert_eq!(byte_range(&v("bytes=90-200"), 100), Some(Ok((90, 99))));
        assert_eq!(byte_range(&v("bytes=-10"), 100), Some(Ok((90, 99))));
        assert_eq!(byte_range(&v("bytes=-200"), 100), Some(Ok((0, 99))));
        assert_eq!(byte_range(&v("bytes=100-"), 100), Some(Err(())));
        assert_eq!(byte_range(&v("bytes=-0"), 100), Some(Err(())));
        assert_eq!(byte_range(&v("bytes=5-1"), 100), None);
        assert_eq!(byte_range(&v("bytes=0-1,3-4"), 100), None);
        assert_eq!(byte_range(&v("items=0-1"), 100), None);
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\"", &v("\"a\"")));
        assert!(etag_matches("W/\"a\", \"b\"", &v("\"a\"")));
        assert!(etag_matches("*", &v("\"x\"")));
        assert!(!etag_matches("\"b\"", &v("\"a\"")));
    }
}
