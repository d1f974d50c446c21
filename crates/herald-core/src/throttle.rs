//! Throttles: at most `limit` notifications of one workflow per user per `window`. Counted per
//! trigger (one recipient of one trigger call counts once, whatever its channels), over the
//! triggers of the window that were not skipped on every channel. A trigger past the limit has
//! every channel skipped with `throttled`. The store counts and records in one transaction
//! ([`crate::store::MessageStore::enqueue_batch`]); what the count means is decided here.

use crate::error::Invalid;
use crate::ids::DistinctId;
use crate::message::{Message, MessageStatus, SkipReason};
use crate::store::NewMessage;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// The longest window a throttle may count over.
pub const MAX_WINDOW_DAYS: i64 = 30;

/// The wire form on a workflow: `{"limit": 3, "window": "1h"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleInput {
    pub limit: u32,
    pub window: String,
}

/// A checked throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// At least 1.
    pub limit: u32,
    /// 1 second to [`MAX_WINDOW_DAYS`].
    pub window: TimeDelta,
    /// The window as it was written (`1h`), for the wire form.
    window_text: String,
}

impl Throttle {
    /// Errors name the field (`limit`, `window`).
    pub fn parse(input: &ThrottleInput) -> Result<Throttle, Invalid> {
        if input.limit == 0 {
            return Err(Invalid::new("limit", "must be at least 1"));
        }
        let window = crate::validate::duration(&input.window, MAX_WINDOW_DAYS)
            .map_err(|r| Invalid::new("window", r))?;
        Ok(Throttle {
            limit: input.limit,
            window,
            window_text: input.window.trim().to_owned(),
        })
    }

    pub fn to_input(&self) -> ThrottleInput {
        ThrottleInput {
            limit: self.limit,
            window: self.window_text.clone(),
        }
    }

    /// The start of the window a trigger at `now` is counted in.
    pub fn since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.window
    }

    /// Judges the triggers of one enqueue, in order. `counted`: for each user of the batch, the
    /// triggers of this workflow counted in the window before it (see [`Throttle::to_count`]).
    /// A trigger (the messages sharing a `trigger_id`) with a message that is not skipped is
    /// admitted while its user is under the limit, and counts; past it, each of its messages
    /// that is not skipped becomes skipped with `throttled` (no content, waiting for nothing).
    /// Returns the trigger ids throttled.
    pub fn apply(
        &self,
        batch: &mut [NewMessage],
        counted: &HashMap<DistinctId, u64>,
    ) -> Vec<String> {
        let mut counts = counted.clone();
        let mut throttled = Vec::new();
        let mut start = 0;
        while start < batch.len() {
            let trigger = batch[start].message.trigger_id.clone();
            let end = start
                + batch[start..]
                    .iter()
                    .take_while(|n| n.message.trigger_id == trigger)
                    .count();
            let group = &mut batch[start..end];
            start = end;
            if !counts_as_sent(group) {
                continue;
            }
            let n = counts
                .entry(group[0].message.distinct_id.clone())
                .or_insert(0);
            if *n < u64::from(self.limit) {
                *n += 1;
                continue;
            }
            for new in group.iter_mut() {
                if new.message.status != MessageStatus::Skipped {
                    *new = skipped(&new.message, SkipReason::Throttled);
                }
            }
            throttled.push(trigger);
        }
        throttled
    }
}

/// The users of `batch` whose triggers the throttle must count (those with a message that is
/// not skipped), each once, in order: the order a store locks them in.
pub fn to_count(batch: &[NewMessage]) -> Vec<DistinctId> {
    let ids: BTreeSet<&DistinctId> = batch
        .iter()
        .filter(|n| n.message.status != MessageStatus::Skipped)
        .map(|n| &n.message.distinct_id)
        .collect();
    ids.into_iter().cloned().collect()
}

fn counts_as_sent(group: &[NewMessage]) -> bool {
    group
        .iter()
        .any(|n| n.message.status != MessageStatus::Skipped)
}

/// `message` recorded skipped with `reason` instead, under the same id.
pub(crate) fn skipped(message: &Message, reason: SkipReason) -> NewMessage {
    NewMessage {
        message: Message::skipped(message.origin(), reason, message.created_at),
        content: None,
        waits_for: None,
        gate: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Channel, Identity};
    use crate::delivery::Content;
    use crate::env::Env;
    use crate::message::MessageOrigin;
    use serde_json::json;

    fn origin(id: &str, user: &str, trigger: &str, channel: Channel) -> MessageOrigin {
        MessageOrigin {
            id: id.into(),
            env: Env::Test,
            workflow: "w".into(),
            category: None,
            distinct_id: DistinctId::parse(user).unwrap(),
            channel,
            trigger_id: trigger.into(),
            idempotency_key: None,
        }
    }

    fn queued(id: &str, user: &str, trigger: &str) -> NewMessage {
        let identity =
            Identity::parse(Channel::Sms, &json!("+14155550100"), &Default::default()).unwrap();
        NewMessage {
            message: Message::queued(
                origin(id, user, trigger, Channel::Sms),
                identity,
                Utc::now(),
            ),
            content: Some(Content::Sms { text: "t".into() }),
            waits_for: None,
            gate: None,
        }
    }

    fn skipped_at_plan(id: &str, user: &str, trigger: &str) -> NewMessage {
        NewMessage {
            message: Message::skipped(
                origin(id, user, trigger, Channel::Email),
                SkipReason::NoIdentity,
                Utc::now(),
            ),
            content: None,
            waits_for: None,
            gate: None,
        }
    }

    fn throttle(limit: u32) -> Throttle {
        Throttle::parse(&ThrottleInput {
            limit,
            window: "1h".into(),
        })
        .unwrap()
    }

    fn statuses(batch: &[NewMessage]) -> Vec<(&str, Option<&str>)> {
        batch
            .iter()
            .map(|n| (n.message.status.as_str(), n.message.reason.as_deref()))
            .collect()
    }

    #[test]
    fn parsing_names_the_field() {
        let t = throttle(3);
        assert_eq!((t.limit, t.window.num_seconds()), (3, 3600));
        assert_eq!(
            t.to_input(),
            ThrottleInput {
                limit: 3,
                window: "1h".into()
            }
        );
        let err = |limit, window: &str| {
            Throttle::parse(&ThrottleInput {
                limit,
                window: window.into(),
            })
            .unwrap_err()
            .field
        };
        assert_eq!(err(0, "1h"), "limit");
        assert_eq!(err(1, "soon"), "window");
        assert_eq!(err(1, "31d"), "window");
        let now = Utc::now();
        assert_eq!(t.since(now), now - TimeDelta::hours(1));
    }

    #[test]
    fn triggers_past_the_limit_are_skipped_throttled_on_every_channel() {
        // Ada had 2 in the window; limit 3: her first trigger here passes, the next is throttled
        // (both channels), the one after too. Bob had none: his pass.
        let mut batch = vec![
            queued("a1", "ada", "t1"),
            skipped_at_plan("a1s", "ada", "t1"),
            queued("b1", "bob", "t2"),
            queued("a2", "ada", "t3"),
            queued("a2b", "ada", "t3"),
            skipped_at_plan("a2s", "ada", "t3"),
            queued("a3", "ada", "t4"),
        ];
        let counted = HashMap::from([(DistinctId::parse("ada").unwrap(), 2)]);
        let throttled = throttle(3).apply(&mut batch, &counted);
        assert_eq!(throttled, ["t3", "t4"]);
        assert_eq!(
            statuses(&batch),
            [
                ("queued", None),
                ("skipped", Some("no_identity")),
                ("queued", None),
                ("skipped", Some("throttled")),
                ("skipped", Some("throttled")),
                ("skipped", Some("no_identity")),
                ("skipped", Some("throttled")),
            ]
        );
        // Same ids, nothing left to send.
        assert_eq!(batch[3].message.id, "a2");
        assert!(batch[3].content.is_none() && batch[3].message.identity.is_none());
    }

    #[test]
    fn a_trigger_skipped_on_every_channel_neither_counts_nor_is_throttled() {
        let mut batch = vec![
            skipped_at_plan("x", "ada", "t1"),
            queued("a", "ada", "t2"),
            queued("b", "ada", "t3"),
        ];
        let throttled = throttle(1).apply(&mut batch, &HashMap::new());
        assert_eq!(throttled, ["t3"]);
        assert_eq!(
            statuses(&batch),
            [
                ("skipped", Some("no_identity")),
                ("queued", None),
                ("skipped", Some("throttled"))
            ]
        );
        assert_eq!(
            to_count(&batch[..2]),
            [DistinctId::parse("ada").unwrap()],
            "only users with something to send are counted"
        );
        assert!(to_count(&batch[..1]).is_empty());
    }

    #[test]
    fn a_user_at_the_limit_gets_nothing_more() {
        for (before, limit, passes) in [
            (0u64, 1u32, true),
            (1, 1, false),
            (2, 3, true),
            (3, 3, false),
            (9, 3, false),
        ] {
            let mut batch = vec![queued("a", "ada", "t")];
            let counted = HashMap::from([(DistinctId::parse("ada").unwrap(), before)]);
            let throttled = throttle(limit).apply(&mut batch, &counted);
            assert_eq!(throttled.is_empty(), passes, "{before} of {limit}");
        }
    }
}
