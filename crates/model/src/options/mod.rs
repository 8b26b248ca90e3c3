//! A resource's options, each in its own module with its type and its validator: the check of
//! what is given, pushing every problem into the resource's list of field errors, and what the edge
//! gets from it. A new option is a field of [`Options`], a module here and one line in
//! [`crate::Resource::validate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

pub(crate) mod access;
pub(crate) mod cache;
pub(crate) mod cors;
pub(crate) mod delivery;
pub(crate) mod forwarding;
pub(crate) mod host_header;
pub(crate) mod methods;
pub(crate) mod response_headers;
pub(crate) mod secure_key;
pub(crate) mod static_headers;

pub use access::{Access, Acl, Policy, Seen, MAX_ACL_ENTRIES};
pub use cache::{EdgeCacheSettings, StatusTimes, DEFAULT_CACHE_SECS, MAX_CACHE_SECS};
pub use cors::{AllowOrigin, Cors, ValidCors};
pub use delivery::{
    parse_size, Bandwidth, Compression, HideMode, Hiding, HidingPolicy, LimitBandwidth, LimitType,
    QueryKey, StaleOn, BROTLI_TYPES, GZIP_TYPES, STALE_CONDITIONS,
};
pub use forwarding::{ForwardKeys, Forwarding, QueryStringForwarding};
pub use response_headers::{ResponseHeader, StaticResponseHeaders};
pub use secure_key::{IpPrefix, SecureKey, SecureKeyMode, SecureKeyType, ValidSecureKey};

/// Resource options. Gcore mixes snake_case and camelCase names; these are its names.
///
/// The options Tollgate implements are fields; any other of Gcore's option names lands in
/// [`Options::not_implemented`], where it is accepted only turned off (`{"enabled": false,
/// ...}`, kept and served back) or `null` (not added). A name Gcore does not have is an
/// unknown field, as anywhere else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// The "Secure token" option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_key: Option<SecureKey>,
    /// Host header sent to the origin (default: the resource's cname).
    #[serde(
        rename = "hostHeader",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub host_header: Option<OptionToggle<String>>,
    /// Leave the query string out of the cache key.
    #[serde(
        rename = "ignoreQueryString",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_query_string: Option<OptionToggle<bool>>,
    /// How long responses are cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_cache_settings: Option<EdgeCacheSettings>,
    /// Headers added to every request to the origin, e.g. a secret the origin checks so that
    /// only the CDN can fetch from it.
    #[serde(
        rename = "staticRequestHeaders",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub static_request_headers: Option<OptionToggle<std::collections::BTreeMap<String, String>>>,
    /// Copying `md5`/`expires` from playlists into the links inside them (HLS/DASH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string_forwarding: Option<QueryStringForwarding>,
    /// Large files fetched from the origin by Range, one slice at a time (Gcore's "large
    /// files delivery optimization", nginx's `slice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Slice>,
    /// The HTTP methods the resource answers; others get 405 (default: `GET`, `HEAD`).
    #[serde(
        rename = "allowedHttpMethods",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_http_methods: Option<OptionToggle<Vec<String>>>,
    /// The `Cache-Control: max-age` sent to viewers, whatever the edge's own time
    /// (`"3600s"`; `"0s"`: `no-cache`), as nginx's `expires`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_cache_settings: Option<OptionToggle<String>>,
    /// Headers added to the answers to viewers (nginx's `add_header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_response_headers: Option<StaticResponseHeaders>,
    /// `Access-Control-Allow-Origin` on the answers (`cors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Access by the `Referer`'s domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_acl: Option<Acl>,
    /// Access by the client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_acl: Option<Acl>,
    /// Access by `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent_acl: Option<Acl>,
    /// Access by the client's country (the edge's GeoIP database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_acl: Option<Acl>,
    /// "Always online": when a stored copy is served past its freshness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<OptionToggle<Vec<String>>>,
    /// Per-connection speed limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bandwidth: Option<LimitBandwidth>,
    /// 301 from `http://` to `https://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_http_to_https: Option<OptionToggle<bool>>,
    /// Only these query parameters make up the cache key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params_whitelist: Option<OptionToggle<Vec<String>>>,
    /// These query parameters stay out of the cache key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params_blacklist: Option<OptionToggle<Vec<String>>>,
    /// Responses with `Set-Cookie` stored once, without the cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_cookie: Option<OptionToggle<bool>>,
    /// Origin headers kept from viewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers_hiding_policy: Option<HidingPolicy>,
    /// gzip at the edge, for Gcore's fixed list of types.
    #[serde(rename = "gzipOn", default, skip_serializing_if = "Option::is_none")]
    pub gzip_on: Option<OptionToggle<bool>>,
    /// Brotli at the edge, for the types listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brotli_compression: Option<OptionToggle<Vec<String>>>,
    /// Gcore's other options, by name, as given: accepted only turned off (see [`GCORE_OPTIONS`]).
    #[serde(flatten)]
    pub not_implemented: BTreeMap<String, serde_json::Value>,
}

/// Every option name of Gcore's CDN resource API, in Gcore's spelling: the 51 of the official
/// SDK's `Options` (gcore 0.59.0), and those Gcore's Go client (the Terraform provider's, v1.0.36)
/// or earlier API documents add (`bot_challenge_module`, `bot_protection`, `request_limiter`,
/// `waf`).
pub const GCORE_OPTIONS: [&str; 55] = [
    "allowedHttpMethods",
    "bot_challenge_module",
    "bot_protection",
    "brotli_compression",
    "browser_cache_settings",
    "cache_http_headers",
    "cors",
    "country_acl",
    "disable_cache",
    "disable_proxy_force_ranges",
    "edge_cache_settings",
    "fastedge",
    "fetch_compressed",
    "follow_origin_redirect",
    "force_return",
    "forward_host_header",
    "grpc_passthrough",
    "gzipOn",
    "hostHeader",
    "http3_enabled",
    "ignore_cookie",
    "ignoreQueryString",
    "image_stack",
    "ip_address_acl",
    "limit_bandwidth",
    "network_error_logging",
    "proxy_cache_key",
    "proxy_cache_methods_set",
    "proxy_connect_timeout",
    "proxy_read_timeout",
    "query_params_blacklist",
    "query_params_whitelist",
    "query_string_forwarding",
    "redirect_http_to_https",
    "redirect_https_to_http",
    "referrer_acl",
    "request_limiter",
    "response_headers_hiding_policy",
    "rewrite",
    "secure_key",
    "slice",
    "sni",
    "stale",
    "static_response_headers",
    "staticHeaders",
    "staticRequestHeaders",
    "tls_ciphers",
    "tls_versions",
    "use_default_le_chain",
    "use_dns01_le_challenge",
    "use_rsa_le_cert",
    "user_agent_acl",
    "waap",
    "waf",
    "websockets",
];

impl Options {
    /// Drops the options given as `null` (Gcore: not added) and checks the rest of
    /// [`Options::not_implemented`]: each must be one of Gcore's names, turned off: `"enabled":
    /// false`, or a switch whose `"value"` is `false` (every such option of Gcore's is off at
    /// false, which is what Tollgate does: no compression, no redirect, no WebSockets...).
    pub(crate) fn check_not_implemented(&mut self, errors: &mut FieldErrors) {
        for name in self.not_implemented.keys() {
            if !GCORE_OPTIONS.contains(&name.as_str()) {
                errors.push(
                    format!("options.{name}"),
                    format!("unknown field `{name}`: not an option of Gcore's API"),
                );
            }
        }
        self.not_implemented
            .retain(|name, v| !v.is_null() && GCORE_OPTIONS.contains(&name.as_str()));
        for (name, v) in &self.not_implemented {
            let field = format!("options.{name}");
            match v.get("enabled") {
                Some(serde_json::Value::Bool(false)) => {}
                Some(serde_json::Value::Bool(true))
                    if v.get("value") == Some(&serde_json::Value::Bool(false)) => {}
                Some(serde_json::Value::Bool(true)) => errors.push(
                    field,
                    format!("option {name} is not supported by Tollgate (leave it out, null or disabled)"),
                ),
                _ => errors.push(
                    format!("{field}.enabled"),
                    "expected an object with \"enabled\": true or false",
                ),
            }
        }
    }
}

/// `slice`: `{"enabled": true, "value": true}` as Gcore answers it; `value` may be left out
/// (it then follows `enabled`). In force when both are true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    /// Whether the option applies.
    pub enabled: bool,
    /// Gcore's value for the option (`true` to slice).
    #[serde(default = "yes")]
    pub value: bool,
}

fn yes() -> bool {
    true
}

/// Whether `slice` is in force.
pub(crate) fn slice(s: Option<&Slice>) -> bool {
    s.is_some_and(|s| s.enabled && s.value)
}

/// Gcore's usual option shape: `{"enabled": bool, "value": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionToggle<T> {
    /// Whether the option applies.
    pub enabled: bool,
    /// Its value.
    pub value: T,
}

/// `ignoreQueryString`: any boolean is valid; in force when on and true.
pub(crate) fn ignore_query_string(t: Option<&OptionToggle<bool>>) -> bool {
    t.is_some_and(|t| t.enabled && t.value)
}
