//! The security review's findings, as processes on real sockets: the control plane times out
//! idle, slow-header and slow-body clients, caps its connections and bodies, and still serves
//! long-polls; an edge listens on IPv4 and IPv6 at once with `IPV6_V6ONLY`; a saved snapshot
//! that does not parse is kept aside, logged and reported by `/healthz`; a cap on connections
//! per client address, on the edge and on the control plane.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_testkit::http::{parse_response, request};
use tollgate_testkit::origin::TestOrigin;

use crate::procs::{control, Proc, TempDir};

/// A connection from `source` (in 127.0.0.0/8) to 127.0.0.1:`port`.
fn connect_from(source: Ipv4Addr, port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    sock.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(5),
    )
    .unwrap();
    sock.into()
}

/// Waits up to `limit` for the peer to close `s` (EOF or reset), discarding what it sends;
/// returns how long it took, or `None` if it is still open.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while let Some(left) = limit.checked_sub(start.elapsed()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Reads one response with a `Content-Length` from a keep-alive connection.
fn read_one(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                return got;
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Writes `bytes` one at a time, `every` apart, on a thread, until done or the peer is gone.
fn drip(mut s: TcpStream, bytes: Vec<u8>, every: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for b in bytes {
            std::thread::sleep(every);
            if s.write_all(&[b]).is_err() {
                return;
            }
        }
    })
}

#[test]
fn the_control_plane_closes_idle_and_slowloris_connections_after_the_header_timeout() {
    let data = TempDir::new("ctl-idle");
    let (_ctl, api) = control(&["--data", &data.path("d"), "--header-timeout", "1s"]);
    let limit = Duration::from_secs(5);

    let mut idle = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    // A keep-alive connection after a response: the clock restarts at the response's end.
    let mut kept = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let first = read_one(&mut kept);
    assert!(first.starts_with(b"HTTP/1.1 200"), "{first:?}");
    // Slowloris: a head that never ends, a byte every 200 ms.
    let mut slow = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let dripping = drip(
        slow.try_clone().unwrap(),
        b"X-Slow: ".repeat(10),
        Duration::from_millis(200),
    );

    for (what, s) in [
        ("an idle connection", &mut idle),
        ("an idle keep-alive connection", &mut kept),
        ("a slowloris head", &mut slow),
    ] {
        let took = closed_within(s, limit);
        eprintln!("control, --header-timeout 1s: {what} closed after {took:?} more");
        assert!(took.is_some(), "{what} still open after {limit:?}");
    }
    dripping.join().unwrap();
    // The control plane still answers.
    assert_eq!(api.call("GET", "/cdn/resources", None).0, 200);
}

#[test]
fn with_every_control_connection_held_by_idle_clients_an_api_call_succeeds_after_the_timeout() {
    let data = TempDir::new("ctl-cap");
    let (_ctl, api) = control(&[
        "--data",
        &data.path("d"),
        "--header-timeout",
        "1s",
        "--max-connections",
        "4",
    ]);
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", api.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let (status, body) = api.call("GET", "/cdn/resources", None);
    let took = start.elapsed();
    eprintln!("control, --max-connections 4 held by idle clients: API call answered in {took:?}");
    assert_eq!(status, 200, "{body}");
    // It waited for a slot: the idle clients held them all.
    assert!(took >= Duration::from_millis(500), "answered in {took:?}");
    for s in &mut idle {
        assert!(closed_within(s, Duration::from_secs(5)).is_some());
    }
}

#[test]
fn an_edge_long_poll_longer_than_the_header_timeout_completes() {
    let data = TempDir::new("ctl-poll");
    let (_ctl, api) = control(&["--data", &data.path("d"), "--header-timeout", "1s"]);
    let (s, t) = api.call(
        "POST",
        "/tollgate/tokens",
        Some(&json!({"name": "e", "role": "edge"})),
    );
    assert_eq!(s, 201, "{t}");
    let bearer = format!("Bearer {}", t["token"].as_str().unwrap());
    let auth = [("Authorization", bearer.as_str())];
    // Any version but the current one answers at once, with the current version.
    let (s, snap) = api.call_with("GET", "/edge/v1/config?since=999999&wait=0", None, &auth);
    assert_eq!(s, 200, "{snap}");
    let version = snap["version"].as_u64().unwrap();
    let start = Instant::now();
    let (s, _) = api.call_with(
        "GET",
        &format!("/edge/v1/config?since={version}&wait=3"),
        None,
        &auth,
    );
    let took = start.elapsed();
    eprintln!("control, --header-timeout 1s: a 3 s long-poll answered {s} after {took:?}");
    assert_eq!(s, 304);
    assert!(took >= Duration::from_millis(2500), "answered in {took:?}");
}

#[test]
fn a_control_request_body_that_drips_is_cut_off_after_the_body_timeout() {
    let data = TempDir::new("ctl-drip");
    let (_ctl, api) = control(&["--data", &data.path("d"), "--body-timeout", "1s"]);
    let mut s = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    s.write_all(
        format!(
            "POST /cdn/resources HTTP/1.1\r\nHost: x\r\nAuthorization: APIKey {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            api.token
        )
        .as_bytes(),
    )
    .unwrap();
    let dripping = drip(
        s.try_clone().unwrap(),
        vec![b' '; 60],
        Duration::from_millis(200),
    );
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let took = start.elapsed();
    eprintln!("control, --body-timeout 1s: a dripping body answered after {took:?}");
    assert!(took < Duration::from_secs(5), "still open after {took:?}");
    let r = parse_response(&resp, false).unwrap();
    assert_eq!(r.status, 408, "{:?}", String::from_utf8_lossy(&r.body));
    dripping.join().unwrap();
}

#[test]
fn an_oversized_control_request_body_gets_413() {
    let data = TempDir::new("ctl-big");
    let (_ctl, api) = control(&["--data", &data.path("d")]);
    let big = 1_500_000;
    // Declared: refused on its head, before authentication and before any of it is sent.
    for auth in [
        format!("Authorization: APIKey {}\r\n", api.token),
        String::new(),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
        s.write_all(
            format!(
                "POST /cdn/resources HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
                 Content-Length: {big}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        assert_eq!(parse_response(&resp, false).unwrap().status, 413);
    }
    // Chunked: refused once the limit (1 MiB by default) is passed.
    let mut s = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    let size = (1 << 20) + 1;
    let mut req = format!(
        "POST /cdn/resources HTTP/1.1\r\nHost: x\r\nAuthorization: APIKey {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{size:x}\r\n",
        api.token
    )
    .into_bytes();
    req.extend(std::iter::repeat_n(b' ', size));
    s.write_all(&req).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let r = parse_response(&resp, false).unwrap();
    assert_eq!(r.status, 413, "{:?}", String::from_utf8_lossy(&r.body));
    // A body under the limit is read as before.
    assert_eq!(
        api.call("POST", "/cdn/resources", Some(&json!({"cname": 1})))
            .0,
        400
    );
}

/// Resources with an IP-bound (type 0) link for `cdn.example.com`.
fn ip_bound_resources(dir: &TempDir, origin: u16) -> String {
    let path = dir.path("resources.json");
    let res = json!([{"id": 1, "cname": "cdn.example.com", "origin": format!("127.0.0.1:{origin}"),
                      "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 0}}}]);
    std::fs::write(&path, res.to_string()).unwrap();
    path
}

/// A GET of `target` over `addr`, or the connect error.
fn get_over(addr: SocketAddr, target: &str) -> Result<u16, std::io::Error> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: cdn.example.com\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    parse_response(&resp, false)
        .map(|r| r.status)
        .map_err(std::io::Error::other)
}

/// `tollgate edge --resources FILE` with the `--listen` addresses `listen(port)` for a free
/// port; tried again on another port if one is taken.
fn edge_listening(res: &str, listen: impl Fn(u16) -> Vec<String>) -> (Proc, u16) {
    for _ in 0..5 {
        let port = tollgate_testkit::free_port();
        let addrs = listen(port);
        let mut args = vec!["edge".to_owned(), "--resources".into(), res.into()];
        for l in &addrs {
            args.extend(["--listen".into(), l.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut p = Proc::spawn(&args);
        // A failed bind ends the process: its output ends without the lines.
        let up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for _ in &addrs {
                p.wait_for("tollgate edge: listening on ");
            }
        }));
        if up.is_ok() {
            return (p, port);
        }
    }
    panic!("no edge started in five tries");
}

#[test]
fn an_edge_on_ipv4_and_ipv6_listeners_serves_ip_bound_links_of_each_family() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("dual");
    let res = ip_bound_resources(&dir, origin.port);
    let (_edge, port) = edge_listening(&res, |p| {
        vec![format!("127.0.0.1:{p}"), format!("[::1]:{p}")]
    });
    let exp = tollgate_testkit::now() + 300;
    let v4 = tollgate_testkit::link("/size/10", exp, Some("127.0.0.1"));
    let v6 = tollgate_testkit::link("/size/10", exp, Some("::1"));
    let at4 = SocketAddr::from(([127, 0, 0, 1], port));
    let at6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    assert_eq!(get_over(at4, &v4).unwrap(), 200);
    assert_eq!(get_over(at6, &v6).unwrap(), 200);
    // Each link is bound to its address.
    assert_eq!(get_over(at4, &v6).unwrap(), 403);
    assert_eq!(get_over(at6, &v4).unwrap(), 403);
}

#[test]
fn an_edge_on_the_ipv6_wildcard_only_does_not_take_ipv4_clients() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("v6only");
    let res = ip_bound_resources(&dir, origin.port);
    let (_edge, port) = edge_listening(&res, |p| vec![format!("[::]:{p}")]);
    let v6 = tollgate_testkit::link("/size/10", tollgate_testkit::now() + 300, Some("::1"));
    let at6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    assert_eq!(get_over(at6, &v6).unwrap(), 200);
    // Without IPV6_V6ONLY, Linux would take this one as ::ffff:127.0.0.1.
    let e = get_over(SocketAddr::from(([127, 0, 0, 1], port)), "/").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
}

#[test]
fn a_saved_snapshot_that_does_not_parse_or_validate_is_kept_aside_logged_and_unhealthy() {
    let bad_key = json!({"version": 7, "resources": [{"id": 1, "cname": "cdn.example.com",
        "origin": "127.0.0.1:1", "options": {"secure_key": {"enabled": true, "key": "x", "type": 2}}}]});
    for (text, reason) in [
        ("{\"version\": 3, \"resour".to_owned(), "not a snapshot"),
        (bad_key.to_string(), "invalid"),
    ] {
        let dir = TempDir::new("bad-snap");
        let state = dir.0.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let file = state.join("snapshot.json");
        std::fs::write(&file, &text).unwrap();
        let closed = format!("http://127.0.0.1:{}", tollgate_testkit::free_port());
        let mut edge = Proc::spawn(&[
            "edge",
            "--control",
            &closed,
            "--edge-token",
            "x",
            "--state-dir",
            &state.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ]);
        let said = edge.wait_for("tollgate edge: error: ");
        assert!(said.contains(&file.display().to_string()), "{said}");
        assert!(said.contains(reason), "{said}");
        // Kept aside, byte for byte, never deleted.
        let kept: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("snapshot.json.bad-"))
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(said.contains(&kept[0].display().to_string()), "{said}");
        assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), text);
        assert!(!file.exists());
        let admin = edge.port_after("admin on ");
        let r = request(Ipv4Addr::LOCALHOST, admin, "GET", b"/healthz", &[]).unwrap();
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 503, "{body}");
        assert!(
            body.contains(&file.display().to_string()) && body.contains(reason),
            "{body}"
        );
    }
}

#[test]
fn an_edge_refuses_a_fifth_connection_from_one_address_and_serves_another() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("per-ip");
    let res = ip_bound_resources(&dir, origin.port);
    let mut edge = Proc::spawn(&[
        "edge",
        "--resources",
        &res,
        "--listen",
        "127.0.0.1:0",
        "--max-connections-per-ip",
        "4",
        "--trust-proxy",
        "127.0.0.3/32",
    ]);
    let port = edge.port_after("listening on ");
    let exp = tollgate_testkit::now() + 300;
    let get = |from: Ipv4Addr| {
        let link = tollgate_testkit::link("/size/10", exp, Some(&from.to_string()));
        request(
            from,
            port,
            "GET",
            link.as_bytes(),
            &[("Host", "cdn.example.com")],
        )
    };
    per_address_cap(port, &get);
    // A trusted proxy is not capped.
    let proxy = Ipv4Addr::new(127, 0, 0, 3);
    let _held: Vec<_> = (0..6).map(|_| connect_from(proxy, port)).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(proxy).unwrap().status, 200);
}

#[test]
fn the_control_plane_refuses_a_fifth_connection_from_one_address_and_serves_another() {
    let data = TempDir::new("ctl-per-ip");
    let (_ctl, api) = control(&["--data", &data.path("d"), "--max-connections-per-ip", "4"]);
    let get = |from: Ipv4Addr| {
        request(
            from,
            api.port,
            "GET",
            b"/cdn/resources",
            &[
                ("Host", "x"),
                ("Authorization", &format!("APIKey {}", api.token)),
            ],
        )
    };
    per_address_cap(api.port, &get);
}

/// With four idle connections from 127.0.0.1: a fifth from it is closed unanswered, one from
/// 127.0.0.2 is answered 200, and once one of the four closes 127.0.0.1 is answered again.
fn per_address_cap(
    port: u16,
    get: &dyn Fn(Ipv4Addr) -> Result<tollgate_testkit::http::RawResponse, String>,
) {
    let mut held: Vec<_> = (0..4)
        .map(|_| connect_from(Ipv4Addr::LOCALHOST, port))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let fifth = get(Ipv4Addr::LOCALHOST);
    assert!(fifth.is_err(), "a fifth connection was answered: {fifth:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "not closed at once"
    );
    let other = get(Ipv4Addr::new(127, 0, 0, 2)).unwrap();
    assert_eq!(
        other.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&other.body)
    );
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(Ipv4Addr::LOCALHOST).unwrap().status, 200);
}

/// The soft and hard open-file limits of process `pid`, from `/proc`.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

/// `tollgate control` started by a shell that set the open-file limits with `ulimit`. The
/// caller kills and waits for it; a failed read panics the test, whose end reaps it.
#[allow(clippy::zombie_processes)]
fn control_under_ulimit(ulimit: &str, data: &TempDir) -> (std::process::Child, String) {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit {ulimit} && exec \"$0\" control --listen 127.0.0.1:0 --data \"$1\" \
             --api-token tg_test_token_0123456789abcdef 2>&1"
        ))
        .arg(env!("CARGO_BIN_EXE_tollgate"))
        .arg(data.path("d"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    // The warning, if any, comes before the listener's line (stdout and stderr merged). The
    // control plane always prints that line or ends, so this read cannot hang.
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap() == 0 {
            let status = child.wait();
            panic!("control ended ({status:?}): {seen}");
        }
        seen.push_str(&line);
        if line.contains("Panel and API") {
            return (child, seen);
        }
    }
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_one_and_a_low_one_is_named_at_start() {
    let data = TempDir::new("nofile");
    // A low soft limit under a high hard one (a login shell's usual 1,024): raised.
    let (mut c, out) = control_under_ulimit("-Sn 512", &data);
    let (soft, hard) = open_file_limits(c.id());
    let _ = c.kill();
    let _ = c.wait();
    assert_eq!(soft, hard, "{out}");
    assert!(soft > 512);
    // Default --max-connections is 10,000: a warning only if the hard limit is below it.
    assert_eq!(out.contains("open-file limit"), hard < 10_256, "{out}");
    // Both limits low: named at start, with the way out.
    let (mut c, out) = control_under_ulimit("-n 512", &data);
    let _ = c.kill();
    let _ = c.wait();
    assert!(
        out.contains("the open-file limit is 512, and --max-connections allows 10000 clients")
            && out.contains("ulimit -n"),
        "{out}"
    );
}
