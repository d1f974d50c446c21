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

/// The providers configured in an environment: the kind (`smtp`, `fcm`, `apns`, …) on each channel
/// that has one.
pub type Configured = std::collections::BTreeMap<Channel, String>;

/// Who delivers one identity in an environment ([`route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The provider configured on this channel (the identity's own, or for an FCM token the FCM
    /// provider of the other mobile push channel).
    Configured(Channel),
    /// A provider that needs no configuration: the inbox (Herald itself), or an identity that
    /// [`carries_endpoint`] on a channel with no provider.
    Unconfigured,
    /// Nothing configured delivers it.
    NoProvider,
    /// The identity's channel has a provider, but of a kind that does not deliver the identity's
    /// kind of token (an APNs device token when `iospush` is FCM), and no other provider does.
    Mismatch {
        /// The kind of token (the identity's `id_provider`): `apns`, `fcm`, `xiaomi`, …
        token: String,
        /// The kind of provider configured on the identity's channel.
        provider: String,
    },
}

/// The kind of token a push identity holds: its `id_provider`, or the channel's default (`fcm`
/// on `androidpush`, `apns` on `iospush`, `vapid` on `webpush`). `None` off the push channels.
/// A push provider sends only tokens of its own kind.
pub fn token_kind(identity: &Identity) -> Option<&str> {
    let default = match identity.channel {
        Channel::Androidpush => "fcm",
        Channel::Iospush => "apns",
        Channel::Webpush => "vapid",
        _ => return None,
    };
    Some(identity.provider.as_deref().unwrap_or(default))
}

/// Which configured provider delivers `identity` — the one rule; the planner and the server's
/// directory both ask it.
///
/// - The inbox is Herald's own ([`Route::Unconfigured`]).
/// - A push identity goes only to a provider of its token's kind (its `id_provider`: `fcm`,
///   `apns`, `vapid`): the one on its own channel when that is of its kind; else, for an `fcm`
///   token, the `fcm` provider of the other mobile push channel (an iOS app using Firebase
///   registers FCM tokens, and one Firebase project serves both apps, so an FCM provider on
///   `androidpush` also delivers `$iospush` FCM tokens, and one on `iospush` `$androidpush`
///   ones). An APNs token never goes to FCM, nor an FCM token to APNs ([`Route::Mismatch`]).
/// - Any other identity goes to its channel's provider, or without one to a provider that needs
///   no configuration when it [`carries_endpoint`].
pub fn route(identity: &Identity, configured: &Configured) -> Route {
    if identity.channel == Channel::Inbox {
        return Route::Unconfigured;
    }
    let own = configured.get(&identity.channel);
    let Some(token) = token_kind(identity) else {
        return match own {
            Some(_) => Route::Configured(identity.channel),
            None if carries_endpoint(identity) => Route::Unconfigured,
            None => Route::NoProvider,
        };
    };
    if own.is_some_and(|kind| kind == token) {
        return Route::Configured(identity.channel);
    }
    let other = match identity.channel {
        Channel::Androidpush => Some(Channel::Iospush),
        Channel::Iospush => Some(Channel::Androidpush),
        _ => None,
    };
    if let Some(other) =
        other.filter(|o| token == "fcm" && configured.get(o).is_some_and(|k| k == "fcm"))
    {
        return Route::Configured(other);
    }
    match own {
        Some(kind) => Route::Mismatch {
            token: token.to_owned(),
            provider: kind.clone(),
        },
        None => Route::NoProvider,
    }
}

/// Where dispatch finds its providers, per environment: the planner asks which channels have
/// one, the worker asks for the provider that delivers to one identity. Implemented by the
/// server over the stored provider configurations (`/v1/provider/`) and the config file.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The channels `env` has a provider configured for, with each one's kind.
    async fn configured(&self, env: Env) -> Result<Configured, crate::store::StoreError>;

    /// The provider that delivers to `identity` in `env`, as [`route`] says: the one configured
    /// on the channel it names, or a provider that needs no configuration. `None`: nothing can
    /// deliver it.
    async fn provider(
        &self,
        env: Env,
        identity: &Identity,
    ) -> Result<Option<std::sync::Arc<dyn Provider>>, crate::store::StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::IdentityMeta;
    use serde_json::json;

    fn push(channel: Channel, provider: Option<&str>) -> Identity {
        let meta = IdentityMeta {
            provider: provider.map(str::to_owned),
            ..IdentityMeta::default()
        };
        Identity::parse(channel, &json!("tok"), &meta).unwrap()
    }

    fn configured(kinds: &[(Channel, &str)]) -> Configured {
        kinds.iter().map(|(c, k)| (*c, (*k).to_owned())).collect()
    }

    fn mismatch(token: &str, provider: &str) -> Route {
        Route::Mismatch {
            token: token.into(),
            provider: provider.into(),
        }
    }

    /// Every kind of mobile push token against every arrangement of FCM and APNs providers.
    #[test]
    fn push_tokens_go_only_to_a_provider_of_their_kind() {
        use Channel::{Androidpush as A, Iospush as I};
        let ios_apns = push(I, None);
        let ios_fcm = push(I, Some("fcm"));
        let android_fcm = push(A, None);
        let android_xiaomi = push(A, Some("xiaomi"));
        let none = configured(&[]);
        let fcm_on_android = configured(&[(A, "fcm")]);
        let apns_and_fcm = configured(&[(A, "fcm"), (I, "apns")]);
        let fcm_on_ios = configured(&[(I, "fcm")]);
        let fcm_on_both = configured(&[(A, "fcm"), (I, "fcm")]);
        let apns_only = configured(&[(I, "apns")]);
        let cases = [
            (&ios_apns, &none, Route::NoProvider),
            (&ios_apns, &apns_only, Route::Configured(I)),
            (&ios_apns, &apns_and_fcm, Route::Configured(I)),
            (&ios_apns, &fcm_on_android, Route::NoProvider),
            (&ios_apns, &fcm_on_ios, mismatch("apns", "fcm")),
            (&ios_fcm, &none, Route::NoProvider),
            (&ios_fcm, &apns_only, mismatch("fcm", "apns")),
            (&ios_fcm, &apns_and_fcm, Route::Configured(A)),
            (&ios_fcm, &fcm_on_android, Route::Configured(A)),
            (&ios_fcm, &fcm_on_ios, Route::Configured(I)),
            (&ios_fcm, &fcm_on_both, Route::Configured(I)),
            (&android_fcm, &fcm_on_android, Route::Configured(A)),
            (&android_fcm, &fcm_on_ios, Route::Configured(I)),
            (&android_fcm, &fcm_on_both, Route::Configured(A)),
            (&android_fcm, &apns_only, Route::NoProvider),
            (&android_xiaomi, &fcm_on_android, mismatch("xiaomi", "fcm")),
            (&android_xiaomi, &fcm_on_ios, Route::NoProvider),
        ];
        for (identity, configured, expected) in cases {
            assert_eq!(
                route(identity, configured),
                expected,
                "{:?} {:?} with {configured:?}",
                identity.channel,
                identity.provider
            );
        }
    }

    #[test]
    fn other_channels_go_to_their_own_provider_or_their_own_endpoint() {
        let email = Identity::parse(
            Channel::Email,
            &json!("ada@example.com"),
            &IdentityMeta::default(),
        )
        .unwrap();
        let hook = Identity::parse(
            Channel::Discord,
            &json!("https://discord.com/api/webhooks/1/abc"),
            &IdentityMeta::default(),
        )
        .unwrap();
        let inbox =
            Identity::parse(Channel::Inbox, &json!("ada"), &IdentityMeta::default()).unwrap();
        let smtp = configured(&[(Channel::Email, "smtp"), (Channel::Discord, "discord")]);
        assert_eq!(route(&email, &smtp), Route::Configured(Channel::Email));
        assert_eq!(route(&email, &configured(&[])), Route::NoProvider);
        assert_eq!(route(&hook, &smtp), Route::Configured(Channel::Discord));
        assert_eq!(route(&hook, &configured(&[])), Route::Unconfigured);
        assert_eq!(route(&inbox, &smtp), Route::Unconfigured);
    }
}
