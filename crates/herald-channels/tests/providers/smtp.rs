//! SMTP against the fake SMTP server: the conversation and the rendered parts on the wire, in
//! plain text, upgraded with STARTTLS, and in implicit TLS (a certificate made for the test and
//! trusted through the provider's `ca_pem`).

use crate::fake_smtp::{FakeTls, Script, SmtpFake, TestCert};
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
        ca_pem: None,
        bounce_secret: None,
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
async fn starttls_required_but_not_offered_fails_before_anything_is_sent() {
    let fake = SmtpFake::start(Script::default()).await;
    let mut config = config(fake.port);
    config.tls = SmtpTls::Starttls;
    config.username = Some("mailer".into());
    config.password = Some(Secret::new("hunter2"));
    let provider = SmtpProvider::new(config).unwrap();
    let outcome = provider.send(&email()).await;
    // Permanent: retrying cannot make the server offer it; the configuration must change.
    assert_failed(&outcome, false);
    let Delivery::Failed { reason, .. } = &outcome else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "smtp: the server does not offer STARTTLS, which tls=starttls requires"
    );
    // The credentials and the message never went out in clear.
    assert_eq!(fake.commands(), ["EHLO example.com", "QUIT"]);
    assert!(fake.messages().is_empty());
}

/// The fake's conversation must carry the whole email: the subject and both parts.
#[track_caller]
fn assert_rendered(fake: &SmtpFake) {
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    for needle in [
        "Subject: Hello Ada",
        "Content-Type: multipart/alternative",
        "Your code is 4711.",
        "<p>Your code is <b>4711</b>.</p>",
    ] {
        assert!(
            messages[0].contains(needle),
            "{needle} missing from:\n{}",
            messages[0]
        );
    }
}

#[tokio::test]
async fn starttls_upgrades_then_authenticates_and_sends_encrypted() {
    let cert = TestCert::new();
    let fake = SmtpFake::start(Script {
        tls: FakeTls::Starttls(cert.server.clone()),
        ..Script::default()
    })
    .await;
    let mut config = config(fake.port);
    config.tls = SmtpTls::Starttls;
    config.ca_pem = Some(cert.pem.clone());
    config.username = Some("mailer".into());
    config.password = Some(Secret::new("hunter2"));
    let provider = SmtpProvider::new(config).unwrap();
    assert_eq!(
        provider.send(&email()).await,
        Delivery::Sent {
            provider_id: Some("FAKE42".into())
        }
    );
    let commands = fake.commands();
    let verbs: Vec<&str> = commands
        .iter()
        .map(|c| c.split([' ', ':']).next().unwrap())
        .collect();
    assert_eq!(
        verbs,
        ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"],
        "{commands:?}"
    );
    // Everything after STARTTLS went over TLS: a new EHLO, then the credentials and the mail.
    let secured = fake.commands_in_tls();
    assert_eq!(secured, commands[2..], "{commands:?}");
    assert_eq!(secured[0], "EHLO example.com");
    assert!(secured.contains(&"MAIL FROM:<herald@example.com>".to_owned()));
    assert!(secured.contains(&"RCPT TO:<ada@example.com>".to_owned()));
    use base64::Engine;
    let auth = secured[1].trim_start_matches("AUTH PLAIN ").trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .unwrap();
    assert_eq!(decoded, b"\0mailer\0hunter2");
    assert_rendered(&fake);
}

#[tokio::test]
async fn implicit_tls_is_encrypted_from_the_first_byte() {
    let cert = TestCert::new();
    let fake = SmtpFake::start(Script {
        tls: FakeTls::Implicit(cert.server.clone()),
        ..Script::default()
    })
    .await;
    let mut config = config(fake.port);
    config.tls = SmtpTls::Tls;
    config.ca_pem = Some(cert.pem.clone());
    let provider = SmtpProvider::new(config).unwrap();
    assert_eq!(
        provider.send(&email()).await,
        Delivery::Sent {
            provider_id: Some("FAKE42".into())
        }
    );
    let commands = fake.commands();
    assert_eq!(fake.commands_in_tls(), commands, "all of it encrypted");
    assert_eq!(commands[0], "EHLO example.com");
    assert!(!commands.iter().any(|c| c == "STARTTLS"), "{commands:?}");
    assert!(commands.contains(&"MAIL FROM:<herald@example.com>".to_owned()));
    assert!(commands.contains(&"RCPT TO:<ada@example.com>".to_owned()));
    assert_eq!(commands.last().unwrap(), "QUIT");
    assert_rendered(&fake);
}

#[tokio::test]
async fn a_certificate_nobody_vouches_for_is_refused_before_anything_is_sent() {
    let cert = TestCert::new();
    let stranger = TestCert::new();
    for (tls, trusted) in [
        (SmtpTls::Tls, None),
        (SmtpTls::Tls, Some(stranger.pem.clone())),
        (SmtpTls::Starttls, None),
        (SmtpTls::Starttls, Some(stranger.pem.clone())),
    ] {
        let fake_tls = match tls {
            SmtpTls::Tls => FakeTls::Implicit(cert.server.clone()),
            _ => FakeTls::Starttls(cert.server.clone()),
        };
        let fake = SmtpFake::start(Script {
            tls: fake_tls,
            ..Script::default()
        })
        .await;
        let mut config = config(fake.port);
        config.tls = tls;
        config.ca_pem = trusted.clone();
        config.username = Some("mailer".into());
        config.password = Some(Secret::new("hunter2"));
        let provider = SmtpProvider::new(config).unwrap();
        let outcome = provider.send(&email()).await;
        let at = format!("{tls:?} trusting {}", trusted.is_some());
        // Not delivered, and retried as network trouble is (the server's certificate may be
        // fixed): the reason says what went wrong.
        let Delivery::Retry { reason, .. } = &outcome else {
            panic!("{at}: {outcome:?}")
        };
        assert!(reason.contains("certificate"), "{at}: {reason}");
        assert!(fake.commands_in_tls().is_empty(), "{at}");
        let clear: &[&str] = match tls {
            SmtpTls::Tls => &[],
            _ => &["EHLO example.com", "STARTTLS"],
        };
        assert_eq!(
            fake.commands(),
            clear,
            "{at}: nothing more, in clear or not"
        );
        assert!(fake.messages().is_empty(), "{at}");
    }
}

#[test]
fn ca_pem_must_hold_certificates_and_needs_tls() {
    let cert = TestCert::new();
    let with = |tls: SmtpTls, pem: &str| {
        let mut c = config(25);
        c.tls = tls;
        c.ca_pem = Some(pem.to_owned());
        SmtpProvider::new(c)
    };
    assert!(with(SmtpTls::Starttls, &cert.pem).is_ok());
    // Two certificates in one PEM are fine.
    let both = format!("{}{}", cert.pem, TestCert::new().pem);
    assert!(with(SmtpTls::Tls, &both).is_ok());
    let garbled =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let too_big = "x".repeat(herald_channels::smtp::MAX_CA_PEM_BYTES + 1);
    for (tls, pem, says) in [
        (
            SmtpTls::Tls,
            "not pem at all",
            "at least one PEM certificate",
        ),
        (SmtpTls::Tls, garbled, "cannot be a root"),
        (SmtpTls::Tls, too_big.as_str(), "at most 64 KiB"),
        (
            SmtpTls::None,
            cert.pem.as_str(),
            "only with tls starttls or tls",
        ),
    ] {
        let Err(e) = with(tls, pem) else {
            panic!("{tls:?} {pem:.40} accepted")
        };
        assert_eq!(e.field, "ca_pem", "{e}");
        assert!(e.rule.contains(says), "{e}");
    }
}
