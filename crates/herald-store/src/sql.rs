//! The statements both backends run, written once. They use SQLite's numbered placeholders
//! (`?1`); [`for_dialect`] turns them into PostgreSQL's (`$1`). A statement lives here when its
//! text is the same on both databases; what really differs (PostgreSQL's `UNNEST` bulk writes and
//! row locks, SQLite's single-row index upkeep) stays in the backend's own module.
//!
//! Values are bound the same way on both: timestamps as microseconds (`BIGINT`), JSON documents as
//! text on SQLite and `JSONB` on PostgreSQL (the bound type decides, not the statement).

use crate::query::Dialect;
use std::borrow::Cow;

/// `sql` with its placeholders in `dialect`'s form. Statements here hold no `?` but placeholders.
pub(crate) fn for_dialect(dialect: Dialect, sql: &'static str) -> Cow<'static, str> {
    match dialect {
        Dialect::Sqlite => Cow::Borrowed(sql),
        Dialect::Postgres => Cow::Owned(sql.replace('?', "$")),
    }
}

/// How many arguments `sql` takes (its highest placeholder number).
pub(crate) fn arity(sql: &str) -> usize {
    sql.split('?')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}

// ---- migrations ----

pub(crate) const MIGRATIONS_CURRENT: &str =
    "SELECT COALESCE(MAX(version), 0) FROM herald_migrations";
pub(crate) const MIGRATIONS_RECORD: &str =
    "INSERT INTO herald_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)";
/// `version` is `INTEGER` on SQLite, `BIGINT` on PostgreSQL: both hold 64 bits, and both
/// spellings mean that on their database.
pub(crate) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS herald_migrations \
     (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

// ---- profiles ----

/// The columns a profile is read from, in the order [`crate::rows::profile`] reads them.
macro_rules! profile_columns {
    () => {
        "distinct_id, status, properties, identities, created_at, updated_at, version, preferences"
    };
}

pub(crate) const SELECT_PROFILE: &str = concat!(
    "SELECT ",
    profile_columns!(),
    " FROM profiles WHERE env = ?1 AND distinct_id = ?2"
);

/// The stored profiles among the ids in the array `$2` (PostgreSQL only: SQLite reads them one by
/// one on a single connection, which costs no round trips).
pub(crate) const SELECT_PROFILES_IN: &str = concat!(
    "SELECT ",
    profile_columns!(),
    " FROM profiles WHERE env = $1 AND distinct_id = ANY($2)"
);

/// [`SELECT_PROFILE`] holding the row until commit (PostgreSQL only: SQLite's single writer
/// already serialises edits).
pub(crate) const SELECT_PROFILE_FOR_UPDATE: &str = concat!(
    "SELECT ",
    profile_columns!(),
    " FROM profiles WHERE env = ?1 AND distinct_id = ?2 FOR UPDATE"
);

/// The profiles of env `?1` among the ids of array `?2` (sorted, without repeats), each with
/// its row id last (column 8), held until commit and locked in the order of `?2`, so two
/// transactions locking overlapping sets on any nodes cannot deadlock (PostgreSQL only: bulk
/// deletes and batches of edits). One index probe per id, whatever the planner knows: the
/// locking subquery is never flattened into a join, while `distinct_id = ANY(?2)` on a table
/// without statistics was planned as a scan of the whole environment (23 ms at 60,000
/// profiles, 0.7 ms so).
pub(crate) const SELECT_PROFILES_FOR_UPDATE: &str = concat!(
    "SELECT p.* FROM UNNEST(CAST(?2 AS TEXT[])) AS u(id), LATERAL (SELECT ",
    profile_columns!(),
    ", id FROM profiles WHERE env = ?1 AND distinct_id = u.id FOR UPDATE) p"
);

/// Every profile with its environment last (column 8), for indexing at upgrade.
pub(crate) const SELECT_ALL_PROFILES: &str =
    concat!("SELECT ", profile_columns!(), ", env FROM profiles");

/// A new profile; an existing id is left alone (0 rows: another writer created it first).
/// Arguments: env, id, status, properties, identities, created_at, updated_at, version, preferences.
pub(crate) const INSERT_PROFILE: &str = "INSERT INTO profiles \
     (env, distinct_id, status, properties, identities, created_at, updated_at, version, preferences) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (env, distinct_id) DO NOTHING";

/// The next state of a stored profile, if it is still at version `?8`.
pub(crate) const UPDATE_PROFILE: &str = "UPDATE profiles SET status = ?3, properties = ?4, \
     identities = ?5, updated_at = ?6, version = ?7, preferences = ?9 \
     WHERE env = ?1 AND distinct_id = ?2 AND version = ?8";

/// Rows that are one user's, all erased with the user (`?1` env, `?2` distinct_id, `?3` the id
/// its tombstone is filed under; each statement takes the first [`arity`] of them). Add a
/// per-user table here and both backends' `erase_user` erase it, for delete and merge alike.
/// (The index rows and counters go through the backend's index upkeep first.)
pub(crate) const ERASE_USER: &[&str] = &[
    // The outbox entries first: they are found through the messages.
    "DELETE FROM outbox WHERE message_id IN \
     (SELECT id FROM messages WHERE env = ?1 AND distinct_id = ?2)",
    "DELETE FROM messages WHERE env = ?1 AND distinct_id = ?2",
    "DELETE FROM profiles WHERE env = ?1 AND distinct_id = ?2",
    // Its history, and an earlier tombstone of the same id.
    "DELETE FROM history WHERE env = ?1 AND distinct_id IN (?2, ?3)",
    "DELETE FROM inbox_items WHERE env = ?1 AND distinct_id = ?2",
    "DELETE FROM digest_items WHERE digest_id IN \
     (SELECT id FROM digests WHERE env = ?1 AND distinct_id = ?2)",
    "DELETE FROM digests WHERE env = ?1 AND distinct_id = ?2",
];

// ---- migration 8: re-filing legacy tombstones, repairing index rows (see `crate::migrate`) ----

/// Tombstones (`deleted`, `merged_into`): the only events filed under a hash.
pub(crate) const TOMBSTONES: &str = "SELECT id, env, distinct_id, action, request FROM history \
     WHERE action IN ('deleted', 'merged_into') ORDER BY id";
/// Arguments: event id, the id it is filed under, request, changes.
pub(crate) const REFILE_TOMBSTONE: &str =
    "UPDATE history SET distinct_id = ?2, request = ?3, changes = ?4 WHERE id = ?1";
/// Keeps the newest tombstone filed under `?2` (latest `at`, then latest written), as deleting
/// twice does.
pub(crate) const DROP_OLDER_TOMBSTONES: &str = "DELETE FROM history \
     WHERE env = ?1 AND distinct_id = ?2 AND action IN ('deleted', 'merged_into') \
     AND id <> (SELECT id FROM history WHERE env = ?1 AND distinct_id = ?2 \
     AND action IN ('deleted', 'merged_into') ORDER BY at DESC, id DESC LIMIT 1)";
/// Up to `?3` profiles of env `?1` after id `?2`, in id order; columns as
/// [`crate::rows::profile`] reads them.
pub(crate) const PROFILES_AFTER: &str = concat!(
    "SELECT ",
    profile_columns!(),
    " FROM profiles WHERE env = ?1 AND distinct_id > ?2 ORDER BY distinct_id LIMIT ?3"
);
/// The index rows of env `?1`'s profiles from id `?2` to `?3`: distinct_id, key, kind, text,
/// num, time.
pub(crate) const INDEX_ROWS_BETWEEN: &str = "SELECT p.distinct_id, k.key, v.kind, v.text_value, \
     v.num_value, v.time_value FROM profiles p JOIN profile_values v ON v.profile_id = p.id \
     JOIN index_keys k ON k.id = v.key_id \
     WHERE p.env = ?1 AND p.distinct_id >= ?2 AND p.distinct_id <= ?3";
/// The index rows of env `?1`'s profile `?2`.
pub(crate) const DELETE_INDEX_ROWS: &str = "DELETE FROM profile_values \
     WHERE profile_id = (SELECT id FROM profiles WHERE env = ?1 AND distinct_id = ?2)";
/// Interns key `?2` of env `?1` for index rows: a known key is left alone (and takes no number
/// from PostgreSQL's sequence). Key ids are never deleted or reused, so one seen stays valid.
pub(crate) const INTERN_INDEX_KEY: &str = "INSERT INTO index_keys (env, key) SELECT ?1, ?2 \
     WHERE NOT EXISTS (SELECT 1 FROM index_keys WHERE env = ?1 AND key = ?2) ON CONFLICT DO NOTHING";
/// An index row of env `?1`'s profile `?2` under key `?3` (interned first by
/// [`INTERN_INDEX_KEY`]). Arguments: env, id, key, kind, text, num, time, the profile's
/// created_at.
pub(crate) const INSERT_INDEX_ROW: &str = "INSERT INTO profile_values \
     (profile_id, key_id, kind, text_value, num_value, time_value, created_at) \
     SELECT p.id, k.id, CAST(?4 AS SMALLINT), CAST(?5 AS TEXT), CAST(?6 AS DOUBLE PRECISION), \
     CAST(?7 AS BIGINT), CAST(?8 AS BIGINT) \
     FROM profiles p JOIN index_keys k ON k.env = p.env AND k.key = ?3 \
     WHERE p.env = ?1 AND p.distinct_id = ?2";

// ---- idempotency keys ----

pub(crate) const SELECT_APPLIED_KEY: &str =
    "SELECT fingerprint FROM applied_keys WHERE env = ?1 AND key = ?2";
/// The applied keys of env `?1` among the keys of array `?2`, with their fingerprints: one index
/// probe per key (`OFFSET 0` keeps the subquery from being flattened into a join the planner
/// might answer with a scan, as [`SELECT_PROFILES_FOR_UPDATE`] explains).
pub(crate) const SELECT_APPLIED_KEYS: &str = "SELECT k.key, k.fingerprint \
     FROM UNNEST(CAST(?2 AS TEXT[])) AS u(key), LATERAL (SELECT key, fingerprint FROM applied_keys \
     WHERE env = ?1 AND key = u.key OFFSET 0) k";
/// 0 rows: another transaction recorded the key first (PostgreSQL retries and then sees it).
pub(crate) const RECORD_APPLIED_KEY: &str = "INSERT INTO applied_keys \
     (env, key, applied_at, fingerprint) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING";
pub(crate) const PURGE_APPLIED_KEYS: &str = "DELETE FROM applied_keys WHERE applied_at < ?1";

// ---- history ----

/// Names an actor (kind, id) once; the events that follow point at it. Run before
/// [`INSERT_EVENT`] in the same transaction.
pub(crate) const INSERT_ACTOR: &str = "INSERT INTO history_actors (kind, ident) VALUES (?1, ?2) \
     ON CONFLICT (kind, ident) DO NOTHING";

/// Arguments: env, distinct_id, at, the actor's kind and id (named by [`INSERT_ACTOR`] first:
/// an actor not named is a `NOT NULL` failure, never an event without one), action, request,
/// changes (the form of `herald_core::history::pack`).
pub(crate) const INSERT_EVENT: &str = "INSERT INTO history \
     (env, distinct_id, at, actor_id, action, request, changes) VALUES (?1, ?2, ?3, \
     (SELECT id FROM history_actors WHERE kind = ?4 AND ident = ?5), ?6, ?7, ?8)";

/// The id of an actor named by [`INSERT_ACTOR`] (kind, id).
pub(crate) const SELECT_ACTOR: &str =
    "SELECT id FROM history_actors WHERE kind = ?1 AND ident = ?2";
/// [`INSERT_EVENT`] with the actor's id already known ([`SELECT_ACTOR`] in the same
/// transaction). Arguments: env, distinct_id, at, actor id, action, request, changes.
pub(crate) const INSERT_EVENT_BY_ACTOR_ID: &str = "INSERT INTO history \
     (env, distinct_id, at, actor_id, action, request, changes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// A page of one user's history and tombstone, newest first; columns as [`crate::rows::event`]
/// reads them. Arguments: env, id, below this event id, limit, tombstone id.
pub(crate) const HISTORY_PAGE: &str =
    "SELECT h.id, h.at, a.kind, a.ident, h.action, h.request, h.changes, h.distinct_id \
     FROM history h LEFT JOIN history_actors a ON a.id = h.actor_id \
     WHERE h.env = ?1 AND h.distinct_id IN (?2, ?5) AND h.id < ?3 ORDER BY h.id DESC LIMIT ?4";

// ---- credentials and server secrets ----

/// `SELECT` of the credential columns in the order [`crate::rows::credentials`] reads them, then `$tail`.
macro_rules! select_credentials {
    ($tail:literal) => {
        concat!(
            "SELECT workspace_key, env, workspace_secret, api_key_hash, api_key_prefix, created_at \
             FROM credentials",
            $tail
        )
    };
}
pub(crate) const INSERT_CREDENTIALS: &str = "INSERT INTO credentials (workspace_key, env, \
     workspace_secret, api_key_hash, api_key_prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
pub(crate) const DELETE_CREDENTIALS: &str = "DELETE FROM credentials WHERE workspace_key = ?1";
pub(crate) const LIST_CREDENTIALS: &str =
    select_credentials!(" ORDER BY created_at, workspace_key");
pub(crate) const CREDENTIALS_BY_WORKSPACE_KEY: &str =
    select_credentials!(" WHERE workspace_key = ?1");
pub(crate) const CREDENTIALS_BY_API_KEY_HASH: &str =
    select_credentials!(" WHERE api_key_hash = ?1");

pub(crate) const INSERT_SECRET: &str =
    "INSERT INTO server_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING";
pub(crate) const SELECT_SECRET: &str = "SELECT value FROM server_secrets WHERE name = ?1";
pub(crate) const REPLACE_SECRET: &str =
    "UPDATE server_secrets SET value = ?3 WHERE name = ?1 AND value = ?2";

// ---- property registry ----

pub(crate) const LIST_PROPERTY_RECORDS: &str = "SELECT key, label, description, show_in_table, \
     declared_type, declared, types_seen, created_at FROM properties WHERE env = ?1 ORDER BY key";
/// Arguments: env, key, kind, label, description, show_in_table, declared_type, declared,
/// types_seen, created_at.
pub(crate) const INSERT_PROPERTY_RECORD: &str = "INSERT INTO properties (env, key, kind, label, \
     description, show_in_table, declared_type, declared, types_seen, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (env, key) DO NOTHING";
pub(crate) const PUT_PROPERTY_RECORD: &str = "INSERT INTO properties (env, key, kind, label, \
     description, show_in_table, declared_type, declared, types_seen, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (env, key) DO UPDATE SET \
     label = excluded.label, description = excluded.description, show_in_table = excluded.show_in_table";
/// Adds the value types `?3` to a record that lacks one of them (no write, no lock otherwise).
pub(crate) const ADD_TYPES_SEEN: &str = "UPDATE properties SET types_seen = types_seen | ?3 \
     WHERE env = ?1 AND key = ?2 AND (types_seen | ?3) <> types_seen";
pub(crate) const DELETE_PROPERTY_RECORD: &str =
    "DELETE FROM properties WHERE env = ?1 AND key = ?2";
/// The presence counter of one key, summed over its shards.
pub(crate) const COUNTER: &str = "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM property_counts \
     WHERE env = ?1 AND key = ?2";
pub(crate) const PROPERTY_COUNTS: &str = "SELECT key, CAST(SUM(n) AS BIGINT) FROM property_counts \
     WHERE env = ?1 GROUP BY key";

// ---- listing ----

/// The range of profile row ids, for sampling an estimated count.
pub(crate) const PROFILE_ID_RANGE: &str = "SELECT COALESCE((SELECT MIN(id) FROM profiles), 0), \
     COALESCE((SELECT MAX(id) FROM profiles), 0)";

// ---- categories ----

pub(crate) const LIST_CATEGORIES: &str = "SELECT doc FROM categories WHERE env = ?1 ORDER BY slug";
pub(crate) const GET_CATEGORY: &str = "SELECT doc FROM categories WHERE env = ?1 AND slug = ?2";
/// Arguments: env, slug, document, now.
pub(crate) const INSERT_CATEGORY: &str = "INSERT INTO categories \
     (env, slug, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
     ON CONFLICT (env, slug) DO NOTHING";
pub(crate) const REPLACE_CATEGORY: &str = "INSERT INTO categories \
     (env, slug, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
     ON CONFLICT (env, slug) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at";
pub(crate) const DELETE_CATEGORY: &str = "DELETE FROM categories WHERE env = ?1 AND slug = ?2";

// ---- workflows (events go with them: replaced on a put, cascaded on a delete) ----

pub(crate) const LIST_WORKFLOWS: &str = "SELECT doc FROM workflows WHERE env = ?1 ORDER BY slug";
pub(crate) const GET_WORKFLOW: &str = "SELECT doc FROM workflows WHERE env = ?1 AND slug = ?2";
/// Arguments: env, slug, document, now.
pub(crate) const INSERT_WORKFLOW: &str = "INSERT INTO workflows \
     (env, slug, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
     ON CONFLICT (env, slug) DO NOTHING";
pub(crate) const REPLACE_WORKFLOW: &str = "INSERT INTO workflows \
     (env, slug, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
     ON CONFLICT (env, slug) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at";
pub(crate) const DELETE_WORKFLOW: &str = "DELETE FROM workflows WHERE env = ?1 AND slug = ?2";
/// The digests of workflow `?2` in env `?1` (their items first), deleted with it: a digest
/// waiting for a count would otherwise wait forever, or join a new workflow of the same slug.
pub(crate) const DELETE_WORKFLOW_DIGESTS: &[&str] = &[
    "DELETE FROM digest_items WHERE digest_id IN \
     (SELECT id FROM digests WHERE env = ?1 AND workflow = ?2)",
    "DELETE FROM digests WHERE env = ?1 AND workflow = ?2",
];
pub(crate) const DELETE_WORKFLOW_EVENTS: &str =
    "DELETE FROM workflow_events WHERE env = ?1 AND slug = ?2";
/// Arguments: env, slug, event.
pub(crate) const INSERT_WORKFLOW_EVENT: &str =
    "INSERT INTO workflow_events (env, slug, event) VALUES (?1, ?2, ?3)";
pub(crate) const WORKFLOWS_FOR_EVENT: &str = "SELECT w.doc FROM workflow_events e \
     JOIN workflows w ON w.env = e.env AND w.slug = e.slug \
     WHERE e.env = ?1 AND e.event = ?2 ORDER BY w.slug";
// ---- provider configurations (one per env and channel) ----

pub(crate) const LIST_PROVIDER_CONFIGS: &str =
    "SELECT channel, config, updated_at FROM provider_configs WHERE env = ?1 ORDER BY channel";
pub(crate) const GET_PROVIDER_CONFIG: &str =
    "SELECT channel, config, updated_at FROM provider_configs WHERE env = ?1 AND channel = ?2";
/// Arguments: env, channel, config, now. Returns the row's `created_at`: `now` when inserted.
pub(crate) const PUT_PROVIDER_CONFIG: &str = "INSERT INTO provider_configs \
     (env, channel, config, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
     ON CONFLICT (env, channel) DO UPDATE SET config = excluded.config, \
     updated_at = excluded.updated_at RETURNING created_at";
pub(crate) const DELETE_PROVIDER_CONFIG: &str =
    "DELETE FROM provider_configs WHERE env = ?1 AND channel = ?2";

// ---- messages and the outbox ----

/// The columns a message is read from, in the order [`crate::rows::message`] reads them.
macro_rules! message_columns {
    () => {
        "seq, id, env, workflow, category, distinct_id, channel, identity, status, reason, \
         provider_id, history, attempts, trigger_id, idempotency_key, created_at, seen_at, \
         clicked_at, held_until"
    };
}

/// PostgreSQL: the claim of outbox entry `?1`, locked, after the columns of its message (no row
/// when either is gone); the claim is column [`CLAIMED_MESSAGE_CLAIM`].
pub(crate) const CLAIMED_MESSAGE_FOR_UPDATE: &str = concat!(
    "WITH entry AS (SELECT claim FROM outbox WHERE message_id = ?1 FOR UPDATE) SELECT ",
    message_columns!(),
    ", entry.claim FROM entry, messages WHERE messages.id = ?1"
);
pub(crate) const CLAIMED_MESSAGE_CLAIM: usize = 19;

/// The message columns, for the listing built in [`crate::query::message_page`].
pub(crate) const MESSAGE_COLUMNS: &str = message_columns!();

/// Arguments: id, env, workflow, category, distinct_id, channel, identity, status, reason,
/// provider_id, history, attempts, trigger_id, idempotency_key, created_at (also updated_at),
/// held_until. 0 rows: the id exists.
pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages (id, env, workflow, category, \
     distinct_id, channel, identity, status, reason, provider_id, history, attempts, trigger_id, \
     idempotency_key, created_at, updated_at, held_until) VALUES \
     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16) \
     ON CONFLICT DO NOTHING";
/// Arguments: id, status, reason, provider_id, history, attempts, updated_at.
pub(crate) const UPDATE_MESSAGE: &str = "UPDATE messages SET status = ?2, reason = ?3, \
     provider_id = ?4, history = ?5, attempts = ?6, updated_at = ?7 WHERE id = ?1";
pub(crate) const GET_MESSAGE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE env = ?1 AND id = ?2"
);
/// PostgreSQL: [`GET_MESSAGE`], locked until the transaction ends (a late answer's
/// read-modify-write).
pub(crate) const GET_MESSAGE_FOR_UPDATE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE env = ?1 AND id = ?2 FOR UPDATE"
);
/// Arguments: env, provider_id. The latest message the provider knows by that id (index
/// `messages_by_provider_id`).
pub(crate) const MESSAGE_BY_PROVIDER_ID: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE env = ?1 AND provider_id = ?2 ORDER BY seq DESC LIMIT 1"
);
/// A message by id alone, for the worker (the outbox entry names its environment).
pub(crate) const MESSAGE_BY_ID: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE id = ?1"
);
/// Arguments: message_id, env, attempt, due_at, content, identity, waits_for (a waiting
/// fallback's predecessor, due at [`WAITING_DUE`]), gate_wait and gate_until (a smart step's
/// gate, see [`gate_columns`]).
pub(crate) const INSERT_ENTRY: &str = "INSERT INTO outbox \
     (message_id, env, attempt, due_at, content, identity, waits_for, gate_wait, gate_until) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// A gate as its two outbox columns: the wait in seconds and `until`'s wire name.
pub(crate) fn gate_columns(
    gate: Option<herald_core::engagement::Gate>,
) -> (Option<i64>, Option<&'static str>) {
    match gate {
        Some(g) => (Some(g.wait.num_seconds()), Some(g.until.as_str())),
        None => (None, None),
    }
}
/// The `due_at` of a waiting fallback's entry: 9999-12-31T23:59:59.999999Z, later than any
/// claim's clock (and still a time chrono reads).
pub(crate) const WAITING_DUE: i64 = 253_402_300_799_999_999;

/// The `due_at` an outbox entry is written with: never due while it waits for another message.
pub(crate) fn entry_due(waits: bool, due: chrono::DateTime<chrono::Utc>) -> i64 {
    if waits {
        WAITING_DUE
    } else {
        herald_core::profile::micros(due)
    }
}
/// The entry waiting for message `?1`, if any (a chain has one next channel), with its gate
/// columns (as [`crate::rows::waiter`] reads them).
pub(crate) const WAITER: &str =
    "SELECT message_id, gate_wait, gate_until FROM outbox WHERE waits_for = ?1";
/// Waiting entry `?1`'s turn: due at `?2`, waiting for nothing, its gate (if any) dropped.
pub(crate) const WAKE_ENTRY: &str = "UPDATE outbox SET waits_for = NULL, due_at = ?2, \
     gate_wait = NULL, gate_until = NULL WHERE message_id = ?1";
/// A smart step `?1` whose predecessor was sent: due at `?2` (the end of its wait), its gate
/// kept for the claim to check.
pub(crate) const DELAY_ENTRY: &str =
    "UPDATE outbox SET waits_for = NULL, due_at = ?2 WHERE message_id = ?1";
/// Entry `?1`'s gate opened: it is sent as any other.
pub(crate) const OPEN_GATE_ENTRY: &str =
    "UPDATE outbox SET gate_wait = NULL, gate_until = NULL WHERE message_id = ?1";
/// The engagement of trigger `?2`'s messages in env `?1` but message `?3` (columns as
/// [`crate::rows::engagement`] reads them).
pub(crate) const TRIGGER_ENGAGEMENT: &str = "SELECT seen_at, clicked_at FROM messages \
     WHERE env = ?1 AND trigger_id = ?2 AND id <> ?3";
/// Records engagement on message `?1`: `?2` seen_at, `?3` clicked_at, each kept if already set
/// (the first time wins).
pub(crate) const ENGAGE_MESSAGE: &str = "UPDATE messages SET \
     seen_at = COALESCE(seen_at, CAST(?2 AS BIGINT)), \
     clicked_at = COALESCE(clicked_at, CAST(?3 AS BIGINT)) WHERE id = ?1";
/// The user `?2`'s messages in env `?1` whose inbox item is now seen (only message `?4`'s when
/// not null) are seen at `?3`, unless they were before.
pub(crate) const SEEN_FROM_INBOX: &str = "UPDATE messages SET seen_at = ?3 \
     WHERE env = ?1 AND distinct_id = ?2 AND seen_at IS NULL AND id IN \
     (SELECT message_id FROM inbox_items WHERE env = ?1 AND distinct_id = ?2 \
     AND seen_at IS NOT NULL AND (CAST(?4 AS TEXT) IS NULL OR message_id = ?4))";
/// The columns of an entry, in the order [`crate::rows::entry`] reads them.
pub(crate) const ENTRY_COLUMNS: &str =
    "message_id, env, attempt, due_at, content, identity, claim, gate_wait, gate_until";
/// The claim token of an entry, if it is still there.
pub(crate) const ENTRY_CLAIM: &str = "SELECT claim FROM outbox WHERE message_id = ?1";
/// Leases entry `?1` until `?2`, if it is still due at `?3`.
pub(crate) const CLAIM_ENTRY: &str = "UPDATE outbox SET due_at = ?2, claim = claim + 1 \
     WHERE message_id = ?1 AND due_at <= ?3";
pub(crate) const DELETE_ENTRY: &str = "DELETE FROM outbox WHERE message_id = ?1";
/// The next attempt of entry `?1`, due at `?2`.
pub(crate) const RETRY_ENTRY: &str =
    "UPDATE outbox SET attempt = attempt + 1, due_at = ?2 WHERE message_id = ?1";
/// Gives entry `?1` back, due at `?2`, if claim `?3` is still its current one.
pub(crate) const RELEASE_ENTRY: &str =
    "UPDATE outbox SET due_at = ?2 WHERE message_id = ?1 AND claim = ?3";

pub(crate) const SELECT_TRIGGER_KEY: &str =
    "SELECT fingerprint, message_ids FROM trigger_keys WHERE env = ?1 AND key = ?2";
/// Arguments: env, key, fingerprint, message_ids, created_at. 0 rows: recorded first elsewhere.
pub(crate) const RECORD_TRIGGER_KEY: &str = "INSERT INTO trigger_keys \
     (env, key, fingerprint, message_ids, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT DO NOTHING";
pub(crate) const PURGE_TRIGGER_KEYS: &str = "DELETE FROM trigger_keys WHERE created_at < ?1";

// ---- throttles and digests ----

/// The triggers of workflow `?3` to user `?2` of env `?1` created at or after `?4` that were not
/// skipped on every channel (`herald_core::throttle`): distinct trigger ids of its messages
/// that are not skipped.
pub(crate) const THROTTLE_COUNT: &str = "SELECT CAST(COUNT(DISTINCT trigger_id) AS BIGINT) \
     FROM messages WHERE env = ?1 AND distinct_id = ?2 AND workflow = ?3 AND created_at >= ?4 \
     AND status <> 'skipped'";
/// Opens a digest (id `?1`) of workflow `?4` for user `?3` of env `?2`, first item at `?5`,
/// unless one is open already (0 rows). Due at [`WAITING_DUE`] until its first item is counted.
pub(crate) const OPEN_DIGEST: &str = "INSERT INTO digests \
     (id, env, distinct_id, workflow, items, first_at, due_at, claim, closed) \
     VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, 0, 0) \
     ON CONFLICT (env, distinct_id, workflow) WHERE closed = 0 DO NOTHING";
/// Counts one more item on the open digest of (env `?1`, user `?2`, workflow `?3`): its id, its
/// item count after this one, and its first item's time.
pub(crate) const GROW_DIGEST: &str = "UPDATE digests SET items = items + 1 \
     WHERE env = ?1 AND distinct_id = ?2 AND workflow = ?3 AND closed = 0 \
     RETURNING id, items, first_at";
/// Digest `?1` is due at `?2`.
pub(crate) const DIGEST_DUE: &str = "UPDATE digests SET due_at = ?2 WHERE id = ?1";
/// Item number `?2` (from 1) of digest `?1`: `?3` (its data and `$channels`), collected at `?4`.
pub(crate) const INSERT_DIGEST_ITEM: &str =
    "INSERT INTO digest_items (digest_id, n, data, created_at) VALUES (?1, ?2, ?3, ?4)";
/// The columns of a claimed digest, in the order [`crate::rows::digest`] reads them.
pub(crate) const DIGEST_COLUMNS: &str = "id, env, distinct_id, workflow, first_at, claim";
/// Leases digest `?1` until `?2` and closes it, if it is still due at `?3`.
pub(crate) const CLAIM_DIGEST: &str = "UPDATE digests SET due_at = ?2, claim = claim + 1, \
     closed = 1 WHERE id = ?1 AND due_at <= ?3";
/// Digest `?1`'s items ([`herald_core::digest::Item`]), in the order collected.
pub(crate) const DIGEST_ITEMS: &str =
    "SELECT data FROM digest_items WHERE digest_id = ?1 ORDER BY n";
/// The claim token of digest `?1`, if it is still there.
pub(crate) const DIGEST_CLAIM: &str = "SELECT claim FROM digests WHERE id = ?1";
/// A sent (or dropped) digest: its items, then itself.
pub(crate) const DELETE_DIGEST: &[&str] = &[
    "DELETE FROM digest_items WHERE digest_id = ?1",
    "DELETE FROM digests WHERE id = ?1",
];

// ---- the in-app inbox ----

/// The columns an inbox item is read from, in the order [`crate::rows::inbox_item`] reads them.
macro_rules! inbox_columns {
    () => {
        "seq, message_id, distinct_id, workflow, category, title, body, action_url, created_at, \
         seen_at, read_at, archived_at"
    };
}

/// The item of message `?2` of env `?1`, for the message's user, workflow and category; a
/// message already delivered keeps its item (0 rows), and so does a message that does not exist.
/// Arguments: env, message id, title, body, action_url, created_at.
pub(crate) const INSERT_INBOX_ITEM: &str = "INSERT INTO inbox_items (message_id, env, \
     distinct_id, workflow, category, title, body, action_url, created_at) \
     SELECT id, env, distinct_id, workflow, category, CAST(?3 AS TEXT), CAST(?4 AS TEXT), \
     CAST(?5 AS TEXT), CAST(?6 AS BIGINT) FROM messages \
     WHERE env = ?1 AND id = ?2 ON CONFLICT (message_id) DO NOTHING";
pub(crate) const INBOX_ITEM: &str = concat!(
    "SELECT ",
    inbox_columns!(),
    " FROM inbox_items WHERE env = ?1 AND message_id = ?2"
);
/// One user's item by message id (`?3`).
pub(crate) const USER_INBOX_ITEM: &str = concat!(
    "SELECT ",
    inbox_columns!(),
    " FROM inbox_items WHERE env = ?1 AND distinct_id = ?2 AND message_id = ?3"
);
/// A page of user `?2`'s items of env `?1` below cursor `?3`, newest first, up to `?7`; each
/// filter (`?4` seen, `?5` read, `?6` archived: whether the mark is set) applies when not null,
/// as `herald_core::inbox::InboxFilter::matches` says.
pub(crate) const INBOX_PAGE: &str = concat!(
    "SELECT ",
    inbox_columns!(),
    " FROM inbox_items WHERE env = ?1 AND distinct_id = ?2 AND seq < ?3 \
     AND (CAST(?4 AS BOOLEAN) IS NULL OR (seen_at IS NOT NULL) = CAST(?4 AS BOOLEAN)) \
     AND (CAST(?5 AS BOOLEAN) IS NULL OR (read_at IS NOT NULL) = CAST(?5 AS BOOLEAN)) \
     AND (CAST(?6 AS BOOLEAN) IS NULL OR (archived_at IS NOT NULL) = CAST(?6 AS BOOLEAN)) \
     ORDER BY seq DESC LIMIT ?7"
);
/// User `?2`'s counts (`herald_core::inbox::InboxCounts`): total, unseen, unread, archived.
pub(crate) const INBOX_COUNTS: &str = "SELECT CAST(COUNT(*) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN seen_at IS NULL AND archived_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN read_at IS NULL AND archived_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN archived_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
     FROM inbox_items WHERE env = ?1 AND distinct_id = ?2";
/// Applies a mark's `herald_core::inbox::Effect` to user `?2`'s items of env `?1` (only the
/// item of message `?7` when it is not null), at time `?6`: `?3`, `?4`, `?5` are the
/// `Stamp::code`s for seen, read and archived (0 keep, 1 set unless set, 2 clear). Only items it
/// changes are written, so the row count is what changed.
pub(crate) const MARK_INBOX: &str = "UPDATE inbox_items SET \
     seen_at = CASE CAST(?3 AS BIGINT) WHEN 1 THEN COALESCE(seen_at, ?6) WHEN 2 THEN NULL ELSE seen_at END, \
     read_at = CASE CAST(?4 AS BIGINT) WHEN 1 THEN COALESCE(read_at, ?6) WHEN 2 THEN NULL ELSE read_at END, \
     archived_at = CASE CAST(?5 AS BIGINT) WHEN 1 THEN COALESCE(archived_at, ?6) WHEN 2 THEN NULL ELSE archived_at END \
     WHERE env = ?1 AND distinct_id = ?2 AND (CAST(?7 AS TEXT) IS NULL OR message_id = ?7) \
     AND ((CAST(?3 AS BIGINT) = 1 AND seen_at IS NULL) OR (CAST(?3 AS BIGINT) = 2 AND seen_at IS NOT NULL) \
     OR (CAST(?4 AS BIGINT) = 1 AND read_at IS NULL) OR (CAST(?4 AS BIGINT) = 2 AND read_at IS NOT NULL) \
     OR (CAST(?5 AS BIGINT) = 1 AND archived_at IS NULL) OR (CAST(?5 AS BIGINT) = 2 AND archived_at IS NOT NULL))";

// ---- dashboard operators, sessions and login throttling ----

pub(crate) const INSERT_OPERATOR: &str = "INSERT INTO operators (username, password_hash, \
     created_at) VALUES (?1, ?2, ?3) ON CONFLICT (username) DO NOTHING";
/// Columns in the order [`crate::rows::operator`] reads them.
pub(crate) const LIST_OPERATORS: &str =
    "SELECT username, password_hash, created_at FROM operators ORDER BY username";
pub(crate) const GET_OPERATOR: &str =
    "SELECT username, password_hash, created_at FROM operators WHERE username = ?1";
pub(crate) const SET_OPERATOR_PASSWORD: &str =
    "UPDATE operators SET password_hash = ?2 WHERE username = ?1";
pub(crate) const DELETE_OPERATOR: &str = "DELETE FROM operators WHERE username = ?1";
pub(crate) const DELETE_OPERATOR_SESSIONS: &str =
    "DELETE FROM operator_sessions WHERE username = ?1";
/// Inserts only while the account exists, so a session cannot outlive a concurrent delete.
pub(crate) const INSERT_SESSION: &str = "INSERT INTO operator_sessions (id_hash, username, \
     csrf_token, created_at, expires_at) SELECT ?1, ?2, ?3, ?4, ?5 \
     WHERE EXISTS (SELECT 1 FROM operators WHERE username = ?2)";
/// Columns in the order [`crate::rows::session`] reads them; live at `?2` only.
pub(crate) const GET_SESSION: &str = "SELECT id_hash, username, csrf_token, created_at, \
     expires_at FROM operator_sessions WHERE id_hash = ?1 AND expires_at > ?2";
pub(crate) const DELETE_SESSION: &str = "DELETE FROM operator_sessions WHERE id_hash = ?1";
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM operator_sessions WHERE expires_at <= ?1";
pub(crate) const GET_LOGIN_ATTEMPTS: &str =
    "SELECT attempts, window_start FROM login_attempts WHERE kind = ?1 AND key = ?2";
pub(crate) const PUT_LOGIN_ATTEMPTS: &str = "INSERT INTO login_attempts (kind, key, attempts, \
     window_start) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, key) DO UPDATE SET \
     attempts = excluded.attempts, window_start = excluded.window_start";
pub(crate) const DELETE_LOGIN_ATTEMPTS: &str =
    "DELETE FROM login_attempts WHERE kind = ?1 AND key = ?2";
pub(crate) const PURGE_LOGIN_ATTEMPTS: &str = "DELETE FROM login_attempts WHERE window_start < ?1";
/// PostgreSQL: makes the row exist (no attempt counted yet) so that `SELECT … FOR UPDATE` has a
/// row to lock, even for the very first attempt of two racing nodes.
pub(crate) const ENSURE_LOGIN_ATTEMPTS: &str = "INSERT INTO login_attempts (kind, key, attempts, \
     window_start) VALUES (?1, ?2, 0, ?3) ON CONFLICT (kind, key) DO NOTHING";
pub(crate) const LOCK_LOGIN_ATTEMPTS: &str = "SELECT attempts, window_start FROM login_attempts \
     WHERE kind = ?1 AND key = ?2 FOR UPDATE";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        assert_eq!(
            for_dialect(Dialect::Postgres, UPDATE_PROFILE)
                .matches('$')
                .count(),
            9
        );
        assert!(!for_dialect(Dialect::Postgres, HISTORY_PAGE).contains('?'));
        assert_eq!(for_dialect(Dialect::Sqlite, SELECT_SECRET), SELECT_SECRET);
        assert_eq!(arity(ERASE_USER[0]), 2);
        assert_eq!(arity(ERASE_USER[3]), 3);
        assert_eq!(arity(ERASE_USER[4]), 2);
        assert_eq!(arity(MARK_INBOX), 7);
        assert_eq!(arity(INBOX_PAGE), 7);
        assert_eq!(arity(INSERT_PROPERTY_RECORD), 10);
        assert_eq!(arity(PROFILE_ID_RANGE), 0);
    }
}
