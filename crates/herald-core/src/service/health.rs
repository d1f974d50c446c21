//! Identity health use cases: marking an identity a provider found dead, resetting it, and
//! hearing a provider's late answer about a message (status callbacks, bounce reports). Every
//! profile change goes through the profiles service's locked edit and is recorded in history
//! with the actor of the context (`dispatch`, `callback`, the API key, the dashboard user).

use super::{profiles, Ctx, Error};
use crate::channel::{Identity, IdentityStatus};
use crate::health::{self, MessageRef, Target};
use crate::ids::DistinctId;
use crate::message::{LateAnswer, Message, MessageStatus};
use crate::profile::Profile;
use crate::store::Store;
use serde_json::Value;

/// Marks `dead` (an identity a message went to) invalid on the user's profile, with `reason`
/// ([`health::mark_on_profile`]). `None`: the user was deleted since, or no longer holds the
/// identity; nothing changed.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "health.mark_invalid"))]
pub async fn mark_invalid(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    dead: &Identity,
    reason: &str,
) -> Result<Option<Profile>, Error> {
    let target = Target::of(dead);
    let request = health::request(&target, IdentityStatus::Invalid, Some(reason));
    let (reason, at) = (reason.to_owned(), ctx.now);
    let result = profiles::change_recorded(store, ctx, id, request, move |p| {
        health::mark_on_profile(p, &target, &reason, at);
        Ok(())
    })
    .await;
    match result {
        Ok(profile) => Ok(Some(profile)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets the identity `target` names (parsed from `{"channel", "value"}` by [`Target::parse`])
/// back to `perma_status: active` ([`health::reset_on_profile`]). An identity the user does not
/// hold is refused, naming `value`.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "health.reset"))]
pub async fn reset(
    store: &dyn Store,
    ctx: &Ctx,
    id: &DistinctId,
    target: &Target,
) -> Result<Profile, Error> {
    let request = health::request(target, IdentityStatus::Active, None);
    let target = target.clone();
    profiles::change_recorded(store, ctx, id, request, move |p| {
        health::reset_on_profile(p, &target)
    })
    .await
}

/// What hearing a late answer did.
#[derive(Debug, Clone, PartialEq)]
pub enum Hearing {
    /// No message of this environment has that id.
    Unknown,
    /// The message, and whether the answer changed it. When it did and the answer says the
    /// address is dead, its identity was marked invalid too.
    Heard {
        message: Box<Message>,
        changed: bool,
    },
}

/// Records a provider's late answer on the message `which` names ([`Message::hear`]) and, when
/// it fails a sent message for a dead address, marks that identity invalid. A repeated answer
/// changes nothing: the message is already in that status, and the identity is marked only while
/// the message is still sent (so a callback replayed after an operator's reset does not undo it).
/// `recipient`, when given, must be the address the message went to.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "health.hear"))]
pub async fn hear(
    store: &dyn Store,
    ctx: &Ctx,
    which: &MessageRef,
    recipient: Option<&str>,
    answer: &LateAnswer,
) -> Result<Hearing, Error> {
    let found = match which {
        MessageRef::Id(id) => store.get_message(ctx.scope, id).await?,
        MessageRef::ProviderId(pid) => store.message_by_provider_id(ctx.scope, pid).await?,
    };
    let Some(found) = found else {
        return Ok(Hearing::Unknown);
    };
    if let (Some(recipient), Some(identity)) = (recipient, &found.identity) {
        let given = Identity::parse(
            identity.channel,
            &Value::String(recipient.into()),
            &Default::default(),
        )
        .map(|i| i.dedup_key());
        if given.as_deref() != Ok(identity.dedup_key().as_str()) {
            return Err(Error::Invalid(crate::Invalid::new(
                "recipient",
                format!("is not the address message {} went to", found.id),
            )));
        }
    }
    // The identity first, then the message: should either write fail, the provider's retry
    // finds the message still sent and does both again (marking is idempotent). Once the
    // message has failed, a replayed answer marks nothing.
    if let (
        LateAnswer::Failed {
            reason,
            identity_invalid: true,
        },
        Some(identity),
        MessageStatus::Sent,
    ) = (answer, &found.identity, found.status)
    {
        mark_invalid(store, ctx, &found.distinct_id, identity, reason).await?;
    }
    let Some(heard) = store.hear(ctx.scope, &found.id, answer, ctx.now).await? else {
        return Ok(Hearing::Unknown);
    };
    Ok(Hearing::Heard {
        changed: heard.changed,
        message: heard.message,
    })
}
