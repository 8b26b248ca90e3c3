//! Gcore's access lists: `referrer_acl`, `ip_address_acl`, `user_agent_acl` and `country_acl`,
//! each `{"enabled", "policy_type": "allow"|"deny", "excepted_values": [...]}`, where `allow`
//! lets everyone in but the listed and `deny` no one but the listed. Validated here into
//! [`Access`], whose [`Access::check`] is the whole decision, pure, for the edge to call with
//! what it knows of a request.
//!
//! Matching follows nginx where nginx has the directive: the referrer as `valid_referers none
//! <list>` reads it (a request without `Referer` is let in under either policy; one whose
//! `Referer` is not an `http://` or `https://` URL matches no domain; `*.example.com` matches
//! its subdomains, not `example.com`), the address as `allow`/`deny` (realip's address; an
//! IPv4-mapped IPv6 address matches IPv4 blocks).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;
use crate::validate::FieldErrors;

/// Most entries of one list.
pub const MAX_ACL_ENTRIES: usize = 1000;

/// An access list as Gcore writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Whether the option applies.
    pub enabled: bool,
    /// `allow`: everyone but the listed; `deny`: no one but the listed.
    pub policy_type: Policy,
    /// The listed values.
    pub excepted_values: Vec<String>,
}

/// An access list's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Allow all except the listed.
    Allow,
    /// Deny all except the listed.
    Deny,
}

/// One validated list: whether a match lets the request in, and the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T> {
    /// `true` for `deny` (only the listed get in), `false` for `allow`.
    listed_get_in: bool,
    entries: Vec<T>,
}

impl<T> List<T> {
    /// Whether a request that `matched` the list (or not) gets in.
    fn admits(&self, matched: bool) -> bool {
        matched == self.listed_get_in
    }
}

/// A `referrer_acl` entry: a domain, or `*.domain` for its subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    /// This host, in lower case.
    Exact(String),
    /// Hosts ending in `.` and this, in lower case (`*.example.com` keeps `example.com`).
    Subdomains(String),
}

impl Domain {
    /// `example.com` or `*.example.com` (no scheme, path or port), any case.
    pub(crate) fn parse(v: &str) -> Result<Domain, String> {
        let (wild, d) = match v.strip_prefix("*.") {
            Some(d) => (true, d),
            None => (false, v),
        };
        if !crate::host::valid_hostname(d) {
            return Err(format!(
                "{v:?} is not a domain or *.domain (no scheme, path or port)"
            ));
        }
        let d = d.to_ascii_lowercase();
        Ok(if wild {
            Domain::Subdomains(d)
        } else {
            Domain::Exact(d)
        })
    }

    /// Whether `host` (lower case) is this domain, or one of its subdomains for `*.`.
    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            Domain::Exact(d) => host == d,
            Domain::Subdomains(d) => host
                .strip_suffix(d.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        }
    }
}

/// A `user_agent_acl` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// The whole header, byte for byte; `""` for a request without one (or an empty one).
    Exact(String),
    /// `~regex` (case-sensitive) or `~*regex` (case-insensitive), found anywhere in the header
    /// as nginx's `~` does: the pattern in `regex` syntax, flags included.
    Pattern(String),
}

/// A list's patterns compiled into one automaton (one program and one lazy DFA cache for the
/// list, both bounded, however many patterns it has).
#[derive(Debug, Clone)]
pub struct Patterns(regex::RegexSet);

impl PartialEq for Patterns {
    fn eq(&self, other: &Patterns) -> bool {
        self.0.patterns() == other.0.patterns()
    }
}

impl Eq for Patterns {}

/// Bounds of one list's compiled patterns: the program, and its lazy DFA's cache.
const PATTERNS_BYTES: usize = 4 << 20;
const PATTERNS_CACHE_BYTES: usize = 2 << 20;

/// What the edge knows of a request, for [`Access::check`].
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The client's address, after realip.
    pub client: IpAddr,
    /// The `Referer` header, when there is one.
    pub referer: Option<&'a [u8]>,
    /// The `User-Agent` header (`None` when absent).
    pub user_agent: Option<&'a [u8]>,
    /// The client's country (ISO 3166-1 alpha-2, upper case), when the database knows it.
    pub country: Option<[u8; 2]>,
}

/// A resource's access lists in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    referrer: Option<List<Domain>>,
    ip: Option<List<Cidr>>,
    user_agent: Option<List<Agent>>,
    /// `user_agent_acl`'s patterns, compiled together.
    agents: Option<Patterns>,
    country: Option<List<[u8; 2]>>,
}

impl Access {
    /// Whether no list is in force (the edge then looks nothing up).
    pub fn is_empty(&self) -> bool {
        self.referrer.is_none()
            && self.ip.is_none()
            && self.user_agent.is_none()
            && self.country.is_none()
    }

    /// Whether the resource's `country_acl` is in force (the edge needs its GeoIP database).
    pub fn needs_country(&self) -> bool {
        self.country.is_some()
    }

    /// `Err(reason)` when a list keeps the request out: `referrer_acl`, `ip_address_acl`,
    /// `user_agent_acl` or `country_acl` (the metric's and the log's reason), in that order.
    pub fn check(&self, seen: &Seen<'_>) -> Result<(), &'static str> {
        if let Some(l) = &self.referrer {
            // nginx's `none`: no Referer at all gets in.
            if let Some(r) = seen.referer {
                let host = referer_host(r);
                let matched = host.is_some_and(|h| l.entries.iter().any(|d| d.matches(&h)));
                if !l.admits(matched) {
                    return Err("referrer_acl");
                }
            }
        }
        if let Some(l) = &self.ip {
            if !l.admits(l.entries.iter().any(|c| c.contains(seen.client))) {
                return Err("ip_address_acl");
            }
        }
        if let Some(l) = &self.user_agent {
            let ua = seen
                .user_agent
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let exact = l
                .entries
                .iter()
                .any(|a| matches!(a, Agent::Exact(s) if *s == ua));
            let pattern = self.agents.as_ref().is_some_and(|p| p.0.is_match(&ua));
            if !l.admits(exact || pattern) {
                return Err("user_agent_acl");
            }
        }
        if let Some(l) = &self.country {
            let matched = seen.country.is_some_and(|c| l.entries.contains(&c));
            if !l.admits(matched) {
                return Err("country_acl");
            }
        }
        Ok(())
    }
}

/// The host of a `Referer` as nginx's referer module takes it: after `http://` or `https://`
/// (any case), up to `/`, `:` or the end, in lower case, without a trailing dot; `None` when
/// it is not such a URL.
pub fn referer_host(r: &[u8]) -> Option<String> {
    let after = |scheme: &[u8]| {
        (r.len() >= scheme.len() && r[..scheme.len()].eq_ignore_ascii_case(scheme))
            .then(|| &r[scheme.len()..])
    };
    let rest = after(b"http://").or_else(|| after(b"https://"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b':' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    let host = std::str::from_utf8(&rest[..end]).ok()?;
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The access lists in force, each checked whenever given (they are stored and served back).
pub(crate) fn validate(o: &crate::Options, errors: &mut FieldErrors) -> Access {
    let referrer = list(
        o.referrer_acl.as_ref(),
        "referrer_acl",
        errors,
        Domain::parse,
    );
    let ip = list(o.ip_address_acl.as_ref(), "ip_address_acl", errors, |v| {
        v.parse::<Cidr>()
    });
    let user_agent = list(o.user_agent_acl.as_ref(), "user_agent_acl", errors, |v| {
        let (pattern, flags) = if let Some(p) = v.strip_prefix("~*") {
            (p, "(?i)")
        } else if let Some(p) = v.strip_prefix('~') {
            (p, "")
        } else {
            return Ok(Agent::Exact(v.to_owned()));
        };
        // Checked alone, for an error naming the entry.
        regex::RegexBuilder::new(pattern)
            .size_limit(PATTERNS_BYTES)
            .build()
            .map(|_| Agent::Pattern(format!("{flags}{pattern}")))
            .map_err(|e| format!("{v:?} is not a regular expression: {e}"))
    });
    let patterns: Vec<&str> = user_agent
        .iter()
        .flat_map(|l| &l.entries)
        .filter_map(|a| match a {
            Agent::Pattern(p) => Some(p.as_str()),
            Agent::Exact(_) => None,
        })
        .collect();
    let agents = if patterns.is_empty() {
        None
    } else {
        match regex::RegexSetBuilder::new(&patterns)
            .size_limit(PATTERNS_BYTES)
            .dfa_size_limit(PATTERNS_CACHE_BYTES)
            .build()
        {
            Ok(set) => Some(Patterns(set)),
            Err(e) => {
                errors.push(
                    "options.user_agent_acl.excepted_values",
                    format!("the patterns together are too large: {e}"),
                );
                None
            }
        }
    };
    Access {
        referrer,
        ip,
        user_agent,
        agents,
        country: list(o.country_acl.as_ref(), "country_acl", errors, |v| {
            let b = v.as_bytes();
            if b.len() == 2 && b.iter().all(u8::is_ascii_uppercase) {
                Ok([b[0], b[1]])
            } else {
                Err(format!(
                    "{v:?} is not a country code (ISO 3166-1 alpha-2, two capital letters: \"DE\")"
                ))
            }
        }),
    }
}

/// One list: `Some` when enabled and valid; each entry checked by `entry`.
fn list<T>(
    acl: Option<&Acl>,
    name: &str,
    errors: &mut FieldErrors,
    entry: impl Fn(&str) -> Result<T, String>,
) -> Option<List<T>> {
    let acl = acl?;
    let field = format!("options.{name}.excepted_values");
    if acl.excepted_values.len() > MAX_ACL_ENTRIES {
        errors.push(&field, format!("at most {MAX_ACL_ENTRIES} entries"));
        return None;
    }
    let mut entries = Vec::with_capacity(acl.excepted_values.len());
    for (i, v) in acl.excepted_values.iter().enumerate() {
        match entry(v) {
            Ok(e) => entries.push(e),
            Err(m) => errors.push(format!("{field}[{i}]"), m),
        }
    }
    acl.enabled.then_some(List {
        listed_get_in: acl.policy_type == Policy::Deny,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(json: &str) -> Result<Access, Vec<String>> {
        let o: crate::Options = serde_json::from_str(json).unwrap();
        let mut e = FieldErrors::default();
        let a = validate(&o, &mut e);
        let m = e.into_messages();
        if m.is_empty() {
            Ok(a)
        } else {
            Err(m)
        }
    }

    fn seen<'a>(client: &str, referer: Option<&'a str>, ua: Option<&'a str>) -> Seen<'a> {
        Seen {
            client: client.parse().unwrap(),
            referer: referer.map(str::as_bytes),
            user_agent: ua.map(str::as_bytes),
            country: None,
        }
    }

    #[test]
    fn referrer_as_nginx_valid_referers() {
        let a = access(
            r#"{"referrer_acl": {"enabled": true, "policy_type": "deny",
                "excepted_values": ["example.com", "*.player.net"]}}"#,
        )
        .unwrap();
        let r = |referer: Option<&str>| a.check(&seen("1.2.3.4", referer, None));
        assert_eq!(r(None), Ok(()), "no Referer: nginx's none");
        assert_eq!(r(Some("https://example.com/page")), Ok(()));
        assert_eq!(r(Some("HTTP://Example.COM:8443/x")), Ok(()));
        assert_eq!(r(Some("https://a.b.player.net/")), Ok(()));
        assert_eq!(r(Some("https://player.net/")), Err("referrer_acl"));
        assert_eq!(
            r(Some("https://evil.com/?example.com")),
            Err("referrer_acl")
        );
        assert_eq!(r(Some("example.com")), Err("referrer_acl"), "not a URL");
        assert_eq!(r(Some("")), Err("referrer_acl"));
        let a = access(
            r#"{"referrer_acl": {"enabled": true, "policy_type": "allow",
                "excepted_values": ["evil.com"]}}"#,
        )
        .unwrap();
        assert_eq!(
            a.check(&seen("1.2.3.4", Some("http://evil.com"), None)),
            Err("referrer_acl")
        );
        assert_eq!(
            a.check(&seen("1.2.3.4", Some("http://good.com"), None)),
            Ok(())
        );
        assert_eq!(a.check(&seen("1.2.3.4", Some("garbage"), None)), Ok(()));
    }

    #[test]
    fn addresses_v4_and_v6() {
        let a = access(
            r#"{"ip_address_acl": {"enabled": true, "policy_type": "deny",
                "excepted_values": ["192.168.3.2/24", "2a03:d000:2980:7::8/128"]}}"#,
        )
        .unwrap();
        assert_eq!(a.check(&seen("192.168.3.77", None, None)), Ok(()));
        assert_eq!(a.check(&seen("::ffff:192.168.3.1", None, None)), Ok(()));
        assert_eq!(a.check(&seen("2a03:d000:2980:7::8", None, None)), Ok(()));
        assert_eq!(
            a.check(&seen("2a03:d000:2980:7::9", None, None)),
            Err("ip_address_acl")
        );
        assert_eq!(
            a.check(&seen("10.0.0.1", None, None)),
            Err("ip_address_acl")
        );
    }

    #[test]
    fn user_agents_exact_regex_and_empty() {
        let a = access(
            r#"{"user_agent_acl": {"enabled": true, "policy_type": "allow",
                "excepted_values": ["", "curl/8.0", "~^Wget", "~*bot"]}}"#,
        )
        .unwrap();
        let ua = |v: Option<&str>| a.check(&seen("1.2.3.4", None, v));
        assert_eq!(ua(None), Err("user_agent_acl"), "\"\" is no header");
        assert_eq!(ua(Some("")), Err("user_agent_acl"));
        assert_eq!(ua(Some("curl/8.0")), Err("user_agent_acl"));
        assert_eq!(ua(Some("curl/8.1")), Ok(()));
        assert_eq!(ua(Some("Wget/1.21")), Err("user_agent_acl"));
        assert_eq!(ua(Some("x Wget")), Ok(()), "anchored");
        assert_eq!(ua(Some("GoogleBOT/2")), Err("user_agent_acl"));
        assert_eq!(ua(Some("Mozilla/5.0")), Ok(()));
    }

    #[test]
    fn countries_unknown_is_no_match() {
        let a = access(
            r#"{"country_acl": {"enabled": true, "policy_type": "deny", "excepted_values": ["DE"]}}"#,
        )
        .unwrap();
        assert!(a.needs_country());
        let mut s = seen("1.2.3.4", None, None);
        assert_eq!(a.check(&s), Err("country_acl"), "unknown country: not DE");
        s.country = Some(*b"DE");
        assert_eq!(a.check(&s), Ok(()));
        s.country = Some(*b"FR");
        assert_eq!(a.check(&s), Err("country_acl"));
    }

    #[test]
    fn refusals_name_the_entry_and_off_lists_are_checked_not_applied() {
        let e = access(
            r#"{"ip_address_acl": {"enabled": false, "policy_type": "deny",
                "excepted_values": ["10.0.0.0/8", "10.0.0.0/33", "x"]},
                "country_acl": {"enabled": true, "policy_type": "allow", "excepted_values": ["de"]},
                "referrer_acl": {"enabled": true, "policy_type": "allow",
                  "excepted_values": ["https://a.com"]},
                "user_agent_acl": {"enabled": true, "policy_type": "allow",
                  "excepted_values": ["~(unclosed"]}}"#,
        )
        .unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(
            e[0].starts_with("options.referrer_acl.excepted_values[0]"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("options.ip_address_acl.excepted_values[1]"),
            "{e:?}"
        );
        assert!(e[2].contains("excepted_values[2]"), "{e:?}");
        assert!(e[3].contains("regular expression"), "{e:?}");
        assert!(e[4].contains("country code"), "{e:?}");
        let off = access(
            r#"{"ip_address_acl": {"enabled": false, "policy_type": "deny", "excepted_values": []}}"#,
        )
        .unwrap();
        assert!(off.is_empty());
        let o: Result<crate::Options, _> = serde_json::from_str(
            r#"{"ip_address_acl": {"enabled": true, "policy_type": "block", "excepted_values": []}}"#,
        );
        assert!(o.is_err());
    }
}
