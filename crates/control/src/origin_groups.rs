//! `/cdn/origin_groups`: Gcore's origin group API. A group's sources, backups and `use_next`
//! are what edges fetch from for every resource using it; changing a group gives those
//! resources a new version, so edges follow at once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value};
use tollgate_model::OriginGroup;
use tollgate_store::{StoredGroup, TokenInfo};

use crate::error::ApiError;
use crate::resources::{check_body_id, object, parse_body, parse_id_of};
use crate::{listing, Control};

/// Answer fields that are not input (ignored in a body, as in an export posted back).
const READ_ONLY: &[&str] = &["id", "has_related_resources"];

fn parse_group_id(raw: &str) -> Result<u64, ApiError> {
    parse_id_of(raw, "origin group")
}

/// A group from a body, as group `id`, checked; errors name the field.
fn group_from(m: Map<String, Value>, id: u64) -> Result<OriginGroup, ApiError> {
    let mut g: OriginGroup = parse_body(m, READ_ONLY)?;
    g.id = id;
    g.validate().map_err(ApiError::fields)?;
    Ok(g)
}

/// A group as Gcore answers it.
fn answer(s: &StoredGroup) -> Value {
    let mut v = serde_json::to_value(&s.group).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.insert("has_related_resources".into(), s.in_use.into());
    }
    v
}

const FILTERS: &[listing::Filter] = {
    use listing::{Filter, Kind};
    &[
        Filter {
            params: &["name"],
            kind: Kind::Exact,
            fields: &["/name"],
        },
        Filter {
            params: &["has_related_resources"],
            kind: Kind::Bool,
            fields: &["/has_related_resources"],
        },
        Filter {
            params: &["sources"],
            kind: Kind::Exact,
            fields: &["/sources/*/source"],
        },
    ]
};

/// `GET /cdn/origin_groups`: Gcore's filters (`name`, `has_related_resources`, `sources`: a
/// group with that source) and paging.
pub async fn list(
    State(c): State<Arc<Control>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let items = c
        .blocking(|s| s.list_groups())
        .await?
        .iter()
        .map(answer)
        .collect();
    listing::answer(
        "/cdn/origin_groups",
        &q,
        FILTERS,
        &listing::Unsupported(&[]),
        items,
    )
}

/// `GET /cdn/origin_groups/{id}`.
pub async fn get(
    State(c): State<Arc<Control>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_group_id(&id)?;
    Ok(Json(answer(&c.blocking(move |s| s.get_group(id)).await?)))
}

/// `POST /cdn/origin_groups`: 201 with the group.
pub async fn create(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let g = group_from(object(&body)?, 0)?;
    let created = c.blocking(move |s| s.create_group(&g, &who.name)).await?;
    c.changed().await;
    Ok((StatusCode::CREATED, Json(answer(&created))).into_response())
}

/// `PUT /cdn/origin_groups/{id}`: replaces the group whole.
pub async fn replace(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_group_id(&id)?;
    let m = object(&body)?;
    check_body_id(&m, id)?;
    let g = group_from(m, id)?;
    store_update(&c, g, who).await
}

/// `PATCH /cdn/origin_groups/{id}`: the fields given replace the stored ones.
pub async fn patch(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_group_id(&id)?;
    let changes = object(&body)?;
    check_body_id(&changes, id)?;
    let current = c.blocking(move |s| s.get_group(id)).await?;
    let Ok(Value::Object(mut merged)) = serde_json::to_value(&current.group) else {
        return Err(ApiError::internal("group did not serialise to an object"));
    };
    merged.extend(changes);
    let g = group_from(merged, id)?;
    store_update(&c, g, who).await
}

async fn store_update(
    c: &Arc<Control>,
    g: OriginGroup,
    who: TokenInfo,
) -> Result<Json<Value>, ApiError> {
    let updated = c.blocking(move |s| s.update_group(&g, &who.name)).await?;
    c.changed().await;
    Ok(Json(answer(&updated)))
}

/// `DELETE /cdn/origin_groups/{id}`: 204; a group in use is refused, naming a resource.
pub async fn delete(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_group_id(&id)?;
    c.blocking(move |s| s.delete_group(id, &who.name)).await?;
    c.changed().await;
    Ok(StatusCode::NO_CONTENT)
}
