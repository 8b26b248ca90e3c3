//! Tollgate's extensions of the secure token through a running edge: report mode (a safe
//! rollout) and key usage (the data a key rotation is decided on).

use tollgate_edge::EdgeConfig;
use tollgate_testkit::origin::TestOrigin;
use tollgate_testkit::{link, now};

use crate::RunningEdge;

const HOST: &str = "cdn.example.com";

fn edge(origin: &TestOrigin, secure_key: serde_json::Value, log: Option<&str>) -> RunningEdge {
    let json = serde_json::json!([{"id": 1, "cname": HOST,
        "origin": format!("127.0.0.1:{}", origin.port), "options": {"secure_key": secure_key}}]);
    RunningEdge::start(
        &json.to_string(),
        EdgeConfig {
            access_log: log.map(Into::into),
            ..EdgeConfig::default()
        },
    )
}

/// The value of the `/metrics` sample `name{labels}`.
fn sample(e: &RunningEdge, series: &str) -> Option<f64> {
    e.edge
        .render_metrics()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn report_mode_serves_what_it_would_refuse_and_counts_it() {
    let origin = TestOrigin::start();
    let dir = tollgate_testkit::TempDir::new("report-log");
    let log = dir.path("access.log");
    let e = edge(
        &origin,
        serde_json::json!({"enabled": true, "key": "secret_key", "type": 2, "mode": "report"}),
        Some(&log),
    );
    let good = link("/a.txt", now() + 60, None);
    let expired = link("/a.txt", now() - 60, None);
    let wrong = format!("/a.txt?md5=AAAAAAAAAAAAAAAAAAAAAA&expires={}", now() + 60);
    for target in [good.as_str(), &expired, &wrong, "/a.txt"] {
        assert_eq!(e.get(HOST, target, &[]).status, 200, "{target}");
    }
    let reported = |reason: &str| {
        sample(
            &e,
            &format!("tollgate_token_reported_total{{resource=\"1\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(reported("expired"), Some(1.0));
    assert_eq!(reported("token_mismatch"), Some(1.0));
    assert_eq!(reported("missing_token"), Some(1.0));
    assert_eq!(
        sample(
            &e,
            "tollgate_token_key_matches_total{resource=\"1\",key=\"current\"}"
        ),
        Some(1.0)
    );
    // The log is written by a thread of its own: read until its four lines are there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reports: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["token_report"].clone())
            .collect();
        if lines.len() >= 4 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(e);
    assert_eq!(
        reports,
        [
            serde_json::Value::Null,
            "expired".into(),
            "token_mismatch".into(),
            "missing_token".into()
        ]
    );

    // Enforced, the same links as before: nothing else changed.
    let origin = TestOrigin::start();
    let e = edge(
        &origin,
        serde_json::json!({"enabled": true, "key": "secret_key", "type": 2, "mode": "enforce"}),
        None,
    );
    let statuses: Vec<u16> = [good.as_str(), &expired, &wrong, "/a.txt"]
        .iter()
        .map(|t| e.get(HOST, t, &[]).status)
        .collect();
    assert_eq!(statuses, [200, 410, 403, 403]);
}

#[test]
fn key_usage_tells_when_the_previous_key_last_matched() {
    let origin = TestOrigin::start();
    let e = edge(
        &origin,
        serde_json::json!({"enabled": true, "key": "new_secret_key", "previous_key": "secret_key",
            "type": 2}),
        None,
    );
    let usage = |key: &str| {
        (
            sample(
                &e,
                &format!("tollgate_token_key_matches_total{{resource=\"1\",key=\"{key}\"}}"),
            ),
            sample(
                &e,
                &format!("tollgate_token_key_last_match_seconds{{resource=\"1\",key=\"{key}\"}}"),
            ),
        )
    };
    // `link` signs with the tests' key, the previous one here.
    let old = link("/b.txt", now() + 60, None);
    let before = now();
    for _ in 0..3 {
        assert_eq!(e.get(HOST, &old, &[]).status, 200);
    }
    let (n, last) = usage("previous");
    assert_eq!(n, Some(3.0));
    let last = last.unwrap() as i64;
    assert!((before..=now()).contains(&last), "{last}");
    assert_eq!(
        usage("current"),
        (Some(0.0), Some(0.0)),
        "never matched yet"
    );
}

#[test]
fn the_debug_secret_explains_refusals_and_nothing_changes_without_it() {
    let origin = TestOrigin::start();
    let secret = "0123456789abcdef-debug";
    let e = edge(
        &origin,
        serde_json::json!({"enabled": true, "key": "secret_key", "type": 2,
            "debug_secret": secret}),
        None,
    );
    let expired = link("/c.txt", now() - 35, None);
    let wrong = format!("/c.txt?md5=AAAAAAAAAAAAAAAAAAAAAA&expires={}", now() + 60);
    // The whole answer but its Date (a clock, not the request, sets it).
    let answer = |target: &str, debug: Option<&str>| {
        let h: Vec<(&str, &str)> = debug.map(|d| ("X-Tollgate-Debug", d)).into_iter().collect();
        let mut r = e.get(HOST, target, &h);
        r.headers.retain(|(k, _)| k != "date");
        r
    };
    for target in [expired.as_str(), &wrong, "/c.txt"] {
        let plain = answer(target, None);
        let wrong_secret = answer(target, Some("not-the-secret-at-all"));
        assert_eq!(
            (&plain.status, &plain.headers, &plain.body),
            (
                &wrong_secret.status,
                &wrong_secret.headers,
                &wrong_secret.body
            ),
            "{target}"
        );
        assert!(plain.header("x-tollgate-reason").is_none());
    }
    let r = answer(&expired, Some(secret));
    assert_eq!(r.status, 410);
    assert_eq!(r.header("x-tollgate-reason"), Some("expired"));
    let detail = r.header("x-tollgate-detail").unwrap();
    assert!(
        detail.contains("35 s ago") || detail.contains("36 s ago"),
        "{detail}"
    );
    let r = answer(&wrong, Some(secret));
    assert_eq!(r.header("x-tollgate-reason"), Some("token_mismatch"));
    let hashed = r.header("x-tollgate-hashed").unwrap();
    assert!(
        hashed.contains("/c.txt s********y"),
        "the key masked: {hashed}"
    );
    assert!(!hashed.contains("secret_key"));
    // A valid link: nothing to explain.
    let ok = answer(&link("/c.txt", now() + 60, None), Some(secret));
    assert_eq!((ok.status, ok.header("x-tollgate-reason")), (200, None));
}

#[test]
fn revoked_links_are_refused_as_revoked_and_others_served() {
    let origin = TestOrigin::start();
    let leaked = link("/one.mp4", now() + 600, None);
    let md5 = leaked
        .split("md5=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let json = serde_json::json!([{"id": 1, "cname": HOST,
        "origin": format!("127.0.0.1:{}", origin.port),
        "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}},
        "secure_key_revocations": [
            {"id": 1, "token": md5, "expires": now() + 600},
            {"id": 2, "path": "/pulled.mp4"},
            {"id": 3, "path": "/course/", "prefix": true, "expires_at_or_below": now() + 300}]}]);
    let e = RunningEdge::start(&json.to_string(), EdgeConfig::default());
    let status = |t: &str| e.get(HOST, t, &[]).status;
    assert_eq!(status(&leaked), 403);
    assert_eq!(
        status(&link("/one.mp4", now() + 601, None)),
        200,
        "a new link"
    );
    assert_eq!(status(&link("/pulled.mp4", now() + 99_999, None)), 403);
    assert_eq!(status(&link("/course/w1/a.mp4", now() + 300, None)), 403);
    assert_eq!(
        status(&link("/course/w1/a.mp4", now() + 301, None)),
        200,
        "issued after the cut-off"
    );
    assert_eq!(status(&link("/courses/a.mp4", now() + 60, None)), 200);
    assert_eq!(
        sample(
            &e,
            "tollgate_requests_total{resource=\"1\",outcome=\"refused\",reason=\"revoked\"}"
        ),
        Some(3.0)
    );
}

#[test]
fn subnet_binding_accepts_the_network_and_refuses_outside_it_for_v4_and_v6() {
    let origin = TestOrigin::start();
    let json = serde_json::json!([{"id": 1, "cname": HOST,
        "origin": format!("127.0.0.1:{}", origin.port),
        "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 0,
            "ip_prefix": {"v4": 24, "v6": 64}}}}]);
    let e = RunningEdge::start(
        &json.to_string(),
        EdgeConfig {
            trusted: tollgate_edge::TrustedProxies(vec!["127.0.0.1".parse().unwrap()]),
            ..EdgeConfig::default()
        },
    );
    let key = tollgate_token::Key::new("secret_key").unwrap();
    let expires = now() + 60;
    let signed_for = |ip: &str| {
        let net = tollgate_token::RemoteAddr::network(ip.parse().unwrap(), 24, 64);
        assert!(net.as_str().contains('/'));
        let t = tollgate_token::sign_as(&key, expires, b"/m.ts", Some(&net)).unwrap();
        format!("/m.ts?md5={t}&expires={expires}")
    };
    let from = |target: &str, xff: &str| e.get(HOST, target, &[("X-Forwarded-For", xff)]).status;
    let v4 = signed_for("203.0.113.7");
    assert_eq!(from(&v4, "203.0.113.7"), 200);
    assert_eq!(
        from(&v4, "203.0.113.250"),
        200,
        "another address of the /24"
    );
    assert_eq!(from(&v4, "203.0.114.7"), 403);
    let v6 = signed_for("2001:db8:1:2::10");
    assert_eq!(
        from(&v6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
        200,
        "privacy address"
    );
    assert_eq!(from(&v6, "2001:db8:1:3::10"), 403);
    // A link bound to the exact address (type 0 without ip_prefix) is not this resource's.
    let exact = link("/m.ts", expires, Some("203.0.113.7"));
    assert_eq!(from(&exact, "203.0.113.7"), 403);
}
