//! The routes edges use: `GET /edge/v1/config` (long-poll for the next snapshot) and
//! `POST /edge/v1/stats` (their counters, for the panel's chart).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use tollgate_model::EdgeReport;

use crate::error::ApiError;
use crate::Control;

/// Longest a long-poll is held open.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A query number; versions and epochs are stored as signed 64-bit integers, so larger ones are
/// refused here (a 400 naming the parameter) rather than failing in the store.
fn number(q: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| i64::try_from(*n).is_ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    name,
                    format!("{v:?} is not a number from 0 to {}", i64::MAX),
                )
            }),
    }
}

/// `GET /edge/v1/config?since=V&wait=S[&epoch=E]`: the snapshot as soon as its version differs
/// from `since` (at once if it already does), or 304 after `wait` seconds (default 25, at most
/// 60). A version below `since` means the database was replaced: the edge gets it all again.
///
/// An edge that sends `epoch` takes deltas: it is given only what changed after `since` when its
/// state is part of the database's history (and everything, at once, when it is not; `E` = 0
/// waits for a change and then takes everything). See [`tollgate_store::Store::snapshot`].
pub async fn config(
    State(c): State<Arc<Control>>,
    axum::Extension(who): axum::Extension<tollgate_store::TokenInfo>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let since = number(&q, "since", 0)?;
    // What the edge holds, for resources' `status` (an edge that sends no name is one per
    // token).
    let name = q.get("edge").map_or("", String::as_str);
    if name.len() > 256 {
        return Err(ApiError::invalid("edge", "at most 256 bytes"));
    }
    c.edge_holds(who.id, name, since);
    let wait = Duration::from_secs(number(&q, "wait", 25)?).min(MAX_WAIT);
    // Only edges that take deltas send their epoch (0: they hold nothing they trust).
    let epoch = match q.get("epoch") {
        None => None,
        Some(_) => Some(number(&q, "epoch", 0)?),
    };
    let mut rx = c.version.subscribe();
    // An edge whose configuration cannot be patched (from another database's history, or
    // before a record that was dropped) is answered at once: it must be replaced whole, whether
    // or not anything changes.
    let stale_epoch = match epoch {
        Some(e) if e != 0 => !c.blocking(move |s| s.can_patch(since, e)).await?,
        _ => false,
    };
    let changed = stale_epoch
        || tokio::select! {
            r = tokio::time::timeout(wait, rx.wait_for(|v| *v != since)) => matches!(r, Ok(Ok(_))),
            () = c.stopped() => false,
        };
    if !changed {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    // `since` as it is, even above this node's watch: the watch can lag the database (another
    // node's write not yet announced, refreshes finishing out of order) while the edge holds a
    // version read from it. The store tells, in the snapshot's own transaction, whether the
    // edge is ahead of the database (replaced: every resource, no purges after it).
    let snap = c.blocking(move |s| s.snapshot(since, epoch)).await?;
    if q.contains_key("edge") {
        return Ok(Json(snap).into_response());
    }
    // An edge of a version before origin groups (it sends no name) refuses fields it does not
    // know: it is sent each resource as it knew them, `origin` the group's first source.
    let mut v = serde_json::to_value(&snap).map_err(ApiError::internal)?;
    if let Some(list) = v.get_mut("resources").and_then(Value::as_array_mut) {
        for r in list.iter_mut().filter_map(Value::as_object_mut) {
            r.retain(|k, _| BEFORE_GROUPS.contains(&k.as_str()));
            if let Some(opts) = r.get_mut("options").and_then(Value::as_object_mut) {
                opts.retain(|k, _| BEFORE_GROUPS_OPTIONS.contains(&k.as_str()));
                if let Some(ecs) = opts
                    .get_mut("edge_cache_settings")
                    .and_then(Value::as_object_mut)
                {
                    ecs.remove("custom_values");
                }
            }
        }
    }
    Ok(Json(v).into_response())
}

/// A resource's fields as edges before origin groups take them.
const BEFORE_GROUPS: &[&str] = &[
    "id",
    "cname",
    "secondaryHostnames",
    "origin",
    "originProtocol",
    "active",
    "name",
    "description",
    "options",
];

/// The options edges before origin groups know (others are off, or they would be refused).
const BEFORE_GROUPS_OPTIONS: &[&str] = &[
    "secure_key",
    "hostHeader",
    "ignoreQueryString",
    "edge_cache_settings",
    "staticRequestHeaders",
    "query_string_forwarding",
    "slice",
    "allowedHttpMethods",
];

/// Prefetch failures taken from one report.
const MAX_PREFETCH_FAILURES: usize = 100;

/// `POST /edge/v1/stats`: the edge's counters, and the prefetched paths it could not fetch
/// (into the audit log, as the edge).
pub async fn stats(State(c): State<Arc<Control>>, body: Bytes) -> Result<StatusCode, ApiError> {
    let report: EdgeReport = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("", format!("edge report: {e}")))?;
    // The audit first: a failure there makes the edge send the same counters again, which
    // must not have been counted yet.
    let counters = EdgeReport {
        edge: report.edge.clone(),
        resources: report.resources.clone(),
        prefetch_failures: Vec::new(),
    };
    if !report.prefetch_failures.is_empty() {
        let actor = format!("edge:{}", report.edge);
        c.blocking(move |s| {
            // An edge sends at most this many; more would only flood the log.
            for f in report.prefetch_failures.iter().take(MAX_PREFETCH_FAILURES) {
                let what = serde_json::json!({"path": f.path, "reason": f.reason}).to_string();
                s.record(&actor, "resource.prefetch_failed", f.resource, &what)?;
            }
            Ok(())
        })
        .await?;
    }
    let now = crate::unix_now();
    c.stats.record(&counters, now);
    c.key_usage.record(&counters, now);
    Ok(StatusCode::NO_CONTENT)
}
