//! SQLite: provider configurations (a JSON document per channel and environment).

use super::{execute, query, query_opt, SqliteStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::env::EnvScope;
use herald_core::profile::micros;
use herald_core::store::{ProviderConfigStore, ProviderRecord, StoreError};
use rusqlite::params;
use serde_json::Value;

#[async_trait]
impl ProviderConfigStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn list_provider_configs(
        &self,
        scope: EnvScope,
    ) -> Result<Vec<ProviderRecord>, StoreError> {
        self.readers
            .read(move |conn| {
                query(
                    conn,
                    sql::LIST_PROVIDER_CONFIGS,
                    [scope.env().as_str()],
                    |r| rows::provider_config(r),
                )
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), channel = channel.as_str()))]
    async fn get_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
    ) -> Result<Option<ProviderRecord>, StoreError> {
        self.readers
            .read(move |conn| {
                query_opt(
                    conn,
                    sql::GET_PROVIDER_CONFIG,
                    params![scope.env().as_str(), channel.as_str()],
                    |r| rows::provider_config(r),
                )
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), channel = channel.as_str()))]
    async fn put_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
        config: &Value,
    ) -> Result<bool, StoreError> {
        let doc = super::json(config);
        self.writer
            .write(move |conn| {
                let now = micros(chrono::Utc::now());
                let created_at = query_opt(
                    conn,
                    sql::PUT_PROVIDER_CONFIG,
                    params![scope.env().as_str(), channel.as_str(), doc, now],
                    |r| r.get::<_, i64>(0).map_err(super::internal),
                )?;
                Ok(created_at == Some(now))
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), channel = channel.as_str()))]
    async fn delete_provider_config(
        &self,
        scope: EnvScope,
        channel: Channel,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::DELETE_PROVIDER_CONFIG,
                    params![scope.env().as_str(), channel.as_str()],
                )
                .map(|n| n == 1)
            })
            .await
    }
}
