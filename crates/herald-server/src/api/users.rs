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

pub async fn get(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<Response, ApiError> {
    let profile = profiles::get(app.store.as_ref(), &caller.ctx(), &id).await?;
    Ok((etag(profile.version), Json(profile.to_wire())).into_response())
}

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

pub async fn delete(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<StatusCode, ApiError> {
    profiles::delete(app.store.as_ref(), &caller.ctx(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

pub async fn export(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        profiles::export(app.store.as_ref(), &caller.ctx(), &id).await?,
    ))
}
