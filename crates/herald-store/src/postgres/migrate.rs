//! PostgreSQL: executing the shared migration plan in one transaction under an advisory lock,
//! so nodes starting together apply each migration once.

use super::{db, index, pg, Attempt, PostgresStore};
use crate::migrate::{self, Migration};
use crate::{rows, sql};
use deadpool_postgres::Transaction;
use herald_core::env::Env;
use herald_core::erasure;
use herald_core::index::entries;
use herald_core::profile::micros;
use herald_core::store::StoreError;
use tokio_postgres::types::Json;

const MIGRATIONS: &[Migration] = migrate::migrations!();

/// Any constant works; it only has to be the same for every Herald node.
const MIGRATION_LOCK: i64 = 0x4845_5241_4c44; // "HERALD"

impl PostgresStore {
    /// Applies missing migrations in one transaction under an advisory lock, so nodes starting
    /// together apply each migration once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_to(migrate::latest(MIGRATIONS)).await
    }

    /// Applies the missing migrations up to `target` (all of them, outside tests).
    pub(crate) async fn migrate_to(&self, target: i64) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute(sql::MIGRATIONS_TABLE).await.map_err(db)?;
        let current: i64 = tx
            .query_one(sql::MIGRATIONS_CURRENT, &[])
            .await
            .map_err(db)?
            .get(0);
        let plan = migrate::plan(MIGRATIONS, current, target);
        for m in plan.apply {
            tx.batch_execute(m.sql).await.map_err(|e| {
                StoreError::internal_from(format!("migration {} ({})", m.version, m.name), e)
            })?;
            tx.execute(
                pg(sql::MIGRATIONS_RECORD).as_ref(),
                &[&m.version, &m.name, &micros(chrono::Utc::now())],
            )
            .await
            .map_err(db)?;
        }
        if plan.index_existing {
            index_existing_profiles(&tx).await?;
        }
        if plan.refile_tombstones {
            refile_tombstones(&tx).await?;
        }
        if plan.repair_index {
            repair_index_rows(&tx).await?;
        }
        tx.commit().await.map_err(db)
    }

    /// With migrations off at start, a schema behind this build is an error that says what to run.
    pub(super) async fn check_current(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let current: i64 = client
            .query_one(sql::MIGRATIONS_CURRENT, &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        crate::check_schema_version(current, migrate::latest(MIGRATIONS))
    }
}

async fn index_existing_profiles(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let stored = tx.query(sql::SELECT_ALL_PROFILES, &[]).await.map_err(db)?;
    for row in &stored {
        let p = rows::profile(row)?;
        let env: Env = row
            .get::<_, String>(8)
            .parse()
            .map_err(StoreError::internal)?;
        index::sync(tx, env, None, Some(&p))
            .await
            .map_err(|e| match e {
                Attempt::Failed(e) => e,
                Attempt::Retry => StoreError::internal("indexing existing profiles conflicted"),
            })?;
    }
    Ok(())
}

/// Migration 8: tombstones still filed under a raw id go under its keyed hash (see
/// [`migrate::refiled`]), with the secret made as a delete makes it, in this transaction.
async fn refile_tombstones(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let stored = tx
        .query(sql::TOMBSTONES, &[])
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            Ok(migrate::StoredTombstone {
                event_id: r.try_get(0).map_err(db)?,
                env: r.try_get(1).map_err(db)?,
                filed_under: r.try_get(2).map_err(db)?,
                action: r.try_get(3).map_err(db)?,
                request: rows::Columns::json(r, 4).map_err(StoreError::internal)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    if stored.is_empty() {
        // No secret is made for nothing: `herald copy` wants a target without one.
        return Ok(());
    }
    tx.execute(
        pg(sql::INSERT_SECRET).as_ref(),
        &[&erasure::SECRET_NAME, &erasure::fresh_secret()],
    )
    .await
    .map_err(db)?;
    let secret: String = tx
        .query_one(pg(sql::SELECT_SECRET).as_ref(), &[&erasure::SECRET_NAME])
        .await
        .map_err(db)?
        .get(0);
    let refiled = migrate::refiled(&secret, stored)?;
    for t in &refiled {
        tx.execute(
            pg(sql::REFILE_TOMBSTONE).as_ref(),
            &[&t.event_id, &t.erased, &Json(&t.request), &Json(&t.changes)],
        )
        .await
        .map_err(db)?;
    }
    for t in &refiled {
        tx.execute(
            pg(sql::DROP_OLDER_TOMBSTONES).as_ref(),
            &[&t.env, &t.erased],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Migration 8: rewrites the index rows of every profile whose rows are not its entries (see
/// [`migrate::stale`]), a batch of profiles at a time. Counters count keys, not rows: they stay.
async fn repair_index_rows(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let profiles_after = tx.prepare(&pg(sql::PROFILES_AFTER)).await.map_err(db)?;
    let rows_between = tx.prepare(&pg(sql::INDEX_ROWS_BETWEEN)).await.map_err(db)?;
    let delete = tx.prepare(&pg(sql::DELETE_INDEX_ROWS)).await.map_err(db)?;
    let intern = tx.prepare(&pg(sql::INTERN_INDEX_KEY)).await.map_err(db)?;
    let insert = tx.prepare(&pg(sql::INSERT_INDEX_ROW)).await.map_err(db)?;
    for env in Env::ALL {
        let mut after = String::new();
        loop {
            let batch = tx
                .query(
                    &profiles_after,
                    &[&env.as_str(), &after, &migrate::REPAIR_BATCH],
                )
                .await
                .map_err(db)?
                .iter()
                .map(rows::profile)
                .collect::<Result<Vec<_>, _>>()?;
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                break;
            };
            let stored = tx
                .query(
                    &rows_between,
                    &[
                        &env.as_str(),
                        &first.distinct_id.as_str(),
                        &last.distinct_id.as_str(),
                    ],
                )
                .await
                .map_err(db)?
                .iter()
                .map(|r| {
                    Ok(migrate::StoredEntry {
                        distinct_id: r.try_get(0).map_err(db)?,
                        key: r.try_get(1).map_err(db)?,
                        kind: rows::Columns::int(r, 2).map_err(StoreError::internal)?,
                        text: r.try_get(3).map_err(db)?,
                        num: r.try_get(4).map_err(db)?,
                        time: r.try_get(5).map_err(db)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            for p in migrate::stale(&batch, stored) {
                let id = p.distinct_id.as_str();
                tx.execute(&delete, &[&env.as_str(), &id])
                    .await
                    .map_err(db)?;
                for e in entries(p) {
                    tx.execute(&intern, &[&env.as_str(), &e.key])
                        .await
                        .map_err(db)?;
                    tx.execute(
                        &insert,
                        &[
                            &env.as_str(),
                            &id,
                            &e.key,
                            &e.kind.code(),
                            &e.text,
                            &e.num,
                            &e.time,
                            &micros(p.created_at),
                        ],
                    )
                    .await
                    .map_err(db)?;
                }
            }
            after = last.distinct_id.to_string();
        }
    }
    Ok(())
}
