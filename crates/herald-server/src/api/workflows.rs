//! `/v1/workflow/…`: what a trigger or a track event sends, per environment. The body is
//! [`WorkflowInput`], checked by `Workflow::parse` (every template must parse, errors name the
//! field: `channels.email.subject`); `GET` answers the same shape, so a workflow read can be
//! saved back unchanged.

use super::error::ApiError;
use super::{Caller, JsonBody};
use crate::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::service::workflows::{self, Put};
use herald_core::workflow::{Workflow, WorkflowInput};
use herald_core::Invalid;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// A workflow on the wire: its [`WorkflowInput`].
fn workflow_json(w: &Workflow) -> Value {
    serde_json::to_value(w.to_input()).expect("a workflow serialises to JSON")
}

/// The wire body, read field by field so a wrong one is named: `channels.fax` (an unknown
/// channel), `channels.sms.subject` (an unknown field), `policy` (neither `"all"` nor
/// `{"first_success": […]}` nor `{"smart": {…}}`).
pub(crate) fn parse_input(body: &Value) -> Result<WorkflowInput, Invalid> {
    if !body.is_object() {
        return Err(Invalid::new("", "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let mut field = if path == "." { String::new() } else { path };
        let rule = e.into_inner().to_string();
        // A missing key is named in serde's message only; an unknown one is in the path already.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| rule.strip_prefix(p))
            .and_then(|rest| rest.split('`').next());
        if let Some(key) = named.filter(|k| field != *k && !field.ends_with(&format!(".{k}"))) {
            field = if field.is_empty() {
                key.to_owned()
            } else {
                format!("{field}.{key}")
            };
        }
        Invalid::new(field, rule)
    })
}

#[utoipa::path(
    get,
    path = "/v1/workflow",
    operation_id = "listWorkflows",
    tag = "workflows",
    summary = "Workflows",
    responses(
        (status = 200, description = "Every workflow of the environment, by slug.", body = crate::api::workflows::WorkflowList)
    )
)]
pub async fn list_workflows(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let all = workflows::list(app.store.as_ref(), &caller.ctx()).await?;
    Ok(Json(json!({
        "meta": {"count": all.len()},
        "results": all.iter().map(workflow_json).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    post,
    path = "/v1/workflow",
    operation_id = "createWorkflow",
    tag = "workflows",
    summary = "Create a workflow",
    description = "`slug` and `channels` are required. Every template is checked now: one that does not parse is a 400 naming the channel and field. The category, when given, must exist in the environment.",
    request_body(content = crate::api::workflows::WorkflowBody, example = json!({"slug": "welcome", "name": "Welcome", "category": "transactional", "policy": {"first_success": ["inbox", "email"]}, "channels": {"email": {"subject": "Welcome, {{$recipient.name}}", "html": "<p>Your code is {{code}}</p>", "text": "Your code is {{code}}"}, "inbox": {"title": "Welcome", "body": "Your code is {{code}}"}}, "events": ["signed_up"]})),
    responses(
        (status = 201, description = "The workflow as stored.", body = crate::api::workflows::WorkflowBody, example = json!({"slug": "welcome", "name": "Welcome", "category": "transactional", "policy": {"first_success": ["inbox", "email"]}, "channels": {"email": {"subject": "Welcome, {{$recipient.name}}", "html": "<p>Your code is {{code}}</p>", "text": "Your code is {{code}}"}, "inbox": {"title": "Welcome", "body": "Your code is {{code}}"}}, "events": ["signed_up"]})),
        (status = 400, description = "A bad field, named: a template that does not parse, an unknown channel or field, a first_success channel without a template, a category that does not exist.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "channels.email.subject: the template does not parse: …", "detail": "channels.email.subject: the template does not parse: …", "field": "channels.email.subject", "error": {"type": "validation_error", "message": "channels.email.subject: the template does not parse: …"}})),
        (status = 409, description = "A workflow with that slug exists already.", body = crate::api::doc::ErrorBody, example = json!({"code": 409, "error_code": "conflict", "type": "Conflict", "message": "slug: workflow 'welcome' exists already; replace it with PUT /v1/workflow/welcome/", "detail": "slug: workflow 'welcome' exists already; replace it with PUT /v1/workflow/welcome/", "field": "slug", "error": {"type": "conflict", "message": "slug: workflow 'welcome' exists already; replace it with PUT /v1/workflow/welcome/"}}))
    )
)]
pub async fn create_workflow(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let input = parse_input(&body)?;
    let w = workflows::create(app.store.as_ref(), &caller.ctx(), input).await?;
    Ok((StatusCode::CREATED, Json(workflow_json(&w))).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/workflow/{slug}",
    operation_id = "getWorkflow",
    tag = "workflows",
    summary = "One workflow",
    params(
        ("slug" = String, Path, description = "The workflow slug.")
    ),
    responses(
        (status = 200, description = "The workflow.", body = crate::api::workflows::WorkflowBody),
        (status = 404, description = "No such workflow.", body = crate::api::doc::ErrorBody, example = json!({"code": 404, "error_code": "not_found", "type": "NotFound", "message": "workflow 'nope' not found", "detail": "workflow 'nope' not found", "field": null, "error": {"type": "not_found", "message": "workflow 'nope' not found"}}))
    )
)]
pub async fn get_workflow(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let w = workflows::get(app.store.as_ref(), &caller.ctx(), &slug).await?;
    Ok(Json(workflow_json(&w)))
}

#[utoipa::path(
    put,
    path = "/v1/workflow/{slug}",
    operation_id = "putWorkflow",
    tag = "workflows",
    summary = "Create or replace a workflow",
    description = "The whole workflow, as for POST; `slug` may be left out (the path's is taken) and must otherwise be the path's.",
    params(
        ("slug" = String, Path, description = "The workflow slug.")
    ),
    request_body(content = crate::api::workflows::WorkflowBody, example = json!({"name": "Welcome", "channels": {"sms": {"text": "Your code is {{code}}"}}, "events": ["signed_up"]})),
    responses(
        (status = 200, description = "Replaced: the workflow as stored.", body = crate::api::workflows::WorkflowBody),
        (status = 201, description = "Created: the workflow as stored.", body = crate::api::workflows::WorkflowBody),
        (status = 400, description = "A bad field, named (as for POST), or a body slug that is not the path's.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn put_workflow(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let input = parse_input(&body)?;
    let (w, put) = workflows::put(app.store.as_ref(), &caller.ctx(), &slug, input).await?;
    let status = match put {
        Put::Created => StatusCode::CREATED,
        Put::Replaced => StatusCode::OK,
    };
    Ok((status, Json(workflow_json(&w))).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/workflow/{slug}",
    operation_id = "deleteWorkflow",
    tag = "workflows",
    summary = "Delete a workflow",
    description = "Its events no longer start it; messages it sent stay in the log.",
    params(
        ("slug" = String, Path, description = "The workflow slug.")
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such workflow.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn delete_workflow(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    workflows::delete(app.store.as_ref(), &caller.ctx(), &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/v1/workflow/…`, with its documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_workflows, create_workflow))
        .routes(routes!(get_workflow, put_workflow, delete_workflow))
}

// ---- The documented shapes (what `WorkflowInput` reads and writes) ---------------------------

/// A workflow: a slug, a preference category, a Handlebars template per channel, the channel
/// policy and the events that start it. Templates see the trigger's `data` keys at the top
/// level, `$recipient` (the profile), `$actor` and `$hosted_preference_url`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the shape `WorkflowInput` reads and writes
pub struct WorkflowBody {
    /// Required on POST; on PUT the path's when left out.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", required = false)]
    slug: String,
    /// Defaults to the slug.
    #[schema(max_length = 100, required = false)]
    name: String,
    /// A preference category of the environment; null or empty: outside every category.
    #[schema(required = false)]
    category: Option<String>,
    #[schema(inline, required = false)]
    policy: WorkflowPolicy,
    #[schema(inline)]
    channels: WorkflowChannels,
    /// Event names (`POST /event/`) that start this workflow; at most 100.
    #[schema(required = false, max_items = 100)]
    events: Vec<String>,
    #[schema(inline, required = false)]
    tracking: WorkflowTracking,
    /// At most `limit` triggers per user per `window`; the rest are skipped (`throttled`). Not
    /// with `digest`.
    #[schema(inline, required = false)]
    throttle: Option<WorkflowThrottle>,
    /// Collect each user's triggers (logged `digested`) and send them as one message per
    /// channel once `window` has passed since the first, or once there are `count`; templates
    /// see `digest.items` and `digest.count`. Sent on the union of the collected triggers'
    /// `$channels` (all channels if one had none); given up, logged `failed`, when its render
    /// still fails at the 3rd attempt. Not with `throttle`.
    #[schema(inline, required = false)]
    digest: Option<WorkflowDigest>,
}

/// A throttle: per user, counted per trigger.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WorkflowThrottle {
    #[schema(minimum = 1)]
    limit: u32,
    /// A duration: `30s`, `15m`, `1h`, `2d` (at most 30 days).
    #[schema(pattern = "^[0-9]+[smhd]$")]
    window: String,
}

/// A digest: a window, a count, or both (at least one).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WorkflowDigest {
    /// A duration from the first item: `30s`, `15m`, `1h`, `2d` (at most 30 days).
    #[schema(pattern = "^[0-9]+[smhd]$", required = false)]
    window: Option<String>,
    /// Sent once it holds this many items.
    #[schema(minimum = 2, maximum = 1000, required = false)]
    count: Option<u32>,
}

/// `"all"` (default): every channel with a template the user can receive on. `first_success`:
/// one channel at a time in this order, the next only after the one before failed or was
/// skipped; each listed channel needs a template. `smart`: one channel at a time in this
/// order, the next `wait` after the one before was sent unless the user engaged (`until`) with
/// an earlier one, at once after a failure for good.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum WorkflowPolicy {
    All,
    FirstSuccess(Vec<TemplateChannel>),
    Smart(#[schema(inline)] SmartPolicy),
}

/// A smart channel order.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SmartPolicy {
    /// Distinct channels, each with a template, in order.
    #[schema(min_items = 1)]
    channels: Vec<TemplateChannel>,
    /// A whole number and a unit s, m, h or d (`15m`), from 1s to 30d.
    #[schema(example = "15m")]
    wait: String,
    /// `seen` (default: seen or clicked) or `clicked`.
    #[schema(required = false)]
    until: Option<String>,
}

/// Open and click tracking of a workflow's HTML emails; each switch off unless true.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkflowTracking {
    /// A 1×1 image (`/t/o/{token}`) in each HTML email records it seen when loaded.
    #[schema(required = false)]
    opens: bool,
    /// Each http(s) link of each HTML email goes through `/t/c/{token}`, which records a click and redirects.
    #[schema(required = false)]
    clicks: bool,
}

/// A channel a workflow can have a template for.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum TemplateChannel {
    Email,
    Sms,
    Whatsapp,
    Slack,
    MsTeams,
    Discord,
    Inbox,
}

/// One template per channel; at least one.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WorkflowChannels {
    #[schema(inline, required = false)]
    email: EmailTemplate,
    #[schema(inline, required = false)]
    sms: TextTemplate,
    #[schema(inline, required = false)]
    whatsapp: TextTemplate,
    #[schema(inline, required = false)]
    slack: SlackTemplate,
    #[schema(inline, required = false)]
    ms_teams: TeamsTemplate,
    #[schema(inline, required = false)]
    discord: DiscordTemplate,
    #[schema(inline, required = false)]
    inbox: InboxTemplate,
}

/// `subject`, and `html` or `text` (or both).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct EmailTemplate {
    subject: String,
    #[schema(required = false)]
    html: String,
    #[schema(required = false)]
    text: String,
}

/// SMS and WhatsApp: `text`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TextTemplate {
    text: String,
}

/// `text`, and optional Block Kit `blocks` whose every string is a template.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SlackTemplate {
    text: String,
    #[schema(required = false, value_type = Vec<Object>)]
    blocks: Vec<Value>,
}

/// `text` or an Adaptive Card (`card`, every string a template), or both.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TeamsTemplate {
    #[schema(required = false)]
    text: String,
    #[schema(required = false, value_type = Object)]
    card: Value,
}

/// `content` or `embeds` (every string a template), or both.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DiscordTemplate {
    #[schema(required = false)]
    content: String,
    #[schema(required = false, value_type = Vec<Object>)]
    embeds: Vec<Value>,
}

/// `body` required; `title` and `action_url` optional.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct InboxTemplate {
    #[schema(required = false)]
    title: String,
    body: String,
    #[schema(required = false)]
    action_url: String,
}

/// Every workflow of the environment.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkflowList {
    #[schema(inline, required = false)]
    meta: crate::api::properties::Count,
    #[schema(required = false)]
    results: Vec<WorkflowBody>,
}
