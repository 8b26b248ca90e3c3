-- Resources are kept as their Gcore JSON; hostnames get their own table so that the database,
-- not the application, guarantees one resource per hostname.
CREATE TABLE resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    updated_version INTEGER NOT NULL
);
CREATE TABLE hostnames (
    hostname TEXT PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE
);
-- One row: the snapshot version, raised by every change in the same transaction.
CREATE TABLE config_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
CREATE TABLE purges (
    version INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('api', 'edge')),
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_id INTEGER,
    detail TEXT NOT NULL
);
