//! Preference links: minting the signed links to a user's hosted preference page (also what
//! templates get as `$hosted_preference_url`), opening them, revoking them, and the keyring of
//! secrets that signs them (rotation, retirement, carrying it to another database).
//!
//! The keyring is one server secret shared by every node (created by whichever needs it first)
//! and cached per node for [`KEYS_REFRESH`], so opening a link checks its signature without
//! touching the store. The token format and its checks are [`crate::link`]'s.

use super::{profiles, Ctx, Error};
use crate::env::Env;
use crate::error::Invalid;
use crate::history::Actor;
use crate::ids::DistinctId;
use crate::link::{self, Keyring, LinkError, LinkSubject};
use crate::profile::Profile;
use crate::store::{CredentialStore, Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The server secret holding the keyring.
pub const SECRET_NAME: &str = "preference_links";

/// How long a node uses the keyring it loaded before reading it again, so a rotation
/// (`herald links rotate`) reaches every running node within this time.
pub const KEYS_REFRESH: Duration = Duration::seconds(60);

/// The field a change made through a link is refused with when, under the row lock, the link no
/// longer speaks for the profile (never shown: [`change_as_holder`] answers "not found").
const LINK_FIELD: &str = "$preference_link";

/// How long a link lasts: 1 to [`LinkDays::MAX`] days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkDays(i64);

impl LinkDays {
    pub const MAX: i64 = 365;
    /// A link minted without a lifetime.
    pub const DEFAULT: LinkDays = LinkDays(30);
    /// The links put in templates (`$hosted_preference_url`).
    pub const TEMPLATE: LinkDays = LinkDays::DEFAULT;

    /// Refused (under `field`) outside 1..=[`LinkDays::MAX`].
    pub fn new(field: &str, days: i64) -> Result<LinkDays, Invalid> {
        if (1..=Self::MAX).contains(&days) {
            Ok(LinkDays(days))
        } else {
            Err(Self::refusal(field))
        }
    }

    /// What a lifetime that is not a whole number of days in range is refused with.
    pub fn refusal(field: &str) -> Invalid {
        Invalid::new(
            field,
            format!("must be a whole number of days from 1 to {}", LinkDays::MAX),
        )
    }

    pub fn days(self) -> i64 {
        self.0
    }
}

/// A signed link to a user's preference page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceLink {
    pub url: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a token does not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the link does not open: {0:?}")]
    Refused(LinkError),
    /// The keyring could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This node's copy of the keyring, read from the store on first use and again once it is older
/// than [`KEYS_REFRESH`]. One per process (the server keeps it in its state).
#[derive(Debug, Default)]
pub struct LinkKeys(Mutex<Option<(DateTime<Utc>, Arc<Keyring>)>>);

impl LinkKeys {
    /// The keyring, read again from `secrets` if the copy held is stale at `now`.
    pub async fn keyring(
        &self,
        secrets: &dyn CredentialStore,
        now: DateTime<Utc>,
    ) -> Result<Arc<Keyring>, StoreError> {
        if let Some(ring) = self.cached(now) {
            return Ok(ring);
        }
        // Not locked across the read: two requests may both read, and get the same ring.
        let ring = Arc::new(load_keyring(secrets).await?);
        *self.slot() = Some((now, ring.clone()));
        Ok(ring)
    }

    fn cached(&self, now: DateTime<Utc>) -> Option<Arc<Keyring>> {
        let slot = self.slot();
        let (at, ring) = slot.as_ref()?;
        // A clock that went back also reloads.
        (*at <= now && now - *at < KEYS_REFRESH).then(|| ring.clone())
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(DateTime<Utc>, Arc<Keyring>)>> {
        // The slot holds a plain value; a panic elsewhere cannot leave it half-written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Mints and opens links with this node's keys; `public_base` is where users reach Herald
/// (`http://host:port`, no trailing `/`).
pub struct Links<'a> {
    secrets: &'a dyn CredentialStore,
    keys: &'a LinkKeys,
    public_base: &'a str,
}

impl<'a> Links<'a> {
    pub fn new(secrets: &'a dyn CredentialStore, keys: &'a LinkKeys, public_base: &'a str) -> Self {
        Links {
            secrets,
            keys,
            public_base,
        }
    }

    /// The keyring, as it signs links now (also the signer of email tracking tokens,
    /// [`crate::engagement::Tracker`]).
    pub async fn keyring(&self, now: DateTime<Utc>) -> Result<Arc<Keyring>, StoreError> {
        self.keys.keyring(self.secrets, now).await
    }

    /// Where users reach Herald (no trailing `/`).
    pub fn public_base(&self) -> &str {
        self.public_base
    }

    /// A link to `profile`'s page in `env`, valid for `days` from `now` (or until revoked, or the
    /// profile is deleted).
    #[tracing::instrument(skip_all, fields(env = %env, op = "links.mint"))]
    pub async fn mint(
        &self,
        env: Env,
        profile: &Profile,
        days: LinkDays,
        now: DateTime<Utc>,
    ) -> Result<PreferenceLink, StoreError> {
        let expires_at = now + Duration::days(days.days());
        let ring = self.keys.keyring(self.secrets, now).await?;
        let token = link::mint(&ring, &LinkSubject::of(env, profile), expires_at);
        Ok(PreferenceLink {
            url: format!("{}/preferences/{token}", self.public_base),
            token,
            expires_at,
        })
    }

    /// Whom `token` speaks for, if Herald signed it with a secret still in the keyring and it has
    /// not expired at `now`. Reads no profile: whether the link still speaks for the stored one
    /// is [`holder`]'s question.
    #[tracing::instrument(skip_all, fields(op = "links.open"))]
    pub async fn open(&self, token: &str, now: DateTime<Utc>) -> Result<LinkSubject, OpenError> {
        let ring = self.keys.keyring(self.secrets, now).await?;
        link::open(&ring, token, now).map_err(OpenError::Refused)
    }
}

/// The profile `subject` names, if the link still speaks for it: the same profile (its
/// `created_at`) and not revoked since (its link epoch).
#[tracing::instrument(skip_all, fields(env = %subject.env, op = "links.holder"))]
pub async fn holder(
    store: &dyn Store,
    subject: &LinkSubject,
) -> Result<Option<Profile>, StoreError> {
    Ok(store
        .get_profile(subject.scope(), &subject.distinct_id)
        .await?
        .filter(|p| subject.still_matches(p)))
}

/// The context of a change made through a link: the link's user acting on themselves.
pub fn acting_as(subject: &LinkSubject, now: DateTime<Utc>) -> Ctx {
    Ctx::new(
        subject.scope(),
        Actor::new("preference_page", subject.distinct_id.as_str()),
        now,
    )
}

/// Applies `change` to the profile `subject` names, under the store's lock, only if the link
/// still speaks for it there: a revoke or a re-creation racing the change wins, and the change
/// is answered as for a missing user. `request` is recorded as by [`profiles::change_existing`].
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "links.change_as_holder"))]
pub async fn change_as_holder<F>(
    store: &dyn Store,
    ctx: &Ctx,
    subject: LinkSubject,
    request: Value,
    change: F,
) -> Result<Profile, Error>
where
    F: Fn(&mut Profile) -> Result<(), Invalid> + Send + Sync + 'static,
{
    let id = subject.distinct_id.clone();
    let outcome = profiles::change_existing(store, ctx, &id, request, move |p| {
        if !subject.still_matches(p) {
            return Err(Invalid::new(LINK_FIELD, "the link was revoked"));
        }
        change(p)
    })
    .await;
    match outcome {
        Err(Error::Invalid(e)) if e.field == LINK_FIELD => Err(Error::user_not_found(&id)),
        other => other,
    }
}

/// `DELETE /v1/user/{id}/preference/link/`: every link minted for the user so far stops opening
/// (the profile's link epoch is bumped). Links minted afterwards work.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "links.revoke"))]
pub async fn revoke(store: &dyn Store, ctx: &Ctx, id: &DistinctId) -> Result<(), Error> {
    let request = serde_json::json!({"revoke_preference_links": true});
    profiles::change_existing(store, ctx, id, request, |p| {
        p.preferences.link_epoch += 1;
        Ok(())
    })
    .await?;
    Ok(())
}

/// The stored keyring, created (one fresh secret) by whichever node needs it first.
async fn load_keyring(secrets: &dyn CredentialStore) -> Result<Keyring, StoreError> {
    let candidate = Keyring::new(link::fresh_secret()).to_stored();
    Ok(Keyring::parse(
        &secrets.server_secret(SECRET_NAME, &candidate).await?,
    ))
}

/// `herald links rotate`: a new current secret signs links from now on (running nodes pick it
/// up within [`KEYS_REFRESH`]). Older secrets keep verifying unless `retire_old`, which makes
/// every link signed with them stop opening. Returns the new key id and how many were retired.
#[tracing::instrument(skip_all, fields(op = "links.rotate"))]
pub async fn rotate(
    secrets: &dyn CredentialStore,
    retire_old: bool,
) -> Result<(String, usize), StoreError> {
    change_keyring(secrets, |ring| {
        let kid = ring.rotate(link::fresh_secret());
        let retired = if retire_old { ring.retire_old() } else { 0 };
        (kid, retired)
    })
    .await
}

/// `herald links retire`: forgets every secret but the current one. Returns how many.
#[tracing::instrument(skip_all, fields(op = "links.retire_old"))]
pub async fn retire_old(secrets: &dyn CredentialStore) -> Result<usize, StoreError> {
    change_keyring(secrets, Keyring::retire_old).await
}

/// Applies `change` to the stored keyring, again if another process changed it meanwhile.
async fn change_keyring<T>(
    secrets: &dyn CredentialStore,
    change: impl Fn(&mut Keyring) -> T,
) -> Result<T, StoreError> {
    loop {
        let candidate = Keyring::new(link::fresh_secret()).to_stored();
        let stored = secrets.server_secret(SECRET_NAME, &candidate).await?;
        let mut ring = Keyring::parse(&stored);
        let out = change(&mut ring);
        if secrets
            .replace_server_secret(SECRET_NAME, &stored, &ring.to_stored())
            .await?
        {
            return Ok(out);
        }
    }
}

/// Gives `to` the keyring that signs `from`'s links, so links already sent keep opening after a
/// move (`herald copy`). `false`: `to` had a keyring of its own, which it keeps.
#[tracing::instrument(skip_all, fields(op = "links.copy_keyring"))]
pub async fn copy_keyring(
    from: &dyn CredentialStore,
    to: &dyn CredentialStore,
) -> Result<bool, StoreError> {
    let stored = from
        .server_secret(SECRET_NAME, &Keyring::new(link::fresh_secret()).to_stored())
        .await?;
    Ok(to.server_secret(SECRET_NAME, &stored).await? == stored)
}

#[cfg(test)]
mod tests;
