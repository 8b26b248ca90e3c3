//! Paths of Gcore's CDN API that Tollgate does not implement: answered 501 with a body naming
//! the path and saying so, so that a client reads "not supported", not a typo's 404.

use axum::http::{Method, StatusCode, Uri};

use crate::error::ApiError;

/// Gcore's API paths (the official SDK's, gcore 0.59.0) out of Tollgate's scope, as prefixes.
const PREFIXES: &[&str] = &[
    "/cdn/activity_log",
    "/cdn/advanced/",
    "/cdn/aliases",
    "/cdn/alibaba_regions",
    "/cdn/aws_regions",
    "/cdn/clients/me",
    "/cdn/logs_uploader",
    "/cdn/v2/logs_uploader",
    "/cdn/presets",
    "/cdn/public-net-list",
    "/cdn/resources/rule_templates",
    "/cdn/shieldingpop_v2",
    "/cdn/sslCertificates",
    "/cdn/sslData",
    "/cdn/statistics",
];

/// What follows `/cdn/resources/{id}/` in Gcore's per-resource paths Tollgate lacks.
const RESOURCE_SUBPATHS: &[&str] = &["rules", "preset", "shielding_v2", "ssl"];

/// Whether `path` is one of Gcore's that Tollgate does not implement.
pub fn is_gcore_path(path: &str) -> bool {
    if PREFIXES.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| p.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
    }) {
        return true;
    }
    let Some(rest) = path.strip_prefix("/cdn/resources/") else {
        return false;
    };
    let mut parts = rest.split('/');
    let id_ok = parts
        .next()
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    id_ok
        && parts
            .next()
            .is_some_and(|sub| RESOURCE_SUBPATHS.contains(&sub))
}

fn answer(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_supported",
        format!(
            "{method} {path} is part of Gcore's API that is not supported by Tollgate \
             (see docs/control-plane.md, \"Out of scope\")"
        ),
    )
}

/// The handler of routes registered for Gcore paths out of scope.
pub async fn not_supported(method: Method, uri: Uri) -> ApiError {
    answer(&method, uri.path())
}

/// Any route not found: 501 for Gcore's paths out of scope, else 404.
pub async fn fallback(method: Method, uri: Uri) -> ApiError {
    if is_gcore_path(uri.path()) {
        answer(&method, uri.path())
    } else {
        ApiError::not_found("route")
    }
}

#[cfg(test)]
mod tests {
    use super::is_gcore_path;

    #[test]
    fn gcore_paths_out_of_scope() {
        for p in [
            "/cdn/sslData",
            "/cdn/sslData/3/renew",
            "/cdn/statistics/series",
            "/cdn/resources/5/rules",
            "/cdn/resources/5/rules/2",
            "/cdn/resources/5/shielding_v2",
            "/cdn/resources/5/ssl/le/pre-validate",
            "/cdn/advanced/v1/logs",
            "/cdn/clients/me/limits",
        ] {
            assert!(is_gcore_path(p), "{p}");
        }
        for p in [
            "/cdn/resource",
            "/cdn/sslDatax",
            "/cdn/resources/x/rules",
            "/cdn/resources/5/purge",
            "/other",
        ] {
            assert!(!is_gcore_path(p), "{p}");
        }
    }
}
