//! PostgreSQL: workflows (a `JSONB` document per slug and environment) and the events that start
//! them.

use super::{db, pg, PostgresStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::env::EnvScope;
use herald_core::profile::micros;
use herald_core::store::{StoreError, WorkflowStore};
use herald_core::workflow::{Workflow, WorkflowInput};
use tokio_postgres::types::Json;

#[async_trait]
impl WorkflowStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn list_workflows(&self, scope: EnvScope) -> Result<Vec<Workflow>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query(pg(sql::LIST_WORKFLOWS).as_ref(), &[&scope.env().as_str()])
            .await
            .map_err(db)?;
        found.iter().map(rows::workflow).collect()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %slug))]
    async fn get_workflow(
        &self,
        scope: EnvScope,
        slug: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                pg(sql::GET_WORKFLOW).as_ref(),
                &[&scope.env().as_str(), &slug],
            )
            .await
            .map_err(db)?;
        row.as_ref().map(rows::workflow).transpose()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %workflow.slug))]
    async fn put_workflow(
        &self,
        scope: EnvScope,
        workflow: &Workflow,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let statement = if replace {
            sql::REPLACE_WORKFLOW
        } else {
            sql::INSERT_WORKFLOW
        };
        let doc: WorkflowInput = workflow.to_input();
        self.in_transaction(|tx| {
            let (doc, slug) = (doc.clone(), workflow.slug.clone());
            let events = workflow.events.clone();
            Box::pin(async move {
                let env = scope.env().as_str();
                let n = tx
                    .execute(
                        pg(statement).as_ref(),
                        &[&env, &slug, &Json(&doc), &micros(chrono::Utc::now())],
                    )
                    .await?;
                if n == 0 {
                    return Ok(false);
                }
                tx.execute(pg(sql::DELETE_WORKFLOW_EVENTS).as_ref(), &[&env, &slug])
                    .await?;
                for event in &events {
                    tx.execute(
                        pg(sql::INSERT_WORKFLOW_EVENT).as_ref(),
                        &[&env, &slug, event],
                    )
                    .await?;
                }
                Ok(true)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %slug))]
    async fn delete_workflow(&self, scope: EnvScope, slug: &str) -> Result<bool, StoreError> {
        let slug = slug.to_owned();
        self.in_transaction(|tx| {
            let slug = slug.clone();
            Box::pin(async move {
                let env = scope.env().as_str();
                for statement in sql::DELETE_WORKFLOW_DIGESTS {
                    tx.execute(pg(statement).as_ref(), &[&env, &slug]).await?;
                }
                let n = tx
                    .execute(pg(sql::DELETE_WORKFLOW).as_ref(), &[&env, &slug])
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), event = %event))]
    async fn workflows_for_event(
        &self,
        scope: EnvScope,
        event: &str,
    ) -> Result<Vec<Workflow>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query(
                pg(sql::WORKFLOWS_FOR_EVENT).as_ref(),
                &[&scope.env().as_str(), &event],
            )
            .await
            .map_err(db)?;
        found.iter().map(rows::workflow).collect()
    }
}
