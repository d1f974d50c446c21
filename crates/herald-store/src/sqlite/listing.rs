//! SQLite: filtered listings and counts, with the SQL of [`crate::query`].

use super::pool::internal;
use super::{query, value};
use crate::query::{self as listing_sql, Arg, Dialect, Plan, Sql, NARROW_SEARCH};
use crate::{rows, sql};
use herald_core::env::Env;
use herald_core::filter::Filter;
use herald_core::index::EVERY_PROFILE;
use herald_core::listing::{sample_ids, Count, ListQuery, COUNT_SAMPLE, EXACT_COUNT_LIMIT};
use herald_core::profile::{micros, Profile};
use herald_core::store::StoreError;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection};

pub(crate) fn args(sql: &Sql) -> rusqlite::ParamsFromIter<Vec<SqlValue>> {
    rusqlite::params_from_iter(
        sql.args
            .iter()
            .map(|a| match a {
                Arg::Text(s) => SqlValue::Text(s.clone()),
                Arg::Int(i) => SqlValue::Integer(*i),
                Arg::Real(f) => SqlValue::Real(*f),
            })
            .collect(),
    )
}

fn count_of(conn: &Connection, sql: &Sql) -> Result<u64, StoreError> {
    Ok(value::<i64>(conn, &sql.text, args(sql))?
        .unwrap_or(0)
        .max(0) as u64)
}

pub(super) fn counter(conn: &Connection, env: Env, key: &str) -> Result<u64, StoreError> {
    Ok(
        value::<i64>(conn, sql::COUNTER, params![env.as_str(), key])?
            .unwrap_or(0)
            .max(0) as u64,
    )
}

/// Probes what the planner of [`crate::query`] needs to know: how narrow the search is.
fn plan(conn: &Connection, env: Env, filter: &Filter) -> Result<Plan, StoreError> {
    let narrow_search = match &filter.q {
        Some(q) => {
            count_of(conn, &listing_sql::search_probe(Dialect::Sqlite, env, q))? <= NARROW_SEARCH
        }
        None => false,
    };
    Ok(Plan { narrow_search })
}

pub(super) fn list(conn: &Connection, env: Env, q: &ListQuery) -> Result<Vec<Profile>, StoreError> {
    let sql = listing_sql::list(Dialect::Sqlite, env, q, plan(conn, env, &q.filter)?);
    query(conn, &sql.text, args(&sql), |r| rows::profile(r))
}

pub(super) fn count(conn: &Connection, env: Env, filter: &Filter) -> Result<Count, StoreError> {
    let total = counter(conn, env, EVERY_PROFILE)?;
    if filter.is_empty() {
        return Ok(Count::exact(total));
    }
    let capped = count_of(
        conn,
        &listing_sql::count_capped(
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
        .query_row(sql::PROFILE_ID_RANGE, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(internal)?;
    let ids = sample_ids(min, max, COUNT_SAMPLE, micros(chrono::Utc::now()) as u64);
    let sample = listing_sql::count_sample(Dialect::Sqlite, env, filter, &ids);
    let (sampled, matched): (i64, i64) = conn
        .prepare_cached(&sample.text)
        .and_then(|mut s| s.query_row(args(&sample), |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(internal)?;
    let (sampled, matched) = (sampled.max(0) as u64, matched.max(0) as u64);
    Ok(Count::estimated(matched, sampled, total, capped))
}
