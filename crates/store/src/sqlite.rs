//! The embedded backend: one SQLite file in WAL mode with `synchronous = FULL`, so a change is
//! on disk before the API answers 200 and survives a crash of the process or the machine.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, CachedStatement, Connection, TransactionBehavior};

use crate::backend::{Arg, Backend, Db, Dialect, Retention, Row};
use crate::StoreError;

/// The SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    retention: Retention,
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
        // Every statement the store runs stays prepared (there are about 35; rusqlite keeps 16
        // by default), so that none is parsed again on each use.
        conn.set_prepared_statement_cache_capacity(64);
        let store = SqliteStore {
            conn: Mutex::new(conn),
            retention: Retention::default(),
        };
        store.write(|db| {
            crate::migrate::run(
                db,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
                crate::migrate::SQLITE,
            )
        })?;
        Ok(store)
    }

    /// Keeps purge records `secs` instead of [`crate::PURGE_RETENTION_SECS`] (for tests of
    /// edges that were away longer).
    pub fn set_purge_retention(&self, secs: i64) {
        self.retention.set(secs);
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (rusqlite rolls back
        // on drop), so the connection is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for SqliteStore {
    const DIALECT: Dialect = Dialect {
        now: "unixepoch()",
        greatest: "max",
        announce: None,
        // A write transaction is IMMEDIATE: it holds the database's one write lock.
        lock_api_tokens: None,
    };

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut Lite(&self.conn()))
    }

    fn read_consistent<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        // Deferred: the first read takes a snapshot of the WAL that the later ones share.
        let tx = conn.transaction().map_err(backend)?;
        let out = f(&mut Lite(&tx))?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        // IMMEDIATE takes the write lock at BEGIN, where the busy timeout applies; a deferred
        // transaction that read first could fail with SQLITE_BUSY at its first write, when
        // another process wrote meanwhile, and no waiting would help it.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&mut Lite(&tx))?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    fn retention(&self) -> i64 {
        self.retention.get()
    }
}

/// The connection (or a transaction on it, which derefs to it) as the operations use it.
struct Lite<'c>(&'c Connection);

impl Lite<'_> {
    /// The statement for `sql`, from the connection's cache, with its parameters numbered as
    /// the shared SQL numbers them (see [`crate::backend`]).
    fn prepare(&self, sql: &str) -> Result<CachedStatement<'_>, StoreError> {
        let stmt = self.0.prepare_cached(sql).map_err(backend)?;
        for i in 1..=stmt.parameter_count() {
            let n = stmt
                .parameter_name(i)
                .and_then(|n| n.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok());
            if n != Some(i) {
                return Err(StoreError::Backend(format!(
                    "parameter {i} of {sql:?} is not ${i}: SQLite would bind it out of order"
                )));
            }
        }
        Ok(stmt)
    }
}

impl Db for Lite<'_> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let n = self
            .prepare(sql)?
            .execute(params_from_iter(args))
            .map_err(backend)?;
        Ok(n as u64)
    }

    fn insert_new(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<bool, StoreError> {
        match self.prepare(sql)?.execute(params_from_iter(args)) {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    fn each(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        row: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.prepare(sql)?;
        let mut rows = stmt.query(params_from_iter(args)).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            row(r)?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.0.execute_batch(sql).map_err(backend)
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Int(v) => ValueRef::Integer(v),
            Arg::NullInt => ValueRef::Null,
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, col: usize) -> Result<i64, StoreError> {
        self.get(col).map_err(backend)
    }

    fn opt_int(&self, col: usize) -> Result<Option<i64>, StoreError> {
        self.get(col).map_err(backend)
    }

    fn text(&self, col: usize) -> Result<&str, StoreError> {
        self.get_ref(col)
            .map_err(backend)?
            .as_str()
            .map_err(|e| StoreError::Backend(format!("column {col}: {e}")))
    }

    fn opt_text(&self, col: usize) -> Result<Option<&str>, StoreError> {
        match self.get_ref(col).map_err(backend)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            v => v
                .as_str()
                .map(Some)
                .map_err(|e| StoreError::Backend(format!("column {col}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_parameters_bind_by_their_number() {
        let conn = Connection::open_in_memory().unwrap();
        let db: &mut dyn Db = &mut Lite(&conn);
        let got = db
            .one(
                "SELECT $1, $2, $1 + $2",
                &[Arg::Int(1), Arg::Int(20)],
                |r| Ok((r.int(0)?, r.int(1)?, r.int(2)?)),
            )
            .unwrap();
        assert_eq!(got, (1, 20, 21));
        // SQLite numbers `$2` first here, and would bind 1 to it: refused instead.
        let err = db
            .one("SELECT $2, $1", &[Arg::Int(1), Arg::Int(2)], |r| r.int(0))
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("out of order")),
            "{err:?}"
        );
    }
}
