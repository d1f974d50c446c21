//! API keys of one environment (`/{env}/keys`): the list (no secrets), creating a key set (its
//! secret and bearer key shown once, on the page that answers the form), and revoking one.
//! Through `crate::keys`, as `herald keys create|list|revoke`.

use super::session::{Console, Posted};
use super::{html, message, redirect, show_time, Shell};
use crate::App;
use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Template)]
#[template(path = "dashboard/keys.html")]
struct KeysPage {
    shell: Shell,
    env: &'static str,
    csrf: String,
    saved: Option<&'static str>,
    created: Option<Created>,
    rows: Vec<KeyRow>,
}

struct Created {
    workspace_key: String,
    workspace_secret: String,
    api_key: String,
}

struct KeyRow {
    workspace_key: String,
    api_key_prefix: String,
    created_at: String,
}

async fn page(
    app: &App,
    console: &Console,
    saved: Option<&'static str>,
    created: Option<Created>,
) -> Result<KeysPage, Response> {
    let all = app
        .store
        .list_credentials()
        .await
        .map_err(|e| crate::api::error::ApiError::from(e).into_response())?;
    Ok(KeysPage {
        shell: Shell::of(console, "keys"),
        env: console.env.as_str(),
        csrf: console.session.csrf_token.clone(),
        saved,
        created,
        // Only this environment's key sets.
        rows: all
            .into_iter()
            .filter(|c| c.env == console.env)
            .map(|c| KeyRow {
                workspace_key: c.workspace_key,
                api_key_prefix: format!("{}…", c.api_key_prefix),
                created_at: show_time(c.created_at),
            })
            .collect(),
    })
}

/// `GET /{env}/keys`.
pub async fn list(State(app): State<App>, console: Console, uri: Uri) -> Response {
    let saved = match uri.query().unwrap_or("") {
        q if q.contains("saved=revoked") => Some("Key set revoked: it stopped working at once."),
        _ => None,
    };
    match page(&app, &console, saved, None).await {
        Ok(p) => html(StatusCode::OK, p.render()),
        Err(r) => r,
    }
}

/// `POST /{env}/keys`: a new key set. The answer is the page itself (not a redirect), so the
/// secret and the bearer key appear once and are never stored in clear or in a URL.
pub async fn create(State(app): State<App>, posted: Posted) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let new = match crate::keys::create(app.store.as_ref(), console.env).await {
        Ok(new) => new,
        Err(e) => return crate::api::error::ApiError::internal(e).into_response(),
    };
    tracing::info!(operator = %console.session.username, env = %console.env, "dashboard created a key set");
    let created = Created {
        workspace_key: new.credentials.workspace_key.clone(),
        workspace_secret: new.credentials.workspace_secret.clone(),
        api_key: new.api_key.clone(),
    };
    match page(&app, &console, None, Some(created)).await {
        Ok(p) => html(StatusCode::OK, p.render()),
        Err(r) => r,
    }
}

/// `POST /{env}/keys/revoke`: `workspace_key` of this environment (another's is not found
/// here); refused from the next request on by this node, by the others within
/// `auth.credential_cache_ms`.
pub async fn revoke(State(app): State<App>, posted: Posted) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let key = posted.fields.text("workspace_key");
    let ours = match app.store.credentials_by_workspace_key(&key).await {
        Ok(found) => found.is_some_and(|c| c.env == console.env),
        Err(e) => return crate::api::error::ApiError::from(e).into_response(),
    };
    if !ours {
        return message(
            StatusCode::NOT_FOUND,
            Shell::of(&console, "keys"),
            "Not found",
            "This environment has no key set with that workspace key.",
        );
    }
    match crate::keys::revoke_on(&app, &key).await {
        Ok(_) => {
            tracing::info!(operator = %console.session.username, env = %console.env, "dashboard revoked a key set");
            redirect(&format!("/{}/keys?saved=revoked", console.env))
        }
        Err(e) => crate::api::error::ApiError::internal(e).into_response(),
    }
}
