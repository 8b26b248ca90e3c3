//! The request path, as phases in order over one request's context ([`Ctx`]), each a function
//! below in the order it runs:
//!
//! 1. [`route`]: the Host header names a resource (`routes`; 404, 400 for two Host headers);
//!    the resource answers the method (405); then the resource's own answers that need no
//!    token: [`redirect_to_https`] (`redirect_http_to_https`, 301) and [`preflight`] (`cors`,
//!    204);
//! 2. [`parse_target`]: the path as nginx's `$uri` (400), with `tollgate-token`'s parser;
//! 3. [`gate`]: the secure token (403 / 410), then [`access`]: the access lists (403; 503 for
//!    `country_acl` without a GeoIP database); nothing below runs for a refused request;
//! 4. [`plan`]: whether the response is a manifest to rewrite (`manifests`), and the cache
//!    key with the origin's target (`key`);
//! 5. [`lookup`]: a fresh object in the cache (`cache`) is a hit;
//! 6. [`fetch_on_miss`]: one origin fetch per key however many miss it (`flights`), the
//!    response stored or streamed (`fetch`), a stale copy if the origin fails;
//! 7. [`respond`]: the response, in one place (`respond`: Range, conditional, HEAD), then the
//!    manifest rewrite (`manifests`), compression (`compress`), the resource's header options
//!    (hiding, `cors`, `browser_cache_settings`, `static_response_headers`) and
//!    `limit_bandwidth` (`throttle`);
//! 8. [`log_and_count`]: the resource's counters and the access log line.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tollgate_token::{verify_as, verify_in_directory_as, Target};

use crate::body::EdgeBody;
use crate::cache::{Body, Found, Object};
use crate::fetch::{Fetched, Upstream};
use crate::flights::{Join, Leader, Shared, Waited};
use crate::key::{CacheKey, KeyRule, Keyed, Vary};
use crate::manifests::Plan;
use crate::respond::{Answer, Refusal, Rendered, Served, StreamTimeouts, Tier};
use crate::routes::Site;
use crate::Edge;

/// How long a request waits for another's fetch of the same object before it goes to the
/// origin itself (nginx's `proxy_cache_lock_timeout`, whose default this is).
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the phases know about one request.
struct Ctx<'r> {
    edge: &'r Arc<Edge>,
    /// The request without its body.
    req: &'r Request<()>,
    /// Its body, taken by a request passed to the origin with it (methods other than GET and
    /// HEAD); a GET's is never read.
    body: std::sync::Mutex<Option<Incoming>>,
    /// Set only when there is a log line to time.
    started: Option<Instant>,
    /// Lower-cased, without port or trailing dot.
    host: Cow<'r, str>,
    /// The viewer's address, as the trusted proxies tell it.
    client: IpAddr,
    /// Whether the request came over TLS (for `originProtocol` MATCH).
    tls: bool,
    head: bool,
    /// The resource serving the host, if any (looked up once: the site's Arc outlives a
    /// reload in flight).
    site: Option<Arc<Site>>,
    /// In `report` mode, why the token would have refused the request (for the log line).
    reported: std::sync::OnceLock<&'static str>,
    /// The token's refusal explained, for a request with the resource's debug secret.
    debug: std::sync::OnceLock<Debug>,
}

/// The token's refusal explained to an operator (`X-Tollgate-Debug`).
struct Debug {
    reason: &'static str,
    detail: String,
    /// For a wrong token: the string the current key hashes, the key masked.
    hashed: Option<String>,
}

/// What phase 4 decides about the response, for the respond phase.
struct Shaping<'r> {
    /// The manifest rewrite, when the response is one.
    rewrite: Option<Plan>,
    /// The request headers the answer honours: a rewritten manifest honours no range or
    /// validator, since they refer to the origin's bytes.
    headers: Cow<'r, HeaderMap>,
}

/// Handles one request from `peer`; `tls` says whether it came over TLS.
pub(crate) async fn handle(
    edge: Arc<Edge>,
    req: Request<Incoming>,
    peer: IpAddr,
    tls: bool,
) -> Response<EdgeBody> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, ());
    let host = host_key(req.uri(), req.headers());
    let ctx = Ctx {
        edge: &edge,
        req: &req,
        body: std::sync::Mutex::new(Some(body)),
        started: edge.log.enabled().then(Instant::now),
        site: edge.routes.load().get(&host).cloned(),
        host,
        client: edge.trusted.client_addr(
            peer,
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes()),
        ),
        tls,
        head: req.method() == Method::HEAD,
        reported: std::sync::OnceLock::new(),
        debug: std::sync::OnceLock::new(),
    };
    let mut shaping = Shaping {
        rewrite: None,
        headers: Cow::Borrowed(req.headers()),
    };
    let answer = decide(&ctx, &mut shaping).await;
    let done = respond(&ctx, shaping, answer);
    log_and_count(&ctx, &done);
    done.resp
}

/// Phases 1 to 6: what to answer.
async fn decide<'r>(ctx: &Ctx<'r>, shaping: &mut Shaping<'r>) -> Answer {
    let site = match route(ctx) {
        Ok(site) => site,
        Err(refused) => return Answer::Refused(refused),
    };
    if let Some(answer) = redirect_to_https(ctx, site).or_else(|| preflight(ctx, site)) {
        return answer;
    }
    let raw = raw_target(ctx.req);
    let target = match parse_target(raw) {
        Ok(t) => t,
        Err(refused) => return Answer::Refused(refused),
    };
    match gate(ctx, site, &target) {
        Ok(reported) => {
            if let Some(reason) = reported {
                let _ = ctx.reported.set(reason);
            }
        }
        Err(refused) => return Answer::Refused(refused),
    }
    if let Err(refused) = access(ctx, site) {
        return Answer::Refused(refused);
    }
    let mut keyed = plan(ctx, shaping, site, &target);
    // The key may become a variant's (`Vary`) while the target stays.
    let origin_target = std::mem::take(&mut keyed.origin_target);
    let up = Upstream {
        site,
        https: site.res.origin_https(ctx.tls),
        target: &origin_target,
        viewer: Some(crate::origin::Viewer {
            headers: ctx.req.headers(),
            client: ctx.client,
            tls: ctx.tls,
        }),
    };
    if !matches!(*ctx.req.method(), Method::GET | Method::HEAD) {
        return pass_through(ctx, site, &keyed, up).await;
    }
    let answer = loop {
        if let Some(hit) = lookup(ctx.edge, &mut keyed, ctx.req.headers()) {
            break hit;
        }
        if let Some(hit) = lookup_disk(ctx.edge, &keyed, up).await {
            break hit;
        }
        if let Some(answer) = fetch_on_miss(ctx, &shaping.headers, &keyed, up).await {
            break answer;
        }
    };
    if matches!(
        answer,
        Answer::Object {
            served: Served::Updating,
            ..
        }
    ) {
        revalidate_in_background(ctx, site, &keyed, up);
    }
    match &answer {
        Answer::Object { obj, .. } if ahead_of_fill(obj, &shaping.headers) => {
            stream(ctx, &shaping.headers, up).await
        }
        _ => answer,
    }
}

/// Whether a range asked of `obj` starts more than a slice past what its fill has received:
/// the viewer (a player seeking into a film still arriving) then gets the range from the
/// origin now rather than after everything before it.
fn ahead_of_fill(obj: &Object, headers: &HeaderMap) -> bool {
    let Body::Sliced(sliced) = &obj.body else {
        return false;
    };
    let (Some(at), Some(len)) = (sliced.filling_at(), sliced.len()) else {
        return false;
    };
    crate::respond::range_start(headers, len)
        .is_some_and(|start| start > at.saturating_add(crate::slices::SLICE_BYTES))
}

/// Phase 1: the resource serving the Host, and whether it answers the method.
fn route<'c>(ctx: &'c Ctx<'_>) -> Result<&'c Arc<Site>, Refusal> {
    // Two Host headers: which one names the resource is ambiguous, so nginx refuses them.
    let mut hosts = ctx.req.headers().get_all(header::HOST).iter();
    if hosts.next().is_some() && hosts.next().is_some() {
        return Err(Refusal::Own {
            status: StatusCode::BAD_REQUEST,
            text: "400 Bad Request: more than one Host header\n",
            reason: "duplicate_host",
        });
    }
    let Some(site) = &ctx.site else {
        ctx.edge.metrics.unknown_host.fetch_add(1, Relaxed);
        return Err(Refusal::Own {
            status: StatusCode::NOT_FOUND,
            text: "404 Not Found: no resource serves this host\n",
            reason: "unknown_host",
        });
    };
    let methods = site.res.methods;
    if !methods.allows(ctx.req.method().as_str()) {
        ctx.edge.metrics.bad_method.fetch_add(1, Relaxed);
        return Err(Refusal::MethodNotAllowed(methods));
    }
    Ok(site)
}

/// Phase 1, `redirect_http_to_https`: a request that came without TLS gets a 301 to the same
/// URL over HTTPS, its query (the token with it) kept.
fn redirect_to_https(ctx: &Ctx<'_>, site: &Site) -> Option<Answer> {
    if !site.res.redirect_https || ctx.tls {
        return None;
    }
    let authority = ctx
        .req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| ctx.req.headers().get(header::HOST)?.to_str().ok())
        .unwrap_or(&ctx.host);
    // The viewer's port is the HTTP one: the HTTPS URL takes the default port.
    let host = tollgate_token::url::host_of_authority(authority.as_bytes());
    let host = std::str::from_utf8(host).unwrap_or(&ctx.host);
    let location = format!("https://{host}{}", raw_target(ctx.req));
    Some(match http::HeaderValue::from_str(&location) {
        Ok(v) => Answer::Redirect(v),
        Err(_) => Answer::Refused(Refusal::Own {
            status: StatusCode::BAD_REQUEST,
            text: "400 Bad Request: the Host header is not a hostname\n",
            reason: "bad_host",
        }),
    })
}

/// Phase 1, `cors`: a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`, the method allowed by `allowedHttpMethods`) answered by the
/// edge itself, before the token: a preflight carries no credentials and gets no content, and
/// answering it lets the player read the token gate's 403 or 410 of the request that follows.
fn preflight(ctx: &Ctx<'_>, site: &Site) -> Option<Answer> {
    let cors = site.res.cors.as_ref()?;
    let h = ctx.req.headers();
    if ctx.req.method() != Method::OPTIONS || !h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let origin = h.get(header::ORIGIN)?;
    Some(Answer::Preflight {
        allow_origin: cors
            .allow_origin(Some(origin.as_bytes()))
            .and_then(|v| http::HeaderValue::from_bytes(v).ok()),
        methods: site.res.methods,
        headers: h.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned(),
    })
}

/// Phase 2: the request target as nginx reads it.
fn parse_target(raw: &str) -> Result<Target<'_>, Refusal> {
    Target::parse(raw.as_bytes()).map_err(|_| Refusal::Gate {
        status: 400,
        reason: "bad_request",
    })
}

/// Phase 3: the secure token, when the resource has one. A link that matched counts for its
/// key (current or previous, with when: the data a key rotation is decided on). In `report`
/// mode a link the token would refuse is counted with its reason and let through: the reason
/// comes back for the access log.
fn gate(ctx: &Ctx<'_>, site: &Site, target: &Target<'_>) -> Result<Option<&'static str>, Refusal> {
    let Some(sk) = &site.res.secure_key else {
        return Ok(None);
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let bound = sk.binding(ctx.client);
    // With query string forwarding, a token for the file's directory is accepted too.
    let verdict = if site.res.forwarding.is_some() {
        verify_in_directory_as(target, &sk.keys, bound.as_ref(), now)
    } else {
        verify_as(target, &sk.keys, bound.as_ref(), now)
    };
    // A valid link may have been revoked (`secure_key_revocations`).
    let revocations = &site.res.revocations;
    let outcome = match verdict {
        Ok(v) if revocations.revokes(&v.token, target.uri(), v.expires) => Err((403, "revoked")),
        Ok(v) => Ok(v.key_index),
        Err(r) => Err((r.status(), r.reason())),
    };
    let (status, reason) = match outcome {
        Ok(key_index) => {
            site.metrics.key_matched(key_index, now);
            return Ok(None);
        }
        Err(refused) => refused,
    };
    explain_to_operator(ctx, sk, bound, now, reason);
    if sk.report {
        site.metrics.reported(reason);
        return Ok(Some(reason));
    }
    Err(Refusal::Gate { status, reason })
}

/// With the resource's debug secret in `X-Tollgate-Debug` (compared in constant time, never
/// logged), the token's refusal explained for the answer's headers: its reason, the detail
/// `tollgate verify` gives, and for a wrong token the string the current key hashes (the key
/// masked). Without it nothing changes.
fn explain_to_operator(
    ctx: &Ctx<'_>,
    sk: &tollgate_model::ValidSecureKey,
    bound: Option<tollgate_token::RemoteAddr>,
    now: i64,
    reason: &'static str,
) {
    let Some(given) = ctx.req.headers().get("x-tollgate-debug") else {
        return;
    };
    if !sk.debug_allowed(given.as_bytes()) {
        return;
    }
    if reason == "revoked" {
        let _ = ctx.debug.set(Debug {
            reason,
            detail: "a valid link, revoked (secure_key_revocations)".into(),
            hashed: None,
        });
        return;
    }
    let e = tollgate_token::explain_as(raw_target(ctx.req).as_bytes(), &sk.keys, bound, now);
    let v = e.verdict();
    let hashed = e.expected.first().map(|(h, _)| h.clone());
    let _ = ctx.debug.set(Debug {
        reason: v.reason,
        detail: v.detail,
        hashed: hashed.filter(|_| v.reason == "token_mismatch"),
    });
}

/// Phase 3, after the token (nginx runs `secure_link`'s `if` in its rewrite phase, before
/// the access phase of `allow`/`deny`; a link that expired is told so, whoever asks): the
/// resource's access lists. A resource with `country_acl` on an edge without a GeoIP database
/// is refused (503), never let through.
fn access(ctx: &Ctx<'_>, site: &Site) -> Result<(), Refusal> {
    let access = &site.res.access;
    if access.is_empty() {
        return Ok(());
    }
    let country = if access.needs_country() {
        let Some(db) = &ctx.edge.geoip else {
            return Err(Refusal::Gate {
                status: 503,
                reason: "no_geoip_db",
            });
        };
        db.country(ctx.client)
    } else {
        None
    };
    let h = ctx.req.headers();
    access
        .check(&tollgate_model::Seen {
            client: ctx.client,
            referer: h.get(header::REFERER).map(|v| v.as_bytes()),
            user_agent: h.get(header::USER_AGENT).map(|v| v.as_bytes()),
            country,
        })
        .map_err(|reason| Refusal::Gate {
            status: 403,
            reason,
        })
}

/// Phase 4: the manifest rewrite (and with it the headers honoured), and the cache key.
fn plan<'r>(ctx: &Ctx<'r>, shaping: &mut Shaping<'r>, site: &Site, target: &Target<'_>) -> Keyed {
    shaping.rewrite = crate::manifests::plan(&site.res, target, ctx.client);
    if shaping.rewrite.is_some() {
        shaping.headers = crate::manifests::request_headers(ctx.req.headers());
    }
    KeyRule::of(&site.res).key(target)
}

/// Phase 5: a fresh stored object in the memory tier, or one within its
/// `stale-while-revalidate` (the caller starts its revalidation). A URL whose responses vary
/// (`Vary`) turns `keyed` into the key of the variant `headers` select, for the phases after.
pub(crate) fn lookup(edge: &Edge, keyed: &mut Keyed, headers: &HeaderMap) -> Option<Answer> {
    let now = Instant::now();
    let memory = &edge.tiers.memory;
    let mut found = memory.find(&keyed.key, now);
    if let Found::Varies(rule) = &found {
        if !keyed.key.is_variant() {
            keyed.key = keyed.key.variant(&rule.fields, headers);
            found = memory.find(&keyed.key, now);
        }
    }
    let found = match found {
        Found::Object(o) => usable(&o, now).map(|how| (o, how)),
        Found::Varies(_) | Found::Nothing => None,
    };
    let Some((obj, how)) = found else {
        edge.metrics.memory_misses.fetch_add(1, Relaxed);
        return None;
    };
    Some(served(obj, how, now))
}

/// How a stored object may answer without the origin at `now`: fresh, or stale within its
/// `stale-while-revalidate` while it is revalidated in the background.
fn usable(obj: &Object, now: Instant) -> Option<Served> {
    if obj.is_fresh(now) {
        Some(Served::Hit)
    } else if now < obj.updating_until {
        Some(Served::Updating)
    } else {
        None
    }
}

/// Revalidates (or fetches again) the object of `keyed` in a task of its own, unless a fetch
/// of it is under way: the viewers are answered from the stale copy meanwhile, and those that
/// come once it is past its window wait on this fetch as on any other. The viewer's headers go
/// with it (a variant is revalidated with the request fields that select it).
fn revalidate_in_background(ctx: &Ctx<'_>, site: &Arc<Site>, keyed: &Keyed, up: Upstream<'_>) {
    // Joined here: while it runs, the other viewers of the stale copy copy nothing.
    let Join::Lead(leader) = ctx.edge.flights.join(&keyed.key) else {
        return;
    };
    let (edge, site, key) = (Arc::clone(ctx.edge), Arc::clone(site), keyed.key.clone());
    let target = up.target.to_vec();
    let headers = ctx.req.headers().clone();
    let (client, tls, https) = (ctx.client, ctx.tls, up.https);
    tokio::spawn(async move {
        let up = Upstream {
            site: &site,
            https,
            target: &target,
            viewer: Some(crate::origin::Viewer {
                headers: &headers,
                client,
                tls,
            }),
        };
        let keyed = Keyed {
            key: key.clone(),
            origin_target: Vec::new(),
        };
        // What it gets is stored (or not) by `lead`; no viewer waits for it.
        let _ = lead(&edge, &HeaderMap::new(), &keyed, up, leader).await;
    });
}

/// Phase 5, second tier: an object on disk, brought into the memory tier (stale ones too, for
/// the miss to fall back on or revalidate); an answer when [`usable`].
pub(crate) async fn lookup_disk(edge: &Edge, keyed: &Keyed, up: Upstream<'_>) -> Option<Answer> {
    let tiers = &edge.tiers;
    let disk = tiers.disk.as_ref()?;
    // A copy in memory, stale, is as new as the disk's or newer: the miss revalidates it.
    if tiers.memory.get(&keyed.key, Instant::now()).is_some() {
        return None;
    }
    let mark = tiers.memory.purge_mark();
    let mut obj = disk.load(&keyed.key).await?;
    // The disk keeps the stale window, not the resource's `stale: updating`, read again here.
    if up.site.res.stale.is_some_and(|on| on.updating()) {
        if let Some(o) = Arc::get_mut(&mut obj) {
            o.updating_until = o.updating_until.max(o.stale_until);
        }
    }
    crate::fetch::attach_origin(edge, up, &obj);
    let now = Instant::now();
    if now >= obj.keep_until {
        return None;
    }
    tiers
        .memory
        .insert_unless_purged(keyed.key.clone(), Arc::clone(&obj), mark);
    let served = usable(&obj, now)?;
    Some(Answer::Object {
        obj,
        served,
        reason: "",
        now,
        tier: Tier::Disk,
    })
}

/// Phase 6: the miss. `None` when the lookup is to run again (a fetch of the key ended in
/// between, or its leader went away).
async fn fetch_on_miss(
    ctx: &Ctx<'_>,
    headers: &HeaderMap,
    keyed: &Keyed,
    up: Upstream<'_>,
) -> Option<Answer> {
    let edge = ctx.edge;
    let key = &keyed.key;
    // Checked only on a miss, so a hit costs one cache lookup.
    if edge.large.contains(key, Instant::now()) {
        return Some(stream(ctx, headers, up).await);
    }
    let joined = Instant::now();
    match edge.flights.join(key) {
        Join::Lead(leader) => match lead(edge, headers, keyed, up, leader).await {
            Led::Answer(a) => Some(a),
            Led::Stream => Some(stream(ctx, headers, up).await),
            Led::Again => None,
        },
        Join::Follow(follower) => match follower.wait(LOCK_TIMEOUT).await {
            // The leader is slow: go to the origin without storing, as nginx does after
            // proxy_cache_lock_timeout.
            Waited::TimedOut => Some(stream(ctx, headers, up).await),
            Waited::LeaderGone => None,
            // A response that varies, fetched for a request that did not know it would: for
            // this request only if it selects the same variant; else its own request goes to
            // the origin (once: not another round of lookups and flights).
            Waited::Done(Shared::Stored(obj)) if !same_variant(edge, key, headers, &obj) => {
                Some(stream(ctx, headers, up).await)
            }
            Waited::Done(Shared::Stored(obj)) => {
                // A follower of a leader that fell back on the stale copy gets it as stale too;
                // one received after this request came (stale at once: `no-cache`,
                // `max-age=0`) answers it as a hit.
                let now = Instant::now();
                let how = if obj.is_fresh(now) || obj.stored_at >= joined {
                    Served::Hit
                } else {
                    Served::Stale
                };
                Some(served(obj, how, now))
            }
            Waited::Done(Shared::Failed(e)) => Some(Answer::Failed(e)),
            Waited::Done(Shared::FetchYourself) => Some(stream(ctx, headers, up).await),
        },
    }
}

/// Whether `obj`, shared by the fetch of `key`, is the variant a request with `headers`
/// selects (always, for a response without `Vary`).
fn same_variant(edge: &Edge, key: &CacheKey, headers: &HeaderMap, obj: &Arc<Object>) -> bool {
    match crate::key::vary_of(&obj.headers) {
        Vary::Nothing => true,
        Vary::Never => false,
        Vary::Fields(fields) => {
            let mine = key.primary().variant(&fields, headers);
            *key == mine
                || edge
                    .tiers
                    .memory
                    .get(&mine, Instant::now())
                    .is_some_and(|o| Arc::ptr_eq(&o, obj))
        }
    }
}

/// What the fetch of a miss got.
pub(crate) enum Led {
    Answer(Answer),
    /// Not stored (larger than the largest object stored, or a slice of a response that may
    /// not be): the followers were told to fetch for themselves, and this request is to
    /// stream.
    Stream,
    /// Stored by another fetch meanwhile: look again.
    Again,
}

/// Phase 6 for the request that fetches: the origin's object, stored when it may be and handed
/// to the followers; a stale copy within its window when the origin fails.
pub(crate) async fn lead(
    edge: &Arc<Edge>,
    headers: &HeaderMap,
    keyed: &Keyed,
    up: Upstream<'_>,
    leader: Leader,
) -> Led {
    let key = &keyed.key;
    let now = Instant::now();
    // A fetch may have ended between the lookup and the join: it stores its object before its
    // flight ends, so a second look sees it (else the origin is asked twice; rare, seen as a
    // flaky test of one fetch for twenty viewers).
    let stored = edge.tiers.memory.get(key, now);
    if stored.as_ref().is_some_and(|o| o.is_fresh(now)) {
        return Led::Again;
    }
    let mark = edge.tiers.memory.purge_mark();
    let viewer = up.viewer.map(|v| v.headers);
    let fetched = crate::fetch::object(edge, up, key, headers, stored.as_ref()).await;
    // `stored` is looked up after the join: a copy purged since the first lookup is never
    // served. It may be kept past its stale window (to be revalidated): served stale only
    // within it.
    if let Some(stale) = stored
        .as_ref()
        .filter(|o| fetched.calls_for_stale(up.site.res.stale) && Instant::now() < o.stale_until)
        .cloned()
    {
        leader.finish(Shared::Stored(Arc::clone(&stale)));
        return Led::Answer(Answer::Object {
            obj: stale,
            served: Served::Stale,
            reason: "origin_failed_served_stale",
            now: Instant::now(),
            tier: Tier::Memory,
        });
    }
    Led::Answer(match fetched {
        Fetched::Storable {
            obj,
            fill,
            key: into,
        } => {
            let stored =
                edge.tiers
                    .memory
                    .insert_unless_purged(into.clone(), Arc::clone(&obj), mark);
            match fill {
                Some(pending) => {
                    crate::fetch::spawn_fill(edge, into, Arc::clone(&obj), pending, mark, stored)
                }
                None => {
                    if let Some(disk) = edge.tiers.disk.as_ref().filter(|_| stored) {
                        disk.commit(into, Arc::clone(&obj), mark);
                    }
                }
            }
            leader.finish(Shared::Stored(Arc::clone(&obj)));
            Answer::Object {
                obj,
                served: Served::Miss,
                reason: "",
                now: Instant::now(),
                tier: Tier::Origin,
            }
        }
        // Still valid at the origin (304): the stored body with the new headers.
        Fetched::Refreshed(obj)
            if obj.keep_until <= obj.stored_at
                || crate::fetch::storage_key(edge, key, viewer, &obj.headers).as_ref()
                    != Some(key) =>
        {
            // The 304 made it unstorable (no-store, a cookie, no freshness, a `Vary` it did
            // not have): this viewer's answer alone. The stored copy goes, unless only this
            // viewer's `Authorization` kept the answer from being shared.
            if !up.viewer.is_some_and(|v| v.authorized()) {
                edge.tiers
                    .memory
                    .remove_this(key, stored.as_ref().unwrap_or(&obj));
            }
            leader.finish(Shared::FetchYourself);
            Answer::Object {
                obj,
                served: Served::Revalidated,
                reason: "",
                now: Instant::now(),
                tier: Tier::Memory,
            }
        }
        // Stored where the stale copy was found (a variant's key, for a response with `Vary`).
        Fetched::Refreshed(obj) => {
            if edge
                .tiers
                .memory
                .insert_unless_purged(key.clone(), Arc::clone(&obj), mark)
            {
                if let Some(disk) = &edge.tiers.disk {
                    disk.commit(key.clone(), Arc::clone(&obj), mark);
                }
            }
            leader.finish(Shared::Stored(Arc::clone(&obj)));
            Answer::Object {
                obj,
                served: Served::Revalidated,
                reason: "",
                now: Instant::now(),
                tier: Tier::Memory,
            }
        }
        // A response that may not be stored is this viewer's alone (a cookie, private,
        // no-store): the followers fetch for themselves, as with nginx's proxy_cache_lock.
        Fetched::Pass(resp) => {
            leader.finish(Shared::FetchYourself);
            Answer::Streamed(resp)
        }
        Fetched::TooLarge => {
            edge.large.insert(key.clone(), Instant::now());
            leader.finish(Shared::FetchYourself);
            return Led::Stream;
        }
        Fetched::Stream => {
            leader.finish(Shared::FetchYourself);
            return Led::Stream;
        }
        Fetched::Failed(e) => {
            leader.finish(Shared::Failed(e));
            Answer::Failed(e)
        }
    })
}

/// An answer from an object of the memory tier.
fn served(obj: Arc<Object>, served: Served, now: Instant) -> Answer {
    Answer::Object {
        obj,
        served,
        reason: "",
        now,
        tier: Tier::Memory,
    }
}

/// The largest request body passed to the origin (a viewer's `POST`, `PUT`...): larger ones
/// are refused with 413 when their `Content-Length` says so, and cut (a 502) when it does not.
pub const MAX_REQUEST_BODY: u64 = 64 << 20;

/// A request with another method than `GET`/`HEAD` (allowed by `allowedHttpMethods`): to the
/// origin with its body, nothing stored. A success (2xx, 3xx) invalidates what the cache holds
/// for its URL (RFC 9111 4.4), every variant of it included, and for the URLs its `Location`
/// and `Content-Location` name on the same resource.
async fn pass_through(ctx: &Ctx<'_>, site: &Site, keyed: &Keyed, up: Upstream<'_>) -> Answer {
    let declared = ctx
        .req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY) {
        return Answer::Refused(Refusal::Own {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            text: "413 Content Too Large: the request body is over 64 MiB\n",
            reason: "body_too_large",
        });
    }
    let body = ctx.body.lock().ok().and_then(|mut b| b.take());
    let body = match body {
        Some(b) => {
            use http_body_util::BodyExt as _;
            http_body_util::Limited::new(b, MAX_REQUEST_BODY as usize).boxed_unsync()
        }
        None => crate::origin::no_body(),
    };
    let method = ctx.req.method().clone();
    match crate::fetch::unsafe_request(&ctx.edge.origin, up, method, body).await {
        Ok(resp) => {
            let s = resp.status();
            if s.is_success() || s.is_redirection() {
                let mut keys = vec![keyed.key.clone()];
                for name in [header::LOCATION, header::CONTENT_LOCATION] {
                    if let Some(k) = resp
                        .headers()
                        .get(name)
                        .and_then(|v| same_resource_key(ctx, site, v.as_bytes()))
                    {
                        keys.push(k);
                    }
                }
                ctx.edge.invalidate(KeyRule::of(&site.res), &keys);
            }
            Answer::Streamed(resp)
        }
        Err(e) => Answer::Failed(e),
    }
}

/// The cache key of a `Location`-style reference (a path, or an absolute URL on one of the
/// resource's hostnames); `None` for another host (RFC 9111 4.4: never invalidated).
fn same_resource_key(ctx: &Ctx<'_>, site: &Site, reference: &[u8]) -> Option<CacheKey> {
    let reference = std::str::from_utf8(reference).ok()?;
    let target = if reference.starts_with('/') && !reference.starts_with("//") {
        reference.to_owned()
    } else {
        let uri: http::Uri = reference.parse().ok()?;
        let host = uri.host()?.to_ascii_lowercase();
        if !site.res.hostnames().contains(&host) && host != ctx.host {
            return None;
        }
        uri.path_and_query()
            .map_or("/".into(), |p| p.as_str().to_owned())
    };
    let target = Target::parse(target.as_bytes()).ok()?;
    Some(KeyRule::of(&site.res).key(&target).key)
}

/// The origin's response streamed through unstored, with the viewer's `Range`.
async fn stream(ctx: &Ctx<'_>, headers: &HeaderMap, up: Upstream<'_>) -> Answer {
    let range = headers.get(header::RANGE);
    match crate::fetch::request(&ctx.edge.origin, up, range, ctx.head).await {
        Ok(resp) => Answer::Streamed(resp),
        Err(e) => Answer::Failed(e),
    }
}

/// Phase 7: the response, then the manifest rewrite of a playlist's body.
fn respond(ctx: &Ctx<'_>, shaping: Shaping<'_>, answer: Answer) -> Rendered {
    let timeouts = StreamTimeouts {
        read: ctx.edge.origin.timeouts.read,
        send: ctx.edge.send_timeout,
    };
    // A stored object answering as it is (not rewritten): its body may be compressed once.
    let compresses = ctx.site.as_ref().is_some_and(|s| s.res.compression.is_on());
    // A preflight carries its CORS headers already.
    let is_preflight = matches!(answer, Answer::Preflight { .. });
    let stored = match &answer {
        Answer::Object { obj, .. } if compresses && shaping.rewrite.is_none() => {
            Some(Arc::clone(obj))
        }
        _ => None,
    };
    let mut done = crate::respond::render(
        answer,
        &shaping.headers,
        ctx.head,
        timeouts,
        &ctx.edge.tiers,
    );
    if let (Some(plan), Some(site)) = (shaping.rewrite, &ctx.site) {
        if let Some(len) = crate::manifests::apply(plan, site, &mut done.resp, ctx.head) {
            done.bytes = len;
        }
    }
    if let Some(site) = &ctx.site {
        let res = &site.res;
        if res.compression.is_on() {
            let req = ctx.req.headers();
            let sent = crate::compress::apply(
                &res.compression,
                req,
                ctx.head,
                stored.as_deref(),
                &mut done.resp,
            );
            if let Some(n) = sent {
                done.bytes = n;
            }
        }
        if let Some(hiding) = &res.hiding {
            crate::respond::hide_headers(hiding, &mut done.resp);
        }
        if let Some(cors) = res.cors.as_ref().filter(|_| !is_preflight) {
            let origin = ctx.req.headers().get(header::ORIGIN);
            crate::respond::cors(cors, origin, &mut done.resp);
        }
        crate::respond::browser_cache(res.browser_cache_secs, &mut done.resp, SystemTime::now());
        crate::respond::add_headers(&res.response_headers, &mut done.resp);
        if let Some(limit) = res.bandwidth {
            throttle(limit, ctx.req, &mut done.resp);
        }
    }
    if let Some(d) = ctx.debug.get() {
        let h = done.resp.headers_mut();
        let text = |s: &str| {
            // Visible ASCII only: a path's other bytes become `?`.
            let clean: String = s
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            http::HeaderValue::from_str(&clean).ok()
        };
        for (name, value) in [
            ("x-tollgate-reason", Some(d.reason.to_owned())),
            ("x-tollgate-detail", Some(d.detail.clone())),
            ("x-tollgate-hashed", d.hashed.clone()),
        ] {
            if let Some(v) = value.as_deref().and_then(text) {
                h.insert(http::HeaderName::from_static(name), v);
            }
        }
    }
    done
}

/// `limit_bandwidth` on an answer with a body: its rate from the option, or with `dynamic` from
/// the request's `speed` and `buffer` (no limit without a valid `speed`).
fn throttle(limit: tollgate_model::Bandwidth, req: &Request<()>, resp: &mut Response<EdgeBody>) {
    let (rate, after) = match limit {
        tollgate_model::Bandwidth::Static { rate, after } => (rate, after),
        tollgate_model::Bandwidth::Dynamic => {
            let args = req.uri().query().unwrap_or("").as_bytes();
            match crate::throttle::from_query(args) {
                Some(figures) => figures,
                None => return,
            }
        }
    };
    if http_body::Body::is_end_stream(resp.body()) {
        return;
    }
    let body = std::mem::replace(resp.body_mut(), EdgeBody::empty());
    *resp.body_mut() =
        EdgeBody::Rewritten(Box::new(crate::throttle::Throttled::new(body, rate, after)));
}

/// Phase 8: the resource's counters, and a log line for every response (refusals of unknown
/// hosts and methods included).
fn log_and_count(ctx: &Ctx<'_>, done: &Rendered) {
    if let (Some(site), Some(o)) = (&ctx.site, done.outcome) {
        site.metrics.record(o, done.bytes);
    }
    if !ctx.edge.log.enabled() {
        return;
    }
    let path = raw_target(ctx.req).split('?').next().unwrap_or("");
    ctx.edge.log.write(serde_json::json!({
        "ts": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        "resource": ctx.site.as_ref().map(|s| s.res.id),
        "host": ctx.host,
        "client": ctx.client.to_string(),
        "method": ctx.req.method().as_str(),
        "path": path,
        "status": done.resp.status().as_u16(),
        "reason": done.reason,
        "token_report": ctx.reported.get().copied(),
        "cache": done.served.map(Served::as_str),
        "tier": done.tier.map(Tier::as_str),
        "bytes": done.bytes,
        "ms": ctx.started.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0),
    }));
}

fn raw_target(req: &Request<()>) -> &str {
    req.uri().path_and_query().map_or("/", |p| p.as_str())
}

/// The request's host from an absolute URI or the Host header, as the routes key it; borrowed
/// when it already is (the common case).
fn host_key<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Cow<'a, str> {
    let raw = uri
        .host()
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    // Cut at an ASCII byte, so still UTF-8.
    let host_len = tollgate_token::url::host_of_authority(raw.as_bytes()).len();
    let host = raw[..host_len].trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names() {
        let h = |uri: &str, host: Option<&'static str>| {
            let mut m = http::HeaderMap::new();
            if let Some(v) = host {
                m.insert(http::header::HOST, http::HeaderValue::from_static(v));
            }
            super::host_key(&uri.parse().unwrap(), &m).into_owned()
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
}
