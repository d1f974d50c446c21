//! Engagement reports: `POST /v1/message/{id}/event/` (an app reports a push opened, a message
//! seen or delivered) and the email tracking endpoints (`/t/o/{token}`, `/t/c/{token}`). Each
//! records the first `seen`/`clicked` on the message ([`crate::message::Message::engage`]);
//! `smart` policies read it when a step's wait is over.

use super::links::Links;
use super::{Ctx, Error};
use crate::engagement::{self, Event, Tracked};
use crate::error::Invalid;
use crate::message::Message;
use crate::store::{Engaged, Store, StoreError};
use chrono::{DateTime, Utc};

/// Records `event` on message `id` of the caller's environment. A message of another
/// environment is not found; one that never went out is a conflict naming `event`.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "engagement.record", event = event.as_str()))]
pub async fn record(
    store: &dyn Store,
    ctx: &Ctx,
    id: &str,
    event: Event,
) -> Result<Message, Error> {
    match store.engage(ctx.scope, id, event, ctx.now).await? {
        Engaged::Recorded { message, .. } => Ok(*message),
        Engaged::NotFound => Err(Error::Missing {
            what: "message",
            key: id.to_owned(),
        }),
        Engaged::Refused(refused) => {
            Err(Error::Conflict(Invalid::new("event", refused.to_string())))
        }
    }
}

/// Why a tracking request records nothing.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// Not a token Herald signed (altered, or signed by a retired secret), or of the other
    /// kind (a pixel token on the click path, or the reverse).
    #[error("not a tracking link")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A tracked email was opened (`click: false`) or a tracked link clicked (`click: true`):
/// records `seen` or `clicked` on the token's message and answers what the token says (a
/// click's `url` is where the redirect goes). A message that is gone or never went out
/// records nothing; the token still answers (the reader gets the pixel or their page).
#[tracing::instrument(skip_all, fields(op = "engagement.track", click))]
pub async fn track(
    store: &dyn Store,
    links: &Links<'_>,
    token: &str,
    click: bool,
    now: DateTime<Utc>,
) -> Result<Tracked, TrackError> {
    let ring = links.keyring(now).await?;
    let tracked = engagement::open_token(&ring, token).map_err(|_| TrackError::Invalid)?;
    if tracked.url.is_some() != click {
        return Err(TrackError::Invalid);
    }
    let event = if click { Event::Clicked } else { Event::Seen };
    let scope = crate::EnvScope::operator(tracked.env);
    match store.engage(scope, &tracked.message_id, event, now).await? {
        Engaged::Recorded { .. } => {}
        Engaged::NotFound | Engaged::Refused(_) => {
            tracing::debug!(message = %tracked.message_id, "tracking hit on a message that is gone or never went out");
        }
    }
    Ok(tracked)
}
