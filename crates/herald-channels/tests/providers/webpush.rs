//! Web Push against a fake push service that does what a real one does with the request: checks
//! the VAPID token's ES256 signature against the `k` it came with, its audience and expiry; and
//! then the test, holding the subscription's private key as a browser would, decrypts the body.

use crate::fake_http::{HttpFake, Reply, Seen};
use crate::{assert_failed, assert_retry, http, http_with, outgoing};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use herald_channels::webpush::{Urgency, VapidConfig, WebPushProvider, MAX_PLAINTEXT};
use herald_channels::Secret;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider, Push};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, hkdf, signature};
use serde_json::{json, Value};
use std::time::Duration;

/// The application server's key pair (RFC 8291's sender key, a valid P-256 pair).
const VAPID_PUBLIC: &str =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
const VAPID_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";

fn config(base_url: Option<String>) -> VapidConfig {
    VapidConfig {
        subject: "mailto:ops@example.com".into(),
        public_key: VAPID_PUBLIC.into(),
        private_key: Secret::new(VAPID_PRIVATE),
        ttl: 3600,
        urgency: Some(Urgency::High),
        base_url,
    }
}

/// A browser's side of a subscription: its key pair (the private half held in memory until the
/// one message is decrypted) and auth secret.
struct Browser {
    private: EphemeralPrivateKey,
    public: Vec<u8>,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        let rng = SystemRandom::new();
        let private = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        let public = private.compute_public_key().unwrap().as_ref().to_vec();
        let mut auth = [0u8; 16];
        rng.fill(&mut auth).unwrap();
        Browser {
            private,
            public,
            auth,
        }
    }

    /// `PushSubscription.toJSON()` for `endpoint`.
    fn subscription(&self, endpoint: &str) -> Value {
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {"p256dh": URL_SAFE_NO_PAD.encode(&self.public), "auth": URL_SAFE_NO_PAD.encode(self.auth)}
        })
    }

    /// RFC 8291 §3.4 and RFC 8188 §2 read from the receiving end: the header, the shared secret
    /// from the sender's key in `keyid`, the key and nonce, one record and its padding.
    fn decrypt(self, body: &[u8]) -> Vec<u8> {
        let salt = &body[..16];
        let rs = u32::from_be_bytes(body[16..20].try_into().unwrap());
        assert_eq!(rs, 4096, "record size");
        let idlen = usize::from(body[20]);
        assert_eq!(idlen, 65, "keyid is the sender's uncompressed public key");
        let as_public = &body[21..21 + idlen];
        let record = &body[21 + idlen..];
        assert!(record.len() <= rs as usize, "one record");
        let ecdh = agreement::agree_ephemeral(
            self.private,
            &UnparsedPublicKey::new(&ECDH_P256, as_public),
            |secret| secret.to_vec(),
        )
        .unwrap();
        let info = [b"WebPush: info\0".as_slice(), &self.public, as_public].concat();
        let ikm = hkdf_sha256(&self.auth, &ecdh, &info, 32);
        let cek = hkdf_sha256(salt, &ikm, b"Content-Encoding: aes128gcm\0", 16);
        let nonce = hkdf_sha256(salt, &ikm, b"Content-Encoding: nonce\0", 12);
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek).unwrap());
        let mut record = record.to_vec();
        let padded = key
            .open_in_place(
                aead::Nonce::try_assume_unique_for_key(&nonce).unwrap(),
                aead::Aad::empty(),
                &mut record,
            )
            .expect("the record decrypts and authenticates");
        let end = padded.iter().rposition(|b| *b != 0).expect("a delimiter");
        assert_eq!(padded[end], 0x02, "the last record's delimiter");
        padded[..end].to_vec()
    }
}

fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let mut out = vec![0u8; len];
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len(len))
        .unwrap()
        .fill(&mut out)
        .unwrap();
    out
}

/// What a push service checks of `Authorization: vapid t=<jwt>, k=<key>` (RFC 8292 §3, §4.2):
/// the key is the one the subscription was made with, the JWT is ES256-signed by it, `aud` is
/// the push service's origin, `exp` within 24 hours, `sub` a contact. The rule broken, if any.
fn vapid_refusal(seen: &Seen, audience: &str, subscribed_with: &str) -> Option<String> {
    let value = seen.header("authorization");
    let rest = value.strip_prefix("vapid ")?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    let (Some(token), Some(key)) = (token, key) else {
        return Some(format!("no t= and k= in {value}"));
    };
    if key != subscribed_with {
        return Some("k is not the subscription's application server key".into());
    }
    let (signing_input, signature) = token.rsplit_once('.')?;
    let public = URL_SAFE_NO_PAD.decode(key).ok()?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    if signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &public)
        .verify(signing_input.as_bytes(), &signature)
        .is_err()
    {
        return Some("the ES256 signature does not verify".into());
    }
    let (header, claims) = signing_input.split_once('.')?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    if header["alg"] != "ES256" {
        return Some(format!("alg {}", header["alg"]));
    }
    if claims["aud"] != audience {
        return Some(format!("aud {} is not {audience}", claims["aud"]));
    }
    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64().unwrap_or_default();
    if exp <= now || exp > now + 24 * 3600 {
        return Some(format!("exp {exp} is not within 24 h of {now}"));
    }
    if claims["sub"] != "mailto:ops@example.com" {
        return Some(format!("sub {}", claims["sub"]));
    }
    None
}

/// A push service whose subscriptions were made with the application server key
/// `subscribed_with`: what VAPID-checks is answered `status` (and `Location`), the rest refused
/// with 403 as RFC 8292 §4.2 says. Paths under `/wpush/` stand in for Mozilla's service.
async fn push_service_for(
    subscribed_with: String,
    status: u16,
    location: Option<&'static str>,
) -> HttpFake {
    HttpFake::start(move |seen| {
        let host = seen.header("host").to_owned();
        let audience = match seen.target.as_str() {
            t if t.starts_with("/wpush/") => "https://updates.push.services.mozilla.com".to_owned(),
            _ => format!("http://{host}"),
        };
        if let Some(rule) = vapid_refusal(seen, &audience, &subscribed_with) {
            return Reply::text(403, &rule);
        }
        let reply = Reply::text(status, "");
        match location {
            Some(l) => reply.header("location", l),
            None => reply,
        }
    })
    .await
}

async fn push_service(status: u16, location: Option<&'static str>) -> HttpFake {
    push_service_for(VAPID_PUBLIC.to_owned(), status, location).await
}

fn push() -> Push {
    Push {
        title: "Your order shipped".into(),
        body: "Ada, it is on its way.".into(),
        data: Some(json!({"order": 4711, "tags": ["a", "b"]})),
        url: Some("https://shop.example/orders/4711".into()),
        image: Some("https://shop.example/box.png".into()),
    }
}

fn message(subscription: Value, push: Push) -> Outgoing {
    outgoing(Channel::Webpush, subscription, Content::Webpush(push))
}

#[tokio::test]
async fn encrypts_for_the_subscription_and_signs_for_the_push_service() {
    let fake = push_service(201, Some("https://push.example/m/0042")).await;
    let browser = Browser::new();
    let endpoint = format!("{}/push/v1/sub-abc", fake.base());
    let provider = WebPushProvider::new(config(None), http()).unwrap();
    let outcome = provider
        .send(&message(browser.subscription(&endpoint), push()))
        .await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("https://push.example/m/0042".into())
        }
    );
    let seen = fake.only();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/push/v1/sub-abc");
    assert_eq!(seen.header("content-encoding"), "aes128gcm");
    assert_eq!(seen.header("content-type"), "application/octet-stream");
    assert_eq!(seen.header("ttl"), "3600");
    assert_eq!(seen.header("urgency"), "high");
    let plaintext = browser.decrypt(&seen.body);
    assert_eq!(
        serde_json::from_slice::<Value>(&plaintext).unwrap(),
        json!({
            "title": "Your order shipped", "body": "Ada, it is on its way.",
            "data": {"order": 4711, "tags": ["a", "b"]},
            "url": "https://shop.example/orders/4711", "image": "https://shop.example/box.png"
        })
    );
}

#[tokio::test]
async fn every_message_has_its_own_key_and_salt() {
    let fake = push_service(201, None).await;
    let browser = Browser::new();
    let subscription = browser.subscription(&format!("{}/push/1", fake.base()));
    let provider = WebPushProvider::new(config(None), http()).unwrap();
    for _ in 0..2 {
        let outcome = provider.send(&message(subscription.clone(), push())).await;
        assert_eq!(outcome, Delivery::Sent { provider_id: None });
    }
    let seen = fake.seen();
    // Salt and keyid: the first 86 bytes.
    assert_ne!(seen[0].body[..16], seen[1].body[..16], "salt");
    assert_ne!(seen[0].body[21..86], seen[1].body[21..86], "ephemeral key");
}

#[tokio::test]
async fn a_base_url_moves_the_call_but_the_audience_stays_the_push_service() {
    // The private key as a PKCS#8 PEM this time, as `openssl` writes one.
    let (public, pem) = herald_channels::webpush::generate_vapid_keys().unwrap();
    let fake = push_service_for(public.clone(), 202, None).await;
    let browser = Browser::new();
    let endpoint = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk";
    let mut with_pem = config(Some(fake.base()));
    with_pem.public_key = public.clone();
    with_pem.private_key = Secret::new(pem);
    with_pem.urgency = None;
    let provider = WebPushProvider::new(with_pem, http()).unwrap();
    let outcome = provider
        .send(&message(browser.subscription(endpoint), push()))
        .await;
    assert_eq!(outcome, Delivery::Sent { provider_id: None });
    let seen = fake.only();
    assert_eq!(seen.target, "/wpush/v2/gAAAAABk");
    assert!(seen
        .header("authorization")
        .ends_with(&format!("k={public}")));
    assert_eq!(seen.header("urgency"), "", "no urgency unless configured");
    assert_eq!(seen.header("ttl"), "3600");
    let plaintext = browser.decrypt(&seen.body);
    assert_eq!(
        serde_json::from_slice::<Value>(&plaintext).unwrap()["title"],
        "Your order shipped"
    );
}

#[tokio::test]
async fn a_token_from_another_application_server_is_refused() {
    // The subscription was made with the RFC key; Herald is configured with another.
    let fake = push_service(201, None).await;
    let (public, pem) = herald_channels::webpush::generate_vapid_keys().unwrap();
    let mut other = config(None);
    other.public_key = public;
    other.private_key = Secret::new(pem);
    let provider = WebPushProvider::new(other, http()).unwrap();
    let outcome = provider
        .send(&message(
            Browser::new().subscription(&format!("{}/push/1", fake.base())),
            push(),
        ))
        .await;
    match &outcome {
        Delivery::Failed {
            reason,
            identity_invalid: false,
        } => assert!(reason.contains("403"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_gone_subscription_marks_the_identity_invalid() {
    for status in [404, 410] {
        let fake = push_service(status, None).await;
        let endpoint = format!("{}/push/gone", fake.base());
        let provider = WebPushProvider::new(config(None), http()).unwrap();
        let outcome = provider
            .send(&message(Browser::new().subscription(&endpoint), push()))
            .await;
        assert_failed(&outcome, true);
        assert_eq!(fake.seen().len(), 1);
    }
}

#[tokio::test]
async fn rate_limits_and_outages_retry() {
    let fake = HttpFake::start(|seen| match seen.target.as_str() {
        "/busy" => Reply::text(429, "slow down").header("retry-after", "30"),
        _ => Reply::text(503, "maintenance"),
    })
    .await;
    let provider = WebPushProvider::new(config(None), http()).unwrap();
    let browser = Browser::new();
    let busy = provider
        .send(&message(
            browser.subscription(&format!("{}/busy", fake.base())),
            push(),
        ))
        .await;
    assert_retry(&busy, Some(Duration::from_secs(30)));
    let down = provider
        .send(&message(
            browser.subscription(&format!("{}/down", fake.base())),
            push(),
        ))
        .await;
    assert_retry(&down, None);
}

#[tokio::test]
async fn refusals_fail_without_blaming_the_subscription() {
    for status in [400, 403, 413] {
        let fake = HttpFake::start(move |_| Reply::text(status, "no")).await;
        let provider = WebPushProvider::new(config(None), http()).unwrap();
        let outcome = provider
            .send(&message(
                Browser::new().subscription(&format!("{}/p", fake.base())),
                push(),
            ))
            .await;
        assert_failed(&outcome, false);
    }
}

#[tokio::test]
async fn what_cannot_be_sent_is_never_posted() {
    let fake = push_service(201, None).await;
    let provider = WebPushProvider::new(config(None), http()).unwrap();
    let browser = Browser::new();
    let endpoint = format!("{}/push/1", fake.base());

    // A payload over what a push service must take fails, the subscription is not to blame.
    let mut big = push();
    big.body = "x".repeat(MAX_PLAINTEXT);
    let outcome = provider
        .send(&message(browser.subscription(&endpoint), big))
        .await;
    assert_failed(&outcome, false);

    // A stored subscription whose key is not on the curve is dead.
    let mut bad = browser.subscription(&endpoint);
    let mut off_curve = [9u8; 65];
    off_curve[0] = 0x04;
    bad["keys"]["p256dh"] = json!(URL_SAFE_NO_PAD.encode(off_curve));
    assert_failed(&provider.send(&message(bad, push())).await, true);

    // Content rendered for another channel is the wiring's fault.
    let sms = outgoing(
        Channel::Webpush,
        browser.subscription(&endpoint),
        Content::Sms { text: "hi".into() },
    );
    assert_failed(&provider.send(&sms).await, false);
    assert!(fake.seen().is_empty(), "{:?}", fake.seen());
}

#[tokio::test]
async fn the_outbound_guard_covers_subscription_endpoints() {
    let fake = push_service(201, None).await;
    let guarded = WebPushProvider::new(config(None), http_with(false, 2_000)).unwrap();
    let outcome = guarded
        .send(&message(
            Browser::new().subscription(&format!("{}/push/1", fake.base())),
            push(),
        ))
        .await;
    match &outcome {
        Delivery::Failed {
            reason,
            identity_invalid: false,
        } => assert!(reason.contains("outbound address guard"), "{reason}"),
        other => panic!("expected a guard refusal, got {other:?}"),
    }
    assert!(fake.seen().is_empty());
}
