//! `/v1/property/…`: the property registry (which properties exist, which the users table shows).

use super::error::ApiError;
use super::{Caller, JsonBody};
use crate::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::property::{self, Property, PropertyAttributes, PropertyDeclaration};
use herald_core::service::properties;
use herald_core::Invalid;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// One property: the wire's registry entry.
fn property_json(p: &Property) -> Value {
    let r = &p.record;
    json!({
        "key": r.key,
        "kind": r.kind,
        "label": r.label,
        "description": r.description,
        "show_in_table": r.show_in_table,
        "type": r.declared_type,
        "observed_types": p.observed_types(),
        "types": p.types(),
        "declared": r.declared,
        "created_at": r.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "profiles": p.profiles,
    })
}

fn object(body: &Value) -> Result<&Map<String, Value>, Invalid> {
    body.as_object()
        .ok_or_else(|| Invalid::new("", "the body must be a JSON object"))
}

/// `label`, `description`, `show_in_table`, in the order sent; with `strict`, any other key is
/// refused, else skipped.
fn attributes(obj: &Map<String, Value>, strict: bool) -> Result<PropertyAttributes, Invalid> {
    let mut a = PropertyAttributes::default();
    for (k, v) in obj {
        let text = || {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Invalid::new(k.as_str(), "must be a string"))
        };
        match k.as_str() {
            "label" => a.label = Some(text()?),
            "description" => a.description = Some(text()?),
            "show_in_table" => {
                a.show_in_table = Some(
                    v.as_bool()
                        .ok_or_else(|| Invalid::new(k.as_str(), "must be true or false"))?,
                )
            }
            _ if strict => {
                return Err(Invalid::new(
                    k.as_str(),
                    "cannot be changed (label, description and show_in_table can)",
                ))
            }
            _ => {}
        }
    }
    Ok(a)
}

/// `POST /v1/property/`: `{key, type?, label?, description?, show_in_table?}`.
fn parse_declaration(body: &Value) -> Result<PropertyDeclaration, Invalid> {
    let obj = object(body)?;
    let key = obj
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::new("key", "is required: the property's key, a string"))?;
    let declared_type = match obj.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(other) => return Err(property::not_a_type(other)),
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["key", "type", "label", "description", "show_in_table"].contains(&k.as_str()))
    {
        return Err(Invalid::new(
            unknown.as_str(),
            "is not a property attribute",
        ));
    }
    Ok(PropertyDeclaration {
        key: key.to_owned(),
        declared_type,
        attributes: attributes(obj, false)?,
    })
}

/// `PATCH /v1/property/{key}/`: any of `label`, `description`, `show_in_table`.
fn parse_patch(body: &Value) -> Result<PropertyAttributes, Invalid> {
    attributes(object(body)?, true)
}

#[utoipa::path(
    get,
    path = "/v1/property",
    operation_id = "listProperties",
    tag = "properties",
    summary = "The property registry",
    description = "General properties, channels, then every custom key a profile has carried or a caller declared, each with the number of profiles carrying it now.",
    responses(
        (status = 200, description = "Every property, built-ins first.", body = crate::api::properties::PropertyList)
    )
)]
pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let all = properties::list(app.store.as_ref(), &caller.ctx()).await?;
    Ok(Json(json!({
        "meta": { "count": all.len() },
        "results": all.iter().map(property_json).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get,
    path = "/v1/property/{key}",
    operation_id = "getProperty",
    tag = "properties",
    summary = "One property",
    params(
        ("key" = String, Path, description = "The property key; `$` may be sent as is or as %24.")
    ),
    responses(
        (status = 200, description = "The property.", body = crate::api::properties::PropertyView, example = json!({"key": "plan", "kind": "custom", "label": "plan", "description": "", "show_in_table": false, "type": null, "observed_types": ["string"], "types": ["string"], "declared": false, "created_at": "2026-11-28T23:23:46.226Z", "profiles": 2})),
        (status = 404, description = "Never seen in this environment.", body = crate::api::doc::ErrorBody, example = json!({"code": 404, "error_code": "not_found", "type": "NotFound", "message": "property 'nope' not found", "detail": "property 'nope' not found", "field": null, "error": {"type": "not_found", "message": "property 'nope' not found"}}))
    )
)]
pub async fn get(
    State(app): State<App>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = properties::get(app.store.as_ref(), &caller.ctx(), &key).await?;
    Ok(Json(property_json(&p)))
}

#[utoipa::path(
    post,
    path = "/v1/property",
    operation_id = "declareProperty",
    tag = "properties",
    summary = "Declare a custom property",
    request_body(content = crate::api::properties::DeclareBody, example = json!({"key": "renews_at", "type": "datetime", "label": "Renews at", "description": "Next renewal date", "show_in_table": true})),
    responses(
        (status = 201, description = "The property.", body = crate::api::properties::PropertyView, example = json!({"key": "renews_at", "kind": "custom", "label": "Renews at", "description": "Next renewal date", "show_in_table": true, "type": "datetime", "observed_types": [], "types": ["datetime"], "declared": true, "created_at": "2026-11-28T23:24:16.205Z", "profiles": 0})),
        (status = 400, response = crate::api::doc::BadRequest),
        (status = 409, description = "The key exists already (change it with PATCH).", body = crate::api::doc::ErrorBody, example = json!({"code": 409, "error_code": "conflict", "type": "Conflict", "message": "key: property 'plan' exists already; change it with PATCH", "detail": "key: property 'plan' exists already; change it with PATCH", "field": "key", "error": {"type": "conflict", "message": "key: property 'plan' exists already; change it with PATCH"}}))
    )
)]
pub async fn declare(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let declaration = parse_declaration(&body)?;
    let p = properties::declare(app.store.as_ref(), &caller.ctx(), declaration).await?;
    Ok((StatusCode::CREATED, Json(property_json(&p))).into_response())
}

#[utoipa::path(
    patch,
    path = "/v1/property/{key}",
    operation_id = "updateProperty",
    tag = "properties",
    summary = "Change label, description or table visibility",
    description = "On custom and built-in properties alike. Any other attribute is a 400.",
    params(
        ("key" = String, Path, description = "The property key; `$` may be sent as is or as %24.")
    ),
    request_body(content = crate::api::properties::UpdateBody, example = json!({"show_in_table": true})),
    responses(
        (status = 200, description = "The property.", body = crate::api::properties::PropertyView),
        (status = 400, description = "An attribute that cannot be changed, or a bad value.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "type: cannot be changed (label, description and show_in_table can)", "detail": "type: cannot be changed (label, description and show_in_table can)", "field": "type", "error": {"type": "validation_error", "message": "type: cannot be changed (label, description and show_in_table can)"}})),
        (status = 404, description = "No such property.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn update(
    State(app): State<App>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let attributes = parse_patch(&body)?;
    let p = properties::update(app.store.as_ref(), &caller.ctx(), &key, attributes).await?;
    Ok(Json(property_json(&p)))
}

#[utoipa::path(
    delete,
    path = "/v1/property/{key}",
    operation_id = "deleteProperty",
    tag = "properties",
    summary = "Delete an unused custom property",
    params(
        ("key" = String, Path, description = "The property key; `$` may be sent as is or as %24.")
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such property.", body = crate::api::doc::ErrorBody),
        (status = 409, description = "Built in, or still carried by profiles.", body = crate::api::doc::ErrorBody, example = json!({"code": 409, "error_code": "conflict", "type": "Conflict", "message": "key: 2 profile(s) still carry 'plan'; unset it on them first", "detail": "key: 2 profile(s) still carry 'plan'; unset it on them first", "field": "key", "error": {"type": "conflict", "message": "key: 2 profile(s) still carry 'plan'; unset it on them first"}}))
    )
)]
pub async fn delete(
    State(app): State<App>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    properties::delete(app.store.as_ref(), &caller.ctx(), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn declarations_are_parsed() {
        let ok = parse_declaration(
            &json!({"key": "plan", "type": "string", "label": "Plan", "show_in_table": true}),
        )
        .unwrap()
        .into_record(Utc::now())
        .unwrap();
        assert_eq!(
            (
                ok.declared,
                ok.declared_type.as_deref(),
                ok.show_in_table,
                ok.label.as_str()
            ),
            (true, Some("string"), true, "Plan")
        );
        for (body, field) in [
            (json!({"type": "string"}), "key"),
            (json!({"key": 3}), "key"),
            (json!({"key": "$plan"}), "key"),
            (json!({"key": "ss_plan"}), "key"),
            (json!({"key": "name"}), "key"),
            (json!({"key": "plan", "type": "date"}), "type"),
            (json!({"key": "plan", "type": 3}), "type"),
            (
                json!({"key": "plan", "show_in_table": "yes"}),
                "show_in_table",
            ),
            (json!({"key": "plan", "label": "x".repeat(101)}), "label"),
            (json!({"key": "plan", "colour": "red"}), "colour"),
            (json!(["plan"]), ""),
        ] {
            let err = parse_declaration(&body)
                .and_then(|d| d.into_record(Utc::now()))
                .unwrap_err();
            assert_eq!(err.field, field, "{body}");
        }
        assert_eq!(
            parse_declaration(&json!({"key": "plan", "type": 3}))
                .unwrap_err()
                .rule,
            "3 is not a type (string, number, boolean, object, array, datetime)"
        );
        assert_eq!(
            parse_patch(&json!({"key": "other"})).unwrap_err().field,
            "key"
        );
        assert_eq!(
            parse_patch(&json!({"label": "Plan", "show_in_table": false})).unwrap(),
            PropertyAttributes {
                label: Some("Plan".into()),
                description: None,
                show_in_table: Some(false)
            }
        );
    }

    #[test]
    fn properties_render_as_before() {
        let mut record = property::discovered("plan", 0, chrono::DateTime::<Utc>::UNIX_EPOCH);
        record.declared = true;
        record.declared_type = Some("string".into());
        let p = Property {
            record,
            profiles: 2,
        };
        assert_eq!(
            serde_json::to_string(&property_json(&p)).unwrap(),
            concat!(
                r#"{"key":"plan","kind":"custom","label":"plan","description":"","#,
                r#""show_in_table":false,"type":"string","observed_types":[],"types":["string"],"#,
                r#""declared":true,"created_at":"1970-01-01T00:00:00.000Z","profiles":2}"#
            )
        );
    }
}

/// `/v1/property/…`, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list, declare))
        .routes(routes!(get, update, delete))
}

/// A property of the registry: declared, built in, or observed on profiles.
#[derive(ToSchema)]
#[schema(as = Property, example = json!({"key": "plan", "kind": "custom", "label": "plan", "description": "", "show_in_table": false, "type": null, "observed_types": ["string"], "types": ["string"], "declared": false, "created_at": "2026-11-28T23:23:46.226Z", "profiles": 2}))]
#[allow(dead_code)] // documents the shape this module renders
pub struct PropertyView {
    /// A custom key as written on profiles, or a built-in: `name`, `country`, `$timezone`,
    /// `$preferred_language`, `$locale`, `$status`, `$created_at`, `$updated_at`, a channel key
    /// (`$email`, ...).
    key: String,
    #[schema(inline)]
    kind: PropertyKind,
    label: String,
    description: String,
    show_in_table: bool,
    /// The declared type, if any.
    #[serde(rename = "type")]
    #[schema(inline, required = true)]
    declared_type: Option<PropertyType>,
    /// JSON types seen on profiles: string, number, boolean, object, array, null, datetime
    /// (strings holding an RFC 3339 time).
    observed_types: Vec<String>,
    /// Declared and observed types.
    types: Vec<String>,
    declared: bool,
    #[schema(format = DateTime)]
    created_at: String,
    /// Profiles carrying it now.
    profiles: i64,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PropertyKind {
    General,
    Channel,
    Custom,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PropertyType {
    String,
    Number,
    Boolean,
    Object,
    Array,
    Datetime,
}

/// Every property, built-ins first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PropertyList {
    #[schema(inline, required = false)]
    meta: Count,
    #[schema(required = false)]
    results: Vec<PropertyView>,
}

/// How many results a listing holds.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Count {
    #[schema(required = false)]
    count: i64,
}

/// `POST /v1/property/`: declares a custom property.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DeclareBody {
    /// A custom key: not starting with $ or ss_, not built in.
    #[schema(max_length = 128)]
    key: String,
    #[serde(rename = "type")]
    #[schema(inline, required = false)]
    declared_type: PropertyType,
    #[schema(max_length = 100, required = false)]
    label: String,
    #[schema(max_length = 1000, required = false)]
    description: String,
    #[schema(required = false)]
    show_in_table: bool,
}

/// `PATCH /v1/property/{key}/`: the attributes that can change.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpdateBody {
    #[schema(max_length = 100, required = false)]
    label: String,
    #[schema(max_length = 1000, required = false)]
    description: String,
    #[schema(required = false)]
    show_in_table: bool,
}
