//! Differential test: generated requests (random and adversarial paths, encodings, parameter
//! orders and duplicates, paddings, expiries around now, IPv4 and IPv6 clients) go to Debian's
//! nginx configured as the Gcore edge and to tollgate-token; every status must agree.
//!
//! nginx reads its own clock, so each request is bracketed by our clock readings; a request
//! whose verdict differs between the two readings (an expiry exactly at a second boundary) is
//! counted and left out, and the test fails if that happens more than rarely.

use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_testkit::gen::{gen_case, requests, Case, Tally};
use tollgate_testkit::{http, nginx::GcoreEdge, rng::Rng};
use tollgate_token::{verify_request, Key};

const KEY: &str = "secret_key";
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
    let mut tally = Tally::default();
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
            tally.ambiguous();
            continue;
        }
        let theirs =
            got.unwrap_or_else(|e| panic!("{e} for {:?}", String::from_utf8_lossy(&case.target)));
        tally.record(&case, theirs, ours_before);
    }
    tally.assert_agreement(total);
}
