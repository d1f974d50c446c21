//! Copying everything one Herald database holds into another: how a team that outgrew embedded
//! SQLite moves to PostgreSQL (or back) without losing a profile, a history event, a preference,
//! a category, a workflow, a property label or a key.

use super::{profiles, Error};
use crate::env::{Env, EnvScope};
use crate::erasure;
use crate::error::Invalid;
use crate::store::{Imported, Store};

/// Profiles read and written per transaction.
const BATCH: usize = 500;

/// What was copied into one environment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvReport {
    pub profiles: u64,
    /// Profiles the target held already and kept untouched (a resumed copy).
    pub skipped: u64,
    pub history_events: u64,
    pub categories: u64,
    pub workflows: u64,
    /// Provider configurations (secrets included).
    pub providers: u64,
    pub properties: u64,
}

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Key sets copied (those the target did not hold already).
    pub credentials: u64,
    /// Dashboard operator accounts copied (those the target did not hold already); their
    /// sessions are not: operators log in again on the new database.
    pub operators: u64,
    pub test: EnvReport,
    pub live: EnvReport,
}

/// Copies keys and dashboard operator accounts, then per environment the categories, the workflows, the provider configurations, the property registry's declared and
/// labelled records, and every profile with its history (oldest first, times and actors kept).
/// The target must hold no profiles, so nothing is merged by accident (see [`resume`] for a copy
/// that was interrupted). `progress` hears of every batch of profiles copied. Profiles written to
/// the source meanwhile may be missed: stop writers first. Idempotency keys (kept 24 hours) and
/// the tombstones of profiles that no longer exist are not copied.
#[tracing::instrument(skip_all, fields(op = "copy.run"))]
pub async fn run(
    from: &dyn Store,
    to: &dyn Store,
    progress: &(dyn Fn(Env, u64) + Sync),
) -> Result<Report, Error> {
    for (env, n) in profiles::counts_per_env(to).await? {
        if n > 0 {
            return Err(Error::Conflict(Invalid::new(
                "target",
                format!("already holds {n} profiles in {env}; copy into an empty database, or resume an interrupted copy"),
            )));
        }
    }
    copy(from, to, false, progress).await
}

/// Finishes a copy that was interrupted: the same as [`run`] into a target that already holds
/// part of the source. Every step is idempotent: profiles go over in batches of one transaction
/// each, in distinct_id order, and those the target holds already (with their history) are
/// skipped, so each arrives exactly once; keys, categories, workflows and registry records are
/// upserted.
/// A profile the target holds is kept as it is there, so resume only into the target of the
/// interrupted copy.
#[tracing::instrument(skip_all, fields(op = "copy.resume"))]
pub async fn resume(
    from: &dyn Store,
    to: &dyn Store,
    progress: &(dyn Fn(Env, u64) + Sync),
) -> Result<Report, Error> {
    copy(from, to, true, progress).await
}

async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    resume: bool,
    progress: &(dyn Fn(Env, u64) + Sync),
) -> Result<Report, Error> {
    // Tombstones are filed under a hash keyed with this secret: the target needs the same one to
    // find them.
    let secret = from
        .server_secret(erasure::SECRET_NAME, &erasure::fresh_secret())
        .await?;
    if to.server_secret(erasure::SECRET_NAME, &secret).await? != secret {
        return Err(Error::Conflict(Invalid::new(
            "target",
            "holds an erasure secret of its own; copy into an empty database",
        )));
    }
    let mut report = Report::default();
    for c in from.list_credentials().await? {
        if to
            .credentials_by_workspace_key(&c.workspace_key)
            .await?
            .is_none()
        {
            to.insert_credentials(&c).await?;
            report.credentials += 1;
        }
    }
    for operator in from.list_operators().await? {
        if to.insert_operator(&operator).await? {
            report.operators += 1;
        }
    }
    report.test = copy_env(from, to, Env::Test, resume, progress).await?;
    report.live = copy_env(from, to, Env::Live, resume, progress).await?;
    to.refresh_statistics().await?;
    Ok(report)
}

async fn copy_env(
    from: &dyn Store,
    to: &dyn Store,
    env: Env,
    resume: bool,
    progress: &(dyn Fn(Env, u64) + Sync),
) -> Result<EnvReport, Error> {
    let scope = EnvScope::operator(env);
    let mut report = EnvReport::default();
    for category in from.list_categories(scope).await? {
        to.put_category(scope, &category, true).await?;
        report.categories += 1;
    }
    for workflow in from.list_workflows(scope).await? {
        to.put_workflow(scope, &workflow, true).await?;
        report.workflows += 1;
    }
    for provider in from.list_provider_configs(scope).await? {
        to.put_provider_config(scope, provider.channel, &provider.config)
            .await?;
        report.providers += 1;
    }
    // Discovered records come back with the profiles that carry them; declared ones and every
    // label, description and visibility choice are the operator's and are copied as they are.
    for record in from.list_property_records(scope).await? {
        if record.declared {
            to.insert_property_record(scope, &record).await?;
        } else {
            to.put_property_record(scope, &record).await?;
        }
        report.properties += 1;
    }
    let mut all = profiles::AllProfiles::new(scope);
    loop {
        let profiles = all.next_page(from, BATCH).await?;
        if profiles.is_empty() {
            break;
        }
        let n = profiles.len() as u64;
        let mut items = Vec::with_capacity(profiles.len());
        for profile in profiles {
            if resume && to.get_profile(scope, &profile.distinct_id).await?.is_some() {
                report.skipped += 1;
                continue;
            }
            let mut history = profiles::whole_history(from, scope, &profile.distinct_id).await?;
            history.reverse();
            report.history_events += history.len() as u64;
            items.push(Imported { profile, history });
        }
        if !items.is_empty() {
            report.profiles += to.import_profiles(scope, items).await?;
        }
        progress(env, n);
    }
    Ok(report)
}
