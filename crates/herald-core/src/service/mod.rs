//! Use cases. The HTTP API, the CLI and (later) the dashboard call these; they hold the rules and
//! reach storage only through the [`crate::store`] traits.

pub mod copy;
pub mod dispatch;
pub mod engagement;
pub mod events;
pub mod health;
pub mod inbox;
pub mod links;
pub mod preferences;
pub mod profiles;
pub mod properties;
pub mod workflows;

use crate::env::EnvScope;
use crate::error::Invalid;
use crate::history::Actor;
use crate::store::{Refusal, StoreError};
use chrono::{DateTime, Utc};

/// Who acts, in which environment, and when. Built once per request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub scope: EnvScope,
    pub actor: Actor,
    pub now: DateTime<Utc>,
    /// The caller's precondition (HTTP `If-Match`): an edit applies only to this version of the
    /// profile, so two editors cannot silently overwrite each other.
    pub if_version: Option<i64>,
    /// The caller's `Idempotency-Key`: an edit carrying one applies at most once per environment
    /// (keys share the 24-hour store of events' `$insert_id`s), and only for the request it came
    /// with (its fingerprint).
    pub idempotency_key: Option<crate::store::OnceKey>,
}

impl Ctx {
    pub fn new(scope: EnvScope, actor: Actor, now: DateTime<Utc>) -> Self {
        Self {
            scope,
            actor,
            now: crate::profile::truncate(now),
            if_version: None,
            idempotency_key: None,
        }
    }

    pub fn expecting(self, if_version: Option<i64>) -> Self {
        Self { if_version, ..self }
    }

    pub fn with_idempotency_key(self, idempotency_key: Option<crate::store::OnceKey>) -> Self {
        Self {
            idempotency_key,
            ..self
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(Invalid),
    #[error("{what} [distinct_id: '{id}'] not found")]
    NotFound { what: &'static str, id: String },
    /// A thing other than a user that does not exist: `property 'plan' not found`.
    #[error("{what} '{key}' not found")]
    Missing { what: &'static str, key: String },
    /// The caller's `If-Match` version is not the profile's (412).
    #[error("{}", stale_message(*.expected, *.current))]
    Stale { expected: i64, current: Option<i64> },
    /// The request is well-formed but clashes with what is stored (409).
    #[error("{0}")]
    Conflict(Invalid),
    /// The `Idempotency-Key` was already used for a different request (422); nothing applied.
    #[error("Idempotency-Key: this key was already used with a different request (method, path or body); send a new key for a new request")]
    KeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The fingerprint an `Idempotency-Key` is bound to: SHA-256 (hex) over the method, the request
/// target and the body, each length-prefixed so no two requests share one by concatenation.
pub fn request_fingerprint(method: &str, target: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [method.as_bytes(), target.as_bytes(), body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Self {
        Error::Invalid(e)
    }
}

impl Error {
    pub fn user_not_found(id: impl ToString) -> Self {
        Error::NotFound {
            what: "user",
            id: id.to_string(),
        }
    }

    fn from_refusal(r: Refusal, id: impl ToString) -> Self {
        match r {
            Refusal::Invalid(e) => Error::Invalid(e),
            Refusal::Missing => Error::user_not_found(id),
            Refusal::Stale { expected, current } => Error::Stale { expected, current },
        }
    }
}

fn stale_message(expected: i64, current: Option<i64>) -> String {
    match current {
        Some(v) => format!(
            "the profile is at version {v}, not {expected}: read it again, then retry with its ETag"
        ),
        None => format!("the profile does not exist, so it is not at version {expected}"),
    }
}

/// Limits on what one call may carry.
pub mod limits {
    /// One identity event, or one profile edit or upsert body (SuprSend's 10 KB).
    pub const MAX_EDIT_BYTES: usize = 10 * 1024;
    /// Identity events in one `/event/` call.
    pub const MAX_EVENTS_PER_CALL: usize = 400;
    /// distinct_ids in one bulk delete.
    pub const MAX_BULK_DELETE: usize = 1000;
}
