//! Discord webhooks against an HTTP fake.

use crate::fake_http::{HttpFake, Reply};
use crate::{assert_failed, assert_retry, http, outgoing};
use herald_channels::discord::{DiscordConfig, DiscordProvider};
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use serde_json::json;
use std::time::Duration;

fn provider(fake: &HttpFake) -> DiscordProvider {
    DiscordProvider::new(
        DiscordConfig {
            base_url: Some(fake.base()),
        },
        http(),
    )
    .unwrap()
}

fn message() -> Outgoing {
    outgoing(
        Channel::Discord,
        json!("https://discord.com/api/webhooks/123/tok-abc"),
        Content::Discord {
            content: "Hello Ada".into(),
            embeds: Some(json!({"title": "Code", "description": "4711"})),
        },
    )
}

#[tokio::test]
async fn posts_content_and_embeds_and_waits_for_the_message() {
    let fake = HttpFake::start(|_| {
        Reply::json(
            200,
            json!({"id": "1180000000000000001", "content": "Hello Ada"}),
        )
    })
    .await;
    let outcome = provider(&fake).send(&message()).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("1180000000000000001".into())
        }
    );
    let seen = fake.only();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/api/webhooks/123/tok-abc?wait=true");
    assert_eq!(
        seen.json(),
        json!({"content": "Hello Ada", "embeds": [{"title": "Code", "description": "4711"}]})
    );
}

#[tokio::test]
async fn an_unknown_webhook_marks_the_identity_dead() {
    let fake =
        HttpFake::start(|_| Reply::json(404, json!({"message": "Unknown Webhook", "code": 10015})))
            .await;
    assert_failed(&provider(&fake).send(&message()).await, true);
}

#[tokio::test]
async fn rate_limits_retry_after_the_bodys_wait() {
    let fake = HttpFake::start(|_| {
        Reply::json(
            429,
            json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false}),
        )
    })
    .await;
    assert_retry(
        &provider(&fake).send(&message()).await,
        Some(Duration::from_millis(1500)),
    );
    let fake = HttpFake::start(|_| {
        Reply::json(429, json!({"retry_after": 1.5})).header("retry-after", "3")
    })
    .await;
    assert_retry(
        &provider(&fake).send(&message()).await,
        Some(Duration::from_secs(3)),
    );
}
