//! `options.cors` `{"enabled", "value": [...], "always"}`: the `Access-Control-Allow-Origin`
//! the edge adds. `["*"]` adds `*`; `["$http_origin"]` echoes the request's `Origin`; a list
//! of domains (`*.domain` for its subdomains) echoes the `Origin` whose host is one of them.
//! Without `always`, on 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 only; with it on
//! every answer, the token gate's 403 and 410 included (a player can then read "expired").

use serde::{Deserialize, Serialize};

use crate::options::access::{referer_host, Domain};
use crate::validate::FieldErrors;

/// Most domains in the list.
pub const MAX_CORS_DOMAINS: usize = 100;

/// `options.cors` as Gcore writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Whether the option applies.
    pub enabled: bool,
    /// `["*"]`, `["$http_origin"]`, or domains.
    pub value: Vec<String>,
    /// On every answer, not only 2xx and 3xx ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always: Option<bool>,
}

/// Which origins get the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowOrigin {
    /// `*`.
    Any,
    /// The request's `Origin`, whatever it is.
    Echo,
    /// The request's `Origin` when its host is one of these.
    Domains(Vec<Domain>),
}

/// `cors` in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCors {
    /// Which origins get the header.
    pub allow: AllowOrigin,
    /// On every status.
    pub always: bool,
}

impl ValidCors {
    /// The `Access-Control-Allow-Origin` value for a request with `origin` (its `Origin`
    /// header), if it gets one: `*`, or the origin itself.
    pub fn allow_origin<'a>(&self, origin: Option<&'a [u8]>) -> Option<&'a [u8]> {
        match &self.allow {
            AllowOrigin::Any => Some(b"*"),
            AllowOrigin::Echo => origin.filter(|o| !o.is_empty()),
            AllowOrigin::Domains(list) => origin
                .filter(|o| referer_host(o).is_some_and(|h| list.iter().any(|d| d.matches(&h)))),
        }
    }

    /// Whether the header depends on the request's `Origin` (the answer then says `Vary:
    /// Origin`).
    pub fn varies(&self) -> bool {
        self.allow != AllowOrigin::Any
    }
}

/// `cors` in force, when enabled; its value checked whenever given.
pub(crate) fn validate(c: Option<&Cors>, errors: &mut FieldErrors) -> Option<ValidCors> {
    let c = c?;
    const FIELD: &str = "options.cors.value";
    let alone = |v: &str| c.value.len() == 1 && c.value[0] == v;
    let allow = if alone("*") {
        AllowOrigin::Any
    } else if alone("$http_origin") {
        AllowOrigin::Echo
    } else {
        if c.value.is_empty() && c.enabled {
            errors.push(
                FIELD,
                "give [\"*\"], [\"$http_origin\"] or a list of domains",
            );
        }
        if c.value.len() > MAX_CORS_DOMAINS {
            errors.push(FIELD, format!("at most {MAX_CORS_DOMAINS} domains"));
        }
        let mut list = Vec::new();
        for (i, v) in c.value.iter().enumerate() {
            if v == "*" || v == "$http_origin" {
                errors.push(
                    format!("{FIELD}[{i}]"),
                    format!("{v:?} stands alone: [\"{v}\"], not in a list of domains"),
                );
                continue;
            }
            match Domain::parse(v) {
                Ok(d) => list.push(d),
                Err(m) => errors.push(format!("{FIELD}[{i}]"), m),
            }
        }
        AllowOrigin::Domains(list)
    };
    c.enabled.then_some(ValidCors {
        allow,
        always: c.always.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(json: &str) -> Result<Option<ValidCors>, Vec<String>> {
        let c: Cors = serde_json::from_str(json).unwrap();
        let mut e = FieldErrors::default();
        let v = validate(Some(&c), &mut e);
        let m = e.into_messages();
        if m.is_empty() {
            Ok(v)
        } else {
            Err(m)
        }
    }

    #[test]
    fn the_three_gcore_forms() {
        let any = cors(r#"{"enabled": true, "value": ["*"]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(any.allow_origin(None), Some(&b"*"[..]));
        assert!(!any.varies() && !any.always);
        let echo = cors(r#"{"enabled": true, "value": ["$http_origin"], "always": true}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            echo.allow_origin(Some(b"https://x.io")),
            Some(&b"https://x.io"[..])
        );
        assert_eq!(echo.allow_origin(None), None);
        assert!(echo.varies() && echo.always);
        let list = cors(r#"{"enabled": true, "value": ["player.com", "*.school.edu"]}"#)
            .unwrap()
            .unwrap();
        let o = |v: &'static str| list.allow_origin(Some(v.as_bytes()));
        assert_eq!(o("https://player.com"), Some(&b"https://player.com"[..]));
        assert_eq!(
            o("http://PLAYER.com:8080"),
            Some(&b"http://PLAYER.com:8080"[..])
        );
        assert_eq!(
            o("https://a.school.edu"),
            Some(&b"https://a.school.edu"[..])
        );
        assert_eq!(o("https://school.edu"), None);
        assert_eq!(o("https://player.com.evil.net"), None);
        assert_eq!(o("null"), None);
        assert_eq!(list.allow_origin(None), None);
    }

    #[test]
    fn refusals_name_the_entry() {
        let e = cors(r#"{"enabled": true, "value": ["a.com", "*", "https://b.com"]}"#).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("options.cors.value[1]") && e[0].contains("stands alone"));
        assert!(e[1].starts_with("options.cors.value[2]"));
        assert!(cors(r#"{"enabled": true, "value": []}"#).is_err());
        assert_eq!(cors(r#"{"enabled": false, "value": []}"#).unwrap(), None);
    }
}
