//! Dispatch planning: for one recipient of one workflow, which channels are sent now, which wait
//! as fallbacks, and which are skipped and why. A pure function of the workflow, the profile, the
//! category and the providers configured; the service renders and records what it says.

use crate::channel::{Channel, Identity};
use crate::delivery::Route;
use crate::message::SkipReason;
use crate::preference::{self, Category, DefaultPreference};
use crate::profile::Profile;
use crate::workflow::{Policy, Workflow};
use crate::IdentityStatus;
use std::collections::BTreeSet;

/// One channel to send on, to this identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    pub channel: Channel,
    pub identity: Identity,
}

/// What happens on each channel of a workflow for one recipient.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Sent now (under `all`, every sendable channel; under `first_success`, the first).
    pub now: Vec<Send>,
    /// Under `first_success`, the sendable channels after the first, in order: each is sent only
    /// after the one before it failed for good (see [`Plan::next_after`]). Empty under `all`.
    pub fallbacks: Vec<Send>,
    /// Channels not sent, with the reason, in the workflow's channel order.
    pub skipped: Vec<(Channel, SkipReason)>,
}

impl Plan {
    /// The channel to try once `failed` (sent now, or a fallback) has failed for good: the next
    /// in the `first_success` order, if any.
    pub fn next_after(&self, failed: Channel) -> Option<&Send> {
        if self.now.iter().any(|s| s.channel == failed) {
            return self.fallbacks.first();
        }
        let at = self.fallbacks.iter().position(|s| s.channel == failed)?;
        self.fallbacks.get(at + 1)
    }
}

/// The category a workflow without one is judged by: opt-in and never chosen by a user (no
/// preference can name the empty slug), so only the user's status, their global channel
/// restrictions and their identities apply.
fn uncategorized() -> Category {
    Category {
        slug: String::new(),
        name: String::new(),
        description: String::new(),
        section: None,
        default_preference: DefaultPreference::OptIn,
        locked_channels: BTreeSet::new(),
        visible: false,
    }
}

/// Plans one recipient of `workflow`. For each channel of the workflow ([`Workflow::channels`]),
/// in order:
/// - a channel outside the recipient's `$channels` (`restricted`) is left out (no message);
/// - [`preference::decide`] with the workflow's `category` (none: see [`uncategorized`]) skips
///   with its reason: `user_disabled`, `category_opted_out`, `channel_opted_out`,
///   `channel_restricted`, `no_identity`, `identity_invalid`;
/// - the identity is the first active one (`status` and `perma_status`) that a provider
///   delivers (`configured`: [`crate::delivery::route`] over the environment's providers); none
///   skips with `no_provider`, or `provider_mismatch` when a provider on the channel was of the
///   wrong kind for an identity's token (an APNs token and an FCM provider).
///
/// Under `first_success` and `smart` the first sendable channel is sent now and the rest are
/// fallbacks (under `smart`, each gated: see [`crate::message::Message::follow_step`]).
pub fn plan(
    workflow: &Workflow,
    profile: &Profile,
    category: Option<&Category>,
    restricted: Option<&[Channel]>,
    configured: &dyn Fn(&Identity) -> Route,
) -> Plan {
    let fallback_category;
    let category = match category {
        Some(c) => c,
        None => {
            fallback_category = uncategorized();
            &fallback_category
        }
    };
    let mut plan = Plan::default();
    let mut sendable = Vec::new();
    for channel in workflow.channels() {
        if restricted.is_some_and(|only| !only.contains(&channel)) {
            continue;
        }
        if let Err(skip) = preference::decide(profile, category, channel) {
            plan.skipped.push((channel, skip.into()));
            continue;
        }
        let mut unsent = SkipReason::NoProvider;
        let identity = profile
            .identities_on(channel)
            .filter(|i| {
                i.status == IdentityStatus::Active && i.perma_status == IdentityStatus::Active
            })
            .find(|i| match configured(i) {
                Route::Configured(_) | Route::Unconfigured => true,
                Route::Mismatch { .. } => {
                    unsent = SkipReason::ProviderMismatch;
                    false
                }
                Route::NoProvider => false,
            });
        match identity {
            Some(identity) => sendable.push(Send {
                channel,
                identity: identity.clone(),
            }),
            None => plan.skipped.push((channel, unsent)),
        }
    }
    match workflow.policy {
        Policy::All => plan.now = sendable,
        // A smart order is planned like `first_success`; its steps differ in when they follow.
        Policy::FirstSuccess(_) | Policy::Smart(_) => {
            let mut rest = sendable.into_iter();
            plan.now.extend(rest.next());
            plan.fallbacks = rest.collect();
        }
    }
    plan
}

#[cfg(test)]
mod tests;
