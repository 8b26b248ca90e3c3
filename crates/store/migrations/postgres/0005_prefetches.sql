-- Prefetches (POST /cdn/resources/{id}/prefetch), sent to edges with the versions after theirs
-- and forgotten after the same retention as purges (a prefetch missed is only a cold cache).
CREATE TABLE prefetches (
    version BIGINT PRIMARY KEY,
    resource_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
