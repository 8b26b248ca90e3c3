//! `options.edge_cache_settings`: how long responses are cached.

use serde::{Deserialize, Serialize};

use crate::duration::parse_gcore_duration;
use crate::validate::FieldErrors;

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
    /// Gcore's per-status cache times (`{"404": "10s"}`): only empty is accepted so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_values: Option<std::collections::BTreeMap<String, String>>,
}

/// Cache time for responses without cache headers when the resource does not set one: the
/// reference edge's `proxy_cache_valid 200 60m`.
pub const DEFAULT_CACHE_SECS: u64 = 3600;

/// The longest cache time a resource may set (`edge_cache_settings.value` and `default`): a
/// year. Longer is refused with a 400 naming the field, rather than clamped silently.
pub const MAX_CACHE_SECS: u64 = 365 * 86_400;

/// The cache times in force: the override of the origin's headers, if any, and the time for
/// responses without them.
pub(crate) fn validate(
    c: Option<&EdgeCacheSettings>,
    errors: &mut FieldErrors,
) -> (Option<u64>, u64) {
    // Checked even when off (stored and served back); in force only when on.
    let Some(c) = c else {
        return (None, DEFAULT_CACHE_SECS);
    };
    if c.custom_values.as_ref().is_some_and(|m| !m.is_empty()) {
        errors.push(
            "options.edge_cache_settings.custom_values",
            "per-status cache times are not supported by Tollgate; use {}",
        );
    }
    // An empty duration is one not given (Gcore's clients send `"default": ""`).
    let mut time = |field: &str, v: &Option<String>| -> Option<u64> {
        match parse_gcore_duration(v.as_deref().filter(|v| !v.is_empty())?) {
            Ok(s) if s <= MAX_CACHE_SECS => Some(s),
            Ok(_) => {
                errors.push(field, "at most 365d (one year)");
                None
            }
            Err(e) => {
                errors.push(field, e);
                None
            }
        }
    };
    let value = time("options.edge_cache_settings.value", &c.value);
    let default = time("options.edge_cache_settings.default", &c.default);
    if c.enabled {
        (value, default.unwrap_or(DEFAULT_CACHE_SECS))
    } else {
        (None, DEFAULT_CACHE_SECS)
    }
}
