//! PostgreSQL: profile reads and writes. Edits lock their row (`FOR UPDATE`) inside a
//! transaction that is retried when it loses a race with another node.

use super::history::insert_event;
use super::{db, index, listing, pg, Attempt, PostgresStore};
use crate::{batch, rows, sql};
use async_trait::async_trait;
use deadpool_postgres::Transaction;
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
use std::collections::HashMap;
use tokio_postgres::types::Json;

async fn select_for_update(
    tx: &Transaction<'_>,
    env: Env,
    id: &str,
) -> Result<Option<Profile>, Attempt> {
    let stmt = tx
        .prepare_cached(&pg(sql::SELECT_PROFILE_FOR_UPDATE))
        .await?;
    let row = tx.query_opt(&stmt, &[&env.as_str(), &id]).await?;
    Ok(row.as_ref().map(rows::profile).transpose()?)
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
            let stmt = tx.prepare_cached(&pg(sql::INSERT_PROFILE)).await?;
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
            let stmt = tx.prepare_cached(&pg(sql::UPDATE_PROFILE)).await?;
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
    index::sync(tx, env, before, Some(p)).await
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

/// What an applied key says about this edit: `None` if the key is new.
async fn key_applied(
    tx: &Transaction<'_>,
    env: Env,
    once: &OnceKey,
) -> Result<Option<EditOutcome>, Attempt> {
    let seen = tx
        .query_opt(
            pg(sql::SELECT_APPLIED_KEY).as_ref(),
            &[&env.as_str(), &once.key],
        )
        .await?;
    Ok(seen.map(|row| {
        let stored: Option<String> = row.get(0);
        if once.reused_by(stored.as_deref()) {
            EditOutcome::KeyReused
        } else {
            EditOutcome::AlreadyApplied
        }
    }))
}

/// Records an applied idempotency key. Another transaction that committed the same key first
/// makes this one a lost race: it is retried, and then sees the key.
async fn record_key(tx: &Transaction<'_>, env: Env, once: &OnceKey) -> Result<(), Attempt> {
    let inserted = tx
        .execute(
            pg(sql::RECORD_APPLIED_KEY).as_ref(),
            &[
                &env.as_str(),
                &once.key,
                &micros(chrono::Utc::now()),
                &once.fingerprint,
            ],
        )
        .await?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(Attempt::Retry)
    }
}

/// A batch of edits in one transaction (see [`ProfileStore::edit_profiles`]): the profiles it
/// names are locked and read in one statement (in distinct_id order on every node, so crossed
/// batches cannot deadlock), their stored keys in another; the edits then run in memory
/// ([`batch::plan`]) and their results are written set-based: keys, new profiles, updated
/// profiles, history, index rows, counters and registry, one statement each. A key or a new
/// profile another transaction committed first is a lost race: the batch is retried and then
/// sees it.
async fn edit_many(
    tx: &Transaction<'_>,
    env: Env,
    edits: &[BatchEdit],
) -> Result<Vec<Result<EditOutcome, StoreError>>, Attempt> {
    let e = env.as_str();
    let mut ids: Vec<&str> = edits.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let lock = tx
        .prepare_cached(&pg(sql::SELECT_PROFILES_FOR_UPDATE))
        .await?;
    let (mut stored, mut row_ids) = (HashMap::new(), HashMap::new());
    for row in tx.query(&lock, &[&e, &ids]).await? {
        // A row that cannot be read fails its own edits, not the batch.
        let id: String = row.try_get(0)?;
        row_ids.insert(id.clone(), row.try_get::<_, i64>(8)?);
        stored.insert(id, rows::profile(&row));
    }
    let keys: Vec<&str> = edits
        .iter()
        .filter_map(|e| e.once.as_ref().map(|k| k.key.as_str()))
        .collect();
    let mut applied = HashMap::new();
    if !keys.is_empty() {
        let stmt = tx.prepare_cached(&pg(sql::SELECT_APPLIED_KEYS)).await?;
        for row in tx.query(&stmt, &[&e, &keys]).await? {
            applied.insert(row.get::<_, String>(0), row.get::<_, Option<String>>(1));
        }
    }
    let plan = batch::plan(edits, stored, applied, index::shard_of);
    record_keys(tx, env, &plan.keys).await?;

    let (mut created, mut updated) = (Vec::new(), Vec::new());
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    for slot in plan.slots.values().filter(|s| s.written()) {
        let Some(now) = &slot.current else { continue };
        match &slot.stored {
            None => created.push(now),
            Some(before) => updated.push((row_ids[before.distinct_id.as_str()], before, now)),
        }
        let (r, a) = slot.rows();
        removed.push((now, r));
        added.push((now, a));
    }
    let fresh = index::insert_profiles(tx, env, &created).await?;
    if fresh.len() != created.len() {
        // Another node created one of them since the lock was taken.
        return Err(Attempt::Retry);
    }
    row_ids.extend(fresh);
    if index::update_profiles(tx, &updated).await? != updated.len() as u64 {
        return Err(Attempt::Retry);
    }
    let history: Vec<&HistoryEvent> = plan.history.iter().collect();
    super::history::insert_history(tx, env, &history).await?;
    let mut gone = index::IndexRows::default();
    for (p, entries) in &removed {
        gone.add(row_ids[p.distinct_id.as_str()], p, entries);
    }
    gone.delete(tx, env).await?;
    let mut new = index::IndexRows::default();
    for (p, entries) in &added {
        new.add(row_ids[p.distinct_id.as_str()], p, entries);
    }
    new.insert(tx, env).await?;
    index::settle(tx, env, &plan.tally).await?;
    Ok(plan.outcomes)
}

/// Records applied idempotency keys in one statement (in key order, so crossed batches wait
/// rather than deadlock). A key another transaction committed first is a lost race: the caller
/// retries, and then sees the key.
async fn record_keys(tx: &Transaction<'_>, env: Env, keys: &[OnceKey]) -> Result<(), Attempt> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&OnceKey> = keys.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let names: Vec<&str> = sorted.iter().map(|k| k.key.as_str()).collect();
    let fingerprints: Vec<Option<&str>> = sorted.iter().map(|k| k.fingerprint.as_deref()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO applied_keys (env, key, applied_at, fingerprint)
             SELECT $1, k, $2, f FROM UNNEST($3::text[], $4::text[]) AS u(k, f)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let inserted = tx
        .execute(
            &stmt,
            &[
                &env.as_str(),
                &micros(chrono::Utc::now()),
                &names,
                &fingerprints,
            ],
        )
        .await?;
    if inserted == names.len() as u64 {
        Ok(())
    } else {
        Err(Attempt::Retry)
    }
}

/// Erases everything stored about `p` (its row locked by the caller) — its index rows and
/// counters, then every row of [`sql::ERASE_USER`] (profile, history, an earlier tombstone) —
/// and files `tombstone` under the keyed hash of the id, so the raw id stays nowhere (see
/// `herald_core::erasure`). Delete and merge both erase through here.
async fn erase_user(
    tx: &Transaction<'_>,
    env: Env,
    p: &Profile,
    secret: &str,
    mut tombstone: HistoryEvent,
) -> Result<(), Attempt> {
    let erased = erasure::tombstone_id(secret, &p.distinct_id);
    index::sync(tx, env, Some(p), None).await?;
    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&env.as_str(), &p.distinct_id.as_str(), &erased.as_str()];
    for statement in sql::ERASE_USER {
        let stmt = tx.prepare_cached(&pg(statement)).await?;
        tx.execute(&stmt, &args[..sql::arity(statement)]).await?;
    }
    tombstone.distinct_id = erased;
    insert_event(tx, env, &tombstone).await
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

    #[tracing::instrument(level = "debug", skip_all, fields(env = %scope.env()))]
    async fn get_profile(
        &self,
        scope: EnvScope,
        id: &DistinctId,
    ) -> Result<Option<Profile>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&pg(sql::SELECT_PROFILE))
            .await
            .map_err(db)?;
        client
            .query_opt(&stmt, &[&scope.env().as_str(), &id.as_str()])
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::profile)
            .transpose()
    }

    async fn get_profiles(
        &self,
        scope: EnvScope,
        ids: &[DistinctId],
    ) -> Result<Vec<Profile>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(sql::SELECT_PROFILES_IN)
            .await
            .map_err(db)?;
        let ids: Vec<&str> = ids.iter().map(DistinctId::as_str).collect();
        client
            .query(&stmt, &[&scope.env().as_str(), &ids])
            .await
            .map_err(db)?
            .iter()
            .map(rows::profile)
            .collect()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), limit = query.limit))]
    async fn list_profiles(
        &self,
        scope: EnvScope,
        query: &ListQuery,
    ) -> Result<Vec<Profile>, StoreError> {
        let env = scope.env();
        let query = query.clone();
        self.listing(env, move |tx| {
            Box::pin(async move { listing::list(tx, env, &query).await })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn count_profiles(&self, scope: EnvScope, filter: &Filter) -> Result<Count, StoreError> {
        let env = scope.env();
        let filter = filter.clone();
        self.listing(env, move |tx| {
            Box::pin(async move { listing::count(tx, env, &filter).await })
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
        let (env, id, once) = (scope.env(), id.to_string(), once.cloned());
        self.in_transaction(|tx| {
            let (edit, id, once) = (edit.clone(), id.clone(), once.clone());
            Box::pin(async move {
                let existing = select_for_update(tx, env, &id).await?;
                if let Some(key) = &once {
                    if let Some(outcome) = key_applied(tx, env, key).await? {
                        return Ok(outcome);
                    }
                }
                let stored = match edit(existing.as_ref()) {
                    Err(refusal) => return Ok(EditOutcome::Refused(refusal)),
                    Ok(None) => existing,
                    Ok(Some(w)) => {
                        write_profile(tx, env, existing.as_ref(), &w).await?;
                        Some(w.profile)
                    }
                };
                if let Some(key) = &once {
                    record_key(tx, env, key).await?;
                }
                Ok(crate::applied(stored))
            })
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
        let edits = std::sync::Arc::new(edits);
        let done = self
            .in_transaction(|tx| {
                let edits = edits.clone();
                Box::pin(async move { edit_many(tx, env, &edits).await })
            })
            .await;
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
        let env = scope.env();
        let items = std::sync::Arc::new(items);
        self.in_transaction(|tx| {
            let items = items.clone();
            Box::pin(async move { index::import(tx, env, &items).await })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
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

    #[tracing::instrument(skip_all)]
    async fn purge_applied_keys(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(pg(sql::PURGE_APPLIED_KEYS).as_ref(), &[&micros(before)])
            .await
            .map_err(db)
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn merge_profiles(
        &self,
        scope: EnvScope,
        primary: &DistinctId,
        secondary: &DistinctId,
        merge: MergeFn,
    ) -> Result<MergeOutcome, StoreError> {
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
                    return Ok(MergeOutcome::SecondaryMissing);
                };
                match merge(existing.as_ref(), &from) {
                    Err(refusal) => Ok(MergeOutcome::Refused(refusal)),
                    Ok((w, tombstone)) => {
                        write_profile(tx, env, existing.as_ref(), &w).await?;
                        erase_user(tx, env, &from, &secret, tombstone).await?;
                        Ok(MergeOutcome::Merged(Box::new(w.profile)))
                    }
                }
            })
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
        let env = scope.env();
        let mut names: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        names.sort_unstable();
        names.dedup();
        let asked = ids.to_vec();
        let secret = self.erasure_secret().await?;
        self.in_transaction(|tx| {
            let (names, tombstone, asked) = (names.clone(), tombstone.clone(), asked.clone());
            let secret = secret.clone();
            Box::pin(async move {
                // Locked in one order on every node, so two crossed bulk deletes cannot deadlock.
                let lock = tx
                    .prepare_cached(&pg(sql::SELECT_PROFILES_FOR_UPDATE))
                    .await?;
                let found = tx.query(&lock, &[&env.as_str(), &names]).await?;
                let mut gone = Vec::with_capacity(found.len());
                for row in &found {
                    let p = rows::profile(row)?;
                    erase_user(tx, env, &p, &secret, tombstone(&p)).await?;
                    gone.push(p.distinct_id);
                }
                // Report in the order asked, as the SQLite store does.
                Ok(asked.into_iter().filter(|i| gone.contains(i)).collect())
            })
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
        self.history_page(scope.env(), id, before_id, limit).await
    }
}
