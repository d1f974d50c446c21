//! What dispatch hands a provider, and what the provider answers: the seam between the workflow
//! engine (which renders [`Content`] for one recipient on one channel) and the adapters in
//! `herald-channels` (which speak the real protocols). Plain data; no I/O here.

use crate::channel::{Channel, Identity};
use crate::env::Env;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// A notification rendered for one channel. Each variant holds exactly what its channel's
/// workflow template renders (see the workflow's per-channel template fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Content {
    Email {
        subject: String,
        html: Option<String>,
        text: Option<String>,
    },
    Sms {
        text: String,
    },
    Whatsapp {
        text: String,
    },
    Slack {
        text: String,
        /// Block Kit blocks, as JSON the template rendered.
        blocks: Option<Value>,
    },
    Discord {
        content: String,
        embeds: Option<Value>,
    },
    MsTeams {
        text: Option<String>,
        /// An Adaptive Card, sent as an attachment.
        card: Option<Value>,
    },
    Inbox {
        title: String,
        body: String,
        action_url: Option<String>,
    },
    Androidpush(Push),
    Iospush(Push),
    Webpush(Push),
}

/// A push notification, the same fields on every push channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Push {
    pub title: String,
    pub body: String,
    /// Key/value data delivered beside the notification (FCM `data`, APNs custom keys, web push JSON).
    pub data: Option<Value>,
    /// Where a tap leads (FCM `click_action`/`link`, APNs custom `url`, web push `url`).
    pub url: Option<String>,
    pub image: Option<String>,
}

impl Content {
    pub fn channel(&self) -> Channel {
        match self {
            Content::Email { .. } => Channel::Email,
            Content::Sms { .. } => Channel::Sms,
            Content::Whatsapp { .. } => Channel::Whatsapp,
            Content::Slack { .. } => Channel::Slack,
            Content::Discord { .. } => Channel::Discord,
            Content::MsTeams { .. } => Channel::MsTeams,
            Content::Inbox { .. } => Channel::Inbox,
            Content::Androidpush(_) => Channel::Androidpush,
            Content::Iospush(_) => Channel::Iospush,
            Content::Webpush(_) => Channel::Webpush,
        }
    }
}

/// One message to deliver: rendered content, the identity it goes to, and the message id the
/// provider may echo back (idempotency keys, status callbacks).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub env: Env,
    pub message_id: String,
    pub identity: Identity,
    pub content: Content,
}

/// What a provider made of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Accepted by the provider; `provider_id` is its id for the message (SMTP queue id, Twilio
    /// SID, Slack `ts`, ...), when it gives one.
    Sent { provider_id: Option<String> },
    /// Failed, may succeed later: network errors, timeouts, 429 and 5xx answers.
    Retry {
        reason: String,
        /// The provider's `Retry-After`, when it sent one.
        after: Option<Duration>,
    },
    /// Failed for good. `identity_invalid` marks the address itself as dead (hard bounce,
    /// unknown number, revoked webhook): later sends skip that identity.
    Failed {
        reason: String,
        identity_invalid: bool,
    },
}

/// A delivery provider for one channel. Implemented in `herald-channels`; the worker calls it
/// with a timeout of its own, so an implementation may also bound its own calls.
#[async_trait]
pub trait Provider: Send + Sync {
    fn channel(&self) -> Channel;
    async fn send(&self, message: &Outgoing) -> Delivery;
}

/// Whether `identity` carries its own endpoint, so it needs no provider configured for its
/// channel: Slack incoming webhooks and Slack identities with their own `access_token`, Teams and
/// Discord incoming webhooks. (The inbox is delivered by Herald itself.)
pub fn carries_endpoint(identity: &Identity) -> bool {
    let v = &identity.value;
    match identity.channel {
        Channel::Slack => v.get("incoming_webhook").is_some() || v.get("access_token").is_some(),
        Channel::MsTeams => v.get("incoming_webhook").is_some(),
        Channel::Discord => true,
        Channel::Inbox => true,
        _ => false,
    }
}

/// Where dispatch finds its providers, per environment: the planner asks which channels have
/// one, the worker asks for the provider that delivers to one identity. Implemented by the
/// server over the stored provider configurations (`/v1/provider/`) and the config file.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The channels `env` has a provider configured for.
    async fn configured(
        &self,
        env: Env,
    ) -> Result<std::collections::BTreeSet<Channel>, crate::store::StoreError>;

    /// The provider that delivers to `identity` in `env`: the configured one for its channel, or
    /// for an identity that [`carries_endpoint`], a provider that needs no configuration.
    /// `None`: nothing can deliver it.
    async fn provider(
        &self,
        env: Env,
        identity: &Identity,
    ) -> Result<Option<std::sync::Arc<dyn Provider>>, crate::store::StoreError>;
}
