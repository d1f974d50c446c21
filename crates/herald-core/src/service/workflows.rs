//! `/v1/workflow/…` and the configuration file's workflows: what a trigger or a track event sends,
//! per environment. Every template is checked when the workflow is saved ([`Workflow::parse`]).

use super::{Ctx, Error};
use crate::error::Invalid;
use crate::store::Store;
use crate::workflow::{Workflow, WorkflowInput};

fn missing(slug: &str) -> Error {
    Error::Missing {
        what: "workflow",
        key: slug.to_owned(),
    }
}

/// A checked workflow whose category exists in this environment: a typo in it would otherwise
/// send past every user's opt-out for the category meant.
async fn checked(store: &dyn Store, ctx: &Ctx, input: WorkflowInput) -> Result<Workflow, Error> {
    let workflow = Workflow::parse(input)?;
    if let Some(category) = &workflow.category {
        if store.get_category(ctx.scope, category).await?.is_none() {
            return Err(Error::Invalid(Invalid::new(
                "category",
                format!("there is no category '{category}' in this environment; create it first (POST /v1/category/)"),
            )));
        }
    }
    Ok(workflow)
}

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "workflows.list"))]
pub async fn list(store: &dyn Store, ctx: &Ctx) -> Result<Vec<Workflow>, Error> {
    Ok(store.list_workflows(ctx.scope).await?)
}

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "workflows.get"))]
pub async fn get(store: &dyn Store, ctx: &Ctx, slug: &str) -> Result<Workflow, Error> {
    store
        .get_workflow(ctx.scope, slug)
        .await?
        .ok_or_else(|| missing(slug))
}

/// `POST /v1/workflow/`: a new workflow; one with that slug already is a conflict.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "workflows.create"))]
pub async fn create(store: &dyn Store, ctx: &Ctx, input: WorkflowInput) -> Result<Workflow, Error> {
    let workflow = checked(store, ctx, input).await?;
    if !store.put_workflow(ctx.scope, &workflow, false).await? {
        return Err(Error::Conflict(Invalid::new(
            "slug",
            format!(
                "workflow '{}' exists already; replace it with PUT /v1/workflow/{}/",
                workflow.slug, workflow.slug
            ),
        )));
    }
    Ok(workflow)
}

/// Whether [`put`] created the workflow or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    Replaced,
}

/// `PUT /v1/workflow/{slug}/`: creates or replaces the workflow `slug`. The body's slug may be
/// left out; if given it must be `slug`.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "workflows.put"))]
pub async fn put(
    store: &dyn Store,
    ctx: &Ctx,
    slug: &str,
    mut input: WorkflowInput,
) -> Result<(Workflow, Put), Error> {
    if input.slug.is_empty() {
        input.slug = slug.to_owned();
    } else if input.slug != slug {
        return Err(Error::Invalid(Invalid::new(
            "slug",
            format!(
                "'{}' is not the slug of the path ('{slug}'); leave it out or send the same",
                input.slug
            ),
        )));
    }
    let workflow = checked(store, ctx, input).await?;
    // Insert first, so the answer can say which it was; a workflow deleted in between is simply
    // created by the replace.
    if store.put_workflow(ctx.scope, &workflow, false).await? {
        return Ok((workflow, Put::Created));
    }
    store.put_workflow(ctx.scope, &workflow, true).await?;
    Ok((workflow, Put::Replaced))
}

/// `DELETE /v1/workflow/{slug}/`. Messages it already sent stay in the log.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "workflows.delete"))]
pub async fn delete(store: &dyn Store, ctx: &Ctx, slug: &str) -> Result<(), Error> {
    if store.delete_workflow(ctx.scope, slug).await? {
        Ok(())
    } else {
        Err(missing(slug))
    }
}

/// The configuration file's workflows: each created or replaced, checked as the API checks it.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "workflows.declare"))]
pub async fn declare(
    store: &dyn Store,
    ctx: &Ctx,
    input: WorkflowInput,
) -> Result<Workflow, Error> {
    let workflow = checked(store, ctx, input).await?;
    store.put_workflow(ctx.scope, &workflow, true).await?;
    Ok(workflow)
}
