//! PostgreSQL: the property registry's own methods (profile writes keep it in step via
//! [`super::index`]).

use super::listing::counter;
use super::{db, pg, PostgresStore};
use crate::{rows, sql};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use herald_core::env::EnvScope;
use herald_core::profile::micros;
use herald_core::property::PropertyRecord;
use herald_core::store::{PropertyDeletion, PropertyStore, StoreError};
use std::collections::BTreeMap;

/// Runs [`sql::INSERT_PROPERTY_RECORD`] or [`sql::PUT_PROPERTY_RECORD`] for `r`.
pub(super) async fn write_record(
    client: &impl GenericClient,
    statement: &'static str,
    env: &str,
    r: &PropertyRecord,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            pg(statement).as_ref(),
            &[
                &env,
                &r.key,
                &r.kind.as_str(),
                &r.label,
                &r.description,
                &r.show_in_table,
                &r.declared_type,
                &r.declared,
                &(r.types_seen as i16),
                &micros(r.created_at),
            ],
        )
        .await
}

#[async_trait]
impl PropertyStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn list_property_records(
        &self,
        scope: EnvScope,
    ) -> Result<Vec<PropertyRecord>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query(
                pg(sql::LIST_PROPERTY_RECORDS).as_ref(),
                &[&scope.env().as_str()],
            )
            .await
            .map_err(db)?;
        found.iter().map(rows::property_record).collect()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn property_counts(&self, scope: EnvScope) -> Result<BTreeMap<String, i64>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query(pg(sql::PROPERTY_COUNTS).as_ref(), &[&scope.env().as_str()])
            .await
            .map_err(db)?;
        Ok(found.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), key = %record.key))]
    async fn insert_property_record(
        &self,
        scope: EnvScope,
        record: &PropertyRecord,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = write_record(
            &client,
            sql::INSERT_PROPERTY_RECORD,
            scope.env().as_str(),
            record,
        )
        .await
        .map_err(db)?;
        Ok(n == 1)
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), key = %r.key))]
    async fn put_property_record(
        &self,
        scope: EnvScope,
        r: &PropertyRecord,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        write_record(&client, sql::PUT_PROPERTY_RECORD, scope.env().as_str(), r)
            .await
            .map_err(db)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), key = %key))]
    async fn delete_property_record(
        &self,
        scope: EnvScope,
        key: &str,
    ) -> Result<PropertyDeletion, StoreError> {
        // One transaction: the record is locked first, so writers about to use the key (they hold
        // it `FOR KEY SHARE`, see `index::lock_records`) commit before the counter is read.
        let env = scope.env().as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(
            "SELECT 1 FROM properties WHERE env = $1 AND key = $2 FOR UPDATE",
            &[&env, &key],
        )
        .await
        .map_err(db)?;
        let carried = counter(&tx, scope.env(), key).await?;
        if carried > 0 {
            return Ok(PropertyDeletion::StillCarried(carried));
        }
        let n = tx
            .execute(pg(sql::DELETE_PROPERTY_RECORD).as_ref(), &[&env, &key])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(if n == 1 {
            PropertyDeletion::Deleted
        } else {
            PropertyDeletion::Missing
        })
    }
}
