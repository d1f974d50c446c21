-- The dashboard: operator accounts (argon2 PHC hashes, never passwords), their sessions (the
-- cookie's random id kept only as its SHA-256) and the login throttle's counters, per account
-- and per client address. Not per environment: an operator sees both. Versions 12 and 13 are
-- other work's.
CREATE TABLE operators (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE operator_sessions (
    id_hash    TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX operator_sessions_by_username ON operator_sessions (username);
CREATE INDEX operator_sessions_by_expiry ON operator_sessions (expires_at);

-- kind: 'account' (key: a username) or 'address' (key: an IP address).
CREATE TABLE login_attempts (
    kind         TEXT NOT NULL,
    key          TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX login_attempts_by_window ON login_attempts (window_start);
