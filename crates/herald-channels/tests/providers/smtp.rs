//! SMTP against the fake SMTP server: the conversation and the rendered parts on the wire.

use crate::fake_smtp::{Script, SmtpFake};
use crate::{assert_failed, assert_retry, outgoing};
use herald_channels::smtp::{SmtpConfig, SmtpProvider, SmtpTls};
use herald_channels::Secret;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use serde_json::json;
use std::time::{Duration, Instant};

fn config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        from: "Herald <herald@example.com>".into(),
        username: None,
        password: None,
        timeout_ms: 2_000,
        hello_name: None,
    }
}

fn email() -> Outgoing {
    outgoing(
        Channel::Email,
        json!("ada@example.com"),
        Content::Email {
            subject: "Hello Ada".into(),
            text: Some("Your code is 4711.".into()),
            html: Some("<p>Your code is <b>4711</b>.</p>".into()),
        },
    )
}

#[tokio::test]
async fn sends_a_multipart_alternative_message() {
    let fake = SmtpFake::start(Script::default()).await;
    let provider = SmtpProvider::new(config(fake.port)).unwrap();
    let outcome = provider.send(&email()).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("FAKE42".into())
        }
    );
    let commands = fake.commands();
    assert_eq!(commands[0], "EHLO example.com");
    assert!(
        commands.contains(&"MAIL FROM:<herald@example.com>".to_owned()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"RCPT TO:<ada@example.com>".to_owned()),
        "{commands:?}"
    );
    assert_eq!(commands.last().unwrap(), "QUIT");
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    for needle in [
        "From: Herald <herald@example.com>",
        "To: ada@example.com",
        "Subject: Hello Ada",
        "Message-ID: <msg-01@example.com>",
        "Content-Type: multipart/alternative",
        "Content-Type: text/plain; charset=utf-8",
        "Your code is 4711.",
        "Content-Type: text/html; charset=utf-8",
        "<p>Your code is <b>4711</b>.</p>",
    ] {
        assert!(
            message.contains(needle),
            "{needle} missing from:\n{message}"
        );
    }
    let text_at = message.find("text/plain").unwrap();
    let html_at = message.find("text/html").unwrap();
    assert!(
        text_at < html_at,
        "the plain part comes first in an alternative"
    );
}

#[tokio::test]
async fn authenticates_with_plain() {
    let fake = SmtpFake::start(Script::default()).await;
    let mut config = config(fake.port);
    config.username = Some("mailer".into());
    config.password = Some(Secret::new("hunter2"));
    let provider = SmtpProvider::new(config).unwrap();
    assert!(matches!(
        provider.send(&email()).await,
        Delivery::Sent { .. }
    ));
    let auth = fake
        .commands()
        .into_iter()
        .find(|c| c.starts_with("AUTH PLAIN"))
        .expect("an AUTH PLAIN command");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim_start_matches("AUTH PLAIN ").trim())
        .unwrap();
    assert_eq!(decoded, b"\0mailer\0hunter2");
}

#[tokio::test]
async fn a_refused_recipient_marks_the_address_dead() {
    let fake = SmtpFake::start(Script {
        rcpt_reply: "550 5.1.1 <ada@example.com>: no such user",
        ..Script::default()
    })
    .await;
    let provider = SmtpProvider::new(config(fake.port)).unwrap();
    let outcome = provider.send(&email()).await;
    assert_failed(&outcome, true);
    assert!(fake.messages().is_empty(), "no DATA after a refused RCPT");
}

#[tokio::test]
async fn a_policy_refusal_of_the_recipient_does_not() {
    let fake = SmtpFake::start(Script {
        rcpt_reply: "550 5.7.1 sender blocked by policy",
        ..Script::default()
    })
    .await;
    let provider = SmtpProvider::new(config(fake.port)).unwrap();
    assert_failed(&provider.send(&email()).await, false);
}

#[tokio::test]
async fn a_temporary_refusal_retries() {
    let fake = SmtpFake::start(Script {
        rcpt_reply: "421 4.3.2 service not available, try later",
        ..Script::default()
    })
    .await;
    let provider = SmtpProvider::new(config(fake.port)).unwrap();
    assert_retry(&provider.send(&email()).await, None);
}

#[tokio::test]
async fn a_refused_message_fails_without_blaming_the_address() {
    let fake = SmtpFake::start(Script {
        data_reply: "554 5.6.0 message content rejected",
        ..Script::default()
    })
    .await;
    let provider = SmtpProvider::new(config(fake.port)).unwrap();
    assert_failed(&provider.send(&email()).await, false);
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn a_silent_server_retries_within_the_timeout() {
    let fake = SmtpFake::start(Script {
        silent: true,
        ..Script::default()
    })
    .await;
    let mut config = config(fake.port);
    config.timeout_ms = 300;
    let provider = SmtpProvider::new(config).unwrap();
    let started = Instant::now();
    assert_retry(&provider.send(&email()).await, None);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn no_server_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let provider = SmtpProvider::new(config(port)).unwrap();
    assert_retry(&provider.send(&email()).await, None);
}

#[tokio::test]
async fn starttls_required_but_not_offered_fails() {
    let fake = SmtpFake::start(Script::default()).await;
    let mut config = config(fake.port);
    config.tls = SmtpTls::Starttls;
    let provider = SmtpProvider::new(config).unwrap();
    assert_failed(&provider.send(&email()).await, false);
    assert!(fake.messages().is_empty());
}
