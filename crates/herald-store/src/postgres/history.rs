//! PostgreSQL: appending history events and paging one user's history.

use super::{db, pg, Attempt, PostgresStore};
use crate::rows::{self, HistoryOwner};
use crate::sql;
use deadpool_postgres::Transaction;
use herald_core::env::Env;
use herald_core::erasure;
use herald_core::history::HistoryEvent;
use herald_core::ids::DistinctId;
use herald_core::profile::micros;
use herald_core::store::StoreError;
use tokio_postgres::types::Json;

pub(super) async fn insert_event(
    tx: &Transaction<'_>,
    env: Env,
    e: &HistoryEvent,
) -> Result<(), Attempt> {
    let stmt = tx.prepare_cached(&pg(sql::INSERT_EVENT)).await?;
    tx.execute(
        &stmt,
        &[
            &env.as_str(),
            &e.distinct_id.as_str(),
            &micros(e.at),
            &Json(&e.actor),
            &e.action.as_str(),
            &Json(&e.request),
            &Json(&e.changes),
        ],
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
