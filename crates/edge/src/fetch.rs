//! The origin side of a miss: the request to the resource's origin, and the stored object made
//! from its response (end-to-end headers, validators, fresh and stale instants), or the
//! response itself when it is streamed through unstored.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;

use crate::cache::{Body, Object};
use crate::freshness::{after, freshness};
use crate::key::CacheKey;
use crate::origin::{OriginError, OriginRequest};
use crate::routes::Site;
use crate::slices::{run_fill, Fill, WHOLE_MAX};
use crate::Edge;

/// Where a request goes at its resource's origin.
#[derive(Clone, Copy)]
pub(crate) struct Upstream<'a> {
    pub site: &'a Arc<Site>,
    pub https: bool,
    /// Encoded path and forwarded query ([`crate::key::Keyed::origin_target`]).
    pub target: &'a [u8],
}

/// What a fetch for the cache got.
pub(crate) enum Fetched {
    /// A response the cache may keep, fresh for a while; a large body comes with its fill,
    /// to run once the object is in the cache ([`spawn_fill`]).
    Storable {
        obj: Arc<Object>,
        fill: Option<PendingFill>,
    },
    /// A response for this viewer alone (a cookie, `private`, `no-store`, no freshness),
    /// streamed through as it comes.
    Pass(Response<Incoming>),
    /// Larger than the largest object stored: to be streamed instead.
    TooLarge,
    Failed(OriginError),
}

/// A large body whose fill has not started: the origin's body and where it goes.
pub(crate) struct PendingFill {
    fill: Arc<Fill>,
    incoming: Incoming,
}

impl Fetched {
    /// Whether a stale copy should be served instead: the origin failed, or answered
    /// 500/502/503/504 (the statuses RFC 5861's stale-if-error names).
    pub fn calls_for_stale(&self) -> bool {
        let bad = |s: StatusCode| matches!(s.as_u16(), 500 | 502 | 503 | 504);
        match self {
            Fetched::Failed(_) => true,
            Fetched::Storable { obj, .. } => bad(obj.status),
            Fetched::Pass(resp) => bad(resp.status()),
            Fetched::TooLarge => false,
        }
    }
}

/// One request to the origin, timed into the resource's latency histogram; `range` is
/// forwarded (for a response streamed through unstored).
pub(crate) async fn request(
    edge: &Edge,
    up: Upstream<'_>,
    range: Option<&HeaderValue>,
    head: bool,
) -> Result<Response<Incoming>, OriginError> {
    let r = &up.site.res;
    let t0 = Instant::now();
    let resp = edge
        .origin
        .get(&OriginRequest {
            https: up.https,
            host: &r.origin_host,
            port: r.origin_port,
            host_header: &r.host_header,
            // Converted here, on the miss path only; a query that is not UTF-8 cannot be
            // written into a URI string, so its odd bytes become U+FFFD.
            path_and_query: &String::from_utf8_lossy(up.target),
            range,
            head,
            extra: &r.origin_headers,
        })
        .await?;
    up.site.metrics.origin_latency(t0.elapsed());
    Ok(resp)
}

/// Fetches an object for the cache: a small one whole, a large one up to its headers (its
/// body then comes by its fill), within the origin's total timeout.
pub(crate) async fn object(edge: &Edge, up: Upstream<'_>, key: &CacheKey) -> Fetched {
    let deadline = edge.origin.timeouts.total;
    tokio::time::timeout(deadline, fetch_object(edge, up, key))
        .await
        .unwrap_or(Fetched::Failed(OriginError::Timeout))
}

async fn fetch_object(edge: &Edge, up: Upstream<'_>, key: &CacheKey) -> Fetched {
    let resp = match request(edge, up, None, false).await {
        Ok(resp) => resp,
        Err(e) => return Fetched::Failed(e),
    };
    let limit = edge.tiers.memory.max_object_bytes;
    let expected = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if expected.is_some_and(|n| n > limit) {
        return Fetched::TooLarge;
    }
    let received = Instant::now();
    let res = &up.site.res;
    let fresh = freshness(
        resp.status(),
        resp.headers(),
        res.cache_override_secs,
        res.cache_default_secs,
        SystemTime::now(),
    );
    let initial_age: u64 = resp
        .headers()
        .get(header::AGE)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let (fresh_until, stale_until) = match fresh {
        Some(f) => {
            let fu = after(received, f.fresh_secs.saturating_sub(initial_age));
            (fu, after(fu, f.stale_if_error_secs))
        }
        None => (received, received),
    };
    if fresh.is_none() || fresh_until <= received {
        return Fetched::Pass(resp);
    }
    let (parts, incoming) = resp.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // Set again for each answer, which may be a range of the body.
    headers.remove(header::CONTENT_LENGTH);
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
    let last_modified = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let (body, fill) = match expected {
        Some(n) if n <= WHOLE_MAX => match edge.origin.read_body(incoming, n, expected).await {
            Ok(b) => (Body::Whole(b), None),
            Err(e) => return Fetched::Failed(e),
        },
        _ => {
            let (sliced, fill) =
                crate::slices::begin(crate::slices::new_version(), expected, key.clone());
            (Body::Sliced(sliced), Some(PendingFill { fill, incoming }))
        }
    };
    let obj = Arc::new(Object {
        status: parts.status,
        headers,
        body,
        stored_at: received,
        initial_age,
        fresh_until,
        stale_until,
        etag,
        last_modified,
    });
    Fetched::Storable { obj, fill }
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
    let limit = tiers.memory.max_object_bytes;
    let read = edge.origin.timeouts.read;
    tokio::spawn(async move {
        let Body::Sliced(sliced) = &obj.body else {
            return;
        };
        let filled = run_fill(sliced, &pending.fill, pending.incoming, &tiers, limit, read).await;
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
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for n in named {
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
