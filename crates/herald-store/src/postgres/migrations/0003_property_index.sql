-- Index rows of every profile (herald_core::index::entries): what list filters run on.
-- kind: 0 scalar value, 1 list element or channel identity, 2 present (not indexable), 3 search term.
-- text_value compares bytewise (COLLATE "C"), as in SQLite, so prefix ranges mean prefixes.
CREATE TABLE profile_values (
    env         TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    kind        SMALLINT NOT NULL,
    text_value  TEXT COLLATE "C" NOT NULL,
    num_value   DOUBLE PRECISION,
    time_value  BIGINT,
    created_at  BIGINT NOT NULL
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
    show_in_table BOOLEAN NOT NULL,
    declared_type TEXT,
    declared      BOOLEAN NOT NULL,
    types_seen    SMALLINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (env, key)
);

-- How many profiles carry each key ('*': every profile), kept current by every write. Hot keys
-- are spread over 16 shards (by distinct_id) so concurrent writers rarely wait on one row.
CREATE TABLE property_counts (
    env   TEXT NOT NULL,
    key   TEXT NOT NULL,
    shard SMALLINT NOT NULL,
    n     BIGINT NOT NULL,
    PRIMARY KEY (env, key, shard)
);
