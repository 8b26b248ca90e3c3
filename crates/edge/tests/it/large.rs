//! Large objects and the disk tier: bodies stored in slices as they stream, ranges answered
//! from the slices, one origin fetch for concurrent viewers, and a cache on disk that a
//! restart keeps and that never serves a damaged byte.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tollgate_edge::EdgeConfig;
use tollgate_testkit::origin::{pattern, TestOrigin};
use tollgate_testkit::{link, now, TempDir};

use crate::{resources, RunningEdge};

const HOST: &str = "cdn.example.com";
const SLICE: u64 = 4 << 20;

fn edge(origin: &TestOrigin, config: EdgeConfig) -> RunningEdge {
    RunningEdge::start(&resources(origin.port, &[(HOST, Some(2))]), config)
}

fn on_disk(dir: &TempDir) -> EdgeConfig {
    EdgeConfig {
        disk: Some((dir.0.clone(), 1 << 30)),
        ..EdgeConfig::default()
    }
}

fn expected(from: u64, to: u64) -> Vec<u8> {
    (from..=to).map(pattern).collect()
}

/// The value of a gauge or counter line on the edge's `/metrics`.
fn metric(e: &RunningEdge, line: &str) -> u64 {
    let page = e.edge.render_metrics();
    page.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in\n{page}"))
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn concurrent_viewers_of_a_large_object_cost_the_origin_one_fetch_and_ranges_come_from_its_slices()
{
    let origin = TestOrigin::start();
    let e = edge(&origin, EdgeConfig::default());
    let len: u64 = 3 * SLICE + 12_345;
    let path = format!("/size/{len}/film.mp4");
    let target = link(&path, now() + 600, None);
    let whole = expected(0, len - 1);
    std::thread::scope(|s| {
        let viewers: Vec<_> = (0..8)
            .map(|_| s.spawn(|| e.get(HOST, &target, &[])))
            .collect();
        for v in viewers {
            let r = v.join().unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body.len() as u64, len);
            assert!(r.body == whole, "a viewer got other bytes");
        }
    });
    assert_eq!(origin.hits(&path), 1, "one origin fetch for eight viewers");

    for (range, from, to) in [
        ("bytes=0-0", 0, 0),
        ("bytes=4194303-4194304", SLICE - 1, SLICE),
        ("bytes=1000-12583000", 1000, 12_583_000),
        (&format!("bytes={}-", len - 1), len - 1, len - 1),
        ("bytes=-10", len - 10, len - 1),
        (
            &format!("bytes={}-{}", 2 * SLICE, 3 * SLICE - 1),
            2 * SLICE,
            3 * SLICE - 1,
        ),
    ] {
        let r = e.get(HOST, &target, &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.header("cache"), Some("HIT"), "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {from}-{to}/{len}").as_str()),
            "{range}"
        );
        assert!(r.body == expected(from, to), "{range}: other bytes");
    }
    let r = e.get(HOST, &target, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(origin.hits(&path), 1, "every range from the slices");
}

#[test]
fn the_first_byte_of_a_miss_goes_out_as_the_origin_sends_it() {
    let origin = TestOrigin::start();
    let e = edge(&origin, EdgeConfig::default());
    // 1 MB in four pieces 600 ms apart: 1.8 s for the whole body.
    let target =
        link("/drip/slow.bin", now() + 600, None) + "&total=1000000&chunk=250000&every_ms=600";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", e.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let first_body_byte = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the body");
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() > end + 4 {
                break t.elapsed();
            }
        }
    };
    s.read_to_end(&mut got).unwrap();
    let all = t.elapsed();
    assert!(
        first_body_byte < Duration::from_millis(500),
        "the first byte took {first_body_byte:?}"
    );
    assert!(
        all >= Duration::from_millis(1700),
        "the whole body took {all:?}"
    );
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got[end..] == expected(0, 999_999)[..]);
}

#[test]
fn a_restart_keeps_the_cache_on_disk() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("disk-restart");
    let small = link("/size/1000/small.txt", now() + 600, None);
    let large_len = 2 * SLICE + 77;
    let large = link(&format!("/size/{large_len}/large.bin"), now() + 600, None);
    {
        let e = edge(&origin, on_disk(&dir));
        assert_eq!(e.get(HOST, &small, &[]).header("cache"), Some("MISS"));
        assert_eq!(e.get(HOST, &large, &[]).header("cache"), Some("MISS"));
        wait_for("two objects on disk", || {
            metric(&e, "tollgate_disk_objects") == 2
        });
    }
    let e = edge(&origin, on_disk(&dir));
    wait_for("the disk index", || e.edge.disk_ready());
    assert_eq!(
        metric(&e, "tollgate_disk_recovered_objects{result=\"kept\"}"),
        2
    );
    let r = e.get(HOST, &small, &[]);
    assert_eq!((r.status, r.header("cache")), (200, Some("HIT")));
    assert!(r.body == expected(0, 999));
    let r = e.get(HOST, &large, &[]);
    assert_eq!((r.status, r.header("cache")), (200, Some("HIT")));
    assert!(
        r.body == expected(0, large_len - 1),
        "the large body after a restart"
    );
    let r = e.get(HOST, &large, &[("Range", "bytes=4194300-4194400")]);
    assert_eq!(r.status, 206);
    assert!(r.body == expected(4_194_300, 4_194_400));
    assert_eq!(
        origin.hits("/size/1000/small.txt"),
        1,
        "a hit after the restart"
    );
    assert_eq!(
        origin.hits(&format!("/size/{large_len}/large.bin")),
        1,
        "a hit after the restart"
    );
}

#[test]
fn a_damaged_file_on_disk_is_a_miss_never_bad_bytes() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("disk-damage");
    let small = link("/size/1000/small.txt", now() + 600, None);
    let large_len = 2 * SLICE + 77;
    let large_path = format!("/size/{large_len}/large.bin");
    let large = link(&large_path, now() + 600, None);
    {
        let e = edge(&origin, on_disk(&dir));
        e.get(HOST, &small, &[]);
        e.get(HOST, &large, &[]);
        wait_for("two objects on disk", || {
            metric(&e, "tollgate_disk_objects") == 2
        });
    }
    // Flip one byte in the middle of every slice file.
    let mut flipped = 0;
    let mut stack = vec![dir.0.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
            {
                let mut raw = std::fs::read(&p).unwrap();
                let mid = raw.len() / 2 + 8;
                raw[mid] ^= 0x55;
                std::fs::write(&p, raw).unwrap();
                flipped += 1;
            }
        }
    }
    assert_eq!(
        flipped, 4,
        "one slice for the small object, three for the large"
    );
    let e = edge(&origin, on_disk(&dir));
    wait_for("the disk index", || e.edge.disk_ready());
    let r = e.get(HOST, &small, &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.body == expected(0, 999),
        "a damaged small object is fetched again"
    );
    assert_eq!(origin.hits("/size/1000/small.txt"), 2);
    // The large one may be cut short (its head was sent before the damage was found), but
    // every byte it carries is right; the next request gets it whole.
    let r = e.get(HOST, &large, &[]);
    assert!(r.body.len() as u64 <= large_len);
    assert!(
        r.body[..] == expected(0, large_len - 1)[..r.body.len()],
        "a damaged byte reached the viewer"
    );
    let r = e.get(HOST, &large, &[]);
    assert!(r.body == expected(0, large_len - 1), "fetched again whole");
    assert!(metric(&e, "tollgate_disk_errors_total{kind=\"corrupt\"}") >= 2);
}

#[test]
fn an_origin_that_lies_about_its_length_is_never_stored_or_padded() {
    let origin = TestOrigin::start();
    let e = edge(&origin, EdgeConfig::default());
    // Large: streamed as it comes, then cut short; the viewer's body ends early, unpadded.
    let path = format!("/lie/{}/film.mp4", 2 * SLICE);
    let target = link(&path, now() + 600, None);
    for round in 1..=2 {
        let r = e.get(HOST, &target, &[]);
        assert_eq!(r.status, 200);
        assert!(
            (r.body.len() as u64) < 2 * SLICE,
            "round {round}: not padded"
        );
        assert!(r.body == expected(0, r.body.len() as u64 - 1));
        assert_eq!(origin.hits(&path), round, "never stored: fetched again");
    }
    // Small (read whole before answering): a 502, not half a body.
    let path = "/lie/1000/small.txt";
    let r = e.get(HOST, &link(path, now() + 600, None), &[]);
    assert_eq!(r.status, 502);
}

#[test]
fn several_ranges_in_one_request_get_the_whole_body_from_the_slices() {
    let origin = TestOrigin::start();
    let e = edge(&origin, EdgeConfig::default());
    let len = 2 * SLICE + 3;
    let path = format!("/size/{len}/multi.bin");
    let target = link(&path, now() + 600, None);
    assert_eq!(e.get(HOST, &target, &[]).status, 200);
    // RFC 9110 lets a server answer a multi-range request with the whole representation,
    // as the edge did before slices; nginx does the same for a cached response.
    let r = e.get(HOST, &target, &[("Range", "bytes=0-9,4194304-4194313")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache"), Some("HIT"));
    assert!(r.body == expected(0, len - 1));
    assert_eq!(origin.hits(&path), 1);
}
