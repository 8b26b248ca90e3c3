//! The options that shape delivery besides the cache times: `stale` ("always online"),
//! `limit_bandwidth`, `redirect_http_to_https`, `query_params_whitelist` /
//! `query_params_blacklist`, `ignore_cookie` and `response_headers_hiding_policy`. Each is
//! validated here (checked whenever given, since it is stored and served back; in force only
//! when enabled) into the form the edge reads.

use serde::{Deserialize, Serialize};

use crate::options::OptionToggle;
use crate::validate::FieldErrors;

/// The conditions of `stale`, in Gcore's spelling (nginx's `proxy_cache_use_stale`).
pub const STALE_CONDITIONS: [&str; 11] = [
    "error",
    "timeout",
    "invalid_header",
    "updating",
    "http_403",
    "http_404",
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
];

/// The `stale` conditions in force: a set of [`STALE_CONDITIONS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaleOn(u16);

impl StaleOn {
    fn has(self, name: &str) -> bool {
        STALE_CONDITIONS
            .iter()
            .position(|c| *c == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// A connection that failed or broke (`error`).
    pub fn error(self) -> bool {
        self.has("error")
    }

    /// No answer in time (`timeout`).
    pub fn timeout(self) -> bool {
        self.has("timeout")
    }

    /// An answer the edge cannot use (`invalid_header`: a slice of another range, say).
    pub fn invalid_header(self) -> bool {
        self.has("invalid_header")
    }

    /// Served stale while one request refreshes the copy in the background (`updating`).
    pub fn updating(self) -> bool {
        self.has("updating")
    }

    /// An answer with this status (`http_403`, ..., `http_504`).
    pub fn status(self, status: u16) -> bool {
        matches!(status, 403 | 404 | 429 | 500 | 502 | 503 | 504)
            && self.has(&format!("http_{status}"))
    }
}

/// `stale` in force, when enabled.
pub(crate) fn stale(
    t: Option<&OptionToggle<Vec<String>>>,
    errors: &mut FieldErrors,
) -> Option<StaleOn> {
    let t = t?;
    let mut set = 0u16;
    for (i, v) in t.value.iter().enumerate() {
        match STALE_CONDITIONS.iter().position(|c| c == v) {
            Some(bit) => set |= 1 << bit,
            None => errors.push(
                format!("options.stale.value[{i}]"),
                format!("{v:?} is not one of {}", STALE_CONDITIONS.join(", ")),
            ),
        }
    }
    t.enabled.then_some(StaleOn(set))
}

/// `options.limit_bandwidth` as Gcore writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitBandwidth {
    /// Whether the option applies.
    pub enabled: bool,
    /// `static`: `speed` and `buffer` here; `dynamic`: from the request's query
    /// (`?speed=50k&buffer=500k`).
    pub limit_type: LimitType,
    /// Bytes sent at full speed first, in KB (1024 bytes), as nginx's `limit_rate_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<u64>,
    /// Speed after the buffer, in KB a second, as nginx's `limit_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<u64>,
}

/// How `limit_bandwidth` takes its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitType {
    /// From the option.
    Static,
    /// From the request's `speed` and `buffer` query parameters.
    Dynamic,
}

/// `limit_bandwidth` in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bandwidth {
    /// Bytes a second after `after` bytes.
    Static {
        /// Bytes a second.
        rate: u64,
        /// Bytes at full speed first.
        after: u64,
    },
    /// From each request's query: `speed` and `buffer` as nginx sizes (`50k`, `1m`, bytes).
    Dynamic,
}

/// The largest `speed` or `buffer`, in KB: 1 TiB.
const MAX_KB: u64 = 1 << 30;

/// `limit_bandwidth` in force, when enabled.
pub(crate) fn bandwidth(l: Option<&LimitBandwidth>, errors: &mut FieldErrors) -> Option<Bandwidth> {
    let l = l?;
    let kb = |v: Option<u64>, name: &str, errors: &mut FieldErrors| match v {
        Some(n) if n > MAX_KB => {
            errors.push(
                format!("options.limit_bandwidth.{name}"),
                format!("at most {MAX_KB} (KB)"),
            );
            0
        }
        Some(n) => n * 1024,
        None => 0,
    };
    let rate = kb(l.speed, "speed", errors);
    let after = kb(l.buffer, "buffer", errors);
    match l.limit_type {
        LimitType::Static if l.enabled && rate == 0 && l.speed.is_some_and(|s| s <= MAX_KB) => {
            errors.push(
                "options.limit_bandwidth.speed",
                "a speed above 0 (KB a second)",
            );
            None
        }
        LimitType::Static if l.enabled && l.speed.is_none() => {
            errors.push(
                "options.limit_bandwidth.speed",
                "give the speed (KB a second) for limit_type static",
            );
            None
        }
        LimitType::Static => l.enabled.then_some(Bandwidth::Static { rate, after }),
        LimitType::Dynamic => l.enabled.then_some(Bandwidth::Dynamic),
    }
}

/// An nginx size as the `speed` and `buffer` query parameters give it: digits and an optional
/// `k` or `m` (any case; 1024 and 1024²), saturating; `None` when it is not one.
pub fn parse_size(v: &[u8]) -> Option<u64> {
    let (digits, unit) = match v.last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1024u64),
        b'm' | b'M' => (&v[..v.len() - 1], 1024 * 1024),
        _ => (v, 1),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(n.saturating_mul(unit))
}

/// Which query parameters make up the cache key (the token's never do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueryKey {
    /// All of them (the default).
    #[default]
    All,
    /// None (`ignoreQueryString`).
    Nothing,
    /// Only these (`query_params_whitelist`).
    Only(Vec<String>),
    /// All but these (`query_params_blacklist`).
    Except(Vec<String>),
}

impl QueryKey {
    /// Whether a parameter named `name` is part of the key.
    pub fn keeps(&self, name: &[u8]) -> bool {
        match self {
            QueryKey::All => true,
            QueryKey::Nothing => false,
            QueryKey::Only(l) => l.iter().any(|n| n.as_bytes() == name),
            QueryKey::Except(l) => !l.iter().any(|n| n.as_bytes() == name),
        }
    }
}

/// The query key in force: `ignoreQueryString`, `query_params_whitelist` and
/// `query_params_blacklist`, at most one of them enabled (Gcore's rule).
pub(crate) fn query_key(o: &crate::Options, errors: &mut FieldErrors) -> QueryKey {
    let names = |t: Option<&OptionToggle<Vec<String>>>, field: &str, errors: &mut FieldErrors| {
        let t = t?;
        for (i, n) in t.value.iter().enumerate() {
            if n.is_empty()
                || n.bytes()
                    .any(|b| b <= b' ' || b"&=#".contains(&b) || b >= 0x7f)
            {
                errors.push(
                    format!("options.{field}.value[{i}]"),
                    format!("{n:?} is not a query parameter name (no spaces, &, = or #)"),
                );
            }
        }
        t.enabled.then(|| t.value.clone())
    };
    let only = names(
        o.query_params_whitelist.as_ref(),
        "query_params_whitelist",
        errors,
    );
    let except = names(
        o.query_params_blacklist.as_ref(),
        "query_params_blacklist",
        errors,
    );
    let ignore = crate::options::ignore_query_string(o.ignore_query_string.as_ref());
    if [only.is_some(), except.is_some(), ignore]
        .iter()
        .filter(|b| **b)
        .count()
        > 1
    {
        errors.push(
            "options",
            "ignoreQueryString, query_params_whitelist and query_params_blacklist cannot be \
             enabled together",
        );
    }
    match (only, except) {
        (Some(l), _) => QueryKey::Only(l),
        (_, Some(l)) => QueryKey::Except(l),
        _ if ignore => QueryKey::Nothing,
        _ => QueryKey::All,
    }
}

/// A switch `{"enabled", "value": bool}` in force: on and true.
pub(crate) fn switch(t: Option<&OptionToggle<bool>>) -> bool {
    t.is_some_and(|t| t.enabled && t.value)
}

/// `options.response_headers_hiding_policy` as Gcore writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HidingPolicy {
    /// Whether the option applies.
    pub enabled: bool,
    /// `hide`: every origin header but the `excepted`; `show`: all but the `excepted`.
    pub mode: HideMode,
    /// The headers the mode excepts.
    pub excepted: Vec<String>,
}

/// `response_headers_hiding_policy.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HideMode {
    /// Hide all but the excepted.
    Hide,
    /// Show all but the excepted.
    Show,
}

/// The headers never hidden: Gcore's five (`Connection`, `Content-Length`, `Content-Type`,
/// `Date`, `Server`), those without which the body or the cache status cannot be read, and
/// `Vary` (without it a browser's or proxy's cache could give one viewer's variant, a
/// compressed body say, to another).
pub const NEVER_HIDDEN: [&str; 10] = [
    "connection",
    "content-length",
    "content-type",
    "date",
    "server",
    "content-range",
    "content-encoding",
    "transfer-encoding",
    "cache",
    "vary",
];

/// `response_headers_hiding_policy` in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hiding {
    /// `true` for `hide` (only `names` shown), `false` for `show` (`names` hidden).
    only_names_shown: bool,
    /// Lower case.
    names: Vec<String>,
}

impl Hiding {
    /// Whether the origin's header `name` (lower case) is kept from viewers.
    pub fn hides(&self, name: &str) -> bool {
        !NEVER_HIDDEN.contains(&name)
            && self.names.iter().any(|n| n == name) != self.only_names_shown
    }
}

/// `response_headers_hiding_policy` in force, when enabled.
pub(crate) fn hiding(h: Option<&HidingPolicy>, errors: &mut FieldErrors) -> Option<Hiding> {
    let h = h?;
    let mut names = Vec::with_capacity(h.excepted.len());
    for (i, n) in h.excepted.iter().enumerate() {
        if !crate::options::response_headers::is_token(n) || n.len() > 255 {
            errors.push(
                format!("options.response_headers_hiding_policy.excepted[{i}]"),
                format!("{n:?} is not a header name"),
            );
        } else {
            names.push(n.to_ascii_lowercase());
        }
    }
    h.enabled.then_some(Hiding {
        only_names_shown: h.mode == HideMode::Hide,
        names,
    })
}

/// The types `gzipOn` compresses: Gcore's fixed list.
pub const GZIP_TYPES: [&str; 15] = [
    "application/dash+xml",
    "application/javascript",
    "application/json",
    "application/x-javascript",
    "application/xml",
    "application/vnd.apple.mpegurl",
    "application/xml+rss",
    "application/wasm",
    "text/css",
    "text/html",
    "text/javascript",
    "text/plain",
    "text/vtt",
    "text/xml",
    "image/svg+xml",
];

/// The types `brotli_compression` may list: Gcore's.
pub const BROTLI_TYPES: [&str; 15] = [
    "application/javascript",
    "application/json",
    "application/vnd.ms-fontobject",
    "application/wasm",
    "application/x-font-ttf",
    "application/x-javascript",
    "application/xml",
    "application/xml+rss",
    "image/svg+xml",
    "image/x-icon",
    "text/css",
    "text/html",
    "text/javascript",
    "text/plain",
    "text/xml",
];

/// Edge compression in force (`gzipOn`, `brotli_compression`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compression {
    /// `gzipOn`: [`GZIP_TYPES`] in gzip.
    pub gzip: bool,
    /// `brotli_compression`: these types in Brotli (for clients that take `br`).
    pub brotli: Vec<String>,
}

impl Compression {
    /// Whether the resource compresses anything.
    pub fn is_on(&self) -> bool {
        self.gzip || !self.brotli.is_empty()
    }

    /// The encodings a response of `content_type` (its media type, any case, parameters
    /// allowed) may be compressed in: (brotli, gzip).
    pub fn for_type(&self, content_type: &str) -> (bool, bool) {
        let media = content_type.split(';').next().unwrap_or("").trim();
        let is = |t: &&str| t.eq_ignore_ascii_case(media);
        (
            self.brotli.iter().map(String::as_str).any(|t| is(&t)),
            self.gzip && GZIP_TYPES.iter().any(is),
        )
    }
}

/// `gzipOn` and `brotli_compression` in force; neither goes with `slice` (Gcore's rule: a
/// slice is a range of the origin's bytes).
pub(crate) fn compression(o: &crate::Options, errors: &mut FieldErrors) -> Compression {
    let gzip = switch(o.gzip_on.as_ref());
    let mut brotli = Vec::new();
    if let Some(b) = &o.brotli_compression {
        for (i, t) in b.value.iter().enumerate() {
            if !BROTLI_TYPES.contains(&t.as_str()) {
                errors.push(
                    format!("options.brotli_compression.value[{i}]"),
                    format!("{t:?} is not one of {}", BROTLI_TYPES.join(", ")),
                );
            }
        }
        if b.enabled && !b.value.iter().any(|t| t == "text/html") {
            errors.push(
                "options.brotli_compression.value",
                "text/html is always compressed: list it (Gcore's rule)",
            );
        }
        if b.enabled {
            brotli = b.value.clone();
        }
    }
    if crate::options::slice(o.slice.as_ref()) {
        for (on, name) in [(gzip, "gzipOn"), (!brotli.is_empty(), "brotli_compression")] {
            if on {
                errors.push(
                    format!("options.{name}"),
                    "not with slice: a slice is a range of the origin's bytes, which compression \
                     would change (Gcore does not combine them either)",
                );
            }
        }
    }
    Compression { gzip, brotli }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: &str) -> crate::Options {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn stale_conditions() {
        let mut e = FieldErrors::default();
        let t = OptionToggle {
            enabled: true,
            value: vec!["updating".into(), "http_404".into(), "error".into()],
        };
        let s = stale(Some(&t), &mut e).unwrap();
        assert!(s.updating() && s.error() && s.status(404));
        assert!(!s.timeout() && !s.status(500) && !s.status(200));
        let t = OptionToggle {
            enabled: false,
            value: vec!["http_418".into()],
        };
        assert_eq!(stale(Some(&t), &mut e), None);
        assert!(e.into_messages()[0].starts_with("options.stale.value[0]"));
    }

    #[test]
    fn bandwidth_in_kb() {
        let b = |json: &str| {
            let l: LimitBandwidth = serde_json::from_str(json).unwrap();
            let mut e = FieldErrors::default();
            let v = bandwidth(Some(&l), &mut e);
            (v, e.into_messages())
        };
        assert_eq!(
            b(r#"{"enabled": true, "limit_type": "static", "speed": 100, "buffer": 200}"#).0,
            Some(Bandwidth::Static {
                rate: 102_400,
                after: 204_800
            })
        );
        assert_eq!(
            b(r#"{"enabled": true, "limit_type": "dynamic"}"#).0,
            Some(Bandwidth::Dynamic)
        );
        assert!(b(r#"{"enabled": true, "limit_type": "static"}"#).1[0].contains("speed"));
        assert!(
            b(r#"{"enabled": true, "limit_type": "static", "speed": 0}"#).1[0].contains("above 0")
        );
        assert!(!b(
            r#"{"enabled": true, "limit_type": "static", "speed": 1, "buffer": 9999999999}"#
        )
        .1
        .is_empty());
        assert_eq!(parse_size(b"50k"), Some(51_200));
        assert_eq!(parse_size(b"2M"), Some(2 << 20));
        assert_eq!(parse_size(b"700"), Some(700));
        assert_eq!(parse_size(b"99999999999999999m"), Some(u64::MAX));
        for bad in [&b""[..], b"k", b"1g", b"-1", b"1.5k"] {
            assert_eq!(parse_size(bad), None);
        }
    }

    #[test]
    fn one_query_key_rule() {
        let q = |json| {
            let mut e = FieldErrors::default();
            let k = query_key(&opts(json), &mut e);
            (k, e.into_messages())
        };
        let (k, e) = q(r#"{"query_params_whitelist": {"enabled": true, "value": ["q", "lang"]}}"#);
        assert!(e.is_empty());
        assert!(k.keeps(b"q") && !k.keeps(b"utm"));
        let (k, _) = q(r#"{"query_params_blacklist": {"enabled": true, "value": ["utm"]}}"#);
        assert!(!k.keeps(b"utm") && k.keeps(b"q"));
        assert_eq!(
            q(r#"{"ignoreQueryString": {"enabled": true, "value": true}}"#).0,
            QueryKey::Nothing
        );
        assert_eq!(q("{}").0, QueryKey::All);
        let (_, e) = q(r#"{"ignoreQueryString": {"enabled": true, "value": true},
            "query_params_blacklist": {"enabled": true, "value": ["a b"]}}"#);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("value[0]") && e[1].contains("cannot be enabled together"));
    }

    #[test]
    fn compression_types_and_slice() {
        let c = |json: &str| {
            let mut e = FieldErrors::default();
            let v = compression(&opts(json), &mut e);
            (v, e.into_messages())
        };
        let (v, e) = c(r#"{"gzipOn": {"enabled": true, "value": true},
            "brotli_compression": {"enabled": true, "value": ["text/html", "application/json"]}}"#);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(v.for_type("application/vnd.apple.mpegurl"), (false, true));
        assert_eq!(v.for_type("Application/JSON; charset=utf-8"), (true, true));
        assert_eq!(v.for_type("video/mp2t"), (false, false));
        let (_, e) =
            c(r#"{"brotli_compression": {"enabled": true, "value": ["text/css", "video/mp4"]}}"#);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("value[1]") && e[1].contains("text/html"));
        let (_, e) = c(r#"{"gzipOn": {"enabled": true, "value": true},
            "slice": {"enabled": true, "value": true}}"#);
        assert!(e[0].starts_with("options.gzipOn: not with slice"), "{e:?}");
        assert!(!c(r#"{"gzipOn": {"enabled": true, "value": false}}"#)
            .0
            .is_on());
    }

    #[test]
    fn hiding_modes() {
        let h = |json: &str| {
            let p: HidingPolicy = serde_json::from_str(json).unwrap();
            hiding(Some(&p), &mut FieldErrors::default()).unwrap()
        };
        let hide = h(r#"{"enabled": true, "mode": "hide", "excepted": ["ETag", "X-Keep"]}"#);
        assert!(hide.hides("x-powered-by") && !hide.hides("etag") && !hide.hides("x-keep"));
        assert!(
            !hide.hides("content-type") && !hide.hides("cache"),
            "never hidden"
        );
        let show = h(r#"{"enabled": true, "mode": "show", "excepted": ["X-Powered-By", "Date"]}"#);
        assert!(show.hides("x-powered-by") && !show.hides("etag") && !show.hides("date"));
    }
}
