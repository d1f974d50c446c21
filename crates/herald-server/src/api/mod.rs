//! The HTTP API: SuprSend's wire surface plus Herald's additions in the same style.

pub mod auth;
mod bulk;
pub mod callbacks;
pub mod doc;
pub mod error;
mod events;
pub mod hosted;
mod inbox;
mod messages;
mod meta;
pub(crate) mod preferences;
mod properties;
mod providers;
mod templates;
mod tracking;
pub(crate) mod trigger;
mod users;
pub(crate) mod workflows;

use crate::App;
use auth::{Caller, RawTarget};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::{Extension, Router};
use chrono::Utc;
use error::ApiError;
use herald_core::service::Ctx;
use herald_core::DistinctId;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// All routes, each registered with its documentation (see [`documented_routes`]). Paths are
/// matched without their trailing slash (see [`normalize`]).
pub fn router(app: App) -> Router {
    let (authenticated, public, doc) = documented_routes();
    let doc = meta::OpenApiJson(
        serde_json::to_string(&doc)
            .expect("the OpenAPI document serializes")
            .into(),
    );
    Router::new()
        .merge(authenticated.layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        )))
        .merge(public)
        .merge(crate::dashboard::router())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
        .layer(Extension(doc))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            meta::record_metrics,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            app.config.limits.max_body_bytes,
        ))
        .with_state(app)
}

/// The routes needing credentials, the public ones, and the OpenAPI document of both: each
/// resource module registers its handlers with their `#[utoipa::path]` documentation, so a route
/// cannot be served undocumented nor documented unserved.
pub fn documented_routes() -> (Router<App>, Router<App>, utoipa::openapi::OpenApi) {
    let (authenticated, mut secured) = OpenApiRouter::new()
        .merge(users::router())
        .merge(bulk::router())
        .merge(events::router())
        .merge(properties::router())
        .merge(preferences::router())
        .merge(hosted::router())
        .merge(templates::router())
        .merge(workflows::router())
        .merge(providers::router())
        .merge(messages::router())
        .merge(trigger::router())
        .merge(inbox::router())
        .split_for_parts();
    let (public, mut open) = OpenApiRouter::new()
        .merge(hosted::page_router())
        .merge(callbacks::router())
        .merge(tracking::router())
        .merge(meta::router())
        .split_for_parts();
    // Outside the auth layer, but not open: a browser proves itself with its subscriber_id.
    let (browser, mut subscribers) = OpenApiRouter::new()
        .merge(inbox::browser_router())
        .split_for_parts();
    doc::secured(&mut secured);
    doc::public(&mut open);
    doc::subscriber(&mut subscribers);
    let mut document = doc::ApiDoc::openapi();
    document.merge(secured);
    document.merge(open);
    document.merge(subscribers);
    (authenticated, public.merge(browser), document)
}

/// Runs before routing: remembers the raw target for signature checks, then drops a trailing
/// slash so `/v1/user/x/` and `/v1/user/x` reach the same handler.
pub fn normalize(mut req: Request) -> Request {
    let raw = auth::raw_target(req.uri());
    req.extensions_mut().insert(RawTarget(raw));
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let new = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = new.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

impl Caller {
    /// The context a use case runs in: this caller's environment and identity, now.
    pub fn ctx(&self) -> Ctx {
        Ctx::new(self.scope, self.actor.clone(), Utc::now())
    }
}

/// The `{id}` path segment, percent-decoded and parsed as a distinct_id.
pub struct UserId(pub DistinctId);

impl<S: Send + Sync> FromRequestParts<S> for UserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::bad_request("distinct_id", format!("is not a valid path segment: {e}"))
            })?;
        let raw = params
            .into_iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v)
            .unwrap_or_default();
        Ok(UserId(DistinctId::parse(&raw)?))
    }
}

/// The context of a profile edit: the caller's, with the edit's preconditions from the headers.
/// `If-Match` takes the profile version an `ETag` gave (`"3"`, `W/"3"` or `3`): the edit then
/// applies only to that version. `Idempotency-Key` (1–255 characters): an edit sent again with
/// the same key, a retry after a lost reply, is not applied again.
pub struct EditCtx(pub Ctx);

impl<S: Send + Sync> FromRequestParts<S> for EditCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let header = |name| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().map(str::trim).ok())
        };
        let version = header("if-match")
            .map(|raw| {
                raw.map(|t| t.strip_prefix("W/").unwrap_or(t).trim_matches('"'))
                    .and_then(|t| t.parse::<i64>().ok())
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "If-Match",
                            "must be a profile version as the ETag gives it, e.g. \"3\"",
                        )
                    })
            })
            .transpose()?;
        let fingerprint = parts
            .extensions
            .get::<auth::Fingerprint>()
            .map(|f| f.0.clone());
        let key = header("idempotency-key")
            .map(|raw| {
                raw.filter(|k| !k.is_empty() && k.len() <= 255)
                    .map(|k| herald_core::store::OnceKey {
                        key: k.to_owned(),
                        fingerprint: fingerprint.clone(),
                    })
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "Idempotency-Key",
                            "must be 1 to 255 visible ASCII characters",
                        )
                    })
            })
            .transpose()?;
        Ok(EditCtx(
            caller.ctx().expecting(version).with_idempotency_key(key),
        ))
    }
}

/// The `ETag` of a profile: its version, which `If-Match` names to make an edit conditional.
pub fn etag(version: i64) -> [(axum::http::HeaderName, String); 1] {
    [(axum::http::header::ETAG, format!("\"{version}\""))]
}

/// A JSON body, any shape; malformed JSON is a 400 that says where it broke.
pub struct JsonBody(pub Value, pub usize);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::too_large(format!("cannot read the request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null, 0));
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request("body", format!("is not valid JSON: {e}")))?;
        // No stored string may hold U+0000 (PostgreSQL cannot): refused here for every body,
        // naming where it is; core checks again where values are parsed (imports, the CLI).
        herald_core::validate::no_nul_in(&value).map_err(|e| {
            ApiError::invalid(if e.field.is_empty() {
                e.within("body")
            } else {
                e
            })
        })?;
        Ok(JsonBody(value, bytes.len()))
    }
}

/// Query parameters in order, percent-decoded (`+` is a space, as form encoding has it).
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// A page size of a cursor listing: an integer from 1 to `max`.
pub fn parse_page_limit(raw: &str, max: usize) -> Result<usize, ApiError> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "limit",
            format!("must be an integer from 1 to {max}, got '{raw}'"),
        )),
    }
}

/// The `after` cursor of a listing whose cursors are sequence numbers.
pub fn parse_seq_cursor(raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request("after", "is not a cursor returned by this listing"))
}
