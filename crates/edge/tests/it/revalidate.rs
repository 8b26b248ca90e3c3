//! Revalidation: an expired object with validators is asked for with `If-None-Match` /
//! `If-Modified-Since`, and the origin's 304 refreshes it without its body moving again.

use std::time::Duration;

use tollgate_edge::EdgeConfig;
use tollgate_testkit::origin::{file_byte, TestOrigin};
use tollgate_testkit::{link, now, TempDir};

use crate::{resources, RunningEdge};

const HOST: &str = "cdn.example.com";
const SLICE: u64 = 4 << 20;

fn edge(origin: &TestOrigin, config: EdgeConfig) -> RunningEdge {
    RunningEdge::start(&resources(origin.port, &[(HOST, Some(2))]), config)
}

#[test]
fn an_expired_small_object_is_revalidated_and_a_304_keeps_its_body() {
    let origin = TestOrigin::start();
    let e = edge(&origin, EdgeConfig::default());
    // `/short/` answers are fresh for one second and carry an ETag.
    let path = "/short/news.json";
    let target = link(path, now() + 600, None);
    let first = e.get(HOST, &target, &[]);
    assert_eq!(first.header("cache"), Some("MISS"));
    std::thread::sleep(Duration::from_millis(1200));
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache"), Some("REVALIDATED"));
    assert_eq!(r.body, first.body);
    assert_eq!(r.header("etag"), first.header("etag"));
    assert_eq!((origin.hits(path), origin.not_modified()), (2, 1));
    // Fresh again for its lifetime from the 304.
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.header("cache"), Some("HIT"));
    assert_eq!(origin.hits(path), 2);
}

#[test]
fn an_expired_large_object_is_refreshed_in_place_and_a_changed_one_replaced() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("revalidate");
    let config = || EdgeConfig {
        disk: Some((dir.0.clone(), 1 << 30)),
        ..EdgeConfig::default()
    };
    let e = edge(&origin, config());
    let len = 3 * SLICE + 99;
    let path = format!("/file/{len}/film.mp4");
    let target = link(&path, now() + 600, None) + "&max_age=1";
    let want = |v: u16| -> Vec<u8> { (0..len).map(|o| file_byte(v, o)).collect() };
    let r = e.get(HOST, &target, &[]);
    assert!(r.body == want(0));
    let sent = origin.body_bytes();
    assert_eq!(sent, len);

    std::thread::sleep(Duration::from_millis(1200));
    let r = e.get(HOST, &target, &[("Range", "bytes=4194300-4194310")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("cache"), Some("REVALIDATED"));
    assert!(r.body[..] == want(0)[4_194_300..=4_194_310]);
    // Fresh again for a second; a slow machine may see it expire and revalidate once more.
    let fresh_or_revalidated = |r: &tollgate_testkit::http::RawResponse| {
        matches!(r.header("cache"), Some("HIT" | "REVALIDATED"))
    };
    let r = e.get(HOST, &target, &[]);
    assert!(fresh_or_revalidated(&r), "{:?}", r.header("cache"));
    assert!(r.body == want(0));
    assert!(origin.not_modified() >= 1);
    assert_eq!(origin.body_bytes(), sent, "a 304 moves no body");

    // The refreshed copy is the one on disk: a restart finds it fresh.
    drop(e);
    let e = edge(&origin, config());
    let t = std::time::Instant::now();
    while !e.edge.disk_ready() {
        assert!(t.elapsed() < Duration::from_secs(30), "disk never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = e.get(HOST, &target, &[("Range", "bytes=0-9")]);
    assert!(fresh_or_revalidated(&r), "{:?}", r.header("cache"));
    assert_eq!(origin.body_bytes(), sent);

    // Changed at the origin: the validator no longer matches and the new body replaces it.
    origin.change_files();
    std::thread::sleep(Duration::from_millis(1200));
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.header("cache"), Some("MISS"));
    assert!(r.body == want(1), "the new version");
    let r = e.get(HOST, &target, &[]);
    assert!(fresh_or_revalidated(&r), "{:?}", r.header("cache"));
    assert!(r.body == want(1));
    assert_eq!(
        origin.body_bytes(),
        sent + len,
        "the new version fetched once"
    );
}
