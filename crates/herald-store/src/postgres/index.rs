//! PostgreSQL: keeping the index rows, counters and discovered properties in step with each
//! profile write, and bulk loads. Here the dialects really differ: one profile's change is one
//! statement of `UNNEST`ed arrays, counters are sharded, registry records are held
//! `FOR KEY SHARE`, and a bulk load is four `UNNEST` statements per batch.

use super::properties::write_record;
use super::{pg, Attempt};
use crate::sql;
use deadpool_postgres::Transaction;
use herald_core::env::Env;
use herald_core::index::Change;
use herald_core::profile::{micros, Profile};
use herald_core::property;
use herald_core::store::Imported;
use std::collections::BTreeMap;
use tokio_postgres::types::Json;

/// Counter rows per key: concurrent writers of different profiles rarely wait on one row.
const SHARDS: u64 = 16;

fn shard_of(id: &str) -> i16 {
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

/// Applies `change` for the profile `id` (created at `created_at`) in one round trip: the index
/// rows it removes and adds, its counter deltas (sorted by key, so concurrent writers lock counter
/// rows in one order) and the custom keys it shows the registry. `ON CONFLICT DO NOTHING` and the
/// conditional update take no lock on an existing, unchanged registry row.
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
    let r_keys: Vec<&str> = r.iter().map(|e| e.key.as_str()).collect();
    let r_kinds: Vec<i16> = r.iter().map(|e| e.kind.code()).collect();
    let r_texts: Vec<&str> = r.iter().map(|e| e.text.as_str()).collect();
    let a_keys: Vec<&str> = a.iter().map(|e| e.key.as_str()).collect();
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
            "WITH removed AS (
                 DELETE FROM profile_values WHERE env = $1 AND distinct_id = $2
                 AND (key, kind, text_value) IN (SELECT * FROM UNNEST($3::text[], $4::int2[], $5::text[]))
             ), added AS (
                 INSERT INTO profile_values (env, distinct_id, key, kind, text_value, num_value, time_value, created_at)
                 SELECT $1, $2, k, kd, t, n, tm, $6
                 FROM UNNEST($7::text[], $8::int2[], $9::text[], $10::float8[], $11::int8[]) AS u(k, kd, t, n, tm)
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
    let e = env.as_str();
    let ids: Vec<&str> = writes
        .iter()
        .map(|w| w.profile.distinct_id.as_str())
        .collect();
    let statuses: Vec<&str> = writes.iter().map(|w| w.profile.status.as_str()).collect();
    let props: Vec<Json<&serde_json::Map<String, serde_json::Value>>> =
        writes.iter().map(|w| Json(&w.profile.properties)).collect();
    let identities: Vec<Json<&Vec<herald_core::Identity>>> =
        writes.iter().map(|w| Json(&w.profile.identities)).collect();
    let created: Vec<i64> = writes
        .iter()
        .map(|w| micros(w.profile.created_at))
        .collect();
    let updated: Vec<i64> = writes
        .iter()
        .map(|w| micros(w.profile.updated_at))
        .collect();
    let versions: Vec<i64> = writes.iter().map(|w| w.profile.version).collect();
    let prefs: Vec<Json<&herald_core::preference::Preferences>> = writes
        .iter()
        .map(|w| Json(&w.profile.preferences))
        .collect();
    let inserted = tx
        .query(
            "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, updated_at, version, preferences)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::int8[], $7::int8[], $8::int8[], $9::jsonb[])
             ON CONFLICT (env, distinct_id) DO NOTHING RETURNING distinct_id",
            &[&e, &ids, &statuses, &props, &identities, &created, &updated, &versions, &prefs],
        )
        .await?;
    let fresh: std::collections::HashSet<String> = inserted.iter().map(|r| r.get(0)).collect();
    let made: Vec<&Imported> = writes
        .iter()
        .filter(|w| fresh.contains(w.profile.distinct_id.as_str()))
        .collect();

    let (mut h_ids, mut h_at, mut h_actor, mut h_action, mut h_request, mut h_changes) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut v_ids, mut v_keys, mut v_kinds, mut v_texts, mut v_nums, mut v_times, mut v_created) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut counts: BTreeMap<(String, i16), i64> = BTreeMap::new();
    let mut seen: BTreeMap<String, u8> = BTreeMap::new();
    for w in &made {
        let p = &w.profile;
        for ev in &w.history {
            h_ids.push(ev.distinct_id.as_str());
            h_at.push(micros(ev.at));
            h_actor.push(Json(&ev.actor));
            h_action.push(ev.action.as_str());
            h_request.push(Json(&ev.request));
            h_changes.push(Json(&ev.changes));
        }
        let change = Change::between(None, Some(p));
        for entry in change.added {
            v_ids.push(p.distinct_id.as_str());
            v_keys.push(entry.key);
            v_kinds.push(entry.kind.code());
            v_texts.push(entry.text);
            v_nums.push(entry.num);
            v_times.push(entry.time);
            v_created.push(micros(p.created_at));
        }
        for (key, delta) in change.counts {
            *counts
                .entry((key, shard_of(p.distinct_id.as_str())))
                .or_insert(0) += delta;
        }
        for (key, bits) in change.seen {
            *seen.entry(key).or_insert(0) |= bits;
        }
    }
    tx.execute(
        "INSERT INTO history (env, distinct_id, at, actor, action, request, changes)
         SELECT $1, * FROM UNNEST($2::text[], $3::int8[], $4::jsonb[], $5::text[], $6::jsonb[], $7::jsonb[])",
        &[&e, &h_ids, &h_at, &h_actor, &h_action, &h_request, &h_changes],
    )
    .await?;
    tx.execute(
        "INSERT INTO profile_values (env, distinct_id, key, kind, text_value, num_value, time_value, created_at)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int2[], $5::text[], $6::float8[], $7::int8[], $8::int8[])",
        &[&e, &v_ids, &v_keys, &v_kinds, &v_texts, &v_nums, &v_times, &v_created],
    )
    .await?;
    let s_keys: Vec<&str> = seen.keys().map(String::as_str).collect();
    lock_records(tx, env, &s_keys).await?;
    let c_keys: Vec<&str> = counts.keys().map(|(k, _)| k.as_str()).collect();
    let c_shards: Vec<i16> = counts.keys().map(|(_, s)| *s).collect();
    let c_deltas: Vec<i64> = counts.values().copied().collect();
    tx.execute(
        "INSERT INTO property_counts (env, key, shard, n)
         SELECT $1, * FROM UNNEST($2::text[], $3::int2[], $4::int8[])
         ON CONFLICT (env, key, shard) DO UPDATE SET n = property_counts.n + excluded.n",
        &[&e, &c_keys, &c_shards, &c_deltas],
    )
    .await?;
    for (key, bits) in seen {
        let r = property::discovered(&key, bits, chrono::Utc::now());
        write_record(tx, sql::INSERT_PROPERTY_RECORD, e, &r).await?;
        tx.execute(
            pg(sql::ADD_TYPES_SEEN).as_ref(),
            &[&e, &key, &(bits as i16)],
        )
        .await?;
    }
    Ok(made.len() as u64)
}
