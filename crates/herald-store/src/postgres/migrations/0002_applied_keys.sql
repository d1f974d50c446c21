-- Idempotency keys of applied edits (identity events' $insert_id), kept for 24 hours, so a client
-- that retries after a lost reply does not apply the same edit twice.
CREATE TABLE applied_keys (
    env        TEXT NOT NULL,
    key        TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (env, key)
);
CREATE INDEX applied_keys_by_time ON applied_keys (applied_at);
