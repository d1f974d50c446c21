//! `POST /event/`: identity events, one object or an array of up to 400.

use super::error::ApiError;
use super::{Caller, JsonBody};
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::service::{events, limits};
use serde_json::{json, Value};

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
    let mut results = events::ingest(app.store.as_ref(), &caller.ctx(), parsed).await;
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
