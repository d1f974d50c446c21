//! `/v1/user/…`: profiles by distinct_id.

use super::error::ApiError;
use super::{etag, query_pairs, Caller, EditCtx, JsonBody, UserId};
use crate::App;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::filter::Filter;
use herald_core::listing::{Cursor, ListQuery, PagePosition, Sort, DEFAULT_LIMIT, MAX_LIMIT};
use herald_core::service::{limits, profiles};
use herald_core::{DistinctId, Status};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

#[utoipa::path(
    get,
    path = "/v1/user/{id}",
    operation_id = "getUser",
    tag = "users",
    summary = "Get a user",
    params(
        crate::api::doc::UserPath
    ),
    responses(
        (status = 200, description = "The user.", headers(("ETag" = String, description = "The profile's version, for `If-Match`: `\"3\"`.")), body = crate::api::users::User, example = json!({"distinct_id": "ada", "properties": {"name": "Ada Lovelace", "country": "GB", "$timezone": "Europe/London", "logins": 1}, "status": "enabled", "created_at": "2026-11-28T23:23:46.225349+00:00", "updated_at": "2026-11-28T23:23:46.229620+00:00", "version": 2, "$email": [{"value": "Ada@example.com", "status": "active", "perma_status": "active"}], "$sms": [{"value": "+447700900123", "status": "active", "perma_status": "active"}]})),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "distinct_id: must not be empty", "detail": "distinct_id: must not be empty", "field": "distinct_id", "error": {"type": "validation_error", "message": "distinct_id: must not be empty"}})),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
pub async fn get(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<Response, ApiError> {
    let profile = profiles::get(app.store.as_ref(), &caller.ctx(), &id).await?;
    Ok((etag(profile.version), Json(profile.to_wire())).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/user/{id}",
    operation_id = "upsertUser",
    tag = "users",
    summary = "Create or update a user (upsert)",
    description = "Properties in the body are set; channel identities are added to those already held. Always 201, whether the user was created or updated; a body that changes nothing is not recorded in history.",
    params(
        crate::api::doc::UserPath,
        crate::api::doc::EditPreconditions
    ),
    request_body(content = Option<Object>),
    responses(
        (status = 201, description = "The user as stored.", headers(("ETag" = String, description = "The profile's version, for `If-Match`: `\"3\"`.")), body = crate::api::users::User, example = json!({"distinct_id": "ada", "properties": {"name": "Ada Lovelace", "country": "GB", "$timezone": "Europe/London", "plan": "pro"}, "status": "enabled", "created_at": "2026-11-28T23:23:46.225349+00:00", "updated_at": "2026-11-28T23:23:46.225349+00:00", "version": 1, "$email": [{"value": "Ada@example.com", "status": "active", "perma_status": "active"}]})),
        (status = 400, description = "Malformed JSON, a body that is not an object, a reserved or invalid key, or a value breaking a rule.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "$email: 'not-an-email' is not an email address (missing @)", "detail": "$email: 'not-an-email' is not an email address (missing @)", "field": "$email", "error": {"type": "validation_error", "message": "$email: 'not-an-email' is not an email address (missing @)"}})),
        (status = 412, response = crate::api::doc::PreconditionFailed),
        (status = 413, description = "The body is over 10 KB (10240 bytes), or over the 2 MiB request limit.", body = crate::api::doc::ErrorBody, example = json!({"code": 413, "error_code": "payload_too_large", "type": "PayloadTooLarge", "message": "a profile edit may carry at most 10240 bytes, this one has 10313", "detail": "a profile edit may carry at most 10240 bytes, this one has 10313", "field": null, "error": {"type": "payload_too_large", "message": "a profile edit may carry at most 10240 bytes, this one has 10313"}}))
    )
)]
pub async fn upsert(
    State(app): State<App>,
    EditCtx(ctx): EditCtx,
    UserId(id): UserId,
    JsonBody(body, size): JsonBody,
) -> Result<Response, ApiError> {
    within_edit_limit(size)?;
    let body = if body.is_null() { json!({}) } else { body };
    let profile = profiles::upsert(app.store.as_ref(), &ctx, &id, &body).await?;
    Ok((
        StatusCode::CREATED,
        etag(profile.version),
        Json(profile.to_wire()),
    )
        .into_response())
}

#[utoipa::path(
    patch,
    path = "/v1/user/{id}",
    operation_id = "editUser",
    tag = "users",
    summary = "Edit a user with operations",
    description = "The operations apply in order, all or nothing. A user that does not exist yet is created. An edit that changes nothing keeps the version and is not recorded.",
    params(
        crate::api::doc::UserPath,
        crate::api::doc::EditPreconditions
    ),
    request_body(content = Object),
    responses(
        (status = 202, description = "The user as stored.", headers(("ETag" = String, description = "The profile's version, for `If-Match`: `\"3\"`.")), body = crate::api::users::User, example = json!({"distinct_id": "ada", "properties": {"name": "Ada Lovelace", "country": "GB", "$timezone": "Europe/London", "logins": 1}, "status": "enabled", "created_at": "2026-11-28T23:23:46.225349+00:00", "updated_at": "2026-11-28T23:23:46.229620+00:00", "version": 2, "$email": [{"value": "Ada@example.com", "status": "active", "perma_status": "active"}], "$sms": [{"value": "+447700900123", "status": "active", "perma_status": "active"}]})),
        (status = 400, description = "No `operations`, an unknown operator, a key or value breaking a rule, or an operation that cannot apply ($append to a string, $add to a non-number).", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "operations[0].$set.country: 'Atlantis' is not an ISO 3166-1 country code or country name", "detail": "operations[0].$set.country: 'Atlantis' is not an ISO 3166-1 country code or country name", "field": "operations[0].$set.country", "error": {"type": "validation_error", "message": "operations[0].$set.country: 'Atlantis' is not an ISO 3166-1 country code or country name"}})),
        (status = 412, response = crate::api::doc::PreconditionFailed),
        (status = 413, description = "The body is over 10 KB (10240 bytes), or over the 2 MiB request limit.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn edit(
    State(app): State<App>,
    EditCtx(ctx): EditCtx,
    UserId(id): UserId,
    JsonBody(body, size): JsonBody,
) -> Result<Response, ApiError> {
    within_edit_limit(size)?;
    let operations = body.get("operations").ok_or_else(|| {
        ApiError::bad_request(
            "operations",
            "is required: send {\"operations\": [{\"$set\": {...}}, ...]}",
        )
    })?;
    let profile = profiles::edit(app.store.as_ref(), &ctx, &id, operations).await?;
    Ok((
        StatusCode::ACCEPTED,
        etag(profile.version),
        Json(profile.to_wire()),
    )
        .into_response())
}

#[utoipa::path(
    patch,
    path = "/v1/user/{id}/status",
    operation_id = "setUserStatus",
    tag = "users",
    summary = "Enable or disable a user",
    description = "A disabled user receives nothing, not even mandatory notifications; the profile is kept. Same as `{\"operations\": [{\"$set\": {\"$status\": ...}}]}` but does not create a missing user.",
    params(
        crate::api::doc::UserPath,
        crate::api::doc::EditPreconditions
    ),
    request_body(content = Object, example = json!({"status": "disabled"})),
    responses(
        (status = 200, description = "The user.", headers(("ETag" = String, description = "The profile's version, for `If-Match`: `\"3\"`.")), body = crate::api::users::User, example = json!({"distinct_id": "bob", "properties": {"name": "Bob", "$preferred_language": "en", "$locale": "en_GB", "team": "R&D"}, "status": "disabled", "created_at": "2026-11-28T23:23:46.250213+00:00", "updated_at": "2026-11-28T23:23:57.691710+00:00", "version": 3})),
        (status = 400, description = "`status` missing or not enabled/disabled.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "status: 'paused' is not a status (expected enabled or disabled)", "detail": "status: 'paused' is not a status (expected enabled or disabled)", "field": "status", "error": {"type": "validation_error", "message": "status: 'paused' is not a status (expected enabled or disabled)"}})),
        (status = 404, response = crate::api::doc::UserNotFound),
        (status = 412, response = crate::api::doc::PreconditionFailed)
    )
)]
pub async fn set_status(
    State(app): State<App>,
    EditCtx(ctx): EditCtx,
    UserId(id): UserId,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let raw = body.get("status").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("status", "is required: \"enabled\" or \"disabled\"")
    })?;
    let status = Status::parse(raw).map_err(|rule| ApiError::bad_request("status", rule))?;
    let profile = profiles::set_status(app.store.as_ref(), &ctx, &id, status).await?;
    Ok((etag(profile.version), Json(profile.to_wire())).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/user/{id}/merge",
    operation_id = "mergeUsers",
    tag = "users",
    summary = "Merge another user into this one",
    description = "The primary (path) keeps its values and gains the secondary's missing properties, identities and preference choices; the secondary is deleted. A primary that does not exist yet is created from the secondary. History: `merged` (or `created`) on the primary; the secondary's history is replaced by a `merged_into` tombstone.",
    params(
        crate::api::doc::UserPath,
        ("dry_run" = Option<bool>, Query, description = "true (or 1): answer 200 with the primary as the merge would leave it, computed by the same rule, and change nothing. Unknown query parameters are a 400.")
    ),
    request_body(content = Object, example = json!({"from_user_id": "ada-old"})),
    responses(
        (status = 200, description = "With dry_run: the primary as the merge would leave it; nothing was written.", body = crate::api::users::User),
        (status = 201, description = "The primary as stored.", body = crate::api::users::User, example = json!({"distinct_id": "ada", "properties": {"name": "Ada Lovelace", "country": "GB", "$timezone": "Europe/London", "logins": 1, "plan": "team"}, "status": "enabled", "created_at": "2026-11-28T23:23:46.225349+00:00", "updated_at": "2026-11-28T23:23:57.706404+00:00", "version": 3, "$email": [{"value": "Ada@example.com", "status": "active", "perma_status": "active"}, {"value": "ada.old@example.com", "status": "active", "perma_status": "active"}], "$sms": [{"value": "+447700900123", "status": "active", "perma_status": "active"}]})),
        (status = 400, description = "`from_user_id` missing, invalid, or the same as the primary.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "from_user_id: must differ from the user merged into", "detail": "from_user_id: must differ from the user merged into", "field": "from_user_id", "error": {"type": "validation_error", "message": "from_user_id: must differ from the user merged into"}})),
        (status = 404, description = "The secondary does not exist.", body = crate::api::doc::ErrorBody, example = json!({"code": 404, "error_code": "not_found", "type": "NotFound", "message": "user [distinct_id: 'ada-old'] not found", "detail": "user [distinct_id: 'ada-old'] not found", "field": null, "error": {"type": "not_found", "message": "user [distinct_id: 'ada-old'] not found"}}))
    )
)]
pub async fn merge(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    uri: Uri,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let mut dry_run = false;
    for (k, v) in query_pairs(&uri) {
        match k.as_str() {
            "dry_run" => dry_run = parse_bool("dry_run", &v)?,
            other => {
                return Err(ApiError::bad_request(
                    other,
                    "is not a parameter of this endpoint (dry_run is)",
                ))
            }
        }
    }
    let from = body
        .get("from_user_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request(
                "from_user_id",
                "is required: the distinct_id of the user to merge in",
            )
        })?;
    let from =
        DistinctId::parse(from).map_err(|e| ApiError::bad_request("from_user_id", e.rule))?;
    if dry_run {
        let preview =
            profiles::merge_preview(app.store.as_ref(), &caller.ctx(), &id, &from).await?;
        return Ok(Json(preview.to_wire()).into_response());
    }
    let profile = profiles::merge(app.store.as_ref(), &caller.ctx(), &id, &from).await?;
    Ok((StatusCode::CREATED, Json(profile.to_wire())).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/user/{id}",
    operation_id = "deleteUser",
    tag = "users",
    summary = "Delete a user",
    description = "Removes the profile and erases its history but for a `deleted` tombstone (who, when).",
    params(
        crate::api::doc::UserPath
    ),
    responses(
        (status = 204, description = "Deleted; no body."),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "distinct_id: must not be empty", "detail": "distinct_id: must not be empty", "field": "distinct_id", "error": {"type": "validation_error", "message": "distinct_id: must not be empty"}})),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
pub async fn delete(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<StatusCode, ApiError> {
    profiles::delete(app.store.as_ref(), &caller.ctx(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/v1/bulk/user",
    operation_id = "bulkDeleteUsers",
    tag = "users",
    summary = "Delete several users",
    description = "Deletes each listed user that exists (with a tombstone each); ids that do not exist are skipped.",
    request_body(content = Object, example = json!({"distinct_ids": ["user-2", "nobody"]})),
    responses(
        (status = 202, description = "How many existed and were deleted.", body = Object, example = json!({"success": true, "deleted": 1, "requested": 2})),
        (status = 400, description = "`distinct_ids` missing or not a list, an element not a valid distinct_id, or more than 1000.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "distinct_ids: at most 1000 per call, got 1001", "detail": "distinct_ids: at most 1000 per call, got 1001", "field": "distinct_ids", "error": {"type": "validation_error", "message": "distinct_ids: at most 1000 per call, got 1001"}}))
    )
)]
pub async fn bulk_delete(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let list = body
        .get("distinct_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::bad_request("distinct_ids", "is required: a list of distinct_ids")
        })?;
    let ids = list
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("distinct_ids[{i}]");
            let raw = v
                .as_str()
                .ok_or_else(|| ApiError::bad_request(&field, "must be a string"))?;
            DistinctId::parse(raw).map_err(|e| ApiError::bad_request(&field, e.rule))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let deleted = profiles::bulk_delete(app.store.as_ref(), &caller.ctx(), &ids).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "success": true, "deleted": deleted.len(), "requested": ids.len() })),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/user",
    operation_id = "listUsers",
    tag = "users",
    summary = "List and filter users",
    description = "A page of the caller's environment's profiles. Every parameter is optional; filters combine with AND; unknown parameters are ignored. Keyset pagination: pass `meta.after` as `after` for the next page and `meta.before` as `before` for the previous one; a cursor belongs to one `sort`.",
    params(
        ("limit" = Option<i64>, Query, description = "Page size, 1-1000 (default 20)."),
        ("sort" = Option<String>, Query, description = "Order; `-` for descending. Ties break on distinct_id."),
        ("after" = Option<String>, Query, description = "Opaque cursor from meta.after (next page). Not with `before`."),
        ("before" = Option<String>, Query, description = "Opaque cursor from meta.before (previous page). Not with `after`."),
        ("with_count" = Option<bool>, Query, description = "true (or 1) fills meta.count and meta.count_is_estimate for a filtered listing; otherwise they are null there. An unfiltered listing always has them (an exact counter). Exact up to 10,000 matches, estimated above."),
        ("status" = Option<String>, Query, description = "Only enabled or disabled users."),
        ("has_channel" = Option<String>, Query, description = "Users with at least one identity on this channel. Repeatable (all must hold)."),
        ("lacks_channel" = Option<String>, Query, description = "Users with no identity on this channel. Repeatable."),
        ("q" = Option<String>, Query, description = "Case-insensitive prefix of the distinct_id, the name or any word of it, an email address or a phone number (with or without +).", example = "love"),
        ("created_at" = Option<String>, Query, description = "`gt|gte|lt|lte:<RFC 3339 time>`. Repeatable for a range.", example = "gte:2026-01-01T00:00:00Z"),
        ("updated_at" = Option<String>, Query, description = "`gt|gte|lt|lte:<RFC 3339 time>`. Repeatable."),
        ("prop.{key}" = Option<String>, Query, description = "`<op>:<value>` on any property key (general, custom or a channel key such as $email): eq, ne, in (comma-separated), exists (true|false), contains, gt, gte, lt, lte. Repeatable. The parameter name is literally `prop.` followed by the key.", example = "eq:pro")
    ),
    responses(
        (status = 200, description = "A page of users.", body = Object, example = json!({"meta": {"count": 5, "count_is_estimate": false, "limit": 2, "sort": "-created_at", "has_prev": false, "has_next": true, "before": null, "after": "WyItY3JlYXRlZF9hdCIsMTc5NTkwODI0MzAzODMyNywidXNlci0yIl0"}, "results": [{"distinct_id": "user-3", "properties": {"name": "User 3", "age": 50, "tags": ["beta"]}, "status": "enabled", "created_at": "2026-11-28T23:24:03.043942+00:00", "updated_at": "2026-11-28T23:24:03.043942+00:00", "version": 1}, {"distinct_id": "user-2", "properties": {"name": "User 2", "age": 40, "tags": ["beta"]}, "status": "enabled", "created_at": "2026-11-28T23:24:03.038327+00:00", "updated_at": "2026-11-28T23:24:03.038327+00:00", "version": 1}]})),
        (status = 400, description = "A parameter that does not parse: limit, sort, with_count, a cursor (or one made for another sort, or both after and before), status, a channel, a time, a prop. filter.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "prop.age: gt compares numbers or RFC 3339 times, not 'old'", "detail": "prop.age: gt compares numbers or RFC 3339 times, not 'old'", "field": "prop.age", "error": {"type": "validation_error", "message": "prop.age: gt compares numbers or RFC 3339 times, not 'old'"}}))
    )
)]
pub async fn list(
    State(app): State<App>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let (mut after, mut before, mut sort, mut with_count) = (None, None, Sort::default(), false);
    let pairs = query_pairs(&uri);
    let filter = Filter::parse(&pairs)?;
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => limit = parse_limit(&v)?,
            "after" if !v.is_empty() => after = Some(v),
            "before" if !v.is_empty() => before = Some(v),
            "sort" => sort = Sort::parse(&v)?,
            "with_count" => with_count = parse_bool("with_count", &v)?,
            _ => {}
        }
    }
    let position = match (after, before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "after",
                "cannot be combined with before",
            ))
        }
        (Some(a), None) => PagePosition::After(Cursor::decode(&a, "after", sort)?),
        (None, Some(b)) => PagePosition::Before(Cursor::decode(&b, "before", sort)?),
        (None, None) => PagePosition::First,
    };
    let query = ListQuery {
        filter,
        sort,
        limit,
        position,
    };
    let listing = profiles::list(app.store.as_ref(), &caller.ctx(), &query, with_count).await?;
    let page = listing.page;
    Ok(Json(json!({
        "meta": {
            "count": listing.count.map(|c| c.value),
            "count_is_estimate": listing.count.map(|c| c.is_estimate),
            "limit": limit,
            "sort": sort.as_string(),
            "has_prev": page.has_prev,
            "has_next": page.has_next,
            "before": page.before,
            "after": page.after,
        },
        "results": page.items.iter().map(|p| p.to_wire()).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/history",
    operation_id = "userHistory",
    tag = "users",
    summary = "A user's change history, newest first",
    description = "Also served for deleted or merged-away users (their tombstone).",
    params(
        crate::api::doc::UserPath,
        ("limit" = Option<i64>, Query, description = "1-1000, default 20."),
        ("after" = Option<String>, Query, description = "The meta.after of the previous page (an event id): older events.")
    ),
    responses(
        (status = 200, description = "A page of events.", body = Object, example = json!({"meta": {"limit": 1, "has_next": true, "after": "2"}, "results": [{"id": 2, "distinct_id": "ada", "at": "2026-11-28T23:23:46.229620+00:00", "actor": {"kind": "api_key", "id": "hb_test_k72q"}, "action": "updated", "request": {"operations": [{"$add": {"logins": 1}}, {"$append": {"$sms": "+44 7700 900123"}}, {"$unset": ["plan"]}]}, "changes": [{"key": "plan", "before": "pro"}, {"key": "logins", "after": 1}, {"key": "$sms", "after": ["+447700900123"]}]}]})),
        (status = 400, description = "limit or after does not parse.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "after: is not a cursor returned by this listing", "detail": "after: is not a cursor returned by this listing", "field": "after", "error": {"type": "validation_error", "message": "after: is not a cursor returned by this listing"}})),
        (status = 404, description = "This distinct_id has no history in this environment (never existed).", body = crate::api::doc::ErrorBody, example = json!({"code": 404, "error_code": "not_found", "type": "NotFound", "message": "user [distinct_id: 'ghost'] not found", "detail": "user [distinct_id: 'ghost'] not found", "field": null, "error": {"type": "not_found", "message": "user [distinct_id: 'ghost'] not found"}}))
    )
)]
pub async fn history(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut after = None;
    for (k, v) in query_pairs(&uri) {
        match k.as_str() {
            "limit" => limit = parse_limit(&v)?,
            "after" if !v.is_empty() => {
                after = Some(v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("after", "is not a cursor returned by this listing")
                })?)
            }
            _ => {}
        }
    }
    let page = profiles::history(app.store.as_ref(), &caller.ctx(), &id, after, limit).await?;
    let results: Vec<Value> = page.events.iter().map(|e| e.to_wire()).collect();
    Ok(Json(json!({
        "meta": { "limit": limit, "has_next": page.has_next, "after": page.after.map(|a| a.to_string()) },
        "results": results,
    })))
}

fn parse_limit(raw: &str) -> Result<usize, ApiError> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "limit",
            format!("must be an integer from 1 to {MAX_LIMIT}, got '{raw}'"),
        )),
    }
}

fn parse_bool(field: &str, raw: &str) -> Result<bool, ApiError> {
    match raw.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        other => Err(ApiError::bad_request(
            field,
            format!("must be true or false, got '{other}'"),
        )),
    }
}

pub fn within_edit_limit(size: usize) -> Result<(), ApiError> {
    if size > limits::MAX_EDIT_BYTES {
        return Err(ApiError::too_large(format!(
            "a profile edit may carry at most {} bytes, this one has {size}",
            limits::MAX_EDIT_BYTES
        )));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/export",
    operation_id = "exportUser",
    tag = "users",
    summary = "Everything Herald holds on a user (right of access)",
    params(
        crate::api::doc::UserPath
    ),
    responses(
        (status = 200, description = "The export.", body = Object, example = json!({"distinct_id": "bob", "environment": "test", "exported_at": "2026-11-28T23:24:09.687872+00:00", "profile": {"distinct_id": "bob", "properties": {"name": "Bob", "$preferred_language": "en", "$locale": "en_GB", "team": "R&D"}, "status": "disabled", "created_at": "2026-11-28T23:23:46.250213+00:00", "updated_at": "2026-11-28T23:23:57.691710+00:00", "version": 3}, "preferences": {}, "history": [{"id": 5, "distinct_id": "bob", "at": "2026-11-28T23:23:57.691710+00:00", "actor": {"kind": "api_key", "id": "hb_test_k72q"}, "action": "updated", "request": {"$status": "disabled"}, "changes": [{"key": "$status", "before": "enabled", "after": "disabled"}]}, {"id": 3, "distinct_id": "bob", "at": "2026-11-28T23:23:46.250213+00:00", "actor": {"kind": "workspace_key", "id": "hk_test_kHdqdnTA4rujTdGOlmchNr6I"}, "action": "created", "request": {"name": "Bob", "$preferred_language": "EN", "$locale": "en-gb"}, "changes": [{"key": "name", "after": "Bob"}, {"key": "$preferred_language", "after": "en"}, {"key": "$locale", "after": "en_GB"}, {"key": "$status", "after": "enabled"}]}]})),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "distinct_id: must not be empty", "detail": "distinct_id: must not be empty", "field": "distinct_id", "error": {"type": "validation_error", "message": "distinct_id: must not be empty"}})),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
pub async fn export(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        profiles::export(app.store.as_ref(), &caller.ctx(), &id).await?,
    ))
}

/// `/v1/user/…` and `/v1/bulk/user`, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, upsert, edit, delete))
        .routes(routes!(set_status))
        .routes(routes!(merge))
        .routes(routes!(history))
        .routes(routes!(export))
        .routes(routes!(bulk_delete))
}

/// A profile as every user endpoint returns it (SuprSend's user object plus Herald's `status`
/// and `version`). A channel key is present only when it holds identities.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the shape `Profile::to_wire` writes
pub struct User {
    distinct_id: String,
    properties: UserProperties,
    /// enabled or disabled; a disabled user receives nothing.
    status: String,
    /// RFC 3339 with microseconds and +00:00.
    created_at: String,
    updated_at: String,
    /// Grows by one with every change.
    #[schema(minimum = 1)]
    version: i64,
    #[serde(rename = "$email")]
    email: Option<Vec<Identity>>,
    #[serde(rename = "$sms")]
    sms: Option<Vec<Identity>>,
    #[serde(rename = "$whatsapp")]
    whatsapp: Option<Vec<Identity>>,
    #[serde(rename = "$androidpush")]
    androidpush: Option<Vec<Identity>>,
    #[serde(rename = "$iospush")]
    iospush: Option<Vec<Identity>>,
    #[serde(rename = "$webpush")]
    webpush: Option<Vec<Identity>>,
    #[serde(rename = "$slack")]
    slack: Option<Vec<Identity>>,
    #[serde(rename = "$ms_teams")]
    ms_teams: Option<Vec<Identity>>,
    #[serde(rename = "$discord")]
    discord: Option<Vec<Identity>>,
    #[serde(rename = "$inbox")]
    inbox: Option<Vec<Identity>>,
}

/// General properties (name, country, $timezone, $preferred_language, $locale) and custom ones,
/// in the order first set.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserProperties {
    /// Trimmed; at most 255 characters.
    #[schema(max_length = 255)]
    name: Option<String>,
    /// ISO 3166-1 alpha-2. Alpha-3 codes and English names are accepted and stored as alpha-2
    /// (GBR, United Kingdom -> GB).
    country: Option<String>,
    /// An IANA time zone; matched case-insensitively, stored in canonical spelling.
    #[serde(rename = "$timezone")]
    timezone: Option<String>,
    /// ISO 639-1, stored lower-case.
    #[serde(rename = "$preferred_language")]
    preferred_language: Option<String>,
    /// language[_REGION] (en, en_GB, en-gb, es_419), stored as ll_RR.
    #[serde(rename = "$locale")]
    locale: Option<String>,
    /// Custom properties: any JSON value.
    #[serde(flatten)]
    custom: std::collections::BTreeMap<String, Value>,
}

/// One address on one channel, as stored and returned.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Identity {
    /// The normalised address: a string (email, E.164 phone, push token, inbox id, Discord
    /// webhook URL) or the object sent for web push, Slack and MS Teams.
    value: Value,
    /// Push and inbox channels only: fcm (default), xiaomi or oppo on $androidpush; apns on
    /// $iospush; vapid on $webpush; suprsend on $inbox.
    #[schema(required = false)]
    id_provider: String,
    /// Push only, when sent.
    #[schema(required = false)]
    bundle_id: String,
    /// Push only, when sent.
    #[schema(required = false)]
    device_id: String,
    /// active or disabled.
    status: String,
    /// active or disabled.
    perma_status: String,
}
