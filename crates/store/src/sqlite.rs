//! The embedded backend: one SQLite file in WAL mode with `synchronous = FULL`, so a change is
//! on disk before the API answers 200 and survives a crash of the process or the machine.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tollgate_model::{Purge, PurgeRequest, Resource, Snapshot, ValidResource};

use crate::{
    body_of, everything_purges, hostname_conflict, lineage, parse_body, to_i64, AuditEntry, Head,
    Kept, Role, Store, StoreError, TokenInfo, PURGES, PURGE_RETENTION_SECS, TOMBSTONES,
};

/// The SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    purge_retention_secs: std::sync::atomic::AtomicI64,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// The database holds resource keys: readable by this user only. Creates the file 0600 when
/// it is new (SQLite gives its `-wal` and `-shm` files the database's mode), and takes group
/// and other bits off an existing database and its `-wal` and `-shm`, which an older version
/// or another tool may have left 0644.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io =
        |what: &Path, e: std::io::Error| StoreError::Backend(format!("{}: {e}", what.display()));
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| io(path, e))?;
    let mut files = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for f in files {
        match std::fs::metadata(&f) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                let mode = m.permissions().mode() & 0o700;
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io(&f, e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&f, e)),
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        owner_only(path)?;
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(backend)?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            purge_retention_secs: std::sync::atomic::AtomicI64::new(PURGE_RETENTION_SECS),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Keeps purge records `secs` instead of [`PURGE_RETENTION_SECS`] (for tests of edges that
    /// were away longer).
    pub fn set_purge_retention(&self, secs: i64) {
        self.purge_retention_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    fn retention(&self) -> i64 {
        self.purge_retention_secs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (rusqlite rolls back
        // on drop), so the connection is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
        )
        .map_err(backend)?;
        for (version, sql) in crate::migrate::SQLITE {
            let done: Option<i64> = tx
                .query_row(
                    "SELECT version FROM schema_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if done.is_none() {
                tx.execute_batch(sql).map_err(backend)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES (?1)",
                    [version],
                )
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }
}

fn bump(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    tx.query_row(
        "UPDATE config_version SET version = version + 1 RETURNING version",
        [],
        |r| r.get(0),
    )
    .map_err(backend)
}

fn audit(
    tx: &Transaction<'_>,
    actor: &str,
    action: &str,
    resource: Option<i64>,
    detail: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (at, actor, action, resource_id, detail) VALUES (unixepoch(), ?1, ?2, ?3, ?4)",
        params![actor, action, resource, detail],
    )
    .map(drop)
    .map_err(backend)
}

fn load(tx: &Connection, id: i64) -> Result<Resource, StoreError> {
    let body: String = tx
        .query_row("SELECT body FROM resources WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
    parse_body(&body, id)
}

/// Drops the records of `kept` older than `retention` seconds, remembering the newest version
/// among them.
fn forget_old(tx: &Transaction<'_>, kept: &Kept, retention: i64) -> Result<(), StoreError> {
    let Kept {
        table,
        at,
        watermark,
    } = kept;
    tx.execute(
        &format!(
            "UPDATE config_version SET {watermark} = max({watermark},
                COALESCE((SELECT max(version) FROM {table} WHERE {at} < unixepoch() - ?1), 0))"
        ),
        [retention],
    )
    .map_err(backend)?;
    tx.execute(
        &format!("DELETE FROM {table} WHERE {at} < unixepoch() - ?1"),
        [retention],
    )
    .map(drop)
    .map_err(backend)
}

/// The version row, with where `edge_epoch` stands in the history.
fn head(c: &Connection, edge_epoch: Option<u64>) -> Result<Head, StoreError> {
    let (version, purges_forgotten, deletes_forgotten, epoch) = c
        .query_row(
            "SELECT version, purges_forgotten_through, deletes_forgotten_through, epoch
             FROM config_version",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(backend)?;
    let e = edge_epoch.and_then(|e| i64::try_from(e).ok()).unwrap_or(0);
    let seq: Option<i64> = c
        .query_row("SELECT seq FROM epochs WHERE epoch = ?1", [e], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    let next_start: Option<i64> = match seq {
        None => None,
        Some(seq) => c
            .query_row(
                "SELECT start_version FROM epochs WHERE seq > ?1 ORDER BY seq LIMIT 1",
                [seq],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?,
    };
    Ok(Head {
        version,
        purges_forgotten,
        deletes_forgotten,
        epoch,
        lineage: lineage(edge_epoch, seq, next_start),
    })
}

fn claim_hostnames(tx: &Transaction<'_>, res: &ValidResource, id: i64) -> Result<(), StoreError> {
    tx.execute("DELETE FROM hostnames WHERE resource_id = ?1", [id])
        .map_err(backend)?;
    for h in res.hostnames() {
        let taken: Option<i64> = tx
            .query_row(
                "SELECT resource_id FROM hostnames WHERE hostname = ?1",
                [h],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if let Some(other) = taken {
            return Err(hostname_conflict(res, h, other));
        }
        tx.execute(
            "INSERT INTO hostnames (hostname, resource_id) VALUES (?1, ?2)",
            params![h, id],
        )
        .map_err(|e| {
            if is_unique_violation(&e) {
                hostname_conflict(res, h, -1)
            } else {
                backend(e)
            }
        })?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn list(&self) -> Result<Vec<Resource>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, body FROM resources ORDER BY id")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(backend)?;
        rows.map(|row| {
            let (id, body) = row.map_err(backend)?;
            parse_body(&body, id)
        })
        .collect()
    }

    fn get(&self, id: u64) -> Result<Resource, StoreError> {
        load(&self.conn(), to_i64(id)?)
    }

    fn create(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError> {
        self.write(|tx| {
            let version = bump(tx)?;
            tx.execute(
                "INSERT INTO resources (body, updated_version) VALUES ('{}', ?1)",
                [version],
            )
            .map_err(backend)?;
            let id = tx.last_insert_rowid();
            let body = body_of(res, id as u64);
            tx.execute(
                "UPDATE resources SET body = ?1 WHERE id = ?2",
                params![body, id],
            )
            .map_err(backend)?;
            claim_hostnames(tx, res, id)?;
            audit(tx, actor, "resource.create", Some(id), "")?;
            parse_body(&body, id)
        })
    }

    fn update(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError> {
        let id = to_i64(res.id)?;
        self.write(|tx| {
            let old = load(tx, id)?;
            let version = bump(tx)?;
            let body = body_of(res, res.id);
            tx.execute(
                "UPDATE resources SET body = ?1, updated_version = ?2 WHERE id = ?3",
                params![body, version, id],
            )
            .map_err(backend)?;
            claim_hostnames(tx, res, id)?;
            let detail = crate::audit::update_detail(&old, &res.resource);
            audit(tx, actor, "resource.update", Some(id), &detail)?;
            parse_body(&body, id)
        })
    }

    fn delete(&self, id: u64, actor: &str) -> Result<(), StoreError> {
        let id = to_i64(id)?;
        self.write(|tx| {
            bump(tx)?;
            let n = tx
                .execute("DELETE FROM resources WHERE id = ?1", [id])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            forget_old(tx, &TOMBSTONES, self.retention())?;
            // Its own tombstone was written by the DELETE (trigger `resources_tombstone`).
            audit(tx, actor, "resource.delete", Some(id), "")
        })
    }

    fn purge(&self, id: u64, req: &PurgeRequest, actor: &str) -> Result<u64, StoreError> {
        let id = to_i64(id)?;
        self.write(|tx| {
            load(tx, id)?;
            let version = bump(tx)?;
            let body = serde_json::to_string(req).unwrap_or_default();
            forget_old(tx, &PURGES, self.retention())?;
            tx.execute(
                "INSERT INTO purges (version, resource_id, body, created_at) VALUES (?1, ?2, ?3, unixepoch())",
                params![version, id, body],
            )
            .map_err(backend)?;
            audit(tx, actor, "resource.purge", Some(id), &body)?;
            Ok(version as u64)
        })
    }

    fn version(&self) -> Result<u64, StoreError> {
        self.conn()
            .query_row("SELECT version FROM config_version", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(backend)
    }

    fn snapshot(&self, since: u64, epoch: Option<u64>) -> Result<Snapshot, StoreError> {
        let since = to_i64(since)?;
        let mut conn = self.conn();
        // One read transaction: resources, version and purges agree with each other.
        let tx = conn.transaction().map_err(backend)?;
        let head = head(&tx, epoch)?;
        let delta = head.delta_from(since);
        let rows = |sql: &str,
                    args: &[&dyn rusqlite::ToSql]|
         -> Result<Vec<(i64, Option<String>)>, StoreError> {
            let mut stmt = tx.prepare(sql).map_err(backend)?;
            let mut rows = stmt.query(args).map_err(backend)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                out.push((row.get(0).map_err(backend)?, row.get(1).map_err(backend)?));
            }
            Ok(out)
        };
        let (resources, deleted) = match delta {
            Some(from) => (
                rows(
                    "SELECT id, body FROM resources WHERE updated_version > ?1 ORDER BY id",
                    &[&from],
                )?,
                rows(
                    "SELECT id, NULL FROM deleted_resources WHERE version > ?1 ORDER BY id",
                    &[&from],
                )?,
            ),
            None => (
                rows("SELECT id, body FROM resources ORDER BY id", &[])?,
                Vec::new(),
            ),
        };
        let resources = resources
            .into_iter()
            .map(|(id, body)| parse_body(body.as_deref().unwrap_or_default(), id))
            .collect::<Result<Vec<_>, _>>()?;
        let mut purges = Vec::new();
        if head.purge_everything(since, epoch) {
            purges = everything_purges(&resources, head.version as u64);
        } else if since > 0 {
            let mut stmt = tx
                .prepare("SELECT version, resource_id, body FROM purges WHERE version > ?1 ORDER BY version")
                .map_err(backend)?;
            let mut rows = stmt.query([since]).map_err(backend)?;
            while let Some(row) = rows.next().map_err(backend)? {
                let body: String = row.get(2).map_err(backend)?;
                purges.push(Purge {
                    version: row.get::<_, i64>(0).map_err(backend)? as u64,
                    resource: row.get::<_, i64>(1).map_err(backend)? as u64,
                    what: serde_json::from_str(&body)
                        .map_err(|e| StoreError::Backend(format!("purge body: {e}")))?,
                });
            }
        }
        Ok(Snapshot {
            version: head.version as u64,
            epoch: head.epoch_for(epoch),
            delta_from: delta.map(|v| v as u64),
            resources,
            deleted: deleted.into_iter().map(|(id, _)| id as u64).collect(),
            purges,
        })
    }

    fn can_patch(&self, since: u64, epoch: u64) -> Result<bool, StoreError> {
        let since = to_i64(since)?;
        Ok(head(&self.conn(), Some(epoch))?.delta_from(since).is_some())
    }

    fn begin_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        let epoch = to_i64(epoch)?;
        self.write(|tx| {
            let version: i64 = tx
                .query_row(
                    "UPDATE config_version SET epoch = ?1 RETURNING version",
                    [epoch],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO epochs (epoch, start_version) VALUES (?1, ?2)",
                [epoch, version],
            )
            .map(drop)
            .map_err(backend)
        })
    }

    fn token_count(&self) -> Result<u64, StoreError> {
        self.conn()
            .query_row("SELECT count(*) FROM api_tokens", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(backend)
    }

    fn add_token(
        &self,
        name: &str,
        role: Role,
        hash: &str,
        actor: &str,
    ) -> Result<u64, StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO api_tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, unixepoch())",
                params![name, role.as_str(), hash],
            )
            .map_err(backend)?;
            let id = tx.last_insert_rowid();
            audit(tx, actor, "token.create", None, &format!("{name} ({})", role.as_str()))?;
            Ok(id as u64)
        })
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>, StoreError> {
        let found = self
            .conn()
            .query_row(
                "SELECT id, name, role FROM api_tokens WHERE hash = ?1",
                [hash],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(backend)?;
        found
            .map(|(id, name, role)| {
                Ok(TokenInfo {
                    id: id as u64,
                    name,
                    role: Role::from_db(&role)?,
                })
            })
            .transpose()
    }

    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, name, role FROM api_tokens ORDER BY id")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (id, name, role) = row.map_err(backend)?;
            Ok(TokenInfo {
                id: id as u64,
                name,
                role: Role::from_db(&role)?,
            })
        })
        .collect()
    }

    fn delete_token(&self, id: u64, actor: &str) -> Result<(), StoreError> {
        let id = to_i64(id)?;
        self.write(|tx| {
            let row: Option<(String, String)> = tx
                .query_row(
                    "SELECT name, role FROM api_tokens WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            let (name, role) = row.ok_or(StoreError::NotFound)?;
            if role == "api" {
                let apis: i64 = tx
                    .query_row(
                        "SELECT count(*) FROM api_tokens WHERE role = 'api'",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                if apis <= 1 {
                    return Err(crate::last_api_token());
                }
            }
            tx.execute("DELETE FROM api_tokens WHERE id = ?1", [id])
                .map_err(backend)?;
            audit(tx, actor, "token.delete", None, &format!("{name} ({role})"))
        })
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, at, actor, action, resource_id, detail FROM audit ORDER BY id DESC LIMIT ?1")
            .map_err(backend)?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok(AuditEntry {
                    id: r.get::<_, i64>(0)? as u64,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    resource: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                    detail: r.get(5)?,
                })
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }
}
