//! Herald's delivery providers. Each module speaks one real protocol and implements
//! [`herald_core::delivery::Provider`], built from a typed config ([`ProviderConfig`]) and the
//! shared HTTP side ([`Http`], with the server's [`OutboundConfig`]).

pub mod apns;
mod config;
pub mod discord;
pub mod fcm;
pub mod guard;
pub mod http;
pub mod inbox;
mod jwt;
pub mod meta_whatsapp;
pub mod slack;
pub mod smtp;
pub mod teams;
pub mod twilio;
pub mod webpush;

pub use config::{ProviderConfig, Secret};
pub use http::{Http, OutboundConfig};

use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery};

/// Content rendered for another channel reached this provider: the wiring is wrong, not the
/// identity.
fn wrong_content(provider: &str, channel: Channel, content: &Content) -> Delivery {
    Delivery::Failed {
        reason: format!(
            "{provider} sends {} content, got {}",
            channel.as_str(),
            content.channel().as_str()
        ),
        identity_invalid: false,
    }
}

/// The identity's value is not the shape this channel needs (core validates identities, so this
/// is a stored value gone bad): the identity is dead.
fn unusable_identity(expected: &str) -> Delivery {
    Delivery::Failed {
        reason: format!("the identity is not {expected}"),
        identity_invalid: true,
    }
}
