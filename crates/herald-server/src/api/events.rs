//! `POST /event/`: identity events, one object or an array of up to 400.

use super::error::ApiError;
use super::trigger;
use super::{Caller, JsonBody};
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::service::dispatch::TrackEvent;
use herald_core::service::{events, limits};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

#[utoipa::path(
    post,
    path = "/event",
    operation_id = "ingestEvents",
    tag = "events",
    summary = "Identity events (asynchronous edits) and track events",
    description = "One identity event or an array of up to 400, each at most 10 KB (measured as compact JSON). Every event is validated before any is applied: one malformed event refuses the whole call (400, `field` prefixed with the event's index, also for a single object: `[0].env`). Valid events then apply in order, each all or nothing. An event whose `$insert_id` was already applied in this environment within 24 hours is acknowledged and not applied again. Track events (`event` without `$user_operations`, node `track_event`) start the workflows listing the event, as `POST /v2/event/` does; a call holding one answers a single object with {status, message_id}, an array with one record per event.",
    request_body(content = crate::api::events::EventsBody, example = json!({"$schema": "2", "$insert_id": "0b9e6f3c-5b7e-4f43-9d1e-6b1f2f7d9a01", "$time": 1_795_908_108_000_i64, "env": "hk_test_kHdqdnTA4rujTdGOlmchNr6I", "distinct_id": "ada", "$user_operations": [{"$add": {"logins": 1}}, {"$append": {"$email": "ada@work.example"}}], "properties": {"$ss_sdk_version": "suprsend-py-sdk/0.20.0"}})),
    responses(
        (status = 202, description = "Accepted. A single object answers {\"status\": \"success\"} (its failure is the call's failure, with that event's status). An array answers a status of success, partial or fail and one record per event, in order.", body = crate::api::events::EventsReply, example = json!({"status": "partial", "records": [{"status": "success", "status_code": 202}, {"status": "error", "status_code": 400, "error": {"type": "validation_error", "message": "[1].$user_operations[0].$append.age: cannot append: the property is a number, not a list"}}]})),
        (status = 400, description = "Not an object or array, an empty array, an event without $user_operations or `event`, a missing distinct_id, a reserved event name, an `env` of another workspace, a bad $insert_id, an invalid operation; for a single object, also an operation that cannot apply.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "[0].env: must be the workspace key of the key that signs the request", "detail": "[0].env: must be the workspace key of the key that signs the request", "field": "[0].env", "error": {"type": "validation_error", "message": "[0].env: must be the workspace key of the key that signs the request"}})),
        (status = 413, description = "More than 400 events, an event over 10 KB, or a body over 2 MiB.", body = crate::api::doc::ErrorBody, example = json!({"code": 413, "error_code": "payload_too_large", "type": "PayloadTooLarge", "message": "at most 400 events per call, got 401", "detail": "at most 400 events per call, got 401", "field": null, "error": {"type": "payload_too_large", "message": "at most 400 events per call, got 401"}}))
    )
)]
/// Every event is validated before any is applied: a malformed one rejects the whole call and
/// changes nothing. Valid events are then applied in order, each all or nothing; the reply lists
/// each one's outcome.
pub async fn ingest(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let single = body.is_object();
    let items: Vec<Value> = match body {
        Value::Array(items) => items,
        Value::Object(_) => vec![body],
        _ => {
            return Err(ApiError::bad_request(
                "body",
                "must be an event object or an array of events",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "body",
            "must hold at least one event",
        ));
    }
    if items.len() > limits::MAX_EVENTS_PER_CALL {
        return Err(ApiError::too_large(format!(
            "at most {} events per call, got {}",
            limits::MAX_EVENTS_PER_CALL,
            items.len()
        )));
    }
    if items.iter().any(events::is_track_event) {
        return with_track_events(&app, &caller, single, items).await;
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let size = serde_json::to_vec(item).map(|v| v.len()).unwrap_or(0);
        if size > limits::MAX_EDIT_BYTES {
            return Err(ApiError::too_large(format!(
                "event [{i}] has {size} bytes; an identity event may carry at most {}",
                limits::MAX_EDIT_BYTES
            )));
        }
        let event = events::parse_identity_event(item, &caller.workspace_key)
            .map_err(|e| e.within(format!("[{i}]")))?;
        parsed.push(event);
    }
    let mut results = events::ingest(app.store.as_ref(), &caller.ctx(), 0, parsed).await;
    if single {
        // One event: its failure is the call's failure, as for a direct edit.
        results.pop().expect("one event, one result")?;
        return Ok((StatusCode::ACCEPTED, Json(json!({ "status": "success" }))).into_response());
    }
    let mut failed = 0;
    let mut records = Vec::with_capacity(results.len());
    for r in results {
        records.push(match r {
            Ok(()) => json!({ "status": "success", "status_code": 202 }),
            Err(e) => {
                failed += 1;
                let e = ApiError::from(e);
                json!({ "status": "error", "status_code": e.status.as_u16(), "error": { "type": e.code, "message": e.message } })
            }
        });
    }
    let status = match failed {
        0 => "success",
        n if n == records.len() => "fail",
        _ => "partial",
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": status, "records": records })),
    )
        .into_response())
}

/// A call holding track events (node `track_event` and bulk events): every event is validated
/// first (one malformed refuses the call), then each runs in order — each run of identity events
/// as one unit, as above, track events through the trigger path — with one record each (a
/// single object: its outcome).
async fn with_track_events(
    app: &App,
    caller: &Caller,
    single: bool,
    items: Vec<Value>,
) -> Result<Response, ApiError> {
    enum Item {
        Identity(events::IdentityEvent),
        Track(TrackEvent),
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let event = if events::is_track_event(item) {
            TrackEvent::parse(item, &caller.workspace_key).map(Item::Track)
        } else {
            events::parse_identity_event(item, &caller.workspace_key).map(Item::Identity)
        };
        parsed.push(event.map_err(|e| e.within(format!("[{i}]")))?);
    }
    let ctx = caller.ctx();
    let mut records = Vec::with_capacity(parsed.len());
    let mut identities = Vec::new();
    let mut parsed = parsed.into_iter().enumerate().peekable();
    while let Some((i, item)) = parsed.next() {
        let result = match item {
            Item::Identity(e) => {
                identities.push(e);
                if matches!(parsed.peek(), Some((_, Item::Identity(_)))) {
                    continue;
                }
                // The run of identity events ending here, as one unit.
                let run = std::mem::take(&mut identities);
                let first = i + 1 - run.len();
                let mut results = events::ingest(app.store.as_ref(), &ctx, first, run).await;
                let last = results.pop().expect("one result per event");
                records.extend(
                    results
                        .into_iter()
                        .map(|r| trigger::record(r.map(|()| None).map_err(ApiError::from))),
                );
                last.map(|()| None).map_err(ApiError::from)
            }
            Item::Track(e) => trigger::run_track(app, &ctx, e)
                .await
                .map_err(|e| trigger::at_item(i, e)),
        };
        if single {
            return Ok(trigger::accepted(result?));
        }
        records.push(trigger::record(result));
    }
    Ok(trigger::bulk_reply(records))
}

/// `/event`, with its documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(ingest))
}

/// One identity event, or a list of 1-400.
pub struct EventsBody;

impl utoipa::PartialSchema for EventsBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
        use utoipa::openapi::Ref;
        OneOfBuilder::new()
            .item(Ref::from_schema_name("IdentityEvent"))
            .item(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("IdentityEvent"))
                    .min_items(Some(1))
                    .max_items(Some(limits::MAX_EVENTS_PER_CALL)),
            )
            .into()
    }
}

impl ToSchema for EventsBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("IdentityEvent".into(), IdentityEvent::schema()));
        IdentityEvent::schemas(schemas);
    }
}

/// An identity event as the SuprSend SDKs send it (users.async_edit, bulk user edits). Other keys
/// ($schema, $time, properties, tenant_id, ...) are accepted and ignored.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IdentityEvent {
    #[schema(min_length = 1, max_length = 255)]
    distinct_id: String,
    /// When present, must equal the workspace key of the caller's environment (the key that
    /// signs, or whose API key is used).
    #[schema(required = false)]
    env: String,
    /// Idempotency key: an event whose $insert_id was already applied in this environment in the
    /// last 24 hours is acknowledged and not applied again.
    #[serde(rename = "$insert_id")]
    #[schema(min_length = 1, max_length = 255)]
    insert_id: Option<String>,
    /// Epoch milliseconds; ignored.
    #[serde(rename = "$time")]
    #[schema(required = false)]
    time: i64,
    #[serde(rename = "$user_operations")]
    user_operations: Vec<crate::api::users::Operation>,
    /// Other keys: accepted and ignored.
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, Value>,
}

/// A single event's reply, or an array's: its status and one record per event.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents what `ingest` answers
pub enum EventsReply {
    One(#[schema(inline)] SingleEventReply),
    Many(#[schema(inline)] EventsRecords),
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SingleEventReply {
    #[schema(schema_with = success)]
    status: String,
}

fn success() -> utoipa::openapi::schema::ObjectBuilder {
    crate::api::doc::const_string("success")
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventsRecords {
    #[schema(inline)]
    status: CallStatus,
    records: Vec<EventRecord>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum CallStatus {
    Success,
    Partial,
    Fail,
}

/// One event's outcome.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventRecord {
    #[schema(inline)]
    status: RecordStatus,
    /// 202, or the status the event alone would get.
    status_code: u16,
    #[schema(inline, required = false)]
    error: EventError,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RecordStatus {
    Success,
    Error,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventError {
    #[serde(rename = "type")]
    #[schema(required = false)]
    kind: String,
    #[schema(required = false)]
    message: String,
}
