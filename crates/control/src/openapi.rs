//! `/openapi.json`: the API described for clients and tools. Written by hand next to the
//! router; a test checks that the two list the same routes.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The document.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The handler.
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}
