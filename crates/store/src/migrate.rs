//! Schema migrations, embedded from `migrations/`: each runs once, in order, in a transaction
//! with its bookkeeping row.

use crate::backend::{Arg, Db};
use crate::StoreError;

/// `(version, sql)` for SQLite.
pub const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_purges_forgotten.sql"),
    ),
    (3, include_str!("../migrations/sqlite/0003_deltas.sql")),
    (
        4,
        include_str!("../migrations/sqlite/0004_tombstone_trigger.sql"),
    ),
    (5, include_str!("../migrations/sqlite/0005_prefetches.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_origin_groups.sql"),
    ),
];

/// `(version, sql)` for PostgreSQL.
pub const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../migrations/postgres/0002_purges_forgotten.sql"),
    ),
    (3, include_str!("../migrations/postgres/0003_deltas.sql")),
    (
        4,
        include_str!("../migrations/postgres/0004_tombstone_trigger.sql"),
    ),
    (
        5,
        include_str!("../migrations/postgres/0005_prefetches.sql"),
    ),
    (
        6,
        include_str!("../migrations/postgres/0006_origin_groups.sql"),
    ),
];

/// Runs the migrations of `steps` that `db` (a transaction) has not had yet, in order. `create`
/// makes the bookkeeping table, in the backend's own types.
pub(crate) fn run(db: &mut dyn Db, create: &str, steps: &[(i64, &str)]) -> Result<(), StoreError> {
    db.batch(create)?;
    for &(version, sql) in steps {
        let done = db.row(
            "SELECT version FROM schema_migrations WHERE version = $1",
            &[Arg::Int(version)],
            |_| Ok(()),
        )?;
        if done.is_none() {
            db.batch(sql)?;
            db.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[Arg::Int(version)],
            )?;
        }
    }
    Ok(())
}
