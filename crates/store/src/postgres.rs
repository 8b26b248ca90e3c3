//! The shared backend: PostgreSQL, for several control nodes over one database. The same
//! schema and transactions as SQLite; the version row's lock orders concurrent writers, and the
//! hostname primary key settles races between nodes.

use std::sync::{Mutex, MutexGuard};

use postgres::error::SqlState;
use postgres::{Client, NoTls, Transaction};
use tollgate_model::{Purge, PurgeRequest, Resource, Snapshot, ValidResource};

use crate::{
    body_of, everything_purges, hostname_conflict, lineage, parse_body, to_i64, AuditEntry, Head,
    Kept, Role, Store, StoreError, TokenInfo, PURGES, PURGE_RETENTION_SECS, TOMBSTONES,
};

/// The PostgreSQL store.
pub struct PgStore {
    url: String,
    client: Mutex<Option<Client>>,
    /// A second connection that only LISTENs, for [`Store::wait_for_change`].
    listener: Mutex<Option<Client>>,
    purge_retention_secs: std::sync::atomic::AtomicI64,
}

/// The channel every change is announced on, so that other control nodes learn of it at once
/// instead of at their next version poll.
const CHANNEL: &str = "tollgate_config";

fn backend(e: postgres::Error) -> StoreError {
    // The error's Display is just "db error"; the server's message is in the DbError.
    StoreError::Backend(match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    })
}

const NOW: &str = "extract(epoch from now())::bigint";

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`) and brings the schema up to date.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let store = PgStore {
            url: url.to_owned(),
            client: Mutex::new(None),
            listener: Mutex::new(None),
            purge_retention_secs: std::sync::atomic::AtomicI64::new(PURGE_RETENTION_SECS),
        };
        store.with(|c| {
            let mut tx = c.transaction().map_err(backend)?;
            // Several nodes may start at once: one migrates, the others wait for it.
            tx.execute("SELECT pg_advisory_xact_lock(7407160)", &[])
                .map_err(backend)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)",
            )
            .map_err(backend)?;
            for (version, sql) in crate::migrate::POSTGRES {
                let done = tx
                    .query_opt(
                        "SELECT version FROM schema_migrations WHERE version = $1",
                        &[version],
                    )
                    .map_err(backend)?;
                if done.is_none() {
                    tx.batch_execute(sql).map_err(backend)?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)",
                        &[version],
                    )
                    .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })?;
        Ok(store)
    }

    fn retention(&self) -> i64 {
        self.purge_retention_secs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection, connecting first if there is none or the last one broke.
    /// Keeps purge records `secs` instead of [`PURGE_RETENTION_SECS`] (for tests of edges that
    /// were away longer).
    pub fn set_purge_retention(&self, secs: i64) {
        self.purge_retention_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(Client::connect(&self.url, NoTls).map_err(backend)?);
        }
        match guard.as_mut() {
            Some(c) => f(c),
            None => Err(StoreError::Backend("no connection".to_owned())),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(backend)?;
            let out = f(&mut tx)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
    }
}

/// Drops the records of `kept` older than `retention` seconds, remembering the newest version
/// among them.
fn forget_old(tx: &mut Transaction<'_>, kept: &Kept, retention: i64) -> Result<(), StoreError> {
    let Kept {
        table,
        at,
        watermark,
    } = kept;
    tx.execute(
        &format!(
            "UPDATE config_version SET {watermark} = GREATEST({watermark},
                COALESCE((SELECT max(version) FROM {table} WHERE {at} < {NOW} - $1), 0))"
        ),
        &[&retention],
    )
    .map_err(backend)?;
    tx.execute(
        &format!("DELETE FROM {table} WHERE {at} < {NOW} - $1"),
        &[&retention],
    )
    .map(drop)
    .map_err(backend)
}

/// The version row, with where `edge_epoch` stands in the history.
fn head(tx: &mut Transaction<'_>, edge_epoch: Option<u64>) -> Result<Head, StoreError> {
    let row = tx
        .query_one(
            "SELECT version, purges_forgotten_through, deletes_forgotten_through, epoch
             FROM config_version",
            &[],
        )
        .map_err(backend)?;
    let e = edge_epoch.and_then(|e| i64::try_from(e).ok()).unwrap_or(0);
    let seq: Option<i64> = tx
        .query_opt("SELECT seq FROM epochs WHERE epoch = $1", &[&e])
        .map_err(backend)?
        .map(|r| r.get(0));
    let next_start: Option<i64> = match seq {
        None => None,
        Some(seq) => tx
            .query_opt(
                "SELECT start_version FROM epochs WHERE seq > $1 ORDER BY seq LIMIT 1",
                &[&seq],
            )
            .map_err(backend)?
            .map(|r| r.get(0)),
    };
    Ok(Head {
        version: row.get(0),
        purges_forgotten: row.get(1),
        deletes_forgotten: row.get(2),
        epoch: row.get(3),
        lineage: lineage(edge_epoch, seq, next_start),
    })
}

fn bump(tx: &mut Transaction<'_>) -> Result<i64, StoreError> {
    // Delivered to listeners when (and only if) the transaction commits.
    tx.batch_execute(&format!("NOTIFY {CHANNEL}"))
        .map_err(backend)?;
    tx.query_one(
        "UPDATE config_version SET version = version + 1 RETURNING version",
        &[],
    )
    .map(|r| r.get(0))
    .map_err(backend)
}

fn audit(
    tx: &mut Transaction<'_>,
    actor: &str,
    action: &str,
    resource: Option<i64>,
    detail: &str,
) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT INTO audit (at, actor, action, resource_id, detail) VALUES ({NOW}, $1, $2, $3, $4)"),
        &[&actor, &action, &resource, &detail],
    )
    .map(drop)
    .map_err(backend)
}

fn load(tx: &mut Transaction<'_>, id: i64) -> Result<Resource, StoreError> {
    let row = tx
        .query_opt("SELECT body FROM resources WHERE id = $1", &[&id])
        .map_err(backend)?
        .ok_or(StoreError::NotFound)?;
    parse_body(row.get(0), id)
}

fn claim_hostnames(
    tx: &mut Transaction<'_>,
    res: &ValidResource,
    id: i64,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM hostnames WHERE resource_id = $1", &[&id])
        .map_err(backend)?;
    for h in res.hostnames() {
        if let Some(row) = tx
            .query_opt(
                "SELECT resource_id FROM hostnames WHERE hostname = $1",
                &[h],
            )
            .map_err(backend)?
        {
            return Err(hostname_conflict(res, h, row.get(0)));
        }
        tx.execute(
            "INSERT INTO hostnames (hostname, resource_id) VALUES ($1, $2)",
            &[h, &id],
        )
        .map_err(|e| {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                hostname_conflict(res, h, -1)
            } else {
                backend(e)
            }
        })?;
    }
    Ok(())
}

impl Store for PgStore {
    fn wait_for_change(&self, timeout: std::time::Duration) -> bool {
        use postgres::fallible_iterator::FallibleIterator as _;
        let mut guard = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            match Client::connect(&self.url, NoTls).and_then(|mut c| {
                c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
                Ok(c)
            }) {
                Ok(c) => *guard = Some(c),
                Err(_) => {
                    // The regular version poll covers the time without a listener.
                    std::thread::sleep(timeout);
                    return false;
                }
            }
        }
        let Some(c) = guard.as_mut() else {
            return false;
        };
        let mut notes = c.notifications();
        let woken = matches!(notes.timeout_iter(timeout).next(), Ok(Some(_)));
        // Several changes may have been announced: one re-read of the version covers them all.
        while let Ok(Some(_)) = notes.iter().next() {}
        woken
    }

    fn list(&self) -> Result<Vec<Resource>, StoreError> {
        self.with(|c| {
            c.query("SELECT id, body FROM resources ORDER BY id", &[])
                .map_err(backend)?
                .iter()
                .map(|r| parse_body(r.get(1), r.get(0)))
                .collect()
        })
    }

    fn get(&self, id: u64) -> Result<Resource, StoreError> {
        let id = to_i64(id)?;
        self.with(|c| {
            let row = c
                .query_opt("SELECT body FROM resources WHERE id = $1", &[&id])
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            parse_body(row.get(0), id)
        })
    }

    fn create(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError> {
        self.write(|tx| {
            let version = bump(tx)?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO resources (body, updated_version) VALUES ('{}', $1) RETURNING id",
                    &[&version],
                )
                .map_err(backend)?
                .get(0);
            let body = body_of(res, id as u64);
            tx.execute(
                "UPDATE resources SET body = $1 WHERE id = $2",
                &[&body, &id],
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
                "UPDATE resources SET body = $1, updated_version = $2 WHERE id = $3",
                &[&body, &version, &id],
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
                .execute("DELETE FROM resources WHERE id = $1", &[&id])
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
                &format!("INSERT INTO purges (version, resource_id, body, created_at) VALUES ($1, $2, $3, {NOW})"),
                &[&version, &id, &body],
            )
            .map_err(backend)?;
            audit(tx, actor, "resource.purge", Some(id), &body)?;
            Ok(version as u64)
        })
    }

    fn version(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_one("SELECT version FROM config_version", &[])
                .map(|r| r.get::<_, i64>(0) as u64)
                .map_err(backend)
        })
    }

    fn snapshot(&self, since: u64, epoch: Option<u64>) -> Result<Snapshot, StoreError> {
        let since = to_i64(since)?;
        self.with(|c| {
            // REPEATABLE READ: resources, version and purges come from one moment.
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(backend)?;
            let head = head(&mut tx, epoch)?;
            let delta = head.delta_from(since);
            let (rows, deleted) = match delta {
                Some(from) => (
                    tx.query(
                        "SELECT id, body FROM resources WHERE updated_version > $1 ORDER BY id",
                        &[&from],
                    )
                    .map_err(backend)?,
                    tx.query(
                        "SELECT id FROM deleted_resources WHERE version > $1 ORDER BY id",
                        &[&from],
                    )
                    .map_err(backend)?
                    .iter()
                    .map(|r| r.get::<_, i64>(0) as u64)
                    .collect(),
                ),
                None => (
                    tx.query("SELECT id, body FROM resources ORDER BY id", &[])
                        .map_err(backend)?,
                    Vec::new(),
                ),
            };
            let resources = rows
                .iter()
                .map(|r| parse_body(r.get(1), r.get(0)))
                .collect::<Result<Vec<_>, _>>()?;
            let mut purges = Vec::new();
            if head.purge_everything(since, epoch) {
                purges = everything_purges(&resources, head.version as u64);
            } else if since > 0 {
                for r in tx
                    .query(
                        "SELECT version, resource_id, body FROM purges WHERE version > $1 ORDER BY version",
                        &[&since],
                    )
                    .map_err(backend)?
                {
                    purges.push(Purge {
                        version: r.get::<_, i64>(0) as u64,
                        resource: r.get::<_, i64>(1) as u64,
                        what: serde_json::from_str(r.get(2))
                            .map_err(|e| StoreError::Backend(format!("purge body: {e}")))?,
                    });
                }
            }
            tx.commit().map_err(backend)?;
            Ok(Snapshot {
                version: head.version as u64,
                epoch: head.epoch_for(epoch),
                delta_from: delta.map(|v| v as u64),
                resources,
                deleted,
                purges,
            })
        })
    }

    fn can_patch(&self, since: u64, epoch: u64) -> Result<bool, StoreError> {
        let since = to_i64(since)?;
        self.with(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(backend)?;
            let can = head(&mut tx, Some(epoch))?.delta_from(since).is_some();
            tx.commit().map_err(backend)?;
            Ok(can)
        })
    }

    fn begin_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        let epoch = to_i64(epoch)?;
        self.write(|tx| {
            // The row lock orders this after every change committed before it: an answer of
            // the old epoch never carries a version above the new one's start.
            let version: i64 = tx
                .query_one(
                    "UPDATE config_version SET epoch = $1 RETURNING version",
                    &[&epoch],
                )
                .map_err(backend)?
                .get(0);
            tx.execute(
                "INSERT INTO epochs (epoch, start_version) VALUES ($1, $2)",
                &[&epoch, &version],
            )
            .map(drop)
            .map_err(backend)
        })
    }

    fn token_count(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_one("SELECT count(*) FROM api_tokens", &[])
                .map(|r| r.get::<_, i64>(0) as u64)
                .map_err(backend)
        })
    }

    fn add_token(
        &self,
        name: &str,
        role: Role,
        hash: &str,
        actor: &str,
    ) -> Result<u64, StoreError> {
        self.write(|tx| {
            let id: i64 = tx
                .query_one(
                    &format!("INSERT INTO api_tokens (name, role, hash, created_at) VALUES ($1, $2, $3, {NOW}) RETURNING id"),
                    &[&name, &role.as_str(), &hash],
                )
                .map_err(backend)?
                .get(0);
            audit(tx, actor, "token.create", None, &format!("{name} ({})", role.as_str()))?;
            Ok(id as u64)
        })
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>, StoreError> {
        self.with(|c| {
            c.query_opt(
                "SELECT id, name, role FROM api_tokens WHERE hash = $1",
                &[&hash],
            )
            .map_err(backend)?
            .map(|r| {
                Ok(TokenInfo {
                    id: r.get::<_, i64>(0) as u64,
                    name: r.get(1),
                    role: Role::from_db(r.get(2))?,
                })
            })
            .transpose()
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.with(|c| {
            c.query("SELECT id, name, role FROM api_tokens ORDER BY id", &[])
                .map_err(backend)?
                .iter()
                .map(|r| {
                    Ok(TokenInfo {
                        id: r.get::<_, i64>(0) as u64,
                        name: r.get(1),
                        role: Role::from_db(r.get(2))?,
                    })
                })
                .collect()
        })
    }

    fn delete_token(&self, id: u64, actor: &str) -> Result<(), StoreError> {
        let id = to_i64(id)?;
        self.write(|tx| {
            // Row locks on every API token: two nodes cannot each revoke one of the last two.
            tx.execute(
                "SELECT id FROM api_tokens WHERE role = 'api' FOR UPDATE",
                &[],
            )
            .map_err(backend)?;
            let row = tx
                .query_opt("SELECT name, role FROM api_tokens WHERE id = $1", &[&id])
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            let (name, role): (String, String) = (row.get(0), row.get(1));
            if role == "api" {
                let apis: i64 = tx
                    .query_one("SELECT count(*) FROM api_tokens WHERE role = 'api'", &[])
                    .map_err(backend)?
                    .get(0);
                if apis <= 1 {
                    return Err(crate::last_api_token());
                }
            }
            tx.execute("DELETE FROM api_tokens WHERE id = $1", &[&id])
                .map_err(backend)?;
            audit(tx, actor, "token.delete", None, &format!("{name} ({role})"))
        })
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::from(limit);
        self.with(|c| {
            Ok(c
                .query(
                    "SELECT id, at, actor, action, resource_id, detail FROM audit ORDER BY id DESC LIMIT $1",
                    &[&limit],
                )
                .map_err(backend)?
                .iter()
                .map(|r| AuditEntry {
                    id: r.get::<_, i64>(0) as u64,
                    at: r.get(1),
                    actor: r.get(2),
                    action: r.get(3),
                    resource: r.get::<_, Option<i64>>(4).map(|v| v as u64),
                    detail: r.get(5),
                })
                .collect())
        })
    }
}
