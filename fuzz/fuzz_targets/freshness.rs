//! Any response head from an origin (status and header lines) and any resource cache times
//! (per-status ones included):
//! the freshness computation never panics, its lifetimes stay within RFC 9111's 2^31 s, and
//! the instants the edge computes from them never overflow.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use tollgate_edge::freshness::{after, freshness, MAX_DELTA_SECS};

fuzz_target!(|data: &[u8]| {
    if data.len() < 18 {
        return;
    }
    let status = StatusCode::from_u16(100 + u16::from_le_bytes([data[0], data[1]]) % 500)
        .unwrap_or(StatusCode::OK);
    let num = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let override_secs = (data[2] & 1 == 1).then(|| num(&data[2..10]));
    let default_secs = num(&data[10..18]);
    let status_secs = (data[2] & 2 == 2).then(|| default_secs.rotate_left(17));
    let mut headers = HeaderMap::new();
    for line in data[18..].split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(f) = freshness(status, &headers, override_secs, default_secs, status_secs, now) {
        assert!(f.fresh_secs <= MAX_DELTA_SECS && f.stale_if_error_secs <= MAX_DELTA_SECS);
        let t = Instant::now();
        // Exact: the clamp leaves sums a monotonic clock holds, so `after` never falls back.
        let fresh_until = after(t, f.fresh_secs);
        assert_eq!(fresh_until - t, Duration::from_secs(f.fresh_secs));
        let stale_until = after(fresh_until, f.stale_if_error_secs);
        assert_eq!(stale_until - fresh_until, Duration::from_secs(f.stale_if_error_secs));
    }
});
