//! Answers from a cached object: `Range` (one range, 206 / 416), conditional requests (304),
//! and `HEAD`, with `Age` and Gcore's `Cache: HIT|MISS` header.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::body::EdgeBody;
use crate::cache::Object;

/// Gcore's cache status header.
pub static CACHE: HeaderName = HeaderName::from_static("cache");

/// `Age` values up to an hour, made once: a hit then clones a static value (no allocation,
/// no shared reference count) instead of formatting a number.
fn age_value(age: u64) -> HeaderValue {
    static AGES: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
        (0..=3600u64)
            .map(|n| HeaderValue::from_static(Box::leak(n.to_string().into_boxed_str())))
            .collect()
    });
    match AGES.get(age as usize) {
        Some(v) => v.clone(),
        None => HeaderValue::from(age),
    }
}

/// A parsed single byte range, resolved against a length.
fn byte_range(value: &HeaderValue, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: answer with the whole object, which RFC 9110 allows
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            u64::MAX
        } else {
            b.parse().ok()?
        };
        if end < start {
            return None;
        }
        if start >= len {
            return Some(Err(()));
        }
        (start, end.min(len - 1))
    };
    Some(Ok(r))
}

fn etag_matches(list: &str, etag: &HeaderValue) -> bool {
    let tag = etag.to_str().unwrap_or("");
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.trim() == "*" || list.split(',').any(|t| strip(t) == strip(tag))
}

fn not_modified(obj: &Object, req: &HeaderMap) -> bool {
    if obj.status != StatusCode::OK {
        return false;
    }
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return obj.etag.as_ref().is_some_and(|e| etag_matches(inm, e));
    }
    let ims = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    matches!((ims, obj.last_modified), (Some(ims), Some(lm)) if lm <= ims)
}

fn if_range_allows(obj: &Object, req: &HeaderMap) -> bool {
    let Some(v) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if let Ok(date) = httpdate::parse_http_date(v) {
        return obj.last_modified.is_some_and(|lm: SystemTime| lm <= date);
    }
    // A strong comparison: weak tags never satisfy If-Range.
    obj.etag
        .as_ref()
        .and_then(|e| e.to_str().ok())
        .is_some_and(|e| !e.starts_with("W/") && e == v.trim())
}

/// The response to `req` from `obj`, and the body bytes it carries.
pub fn from_object(
    obj: &Object,
    req: &HeaderMap,
    head: bool,
    cache_status: &'static str,
    now: Instant,
) -> (Response<EdgeBody>, u64) {
    let mut headers = obj.headers.clone();
    headers.insert(header::AGE, age_value(obj.age(now)));
    headers.insert(CACHE.clone(), HeaderValue::from_static(cache_status));
    let len = obj.body.len() as u64;

    let (status, body): (StatusCode, Bytes) = if not_modified(obj, req) {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if obj.status == StatusCode::OK {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        match req
            .get(header::RANGE)
            .filter(|_| if_range_allows(obj, req))
            .and_then(|r| byte_range(r, len))
        {
            Some(Ok((start, end))) => {
                let cr = format!("bytes {start}-{end}/{len}");
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&cr).unwrap_or(HeaderValue::from_static("bytes */0")),
                );
                (
                    StatusCode::PARTIAL_CONTENT,
                    obj.body.slice(start as usize..=end as usize),
                )
            }
            Some(Err(())) => {
                let cr = format!("bytes */{len}");
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&cr).unwrap_or(HeaderValue::from_static("bytes */0")),
                );
                (StatusCode::RANGE_NOT_SATISFIABLE, Bytes::new())
            }
            None => (StatusCode::OK, obj.body.clone()),
        }
    } else {
        (obj.status, obj.body.clone())
    };

    let sent = body.len() as u64;
    // A body in hand has an exact size, from which hyper writes Content-Length itself; only a
    // HEAD answer (sent without its body) needs it set here.
    if head && status != StatusCode::NOT_MODIFIED {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
    }
    let body = if head || sent == 0 {
        EdgeBody::empty()
    } else {
        EdgeBody::Full(Some(body))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    (resp, if head { 0 } else { sent })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range(&v("bytes=0-9"), 100), Some(Ok((0, 9))));
        assert_eq!(byte_range(&v("bytes=90-"), 100), Some(Ok((90, 99))));
        assert_eq!(byte_range(&v("bytes=90-200"), 100), Some(Ok((90, 99))));
        assert_eq!(byte_range(&v("bytes=-10"), 100), Some(Ok((90, 99))));
        assert_eq!(byte_range(&v("bytes=-200"), 100), Some(Ok((0, 99))));
        assert_eq!(byte_range(&v("bytes=100-"), 100), Some(Err(())));
        assert_eq!(byte_range(&v("bytes=-0"), 100), Some(Err(())));
        assert_eq!(byte_range(&v("bytes=5-1"), 100), None);
        assert_eq!(byte_range(&v("bytes=0-1,3-4"), 100), None);
        assert_eq!(byte_range(&v("items=0-1"), 100), None);
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\"", &v("\"a\"")));
        assert!(etag_matches("W/\"a\", \"b\"", &v("\"a\"")));
        assert!(etag_matches("*", &v("\"x\"")));
        assert!(!etag_matches("\"b\"", &v("\"a\"")));
    }
}
