//! Digests: a workflow that collects a user's triggers instead of sending each. A trigger adds
//! its `data` as one item to the user's open digest of the workflow; the digest is sent as one
//! message per channel once its window (from its first item) has passed, or once it holds
//! `count` items, whichever comes first. Its templates see the trigger variables plus
//! `digest.items` (every item's data, in order) and `digest.count`.
//!
//! Each item keeps its recipient's `$channels` restriction ([`Item`]); the digest is planned
//! with the union of its items' restrictions ([`restriction`]). A digest whose render keeps
//! failing is given up after [`MAX_CLAIMS`] claims ([`give_up`]).

use crate::channel::Channel;
use crate::error::Invalid;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The longest window a digest may collect over.
pub const MAX_WINDOW_DAYS: i64 = 30;
/// The most items one digest may hold: it is sent once it has this many, whatever its `count`.
pub const MAX_ITEMS: u32 = 1000;

/// How many times a digest is claimed before a render that keeps failing (a render limit, a
/// template that cannot render these items) gives it up: its messages are recorded `failed`
/// with the reason and the digest is deleted. A fixed count rather than the outbox's retry
/// schedule: a digest is re-claimed only when its lease runs out, so this many claims take
/// this many leases (`dispatch.lease_secs` each).
pub const MAX_CLAIMS: i64 = 3;

/// The wire form on a workflow: `{"window": "1h"}`, `{"count": 10}`, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// A checked digest policy: at least one of `window` and `count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    window: Option<(TimeDelta, String)>,
    count: u32,
}

impl Digest {
    /// Errors name the field (`window`, `count`, or the digest itself when both are missing).
    pub fn parse(input: &DigestInput) -> Result<Digest, Invalid> {
        let window = input
            .window
            .as_deref()
            .map(|w| {
                crate::validate::duration(w, MAX_WINDOW_DAYS)
                    .map(|d| (d, w.trim().to_owned()))
                    .map_err(|r| Invalid::new("window", r))
            })
            .transpose()?;
        let count = match input.count {
            Some(0 | 1) => return Err(Invalid::new("count", "must be at least 2")),
            Some(n) if n > MAX_ITEMS => {
                return Err(Invalid::new(
                    "count",
                    format!("must be at most {MAX_ITEMS}"),
                ))
            }
            Some(n) => n,
            None if window.is_none() => {
                return Err(Invalid::new("", "needs a window, a count, or both"))
            }
            None => MAX_ITEMS,
        };
        Ok(Digest { window, count })
    }

    pub fn to_input(&self) -> DigestInput {
        DigestInput {
            window: self.window.as_ref().map(|(_, text)| text.clone()),
            count: (self.count != MAX_ITEMS || self.window.is_none()).then_some(self.count),
        }
    }

    /// When a digest whose first item arrived at `first_at` and that now holds `items` items is
    /// due to be sent: `now` once it is full, else the end of its window; `None` (a count-only
    /// digest not yet full) waits for more items.
    pub fn due_at(
        &self,
        first_at: DateTime<Utc>,
        items: u32,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if items >= self.count {
            return Some(now.min(self.window_end(first_at).unwrap_or(now)));
        }
        self.window_end(first_at)
    }

    fn window_end(&self, first_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.window.as_ref().map(|(d, _)| first_at + *d)
    }
}

/// One trigger collected into a digest: its `data`, and its recipient's `$channels`
/// restriction when it had one. Stored as `{"data": …, "channels": […]}`; a stored bare object
/// (an item collected before items carried their restriction) reads as unrestricted data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct Item {
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Item(StoredItem),
    Bare(Value),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredItem {
    data: Value,
    #[serde(default)]
    channels: Option<Vec<Channel>>,
}

impl From<Stored> for Item {
    fn from(stored: Stored) -> Item {
        match stored {
            Stored::Item(StoredItem { data, channels }) => Item { data, channels },
            Stored::Bare(data) => Item {
                data,
                channels: None,
            },
        }
    }
}

/// The `$channels` restriction a digest is planned with: the union of its items'. An item with
/// no restriction allows every channel, so then there is none.
///
/// The union, not the intersection: every item is sent on a channel its trigger allowed, and
/// no channel is used that no item allowed; an intersection can be empty (one item for email,
/// one for push) and would drop items the caller asked to deliver. The price: an item may
/// also appear in the digest on a channel another item asked for.
pub fn restriction(items: &[Item]) -> Option<Vec<Channel>> {
    let mut union = std::collections::BTreeSet::new();
    for item in items {
        union.extend(item.channels.as_ref()?.iter().copied());
    }
    Some(union.into_iter().collect())
}

/// Whether a digest claimed for the `claims`-th time whose render failed is given up (rather
/// than left to be claimed again when its lease runs out): from the [`MAX_CLAIMS`]-th claim.
pub fn give_up(claims: i64) -> bool {
    claims >= MAX_CLAIMS
}

/// The reason its messages are recorded `failed` with when a digest is given up.
pub fn given_up(claims: i64, error: &str) -> String {
    format!("digest_failed: {error} (gave up after {claims} attempts)")
}

/// The variables a digest's templates see beside the trigger's: `digest.items` (each item's
/// data) and `digest.count`.
pub fn variables(items: &[Item]) -> Value {
    let data: Vec<&Value> = items.iter().map(|i| &i.data).collect();
    json!({"digest": {"items": data, "count": items.len()}})
}

/// The reason a digest's messages are recorded with: how many items they carry.
pub fn reason(items: usize) -> String {
    format!(
        "digest of {items} item{}",
        if items == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(window: Option<&str>, count: Option<u32>) -> Result<Digest, Invalid> {
        Digest::parse(&DigestInput {
            window: window.map(str::to_owned),
            count,
        })
    }

    fn item(data: Value, channels: Option<&[Channel]>) -> Item {
        Item {
            data,
            channels: channels.map(<[Channel]>::to_vec),
        }
    }

    #[test]
    fn a_digest_is_planned_with_the_union_of_its_items_restrictions() {
        use Channel::{Email, Inbox, Sms};
        let d = json!({});
        assert_eq!(restriction(&[]), Some(vec![]), "no items: nothing");
        assert_eq!(restriction(&[item(d.clone(), None)]), None);
        assert_eq!(
            restriction(&[item(d.clone(), Some(&[Email]))]),
            Some(vec![Email])
        );
        assert_eq!(
            restriction(&[
                item(d.clone(), Some(&[Sms, Email])),
                item(d.clone(), Some(&[Email])),
                item(d.clone(), Some(&[Inbox])),
            ]),
            Some(vec![Email, Sms, Inbox]),
            "each channel once"
        );
        assert_eq!(
            restriction(&[item(d.clone(), Some(&[Email])), item(d.clone(), None)]),
            None,
            "an unrestricted item allows every channel"
        );
        assert_eq!(
            restriction(&[item(d.clone(), Some(&[])), item(d, Some(&[Sms]))]),
            Some(vec![Sms])
        );
    }

    #[test]
    fn items_are_stored_with_their_restriction_and_bare_data_reads_unrestricted() {
        let restricted = item(json!({"n": 1}), Some(&[Channel::Email]));
        let stored = serde_json::to_value(&restricted).unwrap();
        assert_eq!(stored, json!({"data": {"n": 1}, "channels": ["email"]}));
        assert_eq!(serde_json::from_value::<Item>(stored).unwrap(), restricted);
        let open = item(json!({"n": 2}), None);
        let stored = serde_json::to_value(&open).unwrap();
        assert_eq!(stored, json!({"data": {"n": 2}}));
        assert_eq!(serde_json::from_value::<Item>(stored).unwrap(), open);
        for old in [json!({"title": "old"}), json!({"data": 1, "more": 2})] {
            assert_eq!(
                serde_json::from_value::<Item>(old.clone()).unwrap(),
                item(old, None)
            );
        }
    }

    #[test]
    fn a_failing_digest_is_given_up_at_the_last_claim() {
        assert!(!give_up(1));
        assert!(!give_up(MAX_CLAIMS - 1));
        assert!(give_up(MAX_CLAIMS));
        assert!(give_up(MAX_CLAIMS + 1), "a late claim after a crash too");
        assert_eq!(
            given_up(3, "rendered text too long"),
            "digest_failed: rendered text too long (gave up after 3 attempts)"
        );
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn parsing_names_the_field_and_round_trips() {
        assert_eq!(digest(None, None).unwrap_err().field, "");
        assert_eq!(digest(Some("later"), None).unwrap_err().field, "window");
        assert_eq!(digest(Some("1h"), Some(1)).unwrap_err().field, "count");
        assert_eq!(
            digest(None, Some(MAX_ITEMS + 1)).unwrap_err().field,
            "count"
        );
        for (w, c) in [(Some("1h"), None), (None, Some(10)), (Some("15m"), Some(5))] {
            let d = digest(w, c).unwrap();
            assert_eq!(
                d.to_input(),
                DigestInput {
                    window: w.map(Into::into),
                    count: c
                }
            );
        }
    }

    #[test]
    fn a_digest_is_due_at_its_window_end_or_when_full() {
        let first = at("2026-06-01T10:00:00Z");
        let now = at("2026-06-01T10:20:00Z");
        let hour = digest(Some("1h"), None).unwrap();
        assert_eq!(hour.due_at(first, 1, now), Some(at("2026-06-01T11:00:00Z")));
        assert_eq!(
            hour.due_at(first, 999, now),
            Some(at("2026-06-01T11:00:00Z"))
        );
        assert_eq!(
            hour.due_at(first, MAX_ITEMS, now),
            Some(now),
            "full at the cap"
        );
        let three = digest(None, Some(3)).unwrap();
        assert_eq!(three.due_at(first, 1, now), None, "waits for more");
        assert_eq!(three.due_at(first, 2, now), None);
        assert_eq!(three.due_at(first, 3, now), Some(now));
        let both = digest(Some("15m"), Some(3)).unwrap();
        assert_eq!(both.due_at(first, 1, now), Some(at("2026-06-01T10:15:00Z")));
        assert_eq!(
            both.due_at(first, 3, at("2026-06-01T10:05:00Z")),
            Some(at("2026-06-01T10:05:00Z"))
        );
        // Full after its window passed (a late flush): due at the window's end, already past.
        assert_eq!(both.due_at(first, 3, now), Some(at("2026-06-01T10:15:00Z")));
    }

    #[test]
    fn templates_see_the_items_and_their_count() {
        let vars = variables(&[
            item(json!({"title": "a"}), None),
            item(json!({"title": "b"}), None),
        ]);
        assert_eq!(vars["digest"]["count"], 2);
        let out = crate::template::render(
            "t",
            "{{digest.count}}: {{#each digest.items}}{{this.title}};{{/each}}",
            &vars,
        )
        .unwrap();
        assert_eq!(out, "2: a;b;");
        assert_eq!(reason(1), "digest of 1 item");
        assert_eq!(reason(3), "digest of 3 items");
    }
}
