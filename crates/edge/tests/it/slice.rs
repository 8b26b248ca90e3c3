//! Gcore's `slice` option: large files fetched from the origin by Range, one 4 MiB slice at a
//! time, so a seek costs the origin the slices it covers; an origin that ignores Range still
//! gets its body stored (as it streams); an object that changes at the origin between slices
//! is never served mixed.

use std::time::Duration;

use tollgate_edge::EdgeConfig;
use tollgate_testkit::origin::{file_byte, pattern, TestOrigin};
use tollgate_testkit::{link, now, TempDir};

use crate::{resources, RunningEdge};

const HOST: &str = "cdn.example.com";
const SLICE: u64 = 4 << 20;

fn sliced_edge(origin: &TestOrigin, config: EdgeConfig) -> RunningEdge {
    let mut res: serde_json::Value =
        serde_json::from_str(&resources(origin.port, &[(HOST, Some(2))])).unwrap();
    res[0]["options"]["slice"] = serde_json::json!({"enabled": true, "value": true});
    RunningEdge::start(&res.to_string(), config)
}

fn on_disk(dir: &TempDir) -> EdgeConfig {
    EdgeConfig {
        disk: Some((dir.0.clone(), 1 << 30)),
        ..EdgeConfig::default()
    }
}

fn file(version: u16, from: u64, to: u64) -> Vec<u8> {
    (from..=to).map(|o| file_byte(version, o)).collect()
}

#[test]
fn a_seek_costs_the_origin_the_slices_it_covers_and_twenty_viewers_one_fetch_per_slice() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("slice-seek");
    let e = sliced_edge(&origin, on_disk(&dir));
    let len: u64 = 10 * SLICE + (2 << 20);
    let path = format!("/file/{len}/film.mp4");
    let target = link(&path, now() + 600, None);

    // The last megabyte: the last slice alone is fetched.
    let from = len - (1 << 20);
    let r = e.get(HOST, &target, &[("Range", &format!("bytes={from}-"))]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("cache"), Some("MISS"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {from}-{}/{len}", len - 1).as_str())
    );
    assert!(r.body == file(0, from, len - 1), "other bytes");
    assert_eq!(origin.hits(&path), 1, "one slice asked for");

    // A seek across a slice boundary in the middle: two more slices.
    let (a, b) = (4 * SLICE - 10, 4 * SLICE + 10);
    let r = e.get(HOST, &target, &[("Range", &format!("bytes={a}-{b}"))]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("cache"), Some("HIT"), "the object is known");
    assert!(r.body == file(0, a, b));
    assert_eq!(origin.hits(&path), 3);

    // Twenty viewers of the whole: each missing slice fetched once for all of them.
    let whole = file(0, 0, len - 1);
    std::thread::scope(|s| {
        let viewers: Vec<_> = (0..20)
            .map(|_| s.spawn(|| e.get(HOST, &target, &[])))
            .collect();
        for v in viewers {
            let r = v.join().unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body.len() as u64, len);
            assert!(r.body == whole, "a viewer got other bytes");
        }
    });
    assert_eq!(origin.hits(&path), 11, "each of the 11 slices once");
    let r = e.get(HOST, &target, &[]);
    assert!(r.body == whole);
    assert_eq!(origin.hits(&path), 11, "then all from the cache");
    drop(e);

    // A restart keeps the slices (the object is sparse on disk, and whole by now).
    let e = sliced_edge(&origin, on_disk(&dir));
    let ready = std::time::Instant::now();
    while !e.edge.disk_ready() {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "disk never ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = e.get(HOST, &target, &[("Range", "bytes=0-99")]);
    assert_eq!(r.header("cache"), Some("HIT"));
    assert!(r.body == file(0, 0, 99));
    let r = e.get(HOST, &target, &[]);
    assert!(r.body == whole);
    assert_eq!(
        origin.hits(&path),
        11,
        "nothing fetched again after the restart"
    );
}

#[test]
fn a_sparse_object_on_disk_fetches_after_a_restart_only_the_slices_it_lacks() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("slice-restart");
    let len: u64 = 6 * SLICE;
    let path = format!("/file/{len}/course.mp4");
    let target = link(&path, now() + 600, None);
    {
        let e = sliced_edge(&origin, on_disk(&dir));
        let r = e.get(HOST, &target, &[("Range", "bytes=8388608-8388707")]);
        assert!(r.body == file(0, 2 * SLICE, 2 * SLICE + 99));
        // The object reaches the disk once its first slice is written there.
        let t = std::time::Instant::now();
        while !e.edge.render_metrics().contains("tollgate_disk_objects 1") {
            assert!(t.elapsed() < Duration::from_secs(30), "never committed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let e = sliced_edge(&origin, on_disk(&dir));
    let t = std::time::Instant::now();
    while !e.edge.disk_ready() {
        assert!(t.elapsed() < Duration::from_secs(30), "disk never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = e.get(HOST, &target, &[("Range", "bytes=8388608-8388707")]);
    assert_eq!(r.header("cache"), Some("HIT"), "the slice from disk");
    assert_eq!(origin.hits(&path), 1);
    let r = e.get(HOST, &target, &[("Range", "bytes=0-9")]);
    assert_eq!(r.status, 206);
    assert!(r.body == file(0, 0, 9));
    assert_eq!(origin.hits(&path), 2, "the missing slice fetched by Range");
}

#[test]
fn an_object_changed_at_the_origin_between_slices_is_never_served_mixed() {
    let origin = TestOrigin::start();
    let e = sliced_edge(&origin, EdgeConfig::default());
    let len: u64 = 3 * SLICE;
    let path = format!("/file/{len}/lecture.mp4");
    let target = link(&path, now() + 600, None);
    let r = e.get(HOST, &target, &[("Range", "bytes=0-99")]);
    assert!(r.body == file(0, 0, 99));

    // The file changes; a viewer of the whole gets the first slice (stored) and then must
    // not get the second slice of the new version.
    origin.change_files();
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.status, 200, "the answer began before the change was seen");
    assert!(
        (r.body.len() as u64) < len,
        "the body ends early rather than mix versions"
    );
    assert!(
        r.body[..] == file(0, 0, r.body.len() as u64 - 1)[..],
        "every byte sent is of the first version"
    );

    // The stored slices are dropped: the next viewer gets the new version whole.
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache"), Some("MISS"));
    assert!(r.body == file(1, 0, len - 1), "the new version, whole");
}

#[test]
fn an_origin_that_ignores_range_is_stored_whole_as_it_streams() {
    let origin = TestOrigin::start();
    let e = sliced_edge(&origin, EdgeConfig::default());
    let len: u64 = 2 * SLICE + 5;
    // `/size/` answers every request with a 200 of the whole body.
    let path = format!("/size/{len}/norange.bin");
    let target = link(&path, now() + 600, None);
    let r = e.get(HOST, &target, &[("Range", "bytes=4194304-4194313")]);
    assert_eq!(r.status, 206);
    let want: Vec<u8> = (SLICE..SLICE + 10).map(pattern).collect();
    assert!(r.body == want);
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache"), Some("HIT"));
    assert_eq!(r.body.len() as u64, len);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(i as u64)));
    assert_eq!(origin.hits(&path), 1, "stored from the one 200");
}

#[test]
fn small_objects_and_errors_with_the_slice_option() {
    let origin = TestOrigin::start();
    let e = sliced_edge(&origin, EdgeConfig::default());
    // Smaller than a slice: one request answers it all, kept whole.
    let path = "/file/1000/small.txt";
    let target = link(path, now() + 600, None);
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == file(0, 0, 999));
    let r = e.get(HOST, &target, &[("Range", "bytes=10-19")]);
    assert_eq!((r.status, r.header("cache")), (206, Some("HIT")));
    assert_eq!(origin.hits(path), 1);

    // An empty file (its Range gets a 416): fetched without a range.
    let path = "/file/0/empty";
    let r = e.get(HOST, &link(path, now() + 600, None), &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    // A range past the end of a file not yet cached: 416 from the edge, as from nginx.
    let path = format!("/file/{}/past.bin", SLICE + 1);
    let target = link(&path, now() + 600, None);
    let r = e.get(HOST, &target, &[("Range", "bytes=99999999-")]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", SLICE + 1).as_str())
    );

    // Not found at the origin: its 404, whatever the range.
    let target = link("/say/gone", now() + 600, None) + "&status=404";
    let r = e.get(HOST, &target, &[("Range", "bytes=0-9")]);
    assert_eq!(r.status, 404);
}

#[test]
fn a_slice_of_a_response_that_may_not_be_stored_is_never_passed_off_as_the_answer() {
    let origin = TestOrigin::start();
    let e = sliced_edge(&origin, EdgeConfig::default());
    let len: u64 = 2 * SLICE + 10;
    // `max_age=0`: the origin's answer may not be stored.
    let path = format!("/file/{len}/private.bin");
    let target = link(&path, now() + 600, None) + "&max_age=0";
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.status, 200, "the whole, not the slice the edge asked for");
    assert!(r.body == file(0, 0, len - 1));
    let r = e.get(HOST, &target, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{len}").as_str())
    );
    assert!(
        r.body == file(0, 100, 199),
        "the viewer's range, not the slice's"
    );
}

#[test]
fn a_range_past_the_end_costs_the_origin_one_slice_not_the_file() {
    let origin = TestOrigin::start();
    let e = sliced_edge(&origin, EdgeConfig::default());
    let len: u64 = 8 * SLICE;
    let path = format!("/file/{len}/seek.bin");
    let target = link(&path, now() + 600, None);
    let before = origin.body_bytes();
    let r = e.get(HOST, &target, &[("Range", &format!("bytes={}-", len + 5))]);
    assert_eq!(r.status, 416);
    // The first slice's fill runs on after the answer: wait for it, then for anything more.
    let t = std::time::Instant::now();
    while origin.body_bytes() - before < SLICE && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        origin.body_bytes() - before,
        SLICE,
        "the first slice gave the length"
    );
}
