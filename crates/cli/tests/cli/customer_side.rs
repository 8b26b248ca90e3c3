//! The customer's side. The link generators in `snippets/` (PHP, Python, Node.js, shell with
//! OpenSSL), run by Debian's interpreters for both token types and for paths with spaces,
//! non-ASCII and reserved characters: every link is fetched through a running `tollgate edge`
//! and must be served. The same links pass `tollgate verify` (an origin checking tokens itself),
//! tampered ones do not. And origin protection: Debian's nginx as the origin with the rule from
//! `docs/origin/nginx-origin.conf` refuses a direct request and serves the edge, which adds the
//! header from `staticRequestHeaders`.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::json;
use tollgate_control::snippets::{render, Values};
use tollgate_testkit::http::request;
use tollgate_testkit::nginx::Nginx;
use tollgate_testkit::origin::TestOrigin;

use crate::procs::{until, Proc, TempDir};
use crate::{err, tollgate};

fn run(lang: &str, program: &str) -> String {
    tollgate_testkit::tools::run_snippet(lang, program)
}

fn start_edge(dir: &TempDir, resources: serde_json::Value) -> (Proc, u16) {
    let file = dir.path("resources.json");
    std::fs::write(&file, resources.to_string()).unwrap();
    let mut p = Proc::spawn(&["edge", "--resources", &file, "--listen", "127.0.0.1:0"]);
    let port = p.port_after("listening on ");
    (p, port)
}

const LANGS: [&str; 4] = ["php", "python", "node", "sh"];

#[test]
fn every_snippet_makes_links_the_edge_serves() {
    let origin = TestOrigin::start();
    let dir = TempDir::new("snippets");
    let o = format!("127.0.0.1:{}", origin.port);
    let (_edge, port) = start_edge(
        &dir,
        json!([
            {"id": 1, "cname": "ip.example.com", "origin": o,
             "options": {"secure_key": {"enabled": true, "key": "ip_key_1234", "type": 0}}},
            {"id": 2, "cname": "noip.example.com", "origin": o,
             "options": {"secure_key": {"enabled": true, "key": "noip'key$1", "type": 2}}},
        ]),
    );
    let paths = [
        "/size/100/plain.bin",
        "/size/100/my film.mp4",
        "/size/100/видео ü.mp4",
        "/size/100/a+b&c=d;e.txt",
    ];
    let mut checked = 0;
    for lang in LANGS {
        for (host, key, ip) in [
            ("ip.example.com", "ip_key_1234", Some("127.0.0.1")),
            ("noip.example.com", "noip'key$1", None),
        ] {
            for path in paths {
                let base = format!("http://{host}");
                let url = run(
                    lang,
                    &render(&Values {
                        key,
                        path,
                        lifetime: 300,
                        window: 0,
                        ip,
                        base: &base,
                    })
                    .for_lang(lang),
                );
                let target = url
                    .strip_prefix(&base)
                    .unwrap_or_else(|| panic!("{lang}: {url}"));
                let got = request(
                    Ipv4Addr::LOCALHOST,
                    port,
                    "GET",
                    target.as_bytes(),
                    &[("Host", host)],
                )
                .unwrap();
                assert_eq!(got.status, 200, "{lang} {host} {path}: {url}");
                if ip.is_some() {
                    let other = request(
                        Ipv4Addr::new(127, 0, 0, 2),
                        port,
                        "GET",
                        target.as_bytes(),
                        &[("Host", host)],
                    )
                    .unwrap();
                    assert_eq!(
                        other.status, 403,
                        "{lang}: a type-0 link from another address"
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 32);
}

#[test]
fn expiry_windows_give_one_link_per_window() {
    for lang in LANGS {
        let program = render(&Values {
            key: "secret_key",
            path: "/a.mp4",
            lifetime: 300,
            window: 3600,
            ip: None,
            base: "http://cdn.example.com",
        })
        .for_lang(lang);
        let (a, b) = (run(lang, &program), run(lang, &program));
        let expires: i64 = a.rsplit("expires=").next().unwrap().parse().unwrap();
        let now = tollgate_testkit::now();
        assert_eq!(expires % 3600, 0, "{lang}: {a}");
        assert!(
            expires >= now + 300 && expires < now + 300 + 3600 + 5,
            "{lang}: {a}"
        );
        // Two page views a moment apart get the same link, unless a window edge fell between.
        if a != b {
            let later: i64 = b.rsplit("expires=").next().unwrap().parse().unwrap();
            assert_eq!(later, expires + 3600, "{lang}: {a} then {b}");
        }
    }
}

#[test]
fn an_origin_checks_links_itself_with_tollgate_verify() {
    let program = render(&Values {
        key: "secret_key",
        path: "/private/report 2026.pdf",
        lifetime: 60,
        window: 0,
        ip: Some("203.0.113.9"),
        base: "https://origin.example.com",
    })
    .for_lang("php");
    let url = run("php", &program);
    let ok = tollgate(
        &["verify", "--key", "secret_key", "--ip", "203.0.113.9", &url],
        None,
    );
    assert_eq!(ok.status.code(), Some(0), "{}", err(&ok));
    let from_elsewhere = tollgate(
        &[
            "verify",
            "--key",
            "secret_key",
            "--ip",
            "203.0.113.10",
            &url,
        ],
        None,
    );
    assert_eq!(from_elsewhere.status.code(), Some(1));
    let stretched = url.replace("expires=", "expires=9");
    assert_eq!(
        tollgate(
            &[
                "verify",
                "--key",
                "secret_key",
                "--ip",
                "203.0.113.9",
                &stretched
            ],
            None
        )
        .status
        .code(),
        Some(1)
    );
}

#[test]
fn origin_refuses_direct_requests_and_serves_the_edge() {
    let rule = std::fs::read_to_string(
        tollgate_testkit::repo_root().join("docs/origin/nginx-origin.conf"),
    )
    .unwrap();
    let secret = rule
        .lines()
        .find(|l| l.starts_with("if ("))
        .and_then(|l| l.split('"').nth(1))
        .expect("the rule's value")
        .to_owned();
    assert_eq!(secret, "change-me-to-a-long-random-value");
    let port = tollgate_testkit::free_port();
    let nginx = Nginx::start(&[port], |dir| {
        std::fs::create_dir_all(dir.join("www/videos")).unwrap();
        std::fs::write(dir.join("www/videos/a.mp4"), b"movie bytes").unwrap();
        format!(
            "events {{}}\nhttp {{\n access_log off;\n server {{\n  listen 127.0.0.1:{port};\n  root {root};\n  location / {{\n{rule}\n  }}\n }}\n}}\n",
            root = dir.join("www").display()
        )
    });
    let direct = request(
        Ipv4Addr::LOCALHOST,
        port,
        "GET",
        b"/videos/a.mp4",
        &[("Host", "origin.example.com")],
    )
    .unwrap();
    assert_eq!(direct.status, 403, "a direct request is refused");

    let dir = TempDir::new("origin-protection");
    let (_edge, edge) = start_edge(
        &dir,
        json!([
            {"id": 1, "cname": "cdn.example.com", "origin": format!("127.0.0.1:{port}"),
             "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2},
                         "staticRequestHeaders": {"enabled": true, "value": {"X-CDN-Auth": secret}}}},
        ]),
    );
    let link = tollgate_testkit::link("/videos/a.mp4", tollgate_testkit::now() + 60, None);
    let mut got = None;
    until(Duration::from_secs(5), "edge up", || {
        got = request(
            Ipv4Addr::LOCALHOST,
            edge,
            "GET",
            link.as_bytes(),
            &[("Host", "cdn.example.com")],
        )
        .ok();
        got.is_some()
    });
    let got = got.unwrap();
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"movie bytes"[..]),
        "through the edge"
    );
    drop(nginx);
}
