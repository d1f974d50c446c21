//! SQLite: keeping the index rows, counters and discovered properties in step with each profile
//! write, filtered listings and counts, and the property registry's own methods.

use super::pool::internal;
use super::{profile_from_row, SqliteStore};
use crate::query::{self, Arg, Dialect, Plan, Sql, NARROW_SEARCH};
use async_trait::async_trait;
use herald_core::env::{Env, EnvScope};
use herald_core::filter::Filter;
use herald_core::index::{Change, EVERY_PROFILE};
use herald_core::listing::{sample_ids, Count, ListQuery, COUNT_SAMPLE, EXACT_COUNT_LIMIT};
use herald_core::preference::Category;
use herald_core::profile::{from_micros, micros, Profile};
use herald_core::property::{self, PropertyKind, PropertyRecord};
use herald_core::store::{CategoryStore, PropertyStore, StoreError};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;

/// Brings the index rows, counters and registry in step with a profile going from `before` to
/// `after` (`None`: not stored / removed).
pub(super) fn sync(
    conn: &Connection,
    env: Env,
    before: Option<&Profile>,
    after: Option<&Profile>,
) -> Result<(), StoreError> {
    let Some(p) = after.or(before) else {
        return Ok(());
    };
    let change = Change::between(before, after);
    let id = p.distinct_id.as_str();
    apply_change(
        conn,
        env,
        id,
        micros(p.created_at),
        &change,
        after.is_none(),
    )
}

/// Applies `change` for the profile `id` (created at `created_at`). `gone`: the profile was
/// removed, so all its rows go at once.
fn apply_change(
    conn: &Connection,
    env: Env,
    id: &str,
    created_at: i64,
    change: &Change,
    gone: bool,
) -> Result<(), StoreError> {
    let env = env.as_str();
    if gone {
        conn.prepare_cached("DELETE FROM profile_values WHERE env = ?1 AND distinct_id = ?2")
            .and_then(|mut s| s.execute(params![env, id]))
            .map_err(internal)?;
    } else {
        let mut delete = conn
            .prepare_cached(
                "DELETE FROM profile_values WHERE env = ?1 AND distinct_id = ?2 AND key = ?3 AND kind = ?4 AND text_value = ?5",
            )
            .map_err(internal)?;
        for e in &change.removed {
            delete
                .execute(params![env, id, e.key, e.kind.code(), e.text])
                .map_err(internal)?;
        }
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO profile_values (env, distinct_id, key, kind, text_value, num_value, time_value, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(internal)?;
    for e in &change.added {
        insert
            .execute(params![
                env,
                id,
                e.key,
                e.kind.code(),
                e.text,
                e.num,
                e.time,
                created_at
            ])
            .map_err(internal)?;
    }
    let mut count = conn
        .prepare_cached(
            "INSERT INTO property_counts (env, key, shard, n) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (env, key, shard) DO UPDATE SET n = n + excluded.n",
        )
        .map_err(internal)?;
    for (key, delta) in &change.counts {
        count.execute(params![env, key, delta]).map_err(internal)?;
    }
    for (key, bits) in &change.seen {
        let r = property::discovered(key, *bits, chrono::Utc::now());
        conn.prepare_cached(
            "INSERT INTO properties (env, key, kind, label, description, show_in_table, declared_type, declared, types_seen, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (env, key) DO NOTHING",
        )
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(record_params(env, &r))))
        .map_err(internal)?;
        conn.prepare_cached(
            "UPDATE properties SET types_seen = types_seen | ?3 WHERE env = ?1 AND key = ?2 AND (types_seen | ?3) <> types_seen",
        )
        .and_then(|mut s| s.execute(params![env, key, bits]))
        .map_err(internal)?;
    }
    Ok(())
}

fn record_params(env: &str, r: &PropertyRecord) -> Vec<SqlValue> {
    vec![
        env.to_owned().into(),
        r.key.clone().into(),
        r.kind.as_str().to_owned().into(),
        r.label.clone().into(),
        r.description.clone().into(),
        (r.show_in_table as i64).into(),
        r.declared_type.clone().into(),
        (r.declared as i64).into(),
        (r.types_seen as i64).into(),
        micros(r.created_at).into(),
    ]
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<PropertyRecord> {
    let key: String = row.get(0)?;
    Ok(PropertyRecord {
        kind: PropertyKind::of(&key),
        key,
        label: row.get(1)?,
        description: row.get(2)?,
        show_in_table: row.get(3)?,
        declared_type: row.get(4)?,
        declared: row.get(5)?,
        types_seen: row.get::<_, i64>(6)? as u8,
        created_at: from_micros(row.get(7)?),
    })
}

fn args(sql: &Sql) -> Vec<SqlValue> {
    sql.args
        .iter()
        .map(|a| match a {
            Arg::Text(s) => SqlValue::Text(s.clone()),
            Arg::Int(i) => SqlValue::Integer(*i),
            Arg::Real(f) => SqlValue::Real(*f),
        })
        .collect()
}

fn count_of(conn: &Connection, sql: &Sql) -> Result<u64, StoreError> {
    conn.prepare_cached(&sql.text)
        .and_then(|mut s| {
            s.query_row(rusqlite::params_from_iter(args(sql)), |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n.max(0) as u64)
        .map_err(internal)
}

fn counter(conn: &Connection, env: Env, key: &str) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(n), 0) FROM property_counts WHERE env = ?1 AND key = ?2",
    )
    .and_then(|mut s| s.query_row(params![env.as_str(), key], |r| r.get::<_, i64>(0)))
    .map(|n| n.max(0) as u64)
    .map_err(internal)
}

/// Probes what the planner of [`query`] needs to know: how narrow the search is.
fn plan(conn: &Connection, env: Env, filter: &Filter) -> Result<Plan, StoreError> {
    let narrow_search = match &filter.q {
        Some(q) => count_of(conn, &query::search_probe(Dialect::Sqlite, env, q))? <= NARROW_SEARCH,
        None => false,
    };
    Ok(Plan { narrow_search })
}

pub(super) fn list(
    conn: &Connection,
    env: Env,
    query: &ListQuery,
) -> Result<Vec<Profile>, StoreError> {
    let sql = query::list(Dialect::Sqlite, env, query, plan(conn, env, &query.filter)?);
    let mut s = conn.prepare_cached(&sql.text).map_err(internal)?;
    let rows = s
        .query_map(rusqlite::params_from_iter(args(&sql)), profile_from_row)
        .map_err(internal)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(internal)
}

pub(super) fn count(conn: &Connection, env: Env, filter: &Filter) -> Result<Count, StoreError> {
    let total = counter(conn, env, EVERY_PROFILE)?;
    if filter.is_empty() {
        return Ok(Count::exact(total));
    }
    let capped = count_of(
        conn,
        &query::count_capped(
            Dialect::Sqlite,
            env,
            filter,
            EXACT_COUNT_LIMIT + 1,
            plan(conn, env, filter)?,
        ),
    )?;
    if capped <= EXACT_COUNT_LIMIT {
        return Ok(Count::exact(capped));
    }
    let (min, max): (i64, i64) = conn
        .query_row(
            "SELECT COALESCE((SELECT MIN(id) FROM profiles), 0), COALESCE((SELECT MAX(id) FROM profiles), 0)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(internal)?;
    let ids = sample_ids(min, max, COUNT_SAMPLE, micros(chrono::Utc::now()) as u64);
    let sample = query::count_sample(Dialect::Sqlite, env, filter, &ids);
    let (sampled, matched): (i64, i64) = conn
        .prepare_cached(&sample.text)
        .and_then(|mut s| {
            s.query_row(rusqlite::params_from_iter(args(&sample)), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(internal)?;
    let (sampled, matched) = (sampled.max(0) as u64, matched.max(0) as u64);
    Ok(Count::estimated(matched, sampled, total, capped))
}

#[async_trait]
impl PropertyStore for SqliteStore {
    async fn list_property_records(
        &self,
        scope: EnvScope,
    ) -> Result<Vec<PropertyRecord>, StoreError> {
        self.readers
            .read(move |conn| {
                let mut s = conn
                    .prepare_cached(
                        "SELECT key, label, description, show_in_table, declared_type, declared, types_seen, created_at
                         FROM properties WHERE env = ?1 ORDER BY key",
                    )
                    .map_err(internal)?;
                let rows = s
                    .query_map([scope.env().as_str()], record_from_row)
                    .map_err(internal)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(internal)
            })
            .await
    }

    async fn property_counts(&self, scope: EnvScope) -> Result<BTreeMap<String, i64>, StoreError> {
        self.readers
            .read(move |conn| {
                let mut s = conn
                    .prepare_cached(
                        "SELECT key, SUM(n) FROM property_counts WHERE env = ?1 GROUP BY key",
                    )
                    .map_err(internal)?;
                let rows = s
                    .query_map([scope.env().as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(internal)?;
                rows.collect::<Result<BTreeMap<_, _>, _>>()
                    .map_err(internal)
            })
            .await
    }

    async fn insert_property_record(
        &self,
        scope: EnvScope,
        record: &PropertyRecord,
    ) -> Result<bool, StoreError> {
        let record = record.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO properties (env, key, kind, label, description, show_in_table, declared_type, declared, types_seen, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (env, key) DO NOTHING",
                )
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(record_params(scope.env().as_str(), &record))))
                .map(|n| n == 1)
                .map_err(internal)
            })
            .await
    }

    async fn put_property_record(
        &self,
        scope: EnvScope,
        record: &PropertyRecord,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO properties (env, key, kind, label, description, show_in_table, declared_type, declared, types_seen, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (env, key) DO UPDATE SET label = excluded.label, description = excluded.description,
                         show_in_table = excluded.show_in_table",
                )
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(record_params(scope.env().as_str(), &record))))
                .map_err(internal)?;
                Ok(())
            })
            .await
    }

    async fn delete_property_record(
        &self,
        scope: EnvScope,
        key: &str,
    ) -> Result<Result<bool, u64>, StoreError> {
        let key = key.to_owned();
        self.writer
            .write(move |conn| {
                let carried = counter(conn, scope.env(), &key)?;
                if carried > 0 {
                    return Ok(Err(carried));
                }
                conn.prepare_cached("DELETE FROM properties WHERE env = ?1 AND key = ?2")
                    .and_then(|mut s| s.execute(params![scope.env().as_str(), key]))
                    .map(|n| Ok(n == 1))
                    .map_err(internal)
            })
            .await
    }
}

#[async_trait]
impl CategoryStore for SqliteStore {
    async fn list_categories(&self, scope: EnvScope) -> Result<Vec<Category>, StoreError> {
        self.readers
            .read(move |conn| {
                let mut s = conn
                    .prepare_cached("SELECT doc FROM categories WHERE env = ?1 ORDER BY slug")
                    .map_err(internal)?;
                let docs = s
                    .query_map([scope.env().as_str()], |r| r.get::<_, String>(0))
                    .map_err(internal)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(internal)?;
                docs.iter()
                    .map(|d| serde_json::from_str(d).map_err(corrupt))
                    .collect()
            })
            .await
    }

    async fn get_category(
        &self,
        scope: EnvScope,
        slug: &str,
    ) -> Result<Option<Category>, StoreError> {
        let slug = slug.to_owned();
        self.readers
            .read(move |conn| {
                let doc: Option<String> = conn
                    .prepare_cached("SELECT doc FROM categories WHERE env = ?1 AND slug = ?2")
                    .and_then(|mut s| {
                        s.query_row(params![scope.env().as_str(), slug], |r| r.get(0))
                            .optional()
                    })
                    .map_err(internal)?;
                doc.map(|d| serde_json::from_str(&d).map_err(corrupt))
                    .transpose()
            })
            .await
    }

    async fn put_category(
        &self,
        scope: EnvScope,
        category: &Category,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let (slug, doc) = (
            category.slug.clone(),
            serde_json::to_string(category).map_err(corrupt)?,
        );
        self.writer
            .write(move |conn| {
                let now = micros(chrono::Utc::now());
                let sql = if replace {
                    "INSERT INTO categories (env, slug, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (env, slug) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at"
                } else {
                    "INSERT INTO categories (env, slug, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (env, slug) DO NOTHING"
                };
                conn.prepare_cached(sql)
                    .and_then(|mut s| s.execute(params![scope.env().as_str(), slug, doc, now]))
                    .map(|n| n == 1)
                    .map_err(internal)
            })
            .await
    }

    async fn delete_category(&self, scope: EnvScope, slug: &str) -> Result<bool, StoreError> {
        let slug = slug.to_owned();
        self.writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM categories WHERE env = ?1 AND slug = ?2")
                    .and_then(|mut s| s.execute(params![scope.env().as_str(), slug]))
                    .map(|n| n == 1)
                    .map_err(internal)
            })
            .await
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Internal(format!("unreadable category document: {e}"))
}
