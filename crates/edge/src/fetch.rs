//! The origin side of a miss: the request to the resource's origin, and the stored object made
//! from its response (end-to-end headers, validators, fresh and stale instants), or the
//! response itself when it is streamed through unstored.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use tollgate_model::StaleOn;

use crate::cache::{Body, Object};
use crate::freshness::{after, freshness};
use crate::key::CacheKey;
use crate::origin::{OriginClient, OriginError, OriginRequest};
use crate::routes::Site;
use crate::slices::{
    fill_body, run_fill, slice_len, Fill, FillFailed, Ranged, SliceSource, Sliced, Store,
    SLICE_BYTES, WHOLE_MAX,
};
use crate::Edge;

/// Where a request goes at its resource's origin.
#[derive(Clone, Copy)]
pub(crate) struct Upstream<'a> {
    pub site: &'a Arc<Site>,
    pub https: bool,
    /// Encoded path and forwarded query ([`crate::key::Keyed::origin_target`]).
    pub target: &'a [u8],
    /// The viewer whose request this fetch is for: its headers are forwarded. `None` for
    /// the edge's own fetches (a background revalidation, a prefetch, a later slice).
    pub viewer: Option<crate::origin::Viewer<'a>>,
}

/// What a fetch for the cache got.
pub(crate) enum Fetched {
    /// A response the cache may keep, fresh for a while; a large body comes with its fill,
    /// to run once the object is in the cache ([`spawn_fill`]).
    Storable {
        obj: Arc<Object>,
        fill: Option<PendingFill>,
        /// Where it is stored: the key fetched, or for a response with `Vary` its variant's.
        key: CacheKey,
    },
    /// A response for this viewer alone (a cookie, `private`, `no-store`, no freshness),
    /// streamed through as it comes.
    Pass(Response<Incoming>),
    /// The stored copy, still valid (the origin's 304), with the 304's headers and a new
    /// freshness; its body is the stored one's.
    Refreshed(Arc<Object>),
    /// Larger than the largest object stored: to be streamed instead.
    TooLarge,
    /// A slice (the `slice` option) of a response that may not be stored: the viewer's own
    /// request is to be streamed instead.
    Stream,
    Failed(OriginError),
}

/// A large body whose fill has not started: the origin's body and where it goes.
pub(crate) struct PendingFill {
    fill: Arc<Fill>,
    incoming: Incoming,
    /// For a sparse body, the slice the origin sent (by Range).
    slice: Option<u64>,
}

impl Fetched {
    /// Whether a stale copy should be served instead. With the resource's `stale` option, when
    /// the failure is one it lists (`error`, `timeout`, `invalid_header`, `http_403` ...
    /// `http_504`); without it, when the origin failed or answered 500/502/503/504 (the
    /// statuses RFC 5861's stale-if-error names).
    pub fn calls_for_stale(&self, on: Option<StaleOn>) -> bool {
        let bad = |s: StatusCode| match on {
            Some(on) => on.status(s.as_u16()),
            None => matches!(s.as_u16(), 500 | 502 | 503 | 504),
        };
        match self {
            Fetched::Failed(e) => on.is_none_or(|on| match e {
                OriginError::Timeout => on.timeout(),
                OriginError::BadRange => on.invalid_header(),
                OriginError::Unreachable | OriginError::TooLarge => on.error(),
            }),
            Fetched::Storable { obj, .. } => bad(obj.status),
            Fetched::Pass(resp) => bad(resp.status()),
            Fetched::TooLarge | Fetched::Stream | Fetched::Refreshed(_) => false,
        }
    }
}

/// One request to the origin, timed into the resource's latency histogram; `range` is
/// forwarded (for a response streamed through unstored, or a slice).
pub(crate) async fn request(
    origin: &OriginClient,
    up: Upstream<'_>,
    range: Option<&HeaderValue>,
    head: bool,
) -> Result<Response<Incoming>, OriginError> {
    conditional_request(origin, up, range, &[], head).await
}

/// A viewer's request with another method than `GET`/`HEAD` (and its body), passed to the
/// origin as it is: nothing of it is stored.
pub(crate) async fn unsafe_request(
    origin: &OriginClient,
    up: Upstream<'_>,
    method: http::Method,
    body: crate::origin::OriginBody,
) -> Result<Response<Incoming>, OriginError> {
    send(origin, up, None, &[], false, Some((method, body))).await
}

/// [`request`] with `conditional` headers (a revalidation) besides `range`.
async fn conditional_request(
    origin: &OriginClient,
    up: Upstream<'_>,
    range: Option<&HeaderValue>,
    conditional: &[(http::HeaderName, HeaderValue)],
    head: bool,
) -> Result<Response<Incoming>, OriginError> {
    send(origin, up, range, conditional, head, None).await
}

/// One request to the resource's origin, timed into its latency histogram: to the sources in
/// the order [`crate::upstreams::Health::order`] gives, moving on after a failure the origin
/// group's `proxy_next_upstream` lists (with `use_next`) while the origin's total time lasts.
/// A request with a body (an unsafe method) is sent once: its body cannot be sent again.
async fn send(
    origin: &OriginClient,
    up: Upstream<'_>,
    range: Option<&HeaderValue>,
    conditional: &[(http::HeaderName, HeaderValue)],
    head: bool,
    mut unsafe_method: Option<(http::Method, crate::origin::OriginBody)>,
) -> Result<Response<Incoming>, OriginError> {
    let r = &up.site.res;
    let next = r.origins.next_upstream;
    let order = up.site.health.order(&r.origins);
    // Converted here, on the miss path only; a query that is not UTF-8 cannot be written into
    // a URI string, so its odd bytes become U+FFFD.
    let path_and_query = String::from_utf8_lossy(up.target);
    let mut result = Err(OriginError::Unreachable);
    let began = Instant::now();
    for (n, &i) in order.iter().enumerate() {
        let (host, port) = crate::upstreams::source(&r.origins, i);
        let once = unsafe_method.is_some();
        let t0 = Instant::now();
        result = origin
            .get(OriginRequest {
                https: up.https,
                host,
                port: *port,
                host_header: &r.host_header,
                path_and_query: &path_and_query,
                range,
                conditional,
                head,
                unsafe_method: unsafe_method.take(),
                extra: &r.origin_headers,
                viewer: up.viewer,
            })
            .await;
        let move_on = match &result {
            Ok(resp) => {
                up.site.metrics.origin_latency(t0.elapsed());
                up.site.health.answered(i);
                next.status(resp.status().as_u16())
            }
            Err(e @ (OriginError::Unreachable | OriginError::Timeout)) => {
                up.site.health.failed(i);
                match e {
                    OriginError::Timeout => next.timeout(),
                    _ => next.error() || next.invalid_header(),
                }
            }
            Err(_) => false,
        };
        // Moving on stops once the origin's total time is spent (nginx's
        // `proxy_next_upstream_timeout`): a group of slow sources costs a viewer at most that,
        // not each source's timeouts in turn.
        let spent = began.elapsed() >= origin.timeouts.total;
        if !move_on || once || spent || n + 1 == order.len() {
            break;
        }
        up.site.metrics.origin_next();
    }
    if let Ok(resp) = &mut result {
        shape_origin_headers(r, resp.headers_mut());
    }
    result
}

/// What the resource's options change in every origin response before it is stored or
/// streamed: with `cors`, the edge sets `Access-Control-Allow-Origin` itself per answer, so
/// the origin's is dropped and its `Vary: Origin` no longer splits the cache (one stored copy);
/// with `ignore_cookie`, `Set-Cookie` is dropped, so the response is stored once (and no
/// viewer is sent another's cookie).
fn shape_origin_headers(res: &tollgate_model::ValidResource, h: &mut HeaderMap) {
    if res.ignore_cookie {
        h.remove(header::SET_COOKIE);
    }
    if res.cors.is_none() {
        return;
    }
    h.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    // A `Vary` that is not text stays as it is (`key::vary_of` makes it unstorable).
    if !h.contains_key(header::VARY) || h.get_all(header::VARY).iter().any(|v| v.to_str().is_err())
    {
        return;
    }
    let fields: Vec<String> = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty() && !f.eq_ignore_ascii_case("origin"))
        .map(str::to_owned)
        .collect();
    h.remove(header::VARY);
    if let Ok(v) = HeaderValue::from_str(&fields.join(", ")) {
        if !fields.is_empty() {
            h.insert(header::VARY, v);
        }
    }
}

/// Fetches an object for the cache: a small one whole, a large one up to its headers (its
/// body then comes by its fill), within the origin's total timeout. With the resource's
/// `slice` option, only the slice holding the start of the viewer's `Range` is asked for.
/// A `stale` copy with validators is revalidated: the request is conditional, and a 304
/// refreshes the copy ([`Fetched::Refreshed`]) without fetching its body again.
pub(crate) async fn object(
    edge: &Edge,
    up: Upstream<'_>,
    key: &CacheKey,
    viewer: &HeaderMap,
    stale: Option<&Arc<Object>>,
) -> Fetched {
    let deadline = edge.origin.timeouts.total;
    tokio::time::timeout(deadline, fetch_object(edge, up, key, viewer, stale))
        .await
        .unwrap_or(Fetched::Failed(OriginError::Timeout))
}

/// The conditional headers revalidating `obj` (RFC 9111 4.3.1): its `ETag` as
/// `If-None-Match`, its `Last-Modified` as `If-Modified-Since`; none for a body still
/// arriving (it cannot be shared by a refreshed copy).
fn validators(obj: &Object) -> Vec<(http::HeaderName, HeaderValue)> {
    if let Body::Sliced(s) = &obj.body {
        if !s.is_complete() {
            return Vec::new();
        }
    }
    let mut v = Vec::new();
    if let Some(etag) = obj.headers.get(header::ETAG) {
        v.push((header::IF_NONE_MATCH, etag.clone()));
    }
    if let Some(lm) = obj.headers.get(header::LAST_MODIFIED) {
        v.push((header::IF_MODIFIED_SINCE, lm.clone()));
    }
    v
}

/// `stale` brought up to date by a 304's `headers` (RFC 9111 4.3.4: each header the 304
/// carries replaces the stored one; the body's framing stays), fresh again from now.
fn refreshed(
    stale: &Object,
    headers: &HeaderMap,
    res: &tollgate_model::ValidResource,
    authorized: bool,
) -> Option<Object> {
    let body = match &stale.body {
        Body::Whole(b) => Body::Whole(b.clone()),
        Body::Sliced(s) => Body::Sliced(s.share()?),
    };
    let mut merged = stale.headers.clone();
    let mut update = headers.clone();
    strip_hop_by_hop(&mut update);
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::CONTENT_ENCODING,
        header::AGE,
    ] {
        update.remove(name);
    }
    for name in update.keys() {
        merged.remove(name);
    }
    for (name, value) in &update {
        let owned = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        merged.append(name.clone(), owned);
    }
    let received = Instant::now();
    let life = lifetimes(stale.status, &merged, headers, res, received, authorized);
    Some(Object {
        status: stale.status,
        etag: merged.get(header::ETAG).cloned(),
        last_modified: crate::freshness::last_modified(&merged, SystemTime::now()),
        headers: merged,
        body,
        stored_at: received,
        initial_age: life.initial_age,
        fresh_until: life.fresh_until,
        stale_until: life.stale_until,
        updating_until: life.updating_until,
        keep_until: life.keep_until,
        // The 304 kept the body: its encoded copies would be the same, but are made again.
        encoded: Default::default(),
    })
}

/// How long past its freshness a stored copy is kept to be served stale with the `stale`
/// option (nginx keeps it until `inactive`; the tiers' LRU may drop it sooner).
pub const ALWAYS_ONLINE_SECS: u64 = 86_400;

/// Whether the fetch is for a viewer whose request carries `Authorization`.
fn authorized(up: Upstream<'_>) -> bool {
    up.viewer.is_some_and(|v| v.authorized())
}

/// A response's lifetimes in the cache, from when it was received.
struct Lifetimes {
    fresh_until: Instant,
    stale_until: Instant,
    updating_until: Instant,
    /// At `received` when it is not to be stored.
    keep_until: Instant,
    initial_age: u64,
}

/// When a response received at `received` stops being fresh, stops being servable stale and
/// stops being kept, and the `Age` it came with (from `age_from`, the response itself).
fn lifetimes(
    status: StatusCode,
    headers: &HeaderMap,
    age_from: &HeaderMap,
    res: &tollgate_model::ValidResource,
    received: Instant,
    authorized: bool,
) -> Lifetimes {
    // RFC 9111 3.5: the answer to a request with `Authorization` is shared only when it says
    // so, whatever the resource's settings.
    let fresh = if authorized && !crate::freshness::shared_despite_authorization(headers) {
        None
    } else {
        freshness(
            status,
            headers,
            res.cache_override_secs,
            res.cache_default_secs,
            res.cache_by_status.get(status.as_u16()),
            SystemTime::now(),
        )
    };
    let initial_age: u64 = age_from
        .get(header::AGE)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    match fresh {
        Some(f) => {
            let fresh_until = after(received, f.fresh_secs.saturating_sub(initial_age));
            let mut stale_until = after(fresh_until, f.stale_if_error_secs);
            let mut updating_until = after(fresh_until, f.stale_while_revalidate_secs);
            // "Always online": kept to be served stale for a day, unless the origin forbids
            // serving it stale (`must-revalidate`, `stale-if-error=0`...).
            if let Some(on) = res.stale.filter(|_| f.stale_if_error_secs > 0) {
                stale_until = stale_until.max(after(fresh_until, ALWAYS_ONLINE_SECS));
                if on.updating() {
                    updating_until = stale_until;
                }
            }
            Lifetimes {
                fresh_until,
                stale_until,
                updating_until,
                keep_until: crate::freshness::keep_until(
                    fresh_until,
                    stale_until,
                    updating_until,
                    headers,
                ),
                initial_age,
            }
        }
        None => Lifetimes {
            fresh_until: received,
            stale_until: received,
            updating_until: received,
            keep_until: received,
            initial_age,
        },
    }
}

/// The slice a viewer's `Range` starts in (the first, for a suffix range or none).
fn first_slice(viewer: &HeaderMap) -> u64 {
    match viewer
        .get(header::RANGE)
        .and_then(crate::respond::range_spec)
    {
        Some(crate::respond::RangeSpec::From(start, _)) => start / SLICE_BYTES,
        _ => 0,
    }
}

/// `Range` asking for slice `index`.
fn slice_range(index: u64) -> HeaderValue {
    let start = index.saturating_mul(SLICE_BYTES);
    let end = start.saturating_add(SLICE_BYTES - 1);
    HeaderValue::from_str(&format!("bytes={start}-{end}"))
        .unwrap_or(HeaderValue::from_static("bytes=0-"))
}

/// `Content-Range: bytes first-last/total`, parsed (not `*` for the total).
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (first <= last && last < total).then_some((first, last, total))
}

/// Whether a 206 to `slice_range(index)` holds exactly that slice of a `total`-byte body.
fn is_slice(headers: &HeaderMap, index: u64, total: u64) -> bool {
    let start = index.saturating_mul(SLICE_BYTES);
    let n = slice_len(total, index);
    n > 0 && content_range(headers) == Some((start, start.saturating_add(n - 1), total))
}

async fn fetch_object(
    edge: &Edge,
    up: Upstream<'_>,
    key: &CacheKey,
    viewer: &HeaderMap,
    stale: Option<&Arc<Object>>,
) -> Fetched {
    let want = up.site.res.slice.then(|| first_slice(viewer));
    let range = want.map(slice_range);
    let conditional = stale.map(|o| validators(o)).unwrap_or_default();
    let mut resp =
        match conditional_request(&edge.origin, up, range.as_ref(), &conditional, false).await {
            Ok(resp) => resp,
            Err(e) => return Fetched::Failed(e),
        };
    if let (StatusCode::NOT_MODIFIED, Some(stale), false) =
        (resp.status(), stale, conditional.is_empty())
    {
        return match refreshed(stale, resp.headers(), &up.site.res, authorized(up)) {
            Some(obj) => Fetched::Refreshed(Arc::new(obj)),
            None => Fetched::Failed(OriginError::Unreachable),
        };
    }
    // With `slice`: the slice asked for, and the body's length.
    let mut sliced: Option<(u64, u64)> = None;
    let mut asked = want;
    while let Some(index) = asked.take() {
        let refetch = |range: Option<HeaderValue>| async move {
            request(&edge.origin, up, range.as_ref(), false).await
        };
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => match content_range(resp.headers()) {
                Some((_, _, total)) if is_slice(resp.headers(), index, total) => {
                    let h = resp.headers();
                    if h.contains_key(header::ETAG) || h.contains_key(header::LAST_MODIFIED) {
                        sliced = Some((index, total));
                    } else {
                        // Nothing to tell a later slice of another version by: the body whole.
                        eprintln!(
                            "tollgate edge: the origin of resource {} sends {} without ETag or \
                             Last-Modified; the slice option needs one: fetched whole",
                            up.site.res.id,
                            String::from_utf8_lossy(up.target)
                        );
                        resp = match refetch(None).await {
                            Ok(r) => r,
                            Err(e) => return Fetched::Failed(e),
                        };
                    }
                }
                _ => return Fetched::Failed(OriginError::BadRange),
            },
            // The viewer's range starts past the end: the first slice gives the length (and
            // the viewer its 416), as nginx's slice module does.
            StatusCode::RANGE_NOT_SATISFIABLE if index > 0 => {
                resp = match refetch(Some(slice_range(0))).await {
                    Ok(r) => r,
                    Err(e) => return Fetched::Failed(e),
                };
                asked = Some(0);
            }
            // An empty body: fetched without a range.
            StatusCode::RANGE_NOT_SATISFIABLE => {
                resp = match refetch(None).await {
                    Ok(r) => r,
                    Err(e) => return Fetched::Failed(e),
                };
            }
            StatusCode::OK => eprintln!(
                "tollgate edge: the origin of resource {} answered a Range request for {} with 200 \
                 (the slice option needs Range): stored whole as it streams",
                up.site.res.id,
                String::from_utf8_lossy(up.target)
            ),
            _ => {}
        }
    }
    let limit = edge.tiers.memory.max_object_bytes;
    let expected = match sliced {
        Some((_, total)) => Some(total),
        None => resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok()),
    };
    if expected.is_some_and(|n| n > limit) {
        return Fetched::TooLarge;
    }
    let received = Instant::now();
    let res = &up.site.res;
    // A slice stands for the whole body, whose answer is a 200.
    let status = if sliced.is_some() {
        StatusCode::OK
    } else {
        resp.status()
    };
    let life = lifetimes(
        status,
        resp.headers(),
        resp.headers(),
        res,
        received,
        authorized(up),
    );
    let into = (life.keep_until > received)
        .then(|| storage_key(edge, key, up.viewer.map(|v| v.headers), resp.headers()))
        .flatten();
    let Some(into) = into else {
        // A slice is not what the viewer asked for: its own request goes to the origin.
        return if sliced.is_some() {
            Fetched::Stream
        } else {
            Fetched::Pass(resp)
        };
    };
    // Later slices are fetched by Range without the viewer (a slice evicted, the `slice`
    // option): not for an answer that depends on the viewer's headers.
    let by_viewer = authorized(up)
        || matches!(
            crate::key::vary_of(resp.headers()),
            crate::key::Vary::Fields(_)
        );
    if by_viewer && sliced.is_some() {
        return Fetched::Stream;
    }
    let key = &into;
    let (parts, incoming) = resp.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // Set again for each answer, which may be a range of the body.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_RANGE);
    headers.remove(header::AGE);
    // hyper's header values are slices of its read buffer; a stored copy of them would keep
    // that whole buffer alive, several times the object's size for small objects.
    let headers: HeaderMap = headers
        .iter()
        .map(|(k, v)| {
            let owned = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
            (k.clone(), owned)
        })
        .collect();
    let etag = headers.get(header::ETAG).cloned();
    let last_modified = crate::freshness::last_modified(&headers, SystemTime::now());
    let (body, fill) = match (expected, sliced) {
        // All of it in the one slice asked for (the first), or no slice asked.
        (Some(n), None | Some((0, _))) if n <= WHOLE_MAX => {
            match edge.origin.read_body(incoming, n, Some(n)).await {
                Ok(b) if b.len() as u64 == n => (Body::Whole(b), None),
                Ok(_) => return Fetched::Failed(OriginError::Unreachable),
                Err(e) => return Fetched::Failed(e),
            }
        }
        (_, Some((index, total))) => {
            // Validators were checked above: the source exists.
            let Some(ranged) = from_origin(edge, up, total, &headers).map(Arc::new) else {
                return Fetched::Failed(OriginError::BadRange);
            };
            let (fill, _) = ranged.register(index);
            let sliced = Sliced::sparse(crate::slices::new_version(), total, key.clone(), ranged);
            let pending = PendingFill {
                fill,
                incoming,
                slice: Some(index),
            };
            (Body::Sliced(sliced), Some(pending))
        }
        (_, None) => {
            let (sliced, fill) =
                crate::slices::begin(crate::slices::new_version(), expected, key.clone());
            // A slice evicted before a slow viewer reads it comes back by Range.
            if let Some(len) = expected.filter(|_| !by_viewer) {
                sliced.attach(|| from_origin(edge, up, len, &headers));
            }
            let pending = PendingFill {
                fill,
                incoming,
                slice: None,
            };
            (Body::Sliced(sliced), Some(pending))
        }
    };
    let obj = Arc::new(Object {
        status,
        headers,
        body,
        stored_at: received,
        initial_age: life.initial_age,
        fresh_until: life.fresh_until,
        stale_until: life.stale_until,
        updating_until: life.updating_until,
        keep_until: life.keep_until,
        etag,
        last_modified,
        encoded: Default::default(),
    });
    Fetched::Storable {
        obj,
        fill,
        key: into,
    }
}

/// The key a response with `headers` (fetched for `key`, for a request with `viewer`) is
/// stored under: `key`, or for a response with `Vary` the key of its variant, the rule being
/// recorded at its URL; `None` when it may not be stored (`Vary: *`, or more variants than a
/// URL keeps).
pub(crate) fn storage_key(
    edge: &Edge,
    key: &CacheKey,
    viewer: Option<&HeaderMap>,
    headers: &HeaderMap,
) -> Option<CacheKey> {
    match crate::key::vary_of(headers) {
        // At the URL's own key (replacing a rule the URL's responses no longer follow).
        crate::key::Vary::Nothing => Some(key.primary()),
        crate::key::Vary::Never => None,
        crate::key::Vary::Fields(fields) => {
            let primary = key.primary();
            let none = HeaderMap::new();
            let variant = primary.variant(&fields, viewer.unwrap_or(&none));
            let rule = edge.tiers.memory.learn_vary(&primary, fields);
            rule.admit(&variant).then_some(variant)
        }
    }
}

/// Runs the fill of `obj` (stored under `key`, or only served when `stored` is false) in a
/// task of its own, which outlives the viewer that started it: the other viewers read the
/// same fill. Once the body is in, the object is committed to the disk tier (unless a purge
/// came since `mark`); when the fill fails, the object leaves the memory tier and its slices
/// the disk.
pub(crate) fn spawn_fill(
    edge: &Edge,
    key: CacheKey,
    obj: Arc<Object>,
    pending: PendingFill,
    mark: u64,
    stored: bool,
) {
    let tiers = edge.tiers.clone();
    let read = edge.origin.timeouts.read;
    tokio::spawn(async move {
        let Body::Sliced(sliced) = &obj.body else {
            return;
        };
        let (fill, incoming) = (&pending.fill, pending.incoming);
        let filled = match (pending.slice, sliced.ranged(), sliced.len()) {
            (Some(index), Some(ranged), Some(len)) => {
                let store = if tiers.disk.is_some() {
                    Store::Disk
                } else {
                    Store::MemoryOnly
                };
                let expected = Some(slice_len(len, index));
                let filled = run_fill(
                    sliced.version,
                    fill,
                    incoming,
                    expected,
                    &tiers,
                    store,
                    read,
                )
                .await;
                ranged.finished(index);
                filled
            }
            _ => fill_body(sliced, fill, incoming, &tiers, read).await,
        };
        if filled.outcome.is_err() {
            tiers.memory.remove_this(&key, &obj);
            eprintln!(
                "tollgate edge: the origin's body of {} stopped ({:?}); not stored",
                String::from_utf8_lossy(&key.path),
                filled.outcome
            );
        }
        if let Some(disk) = &tiers.disk {
            if stored && filled.outcome.is_ok() && filled.on_disk {
                disk.commit(key, Arc::clone(&obj), mark);
            } else {
                disk.discard(sliced.version);
            }
        }
    });
}

/// Removes the hop-by-hop headers, those named in `Connection` included.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    for n in crate::origin::connection_named(h) {
        h.remove(n.as_str());
    }
    for n in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ] {
        h.remove(n);
    }
    h.remove("keep-alive");
}

/// Where a body of `total` bytes, whose first bytes came with `headers`, gets the slices no
/// tier holds: from `up`, by Range, checked against its validators (`None` without any: a
/// slice of another version could not be told apart).
fn from_origin(edge: &Edge, up: Upstream<'_>, total: u64, headers: &HeaderMap) -> Option<Ranged> {
    if !headers.contains_key(header::ETAG) && !headers.contains_key(header::LAST_MODIFIED) {
        return None;
    }
    let source = OriginSlices {
        origin: edge.origin.clone(),
        site: Arc::clone(up.site),
        https: up.https,
        target: up.target.into(),
        total,
        etag: headers.get(header::ETAG).cloned(),
        last_modified: headers.get(header::LAST_MODIFIED).cloned(),
    };
    Some(Ranged::new(Box::new(source), edge.origin.timeouts.read))
}

/// Lets an object read from disk fetch the slices it lacks from `up` by Range (a sparse one
/// keeps doing so when its resource has dropped the `slice` option since).
pub(crate) fn attach_origin(edge: &Edge, up: Upstream<'_>, obj: &Object) {
    if let (Body::Sliced(s), Some(total)) = (&obj.body, obj.len()) {
        s.attach(|| from_origin(edge, up, total, &obj.headers));
    }
}

/// The slices of a sparse body from its origin, by Range, each checked to be of the object the
/// first slice came from: the same length, `ETag` and `Last-Modified`.
struct OriginSlices {
    origin: OriginClient,
    site: Arc<Site>,
    https: bool,
    target: Box<[u8]>,
    total: u64,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl SliceSource for OriginSlices {
    fn fetch(
        &self,
        index: u64,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Incoming, FillFailed>> + Send + '_>,
    > {
        Box::pin(async move {
            let up = Upstream {
                site: &self.site,
                https: self.https,
                target: &self.target,
                viewer: None,
            };
            let range = slice_range(index);
            let resp = match request(&self.origin, up, Some(&range), false).await {
                Ok(resp) => resp,
                Err(OriginError::Timeout) => return Err(FillFailed::Stalled),
                Err(_) => return Err(FillFailed::Broken),
            };
            let h = resp.headers();
            let same = h.get(header::ETAG) == self.etag.as_ref()
                && h.get(header::LAST_MODIFIED) == self.last_modified.as_ref();
            match resp.status() {
                StatusCode::PARTIAL_CONTENT if !same => Err(FillFailed::Changed),
                StatusCode::PARTIAL_CONTENT => match content_range(h) {
                    Some((_, _, total)) if total != self.total => Err(FillFailed::Changed),
                    Some(_) if is_slice(h, index, self.total) => Ok(resp.into_body()),
                    _ => Err(FillFailed::NoRange),
                },
                // Shorter than it was, or another object at this path.
                StatusCode::RANGE_NOT_SATISFIABLE => Err(FillFailed::Changed),
                StatusCode::OK if !same => Err(FillFailed::Changed),
                _ => Err(FillFailed::NoRange),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn content_ranges() {
        let cr = |v| content_range(&with_range(v));
        assert_eq!(cr("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(cr("bytes 90-99/100"), Some((90, 99, 100)));
        assert_eq!(cr("bytes 0-9/*"), None, "a total is needed");
        assert_eq!(cr("bytes 9-0/100"), None);
        assert_eq!(cr("bytes 0-100/100"), None, "past the end");
        assert_eq!(cr("bytes */100"), None);
        assert_eq!(cr("items 0-9/100"), None);
        assert_eq!(cr("bytes 0-99999999999999999999/1"), None, "no overflow");
    }

    #[test]
    fn slices_asked_and_checked() {
        assert_eq!(slice_range(0), "bytes=0-4194303");
        assert_eq!(slice_range(2), "bytes=8388608-12582911");
        let total = SLICE_BYTES * 2 + 10;
        assert!(is_slice(&with_range("bytes 0-4194303/8388618"), 0, total));
        assert!(is_slice(
            &with_range("bytes 8388608-8388617/8388618"),
            2,
            total
        ));
        assert!(
            !is_slice(&with_range("bytes 0-1000/8388618"), 0, total),
            "short"
        );
        assert!(
            !is_slice(&with_range("bytes 0-4194303/8388618"), 1, total),
            "another"
        );
        let viewer = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::RANGE, HeaderValue::from_static(v));
            h
        };
        assert_eq!(first_slice(&HeaderMap::new()), 0);
        assert_eq!(first_slice(&viewer("bytes=8388608-")), 2);
        assert_eq!(
            first_slice(&viewer("bytes=-100")),
            0,
            "suffix: the length is unknown"
        );
        assert_eq!(first_slice(&viewer("bytes=0-1,5-6")), 0, "several ranges");
    }
}
