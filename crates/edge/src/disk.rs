//! The disk tier: objects kept in files under `--cache-dir`, so a restart keeps the cache and
//! its size is bounded by `--disk-cache-size`, not by memory.
//!
//! An nginx-style store (see `docs/architecture.md` for why not foyer): one directory per
//! stored version of an object, `v1/<last byte of version>/<version>/`, holding `meta` (the
//! key, status, headers, freshness and length, with its CRC-32) and one file per slice (`0`,
//! `1`, ...) with a CRC-32 per 64 KiB block, so that a range is read and checked alone. Every
//! file is written to a temporary name and renamed into
//! place, and `meta` is written last, once every slice is on disk: a process killed at any
//! point leaves either a whole object or one without `meta`, which recovery deletes; a torn or
//! flipped file fails its checksum when read and is then a miss, the object dropped. A sparse
//! body (the `slice` option) is committed with its first slice and gains the others as they are
//! fetched: a slice missing from it is fetched again, not a reason to drop it.
//!
//! The index (key -> version, size, last use) lives in memory and is rebuilt at start by a
//! scan of the metas, on the tier's own threads: until it is done every lookup on disk misses
//! (the edge serves from the origin meanwhile), and purges made in that time are applied to
//! what the scan finds. A purge deletes the metas it names before it returns, so a purged
//! object stays purged across a restart. Eviction is by least recent use, whole objects at a
//! time, by unlinking. Reads and writes run on a small pool of threads of the tier's own (the
//! edge's runtimes are one thread per core and must not block); a write error or a full disk
//! pauses storing for a while (counted), never serving.
//!
//! A block's checksum is verified once per file: the tier remembers, per slice, the file it
//! checked (inode and change time) and which of its blocks passed, so that reading them again
//! copies bytes only. A slice whose blocks have all been checked is read on the edge's own
//! thread when the kernel holds it in its page cache (`preadv2` with `RWF_NOWAIT`: the read
//! fails rather than wait for the disk) and on the tier's threads otherwise. A file rewritten
//! or altered in place (bytes flipped) has another inode or change time, and is checked again.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::oneshot;

use crate::cache::{Body, Object, PurgeLog, Purged};
use crate::key::{CacheKey, KeyRule};
use crate::slices::{slice_count, Sliced, SLICE_BYTES, WHOLE_MAX};

const META_MAGIC: &[u8; 4] = b"TGM2";
/// A meta's flag: the body is sparse (fetched by Range, slices stored as they come).
const SPARSE: u64 = 1;
const SLICE_MAGIC: &[u8; 4] = b"TGS2";
/// A slice file's data is checked in blocks of this size, each with its CRC-32 in the file's
/// header, so that a range of a slice is read (and checked) alone, not the whole 4 MiB.
const BLOCK: u64 = 64 << 10;
/// Magic, CRC-32 and length before a file's contents (a meta's); magic, length and block
/// count before a slice file's block CRCs.
const SLICE_HEADER: usize = 16;

/// Bytes of the file holding a slice of `len` bytes.
fn slice_file_len(len: u64) -> u64 {
    data_offset(len) + len
}
/// Threads doing the tier's file work.
const THREADS: usize = 4;
/// Bytes queued for writing at most; a slice past it is not written (the object is then not
/// committed), so a disk slower than the origin bounds memory instead of growing a queue.
const MAX_QUEUED_BYTES: u64 = 128 << 20;
/// How long storing stays paused after a write error (a full disk, most often).
const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(10);

/// Counters of the disk tier, for `/metrics`.
#[derive(Default)]
pub struct DiskStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub read_bytes: AtomicU64,
    /// Slice reads done on the edge's thread, from the page cache, without the tier's threads.
    pub reads_now: AtomicU64,
    /// Slice reads done on the tier's threads.
    pub reads_threaded: AtomicU64,
    pub written_bytes: AtomicU64,
    pub read_errors: AtomicU64,
    pub write_errors: AtomicU64,
    /// Entries whose checksum or format was wrong (dropped).
    pub corrupt: AtomicU64,
    /// Slices not written: storing paused, or too much queued.
    pub writes_skipped: AtomicU64,
    pub evicted: AtomicU64,
    pub recovered: AtomicU64,
    /// Dropped at recovery: no meta (killed mid-write) or a slice missing.
    pub recovery_dropped: AtomicU64,
    pub recovery_ms: AtomicU64,
}

type Job = Box<dyn FnOnce() + Send>;

/// The disk tier.
pub struct Disk {
    inner: Arc<Inner>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("root", &self.inner.root)
            .finish()
    }
}

struct Inner {
    root: PathBuf,
    capacity: u64,
    index: Mutex<Index>,
    ready: AtomicBool,
    queued: AtomicU64,
    /// Unix milliseconds until which nothing is stored.
    paused_until: AtomicU64,
    /// The memory tier's purges: a commit after a purge of its key it began before is
    /// dropped.
    purges: Arc<PurgeLog>,
    /// The slices whose blocks were checked, by (version, index).
    checked: quick_cache::sync::Cache<(u64, u64), Checked>,
    stats: DiskStats,
}

/// The blocks of one slice file that passed their checksum, and the file they were read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checked {
    ino: u64,
    ctime: (i64, i64),
    /// The slice's length in bytes.
    len: u64,
    /// Bit `n`: block `n` passed.
    blocks: u64,
}

/// Most bytes read at once on the edge's thread: a lookup answers this much, the reader asks
/// again for more (the bytes stay in the CPU's cache between the read and the socket's copy).
const NOW_BYTES: usize = 256 << 10;

/// Buffers of [`NOW_BYTES`] kept for reads on the edge's thread (16 MiB at most, about three
/// for each of 16 busy viewers: one being read, one queued, one being written): `preadv2`
/// fills initialised memory only, and zeroing a fresh buffer for every read costs as much as
/// the read itself.
const POOLED: usize = 64;

static POOL: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// The first `len` bytes of a buffer from [`POOL`], given back when the bytes are dropped.
struct Pooled {
    buf: Box<[u8]>,
    len: usize,
}

impl Pooled {
    fn take(len: usize) -> Pooled {
        let buf = POOL
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| vec![0u8; NOW_BYTES].into_boxed_slice());
        Pooled {
            buf,
            len: len.min(NOW_BYTES),
        }
    }
}

impl AsMut<[u8]> for Pooled {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Ok(mut p) = POOL.lock() {
            if p.len() < POOLED {
                p.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

/// Slices whose checked blocks are remembered (64 GiB of 4 MiB slices; a few MiB of memory).
const CHECKED_SLICES: usize = 16 << 10;

// One bit per block in [`Checked::blocks`].
const _: () = assert!(SLICE_BYTES.div_ceil(BLOCK) <= 64 && (1u64 << 20).div_ceil(BLOCK) <= 64);

impl Checked {
    /// Whether this is what was checked of the file `meta` describes.
    fn is_of(&self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.ino == meta.ino()
            && self.ctime == (meta.ctime(), meta.ctime_nsec())
            && meta.len() == slice_file_len(self.len)
    }

    /// Nothing checked yet of the file `meta` describes, a slice of `len` bytes.
    fn none_of(meta: &std::fs::Metadata, len: u64) -> Checked {
        use std::os::unix::fs::MetadataExt;
        Checked {
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            len,
            blocks: 0,
        }
    }

    /// The bits of blocks `b0..=b1`.
    fn span(b0: u64, b1: u64) -> u64 {
        let n = b1 - b0 + 1;
        let ones = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        ones << b0
    }
}

#[derive(Default)]
struct Index {
    objects: HashMap<CacheKey, Entry>,
    bytes: u64,
    tick: u64,
    /// Purges made while the scan runs, applied to what it finds.
    pending: Option<Vec<(KeyRule, tollgate_model::PurgeRequest)>>,
}

#[derive(Clone, Copy)]
struct Entry {
    version: u64,
    bytes: u64,
    used: u64,
}

impl Disk {
    /// Opens (creating it if need be) the tier in `dir`, of at most `capacity` bytes, and
    /// starts the scan that rebuilds its index.
    pub fn open(dir: &Path, capacity: u64, purges: Arc<PurgeLog>) -> std::io::Result<Disk> {
        let root = dir.join("v1");
        std::fs::create_dir_all(&root)?;
        // Fails early on a directory the edge cannot write (not at the first stored object).
        let probe = root.join(".probe");
        std::fs::write(&probe, b"")?;
        std::fs::remove_file(&probe)?;
        let inner = Arc::new(Inner {
            root,
            capacity,
            index: Mutex::new(Index {
                pending: Some(Vec::new()),
                ..Index::default()
            }),
            ready: AtomicBool::new(false),
            queued: AtomicU64::new(0),
            paused_until: AtomicU64::new(0),
            purges,
            checked: quick_cache::sync::Cache::new(CHECKED_SLICES),
            stats: DiskStats::default(),
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..THREADS {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("tollgate-disk-{n}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the tier is gone
                    }
                })?;
        }
        let disk = Disk {
            inner,
            jobs: Mutex::new(tx),
        };
        let inner = Arc::clone(&disk.inner);
        disk.spawn(move || recover(&inner));
        Ok(disk)
    }

    fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        if let Ok(tx) = self.jobs.lock() {
            let _ = tx.send(Box::new(job));
        }
    }

    /// Runs `f` on the tier's threads; `None` if they are gone.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        self.spawn(move || {
            let _ = tx.send(f(&inner));
        });
        rx.await.ok()
    }

    #[cfg(test)]
    pub fn stats(&self) -> &DiskStats {
        &self.inner.stats
    }

    /// Whether the index has been rebuilt since start.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Relaxed)
    }

    /// The object stored for `key`, read from disk (a small body with it); `None` while the
    /// index is being rebuilt, for an object not on disk, or one that cannot be read (then
    /// dropped).
    pub async fn load(&self, key: &CacheKey) -> Option<Arc<Object>> {
        if !self.is_ready() {
            return None;
        }
        let version = self.inner.touch(key);
        let Some(version) = version else {
            self.inner.stats.misses.fetch_add(1, Relaxed);
            return None;
        };
        let key = key.clone();
        let obj = self
            .run(move |inner| {
                let obj = inner.read_object(&key, version);
                if obj.is_none() {
                    inner.drop_version(&key, version);
                }
                obj
            })
            .await
            .flatten();
        let counter = match obj {
            Some(_) => &self.inner.stats.hits,
            None => &self.inner.stats.misses,
        };
        counter.fetch_add(1, Relaxed);
        obj.map(Arc::new)
    }

    /// Bytes `from..=to` of slice `index` of `version` (to its end when `to` is past it),
    /// read and checked block by block; `None` (and the object dropped) when it cannot be
    /// read or fails its checksum. Of a `refetchable` body (sparse, or able to fetch a slice
    /// by Range), a slice not on disk is `None` alone, and a bad one is deleted alone.
    pub async fn read_slice(
        &self,
        version: u64,
        index: u64,
        (from, to): (u64, u64),
        refetchable: bool,
    ) -> Option<Bytes> {
        if let Some(b) = self.inner.read_slice_now(version, index, from, to) {
            self.inner
                .stats
                .read_bytes
                .fetch_add(b.len() as u64, Relaxed);
            self.inner.stats.reads_now.fetch_add(1, Relaxed);
            return Some(b);
        }
        let sparse = refetchable;
        self.run(move |inner| {
            let path = inner.slice_path(version, index);
            let known = inner.checked.get(&(version, index));
            match read_slice_part(&path, from, to, known) {
                Ok((b, checked)) => {
                    inner.stats.read_bytes.fetch_add(b.len() as u64, Relaxed);
                    inner.stats.reads_threaded.fetch_add(1, Relaxed);
                    if Some(checked) != known {
                        inner.checked.insert((version, index), checked);
                    }
                    Some(b)
                }
                Err(e) if sparse && e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) if sparse => {
                    inner.count_read_error(&e);
                    inner.remove_slice_file(version, &path);
                    None
                }
                Err(e) => {
                    inner.count_read_error(&e);
                    inner.drop_version_anywhere(version);
                    None
                }
            }
        })
        .await
        .flatten()
    }

    /// Writes slice `index` of `version`; the receiver says whether it was written. `None`
    /// when storing is paused or too much is queued (the slice is not written). `into` names
    /// the key of a sparse body committed already, whose size grows by the slice.
    pub fn write_slice(
        &self,
        version: u64,
        index: u64,
        bytes: Bytes,
        into: Option<&CacheKey>,
    ) -> Option<oneshot::Receiver<bool>> {
        let len = bytes.len() as u64;
        let skip = !self.inner.may_store() || {
            let before = self.inner.queued.fetch_add(len, Relaxed);
            let over = before.saturating_add(len) > MAX_QUEUED_BYTES;
            if over {
                self.inner.queued.fetch_sub(len, Relaxed);
            }
            over
        };
        if skip {
            self.inner.stats.writes_skipped.fetch_add(1, Relaxed);
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let into = into.cloned();
        self.spawn(move || {
            // A slice of a sparse object is written whether or not its object's commit has
            // landed (the commit counts the files it finds). One written just after its
            // object was evicted or purged leaves a directory without `meta`, which the
            // next start's scan deletes.
            let path = inner.slice_path(version, index);
            let ok = inner.write_slice_file(&path, &bytes);
            inner.queued.fetch_sub(len, Relaxed);
            if ok {
                // Its blocks' checksums were made from these very bytes.
                if let Ok(meta) = std::fs::metadata(&path) {
                    let mut c = Checked::none_of(&meta, len);
                    if len > 0 {
                        c.blocks = Checked::span(0, (len - 1) / BLOCK);
                    }
                    inner.checked.insert((version, index), c);
                }
            }
            if let (true, Some(key)) = (ok, into) {
                inner.grow(&key, version, slice_file_len(len));
            }
            let _ = tx.send(ok);
        });
        Some(rx)
    }

    /// Whether `version` is the object committed under `key`.
    pub fn holds(&self, key: &CacheKey, version: u64) -> bool {
        self.inner
            .lock()
            .objects
            .get(key)
            .is_some_and(|e| e.version == version)
    }

    /// Drops `version` of `key` (it changed at the origin).
    pub fn forget(&self, key: CacheKey, version: u64) {
        let inner = Arc::clone(&self.inner);
        self.spawn(move || inner.drop_version(&key, version));
    }

    /// Commits `obj` (its slices already written, or its small body written here) as the
    /// object stored for `key`, unless a purge came since `mark`.
    pub fn commit(&self, key: CacheKey, obj: Arc<Object>, mark: u64) {
        if !self.inner.may_store() {
            self.inner.stats.writes_skipped.fetch_add(1, Relaxed);
            // Its slices would stay on disk unindexed, never evicted.
            if let Body::Sliced(s) = &obj.body {
                if !self.holds(&key, s.version) {
                    self.discard(s.version);
                }
            }
            return;
        }
        let inner = Arc::clone(&self.inner);
        self.spawn(move || inner.commit(key, &obj, mark));
    }

    /// Deletes every file of `version` (a fill that failed, or an object not committed).
    pub fn discard(&self, version: u64) {
        let inner = Arc::clone(&self.inner);
        self.spawn(move || {
            let _ = std::fs::remove_dir_all(inner.dir(version));
        });
    }

    /// Drops what a purge names; its metas are deleted before this returns, so a restart does
    /// not bring them back.
    pub fn purge(&self, rule: KeyRule, req: &tollgate_model::PurgeRequest) {
        let purged = Purged::new(rule.clone(), req);
        let gone: Vec<u64> = {
            let mut ix = self.inner.lock();
            if let Some(p) = &mut ix.pending {
                p.push((rule, req.clone()));
            }
            let keys: Vec<CacheKey> = ix
                .objects
                .keys()
                .filter(|k| purged.names(k))
                .cloned()
                .collect();
            keys.iter()
                .filter_map(|k| ix.remove(k))
                .map(|e| e.version)
                .collect()
        };
        self.unlink(gone);
    }

    /// Drops the objects stored under exactly `keys` (an unsafe request's invalidation), as a
    /// purge does: their metas go before this returns.
    pub fn invalidate(&self, rule: KeyRule, keys: &[CacheKey]) {
        let gone: Vec<u64> = {
            let mut ix = self.inner.lock();
            // While the index is rebuilt, what the scan finds of these URLs goes too.
            if let Some(p) = &mut ix.pending {
                for k in keys {
                    p.push((
                        rule.clone(),
                        tollgate_model::PurgeRequest {
                            urls: Some(vec![String::from_utf8_lossy(k.base()).into_owned()]),
                            paths: None,
                        },
                    ));
                }
            }
            keys.iter()
                .filter_map(|k| ix.remove(k))
                .map(|e| e.version)
                .collect()
        };
        self.unlink(gone);
    }

    /// Deletes the versions taken out of the index: their metas now (a restart does not bring
    /// them back), the rest of their files on the tier's threads.
    fn unlink(&self, gone: Vec<u64>) {
        if gone.is_empty() {
            return;
        }
        for v in &gone {
            let _ = std::fs::remove_file(self.inner.dir(*v).join("meta"));
        }
        let inner = Arc::clone(&self.inner);
        self.spawn(move || {
            for v in gone {
                let _ = std::fs::remove_dir_all(inner.dir(v));
            }
        });
    }

    /// Objects and bytes held.
    pub fn usage(&self) -> (u64, u64) {
        let ix = self.inner.lock();
        (ix.objects.len() as u64, ix.bytes)
    }

    /// The tier's families for `/metrics`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.inner.stats;
        let (objects, bytes) = self.usage();
        let mut family = |name: &str, kind: &str, help: &str, lines: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "tollgate_cache_tier_lookups_total",
            "counter",
            "Lookups in the disk tier by result (each after a memory tier miss).",
            &[
                ("{tier=\"disk\",result=\"hit\"}", s.hits.load(Relaxed)),
                ("{tier=\"disk\",result=\"miss\"}", s.misses.load(Relaxed)),
            ],
        );
        family(
            "tollgate_disk_bytes_total",
            "counter",
            "Bytes of slices read from and written to the disk tier.",
            &[
                ("{op=\"read\"}", s.read_bytes.load(Relaxed)),
                ("{op=\"write\"}", s.written_bytes.load(Relaxed)),
            ],
        );
        family(
            "tollgate_disk_slice_reads_total",
            "counter",
            "Reads of slices from the disk tier: on the edge's thread (every block checked before, the bytes in the page cache) or on the tier's threads.",
            &[
                ("{on=\"edge\"}", s.reads_now.load(Relaxed)),
                ("{on=\"disk_thread\"}", s.reads_threaded.load(Relaxed)),
            ],
        );
        family(
            "tollgate_disk_errors_total",
            "counter",
            "Disk tier faults: read and write errors, entries failing their checksum (each a miss, the entry dropped), slices not written (storing paused or too much queued).",
            &[
                ("{kind=\"read\"}", s.read_errors.load(Relaxed)),
                ("{kind=\"write\"}", s.write_errors.load(Relaxed)),
                ("{kind=\"corrupt\"}", s.corrupt.load(Relaxed)),
                ("{kind=\"skipped\"}", s.writes_skipped.load(Relaxed)),
            ],
        );
        family(
            "tollgate_disk_evicted_total",
            "counter",
            "Objects evicted from the disk tier to stay within its size.",
            &[("", s.evicted.load(Relaxed))],
        );
        family(
            "tollgate_disk_objects",
            "gauge",
            "Objects in the disk tier.",
            &[("", objects)],
        );
        family(
            "tollgate_disk_used_bytes",
            "gauge",
            "Bytes of the disk tier's files.",
            &[("", bytes)],
        );
        family(
            "tollgate_disk_ready",
            "gauge",
            "1 once the disk tier's index is rebuilt (until then its lookups miss).",
            &[("", u64::from(self.is_ready()))],
        );
        family(
            "tollgate_disk_recovery_seconds",
            "gauge",
            "Time the index scan at start took.",
            &[("", s.recovery_ms.load(Relaxed) / 1000)],
        );
        family(
            "tollgate_disk_recovered_objects",
            "gauge",
            "Objects the scan at start found whole (and dropped: killed mid-write, or missing a slice).",
            &[
                ("{result=\"kept\"}", s.recovered.load(Relaxed)),
                ("{result=\"dropped\"}", s.recovery_dropped.load(Relaxed)),
            ],
        );
    }
}

impl Index {
    fn remove(&mut self, key: &CacheKey) -> Option<Entry> {
        let e = self.objects.remove(key)?;
        self.bytes = self.bytes.saturating_sub(e.bytes);
        Some(e)
    }

    /// Adds `e` under `key`; the version it replaces, if any.
    fn insert(&mut self, key: CacheKey, e: Entry) -> Option<u64> {
        let old = self.remove(&key).map(|o| o.version);
        self.bytes = self.bytes.saturating_add(e.bytes);
        self.objects.insert(key, e);
        old
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn may_store(&self) -> bool {
        unix_ms(SystemTime::now()) >= self.paused_until.load(Relaxed)
    }

    fn dir(&self, version: u64) -> PathBuf {
        self.root
            .join(format!("{:02x}", version & 0xff))
            .join(format!("{version:016x}"))
    }

    fn slice_path(&self, version: u64, index: u64) -> PathBuf {
        self.dir(version).join(index.to_string())
    }

    /// Marks `key` used; its version.
    fn touch(&self, key: &CacheKey) -> Option<u64> {
        let mut ix = self.lock();
        ix.tick += 1;
        let tick = ix.tick;
        let e = ix.objects.get_mut(key)?;
        e.used = tick;
        Some(e.version)
    }

    /// Bytes `from..=to` of slice `index` of `version`, read on this thread: only when every
    /// block they lie in has been checked in this very file and the kernel holds them in its
    /// page cache. `None` otherwise, and on any error (the tier's threads then read, and deal
    /// with it).
    fn read_slice_now(&self, version: u64, index: u64, from: u64, to: u64) -> Option<Bytes> {
        let known = self.checked.get(&(version, index))?;
        if known.len == 0 || from >= known.len {
            return None;
        }
        let to = to.min(known.len - 1);
        let want = Checked::span(from / BLOCK, to / BLOCK);
        if known.blocks & want != want {
            return None;
        }
        // The path was opened moments ago when it was checked: its directory entries are in
        // the kernel's caches, as nginx, which opens and reads on its worker, relies on.
        let f = std::fs::File::open(self.slice_path(version, index)).ok()?;
        if !known.is_of(&f.metadata().ok()?) {
            return None;
        }
        let n = ((to - from + 1) as usize).min(NOW_BYTES);
        let mut buf = Pooled::take(n);
        let at = data_offset(known.len) + from;
        let got = rustix::io::preadv2(
            &f,
            &mut [std::io::IoSliceMut::new(buf.as_mut())],
            at,
            rustix::io::ReadWriteFlags::NOWAIT,
        )
        .ok()?;
        (got == n).then(|| Bytes::from_owner(buf))
    }

    fn count_read_error(&self, e: &std::io::Error) {
        let c = if e.kind() == std::io::ErrorKind::InvalidData {
            &self.stats.corrupt
        } else {
            &self.stats.read_errors
        };
        c.fetch_add(1, Relaxed);
    }

    fn drop_version(&self, key: &CacheKey, version: u64) {
        {
            let mut ix = self.lock();
            if ix.objects.get(key).is_some_and(|e| e.version == version) {
                ix.remove(key);
            }
        }
        let _ = std::fs::remove_dir_all(self.dir(version));
    }

    /// Adds `bytes` to the size of `version` of `key`, if it is the one stored.
    fn grow(&self, key: &CacheKey, version: u64, bytes: u64) {
        {
            let mut ix = self.lock();
            match ix.objects.get_mut(key) {
                Some(e) if e.version == version => e.bytes = e.bytes.saturating_add(bytes),
                _ => return,
            }
            ix.bytes = ix.bytes.saturating_add(bytes);
        }
        self.evict();
    }

    /// Deletes one bad slice file of a sparse `version` (it is fetched again).
    fn remove_slice_file(&self, version: u64, path: &Path) {
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        if std::fs::remove_file(path).is_ok() {
            let mut ix = self.lock();
            if let Some(e) = ix.objects.values_mut().find(|e| e.version == version) {
                e.bytes = e.bytes.saturating_sub(size);
                ix.bytes = ix.bytes.saturating_sub(size);
            }
        }
    }

    fn drop_version_anywhere(&self, version: u64) {
        let key = {
            let ix = self.lock();
            ix.objects
                .iter()
                .find(|(_, e)| e.version == version)
                .map(|(k, _)| k.clone())
        };
        match key {
            Some(k) => self.drop_version(&k, version),
            None => {
                let _ = std::fs::remove_dir_all(self.dir(version));
            }
        }
    }

    /// Writes a meta, `data` with its CRC-32, under `path` ([`Inner::write_atomically`]).
    fn write_file(&self, path: &Path, magic: &[u8; 4], data: &[u8]) -> bool {
        let mut head = [0u8; SLICE_HEADER];
        head[..4].copy_from_slice(magic);
        head[4..8].copy_from_slice(&crc32fast::hash(data).to_le_bytes());
        head[8..].copy_from_slice(&(data.len() as u64).to_le_bytes());
        self.write_atomically(path, &[&head, data], data.len())
    }

    /// Writes a slice, `data` with a CRC-32 per [`BLOCK`], under `path`.
    fn write_slice_file(&self, path: &Path, data: &[u8]) -> bool {
        let blocks = data.len().div_ceil(BLOCK as usize);
        let mut head = Vec::with_capacity(SLICE_HEADER + 4 * blocks);
        head.extend_from_slice(SLICE_MAGIC);
        head.extend_from_slice(&(data.len() as u64).to_le_bytes());
        head.extend_from_slice(&(blocks as u32).to_le_bytes());
        for block in data.chunks(BLOCK as usize) {
            head.extend_from_slice(&crc32fast::hash(block).to_le_bytes());
        }
        self.write_atomically(path, &[&head, data], data.len())
    }

    /// Writes `parts` under `path` (a temporary name, then renamed): `false` on error, which
    /// pauses storing. `counted` bytes of it are the tier's data.
    fn write_atomically(&self, path: &Path, parts: &[&[u8]], counted: usize) -> bool {
        // Unique: two writes of one file (a slice fetched twice) never share a temporary.
        static TMP: AtomicU64 = AtomicU64::new(0);
        let tmp = path.with_extension(format!("tmp{}", TMP.fetch_add(1, Relaxed)));
        let r = (|| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::File::create(&tmp)?;
            for p in parts {
                f.write_all(p)?;
            }
            std::fs::rename(&tmp, path)
        })();
        match r {
            Ok(()) => {
                self.stats.written_bytes.fetch_add(counted as u64, Relaxed);
                true
            }
            Err(_) => {
                let _ = std::fs::remove_file(&tmp);
                self.stats.write_errors.fetch_add(1, Relaxed);
                self.paused_until.store(
                    unix_ms(SystemTime::now()) + PAUSE_AFTER_ERROR.as_millis() as u64,
                    Relaxed,
                );
                false
            }
        }
    }

    /// A file's checked contents: `InvalidData` when its magic, length or checksum is wrong.
    fn read_file(&self, path: &Path, magic: &[u8; 4]) -> std::io::Result<Bytes> {
        let mut f = std::fs::File::open(path)?;
        let mut head = [0u8; SLICE_HEADER];
        f.read_exact(&mut head)?;
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad cache file");
        if &head[..4] != magic {
            return Err(bad());
        }
        let crc = u32::from_le_bytes(head[4..8].try_into().map_err(|_| bad())?);
        let len = u64::from_le_bytes(head[8..].try_into().map_err(|_| bad())?);
        let on_disk = f.metadata()?.len();
        if on_disk != len.saturating_add(SLICE_HEADER as u64) || len > SLICE_BYTES.max(1 << 20) {
            return Err(bad());
        }
        let mut data = Vec::with_capacity(len as usize);
        (&mut f).take(len).read_to_end(&mut data)?;
        if data.len() as u64 != len || crc32fast::hash(&data) != crc {
            return Err(bad());
        }
        Ok(Bytes::from(data))
    }

    fn read_object(&self, key: &CacheKey, version: u64) -> Option<Object> {
        let raw = match self.read_file(&self.dir(version).join("meta"), META_MAGIC) {
            Ok(raw) => raw,
            Err(e) => {
                self.count_read_error(&e);
                return None;
            }
        };
        let Some(meta) = Meta::decode(&raw).filter(|m| m.key == *key && m.version == version)
        else {
            self.stats.corrupt.fetch_add(1, Relaxed);
            return None;
        };
        let sparse = meta.flags & SPARSE != 0;
        let body = if meta.len <= WHOLE_MAX && !sparse {
            let b = if meta.len == 0 {
                Bytes::new()
            } else {
                match read_slice_part(&self.slice_path(version, 0), 0, u64::MAX, None) {
                    Ok((b, _)) if b.len() as u64 == meta.len => {
                        self.stats.read_bytes.fetch_add(b.len() as u64, Relaxed);
                        b
                    }
                    Ok(_) => {
                        self.stats.corrupt.fetch_add(1, Relaxed);
                        return None;
                    }
                    Err(e) => {
                        self.count_read_error(&e);
                        return None;
                    }
                }
            };
            Body::Whole(b)
        } else {
            Body::Sliced(Sliced::stored(version, meta.len, meta.key.clone(), sparse))
        };
        Some(meta.into_object(body))
    }

    fn commit(&self, key: CacheKey, obj: &Object, mark: u64) {
        // A version given up goes, unless it is the one stored (a refresh of its meta).
        let give_up = |version: u64| {
            let indexed = self
                .lock()
                .objects
                .get(&key)
                .is_some_and(|e| e.version == version);
            if !indexed {
                let _ = std::fs::remove_dir_all(self.dir(version));
            }
        };
        if self.purges.names_since(mark, &key) {
            if let Body::Sliced(s) = &obj.body {
                give_up(s.version);
            }
            return;
        }
        let (version, len) = match &obj.body {
            Body::Whole(b) => {
                let version = crate::slices::new_version();
                if !b.is_empty() && !self.write_slice_file(&self.slice_path(version, 0), b) {
                    return;
                }
                (version, b.len() as u64)
            }
            Body::Sliced(s) => match s.len() {
                Some(len) => (s.version, len),
                None => return give_up(s.version),
            },
        };
        // Every slice of a whole body on disk before its meta: one dropped meanwhile (a
        // read that found it missing, say) would make a meta that promises it.
        if let Body::Sliced(s) = &obj.body {
            let whole = (0..slice_count(len)).all(|i| {
                let want = slice_file_len(crate::slices::slice_len(len, i));
                std::fs::metadata(self.slice_path(version, i)).is_ok_and(|m| m.len() == want)
            });
            if !s.is_sparse() && !whole {
                return give_up(version);
            }
        }
        let meta = Meta::of(&key, version, len, obj).encode();
        if !self.write_file(&self.dir(version).join("meta"), META_MAGIC, &meta) {
            return give_up(version);
        }
        let bytes = dir_bytes(&self.dir(version));
        let replaced = {
            let mut ix = self.lock();
            if self.purges.names_since(mark, &key) {
                // The purge took the key out of the index already: the files go.
                drop(ix);
                give_up(version);
                return;
            }
            ix.tick += 1;
            let used = ix.tick;
            ix.insert(
                key,
                Entry {
                    version,
                    bytes,
                    used,
                },
            )
        };
        if let Some(old) = replaced.filter(|o| *o != version) {
            let _ = std::fs::remove_dir_all(self.dir(old));
        }
        self.evict();
    }

    /// Evicts the least recently used objects while the tier is over its size, down to 90%
    /// of it (so that eviction runs in batches, not at every write).
    fn evict(&self) {
        let gone: Vec<u64> = {
            let mut ix = self.lock();
            if ix.bytes <= self.capacity {
                return;
            }
            let mut by_use: Vec<(u64, CacheKey)> = ix
                .objects
                .iter()
                .map(|(k, e)| (e.used, k.clone()))
                .collect();
            by_use.sort_unstable_by_key(|(u, _)| *u);
            let target = self.capacity / 10 * 9;
            let mut gone = Vec::new();
            for (_, k) in by_use {
                if ix.bytes <= target {
                    break;
                }
                if let Some(e) = ix.remove(&k) {
                    gone.push(e.version);
                }
            }
            gone
        };
        self.stats.evicted.fetch_add(gone.len() as u64, Relaxed);
        for v in gone {
            let _ = std::fs::remove_dir_all(self.dir(v));
        }
    }
}

/// Where the data of a slice of `len` bytes starts in its file.
fn data_offset(len: u64) -> u64 {
    SLICE_HEADER as u64 + 4 * len.div_ceil(BLOCK)
}

/// Bytes `from..=to` of the slice file at `path` (clamped to its length), and what is now known
/// checked of it. Blocks that `known` says passed in this very file are read as they are;
/// others are read whole and checked: `InvalidData` when the file's magic, size or a block's
/// checksum is wrong. Reads into memory that is not zeroed first.
fn read_slice_part(
    path: &Path,
    from: u64,
    to: u64,
    known: Option<Checked>,
) -> std::io::Result<(Bytes, Checked)> {
    use std::io::{Seek, SeekFrom};
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad slice file");
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let mut head = [0u8; SLICE_HEADER];
    f.read_exact(&mut head)?;
    if &head[..4] != SLICE_MAGIC {
        return Err(bad());
    }
    let len = u64::from_le_bytes(head[4..12].try_into().map_err(|_| bad())?);
    let blocks = u64::from(u32::from_le_bytes(
        head[12..].try_into().map_err(|_| bad())?,
    ));
    if len > SLICE_BYTES.max(1 << 20)
        || blocks != len.div_ceil(BLOCK)
        || meta.len() != slice_file_len(len)
    {
        return Err(bad());
    }
    let mut checked = match known {
        Some(k) if k.len == len && k.is_of(&meta) => k,
        _ => Checked::none_of(&meta, len),
    };
    if len == 0 || from >= len {
        return Ok((Bytes::new(), checked));
    }
    let to = to.min(len - 1);
    let (b0, b1) = (from / BLOCK, to / BLOCK);
    let want = Checked::span(b0, b1);
    // Bytes `start..end` of the data, into memory not zeroed first.
    let read = |f: &mut std::fs::File, start: u64, end: u64| -> std::io::Result<Vec<u8>> {
        f.seek(SeekFrom::Start(data_offset(len) + start))?;
        let mut data = Vec::with_capacity((end - start) as usize);
        f.take(end - start).read_to_end(&mut data)?;
        if data.len() as u64 != end - start {
            return Err(bad());
        }
        Ok(data)
    };
    if checked.blocks & want == want {
        let data = read(&mut f, from, to + 1)?;
        return Ok((Bytes::from(data), checked));
    }
    let mut crcs = vec![0u8; 4 * (b1 - b0 + 1) as usize];
    f.seek(SeekFrom::Start(SLICE_HEADER as u64 + 4 * b0))?;
    f.read_exact(&mut crcs)?;
    let start = b0 * BLOCK;
    let data = read(&mut f, start, ((b1 + 1) * BLOCK).min(len))?;
    for (block, crc) in data.chunks(BLOCK as usize).zip(crcs.chunks(4)) {
        if crc32fast::hash(block).to_le_bytes() != crc {
            return Err(bad());
        }
    }
    checked.blocks |= want;
    let data = Bytes::from(data);
    Ok((
        data.slice((from - start) as usize..=(to - start) as usize),
        checked,
    ))
}

/// Bytes of the files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Rebuilds the index from the metas on disk; drops what a kill left half-written.
fn recover(inner: &Inner) {
    let started = Instant::now();
    let mut found: Vec<(CacheKey, Entry)> = Vec::new();
    let mut dropped = 0u64;
    let mut newest = 0u64;
    for shard in std::fs::read_dir(&inner.root)
        .into_iter()
        .flatten()
        .flatten()
    {
        for dir in std::fs::read_dir(shard.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = dir.path();
            let version = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| u64::from_str_radix(n, 16).ok());
            let meta = inner
                .read_file(&path.join("meta"), META_MAGIC)
                .ok()
                .and_then(|raw| Meta::decode(&raw));
            let whole = match (version, &meta) {
                (Some(v), Some(m)) if m.version == v => (0..slice_count(m.len)).all(|i| {
                    let want = slice_file_len(crate::slices::slice_len(m.len, i));
                    let file = path.join(i.to_string());
                    let size = std::fs::metadata(&file).map(|md| md.len());
                    if m.flags & SPARSE == 0 {
                        return size.is_ok_and(|n| n == want);
                    }
                    // A sparse body keeps its good slices; a torn one goes.
                    if size.is_ok_and(|n| n != want) {
                        let _ = std::fs::remove_file(&file);
                    }
                    true
                }),
                _ => false,
            };
            match (whole, meta) {
                (true, Some(m)) => {
                    newest = newest.max(m.version);
                    // Temporaries of writes a kill interrupted.
                    for f in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                        if f.file_name().to_string_lossy().contains(".tmp") {
                            let _ = std::fs::remove_file(f.path());
                        }
                    }
                    let bytes = dir_bytes(&path);
                    found.push((
                        m.key,
                        Entry {
                            version: m.version,
                            bytes,
                            // The oldest stored is the first evicted, until used again.
                            used: 0,
                        },
                    ));
                }
                _ => {
                    dropped += 1;
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
    }
    crate::slices::version_above(newest);
    let mut stale = Vec::new();
    let mut kept = 0u64;
    {
        let mut ix = inner.lock();
        let pending = ix.pending.take().unwrap_or_default();
        let purges: Vec<Purged<'_>> = pending
            .iter()
            .map(|(r, p)| Purged::new(r.clone(), p))
            .collect();
        for (key, e) in found {
            // Stored since start (newer), or purged since start: the found copy goes.
            if ix.objects.contains_key(&key) || purges.iter().any(|p| p.names(&key)) {
                stale.push(e.version);
                continue;
            }
            kept += 1;
            ix.insert(key, e);
        }
    }
    for v in stale {
        let _ = std::fs::remove_dir_all(inner.dir(v));
    }
    inner.stats.recovered.store(kept, Relaxed);
    inner.stats.recovery_dropped.store(dropped, Relaxed);
    inner
        .stats
        .recovery_ms
        .store(started.elapsed().as_millis() as u64, Relaxed);
    inner.ready.store(true, Relaxed);
    inner.evict();
}

/// An object's header block on disk.
struct Meta {
    key: CacheKey,
    version: u64,
    len: u64,
    status: u16,
    stored_unix_ms: u64,
    initial_age: u64,
    fresh_ms: u64,
    stale_ms: u64,
    /// [`SPARSE`].
    flags: u64,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    fn of(key: &CacheKey, version: u64, len: u64, obj: &Object) -> Meta {
        let now = Instant::now();
        let stored = SystemTime::now()
            .checked_sub(now.saturating_duration_since(obj.stored_at))
            .unwrap_or(UNIX_EPOCH);
        let ms = |t: Instant| t.saturating_duration_since(obj.stored_at).as_millis() as u64;
        Meta {
            key: key.clone(),
            version,
            len,
            status: obj.status.as_u16(),
            stored_unix_ms: unix_ms(stored),
            initial_age: obj.initial_age,
            fresh_ms: ms(obj.fresh_until),
            stale_ms: ms(obj.stale_until),
            flags: match &obj.body {
                Body::Sliced(s) if s.is_sparse() => SPARSE,
                _ => 0,
            },
            headers: obj
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn into_object(self, body: Body) -> Object {
        let now = Instant::now();
        let age = unix_ms(SystemTime::now()).saturating_sub(self.stored_unix_ms);
        let stored_at = now.checked_sub(Duration::from_millis(age)).unwrap_or(now);
        let at = |ms: u64| {
            stored_at
                .checked_add(Duration::from_millis(ms))
                .unwrap_or(stored_at)
        };
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v)) {
                headers.append(k, v);
            }
        }
        let etag = headers.get(http::header::ETAG).cloned();
        let last_modified = crate::freshness::last_modified(&headers, SystemTime::now());
        let (fresh_until, stale_until) = (at(self.fresh_ms), at(self.stale_ms));
        // Not stored: read again from the directives the object was stored under.
        let updating_until = crate::freshness::after(
            fresh_until,
            crate::freshness::stale_while_revalidate(&headers),
        );
        let keep_until =
            crate::freshness::keep_until(fresh_until, stale_until, updating_until, &headers);
        Object {
            status: StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK),
            headers,
            body,
            stored_at,
            initial_age: self.initial_age,
            fresh_until,
            stale_until,
            updating_until,
            keep_until,
            etag,
            last_modified,
            encoded: Default::default(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.key.path.len());
        let bytes = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        out.extend_from_slice(&self.key.resource.to_le_bytes());
        bytes(&mut out, &self.key.path);
        for n in [
            self.version,
            self.len,
            u64::from(self.status),
            self.stored_unix_ms,
            self.initial_age,
            self.fresh_ms,
            self.stale_ms,
            self.flags,
            self.headers.len() as u64,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for (k, v) in &self.headers {
            bytes(&mut out, k);
            bytes(&mut out, v);
        }
        out
    }

    fn decode(raw: &[u8]) -> Option<Meta> {
        let mut r = Reader(raw);
        let resource = r.u64()?;
        let path = r.bytes()?.to_vec().into_boxed_slice();
        let version = r.u64()?;
        let len = r.u64()?;
        let status = u16::try_from(r.u64()?).ok()?;
        let stored_unix_ms = r.u64()?;
        let initial_age = r.u64()?;
        let fresh_ms = r.u64()?;
        let stale_ms = r.u64()?;
        let flags = r.u64()?;
        let n = r.u64()?;
        let mut headers = Vec::new();
        for _ in 0..n {
            headers.push((r.bytes()?.to_vec(), r.bytes()?.to_vec()));
        }
        r.0.is_empty().then_some(Meta {
            key: CacheKey { resource, path },
            version,
            len,
            status,
            stored_unix_ms,
            initial_age,
            fresh_ms,
            stale_ms,
            flags,
            headers,
        })
    }
}

/// A cursor over a meta's bytes; every read checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> CacheKey {
        CacheKey {
            resource: 3,
            path: path.as_bytes().into(),
        }
    }

    #[test]
    fn a_meta_reads_back_as_written_and_any_cut_of_it_is_refused() {
        let mut obj = Object::fresh_for_a_minute(Bytes::from_static(b"hello"));
        Arc::get_mut(&mut obj)
            .unwrap()
            .headers
            .insert("etag", HeaderValue::from_static("\"v1\""));
        let m = Meta::of(&key("/a?x=1"), 42, 5, &obj).encode();
        let back = Meta::decode(&m).unwrap();
        assert_eq!(back.key, key("/a?x=1"));
        assert_eq!((back.version, back.len, back.status), (42, 5, 200));
        let o = back.into_object(Body::Whole(Bytes::new()));
        assert_eq!(o.etag, Some(HeaderValue::from_static("\"v1\"")));
        assert!(o.is_fresh(Instant::now()));
        for cut in 0..m.len() {
            assert!(Meta::decode(&m[..cut]).is_none(), "a meta cut at {cut}");
        }
    }

    async fn wait_ready(d: &Disk) {
        for _ in 0..500 {
            if d.is_ready() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the disk tier never became ready");
    }

    async fn wait_stored(d: &Disk, n: u64) {
        for _ in 0..500 {
            if d.usage().0 == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} objects on disk, not {n}", d.usage().0);
    }

    #[tokio::test]
    async fn objects_survive_a_reopen_and_a_flipped_byte_is_a_miss() {
        let dir = tempdir();
        let purges = Arc::new(PurgeLog::default());
        let d = Disk::open(&dir, 1 << 30, Arc::clone(&purges)).unwrap();
        wait_ready(&d).await;
        d.commit(
            key("/a"),
            Object::fresh_for_a_minute(Bytes::from_static(b"aaaa")),
            0,
        );
        d.commit(
            key("/b"),
            Object::fresh_for_a_minute(Bytes::from_static(b"bbbb")),
            0,
        );
        wait_stored(&d, 2).await;
        drop(d);

        let d = Disk::open(&dir, 1 << 30, Arc::clone(&purges)).unwrap();
        // A miss while the index is rebuilt: a hit only once it is (two objects rebuild fast
        // enough, on a loaded machine, to be ready before the first look).
        let early = d.load(&key("/a")).await;
        assert!(
            early.is_none() || d.is_ready(),
            "a hit before the index was rebuilt"
        );
        wait_ready(&d).await;
        assert_eq!(d.stats().recovered.load(Relaxed), 2);
        let a = d.load(&key("/a")).await.expect("kept across the reopen");
        assert!(matches!(&a.body, Body::Whole(b) if &b[..] == b"aaaa"));

        // Flip a byte of /b's body on disk.
        let version = d.inner.lock().objects[&key("/b")].version;
        let path = d.inner.slice_path(version, 0);
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x20;
        std::fs::write(&path, raw).unwrap();
        assert!(
            d.load(&key("/b")).await.is_none(),
            "a corrupt entry is a miss"
        );
        assert_eq!(d.stats().corrupt.load(Relaxed), 1);
        assert!(!d.inner.dir(version).exists(), "and is dropped");

        // A purge deletes the meta at once: a reopen does not bring the object back.
        let req = tollgate_model::PurgeRequest {
            urls: Some(vec!["/a".into()]),
            paths: None,
        };
        purges.record(KeyRule::of_unknown(3), &req);
        d.purge(KeyRule::of_unknown(3), &req);
        drop(d);
        let d = Disk::open(&dir, 1 << 30, purges).unwrap();
        wait_ready(&d).await;
        assert!(d.load(&key("/a")).await.is_none(), "purged stays purged");
    }

    #[tokio::test]
    async fn a_commit_after_a_purge_it_began_before_is_dropped_and_the_size_is_kept() {
        let dir = tempdir();
        let purges = Arc::new(PurgeLog::default());
        // A purge of /late after its fetch began (mark 0), and none of the others'.
        purges.record(
            KeyRule::of_unknown(3),
            &tollgate_model::PurgeRequest {
                urls: Some(vec!["/late".into()]),
                paths: None,
            },
        );
        // Room for about three 100 KB objects.
        let d = Disk::open(&dir, 330_000, Arc::clone(&purges)).unwrap();
        wait_ready(&d).await;
        d.commit(
            key("/late"),
            Object::fresh_for_a_minute(Bytes::from_static(b"x")),
            0,
        );
        for i in 0..6 {
            let body = Bytes::from(vec![b'x'; 100_000]);
            let k = key(&format!("/{i}"));
            d.commit(k.clone(), Object::fresh_for_a_minute(body), 0);
            // One at a time: commits run on four threads, and "newest" is the order they land.
            for _ in 0..500 {
                if d.inner.lock().objects.contains_key(&k) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for _ in 0..500 {
            if d.stats().evicted.load(Relaxed) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (objects, bytes) = d.usage();
        assert!(bytes <= 330_000, "{bytes} bytes on disk");
        assert!((2..=3).contains(&objects), "{objects} objects");
        assert!(d.load(&key("/late")).await.is_none());
        assert!(d.load(&key("/5")).await.is_some(), "the newest is kept");
    }

    #[tokio::test]
    async fn a_checked_slice_is_read_on_the_edge_thread_and_altered_in_place_it_is_checked_again() {
        let dir = tempdir();
        let d = Disk::open(&dir, 1 << 30, Arc::new(PurgeLog::default())).unwrap();
        wait_ready(&d).await;
        let data: Vec<u8> = (0..(3 * BLOCK + 100) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        let (version, index) = (7, 2);
        let written = d.write_slice(version, index, Bytes::from(data.clone()), None);
        assert!(written.expect("queued").await.unwrap(), "written");
        let want = |from: u64, to: u64| &data[from as usize..=to as usize];
        let reads = |d: &Disk| {
            let s = d.stats();
            (s.reads_now.load(Relaxed), s.reads_threaded.load(Relaxed))
        };

        // Written by the tier, so known good: read on this thread, exactly what was asked,
        // across a block boundary, and no more than NOW_BYTES at once.
        let b = d
            .read_slice(version, index, (BLOCK - 5, BLOCK + 9), false)
            .await;
        assert_eq!(b.as_deref(), Some(want(BLOCK - 5, BLOCK + 9)));
        assert_eq!(reads(&d), (1, 0));
        let b = d
            .read_slice(version, index, (0, u64::MAX), false)
            .await
            .unwrap();
        assert_eq!(&b[..], want(0, (3 * BLOCK + 99).min(NOW_BYTES as u64 - 1)));

        // Altered in place (another change time; the kernel's clock for it may be coarse, so
        // some time passes first): checked again, on the tier's threads, and found bad.
        std::thread::sleep(Duration::from_millis(20));
        let path = d.inner.slice_path(version, index);
        let mut raw = std::fs::read(&path).unwrap();
        let at = data_offset(data.len() as u64) as usize + 2 * BLOCK as usize + 1;
        raw[at] ^= 0x01;
        std::fs::write(&path, &raw).unwrap();
        // Block 0 is untouched, but the file is not the one checked: nothing is taken on trust.
        let b = d.read_slice(version, index, (0, 10), true).await;
        assert_eq!(b.as_deref(), Some(want(0, 10)));
        assert_eq!(reads(&d).1, 1, "read again on the tier's threads");
        let b = d
            .read_slice(version, index, (2 * BLOCK, 2 * BLOCK + 5), true)
            .await;
        assert!(b.is_none(), "the flipped block is a miss");
        assert_eq!(d.stats().corrupt.load(Relaxed), 1);
        assert!(!path.exists(), "and the bad slice is deleted");

        // Checked blocks are remembered per block: a fresh file, read in its first block, is
        // read on the tier's threads again for its last.
        let again = d.write_slice(version, index, Bytes::from(data.clone()), None);
        assert!(again.expect("queued").await.unwrap());
        d.inner.checked.remove(&(version, index));
        let before = reads(&d);
        assert!(d.read_slice(version, index, (0, 10), false).await.is_some());
        assert!(d.read_slice(version, index, (1, 11), false).await.is_some());
        let b = d
            .read_slice(version, index, (3 * BLOCK, 3 * BLOCK + 99), false)
            .await;
        assert_eq!(b.as_deref(), Some(want(3 * BLOCK, 3 * BLOCK + 99)));
        assert_eq!(reads(&d), (before.0 + 1, before.1 + 2));
    }

    /// A fresh directory under the system's temporary one, removed when dropped.
    fn tempdir() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "tollgate-disk-{}-{}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        TempDir(d)
    }

    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
