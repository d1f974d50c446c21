//! `/v1/user/…`: profiles by distinct_id.

use super::error::ApiError;
use super::{etag, query_pairs, Caller, EditCtx, JsonBody, UserId};
use crate::App;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::listing::{ListRequest, DEFAULT_LIMIT};
use herald_core::service::{limits, profiles};
use herald_core::{DistinctId, Status};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
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
    Ok((etag(profile.version), Json(profile.wire())).into_response())
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
    request_body(content = Option<crate::api::users::UpsertBody>),
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
    request_body(content = crate::api::users::EditBody),
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
    request_body(content = crate::api::users::StatusBody, example = json!({"status": "disabled"})),
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
        crate::api::users::MergeQuery
    ),
    request_body(content = crate::api::users::MergeBody, example = json!({"from_user_id": "ada-old"})),
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
    request_body(content = crate::api::users::BulkDeleteBody, example = json!({"distinct_ids": ["user-2", "nobody"]})),
    responses(
        (status = 202, description = "How many existed and were deleted.", body = crate::api::users::BulkDeleteResult, example = json!({"success": true, "deleted": 1, "requested": 2})),
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
        crate::api::users::ListUsersQuery
    ),
    responses(
        (status = 200, description = "A page of users.", body = crate::api::users::UserPage, example = json!({"meta": {"count": 5, "count_is_estimate": false, "limit": 2, "sort": "-created_at", "has_prev": false, "has_next": true, "before": null, "after": "WyItY3JlYXRlZF9hdCIsMTc5NTkwODI0MzAzODMyNywidXNlci0yIl0"}, "results": [{"distinct_id": "user-3", "properties": {"name": "User 3", "age": 50, "tags": ["beta"]}, "status": "enabled", "created_at": "2026-11-28T23:24:03.043942+00:00", "updated_at": "2026-11-28T23:24:03.043942+00:00", "version": 1}, {"distinct_id": "user-2", "properties": {"name": "User 2", "age": 40, "tags": ["beta"]}, "status": "enabled", "created_at": "2026-11-28T23:24:03.038327+00:00", "updated_at": "2026-11-28T23:24:03.038327+00:00", "version": 1}]})),
        (status = 400, description = "A parameter that does not parse: limit, sort, with_count, a cursor (or one made for another sort, or both after and before), status, a channel, a time, a prop. filter.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "prop.age: gt compares numbers or RFC 3339 times, not 'old'", "detail": "prop.age: gt compares numbers or RFC 3339 times, not 'old'", "field": "prop.age", "error": {"type": "validation_error", "message": "prop.age: gt compares numbers or RFC 3339 times, not 'old'"}}))
    )
)]
pub async fn list(
    State(app): State<App>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let ListRequest { query, with_count } = ListRequest::parse(&query_pairs(&uri))?;
    let (limit, sort) = (query.limit, query.sort);
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
        crate::api::users::HistoryQuery
    ),
    responses(
        (status = 200, description = "A page of events.", body = crate::api::users::HistoryPage, example = json!({"meta": {"limit": 1, "has_next": true, "after": "2"}, "results": [{"id": 2, "distinct_id": "ada", "at": "2026-11-28T23:23:46.229620+00:00", "actor": {"kind": "api_key", "id": "hb_test_k72q"}, "action": "updated", "request": {"operations": [{"$add": {"logins": 1}}, {"$append": {"$sms": "+44 7700 900123"}}, {"$unset": ["plan"]}]}, "changes": [{"key": "plan", "before": "pro"}, {"key": "logins", "after": 1}, {"key": "$sms", "after": ["+447700900123"]}]}]})),
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
    Ok(herald_core::listing::parse_limit(raw)?)
}

fn parse_bool(field: &str, raw: &str) -> Result<bool, ApiError> {
    Ok(herald_core::listing::parse_flag(field, raw)?)
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
        (status = 200, description = "The export.", body = crate::api::users::UserExport, example = json!({"distinct_id": "bob", "environment": "test", "exported_at": "2026-11-28T23:24:09.687872+00:00", "profile": {"distinct_id": "bob", "properties": {"name": "Bob", "$preferred_language": "en", "$locale": "en_GB", "team": "R&D"}, "status": "disabled", "created_at": "2026-11-28T23:23:46.250213+00:00", "updated_at": "2026-11-28T23:23:57.691710+00:00", "version": 3}, "preferences": {}, "history": [{"id": 5, "distinct_id": "bob", "at": "2026-11-28T23:23:57.691710+00:00", "actor": {"kind": "api_key", "id": "hb_test_k72q"}, "action": "updated", "request": {"$status": "disabled"}, "changes": [{"key": "$status", "before": "enabled", "after": "disabled"}]}, {"id": 3, "distinct_id": "bob", "at": "2026-11-28T23:23:46.250213+00:00", "actor": {"kind": "workspace_key", "id": "hk_test_kHdqdnTA4rujTdGOlmchNr6I"}, "action": "created", "request": {"name": "Bob", "$preferred_language": "EN", "$locale": "en-gb"}, "changes": [{"key": "name", "after": "Bob"}, {"key": "$preferred_language", "after": "en"}, {"key": "$locale", "after": "en_GB"}, {"key": "$status", "after": "enabled"}]}]})),
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

#[utoipa::path(
    post,
    path = "/v1/user/{id}/identity/reset",
    operation_id = "resetIdentity",
    tag = "users",
    summary = "Reset an identity a provider found dead",
    description = "Sets the identity back to `perma_status: active` and clears its `perma_reason` and `perma_at`, so dispatch sends to it again (after, say, the user fixed their mailbox). The value is matched as the channel normalises it (emails case-insensitively). Recorded in history as `{\"$perma_status\": {\"channel\", \"value\", \"status\": \"active\"}}`. Resetting an active identity changes nothing.",
    params(
        crate::api::doc::UserPath,
        crate::api::doc::EditPreconditions
    ),
    request_body(content = Object, example = json!({"channel": "email", "value": "ada@example.com"})),
    responses(
        (status = 200, description = "The user.", headers(("ETag" = String, description = "The profile's version, for `If-Match`: `\"3\"`.")), body = crate::api::users::User, example = json!({"distinct_id": "ada", "properties": {"name": "Ada Lovelace"}, "status": "enabled", "created_at": "2026-11-28T23:23:46.225349+00:00", "updated_at": "2026-11-28T23:30:01.000000+00:00", "version": 4, "$email": [{"value": "ada@example.com", "status": "active", "perma_status": "active"}]})),
        (status = 400, description = "`channel` or `value` missing or invalid, or the user holds no such identity.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "value: the user has no email identity \"eve@example.com\"", "detail": "value: the user has no email identity \"eve@example.com\"", "field": "value", "error": {"type": "validation_error", "message": "value: the user has no email identity \"eve@example.com\""}})),
        (status = 404, response = crate::api::doc::UserNotFound),
        (status = 412, response = crate::api::doc::PreconditionFailed)
    )
)]
pub async fn reset_identity(
    State(app): State<App>,
    EditCtx(ctx): EditCtx,
    UserId(id): UserId,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let target = herald_core::health::Target::parse(&body)?;
    let profile =
        herald_core::service::health::reset(app.store.as_ref(), &ctx, &id, &target).await?;
    Ok((etag(profile.version), Json(profile.to_wire())).into_response())
}

/// `/v1/user/…` and `/v1/bulk/user`, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, upsert, edit, delete))
        .routes(routes!(set_status))
        .routes(routes!(reset_identity))
        .routes(routes!(merge))
        .routes(routes!(history))
        .routes(routes!(export))
        .routes(routes!(bulk_delete))
}

/// A profile as every user endpoint returns it (SuprSend's user object plus Herald's `status`
/// and `version`). A channel key is present only when it holds identities.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the shape `Profile::to_wire` writes
pub struct User {
    distinct_id: String,
    properties: UserProperties,
    #[schema(inline)]
    status: UserStatus,
    /// RFC 3339 with microseconds and +00:00.
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Grows by one with every change.
    #[schema(minimum = 1)]
    version: i64,
    #[serde(rename = "$email")]
    #[schema(required = false)]
    email: Vec<Identity>,
    #[serde(rename = "$sms")]
    #[schema(required = false)]
    sms: Vec<Identity>,
    #[serde(rename = "$whatsapp")]
    #[schema(required = false)]
    whatsapp: Vec<Identity>,
    #[serde(rename = "$androidpush")]
    #[schema(required = false)]
    androidpush: Vec<Identity>,
    #[serde(rename = "$iospush")]
    #[schema(required = false)]
    iospush: Vec<Identity>,
    #[serde(rename = "$webpush")]
    #[schema(required = false)]
    webpush: Vec<Identity>,
    #[serde(rename = "$slack")]
    #[schema(required = false)]
    slack: Vec<Identity>,
    #[serde(rename = "$ms_teams")]
    #[schema(required = false)]
    ms_teams: Vec<Identity>,
    #[serde(rename = "$discord")]
    #[schema(required = false)]
    discord: Vec<Identity>,
    #[serde(rename = "$inbox")]
    #[schema(required = false)]
    inbox: Vec<Identity>,
}

/// A user's status; a disabled user receives nothing.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum UserStatus {
    Enabled,
    Disabled,
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
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Identity {
    /// The normalised address: a string (email, E.164 phone, push token, inbox id, Discord
    /// webhook URL) or the object sent for web push, Slack and MS Teams.
    #[schema(schema_with = crate::api::doc::string_or_object)]
    value: Value,
    #[schema(required = false, inline)]
    id_provider: IdProvider,
    /// Push only, when sent.
    #[schema(required = false)]
    bundle_id: String,
    /// Push only, when sent.
    #[schema(required = false)]
    device_id: String,
    status: IdentityStatus,
    /// `invalid` once a provider answered that the address is dead for good (a hard bounce, an
    /// unknown number, an unregistered token): dispatch skips it (`identity_invalid`) until it
    /// is reset (`POST /v1/user/{id}/identity/reset/`).
    perma_status: IdentityStatus,
    /// With `perma_status: invalid`: the provider's answer, e.g. `twilio answered 400 Bad
    /// Request: error 21211: …`.
    #[schema(required = false)]
    perma_reason: String,
    /// With `perma_status: invalid`: when it was heard (RFC 3339).
    #[schema(required = false, format = DateTime)]
    perma_at: String,
}

/// `disabled`: turned off (SuprSend's value; also what older Herald wrote for a dead
/// address). `invalid`: a provider found the address dead (`perma_status` only).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum IdentityStatus {
    Active,
    Disabled,
    Invalid,
}

/// Push and inbox channels only: fcm (default), xiaomi or oppo on $androidpush; apns (default)
/// or fcm (an iOS app using Firebase) on $iospush; vapid on $webpush; suprsend on $inbox.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum IdProvider {
    Fcm,
    Xiaomi,
    Oppo,
    Apns,
    Vapid,
    Suprsend,
}

/// A flat profile. General properties and custom keys are set (`$set`); `$status` sets the
/// status; each channel key adds identities to those already held (`$append`). `$id_provider`,
/// `$bundle_id` and `$device_id` apply to the push identities of the body. Custom keys: 1-128
/// characters, not starting with `$` or `ss_`, any JSON value. At most 10 KB. An empty body
/// creates an empty profile.
#[derive(ToSchema)]
#[allow(dead_code)] // documents what `profiles::upsert` reads
pub struct UpsertBody {
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
    #[serde(rename = "$status")]
    #[schema(inline, required = false)]
    status: UserStatus,
    #[serde(rename = "$email")]
    #[schema(schema_with = one_or_many::<EmailAddress>, required = false)]
    email: Value,
    #[serde(rename = "$sms")]
    #[schema(schema_with = one_or_many::<PhoneNumber>, required = false)]
    sms: Value,
    #[serde(rename = "$whatsapp")]
    #[schema(schema_with = one_or_many::<PhoneNumber>, required = false)]
    whatsapp: Value,
    #[serde(rename = "$androidpush")]
    #[schema(schema_with = one_or_many::<PushToken>, required = false)]
    androidpush: Value,
    #[serde(rename = "$iospush")]
    #[schema(schema_with = one_or_many::<PushToken>, required = false)]
    iospush: Value,
    #[serde(rename = "$webpush")]
    #[schema(schema_with = one_or_many::<WebPushSubscription>, required = false)]
    webpush: Value,
    #[serde(rename = "$slack")]
    #[schema(schema_with = one_or_many::<SlackIdentity>, required = false)]
    slack: Value,
    #[serde(rename = "$ms_teams")]
    #[schema(schema_with = one_or_many::<MsTeamsIdentity>, required = false)]
    ms_teams: Value,
    #[serde(rename = "$discord")]
    #[schema(schema_with = one_or_many::<DiscordWebhook>, required = false)]
    discord: Value,
    #[serde(rename = "$inbox")]
    #[schema(schema_with = one_or_many::<InboxId>, required = false)]
    inbox: Value,
    #[serde(rename = "$id_provider")]
    id_provider: Option<String>,
    #[serde(rename = "$bundle_id")]
    bundle_id: Option<String>,
    #[serde(rename = "$device_id")]
    device_id: Option<String>,
    /// Custom properties: any JSON value.
    #[serde(flatten)]
    custom: std::collections::BTreeMap<String, Value>,
}

/// `T`, or a list of `T`.
fn one_or_many<T: ToSchema>() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
    use utoipa::openapi::Ref;
    OneOfBuilder::new()
        .item(Ref::from_schema_name(T::name()))
        .item(ArrayBuilder::new().items(Ref::from_schema_name(T::name())))
        .build()
        .into()
}

crate::api::doc::string_schema!(
    /// local@domain: local part 1-64 characters, no spaces; a dotted domain of letters, digits
    /// and hyphens with a TLD of 2+ non-digit characters. The domain is lower-cased; the local
    /// part is kept. Deduplicated case-insensitively.
    EmailAddress, max 254
);
crate::api::doc::string_schema!(
    /// E.164 (+ and 2-15 digits, not starting with 0). Spaces, dashes, dots and parentheses are
    /// removed first: '+1 (415) 555-0123' -> '+14155550123'.
    PhoneNumber
);
crate::api::doc::string_schema!(
    /// An in-app inbox id.
    InboxId, min 1, max 4096
);

/// A token string (1-4096 characters), or an object. The provider comes from
/// `provider`/`id_provider` in the object or the `$id_provider` sibling key; default fcm for
/// $androidpush (fcm, xiaomi, oppo) and apns for $iospush (apns, or fcm for an iOS app using
/// Firebase).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum PushToken {
    Token(#[schema(inline)] PushTokenString),
    Object(#[schema(inline)] PushTokenObject),
}

crate::api::doc::string_schema!(
    /// A push token.
    PushTokenString, min 1, max 4096
);

/// `token` (or `value`) is required.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PushTokenObject {
    #[schema(required = false)]
    token: String,
    #[schema(required = false)]
    value: String,
    #[schema(required = false)]
    provider: String,
    #[schema(required = false)]
    id_provider: String,
    #[schema(required = false)]
    bundle_id: String,
    #[schema(required = false)]
    device_id: String,
}

/// A browser PushSubscription; stored as sent, deduplicated by endpoint. Provider vapid.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebPushSubscription {
    /// An http(s) URL.
    #[schema(format = "uri")]
    endpoint: String,
    #[schema(inline)]
    keys: WebPushKeys,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebPushKeys {
    /// base64url (padded or not) of the browser's uncompressed P-256 public key (65 bytes).
    #[schema(min_length = 86)]
    p256dh: String,
    /// base64url (padded or not) of the 16-byte authentication secret.
    #[schema(min_length = 22)]
    auth: String,
}

/// One of email, user_id, channel_id or incoming_webhook; access_token is required unless
/// incoming_webhook is given. No other keys.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SlackIdentity {
    #[schema(required = false)]
    email: EmailAddress,
    #[schema(pattern = "^[uUwW][a-zA-Z0-9]+$", required = false)]
    user_id: String,
    #[schema(pattern = "^[cC][a-zA-Z0-9]+$", required = false)]
    channel_id: String,
    #[schema(pattern = "^xox", required = false)]
    access_token: String,
    #[schema(inline, required = false)]
    incoming_webhook: SlackWebhook,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SlackWebhook {
    #[schema(pattern = r"^https://hooks\.slack\.com/")]
    url: String,
}

/// One of conversation_id, user_id or incoming_webhook is required; tenant_id and service_url
/// are optional. No other keys.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MsTeamsIdentity {
    #[schema(min_length = 1, required = false)]
    tenant_id: String,
    #[schema(pattern = r"^https://smba\.trafficmanager\.net/", required = false)]
    service_url: String,
    #[schema(min_length = 1, required = false)]
    conversation_id: String,
    #[schema(min_length = 1, required = false)]
    user_id: String,
    #[schema(inline, required = false)]
    incoming_webhook: UriWebhook,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UriWebhook {
    #[schema(format = "uri")]
    url: String,
}

/// Herald's addition: a Discord incoming-webhook URL, stored as the URL string.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum DiscordWebhook {
    Url(#[schema(inline)] DiscordWebhookUrl),
    Object(#[schema(inline)] DiscordWebhookObject),
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DiscordWebhookObject {
    #[schema(inline)]
    incoming_webhook: DiscordWebhookUrlObject,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DiscordWebhookUrlObject {
    #[schema(inline)]
    url: DiscordWebhookUrl,
}

crate::api::doc::string_schema!(
    /// A Discord webhook URL.
    DiscordWebhookUrl, pattern r"^https://(discord|discordapp)\.com/api/webhooks/"
);

/// `{"operations": [...]}`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents what `edit` reads
pub struct EditBody {
    operations: Vec<Operation>,
}

/// One operation object; it may hold several operators, applied in the order written.
/// Operations apply in order, all or nothing. Keys inside: general properties (validated and
/// normalised), `$status`, channel keys (`$email`, ...; values validated as in UpsertBody, one
/// item or a list), or custom keys. `$id_provider`, `$bundle_id`, `$device_id` beside a push
/// channel key in `$set`, `$set_once`, `$append` or `$remove` describe that identity. An unknown
/// operator is a 400. At least one operator (`minProperties`, set in `doc::secured`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents what core's ops engine reads
pub struct Operation {
    /// Sets each key. On a channel key, replaces the channel's identities with the given ones
    /// (null or [] empties it).
    #[serde(rename = "$set")]
    #[schema(required = false)]
    set: Object,
    /// Sets only keys the profile lacks (a channel: only if it holds no identity). `$status` is
    /// never changed by it.
    #[serde(rename = "$set_once")]
    #[schema(required = false)]
    set_once: Object,
    /// Removes properties or whole channels; `$status` returns the user to enabled.
    #[serde(rename = "$unset")]
    #[schema(schema_with = crate::api::doc::strings_or_string, required = false)]
    unset: Value,
    /// Custom key: appends the value (or each element of a list) to a list property, creating
    /// it; refused on a non-list. Channel key: adds identities (an existing address only updates
    /// its provider metadata). Refused on general properties and `$status`.
    #[serde(rename = "$append")]
    #[schema(required = false)]
    append: Object,
    /// Custom key: removes every element equal to the value (or to each element of a list);
    /// no-op when absent; refused on a non-list. Channel key: removes that identity (emails
    /// match case-insensitively, web push by endpoint). Refused on `$status`.
    #[serde(rename = "$remove")]
    #[schema(required = false)]
    remove: Object,
    /// Adds a number (may be negative) to a custom property; a missing or null property counts
    /// as 0. Integers stay integers; otherwise floating point. Refused on general, `$` and
    /// channel keys, and on a non-number property.
    #[serde(rename = "$add")]
    #[schema(required = false)]
    add: std::collections::BTreeMap<String, f64>,
    /// Alias of $add.
    #[serde(rename = "$increment")]
    #[schema(required = false)]
    increment: std::collections::BTreeMap<String, f64>,
}

/// A JSON object, any keys.
type Object = serde_json::Map<String, Value>;

/// `PATCH /v1/user/{distinct_id}/status/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatusBody {
    #[schema(inline)]
    status: UserStatus,
}

/// `POST /v1/user/{distinct_id}/merge/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MergeBody {
    /// The secondary's distinct_id.
    from_user_id: String,
}

/// The query of `POST /v1/user/{distinct_id}/merge/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MergeQuery {
    /// true (or 1): answer 200 with the primary as the merge would leave it, computed by the same
    /// rule, and change nothing. Unknown query parameters are a 400.
    #[param(default = false)]
    dry_run: Option<bool>,
}

/// `DELETE /v1/bulk/user/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkDeleteBody {
    #[schema(max_items = 1000)]
    distinct_ids: Vec<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkDeleteResult {
    #[schema(schema_with = crate::api::doc::const_true, required = false)]
    success: bool,
    #[schema(required = false)]
    deleted: i64,
    #[schema(required = false)]
    requested: i64,
}

/// A page of users.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserPage {
    #[schema(inline)]
    meta: UserPageMeta,
    results: Vec<User>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserPageMeta {
    /// Profiles matching the filters: always given without filters, with them only when
    /// with_count is true.
    #[schema(required = true)]
    count: Option<i64>,
    #[schema(required = true)]
    count_is_estimate: Option<bool>,
    limit: i64,
    sort: String,
    has_prev: bool,
    has_next: bool,
    #[schema(required = true)]
    before: Option<String>,
    #[schema(required = true)]
    after: Option<String>,
}

/// The query of `GET /v1/user/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListUsersQuery {
    /// Page size, 1-1000 (default 20).
    #[param(minimum = 1, maximum = 1000, default = 20)]
    limit: Option<i64>,
    /// Order; `-` for descending. Ties break on distinct_id.
    #[param(inline, default = "-created_at")]
    sort: Option<SortOrder>,
    /// Opaque cursor from meta.after (next page). Not with `before`.
    after: Option<String>,
    /// Opaque cursor from meta.before (previous page). Not with `after`.
    before: Option<String>,
    /// true (or 1) fills meta.count and meta.count_is_estimate for a filtered listing; otherwise
    /// they are null there. An unfiltered listing always has them (an exact counter). Exact up
    /// to 10,000 matches, estimated above.
    #[param(default = false)]
    with_count: Option<bool>,
    /// Only enabled or disabled users.
    #[param(inline)]
    status: Option<UserStatus>,
    /// Users with at least one identity on this channel. Repeatable (all must hold).
    has_channel: Option<crate::api::doc::ChannelName>,
    /// Users with no identity on this channel. Repeatable.
    lacks_channel: Option<crate::api::doc::ChannelName>,
    /// Case-insensitive prefix of the distinct_id, the name or any word of it, an email address
    /// or a phone number (with or without +).
    #[param(example = "love")]
    q: Option<String>,
    /// `gt|gte|lt|lte:<RFC 3339 time>`. Repeatable for a range.
    #[param(example = "gte:2026-01-01T00:00:00Z")]
    created_at: Option<String>,
    /// `gt|gte|lt|lte:<RFC 3339 time>`. Repeatable.
    updated_at: Option<String>,
    /// `<op>:<value>` on any property key (general, custom or a channel key such as $email): eq,
    /// ne, in (comma-separated), exists (true|false), contains, gt, gte, lt, lte. Repeatable. The
    /// parameter name is literally `prop.` followed by the key.
    #[param(rename = "prop.{key}", example = "eq:pro")]
    prop: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub enum SortOrder {
    #[serde(rename = "created_at")]
    CreatedAt,
    #[serde(rename = "-created_at")]
    CreatedAtDesc,
    #[serde(rename = "updated_at")]
    UpdatedAt,
    #[serde(rename = "-updated_at")]
    UpdatedAtDesc,
    #[serde(rename = "distinct_id")]
    DistinctId,
    #[serde(rename = "-distinct_id")]
    DistinctIdDesc,
}

/// The query of `GET /v1/user/{distinct_id}/history/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct HistoryQuery {
    /// 1-1000, default 20.
    #[param(minimum = 1, maximum = 1000, default = 20)]
    limit: Option<i64>,
    /// The meta.after of the previous page (an event id): older events.
    after: Option<String>,
}

/// A page of history events, newest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HistoryPage {
    #[schema(inline)]
    meta: HistoryMeta,
    results: Vec<HistoryEvent>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HistoryMeta {
    #[schema(required = false)]
    limit: i64,
    #[schema(required = false)]
    has_next: bool,
    after: Option<String>,
}

/// One change to a profile or its preferences.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the shape `HistoryEvent::to_wire` writes
pub struct HistoryEvent {
    /// Orders events; shared sequence across users.
    id: i64,
    distinct_id: String,
    #[schema(format = DateTime)]
    at: String,
    #[schema(inline)]
    actor: HistoryActor,
    #[schema(inline)]
    action: HistoryAction,
    /// What the caller sent (operations, upsert body, merge source, ...), as received; null for
    /// deletions.
    #[schema(required = true)]
    request: Value,
    changes: Vec<HistoryChange>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HistoryActor {
    #[schema(inline)]
    kind: ActorKind,
    /// api_key: the key's first 12 characters; workspace_key: the workspace key; cli: herald;
    /// preference_page: the distinct_id.
    id: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ActorKind {
    ApiKey,
    WorkspaceKey,
    Cli,
    PreferencePage,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum HistoryAction {
    Created,
    Updated,
    Merged,
    MergedInto,
    Deleted,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HistoryChange {
    /// A property, $status, a channel key (its list of values) or $preferences.
    key: String,
    /// Absent: the key did not exist.
    #[schema(required = false)]
    before: Value,
    /// Absent: the key was removed.
    #[schema(required = false)]
    after: Value,
}

/// Everything Herald holds on a user.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the shape `profiles::export` builds
pub struct UserExport {
    #[schema(required = false)]
    distinct_id: String,
    #[schema(inline, required = false)]
    environment: Environment,
    #[schema(format = DateTime, required = false)]
    exported_at: String,
    #[schema(required = false)]
    profile: User,
    /// The stored choices: `categories` {slug: {preference, opt_out_channels?}} and
    /// `restricted_channels`, each omitted when empty.
    #[schema(required = false)]
    preferences: Object,
    /// Complete, newest first.
    #[schema(required = false)]
    history: Vec<HistoryEvent>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum Environment {
    Test,
    Live,
}
