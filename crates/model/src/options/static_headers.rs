//! `options.staticRequestHeaders`: headers added to every origin request.

use std::collections::BTreeMap;

use crate::options::OptionToggle;
use crate::validate::FieldErrors;

/// Most headers in `staticRequestHeaders`.
pub const MAX_STATIC_HEADERS: usize = 50;

/// Headers the edge itself sets on origin requests, which a resource may not replace.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "range",
    "accept-encoding",
];

/// Gcore's rules for request headers: names of letters, digits, `-` and `_`; values of
/// letters, digits, spaces and `-_/:=.`, not starting or ending with a space.
fn check_request_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 255
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("a header name is 1 to 255 letters, digits, '-' or '_'".to_owned());
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("{name} is set by the edge itself"));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b" -_/:=.".contains(&b);
    if value.is_empty()
        || value.len() > 4096
        || !value.bytes().all(allowed)
        || value.starts_with(' ')
        || value.ends_with(' ')
    {
        return Err(
            "a header value is letters, digits, spaces and -_/:=. (not at either end)".to_owned(),
        );
    }
    Ok(())
}

/// The headers added to origin requests (names as given), when the option is on. Only then are
/// they checked, unlike the host header, the cache times and the keys, which are checked while
/// off too.
pub(crate) fn validate(
    t: Option<&OptionToggle<BTreeMap<String, String>>>,
    errors: &mut FieldErrors,
) -> Vec<(String, String)> {
    let mut origin_headers = Vec::new();
    let Some(t) = t.filter(|t| t.enabled) else {
        return origin_headers;
    };
    for (name, value) in &t.value {
        match check_request_header(name, value) {
            Ok(()) => origin_headers.push((name.clone(), value.clone())),
            Err(m) => errors.push(format!("options.staticRequestHeaders.value.{name}"), m),
        }
    }
    if t.value.len() > MAX_STATIC_HEADERS {
        errors.push(
            "options.staticRequestHeaders.value",
            format!("at most {MAX_STATIC_HEADERS} headers"),
        );
    }
    origin_headers
}
