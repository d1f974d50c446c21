//! APNs against a fake that speaks HTTP/2 only (h2c; an HTTP/1 request gets 505), verifies the
//! ES256 provider token with the key's public key, and checks path, topic and push type. Its
//! answer depends on the device token, so one fake plays every APNs error.

use crate::fake_http::{HttpFake, Reply, Seen};
use crate::{assert_failed, assert_retry, http, outgoing};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use herald_channels::apns::{ApnsConfig, ApnsEnvironment, ApnsProvider};
use herald_channels::{ProviderConfig, Secret};
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider, Push};
use serde_json::{json, Value};
use std::time::Duration;

pub const TEAM_ID: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY7654321";
pub const BUNDLE_ID: &str = "com.example.herald";

/// A P-256 key made for the test: its `.p8` PEM and its public point (uncompressed).
pub fn p8_key() -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    (key.serialize_pem(), key.public_key_raw().to_vec())
}

fn segment(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Checks a request as APNs would; the `reason` APNs would give, if any.
pub fn check(seen: &Seen, public_key: &[u8], topic: &str) -> Result<(), String> {
    if seen.method != "POST" || !seen.target.starts_with("/3/device/") {
        return Err(format!("BadPath {} {}", seen.method, seen.target));
    }
    let token = seen
        .header("authorization")
        .strip_prefix("bearer ")
        .ok_or("MissingProviderToken")?;
    let (input, signature) = token.rsplit_once('.').ok_or("InvalidProviderToken")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "InvalidProviderToken")?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public_key)
        .verify(input.as_bytes(), &signature)
        .map_err(|_| "InvalidProviderToken (signature)")?;
    let (header, claims) = input.split_once('.').ok_or("InvalidProviderToken")?;
    if segment(header) != json!({"alg": "ES256", "kid": KEY_ID}) {
        return Err(format!("InvalidProviderToken (header {})", segment(header)));
    }
    let claims = segment(claims);
    let age = chrono::Utc::now().timestamp() - claims["iat"].as_i64().unwrap_or_default();
    if claims["iss"] != TEAM_ID || !(-60..3600).contains(&age) {
        return Err(format!("InvalidProviderToken (claims {claims})"));
    }
    if seen.header("apns-topic") != topic {
        return Err(format!("TopicDisallowed ({})", seen.header("apns-topic")));
    }
    if seen.header("apns-push-type") != "alert" {
        return Err("InvalidPushType".into());
    }
    Ok(())
}

/// APNs' answer for a checked request, by device token.
pub fn answer(seen: &Seen) -> Reply {
    let device = seen.target.trim_start_matches("/3/device/");
    let error = |status: u16, reason: &str| Reply::json(status, json!({"reason": reason}));
    match device {
        "gone" => Reply::json(
            410,
            json!({"reason": "Unregistered", "timestamp": 1_700_000_000_000u64}),
        ),
        "bad" => error(400, "BadDeviceToken"),
        "other-app" => error(400, "DeviceTokenNotForTopic"),
        "too-big" => error(413, "PayloadTooLarge"),
        "busy" => error(429, "TooManyRequests").header("retry-after", "5"),
        "down" => error(503, "ServiceUnavailable"),
        "expired" => error(403, "ExpiredProviderToken"),
        _ => Reply::text(200, "").header(
            "apns-id",
            seen.headers
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("00000000-0000-0000-0000-0000000000aa"),
        ),
    }
}

async fn fake(public_key: Vec<u8>, topic: &'static str) -> HttpFake {
    HttpFake::start_http2_only(move |seen| match check(seen, &public_key, topic) {
        Ok(()) => answer(seen),
        Err(reason) => Reply::json(403, json!({ "reason": reason })),
    })
    .await
}

fn config(pem: &str, fake: &HttpFake) -> ApnsConfig {
    ApnsConfig {
        team_id: TEAM_ID.into(),
        key_id: KEY_ID.into(),
        private_key: Secret::new(pem),
        bundle_id: Some(BUNDLE_ID.into()),
        environment: ApnsEnvironment::Sandbox,
        endpoint: Some(fake.base()),
    }
}

fn ios(token: &str) -> Outgoing {
    outgoing(
        Channel::Iospush,
        json!(token),
        Content::Iospush(Push {
            title: "Order 42".into(),
            body: "Hi Ada".into(),
            data: Some(json!({"order": 42})),
            url: Some("https://shop.example/o/42".into()),
            image: None,
        }),
    )
}

#[tokio::test]
async fn sends_over_http2_with_a_verified_provider_token() {
    let (pem, public) = p8_key();
    let fake = fake(public, BUNDLE_ID).await;
    let provider = ApnsProvider::new(config(&pem, &fake), &http()).unwrap();
    let mut message = ios("a1b2c3");
    message.message_id = "123e4567-e89b-12d3-a456-426614174000".into();
    let outcome = provider.send(&message).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("123e4567-e89b-12d3-a456-426614174000".into())
        }
    );
    let seen = fake.only();
    assert_eq!(seen.version, axum::http::Version::HTTP_2);
    assert_eq!(seen.target, "/3/device/a1b2c3");
    assert_eq!(
        seen.header("apns-id"),
        "123e4567-e89b-12d3-a456-426614174000"
    );
    assert_eq!(
        seen.json(),
        json!({"aps": {"alert": {"title": "Order 42", "body": "Hi Ada"}}, "order": 42, "url": "https://shop.example/o/42"})
    );

    // A message id that is not a UUID is not sent as apns-id; APNs makes one.
    let outcome = provider.send(&ios("a1b2c3")).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("00000000-0000-0000-0000-0000000000aa".into())
        }
    );
    let seen = fake.seen();
    assert!(seen[1].headers.get("apns-id").is_none());
    // The provider token is reused, not signed per send.
    assert_eq!(
        seen[0].header("authorization"),
        seen[1].header("authorization")
    );

    // The fake really refuses HTTP/1.
    let plain = reqwest::Client::new()
        .post(format!("{}/3/device/a1b2c3", fake.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 505);
}

#[tokio::test]
async fn the_identitys_bundle_id_is_the_topic() {
    let (pem, public) = p8_key();
    let fake = fake(public, "com.example.other").await;
    let provider = ApnsProvider::new(config(&pem, &fake), &http()).unwrap();
    let mut message = ios("a1b2c3");
    message.identity.bundle_id = Some("com.example.other".into());
    assert!(matches!(
        provider.send(&message).await,
        Delivery::Sent { .. }
    ));
    // Without the identity's, the provider's: the fake refuses that topic.
    let outcome = provider.send(&ios("a1b2c3")).await;
    assert_failed(&outcome, false);
    assert!(
        format!("{outcome:?}").contains("TopicDisallowed"),
        "{outcome:?}"
    );
    // Neither: nothing is sent.
    let mut bare = config(&pem, &fake);
    bare.bundle_id = None;
    let outcome = ApnsProvider::new(bare, &http())
        .unwrap()
        .send(&ios("a1b2c3"))
        .await;
    assert_failed(&outcome, false);
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn each_apns_answer_has_its_outcome() {
    let (pem, public) = p8_key();
    let fake = fake(public, BUNDLE_ID).await;
    let provider = ApnsProvider::new(config(&pem, &fake), &http()).unwrap();
    for dead in ["gone", "bad", "other-app"] {
        assert_failed(&provider.send(&ios(dead)).await, true);
    }
    assert_failed(&provider.send(&ios("too-big")).await, false);
    assert_retry(
        &provider.send(&ios("busy")).await,
        Some(Duration::from_secs(5)),
    );
    assert_retry(&provider.send(&ios("down")).await, None);
    // An expired provider token retries, and the next send signs a new one.
    assert_retry(&provider.send(&ios("expired")).await, None);
    assert!(matches!(
        provider.send(&ios("fine")).await,
        Delivery::Sent { .. }
    ));
    let seen = fake.seen();
    let n = seen.len();
    assert_ne!(
        seen[n - 1].header("authorization"),
        seen[n - 2].header("authorization")
    );
    assert_eq!(
        seen[0].header("authorization"),
        seen[n - 2].header("authorization"),
        "one token until then"
    );

    // A key that is not the one APNs knows: refused, not the identity's fault.
    let (other_pem, _) = p8_key();
    let outcome = ApnsProvider::new(config(&other_pem, &fake), &http())
        .unwrap()
        .send(&ios("fine"))
        .await;
    assert_failed(&outcome, false);
    assert!(
        format!("{outcome:?}").contains("InvalidProviderToken"),
        "{outcome:?}"
    );
}

#[test]
fn the_config_hides_the_key_and_names_bad_fields() {
    let (pem, _) = p8_key();
    let raw = json!({"kind": "apns", "team_id": TEAM_ID, "key_id": KEY_ID, "private_key": pem,
                     "bundle_id": BUNDLE_ID, "environment": "sandbox"});
    let config = ProviderConfig::parse(&raw).unwrap();
    let view = config.public_view();
    assert_eq!(view["private_key"], "set");
    assert_eq!(view["environment"], "sandbox");
    assert!(!view.to_string().contains("PRIVATE KEY"), "{view}");
    assert!(!format!("{config:?}").contains("PRIVATE KEY"));
    let stored = serde_json::to_value(&config).unwrap();
    assert_eq!(ProviderConfig::parse(&stored).unwrap(), config);
    let http = http();
    assert!(config.clone().build(Channel::Iospush, &http).is_ok());
    assert_eq!(
        config
            .build(Channel::Androidpush, &http)
            .err()
            .unwrap()
            .field,
        "kind"
    );
    let production = ProviderConfig::parse(
        &json!({"kind": "apns", "team_id": TEAM_ID, "key_id": KEY_ID, "private_key": pem}),
    )
    .unwrap();
    assert_eq!(production.public_view()["environment"], "production");

    let field_of = |key: &str, value: Value| {
        let mut raw = raw.clone();
        raw[key] = value;
        match ProviderConfig::parse(&raw) {
            Err(e) => e.field,
            Ok(c) => {
                c.build(Channel::Iospush, &http)
                    .err()
                    .expect("refused")
                    .field
            }
        }
    };
    assert_eq!(field_of("team_id", json!("short")), "team_id");
    assert_eq!(field_of("key_id", json!("KEY-765432")), "key_id");
    assert_eq!(field_of("private_key", json!("not a key")), "private_key");
    assert_eq!(field_of("environment", json!("staging")), "environment");
    assert_eq!(field_of("endpoint", json!("ftp://apns")), "endpoint");
    assert_eq!(field_of("bundle_id", json!("com example")), "bundle_id");
}

#[tokio::test]
async fn an_fcm_token_is_never_sent_to_apns() {
    let (pem, public) = p8_key();
    let fake = fake(public, BUNDLE_ID).await;
    let provider = ApnsProvider::new(config(&pem, &fake), &http()).unwrap();
    let mut firebase = ios("fcm-token");
    firebase.identity.provider = Some("fcm".into());
    let outcome = provider.send(&firebase).await;
    assert_failed(&outcome, false);
    assert!(
        format!("{outcome:?}").contains("apns does not deliver fcm tokens"),
        "{outcome:?}"
    );
    assert!(fake.seen().is_empty());
}
