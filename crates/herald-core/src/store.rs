//! The storage contract. Adapters (SQLite, PostgreSQL) implement it; every profile method takes the
//! [`EnvScope`] it runs in, so nothing can be read or written outside one environment.

use crate::admin::{LoginAttempts, Operator, Session, ThrottleKey, ThrottlePolicy, Username};
use crate::channel::{Channel, Identity};
use crate::credentials::Credentials;
use crate::delivery::{Content, Delivery, Outgoing};
use crate::digest::Digest;
use crate::engagement::{Event, Gate};
use crate::env::{Env, EnvScope};
use crate::error::Invalid;
use crate::filter::Filter;
use crate::history::HistoryEvent;
use crate::ids::DistinctId;
use crate::inbox::{
    Delivered, InboxCounts, InboxFeed, InboxItem, InboxPage, InboxQuery, Mark, NewItem,
};
use crate::listing::{Count, ListQuery};
use crate::message::{Message, MessageStatus};
use crate::preference::Category;
use crate::profile::Profile;
use crate::property::PropertyRecord;
use crate::throttle::Throttle;
use crate::workflow::Workflow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The underlying fault of a [`StoreError`] (a driver error, an I/O error, or a message).
pub type ErrorSource = Box<dyn std::error::Error + Send + Sync>;

/// A storage fault. `Unavailable` and `Internal` keep the error they came from as their
/// [`source`](std::error::Error::source) (their message repeats it, so a log line that prints only
/// the error still says what the database said). Not `Clone`: nothing copies store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {context}{}", detail(source))]
    Unavailable {
        context: String,
        #[source]
        source: Option<ErrorSource>,
    },
    #[error("database error: {context}{}", detail(source))]
    Internal {
        context: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// Too much work waiting (e.g. a full write queue) or a query over its time limit: the
    /// request may succeed if retried later.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The write lost to a concurrent one and was not applied (e.g. a claim another worker took
    /// first, or a race that kept conflicting after the store's own retries).
    #[error("the write conflicted with another: {0}")]
    Conflict(String),
}

impl StoreError {
    /// The same variant and message, for each caller of a unit of work that failed as a whole
    /// (a SQLite writer batch, a batch of edits): errors are not `Clone`, so each caller gets its
    /// own, the source kept as text.
    pub fn for_each_caller(&self) -> StoreError {
        let source = |s: &Option<ErrorSource>| s.as_ref().map(|s| s.to_string().into());
        match self {
            StoreError::Unavailable { context, source: s } => StoreError::Unavailable {
                context: context.clone(),
                source: source(s),
            },
            StoreError::Internal { context, source: s } => StoreError::Internal {
                context: context.clone(),
                source: source(s),
            },
            StoreError::Busy(m) => StoreError::Busy(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        }
    }
}

fn detail(source: &Option<ErrorSource>) -> String {
    source
        .as_ref()
        .map(|s| format!(": {s}"))
        .unwrap_or_default()
}

impl StoreError {
    /// A fault of the store itself, with only a message.
    pub fn internal(context: impl Into<String>) -> StoreError {
        StoreError::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// A fault of the store caused by `source`.
    pub fn internal_from(context: impl Into<String>, source: impl Into<ErrorSource>) -> StoreError {
        StoreError::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The database cannot be reached, with only a message.
    pub fn unavailable(context: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// The database cannot be reached because of `source`.
    pub fn unavailable_from(
        context: impl Into<String>,
        source: impl Into<ErrorSource>,
    ) -> StoreError {
        StoreError::Unavailable {
            context: context.into(),
            source: Some(source.into()),
        }
    }
}

/// Why an edit closure declined to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Invalid(Invalid),
    /// The profile does not exist and the edit may not create it.
    Missing,
    /// The caller expected another version of the profile (`None`: it does not exist).
    Stale {
        expected: i64,
        current: Option<i64>,
    },
}

/// A profile to store, with the history event that explains the change.
#[derive(Debug, Clone)]
pub struct ProfileWrite {
    pub profile: Profile,
    pub event: HistoryEvent,
}

/// A profile to load as it is, with its history, oldest event first (event ids are the store's).
#[derive(Debug, Clone)]
pub struct Imported {
    pub profile: Profile,
    pub history: Vec<HistoryEvent>,
}

impl From<ProfileWrite> for Imported {
    fn from(w: ProfileWrite) -> Self {
        Imported {
            profile: w.profile,
            history: vec![w.event],
        }
    }
}

/// Decides the next state of one profile from its current state (`None`: not stored yet).
/// `Ok(None)` means nothing changes. The store calls it inside its write transaction, with the row
/// locked, so concurrent edits of one profile apply one after the other and none is lost.
pub type EditFn =
    Arc<dyn Fn(Option<&Profile>) -> Result<Option<ProfileWrite>, Refusal> + Send + Sync>;

/// Merges a secondary profile into the primary (`None`: primary not stored yet). Returns the primary's
/// write and the event recorded for the removed secondary.
pub type MergeFn = Arc<
    dyn Fn(Option<&Profile>, &Profile) -> Result<(ProfileWrite, HistoryEvent), Refusal>
        + Send
        + Sync,
>;

/// The history event left behind by a deleted profile. Its earlier history is erased with it.
pub type TombstoneFn = Arc<dyn Fn(&Profile) -> HistoryEvent + Send + Sync>;

/// An idempotency key with what it was sent with: `fingerprint` (a digest of the request) binds
/// an `Idempotency-Key` header to its request, so the key cannot be reused for another edit;
/// `None` (events' `$insert_id`) means any retry with the key counts as the same edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnceKey {
    pub key: String,
    pub fingerprint: Option<String>,
}

impl OnceKey {
    /// Whether a stored key was applied for another request than this one.
    pub fn reused_by(&self, stored_fingerprint: Option<&str>) -> bool {
        matches!((stored_fingerprint, self.fingerprint.as_deref()), (Some(a), Some(b)) if a != b)
    }
}

/// One edit of a batch ([`ProfileStore::edit_profiles`]): the profile it edits, its rule, and
/// its idempotency key.
#[derive(Clone)]
pub struct BatchEdit {
    pub id: DistinctId,
    pub edit: EditFn,
    pub once: Option<OnceKey>,
}

/// What [`ProfileStore::edit_profile`] did.
#[derive(Debug, Clone)]
pub enum EditOutcome {
    /// The edit ran: the profile as stored after it (also when it changed nothing).
    Applied(Box<Profile>),
    /// An edit with the same idempotency key was already applied in this environment: nothing
    /// ran, whether or not the profile still exists.
    AlreadyApplied,
    /// The key was applied for a different request (another fingerprint): nothing ran.
    KeyReused,
    /// The edit closure declined to write: nothing stored, the key not recorded.
    Refused(Refusal),
}

/// What [`ProfileStore::merge_profiles`] did.
#[derive(Debug, Clone)]
pub enum MergeOutcome {
    /// The primary as stored after the merge; the secondary is gone.
    Merged(Box<Profile>),
    /// The secondary does not exist: nothing changed.
    SecondaryMissing,
    /// The merge closure declined: nothing changed.
    Refused(Refusal),
}

/// What [`PropertyStore::delete_property_record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyDeletion {
    Deleted,
    /// There was no record of that key.
    Missing,
    /// This many profiles still carry the key: the record was kept.
    StillCarried(u64),
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    async fn insert_credentials(&self, credentials: &Credentials) -> Result<(), StoreError>;
    async fn list_credentials(&self) -> Result<Vec<Credentials>, StoreError>;
    /// Removes the key set with this workspace key (its secret and bearer key stop working on the
    /// next request: nothing caches them). `false` when there was none.
    async fn delete_credentials(&self, workspace_key: &str) -> Result<bool, StoreError>;
    async fn credentials_by_workspace_key(
        &self,
        workspace_key: &str,
    ) -> Result<Option<Credentials>, StoreError>;
    async fn credentials_by_api_key_hash(
        &self,
        api_key_hash: &str,
    ) -> Result<Option<Credentials>, StoreError>;

    /// The shared secret called `name`, storing `candidate` as it if there is none yet; every node
    /// gets the same value, whichever asked first.
    async fn server_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError>;

    /// Sets the secret called `name` to `new` if it is still `expected` (compare and set, so two
    /// rotations cannot lose each other's key). `false`: it had changed, nothing written.
    async fn replace_server_secret(
        &self,
        name: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// `Ok` when the store can serve reads and writes now (e.g. its writer is running and the
    /// database answers); used by readiness probes.
    async fn ready(&self) -> Result<(), StoreError>;

    async fn get_profile(
        &self,
        scope: EnvScope,
        id: &DistinctId,
    ) -> Result<Option<Profile>, StoreError>;

    /// The stored profiles among `ids`, in no particular order (missing ones are left out): one
    /// round trip where the backend allows, for callers that resolve many users at once.
    async fn get_profiles(
        &self,
        scope: EnvScope,
        ids: &[DistinctId],
    ) -> Result<Vec<Profile>, StoreError>;

    /// Up to `query.limit + 1` profiles in scan order (reversed for a `Before` page), so the caller
    /// can tell whether more exist.
    async fn list_profiles(
        &self,
        scope: EnvScope,
        query: &ListQuery,
    ) -> Result<Vec<Profile>, StoreError>;

    /// Profiles passing `filter`: exact up to [`crate::listing::EXACT_COUNT_LIMIT`], estimated
    /// above it. With an empty filter, always exact (a counter, not a scan).
    async fn count_profiles(&self, scope: EnvScope, filter: &Filter) -> Result<Count, StoreError>;

    /// Runs `edit` on the current state of `id` inside one transaction and stores its result.
    /// With `once`, an idempotency key: if an edit with that key was already applied in this
    /// environment (and not yet purged), nothing runs and the answer is
    /// [`EditOutcome::AlreadyApplied`].
    async fn edit_profile(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        edit: EditFn,
        once: Option<&OnceKey>,
    ) -> Result<EditOutcome, StoreError>;

    /// Runs `edits` in order as one unit of work (SQLite: one writer job; PostgreSQL: one
    /// transaction, the touched rows locked together). Each edit is all or nothing on its own
    /// and answers as [`edit_profile`](Self::edit_profile) would, had the edits run one after
    /// another: edits of one id apply in order, each on the state the previous one left; a key
    /// applied by an earlier edit of the batch is applied for the later ones; an edit that hits
    /// a storage fault of its own (an unreadable row) fails alone. One answer per edit, in
    /// order; each is committed when the call returns. A fault of the unit as a whole is every
    /// edit's error.
    async fn edit_profiles(
        &self,
        scope: EnvScope,
        edits: Vec<BatchEdit>,
    ) -> Vec<Result<EditOutcome, StoreError>>;

    /// Bulk load: creates the profiles of `items` that do not exist yet, each with its history,
    /// index rows and counters, in one transaction; existing ids are left untouched (with their
    /// history). Returns how many were created.
    async fn import_profiles(
        &self,
        scope: EnvScope,
        items: Vec<Imported>,
    ) -> Result<u64, StoreError>;

    /// Refreshes the query planner's statistics after a bulk load, so the first queries over the
    /// new rows get good plans without waiting for the database's own maintenance.
    async fn refresh_statistics(&self) -> Result<(), StoreError>;

    /// Forgets idempotency keys recorded before `before`.
    async fn purge_applied_keys(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError>;

    /// Merges `secondary` into `primary` and removes `secondary`, atomically; the secondary's
    /// tombstone is filed as [`delete_profiles`](Self::delete_profiles) files one.
    async fn merge_profiles(
        &self,
        scope: EnvScope,
        primary: &DistinctId,
        secondary: &DistinctId,
        merge: MergeFn,
    ) -> Result<MergeOutcome, StoreError>;

    /// Deletes the profiles that exist, erasing their history and leaving one tombstone event each,
    /// filed under [`crate::erasure::tombstone_id`] (keyed with the server secret
    /// [`crate::erasure::SECRET_NAME`]) so the raw id stays nowhere. Returns the ids deleted.
    async fn delete_profiles(
        &self,
        scope: EnvScope,
        ids: &[DistinctId],
        tombstone: TombstoneFn,
    ) -> Result<Vec<DistinctId>, StoreError>;

    /// History of `id`, newest first, starting below event id `before_id`; up to `limit + 1` events.
    /// Includes its tombstone, whose `distinct_id` is the hash it is filed under.
    async fn list_history(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryEvent>, StoreError>;
}

/// The property registry. Discovered records and counters are written by the profile writes
/// themselves (see [`crate::index::Change`]); these methods serve the registry's own API.
#[async_trait]
pub trait PropertyStore: Send + Sync {
    async fn list_property_records(
        &self,
        scope: EnvScope,
    ) -> Result<Vec<PropertyRecord>, StoreError>;

    /// Presence counters by key (see [`crate::index::presence`]).
    async fn property_counts(&self, scope: EnvScope) -> Result<BTreeMap<String, i64>, StoreError>;

    /// Inserts a declared record. `false` when one with that key exists already.
    async fn insert_property_record(
        &self,
        scope: EnvScope,
        record: &PropertyRecord,
    ) -> Result<bool, StoreError>;

    /// Stores label, description and visibility of `record`, creating the row if needed (built-ins
    /// have none until changed). Types seen are left as the profile writes keep them.
    async fn put_property_record(
        &self,
        scope: EnvScope,
        record: &PropertyRecord,
    ) -> Result<(), StoreError>;

    /// Deletes the record of `key` if no profile carries it.
    async fn delete_property_record(
        &self,
        scope: EnvScope,
        key: &str,
    ) -> Result<PropertyDeletion, StoreError>;
}

/// Notification categories, per environment.
#[async_trait]
pub trait CategoryStore: Send + Sync {
    /// All categories, by slug.
    async fn list_categories(&self, scope: EnvScope) -> Result<Vec<Category>, StoreError>;

    async fn get_category(
        &self,
        scope: EnvScope,
        slug: &str,
    ) -> Result<Option<Category>, StoreError>;

    /// Inserts, or with `replace` overwrites, a category. `false`: it existed and was kept.
    async fn put_category(
        &self,
        scope: EnvScope,
        category: &Category,
        replace: bool,
    ) -> Result<bool, StoreError>;

    /// `false` when there was none.
    async fn delete_category(&self, scope: EnvScope, slug: &str) -> Result<bool, StoreError>;
}

/// Workflows, per environment, with the event names that start them.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// All workflows, by slug.
    async fn list_workflows(&self, scope: EnvScope) -> Result<Vec<Workflow>, StoreError>;

    async fn get_workflow(
        &self,
        scope: EnvScope,
        slug: &str,
    ) -> Result<Option<Workflow>, StoreError>;

    /// Inserts, or with `replace` overwrites (its events with it), a workflow. `false`: it
    /// existed and was kept.
    async fn put_workflow(
        &self,
        scope: EnvScope,
        workflow: &Workflow,
        replace: bool,
    ) -> Result<bool, StoreError>;

    /// `false` when there was none.
    async fn delete_workflow(&self, scope: EnvScope, slug: &str) -> Result<bool, StoreError>;

    /// The workflows listing `event` among their events, by slug.
    async fn workflows_for_event(
        &self,
        scope: EnvScope,
        event: &str,
    ) -> Result<Vec<Workflow>, StoreError>;
}

/// One channel's delivery provider configuration in one environment: the config JSON as
/// `PUT /v1/provider/{channel}/` accepted it, secrets included (the database is trusted; the API
/// never shows them). Core does not read `config`: the server checks it with `herald-channels`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRecord {
    pub channel: Channel,
    pub config: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

/// Provider configurations, one per (environment, channel).
#[async_trait]
pub trait ProviderConfigStore: Send + Sync {
    /// Every configured channel of the environment, by channel name.
    async fn list_provider_configs(
        &self,
        scope: EnvScope,
    ) -> Result<Vec<ProviderRecord>, StoreError>;

    async fn get_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
    ) -> Result<Option<ProviderRecord>, StoreError>;

    /// Inserts or replaces the channel's config (the whole of it). `true`: it was created.
    async fn put_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
        config: &serde_json::Value,
    ) -> Result<bool, StoreError>;

    /// `false` when there was none.
    async fn delete_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
    ) -> Result<bool, StoreError>;
}

/// A message to record, with what the worker will send for it: a queued message carries its
/// rendered `content` (and its identity) and gets an outbox entry due at its `created_at`; a
/// waiting one (a `first_success` fallback) carries them too and names the message it
/// `waits_for`, and its entry is never due while it waits; a skipped one carries neither.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub message: Message,
    pub content: Option<Content>,
    /// A waiting message's predecessor: the message before it in the `first_success` order,
    /// recorded earlier in the same [`MessageStore::enqueue`].
    pub waits_for: Option<String>,
    /// A waiting `smart` step's gate: due `wait` after its predecessor was sent, and sent then
    /// only if nobody engaged ([`MessageStore::open_gate`]). `None` for a `first_success`
    /// fallback and for every message that does not wait.
    pub gate: Option<Gate>,
}

impl NewMessage {
    /// The outbox entry of a queued or waiting message. `Err` says what does not fit: a message
    /// of another environment, a queued or waiting one without content or identity (or content
    /// for another channel), content on a message that is neither, a waiting one that waits
    /// for nothing or a queued one that waits.
    pub fn entry(&self, env: Env) -> Result<Option<OutboxEntry>, String> {
        let m = &self.message;
        if m.env != env {
            return Err(format!("message {} is not of the {env} environment", m.id));
        }
        let waits = m.status == MessageStatus::Waiting;
        if waits != self.waits_for.is_some() {
            return Err(format!(
                "a {} message {} {} for another",
                m.status,
                m.id,
                if waits { "must wait" } else { "cannot wait" }
            ));
        }
        if self.gate.is_some() && !waits {
            return Err(format!(
                "a {} message {} cannot have a gate",
                m.status, m.id
            ));
        }
        match (m.status, &self.content, &m.identity) {
            (MessageStatus::Queued | MessageStatus::Waiting, Some(content), Some(identity))
                if content.channel() == m.channel && identity.channel == m.channel =>
            {
                Ok(Some(OutboxEntry {
                    message_id: m.id.clone(),
                    env,
                    attempt: m.attempts,
                    due_at: m.due_at(),
                    content: content.clone(),
                    identity: identity.clone(),
                    gate: self.gate,
                }))
            }
            (MessageStatus::Queued | MessageStatus::Waiting, ..) => Err(format!(
                "{} message {} needs content and an identity on {}",
                m.status,
                m.id,
                m.channel.as_str()
            )),
            (_, None, _) => Ok(None),
            (status, Some(_), _) => Err(format!("a {status} message {} has content", m.id)),
        }
    }

    /// Checks the fallback chains of one enqueue: each waiting message waits for a queued or
    /// waiting message recorded before it in `batch`, and no two wait for the same one (a chain
    /// is a line: the next channel after each).
    pub fn check_chains(batch: &[NewMessage]) -> Result<(), String> {
        let mut waited = std::collections::HashSet::new();
        for (i, new) in batch.iter().enumerate() {
            let Some(previous) = &new.waits_for else {
                continue;
            };
            let found = batch[..i].iter().any(|b| {
                b.message.id == *previous
                    && matches!(
                        b.message.status,
                        MessageStatus::Queued | MessageStatus::Waiting
                    )
            });
            if !found {
                return Err(format!(
                    "message {} waits for {previous}, which is not a queued or waiting message \
                     recorded before it",
                    new.message.id
                ));
            }
            if !waited.insert(previous.as_str()) {
                return Err(format!("two messages wait for {previous}"));
            }
        }
        Ok(())
    }
}

/// One enqueue: a trigger's messages, and what else is decided in the same transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enqueue {
    pub messages: Vec<NewMessage>,
    /// A trigger's `$idempotency_key`: a key already enqueued writes nothing (digest items
    /// included) and answers as the first trigger did.
    pub once: Option<OnceKey>,
    /// The workflow's throttle: the store counts each user's triggers of the workflow since
    /// `since` and applies [`Throttle::apply`] to `messages` before writing them, under a lock
    /// that makes concurrent enqueues for one user count one after the other.
    pub throttle: Option<ThrottleCheck>,
    /// Items added to their users' open digests ([`DigestItem`]).
    pub digest_items: Vec<DigestItem>,
}

/// A throttle to apply in an [`Enqueue`].
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleCheck {
    pub workflow: String,
    pub throttle: Throttle,
    /// The start of the window: triggers created at or after it count.
    pub since: DateTime<Utc>,
}

/// One trigger's data collected into a user's open digest of a workflow (opened with `new_id`
/// when the user has none). The digest's due time follows [`Digest::due_at`] after each item.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestItem {
    pub new_id: String,
    pub distinct_id: DistinctId,
    pub workflow: String,
    pub policy: Digest,
    /// The trigger's data and its recipient's `$channels`.
    pub item: crate::digest::Item,
    pub at: DateTime<Utc>,
}

/// A due digest leased to one worker until `lease_until` (closed: new items open another);
/// `token` tells this claim from a later one, as an outbox [`Claim`]'s does, and counts the
/// digest's claims (1 on the first).
#[derive(Debug, Clone, PartialEq)]
pub struct DigestClaim {
    pub id: String,
    pub env: Env,
    pub distinct_id: DistinctId,
    pub workflow: String,
    /// Every item, in the order collected.
    pub items: Vec<crate::digest::Item>,
    pub first_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub token: i64,
}

/// What [`MessageStore::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// The messages and their outbox entries are committed.
    Enqueued { message_ids: Vec<String> },
    /// A trigger with this idempotency key was enqueued already in this environment: nothing was
    /// written; these are the first trigger's messages.
    AlreadyEnqueued { message_ids: Vec<String> },
    /// The key was used for a different request (another fingerprint): nothing was written.
    KeyReused,
}

/// One message waiting in the outbox: everything the worker needs to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub message_id: String,
    pub env: Env,
    /// Provider calls made so far.
    pub attempt: u32,
    pub due_at: DateTime<Utc>,
    pub content: Content,
    pub identity: Identity,
    /// A `smart` step's gate, until it is opened: a claim of a gated entry asks
    /// [`MessageStore::open_gate`] before anything is sent.
    pub gate: Option<Gate>,
}

impl OutboxEntry {
    /// What the provider is handed.
    pub fn outgoing(&self) -> Outgoing {
        Outgoing {
            env: self.env,
            message_id: self.message_id.clone(),
            identity: self.identity.clone(),
            content: self.content.clone(),
        }
    }
}

/// An outbox entry leased to one worker until `lease_until`; after that any worker may claim it
/// again. `token` tells this claim from a later one of the same entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub entry: OutboxEntry,
    pub lease_until: DateTime<Utc>,
    pub token: i64,
}

impl Claim {
    /// The identity `outcome` found dead (a permanent failure that says so), to be marked on
    /// the profile so later sends skip it.
    pub fn invalid_identity(&self, outcome: &Delivery) -> Option<Identity> {
        matches!(
            outcome,
            Delivery::Failed {
                identity_invalid: true,
                ..
            }
        )
        .then(|| self.entry.identity.clone())
    }
}

/// What [`MessageStore::complete`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// The outcome is recorded on the message (as stored now); its entry is gone, or due again
    /// at `retry_at`. `invalid_identity`: the provider found the identity dead, and the caller
    /// marks its `perma_status` on the profile.
    Recorded {
        message: Box<Message>,
        retry_at: Option<DateTime<Utc>>,
        invalid_identity: Option<Identity>,
    },
    /// The claim was no longer current (its lease expired and another worker claimed or
    /// completed the entry, or the message was erased): nothing changed.
    Stale,
}

/// What [`MessageStore::hear`] did with a late answer: the message as stored after it, and
/// whether the answer changed it (`false`: heard already, or a move the rules refuse).
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub message: Box<Message>,
    pub changed: bool,
}

/// What [`MessageStore::open_gate`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum GateOutcome {
    /// Nobody engaged: the message is queued and the claim is sent as any other.
    Open,
    /// The user engaged: the message (as stored now) is skipped with `engaged`, its entry is
    /// gone, and the steps after it are skipped too.
    Closed(Box<Message>),
    /// The claim is no longer current, or the message is not waiting: nothing changed.
    Stale,
}

/// What [`MessageStore::engage`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Engaged {
    /// No message of that id in the environment.
    NotFound,
    /// The message never went out ([`Message::engage`]): nothing changed.
    Refused(crate::message::NotEngageable),
    /// Recorded (`changed: false` for a repeat): the message as stored now.
    Recorded {
        message: Box<Message>,
        changed: bool,
    },
}

/// Filters of a message listing, newest first. Each set filter must hold (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageQuery {
    /// Messages to any of these users (OR between them); empty: every user. At most
    /// [`MessageQuery::MAX_RECIPIENTS`] (the API refuses more).
    pub distinct_ids: Vec<DistinctId>,
    pub status: Option<MessageStatus>,
    pub channel: Option<Channel>,
    pub workflow: Option<String>,
    pub category: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// The cursor: messages older than the one [`MessagePage::next`] named.
    pub before: Option<i64>,
    pub limit: usize,
}

impl MessageQuery {
    /// The most users one listing names (wire spec §2.9's repeated `recipient_id[]`).
    pub const MAX_RECIPIENTS: usize = 100;
}

/// One page of messages, newest first; `next` is the cursor of the following page, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub next: Option<i64>,
}

/// The notification log and the durable outbox the dispatch workers drain.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Records `messages` and the outbox entries of the queued and waiting ones in one
    /// transaction: an error leaves nothing written (also a batch whose fallback chains do not
    /// hold, [`NewMessage::check_chains`]). With `once` (a trigger's `$idempotency_key`), a key already
    /// enqueued in this environment writes nothing and answers as the first trigger did.
    async fn enqueue(
        &self,
        scope: EnvScope,
        messages: Vec<NewMessage>,
        once: Option<&OnceKey>,
    ) -> Result<EnqueueOutcome, StoreError> {
        let batch = Enqueue {
            messages,
            once: once.cloned(),
            ..Enqueue::default()
        };
        self.enqueue_batch(scope, batch).await
    }

    /// [`enqueue`](Self::enqueue) with a throttle and digest items, all in one transaction: the
    /// key is checked first; then the throttle counts and judges the messages; then messages,
    /// entries and digest items are written. A digest item opens the user's digest of the
    /// workflow if none is open, else grows it, and sets its due time.
    async fn enqueue_batch(
        &self,
        scope: EnvScope,
        batch: Enqueue,
    ) -> Result<EnqueueOutcome, StoreError>;

    /// Leases up to `limit` digests due at `now`, of both environments, until `now + lease`,
    /// closing each (a new item opens a new digest). No two claims of one digest overlap; one
    /// whose lease ran out is due again.
    async fn claim_digests(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<DigestClaim>, StoreError>;

    /// Records the messages a claimed digest became (as [`enqueue`](Self::enqueue) does, no
    /// key) and deletes the digest with its items, in one transaction, if the claim is still
    /// current; `false` (nothing written) when it is not. So a digest is sent once, and a crash
    /// before this loses nothing: the lease runs out and the digest is claimed again.
    async fn finish_digest(
        &self,
        claim: &DigestClaim,
        messages: Vec<NewMessage>,
    ) -> Result<bool, StoreError>;

    /// Forgets trigger idempotency keys recorded before `before`.
    async fn purge_trigger_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Leases up to `limit` entries due at `now`, of both environments, until `now + lease`. No
    /// two claims of one entry overlap, across nodes too; an entry whose lease ran out is due
    /// again.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, StoreError>;

    /// Records one provider outcome of a current claim ([`Message::record`]) and deletes the
    /// entry, or, for a retry, makes it due at `next_due` with one more attempt. A retry with no
    /// `next_due` (the retries are spent) fails the message with the retry's reason. In the same
    /// transaction, the fallback waiting for this message follows it ([`Message::follow`]): on
    /// a failure for good it is due at `now`; once sent, it and every fallback after it in the
    /// chain are skipped (`sent_on_other_channel`) and their entries deleted.
    async fn complete(
        &self,
        claim: &Claim,
        outcome: &Delivery,
        now: DateTime<Utc>,
        next_due: Option<DateTime<Utc>>,
    ) -> Result<Completion, StoreError>;

    /// Gives claimed entries back, due as they were (a graceful shutdown).
    async fn release(&self, claims: &[Claim]) -> Result<(), StoreError>;

    /// A claimed `smart` step whose wait is over (its entry has a gate): in one transaction,
    /// reads the engagement of the other messages of its trigger and applies
    /// [`Message::open_gate`]. Open: the message is queued, the gate cleared, and the claim is
    /// sent. Closed: the message is skipped (`engaged`), its entry deleted, and the steps after
    /// it follow ([`Message::follow_step`]).
    async fn open_gate(&self, claim: &Claim, now: DateTime<Utc>)
        -> Result<GateOutcome, StoreError>;

    /// Records an engagement report on message `id` of this environment ([`Message::engage`]):
    /// the first `seen`/`clicked` wins, `delivered` moves a sent message on.
    async fn engage(
        &self,
        scope: EnvScope,
        id: &str,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<Engaged, StoreError>;

    async fn get_message(&self, scope: EnvScope, id: &str) -> Result<Option<Message>, StoreError>;

    /// The latest message of this environment the provider knows as `provider_id` (a Twilio
    /// SID, an SMTP queue id), for status callbacks that name only that.
    async fn message_by_provider_id(
        &self,
        scope: EnvScope,
        provider_id: &str,
    ) -> Result<Option<Message>, StoreError>;

    /// Records a provider's late answer ([`Message::hear`]) on the message `id` of this
    /// environment, read and written in one transaction. `None`: no such message.
    async fn hear(
        &self,
        scope: EnvScope,
        id: &str,
        answer: &crate::message::LateAnswer,
        now: DateTime<Utc>,
    ) -> Result<Option<Heard>, StoreError>;

    async fn list_messages(
        &self,
        scope: EnvScope,
        query: &MessageQuery,
    ) -> Result<MessagePage, StoreError>;

    /// One user's messages, newest first.
    async fn user_messages(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<MessagePage, StoreError> {
        let query = MessageQuery {
            distinct_ids: vec![id.clone()],
            before,
            limit,
            ..MessageQuery::default()
        };
        self.list_messages(scope, &query).await
    }
}

/// The in-app inbox: items the `inbox` channel delivered, their marks, and the signals that tell
/// live streams (on any node) about changes. Every write that changes an inbox announces it on
/// [`inbox_feed`](Self::inbox_feed) once committed.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Records `item` for the message of that id in this environment, for the message's user,
    /// workflow and category. Idempotent by message id: a second delivery of the same message
    /// writes nothing and answers [`Delivered::Already`].
    async fn deliver_inbox(&self, scope: EnvScope, item: &NewItem)
        -> Result<Delivered, StoreError>;

    /// Up to `query.limit` of the user's items passing the filter, newest first.
    async fn list_inbox(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        query: &InboxQuery,
    ) -> Result<InboxPage, StoreError>;

    /// One of the user's items, by its message id.
    async fn inbox_item(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        message_id: &str,
    ) -> Result<Option<InboxItem>, StoreError>;

    async fn inbox_counts(
        &self,
        scope: EnvScope,
        id: &DistinctId,
    ) -> Result<InboxCounts, StoreError>;

    /// Applies `mark` to one of the user's items: the item as stored after it, or `None` when
    /// the user has no item for that message in this environment.
    async fn mark_inbox_item(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        message_id: &str,
        mark: Mark,
        now: DateTime<Utc>,
    ) -> Result<Option<InboxItem>, StoreError>;

    /// Applies `mark` to every item of the user; how many items it changed.
    async fn mark_inbox(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        mark: Mark,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// The inbox signals from now on: SQLite's from this store; PostgreSQL's from every node on
    /// the database (`LISTEN`/`NOTIFY`), listening already when this returns. Each call opens
    /// its own feed (on PostgreSQL, a connection of its own): a node opens one and fans out.
    async fn inbox_feed(&self) -> Result<Box<dyn InboxFeed>, StoreError>;
}

/// Dashboard operators, their sessions, and the login throttle's counters. Not per
/// environment: an operator sees both.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// `false` when an account with that username exists already (nothing written).
    async fn insert_operator(&self, operator: &Operator) -> Result<bool, StoreError>;

    /// Every account, by username.
    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError>;

    async fn get_operator(&self, username: &Username) -> Result<Option<Operator>, StoreError>;

    /// Replaces the account's password hash, ends every session it has and clears its login
    /// throttle, in one transaction. `false` when there is no such account.
    async fn set_operator_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError>;

    /// Deletes the account and its sessions. `false` when there was none.
    async fn delete_operator(&self, username: &Username) -> Result<bool, StoreError>;

    /// Stores a new session; refused (an error) when its account is gone.
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;

    /// The session with this id hash, if it is still live at `now`.
    async fn get_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// Ends a session (logout). `false` when there was none.
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError>;

    /// Forgets sessions expired at `now`.
    async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Counts one login attempt against `key` at `now` ([`ThrottlePolicy::count`] over what is
    /// stored, under a lock, so concurrent attempts on any node are all counted) and returns the
    /// attempts as stored.
    async fn count_login_attempt(
        &self,
        key: &ThrottleKey,
        policy: ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<LoginAttempts, StoreError>;

    /// Forgets the attempts counted against `key` (a successful login of that account).
    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError>;

    /// Forgets attempt windows that started before `before`.
    async fn purge_login_attempts(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Everything Herald stores.
pub trait Store:
    CredentialStore
    + ProfileStore
    + PropertyStore
    + CategoryStore
    + WorkflowStore
    + MessageStore
    + ProviderConfigStore
    + InboxStore
    + OperatorStore
{
}
impl<T> Store for T where
    T: CredentialStore
        + ProfileStore
        + PropertyStore
        + CategoryStore
        + WorkflowStore
        + MessageStore
        + ProviderConfigStore
        + InboxStore
        + OperatorStore
{
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageOrigin;
    use serde_json::json;

    fn origin(id: &str, channel: Channel) -> MessageOrigin {
        MessageOrigin {
            id: id.into(),
            env: Env::Test,
            workflow: "w".into(),
            category: None,
            distinct_id: DistinctId::parse("ada").unwrap(),
            channel,
            trigger_id: "t".into(),
            idempotency_key: None,
        }
    }

    fn send(channel: Channel, value: serde_json::Value) -> (Identity, Content) {
        let identity = Identity::parse(channel, &value, &Default::default()).unwrap();
        let content = match channel {
            Channel::Email => Content::Email {
                subject: "s".into(),
                html: None,
                text: Some("t".into()),
            },
            _ => Content::Sms { text: "t".into() },
        };
        (identity, content)
    }

    fn queued(id: &str) -> NewMessage {
        let (identity, content) = send(Channel::Email, json!("ada@example.com"));
        NewMessage {
            message: Message::queued(origin(id, Channel::Email), identity, Utc::now()),
            content: Some(content),
            waits_for: None,
            gate: None,
        }
    }

    fn waiting(id: &str, after: &NewMessage) -> NewMessage {
        let (identity, content) = send(Channel::Sms, json!("+14155550100"));
        let m = Message::waiting(
            origin(id, Channel::Sms),
            identity,
            &after.message,
            Utc::now(),
        );
        NewMessage {
            message: m,
            content: Some(content),
            waits_for: Some(after.message.id.clone()),
            gate: None,
        }
    }

    #[test]
    fn a_waiting_message_has_an_entry_and_must_name_what_it_waits_for() {
        let first = queued("m1");
        let fallback = waiting("m2", &first);
        let entry = fallback.entry(Env::Test).unwrap().unwrap();
        assert_eq!(entry.message_id, "m2");
        let mut lost = fallback.clone();
        lost.waits_for = None;
        assert!(lost.entry(Env::Test).unwrap_err().contains("must wait"));
        let mut eager = first.clone();
        eager.waits_for = Some("m0".into());
        assert!(eager.entry(Env::Test).unwrap_err().contains("cannot wait"));
        let mut empty = fallback.clone();
        empty.content = None;
        assert!(empty.entry(Env::Test).is_err());
    }

    #[test]
    fn a_held_message_s_entry_is_due_when_its_hold_ends() {
        let mut held = queued("m1");
        let until = held.message.created_at + chrono::Duration::hours(2);
        held.message.hold(until);
        assert_eq!(held.entry(Env::Test).unwrap().unwrap().due_at, until);
        let now = queued("m2");
        assert_eq!(
            now.entry(Env::Test).unwrap().unwrap().due_at,
            now.message.created_at
        );
    }

    #[test]
    fn a_chain_waits_on_earlier_messages_of_the_batch_one_after_another() {
        let first = queued("m1");
        let second = waiting("m2", &first);
        let third = waiting("m3", &second);
        assert_eq!(
            NewMessage::check_chains(&[first.clone(), second.clone(), third.clone()]),
            Ok(())
        );
        // Waiting for a message written after it, or not in the batch.
        assert!(NewMessage::check_chains(&[second.clone(), first.clone()]).is_err());
        assert!(NewMessage::check_chains(std::slice::from_ref(&third)).is_err());
        // Two fallbacks after the same message: a chain is a line.
        let twin = waiting("m4", &first);
        let err = NewMessage::check_chains(&[first.clone(), second, twin]).unwrap_err();
        assert_eq!(err, "two messages wait for m1");
        // Waiting for a skipped message would wait forever.
        let skipped = NewMessage {
            message: Message::skipped(
                origin("m5", Channel::Email),
                crate::message::SkipReason::NoIdentity,
                Utc::now(),
            ),
            content: None,
            waits_for: None,
            gate: None,
        };
        let after_skipped = waiting("m6", &skipped);
        assert!(NewMessage::check_chains(&[skipped, after_skipped]).is_err());
    }
}
