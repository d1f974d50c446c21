//! Slack against an HTTP fake: incoming webhooks (moved to the fake by `base_url`) and the Web
//! API (`users.lookupByEmail`, `chat.postMessage`).

use crate::fake_http::{HttpFake, Reply};
use crate::{assert_failed, assert_retry, http, outgoing};
use herald_channels::slack::{SlackConfig, SlackProvider};
use herald_channels::Secret;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use serde_json::{json, Value};
use std::time::Duration;

fn provider(fake: &HttpFake, bot_token: Option<&str>) -> SlackProvider {
    let config = SlackConfig {
        base_url: Some(fake.base()),
        bot_token: bot_token.map(Secret::new),
    };
    SlackProvider::new(config, http()).unwrap()
}

fn message(identity: Value) -> Outgoing {
    outgoing(
        Channel::Slack,
        identity,
        Content::Slack {
            text: "Hello Ada".into(),
            blocks: Some(
                json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Hello*"}}]),
            ),
        },
    )
}

fn webhook() -> Value {
    json!({"incoming_webhook": {"url": "https://hooks.slack.com/services/T0/B0/x"}})
}

#[tokio::test]
async fn webhook_posts_text_and_blocks_to_the_same_path() {
    let fake = HttpFake::start(|_| Reply::text(200, "ok")).await;
    let outcome = provider(&fake, None).send(&message(webhook())).await;
    assert_eq!(outcome, Delivery::Sent { provider_id: None });
    let seen = fake.only();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/services/T0/B0/x")
    );
    assert_eq!(seen.header("content-type"), "application/json");
    assert_eq!(
        seen.json(),
        json!({"text": "Hello Ada", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Hello*"}}]})
    );
}

#[tokio::test]
async fn a_revoked_webhook_marks_the_identity_dead() {
    for (status, body) in [
        (404, "no_service"),
        (410, "channel_is_archived"),
        (403, "invalid_token"),
    ] {
        let fake = HttpFake::start(move |_| Reply::text(status, body)).await;
        assert_failed(&provider(&fake, None).send(&message(webhook())).await, true);
    }
    let fake = HttpFake::start(|_| Reply::text(500, "oops")).await;
    assert_retry(&provider(&fake, None).send(&message(webhook())).await, None);
}

#[tokio::test]
async fn post_message_to_a_channel_with_the_identitys_token() {
    let fake = HttpFake::start(|_| {
        Reply::json(
            200,
            json!({"ok": true, "channel": "C123", "ts": "1700000000.000100"}),
        )
    })
    .await;
    let identity = json!({"channel_id": "C123", "access_token": "xoxb-identity"});
    let outcome = provider(&fake, Some("xoxb-provider"))
        .send(&message(identity))
        .await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("1700000000.000100".into())
        }
    );
    let seen = fake.only();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/chat.postMessage")
    );
    assert_eq!(seen.header("authorization"), "Bearer xoxb-identity");
    let body = seen.json();
    assert_eq!(
        (body["channel"].as_str(), body["text"].as_str()),
        (Some("C123"), Some("Hello Ada"))
    );
    assert!(body["blocks"].is_array());
}

#[tokio::test]
async fn post_message_by_email_looks_the_user_up_first() {
    let fake = HttpFake::start(|seen| {
        if seen.target.starts_with("/api/users.lookupByEmail") {
            Reply::json(200, json!({"ok": true, "user": {"id": "U777"}}))
        } else {
            Reply::json(200, json!({"ok": true, "ts": "1.2"}))
        }
    })
    .await;
    let identity = json!({"email": "ada@example.com", "access_token": "xoxb-1"});
    let outcome = provider(&fake, None).send(&message(identity)).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("1.2".into())
        }
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].target,
        "/api/users.lookupByEmail?email=ada%40example.com"
    );
    assert_eq!(seen[1].json()["channel"], "U777");
}

#[tokio::test]
async fn web_api_errors_are_judged_by_name() {
    let dead_channel =
        HttpFake::start(|_| Reply::json(200, json!({"ok": false, "error": "channel_not_found"})))
            .await;
    let identity = json!({"channel_id": "C404", "access_token": "xoxb-1"});
    assert_failed(
        &provider(&dead_channel, None).send(&message(identity)).await,
        true,
    );

    let unknown_user =
        HttpFake::start(|_| Reply::json(200, json!({"ok": false, "error": "users_not_found"})))
            .await;
    let identity = json!({"email": "gone@example.com", "access_token": "xoxb-1"});
    assert_failed(
        &provider(&unknown_user, None).send(&message(identity)).await,
        true,
    );

    // The provider's own token is dead: the operator's problem, not the user's.
    let bad_auth =
        HttpFake::start(|_| Reply::json(200, json!({"ok": false, "error": "invalid_auth"}))).await;
    let identity = json!({"user_id": "U1"});
    assert_failed(
        &provider(&bad_auth, Some("xoxb-provider"))
            .send(&message(identity.clone()))
            .await,
        false,
    );
    assert_eq!(
        bad_auth.only().header("authorization"),
        "Bearer xoxb-provider"
    );

    let limited = HttpFake::start(|_| {
        Reply::json(429, json!({"ok": false, "error": "ratelimited"})).header("retry-after", "30")
    })
    .await;
    assert_retry(
        &provider(&limited, Some("xoxb-provider"))
            .send(&message(identity))
            .await,
        Some(Duration::from_secs(30)),
    );
}
