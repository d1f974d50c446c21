//! Meta's WhatsApp Cloud API against an HTTP fake: path, bearer token, JSON body, the answers.

use crate::fake_http::{HttpFake, Reply};
use crate::{assert_failed, assert_retry, http, outgoing};
use herald_channels::meta_whatsapp::{MetaWhatsappConfig, MetaWhatsappProvider};
use herald_channels::Secret;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use serde_json::json;

fn provider(fake: &HttpFake) -> MetaWhatsappProvider {
    let config = MetaWhatsappConfig {
        phone_number_id: "1065550001".into(),
        access_token: Secret::new("EAAtoken"),
        api_version: None,
        base_url: Some(fake.base()),
    };
    MetaWhatsappProvider::new(config, http()).unwrap()
}

fn message() -> Outgoing {
    outgoing(
        Channel::Whatsapp,
        json!("+15551234567"),
        Content::Whatsapp {
            text: "Hello Ada".into(),
        },
    )
}

fn meta_error(code: u64) -> serde_json::Value {
    json!({"error": {"message": "nope", "type": "OAuthException", "code": code, "fbtrace_id": "A1"}})
}

#[tokio::test]
async fn sends_a_text_message_with_the_bearer_token() {
    let fake = HttpFake::start(|_| {
        Reply::json(
            200,
            json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "+15551234567", "wa_id": "15551234567"}],
                "messages": [{"id": "wamid.HBgL42"}],
            }),
        )
    })
    .await;
    let outcome = provider(&fake).send(&message()).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("wamid.HBgL42".into())
        }
    );
    let seen = fake.only();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/v19.0/1065550001/messages");
    assert_eq!(seen.header("authorization"), "Bearer EAAtoken");
    assert_eq!(
        seen.json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "+15551234567",
            "type": "text",
            "text": {"body": "Hello Ada"},
        })
    );
}

#[tokio::test]
async fn an_undeliverable_recipient_marks_the_identity_dead() {
    let fake = HttpFake::start(|_| Reply::json(400, meta_error(131026))).await;
    assert_failed(&provider(&fake).send(&message()).await, true);
}

#[tokio::test]
async fn throttling_retries_though_answered_400() {
    let fake = HttpFake::start(|_| Reply::json(400, meta_error(130429))).await;
    assert_retry(&provider(&fake).send(&message()).await, None);
}

#[tokio::test]
async fn server_errors_retry_and_bad_tokens_fail() {
    let fake = HttpFake::start(|_| Reply::json(500, meta_error(1))).await;
    assert_retry(&provider(&fake).send(&message()).await, None);
    let fake = HttpFake::start(|_| Reply::json(401, meta_error(190))).await;
    assert_failed(&provider(&fake).send(&message()).await, false);
}
