//! PostgreSQL: keeping the index rows, counters and discovered properties in step with each
//! profile write, and bulk loads. Here the dialects really differ: one profile's change is one
//! statement of `UNNEST`ed arrays, counters are sharded, registry records are held
//! `FOR KEY SHARE`, and a bulk load or a batch of edits writes profiles, history, index rows
//! and counters with one `UNNEST` statement each.

use super::properties::write_record;
use super::{pg, Attempt};
use crate::batch::Tally;
use crate::sql;
use deadpool_postgres::Transaction;
use herald_core::env::Env;
use herald_core::history::HistoryEvent;
use herald_core::index::{Change, Entry};
use herald_core::profile::{micros, Profile};
use herald_core::property;
use herald_core::store::Imported;
use std::collections::HashMap;
use tokio_postgres::types::Json;

/// Counter rows per key: concurrent writers of different profiles rarely wait on one row.
const SHARDS: u64 = 16;

pub(super) fn shard_of(id: &str) -> i16 {
    // FNV-1a: stable across nodes and releases, unlike std's hasher.
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    (h % SHARDS) as i16
}

/// Brings the index rows, counters and registry in step with a profile going from `before` to
/// `after` (`None`: not stored / removed).
pub(super) async fn sync(
    tx: &Transaction<'_>,
    env: Env,
    before: Option<&Profile>,
    after: Option<&Profile>,
) -> Result<(), Attempt> {
    let Some(p) = after.or(before) else {
        return Ok(());
    };
    let change = Change::between(before, after);
    let id = p.distinct_id.as_str();
    apply_change(tx, env, id, micros(p.created_at), &change).await
}

/// The ids of env's `keys` in `index_keys`, interning the keys never seen, in one round trip.
/// New keys are inserted in key order, so two writers interning the same keys wait rather than
/// deadlock. A key another transaction committed after this statement's snapshot is neither
/// inserted nor seen: a lost race, retried (and then seen).
pub(super) async fn key_ids(
    tx: &Transaction<'_>,
    env: Env,
    keys: impl IntoIterator<Item = &str>,
) -> Result<HashMap<String, i32>, Attempt> {
    let mut wanted: Vec<&str> = keys.into_iter().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut ids = HashMap::new();
    if wanted.is_empty() {
        return Ok(ids);
    }
    let stmt = tx
        .prepare_cached(
            "WITH new AS (
                 INSERT INTO index_keys (env, key)
                 SELECT $1, k FROM UNNEST($2::text[]) AS u(k)
                 WHERE NOT EXISTS (SELECT 1 FROM index_keys WHERE env = $1 AND key = u.k)
                 ORDER BY k
                 ON CONFLICT DO NOTHING RETURNING id, key
             )
             SELECT id, key FROM new
             UNION ALL SELECT id, key FROM index_keys WHERE env = $1 AND key = ANY($2::text[])",
        )
        .await?;
    for row in tx.query(&stmt, &[&env.as_str(), &wanted]).await? {
        ids.insert(row.try_get(1)?, row.try_get(0)?);
    }
    if wanted.iter().any(|k| !ids.contains_key(*k)) {
        return Err(Attempt::Retry);
    }
    Ok(ids)
}

/// Applies `change` for the profile `id` (created at `created_at`) in two round trips: its keys'
/// ids ([`key_ids`]), then the index rows it removes and adds, its counter deltas (sorted by
/// key, so concurrent writers lock counter rows in one order) and the custom keys it shows the
/// registry. `ON CONFLICT DO NOTHING` and the conditional update take no lock on an existing,
/// unchanged registry row.
async fn apply_change(
    tx: &Transaction<'_>,
    env: Env,
    id: &str,
    created_at: i64,
    change: &Change,
) -> Result<(), Attempt> {
    if change.is_empty() {
        return Ok(());
    }
    let (r, a) = (&change.removed, &change.added);
    let ids = key_ids(tx, env, r.iter().chain(a).map(|e| e.key.as_str())).await?;
    let r_keys: Vec<i32> = r.iter().map(|e| ids[&e.key]).collect();
    let r_kinds: Vec<i16> = r.iter().map(|e| e.kind.code()).collect();
    let r_texts: Vec<&str> = r.iter().map(|e| e.text.as_str()).collect();
    let a_keys: Vec<i32> = a.iter().map(|e| ids[&e.key]).collect();
    let a_kinds: Vec<i16> = a.iter().map(|e| e.kind.code()).collect();
    let a_texts: Vec<&str> = a.iter().map(|e| e.text.as_str()).collect();
    let a_nums: Vec<Option<f64>> = a.iter().map(|e| e.num).collect();
    let a_times: Vec<Option<i64>> = a.iter().map(|e| e.time).collect();
    let c_keys: Vec<&str> = change.counts.iter().map(|(k, _)| k.as_str()).collect();
    let c_deltas: Vec<i64> = change.counts.iter().map(|(_, d)| *d).collect();
    let s_keys: Vec<&str> = change.seen.iter().map(|(k, _)| k.as_str()).collect();
    let s_bits: Vec<i16> = change.seen.iter().map(|(_, b)| *b as i16).collect();
    lock_records(tx, env, &s_keys).await?;
    let stmt = tx
        .prepare_cached(
            "WITH profile AS (
                 SELECT id FROM profiles WHERE env = $1 AND distinct_id = $2
             ), removed AS (
                 DELETE FROM profile_values WHERE profile_id = (SELECT id FROM profile)
                 AND (key_id, kind, text_value) IN (SELECT * FROM UNNEST($3::int4[], $4::int2[], $5::text[]))
             ), added AS (
                 INSERT INTO profile_values (profile_id, key_id, kind, text_value, num_value, time_value, created_at)
                 SELECT (SELECT id FROM profile), k, kd, t, n, tm, $6
                 FROM UNNEST($7::int4[], $8::int2[], $9::text[], $10::float8[], $11::int8[]) AS u(k, kd, t, n, tm)
             ), counted AS (
                 INSERT INTO property_counts (env, key, shard, n)
                 SELECT $1, k, $12, d FROM UNNEST($13::text[], $14::int8[]) AS u(k, d)
                 ON CONFLICT (env, key, shard) DO UPDATE SET n = property_counts.n + excluded.n
             ), discovered AS (
                 INSERT INTO properties (env, key, kind, label, description, show_in_table, declared_type, declared, types_seen, created_at)
                 SELECT $1, k, 'custom', k, '', false, NULL, false, b, $15 FROM UNNEST($16::text[], $17::int2[]) AS u(k, b)
                 ON CONFLICT (env, key) DO NOTHING
             )
             UPDATE properties p SET types_seen = p.types_seen | u.b
             FROM UNNEST($16::text[], $17::int2[]) AS u(k, b)
             WHERE p.env = $1 AND p.key = u.k AND (p.types_seen | u.b) <> p.types_seen",
        )
        .await?;
    let now = micros(chrono::Utc::now());
    tx.execute(
        &stmt,
        &[
            &env.as_str(),
            &id,
            &r_keys,
            &r_kinds,
            &r_texts,
            &created_at,
            &a_keys,
            &a_kinds,
            &a_texts,
            &a_nums,
            &a_times,
            &shard_of(id),
            &c_keys,
            &c_deltas,
            &now,
            &s_keys,
            &s_bits,
        ],
    )
    .await?;
    Ok(())
}

/// Holds the registry records of `keys` (those that exist) in `FOR KEY SHARE` until the write
/// commits: writers do not wait on each other, but [`herald_core::store::PropertyStore::delete_property_record`]
/// (which locks its record `FOR UPDATE`) waits for them, then sees their counters. Without it a
/// record could be deleted between a writer finding it present and committing its first use.
async fn lock_records(tx: &Transaction<'_>, env: Env, keys: &[&str]) -> Result<(), Attempt> {
    if !keys.is_empty() {
        tx.execute(
            "SELECT 1 FROM properties WHERE env = $1 AND key = ANY($2::text[]) ORDER BY key FOR KEY SHARE",
            &[&env.as_str(), &keys],
        )
        .await?;
    }
    Ok(())
}

/// Bulk load in a few statements per batch: the profiles (skipping existing ids), then the
/// history events, index rows and summed counter deltas of those created.
pub(super) async fn import(
    tx: &Transaction<'_>,
    env: Env,
    writes: &[Imported],
) -> Result<u64, Attempt> {
    let profiles: Vec<&Profile> = writes.iter().map(|w| &w.profile).collect();
    let fresh = insert_profiles(tx, env, &profiles).await?;
    let made: Vec<&Imported> = writes
        .iter()
        .filter(|w| fresh.contains_key(w.profile.distinct_id.as_str()))
        .collect();
    let history: Vec<&HistoryEvent> = made.iter().flat_map(|w| &w.history).collect();
    super::history::insert_history(tx, env, &history).await?;
    let changes: Vec<Change> = made
        .iter()
        .map(|w| Change::between(None, Some(&w.profile)))
        .collect();
    let mut rows = IndexRows::default();
    let mut tally = Tally::default();
    for (w, change) in made.iter().zip(&changes) {
        rows.add(
            fresh[w.profile.distinct_id.as_str()],
            &w.profile,
            &change.added,
        );
        tally.add(change, shard_of(w.profile.distinct_id.as_str()));
    }
    rows.insert(tx, env).await?;
    settle(tx, env, &tally).await?;
    Ok(made.len() as u64)
}

/// Inserts new profiles in one statement, skipping ids that exist; returns the ids inserted,
/// each with its row id.
pub(super) async fn insert_profiles(
    tx: &Transaction<'_>,
    env: Env,
    profiles: &[&Profile],
) -> Result<HashMap<String, i64>, Attempt> {
    if profiles.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = profiles.iter().map(|p| p.distinct_id.as_str()).collect();
    let statuses: Vec<&str> = profiles.iter().map(|p| p.status.as_str()).collect();
    let props: Vec<Json<&serde_json::Map<String, serde_json::Value>>> =
        profiles.iter().map(|p| Json(&p.properties)).collect();
    let identities: Vec<Json<&Vec<herald_core::Identity>>> =
        profiles.iter().map(|p| Json(&p.identities)).collect();
    let created: Vec<i64> = profiles.iter().map(|p| micros(p.created_at)).collect();
    let updated: Vec<i64> = profiles.iter().map(|p| micros(p.updated_at)).collect();
    let versions: Vec<i64> = profiles.iter().map(|p| p.version).collect();
    let prefs: Vec<Json<&herald_core::preference::Preferences>> =
        profiles.iter().map(|p| Json(&p.preferences)).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, updated_at, version, preferences)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::int8[], $7::int8[], $8::int8[], $9::jsonb[])
             ON CONFLICT (env, distinct_id) DO NOTHING RETURNING distinct_id, id",
        )
        .await?;
    let inserted = tx
        .query(
            &stmt,
            &[
                &env.as_str(),
                &ids,
                &statuses,
                &props,
                &identities,
                &created,
                &updated,
                &versions,
                &prefs,
            ],
        )
        .await?;
    Ok(inserted.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Stores the next state of profiles that exist, each `(row id, before, after)` (their rows
/// locked by the caller), in one statement; each row is written only if it is still at
/// `before`'s version. Returns how many rows were written. The rows are found by row id, one
/// index probe each: joined on `(env, distinct_id)`, a table without statistics was planned as
/// a hash join over the whole environment.
pub(super) async fn update_profiles(
    tx: &Transaction<'_>,
    profiles: &[(i64, &Profile, &Profile)],
) -> Result<u64, Attempt> {
    if profiles.is_empty() {
        return Ok(0);
    }
    let rows: Vec<i64> = profiles.iter().map(|(row, _, _)| *row).collect();
    let statuses: Vec<&str> = profiles.iter().map(|(_, _, p)| p.status.as_str()).collect();
    let props: Vec<Json<&serde_json::Map<String, serde_json::Value>>> = profiles
        .iter()
        .map(|(_, _, p)| Json(&p.properties))
        .collect();
    let identities: Vec<Json<&Vec<herald_core::Identity>>> = profiles
        .iter()
        .map(|(_, _, p)| Json(&p.identities))
        .collect();
    let updated: Vec<i64> = profiles
        .iter()
        .map(|(_, _, p)| micros(p.updated_at))
        .collect();
    let versions: Vec<i64> = profiles.iter().map(|(_, _, p)| p.version).collect();
    let old_versions: Vec<i64> = profiles.iter().map(|(_, old, _)| old.version).collect();
    let prefs: Vec<Json<&herald_core::preference::Preferences>> = profiles
        .iter()
        .map(|(_, _, p)| Json(&p.preferences))
        .collect();
    let stmt = tx
        .prepare_cached(
            "UPDATE profiles p SET status = u.status, properties = u.properties,
                 identities = u.identities, updated_at = u.updated_at, version = u.version,
                 preferences = u.preferences
             FROM UNNEST($1::int8[], $2::text[], $3::jsonb[], $4::jsonb[], $5::int8[], $6::int8[], $7::int8[], $8::jsonb[])
                 AS u(id, status, properties, identities, updated_at, version, old_version, preferences)
             WHERE p.id = u.id AND p.version = u.old_version",
        )
        .await?;
    Ok(tx
        .execute(
            &stmt,
            &[
                &rows,
                &statuses,
                &props,
                &identities,
                &updated,
                &versions,
                &old_versions,
                &prefs,
            ],
        )
        .await?)
}

/// Index rows of many profiles, as columns, for one `UNNEST` statement.
#[derive(Default)]
pub(super) struct IndexRows<'a> {
    profiles: Vec<i64>,
    keys: Vec<&'a str>,
    kinds: Vec<i16>,
    texts: Vec<&'a str>,
    nums: Vec<Option<f64>>,
    times: Vec<Option<i64>>,
    created: Vec<i64>,
}

impl<'a> IndexRows<'a> {
    /// The rows of `entries` of profile `p`, whose row id is `row`.
    pub(super) fn add(&mut self, row: i64, p: &'a Profile, entries: &'a [Entry]) {
        let created = micros(p.created_at);
        for e in entries {
            self.profiles.push(row);
            self.keys.push(&e.key);
            self.kinds.push(e.kind.code());
            self.texts.push(&e.text);
            self.nums.push(e.num);
            self.times.push(e.time);
            self.created.push(created);
        }
    }

    /// The key ids of the rows, in row order.
    async fn key_ids(&self, tx: &Transaction<'_>, env: Env) -> Result<Vec<i32>, Attempt> {
        let ids = key_ids(tx, env, self.keys.iter().copied()).await?;
        Ok(self.keys.iter().map(|k| ids[*k]).collect())
    }

    /// Inserts the rows, in the order of the value index, so consecutive rows land on the same
    /// index pages.
    pub(super) async fn insert(&self, tx: &Transaction<'_>, env: Env) -> Result<(), Attempt> {
        if self.profiles.is_empty() {
            return Ok(());
        }
        let key_ids = self.key_ids(tx, env).await?;
        let mut order: Vec<usize> = (0..self.profiles.len()).collect();
        order.sort_by(|&a, &b| {
            (
                key_ids[a],
                self.kinds[a],
                self.texts[a],
                self.created[a],
                self.profiles[a],
            )
                .cmp(&(
                    key_ids[b],
                    self.kinds[b],
                    self.texts[b],
                    self.created[b],
                    self.profiles[b],
                ))
        });
        let pick = |i: &usize| *i;
        let profiles: Vec<i64> = order.iter().map(pick).map(|i| self.profiles[i]).collect();
        let keys: Vec<i32> = order.iter().map(pick).map(|i| key_ids[i]).collect();
        let kinds: Vec<i16> = order.iter().map(pick).map(|i| self.kinds[i]).collect();
        let texts: Vec<&str> = order.iter().map(pick).map(|i| self.texts[i]).collect();
        let nums: Vec<Option<f64>> = order.iter().map(pick).map(|i| self.nums[i]).collect();
        let times: Vec<Option<i64>> = order.iter().map(pick).map(|i| self.times[i]).collect();
        let created: Vec<i64> = order.iter().map(pick).map(|i| self.created[i]).collect();
        let stmt = tx
            .prepare_cached(
                "INSERT INTO profile_values (profile_id, key_id, kind, text_value, num_value, time_value, created_at)
                 SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::int2[], $4::text[], $5::float8[], $6::int8[], $7::int8[])",
            )
            .await?;
        tx.execute(
            &stmt,
            &[&profiles, &keys, &kinds, &texts, &nums, &times, &created],
        )
        .await?;
        Ok(())
    }

    /// Deletes the rows (matched on profile, key, kind and text).
    pub(super) async fn delete(&self, tx: &Transaction<'_>, env: Env) -> Result<(), Attempt> {
        if self.profiles.is_empty() {
            return Ok(());
        }
        let key_ids = self.key_ids(tx, env).await?;
        // Every column of the per-profile index is matched by equality: one probe per row.
        let stmt = tx
            .prepare_cached(
                "DELETE FROM profile_values WHERE (profile_id, key_id, kind, text_value) IN
                 (SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::int2[], $4::text[]))",
            )
            .await?;
        tx.execute(&stmt, &[&self.profiles, &key_ids, &self.kinds, &self.texts])
            .await?;
        Ok(())
    }
}

/// Applies the counter deltas (one statement, in `(key, shard)` order, so concurrent writers
/// lock counter rows in one order) and registry sightings of a batch, holding the registry
/// records it uses (see [`lock_records`]).
pub(super) async fn settle(tx: &Transaction<'_>, env: Env, tally: &Tally) -> Result<(), Attempt> {
    if tally.is_empty() {
        return Ok(());
    }
    let e = env.as_str();
    let s_keys: Vec<&str> = tally.seen.keys().map(String::as_str).collect();
    lock_records(tx, env, &s_keys).await?;
    let c_keys: Vec<&str> = tally.counts.keys().map(|(k, _)| k.as_str()).collect();
    let c_shards: Vec<i16> = tally.counts.keys().map(|(_, s)| *s).collect();
    let c_deltas: Vec<i64> = tally.counts.values().copied().collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO property_counts (env, key, shard, n)
             SELECT $1, * FROM UNNEST($2::text[], $3::int2[], $4::int8[])
             ON CONFLICT (env, key, shard) DO UPDATE SET n = property_counts.n + excluded.n",
        )
        .await?;
    tx.execute(&stmt, &[&e, &c_keys, &c_shards, &c_deltas])
        .await?;
    let now = chrono::Utc::now();
    for (key, bits) in &tally.seen {
        let r = property::discovered(key, *bits, now);
        write_record(tx, sql::INSERT_PROPERTY_RECORD, e, &r).await?;
        tx.execute(
            pg(sql::ADD_TYPES_SEEN).as_ref(),
            &[&e, key, &(*bits as i16)],
        )
        .await?;
    }
    Ok(())
}
