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
use std::collections::HashMap;

/// Ids a write job has read or made in its transaction: interned index keys and named history
/// actors, so a batch looks each up once instead of once per row. Valid only as long as what
/// read them is not rolled back (an id interned in a rolled-back savepoint is gone): a batch
/// keeps one for its job, an edit in its own savepoint one for the edit.
#[derive(Debug, Default)]
pub(super) struct Ids {
    keys: HashMap<String, i64>,
    actors: HashMap<(String, String), i64>,
}

impl Ids {
    /// The id of env's index key `key`, interned first if no row has used it yet.
    fn key(&mut self, conn: &Connection, env: &str, key: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.keys.get(key) {
            return Ok(*id);
        }
        let id = match key_id(conn, env, key)? {
            Some(id) => id,
            None => {
                execute(conn, sql::INTERN_INDEX_KEY, params![env, key])?;
                key_id(conn, env, key)?.ok_or_else(|| {
                    StoreError::internal(format!("index key '{key}' was not interned"))
                })?
            }
        };
        self.keys.insert(key.to_owned(), id);
        Ok(id)
    }

    /// The id of history actor `(kind, ident)`, named first ([`sql::INSERT_ACTOR`]) the first
    /// time this job meets it.
    pub(super) fn actor(
        &mut self,
        conn: &Connection,
        kind: &str,
        ident: &str,
    ) -> Result<i64, StoreError> {
        if let Some(id) = self.actors.get(&(kind.to_owned(), ident.to_owned())) {
            return Ok(*id);
        }
        execute(conn, sql::INSERT_ACTOR, params![kind, ident])?;
        let id = value::<i64>(conn, sql::SELECT_ACTOR, params![kind, ident])?
            .ok_or_else(|| StoreError::internal("a history actor was not named"))?;
        self.actors.insert((kind.to_owned(), ident.to_owned()), id);
        Ok(id)
    }
}

fn key_id(conn: &Connection, env: &str, key: &str) -> Result<Option<i64>, StoreError> {
    value::<i64>(
        conn,
        "SELECT id FROM index_keys WHERE env = ?1 AND key = ?2",
        params![env, key],
    )
}

/// Brings the index rows, counters and registry in step with a profile going from `before` to
/// `after` (`None`: not stored / removed).
pub(super) fn sync(
    conn: &Connection,
    env: Env,
    before: Option<&Profile>,
    after: Option<&Profile>,
) -> Result<(), StoreError> {
    let mut tally = Tally::default();
    rows(
        conn,
        env,
        None,
        before,
        after,
        &mut tally,
        &mut Ids::default(),
    )?;
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
/// (it has just inserted the row); else it is looked up. Key ids come from `ids`.
pub(super) fn rows(
    conn: &Connection,
    env: Env,
    row: Option<i64>,
    before: Option<&Profile>,
    after: Option<&Profile>,
    tally: &mut Tally,
    ids: &mut Ids,
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
        let key = ids.key(conn, e, &a.key)?;
        execute(
            conn,
            "INSERT INTO profile_values \
             (profile_id, key_id, kind, text_value, num_value, time_value, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![row, key, a.kind.code(), a.text, a.num, a.time, created_at],
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
