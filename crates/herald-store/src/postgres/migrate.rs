//! PostgreSQL: executing the shared migration plan in one transaction under an advisory lock,
//! so nodes starting together apply each migration once.

use super::{db, index, pg, Attempt, PostgresStore};
use crate::migrate::{self, Migration};
use crate::{rows, sql};
use deadpool_postgres::Transaction;
use herald_core::env::Env;
use herald_core::profile::micros;
use herald_core::store::StoreError;

const MIGRATIONS: &[Migration] = migrate::migrations!();

/// Any constant works; it only has to be the same for every Herald node.
const MIGRATION_LOCK: i64 = 0x4845_5241_4c44; // "HERALD"

impl PostgresStore {
    /// Applies missing migrations in one transaction under an advisory lock, so nodes starting
    /// together apply each migration once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
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
        let plan = migrate::plan(MIGRATIONS, current, migrate::latest(MIGRATIONS));
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
