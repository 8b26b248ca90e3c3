//! Following a control plane: long-poll `GET /edge/v1/config` for the next snapshot (a delta
//! of what changed since the version held, or everything), apply it (every change or none;
//! routes swapped atomically, purges applied), and save the result in the background, so that
//! an edge restarted while the control plane is down serves the last good configuration.
//! Counters go back with `POST /edge/v1/stats` for the panel's chart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use tollgate_model::{EdgeReport, Snapshot};

use crate::control_client::ControlClient;
use crate::Edge;

/// How an edge follows its control plane.
#[derive(Clone)]
pub struct Follow {
    /// Base URL of the control plane, e.g. `http://127.0.0.1:9090`.
    pub control: String,
    /// Edge token.
    pub token: String,
    /// Where the last good snapshot is kept.
    pub state_dir: PathBuf,
    /// This edge's name in reports.
    pub name: String,
}

impl std::fmt::Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: logs and panics never show it.
        f.debug_struct("Follow")
            .field("control", &self.control)
            .field("token", &"<redacted>")
            .field("state_dir", &self.state_dir)
            .field("name", &self.name)
            .finish()
    }
}

/// Seconds the control plane may hold a poll.
const WAIT_SECS: u64 = 25;
/// Largest snapshot accepted.
const MAX_SNAPSHOT: usize = 256 << 20;
/// How often counters are reported.
const REPORT_EVERY: Duration = Duration::from_secs(2);
const SNAPSHOT_FILE: &str = "snapshot.json";
/// The shortest time between the starts of two saves of the snapshot.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two tries to reach a control plane that is down.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

pub use crate::held::HeldConfig;
use crate::held::{ApplyError, Change};

/// Makes `snap` the edge's configuration, reached from `held` (every change or none), and
/// returns the configuration now held. Purges are the caller's: they apply even to a refused
/// snapshot.
fn apply(edge: &Edge, held: &HeldConfig, snap: Snapshot) -> Result<HeldConfig, ApplyError> {
    let (next, change) = held.next(snap)?;
    install(edge, &next, change);
    Ok(next)
}

/// Routes `held`'s resources (all of them, or the change from the configuration before).
fn install(edge: &Edge, held: &HeldConfig, change: Change) {
    match change {
        Change::Whole => {
            edge.warn_without_geoip(held.resources().map(|r| &**r));
            edge.replace_routes(held.resources().cloned())
        }
        Change::Delta { changed, removed } => {
            edge.warn_without_geoip(changed.iter().map(|r| &**r));
            edge.patch_routes(&changed, &removed)
        }
    }
    edge.config_version
        .store(held.version, std::sync::atomic::Ordering::Relaxed);
}

/// Serves the configuration saved in `f.state_dir`, when there is a good one, until the control
/// plane answers; a bad one is set aside and makes the edge unhealthy (it serves nothing) until
/// then. Returns the configuration held, for [`follow`].
pub fn resume(edge: &Edge, f: &Follow) -> HeldConfig {
    match load_saved(&f.state_dir) {
        Saved::Good(held) => {
            eprintln!(
                "tollgate edge: serving the saved config version {} from {} until the control plane answers",
                held.version,
                f.state_dir.display()
            );
            install(edge, &held, Change::Whole);
            held
        }
        Saved::Bad(bad) => {
            eprintln!(
                "tollgate edge: error: {bad}; serving no resources until the control plane {} answers",
                f.control
            );
            edge.set_problem(format!(
                "no configuration: {bad}; the control plane {} has not answered yet",
                f.control
            ));
            HeldConfig::default()
        }
        Saved::Nothing => HeldConfig::default(),
    }
}

/// What was found in a state directory.
#[derive(Debug)]
enum Saved {
    /// No saved snapshot (a first start).
    Nothing,
    /// A snapshot whose every resource validates.
    Good(HeldConfig),
    /// A snapshot that could not be used; it was moved aside, never deleted.
    Bad(BadSnapshot),
}

/// A saved snapshot that does not read, parse or validate.
#[derive(Debug)]
struct BadSnapshot {
    path: PathBuf,
    /// What is wrong with it.
    reason: String,
    /// Where it was moved (`snapshot.json.bad-UNIXTIME`), or why it could not be.
    kept_as: Result<PathBuf, String>,
}

impl std::fmt::Display for BadSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "saved snapshot {} refused: {}; ",
            self.path.display(),
            self.reason
        )?;
        match &self.kept_as {
            Ok(p) => write!(f, "kept as {}", p.display()),
            Err(e) => write!(f, "left in place ({e})"),
        }
    }
}

/// Moves `path` aside as `PATH.bad-UNIXTIME` (with `-N` after it if that name is taken).
fn set_aside(path: &Path) -> Result<PathBuf, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.bad-{now}", path.display());
    let mut to = PathBuf::from(&base);
    let mut n = 1u32;
    while to.exists() && n < 1000 {
        to = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &to)
        .map(|()| to)
        .map_err(|e| format!("cannot rename it: {e}"))
}

/// The snapshot saved in `dir`: none, a good one, or a bad one (moved aside, with the reason).
fn load_saved(dir: &Path) -> Saved {
    let path = dir.join(SNAPSHOT_FILE);
    let reason = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Saved::Nothing,
        Err(e) => format!("cannot read it: {e}"),
        Ok(text) => match serde_json::from_slice::<Snapshot>(&text) {
            Err(e) => format!("not a snapshot: {e}"),
            Ok(snap) => match HeldConfig::whole(snap) {
                Ok(held) => return Saved::Good(held),
                Err(e) => format!("invalid: {e}"),
            },
        },
    };
    let kept_as = set_aside(&path);
    Saved::Bad(BadSnapshot {
        path,
        reason,
        kept_as,
    })
}

/// Saves `held` so that it replaces the old file whole or not at all.
fn save(dir: &Path, held: &HeldConfig) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // An existing directory may have been made 0755 by hand: the snapshot's keys are this
    // user's only.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let body = held.to_json()?;
    // The snapshot holds the resources' keys: readable by this user only.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?
    };
    f.write_all(&body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// Saves configurations on a thread of its own, newest first: a change is enforced as soon as
/// it is applied, without waiting for a whole snapshot to be written and synced (15 MB and
/// about 100 ms of CPU at 100,000 resources), and when changes come faster than saves, the ones
/// in between are skipped (each save is whole). Saves start [`SAVE_EVERY`] apart at most, so
/// that a burst of changes does not keep a core serialising (it slowed each change of a burst
/// from 2 ms to 18 ms at 100,000 resources); what a crash loses is at most that much of
/// history, which the control plane sends again at the next start.
struct Saver {
    tx: std::sync::mpsc::Sender<Arc<HeldConfig>>,
}

impl Saver {
    fn start(dir: PathBuf) -> Saver {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<HeldConfig>>();
        let spawned = std::thread::Builder::new()
            .name("tollgate-save".into())
            // Ends when the follower drops its `Saver` (and everything sent was taken).
            .spawn(move || {
                while let Ok(mut held) = rx.recv() {
                    // Only the newest is worth writing.
                    while let Ok(newer) = rx.try_recv() {
                        held = newer;
                    }
                    let started = std::time::Instant::now();
                    if let Err(e) = save(&dir, &held) {
                        eprintln!(
                            "tollgate edge: cannot save the snapshot in {}: {e}",
                            dir.display()
                        );
                    }
                    std::thread::sleep(SAVE_EVERY.saturating_sub(started.elapsed()));
                }
            });
        if let Err(e) = spawned {
            eprintln!("tollgate edge: cannot start the thread saving snapshots: {e}");
        }
        Saver { tx }
    }

    fn save(&self, held: Arc<HeldConfig>) {
        // Fails only if the thread could not start, which was said then.
        let _ = self.tx.send(held);
    }
}

enum Polled {
    New(Snapshot),
    Same,
}

/// `epoch` is the epoch of the configuration held, 0 to be sent everything at the next change.
/// `name` tells the control plane which edge holds `since` (resources show `"status":
/// "active"` once every edge holds their last change).
async fn poll(
    client: &ControlClient,
    since: u64,
    epoch: u64,
    name: &str,
) -> Result<Polled, String> {
    let path = format!(
        "/edge/v1/config?since={since}&wait={WAIT_SECS}&epoch={epoch}&edge={}",
        tollgate_model::query_component(name)
    );
    let (status, body) = client
        .call(
            Method::GET,
            &path,
            None,
            MAX_SNAPSHOT,
            Duration::from_secs(WAIT_SECS + 10),
        )
        .await?;
    match status {
        StatusCode::NOT_MODIFIED => Ok(Polled::Same),
        StatusCode::OK => serde_json::from_slice(&body)
            .map(Polled::New)
            .map_err(|e| format!("{}: unreadable snapshot: {e}", client.url(&path))),
        s => Err(format!(
            "{}: {s}: {}",
            client.url(&path),
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )),
    }
}

/// Follows the control plane until `stop` resolves, from `held` (what [`resume`] found).
pub async fn follow(
    edge: Arc<Edge>,
    f: Follow,
    held: HeldConfig,
    stop: impl std::future::Future<Output = ()>,
) {
    let client = ControlClient::new(&f.control, &f.token, edge.origin.tls_config());
    let reporter = tokio::spawn(report(Arc::clone(&edge), f.name.clone(), client.clone()));
    let saver = Saver::start(f.state_dir.clone());
    tokio::pin!(stop);
    let mut held = Arc::new(held);
    // The version asked from: the one held, or a refused one (asking again would spin).
    let mut since = held.version;
    // 0 after a refusal: the next change must come whole, since a delta would build on the
    // refused version.
    let mut epoch = held.epoch;
    let mut backoff = Duration::from_millis(200);
    let mut failing = false;
    // Set while the newest version was refused: a later "no change" must not clear a problem.
    let mut refused = false;
    loop {
        let polled = tokio::select! {
            r = poll(&client, since, epoch, &f.name) => r,
            () = &mut stop => break,
        };
        match polled {
            Ok(Polled::Same) if !refused => edge.clear_problem(),
            Ok(Polled::Same) => {}
            Ok(Polled::New(mut snap)) => {
                if failing {
                    eprintln!("tollgate edge: control plane {} reachable again", f.control);
                    failing = false;
                }
                backoff = Duration::from_millis(200);
                let purges = std::mem::take(&mut snap.purges);
                let prefetches = std::mem::take(&mut snap.prefetches);
                let version = snap.version;
                let kind = match snap.delta_from {
                    Some(_) => format!(
                        "delta: {} changed, {} deleted",
                        snap.resources.len(),
                        snap.deleted.len()
                    ),
                    None => "whole".to_owned(),
                };
                // At 100,000 resources a whole snapshot takes a few hundred milliseconds to
                // validate and index: off the runtime's threads, which serve viewers.
                let (edge2, held2) = (Arc::clone(&edge), Arc::clone(&held));
                let started = std::time::Instant::now();
                let applied =
                    tokio::task::spawn_blocking(move || apply(&edge2, &held2, snap)).await;
                let took = started.elapsed();
                let applied = applied.unwrap_or_else(|e| Err(ApplyError(format!("panicked: {e}"))));
                // Purges never widen what is served: they are applied even when the
                // resources are refused, so none is lost by skipping a version. Each is keyed
                // as its resource now keys requests (the refused version's rules never served).
                let keyed_by = applied.as_ref().unwrap_or(&held);
                for p in &purges {
                    edge.purge(keyed_by, p);
                }
                // After the purges and the new routes: a prefetch after a purge of the same
                // path fetches the new copy, with the resource as it now is.
                for p in &prefetches {
                    crate::prefetch::start(&edge, p);
                }
                match applied {
                    Ok(next) => {
                        refused = false;
                        edge.config_refused
                            .store(0, std::sync::atomic::Ordering::Relaxed);
                        edge.clear_problem();
                        eprintln!(
                            "tollgate edge: config version {version} applied ({} resources; {kind}; {} purges; {:.1} ms)",
                            next.len(),
                            purges.len(),
                            took.as_secs_f64() * 1000.0
                        );
                        held = Arc::new(next);
                        epoch = held.epoch;
                        saver.save(Arc::clone(&held));
                    }
                    Err(e) => {
                        // The resources stay as they were and the edge stays healthy (it
                        // serves its last good config); `tollgate_config_refused_version` says
                        // which was refused.
                        refused = true;
                        epoch = 0;
                        edge.config_refused
                            .store(version, std::sync::atomic::Ordering::Relaxed);
                        eprintln!(
                            "tollgate edge: error: config version {version} refused, keeping version {}: {e}",
                            held.version
                        );
                    }
                }
                // Move on either way: asking again for a refused version would spin.
                since = version;
            }
            Err(e) => {
                if !failing {
                    eprintln!(
                        "tollgate edge: control plane: {e}; serving config version {}, retrying",
                        held.version
                    );
                    failing = true;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut stop => break,
                }
                // At most half a second between tries: the first change after an outage must
                // reach the edge within a second (it took 1.6 s with a 5 s cap).
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    reporter.abort();
}

/// A report's counters without the fields a control plane before them refuses.
fn strip_extensions(report: &mut EdgeReport) {
    for c in report.resources.values_mut() {
        *c = c.without_extensions();
    }
}

/// Sends, every [`REPORT_EVERY`], each resource's increase since the last report the control
/// plane accepted (a failed report is folded into the next one).
async fn report(edge: Arc<Edge>, name: String, client: ControlClient) {
    use std::collections::BTreeMap;
    use tollgate_model::Counters;

    let mut sent: BTreeMap<u64, Counters> = BTreeMap::new();
    let mut legacy = false;
    let mut tick = tokio::time::interval(REPORT_EVERY);
    loop {
        tick.tick().await;
        let now: BTreeMap<u64, Counters> = edge
            .routes
            .load()
            .sites()
            .filter(|s| s.metrics.is_used())
            .map(|s| (s.res.id, s.metrics.counters()))
            .collect();
        let resources: BTreeMap<u64, Counters> = now
            .iter()
            .map(|(id, c)| {
                (
                    *id,
                    c.increase_since(&sent.get(id).copied().unwrap_or_default()),
                )
            })
            .filter(|(_, d)| *d != Counters::default())
            .collect();
        let prefetch_failures = edge.prefetcher.take_failures();
        if resources.is_empty() && prefetch_failures.is_empty() {
            sent = now;
            continue;
        }
        let report = EdgeReport {
            edge: name.clone(),
            resources,
            prefetch_failures,
        };
        let send = |report: &EdgeReport| {
            let body = serde_json::to_vec(report).unwrap_or_default();
            let client = &client;
            async move {
                // Reports are best effort: the chart shows a gap, nothing else depends on them.
                client
                    .call(
                        Method::POST,
                        "/edge/v1/stats",
                        Some(body),
                        64 << 10,
                        REPORT_EVERY,
                    )
                    .await
                    .map(|(status, _)| status)
            }
        };
        let mut report = report;
        if legacy {
            strip_extensions(&mut report);
        }
        let mut status = send(&report).await;
        // A control plane before report mode and key usage refuses their fields (it refuses
        // unknown fields): it is sent the rest from now on, so that a fleet upgrades in any order.
        if !legacy && matches!(status, Ok(s) if s == http::StatusCode::BAD_REQUEST) {
            legacy = true;
            strip_extensions(&mut report);
            status = send(&report).await;
        }
        let sent_ok = status.is_ok_and(|s| s.is_success());
        if sent_ok {
            sent = now;
        } else {
            edge.prefetcher.keep_failures(report.prefetch_failures);
        }
    }
}
