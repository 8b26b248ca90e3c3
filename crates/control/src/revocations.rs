//! `/cdn/resources/{id}/secure_key/revocations`: links revoked before they expire. A revocation
//! is part of its resource (`secure_key_revocations`, read-only in the resource's own PUT and
//! PATCH, so that a Gcore client writing the resource never drops one), so it reaches edges in
//! the next snapshot like any change, and the audit log names the change. Revocations nothing
//! could still match (their links' `expires` passed) are dropped at every change of the list.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use tollgate_model::{Resource, Revocation, MAX_REVOCATIONS};
use tollgate_store::TokenInfo;

use crate::error::ApiError;
use crate::resources::{object, parse_id, resource_from};
use crate::{listing, unix_now, Control};

/// The revocations of `r` that could still match something at `now`.
fn in_force(r: &Resource, now: i64) -> Vec<Revocation> {
    r.secure_key_revocations
        .iter()
        .filter(|v| !v.is_spent(now))
        .cloned()
        .collect()
}

fn now() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

/// `GET`: the revocations in force, oldest first.
pub async fn list(
    State(c): State<Arc<Control>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let r = c.blocking(move |s| s.get(id)).await?;
    let list = in_force(&r, now());
    Ok(Json(json!({
        "count": list.len(),
        "max": MAX_REVOCATIONS,
        "results": list,
    })))
}

/// The revocation a request body asks for: `{"link": URL or target}` (its `md5`, `expires`:
/// one link), or the fields of [`Revocation`].
fn asked(body: &Bytes) -> Result<Revocation, ApiError> {
    let mut m = object(body)?;
    for f in ["id", "created"] {
        m.remove(f);
    }
    if let Some(link) = m.remove("link") {
        let Some(link) = link.as_str() else {
            return Err(ApiError::invalid("link", "a link as text"));
        };
        if !m.is_empty() {
            return Err(ApiError::invalid(
                "link",
                "give link alone (its md5 and expires say which link)",
            ));
        }
        // An absolute URL or a target: what follows the authority.
        let target = match link.find("://") {
            Some(i) => link[i + 3..].find('/').map_or("/", |j| &link[i + 3 + j..]),
            None => link,
        };
        let (_, query) = target.split_once('?').unwrap_or((target, ""));
        let params = tollgate_token::verify::LinkParams::from_args(query.as_bytes());
        let (Some(md5), Some(expires)) = (params.md5, params.expires) else {
            return Err(ApiError::invalid(
                "link",
                "a signed link: its query has md5 and expires",
            ));
        };
        let expires = tollgate_token::verify::parse_expires(expires)
            .map_err(|_| ApiError::invalid("link", "its expires is not a Unix time"))?;
        return Ok(Revocation {
            id: 0,
            token: Some(String::from_utf8_lossy(md5).into_owned()),
            expires: Some(expires),
            path: None,
            prefix: false,
            expires_at_or_below: None,
            created: None,
        });
    }
    serde_json::from_value(Value::Object(m)).map_err(|e| ApiError::invalid("", e.to_string()))
}

/// Stores `list` as `r`'s revocations, as `actor`.
async fn store(
    c: &Arc<Control>,
    r: Resource,
    list: Vec<Revocation>,
    actor: String,
) -> Result<(), ApiError> {
    let id = r.id;
    let Ok(Value::Object(m)) = serde_json::to_value(&r) else {
        return Err(ApiError::internal(
            "resource did not serialise to an object",
        ));
    };
    let valid = resource_from(c, m, id, list).await?;
    c.blocking(move |s| s.update(&valid, &actor)).await?;
    c.changed().await;
    Ok(())
}

/// `POST`: revokes a link, a path or a directory; 201 with the revocation.
pub async fn create(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let mut rev = asked(&body)?;
    let r = c.blocking(move |s| s.get(id)).await?;
    if r.options.secure_key.as_ref().is_none_or(|k| !k.enabled) {
        return Err(ApiError::invalid(
            "options.secure_key",
            "the resource does not sign its links: there is nothing to revoke",
        ));
    }
    let now = now();
    if rev.is_spent(now) {
        return Err(ApiError::invalid(
            "expires",
            "that link has expired already: nothing to revoke",
        ));
    }
    let mut list = in_force(&r, now);
    if list.len() >= MAX_REVOCATIONS {
        let next = list.iter().filter_map(Revocation::until).min();
        return Err(ApiError::invalid(
            "secure_key_revocations",
            format!(
                "at most {MAX_REVOCATIONS} revocations per resource: delete some{}",
                next.map_or(String::new(), |t| format!(
                    ", or wait for the first to expire at {}",
                    listing::rfc3339(u64::try_from(t).unwrap_or(0))
                ))
            ),
        ));
    }
    rev.id = r
        .secure_key_revocations
        .iter()
        .map(|v| v.id)
        .max()
        .unwrap_or(0)
        + 1;
    rev.created = Some(listing::rfc3339(unix_now()));
    list.push(rev.clone());
    store(&c, r, list, who.name).await?;
    Ok((StatusCode::CREATED, Json(rev)).into_response())
}

/// `DELETE .../{rid}`: the revocation goes (its links work again, until they expire).
pub async fn delete(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path((id, rid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let rid = parse_id(&rid)?;
    let r = c.blocking(move |s| s.get(id)).await?;
    let mut list = in_force(&r, now());
    let before = list.len();
    list.retain(|v| v.id != rid);
    if list.len() == before {
        return Err(ApiError::not_found("revocation"));
    }
    store(&c, r, list, who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
