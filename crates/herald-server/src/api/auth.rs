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

/// The request target exactly as received (raw path and query), kept before any normalisation
/// because the signature covers it.
#[derive(Debug, Clone)]
pub struct RawTarget(pub String);

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

/// Middleware: reads the body (up to the limit), verifies the caller and hands the request on with
/// a [`Caller`] attached.
pub async fn authenticate(State(app): State<App>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let limit = app.config.limits.max_body_bytes;
    let Ok(bytes) = to_bytes(body, limit).await else {
        return ApiError::too_large(format!(
            "the request body is larger than the limit of {limit} bytes"
        ))
        .into_response();
    };
    match verify(&app, &parts, &bytes).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => e.into_response(),
    }
}

async fn verify(app: &App, parts: &Parts, body: &[u8]) -> Result<Caller, ApiError> {
    let headers = &parts.headers;
    let authorization = header_str(headers, header::AUTHORIZATION.as_str())
        .ok_or_else(|| ApiError::unauthorized("missing Authorization header: send 'Bearer <api_key>' or a signed '<workspace_key>:<signature>'"))?;
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        let creds = app
            .store
            .credentials_by_api_key_hash(&hash_api_key(token.trim()))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
        let prefix = creds.api_key_prefix.clone();
        return Ok(caller(creds, Actor::new("api_key", prefix)));
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
    let creds = app
        .store
        .credentials_by_workspace_key(key.trim())
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown workspace key"))?;
    let target = parts
        .extensions
        .get::<RawTarget>()
        .map_or_else(|| parts.uri.to_string(), |t| t.0.clone());
    let content_type = header_str(headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
    let to_sign =
        signature::string_to_sign(parts.method.as_str(), body, content_type, date, &target);
    if !signature::verify(&creds.workspace_secret, &to_sign, sig) {
        return Err(ApiError::unauthorized(
            "signature mismatch: check the workspace secret and that the body is sent as signed",
        ));
    }
    let key = creds.workspace_key.clone();
    Ok(caller(creds, Actor::new("workspace_key", key)))
}

fn caller(creds: Credentials, actor: Actor) -> Caller {
    Caller {
        scope: EnvScope::new(creds.env),
        actor,
        workspace_key: creds.workspace_key,
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
