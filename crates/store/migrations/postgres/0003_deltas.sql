-- Deltas for edges. A deleted resource leaves a tombstone, so that an edge asking for what
-- changed after a version learns of the deletion; tombstones go after the purge retention, and
-- the newest version forgotten is remembered (an edge from before it gets every resource).
CREATE TABLE deleted_resources (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL
);
CREATE INDEX deleted_resources_version ON deleted_resources (version);
CREATE INDEX resources_updated_version ON resources (updated_version);
ALTER TABLE config_version ADD COLUMN deletes_forgotten_through BIGINT NOT NULL DEFAULT 0;
-- Set anew by every control plane start (see `epochs` below): a delta is given only to an edge
-- whose state is part of this database's history, so a restored backup is never patched.
ALTER TABLE config_version ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
-- Every epoch, and the version at which it began. An edge of an earlier epoch holds a state of
-- this database's history, and can be patched, if its version is at most the version at which
-- the next epoch began (a restored backup began a new epoch at the version it was taken).
CREATE TABLE epochs (
    seq BIGSERIAL PRIMARY KEY,
    epoch BIGINT NOT NULL UNIQUE,
    start_version BIGINT NOT NULL
);
