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

impl Change {
    /// A change with this `before` and `after` (and no items) as it reads back from storage: a
    /// JSON `null` reads as no value, as it always has (a [`Change`]'s fields are optional).
    fn new_unchecked(key: &str, before: Option<Value>, after: Option<Value>) -> Change {
        Change {
            key: key.to_owned(),
            before: before.filter(|v| !v.is_null()),
            after: after.filter(|v| !v.is_null()),
            added: None,
            removed: None,
        }
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

/// One change as the stores keep it: shorter than [`Change`] in the common cases, and read back
/// into exactly the [`Change`] it was made from ([`pack`] and [`unpack`]). A stored list may mix
/// the forms, and a list written before they existed (every item a [`Change`]) reads as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredChange {
    /// A key the request set to the value it now has, with nothing before: the index of the key
    /// among the request's keys in byte order (an order no backend can shuffle), so the value is
    /// stored once, in the request. A creation's changes are mostly these.
    FromRequest(usize),
    /// `[key, after]`: a new key.
    Added(String, Value),
    /// `[key, before, after]`: a changed value.
    Replaced(String, Value, Value),
    /// Any other change (a removed key, list items added or removed), as it is.
    Whole(Change),
}

/// The stored form of `changes`, made with the `request` stored beside them.
pub fn pack(request: &Value, changes: &[Change]) -> Vec<StoredChange> {
    let keys = sorted_keys(request);
    changes
        .iter()
        .map(|c| match c {
            Change {
                key,
                before: None,
                after: Some(after),
                added: None,
                removed: None,
            } => match keys.binary_search(&key.as_str()) {
                Ok(i) if request.get(key) == Some(after) => StoredChange::FromRequest(i),
                _ => StoredChange::Added(key.clone(), after.clone()),
            },
            Change {
                key,
                before: Some(before),
                after: Some(after),
                added: None,
                removed: None,
            } => StoredChange::Replaced(key.clone(), before.clone(), after.clone()),
            other => StoredChange::Whole(other.clone()),
        })
        .collect()
}

/// The changes [`pack`] stored beside `request`; an error says which item cannot be read.
pub fn unpack(request: &Value, stored: Vec<StoredChange>) -> Result<Vec<Change>, String> {
    let keys = sorted_keys(request);
    stored
        .into_iter()
        .enumerate()
        .map(|(n, s)| match s {
            StoredChange::FromRequest(i) => {
                let key = keys
                    .get(i)
                    .ok_or_else(|| format!("change {n} names request key {i} of {}", keys.len()))?;
                Ok(Change::new_unchecked(key, None, request.get(*key).cloned()))
            }
            StoredChange::Added(key, after) => Ok(Change::new_unchecked(&key, None, Some(after))),
            StoredChange::Replaced(key, before, after) => {
                Ok(Change::new_unchecked(&key, Some(before), Some(after)))
            }
            StoredChange::Whole(change) => Ok(change),
        })
        .collect()
}

/// The keys of an object in byte order; none for anything else.
fn sorted_keys(request: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = request
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A change as `diff` makes it: a `null` value is a value.
    fn change(key: &str, before: Option<Value>, after: Option<Value>) -> Change {
        Change {
            key: key.to_owned(),
            before,
            after,
            added: None,
            removed: None,
        }
    }

    /// What the stored form has always read back as: a `null` value as none.
    fn as_read(changes: &[Change]) -> Vec<Change> {
        let text = serde_json::to_string(changes).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Stored as a backend stores it (JSON text) and read back.
    fn round_trip(request: &Value, changes: &[Change]) -> (String, Vec<Change>) {
        let text = serde_json::to_string(&pack(request, changes)).unwrap();
        let stored: Vec<StoredChange> = serde_json::from_str(&text).unwrap();
        (text, unpack(request, stored).unwrap())
    }

    #[test]
    fn a_creation_stores_each_value_once_and_reads_back_the_same_changes() {
        let request = json!({"name": "Ada", "$email": ["Ada@Example.COM"], "age": 36, "tags": []});
        let changes = vec![
            change("name", None, Some(json!("Ada"))),
            change("age", None, Some(json!(36))),
            change("tags", None, Some(json!([]))),
            change("$status", None, Some(json!("enabled"))),
            // Normalised: not the request's value, so stored whole.
            change("$email", None, Some(json!(["Ada@example.com"]))),
        ];
        let (text, back) = round_trip(&request, &changes);
        assert_eq!(
            text,
            r#"[2,1,3,["$status","enabled"],["$email",["Ada@example.com"]]]"#
        );
        assert_eq!(back, changes);
    }

    #[test]
    fn updates_removals_and_list_moves_read_back_the_same() {
        let request = json!({"operations": [{"$set": {"plan": "pro"}}]});
        let mut appended = change("tags", None, None);
        appended.added = Some(vec![json!("c")]);
        let mut removed = change("tags", None, None);
        removed.removed = Some(vec![json!("a"), json!(null)]);
        let changes = vec![
            change("plan", Some(json!("free")), Some(json!("pro"))),
            change("name", Some(json!("Ada")), None),
            change("age", Some(json!(36)), Some(json!(null))),
            change("nil", None, Some(json!(null))),
            appended,
            removed,
        ];
        let (text, back) = round_trip(&request, &changes);
        assert_eq!(
            text,
            r#"[["plan","free","pro"],{"key":"name","before":"Ada"},["age",36,null],["nil",null],{"key":"tags","added":["c"]},{"key":"tags","removed":["a",null]}]"#
        );
        // A `null` after (or before) reads back as none, exactly as the whole form always did.
        assert_eq!(back[2], change("age", Some(json!(36)), None));
        assert_eq!(back[3], change("nil", None, None));
        assert_eq!(back, as_read(&changes));
        // Requests that are not objects (a tombstone's null) have no keys to point at.
        let (_, back) = round_trip(&Value::Null, &changes[..1]);
        assert_eq!(back, changes[..1]);
    }

    #[test]
    fn changes_stored_before_the_compact_form_read_as_they_are() {
        let old = r#"[{"key":"name","after":"Ada"},{"key":"plan","before":"free","after":"pro"},{"key":"tags","added":["c"]},{"key":"x","before":1}]"#;
        let expected: Vec<Change> = serde_json::from_str(old).unwrap();
        let stored: Vec<StoredChange> = serde_json::from_str(old).unwrap();
        assert_eq!(unpack(&json!({"name": "Ada"}), stored).unwrap(), expected);
    }

    #[test]
    fn a_reference_past_the_request_keys_is_an_error_not_a_panic() {
        let stored: Vec<StoredChange> = serde_json::from_str("[0, 5]").unwrap();
        let err = unpack(&json!({"a": 1}), stored).unwrap_err();
        assert!(err.contains("change 1"), "{err}");
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-c$]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop::collection::vec(inner, 0..3).prop_map(Value::Array)
        })
    }

    proptest! {
        #[test]
        fn any_changes_read_back_as_they_were(
            request in prop::collection::btree_map("[a-d$]{1,2}", value(), 0..5),
            changes in prop::collection::vec(
                ("[a-d$]{1,2}", prop::option::of(value()), prop::option::of(value()),
                 prop::option::of(prop::collection::vec(value(), 0..2))),
                0..6,
            ),
        ) {
            let request = Value::Object(request.into_iter().collect());
            let changes: Vec<Change> = changes
                .into_iter()
                .map(|(key, before, after, items)| {
                    let mut c = change(&key, before, after);
                    c.added = items;
                    c
                })
                .collect();
            let (_, back) = round_trip(&request, &changes);
            prop_assert_eq!(back, as_read(&changes));
        }
    }
}
