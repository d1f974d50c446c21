//! The notification log: one message per (trigger, recipient, channel), its status, and every
//! status it went through. The rules of which status may follow which live here
//! ([`MessageStatus::can_become`]); the store and the worker only record what they allow.

use crate::channel::{Channel, Identity};
use crate::env::Env;
use crate::ids::DistinctId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Rendered and waiting for a worker (also between retries).
    Queued,
    /// Accepted by the provider.
    Sent,
    /// The provider confirmed delivery.
    Delivered,
    /// Failed for good.
    Failed,
    /// Never sent: see its [`SkipReason`].
    Skipped,
    /// A `first_success` fallback, rendered and recorded at trigger time: it becomes `queued`
    /// only once the message it waits for has failed for good, and `skipped`
    /// (`sent_on_other_channel`) once that one (or one before it) was sent.
    Waiting,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 6] = [
        MessageStatus::Waiting,
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Failed,
        MessageStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Skipped => "skipped",
            MessageStatus::Waiting => "waiting",
        }
    }

    pub fn from_name(name: &str) -> Option<MessageStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether a message may move from `self` to `next`:
    /// - `waiting → queued` (the channel before it failed for good) `| skipped` (a channel before
    ///   it was sent);
    /// - `queued → sent | failed`, and `queued → queued` (a retry is recorded);
    /// - `sent → delivered | failed` (a late bounce);
    /// - nothing leaves `delivered`, `failed` or `skipped`.
    ///
    /// Nothing goes back to `queued` from `sent`: a message recorded as sent is never sent again;
    /// and only a waiting fallback is skipped after the trigger.
    pub fn can_become(self, next: MessageStatus) -> bool {
        use MessageStatus::*;
        matches!(
            (self, next),
            (Waiting, Queued | Skipped)
                | (Queued, Queued | Sent | Failed)
                | (Sent, Delivered | Failed)
        )
    }

    /// No status follows this one.
    pub fn is_final(self) -> bool {
        Self::ALL.into_iter().all(|next| !self.can_become(next))
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message was not sent on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The user's status is `disabled`.
    UserDisabled,
    /// The user opted out of the workflow's category (or it defaults to opt-out).
    CategoryOptedOut,
    /// The user turned this channel off for the category.
    ChannelOptedOut,
    /// The user restricted this channel to notifications that cannot be opted out of.
    ChannelRestricted,
    /// The user has no identity on the channel.
    NoIdentity,
    /// Every identity on the channel is disabled or permanently failed.
    IdentityInvalid,
    /// No provider is configured for the channel in the environment, and the identity does not
    /// carry its own endpoint.
    NoProvider,
    /// The channel's provider does not deliver the user's kind of push token (an APNs device
    /// token when `iospush` is FCM, an FCM token when it is APNs and no FCM provider is
    /// configured), and no other provider does ([`crate::delivery::route`]).
    ProviderMismatch,
    /// A `first_success` fallback not needed: a channel before it in the order was sent.
    SentOnOtherChannel,
    /// A `smart` step not needed: the user engaged (per the policy's `until`) with an earlier
    /// message of the same trigger before its wait was over.
    Engaged,
    /// The user had as many triggers of the workflow in its throttle's window as it allows.
    Throttled,
    /// Collected into the user's digest of the workflow, sent with it later.
    Digested,
}

impl SkipReason {
    pub const ALL: [SkipReason; 12] = [
        SkipReason::UserDisabled,
        SkipReason::CategoryOptedOut,
        SkipReason::ChannelOptedOut,
        SkipReason::ChannelRestricted,
        SkipReason::NoIdentity,
        SkipReason::IdentityInvalid,
        SkipReason::NoProvider,
        SkipReason::ProviderMismatch,
        SkipReason::SentOnOtherChannel,
        SkipReason::Engaged,
        SkipReason::Throttled,
        SkipReason::Digested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UserDisabled => "user_disabled",
            SkipReason::CategoryOptedOut => "category_opted_out",
            SkipReason::ChannelOptedOut => "channel_opted_out",
            SkipReason::ChannelRestricted => "channel_restricted",
            SkipReason::NoIdentity => "no_identity",
            SkipReason::IdentityInvalid => "identity_invalid",
            SkipReason::NoProvider => "no_provider",
            SkipReason::ProviderMismatch => "provider_mismatch",
            SkipReason::SentOnOtherChannel => "sent_on_other_channel",
            SkipReason::Engaged => "engaged",
            SkipReason::Throttled => "throttled",
            SkipReason::Digested => "digested",
        }
    }

    pub fn from_name(name: &str) -> Option<SkipReason> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl From<crate::preference::Skip> for SkipReason {
    fn from(skip: crate::preference::Skip) -> Self {
        use crate::preference::Skip;
        match skip {
            Skip::UserDisabled => SkipReason::UserDisabled,
            Skip::CategoryOptedOut => SkipReason::CategoryOptedOut,
            Skip::ChannelOptedOut => SkipReason::ChannelOptedOut,
            Skip::ChannelRestricted => SkipReason::ChannelRestricted,
            Skip::NoIdentity => SkipReason::NoIdentity,
            Skip::IdentityInvalid => SkipReason::IdentityInvalid,
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason of a queued message held by quiet hours.
pub const HELD: &str = "quiet_hours";

/// One status a message went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: MessageStatus,
    pub at: DateTime<Utc>,
    /// The skip reason's wire name, or the provider's failure or retry reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A move the rules forbid ([`MessageStatus::can_become`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} message cannot become {to}")]
pub struct IllegalTransition {
    pub from: MessageStatus,
    pub to: MessageStatus,
}

/// What [`Message::follow_step`] did to a waiting message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The message before it has not finished: still waiting for it.
    Unchanged,
    /// Its turn: `queued`, due now.
    Queued,
    /// `skipped`: never sent, and the message after it follows in turn.
    Closed,
    /// A `smart` step: still `waiting`, due at this time (its gate decides then).
    Due(DateTime<Utc>),
}

/// An engagement report about a message that never went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {status} message was never sent, so it cannot be seen, clicked or delivered")]
pub struct NotEngageable {
    pub status: MessageStatus,
}

/// One notification to one recipient on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub env: Env,
    /// The workflow's slug.
    pub workflow: String,
    /// The workflow's category slug when the message was made.
    pub category: Option<String>,
    pub distinct_id: DistinctId,
    pub channel: Channel,
    /// The identity the message goes (or went) to; none when skipped before one was chosen.
    pub identity: Option<Identity>,
    pub status: MessageStatus,
    /// The skip reason's wire name, or the last failure or retry reason.
    pub reason: Option<String>,
    /// The provider's id for the message, once sent.
    pub provider_id: Option<String>,
    /// Every status, oldest first; the last is `status`.
    pub history: Vec<StatusChange>,
    pub created_at: DateTime<Utc>,
    /// The trigger (one recipient of one trigger call) the message belongs to.
    pub trigger_id: String,
    /// The caller's `$idempotency_key`, when given.
    pub idempotency_key: Option<String>,
    /// Provider calls made so far.
    pub attempts: u32,
    /// When the user first saw it (inbox seen or read, email opened, a `seen` event, or a click).
    pub seen_at: Option<DateTime<Utc>>,
    /// When the user first clicked it (a tracked email link, a `clicked` event).
    pub clicked_at: Option<DateTime<Utc>>,
    /// Held by the user's quiet hours: not sent before this time ([`crate::quiet`]).
    pub held_until: Option<DateTime<Utc>>,
}

/// What every message starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageOrigin {
    pub id: String,
    pub env: Env,
    pub workflow: String,
    pub category: Option<String>,
    pub distinct_id: DistinctId,
    pub channel: Channel,
    pub trigger_id: String,
    pub idempotency_key: Option<String>,
}

impl Message {
    /// A message waiting for a worker, to `identity`.
    pub fn queued(origin: MessageOrigin, identity: Identity, at: DateTime<Utc>) -> Message {
        Message::start(origin, Some(identity), MessageStatus::Queued, None, at)
    }

    /// A `first_success` fallback to `identity`, waiting for `previous` (the message on the
    /// channel before it in the order) to fail for good; its reason names that message.
    pub fn waiting(
        origin: MessageOrigin,
        identity: Identity,
        previous: &Message,
        at: DateTime<Utc>,
    ) -> Message {
        let reason = format!("waits for {} ({})", previous.id, previous.channel.as_str());
        Message::start(
            origin,
            Some(identity),
            MessageStatus::Waiting,
            Some(reason),
            at,
        )
    }

    /// A message that is not sent, and why.
    pub fn skipped(origin: MessageOrigin, reason: SkipReason, at: DateTime<Utc>) -> Message {
        Message::start(
            origin,
            None,
            MessageStatus::Skipped,
            Some(reason.as_str().to_owned()),
            at,
        )
    }

    fn start(
        origin: MessageOrigin,
        identity: Option<Identity>,
        status: MessageStatus,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> Message {
        let MessageOrigin {
            id,
            env,
            workflow,
            category,
            distinct_id,
            channel,
            trigger_id,
            idempotency_key,
        } = origin;
        Message {
            id,
            env,
            workflow,
            category,
            distinct_id,
            channel,
            identity,
            status,
            reason: reason.clone(),
            provider_id: None,
            history: vec![StatusChange { status, at, reason }],
            created_at: at,
            trigger_id,
            idempotency_key,
            attempts: 0,
            seen_at: None,
            clicked_at: None,
            held_until: None,
        }
    }

    /// What the message started with (its id included).
    pub fn origin(&self) -> MessageOrigin {
        MessageOrigin {
            id: self.id.clone(),
            env: self.env,
            workflow: self.workflow.clone(),
            category: self.category.clone(),
            distinct_id: self.distinct_id.clone(),
            channel: self.channel,
            trigger_id: self.trigger_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
        }
    }

    /// Holds a queued message until `until` (the end of the user's quiet hours): its entry is
    /// not due before then, and its status says why (`quiet_hours`). A waiting fallback is not
    /// held: it can only wake once the held message before it has failed, after the hold.
    pub fn hold(&mut self, until: DateTime<Utc>) {
        if self.status == MessageStatus::Queued && until > self.created_at {
            self.held_until = Some(until);
            self.reason = Some(HELD.to_owned());
            if let Some(first) = self.history.first_mut() {
                first.reason = Some(HELD.to_owned());
            }
        }
    }

    /// When its outbox entry is first due: when it was made, or when its hold ends.
    pub fn due_at(&self) -> DateTime<Utc> {
        self.held_until.unwrap_or(self.created_at)
    }

    /// Moves the message to `next` if the rules allow it, recording it in the history; else the
    /// message is unchanged.
    pub fn transition(
        &mut self,
        next: MessageStatus,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) -> Result<(), IllegalTransition> {
        if !self.status.can_become(next) {
            return Err(IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        self.status = next;
        if reason.is_some() {
            self.reason = reason.clone();
        }
        self.history.push(StatusChange {
            status: next,
            at,
            reason,
        });
        Ok(())
    }

    /// Moves a waiting fallback on once `previous`, the message it waits for, has moved:
    /// - `previous` failed for good: its turn, `queued` (reason: `<channel> failed`);
    /// - `previous` was sent or delivered, or was itself closed (`skipped`): `skipped` with
    ///   `sent_on_other_channel`, and it never will be sent;
    /// - `previous` is still queued or waiting: nothing changes (`Ok(false)`).
    ///
    /// `Ok(true)` when the message moved. Only a waiting message moves.
    pub fn follow(
        &mut self,
        previous: &Message,
        at: DateTime<Utc>,
    ) -> Result<bool, IllegalTransition> {
        use MessageStatus::*;
        let (next, reason) = match previous.status {
            Failed => (Queued, format!("{} failed", previous.channel.as_str())),
            Sent | Delivered | Skipped => {
                (Skipped, SkipReason::SentOnOtherChannel.as_str().to_owned())
            }
            Queued | Waiting => return Ok(false),
        };
        // `queued → queued` is a retry's move, not a fallback's: only a waiting message follows.
        if self.status != Waiting {
            return Err(IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        self.transition(next, at, Some(reason)).map(|()| true)
    }

    /// Moves a waiting message on once `previous` (the message before it in its chain) has
    /// moved. Without a `gate` (a `first_success` fallback) this is [`Message::follow`]. With
    /// one (a `smart` step):
    /// - `previous` sent or delivered: still waiting, now due `gate.wait` later
    ///   ([`Followed::Due`]; when due, [`Message::open_gate`] decides);
    /// - `previous` failed for good: its turn at once, `queued`, as under `first_success`;
    /// - `previous` skipped (the user engaged): `skipped` with `engaged`;
    /// - `previous` still queued or waiting: nothing changes.
    pub fn follow_step(
        &mut self,
        previous: &Message,
        at: DateTime<Utc>,
        gate: Option<&crate::engagement::Gate>,
    ) -> Result<Followed, IllegalTransition> {
        use MessageStatus::*;
        let Some(gate) = gate else {
            return Ok(match self.follow(previous, at)? {
                false => Followed::Unchanged,
                true if self.status == Queued => Followed::Queued,
                true => Followed::Closed,
            });
        };
        if self.status != Waiting {
            return Err(IllegalTransition {
                from: self.status,
                to: Queued,
            });
        }
        match previous.status {
            Queued | Waiting => Ok(Followed::Unchanged),
            Failed => {
                let reason = format!("{} failed", previous.channel.as_str());
                self.transition(Queued, at, Some(reason))?;
                Ok(Followed::Queued)
            }
            Skipped => {
                let reason = SkipReason::Engaged.as_str().to_owned();
                self.transition(Skipped, at, Some(reason))?;
                Ok(Followed::Closed)
            }
            Sent | Delivered => {
                let due = at + gate.wait;
                self.reason = Some(format!(
                    "due at {} unless {} on {} ({})",
                    due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    gate.until,
                    previous.id,
                    previous.channel.as_str()
                ));
                Ok(Followed::Due(due))
            }
        }
    }

    /// A `smart` step whose wait is over: [`crate::engagement::decide`] over the `earlier`
    /// messages of its trigger. Continue: `queued` (sent next, `true`); stop: `skipped` with
    /// `engaged` (`false`). Only a waiting message passes its gate.
    pub fn open_gate(
        &mut self,
        earlier: &[crate::engagement::Engagement],
        until: crate::engagement::Until,
        at: DateTime<Utc>,
    ) -> Result<bool, IllegalTransition> {
        use crate::engagement::{decide, Step};
        let (next, reason) = match decide(earlier, until) {
            Step::Continue => (
                MessageStatus::Queued,
                format!("not {until} on an earlier channel"),
            ),
            Step::Stop => (
                MessageStatus::Skipped,
                SkipReason::Engaged.as_str().to_owned(),
            ),
        };
        if self.status != MessageStatus::Waiting {
            return Err(IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        self.transition(next, at, Some(reason))?;
        Ok(next == MessageStatus::Queued)
    }

    /// How the user engaged with this message so far.
    pub fn engagement(&self) -> crate::engagement::Engagement {
        crate::engagement::Engagement {
            seen_at: self.seen_at,
            clicked_at: self.clicked_at,
        }
    }

    /// Applies an engagement report: `seen` sets `seen_at`, `clicked` sets `clicked_at` and
    /// `seen_at` (each only the first time), `delivered` moves a sent message to `delivered`.
    /// Only a message that went out (`sent`, `delivered`, or `failed` after a late bounce) can
    /// be engaged with; a repeated report changes nothing. `Ok(true)` when something changed.
    pub fn engage(
        &mut self,
        event: crate::engagement::Event,
        at: DateTime<Utc>,
    ) -> Result<bool, NotEngageable> {
        use crate::engagement::Event;
        use MessageStatus::*;
        let went_out = matches!(self.status, Sent | Delivered | Failed) && self.provider_sent();
        if !went_out {
            return Err(NotEngageable {
                status: self.status,
            });
        }
        let before = (self.seen_at, self.clicked_at, self.status);
        match event {
            Event::Seen => {
                self.seen_at.get_or_insert(at);
            }
            Event::Clicked => {
                self.clicked_at.get_or_insert(at);
                self.seen_at.get_or_insert(at);
            }
            Event::Delivered => {
                if self.status == Sent {
                    self.transition(Delivered, at, None)
                        .expect("a sent message may become delivered");
                }
            }
        }
        Ok(before != (self.seen_at, self.clicked_at, self.status))
    }

    /// Whether a provider ever accepted this message (its history holds `sent`).
    fn provider_sent(&self) -> bool {
        self.history.iter().any(|c| c.status == MessageStatus::Sent)
    }

    /// Records the outcome of one provider call on a queued message: `sent` with the provider's
    /// id, `queued` again for a retry, `failed` for good. Counts the attempt.
    pub fn record(
        &mut self,
        outcome: &crate::delivery::Delivery,
        at: DateTime<Utc>,
    ) -> Result<(), IllegalTransition> {
        use crate::delivery::Delivery;
        let (next, reason) = match outcome {
            Delivery::Sent { .. } => (MessageStatus::Sent, None),
            Delivery::Retry { reason, .. } => (MessageStatus::Queued, Some(reason.clone())),
            Delivery::Failed { reason, .. } => (MessageStatus::Failed, Some(reason.clone())),
        };
        // Only a queued message is handed to a provider: a late outcome for any other is refused
        // (a sent message stays sent, whatever a second call would have said).
        if self.status != MessageStatus::Queued {
            return Err(IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        self.transition(next, at, reason)?;
        self.attempts += 1;
        if let Delivery::Sent { provider_id } = outcome {
            self.provider_id = provider_id.clone();
        }
        Ok(())
    }

    /// Records one provider outcome as the outbox settles it: a retry with a next attempt
    /// (`next_due`) stays queued and is due again then; a retry with none (its retries are
    /// spent) fails with the retry's reason. Returns when the message is due again, if ever.
    pub fn settle(
        &mut self,
        outcome: &crate::delivery::Delivery,
        at: DateTime<Utc>,
        next_due: Option<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>, IllegalTransition> {
        use crate::delivery::Delivery;
        match (outcome, next_due) {
            (Delivery::Retry { .. }, Some(due)) => self.record(outcome, at).map(|()| Some(due)),
            (Delivery::Retry { reason, .. }, None) => {
                let spent = Delivery::Failed {
                    reason: reason.clone(),
                    identity_invalid: false,
                };
                self.record(&spent, at).map(|()| None)
            }
            _ => self.record(outcome, at).map(|()| None),
        }
    }
}

/// What a provider said about a message after accepting it: a status callback (Twilio's
/// `MessageStatus`) or a bounce report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LateAnswer {
    /// The provider confirmed delivery: `sent → delivered`.
    Delivered,
    /// It failed for good after all (a late hard bounce, `undelivered`): `sent → failed`.
    /// `identity_invalid`: the address itself is dead, and its identity is marked.
    Failed {
        reason: String,
        identity_invalid: bool,
    },
    /// Worth recording, not a new status (a soft bounce, a complaint): noted in the message's
    /// history and reason, its status unchanged.
    Note { reason: String },
}

impl Message {
    /// Records a late answer ([`LateAnswer`]). Only a `sent` message moves (`delivered` or
    /// `failed`); a note is added to a sent or delivered one. `Ok(false)`: the answer was heard
    /// already (the message is in that status, or the last note says the same), so a repeated
    /// callback changes nothing. Any other move is the transition table's refusal.
    pub fn hear(
        &mut self,
        answer: &LateAnswer,
        at: DateTime<Utc>,
    ) -> Result<bool, IllegalTransition> {
        let (next, reason) = match answer {
            LateAnswer::Delivered => (MessageStatus::Delivered, None),
            LateAnswer::Failed { reason, .. } => (MessageStatus::Failed, Some(reason.clone())),
            LateAnswer::Note { reason } => {
                if !matches!(self.status, MessageStatus::Sent | MessageStatus::Delivered) {
                    return Err(IllegalTransition {
                        from: self.status,
                        to: self.status,
                    });
                }
                let last = self.history.last().and_then(|c| c.reason.as_deref());
                if last == Some(reason.as_str()) {
                    return Ok(false);
                }
                self.reason = Some(reason.clone());
                self.history.push(StatusChange {
                    status: self.status,
                    at,
                    reason: Some(reason.clone()),
                });
                return Ok(true);
            }
        };
        if self.status == next {
            return Ok(false);
        }
        // `queued → failed` is the worker's move: a callback racing the worker's own record
        // must not take it (the outbox entry is the worker's to settle).
        if self.status != MessageStatus::Sent {
            return Err(IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        self.transition(next, at, reason).map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Delivery;
    use serde_json::json;

    fn origin() -> MessageOrigin {
        MessageOrigin {
            id: "m1".into(),
            env: Env::Test,
            workflow: "w".into(),
            category: Some("news".into()),
            distinct_id: DistinctId::parse("ada").unwrap(),
            channel: Channel::Email,
            trigger_id: "t1".into(),
            idempotency_key: Some("k".into()),
        }
    }

    fn email() -> Identity {
        Identity::parse(
            Channel::Email,
            &json!("ada@example.com"),
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_transition_table() {
        use MessageStatus::*;
        let allowed = [
            (Waiting, Queued),
            (Waiting, Skipped),
            (Queued, Queued),
            (Queued, Sent),
            (Queued, Failed),
            (Sent, Delivered),
            (Sent, Failed),
        ];
        for from in MessageStatus::ALL {
            for to in MessageStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        assert!(
            !Sent.can_become(Queued),
            "a sent message is never queued again"
        );
        assert!(
            !Queued.can_become(Skipped),
            "only a waiting fallback is skipped after the trigger"
        );
        let finals: Vec<_> = MessageStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(finals, vec![Delivered, Failed, Skipped]);
    }

    #[test]
    fn wire_names_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::from_name(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        for r in SkipReason::ALL {
            assert_eq!(SkipReason::from_name(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), json!(r.as_str()));
        }
        let names: Vec<_> = SkipReason::ALL.map(SkipReason::as_str).to_vec();
        assert_eq!(
            names,
            [
                "user_disabled",
                "category_opted_out",
                "channel_opted_out",
                "channel_restricted",
                "no_identity",
                "identity_invalid",
                "no_provider",
                "provider_mismatch",
                "sent_on_other_channel",
                "engaged",
                "throttled",
                "digested"
            ]
        );
        assert_eq!(MessageStatus::from_name("triggered"), None);
    }

    #[test]
    fn a_retried_then_sent_message_records_every_step_and_is_never_sent_again() {
        let t0 = Utc::now();
        let mut m = Message::queued(origin(), email(), t0);
        let retry = Delivery::Retry {
            reason: "HTTP 503".into(),
            after: None,
        };
        m.record(&retry, t0).unwrap();
        m.record(
            &Delivery::Sent {
                provider_id: Some("SM1".into()),
            },
            t0,
        )
        .unwrap();
        assert_eq!(m.status, MessageStatus::Sent);
        assert_eq!(m.attempts, 2);
        assert_eq!(m.provider_id.as_deref(), Some("SM1"));
        assert_eq!(
            m.history
                .iter()
                .map(|c| (c.status, c.reason.as_deref()))
                .collect::<Vec<_>>(),
            vec![
                (MessageStatus::Queued, None),
                (MessageStatus::Queued, Some("HTTP 503")),
                (MessageStatus::Sent, None),
            ]
        );
        // A second outcome for a sent message (a duplicate claim) changes nothing.
        let before = m.clone();
        for outcome in [
            retry,
            Delivery::Sent { provider_id: None },
            Delivery::Failed {
                reason: "x".into(),
                identity_invalid: false,
            },
        ] {
            assert!(m.record(&outcome, t0).is_err());
            assert_eq!(m, before);
        }
        assert_eq!(
            m.transition(MessageStatus::Queued, t0, None).unwrap_err(),
            IllegalTransition {
                from: MessageStatus::Sent,
                to: MessageStatus::Queued
            }
        );
        // A late bounce is still recorded.
        m.transition(MessageStatus::Failed, t0, Some("bounced".into()))
            .unwrap();
        assert_eq!(m.reason.as_deref(), Some("bounced"));
    }

    #[test]
    fn settling_a_retry_without_a_next_attempt_fails_the_message() {
        let t0 = Utc::now();
        let retry = Delivery::Retry {
            reason: "HTTP 503".into(),
            after: None,
        };
        let mut m = Message::queued(origin(), email(), t0);
        let due = t0 + chrono::Duration::seconds(30);
        assert_eq!(m.settle(&retry, t0, Some(due)), Ok(Some(due)));
        assert_eq!((m.status, m.attempts), (MessageStatus::Queued, 1));
        assert_eq!(m.settle(&retry, t0, None), Ok(None));
        assert_eq!(m.status, MessageStatus::Failed);
        assert_eq!((m.reason.as_deref(), m.attempts), (Some("HTTP 503"), 2));
        let sent = Delivery::Sent { provider_id: None };
        assert!(m.settle(&sent, t0, Some(due)).is_err());
    }

    #[test]
    fn a_held_message_says_why_and_is_due_when_its_hold_ends() {
        let t0 = Utc::now();
        let until = t0 + chrono::Duration::hours(3);
        let mut m = Message::queued(origin(), email(), t0);
        assert_eq!(m.due_at(), t0);
        m.hold(until);
        assert_eq!((m.held_until, m.due_at()), (Some(until), until));
        assert_eq!(m.reason.as_deref(), Some(HELD));
        assert_eq!(m.history[0].reason.as_deref(), Some(HELD));
        // A hold in the past, a waiting fallback and a skipped message are not held.
        let mut late = Message::queued(origin(), email(), t0);
        late.hold(t0 - chrono::Duration::seconds(1));
        assert_eq!((late.held_until, late.reason), (None, None));
        let mut fallback = Message::waiting(with("m2", Channel::Sms), sms(), &m, t0);
        fallback.hold(until);
        assert_eq!(fallback.held_until, None);
        let mut skipped = Message::skipped(origin(), SkipReason::NoIdentity, t0);
        skipped.hold(until);
        assert_eq!(skipped.held_until, None);
        // Sent after its hold, it keeps when it was held until.
        m.record(&Delivery::Sent { provider_id: None }, until)
            .unwrap();
        assert_eq!((m.status, m.held_until), (MessageStatus::Sent, Some(until)));
    }

    #[test]
    fn a_skipped_message_carries_its_reason_and_goes_nowhere() {
        let m0 = Message::skipped(origin(), SkipReason::NoProvider, Utc::now());
        assert_eq!(m0.reason.as_deref(), Some("no_provider"));
        assert_eq!(m0.identity, None);
        assert_eq!(m0.history.len(), 1);
        for next in MessageStatus::ALL {
            let mut m = m0.clone();
            assert!(m.transition(next, Utc::now(), None).is_err());
            assert_eq!(m, m0);
        }
        let mut m = m0.clone();
        assert!(m
            .record(&Delivery::Sent { provider_id: None }, Utc::now())
            .is_err());
    }

    fn with(id: &str, channel: Channel) -> MessageOrigin {
        MessageOrigin {
            id: id.into(),
            channel,
            ..origin()
        }
    }

    fn sms() -> Identity {
        Identity::parse(Channel::Sms, &json!("+14155550100"), &Default::default()).unwrap()
    }

    #[test]
    fn a_fallback_waits_then_is_queued_when_the_channel_before_it_fails_for_good() {
        let t0 = Utc::now();
        let mut first = Message::queued(with("m1", Channel::Email), email(), t0);
        let mut fallback = Message::waiting(with("m2", Channel::Sms), sms(), &first, t0);
        assert_eq!(fallback.status, MessageStatus::Waiting);
        assert_eq!(fallback.reason.as_deref(), Some("waits for m1 (email)"));
        assert_eq!(fallback.identity, Some(sms()));
        // A retry of the first changes nothing for the fallback.
        let retry = Delivery::Retry {
            reason: "HTTP 503".into(),
            after: None,
        };
        first.record(&retry, t0).unwrap();
        let before = fallback.clone();
        assert_eq!(fallback.follow(&first, t0), Ok(false));
        assert_eq!(fallback, before);
        // Failed for good (here: the retries are spent): the fallback's turn.
        first.settle(&retry, t0, None).unwrap();
        assert_eq!(fallback.follow(&first, t0), Ok(true));
        assert_eq!(fallback.status, MessageStatus::Queued);
        assert_eq!(fallback.reason.as_deref(), Some("email failed"));
        assert_eq!(
            fallback
                .history
                .iter()
                .map(|c| c.status)
                .collect::<Vec<_>>(),
            [MessageStatus::Waiting, MessageStatus::Queued]
        );
        // Queued now: it is sent like any other, and follows nothing any more.
        assert!(fallback.follow(&first, t0).is_err());
        fallback
            .record(&Delivery::Sent { provider_id: None }, t0)
            .unwrap();
        assert_eq!(fallback.status, MessageStatus::Sent);
    }

    #[test]
    fn a_fallback_is_skipped_once_a_channel_before_it_was_sent() {
        let t0 = Utc::now();
        let mut first = Message::queued(with("m1", Channel::Email), email(), t0);
        let mut second = Message::waiting(with("m2", Channel::Sms), sms(), &first, t0);
        let mut third = Message::waiting(with("m3", Channel::Inbox), email(), &second, t0);
        first
            .record(&Delivery::Sent { provider_id: None }, t0)
            .unwrap();
        assert_eq!(second.follow(&first, t0), Ok(true));
        assert_eq!(
            (second.status, second.reason.as_deref()),
            (MessageStatus::Skipped, Some("sent_on_other_channel"))
        );
        // The one after it closes in turn: the chain stops at the first delivered.
        assert_eq!(third.follow(&second, t0), Ok(true));
        assert_eq!(third.status, MessageStatus::Skipped);
        assert!(third.status.is_final());
        // A queued message is never skipped by this rule.
        let mut queued = Message::queued(with("m4", Channel::Sms), sms(), t0);
        assert!(queued.follow(&first, t0).is_err());
        assert_eq!(queued.status, MessageStatus::Queued);
    }

    #[test]
    fn a_waiting_message_is_never_handed_to_a_provider() {
        let t0 = Utc::now();
        let first = Message::queued(with("m1", Channel::Email), email(), t0);
        let mut fallback = Message::waiting(with("m2", Channel::Sms), sms(), &first, t0);
        let before = fallback.clone();
        assert!(fallback
            .record(&Delivery::Sent { provider_id: None }, t0)
            .is_err());
        assert_eq!(fallback, before);
    }

    fn sent() -> Message {
        let t0 = Utc::now();
        let mut m = Message::queued(origin(), email(), t0);
        m.record(
            &Delivery::Sent {
                provider_id: Some("SM1".into()),
            },
            t0,
        )
        .unwrap();
        m
    }

    #[test]
    fn late_answers_move_a_sent_message_once() {
        let t1 = Utc::now();
        let mut m = sent();
        assert_eq!(m.hear(&LateAnswer::Delivered, t1), Ok(true));
        assert_eq!(m.status, MessageStatus::Delivered);
        let before = m.clone();
        assert_eq!(
            m.hear(&LateAnswer::Delivered, t1),
            Ok(false),
            "heard already"
        );
        assert_eq!(m, before);
        // Nothing leaves delivered.
        let failed = LateAnswer::Failed {
            reason: "undelivered".into(),
            identity_invalid: true,
        };
        assert!(m.hear(&failed, t1).is_err());
        assert_eq!(m, before);

        let mut m = sent();
        assert_eq!(m.hear(&failed, t1), Ok(true));
        assert_eq!(
            (m.status, m.reason.as_deref()),
            (MessageStatus::Failed, Some("undelivered"))
        );
        let before = m.clone();
        assert_eq!(m.hear(&failed, t1), Ok(false));
        assert!(m.hear(&LateAnswer::Delivered, t1).is_err());
        assert_eq!(m, before);
    }

    #[test]
    fn a_late_answer_never_takes_the_workers_move() {
        let t0 = Utc::now();
        for answer in [
            LateAnswer::Delivered,
            LateAnswer::Failed {
                reason: "x".into(),
                identity_invalid: false,
            },
            LateAnswer::Note {
                reason: "soft".into(),
            },
        ] {
            let mut m = Message::queued(origin(), email(), t0);
            let before = m.clone();
            assert!(m.hear(&answer, t0).is_err(), "{answer:?}");
            assert_eq!(m, before);
        }
    }

    #[test]
    fn a_note_is_recorded_once_and_keeps_the_status() {
        let t1 = Utc::now();
        let mut m = sent();
        let soft = LateAnswer::Note {
            reason: "soft bounce: mailbox full".into(),
        };
        assert_eq!(m.hear(&soft, t1), Ok(true));
        assert_eq!(m.status, MessageStatus::Sent);
        assert_eq!(m.reason.as_deref(), Some("soft bounce: mailbox full"));
        let last = m.history.last().unwrap();
        assert_eq!(
            (last.status, last.reason.as_deref()),
            (MessageStatus::Sent, Some("soft bounce: mailbox full"))
        );
        let len = m.history.len();
        assert_eq!(m.hear(&soft, t1), Ok(false));
        assert_eq!(m.history.len(), len);
        // A note does not stop a later hard answer.
        let hard = LateAnswer::Failed {
            reason: "hard".into(),
            identity_invalid: true,
        };
        assert_eq!(m.hear(&hard, t1), Ok(true));
        assert_eq!(m.status, MessageStatus::Failed);
    }

    fn gate() -> crate::engagement::Gate {
        crate::engagement::Gate {
            wait: chrono::Duration::minutes(15),
            until: crate::engagement::Until::Seen,
        }
    }

    #[test]
    fn a_smart_step_waits_after_a_send_moves_on_after_a_failure_and_closes_after_engagement() {
        let t0 = Utc::now();
        let sent = Delivery::Sent { provider_id: None };
        let g = gate();
        // The one before is sent: still waiting, due `wait` after the send.
        let mut first = Message::queued(with("m1", Channel::Inbox), email(), t0);
        let mut step = Message::waiting(with("m2", Channel::Email), email(), &first, t0);
        assert_eq!(
            step.follow_step(&first, t0, Some(&g)),
            Ok(Followed::Unchanged)
        );
        let t1 = t0 + chrono::Duration::seconds(5);
        first.record(&sent, t1).unwrap();
        let due = t1 + chrono::Duration::minutes(15);
        assert_eq!(
            step.follow_step(&first, t1, Some(&g)),
            Ok(Followed::Due(due))
        );
        assert_eq!(step.status, MessageStatus::Waiting);
        assert_eq!(step.history.len(), 1, "no status change");
        assert!(step
            .reason
            .as_deref()
            .unwrap()
            .contains("unless seen on m1"));
        // Failed for good: its turn at once.
        let mut failed = Message::queued(with("m3", Channel::Inbox), email(), t0);
        failed
            .record(
                &Delivery::Failed {
                    reason: "x".into(),
                    identity_invalid: false,
                },
                t0,
            )
            .unwrap();
        let mut next = Message::waiting(with("m4", Channel::Email), email(), &failed, t0);
        assert_eq!(
            next.follow_step(&failed, t0, Some(&g)),
            Ok(Followed::Queued)
        );
        assert_eq!(next.status, MessageStatus::Queued);
        // The one before was skipped (engaged): closed with the same reason.
        let mut closed_by = Message::waiting(with("m5", Channel::Sms), sms(), &first, t0);
        closed_by
            .transition(MessageStatus::Skipped, t0, Some("engaged".into()))
            .unwrap();
        let mut last = Message::waiting(with("m6", Channel::Sms), sms(), &first, t0);
        assert_eq!(
            last.follow_step(&closed_by, t0, Some(&g)),
            Ok(Followed::Closed)
        );
        assert_eq!(last.reason.as_deref(), Some("engaged"));
        // Without a gate it is `first_success`: a send closes the next.
        let mut fallback = Message::waiting(with("m7", Channel::Sms), sms(), &first, t0);
        assert_eq!(fallback.follow_step(&first, t0, None), Ok(Followed::Closed));
        assert_eq!(fallback.reason.as_deref(), Some("sent_on_other_channel"));
    }

    #[test]
    fn a_gate_sends_unless_an_earlier_message_was_engaged_with() {
        use crate::engagement::{Engagement, Until};
        let t0 = Utc::now();
        let first = Message::queued(with("m1", Channel::Inbox), email(), t0);
        let waiting = Message::waiting(with("m2", Channel::Email), email(), &first, t0);
        let seen = Engagement {
            seen_at: Some(t0),
            clicked_at: None,
        };
        let mut open = waiting.clone();
        assert_eq!(
            open.open_gate(&[Engagement::default()], Until::Seen, t0),
            Ok(true)
        );
        assert_eq!(open.status, MessageStatus::Queued);
        assert_eq!(
            open.reason.as_deref(),
            Some("not seen on an earlier channel")
        );
        let mut shut = waiting.clone();
        assert_eq!(shut.open_gate(&[seen], Until::Seen, t0), Ok(false));
        assert_eq!(
            (shut.status, shut.reason.as_deref()),
            (MessageStatus::Skipped, Some("engaged"))
        );
        let mut needs_click = waiting.clone();
        assert_eq!(needs_click.open_gate(&[seen], Until::Clicked, t0), Ok(true));
        // Only a waiting message has a gate.
        assert!(open.open_gate(&[], Until::Seen, t0).is_err());
    }

    #[test]
    fn engagement_is_recorded_once_and_only_on_a_message_that_went_out() {
        use crate::engagement::Event;
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::seconds(1);
        let mut m = Message::queued(origin(), email(), t0);
        assert_eq!(
            m.engage(Event::Seen, t0),
            Err(NotEngageable {
                status: MessageStatus::Queued
            })
        );
        m.record(&Delivery::Sent { provider_id: None }, t0).unwrap();
        assert_eq!(m.engage(Event::Seen, t0), Ok(true));
        assert_eq!(m.engage(Event::Seen, t1), Ok(false), "the first time wins");
        assert_eq!(m.seen_at, Some(t0));
        assert_eq!(m.engage(Event::Clicked, t1), Ok(true));
        assert_eq!((m.seen_at, m.clicked_at), (Some(t0), Some(t1)));
        assert_eq!(m.engage(Event::Delivered, t1), Ok(true));
        assert_eq!(m.status, MessageStatus::Delivered);
        assert_eq!(m.engage(Event::Delivered, t1), Ok(false));
        // A click alone implies seen.
        let mut c = Message::queued(origin(), email(), t0);
        c.record(&Delivery::Sent { provider_id: None }, t0).unwrap();
        c.engage(Event::Clicked, t1).unwrap();
        assert_eq!(c.seen_at, Some(t1));
        assert!(c.engagement().reaches(crate::engagement::Until::Seen));
        // Skipped or waiting messages never went out.
        let skipped = Message::skipped(origin(), SkipReason::NoProvider, t0);
        assert!(skipped.clone().engage(Event::Clicked, t0).is_err());
    }
}
