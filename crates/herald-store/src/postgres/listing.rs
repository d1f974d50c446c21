//! PostgreSQL: filtered listings and counts, with the SQL of [`crate::query`].

use super::{db, pg};
use crate::query::{self as listing_sql, Arg, Dialect, Plan, Sql, NARROW_SEARCH};
use crate::{rows, sql};
use deadpool_postgres::GenericClient;
use herald_core::env::Env;
use herald_core::filter::Filter;
use herald_core::index::EVERY_PROFILE;
use herald_core::listing::{sample_ids, Count, ListQuery, COUNT_SAMPLE, EXACT_COUNT_LIMIT};
use herald_core::profile::{micros, Profile};
use herald_core::store::StoreError;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub(crate) fn params(sql: &Sql) -> Vec<Box<dyn ToSql + Sync + Send>> {
    sql.args
        .iter()
        .map(|a| -> Box<dyn ToSql + Sync + Send> {
            match a {
                Arg::Text(s) => Box::new(s.clone()),
                Arg::Int(i) => Box::new(*i),
                Arg::Real(f) => Box::new(*f),
            }
        })
        .collect()
}

pub(super) async fn run(client: &impl GenericClient, sql: &Sql) -> Result<Vec<Row>, StoreError> {
    let owned = params(sql);
    let refs: Vec<&(dyn ToSql + Sync)> = owned
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client.query(&sql.text, &refs).await.map_err(db)
}

async fn count_of(client: &impl GenericClient, sql: &Sql) -> Result<u64, StoreError> {
    let rows = run(client, sql).await?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)).max(0) as u64)
}

pub(super) async fn counter(
    client: &impl GenericClient,
    env: Env,
    key: &str,
) -> Result<u64, StoreError> {
    let row = client
        .query_one(pg(sql::COUNTER).as_ref(), &[&env.as_str(), &key])
        .await
        .map_err(db)?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Probes what the planner of [`crate::query`] needs to know: how narrow the search is.
async fn plan(client: &impl GenericClient, env: Env, filter: &Filter) -> Result<Plan, StoreError> {
    let narrow_search = match &filter.q {
        Some(q) => {
            count_of(
                client,
                &listing_sql::search_probe(Dialect::Postgres, env, q),
            )
            .await?
                <= NARROW_SEARCH
        }
        None => false,
    };
    Ok(Plan { narrow_search })
}

pub(super) async fn list(
    client: &impl GenericClient,
    env: Env,
    q: &ListQuery,
) -> Result<Vec<Profile>, StoreError> {
    let sql = listing_sql::list(
        Dialect::Postgres,
        env,
        q,
        plan(client, env, &q.filter).await?,
    );
    run(client, &sql).await?.iter().map(rows::profile).collect()
}

pub(super) async fn count(
    client: &impl GenericClient,
    env: Env,
    filter: &Filter,
) -> Result<Count, StoreError> {
    let total = counter(client, env, EVERY_PROFILE).await?;
    if filter.is_empty() {
        return Ok(Count::exact(total));
    }
    let capped = count_of(
        client,
        &listing_sql::count_capped(
            Dialect::Postgres,
            env,
            filter,
            EXACT_COUNT_LIMIT + 1,
            plan(client, env, filter).await?,
        ),
    )
    .await?;
    if capped <= EXACT_COUNT_LIMIT {
        return Ok(Count::exact(capped));
    }
    let row = client
        .query_one(sql::PROFILE_ID_RANGE, &[])
        .await
        .map_err(db)?;
    let ids = sample_ids(
        row.get(0),
        row.get(1),
        COUNT_SAMPLE,
        micros(chrono::Utc::now()) as u64,
    );
    let sample = run(
        client,
        &listing_sql::count_sample(Dialect::Postgres, env, filter, &ids),
    )
    .await?;
    let (sampled, matched) = sample
        .first()
        .map_or((0, 0), |r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
    let (sampled, matched) = (sampled.max(0) as u64, matched.max(0) as u64);
    Ok(Count::estimated(matched, sampled, total, capped))
}
