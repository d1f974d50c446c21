//! Delivery providers of one environment (`/{env}/providers`): each configured channel with its
//! settings (secrets only as set/unset: they never leave the server), a form that puts a
//! channel's whole configuration (checked by building the provider, as `PUT /v1/provider/…`),
//! and removing one.

use super::session::{Console, Posted};
use super::{failure, html, redirect, segment, Shell};
use crate::{providers, App};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use herald_core::channel::Channel;
use herald_core::service::Error;
use herald_core::Invalid;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Template)]
#[template(path = "dashboard/providers.html")]
struct ProvidersPage {
    shell: Shell,
    env: &'static str,
    csrf: String,
    saved: Option<&'static str>,
    rows: Vec<ProviderRow>,
    channels: Vec<&'static str>,
    channel: String,
    config: String,
    errors: BTreeMap<String, String>,
}

impl ProvidersPage {
    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }
}

struct ProviderRow {
    channel: String,
    kind: String,
    remove: String,
    settings: Vec<(String, String)>,
    updated_at: String,
}

async fn page(
    app: &App,
    console: &Console,
    saved: Option<&'static str>,
    form: (String, String),
    errors: BTreeMap<String, String>,
) -> Result<ProvidersPage, Error> {
    let env = console.env.as_str();
    let views = providers::list(app.store.as_ref(), console.ctx.scope).await?;
    let rows = views
        .into_iter()
        .map(|v| {
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let channel = text("channel");
            ProviderRow {
                remove: format!("/{env}/providers/{}/delete", segment(&channel)),
                kind: text("kind"),
                updated_at: text("updated_at"),
                settings: v
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| {
                                !matches!(k.as_str(), "channel" | "kind" | "updated_at")
                            })
                            .map(|(k, v)| (k.clone(), super::display_value(v)))
                            .collect()
                    })
                    .unwrap_or_default(),
                channel,
            }
        })
        .collect();
    Ok(ProvidersPage {
        shell: Shell::of(console, "providers"),
        env,
        csrf: console.session.csrf_token.clone(),
        saved,
        rows,
        channels: Channel::ALL.iter().map(|c| c.as_str()).collect(),
        channel: form.0,
        config: form.1,
        errors,
    })
}

/// `GET /{env}/providers`.
pub async fn list(State(app): State<App>, console: Console, uri: Uri) -> Response {
    let saved = match uri.query().unwrap_or("") {
        q if q.contains("saved=put") => Some("Provider saved."),
        q if q.contains("saved=deleted") => Some("Provider removed."),
        _ => None,
    };
    let form = (String::new(), String::new());
    match page(&app, &console, saved, form, BTreeMap::new()).await {
        Ok(p) => html(StatusCode::OK, p.render()),
        Err(e) => failure(Shell::of(&console, "providers"), e),
    }
}

/// `POST /{env}/providers`: `channel` and `config` (the JSON body of `PUT /v1/provider/{channel}/`,
/// secrets included, replacing the whole configuration).
pub async fn put(State(app): State<App>, posted: Posted) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let channel_name = posted.fields.text("channel");
    let raw = posted.fields.get("config").unwrap_or("").to_owned();
    let result = async {
        let channel = providers::channel_named(&channel_name).map_err(Error::Invalid)?;
        let body: Value = serde_json::from_str(&raw).map_err(|e| {
            Error::Invalid(Invalid::new("config", format!("is not valid JSON: {e}")))
        })?;
        let http = herald_channels::Http::new(&app.config.outbound).map_err(Error::Invalid)?;
        providers::put(app.store.as_ref(), &http, console.ctx.scope, channel, &body).await
    }
    .await;
    match result {
        Ok(_) => {
            tracing::info!(operator = %console.session.username, env = %console.env, channel = %channel_name, "dashboard put a provider");
            redirect(&format!("/{}/providers?saved=put", console.env))
        }
        Err(Error::Invalid(e)) => {
            let field = if e.field == "channel" {
                "channel"
            } else {
                "config"
            };
            let errors = BTreeMap::from([(field.to_owned(), e.to_string())]);
            // The secrets typed are not sent back into the page: the form comes back empty.
            match page(&app, &console, None, (channel_name, String::new()), errors).await {
                Ok(p) => html(StatusCode::BAD_REQUEST, p.render()),
                Err(e) => failure(Shell::of(&console, "providers"), e),
            }
        }
        Err(e) => failure(Shell::of(&console, "providers"), e),
    }
}

/// `POST /{env}/providers/{channel}/delete`.
pub async fn delete(
    State(app): State<App>,
    Path(params): Path<Vec<(String, String)>>,
    posted: Posted,
) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let name = super::path_param(params, "channel");
    let result = match providers::channel_named(&name) {
        Ok(channel) => providers::delete(app.store.as_ref(), console.ctx.scope, channel).await,
        Err(e) => Err(Error::Invalid(e)),
    };
    match result {
        Ok(()) => redirect(&format!("/{}/providers?saved=deleted", console.env)),
        Err(e) => failure(Shell::of(&console, "providers"), e),
    }
}
