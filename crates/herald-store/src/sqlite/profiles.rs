//! SQLite: profile reads and writes. Every write runs on the single writer thread, which
//! serialises edits of one profile (no row locks, no retries), each job in its own savepoint.

use super::history::{self, erasure_secret, insert_event};
use super::index::Ids;
use super::pool::internal;
use super::{execute, index, json, listing, query_opt, value, SqliteStore};
use crate::batch::Tally;
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::env::{Env, EnvScope};
use herald_core::erasure;
use herald_core::filter::Filter;
use herald_core::history::HistoryEvent;
use herald_core::ids::DistinctId;
use herald_core::listing::{Count, ListQuery};
use herald_core::profile::{micros, Profile};
use herald_core::store::{
    BatchEdit, EditFn, EditOutcome, Imported, MergeFn, MergeOutcome, OnceKey, ProfileStore,
    ProfileWrite, StoreError, TombstoneFn,
};
use rusqlite::{params, Connection};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn select_profile(conn: &Connection, env: Env, id: &str) -> Result<Option<Profile>, StoreError> {
    query_opt(conn, sql::SELECT_PROFILE, params![env.as_str(), id], |r| {
        rows::profile(r)
    })
}

/// Inserts `p`; 0 rows when the id exists already.
fn insert_profile(conn: &Connection, env: Env, p: &Profile) -> Result<usize, StoreError> {
    execute(
        conn,
        sql::INSERT_PROFILE,
        params![
            env.as_str(),
            p.distinct_id.as_str(),
            p.status.as_str(),
            json(&p.properties),
            json(&p.identities),
            micros(p.created_at),
            micros(p.updated_at),
            p.version,
            json(&p.preferences)
        ],
    )
}

fn store_profile(
    conn: &Connection,
    env: Env,
    before: Option<&Profile>,
    p: &Profile,
    tally: &mut Tally,
    ids: &mut Ids,
) -> Result<(), StoreError> {
    let mut row = None;
    let changed = match before {
        None => {
            let n = insert_profile(conn, env, p)?;
            if n == 1 {
                row = Some(conn.last_insert_rowid());
            }
            n
        }
        Some(old) => execute(
            conn,
            sql::UPDATE_PROFILE,
            params![
                env.as_str(),
                p.distinct_id.as_str(),
                p.status.as_str(),
                json(&p.properties),
                json(&p.identities),
                micros(p.updated_at),
                p.version,
                old.version,
                json(&p.preferences)
            ],
        )?,
    };
    if changed != 1 {
        return Err(StoreError::internal(format!(
            "profile '{}' changed under the writer",
            p.distinct_id
        )));
    }
    index::rows(conn, env, row, before, Some(p), tally, ids)
}

/// Stores `w` and its history event; its counter deltas and sightings go to `tally`.
fn write_profile(
    conn: &Connection,
    env: Env,
    before: Option<&Profile>,
    w: &ProfileWrite,
    tally: &mut Tally,
    ids: &mut Ids,
) -> Result<(), StoreError> {
    store_profile(conn, env, before, &w.profile, tally, ids)?;
    insert_event(conn, env, &w.event, ids)
}

/// One edit, as [`ProfileStore::edit_profile`] runs it inside the writer's transaction; its
/// counter deltas and sightings go to `tally` (for [`index::settle`]), the ids it reads or
/// makes to `ids`.
fn edit_one(
    conn: &Connection,
    env: Env,
    id: &str,
    edit: &EditFn,
    once: Option<&OnceKey>,
    tally: &mut Tally,
    ids: &mut Ids,
) -> Result<EditOutcome, StoreError> {
    let existing = select_profile(conn, env, id)?;
    if let Some(key) = once {
        if let Some(outcome) = key_applied(conn, env, key)? {
            return Ok(outcome);
        }
    }
    let stored = match edit(existing.as_ref()) {
        Err(refusal) => return Ok(EditOutcome::Refused(refusal)),
        Ok(None) => existing,
        Ok(Some(w)) => {
            write_profile(conn, env, existing.as_ref(), &w, tally, ids)?;
            Some(w.profile)
        }
    };
    if let Some(key) = once {
        record_key(conn, env, key)?;
    }
    Ok(crate::applied(stored))
}

/// The edits of a batch, in order, with no savepoint of their own: each edit is all or nothing
/// because its closure decides before anything is written, and a storage fault in any edit
/// fails the whole job (run alone, the writer rolls back its transaction) after setting
/// `faulted`, so the caller runs the batch again with [`edit_each`]. A savepoint per edit costs
/// a copy of every page it changes into SQLite's sub-journal: the fast path takes none. The
/// counters and registry sightings are applied once at the end.
fn edit_all(
    conn: &Connection,
    env: Env,
    edits: &[BatchEdit],
    faulted: &AtomicBool,
) -> Result<Vec<EditOutcome>, StoreError> {
    let mut tally = Tally::default();
    // One job, rolled back whole on a fault: the ids it reads stay valid to its end.
    let mut ids = Ids::default();
    let mut out = Vec::with_capacity(edits.len());
    for e in edits {
        let result = catch_unwind(AssertUnwindSafe(|| {
            edit_one(
                conn,
                env,
                e.id.as_str(),
                &e.edit,
                e.once.as_ref(),
                &mut tally,
                &mut ids,
            )
        }))
        .unwrap_or_else(|_| Err(StoreError::internal("an edit of a batch panicked")));
        match result {
            Ok(outcome) => out.push(outcome),
            Err(fault) => {
                faulted.store(true, Ordering::SeqCst);
                return Err(fault);
            }
        }
    }
    index::settle(conn, env, &tally)?;
    Ok(out)
}

/// The edits of a batch, in order, each in its own savepoint inside the writer's job: an edit
/// that fails (or panics) rolls back alone and answers with its fault. The counters and
/// registry sightings of the edits that succeeded are applied once at the end. `Err`: the job
/// as a whole failed.
fn edit_each(
    conn: &Connection,
    env: Env,
    edits: &[BatchEdit],
) -> Result<Vec<Result<EditOutcome, StoreError>>, StoreError> {
    let mut tally = Tally::default();
    let mut out = Vec::with_capacity(edits.len());
    for e in edits {
        conn.execute_batch("SAVEPOINT edit").map_err(internal)?;
        let mut mine = Tally::default();
        // An edit rolled back alone may take back a key or actor it made: its ids are its own.
        let result = catch_unwind(AssertUnwindSafe(|| {
            edit_one(
                conn,
                env,
                e.id.as_str(),
                &e.edit,
                e.once.as_ref(),
                &mut mine,
                &mut Ids::default(),
            )
        }))
        .unwrap_or_else(|_| Err(StoreError::internal("an edit of a batch panicked")));
        // SQLite may have rolled back the whole transaction (I/O error, disk full): the writer
        // fails the job, so nothing of it is half-committed.
        if conn.is_autocommit() {
            return Err(StoreError::unavailable(
                "SQLite rolled back the write transaction in a batch of edits",
            ));
        }
        if result.is_ok() {
            conn.execute_batch("RELEASE edit").map_err(internal)?;
            tally.merge(mine);
        } else {
            conn.execute_batch("ROLLBACK TO edit; RELEASE edit")
                .map_err(internal)?;
        }
        out.push(result);
    }
    index::settle(conn, env, &tally)?;
    Ok(out)
}

/// What an applied key says about this edit: `None` if the key is new.
fn key_applied(
    conn: &Connection,
    env: Env,
    once: &OnceKey,
) -> Result<Option<EditOutcome>, StoreError> {
    let stored: Option<Option<String>> = value(
        conn,
        sql::SELECT_APPLIED_KEY,
        params![env.as_str(), once.key],
    )?;
    Ok(stored.map(|f| {
        if once.reused_by(f.as_deref()) {
            EditOutcome::KeyReused
        } else {
            EditOutcome::AlreadyApplied
        }
    }))
}

fn record_key(conn: &Connection, env: Env, once: &OnceKey) -> Result<(), StoreError> {
    execute(
        conn,
        sql::RECORD_APPLIED_KEY,
        params![
            env.as_str(),
            once.key,
            micros(chrono::Utc::now()),
            once.fingerprint
        ],
    )
    .map(drop)
}

/// Erases everything stored about `p` — its index rows and counters, then every row of
/// [`sql::ERASE_USER`] (profile, history, an earlier tombstone) — and files `tombstone` under
/// the keyed hash of the id, so the raw id stays nowhere (see `herald_core::erasure`). Delete
/// and merge both erase through here.
fn erase_user(
    conn: &Connection,
    env: Env,
    p: &Profile,
    mut tombstone: HistoryEvent,
) -> Result<(), StoreError> {
    let secret = erasure_secret(conn, true)?.expect("the secret was just stored");
    let erased = erasure::tombstone_id(&secret, &p.distinct_id);
    index::sync(conn, env, Some(p), None)?;
    let args = [env.as_str(), p.distinct_id.as_str(), erased.as_str()];
    for statement in sql::ERASE_USER {
        execute(
            conn,
            statement,
            rusqlite::params_from_iter(&args[..sql::arity(statement)]),
        )?;
    }
    tombstone.distinct_id = erased;
    insert_event(conn, env, &tombstone, &mut Ids::default())
}

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn ready(&self) -> Result<(), StoreError> {
        self.writer.check_alive()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(env = %scope.env()))]
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

    async fn get_profiles(
        &self,
        scope: EnvScope,
        ids: &[DistinctId],
    ) -> Result<Vec<Profile>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        self.readers
            .read(move |conn| {
                let mut found = Vec::with_capacity(ids.len());
                for id in &ids {
                    found.extend(select_profile(conn, scope.env(), id)?);
                }
                Ok(found)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), limit = query.limit))]
    async fn list_profiles(
        &self,
        scope: EnvScope,
        query: &ListQuery,
    ) -> Result<Vec<Profile>, StoreError> {
        let query = query.clone();
        self.readers
            .read_listing(scope.env(), move |conn| {
                listing::list(conn, scope.env(), &query)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn count_profiles(&self, scope: EnvScope, filter: &Filter) -> Result<Count, StoreError> {
        let filter = filter.clone();
        self.readers
            .read_listing(scope.env(), move |conn| {
                listing::count(conn, scope.env(), &filter)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), once = once.is_some()))]
    async fn edit_profile(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        edit: EditFn,
        once: Option<&OnceKey>,
    ) -> Result<EditOutcome, StoreError> {
        let (id, once) = (id.to_string(), once.cloned());
        self.writer
            .write(move |conn| {
                let env = scope.env();
                let mut tally = Tally::default();
                let mut ids = Ids::default();
                let outcome = edit_one(conn, env, &id, &edit, once.as_ref(), &mut tally, &mut ids)?;
                index::settle(conn, env, &tally)?;
                Ok(outcome)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), edits = edits.len()))]
    async fn edit_profiles(
        &self,
        scope: EnvScope,
        edits: Vec<BatchEdit>,
    ) -> Vec<Result<EditOutcome, StoreError>> {
        let (env, n) = (scope.env(), edits.len());
        let edits = Arc::new(edits);
        let faulted = Arc::new(AtomicBool::new(false));
        let fast = {
            let (edits, faulted) = (edits.clone(), faulted.clone());
            self.writer
                .write_alone(move |conn| edit_all(conn, env, &edits, &faulted))
                .await
        };
        let done = match fast {
            Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
            // An edit hit a storage fault and the job was rolled back: again, each edit in its
            // own savepoint, so the faulty one fails alone.
            Err(_) if faulted.load(Ordering::SeqCst) => {
                self.writer
                    .write_alone(move |conn| edit_each(conn, env, &edits))
                    .await
            }
            Err(e) => Err(e),
        };
        match done {
            Ok(outcomes) => outcomes,
            Err(e) => (0..n).map(|_| Err(e.for_each_caller())).collect(),
        }
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), profiles = items.len()))]
    async fn import_profiles(
        &self,
        scope: EnvScope,
        items: Vec<Imported>,
    ) -> Result<u64, StoreError> {
        self.writer
            .write_alone(move |conn| {
                let env = scope.env();
                let mut created = 0;
                let mut tally = Tally::default();
                let mut ids = Ids::default();
                for w in &items {
                    if insert_profile(conn, env, &w.profile)? == 1 {
                        let row = Some(conn.last_insert_rowid());
                        let p = Some(&w.profile);
                        index::rows(conn, env, row, None, p, &mut tally, &mut ids)?;
                        for event in &w.history {
                            insert_event(conn, env, event, &mut ids)?;
                        }
                        created += 1;
                    }
                }
                index::settle(conn, env, &tally)?;
                Ok(created)
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        self.writer
            .write(|conn| conn.execute_batch("PRAGMA optimize").map_err(internal))
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_applied_keys(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let before = micros(before);
        self.writer
            .write(move |conn| execute(conn, sql::PURGE_APPLIED_KEYS, [before]).map(|n| n as u64))
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn merge_profiles(
        &self,
        scope: EnvScope,
        primary: &DistinctId,
        secondary: &DistinctId,
        merge: MergeFn,
    ) -> Result<MergeOutcome, StoreError> {
        let (primary, secondary) = (primary.to_string(), secondary.to_string());
        self.writer
            .write(move |conn| {
                let env = scope.env();
                let Some(from) = select_profile(conn, env, &secondary)? else {
                    return Ok(MergeOutcome::SecondaryMissing);
                };
                let existing = select_profile(conn, env, &primary)?;
                match merge(existing.as_ref(), &from) {
                    Err(refusal) => Ok(MergeOutcome::Refused(refusal)),
                    Ok((w, tombstone)) => {
                        let mut tally = Tally::default();
                        let mut ids = Ids::default();
                        write_profile(conn, env, existing.as_ref(), &w, &mut tally, &mut ids)?;
                        index::settle(conn, env, &tally)?;
                        erase_user(conn, env, &from, tombstone)?;
                        Ok(MergeOutcome::Merged(Box::new(w.profile)))
                    }
                }
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), asked = ids.len()))]
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
                        erase_user(conn, env, &p, tombstone(&p))?;
                        deleted.push(id);
                    }
                }
                Ok(deleted)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), limit = limit))]
    async fn list_history(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| history::page(conn, scope.env(), &id, before_id, limit))
            .await
    }
}
