//! Workflows of one environment (`/{env}/workflows`): the list, and a workflow's page with its
//! definition and a preview of each channel's template rendered for a chosen user (with the
//! variables dispatch gives it), through `herald_core::service::workflows` and the same
//! rendering as dispatch.

use super::session::{Console, Fields};
use super::{failure, html, segment, Shell};
use crate::App;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use herald_core::service::links::LinkDays;
use herald_core::service::{profiles, workflows, Error};
use herald_core::{template, DistinctId, Invalid};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Template)]
#[template(path = "dashboard/workflows.html")]
struct WorkflowsPage {
    shell: Shell,
    rows: Vec<WorkflowRow>,
}

struct WorkflowRow {
    href: String,
    slug: String,
    name: String,
    category: String,
    channels: String,
    policy: String,
    events: String,
}

/// `GET /{env}/workflows`.
pub async fn list(State(app): State<App>, console: Console) -> Response {
    let env = console.env.as_str();
    match workflows::list(app.store.as_ref(), &console.ctx).await {
        Ok(all) => {
            let rows = all
                .into_iter()
                .map(|w| WorkflowRow {
                    href: format!("/{env}/workflows/{}", segment(&w.slug)),
                    category: w.category.clone().unwrap_or_default(),
                    channels: w
                        .templates
                        .keys()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    policy: match &w.policy {
                        herald_core::workflow::Policy::All => "all".into(),
                        herald_core::workflow::Policy::FirstSuccess(order) => format!(
                            "first success: {}",
                            order
                                .iter()
                                .map(|c| c.as_str())
                                .collect::<Vec<_>>()
                                .join(" → ")
                        ),
                        herald_core::workflow::Policy::Smart(smart) => format!(
                            "smart: {} (wait {}, until {})",
                            smart
                                .channels
                                .iter()
                                .map(|c| c.as_str())
                                .collect::<Vec<_>>()
                                .join(" → "),
                            herald_core::workflow::format_wait(smart.gate.wait),
                            smart.gate.until
                        ),
                    },
                    events: w.events.join(", "),
                    slug: w.slug,
                    name: w.name,
                })
                .collect();
            let page = WorkflowsPage {
                shell: Shell::of(&console, "workflows"),
                rows,
            };
            html(StatusCode::OK, page.render())
        }
        Err(e) => failure(Shell::of(&console, "workflows"), e),
    }
}

#[derive(Template)]
#[template(path = "dashboard/workflow.html")]
struct WorkflowPage {
    shell: Shell,
    env: &'static str,
    base: String,
    slug: String,
    name: String,
    definition: String,
    user: String,
    data: String,
    previews: Vec<(String, String)>,
    errors: BTreeMap<String, String>,
}

impl WorkflowPage {
    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }
}

/// `GET /{env}/workflows/{slug}[?user=ID&data=JSON]`: the definition, and with a user each
/// channel's template rendered for them (nothing is sent or stored).
pub async fn show(
    State(app): State<App>,
    console: Console,
    Path(params): Path<Vec<(String, String)>>,
    uri: Uri,
) -> Response {
    let slug = super::path_param(params, "slug");
    let store = app.store.as_ref();
    let workflow = match workflows::get(store, &console.ctx, &slug).await {
        Ok(w) => w,
        Err(e) => return failure(Shell::of(&console, "workflows"), e),
    };
    let query = Fields(crate::api::query_pairs(&uri));
    let user = query.text("user");
    let data_raw = query.text("data");
    let mut errors = BTreeMap::new();
    let mut previews = Vec::new();
    if !user.is_empty() {
        match preview(&app, &console, &workflow, &user, &data_raw).await {
            Ok(p) => previews = p,
            Err(Error::Invalid(e)) => {
                let field = if e.field == "data" { "data" } else { "user" };
                errors.insert(field.to_owned(), e.to_string());
            }
            Err(e @ Error::NotFound { .. }) => {
                errors.insert("user".to_owned(), e.to_string());
            }
            Err(e) => return failure(Shell::of(&console, "workflows"), e),
        }
    }
    let env = console.env.as_str();
    let page = WorkflowPage {
        shell: Shell::of(&console, "workflows"),
        env,
        base: format!("/{env}/workflows/{}", segment(&workflow.slug)),
        definition: serde_json::to_string_pretty(&workflow.to_input()).unwrap_or_default(),
        slug: workflow.slug.clone(),
        name: workflow.name.clone(),
        user,
        data: data_raw,
        previews,
        errors,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(status, page.render())
}

/// Each channel's content for `user`, as dispatch would render it (a fresh preference link, the
/// trigger's `data`), on a blocking thread.
async fn preview(
    app: &App,
    console: &Console,
    workflow: &herald_core::workflow::Workflow,
    user: &str,
    data_raw: &str,
) -> Result<Vec<(String, String)>, Error> {
    let id = DistinctId::parse(user).map_err(|e| Error::Invalid(e.within("user")))?;
    let data: Value = if data_raw.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(data_raw)
            .map_err(|e| Error::Invalid(Invalid::new("data", format!("is not valid JSON: {e}"))))?
    };
    let ctx = &console.ctx;
    let profile = profiles::get(app.store.as_ref(), ctx, &id).await?;
    let base = app.config.public_base();
    let link = crate::api::hosted::link_service(app, &base)
        .mint(console.env, &profile, LinkDays::TEMPLATE, ctx.now)
        .await?;
    let vars = template::variables(&profile, &link.url, &data)
        .map_err(|e| Error::Invalid(e.within("data")))?;
    let workflow = workflow.clone();
    tokio::task::spawn_blocking(move || {
        workflow
            .templates
            .keys()
            .map(|channel| {
                let shown = match workflow.render(*channel, &vars) {
                    Ok(content) => serde_json::to_string_pretty(&content).unwrap_or_default(),
                    Err(e) => format!("does not render: {e}"),
                };
                (channel.as_str().to_owned(), shown)
            })
            .collect()
    })
    .await
    .map_err(|e| Error::Store(herald_core::store::StoreError::internal_from("preview", e)))
}
