//! SQLite: notification categories (a JSON document per slug and environment).

use super::{execute, query, query_opt, SqliteStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::env::EnvScope;
use herald_core::preference::Category;
use herald_core::profile::micros;
use herald_core::store::{CategoryStore, StoreError};
use rusqlite::params;

#[async_trait]
impl CategoryStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn list_categories(&self, scope: EnvScope) -> Result<Vec<Category>, StoreError> {
        self.readers
            .read(move |conn| {
                query(conn, sql::LIST_CATEGORIES, [scope.env().as_str()], |r| {
                    rows::category(r)
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %slug))]
    async fn get_category(
        &self,
        scope: EnvScope,
        slug: &str,
    ) -> Result<Option<Category>, StoreError> {
        let slug = slug.to_owned();
        self.readers
            .read(move |conn| {
                query_opt(
                    conn,
                    sql::GET_CATEGORY,
                    params![scope.env().as_str(), slug],
                    |r| rows::category(r),
                )
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %category.slug))]
    async fn put_category(
        &self,
        scope: EnvScope,
        category: &Category,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let (slug, doc) = (category.slug.clone(), super::json(category));
        self.writer
            .write(move |conn| {
                let statement = if replace {
                    sql::REPLACE_CATEGORY
                } else {
                    sql::INSERT_CATEGORY
                };
                let now = micros(chrono::Utc::now());
                execute(
                    conn,
                    statement,
                    params![scope.env().as_str(), slug, doc, now],
                )
                .map(|n| n == 1)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %slug))]
    async fn delete_category(&self, scope: EnvScope, slug: &str) -> Result<bool, StoreError> {
        let slug = slug.to_owned();
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::DELETE_CATEGORY,
                    params![scope.env().as_str(), slug],
                )
                .map(|n| n == 1)
            })
            .await
    }
}
