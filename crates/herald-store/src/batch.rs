//! Batches of profile writes, shared by both backends: the counter deltas and registry sightings
//! of many writes summed so a batch applies each once ([`Tally`]), and the in-memory run of a
//! batch of edits over rows the caller has locked ([`plan`], PostgreSQL's set-based path; the
//! SQLite writer runs each edit against the database in its own savepoint instead).

use herald_core::history::HistoryEvent;
use herald_core::index::{Change, Entry};
use herald_core::profile::Profile;
use herald_core::store::{BatchEdit, EditOutcome, OnceKey, StoreError};
use std::collections::{BTreeMap, HashMap};

/// Presence-counter deltas by `(key, shard)` and custom keys seen with their type bits, summed
/// over the writes of one batch. Counters are sums and `types_seen` an OR, so applying the
/// totals once equals applying each write's in turn.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Tally {
    pub counts: BTreeMap<(String, i16), i64>,
    pub seen: BTreeMap<String, u8>,
}

impl Tally {
    /// Adds one write's counter deltas (on counter shard `shard`) and sightings.
    pub fn add(&mut self, change: &Change, shard: i16) {
        for (key, delta) in &change.counts {
            *self.counts.entry((key.clone(), shard)).or_insert(0) += delta;
        }
        for (key, bits) in &change.seen {
            *self.seen.entry(key.clone()).or_insert(0) |= bits;
        }
    }

    /// Adds another tally (the writes of an edit that succeeded).
    pub fn merge(&mut self, other: Tally) {
        for (k, delta) in other.counts {
            *self.counts.entry(k).or_insert(0) += delta;
        }
        for (key, bits) in other.seen {
            *self.seen.entry(key).or_insert(0) |= bits;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.seen.is_empty()
    }
}

/// One profile a batch touched.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The stored row could not be read: every edit of it fails with this, and it is not
    /// written.
    pub fault: Option<StoreError>,
    /// As stored when the batch began (`None`: not stored).
    pub stored: Option<Profile>,
    /// After the batch's edits.
    pub current: Option<Profile>,
    /// The index-row change of each write applied to it, in order.
    pub changes: Vec<Change>,
}

impl Slot {
    /// The index rows to remove and add to go from the stored state to the current one.
    pub fn rows(&self) -> (Vec<Entry>, Vec<Entry>) {
        match self.changes.as_slice() {
            [] => (Vec::new(), Vec::new()),
            [only] => (only.removed.clone(), only.added.clone()),
            _ => {
                let net = Change::between(self.stored.as_ref(), self.current.as_ref());
                (net.removed, net.added)
            }
        }
    }

    /// Whether the batch wrote this profile.
    pub fn written(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// What a batch of edits does, decided in memory before anything is written.
#[derive(Debug)]
pub(crate) struct Plan {
    /// One per edit, in order.
    pub outcomes: Vec<Result<EditOutcome, StoreError>>,
    /// Every profile the batch names, by distinct_id.
    pub slots: BTreeMap<String, Slot>,
    /// The history events of the writes, in the order they were applied.
    pub history: Vec<HistoryEvent>,
    /// The idempotency keys to record, in order.
    pub keys: Vec<OnceKey>,
    /// Counter deltas and registry sightings of every write.
    pub tally: Tally,
}

/// Runs `edits` in order over `stored` (the profiles of the ids they name that exist, locked by
/// the caller; `Err` for a row that could not be read) and `applied` (the stored keys among
/// theirs, with their fingerprints), as [`herald_core::store::ProfileStore::edit_profile`]
/// would one after another: each edit sees the state the previous ones left, a key recorded
/// earlier in the batch counts as applied, a refused edit changes nothing and records no key,
/// an edit of an unreadable row fails alone. `shard` picks a profile's counter shard.
pub(crate) fn plan(
    edits: &[BatchEdit],
    mut stored: HashMap<String, Result<Profile, StoreError>>,
    mut applied: HashMap<String, Option<String>>,
    shard: impl Fn(&str) -> i16,
) -> Plan {
    let mut plan = Plan {
        outcomes: Vec::with_capacity(edits.len()),
        slots: BTreeMap::new(),
        history: Vec::new(),
        keys: Vec::new(),
        tally: Tally::default(),
    };
    for e in edits {
        let slot = plan.slots.entry(e.id.to_string()).or_insert_with_key(|id| {
            let (p, fault) = match stored.remove(id).transpose() {
                Ok(p) => (p, None),
                Err(fault) => (None, Some(fault)),
            };
            Slot {
                fault,
                current: p.clone(),
                stored: p,
                changes: Vec::new(),
            }
        });
        if let Some(fault) = &slot.fault {
            plan.outcomes.push(Err(fault.for_each_caller()));
            continue;
        }
        if let Some(key) = &e.once {
            if let Some(fingerprint) = applied.get(&key.key) {
                plan.outcomes
                    .push(Ok(if key.reused_by(fingerprint.as_deref()) {
                        EditOutcome::KeyReused
                    } else {
                        EditOutcome::AlreadyApplied
                    }));
                continue;
            }
        }
        let after = match (e.edit)(slot.current.as_ref()) {
            Err(refusal) => {
                plan.outcomes.push(Ok(EditOutcome::Refused(refusal)));
                continue;
            }
            Ok(None) => slot.current.clone(),
            Ok(Some(w)) => {
                let change = Change::between(slot.current.as_ref(), Some(&w.profile));
                plan.tally
                    .add(&change, shard(w.profile.distinct_id.as_str()));
                slot.changes.push(change);
                plan.history.push(w.event);
                slot.current = Some(w.profile.clone());
                Some(w.profile)
            }
        };
        if let Some(key) = &e.once {
            applied.insert(key.key.clone(), key.fingerprint.clone());
            plan.keys.push(key.clone());
        }
        plan.outcomes.push(Ok(crate::applied(after)));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use herald_core::history::Actor;
    use herald_core::service::{profiles, Ctx};
    use herald_core::store::Refusal;
    use herald_core::{ops, DistinctId, Env, EnvScope};
    use serde_json::json;

    fn edit(user: &str, ops_json: serde_json::Value, key: Option<&str>) -> BatchEdit {
        let ctx = Ctx::new(
            EnvScope::operator(Env::Test),
            Actor::new("test", "batch"),
            Utc::now(),
        );
        let id = DistinctId::parse(user).unwrap();
        let steps = ops::parse_operations(&ops_json, "operations").unwrap();
        BatchEdit {
            edit: profiles::edit_fn(&ctx, &id, steps, json!({}), true),
            id,
            once: key.map(|k| OnceKey {
                key: k.into(),
                fingerprint: None,
            }),
        }
    }

    fn n(outcome: &Result<EditOutcome, StoreError>) -> Option<i64> {
        match outcome {
            Ok(EditOutcome::Applied(p)) => p.properties.get("n").and_then(|v| v.as_i64()),
            _ => None,
        }
    }

    #[test]
    fn edits_of_one_id_apply_in_order_and_keys_apply_once() {
        let edits = vec![
            edit("ada", json!([{"$add": {"n": 1}}]), Some("k1")),
            edit("bob", json!([{"$set": {"n": "x"}}]), None),
            edit("ada", json!([{"$add": {"n": 1}}]), Some("k1")),
            edit("ada", json!([{"$append": {"n": 3}}]), Some("k2")),
            edit("ada", json!([{"$add": {"n": 5}}]), Some("stored")),
            edit("ada", json!([{"$add": {"n": 2}}]), Some("k2")),
            edit("ada", json!([{"$add": {"n": 2}}]), Some("k3")),
        ];
        let applied = HashMap::from([("stored".to_owned(), None)]);
        let plan = plan(&edits, HashMap::new(), applied, |_| 0);
        assert_eq!(n(&plan.outcomes[0]), Some(1));
        assert!(matches!(plan.outcomes[2], Ok(EditOutcome::AlreadyApplied)));
        assert!(
            matches!(
                plan.outcomes[3],
                Ok(EditOutcome::Refused(Refusal::Invalid(_)))
            ),
            "appending to a number is refused: {:?}",
            plan.outcomes[3]
        );
        assert!(matches!(plan.outcomes[4], Ok(EditOutcome::AlreadyApplied)));
        assert_eq!(
            n(&plan.outcomes[5]),
            Some(3),
            "a refused edit records no key"
        );
        assert_eq!(n(&plan.outcomes[6]), Some(5));
        let keys: Vec<&str> = plan.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["k1", "k2", "k3"]);
        let ada = &plan.slots["ada"];
        assert!(ada.stored.is_none() && ada.changes.len() == 3);
        assert_eq!(plan.history.len(), 4, "three writes of ada, one of bob");
        // The net rows of ada hold its final n only; the counters count each profile once.
        let (removed, added) = ada.rows();
        assert!(removed.is_empty());
        let ns: Vec<&str> = added
            .iter()
            .filter(|e| e.key == "n")
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(ns, ["5"]);
        assert_eq!(plan.tally.counts[&("*".to_owned(), 0)], 2);
        assert_eq!(plan.tally.counts[&("n".to_owned(), 0)], 2);
    }

    #[test]
    fn edits_of_an_unreadable_row_fail_alone() {
        let edits = vec![
            edit("bad", json!([{"$add": {"n": 1}}]), Some("k1")),
            edit("ada", json!([{"$add": {"n": 1}}]), Some("k2")),
        ];
        let stored = HashMap::from([("bad".to_owned(), Err(StoreError::internal("unreadable")))]);
        let plan = plan(&edits, stored, HashMap::new(), |_| 0);
        assert!(matches!(plan.outcomes[0], Err(StoreError::Internal { .. })));
        assert_eq!(n(&plan.outcomes[1]), Some(1));
        assert!(!plan.slots["bad"].written());
        let keys: Vec<&str> = plan.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["k2"], "the failed edit's key is not recorded");
    }
}
