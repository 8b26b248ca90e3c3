//! Methods other than GET and HEAD, as `allowedHttpMethods` allows them: to the origin with
//! their bodies, unstored, and invalidating what the cache holds for their URL (RFC 9111 4.4).

use std::net::Ipv4Addr;

use tollgate_edge::EdgeConfig;
use tollgate_testkit::http::request_with_body;
use tollgate_testkit::origin::TestOrigin;
use tollgate_testkit::{link, now};

use crate::{resources, RunningEdge};

const HOST: &str = "cdn.example.com";

fn edge(origin: &TestOrigin, methods: Option<&[&str]>) -> RunningEdge {
    let mut json: serde_json::Value =
        serde_json::from_str(&resources(origin.port, &[(HOST, Some(2))])).unwrap();
    if let Some(m) = methods {
        json[0]["options"]["allowedHttpMethods"] = serde_json::json!({"enabled": true, "value": m});
    }
    RunningEdge::start(&json.to_string(), EdgeConfig::default())
}

/// A signed `/say/<name>` target with these response headers, and the target the origin sees.
fn say(name: &str, headers: &[&str]) -> (String, String) {
    let path = format!("/say/{name}");
    let mut query = String::from("status=200");
    for h in headers {
        query.push_str("&h=");
        query.push_str(&h.replace(' ', "%20"));
    }
    (
        format!("{}&{query}", link(&path, now() + 600, None)),
        format!("{path}?{query}"),
    )
}

fn send(
    e: &RunningEdge,
    method: &str,
    target: &str,
    body: &[u8],
) -> tollgate_testkit::http::RawResponse {
    let len = body.len().to_string();
    let headers = [
        ("Host", HOST),
        ("Content-Length", len.as_str()),
        ("Content-Type", "text/plain"),
    ];
    request_with_body(
        Ipv4Addr::LOCALHOST,
        e.port,
        method,
        target.as_bytes(),
        &headers,
        body,
    )
    .unwrap()
}

#[test]
fn an_allowed_post_reaches_the_origin_with_its_body_and_invalidates_the_url() {
    let origin = TestOrigin::start();
    let e = edge(&origin, Some(&["GET", "HEAD", "POST", "DELETE"]));
    let (target, seen) = say("item.txt", &["Cache-Control: max-age=60"]);
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("MISS"));
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("HIT"));

    let r = send(&e, "POST", &target, b"hello origin");
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.last_body(&seen).as_deref(),
        Some(&b"hello origin"[..])
    );
    let h = origin.last_headers(&seen);
    assert!(h.iter().any(|(k, v)| k == ":method" && v == "POST"));
    assert!(h
        .iter()
        .any(|(k, v)| k == "content-type" && v == "text/plain"));
    // The POST's own answer (max-age=60) is not stored, and the GET's copy is gone.
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.header("cache"), Some("MISS"), "invalidated by the POST");
    assert_eq!(origin.hits(&seen), 3, "GET, POST, GET");
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("HIT"));

    // A failed unsafe request invalidates nothing.
    let (bad, bad_seen) = say("item.txt", &["Cache-Control: max-age=60"]);
    let bad = bad.replace("status=200", "status=500");
    let bad_seen = bad_seen.replace("status=200", "status=500");
    e.get(HOST, &bad, &[]);
    assert_eq!(send(&e, "DELETE", &bad, b"").status, 500);
    assert_eq!(e.get(HOST, &bad, &[]).header("cache"), Some("HIT"));
    assert_eq!(origin.hits(&bad_seen), 2);
}

#[test]
fn location_on_the_same_resource_is_invalidated_too() {
    let origin = TestOrigin::start();
    let e = edge(&origin, Some(&["GET", "POST"]));
    let (other, other_seen) = say("list.json", &["Cache-Control: max-age=60"]);
    e.get(HOST, &other, &[]);
    assert_eq!(e.get(HOST, &other, &[]).header("cache"), Some("HIT"));
    // Location is what the origin sees for the list (path and query), signed or not.
    // (escaped once more: the test origin decodes its `h` parameters)
    let location = format!(
        "Location: {}",
        other_seen.replace('%', "%25").replace('&', "%26")
    );
    let (post, _) = say("new", &[&location]);
    assert_eq!(send(&e, "POST", &post, b"{}").status, 200);
    assert_eq!(e.get(HOST, &other, &[]).header("cache"), Some("MISS"));
    assert_eq!(origin.hits(&other_seen), 2);
    // Another host's Location is left alone (RFC 9111 4.4).
    let (post, _) = say(
        "new2",
        &["Location: http://elsewhere.example/say/list.json"],
    );
    send(&e, "POST", &post, b"{}");
    assert_eq!(e.get(HOST, &other, &[]).header("cache"), Some("HIT"));
}

#[test]
fn methods_outside_the_option_are_405_naming_the_allowed_ones_and_bodies_are_bounded() {
    let origin = TestOrigin::start();
    let plain = edge(&origin, None);
    let (target, seen) = say("x.txt", &[]);
    let r = send(&plain, "POST", &target, b"x");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(origin.hits(&seen), 0);

    let e = edge(&origin, Some(&["GET", "POST", "OPTIONS"]));
    let r = send(&e, "PUT", &target, b"x");
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, POST, OPTIONS"))
    );
    let r = send(&e, "HEAD", &target, b"");
    assert_eq!(r.status, 405, "HEAD is not in the list");
    // The token still guards it.
    let unsigned = "/say/x.txt?status=200";
    assert_eq!(send(&e, "POST", unsigned, b"x").status, 403);
    // A body declared over 64 MiB is refused before it is read.
    let headers = [("Host", HOST), ("Content-Length", "100000000")];
    let r = request_with_body(
        Ipv4Addr::LOCALHOST,
        e.port,
        "POST",
        target.as_bytes(),
        &headers,
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(origin.hits(&seen), 0);
    // OPTIONS goes to the origin too (until CORS preflights are the edge's own).
    assert_eq!(send(&e, "OPTIONS", &target, b"").status, 200);
    assert_eq!(origin.hits(&seen), 1);
}
