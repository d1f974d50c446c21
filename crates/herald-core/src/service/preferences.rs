//! Categories and each user's preferences (wire spec §2.5).

use super::{profiles, Ctx, Error};
use crate::error::Invalid;
use crate::ids::DistinctId;
use crate::preference::{self, Category, Preferences};
use crate::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Users one bulk preference call may change.
pub const MAX_BULK_USERS: usize = 1000;

/// What one preference change may carry, as compact JSON (the body; for bulk calls the body
/// without its `distinct_ids`): as the 10 KB of a profile edit. A real change names a few
/// categories and channels, far below it.
pub const MAX_PREFERENCE_EDIT_BYTES: usize = 10 * 1024;

/// Refuses a change over [`MAX_PREFERENCE_EDIT_BYTES`] and any key of `obj` not in `allowed`.
fn checked<'a>(
    field: &str,
    v: &'a Value,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, Invalid> {
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

fn missing_category(slug: &str) -> Error {
    Error::Missing {
        what: "category",
        key: slug.to_owned(),
    }
}

pub async fn list_categories(store: &dyn Store, ctx: &Ctx) -> Result<Vec<Category>, Error> {
    Ok(store.list_categories(ctx.scope).await?)
}

pub async fn get_category(store: &dyn Store, ctx: &Ctx, slug: &str) -> Result<Category, Error> {
    store
        .get_category(ctx.scope, slug)
        .await?
        .ok_or_else(|| missing_category(slug))
}

/// `POST /v1/category/`.
pub async fn create_category(
    store: &dyn Store,
    ctx: &Ctx,
    body: &Value,
) -> Result<Category, Error> {
    let category = preference::parse_category(body)?;
    if !store.put_category(ctx.scope, &category, false).await? {
        return Err(Error::Conflict(Invalid::new(
            "category",
            format!(
                "category '{}' exists already; change it with PATCH",
                category.slug
            ),
        )));
    }
    Ok(category)
}

/// `PATCH /v1/category/{slug}/`.
pub async fn update_category(
    store: &dyn Store,
    ctx: &Ctx,
    slug: &str,
    body: &Value,
) -> Result<Category, Error> {
    let mut category = get_category(store, ctx, slug).await?;
    preference::patch_category(&mut category, body)?;
    store.put_category(ctx.scope, &category, true).await?;
    Ok(category)
}

/// `DELETE /v1/category/{slug}/`. Users' choices for it stay on their profiles, inert, and apply
/// again if a category with that slug comes back.
pub async fn delete_category(store: &dyn Store, ctx: &Ctx, slug: &str) -> Result<(), Error> {
    if store.delete_category(ctx.scope, slug).await? {
        Ok(())
    } else {
        Err(missing_category(slug))
    }
}

/// Categories declared in the configuration file: created or overwritten at start.
pub async fn declare_categories(
    store: &dyn Store,
    ctx: &Ctx,
    categories: &[Category],
) -> Result<(), Error> {
    for c in categories {
        store.put_category(ctx.scope, c, true).await?;
    }
    Ok(())
}

/// `GET /v1/user/{id}/preference/`: visible categories grouped in sections, and the channels.
pub async fn full(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    show_opt_out_channels: bool,
) -> Result<Value, Error> {
    let profile = profiles::get(store, ctx, id).await?;
    let mut sections: BTreeMap<Option<String>, Vec<Value>> = BTreeMap::new();
    for c in store
        .list_categories(ctx.scope)
        .await?
        .iter()
        .filter(|c| c.visible)
    {
        sections
            .entry(c.section.clone())
            .or_default()
            .push(preference::category_wire(
                c,
                &profile.preferences,
                show_opt_out_channels,
            ));
    }
    let sections: Vec<Value> = sections
        .into_iter()
        .map(|(name, subcategories)| json!({"name": name, "subcategories": subcategories}))
        .collect();
    Ok(json!({
        "sections": sections,
        "channel_preferences": preference::channels_wire(&profile.preferences),
    }))
}

/// `GET /v1/user/{id}/preference/category/`: visible categories, paged by offset.
pub async fn categories(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    show_opt_out_channels: bool,
    limit: usize,
    offset: usize,
) -> Result<Value, Error> {
    let profile = profiles::get(store, ctx, id).await?;
    let all: Vec<Category> = store
        .list_categories(ctx.scope)
        .await?
        .into_iter()
        .filter(|c| c.visible)
        .collect();
    let results: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|c| preference::category_wire(c, &profile.preferences, show_opt_out_channels))
        .collect();
    Ok(json!({"meta": {"count": all.len(), "limit": limit, "offset": offset}, "results": results}))
}

/// `GET /v1/user/{id}/preference/category/{slug}/`.
pub async fn category(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    slug: &str,
    show_opt_out_channels: bool,
) -> Result<Value, Error> {
    let profile = profiles::get(store, ctx, id).await?;
    let c = get_category(store, ctx, slug).await?;
    Ok(preference::category_wire(
        &c,
        &profile.preferences,
        show_opt_out_channels,
    ))
}

/// `GET /v1/user/{id}/preference/channel_preference/`.
pub async fn channels(store: &dyn Store, ctx: &Ctx, id: &DistinctId) -> Result<Value, Error> {
    let profile = profiles::get(store, ctx, id).await?;
    Ok(json!({"channel_preferences": preference::channels_wire(&profile.preferences)}))
}

/// `PATCH /v1/user/{id}/preference/category/{slug}/`.
pub async fn choose(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    slug: &str,
    body: &Value,
) -> Result<Value, Error> {
    checked("", body, &CHOICE_FIELDS)?;
    let c = get_category(store, ctx, slug).await?;
    // Validate before taking the lock, so a bad body answers 400 even for a missing user.
    preference::choose_category(&mut Preferences::default(), &c, body)?;
    let (cat, b) = (c.clone(), body.clone());
    // History keeps what changed (`$preferences`), not the body: the request only names it.
    let request = json!({"preference": {"category": c.slug}});
    let profile = profiles::change_recorded(store, ctx, id, request, move |p| {
        preference::choose_category(&mut p.preferences, &cat, &b)
    })
    .await?;
    Ok(preference::category_wire(&c, &profile.preferences, true))
}

/// `PATCH /v1/user/{id}/preference/channel_preference/`.
pub async fn restrict(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    body: &Value,
) -> Result<Value, Error> {
    let obj = checked("", body, &["channel_preferences"])?;
    channel_items(obj.get("channel_preferences"))?;
    preference::restrict_channels(&mut Preferences::default(), body)?;
    let b = body.clone();
    let request = json!({"preference": {"channel_preferences": true}});
    let profile = profiles::change_recorded(store, ctx, id, request, move |p| {
        preference::restrict_channels(&mut p.preferences, &b)
    })
    .await?;
    Ok(json!({"channel_preferences": preference::channels_wire(&profile.preferences)}))
}

fn bulk_ids(body: &Value) -> Result<Vec<DistinctId>, Invalid> {
    let list = body
        .get("distinct_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| Invalid::new("distinct_ids", "is required: a list of distinct_ids"))?;
    if list.is_empty() || list.len() > MAX_BULK_USERS {
        return Err(Invalid::new(
            "distinct_ids",
            format!(
                "must hold 1 to {MAX_BULK_USERS} distinct_ids, got {}",
                list.len()
            ),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("distinct_ids[{i}]");
            let raw = v
                .as_str()
                .ok_or_else(|| Invalid::new(&field, "must be a string"))?;
            DistinctId::parse(raw).map_err(|e| Invalid::new(&field, e.rule))
        })
        .collect()
}

/// Runs `change` on each user, each all or nothing; one result per user.
async fn per_user<F>(
    store: &dyn Store,
    ctx: &Ctx,
    ids: Vec<DistinctId>,
    request: Value,
    change: F,
) -> Value
where
    F: Fn(&mut crate::Profile) -> Result<(), Invalid> + Clone + Send + Sync + 'static,
{
    let mut results = Vec::with_capacity(ids.len());
    let mut failed = 0;
    for id in ids {
        let outcome =
            profiles::change_recorded(store, ctx, &id, request.clone(), change.clone()).await;
        results.push(match outcome {
            Ok(_) => json!({"distinct_id": id, "status": "success"}),
            Err(e) => {
                failed += 1;
                json!({"distinct_id": id, "status": "error", "error": e.to_string()})
            }
        });
    }
    json!({"success": failed == 0, "failed": failed, "results": results})
}

/// `PATCH /v1/bulk/subscriber/preference/`:
/// `{distinct_ids, channel_preferences?, categories?: [{category, preference, opt_out_channels?}]}`.
pub async fn bulk_update(store: &dyn Store, ctx: &Ctx, body: &Value) -> Result<Value, Error> {
    let obj = checked(
        "",
        body,
        &["distinct_ids", "categories", "channel_preferences"],
    )?;
    channel_items(obj.get("channel_preferences"))?;
    let ids = bulk_ids(body)?;
    let mut choices = Vec::new();
    if let Some(list) = body.get("categories") {
        let list = list
            .as_array()
            .ok_or_else(|| Invalid::new("categories", "must be a list"))?;
        for (i, item) in list.iter().enumerate() {
            let mut fields = CHOICE_FIELDS.to_vec();
            fields.push("category");
            checked(&format!("categories[{i}]"), item, &fields)?;
            let slug = item
                .get("category")
                .and_then(Value::as_str)
                .ok_or_else(|| Invalid::new(format!("categories[{i}].category"), "is required"))?;
            let c = get_category(store, ctx, slug).await?;
            preference::choose_category(&mut Preferences::default(), &c, item)
                .map_err(|e| e.within(format!("categories[{i}]")))?;
            choices.push((c, item.clone()));
        }
    }
    let channels = body
        .get("channel_preferences")
        .map(|c| json!({"channel_preferences": c}));
    if let Some(c) = &channels {
        preference::restrict_channels(&mut Preferences::default(), c)?;
    }
    if choices.is_empty() && channels.is_none() {
        return Err(Error::Invalid(Invalid::new(
            "categories",
            "nothing to change: send categories and/or channel_preferences",
        )));
    }
    let request = json!({"bulk_preference": {
        "categories": choices.iter().map(|(c, _)| c.slug.clone()).collect::<Vec<_>>(),
        "channel_preferences": channels.is_some(),
    }});
    Ok(per_user(store, ctx, ids, request, move |p| {
        for (c, item) in &choices {
            preference::choose_category(&mut p.preferences, c, item)?;
        }
        if let Some(c) = &channels {
            preference::restrict_channels(&mut p.preferences, c)?;
        }
        Ok(())
    })
    .await)
}

/// `PATCH /v1/bulk/subscriber/preference/reset/`:
/// `{distinct_ids, reset_channel_preferences, reset_categories}`.
pub async fn bulk_reset(store: &dyn Store, ctx: &Ctx, body: &Value) -> Result<Value, Error> {
    checked(
        "",
        body,
        &[
            "distinct_ids",
            "reset_channel_preferences",
            "reset_categories",
        ],
    )?;
    let ids = bulk_ids(body)?;
    let flag = |k: &str| -> Result<bool, Invalid> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Invalid::new(k, "must be true or false")),
        }
    };
    let (channels, categories) = (
        flag("reset_channel_preferences")?,
        flag("reset_categories")?,
    );
    if !channels && !categories {
        return Err(Error::Invalid(Invalid::new(
            "reset_categories",
            "nothing to reset: set reset_categories and/or reset_channel_preferences",
        )));
    }
    let request = json!({"bulk_preference_reset": {
        "reset_categories": categories,
        "reset_channel_preferences": channels,
    }});
    Ok(per_user(store, ctx, ids, request, move |p| {
        if channels {
            p.preferences.restricted_channels.clear();
        }
        if categories {
            p.preferences.categories.clear();
        }
        Ok(())
    })
    .await)
}
