//! What the control plane publishes to edges: every resource at one version, and the purges
//! made since the version the edge already has.

use serde::{Deserialize, Serialize};

use crate::resource::Resource;
use crate::validate::FieldError;

/// Most entries in one purge request, as Gcore allows.
pub const MAX_PURGE_ENTRIES: usize = 100;

/// A versioned configuration for edges: every resource, or (a delta) what changed since the
/// version an edge holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Grows with every change; an edge asks for anything newer than the version it holds.
    pub version: u64,
    /// The control plane's epoch: a delta applies only to a configuration of the same epoch. It
    /// changes whenever a control plane starts (a database may have been restored), and is 0
    /// for edges that do not take deltas (the field is then left out, for older edges).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    /// `Some(v)` for a delta from version `v`: `resources` holds only those created or changed
    /// after `v`, and `deleted` the ids removed after it. `None`: every resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_from: Option<u64>,
    /// Every resource, active or not (in a delta, the ones that changed).
    pub resources: Vec<Resource>,
    /// Ids of the resources deleted after `delta_from` (empty unless a delta).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<u64>,
    /// Purges newer than the version the edge asked from, oldest first.
    #[serde(default)]
    pub purges: Vec<Purge>,
    /// Prefetches newer than the version the edge asked from, oldest first (none for an edge
    /// that asks from 0: a new edge does not replay them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefetches: Vec<Prefetch>,
}

/// A prefetch as edges apply it: each fills its cache with the paths, in the background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefetch {
    /// The snapshot version it was made at.
    pub version: u64,
    /// The resource whose origin is asked.
    pub resource: u64,
    /// What is fetched.
    pub what: PrefetchRequest,
}

/// The body of `POST /cdn/resources/{id}/prefetch`, as Gcore takes it: up to 100 paths, each
/// fetched from the origin into the edges' caches (meant for large files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefetchRequest {
    /// Paths such as `/video/a.mp4` (a query is part of the object asked for).
    pub paths: Vec<String>,
}

impl PrefetchRequest {
    /// Checks the request; errors name the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |field: String, message: String| Err(FieldError { field, message });
        if self.paths.is_empty() {
            return err("paths".into(), "list at least one path".into());
        }
        if self.paths.len() > MAX_PURGE_ENTRIES {
            return err("paths".into(), "at most 100 paths per request".into());
        }
        for (i, p) in self.paths.iter().enumerate() {
            if !is_plain_path(p) {
                return err(
                    format!("paths[{i}]"),
                    format!("{p:?} must be a path starting with / without spaces"),
                );
            }
        }
        Ok(())
    }
}

/// `s` percent-encoded for a URL's query (every byte but RFC 3986's unreserved ones), as the
/// edge sends its name when it polls and list answers write their `next` links.
pub fn query_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path as purges and prefetches take it: starts with `/`, no spaces or control bytes.
fn is_plain_path(p: &str) -> bool {
    p.starts_with('/') && !p.bytes().any(|b| b <= 0x20 || b == 0x7f)
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A purge as edges apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    /// The snapshot version it was made at.
    pub version: u64,
    /// The resource whose objects go.
    pub resource: u64,
    /// What goes.
    pub what: PurgeRequest,
}

/// The body of `POST /cdn/resources/{id}/purge`, as Gcore takes it: exactly one of `urls`
/// (exact paths, each with any query) or `paths` (patterns where `*` matches anything; an empty
/// list purges everything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Exact paths such as `/video/a.mp4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Patterns such as `/images/*`; `[]` for everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

impl PurgeRequest {
    /// Checks the request; errors name the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |field: &str, message: &str| {
            Err(FieldError {
                field: field.to_owned(),
                message: message.to_owned(),
            })
        };
        let (field, list) = match (&self.urls, &self.paths) {
            (Some(u), None) => ("urls", u),
            (None, Some(p)) => ("paths", p),
            _ => return err("urls", "give exactly one of urls or paths"),
        };
        if field == "urls" && list.is_empty() {
            return err(
                "urls",
                "list at least one URL (use {\"paths\": []} to purge all)",
            );
        }
        if list.len() > MAX_PURGE_ENTRIES {
            return err(field, "at most 100 entries per request");
        }
        for (i, p) in list.iter().enumerate() {
            // A pattern may start with `*` (`*.jpg`, anywhere), as Gcore allows.
            let plain = match (field, p.strip_prefix('*')) {
                ("paths", Some(rest)) => !rest.bytes().any(|b| b <= 0x20 || b == 0x7f),
                _ => is_plain_path(p),
            };
            if !plain {
                let what = if field == "paths" {
                    "a pattern starting with / or *"
                } else {
                    "a path starting with /"
                };
                return Err(FieldError {
                    field: format!("{field}[{i}]"),
                    message: format!("{p:?} must be {what} without spaces"),
                });
            }
        }
        Ok(())
    }

    /// Whether this purges every object of the resource.
    pub fn is_everything(&self) -> bool {
        self.paths.as_ref().is_some_and(|p| p.is_empty())
    }
}

/// Answers of one edge for one resource, for the panel's chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// Requests answered with content (hits, misses, stale, pass-through).
    pub served: u64,
    /// Of those, answered from the cache.
    pub hits: u64,
    /// Refused with 403 (missing or wrong token).
    pub forbidden: u64,
    /// Refused with 410 (expired link).
    pub gone: u64,
    /// Refused with 400 (malformed request).
    pub bad_request: u64,
    /// Answered 502/504 because the origin failed.
    pub origin_errors: u64,
    /// `secure_key.mode: "report"`: served though the token would have refused them. Sent only
    /// when not 0, so that a control plane before report mode takes the reports of an edge
    /// whose resources do not use it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reported: u64,
    /// Links that matched the resource's current key (left out at 0, as `reported`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current_key: u64,
    /// Links that matched its previous key.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub previous_key: u64,
    /// Body bytes sent to viewers (hits and misses; left out at 0, as `reported`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
}

impl Counters {
    /// Each counter of `self` with its match in `other`, through `f`: the one list of the
    /// fields, so that a field added later is added up and compared everywhere.
    fn zip_with(&self, other: &Counters, f: impl Fn(u64, u64) -> u64) -> Counters {
        Counters {
            served: f(self.served, other.served),
            hits: f(self.hits, other.hits),
            forbidden: f(self.forbidden, other.forbidden),
            gone: f(self.gone, other.gone),
            bad_request: f(self.bad_request, other.bad_request),
            origin_errors: f(self.origin_errors, other.origin_errors),
            reported: f(self.reported, other.reported),
            current_key: f(self.current_key, other.current_key),
            previous_key: f(self.previous_key, other.previous_key),
            bytes: f(self.bytes, other.bytes),
        }
    }

    /// The increase from `earlier` to `self`; a counter that went down (its resource was
    /// replaced) counts from zero.
    pub fn increase_since(&self, earlier: &Counters) -> Counters {
        self.zip_with(earlier, |a, b| if a >= b { a - b } else { a })
    }

    /// Adds `other` to these counters; each stops at `u64::MAX` rather than wrap.
    pub fn add(&mut self, other: &Counters) {
        *self = self.zip_with(other, u64::saturating_add);
    }

    /// These counters as a control plane before report mode, key usage and bytes reads them: the
    /// fields it does not know at 0 (they are then left out).
    pub fn without_extensions(mut self) -> Counters {
        self.reported = 0;
        self.current_key = 0;
        self.previous_key = 0;
        self.bytes = 0;
        self
    }
}

/// What an edge sends the control plane every few seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeReport {
    /// The edge's name (unique per edge process).
    pub edge: String,
    /// Increases since the edge's previous accepted report, by resource id.
    pub resources: std::collections::BTreeMap<u64, Counters>,
    /// Prefetched paths that failed (after the edge's retries) since its previous report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefetch_failures: Vec<PrefetchFailure>,
}

/// A path of a prefetch an edge could not fetch, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefetchFailure {
    /// The resource prefetched.
    pub resource: u64,
    /// The path that failed.
    pub path: String,
    /// Why, in words (the last attempt's).
    pub reason: String,
}

/// Matches `text` against `pattern`, where `*` stands for any run of bytes (slashes too).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with one backtrack point: linear in practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_for_an_older_control_plane_hold_only_the_fields_it_knows() {
        let all = Counters {
            served: 1,
            hits: 2,
            forbidden: 3,
            gone: 4,
            bad_request: 5,
            origin_errors: 6,
            reported: 7,
            current_key: 8,
            previous_key: 9,
            bytes: 10,
        };
        let json = serde_json::to_value(all.without_extensions()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "bad_request",
                "forbidden",
                "gone",
                "hits",
                "origin_errors",
                "served"
            ]
        );
        // And the new ones travel, and add up, when not 0.
        let back: Counters = serde_json::from_value(serde_json::to_value(all).unwrap()).unwrap();
        assert_eq!(back, all);
        let mut sum = all;
        sum.add(&all);
        assert_eq!((sum.bytes, sum.increase_since(&all).bytes), (20, 10));
    }

    #[test]
    fn counters_that_would_overflow_stop_at_the_maximum() {
        let mut sum = Counters {
            served: u64::MAX - 1,
            bytes: u64::MAX,
            ..Counters::default()
        };
        sum.add(&Counters {
            served: 5,
            bytes: 1,
            hits: 3,
            ..Counters::default()
        });
        assert_eq!((sum.served, sum.bytes, sum.hits), (u64::MAX, u64::MAX, 3));
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"/images/*", b"/images/a/b.png"));
        assert!(glob_match(b"*.jpg", b"/x/y.jpg"));
        assert!(glob_match(b"/a/*/c*", b"/a/b/c"));
        assert!(!glob_match(b"/images/*", b"/video/a"));
        assert!(!glob_match(b"/a", b"/ab"));
        assert!(glob_match(b"/a**", b"/a"));
        assert!(glob_match(&[b'*'; 40], b""));
    }

    #[test]
    fn prefetch_request_rules() {
        let p = |j: &str| {
            serde_json::from_str::<PrefetchRequest>(j)
                .unwrap()
                .validate()
        };
        assert!(p(r#"{"paths": ["/video/a.mp4", "/b?x=1"]}"#).is_ok());
        assert_eq!(p(r#"{"paths": []}"#).unwrap_err().field, "paths");
        assert_eq!(
            p(r#"{"paths": ["/a", "b"]}"#).unwrap_err().field,
            "paths[1]"
        );
        assert_eq!(p(r#"{"paths": ["/a b"]}"#).unwrap_err().field, "paths[0]");
        let many: Vec<String> = (0..101).map(|i| format!("/{i}")).collect();
        let r = PrefetchRequest { paths: many };
        assert!(r.validate().unwrap_err().message.contains("100"));
        assert!(serde_json::from_str::<PrefetchRequest>(r#"{"urls": ["/a"]}"#).is_err());
    }

    #[test]
    fn purge_request_rules() {
        let p = |j: &str| serde_json::from_str::<PurgeRequest>(j).unwrap().validate();
        assert!(p(r#"{"urls": ["/a.mp4"]}"#).is_ok());
        assert!(p(r#"{"paths": []}"#).is_ok());
        assert!(p(r#"{"paths": ["/img/*"]}"#).is_ok());
        assert_eq!(p(r#"{"urls": []}"#).unwrap_err().field, "urls");
        assert_eq!(p(r#"{}"#).unwrap_err().field, "urls");
        assert_eq!(p(r#"{"urls": ["a"]}"#).unwrap_err().field, "urls[0]");
        assert!(serde_json::from_str::<PurgeRequest>(r#"{"url": []}"#).is_err());
    }
}
