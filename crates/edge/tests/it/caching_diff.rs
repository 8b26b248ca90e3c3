//! Differential run of the caching semantics against Debian's nginx (`proxy_cache`,
//! `proxy_cache_revalidate on`, `proxy_cache_valid 200 301 1h` as tollgate's default hour), each
//! in front of its own scripted origin, the same requests to both: where nginx and RFC 9111
//! agree, the same answers (status, body, and what the origin saw: requests and 304s); where
//! they differ, the RFC's answer is asserted for tollgate and the case says why.

use std::time::Duration;

use tollgate_edge::EdgeConfig;
use tollgate_testkit::http::{request, RawResponse};
use tollgate_testkit::nginx::Nginx;
use tollgate_testkit::origin::TestOrigin;

use crate::{resources, RunningEdge};

const HOST: &str = "cdn.example.com";

/// One step of a case: wait, then a request with these headers. nginx counts lifetimes in
/// whole seconds of a cached clock, so a copy with `max-age=1` may be fresh there for up to
/// two: the waits past one are 2.1 s.
struct Step {
    wait_ms: u64,
    headers: &'static [(&'static str, &'static str)],
}

fn at(wait_ms: u64, headers: &'static [(&'static str, &'static str)]) -> Step {
    Step { wait_ms, headers }
}

/// A case: the origin's headers (for `/say/`), the requests, and whether the origin fails
/// (502) before the last one. `differs`: why nginx's answer is not the RFC's, if it is not.
struct Case {
    name: &'static str,
    status: u16,
    origin: &'static [&'static str],
    echo: Option<&'static str>,
    steps: Vec<Step>,
    fail_last: bool,
    differs: Option<&'static str>,
}

/// What one edge and its origin did for a case.
#[derive(Debug, PartialEq)]
struct Seen {
    answers: Vec<(u16, Vec<u8>)>,
    origin_requests: usize,
    not_modified: usize,
}

const NONE: &[(&str, &str)] = &[];

fn cases() -> Vec<Case> {
    let plain = |name, origin, steps| Case {
        name,
        status: 200,
        origin,
        echo: None,
        steps,
        fail_last: false,
        differs: None,
    };
    vec![
        plain(
            "max-age",
            &["Cache-Control: max-age=60"],
            vec![at(0, NONE), at(0, NONE)],
        ),
        plain(
            "no information: the default hour",
            &[],
            vec![at(0, NONE), at(0, NONE)],
        ),
        plain(
            "no-store",
            &["Cache-Control: no-store"],
            vec![at(0, NONE), at(0, NONE)],
        ),
        plain(
            "private",
            &["Cache-Control: private, max-age=60"],
            vec![at(0, NONE), at(0, NONE)],
        ),
        plain(
            "set-cookie",
            &["Set-Cookie: a=b", "Cache-Control: max-age=60"],
            vec![at(0, NONE), at(0, NONE)],
        ),
        plain(
            "max-age=0",
            &["Cache-Control: max-age=0"],
            vec![at(0, NONE), at(0, NONE)],
        ),
        plain(
            "negative max-age",
            &["Cache-Control: max-age=-5"],
            vec![at(0, NONE), at(0, NONE)],
        ),
        plain(
            "expired: revalidated with a 304",
            &["Cache-Control: max-age=1", "ETag: \"r1\""],
            vec![at(0, NONE), at(2100, NONE), at(0, NONE)],
        ),
        plain(
            "expires in RFC 850 form",
            &["Expires: Thursday, 31-Dec-37 23:59:59 GMT"],
            vec![at(0, NONE), at(0, NONE)],
        ),
        Case {
            status: 302,
            ..plain(
                "302 with max-age",
                &["Cache-Control: max-age=60", "Location: /x"],
                vec![at(0, NONE), at(0, NONE)],
            )
        },
        Case {
            status: 404,
            ..plain(
                "404 with max-age",
                &["Cache-Control: max-age=60"],
                vec![at(0, NONE), at(0, NONE)],
            )
        },
        Case {
            echo: Some("accept-language"),
            ..plain(
                "vary: a copy per variant",
                &["Vary: Accept-Language", "Cache-Control: max-age=60"],
                vec![
                    at(0, &[("Accept-Language", "fr")]),
                    at(0, &[("Accept-Language", "en")]),
                    at(0, &[("Accept-Language", "fr")]),
                    at(0, &[("Accept-Language", "en")]),
                ],
            )
        },
        Case {
            fail_last: true,
            ..plain(
                "s-maxage: never stale",
                &["Cache-Control: s-maxage=1"],
                vec![at(0, NONE), at(2100, NONE)],
            )
        },
        Case {
            fail_last: true,
            ..plain(
                "must-revalidate: never stale",
                &["Cache-Control: max-age=1, must-revalidate"],
                vec![at(0, NONE), at(2100, NONE)],
            )
        },
        Case {
            differs: Some(
                "nginx never stores a no-cache answer; RFC 9111 5.2.2.4 lets a cache store it \
                 and revalidate every use (a 304 instead of the body)",
            ),
            ..plain(
                "no-cache with a validator",
                &["Cache-Control: no-cache", "ETag: \"n1\""],
                vec![at(0, NONE), at(0, NONE), at(0, NONE)],
            )
        },
        Case {
            differs: Some(
                "nginx ignores CDN-Cache-Control; RFC 9213 2.1: a CDN obeys it above Cache-Control",
            ),
            ..plain(
                "CDN-Cache-Control",
                &["Cache-Control: no-store", "CDN-Cache-Control: max-age=60"],
                vec![at(0, NONE), at(0, NONE)],
            )
        },
        Case {
            differs: Some(
                "nginx stores the answer to a request with Authorization; RFC 9111 3.5: only \
                 with public, s-maxage or must-revalidate",
            ),
            ..plain(
                "authorization without public",
                &["Cache-Control: max-age=60"],
                vec![
                    at(0, &[("Authorization", "Bearer x")]),
                    at(0, &[("Authorization", "Bearer x")]),
                ],
            )
        },
        plain(
            "single-quoted max-age",
            &["Cache-Control: max-age='60'"],
            vec![at(0, NONE), at(0, NONE)],
        ),
    ]
}

/// The RFC's answer for the cases where nginx differs: origin requests and 304s.
fn rfc(name: &str) -> (usize, usize) {
    match name {
        "no-cache with a validator" => (3, 2),
        "CDN-Cache-Control" => (1, 0),
        "authorization without public" => (2, 0),
        _ => unreachable!("{name}"),
    }
}

fn run(port: u16, origin: &TestOrigin, n: usize, case: &Case) -> Seen {
    let mut target = format!("/say/case{n}?status={}", case.status);
    for h in case.origin {
        target.push_str("&h=");
        target.push_str(
            &h.replace(' ', "%20")
                .replace('"', "%22")
                .replace('=', "%3D"),
        );
    }
    if let Some(e) = case.echo {
        target.push_str(&format!("&echo={e}"));
    }
    let before = (origin.hits(&target), origin.not_modified());
    let mut answers = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(step.wait_ms));
        if case.fail_last && i + 1 == case.steps.len() {
            origin.answer_all_with(Some(502));
        }
        let mut headers = vec![("Host", HOST)];
        headers.extend_from_slice(step.headers);
        let r: RawResponse = request(
            std::net::Ipv4Addr::LOCALHOST,
            port,
            "GET",
            target.as_bytes(),
            &headers,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        answers.push((r.status, r.body));
    }
    origin.answer_all_with(None);
    Seen {
        answers,
        origin_requests: origin.hits(&target) - before.0,
        not_modified: origin.not_modified() - before.1,
    }
}

#[test]
fn caching_agrees_with_nginx_where_nginx_agrees_with_the_rfc() {
    let (nginx_origin, tg_origin) = (TestOrigin::start(), TestOrigin::start());
    let port = tollgate_testkit::free_port();
    let o = nginx_origin.port;
    let nginx = Nginx::start(&[port], |dir| {
        let d = dir.display();
        format!(
            "worker_processes 1; user root; pid {d}/nginx.pid; error_log {d}/error.log warn;
             events {{ worker_connections 256; }}
             http {{ access_log off;
               proxy_cache_path {d}/cache keys_zone=c:4m use_temp_path=off;
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
               server {{ listen 127.0.0.1:{port};
                 location / {{ proxy_pass http://127.0.0.1:{o}; proxy_http_version 1.1;
                   proxy_set_header Connection \"\"; proxy_cache c; proxy_cache_revalidate on;
                   proxy_cache_valid 200 301 1h; }} }} }}"
        )
    });
    let edge = RunningEdge::start(
        &resources(tg_origin.port, &[(HOST, None)]),
        EdgeConfig::default(),
    );
    let mut differing = 0;
    for (n, case) in cases().iter().enumerate() {
        let theirs = run(port, &nginx_origin, n, case);
        let ours = run(edge.port, &tg_origin, n, case);
        match case.differs {
            None => assert_eq!(ours, theirs, "{}: tollgate / nginx", case.name),
            Some(why) => {
                differing += 1;
                let want = rfc(case.name);
                assert_eq!(
                    (ours.origin_requests, ours.not_modified),
                    want,
                    "{}: tollgate keeps to the RFC ({why})",
                    case.name
                );
                eprintln!(
                    "{}: nginx {}/{} origin requests/304s, tollgate {}/{}: {why}",
                    case.name,
                    theirs.origin_requests,
                    theirs.not_modified,
                    ours.origin_requests,
                    ours.not_modified
                );
            }
        }
    }
    eprintln!(
        "{} cases, {differing} where nginx differs from the RFC",
        cases().len()
    );
    drop(nginx);
}
