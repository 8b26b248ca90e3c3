//! Differential test: generated requests (random and adversarial paths, encodings, parameter
//! orders and duplicates, paddings, expiries around now, IPv4 and IPv6 clients) go to Debian's
//! nginx configured as the Gcore edge and to tollgate-token; every status must agree.
//!
//! nginx reads its own clock, so each request is bracketed by our clock readings; a request
//! whose verdict differs between the two readings (an expiry exactly at a second boundary) is
//! counted and left out, and the test fails if that happens more than rarely.

use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_testkit::gen::{gen_case, Case};
use tollgate_testkit::{http, nginx::GcoreEdge, rng::Rng};
use tollgate_token::{verify_request, Key};

const KEY: &str = "secret_key";
/// At least 10,000 per run; `TOLLGATE_DIFF_REQUESTS` raises it for a longer hunt.
fn requests() -> usize {
    std::env::var("TOLLGATE_DIFF_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12_000)
        .max(10_000)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn decide(case: &Case, keys: &[Key], now: i64) -> u16 {
    let ip = if case.bound {
        case.ip.as_deref().map(|s| s.parse().expect("ip"))
    } else {
        None
    };
    match verify_request(&case.target, keys, ip, now) {
        Ok(_) => 200,
        Err(r) => r.status(),
    }
}

#[test]
fn nginx_and_tollgate_agree_on_generated_requests() {
    let mut rng = Rng::from_env("nginx_diff");
    let key = Key::new(KEY).unwrap();
    let keys = [key.clone()];
    let edge = GcoreEdge::start(KEY);
    let mut disagreements = Vec::new();
    let mut ambiguous = 0;
    let mut by_status = std::collections::BTreeMap::new();
    let total = requests();
    for _ in 0..total {
        let case = gen_case(&mut rng, &key, now());
        let port = if case.bound {
            edge.port_type0
        } else {
            edge.port_type2
        };
        let before = now();
        let got = http::get_status(port, &case.target, case.ip.as_deref());
        let after = now();
        let (ours_before, ours_after) = (decide(&case, &keys, before), decide(&case, &keys, after));
        if ours_before != ours_after {
            ambiguous += 1;
            continue;
        }
        let theirs =
            got.unwrap_or_else(|e| panic!("{e} for {:?}", String::from_utf8_lossy(&case.target)));
        *by_status.entry(theirs).or_insert(0) += 1;
        if theirs != ours_before {
            disagreements.push(format!(
                "nginx {theirs}, tollgate {ours_before}: {:?} bound={} xff={:?}",
                String::from_utf8_lossy(&case.target),
                case.bound,
                case.ip
            ));
        }
    }
    eprintln!("statuses from nginx: {by_status:?}; ambiguous at a second boundary: {ambiguous}");
    assert!(
        disagreements.is_empty(),
        "{} disagreements (of {total}), first ones:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(30)].join("\n")
    );
    assert!(
        ambiguous < total / 100,
        "too many boundary cases: {ambiguous}"
    );
    // The generator must exercise every outcome, or the agreement means little.
    for status in [200, 400, 403, 410] {
        assert!(
            by_status.get(&status).copied().unwrap_or(0) > 100,
            "too few {status}: {by_status:?}"
        );
    }
}
