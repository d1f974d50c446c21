//! PostgreSQL: provider configurations (a `JSONB` document per channel and environment).

use super::{db, pg, PostgresStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::env::EnvScope;
use herald_core::profile::micros;
use herald_core::store::{ProviderConfigStore, ProviderRecord, StoreError};
use serde_json::Value;
use tokio_postgres::types::Json;

#[async_trait]
impl ProviderConfigStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn list_provider_configs(
        &self,
        scope: EnvScope,
    ) -> Result<Vec<ProviderRecord>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query(
                pg(sql::LIST_PROVIDER_CONFIGS).as_ref(),
                &[&scope.env().as_str()],
            )
            .await
            .map_err(db)?;
        found.iter().map(rows::provider_config).collect()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), channel = channel.as_str()))]
    async fn get_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
    ) -> Result<Option<ProviderRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                pg(sql::GET_PROVIDER_CONFIG).as_ref(),
                &[&scope.env().as_str(), &channel.as_str()],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(rows::provider_config).transpose()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), channel = channel.as_str()))]
    async fn put_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
        config: &Value,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let now = micros(chrono::Utc::now());
        let row = client
            .query_one(
                pg(sql::PUT_PROVIDER_CONFIG).as_ref(),
                &[
                    &scope.env().as_str(),
                    &channel.as_str(),
                    &Json(config),
                    &now,
                ],
            )
            .await
            .map_err(db)?;
        let created_at: i64 = row.try_get(0).map_err(db)?;
        Ok(created_at == now)
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), channel = channel.as_str()))]
    async fn delete_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                pg(sql::DELETE_PROVIDER_CONFIG).as_ref(),
                &[&scope.env().as_str(), &channel.as_str()],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }
}
