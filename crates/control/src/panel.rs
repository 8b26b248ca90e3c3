//! The web panel: four static files compiled into the binary (no build step, no CDN, no
//! framework), served with a strict Content-Security-Policy. The page logs in with an API
//! token and uses the same API as everyone else.

use std::sync::Arc;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::Control;

const INDEX: &str = include_str!("../panel/index.html");
const APP: &str = include_str!("../panel/app.js");
const RESOURCE: &str = include_str!("../panel/resource.js");
const STYLE: &str = include_str!("../panel/style.css");

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, kind),
            (CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("content-security-policy"), CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        body,
    )
}

/// `/`, `/panel/app.js`, `/panel/resource.js`, `/panel/style.css`.
pub fn routes() -> Router<Arc<Control>> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/panel/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP) }),
        )
        .route(
            "/panel/resource.js",
            get(|| async { file("text/javascript; charset=utf-8", RESOURCE) }),
        )
        .route(
            "/panel/style.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
}
