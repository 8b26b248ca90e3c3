//! The panel's chart data: edges report their increases every few seconds; this sums them over
//! edges into 5-second points for the last ten minutes. In memory only: a chart of the last
//! minutes does not need to survive a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tollgate_model::{Counters, EdgeReport};

/// Seconds per point.
pub const BUCKET_SECS: u64 = 5;
/// Points kept.
pub const BUCKETS: usize = 120;
/// Resources tracked per point at most (reports are authenticated, but bounded anyway).
const MAX_RESOURCES: usize = 100_000;

#[derive(Default)]
struct Inner {
    /// (bucket start, increase by resource), oldest first.
    buckets: VecDeque<(u64, HashMap<u64, Counters>)>,
}

/// Recent answers of all edges.
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

/// A chart's data: one value per bucket, oldest first.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Series {
    /// Seconds per point.
    pub bucket_secs: u64,
    /// Unix time of the first point.
    pub start: u64,
    /// Requests served.
    pub served: Vec<u64>,
    /// Of those, cache hits.
    pub hits: Vec<u64>,
    /// 403 answers.
    pub forbidden: Vec<u64>,
    /// 410 answers.
    pub gone: Vec<u64>,
    /// Served in `secure_key` report mode though the token would have refused them.
    pub reported: Vec<u64>,
    /// 400 answers (malformed requests).
    pub bad_request: Vec<u64>,
    /// 502/504 answers: the origin failed.
    pub origin_errors: Vec<u64>,
    /// Body bytes sent to viewers.
    pub bytes: Vec<u64>,
}

impl Stats {
    /// Adds an edge's report received at `now` (Unix seconds).
    pub fn record(&self, report: &EdgeReport, now: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let start = now - now % BUCKET_SECS;
        if inner.buckets.back().is_none_or(|(s, _)| *s < start) {
            inner.buckets.push_back((start, HashMap::new()));
        }
        let oldest = start.saturating_sub(BUCKET_SECS * BUCKETS as u64);
        while inner.buckets.front().is_some_and(|(s, _)| *s <= oldest) {
            inner.buckets.pop_front();
        }
        if let Some((_, b)) = inner.buckets.back_mut() {
            for (res, delta) in &report.resources {
                if b.len() < MAX_RESOURCES || b.contains_key(res) {
                    b.entry(*res).or_default().add(delta);
                }
            }
        }
    }

    /// The last [`BUCKETS`] points up to `now`, for one resource or (with `None`) all.
    pub fn series(&self, resource: Option<u64>, now: u64) -> Series {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let last = now - now % BUCKET_SECS;
        let start = last.saturating_sub(BUCKET_SECS * (BUCKETS as u64 - 1));
        let mut points = vec![Counters::default(); BUCKETS];
        for (s, by_res) in &inner.buckets {
            if *s < start || *s > last {
                continue;
            }
            let i = ((s - start) / BUCKET_SECS) as usize;
            for (res, c) in by_res {
                if resource.is_none_or(|r| r == *res) {
                    points[i].add(c);
                }
            }
        }
        Series {
            bucket_secs: BUCKET_SECS,
            start,
            served: points.iter().map(|c| c.served).collect(),
            hits: points.iter().map(|c| c.hits).collect(),
            forbidden: points.iter().map(|c| c.forbidden).collect(),
            gone: points.iter().map(|c| c.gone).collect(),
            reported: points.iter().map(|c| c.reported).collect(),
            bad_request: points.iter().map(|c| c.bad_request).collect(),
            origin_errors: points.iter().map(|c| c.origin_errors).collect(),
            bytes: points.iter().map(|c| c.bytes).collect(),
        }
    }
}

/// How often each key of each resource matched, over every edge that reports to this node, and
/// when it last did (the time of the report that said so: within a report interval). In memory:
/// an edge's restart loses nothing here (its reports are increases), a control plane's restart
/// starts the counts again.
#[derive(Default)]
pub struct KeyUsage {
    inner: Mutex<HashMap<u64, Usage>>,
}

/// One resource's key usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// The current (signing) key.
    pub key: KeyUse,
    /// The previous (verify-only) key.
    pub previous_key: KeyUse,
}

/// One key's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeyUse {
    /// Links that matched it.
    pub matches: u64,
    /// Unix time of the report of its last match (`None`: none since this node started).
    pub last_match: Option<u64>,
}

impl KeyUse {
    fn add(&mut self, n: u64, now: u64) {
        if n > 0 {
            self.matches = self.matches.saturating_add(n);
            self.last_match = Some(now);
        }
    }
}

impl KeyUsage {
    /// Adds an edge's report received at `now`.
    pub fn record(&self, report: &EdgeReport, now: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (res, c) in &report.resources {
            if c.current_key == 0 && c.previous_key == 0 {
                continue;
            }
            if m.len() >= MAX_RESOURCES && !m.contains_key(res) {
                continue;
            }
            let u = m.entry(*res).or_default();
            u.key.add(c.current_key, now);
            u.previous_key.add(c.previous_key, now);
        }
    }

    /// Resource `id`'s usage.
    pub fn get(&self, id: u64) -> Usage {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&id).copied().unwrap_or_default()
    }

    /// Drops resource `id`'s usage (its key changed: the counts were another key's).
    pub fn forget(&self, id: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(edge: &str, served: u64, forbidden: u64) -> EdgeReport {
        EdgeReport {
            edge: edge.into(),
            resources: [(
                1,
                Counters {
                    served,
                    forbidden,
                    ..Counters::default()
                },
            )]
            .into(),
            prefetch_failures: Vec::new(),
        }
    }

    #[test]
    fn increases_summed_over_edges() {
        let s = Stats::default();
        let t = 1_000_000;
        s.record(&report("a", 10, 5), t);
        s.record(&report("b", 7, 0), t);
        s.record(&report("a", 10, 1), t + 5);
        s.record(&report("b", 2, 0), t + 6);
        let series = s.series(Some(1), t + 10);
        let n = series.served.len();
        assert_eq!(&series.served[n - 3..], &[17, 12, 0]);
        assert_eq!(&series.forbidden[n - 3..], &[5, 1, 0]);
        assert_eq!(s.series(Some(2), t + 10).served.iter().sum::<u64>(), 0);
        // Ten minutes later it has all scrolled away.
        assert_eq!(s.series(None, t + 700).served.iter().sum::<u64>(), 0);
    }
}
