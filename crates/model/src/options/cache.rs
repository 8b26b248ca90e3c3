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
    /// Per-status cache times, before `value` and `default`: `{"404": "10s", "any": "1m"}`
    /// (`"0s"`: not cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_values: Option<std::collections::BTreeMap<String, String>>,
}

/// `custom_values` in force: a cache time per status, and one for any other status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusTimes {
    by_status: Vec<(u16, u64)>,
    any: Option<u64>,
}

impl StatusTimes {
    /// The time set for `status` (its own, else `any`), if one is.
    pub fn get(&self, status: u16) -> Option<u64> {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, t)| *t)
            .or(self.any)
    }
}

/// Cache time for responses without cache headers when the resource does not set one: the
/// reference edge's `proxy_cache_valid 200 60m`.
pub const DEFAULT_CACHE_SECS: u64 = 3600;

/// The longest cache time a resource may set (`edge_cache_settings.value` and `default`): a
/// year. Longer is refused with a 400 naming the field, rather than clamped silently.
pub const MAX_CACHE_SECS: u64 = 365 * 86_400;

/// The cache times in force: the override of the origin's headers, if any, the time for
/// responses without them, and the per-status times.
pub(crate) fn validate(
    c: Option<&EdgeCacheSettings>,
    errors: &mut FieldErrors,
) -> (Option<u64>, u64, StatusTimes) {
    // Checked even when off (stored and served back); in force only when on.
    let Some(c) = c else {
        return (None, DEFAULT_CACHE_SECS, StatusTimes::default());
    };
    let value = time(
        "options.edge_cache_settings.value",
        c.value.as_deref(),
        errors,
    );
    let default = time(
        "options.edge_cache_settings.default",
        c.default.as_deref(),
        errors,
    );
    let mut custom = StatusTimes::default();
    for (code, v) in c.custom_values.iter().flatten() {
        let field = format!("options.edge_cache_settings.custom_values.{code}");
        // A status given without a time is a mistake, not "not set": a time is required.
        if v.is_empty() {
            errors.push(field, "give a time like \"10s\" (\"0s\": not cached)");
            continue;
        }
        let Some(t) = time(&field, Some(v), errors) else {
            continue;
        };
        match code.as_str() {
            "any" => custom.any = Some(t),
            c => match c.parse::<u16>() {
                Ok(status) if (100..=599).contains(&status) && c.len() == 3 => {
                    custom.by_status.push((status, t))
                }
                _ => errors.push(field, "a status code from 100 to 599, or \"any\""),
            },
        }
    }
    if c.enabled {
        (value, default.unwrap_or(DEFAULT_CACHE_SECS), custom)
    } else {
        (None, DEFAULT_CACHE_SECS, StatusTimes::default())
    }
}

/// A cache time of at most a year; an empty one is one not given (Gcore's clients send
/// `"default": ""`).
fn time(field: &str, v: Option<&str>, errors: &mut FieldErrors) -> Option<u64> {
    match parse_gcore_duration(v.filter(|v| !v.is_empty())?) {
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
}

/// `options.browser_cache_settings`: the time viewers may cache answers (`Cache-Control:
/// max-age`), `Some` when on; `Some(0)` is "do not cache" (`"0s"`).
pub(crate) fn browser(
    t: Option<&crate::options::OptionToggle<String>>,
    errors: &mut FieldErrors,
) -> Option<u64> {
    let t = t?;
    // Checked even when off (stored and served back).
    let secs = time(
        "options.browser_cache_settings.value",
        Some(&t.value),
        errors,
    );
    if t.enabled && secs.is_none() && t.value.is_empty() {
        errors.push(
            "options.browser_cache_settings.value",
            "give a time like \"3600s\" (\"0s\": viewers do not cache)",
        );
    }
    secs.filter(|_| t.enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(json: &str) -> Result<(Option<u64>, u64, StatusTimes), Vec<String>> {
        let c: EdgeCacheSettings = serde_json::from_str(json).unwrap();
        let mut e = FieldErrors::default();
        let out = validate(Some(&c), &mut e);
        let msgs = e.into_messages();
        if msgs.is_empty() {
            Ok(out)
        } else {
            Err(msgs)
        }
    }

    #[test]
    fn browser_cache_times() {
        let t = |enabled: bool, value: &str| {
            let o = crate::options::OptionToggle {
                enabled,
                value: value.to_owned(),
            };
            let mut e = FieldErrors::default();
            let out = browser(Some(&o), &mut e);
            (out, e.into_messages())
        };
        assert_eq!(t(true, "3600s"), (Some(3600), vec![]));
        assert_eq!(t(true, "0s"), (Some(0), vec![]));
        assert_eq!(t(false, "1h"), (None, vec![]));
        assert!(t(true, "")
            .1
            .join("")
            .contains("browser_cache_settings.value: give a time"));
        assert!(t(false, "soon").1.join("").contains("is not a duration"));
        assert!(t(true, "400d").1.join("").contains("at most 365d"));
    }

    #[test]
    fn custom_values_per_status_then_any() {
        let (value, _, custom) = times(
            r#"{"enabled": true, "value": "1h", "custom_values": {"404": "10s", "any": "1m", "500": "0s"}}"#,
        )
        .unwrap();
        assert_eq!(value, Some(3600));
        assert_eq!(custom.get(404), Some(10));
        assert_eq!(custom.get(500), Some(0));
        assert_eq!(custom.get(200), Some(60), "any");
        let (_, _, none) = times(r#"{"enabled": true, "custom_values": {}}"#).unwrap();
        assert_eq!(none.get(404), None);
        let (_, _, off) = times(r#"{"enabled": false, "custom_values": {"404": "10s"}}"#).unwrap();
        assert_eq!(off.get(404), None, "in force only when on");
    }

    #[test]
    fn custom_values_errors_name_the_status() {
        for (json, want) in [
            (
                r#"{"enabled": true, "custom_values": {"4040": "1s"}}"#,
                "custom_values.4040: a status code",
            ),
            (
                r#"{"enabled": true, "custom_values": {"99": "1s"}}"#,
                "custom_values.99: a status code",
            ),
            (
                r#"{"enabled": true, "custom_values": {"404": "soon"}}"#,
                "custom_values.404: \"soon\" is not a duration",
            ),
            (
                r#"{"enabled": true, "custom_values": {"404": ""}}"#,
                "custom_values.404: give a time",
            ),
            (
                r#"{"enabled": true, "custom_values": {"any": "400d"}}"#,
                "custom_values.any: at most 365d",
            ),
        ] {
            let errs = times(json).unwrap_err().join("; ");
            assert!(errs.contains(want), "{want}: {errs}");
        }
    }
}
