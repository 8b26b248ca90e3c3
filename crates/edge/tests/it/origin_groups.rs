//! Origin groups at the edge: several sources tried in turn, backups when the primaries fail,
//! and `use_next` with `proxy_next_upstream` moving a request on (nginx's upstream with
//! `backup` servers and `proxy_next_upstream`).

use std::net::TcpListener;

use serde_json::{json, Value};
use tollgate_edge::EdgeConfig;
use tollgate_testkit::origin::TestOrigin;

use crate::RunningEdge;

const HOST: &str = "cdn.example.com";

/// A port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An edge for one resource (no secure token) fetching from a group of `sources`
/// (`(port, backup)`).
fn edge(sources: &[(u16, bool)], use_next: bool, next_upstream: &[&str]) -> RunningEdge {
    edge_with(sources, use_next, next_upstream, EdgeConfig::default())
}

fn edge_with(
    sources: &[(u16, bool)],
    use_next: bool,
    next_upstream: &[&str],
    config: EdgeConfig,
) -> RunningEdge {
    let sources: Vec<Value> = sources
        .iter()
        .map(|(port, backup)| json!({"source": format!("127.0.0.1:{port}"), "backup": backup}))
        .collect();
    let res = json!([{"id": 1, "cname": HOST, "originGroup": 7,
        "originGroup_detail": {"id": 7, "name": "g", "sources": sources, "use_next": use_next,
            "proxy_next_upstream": next_upstream}}]);
    RunningEdge::start(&res.to_string(), config)
}

fn moved_on(e: &RunningEdge) -> u64 {
    let m = e.edge.render_metrics();
    m.lines()
        .find(|l| l.starts_with("tollgate_origin_next_total{resource=\"1\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tollgate_origin_next_total in\n{m}"))
}

#[test]
fn a_backup_answers_when_the_primary_refuses_connections() {
    let backup = TestOrigin::start();
    let e = edge(
        &[(dead_port(), false), (backup.port, true)],
        true,
        &["error", "timeout"],
    );
    let r = e.get(HOST, "/a", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"origin /a\n");
    assert_eq!(backup.hits("/a"), 1);
    assert_eq!(moved_on(&e), 1);
    // The failed primary is passed over for a while: the next miss goes straight to the
    // backup, moving on from nothing.
    assert_eq!(e.get(HOST, "/b", &[]).status, 200);
    assert_eq!(moved_on(&e), 1);
}

#[test]
fn a_primary_that_does_not_answer_in_time_moves_on_with_timeout_listed() {
    // Connections are accepted by the kernel and never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let backup = TestOrigin::start();
    let config = EdgeConfig {
        origin_timeouts: tollgate_edge::Timeouts {
            read: std::time::Duration::from_millis(300),
            ..EdgeConfig::default().origin_timeouts
        },
        ..EdgeConfig::default()
    };
    let sources = [(silent_port, false), (backup.port, true)];
    let e = edge_with(&sources, true, &["timeout"], config.clone());
    assert_eq!(e.get(HOST, "/t", &[]).status, 200);
    assert_eq!(backup.hits("/t"), 1);
    let only_error = edge_with(&sources, true, &["error"], config);
    assert_eq!(only_error.get(HOST, "/u", &[]).status, 504);
    assert_eq!(backup.hits("/u"), 0);
    drop(silent);
}

#[test]
fn moving_on_stops_once_the_origins_total_time_is_spent() {
    let silent = [
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    ];
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let backup = TestOrigin::start();
    let config = EdgeConfig {
        origin_timeouts: tollgate_edge::Timeouts {
            read: std::time::Duration::from_millis(300),
            total: std::time::Duration::from_millis(500),
            ..EdgeConfig::default().origin_timeouts
        },
        ..EdgeConfig::default()
    };
    let sources = [
        (port(&silent[0]), false),
        (port(&silent[1]), false),
        (backup.port, true),
    ];
    let e = edge_with(&sources, true, &["timeout"], config);
    // 300 ms on the first, 300 more on the second: past the 500 ms, the backup is not tried.
    assert_eq!(e.get(HOST, "/slow", &[]).status, 504);
    assert_eq!(backup.hits("/slow"), 0);
    assert_eq!(moved_on(&e), 1);
}

#[test]
fn without_use_next_a_failure_is_answered_and_the_source_passed_over_after() {
    let backup = TestOrigin::start();
    let e = edge(
        &[(dead_port(), false), (backup.port, true)],
        false,
        &["error"],
    );
    assert_eq!(e.get(HOST, "/a", &[]).status, 502);
    assert_eq!(backup.hits("/a"), 0, "one source per request");
    // As nginx marks a failed server down (max_fails=1, fail_timeout=10s), the backup serves.
    let r = e.get(HOST, "/a", &[]);
    assert_eq!((r.status, backup.hits("/a")), (200, 1), "{r:?}");
    assert_eq!(moved_on(&e), 0);
}

#[test]
fn listed_statuses_move_on_and_others_are_answered() {
    let primary = TestOrigin::start();
    let backup = TestOrigin::start();
    primary.answer_all_with(Some(503));
    let listed = edge(
        &[(primary.port, false), (backup.port, true)],
        true,
        &["http_503"],
    );
    let r = listed.get(HOST, "/x", &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"origin /x\n".as_slice())
    );
    assert_eq!((primary.hits("/x"), backup.hits("/x")), (1, 1));

    let unlisted = edge(
        &[(primary.port, false), (backup.port, true)],
        true,
        &["http_500"],
    );
    assert_eq!(unlisted.get(HOST, "/y", &[]).status, 503);
    assert_eq!(backup.hits("/y"), 0);
    // A status answer is an answer: the primary is not passed over for the next request.
    assert_eq!(unlisted.get(HOST, "/z", &[]).status, 503);
    assert_eq!(primary.hits("/z"), 1);
}

#[test]
fn primaries_share_the_misses_and_disabled_sources_get_none() {
    let (a, b, off) = (
        TestOrigin::start(),
        TestOrigin::start(),
        TestOrigin::start(),
    );
    let sources = json!([
        {"source": format!("127.0.0.1:{}", a.port)},
        {"source": format!("127.0.0.1:{}", off.port), "enabled": false},
        {"source": format!("127.0.0.1:{}", b.port)},
    ]);
    let res = json!([{"id": 1, "cname": HOST, "originGroup": 7,
        "originGroup_detail": {"id": 7, "name": "g", "sources": sources}}]);
    let e = RunningEdge::start(&res.to_string(), EdgeConfig::default());
    for i in 0..10 {
        assert_eq!(e.get(HOST, &format!("/n{i}"), &[]).status, 200);
    }
    let count = |o: &TestOrigin| (0..10).map(|i| o.hits(&format!("/n{i}"))).sum::<usize>();
    assert_eq!((count(&a), count(&b), count(&off)), (5, 5, 0));
}
