//! Revoked links: a resource's `secure_key_revocations` (a Tollgate extension, changed only
//! through `/cdn/resources/{id}/secure_key/revocations`), refused by edges with 403 `revoked`
//! before they expire. Three kinds:
//!
//! - one link: `{"token": "...", "expires": T}` (its `md5` and `expires`), dropped after T;
//! - every link of a path: `{"path": "/a.mp4"}`, or of a directory: `{"path": "/videos/",
//!   "prefix": true}`;
//! - with `"expires_at_or_below": T`, only the links of that path issued with an `expires` of T
//!   or less (so that links signed after the leak still work), dropped after T.
//!
//! A path revocation without `expires_at_or_below` matches links of any expiry, so nothing
//! tells when it could go: it stays until deleted. [`Revocations`] is the edge's index: a hash
//! lookup per kind, a directory prefix looked up at each `/` of the path, so that a request costs
//! the same whatever the list's length.

use std::collections::{HashMap, HashSet};

/// The index's hasher: fast and fixed. Its keys are the resource owner's, so a lookup of any
/// request's path meets a table no client built.
type Fast = foldhash::fast::FixedState;

use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

/// Most revocations of one resource.
pub const MAX_REVOCATIONS: usize = 10_000;

/// One revocation as the API takes and answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Its number within the resource (set by the control plane).
    #[serde(default)]
    pub id: u64,
    /// One link's `md5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// That link's `expires` (required with `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// A path (`$uri`, as links are signed over it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `path` is a directory (ends with `/`): every path under it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix: bool,
    /// Only links with an `expires` at or below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_or_below: Option<i64>,
    /// When it was made, RFC 3339 (set by the control plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl Revocation {
    /// The Unix time after which nothing it matches can be valid (it can then be dropped);
    /// `None`: it matches links of any expiry.
    pub fn until(&self) -> Option<i64> {
        if self.token.is_some() {
            self.expires
        } else {
            self.expires_at_or_below
        }
    }

    /// Whether it can be dropped at `now`.
    pub fn is_spent(&self, now: i64) -> bool {
        self.until().is_some_and(|t| t < now)
    }

    /// Its problems, under `field`.
    pub(crate) fn check(&self, field: &str, errors: &mut FieldErrors) {
        match (&self.token, &self.path) {
            (Some(t), None) => {
                if tollgate_token::base64url::decode_token(t.as_bytes()).is_err() {
                    errors.push(
                        format!("{field}.token"),
                        "a link's md5: 22 characters of base64url",
                    );
                }
                if self.expires.is_none() {
                    errors.push(
                        format!("{field}.expires"),
                        "the link's expires, with its token (the revocation goes when the link would)",
                    );
                }
                if self.prefix || self.expires_at_or_below.is_some() {
                    errors.push(field, "a token revocation takes token and expires only");
                }
            }
            (None, Some(p)) => {
                if !p.starts_with('/') || p.len() > 4096 || p.bytes().any(|b| b <= b' ') {
                    errors.push(
                        format!("{field}.path"),
                        "a path starting with /, without spaces (at most 4096 bytes)",
                    );
                }
                if self.prefix && !p.ends_with('/') {
                    errors.push(
                        format!("{field}.path"),
                        "a prefix revocation's path is a directory: it ends with /",
                    );
                }
                if self.expires.is_some() {
                    errors.push(
                        format!("{field}.expires"),
                        "expires goes with token; for a path, expires_at_or_below",
                    );
                }
            }
            _ => errors.push(
                field,
                "give token and expires (one link), or path (every link of it, or with prefix of \
                 a directory)",
            ),
        }
    }
}

/// The edge's index of a resource's revocations in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    /// Revoked tokens, decoded.
    tokens: HashSet<[u8; 16], Fast>,
    /// Revoked paths with the highest `expires` they revoke (`i64::MAX`: all).
    paths: HashMap<Box<[u8]>, i64, Fast>,
    /// Revoked directories, the same way.
    dirs: HashMap<Box<[u8]>, i64, Fast>,
    /// The lengths of those directories, each once: a path is looked up only at its `/`s
    /// that end a prefix of such a length.
    dir_lens: Vec<usize>,
}

impl Revocations {
    /// The index of `list` (spent ones included: the edge's clock decides, not the list's age).
    pub fn new(list: &[Revocation]) -> Revocations {
        let mut r = Revocations::default();
        for v in list {
            match (&v.token, &v.path) {
                (Some(t), _) => {
                    // Checked as base64url of 16 bytes by `Revocation::check`.
                    if let Ok(d) = tollgate_token::base64url::decode_token(t.as_bytes()) {
                        r.tokens.insert(d);
                    }
                }
                (None, Some(p)) => {
                    let bound = v.expires_at_or_below.unwrap_or(i64::MAX);
                    let map = if v.prefix { &mut r.dirs } else { &mut r.paths };
                    let e = map.entry(p.as_bytes().into()).or_insert(bound);
                    *e = (*e).max(bound);
                    if v.prefix && !r.dir_lens.contains(&p.len()) {
                        r.dir_lens.push(p.len());
                    }
                }
                (None, None) => {}
            }
        }
        r
    }

    /// Whether none is in force (the edge then looks nothing up).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.paths.is_empty() && self.dirs.is_empty()
    }

    /// Whether a valid link, its token decoded, for `uri` (`$uri`) with `expires`, is revoked.
    pub fn revokes(&self, token: &[u8; 16], uri: &[u8], expires: i64) -> bool {
        if self.is_empty() {
            return false;
        }
        if self.tokens.contains(token) {
            return true;
        }
        if self.paths.get(uri).is_some_and(|b| expires <= *b) {
            return true;
        }
        let at = |n: usize| {
            n > 0
                && n <= uri.len()
                && uri[n - 1] == b'/'
                && self.dirs.get(&uri[..n]).is_some_and(|b| expires <= *b)
        };
        // Few lengths (the usual case): one lookup each; many: one per `/` of the path.
        if self.dir_lens.len() <= 8 {
            self.dir_lens.iter().any(|&n| at(n))
        } else {
            uri.iter().enumerate().any(|(i, b)| *b == b'/' && at(i + 1))
        }
    }
}

/// Checks a resource's revocations (at most [`MAX_REVOCATIONS`]) and indexes them.
pub(crate) fn validate(list: &[Revocation], errors: &mut FieldErrors) -> Revocations {
    if list.len() > MAX_REVOCATIONS {
        errors.push(
            "secure_key_revocations",
            format!("at most {MAX_REVOCATIONS} revocations per resource"),
        );
    }
    for (i, r) in list.iter().enumerate() {
        r.check(&format!("secure_key_revocations[{i}]"), errors);
    }
    Revocations::new(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(json: &str) -> Revocation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_three_kinds_and_when_they_go() {
        let list = [
            rev(r#"{"token": "AAAAAAAAAAAAAAAAAAAAAA", "expires": 2000}"#),
            rev(r#"{"path": "/leaked.mp4"}"#),
            rev(r#"{"path": "/course/", "prefix": true, "expires_at_or_below": 1500}"#),
        ];
        let r = Revocations::new(&list);
        let (a, b, x) = ([0u8; 16], [1u8; 16], [9u8; 16]);
        assert!(r.revokes(&a, b"/any", 2000));
        assert!(!r.revokes(&b, b"/any", 2000));
        assert!(r.revokes(&x, b"/leaked.mp4", i64::MAX));
        assert!(!r.revokes(&x, b"/leaked.mp4.bak", 10));
        assert!(r.revokes(&x, b"/course/week1/a.mp4", 1500));
        assert!(
            !r.revokes(&x, b"/course/week1/a.mp4", 1501),
            "signed after the leak"
        );
        assert!(!r.revokes(&x, b"/courses/a.mp4", 10));
        assert_eq!(
            list.iter().map(|v| v.until()).collect::<Vec<_>>(),
            [Some(2000), None, Some(1500)]
        );
        assert!(list[0].is_spent(2001) && !list[0].is_spent(2000));
        assert!(!list[1].is_spent(i64::MAX));
        assert!(Revocations::new(&[]).is_empty());
    }

    #[test]
    fn bounded_in_count() {
        let one = rev(r#"{"path": "/x"}"#);
        let mut e = FieldErrors::default();
        validate(&vec![one; MAX_REVOCATIONS + 1], &mut e);
        let m = e.into_messages();
        assert_eq!(m.len(), 1);
        assert!(m[0].contains("at most 10000"), "{m:?}");
    }

    #[test]
    fn refusals_name_the_entry() {
        let mut e = FieldErrors::default();
        validate(
            &[
                rev(r#"{"token": "short", "expires": 1}"#),
                rev(r#"{"token": "AAAAAAAAAAAAAAAAAAAAAA"}"#),
                rev(r#"{"path": "/dir", "prefix": true}"#),
                rev(r#"{}"#),
            ],
            &mut e,
        );
        let m = e.into_messages();
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m[0].starts_with("secure_key_revocations[0].token"));
        assert!(m[1].starts_with("secure_key_revocations[1].expires"));
        assert!(m[2].contains("ends with /"));
        assert!(m[3].starts_with("secure_key_revocations[3]: give token"));
    }
}
