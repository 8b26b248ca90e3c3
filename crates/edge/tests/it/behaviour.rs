//! What the edge does, request by request, against the std-only test origin.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tollgate_edge::EdgeConfig;
use tollgate_edge::Timeouts;
use tollgate_edge::TrustedProxies;
use tollgate_testkit::origin::{pattern, TestOrigin, BIG};
use tollgate_testkit::{link, now};

use crate::{resources, RunningEdge};

const OPEN: &str = "open.example.com";
const T2: &str = "cdn.example.com";
const T0: &str = "ip.example.com";

fn setup(config: EdgeConfig) -> (TestOrigin, RunningEdge) {
    let origin = TestOrigin::start();
    let json = resources(origin.port, &[(OPEN, None), (T2, Some(2)), (T0, Some(0))]);
    let edge = RunningEdge::start(&json, config);
    (origin, edge)
}

#[test]
fn valid_link_is_served_and_cached_once_for_many_viewers() {
    let (origin, edge) = setup(EdgeConfig::default());
    // Twenty viewers, each from its own address with a token bound to it.
    let path = "/size/1024/shared.bin";
    let handles: Vec<_> = (2..22u8)
        .map(|i| {
            let source = Ipv4Addr::new(127, 0, 0, i);
            let target = link(path, now() + 60, Some(&source.to_string()));
            let port = edge.port;
            std::thread::spawn(move || {
                tollgate_testkit::http::request(
                    source,
                    port,
                    "GET",
                    target.as_bytes(),
                    &[("Host", T0)],
                )
                .unwrap()
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 1024);
        assert_eq!(r.body[1000], pattern(1000));
    }
    assert_eq!(
        origin.hits(path),
        1,
        "one origin fetch for all viewers: {:?}",
        origin.targets()
    );
    let again = edge.send(
        Ipv4Addr::new(127, 0, 0, 2),
        "GET",
        T0,
        &link(path, now() + 60, Some("127.0.0.2")),
        &[],
    );
    assert_eq!(again.header("cache"), Some("HIT"));
    assert!(again.header("age").is_some());
}

#[test]
fn token_gate_statuses() {
    let (origin, edge) = setup(EdgeConfig::default());
    let good = link("/a.txt", now() + 60, None);
    assert_eq!(edge.get(T2, &good, &[]).status, 200);
    // The same expiry with a well-formed but wrong token.
    let expires = good.split('&').nth(1).unwrap();
    let wrong = format!("/a.txt?md5=AAAAAAAAAAAAAAAAAAAAAA&{expires}");
    assert_eq!(edge.get(T2, &wrong, &[]).status, 403);
    assert_eq!(edge.get(T2, "/a.txt", &[]).status, 403);
    assert_eq!(
        edge.get(T2, &link("/old.txt", now() - 5, None), &[]).status,
        410
    );
    assert_eq!(edge.get(T2, "/%zz", &[]).status, 400);
    assert_eq!(edge.get(T2, "/../etc/passwd", &[]).status, 400);
    // Refused requests never reach the origin and are never cached.
    assert_eq!(origin.hits("/old.txt"), 0);
    let r = edge.get(T2, "/a.txt", &[]);
    assert_eq!((r.status, r.header("cache")), (403, None));
    // Unknown hosts, other methods, open resources.
    assert_eq!(edge.get("nope.example.com", "/", &[]).status, 404);
    assert_eq!(
        edge.send(
            Ipv4Addr::LOCALHOST,
            "POST",
            T2,
            &good,
            &[("Content-Length", "0")]
        )
        .status,
        405
    );
    assert_eq!(edge.get(OPEN, "/free.txt", &[]).status, 200);
    // The refusal reason goes to the metrics.
    let m = edge.edge.render_metrics();
    assert!(
        m.contains(r#"tollgate_requests_total{resource="2",outcome="refused",reason="expired"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(
            r#"tollgate_requests_total{resource="2",outcome="refused",reason="token_mismatch"} 1"#
        ),
        "{m}"
    );
}

#[test]
fn ip_bound_token_from_another_address_is_refused() {
    let (_origin, edge) = setup(EdgeConfig::default());
    let target = link("/mine.txt", now() + 60, Some("127.0.0.2"));
    assert_eq!(
        edge.send(Ipv4Addr::new(127, 0, 0, 2), "GET", T0, &target, &[])
            .status,
        200
    );
    assert_eq!(
        edge.send(Ipv4Addr::new(127, 0, 0, 3), "GET", T0, &target, &[])
            .status,
        403
    );
    // Without a trusted proxy, X-Forwarded-For changes nothing.
    let r = edge.send(
        Ipv4Addr::new(127, 0, 0, 3),
        "GET",
        T0,
        &target,
        &[("X-Forwarded-For", "127.0.0.2")],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn ipv6_client_through_a_trusted_proxy() {
    let config = EdgeConfig {
        trusted: TrustedProxies(vec!["127.0.0.1".parse().unwrap()]),
        ..EdgeConfig::default()
    };
    let (_origin, edge) = setup(config);
    let target = link("/v6.txt", now() + 60, Some("2001:db8::1"));
    let ok = edge.get(
        T0,
        &target,
        &[("X-Forwarded-For", "203.0.113.9, 2001:DB8:0:0::1")],
    );
    assert_eq!(ok.status, 200);
    assert_eq!(
        edge.get(T0, &target, &[("X-Forwarded-For", "2001:db8::2")])
            .status,
        403
    );
    // An untrusted peer cannot claim an address.
    let r = edge.send(
        Ipv4Addr::new(127, 0, 0, 5),
        "GET",
        T0,
        &target,
        &[("X-Forwarded-For", "2001:db8::1")],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn token_parameters_are_not_forwarded_and_host_is_the_cname() {
    let (origin, edge) = setup(EdgeConfig::default());
    let target = format!("{}&x=1", link("/q.txt", now() + 60, None));
    let r = edge.get(T2, &target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(origin.hits("/q.txt?x=1"), 1, "{:?}", origin.targets());
    assert_eq!(r.header("x-origin-host"), Some(T2));
    // Another viewer's token, same object: a hit.
    let other = format!("{}&x=1", link("/q.txt", now() + 120, None));
    assert_eq!(edge.get(T2, &other, &[]).header("cache"), Some("HIT"));
}

#[test]
fn origin_down_gives_502_or_stale() {
    let (origin, edge) = setup(EdgeConfig::default());
    let short = link("/short/s.txt", now() + 60, None);
    assert_eq!(edge.get(T2, &short, &[]).status, 200);
    origin.stop();
    std::thread::sleep(Duration::from_millis(1300));
    let stale = edge.get(T2, &short, &[]);
    assert_eq!((stale.status, stale.header("cache")), (200, Some("STALE")));
    assert_eq!(stale.body, b"origin /short/s.txt\n");
    let fresh_miss = edge.get(T2, &link("/never-seen.txt", now() + 60, None), &[]);
    assert_eq!(fresh_miss.status, 502);
    assert!(String::from_utf8_lossy(&fresh_miss.body).contains("origin"));
}

#[test]
fn slow_origin_gives_504() {
    let config = EdgeConfig {
        origin_timeouts: Timeouts {
            connect: Duration::from_secs(1),
            read: Duration::from_millis(800),
            ..EdgeConfig::default().origin_timeouts
        },
        ..EdgeConfig::default()
    };
    let (_origin, edge) = setup(config);
    let t0 = Instant::now();
    let r = edge.get(T2, &link("/slow/x", now() + 60, None), &[]);
    assert_eq!(r.status, 504);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn range_on_a_1gb_object_is_streamed() {
    let (_origin, edge) = setup(EdgeConfig::default());
    let target = link("/big/movie.bin", now() + 60, None);
    let start = BIG - 1000;
    let r = edge.get(T2, &target, &[("Range", &format!("bytes={start}-"))]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {start}-{}/{BIG}", BIG - 1).as_str())
    );
    assert_eq!(r.body.len(), 1000);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(start + i as u64)));
    let mid = edge.get(T2, &target, &[("Range", "bytes=500000000-500000099")]);
    assert_eq!(mid.status, 206);
    assert_eq!(mid.body.len(), 100);
    assert_eq!(mid.body[0], pattern(500_000_000));
    let head = edge.send(Ipv4Addr::LOCALHOST, "HEAD", T2, &target, &[]);
    assert_eq!(
        head.header("content-length"),
        Some(BIG.to_string().as_str())
    );
}

#[test]
fn ranges_conditionals_and_head_from_the_cache() {
    let (origin, edge) = setup(EdgeConfig::default());
    let target = link("/size/100/r.bin", now() + 60, None);
    assert_eq!(edge.get(T2, &target, &[]).status, 200);
    let r = edge.get(T2, &target, &[("Range", "bytes=10-19")]);
    assert_eq!((r.status, r.header("cache")), (206, Some("HIT")));
    assert_eq!(r.body, (10..20).map(pattern).collect::<Vec<u8>>());
    assert_eq!(
        edge.get(T2, &target, &[("Range", "bytes=200-")]).status,
        416
    );
    assert_eq!(
        edge.get(T2, &target, &[("If-None-Match", "\"e100\"")])
            .status,
        304
    );
    assert_eq!(
        edge.get(T2, &target, &[("If-None-Match", "\"other\"")])
            .status,
        200
    );
    let ims = edge.get(
        T2,
        &target,
        &[("If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT")],
    );
    assert_eq!(ims.status, 304);
    let head = edge.send(Ipv4Addr::LOCALHOST, "HEAD", T2, &target, &[]);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("100"))
    );
    assert_eq!(origin.hits("/size/100/r.bin"), 1);
}

#[test]
fn uncacheable_responses_go_to_the_origin_every_time() {
    let (origin, edge) = setup(EdgeConfig::default());
    let target = link("/nostore/n.txt", now() + 60, None);
    for _ in 0..3 {
        let r = edge.get(T2, &target, &[]);
        assert_eq!((r.status, r.header("cache")), (200, Some("MISS")));
    }
    assert_eq!(origin.hits("/nostore/n.txt"), 3);
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use std::io::{Read, Write};
    let config = EdgeConfig {
        limits: tollgate_edge::Limits {
            header_read_timeout: Duration::from_millis(700),
            ..Default::default()
        },
        ..EdgeConfig::default()
    };
    let (_origin, edge) = setup(config);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", edge.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: cdn.example.com\r\nX-Slow: ")
        .unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "not cut off after {took:?}");
    assert!(
        took >= Duration::from_millis(500),
        "cut off too early: {took:?}"
    );
}

#[test]
fn hot_objects_survive_a_scan() {
    // S3-FIFO (quick_cache): new objects wait in a small probation queue, and only those asked
    // for again there join the main one, so a run of one-off objects does not displace one
    // that is asked for again and again. The cache is filled first, as on a running edge.
    let config = EdgeConfig {
        cache_bytes: 256 * 1024,
        ..EdgeConfig::default()
    };
    let (origin, edge) = setup(config);
    let get = |path: String| {
        let r = edge.get(T2, &link(&path, now() + 300, None), &[]);
        assert_eq!(r.status, 200);
        r
    };
    for i in 0..100 {
        get(format!("/size/4096/fill-{i}.bin"));
    }
    for _ in 0..30 {
        get("/size/4096/hot.bin".to_owned());
    }
    // A scan of 400 one-off objects, 1.6 MiB in all, through a 256 KiB cache (about 55
    // objects), while the hot object is asked for only every 100 requests: plain LRU would
    // have evicted it each time.
    for i in 0..400 {
        get(format!("/size/4096/scan-{i}.bin"));
        if i % 100 == 99 {
            assert_eq!(
                get("/size/4096/hot.bin".to_owned()).header("cache"),
                Some("HIT"),
                "after {i}"
            );
        }
    }
    assert_eq!(origin.hits("/size/4096/hot.bin"), 1);
    assert!(
        edge.edge.cache_bytes() <= 256 * 1024,
        "cache over its bound"
    );
}

/// Edge settings with short client timeouts, for the tests of slow and idle clients.
fn impatient(header_ms: u64, send_ms: u64) -> EdgeConfig {
    EdgeConfig {
        limits: tollgate_edge::Limits {
            header_read_timeout: Duration::from_millis(header_ms),
            send_timeout: Duration::from_millis(send_ms),
            ..Default::default()
        },
        // Nothing is cached whole: origin bodies stream through.
        max_object_bytes: 1000,
        ..EdgeConfig::default()
    }
}

/// Reads until the edge closes the connection (or an error); the time it took and the bytes.
fn read_until_closed(s: &mut std::net::TcpStream) -> (Duration, usize) {
    use std::io::Read;
    let t0 = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (t0.elapsed(), total),
            Ok(n) => total += n,
        }
    }
}

/// A keep-alive connection on which a signed GET of `path` has been sent.
fn sent_get(edge: &RunningEdge, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", edge.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let target = link(path, now() + 60, None);
    write!(s, "GET {target} HTTP/1.1\r\nHost: {T2}\r\n\r\n").unwrap();
    s
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let (_origin, edge) = setup(impatient(700, 60_000));
    let mut s = sent_get(&edge, "/a.txt");
    let (took, bytes) = read_until_closed(&mut s);
    assert!(bytes > 0, "no response");
    assert!(
        took < Duration::from_secs(5),
        "idle connection kept {took:?}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
}

#[test]
fn client_that_stops_reading_is_cut_off_after_the_send_timeout() {
    let (_origin, edge) = setup(impatient(60_000, 700));
    let mut s = sent_get(&edge, "/big/unread.bin");
    // Read nothing while the socket buffers fill and the edge's writes stall.
    std::thread::sleep(Duration::from_secs(3));
    let (took, bytes) = read_until_closed(&mut s);
    assert!(
        (bytes as u64) < BIG / 10,
        "the edge kept sending to a client that did not read: {bytes} bytes"
    );
    assert!(took < Duration::from_secs(5), "cut off only after {took:?}");
}

#[test]
fn an_origin_pause_longer_than_the_header_timeout_streams_through() {
    // The origin pauses 1.5 s half-way; the client's header timeout (700 ms) does not apply
    // while the response is still coming from the origin.
    let (_origin, edge) = setup(impatient(700, 60_000));
    let r = edge.get(T2, &link("/pause/p.bin", now() + 60, None), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, tollgate_testkit::origin::PAUSED_LEN);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(i as u64)));
}

#[test]
fn every_response_gets_an_access_log_line() {
    let dir = tollgate_testkit::TempDir::new("access-log");
    let log = dir.0.join("access.log");
    let (_origin, edge) = setup(EdgeConfig {
        access_log: Some(log.clone()),
        ..EdgeConfig::default()
    });
    let good = link("/a.txt", now() + 60, None);
    let sent = [
        edge.get(T2, &good, &[]).status,
        edge.get(T2, "/a.txt", &[]).status,
        edge.get("nope.example.com", "/x", &[]).status,
        edge.send(
            Ipv4Addr::LOCALHOST,
            "DELETE",
            T2,
            &good,
            &[("Content-Length", "0")],
        )
        .status,
    ];
    assert_eq!(sent, [200, 403, 404, 405]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= sent.len() || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seen: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| (l["status"].as_u64().unwrap(), l["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (200, ""),
            (403, "missing_token"),
            (404, "unknown_host"),
            (405, "method_not_allowed"),
        ],
        "{lines:?}"
    );
    assert_eq!(lines[2]["resource"], serde_json::Value::Null);
    assert_eq!(lines[3]["method"], "DELETE");
}
