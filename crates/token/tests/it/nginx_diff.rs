//! Differential test: generated requests (random and adversarial paths, encodings, parameter
//! orders and duplicates, paddings, expiries around now, IPv4 and IPv6 clients) go to Debian's
//! nginx configured as the Gcore edge and to tollgate-token; every status must agree.
//!
//! nginx reads its own clock, so each request is bracketed by our clock readings; a request
//! whose verdict differs between the two readings (an expiry exactly at a second boundary) is
//! counted and left out, and the test fails if that happens more than rarely.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_testkit::{http, nginx::GcoreEdge, rng::Rng};
use tollgate_token::{sign, verify_request, Key, Target};

const KEY: &str = "secret_key";
/// At least 10,000 per run; `TOLLGATE_DIFF_REQUESTS` raises it for a longer hunt.
fn requests() -> usize {
    std::env::var("TOLLGATE_DIFF_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12_000)
        .max(10_000)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Path pieces chosen to hit every branch of nginx's URI parser.
const PIECES: &[&str] = &[
    "a",
    "b.jpg",
    "video",
    "seg-1.ts",
    "x.m3u8",
    "/",
    "/",
    "//",
    ".",
    "..",
    "/.",
    "/..",
    "./",
    "../",
    "%2F",
    "%2f",
    "%2E",
    "%2e%2E",
    "%25",
    "%2541",
    "%20",
    "%3F",
    "%3f",
    "%23",
    "%00",
    "%zz",
    "%4",
    "%",
    "#",
    "?",
    "+",
    ";",
    "=",
    "&",
    "~",
    "caf\u{e9}",
    "\u{2603}",
    "%C3%A9",
    "%ff",
    "A",
    "Z",
    "-",
    "_",
    "'",
    "(",
    ")",
    "*",
    "!",
    "$",
    ",",
    ":",
    "@",
    "\\",
    "\t",
    " ",
    "\u{7f}",
    "%0a",
    "%09",
    "%2B",
    "%7E",
    "%41%42",
];

fn gen_path(rng: &mut Rng) -> String {
    let mut p = String::from("/");
    for _ in 0..rng.below(8) {
        // Mostly tame pieces, so that a good share of requests reaches the hash check.
        if rng.chance(2, 3) {
            p.push_str(rng.pick(&["a", "b.jpg", "dir/", "x/", "seg-1.ts", "/"]));
        } else {
            p.push_str(rng.pick(PIECES));
        }
    }
    p
}

// Not 255.255.255.255: nginx's realip parses it with ngx_inet_addr, whose error value is
// INADDR_NONE, so nginx ignores that X-Forwarded-For and keeps the peer address (observed).
const IPS: &[&str] = &[
    "1.2.3.4",
    "127.0.0.1",
    "10.0.0.255",
    "255.255.255.254",
    "0.0.0.0",
    "::1",
    "::",
    "::2",
    "2001:db8::1",
    "2001:DB8:0:0:0:0:0:1",
    "2001:db8:0:0:1:0:0:1",
    "fe80::1:2",
    "::ffff:1.2.3.4",
    "::ffff:7f00:1",
    "::1.2.3.4",
    "::abcd",
    "::101",
    "::ffff:0:1.2.3.4",
    "1::",
    "1:0:0:2:0:0:3:4",
    "0:0:1::",
    "2001:0db8:0000:0000:0000:ff00:0042:8329",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

/// A token for `uri`, then maybe spoiled in one of the ways nginx treats specially.
fn gen_md5(rng: &mut Rng, good: &str) -> Option<String> {
    let mut t = good.to_owned();
    match rng.below(24) {
        0 => return None,
        1 => t = String::new(),
        2 => t.push('='),
        3 => t.push_str("=="),
        4 => t.push_str("==="),
        5 => t.push_str("=x"),
        6 => t.push_str("=,"),
        7 => t.pop().map(|_| ()).unwrap_or(()),
        8 => t.push('A'),
        9 => {
            // Flip the unused low bits of the last character.
            let last = t.pop().unwrap_or('A');
            const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let v = A.find(last).unwrap_or(0);
            t.push(A.as_bytes()[(v & 0x30) | rng.below(16)] as char);
        }
        10 => t = t.replace('-', "+").replace('_', "/"),
        11 => {
            let i = rng.below(t.len().max(1));
            t.replace_range(i..=i.min(t.len() - 1), "B");
        }
        12 => t = format!("{}%{:02X}", &t[..t.len() - 1], t.as_bytes()[t.len() - 1]),
        13 => t.insert(rng.below(t.len()), ','),
        14 => t = t.to_lowercase(),
        _ => {}
    }
    Some(t)
}

fn gen_expires(rng: &mut Rng, now: i64) -> (String, String) {
    // (the value signed, the value sent)
    let e = match rng.below(10) {
        0..=5 => (now + rng.below(7) as i64 - 3).to_string(),
        6 => (now + 86_400).to_string(),
        7 => rng
            .pick(&[
                "0",
                "-5",
                "+99999999999",
                "9223372036854775807",
                "9223372036854775808",
                "",
                "1e10",
                "0x10",
                "00",
                "1",
                "99999999999999999999",
            ])
            .to_string(),
        8 => format!("0{}", now + 100),
        _ => (now - 86_400).to_string(),
    };
    let sent = if rng.chance(1, 12) {
        format!("{}", now + 50)
    } else {
        e.clone()
    };
    (e, sent)
}

struct Case {
    target: Vec<u8>,
    ip: Option<String>,
    bound: bool,
}

fn gen_case(rng: &mut Rng, key: &Key, now: i64) -> Case {
    let path = gen_path(rng);
    let bound = rng.chance(1, 2);
    let ip_text = rng.pick(IPS).to_string();
    let ip: IpAddr = ip_text.parse().expect("generator ip");
    // Sign what nginx will hash: our idea of $uri (the test checks that idea), or sometimes the
    // raw path or another address, to make mismatches.
    let uri = match Target::parse(path.as_bytes()) {
        Ok(t) if rng.chance(9, 10) => t.uri().to_vec(),
        _ => path.as_bytes().to_vec(),
    };
    let sign_ip = if !bound {
        None
    } else if rng.chance(1, 10) {
        Some(rng.pick(IPS).parse().expect("generator ip"))
    } else {
        Some(ip)
    };
    let (signed_exp, sent_exp) = gen_expires(rng, now);
    let good = signed_exp
        .parse::<i64>()
        .ok()
        .and_then(|e| sign(key, e, &uri, sign_ip).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| "AAAAAAAAAAAAAAAAAAAAAA".to_owned());
    let good = if sent_exp.starts_with('0') && sent_exp.len() > 1 && rng.chance(1, 2) {
        // Sign the zero-padded text itself, which nginx hashes raw.
        let padded = tollgate_token::sign::digest(
            sent_exp.as_bytes(),
            &uri,
            sign_ip.map(tollgate_token::RemoteAddr::new).as_ref(),
            key,
        );
        tollgate_token::Token::from_digest(&padded).to_string()
    } else {
        good
    };
    let md5 = gen_md5(rng, &good);
    let mut params: Vec<String> = Vec::new();
    if let Some(m) = md5 {
        let name = rng.pick(&["md5", "md5", "md5", "MD5", "Md5"]);
        params.push(format!("{name}={m}"));
    }
    if !rng.chance(1, 25) {
        let name = rng.pick(&["expires", "expires", "EXPIRES"]);
        params.push(format!("{name}={sent_exp}"));
    }
    if rng.chance(1, 5) {
        params.push(
            rng.pick(&[
                "x=1",
                "md5=AAAAAAAAAAAAAAAAAAAAAA",
                "expires=1",
                "a=%zz",
                "b",
            ])
            .to_string(),
        );
    }
    if rng.chance(1, 3) {
        let a = rng.below(params.len().max(1));
        let b = rng.below(params.len().max(1));
        if a < params.len() && b < params.len() {
            params.swap(a, b);
        }
    }
    let sep = if rng.chance(1, 30) { ";" } else { "&" };
    let mut target = path;
    if !params.is_empty() || rng.chance(1, 2) {
        target.push('?');
        target.push_str(&params.join(sep));
    }
    if rng.chance(1, 40) {
        target.push_str(rng.pick(&["#", "#frag", "&", "&&"]));
    }
    // A request line cannot carry trailing spaces in its target: "GET /a  HTTP/1.1" is the
    // target "/a" followed by two separators (found by a 200,000-request run).
    while target.ends_with(' ') {
        target.pop();
    }
    Case {
        target: target.into_bytes(),
        ip: Some(ip_text),
        bound,
    }
}

fn decide(case: &Case, keys: &[Key], now: i64) -> u16 {
    let ip = if case.bound {
        case.ip.as_deref().map(|s| s.parse().expect("ip"))
    } else {
        None
    };
    match verify_request(&case.target, keys, ip, now) {
        Ok(_) => 200,
        Err(r) => r.status(),
    }
}

#[test]
fn nginx_and_tollgate_agree_on_generated_requests() {
    let mut rng = Rng::from_env("nginx_diff");
    let key = Key::new(KEY).unwrap();
    let keys = [key.clone()];
    let edge = GcoreEdge::start(KEY);
    let mut disagreements = Vec::new();
    let mut ambiguous = 0;
    let mut by_status = std::collections::BTreeMap::new();
    let total = requests();
    for _ in 0..total {
        let case = gen_case(&mut rng, &key, now());
        let port = if case.bound {
            edge.port_type0
        } else {
            edge.port_type2
        };
        let before = now();
        let got = http::get_status(port, &case.target, case.ip.as_deref());
        let after = now();
        let (ours_before, ours_after) = (decide(&case, &keys, before), decide(&case, &keys, after));
        if ours_before != ours_after {
            ambiguous += 1;
            continue;
        }
        let theirs =
            got.unwrap_or_else(|e| panic!("{e} for {:?}", String::from_utf8_lossy(&case.target)));
        *by_status.entry(theirs).or_insert(0) += 1;
        if theirs != ours_before {
            disagreements.push(format!(
                "nginx {theirs}, tollgate {ours_before}: {:?} bound={} xff={:?}",
                String::from_utf8_lossy(&case.target),
                case.bound,
                case.ip
            ));
        }
    }
    eprintln!("statuses from nginx: {by_status:?}; ambiguous at a second boundary: {ambiguous}");
    assert!(
        disagreements.is_empty(),
        "{} disagreements (of {total}), first ones:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(30)].join("\n")
    );
    assert!(
        ambiguous < total / 100,
        "too many boundary cases: {ambiguous}"
    );
    // The generator must exercise every outcome, or the agreement means little.
    for status in [200, 400, 403, 410] {
        assert!(
            by_status.get(&status).copied().unwrap_or(0) > 100,
            "too few {status}: {by_status:?}"
        );
    }
}
