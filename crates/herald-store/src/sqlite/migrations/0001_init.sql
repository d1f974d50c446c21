-- Keys: one row per workspace key. The workspace secret is needed to verify HMAC signatures;
-- bearer API keys are stored only as their SHA-256.
CREATE TABLE credentials (
    workspace_key    TEXT PRIMARY KEY,
    env              TEXT NOT NULL CHECK (env IN ('test', 'live')),
    workspace_secret TEXT NOT NULL,
    api_key_hash     TEXT NOT NULL UNIQUE,
    api_key_prefix   TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);

-- Profiles: properties and identities are JSON documents; timestamps are microseconds since epoch.
CREATE TABLE profiles (
    id          INTEGER PRIMARY KEY,
    env         TEXT NOT NULL CHECK (env IN ('test', 'live')),
    distinct_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    properties  TEXT NOT NULL,
    identities  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    UNIQUE (env, distinct_id)
);
CREATE INDEX profiles_by_created ON profiles (env, created_at, distinct_id);
CREATE INDEX profiles_by_updated ON profiles (env, updated_at, distinct_id);

-- History: append-only; ids never reused, so they order events and serve as cursors.
CREATE TABLE history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    env         TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    request     TEXT NOT NULL,
    changes     TEXT NOT NULL
);
CREATE INDEX history_by_profile ON history (env, distinct_id, id);
