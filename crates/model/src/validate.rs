//! From a parsed [`Resource`] to a [`ValidResource`], collecting every problem with its field.
//! Each field's validator is next to its type (the resource's own fields in
//! [`crate::resource`], each option in its module of [`crate::options`]); here they are run in
//! turn, all pushing into one [`FieldErrors`].

use std::fmt;

use crate::options::{
    self, cache, delivery, forwarding, host_header, methods, secure_key, static_headers,
};
use crate::options::{Forwarding, ValidSecureKey};
use crate::origin_group::Origins;
use crate::resource::{self, Resource};

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

/// The problems found in a resource so far, in the order found. A validator pushes what it
/// finds and goes on, so that one answer names every problem, not the first.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// `Ok(value)` when nothing was found, else every problem.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }

    /// Each problem as `field: message`, for tests.
    #[cfg(test)]
    pub(crate) fn into_messages(self) -> Vec<String> {
        self.0
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }
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
    /// Where it fetches from: its origin group's sources, or its one `origin` (ports default
    /// to 80 for HTTP, 443 for HTTPS).
    pub origins: Origins,
    /// `Some` when links must be signed.
    pub secure_key: Option<ValidSecureKey>,
    /// Host header for origin requests.
    pub host_header: String,
    /// Which query parameters make up the cache key (`ignoreQueryString`,
    /// `query_params_whitelist`, `query_params_blacklist`).
    pub query_key: crate::options::QueryKey,
    /// Cache time that overrides the origin's headers.
    pub cache_override_secs: Option<u64>,
    /// Cache time when the origin sends no cache headers.
    pub cache_default_secs: u64,
    /// Cache times per status (`edge_cache_settings.custom_values`), before the two above.
    pub cache_by_status: crate::options::StatusTimes,
    /// The time viewers may cache answers (`browser_cache_settings`), when set.
    pub browser_cache_secs: Option<u64>,
    /// Headers added to the answers to viewers (`static_response_headers`).
    pub response_headers: Vec<crate::options::ResponseHeader>,
    /// Headers added to origin requests (`staticRequestHeaders`), names as given.
    pub origin_headers: Vec<(String, String)>,
    /// Query string forwarding into playlists, when enabled.
    pub forwarding: Option<Forwarding>,
    /// Large files fetched from the origin by Range, a slice at a time (`slice`).
    pub slice: bool,
    /// The methods the resource answers (`allowedHttpMethods`).
    pub methods: crate::Methods,
    /// `Access-Control-Allow-Origin` on the answers (`cors`), when on.
    pub cors: Option<crate::options::ValidCors>,
    /// The access lists in force.
    pub access: crate::options::Access,
    /// When a stored copy is served past its freshness (`stale`), when set.
    pub stale: Option<crate::options::StaleOn>,
    /// The per-connection speed limit (`limit_bandwidth`), when on.
    pub bandwidth: Option<crate::options::Bandwidth>,
    /// 301 from `http://` to `https://` (`redirect_http_to_https`).
    pub redirect_https: bool,
    /// Responses with `Set-Cookie` stored once, without it (`ignore_cookie`).
    pub ignore_cookie: bool,
    /// Origin headers kept from viewers (`response_headers_hiding_policy`), when on.
    pub hiding: Option<crate::options::Hiding>,
    /// Compression at the edge (`gzipOn`, `brotli_compression`).
    pub compression: crate::options::Compression,
    /// Links revoked before they expire (`secure_key_revocations`).
    pub revocations: crate::Revocations,
}

impl ValidResource {
    /// Every hostname of the resource, lower-cased.
    pub fn hostnames(&self) -> &[String] {
        &self.hostnames
    }
}

impl Resource {
    /// Checks every field; returns all problems found.
    pub fn validate(mut self) -> Result<ValidResource, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        self.options.check_not_implemented(e);
        // With a group, `origin` is the group's first source: given too, it must be that.
        if let Some(g) = &self.origin_group_detail {
            let primary = g.primary().map(str::to_owned);
            if self.origin.is_some() && self.origin != primary {
                e.push(
                    "origin",
                    format!(
                        "{:?} is not the first source of originGroup {} ({}); give one of them",
                        self.origin.as_deref().unwrap_or_default(),
                        g.id,
                        primary.as_deref().unwrap_or("none")
                    ),
                );
            }
            self.origin = primary;
        }
        let o = &self.options;
        // In the order their problems are reported: the API answers with the list as it is.
        let hostnames = resource::hostnames(&self.cname, &self.secondary_hostnames, e);
        let origins = resource::origins(&self, e);
        resource::gcore_switches(&self, e);
        let secure_key = secure_key::validate(o.secure_key.as_ref(), e);
        let secure_key_on = o.secure_key.as_ref().is_some_and(|s| s.enabled);
        let forwarding = forwarding::validate(o.query_string_forwarding.as_ref(), secure_key_on, e);
        let host_header = host_header::validate(o.host_header.as_ref(), &self.cname, e);
        let (cache_override_secs, cache_default_secs, cache_by_status) =
            cache::validate(o.edge_cache_settings.as_ref(), e);
        let browser_cache_secs = cache::browser(o.browser_cache_settings.as_ref(), e);
        let response_headers =
            options::response_headers::validate(o.static_response_headers.as_ref(), e);
        let origin_headers = static_headers::validate(o.static_request_headers.as_ref(), e);
        let query_key = delivery::query_key(o, e);
        let slice = options::slice(o.slice.as_ref());
        let methods = methods::validate(o.allowed_http_methods.as_ref(), e);
        let cors = options::cors::validate(o.cors.as_ref(), e);
        let access = options::access::validate(o, e);
        let stale = delivery::stale(o.stale.as_ref(), e);
        let bandwidth = delivery::bandwidth(o.limit_bandwidth.as_ref(), e);
        let redirect_https = delivery::switch(o.redirect_http_to_https.as_ref());
        let ignore_cookie = delivery::switch(o.ignore_cookie.as_ref());
        let hiding = delivery::hiding(o.response_headers_hiding_policy.as_ref(), e);
        let compression = delivery::compression(o, e);
        let revocations = crate::revocation::validate(&self.secure_key_revocations, e);

        if !errors.0.is_empty() {
            return Err(errors.0);
        }
        Ok(ValidResource {
            id: self.id,
            hostnames,
            origins,
            secure_key,
            host_header,
            query_key,
            cache_override_secs,
            cache_default_secs,
            cache_by_status,
            browser_cache_secs,
            response_headers,
            origin_headers,
            forwarding,
            slice,
            methods,
            cors,
            access,
            stale,
            bandwidth,
            redirect_https,
            ignore_cookie,
            hiding,
            compression,
            revocations,
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
        assert_eq!(r[0].origins.primaries, [("127.0.0.1".to_owned(), 8081)]);
        let sk = r[0].secure_key.as_ref().unwrap();
        assert!(!sk.bind_client_ip);
        assert_eq!(r[0].host_header, "cdn.example.com");
    }

    #[test]
    fn the_slice_option_in_gcore_shapes() {
        let with = |slice: &str| {
            let json = GOOD.replace(
                r#""options": {"#,
                &format!(r#""options": {{"slice": {slice}, "#),
            );
            parse_resources(&json).map(|r| r[0].slice)
        };
        assert!(with(r#"{"enabled": true, "value": true}"#).unwrap());
        assert!(with(r#"{"enabled": true}"#).unwrap());
        assert!(!with(r#"{"enabled": false, "value": true}"#).unwrap());
        assert!(!with(r#"{"enabled": true, "value": false}"#).unwrap());
        assert!(with(r#"{"enabled": true, "size": 10}"#).is_err());
        assert!(!parse_resources(GOOD).unwrap()[0].slice, "off by default");
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
            (
                GOOD.replace(r#""type": 2"#, r#""type": 2, "debug_secret": "short""#),
                "options.secure_key.debug_secret: 16 to 128",
            ),
            (
                GOOD.replace(r#""type": 2"#, r#""type": 2, "mode": "audit""#),
                "unknown variant `audit`",
            ),
            (GOOD.replace("cdn.example.com", "bad host"), "cname"),
            (
                GOOD.replace(r#""id": 1,"#, r#""id": 1, "bogus": 1,"#),
                "unknown field `bogus`",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""rewrite": {}, "secure_key""#),
                "options.rewrite.enabled: expected an object",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""rewrite": {"enabled": true, "body": "/a /b"}, "secure_key""#),
                "options.rewrite: option rewrite is not supported by Tollgate",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""rewrit": null, "secure_key""#),
                "options.rewrit: unknown field `rewrit`",
            ),
            (
                GOOD.replace(r#""secure_key""#, r#""edge_cache_settings": {"enabled": true, "custom_values": {"4o4": "10s"}}, "secure_key""#),
                "options.edge_cache_settings.custom_values.4o4: a status code",
            ),
            (GOOD.replace(r#""origin": "127.0.0.1:8081","#, ""), "origin: give origin"),
            (
                GOOD.replace(r#""origin": "127.0.0.1:8081","#, r#""originGroup": 3,"#),
                "originGroup: no origin group 3",
            ),
            (
                GOOD.replace(r#""id": 1,"#, r#""id": 1, "sslData": 7,"#),
                "sslData: not supported by Tollgate",
            ),
            (
                GOOD.replace(r#""id": 1,"#, r#""id": 1, "proxy_ssl_ca": 7,"#),
                "proxy_ssl_ca: not supported by Tollgate",
            ),
            (
                GOOD.replace(r#""id": 1,"#, r#""id": 1, "waap_api_domain_enabled": true,"#),
                "waap_api_domain_enabled: not supported by Tollgate",
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
            let Err(errs) = parse_resources(&json) else {
                panic!("{want}: accepted {json}");
            };
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
    fn debug_never_prints_a_key() {
        let json = GOOD.replace("secret_key", "s3cr3t-key-123").replace(
            r#""type": 2"#,
            r#""type": 2, "previous_key": "old-s3cr3t-456""#,
        );
        let valid = parse_resources(&json).unwrap().remove(0);
        let sk = valid.resource.options.secure_key.clone().unwrap();
        for printed in [
            format!("{:?}", valid.resource),
            format!("{sk:?}"),
            format!("{valid:?}"),
            format!("{valid:#?}"),
        ] {
            assert!(!printed.contains("s3cr3t"), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
        assert_eq!(
            format!("{sk:?}"),
            "SecureKey { enabled: true, key: Some(<redacted>), kind: WithoutClientIp, \
             previous_key: Some(<redacted>), mode: None, debug_secret: None, ip_prefix: None }"
        );
        // The JSON keeps them: the API returns a resource to its owner.
        let out = serde_json::to_string(&valid.resource).unwrap();
        assert!(out.contains(r#""key":"s3cr3t-key-123""#) && out.contains("old-s3cr3t-456"));
    }

    #[test]
    fn own_hosts() {
        let json = GOOD.replace(
            r#""secondaryHostnames": []"#,
            r#""secondaryHostnames": ["Alt.Example.com"]"#,
        );
        let r = parse_resources(&json).unwrap().remove(0);
        for own in [
            "cdn.example.com",
            "CDN.example.com:8080",
            "alt.example.com",
            "alt.example.com:",
        ] {
            assert!(r.is_own_host(own.as_bytes()), "{own}");
        }
        for other in [
            "",
            "example.com",
            "cdn.example.com.evil",
            "cdn.example.com@evil.example",
            "evil.example@cdn.example.com",
            "[::1]:80",
            "[cdn.example.com]",
        ] {
            assert!(!r.is_own_host(other.as_bytes()), "{other}");
        }
        assert_eq!(
            r.secure_key
                .as_ref()
                .and_then(|s| s.signing_key())
                .map(|k| k.expose_secret()),
            Some("secret_key")
        );
    }

    #[test]
    fn gcore_options_null_or_disabled_are_accepted() {
        // What Gcore's Go client writes: every option name, null but the configured ones.
        let mut opts = serde_json::Map::new();
        for name in crate::GCORE_OPTIONS {
            opts.insert(name.into(), serde_json::Value::Null);
        }
        opts.insert(
            "secure_key".into(),
            serde_json::json!({"enabled": true, "key": "secret_key", "type": 2}),
        );
        opts.insert(
            "edge_cache_settings".into(),
            serde_json::json!({"enabled": true, "value": "10m", "default": "", "custom_values": {}}),
        );
        opts.insert(
            "brotli_compression".into(),
            serde_json::json!({"enabled": false, "value": ["text/html"]}),
        );
        let json = serde_json::json!([{"id": 1, "cname": "cdn.example.com", "origin": "o.example",
            "sslEnabled": false, "proxy_ssl_enabled": false, "sslData": null, "proxy_ssl_ca": null,
            "proxy_ssl_data": null, "primary_resource": null, "waap_api_domain_enabled": false,
            "options": opts}]);
        let r = parse_resources(&json.to_string()).unwrap().remove(0);
        assert_eq!(r.cache_override_secs, Some(600));
        assert!(r.secure_key.is_some());
        // The nulls are gone; the disabled option is kept and served back.
        let back = serde_json::to_value(&r.resource).unwrap();
        let names: Vec<_> = back["options"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            names,
            ["brotli_compression", "edge_cache_settings", "secure_key"]
        );
    }

    #[test]
    fn an_origin_group_resolved_is_what_the_edge_fetches_from() {
        let group = serde_json::json!({"id": 4, "name": "g", "use_next": true,
            "sources": [{"source": "b.example", "backup": true}, {"source": "a.example:81"}]});
        let with = |origin: serde_json::Value| {
            let json = serde_json::json!([{"id": 1, "cname": "cdn.example.com", "origin": origin,
                "originGroup": 4, "originGroup_detail": group, "originProtocol": "HTTPS"}]);
            parse_resources(&json.to_string())
        };
        let r = with(serde_json::Value::Null).unwrap().remove(0);
        assert_eq!(r.origins.primaries, [("a.example".to_owned(), 81)]);
        assert_eq!(r.origins.backups, [("b.example".to_owned(), 443)]);
        assert_eq!(r.resource.origin.as_deref(), Some("a.example:81"));
        assert!(with("a.example:81".into()).is_ok());
        let errs = with("c.example".into()).unwrap_err();
        assert!(
            errs[0]
                .message
                .contains("not the first source of originGroup 4"),
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
    fn a_year_of_cache_is_the_most() {
        let year = GOOD.replace(
            r#""secure_key""#,
            r#""edge_cache_settings": {"enabled": true, "value": "365d"}, "secure_key""#,
        );
        assert_eq!(
            parse_resources(&year).unwrap()[0].cache_override_secs,
            Some(crate::MAX_CACHE_SECS)
        );
    }
}
