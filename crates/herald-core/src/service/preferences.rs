//! Categories and each user's preferences (wire spec §2.5).

use super::{profiles, Ctx, Error};
use crate::error::Invalid;
use crate::ids::DistinctId;
use crate::preference::{
    self, Category, CategoryAttributes, CategoryChange, CategoryView, ChannelRestriction,
    ChannelView, ChoiceRequest, UserView,
};
use crate::store::Store;
use serde_json::{json, Value};

/// Users one bulk preference call may change.
pub const MAX_BULK_USERS: usize = 1000;

/// What one preference change may carry, as compact JSON (the body; for bulk calls the body
/// without its `distinct_ids`): as the 10 KB of a profile edit. A real change names a few
/// categories and channels, far below it. The API measures it on the bytes it received.
pub const MAX_PREFERENCE_EDIT_BYTES: usize = 10 * 1024;

fn missing_category(slug: &str) -> Error {
    Error::Missing {
        what: "category",
        key: slug.to_owned(),
    }
}

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.list_categories"))]
pub async fn list_categories(store: &dyn Store, ctx: &Ctx) -> Result<Vec<Category>, Error> {
    Ok(store.list_categories(ctx.scope).await?)
}

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.get_category"))]
pub async fn get_category(store: &dyn Store, ctx: &Ctx, slug: &str) -> Result<Category, Error> {
    store
        .get_category(ctx.scope, slug)
        .await?
        .ok_or_else(|| missing_category(slug))
}

/// `POST /v1/category/`: `category` is built by [`Category::declare`].
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.create_category"))]
pub async fn create_category(
    store: &dyn Store,
    ctx: &Ctx,
    category: Category,
) -> Result<Category, Error> {
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
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.update_category"))]
pub async fn update_category(
    store: &dyn Store,
    ctx: &Ctx,
    slug: &str,
    attributes: CategoryAttributes,
) -> Result<Category, Error> {
    let category = get_category(store, ctx, slug).await?.patched(attributes)?;
    store.put_category(ctx.scope, &category, true).await?;
    Ok(category)
}

/// `DELETE /v1/category/{slug}/`. Users' choices for it stay on their profiles, inert, and apply
/// again if a category with that slug comes back.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.delete_category"))]
pub async fn delete_category(store: &dyn Store, ctx: &Ctx, slug: &str) -> Result<(), Error> {
    if store.delete_category(ctx.scope, slug).await? {
        Ok(())
    } else {
        Err(missing_category(slug))
    }
}

/// Categories declared in the configuration file: created or overwritten at start.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.declare_categories"))]
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
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.full"))]
pub async fn full(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    show_opt_out_channels: bool,
) -> Result<UserView, Error> {
    let profile = profiles::get(store, ctx, id).await?;
    let categories = store.list_categories(ctx.scope).await?;
    Ok(UserView::of(
        &categories,
        &profile.preferences,
        show_opt_out_channels,
    ))
}

/// One page of a user's visible categories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryPage {
    /// Visible categories in all.
    pub count: usize,
    pub categories: Vec<CategoryView>,
}

/// `GET /v1/user/{id}/preference/category/`: visible categories, paged by offset.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.categories"))]
pub async fn categories(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    show_opt_out_channels: bool,
    limit: usize,
    offset: usize,
) -> Result<CategoryPage, Error> {
    let profile = profiles::get(store, ctx, id).await?;
    let all: Vec<Category> = store
        .list_categories(ctx.scope)
        .await?
        .into_iter()
        .filter(|c| c.visible)
        .collect();
    Ok(CategoryPage {
        count: all.len(),
        categories: all
            .iter()
            .skip(offset)
            .take(limit)
            .map(|c| CategoryView::of(c, &profile.preferences, show_opt_out_channels))
            .collect(),
    })
}

/// `GET /v1/user/{id}/preference/category/{slug}/`.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.category"))]
pub async fn category(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    slug: &str,
    show_opt_out_channels: bool,
) -> Result<CategoryView, Error> {
    let profile = profiles::get(store, ctx, id).await?;
    let c = get_category(store, ctx, slug).await?;
    Ok(CategoryView::of(
        &c,
        &profile.preferences,
        show_opt_out_channels,
    ))
}

/// `GET /v1/user/{id}/preference/channel_preference/`.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.channels"))]
pub async fn channels(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
) -> Result<Vec<ChannelView>, Error> {
    let profile = profiles::get(store, ctx, id).await?;
    Ok(preference::channel_views(&profile.preferences))
}

/// `PATCH /v1/user/{id}/preference/category/{slug}/`. Answers the category as the user now sees
/// it, opted-out channels included.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.choose"))]
pub async fn choose(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    slug: &str,
    request: ChoiceRequest,
) -> Result<CategoryView, Error> {
    let c = get_category(store, ctx, slug).await?;
    // Checked before taking the lock, so a refused choice answers 400 even for a missing user.
    let change = request.for_category(&c)?;
    // History keeps what changed (`$preferences`), not the request: it only names it.
    let history = json!({"preference": {"category": c.slug}});
    let profile = profiles::change_recorded(store, ctx, id, history, move |p| {
        change.apply(&mut p.preferences)
    })
    .await?;
    Ok(CategoryView::of(&c, &profile.preferences, true))
}

/// `PATCH /v1/user/{id}/preference/channel_preference/`.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.restrict"))]
pub async fn restrict(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    restrictions: Vec<ChannelRestriction>,
) -> Result<Vec<ChannelView>, Error> {
    let history = json!({"preference": {"channel_preferences": true}});
    let profile = profiles::change_recorded(store, ctx, id, history, move |p| {
        preference::restrict(&mut p.preferences, &restrictions);
        Ok(())
    })
    .await?;
    Ok(preference::channel_views(&profile.preferences))
}

/// The users of one bulk call: 1 to [`MAX_BULK_USERS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkUsers(Vec<DistinctId>);

impl BulkUsers {
    /// Refuses a list of `len` users, before its items are parsed.
    pub fn check_len(len: usize) -> Result<(), Invalid> {
        if len == 0 || len > MAX_BULK_USERS {
            return Err(Invalid::new(
                "distinct_ids",
                format!("must hold 1 to {MAX_BULK_USERS} distinct_ids, got {len}"),
            ));
        }
        Ok(())
    }

    pub fn new(ids: Vec<DistinctId>) -> Result<Self, Invalid> {
        Self::check_len(ids.len())?;
        Ok(BulkUsers(ids))
    }

    pub fn ids(&self) -> &[DistinctId] {
        &self.0
    }
}

/// `PATCH /v1/bulk/subscriber/preference/`: category choices (by slug) and/or channel
/// restrictions for each of the users.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkChange {
    users: BulkUsers,
    categories: Vec<(String, ChoiceRequest)>,
    channels: Option<Vec<ChannelRestriction>>,
}

impl BulkChange {
    /// Refused when it changes nothing (no categories, no channel list).
    pub fn new(
        users: BulkUsers,
        categories: Vec<(String, ChoiceRequest)>,
        channels: Option<Vec<ChannelRestriction>>,
    ) -> Result<Self, Invalid> {
        if categories.is_empty() && channels.is_none() {
            return Err(Invalid::new(
                "categories",
                "nothing to change: send categories and/or channel_preferences",
            ));
        }
        Ok(BulkChange {
            users,
            categories,
            channels,
        })
    }
}

/// `PATCH /v1/bulk/subscriber/preference/reset/`: forget the users' category choices and/or
/// channel restrictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkReset {
    users: BulkUsers,
    channels: bool,
    categories: bool,
}

impl BulkReset {
    /// Refused when it resets nothing.
    pub fn new(users: BulkUsers, channels: bool, categories: bool) -> Result<Self, Invalid> {
        if !channels && !categories {
            return Err(Invalid::new(
                "reset_categories",
                "nothing to reset: set reset_categories and/or reset_channel_preferences",
            ));
        }
        Ok(BulkReset {
            users,
            channels,
            categories,
        })
    }
}

/// Why a bulk call left one user unchanged.
#[derive(Debug)]
pub enum UserFailure {
    /// The caller's to fix (an unknown user, a choice the user's stored state refuses): the
    /// message is theirs to read.
    Refused(String),
    /// Herald's own fault (storage): callers get a generic message, the log the detail.
    Internal(Error),
}

/// What a bulk call did to each user, in the order given.
#[derive(Debug)]
pub struct BulkOutcome {
    pub results: Vec<(DistinctId, Result<(), UserFailure>)>,
}

impl BulkOutcome {
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|(_, r)| r.is_err()).count()
    }
}

/// Runs `change` on each user, each all or nothing; one result per user.
async fn per_user<F>(
    store: &dyn Store,
    ctx: &Ctx,
    users: BulkUsers,
    history: Value,
    change: F,
) -> BulkOutcome
where
    F: Fn(&mut crate::Profile) -> Result<(), Invalid> + Clone + Send + Sync + 'static,
{
    let mut results = Vec::with_capacity(users.0.len());
    for id in users.0 {
        let outcome =
            profiles::change_recorded(store, ctx, &id, history.clone(), change.clone()).await;
        let result = match outcome {
            Ok(_) => Ok(()),
            Err(e @ Error::Store(_)) => Err(UserFailure::Internal(e)),
            Err(e) => Err(UserFailure::Refused(e.to_string())),
        };
        results.push((id, result));
    }
    BulkOutcome { results }
}

/// `PATCH /v1/bulk/subscriber/preference/`. A category that does not exist refuses the call
/// (404); a choice its category refuses is a 400 naming `categories[i]`.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.bulk_update"))]
pub async fn bulk_update(
    store: &dyn Store,
    ctx: &Ctx,
    change: BulkChange,
) -> Result<BulkOutcome, Error> {
    let BulkChange {
        users,
        categories,
        channels,
    } = change;
    let mut changes: Vec<CategoryChange> = Vec::with_capacity(categories.len());
    for (i, (slug, request)) in categories.into_iter().enumerate() {
        let c = get_category(store, ctx, &slug).await?;
        changes.push(
            request
                .for_category(&c)
                .map_err(|e| e.within(format!("categories[{i}]")))?,
        );
    }
    let history = json!({"bulk_preference": {
        "categories": changes.iter().map(|c| c.category().slug.clone()).collect::<Vec<_>>(),
        "channel_preferences": channels.is_some(),
    }});
    Ok(per_user(store, ctx, users, history, move |p| {
        for c in &changes {
            c.apply(&mut p.preferences)?;
        }
        if let Some(list) = &channels {
            preference::restrict(&mut p.preferences, list);
        }
        Ok(())
    })
    .await)
}

/// `PATCH /v1/bulk/subscriber/preference/reset/`.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "preferences.bulk_reset"))]
pub async fn bulk_reset(
    store: &dyn Store,
    ctx: &Ctx,
    reset: BulkReset,
) -> Result<BulkOutcome, Error> {
    let BulkReset {
        users,
        channels,
        categories,
    } = reset;
    let history = json!({"bulk_preference_reset": {
        "reset_categories": categories,
        "reset_channel_preferences": channels,
    }});
    Ok(per_user(store, ctx, users, history, move |p| {
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
