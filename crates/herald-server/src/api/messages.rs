//! The notification log (wire spec §2.9): `GET /v1/message/` with its filters, one message, and
//! one user's messages, newest first, in the caller's environment only.

use super::error::ApiError;
use super::{parse_page_limit, parse_seq_cursor, query_pairs, Caller, JsonBody, UserId};
use crate::App;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::engagement::Event;
use herald_core::message::{Message, MessageStatus};
use herald_core::service;
use herald_core::store::{MessagePage, MessageQuery};
use herald_core::{Channel, DistinctId};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

/// A message on the wire: Herald's fields (`status`, `reason`, `status_history`, `identity`,
/// `provider_id`) and the SuprSend names the SDKs read (`message_id`, `recipient`, `workflow`,
/// `failure_reason`, `channel_identity`, `*_at`).
pub fn message_json(m: &Message) -> Value {
    let at = |status: MessageStatus| {
        m.history
            .iter()
            .find(|c| c.status == status)
            .map(|c| c.at.to_rfc3339())
    };
    let updated = m.history.last().map_or(m.created_at, |c| c.at);
    let identity = m.identity.as_ref().map(|i| i.to_wire());
    json!({
        "message_id": m.id,
        "status": m.status.as_str(),
        "channel": m.channel.as_str(),
        "category": m.category,
        "recipient": {"$type": "user", "distinct_id": m.distinct_id.as_str()},
        "workflow": {"slug": m.workflow},
        "trigger_id": m.trigger_id,
        "idempotency_key": m.idempotency_key,
        "identity": identity,
        "channel_identity": m.identity.as_ref().map(|i| json!({ i.channel.as_str(): i.value })),
        "provider_id": m.provider_id,
        "reason": m.reason,
        "failure_reason": (m.status == MessageStatus::Failed).then(|| m.reason.clone()).flatten(),
        "attempts": m.attempts,
        "held_until": m.held_until.map(|t| t.to_rfc3339()),
        "status_history": m.history.iter().map(|c| json!({
            "status": c.status.as_str(),
            "at": c.at.to_rfc3339(),
            "reason": c.reason,
        })).collect::<Vec<_>>(),
        "created_at": m.created_at.to_rfc3339(),
        "triggered_at": m.created_at.to_rfc3339(),
        "updated_at": updated.to_rfc3339(),
        "sent_at": at(MessageStatus::Sent),
        "delivered_at": at(MessageStatus::Delivered),
        "failed_at": at(MessageStatus::Failed),
        "seen_at": m.seen_at.map(|t| t.to_rfc3339()),
        "clicked_at": m.clicked_at.map(|t| t.to_rfc3339()),
    })
}

fn page_json(page: &MessagePage, limit: usize, after: Option<i64>) -> Value {
    json!({
        "meta": {
            "count": page.messages.len(),
            "limit": limit,
            "has_prev": after.is_some(),
            "has_next": page.next.is_some(),
            "before": null,
            "after": page.next.map(|n| n.to_string()),
        },
        "results": page.messages.iter().map(message_json).collect::<Vec<_>>(),
    })
}

fn parse_time(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request(field, format!("'{raw}' is not an RFC 3339 time")))
}

/// A status filter: Herald's names, and SuprSend's `triggered` (queued) and `delivery_failed`.
fn parse_status(raw: &str) -> Result<MessageStatus, ApiError> {
    match raw.trim() {
        "triggered" => Ok(MessageStatus::Queued),
        "delivery_failed" => Ok(MessageStatus::Failed),
        other => MessageStatus::from_name(other).ok_or_else(|| {
            ApiError::bad_request(
                "status",
                format!("'{raw}' is not one of waiting, queued, sent, delivered, failed, skipped (or triggered, delivery_failed)"),
            )
        }),
    }
}

/// Sets a filter that takes one value; the same value repeated is fine, two different ones are
/// not (yet) supported and say so (`recipient_id` takes several).
fn once<T: PartialEq>(slot: &mut Option<T>, field: &str, value: T) -> Result<(), ApiError> {
    match slot {
        Some(existing) if *existing != value => Err(ApiError::bad_request(
            field,
            "takes one value per request; list the others in further requests",
        )),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// Reads the query of `GET /v1/message/`. Parameters are matched with or without `[]`
/// (`recipient_id%5B%5D=u1` is `recipient_id[]=u1`); unknown ones are ignored, as SuprSend does.
fn parse_query(uri: &Uri) -> Result<(MessageQuery, Option<i64>), ApiError> {
    let mut q = MessageQuery {
        limit: DEFAULT_LIMIT,
        ..MessageQuery::default()
    };
    let mut after = None;
    for (k, v) in query_pairs(uri) {
        if v.is_empty() {
            continue;
        }
        match k.trim_end_matches("[]") {
            "limit" => q.limit = parse_page_limit(&v, MAX_LIMIT)?,
            "after" => after = Some(parse_seq_cursor(&v)?),
            "recipient_id" | "distinct_id" => {
                let id = DistinctId::parse(&v)
                    .map_err(|e| ApiError::bad_request("recipient_id", e.rule))?;
                if !q.distinct_ids.contains(&id) {
                    q.distinct_ids.push(id);
                }
            }
            "status" => once(&mut q.status, "status", parse_status(&v)?)?,
            "channel" => {
                let channel = Channel::from_name(v.trim()).ok_or_else(|| {
                    ApiError::bad_request("channel", format!("'{v}' is not a channel"))
                })?;
                once(&mut q.channel, "channel", channel)?
            }
            "category" => once(&mut q.category, "category", v.trim().to_owned())?,
            "workflow" | "workflow_slug" => {
                once(&mut q.workflow, "workflow_slug", v.trim().to_owned())?
            }
            "created_at_gte" => q.created_after = Some(parse_time("created_at_gte", &v)?),
            // The store's bound is exclusive: one microsecond later keeps `lte` inclusive.
            "created_at_lte" => {
                q.created_before =
                    Some(parse_time("created_at_lte", &v)? + chrono::TimeDelta::microseconds(1))
            }
            _ => {}
        }
    }
    if q.distinct_ids.len() > MessageQuery::MAX_RECIPIENTS {
        return Err(ApiError::bad_request(
            "recipient_id",
            format!(
                "takes at most {} distinct values per request, got {}",
                MessageQuery::MAX_RECIPIENTS,
                q.distinct_ids.len()
            ),
        ));
    }
    q.before = after;
    Ok((q, after))
}

#[utoipa::path(
    get,
    path = "/v1/message",
    operation_id = "listMessages",
    tag = "messages",
    summary = "The notification log, newest first",
    description = "Messages of the caller's environment. Filters combine (AND). `recipient_id` may repeat, up to 100 distinct ids: messages to any of them (OR). Every other filter takes one value (a repeated one must repeat the same value). `recipient_id[]` and the other bracketed names are accepted with or without the brackets.",
    params(crate::api::messages::MessageListQuery),
    responses(
        (status = 200, description = "A page of messages.", body = crate::api::messages::MessageList),
        (status = 400, description = "A parameter that does not parse: limit, after, status, channel, a time, a recipient_id; more than 100 distinct recipient_id values; or two different values of another filter.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "status: 'done' is not one of waiting, queued, sent, delivered, failed, skipped (or triggered, delivery_failed)", "detail": "status: 'done' is not one of waiting, queued, sent, delivered, failed, skipped (or triggered, delivery_failed)", "field": "status", "error": {"type": "validation_error", "message": "status: 'done' is not one of waiting, queued, sent, delivered, failed, skipped (or triggered, delivery_failed)"}}))
    )
)]
pub async fn list_messages(
    State(app): State<App>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let (query, after) = parse_query(&uri)?;
    let page = app.store.list_messages(caller.scope, &query).await?;
    Ok(Json(page_json(&page, query.limit, after)))
}

#[utoipa::path(
    get,
    path = "/v1/message/{message_id}",
    operation_id = "getMessage",
    tag = "messages",
    summary = "One message",
    params(("message_id" = String, Path, description = "The message's id.")),
    responses(
        (status = 200, description = "The message.", body = crate::api::messages::MessageBody),
        (status = 404, description = "No such message in this environment.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn get_message(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let message = app
        .store
        .get_message(caller.scope, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message '{id}' not found")))?;
    Ok(Json(message_json(&message)))
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/message",
    operation_id = "userMessages",
    tag = "messages",
    summary = "A user's messages, newest first",
    description = "Every message to this distinct_id in the caller's environment (an unknown user has none).",
    params(crate::api::doc::UserPath, crate::api::messages::PageQuery),
    responses(
        (status = 200, description = "A page of messages.", body = crate::api::messages::MessageList),
        (status = 400, description = "limit or after does not parse.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn user_messages(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut after = None;
    for (k, v) in query_pairs(&uri) {
        match k.as_str() {
            "limit" => limit = parse_page_limit(&v, MAX_LIMIT)?,
            "after" if !v.is_empty() => after = Some(parse_seq_cursor(&v)?),
            _ => {}
        }
    }
    let page = app
        .store
        .user_messages(caller.scope, &id, after, limit)
        .await?;
    Ok(Json(page_json(&page, limit, after)))
}

#[utoipa::path(
    post,
    path = "/v1/message/{message_id}/event",
    operation_id = "messageEvent",
    tag = "messages",
    summary = "Report that a message was seen, clicked or delivered",
    description = "What an app reports about a message it showed (a push opened, an in-app banner seen): `seen` sets seen_at, `clicked` sets clicked_at (and seen_at), each the first time only (a repeat changes nothing and answers 200 with the message); `delivered` moves a sent message to delivered. `smart` workflow policies read seen_at and clicked_at. Only a message of the caller's environment, and only one that was sent.",
    params(("message_id" = String, Path, description = "The message's id.")),
    request_body(content = crate::api::messages::MessageEventBody, example = json!({"event": "clicked"})),
    responses(
        (status = 200, description = "The message as stored now.", body = crate::api::messages::MessageBody),
        (status = 400, description = "event is missing or not one of seen, clicked, delivered.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "event: 'opened' is not one of seen, clicked, delivered", "detail": "event: 'opened' is not one of seen, clicked, delivered", "field": "event", "error": {"type": "validation_error", "message": "event: 'opened' is not one of seen, clicked, delivered"}})),
        (status = 404, description = "No such message in this environment.", body = crate::api::doc::ErrorBody),
        (status = 409, description = "The message was never sent (waiting, queued or skipped).", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn message_event(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let event = match body.get("event") {
        Some(Value::String(raw)) => Event::parse("event", raw)?,
        _ => {
            return Err(ApiError::bad_request(
                "event",
                "is required: one of seen, clicked, delivered",
            ))
        }
    };
    let message =
        service::engagement::record(app.store.as_ref(), &caller.ctx(), &id, event).await?;
    Ok(Json(message_json(&message)))
}

/// `/v1/message/…` and `/v1/user/{id}/message/`, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_messages))
        .routes(routes!(get_message))
        .routes(routes!(user_messages))
        .routes(routes!(message_event))
}

// ---- The documented shapes -------------------------------------------------------------------

/// The filters of `GET /v1/message/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MessageListQuery {
    /// 1-1000, default 20.
    #[param(minimum = 1, maximum = 1000, default = 20)]
    limit: Option<i64>,
    /// The meta.after of the previous page: older messages.
    after: Option<String>,
    /// Messages to these distinct_ids: repeat the parameter (`recipient_id=a&recipient_id=b`, or `recipient_id[]=…`), up to 100 distinct ids, any of which matches.
    #[param(style = Form, explode, max_items = 100)]
    recipient_id: Option<Vec<String>>,
    /// waiting, queued, sent, delivered, failed, skipped; SuprSend's triggered and delivery_failed too.
    status: Option<String>,
    /// A channel: email, sms, whatsapp, slack, ms_teams, discord, inbox, ...
    channel: Option<String>,
    /// The workflow's category slug.
    category: Option<String>,
    /// The workflow's slug (`workflow` also accepted).
    workflow_slug: Option<String>,
    /// Created at or after this RFC 3339 time.
    created_at_gte: Option<String>,
    /// Created at or before this RFC 3339 time.
    created_at_lte: Option<String>,
}

/// Paging of a user's messages.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// 1-1000, default 20.
    #[param(minimum = 1, maximum = 1000, default = 20)]
    limit: Option<i64>,
    /// The meta.after of the previous page: older messages.
    after: Option<String>,
}

/// A page of messages, newest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MessageList {
    #[schema(inline)]
    meta: MessageListMeta,
    results: Vec<MessageBody>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MessageListMeta {
    /// Messages on this page.
    count: usize,
    limit: usize,
    has_prev: bool,
    has_next: bool,
    /// Always null: pages go from newest to oldest.
    before: Option<String>,
    /// The cursor of the next (older) page, or null.
    after: Option<String>,
}

/// One notification to one recipient on one channel.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MessageBody {
    message_id: String,
    /// waiting (a `first_success` fallback: sent only if the channel before it fails for good), queued, sent, delivered, failed or skipped.
    status: String,
    channel: String,
    category: Option<String>,
    /// `{"$type": "user", "distinct_id": …}`.
    recipient: Value,
    /// `{"slug": …}`.
    workflow: Value,
    trigger_id: String,
    idempotency_key: Option<String>,
    /// The identity the message went (or goes) to, as on the profile; null when skipped.
    identity: Option<Value>,
    /// The same, as SuprSend shows it: `{"<channel>": value}`.
    channel_identity: Option<Value>,
    /// The provider's id for the message, once sent.
    provider_id: Option<String>,
    /// The skip reason (`user_disabled`, `category_opted_out`, `channel_opted_out`, `no_identity`, `identity_invalid`, `no_provider`, `provider_mismatch`: the channel's provider does not deliver the user's kind of push token (an APNs token when iospush is FCM), `sent_on_other_channel`: a `first_success` fallback not needed, `engaged`: a `smart` step not needed because the user saw or clicked an earlier message, `throttled`: past the workflow's throttle, `digested`: collected into the user's digest), `quiet_hours` (held: see held_until), `digest of N items` (a digest's message), what a waiting fallback or smart step waits for, or the last failure or retry reason.
    reason: Option<String>,
    /// The reason, when the message failed.
    failure_reason: Option<String>,
    /// Provider calls made.
    attempts: u32,
    /// RFC 3339: held by the user's quiet hours, the message is not sent before this time.
    held_until: Option<String>,
    /// Every status with its time (and reason), oldest first.
    #[schema(inline)]
    status_history: Vec<StatusChangeBody>,
    created_at: String,
    /// Same as created_at.
    triggered_at: String,
    updated_at: String,
    sent_at: Option<String>,
    delivered_at: Option<String>,
    failed_at: Option<String>,
    /// When the user first saw it: the inbox item seen or read, a tracked email opened, a `seen` (or `clicked`) event.
    seen_at: Option<String>,
    /// When the user first clicked it: a tracked email link, a `clicked` event.
    clicked_at: Option<String>,
}

/// The body of `POST /v1/message/{message_id}/event/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MessageEventBody {
    /// seen, clicked or delivered.
    event: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatusChangeBody {
    status: String,
    /// RFC 3339.
    at: String,
    reason: Option<String>,
}
