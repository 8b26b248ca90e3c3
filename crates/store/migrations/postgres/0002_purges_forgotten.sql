-- The newest purge version whose record was dropped after the retention: an edge asking from
-- an older version may have missed it, and is told to purge everything instead.
ALTER TABLE config_version ADD COLUMN purges_forgotten_through BIGINT NOT NULL DEFAULT 0;
