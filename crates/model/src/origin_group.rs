//! Origin groups (`/cdn/origin_groups`) in Gcore's shape: the sources a resource fetches from,
//! backups among them, and when the next one is tried. What the edge gets from a group is
//! [`Origins`]: the sources in the order they are tried and the failures that move on.

use serde::{Deserialize, Serialize};

use crate::host::split_origin;
use crate::validate::FieldErrors;

/// An origin group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginGroup {
    /// Group id (assigned by the control plane; one in a body is ignored).
    #[serde(default)]
    pub id: u64,
    /// Free-form name.
    pub name: String,
    /// Where the content is fetched from.
    #[serde(default)]
    pub sources: Vec<OriginSource>,
    /// Whether a failure listed in `proxy_next_upstream` moves the request on to the next
    /// source (nginx's `proxy_next_upstream`); without it each request tries one source.
    #[serde(default)]
    pub use_next: bool,
    /// The failures that move on to the next source when `use_next` is set (`null`: Gcore's
    /// default).
    #[serde(
        default = "default_next_upstream",
        deserialize_with = "null_is_default"
    )]
    pub proxy_next_upstream: Vec<String>,
    /// `"none"`: Tollgate does not sign origin requests (Gcore's `awsSignatureV4` is refused).
    #[serde(default = "no_auth")]
    pub auth_type: String,
    /// Gcore's S3 credentials (`awsSignatureV4`): only `null` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<serde_json::Value>,
    /// Gcore's path prefix for origin requests: only `""` (none) is supported.
    #[serde(default)]
    pub path: String,
}

fn null_is_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_else(default_next_upstream))
}

/// One source of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSource {
    /// `host[:port]`.
    pub source: String,
    /// Used only when every other source failed.
    #[serde(default)]
    pub backup: bool,
    /// A disabled source is kept but never used.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Gcore's per-source Host header: only `null` is supported (the resource's `hostHeader`
    /// option sets it for every source).
    #[serde(default)]
    pub host_header_override: Option<String>,
    /// Gcore's source kinds (`"host"`; S3 and FastEdge sources are not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_type: Option<String>,
    /// An S3 or FastEdge source's settings: not supported (only `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

fn no_auth() -> String {
    "none".into()
}

/// Gcore's default: move on after a connection error or a timeout.
pub fn default_next_upstream() -> Vec<String> {
    vec!["error".into(), "timeout".into()]
}

/// The failures `proxy_next_upstream` may list, as Gcore names them (nginx's names).
pub const NEXT_UPSTREAM: [&str; 10] = [
    "error",
    "timeout",
    "invalid_header",
    "http_403",
    "http_404",
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
];

/// The most sources a group may have.
pub const MAX_SOURCES: usize = 32;

/// What the edge does with a resource's origins: the enabled sources, primaries first then
/// backups, each as host and port, and the failures after which the next one is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins {
    /// Enabled sources that are not backups, in the group's order.
    pub primaries: Vec<(String, u16)>,
    /// Enabled backups, in the group's order, tried once every primary failed.
    pub backups: Vec<(String, u16)>,
    /// The failures that move on to the next source; empty when `use_next` is off.
    pub next_upstream: NextUpstream,
}

impl Origins {
    /// One source, tried alone (a resource's `origin` without a group).
    pub fn single(host: String, port: u16) -> Origins {
        Origins {
            primaries: vec![(host, port)],
            backups: Vec::new(),
            next_upstream: NextUpstream::default(),
        }
    }
}

/// A set of the failures `proxy_next_upstream` names (nginx's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextUpstream(u16);

impl NextUpstream {
    fn of(name: &str) -> Option<NextUpstream> {
        NEXT_UPSTREAM
            .iter()
            .position(|n| *n == name)
            .map(|i| NextUpstream(1 << i))
    }

    /// After a connection error.
    pub fn error(self) -> bool {
        self.0 & 1 != 0
    }

    /// After a timeout.
    pub fn timeout(self) -> bool {
        self.0 & 2 != 0
    }

    /// After an answer that is not HTTP.
    pub fn invalid_header(self) -> bool {
        self.0 & 4 != 0
    }

    /// After an answer with this status.
    pub fn status(self, status: u16) -> bool {
        let name = match status {
            403 => "http_403",
            404 => "http_404",
            429 => "http_429",
            500 => "http_500",
            502 => "http_502",
            503 => "http_503",
            504 => "http_504",
            _ => return false,
        };
        NextUpstream::of(name).is_some_and(|b| self.0 & b.0 != 0)
    }
}

impl OriginGroup {
    /// Checks the group; errors name the field (`sources[1].source`).
    pub fn validate(&self) -> Result<(), Vec<crate::FieldError>> {
        let mut errors = FieldErrors::default();
        self.check(&mut errors, "");
        errors.into_result(())
    }

    /// The group as the edge uses it, for a resource reaching it with `https` (the default
    /// port); problems are pushed with fields under `prefix`.
    pub(crate) fn origins(&self, https: bool, errors: &mut FieldErrors, prefix: &str) -> Origins {
        let next_upstream = self.check(errors, prefix);
        let default_port = if https { 443 } else { 80 };
        let mut origins = Origins {
            primaries: Vec::new(),
            backups: Vec::new(),
            next_upstream,
        };
        for s in self.sources.iter().filter(|s| s.enabled) {
            if let Some((host, port)) = split_origin(&s.source) {
                let to = if s.backup {
                    &mut origins.backups
                } else {
                    &mut origins.primaries
                };
                to.push((host, port.unwrap_or(default_port)));
            }
        }
        origins
    }

    /// The source a resource's `origin` shows: the first enabled one that is not a backup.
    pub fn primary(&self) -> Option<&str> {
        self.sources
            .iter()
            .find(|s| s.enabled && !s.backup)
            .map(|s| s.source.as_str())
    }

    fn check(&self, errors: &mut FieldErrors, prefix: &str) -> NextUpstream {
        let name = self.name.trim();
        if name.is_empty() || self.name.len() > 255 || self.name.chars().any(char::is_control) {
            errors.push(
                format!("{prefix}name"),
                "1 to 255 characters, no control characters",
            );
        }
        if self.sources.is_empty() || self.sources.len() > MAX_SOURCES {
            errors.push(
                format!("{prefix}sources"),
                format!("list 1 to {MAX_SOURCES} sources"),
            );
        }
        for (i, s) in self.sources.iter().enumerate() {
            if s.host_header_override.is_some() {
                errors.push(
                    format!("{prefix}sources[{i}].host_header_override"),
                    "not supported by Tollgate (use the resource's hostHeader option); use null",
                );
            }
            if s.origin_type.as_deref().is_some_and(|t| t != "host")
                || s.config.as_ref().is_some_and(|c| !c.is_null())
            {
                errors.push(
                    format!("{prefix}sources[{i}].origin_type"),
                    "not supported by Tollgate: only host sources (\"host\")",
                );
            }
            if split_origin(&s.source).is_none() {
                errors.push(
                    format!("{prefix}sources[{i}].source"),
                    format!(
                        "{:?} is not host[:port] (e.g. origin.example.com:8080)",
                        s.source
                    ),
                );
            }
        }
        if !self.sources.is_empty() && self.primary().is_none() {
            errors.push(
                format!("{prefix}sources"),
                "at least one source must be enabled and not a backup",
            );
        }
        let mut next = NextUpstream::default();
        for (i, n) in self.proxy_next_upstream.iter().enumerate() {
            match NextUpstream::of(n) {
                Some(b) => next.0 |= b.0,
                None => errors.push(
                    format!("{prefix}proxy_next_upstream[{i}]"),
                    format!("{n:?} is not one of {}", NEXT_UPSTREAM.join(", ")),
                ),
            }
        }
        if !self.path.is_empty() {
            errors.push(
                format!("{prefix}path"),
                "not supported by Tollgate (a path prefix for origin requests); use \"\"",
            );
        }
        if self.auth.as_ref().is_some_and(|a| !a.is_null()) {
            errors.push(
                format!("{prefix}auth"),
                "not supported by Tollgate (origin requests are not signed); use null",
            );
        }
        if self.auth_type != "none" {
            errors.push(
                format!("{prefix}auth_type"),
                format!(
                    "{:?} is not supported by Tollgate (origin requests are not signed; use \"none\")",
                    self.auth_type
                ),
            );
        }
        if self.use_next {
            next
        } else {
            NextUpstream::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(json: &str) -> OriginGroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn enabled_sources_primaries_and_backups() {
        let g = group(
            r#"{"name": "g", "use_next": true, "proxy_next_upstream": ["error", "http_503"],
            "sources": [{"source": "a.example:8080"}, {"source": "b.example", "enabled": false},
                        {"source": "c.example", "backup": true}, {"source": "d.example"}]}"#,
        );
        let mut e = FieldErrors::default();
        let o = g.origins(false, &mut e, "");
        assert!(e.into_messages().is_empty());
        let list = |l: &[(String, u16)]| {
            l.iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(list(&o.primaries), ["a.example:8080", "d.example:80"]);
        assert_eq!(list(&o.backups), ["c.example:80"]);
        assert!(o.next_upstream.error() && !o.next_upstream.timeout());
        assert!(o.next_upstream.status(503) && !o.next_upstream.status(500));
        assert_eq!(g.primary(), Some("a.example:8080"));
    }

    #[test]
    fn without_use_next_nothing_moves_on() {
        let g = group(
            r#"{"name": "g", "sources": [{"source": "a"}, {"source": "b", "backup": true}]}"#,
        );
        assert_eq!(g.proxy_next_upstream, default_next_upstream());
        let o = g.origins(true, &mut FieldErrors::default(), "");
        assert_eq!(o.next_upstream, NextUpstream::default());
        assert_eq!(o.primaries, [("a".to_owned(), 443)]);
    }

    #[test]
    fn errors_name_the_field() {
        let g = group(
            r#"{"name": " ", "auth_type": "awsSignatureV4", "proxy_next_upstream": ["http_418"],
            "sources": [{"source": "bad host", "enabled": false}, {"source": "b", "backup": true}]}"#,
        );
        let text = g
            .validate()
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        for want in [
            "name: 1 to 255",
            "sources[0].source: \"bad host\"",
            "sources: at least one source must be enabled and not a backup",
            "proxy_next_upstream[0]: \"http_418\" is not one of",
            "auth_type: \"awsSignatureV4\" is not supported by Tollgate",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        assert!(group(r#"{"name": "g", "sources": []}"#).validate().is_err());
    }
}
