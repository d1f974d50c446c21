//! SQLite: keeping the index rows, counters and discovered properties in step with each profile
//! write, one row per statement (the single writer makes round trips free; PostgreSQL batches
//! the same change into one statement).

use super::execute;
use super::properties::record_params;
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
    let Some(p) = after.or(before) else {
        return Ok(());
    };
    let change = Change::between(before, after);
    apply_change(
        conn,
        env,
        p.distinct_id.as_str(),
        micros(p.created_at),
        &change,
        after.is_none(),
    )
}

/// Applies `change` for the profile `id` (created at `created_at`). `gone`: the profile was
/// removed, so all its rows go at once.
fn apply_change(
    conn: &Connection,
    env: Env,
    id: &str,
    created_at: i64,
    change: &Change,
    gone: bool,
) -> Result<(), StoreError> {
    let env = env.as_str();
    if gone {
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
            "INSERT INTO profile_values (env, distinct_id, key, kind, text_value, num_value, time_value, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![env, id, e.key, e.kind.code(), e.text, e.num, e.time, created_at],
        )?;
    }
    // One shard: the single writer never waits on a counter row.
    for (key, delta) in &change.counts {
        execute(
            conn,
            "INSERT INTO property_counts (env, key, shard, n) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (env, key, shard) DO UPDATE SET n = n + excluded.n",
            params![env, key, delta],
        )?;
    }
    for (key, bits) in &change.seen {
        let r = property::discovered(key, *bits, chrono::Utc::now());
        execute(
            conn,
            sql::INSERT_PROPERTY_RECORD,
            rusqlite::params_from_iter(record_params(env, &r)),
        )?;
        execute(conn, sql::ADD_TYPES_SEEN, params![env, key, bits])?;
    }
    Ok(())
}
