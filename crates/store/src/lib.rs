//! Where the control plane keeps its state: resources (as their Gcore JSON), the snapshot
//! version edges follow, purges, API tokens (hashed) and the audit log.
//!
//! Two backends behind one [`Store`] trait: embedded SQLite (one file, WAL) by default, and
//! PostgreSQL for several control nodes sharing one database. Every change runs in one
//! transaction that also raises the snapshot version and writes the audit entry, so a refused
//! or failed request leaves nothing half-written, and an edge never sees a change without its
//! version. The trait is synchronous; async callers run it on a blocking thread.

mod audit;
mod migrate;
mod postgres;
mod sqlite;

use std::fmt;

use tollgate_model::{PurgeRequest, Resource, Snapshot, ValidResource};

pub use crate::audit::changed_fields;
pub use crate::postgres::PgStore;
pub use crate::sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug)]
pub enum StoreError {
    /// No resource with that id.
    NotFound,
    /// The change contradicts stored state (a hostname already taken, the last API token).
    Conflict {
        /// The field at fault, as a JSON path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The database failed or holds something unreadable.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("no such resource"),
            StoreError::Conflict { field, message } => write!(f, "{field}: {message}"),
            StoreError::Backend(m) => write!(f, "store: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Who may use an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The resource API and the panel.
    Api,
    /// Fetching config snapshots and reporting counters (edges).
    Edge,
}

impl Role {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Edge => "edge",
        }
    }

    fn parse(s: &str) -> Result<Role, StoreError> {
        match s {
            "api" => Ok(Role::Api),
            "edge" => Ok(Role::Edge),
            other => Err(StoreError::Backend(format!("unknown token role {other:?}"))),
        }
    }
}

/// A stored API token (its hash only; the token itself is shown once and never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Token id.
    pub id: u64,
    /// Name given at creation, recorded as the actor in the audit log.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Entry id, increasing.
    pub id: u64,
    /// Unix time of the change.
    pub at: i64,
    /// Name of the token that made it.
    pub actor: String,
    /// `resource.create`, `resource.update`, `resource.delete`, `resource.purge`, `token.create`.
    pub action: String,
    /// The resource concerned, if any.
    pub resource: Option<u64>,
    /// What changed: field paths, purge lists, never key values.
    pub detail: String,
}

/// The control plane's persistent state.
pub trait Store: Send + Sync {
    /// Every resource, by id.
    fn list(&self) -> Result<Vec<Resource>, StoreError>;
    /// One resource.
    fn get(&self, id: u64) -> Result<Resource, StoreError>;
    /// Stores a new resource under a fresh id (the id in `res` is ignored) and returns it.
    fn create(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError>;
    /// Replaces the resource with `res.id`.
    fn update(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError>;
    /// Deletes a resource.
    fn delete(&self, id: u64, actor: &str) -> Result<(), StoreError>;
    /// Records a purge for edges to apply; returns its snapshot version.
    fn purge(&self, id: u64, req: &PurgeRequest, actor: &str) -> Result<u64, StoreError>;
    /// The current snapshot version.
    fn version(&self) -> Result<u64, StoreError>;
    /// Every resource at the current version, with the purges made after `since` (none when
    /// `since` is 0: a new edge has nothing cached).
    fn snapshot(&self, since: u64) -> Result<Snapshot, StoreError>;
    /// How many tokens exist.
    fn token_count(&self) -> Result<u64, StoreError>;
    /// Stores a token's hash.
    fn add_token(&self, name: &str, role: Role, hash: &str, actor: &str)
        -> Result<u64, StoreError>;
    /// The token with this hash.
    fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>, StoreError>;
    /// Every token (ids, names, roles; never hashes), by id.
    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;
    /// Revokes a token. Refuses to remove the last API token, which would lock everyone out.
    fn delete_token(&self, id: u64, actor: &str) -> Result<(), StoreError>;
    /// Blocks until another writer may have changed the snapshot version, or `timeout` passes
    /// (returns whether it was woken by a change). The control plane re-reads the version after
    /// each return, so a backend without notifications just waits out the timeout (polling).
    fn wait_for_change(&self, timeout: std::time::Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }
    /// The newest `limit` audit entries, newest first.
    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Purges are kept this long for edges that were away. An edge that asks from a version older
/// than a purge record that was dropped may have missed it: it is sent a purge of everything,
/// for every resource, instead ([`everything_purges`]).
pub const PURGE_RETENTION_SECS: i64 = 24 * 3600;

/// A purge of every object of every resource, at `version`: what an edge away longer than the
/// purge retention gets, since what was purged meanwhile is no longer known.
pub fn everything_purges(resources: &[Resource], version: u64) -> Vec<tollgate_model::Purge> {
    resources
        .iter()
        .map(|r| tollgate_model::Purge {
            version,
            resource: r.id,
            what: PurgeRequest {
                urls: None,
                paths: Some(Vec::new()),
            },
        })
        .collect()
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::NotFound)
}

fn parse_body(body: &str, id: i64) -> Result<Resource, StoreError> {
    let mut r: Resource = serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("resource {id}: unreadable body: {e}")))?;
    r.id = id as u64;
    Ok(r)
}

fn body_of(res: &ValidResource, id: u64) -> String {
    let mut r = res.resource.clone();
    r.id = id;
    // Serialising plain data cannot fail.
    serde_json::to_string(&r).unwrap_or_default()
}

fn last_api_token() -> StoreError {
    StoreError::Conflict {
        field: "id".into(),
        message: "this is the last API token; create another before revoking it".into(),
    }
}

fn hostname_conflict(res: &ValidResource, host: &str, other: i64) -> StoreError {
    let i = res.hostnames().iter().position(|h| h == host).unwrap_or(0);
    StoreError::Conflict {
        field: if i == 0 {
            "cname".to_owned()
        } else {
            format!("secondaryHostnames[{}]", i - 1)
        },
        message: format!("hostname {host} is already used by resource {other}"),
    }
}

#[cfg(test)]
mod contract;
