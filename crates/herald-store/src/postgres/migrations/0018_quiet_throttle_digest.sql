-- Quiet hours: a queued message held until the end of its user's quiet hours says until when
-- (its outbox entry is due then).
ALTER TABLE messages ADD COLUMN held_until BIGINT;

-- Digests: a user's triggers of a digest workflow, collected until the digest is due
-- (herald_core::digest). One open digest per (env, user, workflow); a claim closes it (new
-- items open another), leases it by moving `due_at` to the end of the lease and bumps `claim`,
-- as outbox claims do. A sent digest is deleted with its items.
CREATE TABLE digests (
    id          TEXT PRIMARY KEY,
    env         TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    items       BIGINT NOT NULL,
    first_at    BIGINT NOT NULL,
    due_at      BIGINT NOT NULL,
    claim       BIGINT NOT NULL DEFAULT 0,
    closed      BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX digests_open ON digests (env, distinct_id, workflow) WHERE closed = 0;
CREATE INDEX digests_by_due ON digests (due_at);
CREATE INDEX digests_by_user ON digests (env, distinct_id);

CREATE TABLE digest_items (
    digest_id  TEXT NOT NULL,
    n          BIGINT NOT NULL,
    data       JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (digest_id, n)
);

-- Throttles count a user's recent messages of one workflow.
CREATE INDEX messages_by_user_workflow ON messages (env, distinct_id, workflow, created_at);
