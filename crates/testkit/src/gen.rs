//! Generated requests for differential tests against nginx: random and adversarial paths,
//! encodings, parameter orders and duplicates, paddings, expiries around now, IPv4 and IPv6
//! clients. Shared by the token crate's and the edge's differential tests.

use std::net::IpAddr;

use tollgate_token::{sign, Key, Target};

use crate::rng::Rng;

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
/// Client addresses in several spellings.
pub const IPS: &[&str] = &[
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

/// One generated request.
pub struct Case {
    /// The request target, byte for byte.
    pub target: Vec<u8>,
    /// The client address, sent as `X-Forwarded-For`.
    pub ip: Option<String>,
    /// Whether it goes to the resource that binds tokens to the client address (type 0).
    pub bound: bool,
}

/// A request signed (or mis-signed) with `key` around `now`.
pub fn gen_case(rng: &mut Rng, key: &Key, now: i64) -> Case {
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

/// The outcome of a differential run: statuses seen from nginx, disagreements, and requests
/// left out because their verdict changed within the second they were sent in.
#[derive(Default)]
pub struct Tally {
    by_status: std::collections::BTreeMap<u16, usize>,
    disagreements: Vec<String>,
    ambiguous: usize,
}

impl Tally {
    /// Records one request: nginx's status and ours.
    pub fn record(&mut self, case: &Case, nginx: u16, ours: u16) {
        *self.by_status.entry(nginx).or_insert(0) += 1;
        if nginx != ours {
            self.disagreements.push(format!(
                "nginx {nginx}, tollgate {ours}: {:?} bound={} xff={:?}",
                String::from_utf8_lossy(&case.target),
                case.bound,
                case.ip
            ));
        }
    }

    /// Records a request whose verdict changed between the clock readings around it.
    pub fn ambiguous(&mut self) {
        self.ambiguous += 1;
    }

    /// Fails on any disagreement, on too many boundary cases, or when the generator did not
    /// exercise every outcome (then agreement would mean little).
    pub fn assert_agreement(&self, total: usize) {
        eprintln!(
            "statuses from nginx: {:?}; ambiguous at a second boundary: {}",
            self.by_status, self.ambiguous
        );
        let d = &self.disagreements;
        assert!(
            d.is_empty(),
            "{} disagreements (of {total}), first ones:\n{}",
            d.len(),
            d[..d.len().min(30)].join("\n")
        );
        assert!(
            self.ambiguous < total / 100,
            "too many boundary cases: {}",
            self.ambiguous
        );
        for status in [200, 400, 403, 410] {
            let n = self.by_status.get(&status).copied().unwrap_or(0);
            assert!(n > 100, "too few {status}: {:?}", self.by_status);
        }
    }
}

/// Requests per differential run: at least 10,000; `TOLLGATE_DIFF_REQUESTS` raises it.
pub fn requests() -> usize {
    std::env::var("TOLLGATE_DIFF_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12_000)
        .max(10_000)
}
