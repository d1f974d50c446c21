//! The in-app inbox: Herald delivers it itself, into its own store. Sending records the
//! message's item (`InboxStore::deliver_inbox`, once per message id: delivery is at least once)
//! and answers sent with the message id as the provider's id; the store then announces the new
//! item to live streams on every node.

use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use herald_core::inbox::{Delivered, NewItem};
use herald_core::store::InboxStore;
use herald_core::EnvScope;
use std::sync::Arc;

pub struct InboxProvider {
    store: Arc<dyn InboxStore>,
}

impl InboxProvider {
    pub fn new(store: Arc<dyn InboxStore>) -> Self {
        InboxProvider { store }
    }
}

#[async_trait]
impl Provider for InboxProvider {
    fn channel(&self) -> Channel {
        Channel::Inbox
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::Inbox {
            title,
            body,
            action_url,
        } = &message.content
        else {
            return crate::wrong_content("inbox", Channel::Inbox, &message.content);
        };
        let item = NewItem {
            message_id: message.message_id.clone(),
            title: title.clone(),
            body: body.clone(),
            action_url: action_url.clone(),
            created_at: herald_core::profile::truncate(chrono::Utc::now()),
        };
        // The outbox entry names its environment; the message row names the user.
        match self
            .store
            .deliver_inbox(EnvScope::operator(message.env), &item)
            .await
        {
            Ok(Delivered::Added(_) | Delivered::Already(_)) => Delivery::Sent {
                provider_id: Some(message.message_id.clone()),
            },
            Ok(Delivered::NoMessage) => Delivery::Failed {
                reason: "the message no longer exists (its user was deleted)".into(),
                identity_invalid: false,
            },
            Err(e) => Delivery::Retry {
                reason: format!("the inbox could not be written: {e}"),
                after: None,
            },
        }
    }
}
