//! Whether and for how long a response may be stored (RFC 9111, shared cache), as a pure
//! function of the response, the resource's settings and `now`.
//!
//! Precedence: a resource `edge_cache_settings.value` overrides the origin for 200, 206, 301
//! and 302 (Gcore's rule). Otherwise `no-store`, `private`, `Set-Cookie` (as nginx) or
//! `Vary: *` keep a response out (another `Vary` is stored by variant, `key::CacheKey::variant`). The directives are those of the first valid, non-empty targeted field,
//! `Tollgate-CDN-Cache-Control` then `CDN-Cache-Control` (RFC 9213: a Structured Field
//! Dictionary; `Cache-Control` and `Expires` are then ignored), else `Cache-Control`. The
//! lifetime is `s-maxage`, else `max-age`, else `Expires` minus `Date`; one present but invalid
//! (negative, quoted with `'`, not a number) makes the response stale at once (RFC 9111 4.2.1),
//! as does `no-cache`; a stale response with a validator is kept to be revalidated. Any status
//! is stored with an explicit lifetime (RFC 9111 3); without one, the resource default applies
//! to 200 and 301 only (as nginx's `proxy_cache_valid 200`). `s-maxage`, `must-revalidate`,
//! `proxy-revalidate` and `no-cache` forbid serving the response stale when the origin fails
//! (RFC 9111 5.2.2.10, 5.2.2.2, 5.2.2.8, 5.2.2.4), whatever `stale-if-error` says.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderName, StatusCode};

/// How long a stored response is fresh, and how long after that it may still be served when
/// the origin fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Seconds the response is fresh, counted from when it was received; 0: stale at once
    /// (stored only to be revalidated).
    pub fresh_secs: u64,
    /// Seconds past freshness it may be served if the origin fails.
    pub stale_if_error_secs: u64,
    /// Seconds past freshness it may be served while one request revalidates it in the
    /// background (RFC 5861 `stale-while-revalidate`).
    pub stale_while_revalidate_secs: u64,
}

/// Serve-stale window when the origin says nothing (`stale-if-error` sets its own).
pub const DEFAULT_STALE_IF_ERROR_SECS: u64 = 600;

/// How long past its freshness a stored response with a validator (`ETag`, `Last-Modified`)
/// is kept, to be revalidated rather than fetched again (the tiers' LRU may drop it sooner).
pub const REVALIDATE_KEEP_SECS: u64 = 24 * 3600;

/// The largest lifetime taken from a response: 2^31 seconds (68 years), the value RFC 9111
/// 1.2.2 tells a cache to use for a delta-seconds too large to represent. Every lifetime is
/// clamped to it, so that instants computed from it cannot overflow.
pub const MAX_DELTA_SECS: u64 = 1 << 31;

/// The targeted fields this edge obeys, most targeted first (RFC 9213 2.1).
const TARGETED: [&str; 2] = ["tollgate-cdn-cache-control", "cdn-cache-control"];

/// Cache directives: names in lower case, with their argument.
type Directives = Vec<(String, Option<String>)>;

/// The directives of `Cache-Control` (RFC 9111 5.2: a list of `token [= token /
/// quoted-string]`; the quotes of a quoted argument are dropped).
fn cache_control(headers: &HeaderMap) -> Directives {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let d = d.trim();
            if d.is_empty() {
                return None;
            }
            Some(match d.split_once('=') {
                Some((k, v)) => {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    (k.trim().to_ascii_lowercase(), Some(v.to_owned()))
                }
                None => (d.to_ascii_lowercase(), None),
            })
        })
        .collect()
}

/// The directives of a targeted field (RFC 9213 2.2: a Structured Field Dictionary, all its
/// lines together); `None` when it is absent, empty or does not parse. A `true` member is a
/// directive without argument, a `false` one is absent, others carry their value as text.
fn targeted(headers: &HeaderMap, name: &'static str) -> Option<Directives> {
    let name = HeaderName::from_static(name);
    let lines: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<_>>()?;
    let joined = lines.join(", ");
    let dict: sfv::Dictionary = sfv::Parser::new(joined.as_str()).parse().ok()?;
    if dict.is_empty() {
        return None;
    }
    Some(
        dict.iter()
            .filter_map(|(k, entry)| {
                let arg = match entry {
                    sfv::ListEntry::Item(item) => match &item.bare_item {
                        sfv::BareItem::Boolean(true) => None,
                        sfv::BareItem::Boolean(false) => return None,
                        sfv::BareItem::Integer(n) => Some(n.to_string()),
                        sfv::BareItem::String(v) => Some(v.as_str().to_owned()),
                        sfv::BareItem::Token(v) => Some(v.as_str().to_owned()),
                        // A decimal, a byte sequence, a date: never a valid argument here.
                        _ => Some(String::from("?")),
                    },
                    sfv::ListEntry::InnerList(_) => Some(String::from("?")),
                };
                Some((k.as_str().to_owned(), arg))
            })
            .collect(),
    )
}

/// The directives this edge obeys, and whether they came from a targeted field.
fn directives(headers: &HeaderMap) -> (Directives, bool) {
    match TARGETED.iter().find_map(|name| targeted(headers, name)) {
        Some(d) => (d, true),
        None => (cache_control(headers), false),
    }
}

/// `t` plus `secs` (clamped to [`MAX_DELTA_SECS`]), never overflowing: on a platform whose
/// clock cannot hold the sum, `t` itself (the object is then stale at once, not a panic).
pub fn after(t: Instant, secs: u64) -> Instant {
    t.checked_add(Duration::from_secs(secs.min(MAX_DELTA_SECS)))
        .unwrap_or(t)
}

/// A delta-seconds value (RFC 9111 1.2.2: digits only), saturated at [`MAX_DELTA_SECS`];
/// `None` when absent or invalid.
fn secs(v: &Option<String>) -> Option<u64> {
    let v = v.as_deref()?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only: a parse can fail only by overflowing, which saturates.
    Some(
        v.parse::<u64>()
            .map_or(MAX_DELTA_SECS, |n| n.min(MAX_DELTA_SECS)),
    )
}

/// An HTTP date (RFC 9110 5.6.7) in any of its three forms (IMF-fixdate, RFC 850, asctime),
/// its names in any case: a recipient must accept all of them. An RFC 850 two-digit year is
/// the one in the 50 years up to `now`'s (no more than 50 years ahead). `None` when invalid.
pub fn http_date(v: &str, now: SystemTime) -> Option<SystemTime> {
    // The preferred form as senders must write it: no copy (a conditional hit's path).
    if v.len() == 29 && v.ends_with(" GMT") {
        if let Ok(t) = httpdate::parse_http_date(v) {
            return Some(t);
        }
    }
    let v = v.trim();
    if !v.is_ascii() || v.len() > 64 {
        return None;
    }
    // Names in their usual case: "Sun", "Nov", "GMT".
    let mut norm = String::with_capacity(v.len());
    let mut at_start = true;
    for c in v.chars() {
        if c.is_ascii_alphabetic() {
            norm.push(if at_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            at_start = false;
        } else {
            norm.push(c);
            at_start = true;
        }
    }
    let norm = norm.replace("Gmt", "GMT");
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT", rewritten as an IMF-fixdate with its
    // century chosen here (httpdate's is a fixed 1970 cut-off).
    if let Some((wday, rest)) = norm.split_once(", ") {
        let b = rest.as_bytes();
        if wday.len() > 3 && b.len() == 22 && b[2] == b'-' && b[6] == b'-' {
            let yy: u64 = rest.get(7..9)?.parse().ok()?;
            let this_year = 1970 + now.duration_since(UNIX_EPOCH).ok()?.as_secs() / 31_556_952;
            let mut year = this_year - this_year % 100 + yy;
            if year > this_year + 50 {
                year -= 100;
            }
            let fixdate = format!(
                "{}, {} {} {year} {}",
                wday.get(..3)?,
                rest.get(..2)?,
                rest.get(3..6)?,
                rest.get(10..)?
            );
            return httpdate::parse_http_date(&fixdate).ok();
        }
    }
    httpdate::parse_http_date(&norm).ok()
}

/// Until when a response is kept in the cache: to the end of both its stale windows (on
/// error, `stale_until`; while revalidating, `updating_until`), and when it has a validator
/// (`ETag`, `Last-Modified`) [`REVALIDATE_KEEP_SECS`] past its freshness, to be revalidated
/// rather than fetched again.
pub fn keep_until(
    fresh_until: Instant,
    stale_until: Instant,
    updating_until: Instant,
    headers: &HeaderMap,
) -> Instant {
    let servable = stale_until.max(updating_until);
    if headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED) {
        servable.max(after(fresh_until, REVALIDATE_KEEP_SECS))
    } else {
        servable
    }
}

/// `Last-Modified` of `headers`, when it is a valid date.
pub fn last_modified(headers: &HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let v = headers.get(header::LAST_MODIFIED)?.to_str().ok()?;
    http_date(v, now)
}

/// The freshness of a response, or `None` when it must not be stored.
///
/// `override_secs` is the resource's time whatever the origin says (`edge_cache_settings.value`,
/// for 200, 206, 301 and 302), `default_secs` its time for 200 and 301 answers without
/// freshness (`default`), and `status_secs` its time for this status (`custom_values`), which
/// comes before either, for any status but 1xx and 304; 0 there is "not stored".
pub fn freshness(
    status: StatusCode,
    headers: &HeaderMap,
    override_secs: Option<u64>,
    default_secs: u64,
    status_secs: Option<u64>,
    now: SystemTime,
) -> Option<Freshness> {
    let (cc, targeted) = directives(headers);
    let find = |name: &str| cc.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let has = |name: &str| find(name).is_some();
    let strict = is_strict(&cc);
    let stale_while_revalidate_secs = while_revalidating(&cc);
    let stale_if_error_secs = if strict {
        0
    } else {
        match find("stale-if-error") {
            Some(v) => secs(v).unwrap_or(0),
            None => DEFAULT_STALE_IF_ERROR_SECS,
        }
    };
    // Never shared, whatever the resource says: a response for one viewer (a cookie, private)
    // or one the origin forbids storing.
    if has("no-store") || has("private") || headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let code = status.as_u16();
    let status_secs = status_secs.filter(|_| !matches!(code, 100..=199 | 304));
    if let Some(secs) = override_secs {
        let overridable = matches!(code, 200 | 206 | 301 | 302);
        let secs = status_secs.or(overridable.then_some(secs));
        return secs.filter(|s| *s > 0).map(|s| Freshness {
            fresh_secs: s.min(MAX_DELTA_SECS),
            stale_if_error_secs,
            stale_while_revalidate_secs,
        });
    }
    // `Vary: *` matches no later request (RFC 9111 4.1); other fields make variants, keyed by
    // the caller. A partial or a not-modified answer is never stored as the object.
    let never = crate::key::vary_of(headers) == crate::key::Vary::Never;
    if never || matches!(status.as_u16(), 100..=199 | 206 | 304) {
        return None;
    }
    // Present but invalid: stale (0), not "absent".
    let explicit = if let Some(v) = find("s-maxage") {
        Some(secs(v).unwrap_or(0))
    } else if let Some(v) = find("max-age") {
        Some(secs(v).unwrap_or(0))
    } else if targeted {
        None
    } else {
        headers.get(header::EXPIRES).map(|e| {
            // An invalid Expires means "already expired" (RFC 9111 5.3).
            let expires = e.to_str().ok().and_then(|e| http_date(e, now));
            let date = headers
                .get(header::DATE)
                .and_then(|d| d.to_str().ok())
                .and_then(|d| http_date(d, now))
                .unwrap_or(now);
            expires
                .and_then(|x| x.duration_since(date).ok())
                .map_or(0, |d| d.as_secs().min(MAX_DELTA_SECS))
        })
    };
    let fresh_secs = match explicit {
        _ if has("no-cache") => 0,
        Some(s) => s,
        None => match status_secs.or(matches!(code, 200 | 301).then_some(default_secs)) {
            Some(s) if s > 0 => s.min(MAX_DELTA_SECS),
            _ => return None,
        },
    };
    Some(Freshness {
        fresh_secs,
        stale_if_error_secs,
        stale_while_revalidate_secs,
    })
}

/// Whether a response to a request with `Authorization` may be stored for others: it says
/// `public`, `s-maxage` or `must-revalidate` (RFC 9111 3.5).
pub fn shared_despite_authorization(headers: &HeaderMap) -> bool {
    let (cc, _) = directives(headers);
    cc.iter()
        .any(|(k, _)| matches!(k.as_str(), "public" | "s-maxage" | "must-revalidate"))
}

/// Whether the directives forbid serving the response stale without revalidating it first.
fn is_strict(cc: &Directives) -> bool {
    [
        "s-maxage",
        "must-revalidate",
        "proxy-revalidate",
        "no-cache",
    ]
    .iter()
    .any(|d| cc.iter().any(|(k, _)| k == d))
}

/// `stale-while-revalidate`'s seconds (0 when absent, invalid, or forbidden by a strict
/// directive).
fn while_revalidating(cc: &Directives) -> u64 {
    if is_strict(cc) {
        return 0;
    }
    cc.iter()
        .find(|(k, _)| k == "stale-while-revalidate")
        .and_then(|(_, v)| secs(v))
        .unwrap_or(0)
}

/// `stale-while-revalidate`'s seconds for a stored response's headers (the directives it
/// was stored under), as [`freshness`] reads them.
pub fn stale_while_revalidate(headers: &HeaderMap) -> u64 {
    while_revalidating(&directives(headers).0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    /// One case: its name (with the RFC section it checks), the status, the headers, the
    /// resource override, and the freshness expected (`None`: not stored).
    type Case = (
        &'static str,
        u16,
        &'static [(&'static str, &'static str)],
        Option<u64>,
        Option<u64>,
    );

    #[test]
    fn table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        const DATE: (&str, &str) = ("date", "Sun, 09 Sep 2001 01:46:40 GMT");
        let cases: &[Case] = &[
            (
                "no information: the resource default (200)",
                200,
                &[],
                None,
                Some(3600),
            ),
            (
                "no information: the resource default (301)",
                301,
                &[],
                None,
                Some(3600),
            ),
            ("no information: a 404 is not stored", 404, &[], None, None),
            (
                "9111 5.2.2.1 max-age",
                200,
                &[("cache-control", "max-age=60")],
                None,
                Some(60),
            ),
            (
                "9111 5.2.2.10 s-maxage above max-age",
                200,
                &[("cache-control", "max-age=60, s-maxage=10")],
                None,
                Some(10),
            ),
            (
                "9111 5.2 directive names are case-insensitive",
                200,
                &[("cache-control", "Max-Age=60")],
                None,
                Some(60),
            ),
            (
                "9111 5.2 lines are one list",
                200,
                &[("cache-control", "public"), ("cache-control", "max-age=7")],
                None,
                Some(7),
            ),
            (
                "9111 4.2.1 the first of two max-age",
                200,
                &[("cache-control", "max-age=5, max-age=50")],
                None,
                Some(5),
            ),
            (
                "9111 5.2 a double-quoted argument is taken",
                200,
                &[("cache-control", "max-age=\"60\"")],
                None,
                Some(60),
            ),
            (
                "9111 4.2.1 max-age=0: stale at once",
                200,
                &[("cache-control", "max-age=0")],
                None,
                Some(0),
            ),
            (
                "9111 4.2.1 negative max-age: stale, not the default",
                200,
                &[("cache-control", "max-age=-3600")],
                None,
                Some(0),
            ),
            (
                "9111 4.2.1 single-quoted max-age: stale",
                200,
                &[("cache-control", "max-age='3600'")],
                None,
                Some(0),
            ),
            (
                "9111 4.2.1 max-age without a value: stale",
                200,
                &[("cache-control", "max-age")],
                None,
                Some(0),
            ),
            (
                "9111 4.2.1 max-age not a number: stale",
                200,
                &[("cache-control", "max-age=1e3")],
                None,
                Some(0),
            ),
            (
                "9111 4.2.1 invalid s-maxage: stale, max-age not used",
                200,
                &[("cache-control", "s-maxage=x, max-age=60")],
                None,
                Some(0),
            ),
            (
                "9111 5.2.2.4 no-cache: stored, revalidated every time",
                200,
                &[("cache-control", "no-cache, max-age=60")],
                None,
                Some(0),
            ),
            (
                "9111 5.2.2.5 no-store",
                200,
                &[("cache-control", "no-store, max-age=60")],
                None,
                None,
            ),
            (
                "9111 5.2.2.7 private",
                200,
                &[("cache-control", "private, max-age=60")],
                None,
                None,
            ),
            (
                "Set-Cookie is never shared (as nginx)",
                200,
                &[("set-cookie", "a=b")],
                None,
                None,
            ),
            (
                "Vary: Accept-Encoding is stored",
                200,
                &[("vary", "Accept-Encoding")],
                None,
                Some(3600),
            ),
            (
                "9111 4.1 Vary on a request field: stored (by variant)",
                200,
                &[("vary", "User-Agent")],
                None,
                Some(3600),
            ),
            (
                "9111 4.1 Vary: * is never matched",
                200,
                &[("vary", "Accept-Language, *")],
                None,
                None,
            ),
            (
                "9111 4.2.1 Expires minus Date",
                200,
                &[DATE, ("expires", "Sun, 09 Sep 2001 01:47:40 GMT")],
                None,
                Some(60),
            ),
            (
                "9111 5.3 an invalid Expires is already expired",
                200,
                &[("expires", "0")],
                None,
                Some(0),
            ),
            (
                "9111 5.3 an Expires before Date is expired",
                200,
                &[DATE, ("expires", "Sun, 09 Sep 2001 01:45:40 GMT")],
                None,
                Some(0),
            ),
            (
                "9110 5.6.7 Expires in RFC 850 form",
                200,
                &[DATE, ("expires", "Sunday, 09-Sep-01 01:47:40 GMT")],
                None,
                Some(60),
            ),
            (
                "9110 5.6.7 Expires in asctime form",
                200,
                &[DATE, ("expires", "Sun Sep  9 01:47:40 2001")],
                None,
                Some(60),
            ),
            (
                "9110 5.6.7 Expires in another case",
                200,
                &[DATE, ("expires", "SUN, 09 SEP 2001 01:47:40 gmt")],
                None,
                Some(60),
            ),
            (
                "9111 4.2.1 max-age above Expires",
                200,
                &[
                    DATE,
                    ("expires", "Sun, 09 Sep 2001 01:47:40 GMT"),
                    ("cache-control", "max-age=5"),
                ],
                None,
                Some(5),
            ),
            (
                "9111 3 any status with explicit freshness: 302",
                302,
                &[("cache-control", "max-age=5")],
                None,
                Some(5),
            ),
            (
                "9111 3 any status with explicit freshness: 500",
                500,
                &[("cache-control", "max-age=5")],
                None,
                Some(5),
            ),
            (
                "9111 3 any status with explicit freshness: 503 by Expires",
                503,
                &[DATE, ("expires", "Sun, 09 Sep 2001 01:47:40 GMT")],
                None,
                Some(60),
            ),
            (
                "9111 3 a 206 is not stored as the object",
                206,
                &[("cache-control", "max-age=5")],
                None,
                None,
            ),
            (
                "9213 2.1 CDN-Cache-Control above Cache-Control",
                200,
                &[
                    ("cache-control", "max-age=5"),
                    ("cdn-cache-control", "max-age=50"),
                ],
                None,
                Some(50),
            ),
            (
                "9213 2.1 CDN-Cache-Control max-age=0 alone: stale",
                200,
                &[("cdn-cache-control", "max-age=0")],
                None,
                Some(0),
            ),
            (
                "9213 2.1 a targeted field ignores Expires",
                200,
                &[
                    DATE,
                    ("expires", "Sun, 09 Sep 2001 01:47:40 GMT"),
                    ("cdn-cache-control", "public"),
                ],
                None,
                Some(3600),
            ),
            (
                "9213 2.1 a targeted no-store",
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "no-store"),
                ],
                None,
                None,
            ),
            (
                "9213 2.1 a targeted no-store=?0 is absent",
                200,
                &[("cdn-cache-control", "no-store=?0, max-age=9")],
                None,
                Some(9),
            ),
            (
                "9213 2.2 an invalid targeted field is ignored",
                200,
                &[
                    ("cache-control", "max-age=5"),
                    ("cdn-cache-control", "max-age=\"50"),
                ],
                None,
                Some(5),
            ),
            (
                "9213 2.2 a negative targeted max-age: stale",
                200,
                &[("cdn-cache-control", "max-age=-1")],
                None,
                Some(0),
            ),
            (
                "9213 2.2 a string targeted max-age: stale",
                200,
                &[("cdn-cache-control", "max-age=\"50\"")],
                None,
                Some(50),
            ),
            (
                "9213 2.1 Tollgate-CDN-Cache-Control above CDN-Cache-Control",
                200,
                &[
                    ("cdn-cache-control", "max-age=50"),
                    ("tollgate-cdn-cache-control", "max-age=500"),
                ],
                None,
                Some(500),
            ),
            (
                "Gcore: the resource's override wins for 200",
                200,
                &[("cache-control", "max-age=5")],
                Some(100),
                Some(100),
            ),
            (
                "Gcore: the resource's override over no-cache",
                200,
                &[("cache-control", "no-cache")],
                Some(100),
                Some(100),
            ),
            ("Gcore: no override for a 404", 404, &[], Some(100), None),
            (
                "the override does not share no-store",
                200,
                &[("cache-control", "no-store")],
                Some(100),
                None,
            ),
            (
                "the override does not share private",
                200,
                &[("cache-control", "private")],
                Some(100),
                None,
            ),
            (
                "the override does not share a cookie",
                200,
                &[("set-cookie", "sid=1")],
                Some(100),
                None,
            ),
        ];
        for (name, status, headers, ov, want) in cases {
            let st = StatusCode::from_u16(*status).unwrap();
            let got = freshness(st, &h(headers), *ov, 3600, None, now).map(|f| f.fresh_secs);
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn http_dates_in_every_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000); // 2026
        let t = |s| http_date(s, now).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        let nov_6_1994 = Some(784_111_777);
        // RFC 9110 5.6.7's three examples.
        assert_eq!(t("Sun, 06 Nov 1994 08:49:37 GMT"), nov_6_1994);
        assert_eq!(t("Sunday, 06-Nov-94 08:49:37 GMT"), nov_6_1994);
        assert_eq!(t("Sun Nov  6 08:49:37 1994"), nov_6_1994);
        assert_eq!(t("sun, 06 nov 1994 08:49:37 gmt"), nov_6_1994);
        assert_eq!(t("SUNDAY, 06-NOV-94 08:49:37 GMT"), nov_6_1994);
        assert_eq!(t("  Sun, 06 Nov 1994 08:49:37 GMT "), nov_6_1994);
        // Two-digit years: no more than 50 years ahead of now (2026), else the century before.
        let year_of = |s| {
            let secs = t(s).unwrap();
            1970 + secs / 31_556_952
        };
        assert_eq!(year_of("Wednesday, 01-Jan-76 00:00:00 GMT"), 2076);
        assert_eq!(year_of("Saturday, 01-Jan-77 00:00:00 GMT"), 1977);
        assert_eq!(year_of("Wednesday, 01-Jan-25 00:00:00 GMT"), 2025);
        for bad in [
            "",
            "0",
            "-1",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sunday, 06-Nov-9x 08:49:37 GMT",
            "Sunday, 06-Xyz-94 08:49:37 GMT",
            "Søn, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stale_if_error_is_refused_where_the_rfc_forbids_serving_stale() {
        let now = SystemTime::UNIX_EPOCH;
        let s = |cc: &'static str| {
            freshness(
                StatusCode::OK,
                &h(&[("cache-control", cc)]),
                None,
                60,
                None,
                now,
            )
            .map(|f| f.stale_if_error_secs)
        };
        assert_eq!(s("max-age=5"), Some(DEFAULT_STALE_IF_ERROR_SECS));
        assert_eq!(s("max-age=5, stale-if-error=30"), Some(30));
        assert_eq!(s("max-age=5, stale-if-error=x"), Some(0), "invalid: none");
        for strict in [
            "max-age=5, must-revalidate",     // 9111 5.2.2.2
            "max-age=5, proxy-revalidate",    // 9111 5.2.2.8
            "s-maxage=5",                     // 9111 5.2.2.10
            "s-maxage=5, stale-if-error=600", // 9111 5.2.2.10 over 5861
            "no-cache, stale-if-error=600",   // 9111 5.2.2.4
        ] {
            assert_eq!(s(strict), Some(0), "{strict}");
        }
    }

    #[test]
    fn per_status_times_come_before_value_and_default() {
        let now = UNIX_EPOCH;
        let f = |status: u16, headers: &[(&'static str, &'static str)], ov, custom| {
            let st = StatusCode::from_u16(status).unwrap();
            freshness(st, &h(headers), ov, 3600, custom, now).map(|f| f.fresh_secs)
        };
        // With `value`: any status it lists, whatever the origin says; 0 is not stored.
        assert_eq!(f(404, &[], Some(600), Some(10)), Some(10));
        assert_eq!(
            f(200, &[("cache-control", "max-age=5")], Some(600), Some(30)),
            Some(30)
        );
        assert_eq!(f(200, &[], Some(600), Some(0)), None);
        assert_eq!(
            f(404, &[], Some(600), None),
            None,
            "value alone: 200/206/301/302"
        );
        // Without it: when the origin gives no freshness.
        assert_eq!(f(404, &[], None, Some(10)), Some(10));
        assert_eq!(
            f(404, &[("cache-control", "max-age=99")], None, Some(10)),
            Some(99)
        );
        assert_eq!(f(200, &[], None, Some(0)), None);
        // Never: a 304, a cookie, no-store.
        assert_eq!(f(304, &[], Some(600), Some(10)), None);
        assert_eq!(f(404, &[("set-cookie", "a=b")], Some(600), Some(10)), None);
        assert_eq!(
            f(404, &[("cache-control", "no-store")], None, Some(10)),
            None
        );
    }

    #[test]
    fn stale_while_revalidate_is_read_and_refused_where_serving_stale_is() {
        // RFC 5861 3; RFC 9111 5.2.2 for the directives that forbid it.
        let w = |cc: &'static str| {
            let f = freshness(
                StatusCode::OK,
                &h(&[("cache-control", cc)]),
                None,
                60,
                None,
                UNIX_EPOCH,
            );
            let from_headers = stale_while_revalidate(&h(&[("cache-control", cc)]));
            assert_eq!(
                f.map(|f| f.stale_while_revalidate_secs),
                Some(from_headers),
                "{cc}"
            );
            from_headers
        };
        assert_eq!(w("max-age=5"), 0);
        assert_eq!(w("max-age=5, stale-while-revalidate=30"), 30);
        assert_eq!(w("max-age=5, stale-while-revalidate=-1"), 0);
        assert_eq!(
            w("max-age=5, stale-while-revalidate=30, must-revalidate"),
            0
        );
        assert_eq!(w("s-maxage=5, stale-while-revalidate=30"), 0);
        let targeted = h(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=5, stale-while-revalidate=9"),
        ]);
        assert_eq!(stale_while_revalidate(&targeted), 9);
    }

    #[test]
    fn kept_past_the_stale_window_only_with_a_validator() {
        let t = Instant::now();
        let (fresh, stale) = (t + Duration::from_secs(10), t + Duration::from_secs(20));
        assert_eq!(keep_until(fresh, stale, fresh, &HeaderMap::new()), stale);
        let later = stale + Duration::from_secs(5);
        assert_eq!(keep_until(fresh, stale, later, &HeaderMap::new()), later);
        let with =
            |k: &'static str, v: &'static str| keep_until(fresh, stale, fresh, &h(&[(k, v)]));
        let kept = fresh + Duration::from_secs(REVALIDATE_KEEP_SECS);
        assert_eq!(with("etag", "\"v1\""), kept);
        assert_eq!(with("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"), kept);
    }

    proptest::proptest! {
        /// No mix of directives, targeted fields and dates panics, and no lifetime exceeds
        /// the largest representable one.
        #[test]
        fn any_headers_give_a_bounded_answer(
            cc in "[a-zA-Z0-9=,;\"' -]{0,40}",
            cdn in proptest::option::of("[a-zA-Z0-9=,;?\"' -]{0,30}"),
            expires in proptest::option::of("[A-Za-z0-9 ,:-]{0,32}"),
            status in 100u16..600,
            ov in proptest::option::of(proptest::num::u64::ANY),
            default in proptest::num::u64::ANY,
        ) {
            let mut m = HeaderMap::new();
            let mut put = |k: &'static str, v: &str| {
                if let Ok(v) = HeaderValue::from_str(v) {
                    m.append(k, v);
                }
            };
            put("cache-control", &cc);
            if let Some(c) = &cdn { put("cdn-cache-control", c); }
            if let Some(e) = &expires { put("expires", e); }
            let st = StatusCode::from_u16(status).unwrap();
            if let Some(f) = freshness(st, &m, ov, default, None, SystemTime::now()) {
                proptest::prop_assert!(f.fresh_secs <= MAX_DELTA_SECS);
                proptest::prop_assert!(f.stale_if_error_secs <= MAX_DELTA_SECS);
            }
            let _ = http_date(&cc, SystemTime::now());
        }
    }

    #[test]
    fn huge_lifetimes_saturate_instead_of_overflowing() {
        let now = SystemTime::UNIX_EPOCH;
        let f = |cc: &'static str| {
            freshness(
                StatusCode::OK,
                &h(&[("cache-control", cc)]),
                None,
                60,
                None,
                now,
            )
        };
        for cc in [
            "max-age=9223372036854775807",
            "max-age=18446744073709551615",
            "max-age=999999999999999999999999999",
            "s-maxage=18446744073709551616",
        ] {
            assert_eq!(f(cc).map(|f| f.fresh_secs), Some(MAX_DELTA_SECS), "{cc}");
        }
        assert_eq!(
            f("max-age=5, stale-if-error=18446744073709551615").map(|f| f.stale_if_error_secs),
            Some(MAX_DELTA_SECS)
        );
        let over = freshness(
            StatusCode::OK,
            &HeaderMap::new(),
            Some(u64::MAX),
            60,
            None,
            now,
        );
        assert_eq!(over.map(|f| f.fresh_secs), Some(MAX_DELTA_SECS));
        let default = freshness(StatusCode::OK, &HeaderMap::new(), None, u64::MAX, None, now);
        assert_eq!(default.map(|f| f.fresh_secs), Some(MAX_DELTA_SECS));
    }
}
