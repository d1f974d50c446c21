//! The in-app inbox's use cases: a user's items and counts, marks (one item or all), the
//! environment's inbox secret, and opening a browser's subscriber id. The API (key holders) and
//! the browser routes (subscriber ids) call the same functions.

use super::{Ctx, Error};
use crate::error::Invalid;
use crate::ids::DistinctId;
use crate::inbox::{self, InboxCounts, InboxItem, InboxPage, InboxQuery, Mark, Subscriber};
use crate::store::{CredentialStore, Store, StoreError};

/// The longest message id a path may name (ids Herald mints are far shorter).
pub const MAX_MESSAGE_ID: usize = 255;

/// A message id from a request, in `field`: 1 to 255 bytes, no control characters.
pub fn message_id(field: &str, raw: &str) -> Result<String, Invalid> {
    if raw.is_empty() || raw.len() > MAX_MESSAGE_ID || raw.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            format!(
                "must be a message id of 1 to {MAX_MESSAGE_ID} bytes without control characters"
            ),
        ));
    }
    Ok(raw.to_owned())
}

fn no_item(message_id: &str) -> Error {
    Error::Missing {
        what: "inbox item",
        key: message_id.to_owned(),
    }
}

/// A page of the user's inbox with the user's counts (an unknown user has an empty inbox).
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "inbox.list"))]
pub async fn list(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    query: &InboxQuery,
) -> Result<(InboxPage, InboxCounts), Error> {
    let page = store.list_inbox(ctx.scope, id, query).await?;
    let counts = store.inbox_counts(ctx.scope, id).await?;
    Ok((page, counts))
}

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "inbox.counts"))]
pub async fn counts(store: &dyn Store, ctx: &Ctx, id: &DistinctId) -> Result<InboxCounts, Error> {
    Ok(store.inbox_counts(ctx.scope, id).await?)
}

/// Marks one of the user's items; the item after it and the user's counts. An item of another
/// user or environment is not found.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "inbox.mark", mark = mark.as_str()))]
pub async fn mark_one(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    message_id: &str,
    mark: Mark,
) -> Result<(InboxItem, InboxCounts), Error> {
    let item = store
        .mark_inbox_item(ctx.scope, id, message_id, mark, ctx.now)
        .await?
        .ok_or_else(|| no_item(message_id))?;
    let counts = store.inbox_counts(ctx.scope, id).await?;
    Ok((item, counts))
}

/// Marks every item of the user; how many changed, and the user's counts.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "inbox.mark_all", mark = mark.as_str()))]
pub async fn mark_all(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    mark: Mark,
) -> Result<(u64, InboxCounts), Error> {
    let changed = store.mark_inbox(ctx.scope, id, mark, ctx.now).await?;
    let counts = store.inbox_counts(ctx.scope, id).await?;
    Ok((changed, counts))
}

/// The environment's inbox secret, created on first use (every node gets the same one).
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "inbox.secret"))]
pub async fn secret(store: &dyn CredentialStore, ctx: &Ctx) -> Result<String, Error> {
    Ok(current_secret(store, ctx.scope.env()).await?)
}

async fn current_secret(
    store: &dyn CredentialStore,
    env: crate::Env,
) -> Result<String, StoreError> {
    store
        .server_secret(&inbox::secret_name(env), &inbox::fresh_secret())
        .await
}

/// Replaces the environment's inbox secret with a new one, which it returns: every subscriber id
/// made with the old one stops working at once (open streams included, at their next check).
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "inbox.rotate_secret"))]
pub async fn rotate_secret(store: &dyn CredentialStore, ctx: &Ctx) -> Result<String, Error> {
    let name = inbox::secret_name(ctx.scope.env());
    // Compare and set: a rotation racing another is tried again over the secret it made.
    for _ in 0..10 {
        let current = current_secret(store, ctx.scope.env()).await?;
        let fresh = inbox::fresh_secret();
        if store.replace_server_secret(&name, &current, &fresh).await? {
            return Ok(fresh);
        }
    }
    Err(StoreError::Conflict("the inbox secret kept changing during its rotation".into()).into())
}

/// Whom a browser's `subscriber_id` speaks for: the user `id` in the environment of
/// `workspace_key`, if the id is that user's under the environment's current inbox secret.
/// `None` for an unknown workspace key or a wrong id (the two are not told apart).
#[tracing::instrument(skip_all, fields(op = "inbox.open"))]
pub async fn open(
    store: &dyn CredentialStore,
    workspace_key: &str,
    id: &DistinctId,
    subscriber_id: &str,
) -> Result<Option<Subscriber>, StoreError> {
    let Some(credentials) = store.credentials_by_workspace_key(workspace_key).await? else {
        // Costs what a real check does.
        let _ = inbox::verify(&inbox::fresh_secret(), crate::Env::Test, id, subscriber_id);
        return Ok(None);
    };
    let secret = current_secret(store, credentials.env).await?;
    Ok(inbox::verify(&secret, credentials.env, id, subscriber_id))
}

/// For `herald copy`: gives the target each environment's inbox secret of the source, so the
/// subscriber ids browsers hold keep working after the move. `false` if the target had a secret
/// of its own for an environment (it keeps it).
pub async fn copy_secrets(
    from: &dyn CredentialStore,
    to: &dyn CredentialStore,
) -> Result<bool, StoreError> {
    let mut kept = true;
    for env in crate::Env::ALL {
        let secret = current_secret(from, env).await?;
        kept &= to.server_secret(&inbox::secret_name(env), &secret).await? == secret;
    }
    Ok(kept)
}
