//! What a backend gives the operations of [`crate::ops`], which are written once for both:
//! statements on a connection or in a transaction ([`Db`]), three ways of running them (plain
//! reads, a consistent read, a write transaction: [`Backend`]), and the few pieces of SQL that
//! differ ([`Dialect`]).
//!
//! Statements number their parameters `$1`, `$2`, ... in the order they first appear:
//! PostgreSQL's own syntax, and in SQLite a parameter named `$1`, `$2`, ..., which it numbers in
//! order of first appearance (the SQLite backend refuses a statement where that order differs
//! from the numbering, rather than bind its values to the wrong places).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::{StoreError, PURGE_RETENTION_SECS};

/// A statement parameter. The stored values are only integers and text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    /// An integer column's NULL (PostgreSQL checks a parameter's type even when it is NULL).
    NullInt,
    Text(&'a str),
}

impl Arg<'_> {
    pub(crate) fn opt_int(v: Option<i64>) -> Arg<'static> {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

/// One result row. A column of another type than asked, or NULL where a value is asked, is an
/// error (unreadable data), never a panic.
pub(crate) trait Row {
    fn int(&self, col: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, col: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, col: usize) -> Result<&str, StoreError>;
    fn opt_text(&self, col: usize) -> Result<Option<&str>, StoreError>;
}

/// A connection, or a transaction on one.
pub(crate) trait Db {
    /// Runs a statement that returns no rows; the number of rows it changed.
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError>;
    /// Runs an INSERT; `false` when a primary or unique key already holds its value (which, in
    /// PostgreSQL, leaves the transaction failed: the caller returns an error).
    fn insert_new(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<bool, StoreError>;
    /// Runs a query, handing each row to `row` in turn.
    fn each(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        row: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Runs statements without parameters (migrations, `NOTIFY`) in one round trip.
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
}

impl dyn Db + '_ {
    /// Every row, each mapped by `f`.
    pub(crate) fn rows<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.each(sql, args, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, mapped by `f`, if there is one (the statements asking for one select by
    /// a key, or with `LIMIT 1`).
    pub(crate) fn row<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut out = None;
        self.each(sql, args, &mut |r| {
            if out.is_none() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The row of a statement that always returns one (`count(*)`, the version row).
    pub(crate) fn one<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnMut(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.row(sql, args, f)?
            .ok_or_else(|| StoreError::Backend(format!("no row from {sql:?}")))
    }
}

/// The SQL that differs between the backends.
pub(crate) struct Dialect {
    /// The current Unix time in seconds, by the database's clock (shared by every node).
    pub now: &'static str,
    /// The greater of two values (SQLite's `max` takes several; PostgreSQL's is an aggregate).
    pub greatest: &'static str,
    /// Run when a change raises the version, to tell other nodes once it commits.
    pub announce: Option<&'static str>,
    /// Run first when revoking a token, to keep two nodes from each revoking one of the last
    /// two API tokens; `None` where a write transaction already shuts out every other writer.
    pub lock_api_tokens: Option<&'static str>,
}

/// A store's connection handling; [`crate::Store`] is implemented once for every backend.
pub(crate) trait Backend: Send + Sync {
    const DIALECT: Dialect;

    /// Runs `f` on a connection, each statement on its own.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Runs `f` in a read transaction: every statement sees the same moment.
    fn read_consistent<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Runs `f` in a write transaction, committed if it returns `Ok` and rolled back otherwise,
    /// so that a refused change leaves nothing written.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// How long purge records and tombstones are kept, in seconds.
    fn retention(&self) -> i64;

    /// See [`crate::Store::wait_for_change`]: without notifications, the timeout is waited out.
    fn wait_for_change(&self, timeout: Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }
}

/// A store's purge retention, [`PURGE_RETENTION_SECS`] unless a test sets another.
pub(crate) struct Retention(AtomicI64);

impl Default for Retention {
    fn default() -> Retention {
        Retention(AtomicI64::new(PURGE_RETENTION_SECS))
    }
}

impl Retention {
    pub(crate) fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, secs: i64) {
        self.0.store(secs, Ordering::Relaxed);
    }
}
