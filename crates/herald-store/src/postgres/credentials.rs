//! PostgreSQL: credentials and server secrets.

use super::{db, pg, PostgresStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::credentials::Credentials;
use herald_core::erasure;
use herald_core::profile::micros;
use herald_core::store::{CredentialStore, StoreError};

impl PostgresStore {
    /// The erasure secret, stored first if there is none (see `herald_core::erasure`).
    pub(super) async fn erasure_secret(&self) -> Result<String, StoreError> {
        self.server_secret(erasure::SECRET_NAME, &erasure::fresh_secret())
            .await
    }

    async fn credentials_where(
        &self,
        statement: &'static str,
        value: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&pg(statement)).await.map_err(db)?;
        client
            .query_opt(&stmt, &[&value])
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::credentials)
            .transpose()
    }
}

#[async_trait]
impl CredentialStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(env = %c.env))]
    async fn insert_credentials(&self, c: &Credentials) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                pg(sql::INSERT_CREDENTIALS).as_ref(),
                &[
                    &c.workspace_key,
                    &c.env.as_str(),
                    &c.workspace_secret,
                    &c.api_key_hash,
                    &c.api_key_prefix,
                    &micros(c.created_at),
                ],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn delete_credentials(&self, workspace_key: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(pg(sql::DELETE_CREDENTIALS).as_ref(), &[&workspace_key])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn list_credentials(&self) -> Result<Vec<Credentials>, StoreError> {
        let client = self.client().await?;
        let found = client.query(sql::LIST_CREDENTIALS, &[]).await.map_err(db)?;
        found.iter().map(rows::credentials).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn credentials_by_workspace_key(
        &self,
        key: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        self.credentials_where(sql::CREDENTIALS_BY_WORKSPACE_KEY, key)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn credentials_by_api_key_hash(
        &self,
        hash: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        self.credentials_where(sql::CREDENTIALS_BY_API_KEY_HASH, hash)
            .await
    }

    #[tracing::instrument(skip_all, fields(name = %name))]
    async fn server_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let client = self.client().await?;
        client
            .execute(pg(sql::INSERT_SECRET).as_ref(), &[&name, &candidate])
            .await
            .map_err(db)?;
        let row = client
            .query_one(pg(sql::SELECT_SECRET).as_ref(), &[&name])
            .await
            .map_err(db)?;
        Ok(row.get(0))
    }

    #[tracing::instrument(skip_all, fields(name = %name))]
    async fn replace_server_secret(
        &self,
        name: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(pg(sql::REPLACE_SECRET).as_ref(), &[&name, &expected, &new])
            .await
            .map_err(db)?;
        Ok(n == 1)
    }
}
