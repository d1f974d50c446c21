//! The properties list (`/{env}/properties`): every property with its kind, type and how many
//! users carry it, the "See in Table" toggle, and the "Add property" form. Through
//! `herald_core::service::properties`, as `/v1/property/`.

use super::session::{Console, Posted};
use super::{failure, html, redirect, segment, Shell};
use crate::App;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use herald_core::property::{PropertyAttributes, PropertyDeclaration, DECLARABLE_TYPES};
use herald_core::service::{properties, Error};
use std::collections::BTreeMap;

#[derive(Template)]
#[template(path = "dashboard/properties.html")]
struct PropertiesPage {
    shell: Shell,
    env: &'static str,
    csrf: String,
    saved: Option<&'static str>,
    rows: Vec<PropertyRow>,
    types: Vec<&'static str>,
    values: BTreeMap<&'static str, String>,
    errors: BTreeMap<String, String>,
}

impl PropertiesPage {
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }
}

struct PropertyRow {
    key: String,
    action: String,
    label: String,
    description: String,
    kind: &'static str,
    types: String,
    users: u64,
    shown: bool,
}

async fn page(
    app: &App,
    console: &Console,
    saved: Option<&'static str>,
    values: BTreeMap<&'static str, String>,
    errors: BTreeMap<String, String>,
) -> Result<PropertiesPage, Error> {
    let all = properties::list(app.store.as_ref(), &console.ctx).await?;
    let env = console.env.as_str();
    Ok(PropertiesPage {
        shell: Shell::of(console, "properties"),
        env,
        csrf: console.session.csrf_token.clone(),
        saved,
        rows: all
            .iter()
            .map(|p| PropertyRow {
                key: p.record.key.clone(),
                action: format!("/{env}/properties/{}", segment(&p.record.key)),
                label: p.record.label.clone(),
                description: p.record.description.clone(),
                kind: p.record.kind.as_str(),
                types: p.types().join(", "),
                users: p.profiles,
                shown: p.record.show_in_table,
            })
            .collect(),
        types: DECLARABLE_TYPES.to_vec(),
        values,
        errors,
    })
}

/// `GET /{env}/properties`.
pub async fn list(State(app): State<App>, console: Console, uri: Uri) -> Response {
    let saved = match uri.query().unwrap_or("") {
        q if q.contains("saved=added") => Some("Property added."),
        q if q.contains("saved=1") => Some("Saved."),
        _ => None,
    };
    match page(&app, &console, saved, BTreeMap::new(), BTreeMap::new()).await {
        Ok(p) => html(StatusCode::OK, p.render()),
        Err(e) => failure(Shell::of(&console, "properties"), e),
    }
}

const ADD_FIELDS: [&str; 4] = ["key", "type", "label", "description"];

/// `POST /{env}/properties`: the "Add property" form (key, type, label, description), declared
/// as `POST /v1/property/` declares it; refusals beside their field.
pub async fn declare(State(app): State<App>, posted: Posted) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let f = &posted.fields;
    let values: BTreeMap<&'static str, String> =
        ADD_FIELDS.iter().map(|k| (*k, f.text(k))).collect();
    let optional = |k: &str| Some(values[k].clone()).filter(|v| !v.is_empty());
    let declaration = PropertyDeclaration {
        key: values["key"].clone(),
        declared_type: optional("type"),
        attributes: PropertyAttributes {
            label: optional("label"),
            description: optional("description"),
            show_in_table: None,
        },
    };
    match properties::declare(app.store.as_ref(), &console.ctx, declaration).await {
        Ok(_) => redirect(&format!("/{}/properties?saved=added", console.env)),
        Err(Error::Invalid(e) | Error::Conflict(e)) => {
            let errors = super::error_beside(&e, &ADD_FIELDS, "key");
            match page(&app, &console, None, values, errors).await {
                Ok(p) => html(StatusCode::BAD_REQUEST, p.render()),
                Err(e) => failure(Shell::of(&console, "properties"), e),
            }
        }
        Err(e) => failure(Shell::of(&console, "properties"), e),
    }
}

/// `POST /{env}/properties/{key}`: `show_in_table` = true | false; takes effect on the next
/// users page.
pub async fn update(
    State(app): State<App>,
    Path(params): Path<Vec<(String, String)>>,
    posted: Posted,
) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let key = super::path_param(params, "key");
    let show = match posted.fields.get("show_in_table") {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    let attributes = PropertyAttributes {
        label: None,
        description: None,
        show_in_table: show,
    };
    match properties::update(app.store.as_ref(), &console.ctx, &key, attributes).await {
        Ok(_) => redirect(&format!(
            "/{}/properties?saved=1#p-{}",
            console.env,
            segment(&key)
        )),
        Err(e) => failure(Shell::of(&console, "properties"), e),
    }
}
