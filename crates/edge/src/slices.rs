//! Large bodies in fixed-size slices: the fill that stores an origin's body slice by slice as
//! it arrives, and the reader that answers a viewer (a whole body or one range) from the
//! slices, following the fill when it has not arrived yet.
//!
//! A slice is looked for in the memory tier, then in the fill of this process (the slice
//! being received, and the last two completed, so a viewer a little behind the fill never
//! misses one the memory tier evicted), then in the disk tier. The first byte of a miss goes
//! to the viewer when it arrives from the origin; every viewer of the object reads the same
//! fill (one origin fetch for all).
//!
//! With the resource's `slice` option the body is *sparse*: the origin is asked for one slice
//! at a time by Range ([`Ranged`]), a slice when a viewer first needs it, so a seek into a film
//! costs the origin the slices it covers, not the film up to there.
//!
//! Slices are 4 MiB: large enough that a 1 GiB object is 256 entries in the tables and 256
//! files on disk, and a slice's bookkeeping (its entry, its file, its checksum) is noise next
//! to its bytes; small enough that a 1 MiB range read costs at most one 4 MiB read from disk,
//! and that a seek fetches (with the `slice` option) 4 MiB, not Gcore's 10 MB.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::watch;

use crate::body::BodyError;
use crate::cache::Cache;
use crate::disk::Disk;
use crate::key::CacheKey;

/// Bytes in a slice (the last slice of a body may be shorter).
pub const SLICE_BYTES: u64 = 4 << 20;

/// Bodies up to this size with a known length are read whole before they are answered, and
/// kept in their object: waiting for 256 KiB costs a viewer a few round trips at most, and
/// a hit on a small object is then one table lookup.
pub const WHOLE_MAX: u64 = 256 << 10;

/// Slices a fill may have queued for the disk before it waits for the oldest to land.
const WRITES_AHEAD: usize = 4;

/// Largest frame a reader hands the viewer's connection: bounds how long one frame takes a
/// slow viewer, which the send timeout measures.
const FRAME_BYTES: usize = 256 << 10;

/// The last version number given out; starts at the clock's nanoseconds, so numbers from an
/// earlier run (on disk) are not given again, and never goes below one found on disk.
static VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A number for a new stored version of an object, unique across runs.
pub fn new_version() -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let _ = VERSION.fetch_max(clock, Relaxed);
    VERSION.fetch_add(1, Relaxed).wrapping_add(1)
}

/// Makes every later [`new_version`] larger than `seen` (the newest found on disk).
pub fn version_above(seen: u64) {
    VERSION.fetch_max(seen, std::sync::atomic::Ordering::Relaxed);
}

/// Number of slices of a body of `len` bytes (an empty body has none).
pub fn slice_count(len: u64) -> u64 {
    len.div_ceil(SLICE_BYTES)
}

/// Where a sliced body's slices are: the memory tier and, when the edge has one, the disk
/// tier.
#[derive(Clone)]
pub struct Tiers {
    pub memory: Cache,
    pub disk: Option<Arc<Disk>>,
}

/// A body stored in slices.
#[derive(Debug)]
pub struct Sliced {
    /// Names this stored version of the object (and its slices) in both tiers.
    pub version: u64,
    /// The object's key, to drop it from the memory tier when a slice is lost.
    key: CacheKey,
    /// The length, once known: from `Content-Length`, else when the fill ends.
    len: OnceLock<u64>,
    /// The fill, while this process receives the body (and after, harmlessly).
    fill: Option<Arc<Fill>>,
    /// Fetched by Range a slice at a time (the `slice` option): a slice in no tier is
    /// fetched, not missing.
    sparse: bool,
    /// How to fetch a slice of a sparse body; set when the object is made, or when one read
    /// from disk is first served by a resource with `slice`.
    ranged: OnceLock<Arc<Ranged>>,
}

impl Sliced {
    /// A body stored before (on disk): every slice is in a tier, or (`sparse`) is fetched
    /// by Range once [`Sliced::attach`] says how.
    pub fn stored(version: u64, len: u64, key: CacheKey, sparse: bool) -> Sliced {
        Sliced {
            version,
            key,
            len: OnceLock::from(len),
            fill: None,
            sparse,
            ranged: OnceLock::new(),
        }
    }

    /// A sparse body of `len` bytes whose slices come from `ranged`.
    pub fn sparse(version: u64, len: u64, key: CacheKey, ranged: Arc<Ranged>) -> Sliced {
        Sliced {
            version,
            key,
            len: OnceLock::from(len),
            fill: None,
            sparse: true,
            ranged: OnceLock::from(ranged),
        }
    }

    /// The same stored body, for a copy of its object with other headers (a revalidation):
    /// `None` while it is still arriving.
    pub fn share(&self) -> Option<Sliced> {
        if !self.is_complete() {
            return None;
        }
        let len = self.len()?;
        let s = Sliced::stored(self.version, len, self.key.clone(), self.sparse);
        if let Some(r) = self.ranged() {
            let _ = s.ranged.set(Arc::clone(r));
        }
        Some(s)
    }

    /// Whether slices are fetched by Range one at a time.
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }

    /// Says how the body fetches a slice it lacks by Range: every slice of a sparse body, and
    /// any slice of another that no tier holds (evicted before a slow viewer read it, or
    /// unreadable on disk). No effect on a body that knows already.
    pub fn attach(&self, ranged: impl FnOnce() -> Option<Ranged>) {
        if self.ranged.get().is_none() {
            if let Some(r) = ranged() {
                let _ = self.ranged.set(Arc::new(r));
            }
        }
    }

    /// The sparse body's source, once attached.
    pub fn ranged(&self) -> Option<&Arc<Ranged>> {
        self.ranged.get()
    }

    pub fn len(&self) -> Option<u64> {
        self.len.get().copied()
    }

    /// Whether the whole body has arrived.
    pub fn is_complete(&self) -> bool {
        match &self.fill {
            None => true,
            Some(f) => matches!(f.lock().end, Some(Ok(()))),
        }
    }

    /// Bytes received so far while this process's fill runs; `None` once it has ended (or
    /// for a body stored before).
    pub fn filling_at(&self) -> Option<u64> {
        let st = self.fill.as_ref()?.lock();
        st.end
            .is_none()
            .then(|| st.current_index * SLICE_BYTES + st.current_len as u64)
    }

    /// Bytes `start..=end` in one piece, when they lie in one slice the memory tier holds
    /// (most hits on objects of a slice or less): answered without a reader task.
    pub fn in_memory(&self, tiers: &Tiers, start: u64, end: u64) -> Option<Bytes> {
        let index = start / SLICE_BYTES;
        if end / SLICE_BYTES != index {
            return None;
        }
        let slice = tiers.memory.slice(self.version, index)?;
        let from = (start % SLICE_BYTES) as usize;
        let to = (end % SLICE_BYTES) as usize + 1;
        (to <= slice.len()).then(|| slice.slice(from..to))
    }
}

/// Why a fill stopped before the body's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillFailed {
    /// The origin's connection broke.
    Broken,
    /// The origin sent nothing for its read timeout.
    Stalled,
    /// The body ended before its `Content-Length`, or went past it.
    WrongLength,
    /// The body went past the largest object stored.
    TooLarge,
    /// A slice's response says the object changed at the origin since the first (length,
    /// `ETag` or `Last-Modified`): the stored slices are dropped.
    Changed,
    /// The origin did not answer a slice's Range request with its bytes (an error status,
    /// or a 200).
    NoRange,
}

/// A body being received from the origin, shared by its viewers.
#[derive(Debug)]
pub struct Fill {
    state: Mutex<FillState>,
    /// Bumped at every change of the state, for readers waiting on it.
    progress: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct FillState {
    /// Slices completed so far; the one being received has this index.
    current_index: u64,
    /// What has arrived of the slice being received.
    current: Vec<Bytes>,
    current_len: usize,
    /// The last completed slices.
    recent: VecDeque<(u64, Bytes)>,
    /// Completed slices whose disk write has not landed yet: the memory tier may evict one
    /// before it is on disk, and a viewer behind the fill must still find it (bounded by the
    /// disk tier's write queue).
    writing: Vec<(u64, Bytes)>,
    end: Option<Result<(), FillFailed>>,
}

impl Fill {
    /// A fill whose first slice is `first` (0 for a whole body).
    fn new(first: u64) -> Arc<Fill> {
        Arc::new(Fill {
            state: Mutex::new(FillState {
                current_index: first,
                ..FillState::default()
            }),
            progress: watch::channel(0).0,
        })
    }

    /// Ends the fill with `why` before it ran (its fetch failed).
    fn fail(&self, why: FillFailed) {
        self.lock().end = Some(Err(why));
        self.changed();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FillState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A sliced body about to be filled from `incoming`: the body for its object, and the fill to
/// run with [`fill_body`].
pub fn begin(version: u64, len: Option<u64>, key: CacheKey) -> (Sliced, Arc<Fill>) {
    let fill = Fill::new(0);
    let l = OnceLock::new();
    if let Some(n) = len {
        let _ = l.set(n);
    }
    (
        Sliced {
            version,
            key,
            len: l,
            fill: Some(Arc::clone(&fill)),
            sparse: false,
            ranged: OnceLock::new(),
        },
        fill,
    )
}

/// Fetches one slice of a sparse body: the origin's body of bytes `index * SLICE_BYTES` on,
/// checked to be the same object as the first slice's (else [`FillFailed::Changed`]).
pub trait SliceSource: Send + Sync {
    fn fetch(
        &self,
        index: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Incoming, FillFailed>> + Send + '_>>;
}

/// How a sparse body gets its slices: the source, and the slice fetches in flight (one per
/// slice however many viewers want it).
pub struct Ranged {
    source: Box<dyn SliceSource>,
    fills: Mutex<HashMap<u64, Arc<Fill>>>,
    /// Longest the origin may send nothing.
    read: Duration,
}

impl std::fmt::Debug for Ranged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ranged").finish_non_exhaustive()
    }
}

impl Ranged {
    pub fn new(source: Box<dyn SliceSource>, read: Duration) -> Ranged {
        Ranged {
            source,
            fills: Mutex::new(HashMap::new()),
            read,
        }
    }

    fn fills(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Fill>>> {
        self.fills.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fill_of(&self, index: u64) -> Option<Arc<Fill>> {
        self.fills().get(&index).cloned()
    }

    /// The fill of slice `index`, and whether it is new (its fetch is the caller's to run).
    pub fn register(&self, index: u64) -> (Arc<Fill>, bool) {
        let mut fills = self.fills();
        if let Some(f) = fills.get(&index) {
            return (Arc::clone(f), false);
        }
        let f = Fill::new(index);
        fills.insert(index, Arc::clone(&f));
        (f, true)
    }

    /// The fetch of slice `index` is over (its slice is in the tiers, or it failed).
    pub fn finished(&self, index: u64) {
        self.fills().remove(&index);
    }
}

/// Bytes in slice `index` of a body of `len` bytes.
pub fn slice_len(len: u64, index: u64) -> u64 {
    len.saturating_sub(index.saturating_mul(SLICE_BYTES))
        .min(SLICE_BYTES)
}

/// Starts fetching slice `index` of `obj`'s sparse body, unless a fetch of it runs already;
/// its fill. The fetch runs in a task of its own (other viewers may follow it); when the
/// object changed at the origin it leaves both tiers.
fn fetch_slice(
    obj: &Arc<crate::cache::Object>,
    sliced: &Sliced,
    ranged: &Arc<Ranged>,
    tiers: &Tiers,
    index: u64,
) -> Result<Arc<Fill>, Bytes> {
    let (fill, new) = ranged.register(index);
    if !new {
        return Ok(fill);
    }
    // A fetch of it may have ended between the reader's look and the registration.
    if let Some(b) = tiers.memory.slice(sliced.version, index) {
        ranged.finished(index);
        return Err(b);
    }
    let (obj, ranged, tiers, f) = (
        Arc::clone(obj),
        Arc::clone(ranged),
        tiers.clone(),
        Arc::clone(&fill),
    );
    let len = sliced.len().unwrap_or(0);
    tokio::spawn(async move {
        let crate::cache::Body::Sliced(sliced) = &obj.body else {
            return;
        };
        let outcome = match ranged.source.fetch(index).await {
            Ok(incoming) => {
                let store = Store::sparse(&tiers, sliced);
                let expected = slice_len(len, index);
                run_fill(
                    sliced.version,
                    &f,
                    incoming,
                    Some(expected),
                    &tiers,
                    store,
                    ranged.read,
                )
                .await
                .outcome
            }
            Err(why) => {
                // Out of the tiers before any viewer hears of it: the next request fetches
                // the new version, never this one's slices.
                // Changed, or no longer answering Range (the object then cannot be
                // completed from here): the next request fetches it anew.
                if matches!(why, FillFailed::Changed | FillFailed::NoRange) {
                    sliced.drop_everywhere(&obj, &tiers);
                }
                f.fail(why);
                Err(why)
            }
        };
        ranged.finished(index);
        match outcome {
            Err(FillFailed::Changed) => eprintln!(
                "tollgate edge: {} changed at the origin between slices; its stored slices are dropped",
                String::from_utf8_lossy(&sliced.key.path)
            ),
            Err(why) => eprintln!(
                "tollgate edge: slice {index} of {} not fetched ({why:?})",
                String::from_utf8_lossy(&sliced.key.path)
            ),
            Ok(_) => {}
        }
    });
    Ok(fill)
}

impl Sliced {
    /// Drops `obj` (whose body this is) from the memory tier and its version from the disk.
    pub fn drop_everywhere(&self, obj: &Arc<crate::cache::Object>, tiers: &Tiers) {
        tiers.memory.remove_this(&self.key, obj);
        if let Some(disk) = &tiers.disk {
            disk.forget(self.key.clone(), self.version);
        }
    }
}

/// Where a fill's slices go besides the memory tier.
#[derive(Clone, Copy)]
pub enum Store<'a> {
    /// Not to disk (there is none, or this body is not committed there).
    MemoryOnly,
    /// To disk, to be committed with the object once whole.
    Disk,
    /// To disk, added to the object already committed under the key.
    DiskInto(&'a CacheKey),
}

impl<'a> Store<'a> {
    /// For a slice fetched by Range: into its object on disk, a sparse one (committed, or
    /// about to be) or one stored whole there (a slice that went bad, fetched again).
    pub fn sparse(tiers: &Tiers, sliced: &'a Sliced) -> Store<'a> {
        match &tiers.disk {
            Some(d) if sliced.sparse || d.holds(&sliced.key, sliced.version) => {
                Store::DiskInto(&sliced.key)
            }
            _ => Store::MemoryOnly,
        }
    }
}

/// How a fill ended: the slices written to disk (all of them, for a body that may be
/// committed there) and the outcome.
pub struct Filled {
    pub outcome: Result<u64, FillFailed>,
    /// Whether every slice reached the disk tier.
    pub on_disk: bool,
}

/// Receives a whole body, `incoming`, into `fill` slice by slice, each slice put into the
/// memory tier and written to the disk tier as it completes; `read` is the longest the origin
/// may send nothing. The body's length is known once it is in.
pub async fn fill_body(
    sliced: &Sliced,
    fill: &Arc<Fill>,
    incoming: Incoming,
    tiers: &Tiers,
    read: Duration,
) -> Filled {
    let store = if tiers.disk.is_some() {
        Store::Disk
    } else {
        Store::MemoryOnly
    };
    let filled = run_fill(
        sliced.version,
        fill,
        incoming,
        sliced.len(),
        tiers,
        store,
        read,
    )
    .await;
    if let Ok(n) = filled.outcome {
        let _ = sliced.len.set(n);
    }
    filled
}

/// Receives `incoming` (`expected` bytes, when known) into `fill` from its current slice on;
/// each slice, as it completes, goes into the memory tier and where `store` says. Bodies past
/// the largest stored object end the fill ([`FillFailed::TooLarge`]). Returns the bytes
/// received.
pub(crate) async fn run_fill(
    version: u64,
    fill: &Arc<Fill>,
    mut incoming: Incoming,
    expected: Option<u64>,
    tiers: &Tiers,
    store: Store<'_>,
    read: Duration,
) -> Filled {
    let limit = tiers.memory.max_object_bytes;
    let mut received: u64 = 0;
    let mut writes = VecDeque::new();
    let mut on_disk = !matches!(store, Store::MemoryOnly);
    let outcome = loop {
        let frame = match tokio::time::timeout(read, incoming.frame()).await {
            Err(_) => break Err(FillFailed::Stalled),
            Ok(None) => break Ok(()),
            Ok(Some(Err(_))) => break Err(FillFailed::Broken),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        received = received.saturating_add(data.len() as u64);
        if expected.is_some_and(|n| received > n) {
            break Err(FillFailed::WrongLength);
        }
        if received > limit {
            break Err(FillFailed::TooLarge);
        }
        while !data.is_empty() {
            let completed = {
                let mut st = fill.lock();
                let room = SLICE_BYTES as usize - st.current_len;
                let piece = data.split_to(room.min(data.len()));
                st.current_len += piece.len();
                st.current.push(piece);
                (st.current_len == SLICE_BYTES as usize).then(|| complete_slice(&mut st))
            };
            if let Some((index, bytes)) = completed {
                store_slice(
                    tiers,
                    store,
                    (fill, version, index),
                    bytes,
                    &mut writes,
                    &mut on_disk,
                );
                // The origin is read no faster than the disk takes the slices, as nginx's
                // upstream is read no faster than its temporary file is written: a fill
                // ahead of its writes would run into the queue's bound and leave the object
                // off the disk.
                while writes.len() > WRITES_AHEAD {
                    if let Some(w) = writes.pop_front() {
                        on_disk &= w.await.unwrap_or(false);
                    }
                }
            }
            fill.changed();
        }
    };
    let outcome = match (outcome, expected) {
        (Ok(()), Some(n)) if n != received => Err(FillFailed::WrongLength),
        (Ok(()), _) => Ok(received),
        (Err(e), _) => Err(e),
    };
    if outcome.is_ok() {
        let last = {
            let mut st = fill.lock();
            (st.current_len > 0).then(|| complete_slice(&mut st))
        };
        if let Some((index, bytes)) = last {
            store_slice(
                tiers,
                store,
                (fill, version, index),
                bytes,
                &mut writes,
                &mut on_disk,
            );
        }
    }
    fill.lock().end = Some(outcome.map(|_| ()));
    fill.changed();
    for w in writes {
        on_disk &= w.await.unwrap_or(false);
    }
    Filled { outcome, on_disk }
}

/// Ends the slice being received: its bytes in one piece, kept among the recent ones.
fn complete_slice(st: &mut FillState) -> (u64, Bytes) {
    let mut whole = BytesMut::with_capacity(st.current_len);
    for c in st.current.drain(..) {
        whole.extend_from_slice(&c);
    }
    let bytes = whole.freeze();
    let index = st.current_index;
    st.current_index += 1;
    st.current_len = 0;
    st.recent.push_back((index, bytes.clone()));
    if st.recent.len() > 2 {
        st.recent.pop_front();
    }
    (index, bytes)
}

/// Puts slice `index` of `version` (filled by `fill`) into the memory tier and, as `store`
/// says, the disk's write queue; the fill keeps it until the write lands.
fn store_slice(
    tiers: &Tiers,
    store: Store<'_>,
    (fill, version, index): (&Arc<Fill>, u64, u64),
    bytes: Bytes,
    writes: &mut VecDeque<tokio::task::JoinHandle<bool>>,
    on_disk: &mut bool,
) {
    tiers.memory.put_slice(version, index, bytes.clone());
    let into = match store {
        Store::DiskInto(key) => Some(key),
        _ => None,
    };
    if let Some(disk) = tiers.disk.as_ref().filter(|_| *on_disk) {
        match disk.write_slice(version, index, bytes.clone(), into) {
            Some(w) => {
                fill.lock().writing.push((index, bytes));
                let f = Arc::clone(fill);
                writes.push_back(tokio::spawn(async move {
                    let ok = w.await.unwrap_or(false);
                    f.lock().writing.retain(|(i, _)| *i != index);
                    ok
                }));
            }
            // Not written (the disk is full, failing or too far behind): the body cannot be
            // committed to disk whole, so no later slice is written either.
            None => *on_disk = false,
        }
    }
}

/// What a reader found at an offset.
enum Found {
    /// Bytes starting at the offset.
    Bytes(Bytes),
    /// The body ends before the offset.
    End,
    /// Wait for the fill to move, then look again.
    Wait(watch::Receiver<u64>),
    Failed(BodyError),
}

/// Looks for the bytes at `pos` in the fill; `None` when they are in a slice it no longer
/// holds (look in the tiers).
fn in_fill(fill: &Fill, pos: u64) -> Option<Found> {
    let index = pos / SLICE_BYTES;
    let off = (pos % SLICE_BYTES) as usize;
    // Subscribed before the state is read: a change after the read wakes the reader.
    let rx = fill.progress.subscribe();
    let st = fill.lock();
    if index < st.current_index {
        let (_, b) = st
            .recent
            .iter()
            .chain(st.writing.iter())
            .find(|(i, _)| *i == index)?;
        return Some(if off < b.len() {
            Found::Bytes(b.slice(off..))
        } else {
            Found::End
        });
    }
    if index == st.current_index && off < st.current_len {
        let mut skip = off;
        for c in &st.current {
            if skip < c.len() {
                return Some(Found::Bytes(c.slice(skip..)));
            }
            skip -= c.len();
        }
    }
    Some(match st.end {
        Some(Ok(())) => Found::End,
        Some(Err(e)) => Found::Failed(BodyError::Fill(e)),
        None => Found::Wait(rx),
    })
}

/// Bytes at `pos` of `sliced` (the body of `obj`), from the first place that has them; for a
/// body that can, the slice's fetch by Range when none has. `end` is the last byte the reader
/// wants: from disk only the blocks up to it are read, and only a slice read whole goes into
/// the memory tier (a range read does not evict hot slices).
async fn find(
    obj: &Arc<crate::cache::Object>,
    sliced: &Sliced,
    tiers: &Tiers,
    pos: u64,
    end: Option<u64>,
) -> Found {
    let index = pos / SLICE_BYTES;
    let off = (pos % SLICE_BYTES) as usize;
    let at = |b: Bytes| {
        if off < b.len() {
            Found::Bytes(b.slice(off..))
        } else {
            Found::End
        }
    };
    if let Some(b) = tiers.memory.slice(sliced.version, index) {
        return at(b);
    }
    if let Some(found) = sliced.fill.as_ref().and_then(|f| in_fill(f, pos)) {
        return found;
    }
    let ranged = sliced.ranged();
    if let Some(r) = ranged {
        if let Some(found) = r.fill_of(index).and_then(|f| in_fill(&f, pos)) {
            read_ahead(obj, sliced, r, tiers, index, end);
            return found;
        }
    }
    if let Some(disk) = &tiers.disk {
        // A body that can fetch its slices loses only the one that is bad, not the object.
        let refetchable = sliced.sparse || ranged.is_some();
        let to = match end {
            Some(e) if e / SLICE_BYTES == index => e % SLICE_BYTES,
            _ => SLICE_BYTES - 1,
        };
        let part = (off as u64, to);
        if let Some(b) = disk
            .read_slice(sliced.version, index, part, refetchable)
            .await
        {
            let whole_slice = off == 0
                && sliced
                    .len()
                    .is_some_and(|n| b.len() as u64 == slice_len(n, index));
            if whole_slice {
                tiers.memory.put_slice(sliced.version, index, b.clone());
            }
            return if b.is_empty() {
                Found::End
            } else {
                Found::Bytes(b)
            };
        }
    }
    match ranged {
        Some(r) => match fetch_slice(obj, sliced, r, tiers, index) {
            Ok(fill) => {
                read_ahead(obj, sliced, r, tiers, index, end);
                in_fill(&fill, pos).unwrap_or(Found::Failed(BodyError::SliceMissing))
            }
            Err(b) => at(b),
        },
        None => Found::Failed(BodyError::SliceMissing),
    }
}

/// A reader taking slice `index` of a sparse body from the origin, and wanting more after it,
/// starts the next slice's fetch now, so that the origin's round trip for each slice overlaps
/// the one before (nginx's slice module fetches strictly one after another). Skipped when the
/// memory tier holds the next slice; one on disk only is fetched again, a waste of one slice.
fn read_ahead(
    obj: &Arc<crate::cache::Object>,
    sliced: &Sliced,
    ranged: &Arc<Ranged>,
    tiers: &Tiers,
    index: u64,
    end: Option<u64>,
) {
    let next = index + 1;
    let wanted = match (end, sliced.len()) {
        (Some(e), _) => e / SLICE_BYTES >= next,
        (None, Some(n)) => next < slice_count(n),
        (None, None) => false,
    };
    if sliced.sparse
        && wanted
        && ranged.fill_of(next).is_none()
        && tiers.memory.slice(sliced.version, next).is_none()
    {
        let _ = fetch_slice(obj, sliced, ranged, tiers, next);
    }
}

/// A viewer's body read from a sliced object: bytes `start..=end` (to the body's end when
/// `end` is `None`), by a small task that looks each slice up and hands the viewer one frame
/// at a time, giving up when the viewer takes nothing for the send timeout.
pub struct SliceBody {
    frames: crate::body::Frames,
    /// The client connection's request, counted as in progress until the body ends (a wait
    /// on the fill is bounded by the origin's read timeout, not the client's header timeout).
    serving: Option<crate::client_io::Serving>,
}

impl SliceBody {
    /// Keeps `serving` until the body ends.
    pub fn hold(&mut self, serving: crate::client_io::Serving) {
        self.serving = Some(serving);
    }

    /// Starts reading `obj`'s sliced body (the object keeps it alive) from `start` to `end`.
    pub fn new(
        obj: Arc<crate::cache::Object>,
        tiers: Tiers,
        start: u64,
        end: Option<u64>,
        send: Duration,
    ) -> SliceBody {
        let hint = match end {
            Some(e) => SizeHint::with_exact(e.saturating_sub(start).saturating_add(1)),
            None => SizeHint::default(),
        };
        let (out, frames) = crate::body::Frames::channel(hint);
        tokio::spawn(async move {
            let tx = &out.tx;
            let crate::cache::Body::Sliced(sliced) = &obj.body else {
                return;
            };
            let mut pos = start;
            // Bytes found at `pos` and not sent yet: one lookup serves the frames after it.
            let mut ahead = Bytes::new();
            loop {
                if end.is_some_and(|e| pos > e) {
                    return out.finish();
                }
                let found = if ahead.is_empty() {
                    find(&obj, sliced, &tiers, pos, end).await
                } else {
                    Found::Bytes(std::mem::take(&mut ahead))
                };
                let item = match found {
                    Found::Bytes(mut b) => {
                        let left = end.map_or(u64::MAX, |e| e - pos + 1);
                        let n = b.len().min(FRAME_BYTES).min(left as usize);
                        ahead = b.split_off(n);
                        pos += b.len() as u64;
                        Ok(Frame::data(b))
                    }
                    Found::End if end.is_none() => return out.finish(),
                    // Shorter than its length said: never pad, end in error.
                    Found::End => Err(BodyError::SliceMissing),
                    Found::Wait(mut rx) => {
                        tokio::select! {
                            _ = rx.changed() => {}
                            () = tx.closed() => return,
                        }
                        continue;
                    }
                    // A slice that could not be fetched by Range: this viewer's answer ends,
                    // the object stays (its other slices are good).
                    Found::Failed(e @ BodyError::Fill(_)) if sliced.ranged().is_some() => Err(e),
                    Found::Failed(e) => {
                        // A slice in no tier: the object cannot be answered from the cache
                        // again; the next request fetches it.
                        tiers.memory.remove_this(&sliced.key, &obj);
                        Err(e)
                    }
                };
                let last = item.is_err();
                match tokio::time::timeout(send, tx.send(item)).await {
                    Ok(Ok(())) if !last => {}
                    _ => return,
                }
            }
        });
        SliceBody {
            frames,
            serving: None,
        }
    }
}

impl Body for SliceBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.frames).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.frames.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_counts() {
        assert_eq!(slice_count(0), 0);
        assert_eq!(slice_count(1), 1);
        assert_eq!(slice_count(SLICE_BYTES), 1);
        assert_eq!(slice_count(SLICE_BYTES + 1), 2);
    }

    #[test]
    fn the_fill_answers_from_the_slice_being_received_and_the_recent_ones() {
        let (_, fill) = begin(
            1,
            None,
            CacheKey {
                resource: 1,
                path: b"/a"[..].into(),
            },
        );
        {
            let mut st = fill.lock();
            st.current = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"def")];
            st.current_len = 6;
        }
        let bytes = |f: Option<Found>| match f {
            Some(Found::Bytes(b)) => b,
            _ => panic!("no bytes"),
        };
        assert_eq!(&bytes(in_fill(&fill, 0))[..], b"abc");
        assert_eq!(&bytes(in_fill(&fill, 4))[..], b"ef");
        assert!(matches!(in_fill(&fill, 6), Some(Found::Wait(_))));
        assert!(matches!(
            in_fill(&fill, SLICE_BYTES * 3),
            Some(Found::Wait(_))
        ));
        {
            let mut st = fill.lock();
            let (i, _) = complete_slice(&mut st);
            assert_eq!(i, 0);
        }
        assert_eq!(
            &bytes(in_fill(&fill, 1))[..],
            b"bcdef",
            "kept among the recent"
        );
        fill.lock().end = Some(Err(FillFailed::Broken));
        assert!(matches!(
            in_fill(&fill, SLICE_BYTES),
            Some(Found::Failed(BodyError::Fill(FillFailed::Broken)))
        ));
    }
}
