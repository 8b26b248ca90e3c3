//! The panel's chart data: edges report cumulative counters; this keeps the per-interval
//! increase, summed over edges, for the last ten minutes. In memory only: a chart of the last
//! minutes does not need to survive a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tollgate_model::{Counters, EdgeReport};

/// Seconds per point.
pub const BUCKET_SECS: u64 = 5;
/// Points kept.
pub const BUCKETS: usize = 120;
/// Edge/resource pairs remembered at most (reports are authenticated, but bounded anyway).
const MAX_SERIES: usize = 100_000;

fn sub(a: Counters, b: Counters) -> Option<Counters> {
    Some(Counters {
        served: a.served.checked_sub(b.served)?,
        hits: a.hits.checked_sub(b.hits)?,
        forbidden: a.forbidden.checked_sub(b.forbidden)?,
        gone: a.gone.checked_sub(b.gone)?,
        bad_request: a.bad_request.checked_sub(b.bad_request)?,
        origin_errors: a.origin_errors.checked_sub(b.origin_errors)?,
    })
}

fn add(a: &mut Counters, b: Counters) {
    a.served += b.served;
    a.hits += b.hits;
    a.forbidden += b.forbidden;
    a.gone += b.gone;
    a.bad_request += b.bad_request;
    a.origin_errors += b.origin_errors;
}

#[derive(Default)]
struct Inner {
    last: HashMap<(String, u64), Counters>,
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
        for (&res, &cur) in &report.resources {
            let key = (report.edge.clone(), res);
            if !inner.last.contains_key(&key) && inner.last.len() >= MAX_SERIES {
                continue;
            }
            // First report of an edge: its baseline, not an increase. A decrease: the edge
            // restarted, and everything it reports is new.
            let delta = match inner.last.insert(key, cur) {
                None => Counters::default(),
                Some(prev) => sub(cur, prev).unwrap_or(cur),
            };
            if let Some((_, b)) = inner.buckets.back_mut() {
                add(b.entry(res).or_default(), delta);
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
                    add(&mut points[i], *c);
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
        }
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
        }
    }

    #[test]
    fn increases_summed_over_edges() {
        let s = Stats::default();
        let t = 1_000_000;
        s.record(&report("a", 100, 5), t);
        s.record(&report("b", 7, 0), t);
        s.record(&report("a", 110, 6), t + 5);
        s.record(&report("b", 9, 0), t + 6);
        s.record(&report("b", 3, 0), t + 10); // b restarted
        let series = s.series(Some(1), t + 10);
        let n = series.served.len();
        assert_eq!(&series.served[n - 3..], &[0, 12, 3]);
        assert_eq!(&series.forbidden[n - 3..], &[0, 1, 0]);
        assert_eq!(s.series(Some(2), t + 10).served.iter().sum::<u64>(), 0);
        // Ten minutes later it has all scrolled away.
        assert_eq!(s.series(None, t + 700).served.iter().sum::<u64>(), 0);
    }
}
