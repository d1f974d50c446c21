//! Every provider against a local fake on 127.0.0.1 that checks the request on the wire.

mod fake_http;
mod fake_smtp;

mod apns;
mod discord;
mod fcm;
mod meta_whatsapp;
mod outbound;
mod slack;
mod smtp;
mod teams;
mod twilio;
mod webpush;

use herald_channels::{Http, OutboundConfig};
use herald_core::channel::{Channel, Identity, IdentityStatus};
use herald_core::delivery::{Content, Delivery, Outgoing};
use herald_core::env::Env;
use serde_json::Value;

/// The shared HTTP side as tests use it: the guard lifted for the fakes, short timeout, small
/// answer limit.
pub fn http() -> Http {
    http_with(true, 2_000)
}

pub fn http_with(allow_private: bool, timeout_ms: u64) -> Http {
    Http::new(&OutboundConfig {
        allow_private,
        timeout_ms,
        max_response_kib: 4,
    })
    .unwrap()
}

pub fn outgoing(channel: Channel, value: Value, content: Content) -> Outgoing {
    Outgoing {
        env: Env::Test,
        message_id: "msg-01".into(),
        identity: Identity {
            channel,
            value,
            provider: None,
            bundle_id: None,
            device_id: None,
            status: IdentityStatus::Active,
            perma_status: IdentityStatus::Active,
            perma_failure: None,
        },
        content,
    }
}

#[track_caller]
pub fn assert_failed(outcome: &Delivery, identity: bool) {
    match outcome {
        Delivery::Failed {
            identity_invalid, ..
        } => assert_eq!(*identity_invalid, identity, "{outcome:?}"),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_retry(outcome: &Delivery, after: Option<std::time::Duration>) {
    match outcome {
        Delivery::Retry { after: a, .. } => assert_eq!(*a, after, "{outcome:?}"),
        other => panic!("expected Retry, got {other:?}"),
    }
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
