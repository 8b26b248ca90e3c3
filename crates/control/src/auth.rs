//! API tokens: random, shown once, stored as SHA-256 (they carry 190 bits of entropy, so a
//! fast hash is enough), sent as `Authorization: APIKey <token>` (Gcore's form) or
//! `Bearer <token>`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use tollgate_store::{Role, TokenInfo};

use crate::error::ApiError;
use crate::Control;

/// Prefix that makes tokens easy to spot in a leaked file.
const PREFIX: &str = "tg_";

/// A new random token.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw)?;
    let mut out = String::from(PREFIX);
    for b in raw {
        out.push_str(&format!("{b:02x}"));
    }
    Ok(out)
}

/// What the store keeps of a token.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token in an `Authorization` header value.
fn token_of(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer"))
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The hash of the request's token. Computed before any await: a request body is not `Sync`,
/// so the request must not be borrowed across one.
fn token_hash(req: &Request) -> Result<String, ApiError> {
    let value = req.headers().get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("send Authorization: APIKey <token> (or Bearer <token>)")
    })?;
    let token = value.to_str().ok().and_then(token_of).ok_or_else(|| {
        ApiError::unauthorized("Authorization must be \"APIKey <token>\" or \"Bearer <token>\"")
    })?;
    Ok(hash(token))
}

async fn identify(control: &Arc<Control>, h: String, role: Role) -> Result<TokenInfo, ApiError> {
    if role == Role::Edge && control.static_edge_hashes.contains(&h) {
        return Ok(TokenInfo {
            id: 0,
            name: "embedded-edge".into(),
            role: Role::Edge,
        });
    }
    let found = control.blocking(move |s| s.find_token(&h)).await?;
    match found {
        Some(t) if t.role == role => Ok(t),
        Some(_) => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token may not use the {} routes", role.as_str()),
        )),
        None => Err(ApiError::unauthorized("unknown token")),
    }
}

/// Middleware for the resource API and the panel's data: an `api` token.
pub async fn require_api(
    State(control): State<Arc<Control>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let h = token_hash(&req)?;
    let who = identify(&control, h, Role::Api).await?;
    req.extensions_mut().insert(who);
    Ok(next.run(req).await)
}

/// Middleware for the edge routes: an `edge` token.
pub async fn require_edge(
    State(control): State<Arc<Control>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let h = token_hash(&req)?;
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let who = identify(&control, h, Role::Edge).await?;
    if let Some(ip) = peer {
        control.saw_edge(ip);
    }
    req.extensions_mut().insert(who);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        assert_eq!(token_of("APIKey tg_abc"), Some("tg_abc"));
        assert_eq!(token_of("Bearer tg_abc"), Some("tg_abc"));
        assert_eq!(token_of("bearer  tg_abc "), Some("tg_abc"));
        assert_eq!(token_of("Basic dXNlcg=="), None);
        assert_eq!(token_of("Bearer "), None);
        assert_eq!(token_of("tg_abc"), None);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 48);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a);
    }
}
