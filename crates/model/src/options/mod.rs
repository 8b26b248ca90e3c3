//! A resource's options, each in its own module with its type and its validator: the check of
//! what is given, pushing every problem into the resource's list of field errors, and what the edge
//! gets from it. A new option is a field of [`Options`], a module here and one line in
//! [`crate::Resource::validate`].

use serde::{Deserialize, Serialize};

pub(crate) mod cache;
pub(crate) mod forwarding;
pub(crate) mod host_header;
pub(crate) mod methods;
pub(crate) mod secure_key;
pub(crate) mod static_headers;

pub use cache::{EdgeCacheSettings, DEFAULT_CACHE_SECS, MAX_CACHE_SECS};
pub use forwarding::{ForwardKeys, Forwarding, QueryStringForwarding};
pub use secure_key::{SecureKey, SecureKeyType, ValidSecureKey};

/// Resource options. Gcore mixes snake_case and camelCase names; these are its names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
