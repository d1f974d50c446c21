-- Keys: one row per workspace key. The workspace secret is needed to verify HMAC signatures;
-- bearer API keys are stored only as their SHA-256.
CREATE TABLE credentials (
    workspace_key    TEXT PRIMARY KEY,
    env              TEXT NOT NULL CHECK (env IN ('test', 'live')),
    workspace_secret TEXT NOT NULL,
    api_key_hash     TEXT NOT NULL UNIQUE,
    api_key_prefix   TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);

-- Profiles: properties and identities are JSONB; timestamps are microseconds since epoch.
CREATE TABLE profiles (
    id          BIGSERIAL PRIMARY KEY,
    env         TEXT NOT NULL CHECK (env IN ('test', 'live')),
    distinct_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    properties  JSONB NOT NULL,
    identities  JSONB NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    UNIQUE (env, distinct_id)
);
CREATE INDEX profiles_by_created ON profiles (env, created_at, distinct_id);
CREATE INDEX profiles_by_updated ON profiles (env, updated_at, distinct_id);

-- History: append-only; ids order events and serve as cursors.
CREATE TABLE history (
    id          BIGSERIAL PRIMARY KEY,
    env         TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor       JSONB NOT NULL,
    action      TEXT NOT NULL,
    request     JSONB NOT NULL,
    changes     JSONB NOT NULL
);
CREATE INDEX history_by_profile ON history (env, distinct_id, id);
