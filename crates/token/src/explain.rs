//! Explaining a decision in words: what `tollgate verify` prints.

use std::net::IpAddr;

use crate::addr::RemoteAddr;
use crate::key::Key;
use crate::sign::{digest, Token};
use crate::target::{Normalisation, Target};
use crate::verify::{verify_as, LinkParams, Refusal, Verified};

/// Everything `verify` looked at, for a person to read.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The decision, exactly as [`crate::verify_request`] returns it.
    pub outcome: Result<Verified, Refusal>,
    /// The raw path before `?`, as received (lossy UTF-8).
    pub raw_path: String,
    /// `$uri` after normalisation (lossy UTF-8); `None` when the target is a 400.
    pub uri: Option<String>,
    /// What normalisation changed.
    pub changes: Normalisation,
    /// The `md5` value given (lossy UTF-8).
    pub given_token: Option<String>,
    /// The `expires` value given.
    pub given_expires: Option<String>,
    /// For each key, in order: the hashed string with the key masked, and the token it gives.
    pub expected: Vec<(String, Token)>,
    /// The client address hashed, when one was given.
    pub client: Option<RemoteAddr>,
    /// The time the decision was made at.
    pub now: i64,
}

/// The decision in short: what `tollgate verify --json` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 200, or the status the edge answers with (400, 403, 410).
    pub status: u16,
    /// `valid`, or the refusal's reason code.
    pub reason: &'static str,
    /// One sentence saying why.
    pub detail: String,
    /// The key that matched, counting from 1 in the order the keys were given.
    pub key: Option<usize>,
}

impl Explanation {
    /// The decision in short, with a hint when a mismatch may come from a missing client
    /// address.
    pub fn verdict(&self) -> Verdict {
        match &self.outcome {
            Ok(v) => Verdict {
                status: 200,
                reason: "valid",
                detail: format!(
                    "valid: signed with key {} ({}), expires in {} s",
                    v.key_index + 1,
                    if v.key_index == 0 {
                        "the signing key"
                    } else {
                        "a verify-only key"
                    },
                    v.expires.saturating_sub(self.now)
                ),
                key: Some(v.key_index + 1),
            },
            Err(Refusal::Mismatch) if self.client.is_none() => Verdict {
                status: 403,
                reason: "token_mismatch",
                detail: format!(
                    "{}; no --ip was given, so no client address was hashed: a resource that binds \
                     links to the client address (secure_key type 0) hashes \"{{expires}}{{path}}\
                     {{client_ip}} {{key}}\", so pass the viewer's address with --ip",
                    Refusal::Mismatch
                ),
                key: None,
            },
            Err(r) => Verdict {
                status: r.status(),
                reason: r.reason(),
                detail: r.to_string(),
                key: None,
            },
        }
    }
}

impl std::fmt::Display for Explanation {
    /// Every piece of the decision, one per line, for a person to compare with their signer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.verdict();
        let status_text = match v.status {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            410 => "Gone",
            _ => "",
        };
        writeln!(f, "status:   {} {status_text} ({})", v.status, v.reason)?;
        writeln!(f, "detail:   {}", v.detail)?;
        writeln!(f, "path:     {}", self.raw_path)?;
        if let Some(uri) = &self.uri {
            if self.changes.any() {
                writeln!(
                    f,
                    "$uri:     {uri}  ({})",
                    self.changes.describe().join(", ")
                )?;
            }
        }
        match &self.client {
            Some(ip) => writeln!(f, "client:   {ip} (token bound to it)")?,
            None => writeln!(f, "client:   not part of the token")?,
        }
        if let Some(e) = &self.given_expires {
            let now = self.now;
            let when = match crate::verify::parse_expires(e.as_bytes()) {
                Ok(t) if t < now => format!("expired {} s ago", now.saturating_sub(t)),
                Ok(t) => format!("valid for {} more s", t.saturating_sub(now)),
                Err(_) => "not a valid expiry".to_owned(),
            };
            writeln!(f, "expires:  {e} ({when}; now {now})")?;
        }
        for (i, (hashed, token)) in self.expected.iter().enumerate() {
            writeln!(f, "hashed:   \"{hashed}\"  (key {})", i + 1)?;
            writeln!(f, "expected: {token}")?;
        }
        writeln!(
            f,
            "given:    {}",
            self.given_token.as_deref().unwrap_or("(none)")
        )
    }
}

/// Verifies like [`crate::verify_request`] and records the pieces of the decision.
pub fn explain(target: &[u8], keys: &[Key], ip: Option<IpAddr>, now: i64) -> Explanation {
    explain_as(target, keys, ip.map(RemoteAddr::new), now)
}

/// [`explain`] with the client part of the hashed string given as text (an address, or a
/// network for subnet-bound links).
pub fn explain_as(
    target: &[u8],
    keys: &[Key],
    remote: Option<RemoteAddr>,
    now: i64,
) -> Explanation {
    let raw_path_end = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    let raw_path = String::from_utf8_lossy(&target[..raw_path_end]).into_owned();
    let parsed = match Target::parse(target) {
        Ok(t) => t,
        Err(e) => {
            return Explanation {
                outcome: Err(Refusal::BadRequest(e)),
                raw_path,
                uri: None,
                changes: Normalisation::default(),
                given_token: None,
                given_expires: None,
                expected: Vec::new(),
                client: remote,
                now,
            }
        }
    };
    let outcome = verify_as(&parsed, keys, remote.as_ref(), now);
    let params = LinkParams::from_args(parsed.args());
    let lossy = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let expires_raw = params.expires.unwrap_or_default();
    let expected = keys
        .iter()
        .map(|key| {
            let mut hashed = lossy(expires_raw);
            hashed.push_str(&lossy(parsed.uri()));
            if let Some(r) = &remote {
                hashed.push_str(r.as_str());
            }
            hashed.push(' ');
            hashed.push_str(&key.masked());
            let d = digest(expires_raw, parsed.uri(), remote.as_ref(), key);
            (hashed, Token::from_digest(&d))
        })
        .collect();
    Explanation {
        outcome,
        raw_path,
        uri: Some(lossy(parsed.uri())),
        changes: parsed.changes(),
        given_token: params.md5.map(lossy),
        given_expires: params.expires.map(lossy),
        expected,
        client: remote,
        now,
    }
}
