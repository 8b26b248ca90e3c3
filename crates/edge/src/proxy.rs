//! The request path, in phases: route, normalise, token gate, cache, origin, respond, log.
//! Nothing after the token gate runs for a refused request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tollgate_token::sign::encode_path;
use tollgate_token::{verify, verify_in_directory, Target};

use crate::body::{EdgeBody, OriginBody};
use crate::cache::{CacheKey, Object, Role, Shared};
use crate::freshness::freshness;
use crate::metrics::Outcome;
use crate::origin::OriginError;
use crate::respond::{from_object, CACHE};
use crate::routes::Site;
use crate::Edge;

/// Where a request goes at the origin: scheme and path with the forwarded query.
#[derive(Clone, Copy)]
struct OriginTarget<'a> {
    https: bool,
    /// Encoded path and forwarded query: ASCII from `encode_path`, plus query bytes as the
    /// client sent them.
    target: &'a [u8],
}

/// What the log and the metrics need to know about a finished request.
struct Done {
    resp: Response<EdgeBody>,
    outcome: Option<Outcome>,
    reason: &'static str,
    bytes: u64,
}

fn short(status: StatusCode, text: &'static str) -> Response<EdgeBody> {
    let mut r = Response::new(EdgeBody::text(text));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// A short text answer of the edge's own, counted for no resource.
fn own_answer(status: StatusCode, text: &'static str, reason: &'static str) -> Done {
    Done {
        resp: short(status, text),
        outcome: None,
        reason,
        bytes: text.len() as u64,
    }
}

fn refused(status: u16, reason: &'static str) -> Done {
    let (code, text) = match status {
        400 => (StatusCode::BAD_REQUEST, "400 Bad Request\n"),
        410 => (StatusCode::GONE, "410 Gone\n"),
        _ => (StatusCode::FORBIDDEN, "403 Forbidden\n"),
    };
    Done {
        resp: short(code, text),
        outcome: Some(Outcome::Refused(reason)),
        reason,
        bytes: text.len() as u64,
    }
}

fn origin_failed(e: OriginError) -> Done {
    let (code, text) = match e {
        OriginError::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: the origin did not answer in time\n",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: the origin could not be reached\n",
        ),
    };
    Done {
        resp: short(code, text),
        outcome: Some(Outcome::OriginError(e.reason())),
        reason: e.reason(),
        bytes: text.len() as u64,
    }
}

/// The request's host, lower-cased, without port or trailing dot; borrowed when it already
/// is (the common case).
fn host_of<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> std::borrow::Cow<'a, str> {
    let raw = uri
        .host()
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let host = if raw.starts_with('[') {
        // An IPv6 literal: keep up to the closing bracket.
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// Appends `?` and the query without `md5` and `expires` (any case), which neither the origin
/// nor the cache key sees; appends nothing when no parameter is left.
pub fn push_forwarded_query(out: &mut Vec<u8>, args: &[u8]) {
    let mut first = true;
    for param in args.split(|&b| b == b'&') {
        let name = param.split(|&b| b == b'=').next().unwrap_or_default();
        if param.is_empty()
            || name.eq_ignore_ascii_case(b"md5")
            || name.eq_ignore_ascii_case(b"expires")
        {
            continue;
        }
        out.push(if first { b'?' } else { b'&' });
        out.extend_from_slice(param);
        first = false;
    }
}

/// Handles one request from `peer`.
/// Handles one request from `peer`; `tls` says whether it came over TLS (for `originProtocol`
/// MATCH).
pub async fn handle(
    edge: Arc<Edge>,
    req: Request<Incoming>,
    peer: IpAddr,
    tls: bool,
) -> Response<EdgeBody> {
    // A clock read only when there is a log line to time.
    let started = edge.log.enabled().then(Instant::now);
    let host = host_of(req.uri(), req.headers());
    // The routes are only looked at here: the site's Arc outlives a reload in flight.
    let site = edge.routes.load().get(&host).cloned();
    let client = edge.trusted.client_addr(
        peer,
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes()),
    );
    let raw = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let head = req.method() == Method::HEAD;
    // Two Host headers: which one names the resource is ambiguous, so nginx refuses them.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let duplicate_host = hosts.next().is_some() && hosts.next().is_some();
    let done = match &site {
        _ if duplicate_host => own_answer(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: more than one Host header\n",
            "duplicate_host",
        ),
        None => {
            edge.metrics
                .unknown_host
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            own_answer(
                StatusCode::NOT_FOUND,
                "404 Not Found: no resource serves this host\n",
                "unknown_host",
            )
        }
        Some(_) if req.method() != Method::GET && !head => {
            edge.metrics
                .bad_method
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut done = own_answer(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed\n",
                "method_not_allowed",
            );
            done.resp
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            done
        }
        Some(site) => {
            let https = match site.res.resource.origin_protocol {
                tollgate_model::OriginProtocol::Http => false,
                tollgate_model::OriginProtocol::Https => true,
                tollgate_model::OriginProtocol::Match => tls,
            };
            gate_and_serve(&edge, site, &req, raw, client, head, https).await
        }
    };
    if let (Some(site), Some(o)) = (&site, done.outcome) {
        site.metrics.record(o, done.bytes);
    }
    // Every response gets a line, refusals of unknown hosts and methods included.
    if edge.log.enabled() {
        let path = raw.split('?').next().unwrap_or("");
        edge.log.write(serde_json::json!({
            "ts": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            "resource": site.as_ref().map(|s| s.res.id),
            "host": host,
            "client": client.to_string(),
            "method": req.method().as_str(),
            "path": path,
            "status": done.resp.status().as_u16(),
            "reason": done.reason,
            "cache": done.resp.headers().get(&CACHE).and_then(|v| v.to_str().ok()),
            "bytes": done.bytes,
            "ms": started.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0),
        }));
    }
    done.resp
}

async fn gate_and_serve(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    req: &Request<Incoming>,
    raw: &str,
    client: IpAddr,
    head: bool,
    https: bool,
) -> Done {
    let target = match Target::parse(raw.as_bytes()) {
        Ok(t) => t,
        Err(_) => return refused(400, "bad_request"),
    };
    if let Some(sk) = &site.res.secure_key {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let ip = sk.bind_client_ip.then_some(client);
        // With query string forwarding, a token for the file's directory is accepted too.
        let verdict = if site.res.forwarding.is_some() {
            verify_in_directory(&target, &sk.keys, ip, now)
        } else {
            verify(&target, &sk.keys, ip, now)
        };
        if let Err(r) = verdict {
            return refused(r.status(), r.reason());
        }
    }
    let manifest = crate::forwarding::plan(&site.res, &target, client);

    // One buffer serves as the cache key and, on a miss, as the origin's request target.
    let mut origin_target = Vec::with_capacity(raw.len());
    encode_path(&mut origin_target, target.uri());
    let path_len = origin_target.len();
    push_forwarded_query(&mut origin_target, target.args());
    let key_len = if site.res.ignore_query_string {
        path_len
    } else {
        origin_target.len()
    };
    let key = CacheKey {
        resource: site.res.id,
        path: origin_target[..key_len].into(),
    };
    let to = OriginTarget {
        https,
        target: &origin_target,
    };
    match manifest {
        None => serve(edge, site, req.headers(), key, to, head).await,
        Some(plan) => {
            let headers = crate::forwarding::request_headers(req.headers());
            let mut done = serve(edge, site, headers.as_ref(), key, to, head).await;
            if let Some(len) = crate::forwarding::apply(plan, site, &mut done.resp, head) {
                done.bytes = len;
            }
            done
        }
    }
}

async fn serve(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    req: &HeaderMap,
    key: CacheKey,
    to: OriginTarget<'_>,
    head: bool,
) -> Done {
    loop {
        let now = Instant::now();
        let cached = edge.cache.get(&key, now);
        if let Some(obj) = cached.as_ref().filter(|o| o.is_fresh(now)) {
            let (resp, bytes) = from_object(obj, req, head, "HIT", now);
            return Done {
                resp,
                outcome: Some(Outcome::Hit),
                reason: "",
                bytes,
            };
        }
        // Checked only on a miss, so a hit costs one cache lookup.
        if edge.large.contains(&key, now) {
            return pass_through(edge, site, req, to, head).await;
        }
        match edge.flights.join(&key) {
            Role::Leader(leader) => {
                // A fetch may have ended between the lookup above and the join: it stores its
                // object before its flight ends, so a second look sees it (else the origin is
                // asked twice; rare, seen as a flaky test of one fetch for twenty viewers).
                let again = Instant::now();
                if edge
                    .cache
                    .get(&key, again)
                    .is_some_and(|o| o.is_fresh(again))
                {
                    drop(leader);
                    continue;
                }
                let mark = edge.cache.purge_mark();
                let deadline = edge.origin.timeouts.total;
                let shared = tokio::time::timeout(deadline, fetch(edge, site, to))
                    .await
                    .unwrap_or(Shared::Failed(OriginError::Timeout));
                // `cached` is within its stale window: `Cache::get` returns nothing past it.
                // A failed origin, or one answering 500/502/503/504, while a stale copy is in
                // its window: the stale copy (RFC 5861 stale-if-error names those statuses).
                let failed = match &shared {
                    Shared::Failed(..) => true,
                    Shared::Object(o, _) => matches!(o.status.as_u16(), 500 | 502 | 503 | 504),
                    Shared::FetchYourself => false,
                };
                let shared = match (shared, cached) {
                    (_, Some(stale)) if failed => {
                        leader.finish(Shared::Object(Arc::clone(&stale), true));
                        let (resp, bytes) = from_object(&stale, req, head, "STALE", Instant::now());
                        return Done {
                            resp,
                            outcome: Some(Outcome::Stale),
                            reason: "origin_failed_served_stale",
                            bytes,
                        };
                    }
                    (s, _) => s,
                };
                if let Shared::Object(obj, true) = &shared {
                    edge.cache
                        .insert_unless_purged(key.clone(), Arc::clone(obj), mark);
                }
                if let Shared::FetchYourself = shared {
                    edge.large.insert(key.clone(), Instant::now());
                }
                // A response that may not be stored is this viewer's alone (a cookie, private,
                // no-store): the followers fetch for themselves, as with nginx's
                // proxy_cache_lock.
                leader.finish(match &shared {
                    Shared::Object(_, false) => Shared::FetchYourself,
                    s => s.clone(),
                });
                return answer(edge, site, req, to, head, shared, "MISS").await;
            }
            Role::Follower(mut rx) => {
                // `None`: the wait timed out. (The watch's guard must not live across an await.)
                let waited = tokio::time::timeout(LOCK_TIMEOUT, rx.wait_for(|v| v.is_some()))
                    .await
                    .ok()
                    .map(|r| r.ok().and_then(|v| v.clone()));
                match waited {
                    // The leader is slow: go to the origin without storing, as nginx does
                    // after proxy_cache_lock_timeout.
                    None => return pass_through(edge, site, req, to, head).await,
                    // The leader's client went away before the fetch ended: try again.
                    Some(None) => continue,
                    Some(Some(shared)) => {
                        return answer(edge, site, req, to, head, shared, "HIT").await
                    }
                }
            }
        }
    }
}

/// How long a request waits for another's fetch of the same object before it goes to the
/// origin itself (nginx's `proxy_cache_lock_timeout`, whose default this is).
const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn answer(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    req: &HeaderMap,
    to: OriginTarget<'_>,
    head: bool,
    shared: Shared,
    label: &'static str,
) -> Done {
    match shared {
        Shared::Object(obj, stored) => {
            let now = Instant::now();
            // A follower of a leader that fell back on the stale copy gets it as STALE too.
            let (label, outcome) = if !stored {
                ("MISS", Outcome::Pass)
            } else if !obj.is_fresh(now) {
                ("STALE", Outcome::Stale)
            } else if label == "HIT" {
                ("HIT", Outcome::Hit)
            } else {
                ("MISS", Outcome::Miss)
            };
            let (resp, bytes) = from_object(&obj, req, head, label, now);
            Done {
                resp,
                outcome: Some(outcome),
                reason: "",
                bytes,
            }
        }
        Shared::Failed(e) => origin_failed(e),
        Shared::FetchYourself => pass_through(edge, site, req, to, head).await,
    }
}

/// One request to the resource's origin, timed into its latency histogram.
async fn origin_request(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    to: OriginTarget<'_>,
    range: Option<&HeaderValue>,
    head: bool,
) -> Result<Response<Incoming>, OriginError> {
    let r = &site.res;
    let t0 = Instant::now();
    let resp = edge
        .origin
        .get(
            to.https,
            &r.origin_host,
            r.origin_port,
            &r.host_header,
            // Converted here, on the miss path only; a query that is not UTF-8 cannot be
            // written into a URI string, so its odd bytes become U+FFFD.
            &String::from_utf8_lossy(to.target),
            range,
            head,
            &r.origin_headers,
        )
        .await?;
    site.metrics.origin_latency(t0.elapsed());
    Ok(resp)
}

/// Fetches the whole object for the cache.
async fn fetch(edge: &Arc<Edge>, site: &Arc<Site>, to: OriginTarget<'_>) -> Shared {
    let r = &site.res;
    let resp = match origin_request(edge, site, to, None, false).await {
        Ok(resp) => resp,
        Err(e) => return Shared::Failed(e),
    };
    let limit = edge.cache.max_object_bytes;
    let too_big = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit);
    if too_big {
        return Shared::FetchYourself;
    }
    let (parts, body) = resp.into_parts();
    let expected = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body = match edge.origin.read_body(body, limit, expected).await {
        Ok(b) => b,
        Err(OriginError::TooLarge) => return Shared::FetchYourself,
        Err(e) => return Shared::Failed(e),
    };
    let received = Instant::now();
    let fresh = freshness(
        parts.status,
        &parts.headers,
        r.cache_override_secs,
        r.cache_default_secs,
        SystemTime::now(),
    );
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // Set again for each answer, which may be a range of the body.
    headers.remove(header::CONTENT_LENGTH);
    // hyper's header values are slices of its read buffer; a stored copy of them would keep
    // that whole buffer alive, several times the object's size for small objects.
    let mut headers: HeaderMap = headers
        .iter()
        .map(|(k, v)| {
            let owned = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
            (k.clone(), owned)
        })
        .collect();
    let initial_age = headers
        .remove(header::AGE)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let etag = headers.get(header::ETAG).cloned();
    let last_modified = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let (fresh_until, stale_until) = match fresh {
        Some(f) => {
            let fu = crate::freshness::after(received, f.fresh_secs.saturating_sub(initial_age));
            (fu, crate::freshness::after(fu, f.stale_if_error_secs))
        }
        None => (received, received),
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
    Shared::Object(obj, fresh.is_some() && fresh_until > received)
}

/// Streams a response the cache does not keep (too large), forwarding `Range`.
async fn pass_through(
    edge: &Arc<Edge>,
    site: &Arc<Site>,
    req: &HeaderMap,
    to: OriginTarget<'_>,
    head: bool,
) -> Done {
    let resp = match origin_request(edge, site, to, req.get(header::RANGE), head).await {
        Ok(resp) => resp,
        Err(e) => return origin_failed(e),
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts
        .headers
        .insert(CACHE.clone(), HeaderValue::from_static("MISS"));
    let bytes = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let body = if head {
        EdgeBody::empty()
    } else {
        EdgeBody::Stream(OriginBody::new(
            body,
            edge.origin.timeouts.read,
            edge.send_timeout,
        ))
    };
    Done {
        resp: Response::from_parts(parts, body),
        outcome: Some(Outcome::Pass),
        reason: "",
        bytes: if head { 0 } else { bytes },
    }
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
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

#[cfg(test)]
mod tests {
    fn s(args: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::push_forwarded_query(&mut out, args);
        out
    }

    #[test]
    fn host_names() {
        let h = |uri: &str, host: Option<&'static str>| {
            let mut m = http::HeaderMap::new();
            if let Some(v) = host {
                m.insert(http::header::HOST, http::HeaderValue::from_static(v));
            }
            super::host_of(&uri.parse().unwrap(), &m).into_owned()
        };
        assert_eq!(h("/", Some("CDN.Example.com:8080")), "cdn.example.com");
        assert_eq!(h("/", Some("cdn.example.com.")), "cdn.example.com");
        assert_eq!(h("/", Some("[::1]:80")), "[::1]");
        assert_eq!(
            h("http://Abs.example.com/x", Some("other")),
            "abs.example.com"
        );
        assert_eq!(h("/", None), "");
    }

    #[test]
    fn token_params_stripped() {
        assert_eq!(s(b"md5=a&expires=1"), b"");
        assert_eq!(s(b"x=1&MD5=a&y=2&Expires=3"), b"?x=1&y=2");
        assert_eq!(s(b"md5x=1&&expiresy=2"), b"?md5x=1&expiresy=2");
    }
}
