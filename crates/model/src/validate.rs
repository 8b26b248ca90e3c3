//! From a parsed [`Resource`] to a [`ValidResource`], collecting every problem with its field.

use std::fmt;

use tollgate_token::Key;

use crate::duration::parse_gcore_duration;
use crate::resource::{OriginProtocol, Resource, SecureKeyType};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as a JSON path (`options.secure_key.key`).
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The enforced secure-token settings of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSecureKey {
    /// Keys to try in order: the first signs, a second (the previous key) only verifies.
    pub keys: Vec<Key>,
    /// Whether tokens include the client address (type 0).
    pub bind_client_ip: bool,
}

/// A resource whose every field has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidResource {
    /// Resource id.
    pub id: u64,
    /// The resource as given (for serving it back).
    pub resource: Resource,
    /// Lower-cased hostnames: cname first, then the secondary ones.
    hostnames: Vec<String>,
    /// Origin host (no port) and port.
    pub origin_host: String,
    /// Origin port (default 80 for HTTP, 443 for HTTPS).
    pub origin_port: u16,
    /// `Some` when links must be signed.
    pub secure_key: Option<ValidSecureKey>,
    /// Host header for origin requests.
    pub host_header: String,
    /// Leave the query string out of the cache key.
    pub ignore_query_string: bool,
    /// Cache time that overrides the origin's headers.
    pub cache_override_secs: Option<u64>,
    /// Cache time when the origin sends no cache headers.
    pub cache_default_secs: u64,
    /// Headers added to origin requests (`staticRequestHeaders`), names as given.
    pub origin_headers: Vec<(String, String)>,
    /// Query string forwarding into playlists, when enabled.
    pub forwarding: Option<Forwarding>,
}

/// Which query parameters of a playlist request are copied into the links inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardKeys {
    /// All of them.
    All,
    /// Only these.
    Only(Vec<String>),
    /// All but these.
    Except(Vec<String>),
}

impl ForwardKeys {
    /// Whether parameter `name` is forwarded.
    pub fn forwards(&self, name: &[u8]) -> bool {
        match self {
            ForwardKeys::All => true,
            ForwardKeys::Only(keys) => keys.iter().any(|k| k.as_bytes() == name),
            ForwardKeys::Except(keys) => !keys.iter().any(|k| k.as_bytes() == name),
        }
    }
}

/// `query_string_forwarding`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// Extensions (lower case) of the playlists whose links are rewritten.
    pub from_types: Vec<String>,
    /// Extensions (lower case) of the linked files that get the parameters.
    pub to_types: Vec<String>,
    /// Which parameters go.
    pub keys: ForwardKeys,
    /// Sign each link for its own directory instead of copying the playlist's token.
    pub sign_each_directory: bool,
}

impl ValidResource {
    /// Every hostname of the resource, lower-cased.
    pub fn hostnames(&self) -> &[String] {
        &self.hostnames
    }
}

/// Cache time for responses without cache headers when the resource does not set one: the
/// reference edge's `proxy_cache_valid 200 60m`.
pub const DEFAULT_CACHE_SECS: u64 = 3600;

/// The longest cache time a resource may set (`edge_cache_settings.value` and `default`): a
/// year. Longer is refused with a 400 naming the field, rather than clamped silently.
pub const MAX_CACHE_SECS: u64 = 365 * 86_400;

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `host[:port]` as a Host header carries it: a hostname, an IPv4 address or a bracketed IPv6
/// address, and a port of 1 to 65535.
fn valid_host_port(v: &str) -> bool {
    let (host, port) = match v.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                match tail.strip_prefix(':') {
                    Some(p) => ("", Some(p)),
                    None if tail.is_empty() => ("", None),
                    None => return false,
                }
            }
            _ => return false,
        },
        None => match v.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (v, None),
        },
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    port_ok
        && (v.starts_with('[')
            || host.parse::<std::net::Ipv4Addr>().is_ok()
            || valid_hostname(host))
}

/// Most headers in `staticRequestHeaders`.
pub const MAX_STATIC_HEADERS: usize = 50;

/// Headers the edge itself sets on origin requests, which a resource may not replace.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "range",
    "accept-encoding",
];

/// Gcore's rules for request headers: names of letters, digits, `-` and `_`; values of
/// letters, digits, spaces and `-_/:=.`, not starting or ending with a space.
fn check_request_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 255
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("a header name is 1 to 255 letters, digits, '-' or '_'".to_owned());
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("{name} is set by the edge itself"));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b" -_/:=.".contains(&b);
    if value.is_empty()
        || value.len() > 4096
        || !value.bytes().all(allowed)
        || value.starts_with(' ')
        || value.ends_with(' ')
    {
        return Err(
            "a header value is letters, digits, spaces and -_/:=. (not at either end)".to_owned(),
        );
    }
    Ok(())
}

/// Splits `host[:port]`; IPv6 literals go in brackets.
fn split_origin(origin: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = origin.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match origin.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (origin, None),
    };
    (valid_hostname(host) || host.parse::<std::net::Ipv4Addr>().is_ok())
        .then(|| (host.to_ascii_lowercase(), port))
}

impl Resource {
    /// Checks every field; returns all problems found.
    pub fn validate(self) -> Result<ValidResource, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
            })
        };

        let mut hostnames = Vec::new();
        for (field, h) in std::iter::once(("cname".to_owned(), &self.cname)).chain(
            self.secondary_hostnames
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("secondaryHostnames[{i}]"), h)),
        ) {
            let lower = h.to_ascii_lowercase();
            if !valid_hostname(&lower) {
                err(&field, format!("{h:?} is not a valid hostname"));
            } else if hostnames.contains(&lower) {
                err(&field, format!("{h} is listed twice"));
            } else {
                hostnames.push(lower);
            }
        }

        let (origin_host, origin_port) = match split_origin(&self.origin) {
            Some((host, port)) => {
                let default = match self.origin_protocol {
                    OriginProtocol::Https => 443,
                    _ => 80,
                };
                (host, port.unwrap_or(default))
            }
            None => {
                err(
                    "origin",
                    format!(
                        "{:?} is not host[:port] (e.g. origin.example.com:8080)",
                        self.origin
                    ),
                );
                (String::new(), 0)
            }
        };

        let secure_key = match &self.options.secure_key {
            Some(sk) if sk.enabled => match sk.key.as_deref() {
                None => {
                    err(
                        "options.secure_key.key",
                        "a key is required when secure_key is enabled".to_owned(),
                    );
                    None
                }
                Some(k) => {
                    let mut keys = Vec::with_capacity(2);
                    match Key::new(k) {
                        Ok(key) => keys.push(key),
                        Err(e) => err("options.secure_key.key", e.to_string()),
                    }
                    match sk.previous_key.as_deref().map(Key::new) {
                        None => {}
                        Some(Ok(_)) if sk.previous_key.as_deref() == Some(k) => err(
                            "options.secure_key.previous_key",
                            "must differ from key".to_owned(),
                        ),
                        Some(Ok(old)) => keys.push(old),
                        Some(Err(e)) => err("options.secure_key.previous_key", e.to_string()),
                    }
                    Some(ValidSecureKey {
                        keys,
                        bind_client_ip: sk.kind == SecureKeyType::WithClientIp,
                    })
                }
            },
            // Off, but stored and served back: what is stored is valid all the same, so that
            // turning it on later cannot enable a key the API never checked.
            Some(sk) => {
                for (field, key) in [
                    ("options.secure_key.key", &sk.key),
                    ("options.secure_key.previous_key", &sk.previous_key),
                ] {
                    if let Some(Err(e)) = key.as_deref().map(Key::new) {
                        err(field, e.to_string());
                    }
                }
                None
            }
            None => None,
        };
        let forwarding = match self
            .options
            .query_string_forwarding
            .as_ref()
            .filter(|q| q.enabled)
        {
            None => None,
            Some(q) => {
                let f = "options.query_string_forwarding";
                let types = |list: &[String], name: &str, err: &mut dyn FnMut(&str, String)| {
                    if list.is_empty() {
                        err(
                            &format!("{f}.{name}"),
                            "list at least one file type, e.g. \"m3u8\"".into(),
                        );
                    }
                    for (i, t) in list.iter().enumerate() {
                        let ok = !t.is_empty()
                            && t.len() <= 16
                            && t.bytes().all(|b| b.is_ascii_alphanumeric());
                        if !ok {
                            err(
                                &format!("{f}.{name}[{i}]"),
                                format!(
                                    "{t:?} is not a file extension (letters and digits, no dot)"
                                ),
                            );
                        }
                    }
                    list.iter()
                        .map(|t| t.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                };
                let from_types = types(
                    &q.forward_from_file_types,
                    "forward_from_file_types",
                    &mut err,
                );
                let to_types = types(&q.forward_to_file_types, "forward_to_file_types", &mut err);
                for (name, list) in [
                    ("forward_only_keys", &q.forward_only_keys),
                    ("forward_except_keys", &q.forward_except_keys),
                ] {
                    for (i, k) in list.iter().enumerate() {
                        if k.is_empty()
                            || k.bytes()
                                .any(|b| !(b.is_ascii_alphanumeric() || b"-_.~".contains(&b)))
                        {
                            err(
                                &format!("{f}.{name}[{i}]"),
                                format!("{k:?} is not a query parameter name"),
                            );
                        }
                    }
                }
                let keys = match (
                    q.forward_only_keys.is_empty(),
                    q.forward_except_keys.is_empty(),
                ) {
                    (true, true) => ForwardKeys::All,
                    (false, true) => ForwardKeys::Only(q.forward_only_keys.clone()),
                    (true, false) => ForwardKeys::Except(q.forward_except_keys.clone()),
                    (false, false) => {
                        err(
                            &format!("{f}.forward_except_keys"),
                            "give forward_only_keys or forward_except_keys, not both".into(),
                        );
                        ForwardKeys::All
                    }
                };
                Some(Forwarding {
                    from_types,
                    to_types,
                    keys,
                    sign_each_directory: q.sign_each_directory,
                })
            }
        };
        if forwarding.as_ref().is_some_and(|f| f.sign_each_directory)
            && !self.options.secure_key.as_ref().is_some_and(|s| s.enabled)
        {
            err(
                "options.query_string_forwarding.sign_each_directory",
                "needs the secure token on (it signs links with the resource's key)".into(),
            );
        }
        if let Some(t) = &self.options.host_header {
            // Checked even when off: it is stored and served back.
            if (t.enabled || !t.value.is_empty()) && !valid_host_port(&t.value) {
                err(
                    "options.hostHeader.value",
                    format!(
                        "{:?} is not a host[:port] (a hostname, an IPv4 address or [IPv6], and \
                         a port of 1 to 65535)",
                        t.value
                    ),
                );
            }
        }
        let host_header = match &self.options.host_header {
            Some(t) if t.enabled => t.value.clone(),
            _ => self.cname.to_ascii_lowercase(),
        };

        let mut cache_override_secs = None;
        let mut cache_default_secs = DEFAULT_CACHE_SECS;
        // Checked even when off (stored and served back); in force only when on.
        if let Some(c) = self.options.edge_cache_settings.as_ref() {
            let mut time = |field: &str, v: &Option<String>| -> Option<u64> {
                match parse_gcore_duration(v.as_deref()?) {
                    Ok(s) if s <= MAX_CACHE_SECS => Some(s),
                    Ok(_) => {
                        err(field, "at most 365d (one year)".to_owned());
                        None
                    }
                    Err(e) => {
                        err(field, e);
                        None
                    }
                }
            };
            let value = time("options.edge_cache_settings.value", &c.value);
            let default = time("options.edge_cache_settings.default", &c.default);
            if c.enabled {
                cache_override_secs = value;
                cache_default_secs = default.unwrap_or(DEFAULT_CACHE_SECS);
            }
        }
        let mut origin_headers = Vec::new();
        if let Some(t) = self
            .options
            .static_request_headers
            .as_ref()
            .filter(|t| t.enabled)
        {
            for (name, value) in &t.value {
                let field = format!("options.staticRequestHeaders.value.{name}");
                match check_request_header(name, value) {
                    Ok(()) => origin_headers.push((name.clone(), value.clone())),
                    Err(m) => err(&field, m),
                }
            }
            if t.value.len() > MAX_STATIC_HEADERS {
                err(
                    "options.staticRequestHeaders.value",
                    format!("at most {MAX_STATIC_HEADERS} headers"),
                );
            }
        }
        let ignore_query_string = self
            .options
            .ignore_query_string
            .as_ref()
            .is_some_and(|t| t.enabled && t.value);

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ValidResource {
            id: self.id,
            hostnames,
            origin_host,
            origin_port,
            secure_key,
            host_header,
            ignore_query_string,
            cache_override_secs,
            cache_default_secs,
            origin_headers,
            forwarding,
            resource: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{parse_resources, SecureKeyType};

    const GOOD: &str = r#"[{"id": 1, "cname": "cdn.example.com", "secondaryHostnames": [],
        "origin": "127.0.0.1:8081", "originProtocol": "HTTP",
        "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}}}]"#;

    #[test]
    fn issue_example_parses() {
        let r = parse_resources(GOOD).unwrap();
        assert_eq!(r[0].hostnames(), ["cdn.example.com"]);
        assert_eq!(
            (r[0].origin_host.as_str(), r[0].origin_port),
            ("127.0.0.1", 8081)
        );
        let sk = r[0].secure_key.as_ref().unwrap();
        assert!(!sk.bind_client_ip);
        assert_eq!(r[0].host_header, "cdn.example.com");
    }

    #[test]
    fn type_defaults_to_client_ip() {
        let json = GOOD.replace(r#", "type": 2"#, "");
        let r = parse_resources(&json).unwrap();
        assert!(r[0].secure_key.as_ref().unwrap().bind_client_ip);
        assert_eq!(
            r[0].resource.options.secure_key.as_ref().unwrap().kind,
            SecureKeyType::WithClientIp
        );
    }

    #[test]
    fn errors_name_fields() {
        let cases = [
            (
                GOOD.replace("secret_key", "short"),
                "options.secure_key.key",
            ),
            (
                GOOD.replace("secret_key", "has space"),
                "options.secure_key.key",
            ),
            (
                GOOD.replace(r#""type": 2"#, r#""type": 1"#),
                "secure_key.type",
            ),
            (GOOD.replace("127.0.0.1:8081", "http://x"), "origin"),
            (GOOD.replace("cdn.example.com", "bad host"), "cname"),
            (
                GOOD.replace(r#""id": 1,"#, r#""id": 1, "bogus": 1,"#),
                "unknown field `bogus`",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""rewrite": {}, "secure_key""#),
                "unknown field `rewrite`",
            ),
            // Stored keys are checked even while the secure token is off.
            (
                GOOD.replace(r#""enabled": true, "key": "secret_key""#, r#""enabled": false, "key": "5char""#),
                "options.secure_key.key",
            ),
            (
                GOOD.replace(r#""enabled": true, "key": "secret_key""#, r#""enabled": false, "key": "a\u0000bcdefg""#),
                "options.secure_key.key",
            ),
            (
                GOOD.replace(r#""enabled": true, "key": "secret_key""#, r#""enabled": false, "key": "ключключключ""#),
                "options.secure_key.key",
            ),
            (
                GOOD.replace(r#""type": 2"#, r#""type": 2, "previous_key": "x\ny_zzzzzz""#),
                "options.secure_key.previous_key",
            ),
            // Cache times beyond a year, and ones that would overflow, are refused.
            (
                GOOD.replace(r#""secure_key""#, r#""edge_cache_settings": {"enabled": true, "value": "213503982334601d"}, "secure_key""#),
                "options.edge_cache_settings.value",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""edge_cache_settings": {"enabled": true, "value": "18446744073709551615s"}, "secure_key""#),
                "options.edge_cache_settings.value",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""edge_cache_settings": {"enabled": false, "default": "366d"}, "secure_key""#),
                "options.edge_cache_settings.default",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""hostHeader": {"enabled": true, "value": "a b"}, "secure_key""#),
                "options.hostHeader.value",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""hostHeader": {"enabled": true, "value": "host/path"}, "secure_key""#),
                "options.hostHeader.value",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""hostHeader": {"enabled": true, "value": "origin.example.com:0"}, "secure_key""#),
                "options.hostHeader.value",
            ),
        ];
        for (json, want) in cases {
            let errs = parse_resources(&json).unwrap_err();
            let text = errs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            assert!(text.contains(want), "{want}: {text}");
        }
    }

    #[test]
    fn duplicate_hostnames_across_resources() {
        let two = format!(
            "[{},{}]",
            &GOOD[1..GOOD.len() - 1],
            GOOD[1..GOOD.len() - 1].replace(r#""id": 1"#, r#""id": 2"#)
        );
        let errs = parse_resources(&two).unwrap_err();
        assert!(
            errs[0].message.contains("already used by resource 1"),
            "{errs:?}"
        );
    }

    #[test]
    fn round_trips_through_json() {
        let r = parse_resources(GOOD).unwrap();
        let json = serde_json::to_string(&r[0].resource).unwrap();
        let again: crate::Resource = serde_json::from_str(&json).unwrap();
        assert_eq!(again, r[0].resource);
    }

    #[test]
    fn host_header_takes_what_a_host_header_carries() {
        for ok in [
            "origin.example.com",
            "origin.example.com:8080",
            "10.0.0.1:80",
            "[2001:db8::1]",
            "[::1]:8443",
        ] {
            assert!(super::valid_host_port(ok), "{ok}");
        }
        for bad in [
            "", "a b", "x/y", "h:", "h:65536", "h:0", "h:+1", "::1", "[::1", "[zz]:80", "[::1]x",
            "a..b",
        ] {
            assert!(!super::valid_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn a_year_of_cache_is_the_most() {
        let year = GOOD.replace(
            r#""secure_key""#,
            r#""edge_cache_settings": {"enabled": true, "value": "365d"}, "secure_key""#,
        );
        assert_eq!(
            parse_resources(&year).unwrap()[0].cache_override_secs,
            Some(super::MAX_CACHE_SECS)
        );
    }
}
