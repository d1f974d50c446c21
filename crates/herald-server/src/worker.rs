//! The dispatch worker: claims due outbox entries, hands each to its provider under a timeout,
//! and records the outcome (sent, retried on the backoff schedule, failed). A provider that finds
//! the identity dead gets it marked `perma_status: invalid` (with the provider's answer and the
//! time) on the profile, so later plans skip it as `identity_invalid`. A `smart` step whose wait
//! is over is sent only once its gate opens (the store checks the trigger's engagement; else it
//! is skipped as `engaged`). Each round first sends the digests that are due ([`flush_digests`]):
//! their messages join the outbox. [`step`] is one round; [`drain`] runs rounds until nothing is
//! due (what tests call); [`run`] is the background task of `tasks.dispatch`.

use crate::config::DispatchConfig;
use crate::tasks::CancellationToken;
use crate::App;
use chrono::{DateTime, Utc};
use herald_core::channel::{Channel, Identity};
use herald_core::delivery::{carries_endpoint, token_kind, Delivery, Provider};
use herald_core::history::Actor;
use herald_core::service::{self, Ctx};
use herald_core::store::{Claim, Completion, GateOutcome, StoreError};
use herald_core::{Env, EnvScope};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The longest `Retry-After` honoured: a provider asking for more is retried after this long
/// (and an absurd value cannot overflow the clock).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The reason of a message no provider can deliver.
pub const NO_PROVIDER: &str = "no_provider";

/// When a retryable failure is tried again: `None` once the schedule is spent. `attempt` is the
/// provider calls made before this one (so the first retry waits `backoff[0]`); a longer
/// `Retry-After` wins, up to [`MAX_RETRY_AFTER`].
pub fn next_due(
    backoff: &[u64],
    attempt: u32,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let wait = Duration::from_secs(*backoff.get(attempt as usize)?);
    let wait = wait.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
    Some(now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX))
}

/// What a provider is looked up by within one round: identities alike in these get the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ProviderKey {
    env: Env,
    channel: Channel,
    own_endpoint: bool,
    token: Option<String>,
}

/// One round: sends the digests due at `now` (see [`flush_digests`]), then claims up to
/// `dispatch.batch_size` outbox entries due at `now`, sends them concurrently and records each
/// outcome. Returns how many digests and entries were claimed.
pub async fn step(app: &App, now: DateTime<Utc>) -> Result<usize, StoreError> {
    step_until(app, now, &CancellationToken::new()).await
}

/// [`step`], stopping early once `cancel` fires: sends under way finish (each is bounded by
/// `dispatch.send_timeout_secs`) and are recorded; claims not yet sent are released, due as
/// they were, for this or another node to pick up.
pub async fn step_until(
    app: &App,
    now: DateTime<Utc>,
    cancel: &CancellationToken,
) -> Result<usize, StoreError> {
    let config = &app.config.dispatch;
    let lease = Duration::from_secs(config.lease_secs);
    let digests = if cancel.is_cancelled() {
        0
    } else {
        flush_digests(app, now).await?
    };
    let claims = app
        .store
        .claim_due(now, lease, config.batch_size.max(1))
        .await?;
    let claimed = claims.len();
    let (to_send, to_release): (Vec<_>, Vec<_>) = if cancel.is_cancelled() {
        (Vec::new(), claims)
    } else {
        (claims, Vec::new())
    };
    if !to_release.is_empty() {
        app.store.release(&to_release).await?;
        tracing::info!(
            released = to_release.len(),
            "shutting down: released claims"
        );
    }
    // The provider of each (environment, channel, kind of identity) is looked up once per round,
    // not per message, and before anything is sent: a failed lookup gives the whole round back.
    // (The kind: whether the identity carries its own endpoint, and for push its token's kind,
    // which decides the provider: an iOS FCM token is not sent where an APNs one is.)
    let mut providers: HashMap<ProviderKey, Option<Arc<dyn Provider>>> = HashMap::new();
    let key = |env: Env, identity: &Identity| ProviderKey {
        env,
        channel: identity.channel,
        own_endpoint: carries_endpoint(identity),
        token: token_kind(identity).map(str::to_owned),
    };
    for claim in &to_send {
        let entry = &claim.entry;
        let key = key(entry.env, &entry.identity);
        if providers.contains_key(&key) {
            continue;
        }
        match app.providers.provider(entry.env, &entry.identity).await {
            Ok(provider) => {
                providers.insert(key, provider);
            }
            Err(e) => {
                app.store.release(&to_send).await?;
                return Err(e);
            }
        }
    }
    // Each send on its own task, so slow providers wait side by side.
    let mut sends = tokio::task::JoinSet::new();
    for claim in to_send {
        let provider = providers[&key(claim.entry.env, &claim.entry.identity)].clone();
        let app = app.clone();
        sends.spawn(async move { deliver(&app, &claim, provider, now).await });
    }
    let mut first_error = None;
    while let Some(joined) = sends.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not record a delivery outcome");
                first_error.get_or_insert(e);
            }
            // The claim expires and the entry is sent again: at least once.
            Err(e) => tracing::error!(error = %e, "a delivery task panicked"),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(claimed + digests),
    }
}

/// Claims up to `dispatch.batch_size` digests due at `now` and turns each into its messages
/// ([`service::dispatch::flush_digest`]), which are queued (due at `now`, or when the user's
/// quiet hours end) for the outbox. A digest that fails is left to its lease: claimed again
/// once it runs out, never sent twice; one whose render still fails at its
/// [`herald_core::digest::MAX_CLAIMS`]-th claim is given up, its messages logged `failed`.
/// Returns how many were claimed.
pub async fn flush_digests(app: &App, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let config = &app.config.dispatch;
    let lease = Duration::from_secs(config.lease_secs);
    let claims = app
        .store
        .claim_digests(now, lease, config.batch_size.max(1))
        .await?;
    if claims.is_empty() {
        return Ok(0);
    }
    let base = app.config.public_base();
    let links = crate::api::hosted::link_service(app, &base);
    let d = crate::api::trigger::dispatcher(app, &links);
    for claim in &claims {
        match service::dispatch::flush_digest(&d, claim, now).await {
            Ok(true) => {
                tracing::debug!(digest = %claim.id, items = claim.items.len(), "digest sent")
            }
            Ok(false) => {
                tracing::info!(digest = %claim.id, "digest claim expired before it was sent; left to its new owner")
            }
            Err(e) => {
                tracing::warn!(digest = %claim.id, error = %e, "could not send a digest; it is claimed again when its lease runs out")
            }
        }
    }
    Ok(claims.len())
}

/// Sends one claimed entry through `provider` (the directory's answer for it) and records the
/// outcome.
async fn deliver(
    app: &App,
    claim: &Claim,
    provider: Option<Arc<dyn Provider>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let config: &DispatchConfig = &app.config.dispatch;
    let entry = &claim.entry;
    // A smart step whose wait is over is sent only if nobody engaged with an earlier message.
    if entry.gate.is_some() {
        match app.store.open_gate(claim, now).await? {
            GateOutcome::Open => {}
            GateOutcome::Closed(message) => {
                tracing::debug!(message = %message.id, "smart step skipped: the user engaged");
                return Ok(());
            }
            GateOutcome::Stale => {
                tracing::info!(message = %entry.message_id, "claim expired before its gate was opened; left to its new owner");
                return Ok(());
            }
        }
    }
    let outcome = match provider {
        None => Delivery::Failed {
            reason: NO_PROVIDER.to_owned(),
            identity_invalid: false,
        },
        Some(provider) => {
            let timeout = Duration::from_secs(config.send_timeout_secs);
            match tokio::time::timeout(timeout, provider.send(&entry.outgoing())).await {
                Ok(outcome) => outcome,
                Err(_) => Delivery::Retry {
                    reason: format!("the provider did not answer within {}s", timeout.as_secs()),
                    after: None,
                },
            }
        }
    };
    let next = match &outcome {
        Delivery::Retry { after, .. } => {
            next_due(&config.retry_backoff_secs, entry.attempt, *after, now)
        }
        _ => None,
    };
    match app.store.complete(claim, &outcome, now, next).await? {
        Completion::Stale => {
            tracing::info!(message = %entry.message_id, "claim expired before the outcome was recorded; left to its new owner");
        }
        Completion::Recorded {
            message,
            invalid_identity,
            ..
        } => {
            tracing::debug!(message = %message.id, status = %message.status, "delivery recorded");
            if let (Some(identity), Delivery::Failed { reason, .. }) = (invalid_identity, &outcome)
            {
                mark_invalid(app, &message.distinct_id, entry.env, identity, reason, now).await;
            }
        }
    }
    Ok(())
}

/// Marks `dead` `perma_status: invalid` with the provider's `reason` on the user's profile,
/// through the identity health use case (the profiles service's locked edit, recorded in history
/// with actor `dispatch`). A user deleted since is fine.
async fn mark_invalid(
    app: &App,
    id: &herald_core::DistinctId,
    env: herald_core::Env,
    dead: Identity,
    reason: &str,
    now: DateTime<Utc>,
) {
    let ctx = Ctx::new(
        EnvScope::operator(env),
        Actor::new("dispatch", "worker"),
        now,
    );
    match service::health::mark_invalid(app.store.as_ref(), &ctx, id, &dead, reason).await {
        Ok(_) => tracing::info!(channel = dead.channel.as_str(), "identity marked invalid"),
        Err(e) => tracing::warn!(error = %e, "could not mark an invalid identity"),
    }
}

/// Runs [`step`] at `now` until a round claims nothing; returns how many entries were claimed in
/// all. Tests call this (or [`drain_at`] with a later clock, to reach retries).
pub async fn drain(app: &App) -> usize {
    drain_at(app, Utc::now()).await
}

/// [`drain`] as if the clock read `now`.
pub async fn drain_at(app: &App, now: DateTime<Utc>) -> usize {
    let mut total = 0;
    loop {
        match step(app, now).await {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("dispatch step failed: {e}"),
        }
    }
}

/// The `dispatch` background task: steps while work is due, waits `poll_interval_ms` when idle
/// or after a store error, and at shutdown finishes the sends under way and releases the rest.
pub async fn run(app: App, cancel: CancellationToken) -> Result<(), String> {
    let idle = Duration::from_millis(app.config.dispatch.poll_interval_ms.max(1));
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let wait = match step_until(&app, Utc::now(), &cancel).await {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "dispatch step failed; trying again shortly");
                true
            }
        };
        if wait {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(idle) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let now = Utc::now();
        let backoff = [10, 60];
        let secs = |d: Option<DateTime<Utc>>| d.map(|d| (d - now).num_seconds());
        assert_eq!(secs(next_due(&backoff, 0, None, now)), Some(10));
        assert_eq!(secs(next_due(&backoff, 1, None, now)), Some(60));
        assert_eq!(secs(next_due(&backoff, 2, None, now)), None, "spent");
        assert_eq!(secs(next_due(&[], 0, None, now)), None, "no retries");
    }

    #[test]
    fn a_longer_retry_after_wins_up_to_a_day() {
        let now = Utc::now();
        let secs = |d: Option<DateTime<Utc>>| d.map(|d| (d - now).num_seconds());
        let after = |s| Some(Duration::from_secs(s));
        assert_eq!(secs(next_due(&[10], 0, after(5), now)), Some(10));
        assert_eq!(secs(next_due(&[10], 0, after(120), now)), Some(120));
        assert_eq!(
            secs(next_due(&[10], 0, after(u64::MAX), now)),
            Some(24 * 3600)
        );
    }
}
