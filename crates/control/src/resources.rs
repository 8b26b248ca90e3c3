//! `/cdn/resources`: Gcore's resource API. Bodies are parsed strictly (an unknown field is a
//! 400 naming it), validated whole, and stored in one transaction, so a refused request
//! changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value};
use tollgate_model::{PrefetchRequest, PurgeRequest, Resource, ValidResource};
use tollgate_store::{Selection, TokenInfo};

use crate::error::ApiError;
use crate::{listing, unix_now, Control, Deployment};

/// Parses a path id.
pub fn parse_id(raw: &str) -> Result<u64, ApiError> {
    parse_id_of(raw, "resource")
}

/// Parses a path id of a `what` (`"resource"`, `"origin group"`).
pub fn parse_id_of(raw: &str, what: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|&id| id > 0 && id <= i64::MAX as u64)
        .ok_or_else(|| ApiError::invalid("id", format!("{raw:?} is not a {what} id")))
}

/// `T` from a JSON body's object with `read_only` fields dropped (answer fields: an answer
/// posted back has them ignored); errors name the field.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    mut m: Map<String, Value>,
    read_only: &[&str],
) -> Result<T, ApiError> {
    for f in read_only {
        m.remove(*f);
    }
    serde_path_to_error::deserialize(Value::Object(m)).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ApiError::invalid(field, e.inner().to_string())
    })
}

/// Parses a JSON object body.
pub(crate) fn object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("", "the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid("", format!("malformed JSON: {e}"))),
    }
}

/// Fields of Gcore's resource answers that are not input: a body carrying them (an export
/// posted back) has them ignored, as Gcore does. `originGroup_detail` is Tollgate's (edges'
/// copy of the group).
const READ_ONLY: &[&str] = &[
    "id",
    "client",
    "status",
    "created",
    "updated",
    "deleted",
    "enabled",
    "suspended",
    "suspend_date",
    "shielded",
    "shield_dc",
    "shield_enabled",
    "shield_routing_map",
    "can_purge_by_urls",
    "originGroup_name",
    "originGroup_detail",
    "preset_applied",
    "is_primary",
    "full_custom_enabled",
    "vp_enabled",
    "waap_domain_id",
    "secure_key_strength",
    "secure_key_usage",
    "secure_key_revocations",
];

/// Parses and validates a resource from a request body, as resource `id`: read-only answer
/// fields dropped, `originGroup` resolved, the change's time set, and `revocations` (changed
/// only through their own routes) as the resource's.
pub(crate) async fn resource_from(
    c: &Control,
    mut m: Map<String, Value>,
    id: u64,
    revocations: Vec<tollgate_model::Revocation>,
) -> Result<ValidResource, ApiError> {
    for f in READ_ONLY {
        m.remove(*f);
    }
    if !revocations.is_empty() {
        let list = serde_json::to_value(revocations).map_err(ApiError::internal)?;
        m.insert("secure_key_revocations".into(), list);
    }
    match m.remove("rules") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "rules",
                "not supported by Tollgate (per-path rules); use []",
            ))
        }
    }
    m.insert("id".into(), Value::from(id));
    let now = Value::from(listing::rfc3339(unix_now()));
    m.insert("created".into(), now.clone());
    m.insert("updated".into(), now);
    match m.get("originGroup") {
        None => {}
        Some(Value::Null) => {
            m.remove("originGroup");
        }
        Some(v) => {
            let Some(gid) = v.as_u64() else {
                return Err(ApiError::invalid(
                    "originGroup",
                    "expected the id of an origin group",
                ));
            };
            let group = match c.blocking(move |s| s.get_group(gid)).await {
                Ok(g) => g.group,
                Err(e) if e.code == "not_found" => {
                    return Err(ApiError::invalid(
                        "originGroup",
                        format!("no origin group {gid}"),
                    ))
                }
                Err(e) => return Err(e),
            };
            let detail = serde_json::to_value(&group).map_err(ApiError::internal)?;
            m.insert("originGroup_detail".into(), detail);
        }
    }
    // Read-only fields went first; those set since are the resource's own.
    let res: Resource = parse_body(m, &[])?;
    let valid = res.validate().map_err(ApiError::fields)?;
    if valid.access.needs_country() && !c.edges_geoip.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::invalid(
            "options.country_acl",
            "needs a GeoIP database on the edges, which this control plane was not told they \
             have: start the edges with --geoip-db FILE and the control plane with \
             --edges-geoip (tollgate serve: --geoip-db)",
        ));
    }
    Ok(valid)
}

/// A resource as Gcore answers it: its fields, and the read-only ones Gcore adds (`status`
/// from where the edges stand: `processed` until every edge holds the change, then `active`).
fn answer(c: &Control, deployed: Deployment, r: &Resource, version: u64) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        let group_name = m
            .remove("originGroup_detail")
            .and_then(|g| g.get("name").cloned())
            .unwrap_or(Value::Null);
        let status = if deployed.has(version) {
            "active"
        } else {
            "processed"
        };
        for (k, val) in [
            ("originGroup_name", group_name),
            ("status", status.into()),
            ("client", 1.into()),
            ("enabled", true.into()),
            ("deleted", false.into()),
            ("suspended", false.into()),
            ("suspend_date", Value::Null),
            ("shielded", false.into()),
            ("shield_enabled", false.into()),
            ("shield_dc", Value::Null),
            ("shield_routing_map", Value::Null),
            ("rules", Value::Array(Vec::new())),
            ("can_purge_by_urls", true.into()),
            ("preset_applied", false.into()),
            ("is_primary", Value::Null),
            ("full_custom_enabled", false.into()),
            ("vp_enabled", false.into()),
            ("waap_domain_id", Value::Null),
        ] {
            m.entry(k).or_insert(val);
        }
        for k in ["name", "description"] {
            m.entry(k).or_insert(Value::Null);
        }
        if let Some(strength) = key_strengths(r) {
            m.insert("secure_key_strength".into(), strength);
            m.insert("secure_key_usage".into(), key_usage(c.key_usage.get(r.id)));
        }
    }
    v
}

/// Tollgate's read-only `secure_key_usage`: for `key` and `previous_key`, the links that
/// matched it on the edges reporting to this node, and when it last did (RFC 3339).
fn key_usage(u: crate::stats::Usage) -> Value {
    let one = |k: crate::stats::KeyUse| {
        serde_json::json!({
            "matches": k.matches,
            "last_match": k.last_match.map(listing::rfc3339),
        })
    };
    serde_json::json!({"key": one(u.key), "previous_key": one(u.previous_key)})
}

/// Tollgate's read-only `secure_key_strength`: the strength of the resource's key and previous
/// key, with a warning in numbers for a weak one (`None` without a key).
fn key_strengths(r: &Resource) -> Option<Value> {
    let sk = r.options.secure_key.as_ref()?;
    let mut m = Map::new();
    for (name, key) in [("key", &sk.key), ("previous_key", &sk.previous_key)] {
        if let Some(k) = key {
            let s = serde_json::to_value(tollgate_model::key_strength(k)).ok()?;
            m.insert(name.into(), s);
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// The answer of resource `id`, read from the store with the version of its last change.
async fn one(c: &Arc<Control>, id: u64) -> Result<Json<Value>, ApiError> {
    let found = c.blocking(move |s| s.select(&Selection::Id(id))).await?;
    let (r, version) = found
        .resources
        .first()
        .ok_or(ApiError::not_found("resource"))?;
    Ok(Json(answer(c, c.deployment(), r, *version)))
}

/// The filters of `GET /cdn/resources`, Gcore's, each compared with the answer's field.
const FILTERS: &[listing::Filter] = {
    use listing::{Filter, Kind};
    &[
        Filter {
            params: &["cname"],
            kind: Kind::NoCase,
            fields: &["/cname", "/secondaryHostnames"],
        },
        Filter {
            params: &["secondaryHostnames", "secondary_hostnames"],
            kind: Kind::NoCase,
            fields: &["/secondaryHostnames"],
        },
        Filter {
            params: &["active"],
            kind: Kind::Bool,
            fields: &["/active"],
        },
        Filter {
            params: &["status"],
            kind: Kind::Exact,
            fields: &["/status"],
        },
        Filter {
            params: &["deleted"],
            kind: Kind::Bool,
            fields: &["/deleted"],
        },
        Filter {
            params: &["enabled"],
            kind: Kind::Bool,
            fields: &["/enabled"],
        },
        Filter {
            params: &["suspended", "suspend"],
            kind: Kind::Bool,
            fields: &["/suspended"],
        },
        Filter {
            params: &["shielded"],
            kind: Kind::Bool,
            fields: &["/shielded"],
        },
        Filter {
            params: &["vp_enabled"],
            kind: Kind::Bool,
            fields: &["/vp_enabled"],
        },
        Filter {
            params: &["is_primary"],
            kind: Kind::Bool,
            fields: &["/is_primary"],
        },
        Filter {
            params: &["sslEnabled", "ssl_enabled"],
            kind: Kind::Bool,
            fields: &["/sslEnabled"],
        },
        Filter {
            params: &["sslData", "ssl_data"],
            kind: Kind::Exact,
            fields: &["/sslData"],
        },
        Filter {
            params: &["sslData_in", "ssl_data_in"],
            kind: Kind::In,
            fields: &["/sslData"],
        },
        Filter {
            params: &["originGroup", "origin_group"],
            kind: Kind::Exact,
            fields: &["/originGroup"],
        },
        Filter {
            params: &["originGroup__in", "origin_group_in"],
            kind: Kind::In,
            fields: &["/originGroup"],
        },
        Filter {
            params: &["originProtocol", "origin_protocol"],
            kind: Kind::Exact,
            fields: &["/originProtocol"],
        },
        Filter {
            params: &["name"],
            kind: Kind::Exact,
            fields: &["/name"],
        },
        Filter {
            params: &["shield_dc"],
            kind: Kind::Exact,
            fields: &["/shield_dc"],
        },
        Filter {
            params: &["min_created"],
            kind: Kind::Since,
            fields: &["/created"],
        },
        Filter {
            params: &["max_created"],
            kind: Kind::Until,
            fields: &["/created"],
        },
        Filter {
            params: &["min_updated"],
            kind: Kind::Since,
            fields: &["/updated"],
        },
        Filter {
            params: &["max_updated"],
            kind: Kind::Until,
            fields: &["/updated"],
        },
    ]
};

/// `GET /cdn/resources`: Gcore's filters and paging ([`listing`]). A lookup by hostname reads
/// the one resource holding it; a list without filters reads only its page from the store;
/// with filters, every resource is read and its answer made and tested one at a time.
pub async fn list(
    State(c): State<Arc<Control>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let query = listing::ListQuery::parse(&q, FILTERS, &listing::Unsupported(&["rules"]))?;
    // Without filters (`cname` is one) the store reads the page alone.
    let paged = !query.filters();
    let which = match q.get("cname") {
        Some(host) => Selection::Hostname(host.to_ascii_lowercase()),
        None if paged => Selection::Page {
            offset: query.offset as u64,
            limit: query.limit.map(|l| l as u64),
        },
        None => Selection::Page {
            offset: 0,
            limit: None,
        },
    };
    let found = c.blocking(move |s| s.select(&which)).await?;
    let deployed = c.deployment();
    let answers = found
        .resources
        .iter()
        .map(|(r, v)| answer(&c, deployed, r, *v));
    let (count, page) = if paged {
        let total = usize::try_from(found.total).unwrap_or(usize::MAX);
        (total, answers.collect())
    } else {
        query.page(answers)
    };
    Ok(query.answer("/cdn/resources", count, page))
}

/// `GET /cdn/resources/{id}`.
pub async fn get(
    State(c): State<Arc<Control>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    one(&c, parse_id(&id)?).await
}

/// `POST /cdn/resources`: the id is assigned here; one in the body is ignored, so that a
/// resource exported from Gcore can be posted as it is. `origin` without `originGroup` makes a
/// group of one source.
pub async fn create(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let valid = resource_from(&c, object(&body)?, 0, Vec::new()).await?;
    let created = c.blocking(move |s| s.create(&valid, &who.name)).await?;
    c.changed().await;
    Ok((StatusCode::CREATED, one(&c, created.id).await?).into_response())
}

/// `PUT /cdn/resources/{id}`: replaces the resource whole, but for its `cname`, which stays
/// when not given (Gcore's PUT has none).
pub async fn replace(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let mut m = object(&body)?;
    check_body_id(&m, id)?;
    let current = c.blocking(move |s| s.get(id)).await?;
    m.entry("cname")
        .or_insert(Value::from(current.cname.clone()));
    let kept = kept_revocations(&current);
    let valid = resource_from(&c, m, id, kept).await?;
    forget_usage_of_changed_keys(&c, &current, &valid);
    let updated = c.blocking(move |s| s.update(&valid, &who.name)).await?;
    c.changed().await;
    one(&c, updated.id).await
}

/// A key's usage counts belong to the key in its slot: when the keys change (a rotation), the
/// counts start again.
fn forget_usage_of_changed_keys(c: &Control, current: &Resource, valid: &ValidResource) {
    let keys = |r: &Resource| {
        r.options
            .secure_key
            .as_ref()
            .map(|k| (k.key.clone(), k.previous_key.clone()))
    };
    if keys(current) != keys(&valid.resource) {
        c.key_usage.forget(current.id);
    }
}

/// `PATCH /cdn/resources/{id}`: the fields given replace the stored ones; inside `options`,
/// each option given replaces that option (`null` removes it) and the others stay.
pub async fn patch(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let changes = object(&body)?;
    check_body_id(&changes, id)?;
    let current = c.blocking(move |s| s.get(id)).await?;
    let Ok(Value::Object(mut merged)) = serde_json::to_value(&current) else {
        return Err(ApiError::internal(
            "resource did not serialise to an object",
        ));
    };
    // `origin` is shown from the group, not the resource's own: given alone, it is Gcore's
    // create shortcut (the store keeps the group when it already fetches from it); a group
    // given alone takes its first source.
    match (
        changes.contains_key("origin"),
        changes.contains_key("originGroup"),
    ) {
        (true, false) => {
            merged.remove("originGroup");
        }
        (false, _) => {
            merged.remove("origin");
        }
        (true, true) => {}
    }
    merge(&mut merged, changes);
    let kept = kept_revocations(&current);
    let valid = resource_from(&c, merged, id, kept).await?;
    forget_usage_of_changed_keys(&c, &current, &valid);
    let updated = c.blocking(move |s| s.update(&valid, &who.name)).await?;
    c.changed().await;
    one(&c, updated.id).await
}

/// The revocations a change of the resource keeps: those that could still match a link.
fn kept_revocations(current: &Resource) -> Vec<tollgate_model::Revocation> {
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    current
        .secure_key_revocations
        .iter()
        .filter(|v| !v.is_spent(now))
        .cloned()
        .collect()
}

pub(crate) fn check_body_id(m: &Map<String, Value>, id: u64) -> Result<(), ApiError> {
    match m.get("id") {
        None => Ok(()),
        Some(v) if v.as_u64() == Some(id) => Ok(()),
        Some(_) => Err(ApiError::invalid("id", "does not match the id in the path")),
    }
}

/// Gcore's PATCH semantics: top-level fields replace, options merge one level down.
pub(crate) fn merge(current: &mut Map<String, Value>, changes: Map<String, Value>) {
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
    let req: T = parse_body(object(body)?, &[])?;
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

/// The filters of `GET /cdn/purge_statuses`.
const PURGE_FILTERS: &[listing::Filter] = {
    use listing::{Filter, Kind};
    &[
        Filter {
            params: &["cname"],
            kind: Kind::NoCase,
            fields: &["/resource/cname"],
        },
        Filter {
            params: &["purge_type"],
            kind: Kind::Exact,
            fields: &["/purge_type"],
        },
        Filter {
            params: &["status"],
            kind: Kind::Exact,
            fields: &["/status"],
        },
        Filter {
            params: &["from_created"],
            kind: Kind::Since,
            fields: &["/created"],
        },
        Filter {
            params: &["to_created"],
            kind: Kind::Until,
            fields: &["/created"],
        },
    ]
};

/// `GET /cdn/purge_statuses`: the purges of the last day (the purge retention), newest first,
/// in Gcore's shape: `Successful` once every edge polling this node holds it (edges apply a
/// purge with the version that carries it), `In progress` until then.
pub async fn purge_statuses(
    State(c): State<Arc<Control>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let log = c.blocking(|s| s.purge_log()).await?;
    let deployed = c.deployment();
    let items = log
        .into_iter()
        .rev()
        .map(|p| {
            let kind = match (&p.what.urls, &p.what.paths) {
                (Some(_), _) => "purge_by_url",
                (None, Some(paths)) if paths.is_empty() => "purge_all",
                _ => "purge_by_pattern",
            };
            let status = if deployed.has(p.version) {
                "Successful"
            } else {
                "In progress"
            };
            serde_json::json!({
                "purge_id": p.version,
                "purge_type": kind,
                "status": status,
                "created": listing::rfc3339(u64::try_from(p.created_at).unwrap_or(0)),
                "payload": p.what,
                "resource": {"id": p.resource, "cname": p.cname},
            })
        })
        .collect();
    listing::answer(
        "/cdn/purge_statuses",
        &q,
        PURGE_FILTERS,
        &listing::Unsupported(&[]),
        items,
    )
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
