//! The serde types, field for field as Gcore's CDN resource API names them: the resource here,
//! its options (each with its validator) in [`crate::options`].

use serde::{Deserialize, Serialize};

use crate::host::{split_origin, valid_hostname};
use crate::options::Options;
use crate::validate::FieldErrors;

/// A CDN resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource {
    /// Resource id.
    pub id: u64,
    /// The resource's main hostname.
    pub cname: String,
    /// More hostnames served by the same resource.
    #[serde(default)]
    pub secondary_hostnames: Vec<String>,
    /// Origin as `host[:port]`.
    pub origin: String,
    /// Scheme used to reach the origin.
    #[serde(default)]
    pub origin_protocol: OriginProtocol,
    /// Inactive resources are not served.
    #[serde(default = "yes")]
    pub active: bool,
    /// Free-form name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Options.
    #[serde(default)]
    pub options: Options,
}

fn yes() -> bool {
    true
}

/// How the edge reaches the origin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OriginProtocol {
    /// Plain HTTP.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS.
    #[serde(rename = "HTTPS")]
    Https,
    /// The scheme the client used.
    #[serde(rename = "MATCH")]
    Match,
}

/// `cname` and `secondaryHostnames`, lower-cased, cname first: each a valid hostname, listed
/// once.
pub(crate) fn hostnames(
    cname: &str,
    secondary: &[String],
    errors: &mut FieldErrors,
) -> Vec<String> {
    let mut hostnames = Vec::new();
    let fields = std::iter::once(("cname".to_owned(), cname)).chain(
        secondary
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("secondaryHostnames[{i}]"), h.as_str())),
    );
    for (field, h) in fields {
        let lower = h.to_ascii_lowercase();
        if !valid_hostname(&lower) {
            errors.push(field, format!("{h:?} is not a valid hostname"));
        } else if hostnames.contains(&lower) {
            errors.push(field, format!("{h} is listed twice"));
        } else {
            hostnames.push(lower);
        }
    }
    hostnames
}

/// `origin`'s host and port, the port defaulting to the protocol's. An origin that is not
/// `host[:port]` is reported and comes back as `("", 0)`, never used: the resource is refused.
pub(crate) fn origin(
    origin: &str,
    protocol: OriginProtocol,
    errors: &mut FieldErrors,
) -> (String, u16) {
    match split_origin(origin) {
        Some((host, port)) => {
            let default = match protocol {
                OriginProtocol::Https => 443,
                _ => 80,
            };
            (host, port.unwrap_or(default))
        }
        None => {
            errors.push(
                "origin",
                format!("{origin:?} is not host[:port] (e.g. origin.example.com:8080)"),
            );
            (String::new(), 0)
        }
    }
}
