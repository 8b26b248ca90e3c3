//! One signed playlist link cannot exhaust the edge's memory: twenty viewers that stop reading
//! a 10 MiB playlist, whose rewrite is about three times its size, keep the edge's resident
//! memory within `--cache-size` + 64 MiB (sampled from /proc while they hang on).

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::json;
use tollgate_testkit::origin::TestOrigin;

use crate::procs::{Proc, TempDir};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn slow_viewers_of_a_large_playlist_keep_the_edge_within_its_cache_size() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("playlist-rss");
    let res = json!([{"id": 1, "cname": "cdn.example.com", "origin": format!("127.0.0.1:{}", origin.port),
        "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2},
            "query_string_forwarding": {"enabled": true,
                "forward_from_file_types": ["m3u8"], "forward_to_file_types": ["ts"]}}}]);
    let file = dir.path("resources.json");
    std::fs::write(&file, res.to_string()).unwrap();
    let cache_mib = 64;
    let mut edge = Proc::spawn(&[
        "edge",
        "--resources",
        &file,
        "--listen",
        "127.0.0.1:0",
        "--cache-size",
        &format!("{cache_mib}M"),
        "--send-timeout",
        "120s",
    ]);
    let port = edge.port_after("listening on ");
    let pid = edge.child.id();
    let link = tollgate_testkit::link(
        "/hls/10485760/index.m3u8",
        tollgate_testkit::now() + 600,
        None,
    );
    // One viewer reads it whole: the playlist is cached, and the rewrite grows it.
    let whole = tollgate_testkit::http::request(
        std::net::Ipv4Addr::LOCALHOST,
        port,
        "GET",
        link.as_bytes(),
        &[("Host", "cdn.example.com")],
    )
    .unwrap();
    assert_eq!(whole.status, 200);
    assert!(
        whole.body.len() > 25 << 20,
        "rewritten: {} bytes",
        whole.body.len()
    );
    let before = rss_kib(pid);

    // Twenty viewers ask, read 64 KiB each and stop reading.
    let mut viewers = Vec::new();
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // A small receive buffer, as a slow client's: the edge's writes stop early.
        write!(
            s,
            "GET {link} HTTP/1.1\r\nHost: cdn.example.com\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut first = vec![0u8; 64 << 10];
        s.read_exact(&mut first).unwrap();
        assert!(first.starts_with(b"HTTP/1.1 200"));
        viewers.push(s);
    }
    let mut peak = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kib(pid));
    }
    let limit = (cache_mib + 64) << 10;
    eprintln!(
        "edge RSS: {} MiB after one whole read, peak {} MiB with 20 slow viewers (limit {} MiB)",
        before >> 10,
        peak >> 10,
        limit >> 10
    );
    assert!(peak < limit, "peak RSS {} KiB over {limit} KiB", peak);
    drop(viewers);
    edge.kill9();
}
