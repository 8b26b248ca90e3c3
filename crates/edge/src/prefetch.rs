//! Prefetch (Gcore's `POST /cdn/resources/{id}/prefetch`): paths the control plane sends
//! with a snapshot, each fetched into this edge's cache in the background, as a viewer's miss
//! would be (one origin fetch shared with any viewer asking at the same time; with the `slice`
//! option, slice by slice), then read to its end so that every slice is stored.
//!
//! A few run at a time ([`CONCURRENT`]), so a prefetch of 100 large files neither floods the
//! origin nor takes the edge's bandwidth from its viewers. A path that fails is tried again
//! after 1 s and 4 s ([`TRIES`] in all); one that still fails is written to stderr and sent to
//! the control plane with the next stats report, which puts it into the audit log.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tollgate_model::{Prefetch, PrefetchFailure};
use tollgate_token::Target;

use crate::cache::Body;
use crate::fetch::Upstream;
use crate::flights::{Join, Shared, Waited};
use crate::key::KeyRule;
use crate::proxy::{lead, lookup, lookup_disk, Led, LOCK_TIMEOUT};
use crate::respond::{Answer, Served};
use crate::routes::Site;
use crate::slices::SliceBody;
use crate::Edge;

/// Attempts per path.
pub const TRIES: u32 = 3;
/// Paths fetched at once.
pub const CONCURRENT: usize = 4;
/// Failures kept for the next report at most (a longer list is cut, and counted).
const MAX_KEPT: usize = 100;

/// The edge's prefetches: how many may run, what failed since the last report, counters.
pub struct Prefetcher {
    permits: Arc<Semaphore>,
    failures: Mutex<Vec<PrefetchFailure>>,
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

impl Default for Prefetcher {
    fn default() -> Self {
        Prefetcher {
            permits: Arc::new(Semaphore::new(CONCURRENT)),
            failures: Mutex::new(Vec::new()),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        }
    }
}

impl Prefetcher {
    fn failures(&self) -> std::sync::MutexGuard<'_, Vec<PrefetchFailure>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The failures since the last call, for a report.
    pub fn take_failures(&self) -> Vec<PrefetchFailure> {
        std::mem::take(&mut *self.failures())
    }

    /// Puts back failures a report could not deliver (within the bound).
    pub fn keep_failures(&self, mut back: Vec<PrefetchFailure>) {
        let mut f = self.failures();
        back.append(&mut f);
        back.truncate(MAX_KEPT);
        *f = back;
    }

    fn failed(&self, f: PrefetchFailure) {
        self.failed.fetch_add(1, Relaxed);
        let mut list = self.failures();
        if list.len() < MAX_KEPT {
            list.push(f);
        }
    }

    /// The `/metrics` family.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP tollgate_prefetch_paths_total Prefetched paths by result (retried: attempts after a failure).\n# TYPE tollgate_prefetch_paths_total counter"
        );
        for (result, n) in [
            ("done", &self.done),
            ("failed", &self.failed),
            ("retried", &self.retried),
        ] {
            let _ = writeln!(
                out,
                "tollgate_prefetch_paths_total{{result=\"{result}\"}} {}",
                n.load(Relaxed)
            );
        }
    }
}

/// Starts the prefetch `p` in the background.
pub fn start(edge: &Arc<Edge>, p: &Prefetch) {
    let site = edge
        .routes
        .load()
        .sites()
        .find(|s| s.res.id == p.resource)
        .cloned();
    let resource = p.resource;
    for path in &p.what.paths {
        let (edge, site, path) = (Arc::clone(edge), site.clone(), path.clone());
        tokio::spawn(async move {
            let Some(site) = site else {
                return edge.prefetcher.failed(PrefetchFailure {
                    resource,
                    path,
                    reason: "the resource is not served by this edge (inactive or unknown)".into(),
                });
            };
            let Ok(_permit) = Arc::clone(&edge.prefetcher.permits).acquire_owned().await else {
                return;
            };
            let mut wait = Duration::from_secs(1);
            for attempt in 1..=TRIES {
                match warm(&edge, &site, &path).await {
                    Ok(()) => {
                        edge.prefetcher.done.fetch_add(1, Relaxed);
                        return;
                    }
                    Err(reason) if attempt == TRIES => {
                        eprintln!(
                            "tollgate edge: prefetch of {path} (resource {}) failed after {TRIES} tries: {reason}",
                            site.res.id
                        );
                        edge.prefetcher.failed(PrefetchFailure {
                            resource: site.res.id,
                            path,
                            reason,
                        });
                        return;
                    }
                    Err(_) => {
                        edge.prefetcher.retried.fetch_add(1, Relaxed);
                        tokio::time::sleep(wait).await;
                        wait *= 4;
                    }
                }
            }
        });
    }
}

/// Brings `path` of `site` into the cache whole: its object (looked up, or fetched as a miss
/// is), then every byte of its body read, so that each slice is stored.
async fn warm(edge: &Arc<Edge>, site: &Arc<Site>, path: &str) -> Result<(), String> {
    let target = Target::parse(path.as_bytes()).map_err(|_| "not a valid path".to_owned())?;
    let mut keyed = KeyRule::of(&site.res).key(&target);
    let origin_target = std::mem::take(&mut keyed.origin_target);
    let up = Upstream {
        site,
        https: site.res.origin_https(false),
        target: &origin_target,
        viewer: None,
    };
    let none = HeaderMap::new();
    let obj = loop {
        if let Some(Answer::Object { obj, .. }) = lookup(edge, &mut keyed, &none) {
            break obj;
        }
        if let Some(Answer::Object { obj, .. }) = lookup_disk(edge, &keyed, up).await {
            break obj;
        }
        if edge.large.contains(&keyed.key, std::time::Instant::now()) {
            return Err("larger than the largest object stored (--max-object-size)".into());
        }
        match edge.flights.join(&keyed.key) {
            Join::Lead(leader) => match lead(edge, &none, &keyed, up, leader).await {
                Led::Answer(Answer::Object {
                    served: Served::Stale,
                    ..
                }) => return Err("the origin failed (a stale copy is kept)".into()),
                Led::Answer(Answer::Object { obj, .. }) => break obj,
                Led::Answer(Answer::Streamed(resp)) => {
                    return Err(format!("not cacheable (status {})", resp.status().as_u16()))
                }
                Led::Answer(Answer::Failed(e)) => return Err(e.reason().into()),
                Led::Answer(
                    Answer::Refused(_) | Answer::Redirect(_) | Answer::Preflight { .. },
                ) => return Err("refused".into()),
                Led::Stream => return Err("not stored (too large, or not cacheable)".into()),
                Led::Again => continue,
            },
            Join::Follow(f) => match f.wait(LOCK_TIMEOUT).await {
                Waited::Done(Shared::Stored(obj)) => break obj,
                Waited::Done(Shared::Failed(e)) => return Err(e.reason().into()),
                Waited::Done(Shared::FetchYourself) => return Err("not cacheable".into()),
                Waited::LeaderGone | Waited::TimedOut => continue,
            },
        }
    };
    let Body::Sliced(_) = &obj.body else {
        return Ok(());
    };
    if obj.len() == Some(0) {
        return Ok(());
    }
    let end = obj.len().map(|n| n - 1);
    let read = edge.origin.timeouts.read;
    let mut body = SliceBody::new(obj, edge.tiers.clone(), 0, end, read);
    while let Some(frame) = body.frame().await {
        frame.map_err(|e| e.to_string())?;
    }
    Ok(())
}
