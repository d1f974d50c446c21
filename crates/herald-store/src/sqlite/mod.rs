//! The embedded SQLite backend (the default): WAL, one batching writer, a few readers.

mod pool;
mod registry;

use crate::StoreOptions;
use async_trait::async_trait;
use herald_core::credentials::Credentials;
use herald_core::env::{Env, EnvScope};
use herald_core::erasure;
use herald_core::filter::Filter;
use herald_core::history::{Action, Actor, HistoryEvent};
use herald_core::ids::DistinctId;
use herald_core::listing::{Count, ListQuery};
use herald_core::profile::{from_micros, micros, Profile, Status};
use herald_core::store::{
    CredentialStore, EditFn, EditOutcome, Imported, MergeFn, OnceKey, ProfileStore, ProfileWrite,
    Refusal, StoreError, TombstoneFn,
};
use pool::{internal, open_connection, Readers, Writer};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;

/// Schema versions, applied in order. PostgreSQL keeps the same numbers.
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

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and, unless told not to, applies pending migrations.
    pub async fn open(path: &Path, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        let path = path.to_owned();
        let readers = options.pool_size.max(1);
        let migrate_now = options.migrate;
        let synchronous = options.sqlite_synchronous;
        let statement_timeout = options.statement_timeout;
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
            }
            let mut conn = open_connection(&path, false, synchronous)?;
            if migrate_now {
                migrate(&mut conn)?;
            } else {
                let current: i64 = conn
                    .query_row(
                        "SELECT COALESCE(MAX(version), 0) FROM herald_migrations",
                        [],
                        |r| r.get(0),
                    )
                    .unwrap_or(0);
                crate::check_schema_version(current, MIGRATIONS.len() as i64)?;
            }
            let readers = (0..readers)
                .map(|_| open_connection(&path, true, synchronous))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SqliteStore {
                writer: Writer::start(conn),
                readers: Readers::new(readers, statement_timeout),
            })
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }
}

/// Applies missing migrations in one transaction; safe when two processes open the file at once.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, MIGRATIONS.len() as i64)
}

/// Applies the missing migrations up to `target` (all of them, outside tests).
fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(internal)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS herald_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(internal)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM herald_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(internal)?;
    for (version, name, sql) in MIGRATIONS
        .iter()
        .filter(|(v, _, _)| *v > current && *v <= target)
    {
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Internal(format!("migration {version} ({name}): {e}")))?;
        tx.execute(
            "INSERT INTO herald_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, micros(chrono::Utc::now())],
        )
        .map_err(internal)?;
    }
    // Indexing reads profiles with today's columns, so it runs after every migration.
    if current < INDEX_MIGRATION && target >= MIGRATIONS.len() as i64 {
        index_existing_profiles(&tx)?;
    }
    tx.commit().map_err(internal)
}

fn index_existing_profiles(conn: &Connection) -> Result<(), StoreError> {
    let mut s = conn
        .prepare(&format!("SELECT env, {PROFILE_COLUMNS} FROM profiles"))
        .map_err(internal)?;
    let rows = s
        .query_map([], |r| {
            let env: String = r.get(0)?;
            Ok((env, profile_from_row_at(r, 1)?))
        })
        .map_err(internal)?;
    for row in rows {
        let (env, p) = row.map_err(internal)?;
        let env: Env = env.parse().map_err(StoreError::Internal)?;
        registry::sync(conn, env, None, Some(&p))?;
    }
    Ok(())
}

const PROFILE_COLUMNS: &str =
    "distinct_id, status, properties, identities, created_at, updated_at, version, preferences";

fn profile_from_row(row: &Row<'_>) -> rusqlite::Result<Profile> {
    profile_from_row_at(row, 0)
}

/// A profile from the columns of [`PROFILE_COLUMNS`], starting at column `at`.
fn profile_from_row_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Profile> {
    let id: String = row.get(at)?;
    let status: String = row.get(at + 1)?;
    let properties: String = row.get(at + 2)?;
    let identities: String = row.get(at + 3)?;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {e}").into(),
        )
    };
    Ok(Profile {
        distinct_id: DistinctId::parse(&id).map_err(|e| corrupt("distinct_id", &e))?,
        status: Status::parse(&status).map_err(|e| corrupt("status", &e))?,
        properties: serde_json::from_str(&properties).map_err(|e| corrupt("properties", &e))?,
        identities: serde_json::from_str(&identities).map_err(|e| corrupt("identities", &e))?,
        created_at: from_micros(row.get(at + 4)?),
        updated_at: from_micros(row.get(at + 5)?),
        version: row.get(at + 6)?,
        preferences: serde_json::from_str(&row.get::<_, String>(at + 7)?)
            .map_err(|e| corrupt("preferences", &e))?,
    })
}

fn select_profile(conn: &Connection, env: Env, id: &str) -> Result<Option<Profile>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {PROFILE_COLUMNS} FROM profiles WHERE env = ?1 AND distinct_id = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![env.as_str(), id], profile_from_row)
            .optional()
    })
    .map_err(internal)
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("profile parts serialise to JSON")
}

fn store_profile(
    conn: &Connection,
    env: Env,
    before: Option<&Profile>,
    p: &Profile,
) -> Result<(), StoreError> {
    let (props, ids, prefs) = (
        json(&p.properties),
        json(&p.identities),
        json(&p.preferences),
    );
    let changed = match before {
        None => conn
            .prepare_cached(
                "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, updated_at, version, preferences)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    env.as_str(),
                    p.distinct_id.as_str(),
                    p.status.as_str(),
                    props,
                    ids,
                    micros(p.created_at),
                    micros(p.updated_at),
                    p.version,
                    prefs
                ])
            }),
        Some(old) => conn
            .prepare_cached(
                "UPDATE profiles SET status = ?3, properties = ?4, identities = ?5, updated_at = ?6, version = ?7,
                 preferences = ?9 WHERE env = ?1 AND distinct_id = ?2 AND version = ?8",
            )
            .and_then(|mut s| {
                s.execute(params![
                    env.as_str(),
                    p.distinct_id.as_str(),
                    p.status.as_str(),
                    props,
                    ids,
                    micros(p.updated_at),
                    p.version,
                    old.version,
                    prefs
                ])
            }),
    }
    .map_err(internal)?;
    if changed != 1 {
        return Err(StoreError::Internal(format!(
            "profile '{}' changed under the writer",
            p.distinct_id
        )));
    }
    registry::sync(conn, env, before, Some(p))
}

fn insert_event(conn: &Connection, env: Env, e: &HistoryEvent) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO history (env, distinct_id, at, actor, action, request, changes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            env.as_str(),
            e.distinct_id.as_str(),
            micros(e.at),
            json(&e.actor),
            e.action.as_str(),
            json(&e.request),
            json(&e.changes)
        ])
    })
    .map_err(internal)?;
    Ok(())
}

fn write_profile(
    conn: &Connection,
    env: Env,
    before: Option<&Profile>,
    w: &ProfileWrite,
) -> Result<(), StoreError> {
    store_profile(conn, env, before, &w.profile)?;
    insert_event(conn, env, &w.event)
}

fn unchanged(existing: Option<Profile>) -> Result<EditOutcome, Refusal> {
    existing
        .map(|p| EditOutcome::Applied(Box::new(p)))
        .ok_or(Refusal::Missing)
}

/// What an applied key says about this edit: `None` if the key is new.
fn key_applied(
    conn: &Connection,
    env: Env,
    once: &OnceKey,
) -> Result<Option<EditOutcome>, StoreError> {
    let stored: Option<Option<String>> = conn
        .prepare_cached("SELECT fingerprint FROM applied_keys WHERE env = ?1 AND key = ?2")
        .and_then(|mut s| {
            s.query_row(params![env.as_str(), once.key], |r| r.get(0))
                .optional()
        })
        .map_err(internal)?;
    Ok(stored.map(|f| {
        if once.reused_by(f.as_deref()) {
            EditOutcome::KeyReused
        } else {
            EditOutcome::AlreadyApplied
        }
    }))
}

fn record_key(conn: &Connection, env: Env, once: &OnceKey) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO applied_keys (env, key, applied_at, fingerprint) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| {
        s.execute(params![
            env.as_str(),
            once.key,
            micros(chrono::Utc::now()),
            once.fingerprint
        ])
    })
    .map_err(internal)?;
    Ok(())
}

/// Removes `p` with its history (and an earlier tombstone of its id), then files `tombstone`
/// under the keyed hash of the id: the raw id stays nowhere (see `herald_core::erasure`).
fn remove_profile(
    conn: &Connection,
    env: Env,
    p: &Profile,
    mut tombstone: HistoryEvent,
) -> Result<(), StoreError> {
    let id = p.distinct_id.as_str();
    let erased = erasure_secret(conn, true)?
        .map(|secret| erasure::tombstone_id(&secret, &p.distinct_id))
        .expect("the secret was just stored");
    registry::sync(conn, env, Some(p), None)?;
    conn.prepare_cached("DELETE FROM profiles WHERE env = ?1 AND distinct_id = ?2")
        .and_then(|mut s| s.execute(params![env.as_str(), id]))
        .map_err(internal)?;
    conn.prepare_cached("DELETE FROM history WHERE env = ?1 AND distinct_id IN (?2, ?3)")
        .and_then(|mut s| s.execute(params![env.as_str(), id, erased.as_str()]))
        .map_err(internal)?;
    tombstone.distinct_id = erased;
    insert_event(conn, env, &tombstone)
}

/// The erasure secret; with `create`, one is stored first if there is none.
fn erasure_secret(conn: &Connection, create: bool) -> Result<Option<String>, StoreError> {
    if create {
        conn.prepare_cached(
            "INSERT INTO server_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![erasure::SECRET_NAME, erasure::fresh_secret()]))
        .map_err(internal)?;
    }
    conn.prepare_cached("SELECT value FROM server_secrets WHERE name = ?1")
        .and_then(|mut s| s.query_row([erasure::SECRET_NAME], |r| r.get(0)).optional())
        .map_err(internal)
}

fn credentials_from_row(row: &Row<'_>) -> rusqlite::Result<Credentials> {
    let env: String = row.get(1)?;
    Ok(Credentials {
        workspace_key: row.get(0)?,
        env: env.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
        })?,
        workspace_secret: row.get(2)?,
        api_key_hash: row.get(3)?,
        api_key_prefix: row.get(4)?,
        created_at: from_micros(row.get(5)?),
    })
}

const CREDENTIAL_COLUMNS: &str =
    "workspace_key, env, workspace_secret, api_key_hash, api_key_prefix, created_at";

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn insert_credentials(&self, c: &Credentials) -> Result<(), StoreError> {
        let c = c.clone();
        self.writer
            .write(move |conn| {
                conn.execute(
                    &format!("INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                    params![c.workspace_key, c.env.as_str(), c.workspace_secret, c.api_key_hash, c.api_key_prefix, micros(c.created_at)],
                )
                .map(|_| ())
                .map_err(internal)
            })
            .await
    }

    async fn delete_credentials(&self, workspace_key: &str) -> Result<bool, StoreError> {
        let key = workspace_key.to_owned();
        self.writer
            .write(move |conn| {
                conn.execute("DELETE FROM credentials WHERE workspace_key = ?1", [key])
                    .map(|n| n > 0)
                    .map_err(internal)
            })
            .await
    }

    async fn list_credentials(&self) -> Result<Vec<Credentials>, StoreError> {
        self.readers
            .read(|conn| {
                let mut s = conn
                    .prepare_cached(&format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY created_at, workspace_key"))
                    .map_err(internal)?;
                let rows = s.query_map([], credentials_from_row).map_err(internal)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(internal)
            })
            .await
    }

    async fn credentials_by_workspace_key(
        &self,
        key: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let key = key.to_owned();
        self.readers
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE workspace_key = ?1"
                ))
                .and_then(|mut s| s.query_row([key], credentials_from_row).optional())
                .map_err(internal)
            })
            .await
    }

    async fn credentials_by_api_key_hash(
        &self,
        hash: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let hash = hash.to_owned();
        self.readers
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE api_key_hash = ?1"
                ))
                .and_then(|mut s| s.query_row([hash], credentials_from_row).optional())
                .map_err(internal)
            })
            .await
    }

    async fn server_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let (name, candidate) = (name.to_owned(), candidate.to_owned());
        self.writer
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO server_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                    params![name, candidate],
                )
                .map_err(internal)?;
                conn.query_row(
                    "SELECT value FROM server_secrets WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .map_err(internal)
            })
            .await
    }

    async fn replace_server_secret(
        &self,
        name: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let (name, expected, new) = (name.to_owned(), expected.to_owned(), new.to_owned());
        self.writer
            .write(move |conn| {
                conn.execute(
                    "UPDATE server_secrets SET value = ?3 WHERE name = ?1 AND value = ?2",
                    params![name, expected, new],
                )
                .map(|n| n == 1)
                .map_err(internal)
            })
            .await
    }
}

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn ready(&self) -> Result<(), StoreError> {
        self.writer.check_alive()
    }

    async fn get_profile(
        &self,
        scope: EnvScope,
        id: &DistinctId,
    ) -> Result<Option<Profile>, StoreError> {
        let id = id.to_string();
        self.readers
            .read(move |conn| select_profile(conn, scope.env(), &id))
            .await
    }

    async fn list_profiles(
        &self,
        scope: EnvScope,
        query: &ListQuery,
    ) -> Result<Vec<Profile>, StoreError> {
        let query = query.clone();
        self.readers
            .read_listing(scope.env(), move |conn| {
                registry::list(conn, scope.env(), &query)
            })
            .await
    }

    async fn count_profiles(&self, scope: EnvScope, filter: &Filter) -> Result<Count, StoreError> {
        let filter = filter.clone();
        self.readers
            .read_listing(scope.env(), move |conn| {
                registry::count(conn, scope.env(), &filter)
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
        let (id, once) = (id.to_string(), once.cloned());
        self.writer
            .write(move |conn| {
                let env = scope.env();
                let existing = select_profile(conn, env, &id)?;
                if let Some(key) = &once {
                    if let Some(outcome) = key_applied(conn, env, key)? {
                        return Ok(Ok(outcome));
                    }
                }
                match edit(existing.as_ref()) {
                    Err(refusal) => Ok(Err(refusal)),
                    Ok(None) => {
                        if let Some(key) = &once {
                            record_key(conn, env, key)?;
                        }
                        Ok(unchanged(existing))
                    }
                    Ok(Some(w)) => {
                        write_profile(conn, env, existing.as_ref(), &w)?;
                        if let Some(key) = &once {
                            record_key(conn, env, key)?;
                        }
                        Ok(Ok(EditOutcome::Applied(Box::new(w.profile))))
                    }
                }
            })
            .await
    }

    async fn import_profiles(
        &self,
        scope: EnvScope,
        items: Vec<Imported>,
    ) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| {
                let env = scope.env();
                let mut created = 0;
                for w in &items {
                    let p = &w.profile;
                    let inserted = conn
                        .prepare_cached(
                            "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, updated_at, version, preferences)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (env, distinct_id) DO NOTHING",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                env.as_str(),
                                p.distinct_id.as_str(),
                                p.status.as_str(),
                                json(&p.properties),
                                json(&p.identities),
                                micros(p.created_at),
                                micros(p.updated_at),
                                p.version,
                                json(&p.preferences)
                            ])
                        })
                        .map_err(internal)?;
                    if inserted == 1 {
                        registry::sync(conn, env, None, Some(p))?;
                        for event in &w.history {
                            insert_event(conn, env, event)?;
                        }
                        created += 1;
                    }
                }
                Ok(created)
            })
            .await
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        self.writer
            .write(|conn| conn.execute_batch("PRAGMA optimize").map_err(internal))
            .await
    }

    async fn purge_applied_keys(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let before = micros(before);
        self.writer
            .write(move |conn| {
                conn.execute("DELETE FROM applied_keys WHERE applied_at < ?1", [before])
                    .map(|n| n as u64)
                    .map_err(internal)
            })
            .await
    }

    async fn merge_profiles(
        &self,
        scope: EnvScope,
        primary: &DistinctId,
        secondary: &DistinctId,
        merge: MergeFn,
    ) -> Result<Option<Result<Profile, Refusal>>, StoreError> {
        let (primary, secondary) = (primary.to_string(), secondary.to_string());
        self.writer
            .write(move |conn| {
                let env = scope.env();
                let Some(from) = select_profile(conn, env, &secondary)? else {
                    return Ok(None);
                };
                let existing = select_profile(conn, env, &primary)?;
                match merge(existing.as_ref(), &from) {
                    Err(refusal) => Ok(Some(Err(refusal))),
                    Ok((w, tombstone)) => {
                        write_profile(conn, env, existing.as_ref(), &w)?;
                        remove_profile(conn, env, &from, tombstone)?;
                        Ok(Some(Ok(w.profile)))
                    }
                }
            })
            .await
    }

    async fn delete_profiles(
        &self,
        scope: EnvScope,
        ids: &[DistinctId],
        tombstone: TombstoneFn,
    ) -> Result<Vec<DistinctId>, StoreError> {
        let ids = ids.to_vec();
        self.writer
            .write(move |conn| {
                let env = scope.env();
                let mut deleted = Vec::new();
                for id in ids {
                    if let Some(p) = select_profile(conn, env, id.as_str())? {
                        remove_profile(conn, env, &p, tombstone(&p))?;
                        deleted.push(id);
                    }
                }
                Ok(deleted)
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
        let id = id.clone();
        self.readers
            .read(move |conn| {
                // Its own events, and its tombstone (filed under the keyed hash of the id).
                let erased = erasure_secret(conn, false)?
                    .map_or_else(|| id.clone(), |secret| erasure::tombstone_id(&secret, &id));
                let mut s = conn
                    .prepare_cached(
                        "SELECT id, at, actor, action, request, changes, distinct_id FROM history
                         WHERE env = ?1 AND distinct_id IN (?2, ?5) AND id < ?3 ORDER BY id DESC LIMIT ?4",
                    )
                    .map_err(internal)?;
                let rows = s
                    .query_map(
                        params![
                            scope.env().as_str(),
                            id.as_str(),
                            before_id.unwrap_or(i64::MAX),
                            (limit + 1) as i64,
                            erased.as_str()
                        ],
                        |row| {
                            let actor: String = row.get(2)?;
                            let action: String = row.get(3)?;
                            let request: String = row.get(4)?;
                            let changes: String = row.get(5)?;
                            let filed_under: String = row.get(6)?;
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, i64>(1)?,
                                actor,
                                action,
                                request,
                                changes,
                                filed_under,
                            ))
                        },
                    )
                    .map_err(internal)?;
                let mut events = Vec::new();
                for row in rows {
                    let (event_id, at, actor, action, request, changes, filed_under) =
                        row.map_err(internal)?;
                    let bad = |what: &str| {
                        StoreError::Internal(format!("history event {event_id}: unreadable {what}"))
                    };
                    events.push(HistoryEvent {
                        id: event_id,
                        distinct_id: if filed_under == erased.as_str() {
                            erased.clone()
                        } else {
                            id.clone()
                        },
                        at: from_micros(at),
                        actor: serde_json::from_str::<Actor>(&actor).map_err(|_| bad("actor"))?,
                        action: Action::parse(&action).ok_or_else(|| bad("action"))?,
                        request: serde_json::from_str(&request).map_err(|_| bad("request"))?,
                        changes: serde_json::from_str(&changes).map_err(|_| bad("changes"))?,
                    });
                }
                Ok(events)
            })
            .await
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;

    /// A database made before the filter index holds profiles; upgrading indexes them, so
    /// filters, counts and the registry see them.
    #[test]
    fn upgrading_indexes_profiles_stored_before_the_index_existed() {
        let dir = std::env::temp_dir().join(format!("herald-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, 2).unwrap();
        conn.execute(
            "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, updated_at, version)
             VALUES ('test', 'ada', 'enabled', '{\"name\":\"Ada\",\"plan\":\"pro\"}', '[]', 1, 1, 1)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            count("SELECT COUNT(*) FROM profile_values WHERE distinct_id = 'ada' AND key = 'plan' AND text_value = 'pro'"),
            1
        );
        assert_eq!(
            count("SELECT SUM(n) FROM property_counts WHERE env = 'test' AND key = '*'"),
            1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM properties WHERE key = 'plan'"),
            1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM profiles WHERE preferences = '{}'"),
            1
        );
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Labels given to the built-in timestamps under their old keys follow them to `$` keys.
    #[test]
    fn upgrading_moves_timestamp_overrides_to_their_dollar_keys() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 5).unwrap();
        conn.execute(
            "INSERT INTO properties (env, key, kind, label, description, show_in_table, declared_type, declared, types_seen, created_at)
             VALUES ('live', 'created_at', 'general', 'Signed up', '', 0, NULL, 0, 0, 0)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let label: String = conn
            .query_row(
                "SELECT label FROM properties WHERE env = 'live' AND key = '$created_at'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(label, "Signed up");
    }
}
