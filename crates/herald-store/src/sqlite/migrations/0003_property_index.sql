-- Index rows of every profile (herald_core::index::entries): what list filters run on.
-- kind: 0 scalar value, 1 list element or channel identity, 2 present (not indexable), 3 search term.
CREATE TABLE profile_values (
    env         TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    text_value  TEXT NOT NULL,
    num_value   REAL,
    time_value  INTEGER,
    created_at  INTEGER NOT NULL
);
-- Residual conditions (EXISTS per profile) and removal of a profile's rows.
CREATE INDEX profile_values_by_profile ON profile_values (env, distinct_id, key, kind, text_value);
-- Equality filters and search prefixes, in page order for the default sort.
CREATE INDEX profile_values_by_value ON profile_values (env, key, kind, text_value, created_at, distinct_id);

-- The status filter in page order.
CREATE INDEX profiles_by_status ON profiles (env, status, created_at, distinct_id);

-- The property registry: custom properties discovered or declared, and changed built-ins.
CREATE TABLE properties (
    env           TEXT NOT NULL,
    key           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    label         TEXT NOT NULL,
    description   TEXT NOT NULL,
    show_in_table INTEGER NOT NULL,
    declared_type TEXT,
    declared      INTEGER NOT NULL,
    types_seen    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (env, key)
);

-- How many profiles carry each key ('*': every profile), kept current by every write. PostgreSQL
-- spreads hot keys over shards; SQLite has one writer and uses shard 0.
CREATE TABLE property_counts (
    env   TEXT NOT NULL,
    key   TEXT NOT NULL,
    shard INTEGER NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (env, key, shard)
);
