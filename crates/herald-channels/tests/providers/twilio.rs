//! Twilio's Messages API against an HTTP fake: path, Basic auth, form body, and the answers.

use crate::fake_http::{HttpFake, Reply};
use crate::{assert_failed, assert_retry, basic, http, outgoing};
use herald_channels::twilio::{TwilioConfig, TwilioProvider};
use herald_channels::Secret;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use serde_json::json;
use std::time::Duration;

fn provider(channel: Channel, fake: &HttpFake) -> TwilioProvider {
    let config = TwilioConfig {
        account_sid: "AC123".into(),
        auth_token: Secret::new("s3cret"),
        from: Some("+15550001111".into()),
        messaging_service_sid: None,
        base_url: Some(fake.base()),
        status_callback: None,
    };
    TwilioProvider::new(channel, config, http()).unwrap()
}

fn sms() -> Outgoing {
    outgoing(
        Channel::Sms,
        json!("+15551234567"),
        Content::Sms {
            text: "Hello Ada".into(),
        },
    )
}

#[tokio::test]
async fn sms_goes_out_as_a_form_with_basic_auth() {
    let fake =
        HttpFake::start(|_| Reply::json(201, json!({"sid": "SM0042", "status": "queued"}))).await;
    let outcome = provider(Channel::Sms, &fake).send(&sms()).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("SM0042".into())
        }
    );
    let seen = fake.only();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/2010-04-01/Accounts/AC123/Messages.json");
    assert_eq!(seen.header("authorization"), basic("AC123", "s3cret"));
    assert_eq!(
        seen.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        seen.text(),
        "To=%2B15551234567&Body=Hello+Ada&From=%2B15550001111"
    );
}

#[tokio::test]
async fn whatsapp_addresses_carry_the_prefix() {
    let fake = HttpFake::start(|_| Reply::json(201, json!({"sid": "SM1"}))).await;
    let message = outgoing(
        Channel::Whatsapp,
        json!("+15551234567"),
        Content::Whatsapp { text: "Hi".into() },
    );
    let outcome = provider(Channel::Whatsapp, &fake).send(&message).await;
    assert!(matches!(outcome, Delivery::Sent { .. }), "{outcome:?}");
    assert_eq!(
        fake.only().text(),
        "To=whatsapp%3A%2B15551234567&Body=Hi&From=whatsapp%3A%2B15550001111"
    );
}

#[tokio::test]
async fn too_many_requests_retries_after_the_given_wait() {
    let fake = HttpFake::start(|_| {
        Reply::json(429, json!({"code": 20429, "message": "Too Many Requests"}))
            .header("retry-after", "7")
    })
    .await;
    assert_retry(
        &provider(Channel::Sms, &fake).send(&sms()).await,
        Some(Duration::from_secs(7)),
    );
}

#[tokio::test]
async fn unavailable_retries() {
    let fake = HttpFake::start(|_| Reply::text(503, "down")).await;
    assert_retry(&provider(Channel::Sms, &fake).send(&sms()).await, None);
}

#[tokio::test]
async fn an_invalid_number_marks_the_identity_dead() {
    for &code in herald_channels::twilio::INVALID_RECIPIENT_CODES {
        let fake = HttpFake::start(move |_| {
            Reply::json(400, json!({"code": code, "message": "The 'To' number is not a valid phone number.", "status": 400}))
        })
        .await;
        assert_failed(&provider(Channel::Sms, &fake).send(&sms()).await, true);
    }
}

#[tokio::test]
async fn other_client_errors_fail_without_blaming_the_number() {
    // 21408: the account may not send to the region; 20003: bad credentials; 30003: the
    // handset is off; 30007: carrier filtering.
    for (status, code) in [(400, 21408), (401, 20003), (400, 30003), (400, 30007)] {
        let fake =
            HttpFake::start(move |_| Reply::json(status, json!({"code": code, "message": "no"})))
                .await;
        assert_failed(&provider(Channel::Sms, &fake).send(&sms()).await, false);
    }
}

#[tokio::test]
async fn a_status_callback_url_is_sent_with_each_message() {
    let fake = HttpFake::start(|_| Reply::json(201, json!({"sid": "SM7"}))).await;
    let config = TwilioConfig {
        account_sid: "AC123".into(),
        auth_token: Secret::new("s3cret"),
        from: Some("+15550001111".into()),
        messaging_service_sid: None,
        base_url: Some(fake.base()),
        status_callback: Some("https://herald.example.com/v1/callback/twilio/live/".into()),
    };
    let outcome = TwilioProvider::new(Channel::Sms, config, http())
        .unwrap()
        .send(&sms())
        .await;
    assert!(matches!(outcome, Delivery::Sent { .. }), "{outcome:?}");
    assert_eq!(
        fake.only().text(),
        "To=%2B15551234567&Body=Hello+Ada&From=%2B15550001111\
         &StatusCallback=https%3A%2F%2Fherald.example.com%2Fv1%2Fcallback%2Ftwilio%2Flive%2F"
    );
}

#[test]
fn a_status_callback_must_be_a_url() {
    let config = TwilioConfig {
        account_sid: "AC123".into(),
        auth_token: Secret::new("s3cret"),
        from: Some("+15550001111".into()),
        messaging_service_sid: None,
        base_url: None,
        status_callback: Some("not a url".into()),
    };
    let refused = TwilioProvider::new(Channel::Sms, config, http())
        .err()
        .unwrap();
    assert_eq!(refused.field, "status_callback");
}
