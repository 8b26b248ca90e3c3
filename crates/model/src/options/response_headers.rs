//! `options.static_response_headers`: headers added to the edge's answers to viewers, as nginx's
//! `add_header` (`always`: on every answer, the token gate's 403 and 410 included; else on 200,
//! 201, 204, 206, 301, 302, 303, 304, 307 and 308 only).

use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

/// Most headers in the option, and most values of one.
pub const MAX_RESPONSE_HEADERS: usize = 50;
const MAX_VALUES: usize = 16;

/// `options.static_response_headers`, Gcore's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponseHeaders {
    /// Whether the option applies.
    pub enabled: bool,
    /// The headers.
    pub value: Vec<ResponseHeader>,
}

/// One header of `static_response_headers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseHeader {
    /// Its name (`Content-Disposition`, `Timing-Allow-Origin`).
    pub name: String,
    /// Its values, each sent as a header line of its own.
    pub value: Vec<String>,
    /// On every answer, not only on 2xx and 3xx ones.
    #[serde(default)]
    pub always: bool,
}

/// Headers the edge sets itself or that frame the message: a resource may not add them.
const RESERVED: [&str; 10] = [
    "cache",
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "date",
];

/// RFC 9110 5.6.2: a token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The headers in force (`Some` when on): checked whenever given, since they are stored and
/// served back.
pub(crate) fn validate(
    o: Option<&StaticResponseHeaders>,
    errors: &mut FieldErrors,
) -> Vec<ResponseHeader> {
    let Some(o) = o else {
        return Vec::new();
    };
    const FIELD: &str = "options.static_response_headers.value";
    if o.value.len() > MAX_RESPONSE_HEADERS {
        errors.push(FIELD, format!("at most {MAX_RESPONSE_HEADERS} headers"));
    }
    for (i, h) in o.value.iter().enumerate() {
        if h.name.len() > 255 || !is_token(&h.name) {
            errors.push(
                format!("{FIELD}[{i}].name"),
                format!(
                    "{:?} is not a header name (1 to 255 letters, digits and !#$%&'*+-.^_`|~)",
                    h.name
                ),
            );
        } else if RESERVED.contains(&h.name.to_ascii_lowercase().as_str()) {
            errors.push(
                format!("{FIELD}[{i}].name"),
                format!("{} is set by the edge itself", h.name),
            );
        }
        if h.value.is_empty() || h.value.len() > MAX_VALUES {
            errors.push(
                format!("{FIELD}[{i}].value"),
                format!("list 1 to {MAX_VALUES} values"),
            );
        }
        for (j, v) in h.value.iter().enumerate() {
            // Visible ASCII and inner spaces: no line breaks, no control bytes.
            let ok = !v.is_empty()
                && v.len() <= 4096
                && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
                && !v.starts_with(' ')
                && !v.ends_with(' ');
            if !ok {
                errors.push(
                    format!("{FIELD}[{i}].value[{j}]"),
                    "1 to 4096 visible ASCII characters and inner spaces",
                );
            }
        }
    }
    if o.enabled {
        o.value.clone()
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<Vec<ResponseHeader>, String> {
        let o: StaticResponseHeaders = serde_json::from_str(json).unwrap();
        let mut e = FieldErrors::default();
        let out = validate(Some(&o), &mut e);
        let m = e.into_messages();
        if m.is_empty() {
            Ok(out)
        } else {
            Err(m.join("; "))
        }
    }

    #[test]
    fn headers_as_gcore_gives_them() {
        let h = check(
            r#"{"enabled": true, "value": [{"name": "Content-Disposition", "value": ["attachment; filename=\"a.mp4\""]},
                {"name": "Timing-Allow-Origin", "value": ["*"], "always": true}]}"#,
        )
        .unwrap();
        assert_eq!((h.len(), h[1].always, h[0].always), (2, true, false));
        assert!(
            check(r#"{"enabled": false, "value": [{"name": "X-A", "value": ["1"]}]}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn errors_name_the_header() {
        for (json, want) in [
            (
                r#"{"enabled": true, "value": [{"name": "Bad Name", "value": ["1"]}]}"#,
                "value[0].name: \"Bad Name\" is not a header name",
            ),
            (
                r#"{"enabled": true, "value": [{"name": "Content-Length", "value": ["1"]}]}"#,
                "value[0].name: Content-Length is set by the edge",
            ),
            (
                r#"{"enabled": true, "value": [{"name": "X-A", "value": []}]}"#,
                "value[0].value: list 1 to 16",
            ),
            (
                r#"{"enabled": false, "value": [{"name": "X-A", "value": ["a\r\nb"]}]}"#,
                "value[0].value[0]: 1 to 4096 visible",
            ),
        ] {
            let e = check(json).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
