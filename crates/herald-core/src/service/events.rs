//! Identity events (`POST /event/`): the asynchronous form of a profile edit.

use super::{profiles, Ctx, Error};
use crate::channel::type_name;
use crate::error::Invalid;
use crate::ids::DistinctId;
use crate::ops::{self, Step};
use serde_json::{json, Value};

/// Whether an `/event/` item is a track event (`event`, no `$user_operations`), not an
/// identity event.
pub fn is_track_event(raw: &Value) -> bool {
    raw.get("event").is_some() && raw.get("$user_operations").is_none()
}

#[derive(Debug, Clone)]
pub struct IdentityEvent {
    pub distinct_id: DistinctId,
    pub ops: Vec<Step>,
    pub request: Value,
    /// `$insert_id`: a retried event with the same id is applied once.
    pub insert_id: Option<String>,
}

/// Parses one identity event. `env` must name the workspace of the key that sent it. Track
/// events (`event` without `$user_operations`, see [`is_track_event`]) go to
/// [`super::dispatch::track`].
pub fn parse_identity_event(raw: &Value, workspace_key: &str) -> Result<IdentityEvent, Invalid> {
    let obj = raw.as_object().ok_or_else(|| {
        Invalid::new(
            "",
            format!("each event must be an object, got {}", type_name(raw)),
        )
    })?;
    if let Some(env) = obj.get("env") {
        if env.as_str() != Some(workspace_key) {
            return Err(Invalid::new(
                "env",
                "must be the workspace key of the key that signs the request",
            ));
        }
    }
    let Some(operations) = obj.get("$user_operations") else {
        return Err(Invalid::new(
            "$user_operations",
            "is required: an identity event carries $user_operations (a track event, `event`)",
        ));
    };
    let id = obj
        .get("distinct_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::new("distinct_id", "is required and must be a string"))?;
    let distinct_id = DistinctId::parse(id)?;
    let ops = ops::parse_operations(operations, "$user_operations")?;
    let insert_id = match obj.get("$insert_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if !s.trim().is_empty() && s.len() <= 255 && crate::validate::no_nul(s).is_ok() =>
        {
            Some(s.trim().to_owned())
        }
        Some(_) => {
            return Err(Invalid::new(
                "$insert_id",
                "must be a non-empty string of at most 255 characters, without U+0000",
            ))
        }
    };
    let request = json!({ "operations": operations, "$insert_id": insert_id });
    Ok(IdentityEvent {
        distinct_id,
        ops,
        request,
        insert_id,
    })
}

/// Applies parsed events in order, as one unit of work in the store (see
/// [`profiles::apply_many`]); each event is all or nothing on its own. `first` is the position
/// of the first event in its call: an error names the event's position, as a refusal while
/// parsing does (`[3].$user_operations[1]…`).
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "events.ingest"))]
pub async fn ingest(
    store: &dyn crate::store::Store,
    ctx: &Ctx,
    first: usize,
    events: Vec<IdentityEvent>,
) -> Vec<Result<(), Error>> {
    let edits = events
        .into_iter()
        .map(|e| profiles::Edit {
            id: e.distinct_id,
            ops: e.ops,
            request: e.request,
            once: e.insert_id,
        })
        .collect();
    profiles::apply_many(store, ctx, edits, true)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, result)| result.map(drop).map_err(|err| at(first + i, err)))
        .collect()
}

/// An event's error, naming its position `i` in the call.
fn at(i: usize, err: Error) -> Error {
    match err {
        Error::Invalid(e) => Error::Invalid(e.within(format!("[{i}]"))),
        other => other,
    }
}
