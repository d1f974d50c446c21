//! Notification categories (`/{env}/categories`): the list, a form to create one and a delete
//! button, through `herald_core::service::preferences` as `/v1/category/` does (the form becomes
//! the API's body and is read by the same parser).

use super::session::{Console, Posted};
use super::{failure, html, redirect, segment, Shell};
use crate::App;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use herald_core::channel::Channel;
use herald_core::preference::PREFERENCE_CHANNELS;
use herald_core::service::{preferences, Error};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Template)]
#[template(path = "dashboard/categories.html")]
struct CategoriesPage {
    shell: Shell,
    env: &'static str,
    csrf: String,
    saved: Option<&'static str>,
    rows: Vec<CategoryRow>,
    channels: Vec<&'static str>,
    values: BTreeMap<&'static str, String>,
    errors: BTreeMap<String, String>,
}

impl CategoriesPage {
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }
}

struct CategoryRow {
    slug: String,
    delete: String,
    name: String,
    description: String,
    section: String,
    default: &'static str,
    locked: String,
    visible: bool,
}

const FIELDS: [&str; 5] = [
    "category",
    "name",
    "section",
    "description",
    "default_preference",
];

async fn page(
    app: &App,
    console: &Console,
    saved: Option<&'static str>,
    values: BTreeMap<&'static str, String>,
    errors: BTreeMap<String, String>,
) -> Result<CategoriesPage, Error> {
    let env = console.env.as_str();
    let all = preferences::list_categories(app.store.as_ref(), &console.ctx).await?;
    Ok(CategoriesPage {
        shell: Shell::of(console, "categories"),
        env,
        csrf: console.session.csrf_token.clone(),
        saved,
        rows: all
            .into_iter()
            .map(|c| CategoryRow {
                delete: format!("/{env}/categories/{}/delete", segment(&c.slug)),
                locked: c
                    .locked_channels
                    .iter()
                    .map(|ch| ch.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                default: c.default_preference.as_str(),
                section: c.section.unwrap_or_default(),
                visible: c.visible,
                slug: c.slug,
                name: c.name,
                description: c.description,
            })
            .collect(),
        channels: PREFERENCE_CHANNELS.iter().map(|c| c.as_str()).collect(),
        values,
        errors,
    })
}

/// `GET /{env}/categories`.
pub async fn list(State(app): State<App>, console: Console, uri: Uri) -> Response {
    let saved = match uri.query().unwrap_or("") {
        q if q.contains("saved=added") => Some("Category created."),
        q if q.contains("saved=deleted") => Some("Category deleted."),
        _ => None,
    };
    match page(&app, &console, saved, BTreeMap::new(), BTreeMap::new()).await {
        Ok(p) => html(StatusCode::OK, p.render()),
        Err(e) => failure(Shell::of(&console, "categories"), e),
    }
}

/// `POST /{env}/categories`: slug, name, section, description, default preference and locked
/// channels, as `POST /v1/category/` takes them; refusals beside their field.
pub async fn create(State(app): State<App>, posted: Posted) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let f = &posted.fields;
    let values: BTreeMap<&'static str, String> = FIELDS.iter().map(|k| (*k, f.text(k))).collect();
    let mut body = serde_json::Map::new();
    for (k, v) in &values {
        if !v.is_empty() {
            body.insert((*k).into(), json!(v));
        }
    }
    let locked: Vec<Value> = f
        .all("locked")
        .filter_map(Channel::from_name)
        .map(|c| json!(c.as_str()))
        .collect();
    if !locked.is_empty() {
        body.insert("locked_channels".into(), Value::Array(locked));
    }
    let result = match crate::api::preferences::parse_category(&Value::Object(body)) {
        Ok(category) => {
            preferences::create_category(app.store.as_ref(), &console.ctx, category).await
        }
        Err(e) => Err(Error::Invalid(e)),
    };
    match result {
        Ok(_) => redirect(&format!("/{}/categories?saved=added", console.env)),
        Err(Error::Invalid(e) | Error::Conflict(e)) => {
            // The slug's errors (`category`, `slug`) and any other go beside the slug.
            let errors = super::error_beside(&e, &FIELDS, "category");
            match page(&app, &console, None, values, errors).await {
                Ok(p) => html(StatusCode::BAD_REQUEST, p.render()),
                Err(e) => failure(Shell::of(&console, "categories"), e),
            }
        }
        Err(e) => failure(Shell::of(&console, "categories"), e),
    }
}

/// `POST /{env}/categories/{slug}/delete`: users' choices for it stay on their profiles, inert.
pub async fn delete(
    State(app): State<App>,
    Path(params): Path<Vec<(String, String)>>,
    posted: Posted,
) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let slug = super::path_param(params, "slug");
    match preferences::delete_category(app.store.as_ref(), &console.ctx, &slug).await {
        Ok(()) => redirect(&format!("/{}/categories?saved=deleted", console.env)),
        Err(e) => failure(Shell::of(&console, "categories"), e),
    }
}
