//! Profile use cases: get, list, upsert, edit, status, merge, delete, history.

use super::{limits, Ctx, Error};
use crate::history::{diff, Action, HistoryEvent};
use crate::ids::DistinctId;
use crate::listing::{Count, Cursor, ListQuery, Page, PagePosition, Sort, SortField};
use crate::ops::{self, Assign, Op, Step};
use crate::profile::{Profile, Status};
use crate::store::{
    BatchEdit, EditFn, EditOutcome, MergeFn, MergeOutcome, OnceKey, ProfileWrite, Refusal, Store,
    TombstoneFn,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::Arc;

#[tracing::instrument(level = "debug", skip_all, fields(env = %ctx.scope.env(), op = "profiles.get"))]
pub async fn get(store: &dyn Store, ctx: &Ctx, id: &DistinctId) -> Result<Profile, Error> {
    store
        .get_profile(ctx.scope, id)
        .await?
        .ok_or_else(|| Error::user_not_found(id))
}

pub struct Listing {
    pub page: Page<Profile>,
    pub count: Option<Count>,
}

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.list"))]
pub async fn list(
    store: &dyn Store,
    ctx: &Ctx,
    query: &ListQuery,
    with_count: bool,
) -> Result<Listing, Error> {
    let rows = store.list_profiles(ctx.scope, query).await?;
    // Unfiltered, the count is a counter read, so it is always given, as SuprSend's listing does.
    let count = if with_count || query.filter.is_empty() {
        Some(store.count_profiles(ctx.scope, &query.filter).await?)
    } else {
        None
    };
    Ok(Listing {
        page: Page::assemble(query, rows),
        count,
    })
}

/// `POST /v1/user/{id}/`: properties are set, channel identities added to those already held.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.upsert"))]
pub async fn upsert(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    body: &Value,
) -> Result<Profile, Error> {
    let ops = ops::upsert_operations(body)?;
    apply(store, ctx, id, ops, body.clone(), true).await
}

/// `PATCH /v1/user/{id}/` and identity events: the operations, in order, all or nothing. A profile
/// that does not exist yet is created.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.edit"))]
pub async fn edit(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    operations: &Value,
) -> Result<Profile, Error> {
    let ops = ops::parse_operations(operations, "operations")?;
    apply(
        store,
        ctx,
        id,
        ops,
        json!({ "operations": operations }),
        true,
    )
    .await
}

/// Enables or disables an existing user.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.set_status"))]
pub async fn set_status(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    status: Status,
) -> Result<Profile, Error> {
    let ops = vec![Step {
        op: Op::Set(vec![Assign::Status(status)]),
        at: "status".into(),
    }];
    apply(
        store,
        ctx,
        id,
        ops,
        json!({ "$status": status.as_str() }),
        false,
    )
    .await
}

/// Applies parsed operations through the store's locked read-modify-write, at most once for the
/// caller's idempotency key: a retry that finds its key applied answers with the profile as it
/// is now (404 if it has been deleted since) and changes nothing.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.apply"))]
pub async fn apply(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    ops: Vec<Step>,
    request: Value,
    create: bool,
) -> Result<Profile, Error> {
    run(store, ctx, id, edit_fn(ctx, id, ops, request, create)).await
}

/// Like [`apply`], but an edit carrying an idempotency key (an event's `$insert_id`) is applied at
/// most once: a client that retries after a lost reply does not apply it twice. `Ok(None)`: the
/// key was already applied in this environment, so nothing ran — also when the profile has been
/// deleted since or the key came with another user, so a retry is never a resurrection.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.apply_once"))]
pub async fn apply_once(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    ops: Vec<Step>,
    request: Value,
    create: bool,
    once: Option<&str>,
) -> Result<Option<Profile>, Error> {
    // `$insert_id` is not bound to its event (the wire spec): a retry with the id is the same event.
    let once = once.map(|key| OnceKey {
        key: key.to_owned(),
        fingerprint: None,
    });
    run_once(
        store,
        ctx,
        id,
        edit_fn(ctx, id, ops, request, create),
        once.as_ref(),
    )
    .await
}

/// One edit of [`apply_many`]: operations on one profile, the request its history records, and
/// its idempotency key (an event's `$insert_id`).
#[derive(Debug, Clone)]
pub struct Edit {
    pub id: DistinctId,
    pub ops: Vec<Step>,
    pub request: Value,
    pub once: Option<String>,
}

/// [`apply_once`] for many edits, handed to the store as one unit of work (one SQLite writer
/// job, one PostgreSQL transaction) instead of one commit each. Each edit applies in order and
/// all or nothing on its own, and answers as [`apply_once`] would have, run one after another:
/// edits of one id see the state the earlier ones left, and a key applied earlier in the list is
/// applied for a later edit. One answer per edit, in order.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.apply_many"))]
pub async fn apply_many(
    store: &dyn Store,
    ctx: &Ctx,
    edits: Vec<Edit>,
    create: bool,
) -> Vec<Result<Option<Profile>, Error>> {
    if edits.is_empty() {
        return Vec::new();
    }
    let ids: Vec<DistinctId> = edits.iter().map(|e| e.id.clone()).collect();
    let batch = edits
        .into_iter()
        .map(|e| BatchEdit {
            edit: edit_fn(ctx, &e.id, e.ops, e.request, create),
            // `$insert_id` is not bound to its event (the wire spec), as in `apply_once`.
            once: e.once.map(|key| OnceKey {
                key,
                fingerprint: None,
            }),
            id: e.id,
        })
        .collect();
    store
        .edit_profiles(ctx.scope, batch)
        .await
        .into_iter()
        .zip(&ids)
        .map(|(outcome, id)| answer(outcome?, id))
        .collect()
}

/// One profile of a bulk load (imports, `herald seed`): an upsert body (`POST /v1/user/{id}/`)
/// and, optionally, the time to record as the profile's creation if this upsert creates it (an
/// existing profile keeps its own). Updates and history are stamped with the load's time.
#[derive(Debug, Clone)]
pub struct Upsert {
    pub id: DistinctId,
    pub body: Value,
    pub created_at: Option<DateTime<Utc>>,
}

impl Upsert {
    pub fn new(id: DistinctId, body: Value) -> Self {
        Self {
            id,
            body,
            created_at: None,
        }
    }
}

/// Upserts of many profiles as one unit of work, as [`apply_many`] runs edits (without
/// idempotency keys: an upsert applied twice leaves the profile as once, with no second history
/// event); a body that is not a valid upsert is refused alone. One answer per item, in order.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.upsert_many"))]
pub async fn upsert_many(
    store: &dyn Store,
    ctx: &Ctx,
    items: Vec<Upsert>,
) -> Vec<Result<(), Error>> {
    let mut answers: Vec<Option<Result<(), Error>>> = Vec::with_capacity(items.len());
    let mut batch = Vec::with_capacity(items.len());
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        match ops::upsert_operations(&item.body) {
            Ok(ops) => {
                answers.push(None);
                batch.push(BatchEdit {
                    edit: creating_edit_fn(ctx, &item.id, ops, item.body, item.created_at),
                    once: None,
                    id: item.id.clone(),
                });
                ids.push(item.id);
            }
            Err(e) => answers.push(Some(Err(e.into()))),
        }
    }
    let mut applied = if batch.is_empty() {
        Vec::new()
    } else {
        store.edit_profiles(ctx.scope, batch).await
    }
    .into_iter()
    .zip(&ids)
    .map(|(outcome, id)| answer(outcome?, id).map(drop));
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| applied.next().expect("one answer per edit")))
        .collect()
}

/// What [`upsert_many`] would answer, without writing: each item's operations are applied by the
/// same rule to the profile as stored now (read in one query) and as the earlier items of the
/// list left it. Only a concurrent writer can make the real run differ. One answer per item.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.upsert_preview"))]
pub async fn upsert_preview(
    store: &dyn Store,
    ctx: &Ctx,
    items: &[Upsert],
) -> Result<Vec<Result<(), Error>>, Error> {
    let mut ids: Vec<DistinctId> = items.iter().map(|i| i.id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut state: std::collections::HashMap<DistinctId, Profile> = store
        .get_profiles(ctx.scope, &ids)
        .await?
        .into_iter()
        .map(|p| (p.distinct_id.clone(), p))
        .collect();
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let answer = match ops::upsert_operations(&item.body) {
            Ok(ops) => {
                let edit = creating_edit_fn(ctx, &item.id, ops, item.body.clone(), item.created_at);
                match edit(state.get(&item.id)) {
                    Ok(Some(write)) => {
                        state.insert(item.id.clone(), write.profile);
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(refusal) => Err(Error::from_refusal(refusal, &item.id)),
                }
            }
            Err(e) => Err(e.into()),
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Runs `edit` with the caller's idempotency key; a retry answers with the profile as it is now.
async fn run(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    edit: EditFn,
) -> Result<Profile, Error> {
    match run_once(store, ctx, id, edit, ctx.idempotency_key.as_ref()).await? {
        Some(profile) => Ok(profile),
        None => get(store, ctx, id).await,
    }
}

/// Runs `edit` under the store's lock unless `once` was applied already (`Ok(None)`).
async fn run_once(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    edit: EditFn,
    once: Option<&OnceKey>,
) -> Result<Option<Profile>, Error> {
    answer(store.edit_profile(ctx.scope, id, edit, once).await?, id)
}

/// What an edit's outcome means to its caller: the profile after it, `None` when its key was
/// already applied, or why it was refused.
fn answer(outcome: EditOutcome, id: &DistinctId) -> Result<Option<Profile>, Error> {
    match outcome {
        EditOutcome::Applied(profile) => Ok(Some(*profile)),
        EditOutcome::AlreadyApplied => Ok(None),
        EditOutcome::KeyReused => Err(Error::KeyReused),
        EditOutcome::Refused(refusal) => Err(Error::from_refusal(refusal, id)),
    }
}

/// The rule of an edit: apply the operations to the current state, bump the version and record
/// the change, or change nothing at all.
pub fn edit_fn(ctx: &Ctx, id: &DistinctId, ops: Vec<Step>, request: Value, create: bool) -> EditFn {
    edit_fn_with(ctx, id, ops, request, create.then_some(None))
}

/// [`edit_fn`] creating a missing profile, with `created_at` (when given) as its creation time.
fn creating_edit_fn(
    ctx: &Ctx,
    id: &DistinctId,
    ops: Vec<Step>,
    request: Value,
    created_at: Option<DateTime<Utc>>,
) -> EditFn {
    edit_fn_with(ctx, id, ops, request, Some(created_at))
}

/// `create`: `None` refuses a missing profile; `Some(at)` creates it, created at `at` or now.
fn edit_fn_with(
    ctx: &Ctx,
    id: &DistinctId,
    ops: Vec<Step>,
    request: Value,
    create: Option<Option<DateTime<Utc>>>,
) -> EditFn {
    let (ctx, id) = (ctx.clone(), id.clone());
    Arc::new(move |existing: Option<&Profile>| {
        precondition(&ctx, existing)?;
        let base = match (existing, create) {
            (Some(p), _) => p.clone(),
            (None, Some(at)) => {
                let mut new = Profile::new(id.clone(), ctx.now);
                if let Some(at) = at {
                    new.created_at = crate::profile::truncate(at);
                }
                new
            }
            (None, None) => return Err(Refusal::Missing),
        };
        let next = ops::apply(&base, &ops).map_err(Refusal::Invalid)?;
        if existing.is_some() && next.same_content(&base) {
            return Ok(None);
        }
        next.check_limits(existing).map_err(Refusal::Invalid)?;
        let action = if existing.is_some() {
            Action::Updated
        } else {
            Action::Created
        };
        Ok(Some(write(&ctx, existing, next, action, request.clone())))
    })
}

/// The caller's `If-Match`, checked under the store's lock against the version being edited.
fn precondition(ctx: &Ctx, existing: Option<&Profile>) -> Result<(), Refusal> {
    match (ctx.if_version, existing.map(|p| p.version)) {
        (Some(expected), current) if current != Some(expected) => {
            Err(Refusal::Stale { expected, current })
        }
        _ => Ok(()),
    }
}

fn write(
    ctx: &Ctx,
    before: Option<&Profile>,
    mut next: Profile,
    action: Action,
    request: Value,
) -> ProfileWrite {
    next.version = before.map_or(0, |p| p.version) + 1;
    next.updated_at = before.map_or(ctx.now, |p| p.updated_at.max(ctx.now));
    let event = HistoryEvent {
        id: 0,
        distinct_id: next.distinct_id.clone(),
        at: ctx.now,
        actor: ctx.actor.clone(),
        action,
        request,
        changes: diff(before, Some(&next)),
    };
    ProfileWrite {
        profile: next,
        event,
    }
}

/// `POST /v1/user/{id}/merge/`: the primary keeps its values and gains the secondary's missing
/// properties and identities; the secondary is removed. A primary that does not exist yet is
/// created from the secondary.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.merge"))]
pub async fn merge(
    store: &dyn Store,
    ctx: &Ctx,
    primary: &DistinctId,
    secondary: &DistinctId,
) -> Result<Profile, Error> {
    let merge = merge_fn(ctx, primary, secondary)?;
    match store
        .merge_profiles(ctx.scope, primary, secondary, merge)
        .await?
    {
        MergeOutcome::Merged(p) => Ok(*p),
        MergeOutcome::SecondaryMissing => Err(Error::user_not_found(secondary)),
        MergeOutcome::Refused(refusal) => Err(Error::from_refusal(refusal, primary)),
    }
}

/// `POST /v1/user/{id}/merge/?dry_run=true`: the primary as [`merge`] would leave it, computed by
/// the same rule from the stored profiles; nothing is written.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.merge_preview"))]
pub async fn merge_preview(
    store: &dyn Store,
    ctx: &Ctx,
    primary: &DistinctId,
    secondary: &DistinctId,
) -> Result<Profile, Error> {
    let merge = merge_fn(ctx, primary, secondary)?;
    let from = get(store, ctx, secondary).await?;
    let existing = store.get_profile(ctx.scope, primary).await?;
    let (write, _tombstone) =
        merge(existing.as_ref(), &from).map_err(|r| Error::from_refusal(r, primary))?;
    Ok(write.profile)
}

fn merge_fn(ctx: &Ctx, primary: &DistinctId, secondary: &DistinctId) -> Result<MergeFn, Error> {
    if primary == secondary {
        return Err(Error::Invalid(crate::Invalid::new(
            "from_user_id",
            "must differ from the user merged into",
        )));
    }
    let merge: MergeFn = {
        let (ctx, primary_id, secondary_id) = (ctx.clone(), primary.clone(), secondary.clone());
        Arc::new(move |existing: Option<&Profile>, from: &Profile| {
            let base = existing
                .cloned()
                .unwrap_or_else(|| Profile::new(primary_id.clone(), from.created_at.min(ctx.now)));
            let merged = merge_into(&base, from);
            merged.check_limits(existing).map_err(Refusal::Invalid)?;
            let action = if existing.is_some() {
                Action::Merged
            } else {
                Action::Created
            };
            let primary_write = write(
                &ctx,
                existing,
                merged,
                action,
                json!({ "from_user_id": secondary_id.as_str() }),
            );
            let tombstone = HistoryEvent {
                id: 0,
                distinct_id: secondary_id.clone(),
                at: ctx.now,
                actor: ctx.actor.clone(),
                action: Action::MergedInto,
                request: json!({ "into_user_id": primary_id.as_str() }),
                changes: Vec::new(),
            };
            Ok((primary_write, tombstone))
        })
    };
    Ok(merge)
}

/// The merge rule, on its own: what the primary lacks, it takes from the secondary.
pub fn merge_into(primary: &Profile, secondary: &Profile) -> Profile {
    let mut merged = primary.clone();
    for (k, v) in &secondary.properties {
        if !merged.properties.contains_key(k) {
            merged.properties.insert(k.clone(), v.clone());
        }
    }
    for id in &secondary.identities {
        ops::add_identity_if_absent(&mut merged, id.clone());
    }
    // Preferences: the primary's choices stand; it gains the secondary's for other categories.
    for (slug, choice) in &secondary.preferences.categories {
        merged
            .preferences
            .categories
            .entry(slug.clone())
            .or_insert_with(|| choice.clone());
    }
    if merged.preferences.restricted_channels.is_empty() {
        merged.preferences.restricted_channels = secondary.preferences.restricted_channels.clone();
    }
    merged
}

/// Applies `change` to an existing profile under the store's lock (404 if there is none),
/// recorded in history like any edit; a change that changes nothing is not recorded. Only the
/// kind of `request` is recorded (its top-level keys, each with `null`): what changed is in the
/// entry's `changes`, so what a caller sent (a whole form) never grows history.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.change_existing"))]
pub async fn change_existing<F>(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    request: Value,
    change: F,
) -> Result<Profile, Error>
where
    F: Fn(&mut Profile) -> Result<(), crate::Invalid> + Send + Sync + 'static,
{
    let kind = match request {
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, _)| (k, Value::Null)).collect()),
        _ => Value::Null,
    };
    change_recorded(store, ctx, id, kind, change).await
}

/// [`change_existing`], recording `request` as it is: for callers that build a small one.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.change_recorded"))]
pub async fn change_recorded<F>(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    request: Value,
    change: F,
) -> Result<Profile, Error>
where
    F: Fn(&mut Profile) -> Result<(), crate::Invalid> + Send + Sync + 'static,
{
    let c = ctx.clone();
    let edit: EditFn = Arc::new(move |existing: Option<&Profile>| {
        precondition(&c, existing)?;
        let Some(current) = existing else {
            return Err(Refusal::Missing);
        };
        let mut next = current.clone();
        change(&mut next).map_err(Refusal::Invalid)?;
        if next.same_content(current) {
            return Ok(None);
        }
        next.check_limits(existing).map_err(Refusal::Invalid)?;
        Ok(Some(write(
            &c,
            existing,
            next,
            Action::Updated,
            request.clone(),
        )))
    });
    run(store, ctx, id, edit).await
}

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.delete"))]
pub async fn delete(store: &dyn Store, ctx: &Ctx, id: &DistinctId) -> Result<(), Error> {
    let deleted = store
        .delete_profiles(ctx.scope, std::slice::from_ref(id), tombstone(ctx))
        .await?;
    if deleted.is_empty() {
        Err(Error::user_not_found(id))
    } else {
        Ok(())
    }
}

/// Deletes every listed profile that exists; returns those deleted.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.bulk_delete"))]
pub async fn bulk_delete(
    store: &dyn Store,
    ctx: &Ctx,
    ids: &[DistinctId],
) -> Result<Vec<DistinctId>, Error> {
    if ids.len() > limits::MAX_BULK_DELETE {
        return Err(Error::Invalid(crate::Invalid::new(
            "distinct_ids",
            format!(
                "at most {} per call, got {}",
                limits::MAX_BULK_DELETE,
                ids.len()
            ),
        )));
    }
    Ok(store
        .delete_profiles(ctx.scope, ids, tombstone(ctx))
        .await?)
}

fn tombstone(ctx: &Ctx) -> TombstoneFn {
    let ctx = ctx.clone();
    Arc::new(move |p: &Profile| HistoryEvent {
        id: 0,
        distinct_id: p.distinct_id.clone(),
        at: ctx.now,
        actor: ctx.actor.clone(),
        action: Action::Deleted,
        request: Value::Null,
        changes: Vec::new(),
    })
}

pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    pub has_next: bool,
    /// Pass as `after` to get older events.
    pub after: Option<i64>,
}

/// Newest first. A deleted profile still shows its tombstone; an id never seen is a 404.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.history"))]
pub async fn history(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    after: Option<i64>,
    limit: usize,
) -> Result<HistoryPage, Error> {
    let mut events = store.list_history(ctx.scope, id, after, limit).await?;
    // A tombstone is filed under a hash of the id; the caller asked by the id itself.
    for e in &mut events {
        e.distinct_id = id.clone();
    }
    if events.is_empty() && after.is_none() {
        return Err(Error::user_not_found(id));
    }
    let has_next = events.len() > limit;
    events.truncate(limit);
    let after = events.last().filter(|_| has_next).map(|e| e.id);
    Ok(HistoryPage {
        events,
        has_next,
        after,
    })
}

/// How many profiles `scope` holds: a counter read, never a scan.
#[tracing::instrument(skip_all, fields(env = %scope.env(), op = "profiles.count_all"))]
pub async fn count_all(store: &dyn Store, scope: crate::EnvScope) -> Result<u64, Error> {
    Ok(store
        .count_profiles(scope, &crate::filter::Filter::default())
        .await?
        .value)
}

/// How many profiles each environment holds.
#[tracing::instrument(skip_all, fields(op = "profiles.counts_per_env"))]
pub async fn counts_per_env(store: &dyn Store) -> Result<[(crate::Env, u64); 2], Error> {
    let mut out = crate::Env::ALL.map(|env| (env, 0));
    for (env, n) in &mut out {
        *n = count_all(store, crate::EnvScope::operator(*env)).await?;
    }
    Ok(out)
}

/// Every profile of one environment in distinct_id order, a page at a time: for bulk reads
/// (`herald copy`, `herald user export`) that must not hold a million profiles in memory.
pub struct AllProfiles {
    scope: crate::EnvScope,
    filter: crate::filter::Filter,
    position: Option<PagePosition>,
}

impl AllProfiles {
    const SORT: Sort = Sort {
        field: SortField::DistinctId,
        descending: false,
    };

    pub fn new(scope: crate::EnvScope) -> Self {
        Self {
            scope,
            filter: crate::filter::Filter::default(),
            position: Some(PagePosition::First),
        }
    }

    /// Only the profiles `filter` matches (the filters of `GET /v1/user/`), still in distinct_id
    /// order and a page at a time.
    pub fn matching(self, filter: crate::filter::Filter) -> Self {
        Self { filter, ..self }
    }

    /// The next page of up to `size` profiles; empty once all were read.
    pub async fn next_page(
        &mut self,
        store: &dyn Store,
        size: usize,
    ) -> Result<Vec<Profile>, Error> {
        let Some(position) = self.position.take() else {
            return Ok(Vec::new());
        };
        let query = ListQuery {
            filter: self.filter.clone(),
            sort: Self::SORT,
            limit: size,
            position,
        };
        let mut page = store.list_profiles(self.scope, &query).await?;
        if page.len() > size {
            page.truncate(size);
            self.position = page
                .last()
                .map(|last| PagePosition::After(Cursor::of(last, Self::SORT)));
        }
        Ok(page)
    }
}

/// Events read per query when reading a whole history.
const HISTORY_PAGE: usize = 1000;

/// Every history event of `id`, newest first.
#[tracing::instrument(skip_all, fields(env = %scope.env(), op = "profiles.whole_history"))]
pub async fn whole_history(
    store: &dyn Store,
    scope: crate::EnvScope,
    id: &DistinctId,
) -> Result<Vec<HistoryEvent>, Error> {
    let mut history = Vec::new();
    let mut before = None;
    loop {
        let mut events = store.list_history(scope, id, before, HISTORY_PAGE).await?;
        let more = events.len() > HISTORY_PAGE;
        events.truncate(HISTORY_PAGE);
        before = events.last().map(|e| e.id);
        history.extend(events);
        if !more {
            return Ok(history);
        }
    }
}

/// `GET /v1/user/{id}/export/`: everything Herald holds on one user, as one document (the right
/// of access): the profile, the user's preference choices and the whole history. Notifications
/// join it when Herald sends them.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.export"))]
pub async fn export(store: &dyn Store, ctx: &Ctx, id: &DistinctId) -> Result<Value, Error> {
    let profile = get(store, ctx, id).await?;
    let history: Vec<Value> = whole_history(store, ctx.scope, id)
        .await?
        .into_iter()
        .map(|mut e| {
            e.distinct_id = id.clone();
            e.to_wire()
        })
        .collect();
    Ok(json!({
        "distinct_id": id,
        "environment": ctx.scope.env().as_str(),
        "exported_at": crate::profile::format_time(ctx.now),
        "profile": profile.to_wire(),
        "preferences": serde_json::to_value(&profile.preferences).expect("preferences serialise"),
        "history": history,
    }))
}

/// Bulk creation (`herald seed`, imports): each item is an upsert body and the time the profile
/// was created at. Ids that exist already are skipped; returns how many profiles were created.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "profiles.import"))]
pub async fn import(
    store: &dyn Store,
    ctx: &Ctx,
    items: &[(DistinctId, Value, chrono::DateTime<chrono::Utc>)],
) -> Result<u64, Error> {
    let mut writes = Vec::with_capacity(items.len());
    for (id, body, at) in items {
        let ops = ops::upsert_operations(body).map_err(|e| e.within(id))?;
        let at_ctx = Ctx::new(ctx.scope, ctx.actor.clone(), *at);
        match edit_fn(&at_ctx, id, ops, body.clone(), true)(None) {
            Ok(Some(w)) => writes.push(w.into()),
            Ok(None) => {}
            Err(refusal) => return Err(Error::from_refusal(refusal, id)),
        }
    }
    Ok(store.import_profiles(ctx.scope, writes).await?)
}
