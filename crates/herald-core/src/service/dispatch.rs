//! Triggers (`POST /trigger/`) and track events (`/event/`, `/v2/event/`): one code path. For
//! each recipient: resolve the profile (inline data upserted unless transient), plan the channels
//! ([`crate::dispatch::plan`]), render what is sent, and record every message — queued with its
//! content, waiting with its content (a `first_success` fallback), or skipped with its reason —
//! in one [`crate::store::MessageStore::enqueue_batch`], so a trigger that is acknowledged is committed, and a
//! repeated `$idempotency_key` answers as the first did.

use super::links::{LinkDays, Links};
use super::{profiles, Ctx, Error};
use crate::channel::Channel;
use crate::delivery::{route, Content, Directory};
use crate::engagement::Tracker;
use crate::error::Invalid;
use crate::ids::DistinctId;
use crate::message::{Message, MessageOrigin, MessageStatus, SkipReason};
use crate::profile::Profile;
use crate::store::{
    DigestClaim, DigestItem, Enqueue, EnqueueOutcome, NewMessage, OnceKey, Store, StoreError,
    ThrottleCheck,
};
use crate::trigger::{Recipient, TriggerRequest};
use crate::workflow::Workflow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Renders one workflow's channels, each with its variables, in order. Rendering is CPU-bound
/// (see [`Workflow::render`]): the server runs it on a blocking thread; core stays free of any
/// runtime.
#[async_trait]
pub trait Render: Send + Sync {
    async fn render(
        &self,
        workflow: Arc<Workflow>,
        jobs: Vec<(Channel, Value)>,
    ) -> Result<Vec<Result<Content, Invalid>>, Error>;
}

/// Renders on the calling thread (tests, tools).
pub struct RenderInline;

#[async_trait]
impl Render for RenderInline {
    async fn render(
        &self,
        workflow: Arc<Workflow>,
        jobs: Vec<(Channel, Value)>,
    ) -> Result<Vec<Result<Content, Invalid>>, Error> {
        Ok(jobs
            .iter()
            .map(|(channel, vars)| workflow.render(*channel, vars))
            .collect())
    }
}

/// What a trigger needs besides the store: the providers, the link minter, the renderer.
pub struct Dispatcher<'a> {
    pub store: &'a dyn Store,
    pub directory: &'a dyn Directory,
    pub links: &'a Links<'a>,
    pub render: &'a dyn Render,
    /// The workspace's quiet hours and default time zone.
    pub quiet: &'a crate::quiet::Workspace,
}

/// Render jobs handed to [`Render`] at once by one trigger.
const RENDER_CHUNK: usize = 64;

/// What one trigger did.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerOutcome {
    /// The trigger's id (the wire's `message_id`): derived from the `$idempotency_key` when there
    /// is one, so a repeat answers with the same id.
    pub id: String,
    /// Every message recorded, queued and skipped.
    pub message_ids: Vec<String>,
    /// A repeat of a trigger already enqueued with this key: nothing was written or sent.
    pub repeated: bool,
}

/// The fingerprint an `$idempotency_key` is bound to: the trigger as the caller sent it.
pub fn fingerprint(raw: &Value) -> String {
    super::request_fingerprint("POST", "/trigger", raw.to_string().as_bytes())
}

/// Runs one trigger. A missing workflow is 404 (`workflow 'x' not found`); a key already used
/// for another request is a conflict naming `$idempotency_key`. A non-transient recipient with
/// inline data is upserted (created unless `$skip_create`); one without, that does not exist,
/// is created as SuprSend does (so the log has a user to sit under) unless `$skip_create`. A
/// transient recipient, or a `$skip_create` one that does not exist, is planned against its
/// inline data alone and nothing is stored for it.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "dispatch.trigger", workflow = %request.workflow))]
pub async fn trigger(
    d: &Dispatcher<'_>,
    ctx: &Ctx,
    request: TriggerRequest,
    fingerprint: String,
) -> Result<TriggerOutcome, Error> {
    let env = ctx.scope.env();
    let workflow = Arc::new(
        d.store
            .get_workflow(ctx.scope, &request.workflow)
            .await?
            .ok_or_else(|| Error::Missing {
                what: "workflow",
                key: request.workflow.clone(),
            })?,
    );
    let category = match &workflow.category {
        Some(slug) => d.store.get_category(ctx.scope, slug).await?,
        None => None,
    };
    let configured = d.directory.configured(env).await?;
    // Profile upserts carry no HTTP Idempotency-Key: the trigger's key guards the messages.
    let edit_ctx = ctx.clone().with_idempotency_key(None);
    let actor = match &request.actor {
        Some(a) => Some(resolve(d.store, &edit_ctx, a, &workflow.slug, None).await?),
        None => None,
    };
    let data = Value::Object(request.data.clone());
    let id = trigger_id(env, request.idempotency_key.as_deref());
    // The stored recipients named by distinct_id alone, read in one round trip.
    let by_id: Vec<DistinctId> = request
        .recipients
        .iter()
        .filter(|r| !r.is_transient && r.upsert.is_empty())
        .map(|r| r.distinct_id.clone())
        .collect();
    let stored: HashMap<DistinctId, Profile> = d
        .store
        .get_profiles(ctx.scope, &by_id)
        .await?
        .into_iter()
        .map(|p| (p.distinct_id.clone(), p))
        .collect();
    // Each recipient planned, then every channel of every recipient rendered in one job. Under
    // a digest nothing is rendered now: what would be sent becomes an item of the digest.
    let mut planned = Vec::with_capacity(request.recipients.len());
    let mut jobs = Vec::new();
    let mut digest_items = Vec::new();
    for (i, r) in request.recipients.iter().enumerate() {
        let at_recipient = |e: Invalid| Error::Invalid(e.within(format!("recipients[{i}]")));
        let profile = resolve(d.store, &edit_ctx, r, &workflow.slug, Some(&stored)).await?;
        let plan = crate::dispatch::plan(
            &workflow,
            &profile,
            category.as_ref(),
            r.channels.as_deref(),
            &|identity| route(identity, &configured),
        );
        if let (Some(policy), false) = (&workflow.digest, plan.now.is_empty()) {
            digest_items.push(DigestItem {
                new_id: new_id("dgs"),
                distinct_id: profile.distinct_id.clone(),
                workflow: workflow.slug.clone(),
                policy: policy.clone(),
                item: crate::digest::Item {
                    data: data.clone(),
                    channels: r.channels.clone(),
                },
                at: ctx.now,
            });
        } else if !plan.now.is_empty() {
            let vars = variables(d, ctx, &profile, actor.as_ref(), &data)
                .await?
                .map_err(at_recipient)?;
            for send in plan.now.iter().chain(&plan.fallbacks) {
                jobs.push((send.channel, vars.clone()));
            }
        }
        planned.push((profile, plan));
    }
    let mut rendered = render_all(d, &workflow, jobs).await?.into_iter();
    // Tracked HTML emails carry this trigger's message ids in signed links.
    let ring = tracking_ring(d, &workflow, ctx.now).await?;
    let tracker = ring.as_deref().map(|ring| Tracker {
        ring,
        base: d.links.public_base(),
    });
    let mut messages = Vec::new();
    for (i, (profile, plan)) in planned.into_iter().enumerate() {
        let at_recipient = |e: Invalid| Error::Invalid(e.within(format!("recipients[{i}]")));
        let origin = |channel: Channel| MessageOrigin {
            id: new_id("msg"),
            env,
            workflow: workflow.slug.clone(),
            category: workflow.category.clone(),
            distinct_id: profile.distinct_id.clone(),
            channel,
            trigger_id: format!("{id}.{i}"),
            idempotency_key: request.idempotency_key.clone(),
        };
        if workflow.digest.is_some() {
            for send in plan.now.iter().chain(&plan.fallbacks) {
                messages.push(NewMessage {
                    message: Message::skipped(origin(send.channel), SkipReason::Digested, ctx.now),
                    content: None,
                    waits_for: None,
                    gate: None,
                });
            }
            messages.extend(skipped(&plan, origin, ctx.now));
            continue;
        }
        let held = crate::quiet::held_until(&profile, category.as_ref(), d.quiet, ctx.now);
        let making = Making {
            workflow: &workflow,
            tracker: tracker.as_ref(),
            now: ctx.now,
            held,
            note: None,
        };
        messages.extend(record(
            &plan,
            &making,
            &mut rendered,
            origin,
            &at_recipient,
        )?);
    }
    let once = request.idempotency_key.as_ref().map(|key| OnceKey {
        key: key.clone(),
        fingerprint: Some(fingerprint),
    });
    let throttle = workflow.throttle.as_ref().map(|t| ThrottleCheck {
        workflow: workflow.slug.clone(),
        throttle: t.clone(),
        since: t.since(ctx.now),
    });
    let batch = Enqueue {
        messages,
        once,
        throttle,
        digest_items,
    };
    let outcome = d.store.enqueue_batch(ctx.scope, batch).await?;
    match outcome {
        EnqueueOutcome::Enqueued { message_ids } => Ok(TriggerOutcome {
            id,
            message_ids,
            repeated: false,
        }),
        EnqueueOutcome::AlreadyEnqueued { message_ids } => Ok(TriggerOutcome {
            id,
            message_ids,
            repeated: true,
        }),
        EnqueueOutcome::KeyReused => Err(Error::Conflict(Invalid::new(
            "$idempotency_key",
            "was already used in the last 24 hours for a different trigger; send a new key",
        ))),
    }
}

/// The template variables of one recipient: the profile, the actor, a fresh preference link,
/// and `data`. The inner error is the recipient's (bad data), the outer one the store's.
async fn variables(
    d: &Dispatcher<'_>,
    ctx: &Ctx,
    profile: &Profile,
    actor: Option<&Profile>,
    data: &Value,
) -> Result<Result<Value, Invalid>, Error> {
    let link = d
        .links
        .mint(ctx.scope.env(), profile, LinkDays::TEMPLATE, ctx.now)
        .await?;
    Ok(crate::template::variables_with_actor(
        profile, actor, &link.url, data,
    ))
}

/// Renders `jobs` in chunks, so a trigger of many recipients holds a render slot for one chunk
/// at a time and other requests' renders take turns with it.
async fn render_all(
    d: &Dispatcher<'_>,
    workflow: &Arc<Workflow>,
    jobs: Vec<(Channel, Value)>,
) -> Result<Vec<Result<Content, Invalid>>, Error> {
    let mut rendered = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let chunk: Vec<_> = jobs.by_ref().take(RENDER_CHUNK).collect();
        rendered.extend(d.render.render(workflow.clone(), chunk).await?);
    }
    Ok(rendered)
}

/// How one recipient's messages are made: the workflow (its `smart` gate and email tracking),
/// the tracker that signs tracked links, the time, and what quiet hours or a digest add.
struct Making<'a> {
    workflow: &'a Workflow,
    tracker: Option<&'a Tracker<'a>>,
    now: DateTime<Utc>,
    /// Quiet hours hold what is sent now until then.
    held: Option<DateTime<Utc>>,
    /// The first reason of what is sent now (a digest's "digest of N items").
    note: Option<&'a str>,
}

/// The messages of one planned recipient: what is sent now `queued` (held until `held`, when
/// quiet hours hold it; with `note` as its first reason, when given), each fallback or `smart`
/// step `waiting` for the one before it, each rendered from `rendered` in order (tracked HTML
/// emails get their signed links); then the skipped channels.
fn record(
    plan: &crate::dispatch::Plan,
    making: &Making<'_>,
    rendered: &mut impl Iterator<Item = Result<Content, Invalid>>,
    origin: impl Fn(Channel) -> MessageOrigin,
    at_recipient: &dyn Fn(Invalid) -> Error,
) -> Result<Vec<NewMessage>, Error> {
    let now = making.now;
    let workflow = making.workflow;
    let mut messages = Vec::new();
    let mut previous: Option<Message> = None;
    for (n, send) in plan.now.iter().chain(&plan.fallbacks).enumerate() {
        // Templates were checked when saved; what fails here is a render limit.
        let content = rendered
            .next()
            .ok_or_else(|| StoreError::internal("the renderer answered fewer jobs than sent"))?
            .map_err(at_recipient)?;
        let origin = origin(send.channel);
        let identity = send.identity.clone();
        let (mut message, waits_for, gate) = match &previous {
            Some(before) if n >= plan.now.len() => (
                Message::waiting(origin, identity, before, now),
                Some(before.id.clone()),
                workflow.gate(),
            ),
            _ => (Message::queued(origin, identity, now), None, None),
        };
        if let (Some(note), None) = (making.note, &waits_for) {
            message.reason = Some(note.to_owned());
            if let Some(first) = message.history.first_mut() {
                first.reason = Some(note.to_owned());
            }
        }
        if let Some(until) = making.held {
            message.hold(until);
        }
        let content = match (content, making.tracker) {
            (
                Content::Email {
                    subject,
                    html,
                    text,
                },
                Some(tracker),
            ) => Content::Email {
                subject,
                html: html.map(|h| tracker.apply(workflow.tracking, message.env, &message.id, &h)),
                text,
            },
            (content, _) => content,
        };
        previous = Some(message.clone());
        messages.push(NewMessage {
            message,
            content: Some(content),
            waits_for,
            gate,
        });
    }
    messages.extend(skipped(plan, origin, now));
    Ok(messages)
}

/// The keyring that signs tracked links, when the workflow tracks opens or clicks.
async fn tracking_ring(
    d: &Dispatcher<'_>,
    workflow: &Workflow,
    now: DateTime<Utc>,
) -> Result<Option<Arc<crate::link::Keyring>>, Error> {
    Ok(match workflow.tracking.any() {
        true => Some(d.links.keyring(now).await?),
        false => None,
    })
}

/// The skipped channels of a plan, each with its reason.
fn skipped(
    plan: &crate::dispatch::Plan,
    origin: impl Fn(Channel) -> MessageOrigin,
    now: DateTime<Utc>,
) -> Vec<NewMessage> {
    plan.skipped
        .iter()
        .map(|(channel, reason)| NewMessage {
            message: Message::skipped(origin(*channel), *reason, now),
            content: None,
            waits_for: None,
            gate: None,
        })
        .collect()
}

/// Sends a claimed digest: the user's profile as it is now is planned against the workflow,
/// restricted to the union of its items' `$channels` ([`crate::digest::restriction`]), each
/// sendable channel rendered with `digest.items` and `digest.count` beside the usual variables
/// (and held by quiet hours like any message), and the messages recorded with the digest's
/// removal ([`crate::store::MessageStore::finish_digest`]). A workflow or user deleted since
/// drops the digest. A render that fails (a render limit) leaves the digest to be claimed again
/// when its lease runs out, until its [`crate::digest::MAX_CLAIMS`]-th claim: then each channel
/// it would have been sent on is recorded `failed` with the reason, and the digest is deleted.
/// `false`: the claim was no longer current and nothing was written.
#[tracing::instrument(skip_all, fields(env = %claim.env, op = "dispatch.digest", workflow = %claim.workflow))]
pub async fn flush_digest(
    d: &Dispatcher<'_>,
    claim: &DigestClaim,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let ctx = Ctx::new(
        crate::env::EnvScope::operator(claim.env),
        crate::history::Actor::new("dispatch", "worker"),
        now,
    );
    let workflow = d.store.get_workflow(ctx.scope, &claim.workflow).await?;
    let profile = d.store.get_profile(ctx.scope, &claim.distinct_id).await?;
    let (Some(workflow), Some(profile)) = (workflow, profile) else {
        tracing::info!(digest = %claim.id, "the digest's workflow or user is gone; dropped");
        return Ok(d.store.finish_digest(claim, Vec::new()).await?);
    };
    let workflow = Arc::new(workflow);
    let category = match &workflow.category {
        Some(slug) => d.store.get_category(ctx.scope, slug).await?,
        None => None,
    };
    let configured = d.directory.configured(claim.env).await?;
    let restricted = crate::digest::restriction(&claim.items);
    let plan = crate::dispatch::plan(
        &workflow,
        &profile,
        category.as_ref(),
        restricted.as_deref(),
        &|identity| route(identity, &configured),
    );
    let origin = |channel: Channel| MessageOrigin {
        id: new_id("msg"),
        env: claim.env,
        workflow: workflow.slug.clone(),
        category: workflow.category.clone(),
        distinct_id: profile.distinct_id.clone(),
        channel,
        trigger_id: claim.id.clone(),
        idempotency_key: None,
    };
    let note = crate::digest::reason(claim.items.len());
    let rendered = async {
        let mut jobs = Vec::new();
        if !plan.now.is_empty() {
            let data = crate::digest::variables(&claim.items);
            // Items were checked as trigger data; a render limit is the only failure left.
            let vars = variables(d, &ctx, &profile, None, &data)
                .await?
                .map_err(Error::Invalid)?;
            for send in plan.now.iter().chain(&plan.fallbacks) {
                jobs.push((send.channel, vars.clone()));
            }
        }
        let mut rendered = render_all(d, &workflow, jobs).await?.into_iter();
        let held = crate::quiet::held_until(&profile, category.as_ref(), d.quiet, ctx.now);
        let ring = tracking_ring(d, &workflow, ctx.now).await?;
        let tracker = ring.as_deref().map(|ring| Tracker {
            ring,
            base: d.links.public_base(),
        });
        let making = Making {
            workflow: &workflow,
            tracker: tracker.as_ref(),
            now: ctx.now,
            held,
            note: Some(&note),
        };
        record(&plan, &making, &mut rendered, origin, &Error::Invalid)
    };
    let messages = match rendered.await {
        Ok(messages) => messages,
        Err(Error::Invalid(e)) if crate::digest::give_up(claim.token) => {
            let reason = crate::digest::given_up(claim.token, &e.to_string());
            tracing::warn!(digest = %claim.id, claims = claim.token, error = %e, "a digest kept failing to render; given up and recorded failed");
            failed(&plan, origin, &note, &reason, ctx.now)
        }
        Err(e) => return Err(e),
    };
    Ok(d.store.finish_digest(claim, messages).await?)
}

/// A given-up digest's messages: each channel it would have been sent on `failed` with
/// `reason` (queued with `note` first, as a sent digest's are), then the skipped channels.
fn failed(
    plan: &crate::dispatch::Plan,
    origin: impl Fn(Channel) -> MessageOrigin,
    note: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Vec<NewMessage> {
    let mut messages = Vec::new();
    for send in plan.now.iter().chain(&plan.fallbacks) {
        let mut message = Message::queued(origin(send.channel), send.identity.clone(), now);
        message.reason = Some(note.to_owned());
        if let Some(first) = message.history.first_mut() {
            first.reason = Some(note.to_owned());
        }
        if message
            .transition(MessageStatus::Failed, now, Some(reason.to_owned()))
            .is_ok()
        {
            messages.push(NewMessage {
                message,
                content: None,
                waits_for: None,
                gate: None,
            });
        }
    }
    messages.extend(skipped(plan, origin, now));
    messages
}

/// A track event: starts every workflow listing `event` for `distinct_id`, with the event's
/// `properties` as the templates' `data`. The key (`$idempotency_key`, else `$insert_id`) guards
/// each workflow's trigger on its own. Answers one outcome per workflow started (none listens:
/// none).
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "dispatch.track", event = %event.event))]
pub async fn track(
    d: &Dispatcher<'_>,
    ctx: &Ctx,
    event: TrackEvent,
) -> Result<Vec<TriggerOutcome>, Error> {
    let workflows = d.store.workflows_for_event(ctx.scope, &event.event).await?;
    let mut outcomes = Vec::with_capacity(workflows.len());
    for w in workflows {
        let request = TriggerRequest {
            workflow: w.slug.clone(),
            recipients: vec![Recipient::by_id(event.distinct_id.clone())],
            actor: None,
            data: event.properties.clone(),
            idempotency_key: event.key.as_ref().map(|k| format!("event:{}:{k}", w.slug)),
        };
        let fp = fingerprint(
            &json!({"event": event.event, "distinct_id": event.distinct_id.as_str(), "properties": event.properties, "workflow": w.slug}),
        );
        outcomes.push(trigger(d, ctx, request, fp).await?);
    }
    Ok(outcomes)
}

/// A track event as the wire sends it (§2.6).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackEvent {
    pub event: String,
    pub distinct_id: DistinctId,
    /// The templates' `data`; `$`-keys (the SDK's `$ss_sdk_version`) are dropped.
    pub properties: Map<String, Value>,
    /// `$idempotency_key`, else `$insert_id`.
    pub key: Option<String>,
}

/// Event names the SDKs send for themselves; other names starting with `$` or `ss_` are
/// reserved (wire spec §2.6).
const SYSTEM_EVENTS: [&str; 7] = [
    "$identify",
    "$notification_delivered",
    "$notification_dismiss",
    "$notification_clicked",
    "$app_launched",
    "$user_login",
    "$user_logout",
];

impl TrackEvent {
    /// Reads one track event (an object with `event`). `workspace_key`: an `env` given must be it.
    pub fn parse(raw: &Value, workspace_key: &str) -> Result<TrackEvent, Invalid> {
        use crate::channel::type_name;
        let obj = raw.as_object().ok_or_else(|| {
            Invalid::new(
                "",
                format!("an event must be an object, got {}", type_name(raw)),
            )
        })?;
        if obj
            .get("env")
            .is_some_and(|e| e.as_str() != Some(workspace_key))
        {
            return Err(Invalid::new(
                "env",
                "must be the workspace key of the key that signs the request",
            ));
        }
        let event = match obj.get("event") {
            Some(Value::String(s)) if s.trim().chars().count() >= 2 && s.len() <= 255 => {
                s.trim().to_owned()
            }
            _ => {
                return Err(Invalid::new(
                    "event",
                    "is required: a name of 2 to 255 characters",
                ))
            }
        };
        let lower = event.to_lowercase();
        if (lower.starts_with('$') || lower.starts_with("ss_"))
            && !SYSTEM_EVENTS.contains(&event.as_str())
        {
            return Err(Invalid::new(
                "event",
                "names starting with $ or ss_ are reserved",
            ));
        }
        crate::validate::no_nul(&event).map_err(|r| Invalid::new("event", r))?;
        let distinct_id = match obj.get("distinct_id") {
            Some(Value::String(s)) => DistinctId::parse(s)?,
            _ => {
                return Err(Invalid::new(
                    "distinct_id",
                    "is required and must be a string",
                ))
            }
        };
        let properties = match obj.get("properties") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => {
                let kept: Map<String, Value> = p
                    .iter()
                    .filter(|(k, _)| !k.starts_with('$'))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                crate::validate::custom_value(&Value::Object(kept.clone()))
                    .map_err(|e| e.within("properties"))?;
                kept
            }
            Some(other) => {
                return Err(Invalid::new(
                    "properties",
                    format!("must be an object, got {}", type_name(other)),
                ))
            }
        };
        let mut key = None;
        for field in ["$idempotency_key", "$insert_id"] {
            match obj.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(s))
                    if !s.trim().is_empty()
                        && s.chars().count() <= crate::trigger::MAX_IDEMPOTENCY_KEY_CHARS
                        && crate::validate::no_nul(s).is_ok() =>
                {
                    key = key.or_else(|| Some(s.trim().to_owned()));
                }
                Some(_) => {
                    return Err(Invalid::new(
                        field,
                        "must be a non-empty string of at most 255 characters, without U+0000",
                    ))
                }
            }
        }
        Ok(TrackEvent {
            event,
            distinct_id,
            properties,
            key,
        })
    }
}

/// The profile a recipient (or the actor) is planned and rendered against. See [`trigger`].
/// `stored`: for a recipient, the stored profiles already read (see [`crate::store::ProfileStore::get_profiles`]),
/// and a recipient named by distinct_id alone is created when missing; `None` for the actor,
/// which is read here and never created.
async fn resolve(
    store: &dyn Store,
    ctx: &Ctx,
    r: &Recipient,
    workflow: &str,
    stored: Option<&HashMap<DistinctId, Profile>>,
) -> Result<Profile, Error> {
    let create_bare = stored.is_some();
    let inline = || -> Result<Profile, Error> {
        let bare = Profile::new(r.distinct_id.clone(), ctx.now);
        Ok(crate::ops::apply(&bare, &r.upsert)?)
    };
    if r.is_transient {
        return inline();
    }
    if r.upsert.is_empty() {
        let found = match stored {
            Some(stored) => stored.get(&r.distinct_id).cloned(),
            None => store.get_profile(ctx.scope, &r.distinct_id).await?,
        };
        if let Some(p) = found {
            return Ok(p);
        }
        if !create_bare || r.skip_create {
            return inline();
        }
    }
    let request = json!({ "trigger": workflow });
    match profiles::apply(
        store,
        ctx,
        &r.distinct_id,
        r.upsert.clone(),
        request,
        !r.skip_create,
    )
    .await
    {
        Err(Error::NotFound { .. }) if r.skip_create => inline(),
        other => other,
    }
}

/// The id of a trigger: with an idempotency key, a digest of the environment and the key (a
/// repeat gets the same id); without, random.
fn trigger_id(env: crate::Env, key: Option<&str>) -> String {
    match key {
        Some(k) => {
            let digest = super::request_fingerprint("trigger", env.as_str(), k.as_bytes());
            format!("trg_{}", &digest[..32])
        }
        None => new_id("trg"),
    }
}

/// A new random id: `prefix_` and 128 bits in hex.
fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the OS provides random bytes");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}
