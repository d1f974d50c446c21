//! The change log of a profile: who changed what, with the before and after of each changed key.

use crate::ids::DistinctId;
use crate::profile::Profile;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who made a change. Only non-secret identifiers are kept: a workspace key, or the first
/// characters of a bearer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `workspace_key`, `api_key`, `cli`, `dashboard` or `import`.
    pub kind: String,
    pub id: String,
}

impl Actor {
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
        }
    }

    pub fn cli() -> Self {
        Self::new("cli", "herald")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    /// This profile absorbed another.
    Merged,
    /// This profile was merged into another and removed.
    MergedInto,
    Deleted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Merged => "merged",
            Action::MergedInto => "merged_into",
            Action::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        [
            Action::Created,
            Action::Updated,
            Action::Merged,
            Action::MergedInto,
            Action::Deleted,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One changed key: its `before` and/or `after`; or, for a custom list that only grew at its
/// end or only lost items, the items `added` or `removed` (so that appending to a long list
/// keeps each history entry small instead of repeating the whole list twice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<Value>>,
}

impl Change {
    fn new(key: &str, before: Option<&Value>, after: Option<&Value>) -> Change {
        let mut c = Change {
            key: key.to_owned(),
            before: before.cloned(),
            after: after.cloned(),
            added: None,
            removed: None,
        };
        // Channel lists are bounded per channel and shown whole; custom lists by what moved.
        if key.starts_with('$') {
            return c;
        }
        if let (Some(Value::Array(b)), Some(Value::Array(a))) = (before, after) {
            if a.len() > b.len() && a.starts_with(b) {
                c.added = Some(a[b.len()..].to_vec());
            } else if let Some(removed) = removed_from(b, a) {
                c.removed = Some(removed);
            } else {
                return c;
            }
            c.before = None;
            c.after = None;
        }
        c
    }
}

/// The items of `before` that are gone when `after` is `before` with some items taken out (in
/// order); `None` otherwise.
fn removed_from(before: &[Value], after: &[Value]) -> Option<Vec<Value>> {
    if after.len() >= before.len() {
        return None;
    }
    let mut rest = after.iter().peekable();
    let mut removed = Vec::new();
    for item in before {
        if rest.peek() == Some(&item) {
            rest.next();
        } else {
            removed.push(item.clone());
        }
    }
    rest.peek().is_none().then_some(removed)
}

/// One entry of a profile's history. `id` is assigned by the store and orders events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEvent {
    pub id: i64,
    pub distinct_id: DistinctId,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: Action,
    /// What the caller asked for (operations, merge source, …), as received after parsing.
    pub request: Value,
    pub changes: Vec<Change>,
}

impl HistoryEvent {
    /// The event as the history endpoint and the export show it.
    pub fn to_wire(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "distinct_id": self.distinct_id,
            "at": crate::profile::format_time(self.at),
            "actor": self.actor,
            "action": self.action,
            "request": self.request,
            "changes": self.changes,
        })
    }
}

/// The keys whose values differ, in a stable order: `before`'s keys first, then new ones.
pub fn diff(before: Option<&Profile>, after: Option<&Profile>) -> Vec<Change> {
    let empty = Map::new();
    let b = before.map(Profile::flat);
    let a = after.map(Profile::flat);
    let (b, a) = (b.as_ref().unwrap_or(&empty), a.as_ref().unwrap_or(&empty));
    let mut changes = Vec::new();
    for (k, old) in b {
        match a.get(k) {
            Some(new) if new == old => {}
            new => changes.push(Change::new(k, Some(old), new)),
        }
    }
    for (k, new) in a {
        if !b.contains_key(k) {
            changes.push(Change::new(k, None, Some(new)));
        }
    }
    changes
}
