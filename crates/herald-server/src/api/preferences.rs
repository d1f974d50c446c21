//! `/v1/category/…` and `/v1/user/{id}/preference/…` (wire spec §2.5), and the bulk forms.
//! `tenant_id` and `locale` query parameters are accepted and ignored: Herald has no tenants yet.

use super::error::ApiError;
use super::{query_pairs, Caller, JsonBody, UserId};
use crate::App;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::preference::Category;
use herald_core::service::preferences;
use serde_json::{json, Value};
use std::collections::HashMap;

fn category_json(c: &Category) -> Value {
    json!({
        "category": c.slug,
        "name": c.name,
        "description": c.description,
        "section": c.section,
        "default_preference": c.default_preference.as_str(),
        "locked_channels": c.locked_channels.iter().map(|ch| ch.as_str()).collect::<Vec<_>>(),
        "visible": c.visible,
    })
}

/// `show_opt_out_channels` (default true), `limit` (default 100, at most 1000), `offset`.
struct PreferenceQuery {
    show_opt_out_channels: bool,
    limit: usize,
    offset: usize,
}

impl PreferenceQuery {
    fn parse(uri: &Uri) -> Result<Self, ApiError> {
        let pairs: HashMap<String, String> = query_pairs(uri).into_iter().collect();
        let flag = pairs
            .get("show_opt_out_channels")
            .map(|v| v.trim().to_ascii_lowercase());
        let show_opt_out_channels = match flag.as_deref() {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "show_opt_out_channels",
                    format!("must be true or false, got '{other}'"),
                ))
            }
        };
        let number = |k: &str, default: usize, max: usize| -> Result<usize, ApiError> {
            match pairs.get(k) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            k,
                            format!("must be an integer from 0 to {max}, got '{v}'"),
                        )
                    }),
            }
        };
        Ok(PreferenceQuery {
            show_opt_out_channels,
            limit: number("limit", 100, 1000)?,
            offset: number("offset", 0, usize::MAX)?,
        })
    }
}

pub async fn list_categories(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let all = preferences::list_categories(app.store.as_ref(), &caller.ctx()).await?;
    Ok(Json(json!({
        "meta": {"count": all.len()},
        "results": all.iter().map(category_json).collect::<Vec<_>>(),
    })))
}

pub async fn create_category(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let c = preferences::create_category(app.store.as_ref(), &caller.ctx(), &body).await?;
    Ok((StatusCode::CREATED, Json(category_json(&c))).into_response())
}

pub async fn get_category(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = preferences::get_category(app.store.as_ref(), &caller.ctx(), &slug).await?;
    Ok(Json(category_json(&c)))
}

pub async fn update_category(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let c = preferences::update_category(app.store.as_ref(), &caller.ctx(), &slug, &body).await?;
    Ok(Json(category_json(&c)))
}

pub async fn delete_category(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    preferences::delete_category(app.store.as_ref(), &caller.ctx(), &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn full(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = PreferenceQuery::parse(&uri)?;
    let v = preferences::full(
        app.store.as_ref(),
        &caller.ctx(),
        &id,
        q.show_opt_out_channels,
    )
    .await?;
    Ok(Json(v))
}

pub async fn user_categories(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = PreferenceQuery::parse(&uri)?;
    let v = preferences::categories(
        app.store.as_ref(),
        &caller.ctx(),
        &id,
        q.show_opt_out_channels,
        q.limit,
        q.offset,
    )
    .await?;
    Ok(Json(v))
}

fn category_param(params: &HashMap<String, String>) -> String {
    params.get("category").cloned().unwrap_or_default()
}

pub async fn user_category(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    Path(params): Path<HashMap<String, String>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = PreferenceQuery::parse(&uri)?;
    let slug = category_param(&params);
    let v = preferences::category(
        app.store.as_ref(),
        &caller.ctx(),
        &id,
        &slug,
        q.show_opt_out_channels,
    )
    .await?;
    Ok(Json(v))
}

pub async fn choose_category(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    Path(params): Path<HashMap<String, String>>,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let slug = category_param(&params);
    let v = preferences::choose(app.store.as_ref(), &caller.ctx(), &id, &slug, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

pub async fn channels(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        preferences::channels(app.store.as_ref(), &caller.ctx(), &id).await?,
    ))
}

pub async fn restrict_channels(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let v = preferences::restrict(app.store.as_ref(), &caller.ctx(), &id, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

pub async fn bulk_update(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let v = preferences::bulk_update(app.store.as_ref(), &caller.ctx(), &body).await?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

pub async fn bulk_reset(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let v = preferences::bulk_reset(app.store.as_ref(), &caller.ctx(), &body).await?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}
