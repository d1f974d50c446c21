//! `POST /v1/user/{id}/preview/`: renders a Handlebars template for one user, with the variables
//! every Herald template sees (see `herald_core::template`), so a template can be checked against
//! a real profile before it is used.

use super::error::ApiError;
use super::hosted::link_service;
use super::{Caller, JsonBody, UserId};
use crate::App;
use axum::extract::State;
use axum::Json;
use herald_core::service::links::LinkDays;
use herald_core::service::profiles;
use herald_core::template;
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Templates larger than this are refused.
const MAX_TEMPLATE_BYTES: usize = 100 * 1024;

/// Renders running at once; more wait their turn, so previews cannot take every CPU.
const MAX_CONCURRENT_RENDERS: usize = 4;
static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_RENDERS);

#[utoipa::path(
    post,
    path = "/v1/user/{id}/preview",
    operation_id = "previewTemplate",
    tag = "templates",
    summary = "Render a Handlebars template for a user",
    description = "Variables: each key of `data`; `$recipient` (distinct_id, the properties, the first address per channel as $email, $sms, ...); `$hosted_preference_url` (a 30-day link to the user's preference page). {{x}} escapes HTML, {{{x}}} does not; a missing variable renders empty.",
    params(
        crate::api::doc::UserPath
    ),
    request_body(content = crate::api::templates::PreviewBody, example = json!({"template": "Hi {{$recipient.name}}, order {{order}}. Preferences: {{{$hosted_preference_url}}}", "data": {"order": 42}})),
    responses(
        (status = 200, description = "The rendered text.", body = crate::api::templates::Preview, example = json!({"rendered": "Hi Ada Lovelace, order 42. Preferences: https://herald.example.com/preferences/eyJlIjoidGVzdCIsImQiOiJhZGEiLCJ4IjoxNzk4NTAwMjU2fQ._l9173t_fYDWgkOgu-zXkow1gevYJVyQEE1P3cMBIeQ"})),
        (status = 400, description = "No template, a template over 100 KB or that does not parse or render, or a bad `data`.", body = crate::api::doc::ErrorBody),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
pub async fn preview(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let source = body
        .get("template")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request("template", "is required: a Handlebars template string")
        })?;
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(ApiError::bad_request(
            "template",
            format!("must be at most {MAX_TEMPLATE_BYTES} bytes"),
        ));
    }
    // Refuse a template that can never render (recursive partials, …) before any lookup.
    template::check("template", source)?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let ctx = caller.ctx();
    let profile = profiles::get(app.store.as_ref(), &ctx, &id).await?;
    let base = app.config.public_base();
    let link = link_service(&app, &base)
        .mint(caller.scope.env(), &profile, LinkDays::TEMPLATE, ctx.now)
        .await?;
    let vars = template::variables(&profile, &link.url, &data)?;
    // Rendering is CPU-bound (bounded by `template::limits`): keep it off the async workers.
    let source = source.to_owned();
    let _turn = RENDERS
        .acquire()
        .await
        .map_err(|e| ApiError::internal(format!("the render queue is closed: {e}")))?;
    let rendered =
        tokio::task::spawn_blocking(move || template::render("template", &source, &vars))
            .await
            .map_err(|e| ApiError::internal(format!("the template render task failed: {e}")))??;
    Ok(Json(json!({ "rendered": rendered })))
}

/// `/v1/user/{id}/preview`, with its documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(preview))
}

/// `POST /v1/user/{distinct_id}/preview/`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PreviewBody {
    /// At most 100 KB.
    #[schema(max_length = 102400)]
    template: String,
    /// Keys must not start with $.
    #[schema(required = false)]
    data: serde_json::Map<String, serde_json::Value>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Preview {
    #[schema(required = false)]
    rendered: String,
}
