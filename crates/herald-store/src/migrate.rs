//! Schema versions, shared by both backends: one list of names and numbers, each backend's SQL
//! from its own `migrations/` folder, and one plan of what to run. Each backend executes the plan
//! in its own transaction (SQLite on a blocking connection, PostgreSQL under an advisory lock).

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
        ]
    };
}
pub(crate) use migrations;

/// The migration that introduced the index rows: profiles stored before it are indexed when it
/// is applied.
const INDEX_MIGRATION: i64 = 3;

/// What to run on a schema at `current`, to reach `target`.
pub(crate) struct Plan<'m> {
    /// Apply each, in order, and record it.
    pub apply: Vec<&'m Migration>,
    /// Then build the index rows of the profiles already stored. Indexing reads profiles with
    /// today's columns, so it runs after every migration, and only when migrating to the latest.
    pub index_existing: bool,
}

pub(crate) fn plan(migrations: &[Migration], current: i64, target: i64) -> Plan<'_> {
    Plan {
        apply: migrations
            .iter()
            .filter(|m| m.version > current && m.version <= target)
            .collect(),
        index_existing: current < INDEX_MIGRATION && target >= latest(migrations),
    }
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
        let current = plan(all, latest(all), latest(all));
        assert!(current.apply.is_empty() && !current.index_existing);
        for (m, n) in all.iter().zip(1..) {
            assert_eq!(m.version, n, "versions are 1, 2, 3, … with no gap");
        }
    }
}
