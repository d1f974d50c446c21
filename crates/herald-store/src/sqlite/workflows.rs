//! SQLite: workflows (a JSON document per slug and environment) and the events that start them.

use super::{execute, query, query_opt, SqliteStore};
use crate::{rows, sql};
use async_trait::async_trait;
use herald_core::env::EnvScope;
use herald_core::profile::micros;
use herald_core::store::{StoreError, WorkflowStore};
use herald_core::workflow::Workflow;
use rusqlite::params;

#[async_trait]
impl WorkflowStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn list_workflows(&self, scope: EnvScope) -> Result<Vec<Workflow>, StoreError> {
        self.readers
            .read(move |conn| {
                query(conn, sql::LIST_WORKFLOWS, [scope.env().as_str()], |r| {
                    rows::workflow(r)
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %slug))]
    async fn get_workflow(
        &self,
        scope: EnvScope,
        slug: &str,
    ) -> Result<Option<Workflow>, StoreError> {
        let slug = slug.to_owned();
        self.readers
            .read(move |conn| {
                query_opt(
                    conn,
                    sql::GET_WORKFLOW,
                    params![scope.env().as_str(), slug],
                    |r| rows::workflow(r),
                )
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %workflow.slug))]
    async fn put_workflow(
        &self,
        scope: EnvScope,
        workflow: &Workflow,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let (slug, doc) = (workflow.slug.clone(), super::json(&workflow.to_input()));
        let events = workflow.events.clone();
        self.writer
            .write(move |conn| {
                let env = scope.env().as_str();
                let statement = if replace {
                    sql::REPLACE_WORKFLOW
                } else {
                    sql::INSERT_WORKFLOW
                };
                let now = micros(chrono::Utc::now());
                if execute(conn, statement, params![env, slug, doc, now])? == 0 {
                    return Ok(false);
                }
                execute(conn, sql::DELETE_WORKFLOW_EVENTS, params![env, slug])?;
                for event in &events {
                    execute(conn, sql::INSERT_WORKFLOW_EVENT, params![env, slug, event])?;
                }
                Ok(true)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), slug = %slug))]
    async fn delete_workflow(&self, scope: EnvScope, slug: &str) -> Result<bool, StoreError> {
        let slug = slug.to_owned();
        self.writer
            .write(move |conn| {
                let env = scope.env().as_str();
                for statement in sql::DELETE_WORKFLOW_DIGESTS {
                    execute(conn, statement, params![env, slug])?;
                }
                execute(conn, sql::DELETE_WORKFLOW, params![env, slug]).map(|n| n == 1)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), event = %event))]
    async fn workflows_for_event(
        &self,
        scope: EnvScope,
        event: &str,
    ) -> Result<Vec<Workflow>, StoreError> {
        let event = event.to_owned();
        self.readers
            .read(move |conn| {
                query(
                    conn,
                    sql::WORKFLOWS_FOR_EVENT,
                    params![scope.env().as_str(), event],
                    |r| rows::workflow(r),
                )
            })
            .await
    }
}
