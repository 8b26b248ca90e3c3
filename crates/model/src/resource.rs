//! The serde types, field for field as Gcore's CDN resource API names them.

use serde::{Deserialize, Serialize};

/// A CDN resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource {
    /// Resource id.
    pub id: u64,
    /// The resource's main hostname.
    pub cname: String,
    /// More hostnames served by the same resource.
    #[serde(default)]
    pub secondary_hostnames: Vec<String>,
    /// Origin as `host[:port]`.
    pub origin: String,
    /// Scheme used to reach the origin.
    #[serde(default)]
    pub origin_protocol: OriginProtocol,
    /// Inactive resources are not served.
    #[serde(default = "yes")]
    pub active: bool,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Options.
    #[serde(default)]
    pub options: Options,
}

fn yes() -> bool {
    true
}

/// How the edge reaches the origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OriginProtocol {
    /// Plain HTTP.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS.
    #[serde(rename = "HTTPS")]
    Https,
    /// The scheme the client used.
    #[serde(rename = "MATCH")]
    Match,
}

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
}

/// `options.query_string_forwarding`, Gcore's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryStringForwarding {
    /// Whether the option applies.
    pub enabled: bool,
    /// Types of the files whose links get the parameters (e.g. `m3u8`, `mpd`).
    #[serde(default)]
    pub forward_from_file_types: Vec<String>,
    /// Types of the linked files that receive them (e.g. `ts`, `m4s`).
    #[serde(default)]
    pub forward_to_file_types: Vec<String>,
    /// Only these parameters are forwarded.
    #[serde(default)]
    pub forward_only_keys: Vec<String>,
    /// Every parameter but these is forwarded.
    #[serde(default)]
    pub forward_except_keys: Vec<String>,
    /// Tollgate's extension, absent in Gcore's API: instead of copying the playlist's token, the
    /// edge signs each forwarded link for its own directory (same expiry, same client binding),
    /// so renditions in sub-directories (`360p/`, `720p/`) work from one signed master URL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sign_each_directory: bool,
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

/// `options.secure_key`: `{"enabled": bool, "key": string, "type": 0|2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureKey {
    /// Whether links must be signed.
    pub enabled: bool,
    /// The secret key (6 to 32 printable ASCII characters, no whitespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// 0: the token includes the client IP (default); 2: it does not.
    #[serde(rename = "type", default)]
    pub kind: SecureKeyType,
    /// Tollgate's extension for key rotation: a former key that still verifies links (it never
    /// signs), kept while links signed with it age out. Absent in Gcore's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key: Option<String>,
}

/// `secure_key.type`, a number in Gcore's API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum SecureKeyType {
    /// Type 0: the token includes the client IP.
    #[default]
    WithClientIp,
    /// Type 2: the token does not include the client IP.
    WithoutClientIp,
}

impl TryFrom<u8> for SecureKeyType {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            0 => Ok(SecureKeyType::WithClientIp),
            2 => Ok(SecureKeyType::WithoutClientIp),
            other => Err(format!(
                "secure_key.type must be 0 (token includes the client IP) or 2 (it does not), \
                 not {other}"
            )),
        }
    }
}

impl From<SecureKeyType> for u8 {
    fn from(t: SecureKeyType) -> u8 {
        match t {
            SecureKeyType::WithClientIp => 0,
            SecureKeyType::WithoutClientIp => 2,
        }
    }
}

/// `options.edge_cache_settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeCacheSettings {
    /// Whether the option applies.
    pub enabled: bool,
    /// Cache 200/206/301/302 responses this long whatever the origin says (e.g. `"43200s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Honour the origin's cache headers; use this when it sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}
