//! The control plane: Gcore's resource API over a [`Store`], API tokens, versioned config
//! snapshots that edges long-poll, the panel's data, and the panel itself.
//!
//! Every change goes through the store in one transaction that raises the snapshot version;
//! [`Control::changed`] then wakes the long-polls, so a running edge holds the change within
//! one round trip. With several control nodes on one PostgreSQL database, each node learns of
//! the others' changes by LISTEN/NOTIFY, and re-reads the version every [`STORE_POLL`] in any
//! case, so edges of any node follow changes made on any other.

pub mod auth;
pub mod edges;
pub mod error;
pub mod gcore_paths;
pub mod links;
pub mod listing;
pub mod openapi;
pub mod origin_groups;
pub mod panel;
pub mod resources;
pub mod revocations;
pub mod snippets;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use tokio::sync::watch;
use tollgate_store::{Role, Store, StoreError, TokenInfo};

use crate::error::ApiError;
use crate::stats::Stats;

/// How often a node re-reads the snapshot version from the store.
pub const STORE_POLL: Duration = Duration::from_millis(200);

/// The running control plane.
pub struct Control {
    store: Arc<dyn Store>,
    /// The snapshot version edges follow.
    version: watch::Sender<u64>,
    /// Recent answers of the edges.
    pub stats: Stats,
    /// How often each resource's keys matched, over the edges.
    pub key_usage: stats::KeyUsage,
    /// Hashes of edge tokens that live only in this process (the embedded edge of `serve`).
    static_edge_hashes: Vec<String>,
    /// Addresses edges fetch from: configured ones (never expire) and those seen polling, with
    /// when they were last seen.
    edge_addresses: std::sync::Mutex<std::collections::BTreeMap<std::net::IpAddr, u64>>,
    /// The version each edge holds, as its polls say: (edge token, edge name) -> (version,
    /// Unix time of the poll).
    edge_versions: std::sync::Mutex<HashMap<(u64, String), (u64, u64)>>,
    stopping: watch::Sender<bool>,
    /// Whether the edges have a GeoIP database, so that resources may enforce `country_acl`.
    edges_geoip: std::sync::atomic::AtomicBool,
}

/// The oldest version held by an edge that polled lately (`None`: no edge polls).
#[derive(Debug, Clone, Copy)]
pub struct Deployment(Option<u64>);

impl Deployment {
    /// Whether every edge holds `version` or later: a change made at that version is deployed
    /// (Gcore's `"status": "active"`; `"processed"` until then). With no edge polling, nothing
    /// waits for one.
    pub fn has(self, version: u64) -> bool {
        self.0.is_none_or(|oldest| oldest >= version)
    }
}

/// An edge that has not polled for this long no longer counts for a resource's `status` (a
/// live edge polls at least every [`edges::MAX_WAIT`]).
pub const EDGE_LIVE_SECS: u64 = 90;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Control {
    /// A control plane over `store`; `edge_tokens` are accepted from edges besides stored ones.
    pub fn new(store: Arc<dyn Store>, edge_tokens: &[String]) -> Result<Arc<Control>, StoreError> {
        let version = store.version()?;
        // A new epoch per start: edges replace their configuration whole once, so that a
        // database restored from a backup is never patched with deltas of another history.
        // It need not be secret, only new: the clock stands in if the OS has no randomness.
        let random = getrandom::u64().unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        store.begin_epoch(tollgate_store::epoch_from(random))?;
        Ok(Arc::new(Control {
            store,
            version: watch::channel(version).0,
            stats: Stats::default(),
            key_usage: Default::default(),
            static_edge_hashes: edge_tokens.iter().map(|t| auth::hash(t)).collect(),
            edge_addresses: Default::default(),
            edge_versions: Default::default(),
            stopping: watch::channel(false).0,
            edges_geoip: Default::default(),
        }))
    }

    /// Says whether the edges have a GeoIP database (`tollgate edge --geoip-db`): without one,
    /// a resource enforcing `country_acl` is refused with a 400 saying so, rather than stored
    /// for edges that would refuse its every request.
    pub fn set_edges_geoip(&self, yes: bool) {
        self.edges_geoip
            .store(yes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Creates the first API token when there is none: `given`, or a random one. Returns the
    /// token to show once, or `None` when tokens already exist.
    pub fn bootstrap(&self, given: Option<&str>) -> Result<Option<String>, ApiError> {
        if let Some(t) = given {
            if t.len() < 16 || t.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(ApiError::invalid(
                    "api-token",
                    "must be at least 16 printable characters without spaces",
                ));
            }
        }
        if self.store.token_count()? > 0 {
            if let Some(t) = given {
                // A token given for automation works on later starts too.
                let h = auth::hash(t);
                if self.store.find_token(&h)?.is_none() {
                    self.store
                        .add_token("from-command-line", Role::Api, &h, "bootstrap")?;
                }
            }
            return Ok(None);
        }
        let token = match given {
            Some(t) => t.to_owned(),
            None => auth::new_token().map_err(ApiError::internal)?,
        };
        self.store
            .add_token("first", Role::Api, &auth::hash(&token), "bootstrap")?;
        Ok(Some(token))
    }

    /// Adds addresses to the public IP list whether or not an edge polls from them (edges
    /// behind NAT fetch from an address the control plane never sees).
    pub fn add_edge_addresses(&self, addrs: &[std::net::IpAddr]) {
        let mut m = self
            .edge_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for a in addrs {
            m.insert(*a, u64::MAX);
        }
    }

    /// Records that an edge polled from `addr`.
    pub fn saw_edge(&self, addr: std::net::IpAddr) {
        let mut m = self
            .edge_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if m.len() < 10_000 || m.contains_key(&addr) {
            let seen = m.entry(addr).or_insert(0);
            *seen = (*seen).max(unix_now());
        }
    }

    /// Records that the edge `name` of token `token` holds `version` (it polled from it).
    pub fn edge_holds(&self, token: u64, name: &str, version: u64) {
        let mut m = self.edge_versions.lock().unwrap_or_else(|p| p.into_inner());
        let now = unix_now();
        if m.len() >= 10_000 {
            m.retain(|_, (_, seen)| now.saturating_sub(*seen) < EDGE_LIVE_SECS);
        }
        if m.len() < 10_000 || m.contains_key(&(token, name.to_owned())) {
            m.insert((token, name.to_owned()), (version, now));
        }
    }

    /// Where the edges polling this node stand: the oldest version one of them holds.
    pub fn deployment(&self) -> Deployment {
        let now = unix_now();
        let m = self.edge_versions.lock().unwrap_or_else(|p| p.into_inner());
        Deployment(
            m.values()
                .filter(|(_, seen)| now.saturating_sub(*seen) < EDGE_LIVE_SECS)
                .map(|(v, _)| *v)
                .min(),
        )
    }

    /// Runs a store call on a blocking thread.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }

    /// Re-reads the version and wakes the long-polls if it moved.
    pub async fn changed(&self) {
        match self.blocking(|s| s.version()).await {
            Ok(v) => {
                self.version
                    .send_if_modified(|cur| std::mem::replace(cur, v) != v);
            }
            Err(e) => eprintln!("tollgate control: reading the version: {}", e.message),
        }
    }

    /// Follows changes other nodes make to a shared store; returns when stopping.
    pub async fn watch_store(self: Arc<Self>) {
        loop {
            // PostgreSQL wakes this at once on another node's commit (LISTEN/NOTIFY); any
            // store returns after STORE_POLL at the latest, and the version is re-read then.
            let store = Arc::clone(&self.store);
            let wait = tokio::task::spawn_blocking(move || store.wait_for_change(STORE_POLL));
            tokio::select! {
                _ = wait => self.changed().await,
                () = self.stopped() => return,
            }
        }
    }

    /// Ends long-polls so that a graceful shutdown does not wait for them.
    pub fn stop(&self) {
        let _ = self.stopping.send(true);
    }

    /// Resolves once [`Control::stop`] was called.
    pub async fn stopped(&self) {
        let _ = self.stopping.subscribe().wait_for(|s| *s).await;
    }

    /// Every route.
    pub fn router(self: &Arc<Self>) -> Router {
        let api = Router::new()
            .route(
                "/cdn/resources",
                get(resources::list).post(resources::create),
            )
            .route(
                "/cdn/resources/{id}",
                get(resources::get)
                    .put(resources::replace)
                    .patch(resources::patch)
                    .delete(resources::delete),
            )
            .route("/cdn/resources/{id}/purge", post(resources::purge))
            .route(
                "/cdn/resources/{id}/secure_key/revocations",
                get(revocations::list).post(revocations::create),
            )
            .route(
                "/cdn/resources/{id}/secure_key/revocations/{rid}",
                axum::routing::delete(revocations::delete),
            )
            .route("/cdn/purge_statuses", get(resources::purge_statuses))
            .route(
                "/cdn/origin_groups",
                get(origin_groups::list).post(origin_groups::create),
            )
            .route(
                "/cdn/origin_groups/{id}",
                get(origin_groups::get)
                    .put(origin_groups::replace)
                    .patch(origin_groups::patch)
                    .delete(origin_groups::delete),
            )
            .route("/cdn/resources/{id}/prefetch", post(resources::prefetch))
            .route("/cdn/resources/{id}/sign", post(links::sign))
            .route("/tollgate/tokens", post(create_token).get(list_tokens))
            .route("/tollgate/tokens/{id}", axum::routing::delete(delete_token))
            .route("/tollgate/audit", get(audit))
            .route("/tollgate/stats", get(stats))
            .route("/cdn/public-ip-list", get(public_ip_list))
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(self),
                auth::require_api,
            ));
        let edge = Router::new()
            .route("/edge/v1/config", get(edges::config))
            .route("/edge/v1/stats", post(edges::stats))
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(self),
                auth::require_edge,
            ));
        Router::new()
            .merge(api)
            .merge(edge)
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/openapi.json", get(openapi::document))
            .merge(panel::routes())
            // Before `/cdn/resources/{id}`, which would take the name for an id.
            .route(
                "/cdn/resources/rule_templates",
                axum::routing::any(gcore_paths::not_supported),
            )
            .route(
                "/cdn/resources/rule_templates/{*rest}",
                axum::routing::any(gcore_paths::not_supported),
            )
            .fallback(gcore_paths::fallback)
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this route does not take that method; see /openapi.json",
                )
            })
            .with_state(Arc::clone(self))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    #[serde(default = "api_role")]
    role: String,
}

fn api_role() -> String {
    "api".into()
}

/// `POST /tollgate/tokens`: a new API or edge token, shown once.
async fn create_token(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: NewToken = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("", format!("token request: {e}")))?;
    let role = req
        .role
        .parse::<Role>()
        .map_err(|e| ApiError::invalid("role", e.to_string()))?;
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "1 to 64 characters, no control characters",
        ));
    }
    let token = auth::new_token().map_err(ApiError::internal)?;
    let h = auth::hash(&token);
    let (n, actor) = (name.clone(), who.name);
    let id = c
        .blocking(move |s| s.add_token(&n, role, &h, &actor))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": id, "name": name, "role": role.as_str(), "token": token})),
    )
        .into_response())
}

/// `GET /tollgate/tokens`: every token's id, name and role (never the token or its hash).
async fn list_tokens(State(c): State<Arc<Control>>) -> Result<Response, ApiError> {
    let list: Vec<_> = c
        .blocking(|s| s.list_tokens())
        .await?
        .into_iter()
        .map(|t| serde_json::json!({"id": t.id, "name": t.name, "role": t.role.as_str()}))
        .collect();
    Ok(Json(list).into_response())
}

/// `DELETE /tollgate/tokens/{id}`: revokes a token at once (the last API token stays).
async fn delete_token(
    State(c): State<Arc<Control>>,
    Extension(who): Extension<TokenInfo>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = resources::parse_id(&id)?;
    match c.blocking(move |s| s.delete_token(id, &who.name)).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) if e.code == "not_found" => Err(ApiError::not_found("token")),
        Err(e) => Err(e),
    }
}

/// `GET /tollgate/audit?limit=N[&resource=ID]`: who changed what, newest first.
async fn audit(
    State(c): State<Arc<Control>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "1 to 1000"))?,
    };
    let resource = resource_param(&q)?;
    let entries = c.blocking(move |s| s.audit(limit, resource)).await?;
    let list: Vec<_> = entries
        .into_iter()
        .map(|e| {
            serde_json::json!({"id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
                "resource": e.resource, "detail": e.detail})
        })
        .collect();
    Ok(Json(list).into_response())
}

/// The `resource` query parameter of the audit and the stats, if given.
fn resource_param(q: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    q.get("resource")
        .map(|r| {
            resources::parse_id(r)
                .map_err(|_| ApiError::invalid("resource", format!("{r:?} is not a resource id")))
        })
        .transpose()
}

/// `GET /tollgate/stats[?resource=ID]`: the chart's data.
async fn stats(
    State(c): State<Arc<Control>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<stats::Series>, ApiError> {
    let resource = resource_param(&q)?;
    Ok(Json(c.stats.series(resource, unix_now())))
}

/// Edge addresses not seen for this long leave the public IP list.
pub const EDGE_ADDRESS_TTL: u64 = 24 * 3600;

/// `GET /cdn/public-ip-list`, Gcore's shape: the addresses edges fetch from, for origins that
/// allow-list by address.
async fn public_ip_list(State(c): State<Arc<Control>>) -> Json<serde_json::Value> {
    let now = unix_now();
    let m = c.edge_addresses.lock().unwrap_or_else(|p| p.into_inner());
    let fresh = m
        .iter()
        .filter(|(_, seen)| now.saturating_sub(**seen) < EDGE_ADDRESS_TTL)
        .map(|(a, _)| *a);
    let (v4, v6): (Vec<_>, Vec<_>) = fresh.partition(|a| a.is_ipv4());
    let text = |v: Vec<std::net::IpAddr>| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    Json(serde_json::json!({"addresses": text(v4), "addresses_v6": text(v6)}))
}
