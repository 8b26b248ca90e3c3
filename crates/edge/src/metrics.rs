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
    OriginError(&'static str),
}

const REASONS: [&str; 14] = [
    "bad_request",
    "missing_token",
    "missing_expires",
    "bad_expires",
    "bad_token",
    "token_mismatch",
    "expired",
    // A valid link revoked (`secure_key_revocations`).
    "revoked",
    // The access lists, checked after the token.
    "referrer_acl",
    "ip_address_acl",
    "user_agent_acl",
    "country_acl",
    // `country_acl` on an edge without a GeoIP database: refused, never let through.
    "no_geoip_db",
    // The token crate's reason codes are non-exhaustive; a new one is counted here, not lost.
    "other",
];
/// The token's reasons lead [`REASONS`]: what report mode counts.
const TOKEN_REASONS: usize = 8;
const ORIGIN_REASONS: [&str; 5] = [
    "origin_unreachable",
    "origin_timeout",
    "origin_too_large",
    "origin_bad_range",
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

/// Counter sets per resource, so that worker threads on different cores do not increment the
/// same cache line on every request.
const SHARDS: usize = 8;

/// One worker's share of a resource's counters, on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
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
    origin_next: AtomicU64,
    /// `secure_key.mode: "report"`: requests the token would have refused, by reason.
    reported: [AtomicU64; REASONS.len()],
    /// Links that matched the current key (0) and the previous one (1).
    key_matches: [AtomicU64; 2],
    /// Unix time of the last match of each key (the largest of the shards is the last).
    key_last_match: [AtomicU64; 2],
}

thread_local! {
    /// This thread's shard, dealt round-robin as threads first count something.
    static SHARD: usize = {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % SHARDS
    };
}

/// One resource's counters, allocated at its first request: 2 KiB of shards for each of
/// 100,000 resources, most of them idle on any one edge, was 200 MiB.
#[derive(Default)]
pub struct ResourceMetrics {
    shards: std::sync::OnceLock<Box<[Shard; SHARDS]>>,
}

impl ResourceMetrics {
    fn shard(&self) -> &Shard {
        &self.shards.get_or_init(Box::default)[SHARD.with(|s| *s)]
    }

    /// The sum over shards of one counter.
    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.get().map_or(0, |shards| {
            shards.iter().map(|s| counter(s).load(Relaxed)).sum()
        })
    }

    /// Whether anything was ever counted (resources that never had a request are left out of
    /// `/metrics` and of reports).
    pub fn is_used(&self) -> bool {
        self.shards.get().is_some()
    }

    /// Counts a request and the body bytes it was sent.
    pub fn record(&self, outcome: Outcome, bytes: u64) {
        let s = self.shard();
        match outcome {
            Outcome::Hit | Outcome::Stale => {
                s.bytes_hit.fetch_add(bytes, Relaxed);
            }
            Outcome::Miss | Outcome::Pass => {
                s.bytes_miss.fetch_add(bytes, Relaxed);
            }
            _ => {}
        }
        let c = match outcome {
            Outcome::Hit => &s.hit,
            Outcome::Miss => &s.miss,
            Outcome::Stale => &s.stale,
            Outcome::Pass => &s.pass,
            Outcome::Refused(r) => &s.refused[slot(&REASONS, r)],
            Outcome::OriginError(r) => &s.origin_error[slot(&ORIGIN_REASONS, r)],
        };
        c.fetch_add(1, Relaxed);
    }

    /// Totals for the control plane's chart.
    pub fn counters(&self) -> tollgate_model::Counters {
        let refused = |r: &str| self.sum(|s| &s.refused[slot(&REASONS, r)]);
        let all_refused: u64 = (0..REASONS.len())
            .map(|i| self.sum(|s| &s.refused[i]))
            .sum();
        let (gone, bad_request) = (refused("expired"), refused("bad_request"));
        let stale = self.sum(|s| &s.stale);
        let hit = self.sum(|s| &s.hit);
        tollgate_model::Counters {
            served: hit + stale + self.sum(|s| &s.miss) + self.sum(|s| &s.pass),
            hits: hit + stale,
            forbidden: all_refused - gone - bad_request,
            gone,
            bad_request,
            origin_errors: (0..ORIGIN_REASONS.len())
                .map(|i| self.sum(|s| &s.origin_error[i]))
                .sum(),
            reported: (0..REASONS.len())
                .map(|i| self.sum(|s| &s.reported[i]))
                .sum(),
            current_key: self.key_usage(0).0,
            previous_key: self.key_usage(1).0,
            bytes: self.sum(|s| &s.bytes_hit) + self.sum(|s| &s.bytes_miss),
        }
    }

    /// Counts a link that matched key `index` (0: current, 1: previous) at Unix time `now`.
    pub fn key_matched(&self, index: usize, now: i64) {
        let s = self.shard();
        if let (Some(c), Some(t)) = (s.key_matches.get(index), s.key_last_match.get(index)) {
            c.fetch_add(1, Relaxed);
            t.fetch_max(u64::try_from(now).unwrap_or(0), Relaxed);
        }
    }

    /// Counts a request the token would have refused for `reason` (report mode).
    pub fn reported(&self, reason: &'static str) {
        self.shard().reported[slot(&REASONS, reason)].fetch_add(1, Relaxed);
    }

    /// Matches of key `index`, and the Unix time of its last one (0: never).
    pub fn key_usage(&self, index: usize) -> (u64, u64) {
        let last = self.shards.get().map_or(0, |shards| {
            shards
                .iter()
                .map(|s| s.key_last_match[index].load(Relaxed))
                .max()
                .unwrap_or(0)
        });
        (self.sum(|s| &s.key_matches[index]), last)
    }

    /// Counts an origin request moved on to the next source of the resource's origin group.
    pub fn origin_next(&self) {
        self.shard().origin_next.fetch_add(1, Relaxed);
    }

    /// Records one origin round trip.
    pub fn origin_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        let shard = self.shard();
        shard.origin_latency[i].fetch_add(1, Relaxed);
        shard
            .origin_latency_sum_us
            .fetch_add(d.as_micros() as u64, Relaxed);
    }
}

/// Panics anywhere in the process since it started (see [`count_panics`]).
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Counts every panic of the process into `tollgate_panics_total`, keeping the hook that was
/// there (which prints it). A panic on the request path drops that one connection (tokio ends
/// its task); none is expected, so the counter is there to be alerted on. Installed once,
/// however many edges a process starts.
pub fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Relaxed);
            previous(info);
        }));
    });
}

/// Counters that belong to no resource.
#[derive(Default)]
pub struct EdgeMetrics {
    /// Requests for a host no resource serves.
    pub unknown_host: AtomicU64,
    /// Requests with a method other than GET or HEAD.
    pub bad_method: AtomicU64,
    pub connections: AtomicU64,
    /// Connections closed at accept because their address had its cap open already.
    pub connections_over_address_cap: AtomicU64,
    /// Lookups the memory tier could not answer (a hit is counted by its resource).
    pub memory_misses: AtomicU64,
}

/// Writes `# HELP` and `# TYPE` for one metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The `/metrics` page in Prometheus's text format (version 0.0.4): every family once, with
/// its `# HELP` and `# TYPE`, and all its samples together, resource by resource, for the
/// resources that had a request since they were loaded. `gauges` are edge-wide values: name,
/// help, value.
pub fn render(
    resources: &[(u64, &ResourceMetrics)],
    edge: &EdgeMetrics,
    gauges: &[(&str, &str, u64)],
) -> String {
    let resources: Vec<(u64, &ResourceMetrics)> = resources
        .iter()
        .copied()
        .filter(|(_, m)| m.is_used())
        .collect();
    let resources = &resources[..];
    let mut out = String::with_capacity(512 + resources.len() * 2048);
    family(
        &mut out,
        "tollgate_requests_total",
        "counter",
        "Requests by resource and outcome (hit, miss, stale, pass, refused, origin_error) with \
         the refusal's or the origin failure's reason.",
    );
    for (id, m) in resources {
        let mut line = |outcome: &str, reason: &str, v: u64| {
            let _ = writeln!(
                out,
                "tollgate_requests_total{{resource=\"{id}\",outcome=\"{outcome}\",reason=\"{reason}\"}} {v}"
            );
        };
        line("hit", "", m.sum(|s| &s.hit));
        line("miss", "", m.sum(|s| &s.miss));
        line("stale", "", m.sum(|s| &s.stale));
        line("pass", "", m.sum(|s| &s.pass));
        for (i, r) in REASONS.iter().enumerate() {
            line("refused", r, m.sum(|s| &s.refused[i]));
        }
        for (i, r) in ORIGIN_REASONS.iter().enumerate() {
            line("origin_error", r, m.sum(|s| &s.origin_error[i]));
        }
    }
    family(
        &mut out,
        "tollgate_cache_bytes_sent_total",
        "counter",
        "Body bytes sent to viewers, from the cache (hit, stale) or from the origin (miss, pass).",
    );
    for (id, m) in resources {
        for (cache, v) in [
            ("hit", m.sum(|s| &s.bytes_hit)),
            ("miss", m.sum(|s| &s.bytes_miss)),
        ] {
            let _ = writeln!(
                out,
                "tollgate_cache_bytes_sent_total{{resource=\"{id}\",cache=\"{cache}\"}} {v}"
            );
        }
    }
    family(
        &mut out,
        "tollgate_token_reported_total",
        "counter",
        "secure_key mode report: requests the token would have refused, by reason (served all \
         the same).",
    );
    for (id, m) in resources {
        for (i, r) in REASONS.iter().enumerate().take(TOKEN_REASONS) {
            let _ = writeln!(
                out,
                "tollgate_token_reported_total{{resource=\"{id}\",reason=\"{r}\"}} {}",
                m.sum(|s| &s.reported[i])
            );
        }
    }
    family(
        &mut out,
        "tollgate_token_key_matches_total",
        "counter",
        "Links that matched the resource's current or previous key.",
    );
    for (id, m) in resources {
        for (i, key) in ["current", "previous"].iter().enumerate() {
            let _ = writeln!(
                out,
                "tollgate_token_key_matches_total{{resource=\"{id}\",key=\"{key}\"}} {}",
                m.key_usage(i).0
            );
        }
    }
    family(
        &mut out,
        "tollgate_token_key_last_match_seconds",
        "gauge",
        "Unix time of the last link that matched the current or previous key (0: none since the \
         edge started).",
    );
    for (id, m) in resources {
        for (i, key) in ["current", "previous"].iter().enumerate() {
            let _ = writeln!(
                out,
                "tollgate_token_key_last_match_seconds{{resource=\"{id}\",key=\"{key}\"}} {}",
                m.key_usage(i).1
            );
        }
    }
    family(
        &mut out,
        "tollgate_origin_next_total",
        "counter",
        "Origin requests moved on to the next source of the resource's origin group (useNext).",
    );
    for (id, m) in resources {
        let _ = writeln!(
            out,
            "tollgate_origin_next_total{{resource=\"{id}\"}} {}",
            m.sum(|s| &s.origin_next)
        );
    }
    family(
        &mut out,
        "tollgate_origin_latency_seconds",
        "histogram",
        "Time from sending a request to the origin to its response head.",
    );
    for (id, m) in resources {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += m.sum(|s| &s.origin_latency[i]);
            let _ = writeln!(
                out,
                "tollgate_origin_latency_seconds_bucket{{resource=\"{id}\",le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += m.sum(|s| &s.origin_latency[BUCKETS.len()]);
        let _ = writeln!(
            out,
            "tollgate_origin_latency_seconds_bucket{{resource=\"{id}\",le=\"+Inf\"}} {cumulative}\n\
             tollgate_origin_latency_seconds_sum{{resource=\"{id}\"}} {}\n\
             tollgate_origin_latency_seconds_count{{resource=\"{id}\"}} {cumulative}",
            m.sum(|s| &s.origin_latency_sum_us) as f64 / 1e6
        );
    }
    for (name, help, v) in [
        (
            "tollgate_unknown_host_total",
            "Requests for a host that no resource serves.",
            &edge.unknown_host,
        ),
        (
            "tollgate_bad_method_total",
            "Requests with a method other than GET or HEAD.",
            &edge.bad_method,
        ),
        (
            "tollgate_connections_total",
            "Client connections accepted.",
            &edge.connections,
        ),
        (
            "tollgate_panics_total",
            "Panics in this process (each drops the connection it happened on); expected 0.",
            &PANICS,
        ),
        (
            "tollgate_connections_over_address_cap_total",
            "Client connections closed at accept: their address had --max-connections-per-ip open.",
            &edge.connections_over_address_cap,
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", v.load(Relaxed));
    }
    for (name, help, v) in gauges {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_counted() {
        let m = ResourceMetrics::default();
        m.record(Outcome::Refused("expired"), 0);
        m.record(Outcome::Refused("a_reason_added_later"), 0);
        let out = render(&[(7, &m)], &EdgeMetrics::default(), &[]);
        assert!(
            out.contains(r#"outcome="refused",reason="expired"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"outcome="refused",reason="other"} 1"#),
            "{out}"
        );
    }

    #[test]
    fn each_family_is_described_once_and_kept_together() {
        let (a, b) = (ResourceMetrics::default(), ResourceMetrics::default());
        b.record(Outcome::Hit, 10);
        b.origin_latency(Duration::from_millis(30));
        let out = render(
            &[(1, &a), (2, &b)],
            &EdgeMetrics::default(),
            &[("tollgate_cache_objects", "Objects in the cache.", 3)],
        );
        let mut seen = Vec::new();
        let mut current = "";
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or("");
                assert!(!seen.contains(&name), "{name} described twice:\n{out}");
                seen.push(name);
                current = name;
            } else if !line.starts_with('#') {
                assert!(
                    line.starts_with(current),
                    "{line} outside its family:\n{out}"
                );
            }
        }
        assert!(out.contains("# TYPE tollgate_origin_latency_seconds histogram"));
        assert!(out.contains(r#"tollgate_requests_total{resource="2",outcome="hit",reason=""} 1"#));
        assert!(out.contains("tollgate_cache_objects 3\n"));
    }
}
