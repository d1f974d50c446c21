//! SQLite: the property registry's own methods (profile writes keep it in step via [`super::index`]).

use super::listing::counter;
use super::{execute, query, SqliteStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::env::EnvScope;
use herald_core::profile::micros;
use herald_core::property::PropertyRecord;
use herald_core::store::{PropertyDeletion, PropertyStore, StoreError};
use rusqlite::params;
use rusqlite::types::Value as SqlValue;
use std::collections::BTreeMap;

/// The arguments of [`sql::INSERT_PROPERTY_RECORD`] and [`sql::PUT_PROPERTY_RECORD`].
pub(super) fn record_params(env: &str, r: &PropertyRecord) -> Vec<SqlValue> {
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

#[async_trait]
impl PropertyStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn list_property_records(
        &self,
        scope: EnvScope,
    ) -> Result<Vec<PropertyRecord>, StoreError> {
        self.readers
            .read(move |conn| {
                query(
                    conn,
                    sql::LIST_PROPERTY_RECORDS,
                    [scope.env().as_str()],
                    |r| rows::property_record(r),
                )
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn property_counts(&self, scope: EnvScope) -> Result<BTreeMap<String, i64>, StoreError> {
        self.readers
            .read(move |conn| {
                let counts = query(conn, sql::PROPERTY_COUNTS, [scope.env().as_str()], |r| {
                    Ok((
                        r.get(0).map_err(super::pool::internal)?,
                        r.get(1).map_err(super::pool::internal)?,
                    ))
                })?;
                Ok(counts.into_iter().collect())
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), key = %record.key))]
    async fn insert_property_record(
        &self,
        scope: EnvScope,
        record: &PropertyRecord,
    ) -> Result<bool, StoreError> {
        let record = record.clone();
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::INSERT_PROPERTY_RECORD,
                    rusqlite::params_from_iter(record_params(scope.env().as_str(), &record)),
                )
                .map(|n| n == 1)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), key = %record.key))]
    async fn put_property_record(
        &self,
        scope: EnvScope,
        record: &PropertyRecord,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::PUT_PROPERTY_RECORD,
                    rusqlite::params_from_iter(record_params(scope.env().as_str(), &record)),
                )
                .map(drop)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), key = %key))]
    async fn delete_property_record(
        &self,
        scope: EnvScope,
        key: &str,
    ) -> Result<PropertyDeletion, StoreError> {
        let key = key.to_owned();
        self.writer
            .write(move |conn| {
                // The writer runs alone: no profile write can start using the key meanwhile.
                let carried = counter(conn, scope.env(), &key)?;
                if carried > 0 {
                    return Ok(PropertyDeletion::StillCarried(carried));
                }
                let n = execute(
                    conn,
                    sql::DELETE_PROPERTY_RECORD,
                    params![scope.env().as_str(), key],
                )?;
                Ok(if n == 1 {
                    PropertyDeletion::Deleted
                } else {
                    PropertyDeletion::Missing
                })
            })
            .await
    }
}
