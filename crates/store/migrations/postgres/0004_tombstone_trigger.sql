-- The tombstone of a deletion is written by the database, not by the deleting code, so that a
-- node of a version before deltas (during a rolling upgrade, or after a rollback) leaves one
-- too: an edge patched past its deletion would keep the resource. Every deletion raises the
-- version first, in the same transaction, so the version read here is the deletion's.
CREATE FUNCTION resources_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deleted_resources (id, version, deleted_at)
    VALUES (OLD.id, (SELECT version FROM config_version), extract(epoch from now())::bigint)
    ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, deleted_at = EXCLUDED.deleted_at;
    RETURN NULL;
END $$;
CREATE TRIGGER resources_tombstone AFTER DELETE ON resources
    FOR EACH ROW EXECUTE FUNCTION resources_tombstone();
