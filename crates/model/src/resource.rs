//! The serde types, field for field as Gcore's CDN resource API names them: the resource here,
//! its options (each with its validator) in [`crate::options`].

use serde::{Deserialize, Serialize};

use crate::host::{split_origin, valid_hostname};
use crate::options::Options;
use crate::origin_group::{OriginGroup, Origins};
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
    /// Origin as `host[:port]`: the resource's only source, when it has no origin group. With
    /// one, answers show the group's first source here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The origin group the resource fetches from (`/cdn/origin_groups`).
    #[serde(
        rename = "originGroup",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub origin_group: Option<u64>,
    /// The group itself, as the control plane resolved it for edges and validation (never
    /// stored with the resource; ignored on input).
    #[serde(
        rename = "originGroup_detail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub origin_group_detail: Option<OriginGroup>,
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
    /// HTTPS for viewers. Certificates are the edge's (`--tls-cert`), not the API's.
    #[serde(rename = "sslEnabled", default)]
    pub ssl_enabled: bool,
    /// A certificate of Gcore's SSL API: not supported (must be `null`).
    #[serde(rename = "sslData", default)]
    pub ssl_data: Option<u64>,
    /// Verify an HTTPS origin's certificate. Tollgate's edges always verify it (against the
    /// system's roots and `--origin-ca`), so either value is served as verified.
    #[serde(rename = "proxy_ssl_enabled", default)]
    pub proxy_ssl_enabled: bool,
    /// A CA certificate of Gcore's SSL API: not supported (must be `null`).
    #[serde(rename = "proxy_ssl_ca", default)]
    pub proxy_ssl_ca: Option<u64>,
    /// A client certificate of Gcore's SSL API: not supported (must be `null`).
    #[serde(rename = "proxy_ssl_data", default)]
    pub proxy_ssl_data: Option<u64>,
    /// Gcore's reserve resources: not supported (must be `null`).
    #[serde(rename = "primary_resource", default)]
    pub primary_resource: Option<u64>,
    /// Gcore's WAAP API domain: not supported (must be `false`).
    #[serde(rename = "waap_api_domain_enabled", default)]
    pub waap_api_domain_enabled: bool,
    /// When the resource was created, RFC 3339 (set by the control plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When the resource was last changed, RFC 3339 (set by the control plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Links revoked before they expire (a Tollgate extension, changed only through
    /// `/cdn/resources/{id}/secure_key/revocations`).
    #[serde(
        rename = "secure_key_revocations",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secure_key_revocations: Vec<crate::Revocation>,
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

/// Where the resource fetches from: its origin group, as resolved, or else its `origin`, a
/// single source whose port defaults to the protocol's. A resource with neither, or with a
/// group id the control plane did not resolve, is reported (and comes back with an empty
/// source, never used: the resource is refused).
pub(crate) fn origins(r: &Resource, errors: &mut FieldErrors) -> Origins {
    let https = r.origin_protocol == OriginProtocol::Https;
    match (&r.origin_group_detail, r.origin_group, &r.origin) {
        (Some(g), _, _) => g.origins(https, errors, "originGroup."),
        (None, Some(id), _) => {
            errors.push("originGroup", format!("no origin group {id}"));
            Origins::single(String::new(), 0)
        }
        (None, None, Some(origin)) => match split_origin(origin) {
            Some((host, port)) => {
                Origins::single(host, port.unwrap_or(if https { 443 } else { 80 }))
            }
            None => {
                errors.push(
                    "origin",
                    format!("{origin:?} is not host[:port] (e.g. origin.example.com:8080)"),
                );
                Origins::single(String::new(), 0)
            }
        },
        (None, None, None) => {
            errors.push("origin", "give origin (host[:port]) or originGroup");
            Origins::single(String::new(), 0)
        }
    }
}

/// Gcore's top-level switches: accepted when they ask for nothing Tollgate cannot do.
pub(crate) fn gcore_switches(r: &Resource, errors: &mut FieldErrors) {
    let certificate = "certificates are not managed by the API: edges are given theirs with \
                       --tls-cert, and verify origins against the system's roots and --origin-ca";
    for (field, set) in [
        ("sslData", r.ssl_data.is_some()),
        ("proxy_ssl_ca", r.proxy_ssl_ca.is_some()),
        ("proxy_ssl_data", r.proxy_ssl_data.is_some()),
    ] {
        if set {
            errors.push(
                field,
                format!("not supported by Tollgate ({certificate}); use null"),
            );
        }
    }
    if r.primary_resource.is_some() {
        errors.push(
            "primary_resource",
            "not supported by Tollgate (reserve resources); use null",
        );
    }
    if r.waap_api_domain_enabled {
        errors.push(
            "waap_api_domain_enabled",
            "not supported by Tollgate (WAAP); use false",
        );
    }
}
