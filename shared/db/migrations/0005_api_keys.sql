-- API, version 5: API processes cache keys in memory; they drop the cache when a key is
-- revoked, deleted or changed, so a revocation still takes effect at once on every
-- replica. (last_used_at is written once a minute per key and notifies nothing.)
CREATE FUNCTION flowcron_notify_api_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flowcron_api_keys', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_changed
    AFTER UPDATE OF revoked_at, role, org_id, key_hash OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION flowcron_notify_api_keys();
