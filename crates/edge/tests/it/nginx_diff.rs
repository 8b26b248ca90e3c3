//! Differential test: the same generated requests go to Debian's nginx configured as the Gcore
//! edge (`secure_link` + `proxy_cache`) and to `tollgate edge`, both in front of the same origin
//! (nginx's own origin server); every status must agree.

use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_edge::EdgeConfig;
use tollgate_edge::TrustedProxies;
use tollgate_testkit::gen::{gen_case, requests, Tally};
use tollgate_testkit::http::request;
use tollgate_testkit::{nginx::GcoreEdge, rng::Rng};
use tollgate_token::{verify_request, Key};

use crate::{resources, RunningEdge};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn status(port: u16, host: &str, target: &[u8], xff: Option<&str>) -> u16 {
    let mut headers = vec![("Host", host)];
    if let Some(x) = xff {
        headers.push(("X-Forwarded-For", x));
    }
    request(Ipv4Addr::LOCALHOST, port, "GET", target, &headers)
        .unwrap_or_else(|e| panic!("{e} for {:?}", String::from_utf8_lossy(target)))
        .status
}

#[test]
fn nginx_and_tollgate_edge_agree() {
    let total = requests();
    let nginx = GcoreEdge::start("secret_key");
    let json = resources(
        nginx.port_origin,
        &[("t2.example.com", Some(2)), ("t0.example.com", Some(0))],
    );
    let edge = RunningEdge::start(
        &json,
        EdgeConfig {
            trusted: TrustedProxies(vec!["127.0.0.1".parse().unwrap()]),
            ..EdgeConfig::default()
        },
    );
    let key = Key::new("secret_key").unwrap();
    let mut rng = Rng::from_env("edge_nginx_diff");
    let mut tally = Tally::default();
    for _ in 0..total {
        let case = gen_case(&mut rng, &key, now());
        let (nginx_port, host) = if case.bound {
            (nginx.port_type0, "t0.example.com")
        } else {
            (nginx.port_type2, "t2.example.com")
        };
        let before = now();
        let theirs = status(
            nginx_port,
            "cdn.example.com",
            &case.target,
            case.ip.as_deref(),
        );
        let ours = status(edge.port, host, &case.target, case.ip.as_deref());
        let after = now();
        let ip = if case.bound {
            case.ip.as_deref().map(|s| s.parse().unwrap())
        } else {
            None
        };
        let decide = |t| {
            verify_request(&case.target, std::slice::from_ref(&key), ip, t).map_err(|r| r.status())
        };
        if theirs != ours && decide(before) != decide(after) {
            tally.ambiguous();
            continue;
        }
        tally.record(&case, theirs, ours);
    }
    tally.assert_agreement(total);
}
