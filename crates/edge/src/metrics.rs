//! Counters for `/metrics` (Prometheus text format). Each resource's counters live with its
//! route, so the request path only does relaxed atomic adds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Request outcomes, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from a fresh cached object.
    Hit,
    /// Fetched from the origin (and stored if cacheable).
    Miss,
    /// Served a stale object because the origin failed.
    Stale,
    /// Passed through without storing.
    Pass,
    /// Refused by the token gate; the reason is the token crate's code.
    Refused(&'static str),
    /// The origin failed.
    OriginError(&'static str),
}

const REASONS: [&str; 8] = [
    "bad_request",
    "missing_token",
    "missing_expires",
    "bad_expires",
    "bad_token",
    "token_mismatch",
    "expired",
    // The token crate's reason codes are non-exhaustive; a new one is counted here, not lost.
    "other",
];
const ORIGIN_REASONS: [&str; 4] = [
    "origin_unreachable",
    "origin_timeout",
    "origin_too_large",
    "other",
];
/// Upper bounds (seconds) of the origin latency histogram.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The counter index of `reason`; the last slot ("other") for a reason not listed.
fn slot(reasons: &[&str], reason: &str) -> usize {
    reasons
        .iter()
        .position(|x| *x == reason)
        .unwrap_or(reasons.len() - 1)
}

/// One resource's counters.
#[derive(Default)]
pub struct ResourceMetrics {
    hit: AtomicU64,
    miss: AtomicU64,
    stale: AtomicU64,
    pass: AtomicU64,
    refused: [AtomicU64; REASONS.len()],
    origin_error: [AtomicU64; ORIGIN_REASONS.len()],
    bytes_hit: AtomicU64,
    bytes_miss: AtomicU64,
    origin_latency: [AtomicU64; 11],
    origin_latency_sum_us: AtomicU64,
}

impl ResourceMetrics {
    /// Counts a request and the body bytes it was sent.
    pub fn record(&self, outcome: Outcome, bytes: u64) {
        match outcome {
            Outcome::Hit | Outcome::Stale => {
                self.bytes_hit.fetch_add(bytes, Relaxed);
            }
            Outcome::Miss | Outcome::Pass => {
                self.bytes_miss.fetch_add(bytes, Relaxed);
            }
            _ => {}
        }
        let c = match outcome {
            Outcome::Hit => &self.hit,
            Outcome::Miss => &self.miss,
            Outcome::Stale => &self.stale,
            Outcome::Pass => &self.pass,
            Outcome::Refused(r) => &self.refused[slot(&REASONS, r)],
            Outcome::OriginError(r) => &self.origin_error[slot(&ORIGIN_REASONS, r)],
        };
        c.fetch_add(1, Relaxed);
    }

    /// Totals for the control plane's chart.
    pub fn counters(&self) -> tollgate_model::Counters {
        let refused = |r: &str| self.refused[slot(&REASONS, r)].load(Relaxed);
        let all_refused: u64 = self.refused.iter().map(|c| c.load(Relaxed)).sum();
        let (gone, bad_request) = (refused("expired"), refused("bad_request"));
        let stale = self.stale.load(Relaxed);
        let hit = self.hit.load(Relaxed);
        tollgate_model::Counters {
            served: hit + stale + self.miss.load(Relaxed) + self.pass.load(Relaxed),
            hits: hit + stale,
            forbidden: all_refused - gone - bad_request,
            gone,
            bad_request,
            origin_errors: self.origin_error.iter().map(|c| c.load(Relaxed)).sum(),
        }
    }

    /// Records one origin round trip.
    pub fn origin_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.origin_latency[i].fetch_add(1, Relaxed);
        self.origin_latency_sum_us
            .fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// Appends this resource's lines.
    pub fn render(&self, id: u64, out: &mut String) {
        let mut line = |outcome: &str, reason: &str, v: u64| {
            let _ = writeln!(
                out,
                "tollgate_requests_total{{resource=\"{id}\",outcome=\"{outcome}\",reason=\"{reason}\"}} {v}"
            );
        };
        line("hit", "", self.hit.load(Relaxed));
        line("miss", "", self.miss.load(Relaxed));
        line("stale", "", self.stale.load(Relaxed));
        line("pass", "", self.pass.load(Relaxed));
        for (r, c) in REASONS.iter().zip(&self.refused) {
            line("refused", r, c.load(Relaxed));
        }
        for (r, c) in ORIGIN_REASONS.iter().zip(&self.origin_error) {
            line("origin_error", r, c.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "tollgate_cache_bytes_sent_total{{resource=\"{id}\",cache=\"hit\"}} {}",
            self.bytes_hit.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "tollgate_cache_bytes_sent_total{{resource=\"{id}\",cache=\"miss\"}} {}",
            self.bytes_miss.load(Relaxed)
        );
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.origin_latency[i].load(Relaxed);
            let _ = writeln!(out, "tollgate_origin_latency_seconds_bucket{{resource=\"{id}\",le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.origin_latency[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "tollgate_origin_latency_seconds_bucket{{resource=\"{id}\",le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "tollgate_origin_latency_seconds_sum{{resource=\"{id}\"}} {}",
            self.origin_latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "tollgate_origin_latency_seconds_count{{resource=\"{id}\"}} {cumulative}"
        );
    }
}

/// Counters that belong to no resource.
#[derive(Default)]
pub struct EdgeMetrics {
    /// Requests for a host no resource serves.
    pub unknown_host: AtomicU64,
    /// Requests with a method other than GET or HEAD.
    pub bad_method: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
}

impl EdgeMetrics {
    /// Appends the edge-wide lines.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "tollgate_unknown_host_total {}",
            self.unknown_host.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "tollgate_bad_method_total {}",
            self.bad_method.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "tollgate_connections_total {}",
            self.connections.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_counted() {
        let m = ResourceMetrics::default();
        m.record(Outcome::Refused("expired"), 0);
        m.record(Outcome::Refused("a_reason_added_later"), 0);
        let mut out = String::new();
        m.render(7, &mut out);
        assert!(
            out.contains(r#"outcome="refused",reason="expired"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"outcome="refused",reason="other"} 1"#),
            "{out}"
        );
    }
}
