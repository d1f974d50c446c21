//! Schema versions, shared by both backends: one list of names and numbers, each backend's SQL
//! from its own `migrations/` folder, and one plan of what to run. Each backend executes the plan
//! in its own transaction (SQLite on a blocking connection, PostgreSQL under an advisory lock).

use herald_core::erasure;
use herald_core::ids::DistinctId;
use herald_core::index;
use herald_core::profile::Profile;
use herald_core::store::StoreError;
use serde_json::{json, Value};
use std::collections::HashMap;

/// One schema version.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations of one backend, from the `migrations/` folder beside the module that invokes
/// this. The numbers and names are the same for both backends; do not renumber.
macro_rules! migrations {
    () => {
        &[
            $crate::migrate::Migration {
                version: 1,
                name: "init",
                sql: include_str!("migrations/0001_init.sql"),
            },
            $crate::migrate::Migration {
                version: 2,
                name: "applied_keys",
                sql: include_str!("migrations/0002_applied_keys.sql"),
            },
            $crate::migrate::Migration {
                version: 3,
                name: "property_index",
                sql: include_str!("migrations/0003_property_index.sql"),
            },
            $crate::migrate::Migration {
                version: 4,
                name: "preferences",
                sql: include_str!("migrations/0004_preferences.sql"),
            },
            $crate::migrate::Migration {
                version: 5,
                name: "secrets",
                sql: include_str!("migrations/0005_secrets.sql"),
            },
            $crate::migrate::Migration {
                version: 6,
                name: "timestamp_keys",
                sql: include_str!("migrations/0006_timestamp_keys.sql"),
            },
            $crate::migrate::Migration {
                version: 7,
                name: "idempotency_fingerprint",
                sql: include_str!("migrations/0007_idempotency_fingerprint.sql"),
            },
            $crate::migrate::Migration {
                version: 8,
                name: "repair_erasure_and_index",
                sql: include_str!("migrations/0008_repair_erasure_and_index.sql"),
            },
            $crate::migrate::Migration {
                version: 9,
                name: "workflows",
                sql: include_str!("migrations/0009_workflows.sql"),
            },
            $crate::migrate::Migration {
                version: 10,
                name: "messages",
                sql: include_str!("migrations/0010_messages.sql"),
            },
            $crate::migrate::Migration {
                version: 11,
                name: "provider_configs",
                sql: include_str!("migrations/0011_provider_configs.sql"),
            },
            $crate::migrate::Migration {
                version: 12,
                name: "fallbacks",
                sql: include_str!("migrations/0012_fallbacks.sql"),
            },
            $crate::migrate::Migration {
                version: 13,
                name: "inbox",
                sql: include_str!("migrations/0013_inbox.sql"),
            },
            $crate::migrate::Migration {
                version: 14,
                name: "dashboard",
                sql: include_str!("migrations/0014_dashboard.sql"),
            },
            $crate::migrate::Migration {
                version: 15,
                name: "lean_index",
                sql: include_str!("migrations/0015_lean_index.sql"),
            },
            $crate::migrate::Migration {
                version: 16,
                name: "compact_history",
                sql: include_str!("migrations/0016_compact_history.sql"),
            },
            $crate::migrate::Migration {
                version: 17,
                name: "provider_ids",
                sql: include_str!("migrations/0017_provider_ids.sql"),
            },
            $crate::migrate::Migration {
                version: 18,
                name: "quiet_throttle_digest",
                sql: include_str!("migrations/0018_quiet_throttle_digest.sql"),
            },
            $crate::migrate::Migration {
                version: 19,
                name: "engagement",
                sql: include_str!("migrations/0019_engagement.sql"),
            },
        ]
    };
}
pub(crate) use migrations;

/// Versions taken by work merged separately: a branch may skip them, never reuse them. Empty
/// once every branch is merged.
#[cfg(test)]
const RESERVED: &[i64] = &[];

/// The migration that introduced the index rows: profiles stored before it are indexed when it
/// is applied.
const INDEX_MIGRATION: i64 = 3;

/// The migration that repairs what was written before two audit fixes: tombstones filed under
/// the raw id (before erasure hashed them) and index rows diffed on their text alone (before a
/// value switching between `30` and `"30"` replaced its row).
const REPAIR_MIGRATION: i64 = 8;

/// What to run on a schema at `current`, to reach `target`.
pub(crate) struct Plan<'m> {
    /// Apply each, in order, and record it.
    pub apply: Vec<&'m Migration>,
    /// Then build the index rows of the profiles already stored. Indexing reads profiles with
    /// today's columns, so it runs after every migration, and only when migrating to the latest.
    pub index_existing: bool,
    /// Then re-file the tombstones written under a raw id ([`refiled`]).
    pub refile_tombstones: bool,
    /// Then rewrite the index rows of every profile whose rows are not its entries ([`stale`]).
    /// Not needed when `index_existing` has just written them all.
    pub repair_index: bool,
}

pub(crate) fn plan(migrations: &[Migration], current: i64, target: i64) -> Plan<'_> {
    let to_latest = target >= latest(migrations);
    // A new database (0) holds nothing to repair.
    let repair = to_latest && current > 0 && current < REPAIR_MIGRATION;
    let index_existing = current < INDEX_MIGRATION && to_latest;
    Plan {
        apply: migrations
            .iter()
            .filter(|m| m.version > current && m.version <= target)
            .collect(),
        index_existing,
        refile_tombstones: repair,
        repair_index: repair && !index_existing,
    }
}

// ---- migration 8: the repair steps, shared; each backend reads and writes the rows ----

/// Profiles checked per round trip when repairing index rows.
pub(crate) const REPAIR_BATCH: i64 = 1000;

/// A tombstone as stored, read by [`crate::sql::TOMBSTONES`].
pub(crate) struct StoredTombstone {
    pub event_id: i64,
    pub env: String,
    pub filed_under: String,
    pub action: String,
    pub request: Value,
}

/// A tombstone to re-file: [`crate::sql::REFILE_TOMBSTONE`]'s arguments, and the env for
/// [`crate::sql::DROP_OLDER_TOMBSTONES`].
pub(crate) struct Refiled {
    pub event_id: i64,
    pub env: String,
    pub erased: String,
    pub request: Value,
    pub changes: Value,
}

/// Whether `id` is a tombstone id as [`erasure::tombstone_id`] makes them (a raw id that only
/// starts with `erased:` is not).
fn is_hashed(id: &str) -> bool {
    id.strip_prefix(erasure::PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The tombstones still filed under a raw id, re-filed under its keyed hash and keeping what a
/// tombstone written today keeps: no changes, and for a merge only the id merged into.
pub(crate) fn refiled(
    secret: &str,
    stored: Vec<StoredTombstone>,
) -> Result<Vec<Refiled>, StoreError> {
    stored
        .into_iter()
        .filter(|t| !is_hashed(&t.filed_under))
        .map(|t| {
            // The error names the event, never the id it is about.
            let raw = DistinctId::parse(&t.filed_under).map_err(|_| {
                StoreError::internal(format!("tombstone {}: unreadable distinct_id", t.event_id))
            })?;
            let request = match (t.action.as_str(), t.request.get("into_user_id")) {
                ("merged_into", Some(Value::String(into))) => json!({ "into_user_id": into }),
                _ => Value::Null,
            };
            Ok(Refiled {
                event_id: t.event_id,
                env: t.env,
                erased: erasure::tombstone_id(secret, &raw).to_string(),
                request,
                changes: json!([]),
            })
        })
        .collect()
}

/// One stored index row, read by [`crate::sql::INDEX_ROWS_BETWEEN`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredEntry {
    pub distinct_id: String,
    pub key: String,
    pub kind: i64,
    pub text: String,
    pub num: Option<f64>,
    pub time: Option<i64>,
}

/// The profiles of a batch whose stored index rows are not exactly their
/// [`index::entries`] — a row missing, extra, or holding another number or time (rows written
/// before entries were compared on their typed value).
pub(crate) fn stale(profiles: &[Profile], stored: Vec<StoredEntry>) -> Vec<&Profile> {
    let mut by_id: HashMap<String, Vec<StoredEntry>> = HashMap::new();
    for row in stored {
        by_id.entry(row.distinct_id.clone()).or_default().push(row);
    }
    profiles
        .iter()
        .filter(|p| {
            let mut rows = by_id.remove(p.distinct_id.as_str()).unwrap_or_default();
            rows.sort_by(|a, b| (&a.key, a.kind, &a.text).cmp(&(&b.key, b.kind, &b.text)));
            let expected = index::entries(p);
            rows.len() != expected.len()
                || rows.iter().zip(&expected).any(|(r, e)| {
                    (r.key.as_str(), r.kind, r.text.as_str(), r.num, r.time)
                        != (
                            e.key.as_str(),
                            e.kind.code() as i64,
                            e.text.as_str(),
                            e.num,
                            e.time,
                        )
                })
        })
        .collect()
}

pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_runs_what_is_missing_and_indexes_once() {
        let all = crate::sqlite::MIGRATIONS;
        let fresh = plan(all, 0, latest(all));
        assert_eq!(fresh.apply.len(), all.len());
        assert!(fresh.index_existing);
        let partial = plan(all, 0, 2);
        assert_eq!(partial.apply.len(), 2);
        assert!(
            !partial.index_existing,
            "indexing waits for today's columns"
        );
        assert!(
            !fresh.refile_tombstones && !fresh.repair_index,
            "nothing to repair"
        );
        let seven = plan(all, 7, latest(all));
        assert!(seven.refile_tombstones && seven.repair_index && !seven.index_existing);
        let two = plan(all, 2, latest(all));
        assert!(two.refile_tombstones && two.index_existing && !two.repair_index);
        let current = plan(all, latest(all), latest(all));
        assert!(current.apply.is_empty() && !current.index_existing);
        assert!(!current.refile_tombstones && !current.repair_index);
        let mut expected = 1..;
        for m in all {
            let n = expected
                .by_ref()
                .find(|n| !RESERVED.contains(n) || *n == m.version)
                .unwrap();
            assert_eq!(
                m.version, n,
                "versions are 1, 2, 3, … with no gap but a reserved one"
            );
        }
    }

    fn profile(id: &str, properties: Value) -> Profile {
        let mut p = Profile::new(DistinctId::parse(id).unwrap(), chrono::Utc::now());
        p.properties = serde_json::from_value(properties).unwrap();
        p
    }

    fn rows_of(p: &Profile) -> Vec<StoredEntry> {
        index::entries(p)
            .into_iter()
            .rev() // stored rows come in any order
            .map(|e| StoredEntry {
                distinct_id: p.distinct_id.to_string(),
                key: e.key,
                kind: e.kind.code() as i64,
                text: e.text,
                num: e.num,
                time: e.time,
            })
            .collect()
    }

    #[test]
    fn only_profiles_whose_rows_are_not_their_entries_are_stale() {
        let ok = profile("ok", json!({"age": 30, "tags": ["a", 2]}));
        let string = profile("string", json!({"age": "30"}));
        let number = profile("number", json!({"age": 30}));
        let missing = profile("missing", json!({"plan": "pro"}));
        let mut stored = rows_of(&ok);
        // Written before the fix: the number of the old value, or none for the new number.
        stored.extend(rows_of(&string).into_iter().map(|mut r| {
            if r.key == "age" {
                r.num = Some(30.0);
            }
            r
        }));
        stored.extend(rows_of(&number).into_iter().map(|mut r| {
            r.num = None;
            r
        }));
        stored.extend(rows_of(&missing).into_iter().filter(|r| r.key != "plan"));
        let batch = [ok, string, number, missing];
        let stale: Vec<&str> = stale(&batch, stored)
            .iter()
            .map(|p| p.distinct_id.as_str())
            .collect();
        assert_eq!(stale, ["string", "number", "missing"]);
    }

    #[test]
    fn legacy_tombstones_are_refiled_keeping_no_data() {
        let tombstone = |event_id, filed_under: &str, action: &str, request| StoredTombstone {
            event_id,
            env: "test".into(),
            filed_under: filed_under.into(),
            action: action.into(),
            request,
        };
        let hashed = erasure::tombstone_id("k", &DistinctId::parse("x").unwrap()).to_string();
        let refiled = refiled(
            "k",
            vec![
                tombstone(
                    1,
                    "ada@example.com",
                    "deleted",
                    json!({"id": "ada@example.com"}),
                ),
                tombstone(
                    2,
                    "bob",
                    "merged_into",
                    json!({"into_user_id": "ada", "bob": 1}),
                ),
                tombstone(3, &hashed, "deleted", Value::Null),
                tombstone(4, "erased:not-a-hash", "deleted", Value::Null),
            ],
        )
        .unwrap();
        let got: Vec<(i64, String, Value)> = refiled
            .iter()
            .map(|t| (t.event_id, t.erased.clone(), t.request.clone()))
            .collect();
        let hash =
            |id: &str| erasure::tombstone_id("k", &DistinctId::parse(id).unwrap()).to_string();
        assert_eq!(
            got,
            [
                (1, hash("ada@example.com"), Value::Null),
                (2, hash("bob"), json!({"into_user_id": "ada"})),
                (4, hash("erased:not-a-hash"), Value::Null),
            ]
        );
        assert!(refiled.iter().all(|t| t.changes == json!([])));
    }
}
