//! `tollgate edge` as a process: SIGHUP reload under load without a failed request, a broken
//! file refused on reload, graceful stop on SIGTERM, no transparent huge pages.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_testkit::http::request;
use tollgate_testkit::origin::TestOrigin;

fn resources(origin: u16, extra_hosts: usize) -> String {
    let mut items = vec![serde_json::json!({
        "id": 1, "cname": "cdn.example.com", "origin": format!("127.0.0.1:{origin}"),
        "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}}
    })];
    for i in 0..extra_hosts {
        items.push(serde_json::json!({
            "id": i + 2, "cname": format!("new{i}.example.com"), "origin": format!("127.0.0.1:{origin}"),
            "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}}
        }));
    }
    serde_json::Value::Array(items).to_string()
}

fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn link(path: &str) -> String {
    tollgate_testkit::link(path, tollgate_testkit::now() + 300, None)
}

/// Starts the edge and returns it with its port, its admin port and a channel of its stderr
/// lines.
fn start(res: &std::path::Path) -> (Child, u16, u16, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["edge", "--resources"])
        .arg(res)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let port_after = |marker: &str| -> u16 {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let addr = line
            .split(marker)
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"));
        let addr = addr.split(' ').next().unwrap();
        addr.rsplit(':').next().unwrap().parse().unwrap()
    };
    let port = port_after("listening on ");
    let admin = port_after("admin on ");
    (child, port, admin, rx)
}

#[test]
fn sighup_reload_under_load_fails_no_request_and_sigterm_finishes_in_flight() {
    let origin = TestOrigin::start();
    let dir = crate::procs::TempDir::new("reload");
    let res = dir.0.join("resources.json");
    write_atomically(&res, &resources(origin.port, 0));
    let (mut child, port, admin, logs) = start(&res);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|w| {
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let target = link(&format!("/size/100/{w}-{}", i % 40));
                    let r = request(
                        std::net::Ipv4Addr::LOCALHOST,
                        port,
                        "GET",
                        target.as_bytes(),
                        &[("Host", "cdn.example.com")],
                    );
                    match r {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 1;
                }
            })
        })
        .collect();
    for n in 1..=5 {
        std::thread::sleep(Duration::from_millis(300));
        write_atomically(&res, &resources(origin.port, n));
        signal(&child, "-HUP");
    }
    // A broken file is refused and the edge keeps the last good resources.
    std::thread::sleep(Duration::from_millis(300));
    write_atomically(&res, "[{\"id\": 1, \"cname\": ");
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for h in load {
        h.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 100, "too little load: {ok}");
    assert_eq!(
        failed, 0,
        "{failed} requests failed during reloads ({ok} succeeded)"
    );

    let newest = request(
        std::net::Ipv4Addr::LOCALHOST,
        port,
        "GET",
        link("/n.txt").as_bytes(),
        &[("Host", "new4.example.com")],
    )
    .unwrap();
    assert_eq!(newest.status, 200, "the last reload did not take effect");
    let health = request(
        std::net::Ipv4Addr::LOCALHOST,
        admin,
        "GET",
        b"/healthz",
        &[],
    )
    .unwrap();
    assert_eq!((health.status, &health.body[..]), (200, &b"ok\n"[..]));
    let metrics = request(
        std::net::Ipv4Addr::LOCALHOST,
        admin,
        "GET",
        b"/metrics",
        &[],
    )
    .unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"tollgate_requests_total{resource="1",outcome="hit",reason=""}"#),
        "{text}"
    );
    assert!(
        text.contains("tollgate_origin_latency_seconds_bucket"),
        "{text}"
    );
    // Prometheus's own checker reads the page: format, HELP/TYPE, naming conventions.
    let mut check =
        std::process::Command::new(tollgate_testkit::tools::require("promtool", "prometheus"))
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), &metrics.body).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let lines: Vec<String> = logs.try_iter().collect();
    assert_eq!(
        lines.iter().filter(|l| l.contains("reloaded")).count(),
        5,
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("reload refused")),
        "{lines:?}"
    );

    // SIGTERM while a request waits on a slow origin (3 s): it still completes.
    let slow = std::thread::spawn(move || {
        let target = link("/slow/last.txt");
        request(
            std::net::Ipv4Addr::LOCALHOST,
            port,
            "GET",
            target.as_bytes(),
            &[("Host", "cdn.example.com")],
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let slow = slow.join().unwrap().unwrap();
    assert_eq!(slow.status, 200, "the request in flight was dropped");
}

#[test]
fn the_edge_runs_without_transparent_huge_pages() {
    // mimalloc asks for them, and their first touch stalls a worker (docs/architecture.md).
    let dir = crate::procs::TempDir::new("edge-thp");
    let res = dir.0.join("resources.json");
    std::fs::write(&res, resources(1, 0)).unwrap();
    let (mut child, ..) = start(&res);
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .unwrap_or_else(|| panic!("no THP_enabled in /proc/PID/status (kernel 5.0+):\n{status}"));
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
