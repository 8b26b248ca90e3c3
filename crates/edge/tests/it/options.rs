//! Gcore's options that Secure Token customers combine with it, through a running edge in front
//! of the scripted test origin (`/say/`): `cors`, the access lists, `stale`, `limit_bandwidth`,
//! `redirect_http_to_https`, the query parameter lists, `ignore_cookie` and
//! `response_headers_hiding_policy`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tollgate_edge::{EdgeConfig, TrustedProxies};
use tollgate_testkit::origin::TestOrigin;
use tollgate_testkit::{link, now};

use crate::RunningEdge;

const HOST: &str = "cdn.example.com";

/// An edge whose signed resource (type 2) has `options` besides its token.
fn edge_with(origin: &TestOrigin, options: serde_json::Value, config: EdgeConfig) -> RunningEdge {
    crate::edge_with_options(origin.port, HOST, options, config)
}

/// A signed target for `/say/<name>` with these origin headers, and the target the origin sees.
fn say(name: &str, query: &str) -> (String, String) {
    let path = format!("/say/{name}");
    let target = format!("{}&{query}", link(&path, now() + 600, None));
    (format!("{path}?{query}"), target)
}

fn trusting_loopback() -> EdgeConfig {
    EdgeConfig {
        trusted: TrustedProxies(vec!["127.0.0.1".parse().unwrap()]),
        ..EdgeConfig::default()
    }
}

#[test]
fn cors_in_gcore_three_forms_and_always_on_the_gates_refusals() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({"cors": {"enabled": true, "value": ["player.example", "*.school.edu"]}}),
        EdgeConfig::default(),
    );
    // The origin says `Vary: Origin` and its own header: the edge replaces both, one copy kept.
    let (path, target) = say(
        "seg1.ts",
        "h=Vary:%20Origin&h=Access-Control-Allow-Origin:%20https://origin.example",
    );
    for (origin_hdr, want, cache) in [
        (
            "https://player.example",
            Some("https://player.example"),
            "MISS",
        ),
        ("https://a.school.edu", Some("https://a.school.edu"), "HIT"),
        ("https://evil.example", None, "HIT"),
    ] {
        let r = e.get(HOST, &target, &[("Origin", origin_hdr)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache"), Some(cache), "{origin_hdr}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            want,
            "{origin_hdr}"
        );
        assert_eq!(r.header("vary"), Some("Origin"));
    }
    assert_eq!(origin.hits(&path), 1, "one stored copy for every origin");
    // Without `always`, a refusal carries no CORS header: the player sees a network error.
    let expired = link("/say/seg2.ts", now() - 5, None);
    let r = e.get(HOST, &expired, &[("Origin", "https://player.example")]);
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (410, None)
    );

    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({"cors": {"enabled": true, "value": ["*"], "always": true}}),
        EdgeConfig::default(),
    );
    let r = e.get(HOST, &expired, &[("Origin", "https://player.example")]);
    assert_eq!(
        (
            r.status,
            r.header("access-control-allow-origin"),
            r.header("vary")
        ),
        (410, Some("*"), None),
        "always: a player's script can read the 410 and refresh its token"
    );
    let r = e.get(HOST, "/say/no-token", &[]);
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (403, Some("*"))
    );

    let e = edge_with(
        &origin,
        serde_json::json!({"cors": {"enabled": true, "value": ["$http_origin"]}}),
        EdgeConfig::default(),
    );
    let (_, target) = say("any.ts", "x=1");
    let r = e.get(HOST, &target, &[("Origin", "https://whoever.example:8443")]);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://whoever.example:8443")
    );
    assert_eq!(
        e.get(HOST, &target, &[])
            .header("access-control-allow-origin"),
        None
    );
}

#[test]
fn preflights_are_answered_by_the_edge_when_options_is_allowed() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({
            "cors": {"enabled": true, "value": ["player.example"]},
            "allowedHttpMethods": {"enabled": true, "value": ["GET", "HEAD", "OPTIONS"]}}),
        EdgeConfig::default(),
    );
    // The preflight carries the link (and its token), expired or not: answered all the same.
    let target = link("/v/seg.ts", now() - 100, None);
    let preflight = [
        ("Origin", "https://player.example"),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "range"),
    ];
    let r = e.send(Ipv4Addr::LOCALHOST, "OPTIONS", HOST, &target, &preflight);
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://player.example")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(r.header("access-control-allow-headers"), Some("range"));
    assert!(r.header("access-control-max-age").is_some());
    assert_eq!(
        origin.targets(),
        Vec::<String>::new(),
        "the origin is not asked"
    );
    let r = e.send(
        Ipv4Addr::LOCALHOST,
        "OPTIONS",
        HOST,
        &target,
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (204, None)
    );
    // Without OPTIONS among the methods: 405, as before.
    let e = edge_with(
        &origin,
        serde_json::json!({"cors": {"enabled": true, "value": ["*"]}}),
        EdgeConfig::default(),
    );
    let r = e.send(Ipv4Addr::LOCALHOST, "OPTIONS", HOST, &target, &preflight);
    assert_eq!(r.status, 405);
}

#[test]
fn access_lists_refuse_with_403_after_the_token() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({
            "ip_address_acl": {"enabled": true, "policy_type": "deny",
                "excepted_values": ["203.0.113.0/24", "2001:db8:1::/48"]},
            "referrer_acl": {"enabled": true, "policy_type": "deny",
                "excepted_values": ["player.example", "*.school.edu"]},
            "user_agent_acl": {"enabled": true, "policy_type": "allow",
                "excepted_values": ["~*wget", "BadBot/1.0"]}}),
        trusting_loopback(),
    );
    let (_, target) = say("f.mp4", "x=1");
    let get = |xff: &str, extra: &[(&str, &str)]| {
        let mut h = vec![("X-Forwarded-For", xff)];
        h.extend_from_slice(extra);
        e.get(HOST, &target, &h).status
    };
    assert_eq!(get("203.0.113.9", &[]), 200);
    assert_eq!(get("2001:db8:1:ff::1", &[]), 200);
    assert_eq!(get("198.51.100.1", &[]), 403);
    assert_eq!(get("2001:db8:2::1", &[]), 403);
    assert_eq!(
        get(
            "203.0.113.9",
            &[("Referer", "https://player.example/watch")]
        ),
        200
    );
    assert_eq!(
        get("203.0.113.9", &[("Referer", "https://b.school.edu/")]),
        200
    );
    assert_eq!(
        get("203.0.113.9", &[("Referer", "https://hotlinker.example/")]),
        403
    );
    assert_eq!(get("203.0.113.9", &[("User-Agent", "Wget/1.21")]), 403);
    assert_eq!(get("203.0.113.9", &[("User-Agent", "BadBot/1.0")]), 403);
    assert_eq!(get("203.0.113.9", &[("User-Agent", "Mozilla/5.0")]), 200);
    // The token first: a link that expired says so, whoever asks.
    let expired = link("/say/f.mp4", now() - 5, None);
    assert_eq!(
        e.get(HOST, &expired, &[("X-Forwarded-For", "198.51.100.1")])
            .status,
        410
    );
    let m = e.edge.render_metrics();
    for reason in ["ip_address_acl", "referrer_acl", "user_agent_acl"] {
        assert!(
            m.lines()
                .any(|l| l.contains(&format!("reason=\"{reason}\"")) && !l.ends_with(" 0")),
            "{reason} counted: {m}"
        );
    }
}

#[test]
fn country_acl_reads_a_maxmind_database_for_v4_and_v6_clients() {
    let dir = tollgate_testkit::TempDir::new("geoip");
    let db = std::path::PathBuf::from(dir.path("countries.mmdb"));
    tollgate_testkit::tools::write_country_db(
        &db,
        &[
            ("10.1.0.0/16", "DE"),
            ("2001:db8:de::/48", "DE"),
            ("10.2.0.0/16", "FR"),
            ("2001:db8:f0::/48", "FR"),
        ],
    );
    let origin = TestOrigin::start();
    let options = serde_json::json!({"country_acl": {"enabled": true, "policy_type": "deny",
        "excepted_values": ["DE"]}});
    let e = edge_with(
        &origin,
        options.clone(),
        EdgeConfig {
            geoip: Some(db),
            ..trusting_loopback()
        },
    );
    let (_, target) = say("film.mp4", "x=1");
    let from = |xff: &str| e.get(HOST, &target, &[("X-Forwarded-For", xff)]).status;
    assert_eq!(from("10.1.2.3"), 200);
    assert_eq!(from("2001:db8:de::77"), 200);
    assert_eq!(from("10.2.0.1"), 403);
    assert_eq!(from("2001:db8:f0::1"), 403);
    assert_eq!(
        from("192.0.2.1"),
        403,
        "not in the database: no country, not DE"
    );
    // An edge without a database refuses such a resource, never lets it through.
    let e = edge_with(&origin, options, trusting_loopback());
    let r = e.get(HOST, &target, &[("X-Forwarded-For", "10.1.2.3")]);
    assert_eq!(r.status, 503);
    assert!(String::from_utf8_lossy(&r.body).contains("GeoIP"));
}

#[test]
fn stale_serves_the_stored_copy_on_the_listed_failures_only() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({
            "stale": {"enabled": true, "value": ["http_404", "error"]},
            "edge_cache_settings": {"enabled": true, "value": "1s"}}),
        EdgeConfig::default(),
    );
    let (_, target) = say("live.m3u8", "x=1");
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("MISS"));
    std::thread::sleep(Duration::from_millis(1200));
    origin.answer_all_with(Some(404));
    let r = e.get(HOST, &target, &[]);
    assert_eq!(
        (r.status, r.header("cache")),
        (200, Some("STALE")),
        "http_404 listed"
    );
    origin.answer_all_with(Some(500));
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.status, 500, "http_500 is not listed");
}

#[test]
fn stale_updating_answers_from_the_copy_while_one_fetch_refreshes_it() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({
            "stale": {"enabled": true, "value": ["updating", "error", "timeout"]},
            "edge_cache_settings": {"enabled": true, "value": "1s"}}),
        EdgeConfig::default(),
    );
    let (path, target) = say("live/index.m3u8", "delay_ms=500");
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("MISS"));
    std::thread::sleep(Duration::from_millis(1100));
    let t0 = Instant::now();
    for _ in 0..5 {
        let r = e.get(HOST, &target, &[]);
        assert_eq!((r.status, r.header("cache")), (200, Some("UPDATING")));
    }
    assert!(
        t0.elapsed() < Duration::from_millis(400),
        "no viewer waits on the 500 ms origin: {:?}",
        t0.elapsed()
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("HIT"));
    assert_eq!(origin.hits(&path), 2, "one background refresh");
}

#[test]
fn limit_bandwidth_static_and_dynamic_as_limit_rate_after() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({"limit_bandwidth": {"enabled": true, "limit_type": "static",
            "speed": 100, "buffer": 50}}),
        EdgeConfig::default(),
    );
    let target = link("/size/250000", now() + 600, None);
    // 50 KB at once, then 194 KB at 100 KB/s: about 1.9 s.
    let t0 = Instant::now();
    let r = e.get(HOST, &target, &[]);
    let took = t0.elapsed();
    assert_eq!((r.status, r.body.len()), (200, 250_000));
    assert!(
        (Duration::from_millis(1600)..Duration::from_millis(3500)).contains(&took),
        "{took:?}"
    );
    let t0 = Instant::now();
    let r = e.get(HOST, &link("/size/40000", now() + 600, None), &[]);
    assert_eq!(r.body.len(), 40_000);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "within the buffer"
    );

    let e = edge_with(
        &origin,
        serde_json::json!({"limit_bandwidth": {"enabled": true, "limit_type": "dynamic"}}),
        EdgeConfig::default(),
    );
    let signed = link("/size/300000", now() + 600, None);
    let t0 = Instant::now();
    let r = e.get(HOST, &format!("{signed}&speed=200k&buffer=100k"), &[]);
    let took = t0.elapsed();
    assert_eq!(r.body.len(), 300_000);
    assert!(
        (Duration::from_millis(800)..Duration::from_millis(2500)).contains(&took),
        "{took:?}"
    );
    let t0 = Instant::now();
    let r = e.get(HOST, &signed, &[]);
    assert_eq!(
        r.header("cache"),
        Some("HIT"),
        "speed and buffer are not in the key"
    );
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "no speed: no limit"
    );
}

#[test]
fn redirect_http_to_https_keeps_the_query() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({"redirect_http_to_https": {"enabled": true, "value": true}}),
        EdgeConfig::default(),
    );
    let target = link("/a/b.mp4", now() + 600, None);
    let r = e.get(&format!("{HOST}:8080"), &target, &[]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{HOST}{target}").as_str())
    );
    assert!(origin.targets().is_empty());
}

#[test]
fn query_parameter_lists_shape_the_cache_key_only() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({"query_params_whitelist": {"enabled": true, "value": ["lang"]}}),
        EdgeConfig::default(),
    );
    let (_, a) = say("page", "lang=fr&utm=1");
    let (_, b) = say("page", "lang=fr&utm=2");
    let (_, c) = say("page", "lang=de&utm=1");
    assert_eq!(e.get(HOST, &a, &[]).header("cache"), Some("MISS"));
    assert_eq!(e.get(HOST, &b, &[]).header("cache"), Some("HIT"));
    assert_eq!(e.get(HOST, &c, &[]).header("cache"), Some("MISS"));
    assert!(
        origin.targets().iter().all(|t| t.contains("utm=")),
        "the origin gets every parameter: {:?}",
        origin.targets()
    );
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({"query_params_blacklist": {"enabled": true, "value": ["utm"]}}),
        EdgeConfig::default(),
    );
    let (_, a) = say("page", "lang=fr&utm=1");
    let (_, b) = say("page", "utm=2&lang=fr");
    let (_, c) = say("page", "lang=fr&utm=1&v=2");
    assert_eq!(e.get(HOST, &a, &[]).header("cache"), Some("MISS"));
    assert_eq!(e.get(HOST, &b, &[]).header("cache"), Some("HIT"));
    assert_eq!(e.get(HOST, &c, &[]).header("cache"), Some("MISS"));
}

#[test]
fn ignore_cookie_stores_once_without_the_cookie() {
    let origin = TestOrigin::start();
    let (path, target) = say("styles.css", "h=Set-Cookie:%20session=abc");
    let plain = edge_with(&origin, serde_json::json!({}), EdgeConfig::default());
    for _ in 0..2 {
        let r = plain.get(HOST, &target, &[]);
        assert_eq!(r.header("set-cookie"), Some("session=abc"));
    }
    assert_eq!(origin.hits(&path), 2, "without the option: never stored");
    let e = edge_with(
        &origin,
        serde_json::json!({"ignore_cookie": {"enabled": true, "value": true}}),
        EdgeConfig::default(),
    );
    for want in ["MISS", "HIT"] {
        let r = e.get(HOST, &target, &[]);
        assert_eq!(
            (r.header("cache"), r.header("set-cookie")),
            (Some(want), None)
        );
    }
    assert_eq!(origin.hits(&path), 3);
}

#[test]
fn response_headers_hiding_policy_in_both_modes() {
    let origin = TestOrigin::start();
    let (_, target) = say(
        "x",
        "h=X-Powered-By:%20PHP&h=X-Keep:%201&h=Content-Type:%20text/plain",
    );
    let e = edge_with(
        &origin,
        serde_json::json!({"response_headers_hiding_policy": {"enabled": true, "mode": "show",
            "excepted": ["X-Powered-By"]}}),
        EdgeConfig::default(),
    );
    let r = e.get(HOST, &target, &[]);
    assert_eq!(
        (r.header("x-powered-by"), r.header("x-keep")),
        (None, Some("1"))
    );
    let e = edge_with(
        &origin,
        serde_json::json!({"response_headers_hiding_policy": {"enabled": true, "mode": "hide",
            "excepted": ["X-Keep"]},
            "static_response_headers": {"enabled": true, "value": [{"name": "X-Added", "value": ["y"]}]}}),
        EdgeConfig::default(),
    );
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.header("x-powered-by"), None);
    assert_eq!(r.header("x-origin-host"), None);
    assert_eq!(r.header("x-keep"), Some("1"));
    assert_eq!(r.header("content-type"), Some("text/plain"), "never hidden");
    assert_eq!(r.header("content-length"), Some("14"));
    assert!(r.header("cache").is_some());
    assert_eq!(
        r.header("x-added"),
        Some("y"),
        "the edge's own headers stay"
    );
}

/// `body` decoded from `encoding` (`gzip`, `br`).
fn decoded(encoding: &str, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap(),
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("{other}"),
    };
    out
}

#[test]
fn gzip_and_brotli_compress_a_stored_copy_once_for_those_that_accept_them() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({
            "gzipOn": {"enabled": true, "value": true},
            "brotli_compression": {"enabled": true, "value": ["text/html", "text/plain"]}}),
        EdgeConfig::default(),
    );
    let (path, target) = say(
        "index.m3u8",
        "pad=20000&h=Content-Type:%20application/vnd.apple.mpegurl&h=ETag:%20%22p1%22",
    );
    let plain = e.get(HOST, &target, &[]);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert!(plain.body.len() >= 20_000);
    for _ in 0..2 {
        let gz = e.get(HOST, &target, &[("Accept-Encoding", "gzip, deflate, br")]);
        assert_eq!(gz.header("cache"), Some("HIT"));
        assert_eq!(
            gz.header("content-encoding"),
            Some("gzip"),
            "br is not listed for m3u8"
        );
        assert_eq!(gz.header("etag"), Some("W/\"p1\""));
        assert_eq!(
            gz.header("content-length"),
            Some(gz.body.len().to_string().as_str())
        );
        assert!(gz.body.len() * 5 < plain.body.len(), "{}", gz.body.len());
        assert_eq!(decoded("gzip", &gz.body), plain.body);
    }
    let (_, page) = say(
        "page.html",
        "pad=5000&h=Content-Type:%20text/html;%20charset=utf-8",
    );
    let br = e.get(HOST, &page, &[("Accept-Encoding", "gzip;q=0.5, br")]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    let plain_page = e.get(HOST, &page, &[("Accept-Encoding", "br;q=0, gzip;q=0")]);
    assert_eq!(plain_page.header("content-encoding"), None);
    assert_eq!(decoded("br", &br.body), plain_page.body);
    // A range is of the identity bytes; a type not listed, and a small body, stay as they are.
    let r = e.get(
        HOST,
        &target,
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")],
    );
    assert_eq!((r.status, r.header("content-encoding")), (206, None));
    let (_, ts) = say("seg.ts", "pad=5000&h=Content-Type:%20video/mp2t");
    let r = e.get(HOST, &ts, &[("Accept-Encoding", "gzip")]);
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
    let (_, small) = say("s.txt", "h=Content-Type:%20text/plain");
    let r = e.get(HOST, &small, &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), None, "under 128 bytes");
    let head = e.send(
        Ipv4Addr::LOCALHOST,
        "HEAD",
        HOST,
        &target,
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(head.header("content-encoding"), Some("gzip"));
    assert_eq!(origin.hits(&path), 1, "one stored copy");
}

#[test]
fn a_rewritten_playlist_is_compressed_per_response() {
    let origin = TestOrigin::start();
    let e = edge_with(
        &origin,
        serde_json::json!({
            "gzipOn": {"enabled": true, "value": true},
            "query_string_forwarding": {"enabled": true,
                "forward_from_file_types": ["m3u8"], "forward_to_file_types": ["ts"]}}),
        EdgeConfig::default(),
    );
    let (_, target) = say(
        "vod/index.m3u8",
        "pad=30000&h=Content-Type:%20application/vnd.apple.mpegurl",
    );
    let plain = e.get(HOST, &target, &[]);
    assert!(String::from_utf8_lossy(&plain.body).contains("seg1.ts?md5="));
    let gz = e.get(HOST, &target, &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gz.header("content-length"),
        None,
        "sent as it is compressed"
    );
    assert_eq!(decoded("gzip", &gz.body), plain.body);
}
