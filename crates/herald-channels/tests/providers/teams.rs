//! Teams incoming webhooks against an HTTP fake.

use crate::fake_http::{HttpFake, Reply};
use crate::{assert_failed, assert_retry, http, outgoing};
use herald_channels::teams::{TeamsConfig, TeamsProvider};
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use serde_json::{json, Value};

fn provider(fake: &HttpFake) -> TeamsProvider {
    TeamsProvider::new(
        TeamsConfig {
            base_url: Some(fake.base()),
        },
        http(),
    )
    .unwrap()
}

fn message(text: Option<&str>, card: Option<Value>) -> Outgoing {
    outgoing(
        Channel::MsTeams,
        json!({"incoming_webhook": {"url": "https://contoso.webhook.office.com/webhookb2/abc/IncomingWebhook/def"}}),
        Content::MsTeams {
            text: text.map(str::to_owned),
            card,
        },
    )
}

#[tokio::test]
async fn posts_text() {
    let fake = HttpFake::start(|_| Reply::text(200, "1")).await;
    let outcome = provider(&fake)
        .send(&message(Some("Hello Ada"), None))
        .await;
    assert_eq!(outcome, Delivery::Sent { provider_id: None });
    let seen = fake.only();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/webhookb2/abc/IncomingWebhook/def");
    assert_eq!(seen.json(), json!({"text": "Hello Ada"}));
}

#[tokio::test]
async fn posts_an_adaptive_card_as_an_attachment() {
    let card = json!({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "Hi"}]});
    let fake = HttpFake::start(|_| Reply::text(202, "")).await;
    let outcome = provider(&fake)
        .send(&message(None, Some(card.clone())))
        .await;
    assert!(matches!(outcome, Delivery::Sent { .. }), "{outcome:?}");
    assert_eq!(
        fake.only().json(),
        json!({"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card,
        }]})
    );
}

#[tokio::test]
async fn a_removed_webhook_marks_the_identity_dead() {
    let fake = HttpFake::start(|_| Reply::text(410, "gone")).await;
    assert_failed(&provider(&fake).send(&message(Some("x"), None)).await, true);
    let fake = HttpFake::start(|_| Reply::text(502, "bad gateway")).await;
    assert_retry(&provider(&fake).send(&message(Some("x"), None)).await, None);
}
