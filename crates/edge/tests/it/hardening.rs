//! What an attacker with one valid link, or an odd origin, could do before, each pinned by a
//! test against a real edge and a test origin that misbehaves on purpose.

use std::io::{Read, Write};

use bytes::Bytes;
use std::time::{Duration, Instant};

use tollgate_edge::EdgeConfig;
use tollgate_edge::Timeouts;
use tollgate_testkit::origin::TestOrigin;
use tollgate_testkit::{link, now};

use crate::{resources, RunningEdge};

const HOST: &str = "cdn.example.com";

fn edge_with(origin: &TestOrigin, options: serde_json::Value, config: EdgeConfig) -> RunningEdge {
    crate::edge_with_options(origin.port, HOST, options, config)
}

fn signed(target: &str) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let l = link(path, now() + 600, None);
    if query.is_empty() {
        l
    } else {
        format!("{l}&{query}")
    }
}

/// The origin's view of a signed link: the token parameters are not forwarded.
fn origin_target(target: &str) -> String {
    target.to_owned()
}

#[test]
fn huge_origin_lifetimes_saturate_instead_of_dropping_the_connection() {
    let origin = TestOrigin::start();
    let edge = edge_with(&origin, serde_json::json!({}), EdgeConfig::default());
    for (i, cc) in [
        "max-age%3D9223372036854775807",
        "max-age%3D18446744073709551615",
        "max-age%3D5,stale-if-error%3D18446744073709551615",
    ]
    .iter()
    .enumerate()
    {
        let target = format!("/say/huge{i}?h=Cache-Control:{cc}");
        let first = edge.get(HOST, &signed(&target), &[]);
        assert_eq!(
            (first.status, first.header("cache")),
            (200, Some("MISS")),
            "{cc}"
        );
        let again = edge.get(HOST, &signed(&target), &[]);
        assert_eq!(
            (again.status, again.header("cache")),
            (200, Some("HIT")),
            "{cc}"
        );
    }
}

#[test]
fn a_response_that_may_not_be_shared_goes_only_to_the_viewer_who_fetched_it() {
    let origin = TestOrigin::start();
    let edge = edge_with(&origin, serde_json::json!({}), EdgeConfig::default());
    for (i, header) in [
        "Set-Cookie:sid%3Dviewer-one",
        "Cache-Control:private,max-age%3D60",
    ]
    .iter()
    .enumerate()
    {
        // Twenty viewers together, while the origin takes 300 ms: each gets its own fetch.
        let target = format!("/say/own{i}?delay_ms=300&h={header}");
        let labels: Vec<Option<String>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..20)
                .map(|_| {
                    s.spawn(|| {
                        let r = edge.get(HOST, &signed(&target), &[]);
                        assert_eq!(r.status, 200);
                        r.header("cache").map(str::to_owned)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            origin.hits(&origin_target(&target)),
            20,
            "{header}: {labels:?}"
        );
        assert!(
            labels.iter().all(|l| l.as_deref() == Some("MISS")),
            "{labels:?}"
        );
    }
}

#[test]
fn a_cookie_private_or_no_store_response_is_never_stored_even_with_a_cache_override() {
    let origin = TestOrigin::start();
    let edge = edge_with(
        &origin,
        serde_json::json!({"edge_cache_settings": {"enabled": true, "value": "1h"}}),
        EdgeConfig::default(),
    );
    for (i, header) in [
        "Set-Cookie:sid%3Dviewer-one",
        "Cache-Control:private",
        "Cache-Control:no-store",
    ]
    .iter()
    .enumerate()
    {
        let target = format!("/say/kept{i}?h={header}");
        for _ in 0..2 {
            let r = edge.get(HOST, &signed(&target), &[]);
            assert_eq!(
                (r.status, r.header("cache")),
                (200, Some("MISS")),
                "{header}"
            );
        }
        assert_eq!(origin.hits(&target), 2, "{header}");
    }
    // The override still stores what the origin only asks to revalidate.
    let target = "/say/revalidate?h=Cache-Control:no-cache";
    edge.get(HOST, &signed(target), &[]);
    let again = edge.get(HOST, &signed(target), &[]);
    assert_eq!(again.header("cache"), Some("HIT"));
}

#[test]
fn a_stale_copy_is_served_when_the_origin_answers_5xx() {
    let origin = TestOrigin::start();
    let edge = edge_with(&origin, serde_json::json!({}), EdgeConfig::default());
    let statuses = [500, 502, 503, 504];
    for s in statuses {
        let r = edge.get(HOST, &signed(&format!("/short/{s}")), &[]);
        assert_eq!(r.status, 200);
    }
    std::thread::sleep(Duration::from_millis(1300)); // past max-age=1
    for s in statuses {
        origin.answer_all_with(Some(s));
        let r = edge.get(HOST, &signed(&format!("/short/{s}")), &[]);
        assert_eq!(
            (r.status, r.header("cache")),
            (200, Some("STALE")),
            "origin {s}"
        );
    }
    // Without a stale copy, the origin's answer goes through.
    let r = edge.get(HOST, &signed("/short/never-stored"), &[]);
    assert_eq!(r.status, 504);
}

#[test]
fn two_host_headers_are_refused() {
    let origin = TestOrigin::start();
    let edge = edge_with(&origin, serde_json::json!({}), EdgeConfig::default());
    let target = signed("/a.txt");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", edge.port)).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {HOST}\r\nHost: other.example.com\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    assert_eq!(tollgate_testkit::http::parse_status(&resp), Ok(400));
    assert_eq!(origin.hits("/a.txt"), 0);
}

#[test]
fn a_dripping_origin_holds_no_viewer_past_the_fetch_deadline() {
    let origin = TestOrigin::start();
    let config = EdgeConfig {
        origin_timeouts: Timeouts {
            total: Duration::from_secs(2),
            ..EdgeConfig::default().origin_timeouts
        },
        ..EdgeConfig::default()
    };
    let edge = edge_with(&origin, serde_json::json!({}), config);
    // 100 bytes every 200 ms of a 100 kB body: 200 s, each read well within the read timeout.
    let target = "/drip/slow?total=100000&chunk=100&every_ms=200";
    let t = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| edge.get(HOST, &signed(target), &[]).status))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = t.elapsed();
    assert_eq!(statuses, [504, 504, 504]);
    assert!(took < Duration::from_secs(10), "viewers held {took:?}");
    assert_eq!(origin.hits(target), 1, "one fetch for the three");
}

#[test]
fn followers_go_to_the_origin_themselves_after_the_lock_timeout() {
    let origin = TestOrigin::start();
    let edge = edge_with(&origin, serde_json::json!({}), EdgeConfig::default());
    // About 8 s to send whole: longer than the 5 s a follower waits.
    let target = "/drip/lock?total=900&chunk=100&every_ms=1000";
    let (leader, follower) = std::thread::scope(|s| {
        let leader = s.spawn(|| edge.get(HOST, &signed(target), &[]));
        std::thread::sleep(Duration::from_millis(300));
        let follower = s.spawn(|| {
            let t = Instant::now();
            (edge.get(HOST, &signed(target), &[]), t.elapsed())
        });
        (leader.join().unwrap(), follower.join().unwrap())
    });
    assert_eq!((leader.status, leader.body.len()), (200, 900));
    let (follower, _took) = follower;
    assert_eq!((follower.status, follower.body.len()), (200, 900));
    assert_eq!(follower.header("cache"), Some("MISS"));
    assert_eq!(origin.hits(target), 2, "the follower fetched for itself");
}

#[test]
fn a_streamed_body_that_stalls_is_cut_at_the_origin_read_timeout() {
    let origin = TestOrigin::start();
    let config = EdgeConfig {
        // Larger than the cache takes: streamed through as the origin sends it.
        max_object_bytes: 1000,
        origin_timeouts: Timeouts {
            read: Duration::from_secs(1),
            ..EdgeConfig::default().origin_timeouts
        },
        ..EdgeConfig::default()
    };
    let edge = edge_with(&origin, serde_json::json!({}), config);
    // 2 kB, then nothing for a minute.
    let target = "/drip/stall?total=100000&chunk=2000&every_ms=60000";
    let t = Instant::now();
    let r = edge.get(HOST, &signed(target), &[]);
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert!(r.body.len() < 100_000, "{} bytes", r.body.len());
    assert!(
        took < Duration::from_secs(10),
        "the viewer was held {took:?}"
    );
}

#[test]
fn http2_streams_with_a_zero_window_hold_no_origin_connection_past_the_send_timeout() {
    let origin = TestOrigin::start();
    let mut config = EdgeConfig::default();
    config.limits.send_timeout = Duration::from_secs(2);
    // Streamed through unstored (a stored object's fill outlives its viewers, as nginx's).
    config.max_object_bytes = 1000;
    let json = resources(origin.port, &[("open.example.com", None)]);
    let edge = RunningEdge::start(&json, config);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", edge.port))
            .await
            .unwrap();
        // A real HTTP/2 client that lets no stream receive a byte of body.
        let (client, conn) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut streams = Vec::new();
        for i in 0..20 {
            let req = http::Request::get(format!("http://open.example.com/big/z{i}"))
                .body(())
                .unwrap();
            let (resp, _) = client.send_request(req, true).unwrap();
            streams.push(resp);
            client = client.ready().await.unwrap();
        }
        let mut bodies = Vec::new();
        for s in streams {
            let resp = s.await.unwrap();
            assert_eq!(resp.status(), 200);
            bodies.push(resp.into_body());
        }
        let held = origin.open_connections();
        assert!(
            held >= 20,
            "the edge fetches each stream: {held} origin connections"
        );
        let t = Instant::now();
        while origin.open_connections() > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "{} origin connections still held after {:?}",
                origin.open_connections(),
                t.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "20 zero-window streams: origin connections released after {:?}",
            t.elapsed()
        );
        drop(bodies);
    });
}

#[test]
fn viewers_waiting_on_a_fetch_that_falls_back_on_the_stale_copy_get_it_as_stale() {
    let origin = TestOrigin::start();
    let edge = edge_with(&origin, serde_json::json!({}), EdgeConfig::default());
    let target = "/say/stale-followers?delay_ms=400&h=Cache-Control:max-age%3D1";
    assert_eq!(edge.get(HOST, &signed(target), &[]).status, 200);
    std::thread::sleep(Duration::from_millis(1300)); // past max-age=1
    origin.answer_all_with(Some(503));
    let labels: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..10)
            .map(|_| {
                s.spawn(|| {
                    let r = edge.get(HOST, &signed(target), &[]);
                    (r.status, r.header("cache").map(str::to_owned))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        labels.iter().all(|l| *l == (200, Some("STALE".to_owned()))),
        "{labels:?}"
    );
}

#[test]
fn a_viewer_gone_while_the_origin_pauses_releases_the_origin_at_once() {
    let origin = TestOrigin::start();
    // Streamed through (larger than the cache takes), with the default 30 s read timeout.
    let config = EdgeConfig {
        max_object_bytes: 1000,
        ..EdgeConfig::default()
    };
    let edge = edge_with(&origin, serde_json::json!({}), config);
    let target = signed("/drip/gone?total=100000&chunk=2000&every_ms=60000");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", edge.port)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // The test origin notices a closed connection only when it next writes (a minute away),
    // so the edge's side is counted: its established connections to the origin's port.
    let to_origin = || {
        let port = format!(":{:04X} ", origin.port);
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && format!("{} ", f[2]).ends_with(&port) && f[3] == "01"
            })
            .count()
    };
    assert!(to_origin() >= 1, "the edge streams from the origin");
    drop(s);
    let t = Instant::now();
    while to_origin() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the origin connection is held {:?} after the viewer left",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
