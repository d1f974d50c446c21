//! The PostgreSQL backend: any number of stateless Herald nodes on one database. Row locks
//! (`SELECT … FOR UPDATE`) serialise edits of one profile across nodes; a race to create the same
//! profile is retried, never surfaced to the caller.

mod registry;

use crate::limits::{self, EnvSlots};
use crate::StoreOptions;
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use herald_core::credentials::Credentials;
use herald_core::env::{Env, EnvScope};
use herald_core::erasure;
use herald_core::filter::Filter;
use herald_core::history::{Action, HistoryEvent};
use herald_core::ids::DistinctId;
use herald_core::listing::{Count, ListQuery};
use herald_core::preference::Preferences;
use herald_core::profile::{from_micros, micros, Profile, Status};
use herald_core::store::{
    CredentialStore, EditFn, EditOutcome, Imported, MergeFn, OnceKey, ProfileStore, ProfileWrite,
    Refusal, StoreError, TombstoneFn,
};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use tokio_postgres::{NoTls, Row};

/// Schema versions, applied in order; the numbers match SQLite's.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "applied_keys",
        include_str!("migrations/0002_applied_keys.sql"),
    ),
    (
        3,
        "property_index",
        include_str!("migrations/0003_property_index.sql"),
    ),
    (
        4,
        "preferences",
        include_str!("migrations/0004_preferences.sql"),
    ),
    (5, "secrets", include_str!("migrations/0005_secrets.sql")),
    (
        6,
        "timestamp_keys",
        include_str!("migrations/0006_timestamp_keys.sql"),
    ),
    (
        7,
        "idempotency_fingerprint",
        include_str!("migrations/0007_idempotency_fingerprint.sql"),
    ),
];

/// The migration that introduced the index rows: profiles stored before it are indexed when it
/// is applied.
const INDEX_MIGRATION: i64 = 3;

/// Any constant works; it only has to be the same for every Herald node.
const MIGRATION_LOCK: i64 = 0x4845_5241_4c44; // "HERALD"

/// How often a transaction that lost a race (unique violation, deadlock, serialisation) is retried.
const MAX_ATTEMPTS: usize = 20;

pub struct PostgresStore {
    pool: Pool,
    /// Listings per environment (see [`EnvSlots`]).
    listing: EnvSlots,
    statement_timeout: std::time::Duration,
}

impl PostgresStore {
    /// Connects, and applies pending migrations when `migrate` is set.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = PostgresStore {
            pool,
            listing: EnvSlots::new(options.pool_size.max(1)),
            statement_timeout: options.statement_timeout,
        };
        if options.migrate {
            store.migrate().await?;
        } else {
            let client = store.client().await?;
            let current: Option<i64> = client
                .query_one("SELECT MAX(version) FROM herald_migrations", &[])
                .await
                .map(|r| r.get(0))
                .unwrap_or(None);
            crate::check_schema_version(current.unwrap_or(0), MIGRATIONS.len() as i64)?;
        }
        Ok(store)
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

    /// The erasure secret, stored first if there is none (see `herald_core::erasure`).
    async fn erasure_secret(&self) -> Result<String, StoreError> {
        self.server_secret(erasure::SECRET_NAME, &erasure::fresh_secret())
            .await
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Applies missing migrations in one transaction under an advisory lock, so nodes starting
    /// together apply each migration once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS herald_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(db)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM herald_migrations",
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
            tx.batch_execute(sql)
                .await
                .map_err(|e| StoreError::Internal(format!("migration {version} ({name}): {e}")))?;
            tx.execute(
                "INSERT INTO herald_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[version, name, &micros(chrono::Utc::now())],
            )
            .await
            .map_err(db)?;
        }
        // Indexing reads profiles with today's columns, so it runs after every migration.
        if current < INDEX_MIGRATION {
            index_existing_profiles(&tx).await?;
        }
        tx.commit().await.map_err(db)
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
                Err(Attempt::Retry) => {
                    return Err(StoreError::Internal(
                        "gave up after repeated write conflicts".into(),
                    ))
                }
                Err(Attempt::Failed(e)) => {
                    let _ = tx.rollback().await;
                    return Err(e);
                }
            }
        }
        Err(StoreError::Internal(
            "gave up after repeated write conflicts".into(),
        ))
    }
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
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

const PROFILE_COLUMNS: &str =
    "distinct_id, status, properties, identities, created_at, updated_at, version, preferences";

fn profile_from_row(row: &Row) -> Result<Profile, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Internal(format!("stored profile has an unreadable {what}: {e}"))
    };
    let id: String = row.get(0);
    let status: String = row.get(1);
    let Json(properties): Json<serde_json::Map<String, Value>> =
        row.try_get(2).map_err(|e| corrupt("properties", &e))?;
    let Json(identities): Json<Value> = row.try_get(3).map_err(|e| corrupt("identities", &e))?;
    Ok(Profile {
        distinct_id: DistinctId::parse(&id).map_err(|e| corrupt("distinct_id", &e))?,
        status: Status::parse(&status).map_err(|e| corrupt("status", &e))?,
        properties,
        identities: serde_json::from_value(identities).map_err(|e| corrupt("identities", &e))?,
        created_at: from_micros(row.get(4)),
        updated_at: from_micros(row.get(5)),
        version: row.get(6),
        preferences: {
            let Json(prefs): Json<Preferences> =
                row.try_get(7).map_err(|e| corrupt("preferences", &e))?;
            prefs
        },
    })
}

async fn select_for_update(
    tx: &Transaction<'_>,
    env: Env,
    id: &str,
) -> Result<Option<Profile>, Attempt> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {PROFILE_COLUMNS} FROM profiles WHERE env = $1 AND distinct_id = $2 FOR UPDATE"
        ))
        .await?;
    let row = tx.query_opt(&stmt, &[&env.as_str(), &id]).await?;
    Ok(row.as_ref().map(profile_from_row).transpose()?)
}

/// Inserts or updates the profile. A new profile that another node created meanwhile is a lost
/// race: the caller retries and then sees (and locks) that row.
async fn store_profile(
    tx: &Transaction<'_>,
    env: Env,
    before: Option<&Profile>,
    p: &Profile,
) -> Result<(), Attempt> {
    let (props, ids) = (Json(&p.properties), Json(&p.identities));
    let (created, updated) = (micros(p.created_at), micros(p.updated_at));
    let changed = match before {
        None => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, updated_at, version, preferences)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (env, distinct_id) DO NOTHING",
                )
                .await?;
            tx.execute(
                &stmt,
                &[
                    &env.as_str(),
                    &p.distinct_id.as_str(),
                    &p.status.as_str(),
                    &props,
                    &ids,
                    &created,
                    &updated,
                    &p.version,
                    &Json(&p.preferences),
                ],
            )
            .await?
        }
        Some(old) => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE profiles SET status = $3, properties = $4, identities = $5, updated_at = $6, version = $7,
                     preferences = $9 WHERE env = $1 AND distinct_id = $2 AND version = $8",
                )
                .await?;
            tx.execute(
                &stmt,
                &[
                    &env.as_str(),
                    &p.distinct_id.as_str(),
                    &p.status.as_str(),
                    &props,
                    &ids,
                    &updated,
                    &p.version,
                    &old.version,
                    &Json(&p.preferences),
                ],
            )
            .await?
        }
    };
    if changed != 1 {
        return Err(Attempt::Retry);
    }
    registry::sync(tx, env, before, Some(p)).await
}

async fn index_existing_profiles(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let rows = tx
        .query(&format!("SELECT {PROFILE_COLUMNS}, env FROM profiles"), &[])
        .await
        .map_err(db)?;
    for row in &rows {
        let p = profile_from_row(row)?;
        let env: Env = row
            .get::<_, String>(8)
            .parse()
            .map_err(StoreError::Internal)?;
        registry::sync(tx, env, None, Some(&p))
            .await
            .map_err(|e| match e {
                Attempt::Failed(e) => e,
                Attempt::Retry => {
                    StoreError::Internal("indexing existing profiles conflicted".into())
                }
            })?;
    }
    Ok(())
}

async fn insert_event(tx: &Transaction<'_>, env: Env, e: &HistoryEvent) -> Result<(), Attempt> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO history (env, distinct_id, at, actor, action, request, changes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
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

async fn write_profile(
    tx: &Transaction<'_>,
    env: Env,
    before: Option<&Profile>,
    w: &ProfileWrite,
) -> Result<(), Attempt> {
    store_profile(tx, env, before, &w.profile).await?;
    insert_event(tx, env, &w.event).await
}

fn unchanged(existing: Option<Profile>) -> Result<EditOutcome, Refusal> {
    existing
        .map(|p| EditOutcome::Applied(Box::new(p)))
        .ok_or(Refusal::Missing)
}

/// Records an applied idempotency key. Another transaction that committed the same key first
/// makes this one a lost race: it is retried, and then sees the key.
async fn record_key(tx: &Transaction<'_>, env: Env, once: &OnceKey) -> Result<(), Attempt> {
    let inserted = tx
        .execute(
            "INSERT INTO applied_keys (env, key, applied_at, fingerprint) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&env.as_str(), &once.key, &micros(chrono::Utc::now()), &once.fingerprint],
        )
        .await?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(Attempt::Retry)
    }
}

/// Removes `p` with its history (and an earlier tombstone of its id), then files `tombstone`
/// under the keyed hash of the id: the raw id stays nowhere (see `herald_core::erasure`).
async fn remove_profile(
    tx: &Transaction<'_>,
    env: Env,
    p: &Profile,
    secret: &str,
    mut tombstone: HistoryEvent,
) -> Result<(), Attempt> {
    let id = p.distinct_id.as_str();
    let erased = erasure::tombstone_id(secret, &p.distinct_id);
    registry::sync(tx, env, Some(p), None).await?;
    tx.execute(
        "DELETE FROM profiles WHERE env = $1 AND distinct_id = $2",
        &[&env.as_str(), &id],
    )
    .await?;
    tx.execute(
        "DELETE FROM history WHERE env = $1 AND distinct_id IN ($2, $3)",
        &[&env.as_str(), &id, &erased.as_str()],
    )
    .await?;
    tombstone.distinct_id = erased;
    insert_event(tx, env, &tombstone).await?;
    Ok(())
}

const CREDENTIAL_COLUMNS: &str =
    "workspace_key, env, workspace_secret, api_key_hash, api_key_prefix, created_at";

fn credentials_from_row(row: &Row) -> Result<Credentials, StoreError> {
    let env: String = row.get(1);
    Ok(Credentials {
        workspace_key: row.get(0),
        env: env.parse().map_err(StoreError::Internal)?,
        workspace_secret: row.get(2),
        api_key_hash: row.get(3),
        api_key_prefix: row.get(4),
        created_at: from_micros(row.get(5)),
    })
}

impl PostgresStore {
    async fn credentials_where(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE {column} = $1"
            ))
            .await
            .map_err(db)?;
        client
            .query_opt(&stmt, &[&value])
            .await
            .map_err(db)?
            .as_ref()
            .map(credentials_from_row)
            .transpose()
    }
}

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn insert_credentials(&self, c: &Credentials) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!("INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
                &[&c.workspace_key, &c.env.as_str(), &c.workspace_secret, &c.api_key_hash, &c.api_key_prefix, &micros(c.created_at)],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete_credentials(&self, workspace_key: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM credentials WHERE workspace_key = $1",
                &[&workspace_key],
            )
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn list_credentials(&self) -> Result<Vec<Credentials>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY created_at, workspace_key"), &[])
            .await
            .map_err(db)?;
        rows.iter().map(credentials_from_row).collect()
    }

    async fn credentials_by_workspace_key(
        &self,
        key: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        self.credentials_where("workspace_key", key).await
    }

    async fn credentials_by_api_key_hash(
        &self,
        hash: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        self.credentials_where("api_key_hash", hash).await
    }

    async fn server_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &candidate],
            )
            .await
            .map_err(db)?;
        let row = client
            .query_one("SELECT value FROM server_secrets WHERE name = $1", &[&name])
            .await
            .map_err(db)?;
        Ok(row.get(0))
    }

    async fn replace_server_secret(
        &self,
        name: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE server_secrets SET value = $3 WHERE name = $1 AND value = $2",
                &[&name, &expected, &new],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }
}

#[async_trait]
impl ProfileStore for PostgresStore {
    async fn ready(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(db)
    }

    async fn get_profile(
        &self,
        scope: EnvScope,
        id: &DistinctId,
    ) -> Result<Option<Profile>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {PROFILE_COLUMNS} FROM profiles WHERE env = $1 AND distinct_id = $2"
            ))
            .await
            .map_err(db)?;
        client
            .query_opt(&stmt, &[&scope.env().as_str(), &id.as_str()])
            .await
            .map_err(db)?
            .as_ref()
            .map(profile_from_row)
            .transpose()
    }

    async fn list_profiles(
        &self,
        scope: EnvScope,
        query: &ListQuery,
    ) -> Result<Vec<Profile>, StoreError> {
        let env = scope.env();
        let query = query.clone();
        self.listing(env, move |tx| {
            Box::pin(async move { registry::list(tx, env, &query).await })
        })
        .await
    }

    async fn count_profiles(&self, scope: EnvScope, filter: &Filter) -> Result<Count, StoreError> {
        let env = scope.env();
        let filter = filter.clone();
        self.listing(env, move |tx| {
            Box::pin(async move { registry::count(tx, env, &filter).await })
        })
        .await
    }

    async fn edit_profile(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        edit: EditFn,
        once: Option<&OnceKey>,
    ) -> Result<Result<EditOutcome, Refusal>, StoreError> {
        let (env, id, once) = (scope.env(), id.to_string(), once.cloned());
        self.in_transaction(|tx| {
            let (edit, id, once) = (edit.clone(), id.clone(), once.clone());
            Box::pin(async move {
                let existing = select_for_update(tx, env, &id).await?;
                if let Some(key) = &once {
                    let seen = tx
                        .query_opt(
                            "SELECT fingerprint FROM applied_keys WHERE env = $1 AND key = $2",
                            &[&env.as_str(), &key.key],
                        )
                        .await?;
                    if let Some(row) = seen {
                        let stored: Option<String> = row.get(0);
                        return Ok(Ok(if key.reused_by(stored.as_deref()) {
                            EditOutcome::KeyReused
                        } else {
                            EditOutcome::AlreadyApplied
                        }));
                    }
                }
                match edit(existing.as_ref()) {
                    Err(refusal) => Ok(Err(refusal)),
                    Ok(None) => {
                        if let Some(key) = &once {
                            record_key(tx, env, key).await?;
                        }
                        Ok(unchanged(existing))
                    }
                    Ok(Some(w)) => {
                        write_profile(tx, env, existing.as_ref(), &w).await?;
                        if let Some(key) = &once {
                            record_key(tx, env, key).await?;
                        }
                        Ok(Ok(EditOutcome::Applied(Box::new(w.profile))))
                    }
                }
            })
        })
        .await
    }

    async fn import_profiles(
        &self,
        scope: EnvScope,
        items: Vec<Imported>,
    ) -> Result<u64, StoreError> {
        let env = scope.env();
        let items = std::sync::Arc::new(items);
        self.in_transaction(|tx| {
            let items = items.clone();
            Box::pin(async move { registry::import(tx, env, &items).await })
        })
        .await
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        // VACUUM also marks pages all-visible, so index-only scans stop visiting the heap.
        let client = self.client().await?;
        for table in ["profiles", "profile_values", "property_counts", "history"] {
            client
                .batch_execute(&format!("VACUUM (ANALYZE) {table}"))
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    async fn purge_applied_keys(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM applied_keys WHERE applied_at < $1",
                &[&micros(before)],
            )
            .await
            .map_err(db)
    }

    async fn merge_profiles(
        &self,
        scope: EnvScope,
        primary: &DistinctId,
        secondary: &DistinctId,
        merge: MergeFn,
    ) -> Result<Option<Result<Profile, Refusal>>, StoreError> {
        let (env, primary, secondary) = (scope.env(), primary.to_string(), secondary.to_string());
        let secret = self.erasure_secret().await?;
        self.in_transaction(|tx| {
            let (merge, primary, secondary) = (merge.clone(), primary.clone(), secondary.clone());
            let secret = secret.clone();
            Box::pin(async move {
                let (primary, secondary) = (primary.as_str(), secondary.as_str());
                // Lock both rows in one order on every node, so two crossed merges cannot deadlock.
                let (first, second) = if primary < secondary {
                    (primary, secondary)
                } else {
                    (secondary, primary)
                };
                let a = select_for_update(tx, env, first).await?;
                let b = select_for_update(tx, env, second).await?;
                let (existing, from) = if first == primary { (a, b) } else { (b, a) };
                let Some(from) = from else {
                    return Ok(None);
                };
                match merge(existing.as_ref(), &from) {
                    Err(refusal) => Ok(Some(Err(refusal))),
                    Ok((w, tombstone)) => {
                        write_profile(tx, env, existing.as_ref(), &w).await?;
                        remove_profile(tx, env, &from, &secret, tombstone).await?;
                        Ok(Some(Ok(w.profile)))
                    }
                }
            })
        })
        .await
    }

    async fn delete_profiles(
        &self,
        scope: EnvScope,
        ids: &[DistinctId],
        tombstone: TombstoneFn,
    ) -> Result<Vec<DistinctId>, StoreError> {
        let env = scope.env();
        let names: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let asked = ids.to_vec();
        let secret = self.erasure_secret().await?;
        self.in_transaction(|tx| {
            let (names, tombstone, asked) = (names.clone(), tombstone.clone(), asked.clone());
            let secret = secret.clone();
            Box::pin(async move {
                let rows = tx
                    .query(
                        &format!("DELETE FROM profiles WHERE env = $1 AND distinct_id = ANY($2) RETURNING {PROFILE_COLUMNS}"),
                        &[&env.as_str(), &names],
                    )
                    .await?;
                let deleted: Vec<Profile> = rows.iter().map(profile_from_row).collect::<Result<_, _>>()?;
                let gone: Vec<String> = deleted.iter().map(|p| p.distinct_id.to_string()).collect();
                // Their history, an earlier tombstone of the same id, then the new tombstones,
                // filed under the keyed hash of the id (see `herald_core::erasure`).
                let erased: Vec<DistinctId> = deleted.iter().map(|p| erasure::tombstone_id(&secret, &p.distinct_id)).collect();
                let filed: Vec<&str> = gone.iter().map(String::as_str).chain(erased.iter().map(DistinctId::as_str)).collect();
                tx.execute("DELETE FROM history WHERE env = $1 AND distinct_id = ANY($2)", &[&env.as_str(), &filed]).await?;
                for (p, erased) in deleted.iter().zip(erased) {
                    registry::sync(tx, env, Some(p), None).await?;
                    let mut event = tombstone(p);
                    event.distinct_id = erased;
                    insert_event(tx, env, &event).await?;
                }
                // Report in the order asked, as the SQLite store does.
                Ok(asked.into_iter().filter(|i| gone.iter().any(|g| g == i.as_str())).collect())
            })
        })
        .await
    }

    async fn list_history(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let client = self.client().await?;
        // Its own events, and its tombstone (filed under the keyed hash of the id).
        let erased = client
            .query_opt(
                "SELECT value FROM server_secrets WHERE name = $1",
                &[&erasure::SECRET_NAME],
            )
            .await
            .map_err(db)?
            .map_or_else(|| id.clone(), |row| erasure::tombstone_id(row.get(0), id));
        let stmt = client
            .prepare_cached(
                "SELECT id, at, actor, action, request, changes, distinct_id FROM history
                 WHERE env = $1 AND distinct_id IN ($2, $5) AND id < $3 ORDER BY id DESC LIMIT $4",
            )
            .await
            .map_err(db)?;
        let rows = client
            .query(
                &stmt,
                &[
                    &scope.env().as_str(),
                    &id.as_str(),
                    &before_id.unwrap_or(i64::MAX),
                    &((limit + 1) as i64),
                    &erased.as_str(),
                ],
            )
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| {
                let event_id: i64 = row.get(0);
                let bad = |what: &str| {
                    StoreError::Internal(format!("history event {event_id}: unreadable {what}"))
                };
                let action: String = row.get(3);
                let filed_under: &str = row.get(6);
                Ok(HistoryEvent {
                    id: event_id,
                    distinct_id: if filed_under == erased.as_str() {
                        erased.clone()
                    } else {
                        id.clone()
                    },
                    at: from_micros(row.get(1)),
                    actor: row.try_get::<_, Json<_>>(2).map_err(|_| bad("actor"))?.0,
                    action: Action::parse(&action).ok_or_else(|| bad("action"))?,
                    request: row
                        .try_get::<_, Json<Value>>(4)
                        .map_err(|_| bad("request"))?
                        .0,
                    changes: row.try_get::<_, Json<_>>(5).map_err(|_| bad("changes"))?.0,
                })
            })
            .collect()
    }
}
