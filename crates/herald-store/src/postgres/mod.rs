//! The PostgreSQL backend: any number of stateless Herald nodes on one database. Row locks
//! (`SELECT … FOR UPDATE`) serialise edits of one profile across nodes; a race to create the same
//! profile is retried, never surfaced to the caller. Each aggregate has its module; the statements
//! shared with SQLite are in [`crate::sql`], the row mapping in [`crate::rows`].

mod categories;
mod credentials;
mod history;
mod inbox;
mod index;
pub(crate) mod listing;
mod messages;
mod migrate;
mod operators;
mod profiles;
mod properties;
mod providers;
mod workflows;

use crate::limits::{self, EnvSlots};
use crate::query::Dialect;
use crate::rows::Columns;
use crate::StoreOptions;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use herald_core::env::Env;
use herald_core::store::StoreError;
use std::borrow::Cow;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, Type};
use tokio_postgres::{NoTls, Row};

/// How often a transaction that lost a race (unique violation, deadlock, serialisation) is retried.
const MAX_ATTEMPTS: usize = 20;

pub struct PostgresStore {
    pool: Pool,
    /// For connections outside the pool (the inbox feed's `LISTEN`).
    config: tokio_postgres::Config,
    /// Listings per environment (see [`EnvSlots`]).
    listing: EnvSlots,
    statement_timeout: std::time::Duration,
}

/// A shared statement of [`crate::sql`] with PostgreSQL's placeholders.
fn pg(sql: &'static str) -> Cow<'static, str> {
    crate::sql::for_dialect(Dialect::Postgres, sql)
}

impl PostgresStore {
    /// Connects, and applies pending migrations when `migrate` is set.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<PostgresStore, StoreError> {
        let store = Self::unmigrated(url, options)?;
        if options.migrate {
            store.migrate().await?;
        } else {
            store.check_current().await?;
        }
        Ok(store)
    }

    /// The pool, without looking at the schema.
    pub(crate) fn unmigrated(
        url: &str,
        options: &StoreOptions,
    ) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::unavailable_from("bad PostgreSQL URL", e))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::unavailable_from("PostgreSQL pool", e))?;
        Ok(PostgresStore {
            pool,
            config,
            listing: EnvSlots::new(options.pool_size.max(1)),
            statement_timeout: options.statement_timeout,
        })
    }

    /// Runs a listing or count of `env` within the environment's share of the pool, in a
    /// read-only transaction whose statements stop at the statement timeout. A request that goes
    /// away leaves its statement running on the server until then at most.
    async fn listing<T>(
        &self,
        env: Env,
        run: impl for<'t> FnOnce(
            &'t Transaction<'t>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 't>,
        >,
    ) -> Result<T, StoreError> {
        let _slot = self.listing.acquire(env).await?;
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            self.statement_timeout.as_millis().max(1)
        ))
        .await
        .map_err(db)?;
        let result = run(&tx).await.map_err(|e| match e {
            StoreError::Busy(_) => limits::timed_out(self.statement_timeout),
            e => e,
        })?;
        tx.commit().await.map_err(db)?;
        Ok(result)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::unavailable_from("no PostgreSQL connection", e))
    }

    /// Runs `work` in a transaction, retrying when it lost a race with another node.
    async fn in_transaction<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: for<'a> Fn(
                &'a Transaction<'a>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, Attempt>> + Send + 'a>,
            > + Send
            + Sync,
        T: Send,
    {
        let mut client = self.client().await?;
        for attempt in 1..=MAX_ATTEMPTS {
            let tx = client.transaction().await.map_err(db)?;
            match work(&tx).await {
                Ok(value) => match tx.commit().await {
                    Ok(()) => return Ok(value),
                    Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => continue,
                    Err(e) => return Err(db(e)),
                },
                Err(Attempt::Retry) if attempt < MAX_ATTEMPTS => {
                    let _ = tx.rollback().await;
                    tokio::time::sleep(std::time::Duration::from_millis(attempt as u64)).await;
                }
                Err(Attempt::Retry) => return Err(gave_up()),
                Err(Attempt::Failed(e)) => {
                    let _ = tx.rollback().await;
                    return Err(e);
                }
            }
        }
        Err(gave_up())
    }
}

fn gave_up() -> StoreError {
    StoreError::internal("gave up after repeated write conflicts")
}

/// The end of one transaction attempt that did not succeed.
enum Attempt {
    /// Lost a race; run again from the start.
    Retry,
    Failed(StoreError),
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        if retryable(&e) {
            Attempt::Retry
        } else {
            Attempt::Failed(db(e))
        }
    }
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Self {
        Attempt::Failed(e)
    }
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

fn db(e: tokio_postgres::Error) -> StoreError {
    // `statement_timeout` (or an operator's cancel): the caller may retry, it is no fault.
    if e.code() == Some(&SqlState::QUERY_CANCELED) {
        return StoreError::Busy(e.to_string());
    }
    if e.is_closed() || e.code().is_none() && e.as_db_error().is_none() {
        StoreError::unavailable_from("PostgreSQL", e)
    } else {
        StoreError::internal_from("PostgreSQL", e)
    }
}

impl Columns for Row {
    fn text(&self, i: usize) -> Result<String, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }

    fn int(&self, i: usize) -> Result<i64, String> {
        let column = self.columns().get(i).ok_or("no such column")?;
        match *column.type_() {
            Type::INT2 => self.try_get::<_, i16>(i).map(i64::from),
            Type::INT4 => self.try_get::<_, i32>(i).map(i64::from),
            _ => self.try_get::<_, i64>(i),
        }
        .map_err(|e| e.to_string())
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }

    fn flag(&self, i: usize) -> Result<bool, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }

    fn json<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, String> {
        self.try_get::<_, Json<T>>(i)
            .map(|Json(v)| v)
            .map_err(|e| e.to_string())
    }
}
