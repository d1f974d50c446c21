//! PostgreSQL: notification categories (a `JSONB` document per slug and environment).

use super::{db, pg, PostgresStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::env::EnvScope;
use herald_core::preference::Category;
use herald_core::profile::micros;
use herald_core::store::{CategoryStore, StoreError};
use tokio_postgres::types::Json;

#[async_trait]
impl CategoryStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn list_categories(&self, scope: EnvScope) -> Result<Vec<Category>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query(pg(sql::LIST_CATEGORIES).as_ref(), &[&scope.env().as_str()])
            .await
            .map_err(db)?;
        found.iter().map(rows::category).collect()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %slug))]
    async fn get_category(
        &self,
        scope: EnvScope,
        slug: &str,
    ) -> Result<Option<Category>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                pg(sql::GET_CATEGORY).as_ref(),
                &[&scope.env().as_str(), &slug],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(rows::category).transpose()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %category.slug))]
    async fn put_category(
        &self,
        scope: EnvScope,
        category: &Category,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = if replace {
            sql::REPLACE_CATEGORY
        } else {
            sql::INSERT_CATEGORY
        };
        let n = client
            .execute(
                pg(statement).as_ref(),
                &[
                    &scope.env().as_str(),
                    &category.slug,
                    &Json(category),
                    &micros(chrono::Utc::now()),
                ],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %slug))]
    async fn delete_category(&self, scope: EnvScope, slug: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                pg(sql::DELETE_CATEGORY).as_ref(),
                &[&scope.env().as_str(), &slug],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }
}
