//! PostgreSQL: appending history events and paging one user's history.

use super::{db, pg, Attempt, PostgresStore};
use crate::rows::{self, HistoryOwner};
use crate::sql;
use deadpool_postgres::Transaction;
use futures_util::future::try_join;
use herald_core::env::Env;
use herald_core::erasure;
use herald_core::history::{self, HistoryEvent, StoredChange};
use herald_core::ids::DistinctId;
use herald_core::profile::micros;
use herald_core::store::StoreError;
use serde_json::Value;
use tokio_postgres::types::Json;

/// Appends `e`: its actor named in `history_actors` (once), its changes packed beside its
/// request ([`history::pack`]). Both statements go out together (pipelined), in order.
pub(super) async fn insert_event(
    tx: &Transaction<'_>,
    env: Env,
    e: &HistoryEvent,
) -> Result<(), Attempt> {
    let (actor, event) = try_join(
        tx.prepare_cached(&pg(sql::INSERT_ACTOR)),
        tx.prepare_cached(&pg(sql::INSERT_EVENT)),
    )
    .await?;
    let changes = history::pack(&e.request, &e.changes);
    try_join(
        tx.execute(&actor, &[&e.actor.kind, &e.actor.id]),
        tx.execute(
            &event,
            &[
                &env.as_str(),
                &e.distinct_id.as_str(),
                &micros(e.at),
                &e.actor.kind,
                &e.actor.id,
                &e.action.as_str(),
                &Json(&e.request),
                &Json(&changes),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// Appends history events in two statements, in the order given (their ids ascend so): their
/// actors named once, then the events, as [`insert_event`] writes them.
pub(super) async fn insert_history(
    tx: &Transaction<'_>,
    env: Env,
    events: &[&HistoryEvent],
) -> Result<(), Attempt> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|e| e.distinct_id.as_str()).collect();
    let at: Vec<i64> = events.iter().map(|e| micros(e.at)).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.actor.kind.as_str()).collect();
    let idents: Vec<&str> = events.iter().map(|e| e.actor.id.as_str()).collect();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    let requests: Vec<Json<&Value>> = events.iter().map(|e| Json(&e.request)).collect();
    let changes: Vec<Json<Vec<StoredChange>>> = events
        .iter()
        .map(|e| Json(history::pack(&e.request, &e.changes)))
        .collect();
    let (actor, event) = try_join(
        tx.prepare_cached(
            "INSERT INTO history_actors (kind, ident)
             SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[])
             ON CONFLICT (kind, ident) DO NOTHING",
        ),
        tx.prepare_cached(
            "INSERT INTO history (env, distinct_id, at, actor_id, action, request, changes)
             SELECT $1, u.id, u.at,
                    (SELECT a.id FROM history_actors a WHERE a.kind = u.kind AND a.ident = u.ident),
                    u.action, u.request, u.changes
             FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::jsonb[],
                         $8::jsonb[]) AS u(id, at, kind, ident, action, request, changes)",
        ),
    )
    .await?;
    try_join(
        tx.execute(&actor, &[&kinds, &idents]),
        tx.execute(
            &event,
            &[
                &env.as_str(),
                &ids,
                &at,
                &kinds,
                &idents,
                &actions,
                &requests,
                &changes,
            ],
        ),
    )
    .await?;
    Ok(())
}

impl PostgresStore {
    /// Events of `id` and its tombstone, newest first, below `before_id`; up to `limit + 1`.
    pub(super) async fn history_page(
        &self,
        env: Env,
        id: &DistinctId,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let client = self.client().await?;
        let secret: Option<String> = client
            .query_opt(pg(sql::SELECT_SECRET).as_ref(), &[&erasure::SECRET_NAME])
            .await
            .map_err(db)?
            .map(|row| row.get(0));
        let owner = HistoryOwner::new(id, secret.as_deref());
        let stmt = client
            .prepare_cached(&pg(sql::HISTORY_PAGE))
            .await
            .map_err(db)?;
        let found = client
            .query(
                &stmt,
                &[
                    &env.as_str(),
                    &owner.id.as_str(),
                    &before_id.unwrap_or(i64::MAX),
                    &((limit + 1) as i64),
                    &owner.erased.as_str(),
                ],
            )
            .await
            .map_err(db)?;
        found.iter().map(|row| rows::event(row, &owner)).collect()
    }
}
