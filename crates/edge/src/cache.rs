//! The in-memory cache: bounded in bytes, TinyLFU admission (moka), so a scan of one-off
//! objects does not push out the hot ones; each entry lives until the end of its stale window.
//! Concurrent misses of one key share one origin fetch ([`Flights`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use moka::sync::SegmentedCache as Moka;
use moka::Expiry;
use tokio::sync::watch;

/// What identifies a stored object: the resource and its normalised path with the query that
/// reaches the origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Resource id.
    pub resource: u64,
    /// `$uri`, then `?` and the forwarded query when the resource keeps it in the key.
    pub path: Box<[u8]>,
}

/// A stored response.
#[derive(Debug)]
pub struct Object {
    /// Status from the origin.
    pub status: StatusCode,
    /// End-to-end headers from the origin (no hop-by-hop, no Content-Length).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// When it was received.
    pub stored_at: Instant,
    /// The origin's `Age` when it was received.
    pub initial_age: u64,
    /// Fresh until then.
    pub fresh_until: Instant,
    /// Servable while the origin fails until then.
    pub stale_until: Instant,
    /// `ETag`, for conditional requests.
    pub etag: Option<HeaderValue>,
    /// `Last-Modified`, for conditional requests.
    pub last_modified: Option<SystemTime>,
}

impl Object {
    /// Whether it is still fresh.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// The `Age` to send.
    pub fn age(&self, now: Instant) -> u64 {
        self.initial_age + now.saturating_duration_since(self.stored_at).as_secs()
    }

    /// Bytes this object costs: body, headers with their allocations, and a fixed share for
    /// the entry, its key, the cache's own bookkeeping and the allocator's overhead, so that
    /// `--cache-size` bounds resident memory even for small objects. The 1280 is measured:
    /// `bench/cache-memory.sh` fills the cache with 1 KiB objects, each ~2.9 KiB resident;
    /// with 512 here, a 128 MiB cache held 178 MiB, with 1280, 139 MiB (6 MiB of it before
    /// the first object; glibc's allocator); with mimalloc, 141 MiB (14 MiB before).
    fn weight(&self, key: &CacheKey) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 96)
            .sum();
        u32::try_from(self.body.len() + headers + key.path.len() + 1280).unwrap_or(u32::MAX)
    }
}

struct UntilStale;

impl Expiry<CacheKey, Arc<Object>> for UntilStale {
    fn expire_after_create(&self, _: &CacheKey, v: &Arc<Object>, now: Instant) -> Option<Duration> {
        Some(v.stale_until.saturating_duration_since(now))
    }
    fn expire_after_update(
        &self,
        _: &CacheKey,
        v: &Arc<Object>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.stale_until.saturating_duration_since(now))
    }
}

/// The object cache.
#[derive(Clone)]
pub struct Cache {
    inner: Moka<CacheKey, Arc<Object>>,
    /// Largest object stored; larger ones are streamed through.
    pub max_object_bytes: u64,
    /// Raised by every purge: a fetch that began before a purge does not store what it got,
    /// which may be the very copy the purge was meant to remove.
    purges: Arc<std::sync::atomic::AtomicU64>,
}

impl Cache {
    /// A cache of at most `capacity_bytes`.
    pub fn new(capacity_bytes: u64, max_object_bytes: u64) -> Cache {
        // Segments, each with its own hash table and eviction order (and a share of the
        // capacity): moka rehashes a table whole as evictions leave tombstones in it, and a
        // worker stalls for that time; one table of a full 1 GiB cache of small objects made
        // the misses' p99 worse than nginx's. One segment per 64 MiB, at most 16.
        let segments = (capacity_bytes >> 26).clamp(1, 16) as usize;
        let inner = Moka::builder(segments)
            .max_capacity(capacity_bytes)
            .weigher(|k: &CacheKey, v: &Arc<Object>| v.weight(k))
            .expire_after(UntilStale)
            .support_invalidation_closures()
            .build();
        Cache {
            inner,
            max_object_bytes,
            purges: Arc::default(),
        }
    }

    /// The stored object for `key`, fresh or stale.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Object>> {
        self.inner.get(key)
    }

    /// Stores `obj`.
    pub fn insert(&self, key: CacheKey, obj: Arc<Object>) {
        self.inner.insert(key, obj);
    }

    /// A mark to take before an origin fetch, for [`Cache::insert_unless_purged`].
    pub fn purge_mark(&self) -> u64 {
        self.purges.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stores `obj` unless a purge happened since `mark` was taken (then the object is served
    /// to the requests waiting for it, but not kept). Returns whether it was stored.
    pub fn insert_unless_purged(&self, key: CacheKey, obj: Arc<Object>, mark: u64) -> bool {
        if self.purge_mark() != mark {
            return false;
        }
        self.inner.insert(key.clone(), obj);
        // A purge raises the mark before it registers its predicate, and moka applies a
        // predicate only to entries inserted before it: an insert that raced past the first
        // check is caught here.
        if self.purge_mark() != mark {
            self.inner.invalidate(&key);
            return false;
        }
        true
    }

    /// Drops the objects of `resource` that a purge names: exact URLs (normalised as requests
    /// are, so `/a%20b` and `/a b` are one object; a URL without a query also drops its query
    /// variants) or `*` patterns matched against the path.
    pub fn purge(&self, resource: u64, req: &tollgate_model::PurgeRequest) {
        self.purges
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        // Each branch only fails when invalidation closures are off, and `new` turns them on.
        if req.is_everything() {
            let _ = self
                .inner
                .invalidate_entries_if(move |k, _| k.resource == resource);
        } else if let Some(urls) = &req.urls {
            let keys: Vec<(Vec<u8>, bool)> = urls
                .iter()
                .filter_map(|u| {
                    let t = tollgate_token::Target::parse(u.as_bytes()).ok()?;
                    let mut key = Vec::new();
                    tollgate_token::sign::encode_path(&mut key, t.uri());
                    crate::proxy::push_forwarded_query(&mut key, t.args());
                    let exact_only = key.contains(&b'?');
                    Some((key, exact_only))
                })
                .collect();
            let _ = self.inner.invalidate_entries_if(move |k, _| {
                k.resource == resource
                    && keys.iter().any(|(u, exact_only)| {
                        *k.path == **u
                            || (!exact_only
                                && k.path.len() > u.len()
                                && k.path.starts_with(u)
                                && k.path[u.len()] == b'?')
                    })
            });
        } else if let Some(patterns) = req.paths.clone() {
            let _ = self.inner.invalidate_entries_if(move |k, _| {
                let path = k.path.split(|&b| b == b'?').next().unwrap_or_default();
                k.resource == resource
                    && patterns
                        .iter()
                        .any(|p| tollgate_model::glob_match(p.as_bytes(), path))
            });
        }
    }

    /// Bytes held (approximate: moka applies writes in batches).
    pub fn weighted_size(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.weighted_size()
    }

    /// Objects held.
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }
}

/// The outcome of a shared origin fetch, as the followers see it.
#[derive(Clone)]
pub enum Shared {
    /// The response, buffered (stored or not).
    Object(Arc<Object>, bool),
    /// The origin failed.
    Failed(crate::origin::OriginError),
    /// Too large to share: each follower fetches for itself.
    FetchYourself,
}

/// In-flight origin fetches, so that many concurrent misses of one key make one request.
#[derive(Default)]
pub struct Flights {
    inner: Mutex<HashMap<CacheKey, watch::Receiver<Option<Shared>>>>,
}

/// Whether this request leads the fetch of its key or follows another.
pub enum Role {
    /// Fetch, then call [`Leader::finish`].
    Leader(Leader),
    /// Wait on this for the leader's outcome.
    Follower(watch::Receiver<Option<Shared>>),
}

/// The request that fetches for everyone waiting on its key. Dropping it without `finish`
/// (the client went away) releases the followers, who then fetch again.
pub struct Leader {
    flights: Arc<Flights>,
    key: CacheKey,
    tx: watch::Sender<Option<Shared>>,
}

impl Leader {
    /// Hands the outcome to every follower.
    pub fn finish(self, outcome: Shared) {
        let _ = self.tx.send(Some(outcome));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Ok(mut m) = self.flights.inner.lock() {
            m.remove(&self.key);
        }
    }
}

impl Flights {
    /// Joins the fetch of `key`, or starts it.
    pub fn join(self: &Arc<Self>, key: &CacheKey) -> Role {
        let mut m = match self.inner.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(rx) = m.get(key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        m.insert(key.clone(), rx);
        Role::Leader(Leader {
            flights: Arc::clone(self),
            key: key.clone(),
            tx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_model::PurgeRequest;

    fn obj() -> Arc<Object> {
        let now = Instant::now();
        Arc::new(Object {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"x"),
            stored_at: now,
            initial_age: 0,
            fresh_until: now + Duration::from_secs(60),
            stale_until: now + Duration::from_secs(60),
            etag: None,
            last_modified: None,
        })
    }

    fn key(resource: u64, path: &str) -> CacheKey {
        CacheKey {
            resource,
            path: path.as_bytes().into(),
        }
    }

    fn urls(u: &[&str]) -> PurgeRequest {
        PurgeRequest {
            urls: Some(u.iter().map(|s| s.to_string()).collect()),
            paths: None,
        }
    }

    fn paths(p: &[&str]) -> PurgeRequest {
        PurgeRequest {
            urls: None,
            paths: Some(p.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn a_fetch_that_began_before_a_purge_is_not_stored() {
        let c = Cache::new(1 << 20, 1 << 20);
        let mark = c.purge_mark();
        c.purge(1, &urls(&["/a"]));
        assert!(!c.insert_unless_purged(key(1, "/a"), obj(), mark));
        assert!(c.get(&key(1, "/a")).is_none());
        let mark = c.purge_mark();
        assert!(c.insert_unless_purged(key(1, "/a"), obj(), mark));
        assert!(c.get(&key(1, "/a")).is_some());
    }

    #[test]
    fn purges_drop_what_they_name() {
        let c = Cache::new(1 << 20, 1 << 20);
        let all = ["/a", "/a?x=1", "/ab", "/b/c.jpg", "/my%20file.mp4"];
        let fill = || {
            for p in all {
                c.insert(key(1, p), obj());
            }
            c.insert(key(2, "/a"), obj());
        };
        let left = || {
            all.iter()
                .filter(|p| c.get(&key(1, p)).is_some())
                .copied()
                .collect::<Vec<_>>()
        };
        fill();
        c.purge(1, &urls(&["/a", "/my%20fil%65.mp4"]));
        assert_eq!(
            left(),
            ["/ab", "/b/c.jpg"],
            "a URL takes its query variants, and is normalised as requests are"
        );
        fill();
        c.purge(1, &urls(&["/a?x=1"]));
        assert_eq!(left(), ["/a", "/ab", "/b/c.jpg", "/my%20file.mp4"]);
        fill();
        c.purge(1, &paths(&["/b/*"]));
        assert_eq!(left(), ["/a", "/a?x=1", "/ab", "/my%20file.mp4"]);
        fill();
        c.purge(1, &paths(&[]));
        assert!(left().is_empty());
        assert!(
            c.get(&key(2, "/a")).is_some(),
            "other resources keep theirs"
        );
    }
}
