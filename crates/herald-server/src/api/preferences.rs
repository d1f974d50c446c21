//! `/v1/category/…` and `/v1/user/{id}/preference/…` (wire spec §2.5), and the bulk forms.
//! `tenant_id` and `locale` query parameters are accepted and ignored: Herald has no tenants yet.

use super::error::ApiError;
use super::{query_pairs, Caller, JsonBody, UserId};
use crate::App;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::channel::Channel;
use herald_core::ids::DistinctId;
use herald_core::preference::{
    self, Category, CategoryAttributes, CategoryView, ChannelRestriction, ChannelView, Choice,
    ChoiceRequest, DefaultPreference, UserView,
};
use herald_core::service::preferences::{
    self, BulkChange, BulkOutcome, BulkReset, BulkUsers, CategoryPage, UserFailure,
    MAX_PREFERENCE_EDIT_BYTES,
};
use herald_core::Invalid;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

// ---- The wire, rendered ----------------------------------------------------------------------

fn category_json(c: &Category) -> Value {
    json!({
        "category": c.slug,
        "name": c.name,
        "description": c.description,
        "section": c.section,
        "default_preference": c.default_preference.as_str(),
        "locked_channels": c.locked_channels.iter().map(|ch| ch.as_str()).collect::<Vec<_>>(),
        "visible": c.visible,
    })
}

/// A category as one user sees it: the wire's Category object.
fn view_json(v: &CategoryView) -> Value {
    let channels: Vec<Value> = v
        .channels
        .iter()
        .map(|c| {
            json!({
                "channel": c.channel.as_str(),
                "preference": c.preference.as_str(),
                "is_editable": c.is_editable,
            })
        })
        .collect();
    json!({
        "name": v.name,
        "category": v.slug,
        "description": v.description,
        "section": v.section,
        "original_preference": v.default_preference.as_str(),
        "preference": v.preference.as_str(),
        "is_editable": v.is_editable,
        "channels": channels,
    })
}

/// The global channel preferences, as `[{channel, is_restricted}]`.
fn channels_json(channels: &[ChannelView]) -> Value {
    Value::Array(
        channels
            .iter()
            .map(|c| json!({"channel": c.channel.as_str(), "is_restricted": c.is_restricted}))
            .collect(),
    )
}

fn user_view_json(v: &UserView) -> Value {
    let sections: Vec<Value> = v
        .sections
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "subcategories": s.categories.iter().map(view_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "sections": sections,
        "channel_preferences": channels_json(&v.channels),
    })
}

fn page_json(page: &CategoryPage, limit: usize, offset: usize) -> Value {
    json!({
        "meta": {"count": page.count, "limit": limit, "offset": offset},
        "results": page.categories.iter().map(view_json).collect::<Vec<_>>(),
    })
}

/// One result per user. A storage fault for a user is logged and reported as `internal error`:
/// its text is Herald's, not the caller's.
fn bulk_json(outcome: &BulkOutcome) -> Value {
    let results: Vec<Value> = outcome
        .results
        .iter()
        .map(|(id, r)| match r {
            Ok(()) => json!({"distinct_id": id, "status": "success"}),
            Err(UserFailure::Refused(message)) => {
                json!({"distinct_id": id, "status": "error", "error": message})
            }
            Err(UserFailure::Internal(e)) => {
                tracing::error!(distinct_id = %id, error = %e, "bulk preference change failed");
                json!({"distinct_id": id, "status": "error", "error": "internal error"})
            }
        })
        .collect();
    let failed = outcome.failed();
    json!({"success": failed == 0, "failed": failed, "results": results})
}

// ---- The wire, parsed ------------------------------------------------------------------------

/// Refuses a change over [`MAX_PREFERENCE_EDIT_BYTES`] and any key of `obj` not in `allowed`.
fn checked<'a>(
    field: &str,
    v: &'a Value,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, Invalid> {
    let obj = v
        .as_object()
        .ok_or_else(|| Invalid::new(field, "must be a JSON object"))?;
    let at = |k: &str| {
        if field.is_empty() {
            k.to_owned()
        } else {
            format!("{field}.{k}")
        }
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Invalid::new(
            at(k),
            format!("is not a field of this request ({})", allowed.join(", ")),
        ));
    }
    let size = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "distinct_ids")
        .map(|(k, v)| k.len() + serde_json::to_vec(v).map_or(0, |b| b.len()))
        .sum::<usize>();
    if size > MAX_PREFERENCE_EDIT_BYTES {
        return Err(Invalid::new(
            if field.is_empty() { "body" } else { field },
            format!("a preference change may carry at most {MAX_PREFERENCE_EDIT_BYTES} bytes, this one has {size}"),
        ));
    }
    Ok(obj)
}

const CHOICE_FIELDS: [&str; 3] = ["preference", "opt_out_channels", "opt_in_channels"];

fn channel(field: &str, v: &Value) -> Result<Channel, Invalid> {
    match v.as_str() {
        Some(name) => preference::channel_named(field, name),
        None => Err(preference::not_a_channel(field, v)),
    }
}

/// A list of channels; absent or `null` is none.
fn channel_list(field: &str, v: Option<&Value>) -> Result<BTreeSet<Channel>, Invalid> {
    match v {
        None | Some(Value::Null) => Ok(BTreeSet::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, c)| channel(&format!("{field}[{i}]"), c))
            .collect(),
        Some(other) => Err(Invalid::new(
            field,
            format!("must be a list of channels, got {other}"),
        )),
    }
}

/// `{"preference": "opt_in"|"opt_out", "opt_out_channels": [..]|null, "opt_in_channels": [..]?}`.
fn choice_request(obj: &Map<String, Value>) -> Result<ChoiceRequest, Invalid> {
    let v = obj
        .get("preference")
        .ok_or_else(|| Invalid::new("preference", "is required: opt_in or opt_out"))?;
    let preference = v
        .as_str()
        .and_then(Choice::from_name)
        .ok_or_else(|| Invalid::new("preference", format!("must be opt_in or opt_out, got {v}")))?;
    Ok(ChoiceRequest {
        preference,
        opt_out_channels: obj
            .get("opt_out_channels")
            .map(|v| channel_list("opt_out_channels", Some(v)))
            .transpose()?,
        opt_in_channels: channel_list("opt_in_channels", obj.get("opt_in_channels"))?,
    })
}

/// Refuses unknown fields in `channel_preferences` items.
fn channel_items(list: Option<&Value>) -> Result<(), Invalid> {
    if let Some(Value::Array(items)) = list {
        for (i, item) in items.iter().enumerate() {
            checked(
                &format!("channel_preferences[{i}]"),
                item,
                &["channel", "is_restricted"],
            )?;
        }
    }
    Ok(())
}

/// `channel_preferences`: `[{"channel": "email", "is_restricted": true}]`.
fn restrictions(list: Option<&Value>) -> Result<Vec<ChannelRestriction>, Invalid> {
    let list = list.and_then(Value::as_array).ok_or_else(|| {
        Invalid::new(
            "channel_preferences",
            "is required: a list of {\"channel\", \"is_restricted\"}",
        )
    })?;
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("channel_preferences[{i}]");
            let channel = channel(
                &format!("{field}.channel"),
                item.get("channel").unwrap_or(&Value::Null),
            )?;
            let restricted = item
                .get("is_restricted")
                .and_then(Value::as_bool)
                .ok_or_else(|| {
                    Invalid::new(format!("{field}.is_restricted"), "must be true or false")
                })?;
            Ok(ChannelRestriction {
                channel,
                restricted,
            })
        })
        .collect()
}

/// `distinct_ids` of a bulk call.
fn bulk_users(body: &Map<String, Value>) -> Result<BulkUsers, Invalid> {
    let list = body
        .get("distinct_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| Invalid::new("distinct_ids", "is required: a list of distinct_ids"))?;
    BulkUsers::check_len(list.len())?;
    let ids = list
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("distinct_ids[{i}]");
            let raw = v
                .as_str()
                .ok_or_else(|| Invalid::new(&field, "must be a string"))?;
            DistinctId::parse(raw).map_err(|e| Invalid::new(&field, e.rule))
        })
        .collect::<Result<Vec<_>, _>>()?;
    BulkUsers::new(ids)
}

/// `{distinct_ids, channel_preferences?, categories?: [{category, preference, opt_out_channels?,
/// opt_in_channels?}]}`.
fn bulk_change(body: &Value) -> Result<BulkChange, Invalid> {
    let obj = checked(
        "",
        body,
        &["distinct_ids", "categories", "channel_preferences"],
    )?;
    channel_items(obj.get("channel_preferences"))?;
    let users = bulk_users(obj)?;
    let mut categories = Vec::new();
    if let Some(list) = obj.get("categories") {
        let list = list
            .as_array()
            .ok_or_else(|| Invalid::new("categories", "must be a list"))?;
        for (i, item) in list.iter().enumerate() {
            let at = format!("categories[{i}]");
            let mut fields = CHOICE_FIELDS.to_vec();
            fields.push("category");
            let item = checked(&at, item, &fields)?;
            let slug = item
                .get("category")
                .and_then(Value::as_str)
                .ok_or_else(|| Invalid::new(format!("{at}.category"), "is required"))?;
            let request = choice_request(item).map_err(|e| e.within(&at))?;
            categories.push((slug.to_owned(), request));
        }
    }
    let channels = obj
        .get("channel_preferences")
        .map(|c| restrictions(Some(c)))
        .transpose()?;
    BulkChange::new(users, categories, channels)
}

/// `{distinct_ids, reset_channel_preferences, reset_categories}`.
fn bulk_reset_request(body: &Value) -> Result<BulkReset, Invalid> {
    let obj = checked(
        "",
        body,
        &[
            "distinct_ids",
            "reset_channel_preferences",
            "reset_categories",
        ],
    )?;
    let users = bulk_users(obj)?;
    let flag = |k: &str| -> Result<bool, Invalid> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Invalid::new(k, "must be true or false")),
        }
    };
    BulkReset::new(
        users,
        flag("reset_channel_preferences")?,
        flag("reset_categories")?,
    )
}

/// Category attributes, in the order sent; `patching` refuses the slug.
fn category_attributes(
    obj: &Map<String, Value>,
    patching: bool,
) -> Result<CategoryAttributes, Invalid> {
    let mut a = CategoryAttributes::default();
    for (k, v) in obj {
        let text = || -> Result<String, Invalid> {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Invalid::new(k.as_str(), "must be a string"))
        };
        match k.as_str() {
            "category" | "slug" if !patching => {}
            "name" => a.name = Some(text()?),
            "description" => a.description = Some(text()?),
            "section" => {
                a.section = Some(match v {
                    Value::Null => None,
                    _ => Some(text()?),
                })
            }
            "default_preference" => {
                a.default_preference = Some(
                    v.as_str()
                        .and_then(DefaultPreference::from_name)
                        .ok_or_else(|| {
                            Invalid::new(
                                k.as_str(),
                                format!("must be opt_in, opt_out or mandatory, got {v}"),
                            )
                        })?,
                )
            }
            "locked_channels" => a.locked_channels = Some(channel_list(k, Some(v))?),
            "visible" => {
                a.visible = Some(
                    v.as_bool()
                        .ok_or_else(|| Invalid::new(k.as_str(), "must be true or false"))?,
                )
            }
            _ => return Err(Invalid::new(k.as_str(), "is not a category attribute")),
        }
    }
    Ok(a)
}

fn object(body: &Value) -> Result<&Map<String, Value>, Invalid> {
    body.as_object()
        .ok_or_else(|| Invalid::new("", "the body must be a JSON object"))
}

/// `POST /v1/category/` and the configuration file: `{category | slug, name, description?,
/// section?, default_preference, locked_channels?, visible?}`.
pub(crate) fn parse_category(body: &Value) -> Result<Category, Invalid> {
    let obj = object(body)?;
    let slug = obj
        .get("category")
        .or_else(|| obj.get("slug"))
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::new("category", "is required: the category's slug"))?;
    let slug = preference::parse_slug(slug)?;
    Category::declare(&slug, category_attributes(obj, false)?)
}

/// `PATCH /v1/category/{slug}/`.
fn parse_category_patch(body: &Value) -> Result<CategoryAttributes, Invalid> {
    category_attributes(object(body)?, true)
}

// ---- Handlers --------------------------------------------------------------------------------

/// `show_opt_out_channels` (default true), `limit` (default 100, at most 1000), `offset`.
struct PreferenceQuery {
    show_opt_out_channels: bool,
    limit: usize,
    offset: usize,
}

impl PreferenceQuery {
    fn parse(uri: &Uri) -> Result<Self, ApiError> {
        let pairs: HashMap<String, String> = query_pairs(uri).into_iter().collect();
        let flag = pairs
            .get("show_opt_out_channels")
            .map(|v| v.trim().to_ascii_lowercase());
        let show_opt_out_channels = match flag.as_deref() {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "show_opt_out_channels",
                    format!("must be true or false, got '{other}'"),
                ))
            }
        };
        let number = |k: &str, default: usize, max: usize| -> Result<usize, ApiError> {
            match pairs.get(k) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            k,
                            format!("must be an integer from 0 to {max}, got '{v}'"),
                        )
                    }),
            }
        };
        Ok(PreferenceQuery {
            show_opt_out_channels,
            limit: number("limit", 100, 1000)?,
            offset: number("offset", 0, usize::MAX)?,
        })
    }
}

#[utoipa::path(
    get,
    path = "/v1/category",
    operation_id = "listCategories",
    tag = "preferences",
    summary = "Notification categories",
    responses(
        (status = 200, description = "All categories of the environment.", body = crate::api::preferences::CategoryList)
    )
)]
pub async fn list_categories(
    State(app): State<App>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let all = preferences::list_categories(app.store.as_ref(), &caller.ctx()).await?;
    Ok(Json(json!({
        "meta": {"count": all.len()},
        "results": all.iter().map(category_json).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    post,
    path = "/v1/category",
    operation_id = "createCategory",
    tag = "preferences",
    summary = "Create a category",
    request_body(content = crate::api::preferences::NewCategory, example = json!({"category": "newsletter", "name": "Newsletter", "section": "Marketing", "default_preference": "opt_in"})),
    responses(
        (status = 201, description = "The category.", body = crate::api::preferences::CategoryDefinition, example = json!({"category": "newsletter", "name": "Newsletter", "description": "", "section": "Marketing", "default_preference": "opt_in", "locked_channels": [], "visible": true})),
        (status = 400, description = "A bad slug or attribute, or an unknown attribute.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "category: 'Bad Slug!' is not a category slug (1-64 of a-z, 0-9, - and _)", "detail": "category: 'Bad Slug!' is not a category slug (1-64 of a-z, 0-9, - and _)", "field": "category", "error": {"type": "validation_error", "message": "category: 'Bad Slug!' is not a category slug (1-64 of a-z, 0-9, - and _)"}})),
        (status = 409, description = "The slug exists already.", body = crate::api::doc::ErrorBody, example = json!({"code": 409, "error_code": "conflict", "type": "Conflict", "message": "category: category 'newsletter' exists already; change it with PATCH", "detail": "category: category 'newsletter' exists already; change it with PATCH", "field": "category", "error": {"type": "conflict", "message": "category: category 'newsletter' exists already; change it with PATCH"}}))
    )
)]
pub async fn create_category(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let category = parse_category(&body)?;
    let c = preferences::create_category(app.store.as_ref(), &caller.ctx(), category).await?;
    Ok((StatusCode::CREATED, Json(category_json(&c))).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/category/{slug}",
    operation_id = "getCategory",
    tag = "preferences",
    summary = "One category",
    params(
        ("slug" = String, Path, description = "The category slug.")
    ),
    responses(
        (status = 200, description = "The category.", body = crate::api::preferences::CategoryDefinition, example = json!({"category": "newsletter", "name": "Newsletter", "description": "", "section": "Marketing", "default_preference": "opt_in", "locked_channels": [], "visible": true})),
        (status = 404, description = "No such category.", body = crate::api::doc::ErrorBody, example = json!({"code": 404, "error_code": "not_found", "type": "NotFound", "message": "category 'nope' not found", "detail": "category 'nope' not found", "field": null, "error": {"type": "not_found", "message": "category 'nope' not found"}}))
    )
)]
pub async fn get_category(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = preferences::get_category(app.store.as_ref(), &caller.ctx(), &slug).await?;
    Ok(Json(category_json(&c)))
}

#[utoipa::path(
    patch,
    path = "/v1/category/{slug}",
    operation_id = "updateCategory",
    tag = "preferences",
    summary = "Change a category",
    description = "Any of name, description, section, default_preference, locked_channels, visible.",
    params(
        ("slug" = String, Path, description = "The category slug.")
    ),
    request_body(content = crate::api::preferences::CategoryDefinition, example = json!({"description": "Monthly news"})),
    responses(
        (status = 200, description = "The category.", body = crate::api::preferences::CategoryDefinition),
        (status = 400, response = crate::api::doc::BadRequest),
        (status = 404, description = "No such category.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn update_category(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
    JsonBody(body, _): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let attributes = parse_category_patch(&body)?;
    let c =
        preferences::update_category(app.store.as_ref(), &caller.ctx(), &slug, attributes).await?;
    Ok(Json(category_json(&c)))
}

#[utoipa::path(
    delete,
    path = "/v1/category/{slug}",
    operation_id = "deleteCategory",
    tag = "preferences",
    summary = "Delete a category",
    description = "Users' choices for it stay on their profiles, inert.",
    params(
        ("slug" = String, Path, description = "The category slug.")
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such category.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn delete_category(
    State(app): State<App>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    preferences::delete_category(app.store.as_ref(), &caller.ctx(), &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/preference",
    operation_id = "userPreferences",
    tag = "preferences",
    summary = "A user's full preferences",
    description = "Visible categories grouped by section (sections ordered by name, the unnamed first), and the global channel restrictions.",
    params(
        crate::api::doc::UserPath,
        crate::api::preferences::ShowQuery
    ),
    responses(
        (status = 200, description = "Sections and channels.", body = crate::api::preferences::UserPreferences),
        (status = 400, description = "show_opt_out_channels is not true or false.", body = crate::api::doc::ErrorBody),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
pub async fn full(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = PreferenceQuery::parse(&uri)?;
    let v = preferences::full(
        app.store.as_ref(),
        &caller.ctx(),
        &id,
        q.show_opt_out_channels,
    )
    .await?;
    Ok(Json(user_view_json(&v)))
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/preference/category",
    operation_id = "userCategories",
    tag = "preferences",
    summary = "A user's categories, by offset",
    params(
        crate::api::doc::UserPath,
        crate::api::preferences::CategoryPageQuery
    ),
    responses(
        (status = 200, description = "A page of visible categories.", body = crate::api::preferences::UserCategoryPage),
        (status = 400, description = "A query parameter does not parse.", body = crate::api::doc::ErrorBody),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
pub async fn user_categories(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = PreferenceQuery::parse(&uri)?;
    let v = preferences::categories(
        app.store.as_ref(),
        &caller.ctx(),
        &id,
        q.show_opt_out_channels,
        q.limit,
        q.offset,
    )
    .await?;
    Ok(Json(page_json(&v, q.limit, q.offset)))
}

fn category_param(params: &HashMap<String, String>) -> String {
    params.get("category").cloned().unwrap_or_default()
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/preference/category/{category}",
    operation_id = "userCategory",
    tag = "preferences",
    summary = "A user's preference for one category",
    params(
        crate::api::doc::UserPath,
        ("category" = String, Path, description = "The category slug."),
        crate::api::preferences::ShowQuery
    ),
    responses(
        (status = 200, description = "The category as the user has it.", body = crate::api::preferences::UserCategory, example = json!({"name": "Newsletter", "category": "newsletter", "description": "", "section": "Marketing", "original_preference": "opt_in", "preference": "opt_in", "is_editable": true, "channels": [{"channel": "email", "preference": "opt_in", "is_editable": true}, {"channel": "sms", "preference": "opt_out", "is_editable": true}, {"channel": "whatsapp", "preference": "opt_in", "is_editable": true}, {"channel": "androidpush", "preference": "opt_in", "is_editable": true}, {"channel": "iospush", "preference": "opt_in", "is_editable": true}, {"channel": "webpush", "preference": "opt_in", "is_editable": true}, {"channel": "slack", "preference": "opt_in", "is_editable": true}, {"channel": "ms_teams", "preference": "opt_in", "is_editable": true}, {"channel": "discord", "preference": "opt_in", "is_editable": true}, {"channel": "inbox", "preference": "opt_in", "is_editable": true}]})),
        (status = 400, description = "A query parameter does not parse.", body = crate::api::doc::ErrorBody),
        (status = 404, description = "No such user or category.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn user_category(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    Path(params): Path<HashMap<String, String>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = PreferenceQuery::parse(&uri)?;
    let slug = category_param(&params);
    let v = preferences::category(
        app.store.as_ref(),
        &caller.ctx(),
        &id,
        &slug,
        q.show_opt_out_channels,
    )
    .await?;
    Ok(Json(view_json(&v)))
}

#[utoipa::path(
    patch,
    path = "/v1/user/{id}/preference/category/{category}",
    operation_id = "chooseCategory",
    tag = "preferences",
    summary = "Opt in or out of a category, or of some of its channels",
    description = "`opt_out_channels` replaces the category's turned-off channels (omitted: kept); `opt_in_channels` turns channels back on. Recorded in history under `$preferences`.",
    params(
        crate::api::doc::UserPath,
        ("category" = String, Path, description = "The category slug."),
        ("tenant_id" = Option<String>, Query, description = "Accepted and ignored (no tenants yet)."),
        ("locale" = Option<String>, Query, description = "Accepted and ignored.")
    ),
    request_body(content = crate::api::preferences::CategoryChoice, example = json!({"preference": "opt_in", "opt_out_channels": ["sms"]})),
    responses(
        (status = 202, description = "The category as the user now has it.", body = crate::api::preferences::UserCategory, example = json!({"name": "Newsletter", "category": "newsletter", "description": "", "section": "Marketing", "original_preference": "opt_in", "preference": "opt_in", "is_editable": true, "channels": [{"channel": "email", "preference": "opt_in", "is_editable": true}, {"channel": "sms", "preference": "opt_out", "is_editable": true}, {"channel": "whatsapp", "preference": "opt_in", "is_editable": true}, {"channel": "androidpush", "preference": "opt_in", "is_editable": true}, {"channel": "iospush", "preference": "opt_in", "is_editable": true}, {"channel": "webpush", "preference": "opt_in", "is_editable": true}, {"channel": "slack", "preference": "opt_in", "is_editable": true}, {"channel": "ms_teams", "preference": "opt_in", "is_editable": true}, {"channel": "discord", "preference": "opt_in", "is_editable": true}, {"channel": "inbox", "preference": "opt_in", "is_editable": true}]})),
        (status = 400, description = "A bad preference or channel, opting out of a mandatory category, or turning off a locked channel.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "preference: 'security' is mandatory: users cannot opt out of it", "detail": "preference: 'security' is mandatory: users cannot opt out of it", "field": "preference", "error": {"type": "validation_error", "message": "preference: 'security' is mandatory: users cannot opt out of it"}})),
        (status = 404, description = "No such user or category.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn choose_category(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    Path(params): Path<HashMap<String, String>>,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let slug = category_param(&params);
    let request = choice_request(checked("", &body, &CHOICE_FIELDS)?)?;
    let v = preferences::choose(app.store.as_ref(), &caller.ctx(), &id, &slug, request).await?;
    Ok((StatusCode::ACCEPTED, Json(view_json(&v))).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/user/{id}/preference/channel_preference",
    operation_id = "userChannels",
    tag = "preferences",
    summary = "A user's global channel restrictions",
    params(
        crate::api::doc::UserPath,
        ("tenant_id" = Option<String>, Query, description = "Accepted and ignored (no tenants yet).")
    ),
    responses(
        (status = 200, description = "Every channel.", body = crate::api::preferences::ChannelPreferences),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "distinct_id: must not be empty", "detail": "distinct_id: must not be empty", "field": "distinct_id", "error": {"type": "validation_error", "message": "distinct_id: must not be empty"}})),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
pub async fn channels(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<Json<Value>, ApiError> {
    let v = preferences::channels(app.store.as_ref(), &caller.ctx(), &id).await?;
    Ok(Json(json!({"channel_preferences": channels_json(&v)})))
}

#[utoipa::path(
    patch,
    path = "/v1/user/{id}/preference/channel_preference",
    operation_id = "restrictChannels",
    tag = "preferences",
    summary = "Restrict channels to what cannot be opted out of",
    description = "Channels not listed keep their setting.",
    params(
        crate::api::doc::UserPath,
        ("tenant_id" = Option<String>, Query, description = "Accepted and ignored (no tenants yet).")
    ),
    request_body(content = crate::api::preferences::ChannelPreferences, example = json!({"channel_preferences": [{"channel": "sms", "is_restricted": true}]})),
    responses(
        (status = 202, description = "Every channel, as now set.", body = crate::api::preferences::ChannelPreferences, example = json!({"channel_preferences": [{"channel": "email", "is_restricted": false}, {"channel": "sms", "is_restricted": true}, {"channel": "whatsapp", "is_restricted": false}, {"channel": "androidpush", "is_restricted": false}, {"channel": "iospush", "is_restricted": false}, {"channel": "webpush", "is_restricted": false}, {"channel": "slack", "is_restricted": false}, {"channel": "ms_teams", "is_restricted": false}, {"channel": "discord", "is_restricted": false}, {"channel": "inbox", "is_restricted": false}]})),
        (status = 400, response = crate::api::doc::BadRequest),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
pub async fn restrict_channels(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let obj = checked("", &body, &["channel_preferences"])?;
    channel_items(obj.get("channel_preferences"))?;
    let list = restrictions(obj.get("channel_preferences"))?;
    let v = preferences::restrict(app.store.as_ref(), &caller.ctx(), &id, list).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"channel_preferences": channels_json(&v)})),
    )
        .into_response())
}

#[utoipa::path(
    patch,
    path = "/v1/bulk/subscriber/preference",
    operation_id = "bulkPreferences",
    tag = "preferences",
    summary = "Change preferences of up to 1000 users",
    description = "The changes are validated once (400, or 404 for an unknown category, and nothing applied), then applied to each user all or nothing.",
    request_body(content = crate::api::preferences::BulkPreferenceBody, example = json!({"distinct_ids": ["ada", "ghost"], "categories": [{"category": "newsletter", "preference": "opt_out"}], "channel_preferences": [{"channel": "sms", "is_restricted": true}]})),
    responses(
        (status = 202, description = "One result per user.", body = crate::api::preferences::BulkPreferenceResult),
        (status = 400, response = crate::api::doc::BadRequest),
        (status = 404, description = "A category that does not exist.", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn bulk_update(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let change = bulk_change(&body)?;
    let v = preferences::bulk_update(app.store.as_ref(), &caller.ctx(), change).await?;
    Ok((StatusCode::ACCEPTED, Json(bulk_json(&v))).into_response())
}

#[utoipa::path(
    patch,
    path = "/v1/bulk/subscriber/preference/reset",
    operation_id = "bulkResetPreferences",
    tag = "preferences",
    summary = "Reset preferences of up to 1000 users",
    description = "Back to the categories' defaults and/or unrestricted channels.",
    request_body(content = crate::api::preferences::BulkResetBody, example = json!({"distinct_ids": ["ada"], "reset_categories": true, "reset_channel_preferences": true})),
    responses(
        (status = 202, description = "One result per user.", body = crate::api::preferences::BulkPreferenceResult, example = json!({"success": true, "failed": 0, "results": [{"distinct_id": "ada", "status": "success"}]})),
        (status = 400, response = crate::api::doc::BadRequest)
    )
)]
pub async fn bulk_reset(
    State(app): State<App>,
    caller: Caller,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let reset = bulk_reset_request(&body)?;
    let v = preferences::bulk_reset(app.store.as_ref(), &caller.ctx(), reset).await?;
    Ok((StatusCode::ACCEPTED, Json(bulk_json(&v))).into_response())
}

#[cfg(test)]
mod tests {
    //! The wire's shape onto core's types: field paths as callers see them. (The rules
    //! themselves are tested in herald-core.)
    use super::*;
    use herald_core::preference::Preferences;

    fn category(default: DefaultPreference, locked: &[Channel]) -> Category {
        Category {
            slug: "news".into(),
            name: "News".into(),
            description: String::new(),
            section: None,
            default_preference: default,
            locked_channels: locked.iter().copied().collect(),
            visible: true,
        }
    }

    /// `PATCH …/category/{slug}/` as the handler runs it, on `prefs`.
    fn choose(prefs: &mut Preferences, c: &Category, body: &Value) -> Result<(), Invalid> {
        choice_request(checked("", body, &CHOICE_FIELDS)?)?
            .for_category(c)?
            .apply(prefs)
    }

    #[test]
    fn category_choices_are_parsed() {
        let news = category(DefaultPreference::OptIn, &[Channel::Inbox]);
        let mut prefs = Preferences::default();
        choose(
            &mut prefs,
            &news,
            &json!({"preference": "opt_in", "opt_out_channels": ["email", "sms"]}),
        )
        .unwrap();
        choose(
            &mut prefs,
            &news,
            &json!({"preference": "opt_in", "opt_in_channels": ["sms"]}),
        )
        .unwrap();
        let c = &prefs.categories["news"];
        assert_eq!(
            (
                c.preference,
                c.opt_out_channels.iter().copied().collect::<Vec<_>>()
            ),
            (Choice::OptIn, vec![Channel::Email])
        );
        for (body, field) in [
            (json!({"preference": "maybe"}), "preference"),
            (json!({}), "preference"),
            (
                json!({"preference": "opt_in", "opt_out_channels": ["pigeon"]}),
                "opt_out_channels[0]",
            ),
            (
                json!({"preference": "opt_in", "opt_out_channels": [3]}),
                "opt_out_channels[0]",
            ),
            (
                json!({"preference": "opt_in", "opt_out_channels": ["inbox"]}),
                "opt_out_channels",
            ),
            (
                json!({"preference": "opt_in", "opt_out_channels": "email"}),
                "opt_out_channels",
            ),
            (json!({"preference": "opt_in", "note": 1}), "note"),
            (json!(["opt_in"]), ""),
        ] {
            let before = prefs.clone();
            assert_eq!(
                choose(&mut prefs, &news, &body).unwrap_err().field,
                field,
                "{body}"
            );
            assert_eq!(prefs, before, "a refused choice changes nothing");
        }
        assert_eq!(
            choose(&mut prefs, &news, &json!({"preference": "maybe"}))
                .unwrap_err()
                .to_string(),
            "preference: must be opt_in or opt_out, got \"maybe\""
        );
        assert_eq!(
            choose(&mut prefs, &news, &json!({"preference": "opt_in", "opt_out_channels": [3]}))
                .unwrap_err()
                .rule,
            "3 is not a channel (email, sms, whatsapp, androidpush, iospush, webpush, slack, ms_teams, discord, inbox)"
        );
        let err = choose(
            &mut prefs,
            &category(DefaultPreference::Mandatory, &[]),
            &json!({"preference": "opt_out"}),
        )
        .unwrap_err();
        assert!(err.rule.contains("mandatory"), "{}", err.rule);
    }

    #[test]
    fn channel_restrictions_and_wire_shapes() {
        let mut prefs = Preferences::default();
        let list = restrictions(Some(&json!([{"channel": "sms", "is_restricted": true}, {"channel": "email", "is_restricted": false}]))).unwrap();
        preference::restrict(&mut prefs, &list);
        assert!(prefs.restricted_channels.contains(&Channel::Sms));
        for (list, field) in [
            (
                json!([{"channel": "sms"}]),
                "channel_preferences[0].is_restricted",
            ),
            (
                json!([{"channel": "fax", "is_restricted": true}]),
                "channel_preferences[0].channel",
            ),
            (
                json!([{"is_restricted": true}]),
                "channel_preferences[0].channel",
            ),
            (json!({"channel": "sms"}), "channel_preferences"),
        ] {
            assert_eq!(
                restrictions(Some(&list)).unwrap_err().field,
                field,
                "{list}"
            );
        }
        assert_eq!(
            channel_items(Some(
                &json!([{"channel": "sms", "is_restricted": true, "why": 1}])
            ))
            .unwrap_err()
            .field,
            "channel_preferences[0].why"
        );
        let wire = channels_json(&preference::channel_views(&prefs));
        assert_eq!(wire[1], json!({"channel": "sms", "is_restricted": true}));
        let news = category(DefaultPreference::OptIn, &[]);
        choose(
            &mut prefs,
            &news,
            &json!({"preference": "opt_in", "opt_out_channels": ["email"]}),
        )
        .unwrap();
        let cat = view_json(&CategoryView::of(&news, &prefs, true));
        assert_eq!(
            serde_json::to_string(&cat).unwrap(),
            concat!(
                r#"{"name":"News","category":"news","description":"","section":null,"#,
                r#""original_preference":"opt_in","preference":"opt_in","is_editable":true,"channels":["#,
                r#"{"channel":"email","preference":"opt_out","is_editable":true},"#,
                r#"{"channel":"sms","preference":"opt_in","is_editable":true},"#,
                r#"{"channel":"whatsapp","preference":"opt_in","is_editable":true},"#,
                r#"{"channel":"androidpush","preference":"opt_in","is_editable":true},"#,
                r#"{"channel":"iospush","preference":"opt_in","is_editable":true},"#,
                r#"{"channel":"webpush","preference":"opt_in","is_editable":true},"#,
                r#"{"channel":"slack","preference":"opt_in","is_editable":true},"#,
                r#"{"channel":"ms_teams","preference":"opt_in","is_editable":true},"#,
                r#"{"channel":"discord","preference":"opt_in","is_editable":true},"#,
                r#"{"channel":"inbox","preference":"opt_in","is_editable":true}]}"#
            )
        );
        let hidden = view_json(&CategoryView::of(&news, &prefs, false));
        assert!(hidden["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["channel"] != "email"));
    }

    #[test]
    fn bulk_bodies_are_parsed() {
        let ok = bulk_change(&json!({
            "distinct_ids": ["ada", "bob"],
            "categories": [{"category": "news", "preference": "opt_out"}],
            "channel_preferences": [],
        }))
        .unwrap();
        assert_eq!(
            ok,
            BulkChange::new(
                BulkUsers::new(vec![
                    DistinctId::parse("ada").unwrap(),
                    DistinctId::parse("bob").unwrap()
                ])
                .unwrap(),
                vec![("news".into(), ChoiceRequest::new(Choice::OptOut))],
                Some(vec![]),
            )
            .unwrap()
        );
        let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
        for (body, field) in [
            (json!({"categories": []}), "distinct_ids"),
            (
                json!({"distinct_ids": [], "channel_preferences": []}),
                "distinct_ids",
            ),
            (
                json!({"distinct_ids": many, "channel_preferences": []}),
                "distinct_ids",
            ),
            (json!({"distinct_ids": ["a", 3]}), "distinct_ids[1]"),
            (json!({"distinct_ids": ["a", ""]}), "distinct_ids[1]"),
            (json!({"distinct_ids": ["a"]}), "categories"),
            (
                json!({"distinct_ids": ["a"], "categories": {}}),
                "categories",
            ),
            (
                json!({"distinct_ids": ["a"], "categories": [{"preference": "opt_in"}]}),
                "categories[0].category",
            ),
            (
                json!({"distinct_ids": ["a"], "categories": [{"category": "n", "preference": "no"}]}),
                "categories[0].preference",
            ),
            (
                json!({"distinct_ids": ["a"], "categories": [{"category": "n", "preference": "opt_in", "x": 1}]}),
                "categories[0].x",
            ),
            (
                json!({"distinct_ids": ["a"], "categories": [{"category": "n", "preference": "opt_in", "opt_out_channels": ["fax"]}]}),
                "categories[0].opt_out_channels[0]",
            ),
            (
                json!({"distinct_ids": ["a"], "channel_preferences": null}),
                "channel_preferences",
            ),
            (
                json!({"distinct_ids": ["a"], "channel_preferences": [{"channel": "sms", "is_restricted": 1}]}),
                "channel_preferences[0].is_restricted",
            ),
            (
                json!({"distinct_ids": ["a"], "pad": "x".repeat(20_000)}),
                "pad",
            ),
        ] {
            assert_eq!(bulk_change(&body).unwrap_err().field, field, "{body}");
        }
        let r =
            bulk_reset_request(&json!({"distinct_ids": ["a"], "reset_categories": true})).unwrap();
        assert_eq!(
            r,
            BulkReset::new(
                BulkUsers::new(vec![DistinctId::parse("a").unwrap()]).unwrap(),
                false,
                true
            )
            .unwrap()
        );
        for (body, field) in [
            (json!({"distinct_ids": ["a"]}), "reset_categories"),
            (
                json!({"distinct_ids": ["a"], "reset_categories": false, "reset_channel_preferences": null}),
                "reset_categories",
            ),
            (
                json!({"distinct_ids": ["a"], "reset_categories": "yes"}),
                "reset_categories",
            ),
            (
                json!({"distinct_ids": ["a"], "reset_categories": true, "extra": true}),
                "extra",
            ),
        ] {
            assert_eq!(
                bulk_reset_request(&body).unwrap_err().field,
                field,
                "{body}"
            );
        }
    }

    #[test]
    fn bulk_results_hide_storage_faults() {
        use herald_core::service::Error;
        use herald_core::store::StoreError;
        let id = |s: &str| DistinctId::parse(s).unwrap();
        let outcome = BulkOutcome {
            results: vec![
                (id("ada"), Ok(())),
                (
                    id("ghost"),
                    Err(UserFailure::Refused(
                        Error::user_not_found("ghost").to_string(),
                    )),
                ),
                (
                    id("bob"),
                    Err(UserFailure::Internal(Error::Store(StoreError::internal(
                        "disk I/O error at /var/lib/herald/db",
                    )))),
                ),
            ],
        };
        assert_eq!(
            bulk_json(&outcome),
            json!({"success": false, "failed": 2, "results": [
                {"distinct_id": "ada", "status": "success"},
                {"distinct_id": "ghost", "status": "error", "error": "user [distinct_id: 'ghost'] not found"},
                {"distinct_id": "bob", "status": "error", "error": "internal error"},
            ]})
        );
    }

    #[test]
    fn categories_are_parsed_and_patched() {
        let c = parse_category(&json!({"category": "product-updates", "name": "Product updates", "section": "Marketing", "default_preference": "opt_out", "locked_channels": ["inbox"]})).unwrap();
        assert_eq!(
            (c.slug.as_str(), c.default_preference, c.section.as_deref()),
            (
                "product-updates",
                DefaultPreference::OptOut,
                Some("Marketing")
            )
        );
        assert_eq!(parse_category(&json!({"slug": "b"})).unwrap().slug, "b");
        for (body, field) in [
            (json!({"name": "x"}), "category"),
            (json!({"category": "Bad Slug"}), "category"),
            (
                json!({"category": "a", "default_preference": "sometimes"}),
                "default_preference",
            ),
            (
                json!({"category": "a", "locked_channels": ["fax"]}),
                "locked_channels[0]",
            ),
            (json!({"category": "a", "colour": "red"}), "colour"),
            (json!({"category": "a", "name": 3}), "name"),
            (json!({"category": "a", "name": "x".repeat(101)}), "name"),
            (json!({"category": "a", "visible": "no"}), "visible"),
            (json!("a"), ""),
        ] {
            assert_eq!(parse_category(&body).unwrap_err().field, field, "{body}");
        }
        let c = c
            .patched(
                parse_category_patch(
                    &json!({"default_preference": "mandatory", "visible": false, "section": null}),
                )
                .unwrap(),
            )
            .unwrap();
        assert_eq!(
            (c.default_preference, c.visible, c.section),
            (DefaultPreference::Mandatory, false, None)
        );
        assert_eq!(
            parse_category_patch(&json!({"category": "other"}))
                .unwrap_err()
                .field,
            "category"
        );
    }
}

/// `/v1/category/…`, `/v1/user/{id}/preference/…` and `/v1/bulk/subscriber/preference/…`, with
/// their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_categories, create_category))
        .routes(routes!(get_category, update_category, delete_category))
        .routes(routes!(full))
        .routes(routes!(user_categories))
        .routes(routes!(user_category, choose_category))
        .routes(routes!(channels, restrict_channels))
        .routes(routes!(bulk_update))
        .routes(routes!(bulk_reset))
}

/// A category as declared.
#[derive(ToSchema)]
#[schema(example = json!({"category": "newsletter", "name": "Newsletter", "description": "", "section": "Marketing", "default_preference": "opt_in", "locked_channels": [], "visible": true}))]
#[allow(dead_code)] // documents the shape this module renders and reads
pub struct CategoryDefinition {
    /// The slug.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", required = false)]
    category: String,
    /// Defaults to the slug.
    #[schema(max_length = 100, required = false)]
    name: String,
    #[schema(max_length = 1000, required = false)]
    description: String,
    #[schema(max_length = 100)]
    section: Option<String>,
    #[schema(inline, required = false)]
    default_preference: DefaultPreferenceName,
    /// Channels users may not turn off for this category.
    #[schema(required = false)]
    locked_channels: Vec<ChannelName>,
    /// Default true; false applies the category but hides it from users.
    #[schema(required = false)]
    visible: bool,
}

/// A category as one user sees it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserCategory {
    name: String,
    category: String,
    description: String,
    section: Option<String>,
    #[schema(inline)]
    original_preference: DefaultPreferenceName,
    #[schema(inline)]
    preference: ChoiceName,
    /// false for mandatory categories.
    is_editable: bool,
    #[schema(required = false, inline)]
    channels: Vec<UserCategoryChannel>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserCategoryChannel {
    channel: ChannelName,
    #[schema(inline)]
    preference: ChoiceName,
    is_editable: bool,
}

/// is_restricted: the channel only receives what cannot be opted out of.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChannelPreference {
    channel: ChannelName,
    is_restricted: bool,
}

#[derive(ToSchema)]
#[schema(example = json!({"channel_preferences": [{"channel": "email", "is_restricted": false}, {"channel": "sms", "is_restricted": true}]}))]
#[allow(dead_code)]
pub struct ChannelPreferences {
    channel_preferences: ChannelPreferenceList,
}

/// The outcome of a bulk preference call, per user.
#[derive(ToSchema)]
#[schema(example = json!({"success": false, "failed": 1, "results": [{"distinct_id": "ada", "status": "success"}, {"distinct_id": "ghost", "status": "error", "error": "user [distinct_id: 'ghost'] not found"}]}))]
#[allow(dead_code)]
pub struct BulkPreferenceResult {
    /// true when every user succeeded.
    success: bool,
    failed: i64,
    #[schema(inline)]
    results: Vec<BulkUserResult>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkUserResult {
    distinct_id: String,
    #[schema(inline)]
    status: crate::api::events::RecordStatus,
    #[schema(required = false)]
    error: String,
}

use crate::api::doc::ChannelName;

/// A category's default: opt_in (the default), opt_out or mandatory; cant_unsubscribe is
/// accepted as mandatory.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum DefaultPreferenceName {
    OptIn,
    OptOut,
    Mandatory,
}

/// A user's choice for a category or channel.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ChoiceName {
    OptIn,
    OptOut,
}

/// `POST /v1/category/`: a [`CategoryDefinition`] with its slug.
pub struct NewCategory;

impl utoipa::PartialSchema for NewCategory {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder};
        AllOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("CategoryDefinition"))
            .item(ObjectBuilder::new().required("category"))
            .into()
    }
}

impl ToSchema for NewCategory {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("CategoryDefinition".into(), CategoryDefinition::schema()));
        CategoryDefinition::schemas(schemas);
    }
}

/// Every category of the environment.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CategoryList {
    #[schema(inline, required = false)]
    meta: crate::api::properties::Count,
    #[schema(required = false)]
    results: Vec<CategoryDefinition>,
}

/// A user's preferences: visible categories by section, and the channel restrictions.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserPreferences {
    #[schema(inline, required = false)]
    sections: Vec<Section>,
    #[schema(required = false)]
    channel_preferences: ChannelPreferenceList,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Section {
    #[schema(required = false)]
    name: Option<String>,
    #[schema(required = false)]
    subcategories: Vec<UserCategory>,
}

/// is_restricted: the channel only receives what cannot be opted out of.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChannelPreferenceList(Vec<ChannelPreference>);

/// A page of a user's visible categories.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserCategoryPage {
    #[schema(inline, required = false)]
    meta: CategoryPageMeta,
    #[schema(required = false)]
    results: Vec<UserCategory>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CategoryPageMeta {
    #[schema(required = false)]
    count: i64,
    #[schema(required = false)]
    limit: i64,
    #[schema(required = false)]
    offset: i64,
}

/// A user's choice for one category.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CategoryChoice {
    #[schema(inline)]
    preference: ChoiceName,
    opt_out_channels: Option<Vec<ChannelName>>,
    opt_in_channels: Option<Vec<ChannelName>>,
}

/// `PATCH /v1/bulk/subscriber/preference/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkPreferenceBody {
    #[schema(max_items = 1000)]
    distinct_ids: Vec<String>,
    #[schema(inline, required = false)]
    categories: Vec<BulkCategoryChoice>,
    #[schema(required = false)]
    channel_preferences: ChannelPreferenceList,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkCategoryChoice {
    category: String,
    #[schema(inline)]
    preference: ChoiceName,
    opt_out_channels: Option<Vec<ChannelName>>,
    opt_in_channels: Option<Vec<ChannelName>>,
}

/// `PATCH /v1/bulk/subscriber/preference/reset/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BulkResetBody {
    #[schema(max_items = 1000)]
    distinct_ids: Vec<String>,
    #[schema(required = false)]
    reset_categories: bool,
    #[schema(required = false)]
    reset_channel_preferences: bool,
}

/// The query of a user's preference reads.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ShowQuery {
    /// Default true; false leaves out the channels that are off.
    #[param(default = true)]
    show_opt_out_channels: Option<bool>,
    /// Accepted and ignored (no tenants yet).
    tenant_id: Option<String>,
    /// Accepted and ignored.
    locale: Option<String>,
}

/// The query of `GET /v1/user/{distinct_id}/preference/category/`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CategoryPageQuery {
    /// Default true; false leaves out the channels that are off.
    #[param(default = true)]
    show_opt_out_channels: Option<bool>,
    /// 0-1000, default 100.
    #[param(minimum = 0, maximum = 1000, default = 100)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0, default = 0)]
    offset: Option<i64>,
    /// Accepted and ignored (no tenants yet).
    tenant_id: Option<String>,
    /// Accepted and ignored.
    locale: Option<String>,
}
