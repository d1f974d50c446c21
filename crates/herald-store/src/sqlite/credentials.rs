//! SQLite: credentials and server secrets.

use super::{execute, query, query_opt, value, SqliteStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::credentials::Credentials;
use herald_core::profile::micros;
use herald_core::store::{CredentialStore, StoreError};
use rusqlite::params;

#[async_trait]
impl CredentialStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(env = %c.env))]
    async fn insert_credentials(&self, c: &Credentials) -> Result<(), StoreError> {
        let c = c.clone();
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::INSERT_CREDENTIALS,
                    params![
                        c.workspace_key,
                        c.env.as_str(),
                        c.workspace_secret,
                        c.api_key_hash,
                        c.api_key_prefix,
                        micros(c.created_at)
                    ],
                )
                .map(drop)
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_credentials(&self, workspace_key: &str) -> Result<bool, StoreError> {
        let key = workspace_key.to_owned();
        self.writer
            .write(move |conn| execute(conn, sql::DELETE_CREDENTIALS, [key]).map(|n| n > 0))
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_credentials(&self) -> Result<Vec<Credentials>, StoreError> {
        self.readers
            .read(|conn| query(conn, sql::LIST_CREDENTIALS, [], |r| rows::credentials(r)))
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn credentials_by_workspace_key(
        &self,
        key: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let key = key.to_owned();
        self.readers
            .read(move |conn| {
                query_opt(conn, sql::CREDENTIALS_BY_WORKSPACE_KEY, [key], |r| {
                    rows::credentials(r)
                })
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn credentials_by_api_key_hash(
        &self,
        hash: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let hash = hash.to_owned();
        self.readers
            .read(move |conn| {
                query_opt(conn, sql::CREDENTIALS_BY_API_KEY_HASH, [hash], |r| {
                    rows::credentials(r)
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(name = %name))]
    async fn server_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let (name, candidate) = (name.to_owned(), candidate.to_owned());
        self.writer
            .write(move |conn| {
                execute(conn, sql::INSERT_SECRET, params![name, candidate])?;
                value(conn, sql::SELECT_SECRET, [&name])?.ok_or_else(|| {
                    StoreError::internal("a server secret vanished as it was stored")
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(name = %name))]
    async fn replace_server_secret(
        &self,
        name: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let (name, expected, new) = (name.to_owned(), expected.to_owned(), new.to_owned());
        self.writer
            .write(move |conn| {
                execute(conn, sql::REPLACE_SECRET, params![name, expected, new]).map(|n| n == 1)
            })
            .await
    }
}
