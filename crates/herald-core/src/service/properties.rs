//! The property registry's use cases: list, declare, change, delete.

use super::{Ctx, Error};
use crate::error::Invalid;
use crate::property::{self, Property, PropertyAttributes, PropertyDeclaration, PropertyKind};
use crate::store::{PropertyDeletion, Store};

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "properties.list"))]
pub async fn list(store: &dyn Store, ctx: &Ctx) -> Result<Vec<Property>, Error> {
    let records = store.list_property_records(ctx.scope).await?;
    let counts = store.property_counts(ctx.scope).await?;
    Ok(property::assemble(records, &counts))
}

#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "properties.get"))]
pub async fn get(store: &dyn Store, ctx: &Ctx, key: &str) -> Result<Property, Error> {
    list(store, ctx)
        .await?
        .into_iter()
        .find(|p| p.record.key == key)
        .ok_or_else(|| Error::Missing {
            what: "property",
            key: key.to_owned(),
        })
}

/// `POST /v1/property/`: declares a custom property before any profile carries it.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "properties.declare"))]
pub async fn declare(
    store: &dyn Store,
    ctx: &Ctx,
    declaration: PropertyDeclaration,
) -> Result<Property, Error> {
    let record = declaration.into_record(ctx.now)?;
    if !store.insert_property_record(ctx.scope, &record).await? {
        return Err(Error::Conflict(Invalid::new(
            "key",
            format!(
                "property '{}' exists already; change it with PATCH",
                record.key
            ),
        )));
    }
    get(store, ctx, &record.key).await
}

/// `PATCH /v1/property/{key}/`: label, description, show_in_table.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "properties.update"))]
pub async fn update(
    store: &dyn Store,
    ctx: &Ctx,
    key: &str,
    attributes: PropertyAttributes,
) -> Result<Property, Error> {
    let record = get(store, ctx, key).await?.record.patched(attributes)?;
    store.put_property_record(ctx.scope, &record).await?;
    get(store, ctx, key).await
}

/// `DELETE /v1/property/{key}/`: only custom properties no profile carries.
#[tracing::instrument(skip_all, fields(env = %ctx.scope.env(), op = "properties.delete"))]
pub async fn delete(store: &dyn Store, ctx: &Ctx, key: &str) -> Result<(), Error> {
    let current = get(store, ctx, key).await?;
    if current.record.kind != PropertyKind::Custom {
        return Err(Error::Conflict(Invalid::new(
            "key",
            format!(
                "'{key}' is a built-in property and cannot be deleted; hide it with show_in_table"
            ),
        )));
    }
    match store.delete_property_record(ctx.scope, key).await? {
        PropertyDeletion::Deleted | PropertyDeletion::Missing => Ok(()),
        PropertyDeletion::StillCarried(n) => Err(Error::Conflict(Invalid::new(
            "key",
            format!("{n} profile(s) still carry '{key}'; unset it on them first"),
        ))),
    }
}
