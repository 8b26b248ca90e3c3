//! Whether and for how long a response may be stored (RFC 9111, shared cache), as a pure
//! function of the response, the resource's settings and `now`.
//!
//! Precedence: a resource `edge_cache_settings.value` overrides the origin for 200, 206, 301
//! and 302 (Gcore's rule). Otherwise `no-store`, `private`, `no-cache`, `Set-Cookie` (as nginx)
//! or a `Vary` other than `Accept-Encoding` (the edge asks origins for identity encoding) keep
//! a response out; then `s-maxage`, `max-age`, `Expires` minus `Date`; and without any of
//! those, the resource default, for 200 and 301 only (as nginx's `proxy_cache_valid 200`).

use std::time::{Duration, Instant, SystemTime};

use http::{header, HeaderMap, StatusCode};

/// How long a stored response is fresh, and how long after that it may still be served when
/// the origin fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Seconds the response is fresh, counted from when it was received.
    pub fresh_secs: u64,
    /// Seconds past freshness it may be served if the origin fails.
    pub stale_if_error_secs: u64,
}

/// Serve-stale window when the origin says nothing (`stale-if-error` sets its own).
pub const DEFAULT_STALE_IF_ERROR_SECS: u64 = 600;

/// The largest lifetime taken from a response: 2^31 seconds (68 years), the value RFC 9111
/// 1.2.2 tells a cache to use for a delta-seconds too large to represent. Every lifetime is
/// clamped to it, so that instants computed from it cannot overflow.
pub const MAX_DELTA_SECS: u64 = 1 << 31;

fn directives(headers: &HeaderMap) -> Vec<(String, Option<String>)> {
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
                Some((k, v)) => (
                    k.trim().to_ascii_lowercase(),
                    Some(v.trim().trim_matches('"').to_owned()),
                ),
                None => (d.to_ascii_lowercase(), None),
            })
        })
        .collect()
}

/// `t` plus `secs` (clamped to [`MAX_DELTA_SECS`]), never overflowing: on a platform whose
/// clock cannot hold the sum, `t` itself (the object is then stale at once, not a panic).
pub fn after(t: Instant, secs: u64) -> Instant {
    t.checked_add(Duration::from_secs(secs.min(MAX_DELTA_SECS)))
        .unwrap_or(t)
}

/// A delta-seconds value (RFC 9111 1.2.2: digits only), saturated at [`MAX_DELTA_SECS`].
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

/// The freshness of a response, or `None` when it must not be stored.
pub fn freshness(
    status: StatusCode,
    headers: &HeaderMap,
    override_secs: Option<u64>,
    default_secs: u64,
    now: SystemTime,
) -> Option<Freshness> {
    let cc = directives(headers);
    let has = |name: &str| cc.iter().any(|(k, _)| k == name);
    let stale_if_error_secs = if has("must-revalidate") || has("proxy-revalidate") {
        0
    } else {
        cc.iter()
            .find(|(k, _)| k == "stale-if-error")
            .and_then(|(_, v)| secs(v))
            .unwrap_or(DEFAULT_STALE_IF_ERROR_SECS)
    };
    // Never shared, whatever the resource says: a response for one viewer (a cookie, private)
    // or one the origin forbids storing.
    if has("no-store") || has("private") || headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    if let Some(secs) = override_secs {
        let overridable = matches!(status.as_u16(), 200 | 206 | 301 | 302);
        return (overridable && secs > 0).then_some(Freshness {
            fresh_secs: secs.min(MAX_DELTA_SECS),
            stale_if_error_secs,
        });
    }
    if has("no-cache") {
        return None;
    }
    let vary_ok = headers.get_all(header::VARY).iter().all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .all(|f| f.is_empty() || f.eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !vary_ok {
        return None;
    }
    let explicit = cc
        .iter()
        .find(|(k, _)| k == "s-maxage")
        .and_then(|(_, v)| secs(v))
        .or_else(|| {
            cc.iter()
                .find(|(k, _)| k == "max-age")
                .and_then(|(_, v)| secs(v))
        })
        .or_else(|| {
            let expires = headers.get(header::EXPIRES)?.to_str().ok();
            // An invalid Expires means "already expired" (RFC 9111 5.3).
            let expires = expires
                .and_then(|e| httpdate::parse_http_date(e).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let date = headers
                .get(header::DATE)
                .and_then(|d| d.to_str().ok())
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .unwrap_or(now);
            Some(
                expires
                    .duration_since(date)
                    .map_or(0, |d| d.as_secs().min(MAX_DELTA_SECS)),
            )
        });
    let fresh_secs = match explicit {
        Some(s)
            if matches!(
                status.as_u16(),
                200 | 203 | 204 | 300 | 301 | 308 | 404 | 410
            ) =>
        {
            s
        }
        Some(_) => return None,
        None if matches!(status.as_u16(), 200 | 301) => default_secs.min(MAX_DELTA_SECS),
        None => return None,
    };
    (fresh_secs > 0).then_some(Freshness {
        fresh_secs,
        stale_if_error_secs,
    })
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

    #[test]
    fn table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let ok = StatusCode::OK;
        let f = |st, hs: &[(&'static str, &'static str)], ov| {
            freshness(st, &h(hs), ov, 3600, now).map(|f| f.fresh_secs)
        };
        assert_eq!(f(ok, &[], None), Some(3600));
        assert_eq!(f(ok, &[("cache-control", "max-age=60")], None), Some(60));
        assert_eq!(
            f(ok, &[("cache-control", "max-age=60, s-maxage=10")], None),
            Some(10)
        );
        assert_eq!(f(ok, &[("cache-control", "no-store")], None), None);
        assert_eq!(
            f(ok, &[("cache-control", "private, max-age=60")], None),
            None
        );
        assert_eq!(f(ok, &[("cache-control", "max-age=0")], None), None);
        assert_eq!(f(ok, &[("set-cookie", "a=b")], None), None);
        assert_eq!(f(ok, &[("vary", "Accept-Encoding")], None), Some(3600));
        assert_eq!(f(ok, &[("vary", "User-Agent")], None), None);
        assert_eq!(
            f(
                ok,
                &[
                    ("date", "Sun, 09 Sep 2001 01:46:40 GMT"),
                    ("expires", "Sun, 09 Sep 2001 01:47:40 GMT")
                ],
                None
            ),
            Some(60)
        );
        assert_eq!(f(ok, &[("expires", "0")], None), None);
        assert_eq!(f(StatusCode::NOT_FOUND, &[], None), None);
        assert_eq!(
            f(
                StatusCode::NOT_FOUND,
                &[("cache-control", "max-age=5")],
                None
            ),
            Some(5)
        );
        assert_eq!(
            f(
                StatusCode::INTERNAL_SERVER_ERROR,
                &[("cache-control", "max-age=5")],
                None
            ),
            None
        );
        // The resource's override does not make a viewer's response shareable.
        assert_eq!(f(ok, &[("cache-control", "no-store")], Some(100)), None);
        assert_eq!(f(ok, &[("cache-control", "private")], Some(100)), None);
        assert_eq!(f(ok, &[("set-cookie", "sid=1")], Some(100)), None);
        assert_eq!(
            f(ok, &[("cache-control", "no-cache")], Some(100)),
            Some(100)
        );
        assert_eq!(f(StatusCode::NOT_FOUND, &[], Some(100)), None);
    }

    #[test]
    fn stale_window() {
        let now = SystemTime::UNIX_EPOCH;
        let s = |cc: &'static str| {
            freshness(StatusCode::OK, &h(&[("cache-control", cc)]), None, 60, now)
                .map(|f| f.stale_if_error_secs)
        };
        assert_eq!(s("max-age=5"), Some(DEFAULT_STALE_IF_ERROR_SECS));
        assert_eq!(s("max-age=5, stale-if-error=30"), Some(30));
        assert_eq!(s("max-age=5, must-revalidate"), Some(0));
    }

    #[test]
    fn huge_lifetimes_saturate_instead_of_overflowing() {
        let now = SystemTime::UNIX_EPOCH;
        let f = |cc: &'static str| {
            freshness(StatusCode::OK, &h(&[("cache-control", cc)]), None, 60, now)
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
        let over = freshness(StatusCode::OK, &HeaderMap::new(), Some(u64::MAX), 60, now);
        assert_eq!(over.map(|f| f.fresh_secs), Some(MAX_DELTA_SECS));
        let default = freshness(StatusCode::OK, &HeaderMap::new(), None, u64::MAX, now);
        assert_eq!(default.map(|f| f.fresh_secs), Some(MAX_DELTA_SECS));
    }
}
