//! Schema migrations, embedded from `migrations/`: each runs once, in order, in a transaction
//! with its bookkeeping row.

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
];
