//! `/v1/callback/…`: later answers of providers about messages they accepted. No API key: the
//! environment is in the path, and a request counts only when its signature verifies with a
//! secret of that environment's provider config (Twilio's auth token, the SMTP provider's
//! `bounce_secret`); a request naming `live` must be signed with live's secret, so nothing can
//! reach another environment's messages. Both answer 200 quickly and are idempotent; a message
//! Herald does not know answers 200 without change too (`"changed": false`), because the
//! provider would otherwise retry a callback that can never apply (a message sent by another
//! system on the same Twilio account, or erased since).

use super::auth::RawTarget;
use super::error::ApiError;
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Extension;
use axum::Json;
use herald_channels::ProviderConfig;
use herald_core::channel::Channel;
use herald_core::health::{Bounce, MessageRef};
use herald_core::history::Actor;
use herald_core::service::health::{self, Hearing};
use herald_core::service::Ctx;
use herald_core::{Env, EnvScope};
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The header of a bounce report's signature: `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const BOUNCE_SIGNATURE_HEADER: &str = "x-herald-signature";

fn env_of(raw: &str) -> Result<Env, ApiError> {
    raw.parse()
        .map_err(|rule: String| ApiError::bad_request("env", rule))
}

/// The stored configs of `env` on `channels` that parse, in that order.
async fn configs(
    app: &App,
    env: Env,
    channels: &[Channel],
) -> Result<Vec<ProviderConfig>, ApiError> {
    let mut found = Vec::new();
    for channel in channels {
        if let Some(record) = app
            .store
            .get_provider_config(EnvScope::operator(env), *channel)
            .await?
        {
            if let Ok(config) = ProviderConfig::parse(&record.config) {
                found.push(config);
            }
        }
    }
    Ok(found)
}

fn answered(hearing: &Hearing) -> Json<Value> {
    let changed = matches!(hearing, Hearing::Heard { changed: true, .. });
    Json(json!({"status": "success", "changed": changed}))
}

#[utoipa::path(
    post,
    path = "/v1/callback/twilio/{env}",
    operation_id = "twilioStatusCallback",
    tag = "callbacks",
    summary = "Twilio status callback",
    description = "Where Twilio posts a message's later statuses (Herald asks for it with `StatusCallback` on every send when `public_url` is set). Form-encoded as Twilio sends it; verified by `X-Twilio-Signature` (HMAC-SHA1 of `public_url` + this path + the sorted parameters, keyed with the auth token of the environment's twilio provider, SMS or WhatsApp). The message is found by `MessageSid` (its provider id) within the environment. `delivered`/`read`: the message becomes delivered. `undelivered`/`failed`: it fails with the `ErrorCode`, and an invalid-number code marks the identity `perma_status: invalid`. Other statuses change nothing. Repeated callbacks change nothing more.",
    params(("env" = String, Path, description = "test or live: the environment whose twilio auth token signs the callback.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", example = "MessageSid=SM0042&MessageStatus=undelivered&ErrorCode=30005&AccountSid=AC123"),
    responses(
        (status = 200, description = "Heard; `changed` says whether the message (and perhaps its identity) changed. Also for a message Herald does not know.", body = Object, example = json!({"status": "success", "changed": true})),
        (status = 400, description = "`env` is not test or live, or `MessageSid` or `MessageStatus` is missing.", body = crate::api::doc::ErrorBody),
        (status = 403, description = "The signature is missing or wrong, or the environment has no twilio provider.", body = crate::api::doc::ErrorBody, example = json!({"code": 403, "error_code": "forbidden", "type": "Forbidden", "message": "X-Twilio-Signature does not verify with this environment's twilio auth token", "detail": "X-Twilio-Signature does not verify with this environment's twilio auth token", "field": null, "error": {"type": "forbidden", "message": "X-Twilio-Signature does not verify with this environment's twilio auth token"}}))
    )
)]
pub async fn twilio(
    State(app): State<App>,
    Path(env): Path<String>,
    Extension(RawTarget(target)): Extension<RawTarget>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let env = env_of(&env)?;
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let claimed = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The URL Twilio was given: this server's public address and the path as requested.
    let url = format!("{}{target}", app.config.public_base());
    let signed = configs(&app, env, &[Channel::Sms, Channel::Whatsapp])
        .await?
        .iter()
        .any(|config| match config {
            ProviderConfig::Twilio(twilio) => herald_channels::twilio::verify_signature(
                twilio.auth_token.expose(),
                &url,
                &params,
                claimed,
            ),
            _ => false,
        });
    if !signed {
        return Err(ApiError::forbidden(
            "X-Twilio-Signature does not verify with this environment's twilio auth token",
        ));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sid = param("MessageSid")
        .or_else(|| param("SmsSid"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("MessageSid", "is required"))?;
    let status = param("MessageStatus")
        .or_else(|| param("SmsStatus"))
        .ok_or_else(|| ApiError::bad_request("MessageStatus", "is required"))?;
    let Some(answer) = herald_channels::twilio::late_answer(status, param("ErrorCode")) else {
        return Ok(Json(json!({"status": "success", "changed": false})));
    };
    let ctx = Ctx::new(
        EnvScope::called_back(env),
        Actor::new("callback", "twilio"),
        chrono::Utc::now(),
    );
    let which = MessageRef::ProviderId(sid.to_owned());
    let hearing = health::hear(app.store.as_ref(), &ctx, &which, None, &answer).await?;
    Ok(answered(&hearing))
}

#[utoipa::path(
    post,
    path = "/v1/callback/email/{env}",
    operation_id = "emailBounceWebhook",
    tag = "callbacks",
    summary = "Email bounce webhook",
    description = "A bounce report from the operator's mail system: `{\"message_id\" | \"provider_id\", \"recipient\"?, \"type\": \"hard\"|\"soft\"|\"complaint\", \"reason\"?}`, signed with `X-Herald-Signature: sha256=<hex HMAC-SHA256 of the raw body>` keyed with the `bounce_secret` of the environment's smtp provider. `hard`: the message fails (`sent → failed`) and its email identity becomes `perma_status: invalid`. `soft` and `complaint`: noted on the message (history and reason), status unchanged. `recipient`, when given, must be the address the message went to. Repeated reports change nothing more.",
    params(("env" = String, Path, description = "test or live: the environment whose bounce_secret signs the report.")),
    request_body(content = Object, example = json!({"message_id": "01JD6Z9V2K3M4N5P6Q7R8S9T0V", "recipient": "ada@example.com", "type": "hard", "reason": "550 5.1.1 user unknown"})),
    responses(
        (status = 200, description = "Heard; `changed` says whether the message (and perhaps its identity) changed. Also for a message Herald does not know.", body = Object, example = json!({"status": "success", "changed": true})),
        (status = 400, description = "`env` is not test or live, or the report breaks a rule (the field is named).", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "type: 'bounced' is not one of hard, soft, complaint", "detail": "type: 'bounced' is not one of hard, soft, complaint", "field": "type", "error": {"type": "validation_error", "message": "type: 'bounced' is not one of hard, soft, complaint"}})),
        (status = 403, description = "The signature is missing or wrong, or the environment's smtp provider has no bounce_secret.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn email(
    State(app): State<App>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let env = env_of(&env)?;
    let claimed = headers
        .get(BOUNCE_SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signed = configs(&app, env, &[Channel::Email])
        .await?
        .iter()
        .any(|config| match config {
            ProviderConfig::Smtp(smtp) => smtp.bounce_secret.as_ref().is_some_and(|secret| {
                herald_core::signature::verify_body(secret.expose(), &body, claimed)
            }),
            _ => false,
        });
    if !signed {
        return Err(ApiError::forbidden(
            "X-Herald-Signature does not verify with this environment's smtp bounce_secret",
        ));
    }
    let report: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("is not valid JSON: {e}")))?;
    let bounce = Bounce::parse(&report)?;
    let ctx = Ctx::new(
        EnvScope::called_back(env),
        Actor::new("callback", "email"),
        chrono::Utc::now(),
    );
    let hearing = health::hear(
        app.store.as_ref(),
        &ctx,
        &bounce.message,
        bounce.recipient.as_deref(),
        &bounce.answer(),
    )
    .await?;
    Ok(answered(&hearing))
}

/// `/v1/callback/…`, outside the API-key layer (each verifies its own signature).
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(twilio))
        .routes(routes!(email))
}
