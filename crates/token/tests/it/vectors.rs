//! Frozen vectors: checked offline against tollgate-token, and (for the nginx ones) sent to a
//! real nginx again so they cannot drift from what they claim to record.

use std::net::IpAddr;

use tollgate_testkit::{http, nginx::GcoreEdge, vectors};
use tollgate_token::{sign, verify_request, Key};

#[test]
fn gcore_doc_examples() {
    let v = vectors::doc_vectors();
    assert!(v.source.contains("Gcore"));
    for c in &v.cases {
        let key = Key::new(&c.key).unwrap();
        let ip: Option<IpAddr> = c.ip.as_deref().map(|s| s.parse().unwrap());
        let t = sign(&key, c.expires, c.path.as_bytes(), ip).unwrap();
        assert_eq!(t.as_str(), c.token, "{}", c.name);
        let expect_hashed = format!(
            "{}{}{} {}",
            c.expires,
            c.path,
            c.ip.as_deref().unwrap_or(""),
            c.key
        );
        assert_eq!(expect_hashed, c.hashed, "{}", c.name);
    }
}

fn ip_of(c: &vectors::StatusCase) -> Option<IpAddr> {
    c.ip.as_deref().map(|s| s.parse().expect("vector ip"))
}

#[test]
fn tollgate_agrees_with_recorded_statuses() {
    let v = vectors::status_vectors();
    let keys = [Key::new(&v.key).unwrap()];
    let mut wrong = Vec::new();
    for c in &v.cases {
        let got = match verify_request(c.target.as_bytes(), &keys, ip_of(c), v.now) {
            Ok(_) => 200,
            Err(r) => r.status(),
        };
        if got != c.status {
            wrong.push(format!("{}: recorded {}, tollgate {got}", c.name, c.status));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn nginx_agrees_with_recorded_statuses() {
    let v = vectors::status_vectors();
    let edge = GcoreEdge::start(&v.key);
    let mut wrong = Vec::new();
    for c in &v.cases {
        let port = if c.ip.is_some() {
            edge.port_type0
        } else {
            edge.port_type2
        };
        match http::get_status(port, c.target.as_bytes(), c.ip.as_deref()) {
            Ok(s) if s == c.status => {}
            Ok(s) => wrong.push(format!("{}: recorded {}, nginx {s}", c.name, c.status)),
            Err(e) => wrong.push(format!("{}: {e}", c.name)),
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        GcoreEdge::version(),
        wrong.join("\n")
    );
}
