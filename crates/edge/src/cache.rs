//! The memory tier: bounded in bytes, S3-FIFO eviction (quick_cache), so a scan of one-off
//! objects does not push out the hot ones. It holds objects (status, headers, validators,
//! freshness, and the body of a small one) and, in the same table and the same budget, the
//! slices of large objects (`slices`), each evicted on its own; an object is served until the
//! end of its stale window.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::key::{CacheKey, KeyRule};
use crate::slices::{Sliced, SLICE_BYTES};

/// A stored response.
#[derive(Debug)]
pub struct Object {
    /// Status from the origin.
    pub status: StatusCode,
    /// End-to-end headers from the origin (no hop-by-hop, no Content-Length).
    pub headers: HeaderMap,
    pub body: Body,
    /// When it was received.
    pub stored_at: Instant,
    /// The origin's `Age` when it was received.
    pub initial_age: u64,
    pub fresh_until: Instant,
    /// Servable while the origin fails until then.
    pub stale_until: Instant,
    /// Servable stale until then while one request revalidates it in the background
    /// (`stale-while-revalidate`); `fresh_until` without it.
    pub updating_until: Instant,
    /// Kept until then: past `stale_until` when it has a validator, to be revalidated
    /// (`freshness::keep_until`); at or before `stored_at`, it is not to be stored at all.
    pub keep_until: Instant,
    /// `ETag`, for conditional requests.
    pub etag: Option<HeaderValue>,
    /// `Last-Modified`, for conditional requests.
    pub last_modified: Option<SystemTime>,
    /// A whole body compressed (`compress::Encoding::index`: Brotli, gzip), made on its first
    /// compressed answer and kept with the object (not weighed in the tier's budget: at most
    /// the body's size again, for the compressible types only).
    pub encoded: [std::sync::OnceLock<bytes::Bytes>; 2],
}

/// A stored body.
#[derive(Debug)]
pub enum Body {
    /// Whole, in the object (small objects, read whole before they are answered).
    Whole(Bytes),
    /// In slices of [`SLICE_BYTES`], each in the memory tier, the disk tier or still coming
    /// from the origin.
    Sliced(Sliced),
}

impl Object {
    /// Whether it is still fresh.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// The `Age` to send.
    pub fn age(&self, now: Instant) -> u64 {
        self.initial_age
            .saturating_add(now.saturating_duration_since(self.stored_at).as_secs())
    }

    /// The body's length, when known (a body sent without `Content-Length` is known once it
    /// has all arrived).
    pub fn len(&self) -> Option<u64> {
        match &self.body {
            Body::Whole(b) => Some(b.len() as u64),
            Body::Sliced(s) => s.len(),
        }
    }

    /// Bytes this object costs: body, headers with their allocations, and a fixed share for
    /// the entry, its key, the cache's own bookkeeping and the allocator's overhead, so that
    /// `--cache-size` bounds resident memory even for small objects. The 1280 is measured:
    /// `bench/cache-memory.sh` fills the cache with 1 KiB objects, each ~2.9 KiB resident;
    /// a 128 MiB cache held 133 MiB (10 MiB of it before the first object), a 512 MiB one
    /// 453 MiB (with moka, 141 and 493; with moka and 512 here, 178 MiB for 128 MiB).
    /// A sliced body's slices are weighed apart, each as it enters the table.
    fn weight(&self, key: &CacheKey) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 96)
            .sum();
        let body = match &self.body {
            Body::Whole(b) => b.len(),
            Body::Sliced(_) => 256,
        };
        (body + headers + key.path.len() + 1280) as u64
    }
}

#[cfg(test)]
impl Object {
    /// A 200 without headers, fresh (and servable) for a minute from now.
    pub(crate) fn fresh_for_a_minute(body: Bytes) -> Arc<Object> {
        let now = Instant::now();
        Arc::new(Object {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Body::Whole(body),
            stored_at: now,
            initial_age: 0,
            fresh_until: now + Duration::from_secs(60),
            stale_until: now + Duration::from_secs(60),
            updating_until: now + Duration::from_secs(60),
            keep_until: now + Duration::from_secs(60),
            etag: None,
            last_modified: None,
            encoded: Default::default(),
        })
    }
}

/// A key of the table: an object by its cache key, or one slice of a stored version of a
/// sliced object (versions are numbered apart, so a new version never reads an old one's
/// slices).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Object(CacheKey),
    Slice { version: u64, index: u64 },
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Key::Object(k) => ObjectKey(k).hash(h),
            Key::Slice { version, index } => {
                h.write_u8(1);
                version.hash(h);
                index.hash(h);
            }
        }
    }
}

/// An object's key borrowed, to look it up without building a [`Key`] (no allocation on a
/// hit); hashed as [`Key::Object`] is.
struct ObjectKey<'a>(&'a CacheKey);

impl Hash for ObjectKey<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u8(0);
        self.0.hash(h);
    }
}

impl quick_cache::Equivalent<Key> for ObjectKey<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        matches!(key, Key::Object(k) if k == self.0)
    }
}

#[derive(Clone)]
enum Entry {
    Object(Arc<Object>),
    Slice(Bytes),
    /// At a URL's key: its responses vary on request fields, and are stored under the keys
    /// of their variants.
    Vary(Arc<VaryRule>),
}

/// The request fields a URL's responses vary on, and the variants admitted so far.
#[derive(Debug)]
pub struct VaryRule {
    pub fields: Vec<http::HeaderName>,
    admitted: std::sync::Mutex<Vec<CacheKey>>,
}

impl VaryRule {
    /// Whether `variant` may be stored: one admitted before, or one of the first
    /// [`crate::key::MAX_VARIANTS`].
    pub fn admit(&self, variant: &CacheKey) -> bool {
        let mut a = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        if a.contains(variant) {
            return true;
        }
        if a.len() >= crate::key::MAX_VARIANTS {
            return false;
        }
        a.push(variant.clone());
        true
    }
}

/// What the memory tier holds at a key.
pub enum Found {
    Object(Arc<Object>),
    /// The URL's responses vary: look again under the request's variant.
    Varies(Arc<VaryRule>),
    Nothing,
}

/// Weighs entries for quick_cache: [`Object::weight`], and a slice's bytes plus a share for
/// its entry.
#[derive(Clone, Copy)]
struct ByBytes;

impl quick_cache::Weighter<Key, Entry> for ByBytes {
    fn weight(&self, key: &Key, entry: &Entry) -> u64 {
        match (key, entry) {
            (Key::Object(k), Entry::Object(o)) => o.weight(k),
            (_, Entry::Slice(b)) => b.len() as u64 + 256,
            // Its admitted variants' keys included, as many as it may come to hold.
            (Key::Object(k), Entry::Vary(r)) => {
                ((k.path.len() + 96) * crate::key::MAX_VARIANTS + 64 * r.fields.len() + 512) as u64
            }
            // Never built: keys and entries are made in pairs below.
            _ => 1,
        }
    }
}

type Table = quick_cache::sync::Cache<Key, Entry, ByBytes>;

#[derive(Clone)]
pub struct Cache {
    inner: Arc<Table>,
    /// Largest object stored at all (memory and disk); larger ones are streamed through.
    pub max_object_bytes: u64,
    /// Every purge, counted and kept for a while: a fetch that began before a purge naming
    /// its key does not store what it got, which may be the very copy the purge was meant to
    /// remove.
    purges: Arc<PurgeLog>,
}

/// Purges as they come: a counter, and the last [`PurgeLog::KEPT`] of them with their counter
/// value, so that a fill that ran for minutes asks whether a purge since it began names *its*
/// key, rather than whether any purge came at all.
#[derive(Default)]
pub struct PurgeLog {
    counter: std::sync::atomic::AtomicU64,
    log: std::sync::Mutex<std::collections::VecDeque<(u64, KeyRule, tollgate_model::PurgeRequest)>>,
}

impl PurgeLog {
    /// Purges remembered; a mark older than the oldest of them counts as purged.
    const KEPT: usize = 1024;

    /// The purges so far, to compare with later.
    pub fn mark(&self) -> u64 {
        self.counter.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records a purge (before its sweep: a store that checks after the sweep sees it).
    pub fn record(&self, rule: KeyRule, req: &tollgate_model::PurgeRequest) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.counter.load(std::sync::atomic::Ordering::Acquire) + 1;
        log.push_back((n, rule, req.clone()));
        if log.len() > Self::KEPT {
            log.pop_front();
        }
        self.counter.store(n, std::sync::atomic::Ordering::Release);
    }

    /// Whether a purge since `mark` names `key`.
    pub fn names_since(&self, mark: u64, key: &CacheKey) -> bool {
        if self.mark() == mark {
            return false;
        }
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        match log.front() {
            // Purges since the mark were forgotten: assume one named the key.
            Some((first, _, _)) if *first > mark + 1 => true,
            None => true,
            Some(_) => log
                .iter()
                .filter(|(n, _, _)| *n > mark)
                .any(|(_, rule, req)| Purged::new(rule.clone(), req).names(key)),
        }
    }
}

impl Cache {
    /// A memory tier of at most `capacity_bytes`, storing objects up to `max_object_bytes`
    /// (whose slices it holds as the disk tier does not).
    pub fn new(capacity_bytes: u64, max_object_bytes: u64) -> Cache {
        // Shards, each with its own lock, table and share of the capacity: enough that each
        // holds at least eight entries of the largest size (a slice; an entry heavier than its
        // shard would never be kept), at most 64.
        let per_shard = (SLICE_BYTES + 4096).saturating_mul(8);
        let shards = (capacity_bytes / per_shard).clamp(1, 64);
        let shards = 1usize << shards.ilog2();
        let options = quick_cache::OptionsBuilder::new()
            .shards(shards)
            // Sizes the ghost list (keys recently evicted, whose return is a sign of reuse):
            // objects of 16 KiB on average, a guess that only tunes admission.
            .estimated_items_capacity((capacity_bytes / (16 << 10)).max(16) as usize)
            .weight_capacity(capacity_bytes)
            .build()
            .expect("shards, items and weight are all set");
        let inner = Table::with_options(options, ByBytes, Default::default(), Default::default());
        // Room for as many 1 KiB objects as fit, reserved now: growing a shard's table and
        // entry list means copying them whole, which stalled a worker for milliseconds at a
        // time while the cache filled (misses' p99 above 10 ms, 3 ms once full). Address
        // space mostly: only the tables' control bytes (one per slot) are touched before use.
        inner.reserve((capacity_bytes / 2048) as usize);
        Cache {
            inner: Arc::new(inner),
            max_object_bytes,
            purges: Arc::default(),
        }
    }

    /// The stored object for `key`, fresh or stale, as long as it is kept at `now` (to be
    /// served stale, or revalidated); one past that is dropped.
    pub fn get(&self, key: &CacheKey, now: Instant) -> Option<Arc<Object>> {
        let Some(Entry::Object(obj)) = self.inner.get(&ObjectKey(key)) else {
            return None;
        };
        if now < obj.keep_until {
            return Some(obj);
        }
        self.remove_this(key, &obj);
        None
    }

    /// What is stored at `key`: an object (fresh or stale, as long as it is kept at `now`),
    /// or the rule of a URL whose responses vary. One lookup, for the hit path.
    pub fn find(&self, key: &CacheKey, now: Instant) -> Found {
        match self.inner.get(&ObjectKey(key)) {
            Some(Entry::Object(obj)) if now < obj.keep_until => Found::Object(obj),
            Some(Entry::Object(obj)) => {
                self.remove_this(key, &obj);
                Found::Nothing
            }
            Some(Entry::Vary(rule)) => Found::Varies(rule),
            _ => Found::Nothing,
        }
    }

    /// Records at the URL key `primary` that its responses vary on `fields` (replacing what
    /// was stored there, or a rule on other fields); the rule.
    pub fn learn_vary(&self, primary: &CacheKey, fields: Vec<http::HeaderName>) -> Arc<VaryRule> {
        if let Some(Entry::Vary(rule)) = self.inner.get(&ObjectKey(primary)) {
            if rule.fields == fields {
                return rule;
            }
        }
        let rule = Arc::new(VaryRule {
            fields,
            admitted: std::sync::Mutex::default(),
        });
        self.inner
            .insert(Key::Object(primary.clone()), Entry::Vary(Arc::clone(&rule)));
        rule
    }

    /// Removes `obj` if it is still the object stored for `key`.
    pub fn remove_this(&self, key: &CacheKey, obj: &Arc<Object>) {
        self.inner.remove_if(
            &ObjectKey(key),
            |e| matches!(e, Entry::Object(o) if Arc::ptr_eq(o, obj)),
        );
    }

    /// Slice `index` of the stored body `version`, if the memory tier holds it.
    pub fn slice(&self, version: u64, index: u64) -> Option<Bytes> {
        match self.inner.get(&Key::Slice { version, index }) {
            Some(Entry::Slice(b)) => Some(b),
            _ => None,
        }
    }

    /// Keeps slice `index` of the stored body `version`.
    pub fn put_slice(&self, version: u64, index: u64, bytes: Bytes) {
        self.inner
            .insert(Key::Slice { version, index }, Entry::Slice(bytes));
    }

    #[cfg(test)]
    pub fn insert(&self, key: CacheKey, obj: Arc<Object>) {
        self.inner.insert(Key::Object(key), Entry::Object(obj));
    }

    /// A mark to take before an origin fetch, for [`Cache::insert_unless_purged`].
    pub fn purge_mark(&self) -> u64 {
        self.purges.mark()
    }

    /// The purge log [`Cache::purge_mark`] reads, for the disk tier's commits.
    pub fn purge_log(&self) -> Arc<PurgeLog> {
        Arc::clone(&self.purges)
    }

    /// Stores `obj` unless a purge naming `key` happened since `mark` was taken (then the
    /// object is served to the requests waiting for it, but not kept). Returns whether it was
    /// stored.
    pub fn insert_unless_purged(&self, key: CacheKey, obj: Arc<Object>, mark: u64) -> bool {
        if self.purges.names_since(mark, &key) {
            return false;
        }
        self.inner
            .insert(Key::Object(key.clone()), Entry::Object(obj));
        // A purge is recorded before it sweeps the shards: an insert that raced past the
        // first check, into a shard already swept, is caught here.
        if self.purges.names_since(mark, &key) {
            self.inner.remove(&ObjectKey(&key));
            return false;
        }
        true
    }

    /// Drops the objects that a purge names, keyed by `rule` ([`Purged`]). Their slices go
    /// with them as the table evicts them: no object refers to them any more.
    pub fn remove_purged(&self, rule: KeyRule, req: &tollgate_model::PurgeRequest) {
        self.purges.record(rule.clone(), req);
        let purged = Purged::new(rule, req);
        self.inner.retain(|k, _| match k {
            Key::Object(k) => !purged.names(k),
            Key::Slice { .. } => true,
        });
    }

    /// Drops what is stored for the URL `key` names (an unsafe request's invalidation, RFC
    /// 9111 4.4): its object, or its `Vary` rule and every variant admitted under it. The
    /// keys dropped, for the disk tier. Not a purge: nothing is logged (a viewer's requests
    /// must not fill the purge log that guards every commit), so a fill of the URL already
    /// under way may still land.
    pub fn invalidate(&self, key: &CacheKey) -> Vec<CacheKey> {
        let primary = key.primary();
        let mut keys = vec![primary.clone()];
        if let Some(Entry::Vary(r)) = self.inner.get(&ObjectKey(&primary)) {
            keys.extend(
                r.admitted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned(),
            );
        }
        for k in &keys {
            self.inner.remove(&ObjectKey(k));
        }
        keys
    }

    /// Bytes held, as weighed.
    pub fn weighted_size(&self) -> u64 {
        self.inner.weight()
    }

    /// Objects and slices held.
    pub fn entry_count(&self) -> u64 {
        self.inner.len() as u64
    }
}

/// What a purge names, as a test on stored keys, for both tiers: exact URLs (keyed as
/// requests are, so `/a%20b` and `/a b` are one object; a URL without a query also names its
/// query variants) or `*` patterns matched against the path, or everything of the resource.
pub(crate) struct Purged<'a> {
    resource: u64,
    everything: bool,
    keys: Vec<CacheKey>,
    patterns: &'a [String],
}

impl<'a> Purged<'a> {
    pub fn new(rule: KeyRule, req: &'a tollgate_model::PurgeRequest) -> Purged<'a> {
        // A URL that does not parse as a request target names nothing a request stored.
        let keys = req
            .urls
            .iter()
            .flatten()
            .filter_map(|u| {
                Some(
                    rule.key(&tollgate_token::Target::parse(u.as_bytes()).ok()?)
                        .key,
                )
            })
            .collect();
        Purged {
            resource: rule.resource(),
            everything: req.is_everything(),
            keys,
            patterns: req.paths.as_deref().unwrap_or_default(),
        }
    }

    /// Whether the purge names the object stored under `k`.
    pub fn names(&self, k: &CacheKey) -> bool {
        if k.resource != self.resource {
            return false;
        }
        // A variant (a response with `Vary`) is named with its URL.
        let base = k.base();
        self.everything
            || self.keys.iter().any(|u| {
                base == &u.path[..]
                    || (!u.has_query()
                        && base.len() > u.path.len()
                        && base.starts_with(&u.path)
                        && base[u.path.len()] == b'?')
            })
            || self
                .patterns
                .iter()
                .any(|p| tollgate_model::glob_match(p.as_bytes(), k.uri()))
    }
}

/// Keys known to be too large to store, so later requests stream straight away instead of
/// waiting on one another's fetch; each is remembered for ten minutes (the object may shrink).
pub struct LargeKeys {
    inner: quick_cache::sync::Cache<CacheKey, Instant>,
}

impl Default for LargeKeys {
    fn default() -> Self {
        LargeKeys {
            inner: quick_cache::sync::Cache::new(100_000),
        }
    }
}

impl LargeKeys {
    const REMEMBERED: Duration = Duration::from_secs(600);

    /// Whether `key` was found too large in the last ten minutes before `now`.
    pub fn contains(&self, key: &CacheKey, now: Instant) -> bool {
        self.inner.get(key).is_some_and(|until| now < until)
    }

    /// Remembers that `key` was found too large at `now`.
    pub fn insert(&self, key: CacheKey, now: Instant) {
        self.inner.insert(key, now + Self::REMEMBERED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_model::PurgeRequest;

    fn obj() -> Arc<Object> {
        obj_of(Bytes::from_static(b"x"))
    }

    fn obj_of(body: Bytes) -> Arc<Object> {
        Object::fresh_for_a_minute(body)
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
    fn an_origin_age_at_the_limit_saturates() {
        let mut o = Object::fresh_for_a_minute(Bytes::from_static(b"x"));
        Arc::get_mut(&mut o).unwrap().initial_age = u64::MAX;
        let later = o.stored_at + Duration::from_secs(10);
        assert_eq!(o.age(later), u64::MAX);
    }

    #[test]
    fn an_object_is_served_until_its_stale_window_ends_then_dropped() {
        let c = Cache::new(1 << 20, 1 << 20);
        let o = obj();
        let stale_until = o.stale_until;
        c.insert(key(1, "/a"), o);
        assert!(c
            .get(&key(1, "/a"), stale_until - Duration::from_millis(1))
            .is_some());
        assert!(c.get(&key(1, "/a"), stale_until).is_none());
        assert_eq!(c.entry_count(), 0, "dropped, not just hidden");
    }

    #[test]
    fn the_largest_storable_object_fits_in_its_shard() {
        // The capacity is split between shards: each must hold objects of the largest size.
        for (capacity, max) in [
            (1u64 << 30, 16u64 << 20),
            (64 << 30, 16 << 20),
            (32 << 20, 16 << 20),
        ] {
            let c = Cache::new(capacity, max);
            let body = Bytes::from(vec![0u8; max as usize - 4096]);
            c.insert(key(1, "/big"), obj_of(body));
            assert!(
                c.get(&key(1, "/big"), Instant::now()).is_some(),
                "capacity {capacity}, largest object {max}"
            );
        }
    }

    #[test]
    fn large_keys_are_forgotten_after_ten_minutes() {
        let large = LargeKeys::default();
        let t = Instant::now();
        large.insert(key(1, "/huge"), t);
        assert!(large.contains(&key(1, "/huge"), t + Duration::from_secs(599)));
        assert!(!large.contains(&key(1, "/huge"), t + Duration::from_secs(600)));
        assert!(!large.contains(&key(1, "/other"), t));
    }

    #[test]
    fn a_fetch_that_began_before_a_purge_is_not_stored() {
        let c = Cache::new(1 << 20, 1 << 20);
        let mark = c.purge_mark();
        c.remove_purged(KeyRule::of_unknown(1), &urls(&["/a"]));
        assert!(!c.insert_unless_purged(key(1, "/a"), obj(), mark));
        assert!(c.get(&key(1, "/a"), Instant::now()).is_none());
        let mark = c.purge_mark();
        assert!(c.insert_unless_purged(key(1, "/a"), obj(), mark));
        assert!(c.get(&key(1, "/a"), Instant::now()).is_some());
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
                .filter(|p| c.get(&key(1, p), Instant::now()).is_some())
                .copied()
                .collect::<Vec<_>>()
        };
        fill();
        c.remove_purged(KeyRule::of_unknown(1), &urls(&["/a", "/my%20fil%65.mp4"]));
        assert_eq!(
            left(),
            ["/ab", "/b/c.jpg"],
            "a URL takes its query variants, and is normalised as requests are"
        );
        fill();
        c.remove_purged(KeyRule::of_unknown(1), &urls(&["/a?x=1"]));
        assert_eq!(left(), ["/a", "/ab", "/b/c.jpg", "/my%20file.mp4"]);
        fill();
        c.remove_purged(KeyRule::of_unknown(1), &paths(&["/b/*"]));
        assert_eq!(left(), ["/a", "/a?x=1", "/ab", "/my%20file.mp4"]);
        fill();
        c.remove_purged(KeyRule::of_unknown(1), &paths(&[]));
        assert!(left().is_empty());
        assert!(
            c.get(&key(2, "/a"), Instant::now()).is_some(),
            "other resources keep theirs"
        );
    }

    /// What a request for `target` stores under `rule`.
    fn stored_by(c: &Cache, rule: KeyRule, target: &str) -> Option<CacheKey> {
        let t = tollgate_token::Target::parse(target.as_bytes()).ok()?;
        let key = rule.key(&t).key;
        c.insert(key.clone(), obj());
        Some(key)
    }

    fn rules() -> [KeyRule; 2] {
        let mut with = tollgate_model::parse_resources(
            r#"[{"id": 1, "cname": "a.example.com", "origin": "o.example.com"},
                {"id": 2, "cname": "b.example.com", "origin": "o.example.com",
                 "options": {"ignoreQueryString": {"enabled": true, "value": true}}}]"#,
        )
        .unwrap()
        .into_iter()
        .map(|r| KeyRule::of(&r));
        [with.next().unwrap(), with.next().unwrap()]
    }

    /// A purge of the URL a request was for removes what that request stored, and nothing a
    /// request for another path stored: both go through `KeyRule::key`.
    fn purge_removes_what_the_request_stored(rule: KeyRule, target: &str, others: &[&str]) {
        let c = Cache::new(1 << 20, 1 << 20);
        let Some(stored) = stored_by(&c, rule.clone(), target) else {
            return; // a target nginx refuses stores nothing
        };
        let kept: Vec<CacheKey> = others
            .iter()
            .filter_map(|o| stored_by(&c, rule.clone(), o))
            .filter(|k| k.uri() != stored.uri())
            .collect();
        c.remove_purged(rule.clone(), &urls(&[target]));
        assert!(
            c.get(&stored, Instant::now()).is_none(),
            "{rule:?}: a purge of {target:?} left {stored:?}"
        );
        for k in kept {
            assert!(
                c.get(&k, Instant::now()).is_some(),
                "{rule:?}: a purge of {target:?} took {k:?}"
            );
        }
    }

    #[test]
    fn a_purge_of_a_url_removes_exactly_what_a_request_for_it_stored() {
        let targets = [
            "/a",
            "/a?x=1",
            "/a?md5=abc&expires=123",
            "/a?x=1&md5=abc&expires=123",
            "/my%20fil%65.mp4",
            "/my file.mp4",
            "/b/./c/../d.jpg",
            "//double//slash.ts",
            "/%2Fencoded%2fslash",
            "/semi;colon?q=a;b",
            "/ünïcode/ä.png",
            "/a?x=%41&y",
        ];
        for rule in rules() {
            for t in targets {
                purge_removes_what_the_request_stored(rule.clone(), t, &targets);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_purged_url_removes_what_its_request_stored(
            target in "/[a-zA-Z0-9%./;_~ -]{0,24}(\\?[a-z0-9=&%]{0,12})?",
            others in proptest::collection::vec("/[a-z0-9%./]{0,12}", 0..6),
        ) {
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            for rule in rules() {
                purge_removes_what_the_request_stored(rule, &target, &others);
            }
        }
    }
}
