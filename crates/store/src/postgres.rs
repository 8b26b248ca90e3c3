//! The shared backend: PostgreSQL, for several control nodes over one database. The same
//! schema and transactions as SQLite; the version row's lock orders concurrent writers, and the
//! hostname primary key settles races between nodes.

use std::sync::Mutex;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls};

use crate::backend::{Arg, Backend, Db, Dialect, Retention, Row};
use crate::StoreError;

/// The PostgreSQL store.
pub struct PgStore {
    url: String,
    client: Mutex<Option<Client>>,
    /// A second connection that only LISTENs, for [`crate::Store::wait_for_change`].
    listener: Mutex<Option<Client>>,
    retention: Retention,
}

/// The channel every change is announced on, so that other control nodes learn of it at once
/// instead of at their next version poll.
macro_rules! channel {
    () => {
        "tollgate_config"
    };
}

/// Sent by every change that raises the version; delivered to listeners when (and only if)
/// its transaction commits.
const NOTIFY: &str = concat!("NOTIFY ", channel!());
const LISTEN: &str = concat!("LISTEN ", channel!());

fn backend(e: postgres::Error) -> StoreError {
    // The error's Display is just "db error"; the server's message is in the DbError.
    StoreError::Backend(match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    })
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`) and brings the schema up to date.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let store = PgStore {
            url: url.to_owned(),
            client: Mutex::new(None),
            listener: Mutex::new(None),
            retention: Retention::default(),
        };
        store.write(|db| {
            // Several nodes may start at once: one migrates, the others wait for it.
            db.execute("SELECT pg_advisory_xact_lock(7407160)", &[])?;
            crate::migrate::run(
                db,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)",
                crate::migrate::POSTGRES,
            )
        })?;
        Ok(store)
    }

    /// Keeps purge records `secs` instead of [`crate::PURGE_RETENTION_SECS`] (for tests of
    /// edges that were away longer).
    pub fn set_purge_retention(&self, secs: i64) {
        self.retention.set(secs);
    }

    /// Runs `f` on the connection, connecting first if there is none or the last one broke.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(Client::connect(&self.url, NoTls).map_err(backend)?);
        }
        match guard.as_mut() {
            Some(c) => f(c),
            None => Err(StoreError::Backend("no connection".to_owned())),
        }
    }
}

impl Backend for PgStore {
    const DIALECT: Dialect = Dialect {
        now: "extract(epoch from now())::bigint",
        greatest: "GREATEST",
        announce: Some(NOTIFY),
        // Row locks on every API token, held till the transaction ends.
        lock_api_tokens: Some("SELECT id FROM api_tokens WHERE role = 'api' FOR UPDATE"),
    };

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|c| f(&mut Pg(c)))
    }

    fn read_consistent<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|c| {
            // REPEATABLE READ: every statement sees the moment of the first.
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(backend)?;
            let out = f(&mut Pg(&mut tx))?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(backend)?;
            let out = f(&mut Pg(&mut tx))?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
    }

    fn retention(&self) -> i64 {
        self.retention.get()
    }

    fn wait_for_change(&self, timeout: std::time::Duration) -> bool {
        use postgres::fallible_iterator::FallibleIterator as _;
        let mut guard = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            match Client::connect(&self.url, NoTls).and_then(|mut c| {
                c.batch_execute(LISTEN)?;
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
}

/// A client or a transaction as the operations use it.
struct Pg<'c, C>(&'c mut C);

/// The parameters as the driver takes them.
fn params<'a>(args: &'a [Arg<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    static NULL_INT: Option<i64> = None;
    args.iter()
        .map(|a| -> &(dyn ToSql + Sync) {
            match a {
                Arg::Int(v) => v,
                Arg::NullInt => &NULL_INT,
                Arg::Text(s) => s,
            }
        })
        .collect()
}

impl<C: GenericClient> Db for Pg<'_, C> {
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        self.0.execute(sql, &params(args)).map_err(backend)
    }

    fn insert_new(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<bool, StoreError> {
        match self.0.execute(sql, &params(args)) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    fn each(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        row: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for r in self.0.query(sql, &params(args)).map_err(backend)? {
            row(&r)?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.0.batch_execute(sql).map_err(backend)
    }
}

impl Row for postgres::Row {
    fn int(&self, col: usize) -> Result<i64, StoreError> {
        self.try_get(col).map_err(backend)
    }

    fn opt_int(&self, col: usize) -> Result<Option<i64>, StoreError> {
        self.try_get(col).map_err(backend)
    }

    fn text(&self, col: usize) -> Result<&str, StoreError> {
        self.try_get(col).map_err(backend)
    }

    fn opt_text(&self, col: usize) -> Result<Option<&str>, StoreError> {
        self.try_get(col).map_err(backend)
    }
}
