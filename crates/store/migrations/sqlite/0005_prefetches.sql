-- Prefetches (POST /cdn/resources/{id}/prefetch), sent to edges with the versions after theirs
-- and forgotten after the same retention as purges (a prefetch missed is only a cold cache).
CREATE TABLE prefetches (
    version INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
