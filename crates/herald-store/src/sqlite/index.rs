//! SQLite: keeping the index rows, counters and discovered properties in step with each profile
//! write, one row per statement (the single writer makes round trips free; PostgreSQL batches
//! the same change into one statement). A batch of writes sums its counter deltas and registry
//! sightings ([`Tally`]) and applies them once ([`settle`]).

use super::execute;
use super::properties::record_params;
use crate::batch::Tally;
use crate::sql;
use herald_core::env::Env;
use herald_core::index::Change;
use herald_core::profile::{micros, Profile};
use herald_core::property;
use herald_core::store::StoreError;
use rusqlite::{params, Connection};

/// Brings the index rows, counters and registry in step with a profile going from `before` to
/// `after` (`None`: not stored / removed).
pub(super) fn sync(
    conn: &Connection,
    env: Env,
    before: Option<&Profile>,
    after: Option<&Profile>,
) -> Result<(), StoreError> {
    let mut tally = Tally::default();
    rows(conn, env, before, after, &mut tally)?;
    settle(conn, env, &tally)
}

/// Like [`sync`], but the counter deltas and registry sightings go to `tally`, for [`settle`]
/// to apply once for a whole batch.
pub(super) fn rows(
    conn: &Connection,
    env: Env,
    before: Option<&Profile>,
    after: Option<&Profile>,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let Some(p) = after.or(before) else {
        return Ok(());
    };
    let change = Change::between(before, after);
    let (env, id, created_at) = (env.as_str(), p.distinct_id.as_str(), micros(p.created_at));
    if after.is_none() {
        // The profile is removed: all its rows go at once.
        execute(
            conn,
            "DELETE FROM profile_values WHERE env = ?1 AND distinct_id = ?2",
            params![env, id],
        )?;
    } else {
        for e in &change.removed {
            execute(
                conn,
                "DELETE FROM profile_values WHERE env = ?1 AND distinct_id = ?2 AND key = ?3 AND kind = ?4 AND text_value = ?5",
                params![env, id, e.key, e.kind.code(), e.text],
            )?;
        }
    }
    for e in &change.added {
        execute(
            conn,
            sql::INSERT_INDEX_ROW,
            params![
                env,
                id,
                e.key,
                e.kind.code(),
                e.text,
                e.num,
                e.time,
                created_at
            ],
        )?;
    }
    // One shard: the single writer never waits on a counter row.
    tally.add(&change, 0);
    Ok(())
}

/// Applies the counter deltas and registry sightings of `tally`: one statement per key.
pub(super) fn settle(conn: &Connection, env: Env, tally: &Tally) -> Result<(), StoreError> {
    let env = env.as_str();
    for ((key, _), delta) in &tally.counts {
        execute(
            conn,
            "INSERT INTO property_counts (env, key, shard, n) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (env, key, shard) DO UPDATE SET n = n + excluded.n",
            params![env, key, delta],
        )?;
    }
    let now = chrono::Utc::now();
    for (key, bits) in &tally.seen {
        let r = property::discovered(key, *bits, now);
        execute(
            conn,
            sql::INSERT_PROPERTY_RECORD,
            rusqlite::params_from_iter(record_params(env, &r)),
        )?;
        execute(conn, sql::ADD_TYPES_SEEN, params![env, key, bits])?;
    }
    Ok(())
}
