//! `POST /trigger/` (wire spec §2.7) and track events (`POST /v2/event/`, §2.6; `/event/` in
//! `events.rs`): every one runs `herald_core::service::dispatch`, and answers 202 only once its
//! messages are committed.

use super::error::ApiError;
use super::hosted::link_service;
use super::{Caller, JsonBody};
use crate::App;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::channel::Channel;
use herald_core::delivery::Content;
use herald_core::error::Invalid;
use herald_core::service::dispatch::{self, Dispatcher, Render, TrackEvent, TriggerOutcome};
use herald_core::service::links::Links;
use herald_core::service::{Ctx, Error};
use herald_core::trigger::TriggerRequest;
use herald_core::workflow::Workflow;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Triggers in one bulk call (the SDKs split larger batches).
pub const MAX_TRIGGERS_PER_CALL: usize = 100;

/// Renders running at once; more wait their turn, so triggers cannot take every CPU.
static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Renders on tokio's blocking pool (rendering is CPU-bound, see `Workflow::render`).
struct BlockingRender;

#[async_trait]
impl Render for BlockingRender {
    async fn render(
        &self,
        workflow: Arc<Workflow>,
        jobs: Vec<(Channel, Value)>,
    ) -> Result<Vec<Result<Content, Invalid>>, Error> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = RENDERS.acquire().await.map_err(|e| {
            Error::Store(herald_core::store::StoreError::internal_from(
                "render queue",
                e,
            ))
        })?;
        tokio::task::spawn_blocking(move || {
            jobs.iter()
                .map(|(channel, vars)| workflow.render(*channel, vars))
                .collect()
        })
        .await
        .map_err(|e| {
            Error::Store(herald_core::store::StoreError::internal_from(
                "render task",
                e,
            ))
        })
    }
}

/// This node's dispatcher, minting links with `links`.
pub(crate) fn dispatcher<'a>(app: &'a App, links: &'a Links<'a>) -> Dispatcher<'a> {
    Dispatcher {
        store: app.store.as_ref(),
        directory: app.providers.as_ref(),
        links,
        render: &BlockingRender,
        quiet: &app.config.quiet_hours.workspace,
    }
}

/// One trigger body, parsed and run.
async fn run_trigger(d: &Dispatcher<'_>, ctx: &Ctx, raw: &Value) -> Result<TriggerOutcome, Error> {
    let request = TriggerRequest::parse(raw)?;
    dispatch::trigger(d, ctx, request, dispatch::fingerprint(raw)).await
}

/// An error of the `i`th item of a bulk call names the item: `[3].recipients[0]`.
pub(crate) fn at_item(i: usize, e: Error) -> ApiError {
    match e {
        Error::Invalid(v) => ApiError::invalid(v.within_index(i)),
        other => other.into(),
    }
}

/// One parsed track event, run; its reply's `message_id` is the first workflow's trigger.
pub(crate) async fn run_track(
    app: &App,
    ctx: &Ctx,
    event: TrackEvent,
) -> Result<Option<String>, Error> {
    let base = app.config.public_base();
    let links = link_service(app, &base);
    let outcomes = dispatch::track(&dispatcher(app, &links), ctx, event).await?;
    Ok(outcomes.into_iter().next().map(|o| o.id))
}

/// A bulk call's record of one item.
pub(crate) fn record(result: Result<Option<String>, ApiError>) -> Value {
    match result {
        Ok(id) => json!({ "status": "success", "status_code": 202, "message_id": id }),
        Err(e) => json!({
            "status": "error",
            "status_code": e.status.as_u16(),
            "error": { "type": e.code, "message": e.message }
        }),
    }
}

/// A bulk call's answer: `success`, `partial` or `fail`, and the records in request order.
pub(crate) fn bulk_reply(records: Vec<Value>) -> Response {
    let failed = records.iter().filter(|r| r["status"] == "error").count();
    let status = match failed {
        0 => "success",
        n if n == records.len() => "fail",
        _ => "partial",
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": status, "records": records })),
    )
        .into_response()
}

/// A bulk call refused as a whole still carries `records` (py reads it before the status).
fn refused_bulk(e: ApiError) -> Response {
    let mut body = e.body();
    body["records"] = json!([]);
    (e.status, Json(body)).into_response()
}

pub(crate) fn accepted(id: Option<String>) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "success", "message_id": id })),
    )
        .into_response()
}

#[utoipa::path(
    post,
    path = "/trigger",
    operation_id = "trigger",
    tag = "trigger",
    summary = "Trigger a workflow for recipients",
    description = "One trigger object, or an array of 1-100 (bulk). For each recipient: inline channels and properties are upserted (unless `is_transient`; a missing user is created unless `$skip_create`), each channel of the workflow is planned against the user's status, preferences and identities, rendered, and recorded as a queued or skipped message. 202 only once the messages are committed. A repeated `$idempotency_key` (24 h, per environment) answers as the first trigger did and sends nothing; the same key with another body is 409.",
    request_body(content = crate::api::trigger::TriggerBody, example = json!({"workflow": "welcome", "recipients": ["ada", {"distinct_id": "bob", "$email": "bob@example.com", "name": "Bob"}], "actor": "grace", "data": {"code": "123456"}, "$idempotency_key": "signup-ada-1"})),
    responses(
        (status = 202, description = "A single trigger: {status, message_id} (the trigger's id). An array: {status: success|partial|fail, records: [{status, status_code, message_id | error}]}, one record per trigger in order.", body = crate::api::trigger::TriggerReply, example = json!({"status": "success", "message_id": "trg_5c0d6a3e9b1f4d2a8e7c6b5a49382716"})),
        (status = 400, description = "A malformed trigger (the field is named: `workflow`, `recipients[0]`, `data.$x`, ...), or for an array, not 1-100 triggers (then with an empty `records`).", body = crate::api::doc::BulkErrorBody),
        (status = 404, description = "No workflow with that slug in this environment.", body = crate::api::doc::ErrorBody),
        (status = 409, description = "The `$idempotency_key` was used for a different trigger.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn trigger(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Response {
    let ctx = caller.ctx();
    let base = app.config.public_base();
    let links = link_service(&app, &base);
    let d = dispatcher(&app, &links);
    match body {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_TRIGGERS_PER_CALL {
                return refused_bulk(ApiError::bad_request(
                    "body",
                    format!(
                        "must hold 1 to {MAX_TRIGGERS_PER_CALL} triggers, got {}",
                        items.len()
                    ),
                ));
            }
            let mut records = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let result = run_trigger(&d, &ctx, item).await.map_err(|e| at_item(i, e));
                records.push(record(result.map(|o| Some(o.id))));
            }
            bulk_reply(records)
        }
        raw @ Value::Object(_) => match run_trigger(&d, &ctx, &raw).await {
            Ok(o) => accepted(Some(o.id)),
            Err(e) => ApiError::from(e).into_response(),
        },
        _ => ApiError::bad_request("body", "must be a trigger object or an array of triggers")
            .into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/v2/event",
    operation_id = "trackEvent",
    tag = "trigger",
    summary = "Track an event (starts the workflows listing it)",
    description = "One track event (SuprSend py `track_event`). Every workflow listing `event` among its `events` is triggered for `distinct_id`, with `properties` (keys starting with `$` dropped) as the templates' data. `$idempotency_key`, else `$insert_id`, makes a retry start nothing again. No workflow listening is not an error. `POST /event/` takes the same objects (node `track_event`).",
    request_body(content = crate::api::trigger::TrackEventBody, example = json!({"$insert_id": "0b9e6f3c-5b7e-4f43-9d1e-6b1f2f7d9a02", "$time": 1_795_908_108_000_i64, "event": "signed_up", "env": "hk_test_kHdqdnTA4rujTdGOlmchNr6I", "distinct_id": "ada", "properties": {"code": "123456", "$ss_sdk_version": "suprsend-py-sdk/0.20.0"}})),
    responses(
        (status = 202, description = "Accepted: `message_id` is the first workflow's trigger id (null when none listens).", body = crate::api::trigger::TriggerReply, example = json!({"status": "success", "message_id": "trg_5c0d6a3e9b1f4d2a8e7c6b5a49382716"})),
        (status = 400, description = "Not an object, a missing or reserved `event` name, a missing `distinct_id`, an `env` of another workspace, bad `properties`.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn track_v2(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let event = TrackEvent::parse(&body, &caller.workspace_key)?;
    Ok(accepted(run_track(&app, &caller.ctx(), event).await?))
}

#[utoipa::path(
    post,
    path = "/v2/bulk/event",
    operation_id = "trackEvents",
    tag = "trigger",
    summary = "Track up to 100 events (py bulk_events)",
    description = "An array of 1-100 track events, each as `POST /v2/event/` takes it, each run on its own: one record per event, in order (`success`, or `error` with its status and message naming `[i].field`). The answer always carries `records`, also when the whole call is refused (the py SDK reads it first).",
    request_body(content = Vec<crate::api::trigger::TrackEventBody>),
    responses(
        (status = 202, description = "{status: success|partial|fail, records: [{status, status_code, message_id | error}]}.", body = crate::api::trigger::TriggerReply, example = json!({"status": "partial", "records": [{"status": "success", "status_code": 202, "message_id": "trg_5c0d6a3e9b1f4d2a8e7c6b5a49382716"}, {"status": "error", "status_code": 400, "error": {"type": "validation_error", "message": "[1].distinct_id: is required"}}]})),
        (status = 400, description = "Not an array of 1-100 events (with an empty `records`).", body = crate::api::doc::BulkErrorBody)
    )
)]
pub async fn track_bulk(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Response {
    let items = match body {
        Value::Array(items) if (1..=MAX_TRIGGERS_PER_CALL).contains(&items.len()) => items,
        other => {
            let got = other
                .as_array()
                .map_or_else(|| "no array".to_owned(), |a| a.len().to_string());
            return refused_bulk(ApiError::bad_request(
                "body",
                format!("must be an array of 1 to {MAX_TRIGGERS_PER_CALL} events, got {got}"),
            ));
        }
    };
    let ctx = caller.ctx();
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let result = match TrackEvent::parse(item, &caller.workspace_key) {
            Ok(event) => run_track(&app, &ctx, event)
                .await
                .map_err(|e| at_item(i, e)),
            Err(e) => Err(ApiError::invalid(e.within_index(i))),
        };
        records.push(record(result));
    }
    bulk_reply(records)
}

/// `/trigger`, `/v2/event` and `/v2/bulk/event`, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(trigger))
        .routes(routes!(track_v2))
        .routes(routes!(track_bulk))
}

/// One trigger (see wire spec §2.7), or an array of 1-100.
pub struct TriggerBody;

impl utoipa::PartialSchema for TriggerBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
        use utoipa::openapi::Ref;
        OneOfBuilder::new()
            .item(Ref::from_schema_name("TriggerObject"))
            .item(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("TriggerObject"))
                    .min_items(Some(1))
                    .max_items(Some(MAX_TRIGGERS_PER_CALL)),
            )
            .into()
    }
}

impl ToSchema for TriggerBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("TriggerObject".into(), TriggerObject::schema()));
    }
}

/// A trigger.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TriggerObject {
    /// The workflow's slug.
    workflow: String,
    /// 1-1000 distinct_id strings or recipient objects (`distinct_id`, optional `$channels`,
    /// `is_transient`, `$skip_create`, channels such as `$email`, and properties to upsert).
    #[schema(min_items = 1, max_items = 1000)]
    recipients: Vec<Value>,
    /// The templates' variables; keys must not start with `$`.
    #[schema(required = false)]
    data: serde_json::Map<String, Value>,
    /// A distinct_id or recipient object: `$actor` in templates.
    #[schema(required = false)]
    actor: Value,
    /// At most 255 characters; honoured for 24 hours per environment.
    #[serde(rename = "$idempotency_key")]
    #[schema(required = false, max_length = 255)]
    idempotency_key: String,
    /// Accepted, not used yet.
    #[schema(required = false, max_length = 64)]
    tenant_id: String,
}

/// A track event as the SDKs send it. Other keys (`$time`, `brand_id`, ...) are ignored.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TrackEventBody {
    /// 2-255 characters; names starting with `$` or `ss_` are reserved (except the SDKs' own).
    event: String,
    distinct_id: String,
    /// When present, the workspace key of the caller's environment.
    #[schema(required = false)]
    env: String,
    #[schema(required = false)]
    properties: serde_json::Map<String, Value>,
    #[serde(rename = "$insert_id")]
    #[schema(required = false)]
    insert_id: String,
    #[serde(rename = "$idempotency_key")]
    #[schema(required = false, max_length = 255)]
    idempotency_key: String,
}

/// A single trigger's or event's reply, or a bulk call's records.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TriggerReply {
    /// `success` (single); `success`, `partial` or `fail` (bulk).
    status: String,
    /// The trigger's id (single calls).
    #[schema(required = false)]
    message_id: Option<String>,
    /// Bulk calls: one per trigger, in order.
    #[schema(required = false)]
    records: Vec<Value>,
}
