//! Authentication. Every API request carries either a SuprSend HMAC signature
//! (`Authorization: <workspace_key>:<base64 signature>` with a `Date` header) or a bearer API key.
//! The key decides the environment; handlers receive it as a [`Caller`] and cannot run without one.

use super::error::ApiError;
use crate::App;
use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_core::credentials::{hash_api_key, Credentials};
use herald_core::history::Actor;
use herald_core::signature;
use herald_core::EnvScope;
use std::sync::Arc;

/// The request target exactly as received (raw path and query), kept before any normalisation
/// because the signature covers it.
#[derive(Debug, Clone)]
pub struct RawTarget(pub String);

/// The digest of the request (method, raw target, body) an `Idempotency-Key` is bound to.
#[derive(Debug, Clone)]
pub struct Fingerprint(pub String);

/// Who is calling: the environment their key belongs to, and how history should name them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub scope: EnvScope,
    pub actor: Actor,
    /// The workspace key of the environment, which identity events name in their `env` field.
    pub workspace_key: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// Middleware: verifies the caller, then reads the body (up to the limit) and hands the request on
/// with a [`Caller`] attached. The key is checked before the body is read, so a caller without a
/// valid key cannot make Herald buffer a body: a bearer key is checked whole; a signed request has
/// its key, `Date` and clock skew checked first and only its signature (which covers the body)
/// after the read.
pub async fn authenticate(State(app): State<App>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let limit = app.config.limits.max_body_bytes;
    // The bulk import reads its own body as a stream, up to its own limit (see `bulk::streams`).
    let streamed = super::bulk::streams(&parts);
    let declared_limit = match streamed {
        true => app.config.limits.bulk_import_max_bytes,
        false => limit as u64,
    };
    // A declared length over the limit is refused from the headers alone, before credentials.
    let declared = header_str(&parts.headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > declared_limit) {
        return too_large(declared_limit as usize);
    }
    let pending = match identify(&app, &parts).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let (true, Pending::Known(caller)) = (streamed, &pending) {
        parts.extensions.insert(caller.clone());
        return next.run(Request::from_parts(parts, body)).await;
    }
    let Ok(bytes) = to_bytes(body, limit).await else {
        return too_large(limit);
    };
    let caller = match pending {
        Pending::Known(caller) => caller,
        Pending::Signed { creds, sig, date } => {
            match verify_signature(&parts, &bytes, creds, &sig, &date) {
                Ok(caller) => caller,
                Err(e) => return e.into_response(),
            }
        }
    };
    parts.extensions.insert(caller);
    if parts.headers.contains_key("idempotency-key") {
        let target = parts
            .extensions
            .get::<RawTarget>()
            .map_or_else(|| parts.uri.to_string(), |t| t.0.clone());
        parts
            .extensions
            .insert(Fingerprint(herald_core::service::request_fingerprint(
                parts.method.as_str(),
                &target,
                &bytes,
            )));
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(limit: usize) -> Response {
    ApiError::too_large(format!(
        "the request body is larger than the limit of {limit} bytes"
    ))
    .into_response()
}

/// What the headers alone establish: a caller (bearer), or the key set a signature must match.
enum Pending {
    Known(Caller),
    Signed {
        creds: Arc<Credentials>,
        sig: String,
        date: String,
    },
}

/// The answer to every signed request whose signature does not hold, whether the workspace key
/// is unknown or the signature wrong: the two are not told apart, so keys cannot be enumerated.
pub const SIGNATURE_MISMATCH: &str =
    "signature mismatch: check the workspace key and secret, and that the body is sent as signed";

async fn identify(app: &App, parts: &Parts) -> Result<Pending, ApiError> {
    let headers = &parts.headers;
    let authorization = header_str(headers, header::AUTHORIZATION.as_str())
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header: send 'Bearer <api_key>' or a signed '<workspace_key>:<signature>'"))?;
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        let creds = app
            .credentials
            .by_api_key_hash(app.store.as_ref(), &hash_api_key(token.trim()))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
        let prefix = creds.api_key_prefix.clone();
        return Ok(Pending::Known(caller(
            &creds,
            Actor::new("api_key", prefix),
        )));
    }
    let (key, sig) = authorization.split_once(':').ok_or_else(|| {
        ApiError::unauthorized(
            "Authorization must be 'Bearer <api_key>' or '<workspace_key>:<signature>'",
        )
    })?;
    let date = header_str(headers, header::DATE.as_str())
        .ok_or_else(|| ApiError::unauthorized("a signed request needs a Date header"))?;
    let sent = signature::parse_date(date).ok_or_else(|| {
        ApiError::unauthorized("the Date header is not an RFC 1123 or RFC 3339 date")
    })?;
    let skew = (Utc::now() - sent).num_seconds().unsigned_abs();
    if skew > app.config.auth.max_clock_skew_secs {
        return Err(ApiError::unauthorized(format!(
            "the Date header is {skew}s away from the server clock (at most {}s allowed)",
            app.config.auth.max_clock_skew_secs
        )));
    }
    let Some(creds) = app
        .credentials
        .by_workspace_key(app.store.as_ref(), key.trim())
        .await?
    else {
        // Refused like a wrong signature, after a signature check of the same cost (over the
        // headers: the body is not read for a key that cannot be genuine).
        let to_sign = string_to_sign(parts, b"", date);
        let _ = signature::verify(UNKNOWN_KEY_SECRET, &to_sign, sig);
        return Err(ApiError::unauthorized(SIGNATURE_MISMATCH));
    };
    Ok(Pending::Signed {
        creds,
        sig: sig.to_owned(),
        date: date.to_owned(),
    })
}

fn verify_signature(
    parts: &Parts,
    body: &[u8],
    creds: Arc<Credentials>,
    sig: &str,
    date: &str,
) -> Result<Caller, ApiError> {
    if !signature::verify(
        &creds.workspace_secret,
        &string_to_sign(parts, body, date),
        sig,
    ) {
        return Err(ApiError::unauthorized(SIGNATURE_MISMATCH));
    }
    let key = creds.workspace_key.clone();
    Ok(caller(&creds, Actor::new("workspace_key", key)))
}

fn string_to_sign(parts: &Parts, body: &[u8], date: &str) -> String {
    let target = parts
        .extensions
        .get::<RawTarget>()
        .map_or_else(|| parts.uri.to_string(), |t| t.0.clone());
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
    signature::string_to_sign(parts.method.as_str(), body, content_type, date, &target)
}

/// The secret an unknown workspace key's signature is checked against. The result is ignored: the
/// check only makes the refusal cost what a real one does.
const UNKNOWN_KEY_SECRET: &str = "herald-unknown-workspace-key-0000000000000000000000";

fn caller(creds: &Credentials, actor: Actor) -> Caller {
    Caller {
        scope: EnvScope::authenticated(creds),
        actor,
        workspace_key: creds.workspace_key.clone(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The raw request target: path plus `?query` when the query is non-empty (a bare `?` is dropped).
pub fn raw_target(uri: &axum::http::Uri) -> String {
    match uri.query() {
        Some(q) if !q.is_empty() => format!("{}?{q}", uri.path()),
        _ => uri.path().to_owned(),
    }
}
