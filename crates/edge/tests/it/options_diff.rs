//! Differential run of Gcore's options against Debian's nginx configured the Gcore way (the
//! reference edge's `secure_link`, then the directive each option is in nginx): the same
//! requests to both, the same answers (status, and the headers in question).
//!
//! - access lists: `valid_referers none ...` + `if ($invalid_referer)`, `if ($http_user_agent
//!   ~* ...)`, `allow`/`deny` (realip from 127.0.0.1), after the token's `if`s;
//! - `static_response_headers` and `cors` `["*"]`: `add_header` with and without `always`;
//! - `limit_bandwidth`: `limit_rate` with `limit_rate_after`;
//! - `stale`: `proxy_cache_use_stale http_404 updating` with `proxy_cache_background_update on`;
//! - `gzipOn`: `gzip on` for a playlist type, `gzip_vary on`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tollgate_edge::{EdgeConfig, TrustedProxies};
use tollgate_testkit::http::{request, RawResponse};
use tollgate_testkit::nginx::Nginx;
use tollgate_testkit::origin::TestOrigin;
use tollgate_testkit::{link, now};

use crate::RunningEdge;

const SECURE: &str = "secure_link $arg_md5,$arg_expires;
      secure_link_md5 \"$secure_link_expires$uri secret_key\";
      if ($secure_link = \"\")  { return 403; }
      if ($secure_link = \"0\") { return 410; }";

/// The four servers of the nginx side, each on its own port.
struct Ports {
    acl: u16,
    headers: u16,
    rate: u16,
    stale: u16,
    gzip: u16,
}

fn nginx(origin: u16, p: &Ports) -> Nginx {
    let (acl, headers, rate, stale, gzip) = (p.acl, p.headers, p.rate, p.stale, p.gzip);
    Nginx::start(&[acl, headers, rate, stale, gzip], |dir| {
        let d = dir.display();
        format!(
            "worker_processes 1; user root; pid {d}/nginx.pid; error_log {d}/error.log warn;
             events {{ worker_connections 256; }}
             http {{ access_log off; server_tokens off; tcp_nopush off;
               proxy_cache_path {d}/cache keys_zone=c:4m use_temp_path=off;
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
               set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;
               proxy_http_version 1.1; proxy_set_header Connection \"\";
               server {{ listen 127.0.0.1:{acl};
                 location / {{ {SECURE}
                   valid_referers none player.example *.school.edu;
                   if ($invalid_referer) {{ return 403; }}
                   if ($http_user_agent ~* wget) {{ return 403; }}
                   allow 203.0.113.0/24; allow 2001:db8:1::/48; deny all;
                   proxy_pass http://127.0.0.1:{origin}; }} }}
               server {{ listen 127.0.0.1:{headers};
                 location / {{ {SECURE}
                   add_header Content-Disposition attachment;
                   add_header Timing-Allow-Origin \"*\" always;
                   add_header Access-Control-Allow-Origin \"*\" always;
                   proxy_pass http://127.0.0.1:{origin}; }} }}
               server {{ listen 127.0.0.1:{rate};
                 location / {{ {SECURE}
                   limit_rate 100k; limit_rate_after 50k;
                   proxy_pass http://127.0.0.1:{origin}; }} }}
               server {{ listen 127.0.0.1:{stale};
                 location / {{ {SECURE}
                   proxy_cache c; proxy_cache_valid 200 1s;
                   proxy_cache_use_stale error timeout http_404 updating;
                   proxy_cache_background_update on;
                   proxy_pass http://127.0.0.1:{origin}; }} }}
               server {{ listen 127.0.0.1:{gzip};
                 location / {{ {SECURE}
                   gzip on; gzip_vary on; gzip_min_length 128;
                   gzip_types application/vnd.apple.mpegurl;
                   proxy_pass http://127.0.0.1:{origin}; }} }} }}"
        )
    })
}

/// The same four, as tollgate resources (one host each) on `origin`.
fn tollgate(origin: u16) -> RunningEdge {
    let o = format!("127.0.0.1:{origin}");
    let sk = serde_json::json!({"enabled": true, "key": "secret_key", "type": 2});
    let json = serde_json::json!([
        {"id": 1, "cname": "acl.example", "origin": o, "options": {"secure_key": sk,
            "referrer_acl": {"enabled": true, "policy_type": "deny",
                "excepted_values": ["player.example", "*.school.edu"]},
            "user_agent_acl": {"enabled": true, "policy_type": "allow",
                "excepted_values": ["~*wget"]},
            "ip_address_acl": {"enabled": true, "policy_type": "deny",
                "excepted_values": ["203.0.113.0/24", "2001:db8:1::/48"]}}},
        {"id": 2, "cname": "headers.example", "origin": o, "options": {"secure_key": sk,
            "static_response_headers": {"enabled": true, "value": [
                {"name": "Content-Disposition", "value": ["attachment"]},
                {"name": "Timing-Allow-Origin", "value": ["*"], "always": true}]},
            "cors": {"enabled": true, "value": ["*"], "always": true}}},
        {"id": 3, "cname": "rate.example", "origin": o, "options": {"secure_key": sk,
            "limit_bandwidth": {"enabled": true, "limit_type": "static",
                "speed": 100, "buffer": 50}}},
        {"id": 4, "cname": "stale.example", "origin": o, "options": {"secure_key": sk,
            "edge_cache_settings": {"enabled": true, "value": "1s"},
            "stale": {"enabled": true, "value": ["error", "timeout", "http_404", "updating"]}}},
        {"id": 5, "cname": "gzip.example", "origin": o, "options": {"secure_key": sk,
            "gzipOn": {"enabled": true, "value": true}}}
    ]);
    RunningEdge::start(
        &json.to_string(),
        EdgeConfig {
            trusted: TrustedProxies(vec!["127.0.0.1".parse().unwrap()]),
            ..EdgeConfig::default()
        },
    )
}

/// The two sides: nginx (a port per server) and tollgate (a host per resource).
struct Sides {
    ports: Ports,
    _nginx: Nginx,
    nginx_origin: TestOrigin,
    edge: RunningEdge,
    tg_origin: TestOrigin,
}

impl Sides {
    fn start() -> Sides {
        let nginx_origin = TestOrigin::start();
        let tg_origin = TestOrigin::start();
        let free = tollgate_testkit::free_port;
        let ports = Ports {
            acl: free(),
            headers: free(),
            rate: free(),
            stale: free(),
            gzip: free(),
        };
        Sides {
            _nginx: nginx(nginx_origin.port, &ports),
            ports,
            edge: tollgate(tg_origin.port),
            nginx_origin,
            tg_origin,
        }
    }

    /// The same request to nginx's `server` and tollgate's `host`.
    fn both(
        &self,
        server: u16,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> (RawResponse, RawResponse) {
        let mut h = vec![("Host", host)];
        h.extend_from_slice(headers);
        let get = |port| request(Ipv4Addr::LOCALHOST, port, "GET", target.as_bytes(), &h);
        (get(server).unwrap(), get(self.edge.port).unwrap())
    }
}

#[test]
fn options_agree_with_nginx_configured_the_gcore_way() {
    let s = Sides::start();
    eprintln!("against {}", Nginx::version());
    let ok = link("/say/film.mp4", now() + 600, None);
    let expired = link("/say/film.mp4", now() - 5, None);

    // Access lists, after the token.
    let cases: &[(&str, &[(&str, &str)])] = &[
        (&ok, &[("X-Forwarded-For", "203.0.113.9")]),
        (&ok, &[("X-Forwarded-For", "2001:db8:1:ff::1")]),
        (&ok, &[("X-Forwarded-For", "198.51.100.1")]),
        (&ok, &[("X-Forwarded-For", "2001:db8:2::1")]),
        (
            &ok,
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("Referer", "https://player.example/w"),
            ],
        ),
        (
            &ok,
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("Referer", "http://A.School.edu:8080/"),
            ],
        ),
        (
            &ok,
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("Referer", "https://school.edu/"),
            ],
        ),
        (
            &ok,
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("Referer", "https://hotlink.example/"),
            ],
        ),
        (
            &ok,
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("Referer", "player.example"),
            ],
        ),
        (
            &ok,
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("User-Agent", "Wget/1.21"),
            ],
        ),
        (
            &ok,
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("User-Agent", "Mozilla/5.0"),
            ],
        ),
        (&expired, &[("X-Forwarded-For", "198.51.100.1")]),
        (
            "/say/film.mp4",
            &[
                ("X-Forwarded-For", "198.51.100.1"),
                ("Referer", "https://x/"),
            ],
        ),
    ];
    for (target, headers) in cases {
        let (theirs, ours) = s.both(s.ports.acl, "acl.example", target, headers);
        assert_eq!(ours.status, theirs.status, "{target} {headers:?}");
    }

    // add_header, with and without always, on the token's refusals and the origin's 404.
    let missing = format!("{}&status=404", link("/say/none", now() + 600, None));
    for target in [ok.as_str(), expired.as_str(), "/say/film.mp4", &missing] {
        let (theirs, ours) = s.both(s.ports.headers, "headers.example", target, &[]);
        assert_eq!(ours.status, theirs.status, "{target}");
        for h in [
            "content-disposition",
            "timing-allow-origin",
            "access-control-allow-origin",
        ] {
            assert_eq!(ours.header(h), theirs.header(h), "{target}: {h}");
        }
    }

    // gzip: the same bytes once decoded, with Vary.
    let playlist = format!(
        "{}&pad=40000&h=Content-Type:%20application/vnd.apple.mpegurl",
        link("/say/vod.m3u8", now() + 600, None)
    );
    let (theirs, ours) = s.both(
        s.ports.gzip,
        "gzip.example",
        &playlist,
        &[("Accept-Encoding", "gzip")],
    );
    for h in ["content-encoding", "vary"] {
        assert_eq!(ours.header(h), theirs.header(h), "gzip: {h}");
    }
    let (a, b) = (gunzip(&theirs.body), gunzip(&ours.body));
    assert!(a.len() >= 40_000);
    assert_eq!(a, b, "nginx's gzip and tollgate's decode to the same bytes");
    eprintln!(
        "gzip of a 40 kB playlist: nginx {} bytes, tollgate {} bytes",
        theirs.body.len(),
        ours.body.len()
    );

    // limit_rate 100k after 50k: 250,000 bytes, 198,800 of them limited. nginx counts whole
    // seconds and grants the current second's budget at once (its `limit_rate * (now - start
    // + 1)`), so it finishes up to a second sooner than the even 1.94 s tollgate keeps to.
    let big = link("/size/250000", now() + 600, None);
    let timed = |port: u16, host: &str| {
        let t0 = Instant::now();
        let r = request(
            Ipv4Addr::LOCALHOST,
            port,
            "GET",
            big.as_bytes(),
            &[("Host", host)],
        )
        .unwrap();
        assert_eq!(r.body.len(), 250_000);
        t0.elapsed()
    };
    let (theirs, ours) = (
        timed(s.ports.rate, "rate.example"),
        timed(s.edge.port, "rate.example"),
    );
    eprintln!("limit_rate: nginx {theirs:?}, tollgate {ours:?}");
    let (o, t) = (ours.as_secs_f64(), theirs.as_secs_f64());
    assert!(
        t > 0.8 && o > 0.8,
        "both limit: nginx {theirs:?}, tollgate {ours:?}"
    );
    assert!((1.8..2.6).contains(&o), "tollgate at 100 KB/s: {ours:?}");
    assert!((o - t).abs() < 1.1, "nginx {theirs:?}, tollgate {ours:?}");

    // proxy_cache_use_stale http_404 updating, background update: a 404 from the origin after
    // expiry is answered from the copy; while a slow refresh runs, at once.
    let live = link("/say/live.m3u8", now() + 600, None);
    let slow = format!("{}&delay_ms=600", link("/say/slow.m3u8", now() + 600, None));
    for target in [&live, &slow] {
        let (theirs, ours) = s.both(s.ports.stale, "stale.example", target, &[]);
        assert_eq!((ours.status, theirs.status), (200, 200));
    }
    // nginx counts in whole seconds of a cached clock: 2.1 s is past 1 s on both.
    std::thread::sleep(Duration::from_millis(2100));
    // Timed to the answer's head: nginx finishes a connection only once its background update
    // has (a known trait of proxy_cache_background_update), though the answer is sent at once.
    let (theirs, ours) = (
        head_after(s.ports.stale, &slow),
        head_after(s.edge.port, &slow),
    );
    assert_eq!((ours.0, theirs.0), (200, 200));
    assert!(
        ours.1 < Duration::from_millis(300) && theirs.1 < Duration::from_millis(300),
        "neither waits on the 600 ms refresh: nginx {:?}, tollgate {:?}",
        theirs.1,
        ours.1
    );
    s.nginx_origin.answer_all_with(Some(404));
    s.tg_origin.answer_all_with(Some(404));
    let (theirs, ours) = s.both(s.ports.stale, "stale.example", &live, &[]);
    assert_eq!(
        (ours.status, theirs.status),
        (200, 200),
        "http_404: the stored copy"
    );
    assert_eq!(ours.body, theirs.body);
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The status of a GET of `target` (on `stale.example`) and how long its head took to arrive.
fn head_after(port: u16, target: &str) -> (u16, Duration) {
    use std::io::{Read, Write};
    let t0 = Instant::now();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {target} HTTP/1.1\r\nHost: stale.example\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
    }
    let status = tollgate_testkit::http::parse_status(&got).unwrap();
    (status, t0.elapsed())
}
