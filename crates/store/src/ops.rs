//! Every [`Store`] operation, written once for both backends over [`Backend`]. A change runs
//! in one write transaction that raises the snapshot version, writes, claims its hostnames and
//! writes its audit entry; any refusal on the way rolls all of it back.

use std::collections::HashMap;

use tollgate_model::{
    OriginGroup, OriginSource, Prefetch, PrefetchRequest, Purge, PurgeRequest, Resource, Snapshot,
    ValidResource,
};

use crate::backend::Arg::{Int, Text};
use crate::backend::{Arg, Backend, Db, Dialect, Row};
use crate::{
    everything_purges, AuditEntry, Head, Lineage, PurgeRecord, Role, Selected, Selection, Store,
    StoreError, StoredGroup, TokenInfo,
};

impl<B: Backend> Store for B {
    fn list(&self) -> Result<Vec<Resource>, StoreError> {
        self.read_consistent(|db| {
            let list = db.rows("SELECT id, body FROM resources ORDER BY id", &[], resource)?;
            with_groups(db, list)
        })
    }

    fn get(&self, id: u64) -> Result<Resource, StoreError> {
        let id = to_i64(id)?;
        self.read_consistent(|db| {
            let r = load(db, id)?;
            Ok(with_groups(db, vec![r])?.remove(0))
        })
    }

    fn create(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError> {
        self.write(|db| {
            let version = bump(db, &B::DIALECT)?;
            let mut r = res.resource.clone();
            own_group(db, &B::DIALECT, &mut r, None, actor)?;
            let group = group_ref(db, &r)?;
            let id = db.one(
                "INSERT INTO resources (body, updated_version, origin_group_id)
                 VALUES ('{}', $1, $2) RETURNING id",
                &[Int(version), Arg::opt_int(group)],
                |r| r.int(0),
            )?;
            // The body holds the id, which the INSERT has just chosen.
            r.id = id as u64;
            let body = body_of(&r);
            db.execute(
                "UPDATE resources SET body = $1 WHERE id = $2",
                &[Text(&body), Int(id)],
            )?;
            claim_hostnames(db, res, id)?;
            audit(db, &B::DIALECT, actor, "resource.create", Some(id), "")?;
            Ok(with_groups(db, vec![parse_body(&body, id)?])?.remove(0))
        })
    }

    fn update(&self, res: &ValidResource, actor: &str) -> Result<Resource, StoreError> {
        let id = to_i64(res.id)?;
        self.write(|db| {
            let old = load(db, id)?;
            let version = bump(db, &B::DIALECT)?;
            let mut r = res.resource.clone();
            r.created = old.created.clone();
            own_group(db, &B::DIALECT, &mut r, Some(&old), actor)?;
            let group = group_ref(db, &r)?;
            let body = body_of(&r);
            db.execute(
                "UPDATE resources SET body = $1, updated_version = $2, origin_group_id = $3
                 WHERE id = $4",
                &[Text(&body), Int(version), Arg::opt_int(group), Int(id)],
            )?;
            claim_hostnames(db, res, id)?;
            let stored = parse_body(&body, id)?;
            let detail = crate::audit::update_detail(&old, &stored);
            audit(db, &B::DIALECT, actor, "resource.update", Some(id), &detail)?;
            Ok(with_groups(db, vec![stored])?.remove(0))
        })
    }

    fn list_groups(&self) -> Result<Vec<StoredGroup>, StoreError> {
        self.read_consistent(|db| {
            db.rows(
                &format!("SELECT id, body, {IN_USE} FROM origin_groups g ORDER BY id"),
                &[],
                stored_group,
            )
        })
    }

    fn get_group(&self, id: u64) -> Result<StoredGroup, StoreError> {
        let id = to_i64(id).map_err(|_| StoreError::NoOriginGroup)?;
        self.read(|db| load_group(db, id))
    }

    fn create_group(&self, group: &OriginGroup, actor: &str) -> Result<StoredGroup, StoreError> {
        self.write(|db| {
            let group = insert_group(db, &B::DIALECT, group, actor)?;
            Ok(StoredGroup {
                group,
                in_use: false,
            })
        })
    }

    fn update_group(&self, group: &OriginGroup, actor: &str) -> Result<StoredGroup, StoreError> {
        let id = to_i64(group.id).map_err(|_| StoreError::NoOriginGroup)?;
        self.write(|db| {
            load_group(db, id)?;
            let version = bump(db, &B::DIALECT)?;
            db.execute(
                "UPDATE origin_groups SET body = $1 WHERE id = $2",
                &[Text(&group_body(group)), Int(id)],
            )?;
            // Edges take resources, each with its group: those using this one are changed.
            db.execute(
                "UPDATE resources SET updated_version = $1 WHERE origin_group_id = $2",
                &[Int(version), Int(id)],
            )?;
            audit(
                db,
                &B::DIALECT,
                actor,
                "origin_group.update",
                None,
                &format!("origin group {id}"),
            )?;
            load_group(db, id)
        })
    }

    fn delete_group(&self, id: u64, actor: &str) -> Result<(), StoreError> {
        let id = to_i64(id).map_err(|_| StoreError::NoOriginGroup)?;
        self.write(|db| {
            // First: the version row's lock orders this after any write using the group (on
            // PostgreSQL a resource committed meanwhile is then seen here, not left to a
            // foreign key's error).
            bump(db, &B::DIALECT)?;
            let user = db.row(
                "SELECT id FROM resources WHERE origin_group_id = $1 ORDER BY id LIMIT 1",
                &[Int(id)],
                |r| r.int(0),
            )?;
            if let Some(user) = user {
                return Err(StoreError::Conflict {
                    field: "id".into(),
                    message: format!(
                        "origin group {id} is used by resource {user}; give that resource another group first"
                    ),
                });
            }
            if db.execute("DELETE FROM origin_groups WHERE id = $1", &[Int(id)])? == 0 {
                return Err(StoreError::NoOriginGroup);
            }
            audit(db, &B::DIALECT, actor, "origin_group.delete", None, &format!("origin group {id}"))
        })
    }

    fn select(&self, which: &Selection) -> Result<Selected, StoreError> {
        self.read_consistent(|db| {
            let row = |r: &dyn Row| Ok((resource(r)?, r.int(2)? as u64));
            let (list, total) = match which {
                Selection::Id(id) => {
                    let list = db.rows(
                        "SELECT id, body, updated_version FROM resources WHERE id = $1",
                        &[Int(to_i64(*id)?)],
                        row,
                    )?;
                    let n = list.len() as u64;
                    (list, n)
                }
                Selection::Hostname(h) => {
                    let list = db.rows(
                        "SELECT r.id, r.body, r.updated_version FROM resources r
                         JOIN hostnames h ON h.resource_id = r.id WHERE h.hostname = $1",
                        &[Text(h)],
                        row,
                    )?;
                    let n = list.len() as u64;
                    (list, n)
                }
                Selection::Page { offset, limit } => {
                    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                    let list = db.rows(
                        "SELECT id, body, updated_version FROM resources ORDER BY id
                         LIMIT $1 OFFSET $2",
                        &[Int(limit.map_or(i64::MAX, clamp)), Int(clamp(*offset))],
                        row,
                    )?;
                    let total = db.one("SELECT COUNT(*) FROM resources", &[], |r| r.int(0))?;
                    (list, total as u64)
                }
            };
            let (resources, versions): (Vec<Resource>, Vec<u64>) = list.into_iter().unzip();
            let resources = with_groups(db, resources)?
                .into_iter()
                .zip(versions)
                .collect();
            Ok(Selected { resources, total })
        })
    }

    fn purge_log(&self) -> Result<Vec<PurgeRecord>, StoreError> {
        self.read(|db| {
            db.rows(
                "SELECT p.version, p.resource_id, p.body, p.created_at, r.body
                 FROM purges p LEFT JOIN resources r ON r.id = p.resource_id
                 ORDER BY p.version",
                &[],
                |r| {
                    let cname = match r.opt_text(4)? {
                        Some(body) => Some(parse_body(body, r.int(1)?)?.cname),
                        None => None,
                    };
                    let p = purge(r)?;
                    Ok(PurgeRecord {
                        version: p.version,
                        resource: p.resource,
                        what: p.what,
                        created_at: r.int(3)?,
                        cname,
                    })
                },
            )
        })
    }

    fn delete(&self, id: u64, actor: &str) -> Result<(), StoreError> {
        let id = to_i64(id)?;
        self.write(|db| {
            // First: the tombstone trigger reads the version the deletion is given.
            bump(db, &B::DIALECT)?;
            if db.execute("DELETE FROM resources WHERE id = $1", &[Int(id)])? == 0 {
                return Err(StoreError::NotFound);
            }
            forget_old(db, &B::DIALECT, &TOMBSTONES, self.retention())?;
            // Its own tombstone was written by the DELETE (trigger `resources_tombstone`).
            audit(db, &B::DIALECT, actor, "resource.delete", Some(id), "")
        })
    }

    fn purge(&self, id: u64, req: &PurgeRequest, actor: &str) -> Result<u64, StoreError> {
        let id = to_i64(id)?;
        self.write(|db| {
            load(db, id)?;
            let version = bump(db, &B::DIALECT)?;
            // Serialising plain data cannot fail.
            let body = serde_json::to_string(req).unwrap_or_default();
            forget_old(db, &B::DIALECT, &PURGES, self.retention())?;
            db.execute(
                &format!(
                    "INSERT INTO purges (version, resource_id, body, created_at)
                     VALUES ($1, $2, $3, {})",
                    B::DIALECT.now
                ),
                &[Int(version), Int(id), Text(&body)],
            )?;
            audit(db, &B::DIALECT, actor, "resource.purge", Some(id), &body)?;
            Ok(version as u64)
        })
    }

    fn prefetch(&self, id: u64, req: &PrefetchRequest, actor: &str) -> Result<u64, StoreError> {
        let id = to_i64(id)?;
        self.write(|db| {
            load(db, id)?;
            let version = bump(db, &B::DIALECT)?;
            let body = serde_json::to_string(req).unwrap_or_default();
            forget_old(db, &B::DIALECT, &PREFETCHES, self.retention())?;
            db.execute(
                &format!(
                    "INSERT INTO prefetches (version, resource_id, body, created_at)
                     VALUES ($1, $2, $3, {})",
                    B::DIALECT.now
                ),
                &[Int(version), Int(id), Text(&body)],
            )?;
            audit(db, &B::DIALECT, actor, "resource.prefetch", Some(id), &body)?;
            Ok(version as u64)
        })
    }

    fn record(&self, actor: &str, action: &str, id: u64, what: &str) -> Result<(), StoreError> {
        let id = to_i64(id)?;
        self.write(|db| audit(db, &B::DIALECT, actor, action, Some(id), what))
    }

    fn version(&self) -> Result<u64, StoreError> {
        self.read(|db| {
            db.one("SELECT version FROM config_version", &[], |r| {
                Ok(r.int(0)? as u64)
            })
        })
    }

    fn snapshot(&self, since: u64, epoch: Option<u64>) -> Result<Snapshot, StoreError> {
        let since = to_i64(since)?;
        // One read transaction: resources, version and purges agree with each other.
        self.read_consistent(|db| {
            let head = head(db, epoch)?;
            let delta = head.delta_from(since);
            let (resources, deleted) = match delta {
                Some(from) => (
                    db.rows(
                        "SELECT id, body FROM resources WHERE updated_version > $1 ORDER BY id",
                        &[Int(from)],
                        resource,
                    )?,
                    db.rows(
                        "SELECT id FROM deleted_resources WHERE version > $1 ORDER BY id",
                        &[Int(from)],
                        |r| Ok(r.int(0)? as u64),
                    )?,
                ),
                None => (
                    db.rows("SELECT id, body FROM resources ORDER BY id", &[], resource)?,
                    Vec::new(),
                ),
            };
            let resources = with_groups(db, resources)?;
            let purges = if head.purge_everything(since, epoch) {
                everything_purges(&resources, head.version as u64)
            } else if since > 0 {
                db.rows(
                    "SELECT version, resource_id, body FROM purges WHERE version > $1
                     ORDER BY version",
                    &[Int(since)],
                    purge,
                )?
            } else {
                Vec::new()
            };
            // Best effort: an edge that missed some (too far behind) has a colder cache.
            let prefetches = if since > 0 {
                db.rows(
                    "SELECT version, resource_id, body FROM prefetches WHERE version > $1
                     ORDER BY version",
                    &[Int(since)],
                    |r| {
                        Ok(Prefetch {
                            version: r.int(0)? as u64,
                            resource: r.int(1)? as u64,
                            what: serde_json::from_str(r.text(2)?)
                                .map_err(|e| StoreError::Backend(format!("prefetch body: {e}")))?,
                        })
                    },
                )?
            } else {
                Vec::new()
            };
            Ok(Snapshot {
                version: head.version as u64,
                epoch: head.epoch_for(epoch),
                delta_from: delta.map(|v| v as u64),
                resources,
                deleted,
                purges,
                prefetches,
            })
        })
    }

    fn can_patch(&self, since: u64, epoch: u64) -> Result<bool, StoreError> {
        let since = to_i64(since)?;
        self.read_consistent(|db| Ok(head(db, Some(epoch))?.delta_from(since).is_some()))
    }

    fn begin_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        let epoch = to_i64(epoch)?;
        self.write(|db| {
            // The version row's lock (PostgreSQL) or the write lock (SQLite) orders this after
            // every change committed before it: an answer of the old epoch never carries a
            // version above the new one's start.
            let version = db.one(
                "UPDATE config_version SET epoch = $1 RETURNING version",
                &[Int(epoch)],
                |r| r.int(0),
            )?;
            db.execute(
                "INSERT INTO epochs (epoch, start_version) VALUES ($1, $2)",
                &[Int(epoch), Int(version)],
            )
            .map(drop)
        })
    }

    fn token_count(&self) -> Result<u64, StoreError> {
        self.read(|db| {
            db.one("SELECT count(*) FROM api_tokens", &[], |r| {
                Ok(r.int(0)? as u64)
            })
        })
    }

    fn add_token(
        &self,
        name: &str,
        role: Role,
        hash: &str,
        actor: &str,
    ) -> Result<u64, StoreError> {
        self.write(|db| {
            let id = db.one(
                &format!(
                    "INSERT INTO api_tokens (name, role, hash, created_at)
                     VALUES ($1, $2, $3, {}) RETURNING id",
                    B::DIALECT.now
                ),
                &[Text(name), Text(role.as_str()), Text(hash)],
                |r| r.int(0),
            )?;
            let detail = format!("{name} ({})", role.as_str());
            audit(db, &B::DIALECT, actor, "token.create", None, &detail)?;
            Ok(id as u64)
        })
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>, StoreError> {
        self.read(|db| {
            db.row(
                "SELECT id, name, role FROM api_tokens WHERE hash = $1",
                &[Text(hash)],
                token,
            )
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(|db| {
            db.rows(
                "SELECT id, name, role FROM api_tokens ORDER BY id",
                &[],
                token,
            )
        })
    }

    fn delete_token(&self, id: u64, actor: &str) -> Result<(), StoreError> {
        let id = to_i64(id)?;
        self.write(|db| {
            if let Some(lock) = B::DIALECT.lock_api_tokens {
                db.rows(lock, &[], |_| Ok(()))?;
            }
            let (name, role) = db
                .row(
                    "SELECT name, role FROM api_tokens WHERE id = $1",
                    &[Int(id)],
                    |r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned())),
                )?
                .ok_or(StoreError::NotFound)?;
            if role == Role::Api.as_str() {
                let apis = db.one(
                    "SELECT count(*) FROM api_tokens WHERE role = 'api'",
                    &[],
                    |r| r.int(0),
                )?;
                if apis <= 1 {
                    return Err(last_api_token());
                }
            }
            db.execute("DELETE FROM api_tokens WHERE id = $1", &[Int(id)])?;
            let detail = format!("{name} ({role})");
            audit(db, &B::DIALECT, actor, "token.delete", None, &detail)
        })
    }

    fn wait_for_change(&self, timeout: std::time::Duration) -> bool {
        Backend::wait_for_change(self, timeout)
    }

    fn audit(&self, limit: u32, resource: Option<u64>) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = Int(i64::from(limit));
        // One statement per case: `$2 IS NULL` leaves PostgreSQL a parameter of no known type.
        let (sql, args) = match resource {
            None => (
                "SELECT id, at, actor, action, resource_id, detail FROM audit
                 ORDER BY id DESC LIMIT $1",
                vec![limit],
            ),
            Some(id) => (
                "SELECT id, at, actor, action, resource_id, detail FROM audit
                 WHERE resource_id = $1 ORDER BY id DESC LIMIT $2",
                vec![Int(i64::try_from(id).unwrap_or(i64::MAX)), limit],
            ),
        };
        self.read(|db| {
            db.rows(sql, &args, |r| {
                Ok(AuditEntry {
                    id: r.int(0)? as u64,
                    at: r.int(1)?,
                    actor: r.text(2)?.to_owned(),
                    action: r.text(3)?.to_owned(),
                    resource: r.opt_int(4)?.map(|v| v as u64),
                    detail: r.text(5)?.to_owned(),
                })
            })
        })
    }
}

/// Raises the snapshot version, as every change to resources or purges does, and announces
/// the change (delivered when, and only if, the transaction commits).
fn bump(db: &mut dyn Db, dialect: &Dialect) -> Result<i64, StoreError> {
    if let Some(announce) = dialect.announce {
        db.batch(announce)?;
    }
    db.one(
        "UPDATE config_version SET version = version + 1 RETURNING version",
        &[],
        |r| r.int(0),
    )
}

fn audit(
    db: &mut dyn Db,
    dialect: &Dialect,
    actor: &str,
    action: &str,
    resource: Option<i64>,
    detail: &str,
) -> Result<(), StoreError> {
    db.execute(
        &format!(
            "INSERT INTO audit (at, actor, action, resource_id, detail)
             VALUES ({}, $1, $2, $3, $4)",
            dialect.now
        ),
        &[
            Text(actor),
            Text(action),
            Arg::opt_int(resource),
            Text(detail),
        ],
    )
    .map(drop)
}

fn load(db: &mut dyn Db, id: i64) -> Result<Resource, StoreError> {
    db.row(
        "SELECT body FROM resources WHERE id = $1",
        &[Int(id)],
        |r| parse_body(r.text(0)?, id),
    )?
    .ok_or(StoreError::NotFound)
}

/// A resource from a row of `id, body`.
fn resource(r: &dyn Row) -> Result<Resource, StoreError> {
    parse_body(r.text(1)?, r.int(0)?)
}

/// A purge from a row of `version, resource_id, body`.
fn purge(r: &dyn Row) -> Result<Purge, StoreError> {
    Ok(Purge {
        version: r.int(0)? as u64,
        resource: r.int(1)? as u64,
        what: serde_json::from_str(r.text(2)?)
            .map_err(|e| StoreError::Backend(format!("purge body: {e}")))?,
    })
}

/// A token from a row of `id, name, role`.
fn token(r: &dyn Row) -> Result<TokenInfo, StoreError> {
    Ok(TokenInfo {
        id: r.int(0)? as u64,
        name: r.text(1)?.to_owned(),
        role: Role::from_db(r.text(2)?)?,
    })
}

/// Records kept for the purge retention so that edges that were away can catch up: when they
/// go, the newest version among them is remembered in `watermark`, and an edge from before it
/// is sent everything (`Head`).
struct Kept {
    table: &'static str,
    /// Column holding the record's Unix time.
    at: &'static str,
    /// Column of `config_version` remembering the newest version dropped (`None`: nothing
    /// depends on what was dropped).
    watermark: Option<&'static str>,
}

/// Purge records: an edge from before one that was dropped purges everything.
const PURGES: Kept = Kept {
    table: "purges",
    at: "created_at",
    watermark: Some("purges_forgotten_through"),
};

/// Prefetches: forgotten like purges, with no watermark (a missed prefetch is a colder cache,
/// not a wrong one).
const PREFETCHES: Kept = Kept {
    table: "prefetches",
    at: "created_at",
    watermark: None,
};

/// Deletion tombstones: an edge from before one that was dropped gets every resource.
const TOMBSTONES: Kept = Kept {
    table: "deleted_resources",
    at: "deleted_at",
    watermark: Some("deletes_forgotten_through"),
};

/// Drops the records of `kept` older than `retention` seconds, remembering the newest version
/// among them.
fn forget_old(
    db: &mut dyn Db,
    dialect: &Dialect,
    kept: &Kept,
    retention: i64,
) -> Result<(), StoreError> {
    let Kept {
        table,
        at,
        watermark,
    } = kept;
    let Dialect { now, greatest, .. } = dialect;
    if let Some(watermark) = watermark {
        db.execute(
            &format!(
                "UPDATE config_version SET {watermark} = {greatest}({watermark},
                COALESCE((SELECT max(version) FROM {table} WHERE {at} < {now} - $1), 0))"
            ),
            &[Int(retention)],
        )?;
    }
    db.execute(
        &format!("DELETE FROM {table} WHERE {at} < {now} - $1"),
        &[Int(retention)],
    )
    .map(drop)
}

/// The version row, with where `edge_epoch` stands in the history.
fn head(db: &mut dyn Db, edge_epoch: Option<u64>) -> Result<Head, StoreError> {
    let (version, purges_forgotten, deletes_forgotten, epoch) = db.one(
        "SELECT version, purges_forgotten_through, deletes_forgotten_through, epoch
         FROM config_version",
        &[],
        |r| Ok((r.int(0)?, r.int(1)?, r.int(2)?, r.int(3)?)),
    )?;
    // An epoch beyond the backends' integers is no epoch of this database, as 0 is not.
    let e = edge_epoch.and_then(|e| i64::try_from(e).ok()).unwrap_or(0);
    let seq = db.row("SELECT seq FROM epochs WHERE epoch = $1", &[Int(e)], |r| {
        r.int(0)
    })?;
    let next_start = match seq {
        None => None,
        Some(seq) => db.row(
            "SELECT start_version FROM epochs WHERE seq > $1 ORDER BY seq LIMIT 1",
            &[Int(seq)],
            |r| r.int(0),
        )?,
    };
    Ok(Head {
        version,
        purges_forgotten,
        deletes_forgotten,
        epoch,
        lineage: lineage(edge_epoch, seq, next_start),
    })
}

/// The lineage of `edge_epoch` given its row in `epochs` (`None`: not there) and the start
/// version of the epoch after it (`None`: it is the last).
fn lineage(edge_epoch: Option<u64>, seq: Option<i64>, next_start: Option<i64>) -> Lineage {
    match (edge_epoch, seq, next_start) {
        (None | Some(0), _, _) | (_, None, _) => Lineage::Unknown,
        (_, Some(_), None) => Lineage::Current,
        (_, Some(_), Some(end)) => Lineage::EndedAt(end),
    }
}

/// Gives resource `id` the hostnames of `res`, refusing one that another resource holds. The
/// check names the other resource; the hostnames' primary key settles a race between nodes
/// that both passed it.
fn claim_hostnames(db: &mut dyn Db, res: &ValidResource, id: i64) -> Result<(), StoreError> {
    db.execute("DELETE FROM hostnames WHERE resource_id = $1", &[Int(id)])?;
    for h in res.hostnames() {
        let taken = db.row(
            "SELECT resource_id FROM hostnames WHERE hostname = $1",
            &[Text(h)],
            |r| r.int(0),
        )?;
        if let Some(other) = taken {
            return Err(hostname_conflict(res, h, other));
        }
        if !db.insert_new(
            "INSERT INTO hostnames (hostname, resource_id) VALUES ($1, $2)",
            &[Text(h), Int(id)],
        )? {
            return Err(hostname_conflict(res, h, -1));
        }
    }
    Ok(())
}

/// Ids are `u64` in the API and signed in both databases; one beyond them names no resource.
fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::NotFound)
}

fn parse_body(body: &str, id: i64) -> Result<Resource, StoreError> {
    let mut r: Resource = serde_json::from_str(body)
        .map_err(|e| StoreError::Backend(format!("resource {id}: unreadable body: {e}")))?;
    r.id = id as u64;
    Ok(r)
}

/// A resource's stored body: without its group resolved, nor the `origin` shown from it (the
/// group may change; the resource then shows the new one).
fn body_of(r: &Resource) -> String {
    let mut r = r.clone();
    if r.origin_group.is_some() {
        r.origin = None;
    }
    r.origin_group_detail = None;
    // Serialising plain data cannot fail.
    serde_json::to_string(&r).unwrap_or_default()
}

/// `1` when a resource uses group `g`, as a column of a query over `origin_groups g`.
const IN_USE: &str =
    "CAST((CASE WHEN EXISTS (SELECT 1 FROM resources r WHERE r.origin_group_id = g.id)
     THEN 1 ELSE 0 END) AS BIGINT)";

fn group_body(g: &OriginGroup) -> String {
    serde_json::to_string(g).unwrap_or_default()
}

/// A group from a row of `id, body, in_use`.
fn stored_group(r: &dyn Row) -> Result<StoredGroup, StoreError> {
    let id = r.int(0)?;
    let mut group: OriginGroup = serde_json::from_str(r.text(1)?)
        .map_err(|e| StoreError::Backend(format!("origin group {id}: unreadable body: {e}")))?;
    group.id = id as u64;
    Ok(StoredGroup {
        group,
        in_use: r.int(2)? != 0,
    })
}

fn load_group(db: &mut dyn Db, id: i64) -> Result<StoredGroup, StoreError> {
    db.row(
        &format!("SELECT id, body, {IN_USE} FROM origin_groups g WHERE id = $1"),
        &[Int(id)],
        stored_group,
    )?
    .ok_or(StoreError::NoOriginGroup)
}

fn insert_group(
    db: &mut dyn Db,
    dialect: &Dialect,
    group: &OriginGroup,
    actor: &str,
) -> Result<OriginGroup, StoreError> {
    // No version: edges see a group only with a resource using it.
    let id = db.one(
        "INSERT INTO origin_groups (body) VALUES ('{}') RETURNING id",
        &[],
        |r| r.int(0),
    )?;
    let mut g = group.clone();
    g.id = id as u64;
    db.execute(
        "UPDATE origin_groups SET body = $1 WHERE id = $2",
        &[Text(&group_body(&g)), Int(id)],
    )?;
    audit(
        db,
        dialect,
        actor,
        "origin_group.create",
        None,
        &format!("origin group {id}"),
    )?;
    Ok(g)
}

/// Gcore's shortcut: a resource given `origin` and no `originGroup` gets a group of that one
/// source, named after its cname: the group it has (`old`'s), when that already fetches first
/// from that origin (a PUT or PATCH naming the origin the resource shows changes nothing),
/// else a new one.
fn own_group(
    db: &mut dyn Db,
    dialect: &Dialect,
    r: &mut Resource,
    old: Option<&Resource>,
    actor: &str,
) -> Result<(), StoreError> {
    let (None, Some(origin)) = (r.origin_group, &r.origin) else {
        return Ok(());
    };
    if let Some(kept) = old.and_then(|o| o.origin_group) {
        let current = i64::try_from(kept)
            .ok()
            .map(|id| load_group(db, id))
            .transpose()
            .or_else(|e| match e {
                StoreError::NoOriginGroup => Ok(None),
                e => Err(e),
            })?;
        if current.is_some_and(|g| g.group.primary() == Some(origin.as_str())) {
            r.origin_group = Some(kept);
            return Ok(());
        }
    }
    // A hostname is ASCII: cut at any byte, the name stays within a group name's 255.
    let mut name = format!("{}_origin_group", r.cname);
    name.truncate(255);
    let group = OriginGroup {
        id: 0,
        name,
        sources: vec![OriginSource {
            source: origin.clone(),
            backup: false,
            enabled: true,
            host_header_override: None,
            origin_type: None,
            config: None,
        }],
        use_next: false,
        proxy_next_upstream: tollgate_model::default_next_upstream(),
        auth_type: "none".into(),
        auth: None,
        path: String::new(),
    };
    // The resource was validated with its `origin`, the group must be as valid (edges check it).
    group.validate().map_err(|errs| StoreError::Conflict {
        field: "origin".into(),
        message: errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    r.origin_group = Some(insert_group(db, dialect, &group, actor)?.id);
    Ok(())
}

/// The group `r` refers to, which must exist (checked in the writing transaction: a group
/// deleted meanwhile is not referred to).
fn group_ref(db: &mut dyn Db, r: &Resource) -> Result<Option<i64>, StoreError> {
    let Some(id) = r.origin_group else {
        return Ok(None);
    };
    let missing = || StoreError::Conflict {
        field: "originGroup".into(),
        message: format!("no origin group {id}"),
    };
    let id = i64::try_from(id).map_err(|_| missing())?;
    db.row(
        "SELECT id FROM origin_groups WHERE id = $1",
        &[Int(id)],
        |r| r.int(0),
    )?
    .ok_or_else(missing)?;
    Ok(Some(id))
}

/// `list` with each resource's group resolved: `originGroup_detail`, and `origin` its first
/// source. Every group is read once.
fn with_groups(db: &mut dyn Db, mut list: Vec<Resource>) -> Result<Vec<Resource>, StoreError> {
    if list.iter().all(|r| r.origin_group.is_none()) {
        return Ok(list);
    }
    let groups: HashMap<u64, OriginGroup> = db
        .rows(
            "SELECT id, body, CAST(0 AS BIGINT) FROM origin_groups g",
            &[],
            stored_group,
        )?
        .into_iter()
        .map(|s| (s.group.id, s.group))
        .collect();
    for r in &mut list {
        if let Some(g) = r.origin_group.and_then(|id| groups.get(&id)) {
            r.origin = g.primary().map(str::to_owned);
            r.origin_group_detail = Some(g.clone());
        }
    }
    Ok(list)
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
