//! What every HTTP provider shares: the address guard, the timeout, the answer-size limit.

use crate::fake_http::{endless_body, HttpFake, Reply};
use crate::{assert_failed, assert_retry, http_with, outgoing};
use herald_channels::discord::{DiscordConfig, DiscordProvider};
use herald_channels::slack::{SlackConfig, SlackProvider};
use herald_channels::twilio::{TwilioConfig, TwilioProvider};
use herald_channels::Secret;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use serde_json::json;
use std::time::{Duration, Instant};

fn discord_to(url: String) -> Outgoing {
    outgoing(
        Channel::Discord,
        json!(url),
        Content::Discord {
            content: "hi".into(),
            embeds: None,
        },
    )
}

fn discord(allow_private: bool) -> DiscordProvider {
    DiscordProvider::new(DiscordConfig::default(), http_with(allow_private, 2_000)).unwrap()
}

#[tokio::test]
async fn a_webhook_to_a_private_address_is_refused_unless_allowed() {
    let fake = HttpFake::start(|_| Reply::json(200, json!({"id": "1"}))).await;
    for host in [
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "[::1]".to_owned(),
    ] {
        let url = format!("http://{host}:{}/api/webhooks/1/x", fake.port);
        let outcome = discord(false).send(&discord_to(url)).await;
        assert_failed(&outcome, false);
        let Delivery::Failed { reason, .. } = outcome else {
            unreachable!()
        };
        assert!(
            reason.contains("outbound address guard"),
            "{host}: {reason}"
        );
    }
    assert!(
        fake.seen().is_empty(),
        "the guard stops the call before it is made"
    );

    let url = format!("http://127.0.0.1:{}/api/webhooks/1/x", fake.port);
    let outcome = discord(true).send(&discord_to(url)).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("1".into())
        }
    );
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn an_operator_base_url_is_trusted() {
    let fake = HttpFake::start(|_| Reply::text(200, "ok")).await;
    let config = SlackConfig {
        base_url: Some(fake.base()),
        bot_token: None,
    };
    let provider = SlackProvider::new(config, http_with(false, 2_000)).unwrap();
    let message = outgoing(
        Channel::Slack,
        json!({"incoming_webhook": {"url": "https://hooks.slack.com/services/T0/B0/x"}}),
        Content::Slack {
            text: "hi".into(),
            blocks: None,
        },
    );
    assert!(matches!(
        provider.send(&message).await,
        Delivery::Sent { .. }
    ));
    assert_eq!(fake.only().target, "/services/T0/B0/x");
}

#[tokio::test]
async fn an_answer_that_never_comes_retries_within_the_timeout() {
    let fake = HttpFake::start(|_| Reply::Hang).await;
    let provider = DiscordProvider::new(
        DiscordConfig {
            base_url: Some(fake.base()),
        },
        http_with(true, 300),
    )
    .unwrap();
    let started = Instant::now();
    let outcome = provider
        .send(&discord_to("https://discord.com/api/webhooks/1/x".into()))
        .await;
    assert_retry(&outcome, None);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

fn twilio(base_url: String) -> TwilioProvider {
    let config = TwilioConfig {
        account_sid: "AC1".into(),
        auth_token: Secret::new("t"),
        from: Some("+15550001111".into()),
        messaging_service_sid: None,
        base_url: Some(base_url),
        status_callback: None,
    };
    TwilioProvider::new(Channel::Sms, config, http_with(true, 5_000)).unwrap()
}

fn sms() -> Outgoing {
    outgoing(
        Channel::Sms,
        json!("+15551234567"),
        Content::Sms { text: "hi".into() },
    )
}

#[tokio::test]
async fn an_endless_answer_is_read_only_up_to_the_limit() {
    let (port, written) = endless_body(201).await;
    let started = Instant::now();
    let outcome = twilio(format!("http://127.0.0.1:{port}"))
        .send(&sms())
        .await;
    // Accepted (201), but the sid is beyond what was read.
    assert_eq!(outcome, Delivery::Sent { provider_id: None });
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let written = *written.lock().unwrap();
    assert!(
        written < 64 * 1024 * 1024,
        "the client stopped reading ({written} bytes written)"
    );
}

#[tokio::test]
async fn an_oversized_error_answer_still_retries_with_a_short_reason() {
    let fake = HttpFake::start(|_| Reply::text(503, &"x".repeat(1024 * 1024))).await;
    let outcome = twilio(fake.base()).send(&sms()).await;
    let Delivery::Retry { reason, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.len() < 400, "{} bytes", reason.len());
}

#[tokio::test]
async fn no_server_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_retry(
        &twilio(format!("http://127.0.0.1:{port}"))
            .send(&sms())
            .await,
        None,
    );
}
