//! `/v1/property/…`: the property registry (which properties exist, which the users table shows).

use super::error::ApiError;
use super::{Caller, JsonBody};
use crate::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::service::properties;
use serde_json::{json, Value};

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let all = properties::list(app.store.as_ref(), &caller.ctx()).await?;
    Ok(Json(json!({
        "meta": { "count": all.len() },
        "results": all.iter().map(|p| p.to_wire()).collect::<Vec<_>>(),
    })))
}

pub async fn get(
    State(app): State<App>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = properties::get(app.store.as_ref(), &caller.ctx(), &key).await?;
    Ok(Json(p.to_wire()))
}

pub async fn declare(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let p = properties::declare(app.store.as_ref(), &caller.ctx(), &body).await?;
    Ok((StatusCode::CREATED, Json(p.to_wire())).into_response())
}

pub async fn update(
    State(app): State<App>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let p = properties::update(app.store.as_ref(), &caller.ctx(), &key, &body).await?;
    Ok(Json(p.to_wire()))
}

pub async fn delete(
    State(app): State<App>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    properties::delete(app.store.as_ref(), &caller.ctx(), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
