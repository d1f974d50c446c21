//! SQLite: keeping the index rows, counters and discovered properties in step with each profile
//! write, one row per statement (the single writer makes round trips free; PostgreSQL batches
//! the same change into one statement). A batch of writes sums its counter deltas and registry
//! sightings ([`Tally`]) and applies them once ([`settle`]).

use super::properties::record_params;
use super::{execute, value};
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
    rows(conn, env, None, before, after, &mut tally)?;
    settle(conn, env, &tally)
}

/// The row id of env's profile `id`.
fn profile_row(conn: &Connection, env: Env, id: &str) -> Result<i64, StoreError> {
    value::<i64>(
        conn,
        "SELECT id FROM profiles WHERE env = ?1 AND distinct_id = ?2",
        params![env.as_str(), id],
    )?
    .ok_or_else(|| StoreError::internal(format!("profile '{id}' has no row to index")))
}

/// Like [`sync`], but the counter deltas and registry sightings go to `tally`, for [`settle`]
/// to apply once for a whole batch. `row` is the profile's row id when the caller knows it
/// (it has just inserted the row); else it is looked up.
pub(super) fn rows(
    conn: &Connection,
    env: Env,
    row: Option<i64>,
    before: Option<&Profile>,
    after: Option<&Profile>,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let Some(p) = after.or(before) else {
        return Ok(());
    };
    let change = Change::between(before, after);
    if change.removed.is_empty() && change.added.is_empty() {
        tally.add(&change, 0);
        return Ok(());
    }
    let row = match row {
        Some(row) => row,
        None => profile_row(conn, env, p.distinct_id.as_str())?,
    };
    let (e, created_at) = (env.as_str(), micros(p.created_at));
    if after.is_none() {
        // The profile is removed: all its rows go at once (a range of the primary key).
        execute(
            conn,
            "DELETE FROM profile_values WHERE profile_id = ?1",
            params![row],
        )?;
    } else {
        for x in &change.removed {
            execute(
                conn,
                "DELETE FROM profile_values WHERE profile_id = ?1 AND kind = ?4 AND text_value = ?5 \
                 AND key_id = (SELECT id FROM index_keys WHERE env = ?2 AND key = ?3)",
                params![row, e, x.key, x.kind.code(), x.text],
            )?;
        }
    }
    for a in &change.added {
        // One row, `VALUES`: an `INSERT … SELECT` may write several rows, so SQLite opens a
        // statement journal for it, and releasing one walks the writer job's sub-journal (93 %
        // of a bulk load's time, perf). `OR IGNORE` skips the row when the key has no id yet
        // (NULL in a NOT NULL column) instead of aborting the statement.
        let insert = |conn: &Connection| {
            execute(
                conn,
                "INSERT OR IGNORE INTO profile_values \
                 (profile_id, key_id, kind, text_value, num_value, time_value, created_at) \
                 VALUES (?1, (SELECT id FROM index_keys WHERE env = ?2 AND key = ?3), \
                 ?4, ?5, ?6, ?7, ?8)",
                params![
                    row,
                    e,
                    a.key,
                    a.kind.code(),
                    a.text,
                    a.num,
                    a.time,
                    created_at
                ],
            )
        };
        if insert(conn)? == 0 {
            // A key no row has used yet: interned in this transaction, so a rollback takes
            // it back with the rows that use it.
            execute(conn, sql::INTERN_INDEX_KEY, params![e, a.key])?;
            insert(conn)?;
        }
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
