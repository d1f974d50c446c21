//! SQLite: appending history events and paging one user's history.

use super::index::Ids;
use super::{execute, json, query, value};
use crate::rows::{self, HistoryOwner};
use crate::sql;
use herald_core::env::Env;
use herald_core::erasure;
use herald_core::history::{self, HistoryEvent};
use herald_core::ids::DistinctId;
use herald_core::profile::micros;
use herald_core::store::StoreError;
use rusqlite::{params, Connection};

/// Appends `e`: its actor named in `history_actors` (once), its changes packed beside its
/// request ([`history::pack`]). The actor's id comes from `ids` (looked up once a job).
pub(super) fn insert_event(
    conn: &Connection,
    env: Env,
    e: &HistoryEvent,
    ids: &mut Ids,
) -> Result<(), StoreError> {
    let actor = ids.actor(conn, &e.actor.kind, &e.actor.id)?;
    execute(
        conn,
        sql::INSERT_EVENT_BY_ACTOR_ID,
        params![
            env.as_str(),
            e.distinct_id.as_str(),
            micros(e.at),
            actor,
            e.action.as_str(),
            json(&e.request),
            json(&history::pack(&e.request, &e.changes))
        ],
    )
    .map(drop)
}

/// The erasure secret; with `create`, one is stored first if there is none.
pub(super) fn erasure_secret(
    conn: &Connection,
    create: bool,
) -> Result<Option<String>, StoreError> {
    if create {
        execute(
            conn,
            sql::INSERT_SECRET,
            params![erasure::SECRET_NAME, erasure::fresh_secret()],
        )?;
    }
    value(conn, sql::SELECT_SECRET, [erasure::SECRET_NAME])
}

/// Events of `id` and its tombstone, newest first, below `before_id`; up to `limit + 1`.
pub(super) fn page(
    conn: &Connection,
    env: Env,
    id: &DistinctId,
    before_id: Option<i64>,
    limit: usize,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let owner = HistoryOwner::new(id, erasure_secret(conn, false)?.as_deref());
    query(
        conn,
        sql::HISTORY_PAGE,
        params![
            env.as_str(),
            owner.id.as_str(),
            before_id.unwrap_or(i64::MAX),
            (limit + 1) as i64,
            owner.erased.as_str()
        ],
        |row| rows::event(row, &owner),
    )
}
