-- The notification log: one row per (trigger, recipient, channel). `seq` orders a listing and
-- is its cursor; `history` is every status with its time (herald_core::message::StatusChange).
CREATE TABLE messages (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    env             TEXT NOT NULL,
    workflow        TEXT NOT NULL,
    category        TEXT,
    distinct_id     TEXT NOT NULL,
    channel         TEXT NOT NULL,
    identity        JSONB NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT,
    provider_id     TEXT,
    history         JSONB NOT NULL,
    attempts        BIGINT NOT NULL,
    trigger_id      TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX messages_by_env ON messages (env, seq);
CREATE INDEX messages_by_user ON messages (env, distinct_id, seq);

-- The durable outbox: a queued message's rendered content and identity until it is sent or
-- fails for good. A claim moves `due_at` to the end of its lease (so an expired lease is simply
-- due again) and bumps `claim`, which tells a current claim from a stale one.
CREATE TABLE outbox (
    message_id TEXT PRIMARY KEY,
    env        TEXT NOT NULL,
    attempt    BIGINT NOT NULL,
    due_at     BIGINT NOT NULL,
    claim      BIGINT NOT NULL DEFAULT 0,
    content    JSONB NOT NULL,
    identity   JSONB NOT NULL
);
CREATE INDEX outbox_by_due ON outbox (due_at);

-- Trigger idempotency keys ($idempotency_key), kept 24 hours, with the first trigger's answer.
CREATE TABLE trigger_keys (
    env         TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT,
    message_ids JSONB NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (env, key)
);
CREATE INDEX trigger_keys_by_time ON trigger_keys (created_at);
