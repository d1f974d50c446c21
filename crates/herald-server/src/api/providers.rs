//! `/v1/provider/…`: the delivery provider of each channel, per environment. A PUT replaces the
//! whole config (secrets included: they are write-only, shown as `"set"`/`"unset"`, so they must
//! be sent on every PUT); it is checked by building the provider for the path's channel.

use super::error::ApiError;
use super::{Caller, JsonBody};
use crate::providers;
use crate::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_channels::Http;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

#[utoipa::path(
    get,
    path = "/v1/provider",
    operation_id = "listProviders",
    tag = "providers",
    summary = "Providers",
    responses(
        (status = 200, description = "Every configured channel of the environment, by channel; secrets as set/unset.", body = crate::api::providers::ProviderList, example = json!({"meta": {"count": 1}, "results": [{"channel": "email", "kind": "smtp", "host": "127.0.0.1", "port": 2525, "tls": "none", "from": "herald@example.com", "username": null, "password": "unset", "updated_at": "2025-01-01T00:00:00+00:00"}]}))
    )
)]
pub async fn list_providers(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let all = providers::list(app.store.as_ref(), caller.scope).await?;
    Ok(Json(json!({"meta": {"count": all.len()}, "results": all})))
}

#[utoipa::path(
    get,
    path = "/v1/provider/{channel}",
    operation_id = "getProvider",
    tag = "providers",
    summary = "One channel's provider",
    params(("channel" = String, Path, description = "email, sms, whatsapp, slack, discord, ms_teams, …")),
    responses(
        (status = 200, description = "The config; secrets as set/unset.", body = crate::api::providers::ProviderView),
        (status = 400, description = "Not a channel.", body = crate::api::doc::ErrorBody),
        (status = 404, description = "No provider is configured for the channel.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn get_provider(
    State(app): State<App>,
    caller: Caller,
    Path(channel): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let channel = providers::channel_named(&channel)?;
    Ok(Json(
        providers::get(app.store.as_ref(), caller.scope, channel).await?,
    ))
}

#[utoipa::path(
    put,
    path = "/v1/provider/{channel}",
    operation_id = "putProvider",
    tag = "providers",
    summary = "Configure a channel's provider",
    description = "The whole config, `kind` first: `smtp` (email), `twilio` (sms, whatsapp), `meta_whatsapp` (whatsapp), `slack`, `discord`, `teams` (ms_teams), `fcm` (androidpush or iospush: FCM HTTP v1 with a service account; it delivers every FCM token, `$iospush` ones with `id_provider: fcm` too, from either channel), `apns` (iospush: HTTP/2 with a .p8 key; APNs device tokens only), `vapid` (webpush: `subject`, `public_key`, `private_key`, `ttl`, `urgency`). It replaces what was stored, secrets included: send them on every PUT. Every provider takes a `base_url` (`endpoint` for fcm and apns) replacing the public service's origin. Checked by building the provider: a bad field is a 400 naming it, a kind that does not send on the channel a 400 naming `kind`.",
    params(("channel" = String, Path, description = "The channel it delivers on.")),
    request_body(content = crate::api::providers::ProviderBody, example = json!({"kind": "smtp", "host": "127.0.0.1", "port": 2525, "tls": "none", "from": "herald@example.com"})),
    responses(
        (status = 200, description = "Replaced: the config as stored, secrets as set/unset.", body = crate::api::providers::ProviderView),
        (status = 201, description = "Created: the config as stored, secrets as set/unset.", body = crate::api::providers::ProviderView),
        (status = 400, description = "A bad field, named; or a kind that does not send on the channel (`kind`).", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "kind: smtp sends on email, not sms", "detail": "kind: smtp sends on email, not sms", "field": "kind", "error": {"type": "validation_error", "message": "kind: smtp sends on email, not sms"}}))
    )
)]
pub async fn put_provider(
    State(app): State<App>,
    caller: Caller,
    Path(channel): Path<String>,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let channel = providers::channel_named(&channel)?;
    // Only to check the config: the directory builds the providers that send.
    let http = Http::new(&app.config.outbound)?;
    let (view, created) =
        providers::put(app.store.as_ref(), &http, caller.scope, channel, &body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/provider/{channel}",
    operation_id = "deleteProvider",
    tag = "providers",
    summary = "Remove a channel's provider",
    description = "Later sends on the channel are skipped `no_provider` (webhook identities that carry their own endpoint still go out).",
    params(("channel" = String, Path, description = "The channel.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No provider is configured for the channel.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn delete_provider(
    State(app): State<App>,
    caller: Caller,
    Path(channel): Path<String>,
) -> Result<StatusCode, ApiError> {
    let channel = providers::channel_named(&channel)?;
    providers::delete(app.store.as_ref(), caller.scope, channel).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/v1/provider/…`, with its documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_providers))
        .routes(routes!(get_provider, put_provider, delete_provider))
}

// ---- The documented shapes (what `herald_channels::ProviderConfig` reads) --------------------

/// A provider config: `kind` and the kind's fields. Secrets (`password`, `auth_token`,
/// `access_token`, `bot_token`, `service_account`, `private_key`) are write-only.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the shape `ProviderConfig::parse` reads
pub struct ProviderBody {
    /// smtp, twilio, meta_whatsapp, slack, discord, teams, fcm, apns or vapid.
    kind: String,
    /// Replaces the public service's origin (a proxy, or a test's fake).
    #[schema(required = false)]
    base_url: Option<String>,
}

/// A stored config as shown: the body's fields with each secret `"set"` or `"unset"`, plus
/// `channel` and `updated_at`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProviderView {
    channel: String,
    kind: String,
    updated_at: String,
}

/// Every configured provider of the environment.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProviderList {
    #[schema(inline)]
    meta: ProviderCount,
    results: Vec<ProviderView>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProviderCount {
    count: usize,
}
