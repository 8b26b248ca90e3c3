//! `/cdn/resources`: Gcore's resource API. Bodies are parsed strictly (an unknown field is a
//! 400 naming it), validated whole, and stored in one transaction, so a refused request
//! changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value};
use tollgate_model::{PrefetchRequest, PurgeRequest, Resource, ValidResource};
use tollgate_store::TokenInfo;

use crate::error::ApiError;
use crate::Control;

/// Parses a path id.
pub fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|&id| id > 0 && id <= i64::MAX as u64)
        .ok_or_else(|| ApiError::invalid("id", format!("{raw:?} is not a resource id")))
}

/// Parses a JSON object body.
fn object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("", "the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid("", format!("malformed JSON: {e}"))),
    }
}

/// Parses and validates a resource from JSON, with `id` set to `id`.
fn resource_from(mut m: Map<String, Value>, id: u64) -> Result<ValidResource, ApiError> {
    m.insert("id".into(), Value::from(id));
    let res: Resource = serde_path_to_error::deserialize(Value::Object(m)).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ApiError::invalid(field, e.inner().to_string())
    })?;
    res.validate().map_err(ApiError::fields)
}

/// `GET /cdn/resources`.
pub async fn list(State(c): State<Arc<Control>>) -> Result<Json<Vec<Resource>>, ApiError> {
    Ok(Json(c.blocking(|s| s.list()).await?))
}

/// `GET /cdn/resources/{id}`.
pub async fn get(
    State(c): State<Arc<Control>>,
    Path(id): Path<String>,
) -> Result<Json<Resource>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(c.blocking(move |s| s.get(id)).await?))
}

/// `POST /cdn/resources`: the id is assigned here; one in the body is ignored, so that a
/// resource exported from Gcore can be posted as it is.
pub async fn create(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let valid = resource_from(object(&body)?, 0)?;
    let created = c.blocking(move |s| s.create(&valid, &who.name)).await?;
    c.changed().await;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `PUT /cdn/resources/{id}`: replaces the resource whole.
pub async fn replace(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Resource>, ApiError> {
    let id = parse_id(&id)?;
    let m = object(&body)?;
    check_body_id(&m, id)?;
    let valid = resource_from(m, id)?;
    let updated = c.blocking(move |s| s.update(&valid, &who.name)).await?;
    c.changed().await;
    Ok(Json(updated))
}

/// `PATCH /cdn/resources/{id}`: the fields given replace the stored ones; inside `options`,
/// each option given replaces that option (`null` removes it) and the others stay.
pub async fn patch(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Resource>, ApiError> {
    let id = parse_id(&id)?;
    let changes = object(&body)?;
    check_body_id(&changes, id)?;
    let current = c.blocking(move |s| s.get(id)).await?;
    let Ok(Value::Object(mut merged)) = serde_json::to_value(&current) else {
        return Err(ApiError::internal(
            "resource did not serialise to an object",
        ));
    };
    merge(&mut merged, changes);
    let valid = resource_from(merged, id)?;
    let updated = c.blocking(move |s| s.update(&valid, &who.name)).await?;
    c.changed().await;
    Ok(Json(updated))
}

fn check_body_id(m: &Map<String, Value>, id: u64) -> Result<(), ApiError> {
    match m.get("id") {
        None => Ok(()),
        Some(v) if v.as_u64() == Some(id) => Ok(()),
        Some(_) => Err(ApiError::invalid("id", "does not match the id in the path")),
    }
}

/// Gcore's PATCH semantics: top-level fields replace, options merge one level down.
fn merge(current: &mut Map<String, Value>, changes: Map<String, Value>) {
    for (k, v) in changes {
        match (k.as_str(), v) {
            ("options", Value::Object(opts)) => {
                let entry = current
                    .entry("options")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(cur) = entry {
                    for (name, opt) in opts {
                        if opt.is_null() {
                            cur.remove(&name);
                        } else {
                            cur.insert(name, opt);
                        }
                    }
                }
            }
            (_, v) => {
                current.insert(k, v);
            }
        }
    }
}

/// `DELETE /cdn/resources/{id}`.
pub async fn delete(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    c.blocking(move |s| s.delete(id, &who.name)).await?;
    c.changed().await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /cdn/resources/{id}/purge`.
pub async fn purge(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let req: PurgeRequest = checked(&body, PurgeRequest::validate)?;
    let version = c.blocking(move |s| s.purge(id, &req, &who.name)).await?;
    recorded(&c, version).await
}

/// `POST /cdn/resources/{id}/prefetch`: up to 100 paths every edge fetches into its cache in
/// the background (201, as Gcore answers).
pub async fn prefetch(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let req: PrefetchRequest = checked(&body, PrefetchRequest::validate)?;
    let version = c.blocking(move |s| s.prefetch(id, &req, &who.name)).await?;
    recorded(&c, version).await
}

/// A request body of a JSON object, parsed as `T` and checked by `validate`; errors name
/// the field.
fn checked<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    validate: impl FnOnce(&T) -> Result<(), tollgate_model::FieldError>,
) -> Result<T, ApiError> {
    let req: T = serde_path_to_error::deserialize(Value::Object(object(body)?))
        .map_err(|e| ApiError::invalid(e.path().to_string(), e.inner().to_string()))?;
    validate(&req).map_err(|e| ApiError::invalid(e.field, e.message))?;
    Ok(req)
}

/// The answer to a purge or prefetch recorded at `version`, once edges are told: 201.
async fn recorded(c: &Control, version: u64) -> Result<Response, ApiError> {
    c.changed().await;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "version": version })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_merges_options_one_level() {
        let mut cur = serde_json::json!({"cname": "a", "options": {
            "secure_key": {"enabled": true, "key": "k1", "type": 0},
            "hostHeader": {"enabled": true, "value": "h"}}});
        let changes = serde_json::json!({"name": "n", "options": {
            "secure_key": {"enabled": false}, "hostHeader": null}});
        let (Value::Object(cur_m), Value::Object(ch)) = (&mut cur, changes) else {
            unreachable!()
        };
        merge(cur_m, ch);
        assert_eq!(
            cur,
            serde_json::json!({"cname": "a", "name": "n",
                "options": {"secure_key": {"enabled": false}}})
        );
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id("7").unwrap(), 7);
        for bad in ["0", "-1", "x", "", "99999999999999999999"] {
            assert_eq!(parse_id(bad).unwrap_err().field.as_deref(), Some("id"));
        }
    }
}
