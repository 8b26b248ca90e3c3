//! Explaining a decision in words: what `tollgate verify` prints.

use std::net::IpAddr;

use crate::addr::RemoteAddr;
use crate::key::Key;
use crate::sign::{digest, Token};
use crate::target::{Normalisation, Target};
use crate::verify::{verify, LinkParams, Refusal, Verified};

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
}

/// Verifies like [`crate::verify_request`] and records the pieces of the decision.
pub fn explain(target: &[u8], keys: &[Key], ip: Option<IpAddr>, now: i64) -> Explanation {
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
            }
        }
    };
    let outcome = verify(&parsed, keys, ip, now);
    let params = LinkParams::from_args(parsed.args());
    let lossy = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let expires_raw = params.expires.unwrap_or_default();
    let remote = ip.map(RemoteAddr::new);
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
    }
}
