-- A leaner filter index (issue 12). Index rows are keyed by the profile's integer row id and an
-- interned key id instead of repeating (env, distinct_id, key) as text in the table and in two
-- wide indexes: the key id implies the environment, and the table is WITHOUT ROWID with the
-- per-profile access path as its primary key, so it is its own per-profile index. One secondary
-- index serves equality filters and search prefixes in page order.

-- Every (env, key) an index row has used: written once, never deleted or renumbered.
CREATE TABLE index_keys (
    id  INTEGER PRIMARY KEY,
    env TEXT NOT NULL CHECK (env IN ('test', 'live')),
    key TEXT NOT NULL,
    UNIQUE (env, key)
);
INSERT INTO index_keys (env, key) SELECT DISTINCT env, key FROM profile_values ORDER BY env, key;

-- kind: 0 scalar value, 1 list element or channel identity, 2 present (not indexable), 3 search term.
CREATE TABLE profile_index (
    profile_id  INTEGER NOT NULL,
    key_id      INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    text_value  TEXT NOT NULL,
    num_value   REAL,
    time_value  INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (profile_id, key_id, kind, text_value)
) WITHOUT ROWID;
-- Rows of profiles that no longer exist are left behind.
INSERT OR IGNORE INTO profile_index
    (profile_id, key_id, kind, text_value, num_value, time_value, created_at)
SELECT p.id, k.id, v.kind, v.text_value, v.num_value, v.time_value, v.created_at
FROM profile_values v
JOIN profiles p ON p.env = v.env AND p.distinct_id = v.distinct_id
JOIN index_keys k ON k.env = v.env AND k.key = v.key
ORDER BY p.id, k.id, v.kind, v.text_value;
DROP TABLE profile_values;
ALTER TABLE profile_index RENAME TO profile_values;
-- Equality filters and search prefixes, in page order for the default sort: only the kinds they
-- read (values and search terms; not list elements or presence, which are only probed per
-- profile). Queries spell out the same `kind IN (0, 3)` so the planner may use it.
CREATE INDEX profile_values_by_value ON profile_values (key_id, kind, text_value, created_at)
    WHERE kind IN (0, 3);
