//! `POST /cdn/resources/{id}/sign`: the panel's link generator. Signing happens here, with the
//! same token core the edge verifies with, so the link shown is one the edge accepts.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::resources::parse_id;
use crate::snippets::{self, Snippets};
use crate::Control;

/// What to sign.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Path of the file, decoded (`/videos/my film.mp4`).
    pub path: String,
    /// Seconds the link stays valid (default 3600); ignored when `expires` is given.
    #[serde(default)]
    pub lifetime: Option<i64>,
    /// Unix time the link expires.
    #[serde(default)]
    pub expires: Option<i64>,
    /// Client address, required when the resource binds tokens to it (type 0).
    #[serde(default)]
    pub ip: Option<String>,
    /// Scheme and host of the link (default `https://{cname}` when the resource has TLS,
    /// `sslEnabled`, else `http://{cname}`).
    #[serde(default)]
    pub base: Option<String>,
    /// Round an expiry computed from `lifetime` up to a multiple of this many seconds (default
    /// 0, off), in the returned link and in the snippets alike, so every page view in a window
    /// gets the same link. An explicit `expires` is used as given.
    #[serde(default)]
    pub window: Option<i64>,
}

/// A signed link.
#[derive(Debug, Serialize)]
pub struct Signed {
    /// The link.
    pub url: String,
    /// Its `md5` value.
    pub token: String,
    /// Its `expires` value.
    pub expires: i64,
    /// The same link made by the customer's own code.
    pub snippets: Snippets,
}

/// `expires` rounded up to a multiple of `window` (the snippets' rounding); `window` 0 is off.
/// Both are validated first: `expires` is at most now + 10 years, `window` at most 30 days.
fn round_up(expires: i64, window: i64) -> i64 {
    if window <= 0 {
        return expires;
    }
    expires
        .checked_add(window - 1)
        .map_or(expires, |e| e / window * window)
}

/// The handler.
pub async fn sign(
    State(c): State<Arc<Control>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Signed>, ApiError> {
    let id = parse_id(&id)?;
    let req: SignRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("", format!("sign request: {e}")))?;
    let res = c.blocking(move |s| s.get(id)).await?;
    let scheme = if res.ssl_enabled { "https" } else { "http" };
    let cname = res.cname.clone();
    let valid = res.validate().map_err(ApiError::fields)?;
    let off = || {
        ApiError::invalid(
            "options.secure_key.enabled",
            "the secure token is off for this resource: its links need no token",
        )
    };
    let sk = valid.secure_key.as_ref().ok_or_else(off)?;
    // Validation gives a resource with the token on a key, so `off` is never the answer here.
    let key = sk.signing_key().ok_or_else(off)?;
    let ip =
        match (sk.bind_client_ip, req.ip.as_deref().map(str::trim)) {
            (false, _) => None,
            (true, None | Some("")) => return Err(ApiError::invalid(
                "ip",
                "this resource binds tokens to the client's IP (type 0): give the viewer's address",
            )),
            (true, Some(text)) => Some(text.parse::<IpAddr>().map_err(|_| {
                ApiError::invalid("ip", format!("{text:?} is not an IPv4 or IPv6 address"))
            })?),
        };
    // The snippets put the path into PHP, Python, JavaScript and shell string literals; a
    // control character (a newline ends a shell line) has no safe spelling in all four.
    if req.path.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "path",
            "control characters (newline, tab, NUL...) cannot be in a path the snippets sign",
        ));
    }
    let lifetime = req.lifetime.unwrap_or(3600);
    if !(1..=10 * 365 * 86400).contains(&lifetime) {
        return Err(ApiError::invalid(
            "lifetime",
            "must be 1 second to 10 years",
        ));
    }
    let window = req.window.unwrap_or(0);
    if !(0..=30 * 86400).contains(&window) {
        return Err(ApiError::invalid("window", "must be 0 (off) to 30 days"));
    }
    let expires = match req.expires {
        Some(e) => e,
        None => round_up(crate::unix_now() as i64 + lifetime, window),
    };
    let base = req.base.unwrap_or_else(|| format!("{scheme}://{cname}"));
    if !(base.starts_with("http://") || base.starts_with("https://"))
        || base
            .bytes()
            .any(|b| b <= 0x20 || b == 0x7f || b == b'"' || b == b'\'')
    {
        return Err(ApiError::invalid(
            "base",
            "must be http:// or https:// and a host",
        ));
    }
    // The address, or with `ip_prefix` its network (`1.2.3.0/24`): what the link is bound to.
    let bound = ip.and_then(|a| sk.binding(a));
    let mut url = Vec::new();
    let token = tollgate_token::sign_link_as(
        &mut url,
        &base,
        key,
        expires,
        req.path.as_bytes(),
        bound.as_ref(),
    )
    .map_err(|e| {
        let field = match e {
            tollgate_token::SignError::ExpiresNotPositive => "expires",
            _ => "path",
        };
        ApiError::invalid(field, e.to_string())
    })?;
    // The snippets hash the text given as `ip`: the network's, for a subnet-bound resource.
    let ip_text = bound.map(|b| b.to_string());
    let snippets = snippets::render(&snippets::Values {
        key: key.expose_secret(),
        path: &req.path,
        lifetime,
        window,
        ip: ip_text.as_deref(),
        base: base.trim_end_matches('/'),
    });
    Ok(Json(Signed {
        url: String::from_utf8_lossy(&url).into_owned(),
        token: token.as_str().to_owned(),
        expires,
        snippets,
    }))
}

#[cfg(test)]
mod tests {
    use super::round_up;

    #[test]
    fn rounding_matches_the_snippets() {
        // php: intdiv($expires + $window - 1, $window) * $window
        assert_eq!(round_up(1_000, 0), 1_000);
        assert_eq!(round_up(1_000, 300), 1_200);
        assert_eq!(round_up(1_200, 300), 1_200);
        assert_eq!(round_up(1_201, 300), 1_500);
        assert_eq!(round_up(i64::MAX, 300), i64::MAX);
    }
}
