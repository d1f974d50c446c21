//! SQLite: executing the shared migration plan in one `IMMEDIATE` transaction, so two processes
//! opening the file at once apply each migration once.

use super::history::erasure_secret;
use super::pool::internal;
use super::{execute, index, json, query, value};
use crate::migrate::{self, Migration};
use crate::{rows, sql};
use herald_core::env::Env;
use herald_core::index::entries;
use herald_core::profile::micros;
use herald_core::store::StoreError;
use rusqlite::{params, Connection};

pub(crate) const MIGRATIONS: &[Migration] = migrate::migrations!();

/// Applies missing migrations in one transaction; safe when two processes open the file at once.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, migrate::latest(MIGRATIONS))
}

/// With migrations off at start, a schema behind this build is an error that says what to run.
pub(super) fn check_current(conn: &Connection) -> Result<(), StoreError> {
    let current = value::<i64>(conn, sql::MIGRATIONS_CURRENT, [])
        .ok()
        .flatten()
        .unwrap_or(0);
    crate::check_schema_version(current, migrate::latest(MIGRATIONS))
}

/// Applies the missing migrations up to `target` (all of them, outside tests).
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(internal)?;
    tx.execute_batch(sql::MIGRATIONS_TABLE).map_err(internal)?;
    let current: i64 = value(&tx, sql::MIGRATIONS_CURRENT, [])?.unwrap_or(0);
    let plan = migrate::plan(MIGRATIONS, current, target);
    for m in plan.apply {
        tx.execute_batch(m.sql).map_err(|e| {
            StoreError::internal_from(format!("migration {} ({})", m.version, m.name), e)
        })?;
        tx.execute(
            sql::MIGRATIONS_RECORD,
            params![m.version, m.name, micros(chrono::Utc::now())],
        )
        .map_err(internal)?;
    }
    if plan.index_existing {
        index_existing_profiles(&tx)?;
    }
    if plan.refile_tombstones {
        refile_tombstones(&tx)?;
    }
    if plan.repair_index {
        repair_index_rows(&tx)?;
    }
    tx.commit().map_err(internal)
}

/// Migration 8: tombstones still filed under a raw id go under its keyed hash (see
/// [`migrate::refiled`]), with the secret made as a delete makes it, in this transaction.
fn refile_tombstones(conn: &Connection) -> Result<(), StoreError> {
    let stored = query(conn, sql::TOMBSTONES, [], |r| {
        Ok(migrate::StoredTombstone {
            event_id: r.get(0).map_err(internal)?,
            env: r.get(1).map_err(internal)?,
            filed_under: r.get(2).map_err(internal)?,
            action: r.get(3).map_err(internal)?,
            request: rows::Columns::json(r, 4).map_err(StoreError::internal)?,
        })
    })?;
    if stored.is_empty() {
        // No secret is made for nothing: `herald copy` wants a target without one.
        return Ok(());
    }
    let secret = erasure_secret(conn, true)?.expect("the secret was just stored");
    let refiled = migrate::refiled(&secret, stored)?;
    for t in &refiled {
        execute(
            conn,
            sql::REFILE_TOMBSTONE,
            params![t.event_id, t.erased, json(&t.request), json(&t.changes)],
        )?;
    }
    for t in &refiled {
        execute(conn, sql::DROP_OLDER_TOMBSTONES, params![t.env, t.erased])?;
    }
    Ok(())
}

/// Migration 8: rewrites the index rows of every profile whose rows are not its entries (see
/// [`migrate::stale`]), a batch of profiles at a time. Counters count keys, not rows: they stay.
fn repair_index_rows(conn: &Connection) -> Result<(), StoreError> {
    for env in Env::ALL {
        let mut after = String::new();
        loop {
            let batch = query(
                conn,
                sql::PROFILES_AFTER,
                params![env.as_str(), after, migrate::REPAIR_BATCH],
                |r| rows::profile(r),
            )?;
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                break;
            };
            let stored = query(
                conn,
                sql::INDEX_ROWS_BETWEEN,
                params![
                    env.as_str(),
                    first.distinct_id.as_str(),
                    last.distinct_id.as_str()
                ],
                |r| {
                    Ok(migrate::StoredEntry {
                        distinct_id: r.get(0).map_err(internal)?,
                        key: r.get(1).map_err(internal)?,
                        kind: r.get(2).map_err(internal)?,
                        text: r.get(3).map_err(internal)?,
                        num: r.get(4).map_err(internal)?,
                        time: r.get(5).map_err(internal)?,
                    })
                },
            )?;
            for p in migrate::stale(&batch, stored) {
                let id = p.distinct_id.as_str();
                execute(conn, sql::DELETE_INDEX_ROWS, params![env.as_str(), id])?;
                for e in entries(p) {
                    execute(conn, sql::INTERN_INDEX_KEY, params![env.as_str(), e.key])?;
                    execute(
                        conn,
                        sql::INSERT_INDEX_ROW,
                        params![
                            env.as_str(),
                            id,
                            e.key,
                            e.kind.code(),
                            e.text,
                            e.num,
                            e.time,
                            micros(p.created_at)
                        ],
                    )?;
                }
            }
            after = last.distinct_id.to_string();
        }
    }
    Ok(())
}

fn index_existing_profiles(conn: &Connection) -> Result<(), StoreError> {
    let stored = query(conn, sql::SELECT_ALL_PROFILES, [], |r| {
        let env: Env = r
            .get::<_, String>(8)
            .map_err(internal)?
            .parse()
            .map_err(StoreError::internal)?;
        Ok((env, rows::profile(r)?))
    })?;
    for (env, p) in stored {
        index::sync(conn, env, None, Some(&p))?;
    }
    Ok(())
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;

    /// A database made before the filter index holds profiles; upgrading indexes them, so
    /// filters, counts and the registry see them.
    #[test]
    fn upgrading_indexes_profiles_stored_before_the_index_existed() {
        let dir = std::env::temp_dir().join(format!("herald-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, 2).unwrap();
        conn.execute(
            "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, updated_at, version)
             VALUES ('test', 'ada', 'enabled', '{\"name\":\"Ada\",\"plan\":\"pro\"}', '[]', 1, 1, 1)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM profile_values v JOIN index_keys k ON k.id = v.key_id \
                   JOIN profiles p ON p.id = v.profile_id \
                   WHERE p.distinct_id = 'ada' AND k.key = 'plan' AND v.text_value = 'pro'"
            ),
            1
        );
        assert_eq!(
            count("SELECT SUM(n) FROM property_counts WHERE env = 'test' AND key = '*'"),
            1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM properties WHERE key = 'plan'"),
            1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM profiles WHERE preferences = '{}'"),
            1
        );
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Labels given to the built-in timestamps under their old keys follow them to `$` keys.
    #[test]
    fn upgrading_moves_timestamp_overrides_to_their_dollar_keys() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 5).unwrap();
        conn.execute(
            "INSERT INTO properties (env, key, kind, label, description, show_in_table, declared_type, declared, types_seen, created_at)
             VALUES ('live', 'created_at', 'general', 'Signed up', '', 0, NULL, 0, 0, 0)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let label: String = conn
            .query_row(
                "SELECT label FROM properties WHERE env = 'live' AND key = '$created_at'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(label, "Signed up");
    }
}

#[cfg(test)]
mod erasure_tests {
    use super::*;

    /// Every table keyed by a user is erased with the user: through `sql::ERASE_USER`, or (the
    /// index rows) through the index upkeep. A new per-user table fails here until it is added.
    #[test]
    fn every_per_user_table_is_erased_in_one_place() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let tables: Vec<String> = conn
            .prepare(
                "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c
                 WHERE m.type = 'table' AND c.name = 'distinct_id' ORDER BY m.name",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(tables.contains(&"profiles".to_owned()), "{tables:?}");
        for table in tables.iter().filter(|t| *t != "profile_values") {
            let erased = sql::ERASE_USER
                .iter()
                .any(|s| s.starts_with(&format!("DELETE FROM {table} WHERE")));
            assert!(erased, "per-user table '{table}' is not in sql::ERASE_USER");
        }
    }
}
