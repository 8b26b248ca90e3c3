-- Resources are kept as their Gcore JSON; hostnames get their own table so that the database,
-- not the application, guarantees one resource per hostname.
CREATE TABLE resources (
    id BIGSERIAL PRIMARY KEY,
    body TEXT NOT NULL,
    updated_version BIGINT NOT NULL
);
CREATE TABLE hostnames (
    hostname TEXT PRIMARY KEY,
    resource_id BIGINT NOT NULL REFERENCES resources (id) ON DELETE CASCADE
);
-- One row: the snapshot version, raised by every change in the same transaction.
CREATE TABLE config_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
CREATE TABLE purges (
    version BIGINT PRIMARY KEY,
    resource_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('api', 'edge')),
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_id BIGINT,
    detail TEXT NOT NULL
);
