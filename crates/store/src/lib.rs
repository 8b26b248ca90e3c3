//! Where the control plane keeps its state: resources (as their Gcore JSON), the snapshot
//! version edges follow, purges, API tokens (hashed) and the audit log.
//!
//! Two backends behind one [`Store`] trait: embedded SQLite (one file, WAL) by default, and
//! PostgreSQL for several control nodes sharing one database. Every change runs in one
//! transaction that also raises the snapshot version and writes the audit entry, so a refused
//! or failed request leaves nothing half-written, and an edge never sees a change without its
//! version. The trait is synchronous; async callers run it on a blocking thread.
//!
//! Each operation is written once (`ops`), over what a backend gives it (`backend`): statements
//! on a connection or in a transaction, and the few pieces of SQL that differ. A backend keeps
//! only its connection handling, transactions, migrations, error mapping and notifications.

mod audit;
mod backend;
mod migrate;
mod ops;
mod postgres;
mod sqlite;

use std::fmt;

use tollgate_model::{
    OriginGroup, PrefetchRequest, PurgeRequest, Resource, Snapshot, ValidResource,
};

pub use crate::audit::changed_fields;
pub use crate::postgres::PgStore;
pub use crate::sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug)]
pub enum StoreError {
    /// No resource with that id.
    NotFound,
    /// No origin group with that id.
    NoOriginGroup,
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
            StoreError::NoOriginGroup => f.write_str("no such origin group"),
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

    /// A role read back from the database: one that is not a role is unreadable data there,
    /// not a caller's mistake.
    fn from_db(s: &str) -> Result<Role, StoreError> {
        s.parse().map_err(|UnknownRole(other)| {
            StoreError::Backend(format!("unknown token role {other:?}"))
        })
    }
}

/// Parses the names [`Role::as_str`] gives, as the database stores them and the token API
/// takes them.
impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        match s {
            "api" => Ok(Role::Api),
            "edge" => Ok(Role::Edge),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// A role name that is neither `api` nor `edge`; it holds the name given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not api or edge", self.0)
    }
}

impl std::error::Error for UnknownRole {}

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
    /// `resource.create`, `resource.update`, `resource.delete`, `resource.purge`,
    /// `origin_group.create`, `origin_group.update`, `origin_group.delete`, `token.create`.
    pub action: String,
    /// The resource concerned, if any.
    pub resource: Option<u64>,
    /// What changed: field paths, purge lists, never key values.
    pub detail: String,
}

/// An origin group as stored, with whether any resource uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// The group (its id set).
    pub group: OriginGroup,
    /// Whether a resource refers to it (Gcore's `has_related_resources`).
    pub in_use: bool,
}

/// Which resources [`Store::select`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The one with this id.
    Id(u64),
    /// The one holding this hostname (lower case), as cname or secondary hostname.
    Hostname(String),
    /// `limit` of them (every one with `None`) after skipping `offset`, by id.
    Page {
        /// Skipped first.
        offset: u64,
        /// Most returned.
        limit: Option<u64>,
    },
}

/// What [`Store::select`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The resources, each with the version of its last change.
    pub resources: Vec<(Resource, u64)>,
    /// How many resources the selection is a page of (every resource for a page; those
    /// found for a hostname).
    pub total: u64,
}

/// A purge as recorded, for `GET /cdn/purge_statuses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRecord {
    /// The snapshot version it was made at (also its id).
    pub version: u64,
    /// The resource purged.
    pub resource: u64,
    /// What was purged.
    pub what: PurgeRequest,
    /// Unix time it was made.
    pub created_at: i64,
    /// The resource's cname (`None` once the resource is deleted).
    pub cname: Option<String>,
}

/// The control plane's persistent state, kept by [`SqliteStore`] or [`PgStore`].
///
/// Resources come back with their origin group resolved (`originGroup_detail`, and `origin`
/// its first source); it is never stored with them.
pub trait Store: Send + Sync {
    /// Every resource, by id.
    fn list(&self) -> Result<Vec<Resource>, StoreError>;
    /// One resource.
    fn get(&self, id: u64) -> Result<Resource, StoreError>;
    /// Stores a new resource under a fresh id (the id in `res` is ignored) and returns it. A
    /// resource given with `origin` and no `originGroup` gets a group of its own, made in the
    /// same transaction (Gcore's shortcut), named after its cname.
    fn create(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError>;
    /// Replaces the resource with `res.id`.
    fn update(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError>;
    /// Every origin group, by id.
    fn list_groups(&self) -> Result<Vec<StoredGroup>, StoreError>;
    /// One origin group.
    fn get_group(&self, id: u64) -> Result<StoredGroup, StoreError>;
    /// Stores a new origin group (its id is ignored) and returns it.
    fn create_group(&self, group: &OriginGroup, actor: &str) -> Result<StoredGroup, StoreError>;
    /// Replaces the group with `group.id`; the resources using it are given a new version, so
    /// that edges fetch from the new sources.
    fn update_group(&self, group: &OriginGroup, actor: &str) -> Result<StoredGroup, StoreError>;
    /// Deletes a group no resource uses (a used one is a conflict naming a resource).
    fn delete_group(&self, id: u64, actor: &str) -> Result<(), StoreError>;
    /// The resources `which` selects, by id, each with the snapshot version of its last change
    /// (edges that hold that version serve it as it is), and how many there are in all.
    fn select(&self, which: &Selection) -> Result<Selected, StoreError>;
    /// The purges still recorded (the purge retention), oldest first.
    fn purge_log(&self) -> Result<Vec<PurgeRecord>, StoreError>;
    /// Deletes a resource.
    fn delete(&self, id: u64, actor: &str) -> Result<(), StoreError>;
    /// Records a purge for edges to apply; returns its snapshot version.
    fn purge(&self, id: u64, req: &PurgeRequest, actor: &str) -> Result<u64, StoreError>;
    /// Records a prefetch for edges to apply; returns its snapshot version.
    fn prefetch(&self, id: u64, req: &PrefetchRequest, actor: &str) -> Result<u64, StoreError>;
    /// Writes `what` into the audit log as `actor` (an edge reporting on a resource).
    fn record(&self, actor: &str, action: &str, id: u64, what: &str) -> Result<(), StoreError>;
    /// The current snapshot version.
    fn version(&self) -> Result<u64, StoreError>;
    /// What an edge at version `since` needs, with the purges made after `since` (none when
    /// `since` is 0: a new edge has nothing cached).
    ///
    /// `epoch` is `None` for an edge that takes whole snapshots only: every resource, epoch 0.
    /// `Some(e)` is an edge that takes deltas and holds a configuration of epoch `e` (0: none it
    /// trusts): it is given only what changed after `since` when its state is part of this
    /// database's history and every change since is still known ([`Head::delta_from`]), every
    /// resource otherwise; the answer carries the current epoch.
    fn snapshot(&self, since: u64, epoch: Option<u64>) -> Result<Snapshot, StoreError>;
    /// Whether an edge holding version `since` of `epoch` can be patched with a delta (else
    /// it must be given every resource, and is, at once).
    fn can_patch(&self, since: u64, epoch: u64) -> Result<bool, StoreError>;
    /// Starts a new epoch, as every control plane does when it starts: edges holding a
    /// configuration of an older one are given every resource again, so that a database
    /// restored from a backup is never patched with deltas meant for another history.
    fn begin_epoch(&self, epoch: u64) -> Result<(), StoreError>;
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
    /// The newest `limit` audit entries, newest first; with `resource`, only that resource's.
    fn audit(&self, limit: u32, resource: Option<u64>) -> Result<Vec<AuditEntry>, StoreError>;
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

/// Where an edge's epoch stands in this database's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lineage {
    /// The current epoch.
    Current,
    /// An earlier epoch, followed by one that began at this version: an edge of it holds a
    /// state of this database's history if its version is at most that.
    EndedAt(i64),
    /// Not an epoch of this database (another database, a backup restored from before it), or
    /// an edge that sent none.
    Unknown,
}

/// The `config_version` row as a snapshot's transaction reads it, with the edge's lineage.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// The current version.
    pub version: i64,
    /// The newest purge version whose record was dropped.
    pub purges_forgotten: i64,
    /// The newest deletion version whose tombstone was dropped.
    pub deletes_forgotten: i64,
    /// The current epoch.
    pub epoch: i64,
    /// The asking edge's epoch, in this database's history.
    pub lineage: Lineage,
}

impl Head {
    /// The version a delta can start from for an edge at `since`, or `None` when the edge must
    /// be given every resource: it takes no deltas or holds nothing it trusts (epoch 0), holds
    /// a state that is not of this database's history (another epoch's, later than where that
    /// epoch ended here, or ahead of the database), or is from before a deletion or purge
    /// record that was dropped.
    pub fn delta_from(&self, since: i64) -> Option<i64> {
        (self.in_history(since)
            && since > 0
            && since >= self.purges_forgotten
            && since >= self.deletes_forgotten)
            .then_some(since)
    }

    /// Whether version `since` of the edge's epoch is a version of this database's history.
    fn in_history(&self, since: i64) -> bool {
        let in_epoch = match self.lineage {
            Lineage::Current => true,
            Lineage::EndedAt(end) => since <= end,
            Lineage::Unknown => false,
        };
        in_epoch && since <= self.version
    }

    /// Whether an edge at `since` must be told to purge everything: it is from before a purge
    /// record that was dropped, or it holds (and so has cached) a state of another history (it
    /// sent an epoch, and version `since` of it is not one of this database's), whose purges
    /// are not this history's purges after `since`. An edge that sent no epoch, or 0, cannot
    /// tell, and is sent the purges after `since` as before.
    pub fn purge_everything(&self, since: i64, edge_epoch: Option<u64>) -> bool {
        let foreign = matches!(edge_epoch, Some(e) if e != 0) && !self.in_history(since);
        since > 0 && (since < self.purges_forgotten || foreign)
    }

    /// The snapshot's epoch: the current one for edges that take deltas, else 0 (the field is
    /// then left out, as older edges expect).
    fn epoch_for(&self, epoch: Option<u64>) -> u64 {
        epoch.map_or(0, |_| self.epoch as u64)
    }
}

/// A new epoch's value: positive, so that it fits both backends' signed integers, and never 0.
pub fn epoch_from(random: u64) -> u64 {
    (random >> 1).max(1)
}

#[cfg(test)]
mod contract;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_as_they_are_stored() {
        for role in [Role::Api, Role::Edge] {
            assert_eq!(role.as_str().parse(), Ok(role));
        }
        let err = "admin".parse::<Role>().unwrap_err();
        assert_eq!(err.to_string(), r#""admin" is not api or edge"#);
        assert!(
            matches!(Role::from_db("Api"), Err(StoreError::Backend(m)) if m == r#"unknown token role "Api""#)
        );
    }
}
