//! The in-app inbox over HTTP, twice:
//!
//! - for key holders (behind the auth layer, in the key's environment):
//!   `GET /v1/user/{id}/inbox/` (newest first, cursor, filters, counts in `meta`),
//!   `GET …/inbox/count/`, `POST …/inbox/mark/` (all items) and
//!   `POST …/inbox/{message_id}/mark/` (one item) with `{"action": "seen"|"read"|"unread"|
//!   "archive"|"unarchive"}`, `GET …/inbox/subscriber/` (the user's browser credential), and the
//!   environment's inbox secret: `GET /v1/inbox/secret/`, `POST /v1/inbox/secret/rotate/`;
//! - for browsers (no key: the environment by its workspace key in the path, the user by
//!   `?subscriber_id=` = hex HMAC-SHA256 of the distinct_id under the inbox secret): the same
//!   list, count and marks under `/inbox/{workspace_key}/{id}/…`, and `…/stream/`, a live stream
//!   of Server-Sent Events (`counts` first, then `item` for each new item and `counts` when marks
//!   change them). Browser answers allow any origin (the credential is in the URL, never a
//!   cookie) and are never cached.

use super::error::ApiError;
use super::{parse_page_limit, parse_seq_cursor, query_pairs, Caller, JsonBody, UserId};
use crate::inbox::OpenError;
use crate::App;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use herald_core::history::Actor;
use herald_core::inbox::{self, InboxCounts, InboxItem, InboxPage, InboxQuery, InboxSignal, Mark};
use herald_core::service::inbox as service;
use herald_core::service::Ctx;
use herald_core::{DistinctId, EnvScope};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

// ---- The wire --------------------------------------------------------------------------------

fn time(t: Option<chrono::DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

/// An item on the wire.
pub fn item_json(i: &InboxItem) -> Value {
    json!({
        "message_id": i.message_id,
        "workflow": i.workflow,
        "category": i.category,
        "title": i.title,
        "body": i.body,
        "action_url": i.action_url,
        "created_at": i.created_at.to_rfc3339(),
        "seen_at": time(i.seen_at),
        "read_at": time(i.read_at),
        "archived_at": time(i.archived_at),
    })
}

pub fn counts_json(c: &InboxCounts) -> Value {
    json!({"total": c.total, "unseen": c.unseen, "unread": c.unread, "archived": c.archived})
}

fn page_json(page: &InboxPage, counts: &InboxCounts, limit: usize, after: Option<i64>) -> Value {
    json!({
        "meta": {
            "count": page.items.len(),
            "limit": limit,
            "has_prev": after.is_some(),
            "has_next": page.next.is_some(),
            "before": null,
            "after": page.next.map(|n| n.to_string()),
            "counts": counts_json(counts),
        },
        "results": page.items.iter().map(item_json).collect::<Vec<_>>(),
    })
}

fn flag(field: &str, raw: &str) -> Result<bool, ApiError> {
    match raw.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(
            field,
            format!("must be true or false, got '{raw}'"),
        )),
    }
}

/// Reads `limit`, `after`, `seen`, `read`, `archived`; other parameters (`subscriber_id`) are
/// not the listing's.
fn parse_query(uri: &Uri) -> Result<(InboxQuery, Option<i64>), ApiError> {
    let mut q = InboxQuery {
        limit: DEFAULT_LIMIT,
        ..InboxQuery::default()
    };
    let mut after = None;
    for (k, v) in query_pairs(uri) {
        match k.as_str() {
            "limit" => q.limit = parse_page_limit(&v, MAX_LIMIT)?,
            "after" if !v.is_empty() => after = Some(parse_seq_cursor(&v)?),
            "seen" => q.filter.seen = Some(flag("seen", &v)?),
            "read" => q.filter.read = Some(flag("read", &v)?),
            "archived" => q.filter.archived = Some(flag("archived", &v)?),
            _ => {}
        }
    }
    q.before = after;
    Ok((q, after))
}

/// `{"action": <mark>}`, nothing else.
fn parse_mark(body: &Value) -> Result<Mark, ApiError> {
    let Value::Object(fields) = body else {
        return Err(ApiError::bad_request(
            "action",
            "is required: the body is {\"action\": \"seen\"|\"read\"|\"unread\"|\"archive\"|\"unarchive\"}",
        ));
    };
    if let Some(other) = fields.keys().find(|k| *k != "action") {
        return Err(ApiError::bad_request(
            other,
            "is not a field of a mark (only action)",
        ));
    }
    match fields.get("action") {
        Some(Value::String(name)) => Ok(Mark::parse("action", name)?),
        Some(_) => Err(ApiError::bad_request(
            "action",
            "must be one of seen, read, unread, archive, unarchive",
        )),
        None => Err(ApiError::bad_request(
            "action",
            "is required: one of seen, read, unread, archive, unarchive",
        )),
    }
}

fn message_id(raw: &str) -> Result<String, ApiError> {
    Ok(service::message_id("message_id", raw)?)
}

/// The `{message_id}` path segment.
fn path_message_id(parts: &[(String, String)]) -> Result<String, ApiError> {
    let raw = parts
        .iter()
        .find(|(k, _)| k == "message_id")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    message_id(raw)
}

// ---- What both audiences do ------------------------------------------------------------------

async fn list(app: &App, ctx: &Ctx, id: &DistinctId, uri: &Uri) -> Result<Json<Value>, ApiError> {
    let (query, after) = parse_query(uri)?;
    let (page, counts) = service::list(app.store.as_ref(), ctx, id, &query).await?;
    Ok(Json(page_json(&page, &counts, query.limit, after)))
}

async fn count(app: &App, ctx: &Ctx, id: &DistinctId) -> Result<Json<Value>, ApiError> {
    let counts = service::counts(app.store.as_ref(), ctx, id).await?;
    Ok(Json(counts_json(&counts)))
}

async fn mark_all(
    app: &App,
    ctx: &Ctx,
    id: &DistinctId,
    body: &Value,
) -> Result<Json<Value>, ApiError> {
    let mark = parse_mark(body)?;
    let (updated, counts) = service::mark_all(app.store.as_ref(), ctx, id, mark).await?;
    Ok(Json(
        json!({"updated": updated, "counts": counts_json(&counts)}),
    ))
}

async fn mark_one(
    app: &App,
    ctx: &Ctx,
    id: &DistinctId,
    message_id: &str,
    body: &Value,
) -> Result<Json<Value>, ApiError> {
    let mark = parse_mark(body)?;
    let (item, counts) = service::mark_one(app.store.as_ref(), ctx, id, message_id, mark).await?;
    Ok(Json(
        json!({"item": item_json(&item), "counts": counts_json(&counts)}),
    ))
}

// ---- For key holders -------------------------------------------------------------------------

#[utoipa::path(
    get,
    path = "/v1/user/{id}/inbox",
    operation_id = "userInbox",
    tag = "inbox",
    summary = "A user's inbox, newest first",
    description = "Items the inbox channel delivered to this distinct_id in the caller's environment (an unknown user has none), with the user's counts in meta.counts. Filters combine (AND).",
    params(crate::api::doc::UserPath, crate::api::inbox::InboxListQuery),
    responses(
        (status = 200, description = "A page of items.", body = crate::api::inbox::InboxList),
        (status = 400, description = "The distinct_id, limit, after, seen, read or archived does not parse.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "read: must be true or false, got 'yes'", "detail": "read: must be true or false, got 'yes'", "field": "read", "error": {"type": "validation_error", "message": "read: must be true or false, got 'yes'"}}))
    )
)]
pub async fn user_inbox(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    list(&app, &caller.ctx(), &id, &uri).await
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/inbox/count",
    operation_id = "userInboxCount",
    tag = "inbox",
    summary = "A user's inbox counts",
    params(crate::api::doc::UserPath),
    responses(
        (status = 200, description = "The counts.", body = crate::api::inbox::InboxCountsBody, example = json!({"total": 3, "unseen": 1, "unread": 2, "archived": 1})),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn user_inbox_count(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<Json<Value>, ApiError> {
    count(&app, &caller.ctx(), &id).await
}

#[utoipa::path(
    post,
    path = "/v1/user/{id}/inbox/mark",
    operation_id = "markUserInbox",
    tag = "inbox",
    summary = "Mark all of a user's items",
    description = "seen, read (also seen), unread, archive or unarchive every item of the user. A mark sets a time once (the first counts) or clears it. Live streams of the user get the new counts.",
    params(crate::api::doc::UserPath),
    request_body(content = crate::api::inbox::MarkBody, example = json!({"action": "read"})),
    responses(
        (status = 200, description = "How many items changed, and the counts after.", body = crate::api::inbox::MarkAllResult, example = json!({"updated": 2, "counts": {"total": 3, "unseen": 0, "unread": 0, "archived": 1}})),
        (status = 400, description = "The distinct_id, or the body: action missing or not a mark, or another field.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "action: 'delete' is not one of seen, read, unread, archive, unarchive", "detail": "action: 'delete' is not one of seen, read, unread, archive, unarchive", "field": "action", "error": {"type": "validation_error", "message": "action: 'delete' is not one of seen, read, unread, archive, unarchive"}}))
    )
)]
pub async fn mark_user_inbox(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    mark_all(&app, &caller.ctx(), &id, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/user/{id}/inbox/{message_id}/mark",
    operation_id = "markUserInboxItem",
    tag = "inbox",
    summary = "Mark one of a user's items",
    description = "seen, read (also seen), unread, archive or unarchive the item of this message. Marking what is already so changes nothing. Live streams of the user get the new counts.",
    params(crate::api::doc::UserPath, crate::api::inbox::MessagePath),
    request_body(content = crate::api::inbox::MarkBody, example = json!({"action": "read"})),
    responses(
        (status = 200, description = "The item after the mark, and the counts.", body = crate::api::inbox::MarkResult),
        (status = 400, description = "The distinct_id, the message_id (1-255 bytes, no control characters), or the body: action missing or not a mark, or another field.", body = crate::api::doc::ErrorBody),
        (status = 404, description = "This user has no item for that message in this environment.", body = crate::api::doc::ErrorBody, example = json!({"code": 404, "error_code": "not_found", "type": "NotFound", "message": "inbox item 'msg_x' not found", "detail": "inbox item 'msg_x' not found", "field": null, "error": {"type": "not_found", "message": "inbox item 'msg_x' not found"}}))
    )
)]
pub async fn mark_user_inbox_item(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    Path(parts): Path<Vec<(String, String)>>,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let message_id = path_message_id(&parts)?;
    mark_one(&app, &caller.ctx(), &id, &message_id, &body).await
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/inbox/subscriber",
    operation_id = "userInboxSubscriber",
    tag = "inbox",
    summary = "A user's browser credential for the inbox",
    description = "subscriber_id = lower-case hex of HMAC-SHA256(the environment's inbox secret, distinct_id): what the user's browser sends to the /inbox/{workspace_key}/{distinct_id}/ endpoints. Your backend may compute it itself with the secret (GET /v1/inbox/secret/). It changes when the secret is rotated. The user need not exist.",
    params(crate::api::doc::UserPath),
    responses(
        (status = 200, description = "The credential, and the workspace key the browser names.", body = crate::api::inbox::SubscriberBody, example = json!({"distinct_id": "ada", "workspace_key": "hk_test_abc", "subscriber_id": "5f8c0d6d1f3a53f3bd3b0e1d3b6c8c6e2a1f0e4d9c8b7a6f5e4d3c2b1a0f9e8d"})),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn user_inbox_subscriber(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<Json<Value>, ApiError> {
    let secret = service::secret(app.store.as_ref(), &caller.ctx()).await?;
    Ok(Json(json!({
        "distinct_id": id.as_str(),
        "workspace_key": caller.workspace_key,
        "subscriber_id": inbox::subscriber_id(&secret, &id),
    })))
}

#[utoipa::path(
    get,
    path = "/v1/inbox/secret",
    operation_id = "inboxSecret",
    tag = "inbox",
    summary = "The environment's inbox secret",
    description = "The key of every subscriber_id of this environment (created on first use). Keep it on your backend: whoever holds it can read every user's inbox.",
    responses(
        (status = 200, description = "The secret.", body = crate::api::inbox::SecretBody, example = json!({"env": "test", "secret": "3b6f2c0e9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c"}))
    )
)]
pub async fn inbox_secret(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let secret = service::secret(app.store.as_ref(), &caller.ctx()).await?;
    Ok(Json(
        json!({"env": caller.scope.env().as_str(), "secret": secret}),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/inbox/secret/rotate",
    operation_id = "rotateInboxSecret",
    tag = "inbox",
    summary = "Replace the environment's inbox secret",
    description = "Every subscriber_id made with the old secret is refused from the next request on; streams already open end within inbox.stream_max_secs (browsers then reconnect, with the new id). Answers the new secret.",
    responses(
        (status = 200, description = "The new secret.", body = crate::api::inbox::SecretBody, example = json!({"env": "test", "secret": "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"}))
    )
)]
pub async fn rotate_inbox_secret(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let secret = service::rotate_secret(app.store.as_ref(), &caller.ctx()).await?;
    Ok(Json(
        json!({"env": caller.scope.env().as_str(), "secret": secret}),
    ))
}

/// The key holders' inbox endpoints, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(user_inbox))
        .routes(routes!(user_inbox_count))
        .routes(routes!(mark_user_inbox))
        .routes(routes!(mark_user_inbox_item))
        .routes(routes!(user_inbox_subscriber))
        .routes(routes!(inbox_secret))
        .routes(routes!(rotate_inbox_secret))
}

// ---- For browsers ----------------------------------------------------------------------------

/// A browser reading one user's inbox: the user of the path, proven by `?subscriber_id=` under
/// the inbox secret of the environment whose workspace key the path names.
pub struct Viewer {
    scope: EnvScope,
    id: DistinctId,
}

impl Viewer {
    fn ctx(&self) -> Ctx {
        Ctx::new(self.scope, Actor::new("inbox", "subscriber"), Utc::now())
    }
}

/// The refusal of a missing, wrong or stale subscriber_id (or an unknown workspace key: the
/// two are not told apart).
pub const SUBSCRIBER_REFUSED: &str = "subscriber_id does not match: it must be the hex HMAC-SHA256 of the distinct_id under the environment's current inbox secret";

impl FromRequestParts<App> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let UserId(id) = UserId::from_request_parts(parts, app).await?;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, app)
            .await
            .map_err(|e| ApiError::bad_request("workspace_key", e))?;
        let workspace_key = params
            .into_iter()
            .find(|(k, _)| k == "workspace_key")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let subscriber_id = query_pairs(&parts.uri)
            .into_iter()
            .find(|(k, _)| k == "subscriber_id")
            .map(|(_, v)| v)
            .ok_or_else(|| {
                ApiError::unauthorized("subscriber_id is required (?subscriber_id=…)")
            })?;
        let subscriber = service::open(app.store.as_ref(), &workspace_key, &id, &subscriber_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized(SUBSCRIBER_REFUSED))?;
        Ok(Viewer {
            scope: subscriber.scope(),
            id: subscriber.distinct_id,
        })
    }
}

/// What every browser answer carries: any origin may read it (the credential is in the URL,
/// never a cookie), and nothing caches it or passes the URL on.
async fn browser_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[utoipa::path(
    get,
    path = "/inbox/{workspace_key}/{id}",
    operation_id = "browserInbox",
    tag = "inbox",
    summary = "A user's inbox, from their browser",
    description = "As GET /v1/user/{distinct_id}/inbox/, authenticated by ?subscriber_id= instead of a key.",
    params(crate::api::inbox::WorkspacePath, crate::api::doc::UserPath, crate::api::inbox::InboxListQuery),
    responses(
        (status = 200, description = "A page of items.", body = crate::api::inbox::InboxList),
        (status = 400, description = "The distinct_id, limit, after, seen, read or archived does not parse.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn browser_inbox(
    State(app): State<App>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    list(&app, &viewer.ctx(), &viewer.id, &uri).await
}

#[utoipa::path(
    get,
    path = "/inbox/{workspace_key}/{id}/count",
    operation_id = "browserInboxCount",
    tag = "inbox",
    summary = "A user's inbox counts, from their browser",
    params(crate::api::inbox::WorkspacePath, crate::api::doc::UserPath),
    responses(
        (status = 200, description = "The counts.", body = crate::api::inbox::InboxCountsBody),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn browser_inbox_count(
    State(app): State<App>,
    viewer: Viewer,
) -> Result<Json<Value>, ApiError> {
    count(&app, &viewer.ctx(), &viewer.id).await
}

#[utoipa::path(
    post,
    path = "/inbox/{workspace_key}/{id}/mark",
    operation_id = "browserMarkInbox",
    tag = "inbox",
    summary = "Mark all of a user's items, from their browser",
    description = "As POST /v1/user/{distinct_id}/inbox/mark/. Send the body without a Content-Type (or as text/plain) and the browser needs no preflight.",
    params(crate::api::inbox::WorkspacePath, crate::api::doc::UserPath),
    request_body(content = crate::api::inbox::MarkBody, example = json!({"action": "seen"})),
    responses(
        (status = 200, description = "How many items changed, and the counts after.", body = crate::api::inbox::MarkAllResult),
        (status = 400, description = "The distinct_id, or the body: action missing or not a mark, or another field.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn browser_mark_inbox(
    State(app): State<App>,
    viewer: Viewer,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    mark_all(&app, &viewer.ctx(), &viewer.id, &body).await
}

#[utoipa::path(
    post,
    path = "/inbox/{workspace_key}/{id}/{message_id}/mark",
    operation_id = "browserMarkInboxItem",
    tag = "inbox",
    summary = "Mark one of a user's items, from their browser",
    description = "As POST /v1/user/{distinct_id}/inbox/{message_id}/mark/.",
    params(crate::api::inbox::WorkspacePath, crate::api::doc::UserPath, crate::api::inbox::MessagePath),
    request_body(content = crate::api::inbox::MarkBody, example = json!({"action": "read"})),
    responses(
        (status = 200, description = "The item after the mark, and the counts.", body = crate::api::inbox::MarkResult),
        (status = 400, description = "The distinct_id, the message_id, or the body.", body = crate::api::doc::ErrorBody),
        (status = 404, description = "This user has no item for that message in this environment.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn browser_mark_inbox_item(
    State(app): State<App>,
    viewer: Viewer,
    Path(parts): Path<Vec<(String, String)>>,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let message_id = path_message_id(&parts)?;
    mark_one(&app, &viewer.ctx(), &viewer.id, &message_id, &body).await
}

#[utoipa::path(
    get,
    path = "/inbox/{workspace_key}/{id}/stream",
    operation_id = "browserInboxStream",
    tag = "inbox",
    summary = "A user's inbox, live (Server-Sent Events)",
    description = "For EventSource. First `event: counts` with `{\"counts\": {...}}`; then `event: item` with `{\"item\": {...}, \"counts\": {...}}` for each new item and `event: counts` whenever marks (from any node) change the counts; `:` comments keep an idle stream open (every inbox.keep_alive_secs). The stream ends after inbox.stream_max_secs or at shutdown, and EventSource reconnects. A user may hold inbox.max_streams_per_user streams per node (more is 429).",
    params(crate::api::inbox::WorkspacePath, crate::api::doc::UserPath),
    responses(
        (status = 200, description = "The stream: Server-Sent Events, each as InboxEvent describes.", body = crate::api::inbox::InboxEvent, content_type = "text/event-stream", example = "event: counts\ndata: {\"counts\":{\"total\":1,\"unseen\":1,\"unread\":1,\"archived\":0}}\n\n"),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody),
        (status = 429, description = "Too many streams open for this user on this node (inbox.max_streams_per_user), or on the node (inbox.max_streams).", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn browser_inbox_stream(
    State(app): State<App>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    let limits = &app.config.inbox;
    let subscription = app
        .inbox
        .subscribe(&app.store, viewer.scope.env(), &viewer.id, limits)
        .await
        .map_err(|e| match e {
            OpenError::Store(e) => ApiError::from(e),
            OpenError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                e.to_string(),
            ),
            e @ (OpenError::TooMany(_) | OpenError::TooManyForUser(_)) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                e.to_string(),
            ),
        })?;
    let stream = Stream {
        app: app.clone(),
        ctx: viewer.ctx(),
        id: viewer.id,
        closing: subscription.closing(),
        subscription,
        started: false,
        until: Box::pin(tokio::time::sleep(Duration::from_secs(
            limits.stream_max_secs,
        ))),
    };
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let event = s.next().await?;
        Some((Ok::<Event, Infallible>(event), s))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(limits.keep_alive_secs.max(1))))
        .into_response();
    // Proxies must pass events on as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One live stream: its subscription, and what it reads the store with.
struct Stream {
    app: App,
    ctx: Ctx,
    id: DistinctId,
    subscription: crate::inbox::Subscription,
    closing: tokio_util::sync::CancellationToken,
    started: bool,
    until: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Stream {
    /// The next event; `None` ends the stream (its time is up, the server shuts down, or the
    /// store failed: the browser reconnects).
    async fn next(&mut self) -> Option<Event> {
        if !self.started {
            self.started = true;
            return self.counts_event().await;
        }
        loop {
            let signal = tokio::select! {
                () = self.closing.cancelled() => return None,
                () = &mut self.until => return None,
                signal = self.subscription.next() => signal?,
            };
            match signal {
                InboxSignal::Added { message_id, .. } => {
                    let store = self.app.store.as_ref();
                    let item = match store
                        .inbox_item(self.ctx.scope, &self.id, &message_id)
                        .await
                    {
                        Ok(Some(item)) => item,
                        // Erased since: nothing to show.
                        Ok(None) => continue,
                        Err(e) => return self.failed(e.into()),
                    };
                    let counts = match service::counts(store, &self.ctx, &self.id).await {
                        Ok(c) => c,
                        Err(e) => return self.failed(e),
                    };
                    let data = json!({"item": item_json(&item), "counts": counts_json(&counts)});
                    return Some(Event::default().event("item").data(data.to_string()));
                }
                InboxSignal::Marked { .. } | InboxSignal::Resync => {
                    return self.counts_event().await;
                }
            }
        }
    }

    async fn counts_event(&mut self) -> Option<Event> {
        match service::counts(self.app.store.as_ref(), &self.ctx, &self.id).await {
            Ok(counts) => {
                let data = json!({"counts": counts_json(&counts)});
                Some(Event::default().event("counts").data(data.to_string()))
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&self, e: herald_core::service::Error) -> Option<Event> {
        tracing::warn!(error = %e, "a live inbox stream ended on a store error");
        None
    }
}

/// The browser endpoints, with their documentation (authenticated by subscriber_id, see
/// [`super::doc::subscriber`]).
pub fn browser_router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(browser_inbox))
        .routes(routes!(browser_inbox_count))
        .routes(routes!(browser_mark_inbox))
        .routes(routes!(browser_mark_inbox_item))
        .routes(routes!(browser_inbox_stream))
        .layer(axum::middleware::map_response(browser_headers))
}

// ---- The documented shapes -------------------------------------------------------------------

/// The `{workspace_key}` path segment of the browser endpoints.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct WorkspacePath {
    /// The workspace key of the environment (hk_test_… or hk_live_…): public, it names the environment.
    workspace_key: String,
}

/// The `{message_id}` path segment of a mark.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct MessagePath {
    /// The message the item was delivered for (its message_id, as the listing shows it): 1-255 bytes, no control characters.
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    message_id: String,
}

/// Paging and filters of an inbox listing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct InboxListQuery {
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// The meta.after of the previous page: older items.
    after: Option<String>,
    /// true: only items seen; false: only items not seen.
    seen: Option<bool>,
    /// true: only items read; false: only unread ones.
    read: Option<bool>,
    /// true: only the archive; false: the inbox without it.
    archived: Option<bool>,
}

/// A page of a user's inbox, newest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InboxList {
    #[schema(inline)]
    meta: InboxListMeta,
    results: Vec<InboxItemBody>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InboxListMeta {
    /// Items on this page.
    count: usize,
    limit: usize,
    has_prev: bool,
    has_next: bool,
    /// Always null: pages go from newest to oldest.
    before: Option<String>,
    /// The cursor of the next (older) page, or null.
    after: Option<String>,
    /// The user's counts (all items, not only this page's).
    counts: InboxCountsBody,
}

/// One item of the inbox. Times are RFC 3339; a mark's time is null until marked.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InboxItemBody {
    /// The message the inbox channel delivered it for (its key).
    message_id: String,
    /// The workflow's slug.
    workflow: String,
    category: Option<String>,
    title: String,
    body: String,
    action_url: Option<String>,
    created_at: String,
    seen_at: Option<String>,
    read_at: Option<String>,
    archived_at: Option<String>,
}

/// A user's inbox in numbers: `unseen` and `unread` count items not archived.
#[derive(ToSchema)]
#[schema(as = InboxCounts)]
#[allow(dead_code)]
pub struct InboxCountsBody {
    /// Every item, archived ones included.
    total: u64,
    unseen: u64,
    unread: u64,
    archived: u64,
}

/// One event of the live stream: its name, and its data (JSON, as text): `{"counts": {...}}`
/// for `counts`, `{"item": {...}, "counts": {...}}` for `item`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InboxEvent {
    #[schema(inline)]
    event: InboxEventName,
    /// JSON text: {"counts": InboxCounts}, or {"item": InboxItem, "counts": InboxCounts}.
    #[schema(content_media_type = "application/json")]
    data: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum InboxEventName {
    Counts,
    Item,
}

/// A mark.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MarkBody {
    #[schema(inline)]
    action: MarkAction,
}

/// seen; read (and seen); unread (read cleared); archive; unarchive.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum MarkAction {
    Seen,
    Read,
    Unread,
    Archive,
    Unarchive,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MarkAllResult {
    /// Items the mark changed.
    updated: u64,
    counts: InboxCountsBody,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MarkResult {
    item: InboxItemBody,
    counts: InboxCountsBody,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SecretBody {
    /// test or live.
    env: String,
    /// 64 hex characters.
    secret: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SubscriberBody {
    distinct_id: String,
    workspace_key: String,
    /// 64 lower-case hex characters.
    subscriber_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::inbox::InboxFilter;

    #[test]
    fn a_mark_body_names_what_is_wrong() {
        assert_eq!(parse_mark(&json!({"action": "read"})).unwrap(), Mark::Read);
        for (body, field) in [
            (json!(null), "action"),
            (json!({}), "action"),
            (json!({"action": 1}), "action"),
            (json!({"action": "delete"}), "action"),
            (json!({"action": "read", "all": true}), "all"),
        ] {
            let e = parse_mark(&body).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{body}");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn listing_parameters_parse_or_name_the_field() {
        let uri: Uri = "/x?limit=5&read=false&archived=true&subscriber_id=ab&after=9"
            .parse()
            .unwrap();
        let (q, after) = parse_query(&uri).unwrap();
        assert_eq!((q.limit, q.before, after), (5, Some(9), Some(9)));
        assert_eq!(
            q.filter,
            InboxFilter {
                seen: None,
                read: Some(false),
                archived: Some(true)
            }
        );
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("after=x", "after"),
            ("seen=1", "seen"),
            ("read=yes", "read"),
            ("archived=", "archived"),
        ] {
            let uri: Uri = format!("/x?{query}").parse().unwrap();
            let e = parse_query(&uri).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{query}");
        }
    }
}
