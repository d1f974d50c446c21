//! Web Push (RFC 8030) to a browser's `$webpush` subscription: the payload encrypted for the
//! subscription's keys with RFC 8291 (`aes128gcm`, the RFC 8188 content coding), the sender
//! identified to the push service with VAPID (RFC 8292): an ES256 JWT for the endpoint's origin
//! and the application server's public key, `Authorization: vapid t=…, k=…`.
//!
//! `POST {endpoint}` with `Content-Encoding: aes128gcm`, `TTL` and `Urgency`; `201 Created`
//! carries the message's `Location`. `404`/`410` mean the subscription is gone.

use crate::config::Secret;
use crate::http::{parse_url, webhook_target, Answer, Http};
use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use herald_core::channel::{Channel, WebPushSubscription};
use herald_core::delivery::{Content, Delivery, Outgoing, Provider, Push};
use herald_core::error::Invalid;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Url};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use ring::{aead, hkdf};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;

/// The record size written in the content-coding header: the whole message is one record.
const RECORD_SIZE: u32 = 4096;
/// Salt (16) ‖ rs (4) ‖ idlen (1) ‖ keyid (the 65-byte public key).
const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// AES-GCM's tag.
const TAG_LEN: usize = 16;
/// Push services must accept 4096 bytes of body (RFC 8291 §4): what is left for the JSON once
/// the header, the tag and the padding delimiter are counted.
pub const MAX_PLAINTEXT: usize = 4096 - HEADER_LEN - TAG_LEN - 1;
/// How long the VAPID token is valid (RFC 8292 §2: at most 24 hours).
const TOKEN_LIFETIME_SECS: i64 = 12 * 60 * 60;

fn default_ttl() -> u32 {
    86_400
}

/// How urgently the push service should deliver (RFC 8030 §5.3), for the device's battery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// `{"kind": "vapid", …}` on the `webpush` channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VapidConfig {
    /// Who runs the application server, for the push service to reach: `mailto:` or `https:`.
    pub subject: String,
    /// The application server's P-256 public key, base64url of the uncompressed point: the
    /// `applicationServerKey` the page subscribed with.
    pub public_key: String,
    /// Its private key: base64url of the 32-byte scalar, or a PKCS#8 PEM.
    pub private_key: Secret,
    /// How long the push service keeps an undelivered message, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// Replaces the origin of every subscription's endpoint (a proxy, or a test's fake); the
    /// VAPID audience stays the endpoint's own origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

impl VapidConfig {
    pub const SECRETS: &'static [&'static str] = &["private_key"];
}

pub struct WebPushProvider {
    signer: EcdsaKeyPair,
    /// `k=` of the Authorization header: the public key as configured, base64url.
    public_key: String,
    subject: String,
    ttl: u32,
    urgency: Option<Urgency>,
    base_url: Option<Url>,
    http: Http,
    rng: SystemRandom,
}

impl WebPushProvider {
    pub fn new(config: VapidConfig, http: Http) -> Result<Self, Invalid> {
        let subject = config.subject.trim();
        let contact = match subject.split_once(':') {
            Some(("mailto", address)) => {
                address.contains('@') && !address.contains(char::is_whitespace)
            }
            Some(("https", _)) => Url::parse(subject).is_ok_and(|url| url.host_str().is_some()),
            _ => false,
        };
        if !contact {
            return Err(Invalid::new(
                "subject",
                "must be a mailto: address or an https: URL (RFC 8292 §2.1)",
            ));
        }
        let public = URL_SAFE_NO_PAD
            .decode(config.public_key.trim().trim_end_matches('='))
            .ok()
            .filter(|key| key.len() == 65 && key[0] == 0x04)
            .ok_or_else(|| {
                Invalid::new(
                    "public_key",
                    "must be base64url of an uncompressed P-256 point (65 bytes, 0x04 first)",
                )
            })?;
        let rng = SystemRandom::new();
        let signer = signing_key(config.private_key.expose(), &public, &rng)?;
        let base_url = config
            .base_url
            .as_deref()
            .map(|b| parse_url("base_url", b))
            .transpose()?;
        Ok(WebPushProvider {
            signer,
            public_key: URL_SAFE_NO_PAD.encode(&public),
            subject: subject.to_owned(),
            ttl: config.ttl,
            urgency: config.urgency,
            base_url,
            http,
            rng,
        })
    }

    /// `vapid t=<JWT>, k=<public key>` for a push service at `audience` (an origin).
    fn authorization(&self, audience: &str) -> Result<String, Delivery> {
        let exp = chrono::Utc::now().timestamp() + TOKEN_LIFETIME_SECS;
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = URL_SAFE_NO_PAD
            .encode(json!({"aud": audience, "exp": exp, "sub": self.subject}).to_string());
        let signing_input = format!("{header}.{claims}");
        let signature = self
            .signer
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| failed("could not sign the VAPID token"))?;
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            URL_SAFE_NO_PAD.encode(signature.as_ref()),
            self.public_key
        ))
    }
}

/// The VAPID signing key from a base64url scalar or a PKCS#8 PEM; it must be the private half
/// of `public`. (The error never quotes the key.)
fn signing_key(raw: &str, public: &[u8], rng: &SystemRandom) -> Result<EcdsaKeyPair, Invalid> {
    let raw = raw.trim();
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    if raw.starts_with("-----BEGIN") {
        let der = pem_body(raw, "PRIVATE KEY").ok_or_else(|| {
            Invalid::new(
                "private_key",
                "must be a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); convert an EC PRIVATE KEY \
                 with `openssl pkcs8 -topk8 -nocrypt`",
            )
        })?;
        let pair = EcdsaKeyPair::from_pkcs8(alg, &der, rng).map_err(|e| {
            Invalid::new(
                "private_key",
                format!("is not a P-256 PKCS#8 private key: {e}"),
            )
        })?;
        if pair.public_key().as_ref() != public {
            return Err(Invalid::new(
                "private_key",
                "is not the private key of public_key",
            ));
        }
        return Ok(pair);
    }
    let scalar = URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or_else(|| {
            Invalid::new(
                "private_key",
                "must be base64url of a 32-byte P-256 private key, or a PKCS#8 PEM",
            )
        })?;
    EcdsaKeyPair::from_private_key_and_public_key(alg, &scalar, public, rng).map_err(|e| {
        Invalid::new(
            "private_key",
            format!("is not the private key of public_key: {e}"),
        )
    })
}

/// The DER inside a PEM block labelled `label`.
fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let text: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(text).ok()
}

/// A fresh VAPID key pair: the public key as base64url (the `applicationServerKey` for the
/// page, and `public_key`), the private key as a PKCS#8 PEM (`private_key`).
pub fn generate_vapid_keys() -> Result<(String, String), ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| ring::error::Unspecified)?;
    let body = STANDARD.encode(pkcs8.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).map_err(|_| ring::error::Unspecified)?);
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok((URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()), pem))
}

#[async_trait]
impl Provider for WebPushProvider {
    fn channel(&self) -> Channel {
        Channel::Webpush
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::Webpush(push) = &message.content else {
            return crate::wrong_content("webpush", Channel::Webpush, &message.content);
        };
        let Ok(subscription) = WebPushSubscription::parse(&message.identity.value) else {
            return crate::unusable_identity("a web push subscription");
        };
        let (url, origin) = match webhook_target(&subscription.endpoint, self.base_url.as_ref()) {
            Ok(target) => target,
            Err(outcome) => return outcome,
        };
        // The audience is the push service the subscription names, wherever the call goes.
        let audience = match Url::parse(&subscription.endpoint) {
            Ok(endpoint) => endpoint.origin().ascii_serialization(),
            Err(_) => return crate::unusable_identity("a web push subscription"),
        };
        let plaintext = payload(push);
        if plaintext.len() > MAX_PLAINTEXT {
            return failed(&format!(
                "the web push payload is {} bytes, more than the {MAX_PLAINTEXT} a push service \
                 must accept",
                plaintext.len()
            ));
        }
        let body = match self.encrypt_for(&subscription, &plaintext) {
            Ok(body) => body,
            Err(EncryptError::BadPeerKey) => {
                return crate::unusable_identity("a web push subscription with a P-256 key")
            }
            Err(e) => return failed(&e.to_string()),
        };
        let authorization = match self.authorization(&audience) {
            Ok(value) => value,
            Err(outcome) => return outcome,
        };
        let mut request = match self.http.request(Method::POST, url, origin) {
            Ok(request) => request
                .header(AUTHORIZATION, authorization)
                .header(CONTENT_ENCODING, "aes128gcm")
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("TTL", self.ttl.to_string())
                .body(body),
            Err(outcome) => return outcome,
        };
        if let Some(urgency) = self.urgency {
            request = request.header("Urgency", urgency.as_str());
        }
        match self.http.execute(request).await {
            Ok(answer) => outcome(&answer),
            Err(outcome) => outcome,
        }
    }
}

impl WebPushProvider {
    fn encrypt_for(
        &self,
        subscription: &WebPushSubscription,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EncryptError> {
        let key = EphemeralPrivateKey::generate(&ECDH_P256, &self.rng)
            .map_err(|_| EncryptError::Crypto("could not make an ephemeral key"))?;
        let mut salt = [0u8; 16];
        self.rng
            .fill(&mut salt)
            .map_err(|_| EncryptError::Crypto("could not draw a salt"))?;
        encrypt(
            plaintext,
            &subscription.p256dh,
            &subscription.auth,
            key,
            salt,
        )
    }
}

/// The JSON the service worker receives: `title`, `body`, and `data`, `url`, `image` when set.
pub fn payload(push: &Push) -> Vec<u8> {
    let mut fields = Map::new();
    fields.insert("title".into(), json!(push.title));
    fields.insert("body".into(), json!(push.body));
    if let Some(data) = &push.data {
        fields.insert("data".into(), data.clone());
    }
    if let Some(url) = &push.url {
        fields.insert("url".into(), json!(url));
    }
    if let Some(image) = &push.image {
        fields.insert("image".into(), json!(image));
    }
    Value::Object(fields).to_string().into_bytes()
}

fn outcome(answer: &Answer) -> Delivery {
    if answer.status.is_success() {
        let location = answer
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return Delivery::Sent {
            provider_id: location,
        };
    }
    match answer.status.as_u16() {
        // RFC 8030 §7.3: the subscription expired or was removed.
        404 | 410 => answer.identity_invalid("webpush", "the subscription is gone"),
        _ => answer.default_outcome("webpush"),
    }
}

fn failed(reason: &str) -> Delivery {
    Delivery::Failed {
        reason: format!("webpush: {reason}"),
        identity_invalid: false,
    }
}

/// Why a message could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptError {
    /// The subscription's `p256dh` is not a point on P-256.
    BadPeerKey,
    Crypto(&'static str),
}

impl fmt::Display for EncryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncryptError::BadPeerKey => f.write_str("the subscription's p256dh is not a P-256 key"),
            EncryptError::Crypto(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for EncryptError {}

/// RFC 8291 §3 / RFC 8188: `plaintext` encrypted for the user agent's public key `ua_public` and
/// authentication secret `auth`, with the application server's ephemeral key `as_key` and
/// `salt` (both fresh for every message; given here so the RFC's test vector can fix them). The
/// result is the whole request body: the content-coding header (salt, record size, key id = the
/// ephemeral public key) and one record, padded with the last-record delimiter `0x02`.
pub fn encrypt(
    plaintext: &[u8],
    ua_public: &[u8; 65],
    auth: &[u8; 16],
    as_key: EphemeralPrivateKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, EncryptError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EncryptError::Crypto(
            "the payload is larger than one record",
        ));
    }
    let as_public = as_key
        .compute_public_key()
        .map_err(|_| EncryptError::Crypto("could not compute the ephemeral public key"))?;
    let ecdh_secret = agreement::agree_ephemeral(
        as_key,
        &UnparsedPublicKey::new(&ECDH_P256, ua_public),
        |secret| secret.to_vec(),
    )
    .map_err(|_| EncryptError::BadPeerKey)?;
    // PRK_key = HKDF-Extract(auth, ecdh); IKM = HKDF-Expand(PRK_key, "WebPush: info\0" ‖ ua ‖ as, 32)
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public.as_ref());
    let ikm: [u8; 32] = expand(auth, &ecdh_secret, &key_info)?;
    // PRK = HKDF-Extract(salt, IKM); CEK and NONCE from it (RFC 8188 §2.2, §2.3).
    let cek: [u8; 16] = expand(&salt, &ikm, b"Content-Encoding: aes128gcm\0")?;
    let nonce: [u8; 12] = expand(&salt, &ikm, b"Content-Encoding: nonce\0")?;

    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_ref());
    let mut record = Vec::with_capacity(plaintext.len() + 1 + TAG_LEN);
    record.extend_from_slice(plaintext);
    record.push(0x02);
    let key = aead::UnboundKey::new(&aead::AES_128_GCM, &cek)
        .map_err(|_| EncryptError::Crypto("could not make the content key"))?;
    // The only record is record 0: its nonce is NONCE XOR 0.
    aead::LessSafeKey::new(key)
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut record,
        )
        .map_err(|_| EncryptError::Crypto("could not encrypt the record"))?;
    body.extend_from_slice(&record);
    Ok(body)
}

/// HKDF-SHA256: `N` bytes expanded with `info` from the key extracted from `ikm` with `salt`.
fn expand<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Result<[u8; N], EncryptError> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let mut out = [0u8; N];
    prk.expand(&[info], Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| EncryptError::Crypto("HKDF failed"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::OutboundConfig;

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    /// RFC 8291 Appendix A, byte for byte: the same keys, salt and plaintext give the published
    /// message.
    #[test]
    #[allow(deprecated)] // ring's fixed "random" source: the only way to fix an ephemeral key
    fn encrypts_the_rfc_8291_test_vector() {
        let as_private = b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw");
        let as_key = EphemeralPrivateKey::generate(
            &ECDH_P256,
            &ring::test::rand::FixedSliceRandom { bytes: &as_private },
        )
        .unwrap();
        assert_eq!(
            as_key.compute_public_key().unwrap().as_ref(),
            b64("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8")
        );
        let ua_public: [u8; 65] = b64(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        )
        .try_into()
        .unwrap();
        let auth: [u8; 16] = b64("BTBZMqHH6r4Tts7J_aSIgg").try_into().unwrap();
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let body = encrypt(
            b"When I grow up, I want to be a watermelon",
            &ua_public,
            &auth,
            as_key,
            salt,
        )
        .unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vC\
             YLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBW\
             LVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn a_key_off_the_curve_is_the_subscriptions_fault() {
        let rng = SystemRandom::new();
        let key = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        let mut bogus = [7u8; 65];
        bogus[0] = 0x04;
        assert_eq!(
            encrypt(b"x", &bogus, &[0; 16], key, [0; 16]),
            Err(EncryptError::BadPeerKey)
        );
    }

    fn config(private_key: &str) -> VapidConfig {
        VapidConfig {
            subject: "mailto:ops@example.com".into(),
            public_key: "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8".into(),
            private_key: Secret::new(private_key),
            ttl: default_ttl(),
            urgency: None,
            base_url: None,
        }
    }

    #[test]
    fn keys_are_checked_and_named() {
        let http = Http::new(&OutboundConfig::default()).unwrap();
        let scalar = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
        assert!(WebPushProvider::new(config(scalar), http.clone()).is_ok());
        let field = |c: VapidConfig| WebPushProvider::new(c, http.clone()).err().unwrap().field;
        // Another key's scalar, too short, not base64url.
        for bad in [
            "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
            "yfWPiYE",
            "not base64!",
        ] {
            assert_eq!(field(config(bad)), "private_key", "{bad}");
        }
        let mut c = config(scalar);
        c.public_key = "BP4z".into();
        assert_eq!(field(c), "public_key");
        for bad in [
            "ops@example.com",
            "mailto:",
            "mailto:ops",
            "https://",
            "http://ops.example",
        ] {
            let mut c = config(scalar);
            c.subject = bad.into();
            assert_eq!(field(c), "subject", "{bad}");
        }
        let mut c = config(scalar);
        c.subject = "https://ops.example/contact".into();
        assert!(WebPushProvider::new(c, http.clone()).is_ok());
        let mut c = config(scalar);
        c.base_url = Some("ftp://x".into());
        assert_eq!(field(c), "base_url");
        let err = WebPushProvider::new(
            config("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"),
            http.clone(),
        )
        .err()
        .unwrap();
        assert!(
            !err.to_string().contains("q1dXpw3U"),
            "the key is never quoted: {err}"
        );
    }

    #[test]
    fn generated_keys_work_as_a_pem_and_must_match() {
        let http = Http::new(&OutboundConfig::default()).unwrap();
        let (public, pem) = generate_vapid_keys().unwrap();
        assert_eq!(b64(&public).len(), 65);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let mut c = config(&pem);
        c.public_key = public;
        assert!(WebPushProvider::new(c, http.clone()).is_ok());
        // The PEM of one key with the public key of another.
        let err = WebPushProvider::new(config(&pem), http.clone())
            .err()
            .unwrap();
        assert_eq!(err.field, "private_key");
        assert!(err.rule.contains("not the private key"), "{err}");
        let sec1 = pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
        let err = WebPushProvider::new(config(&sec1), http).err().unwrap();
        assert!(err.rule.contains("openssl pkcs8"), "{err}");
    }

    /// A throwaway key made with the commands docs/api.md gives (`openssl ecparam … | openssl
    /// pkcs8 -topk8 -nocrypt`, and the public point out of `openssl ec -pubout`).
    #[test]
    fn a_key_made_with_openssl_as_documented_is_taken() {
        let pem = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsaIzXJE/3fjF1arG
RASRphA0uE2eHvVuo/ajxhPAAwmhRANCAARQftbLi9MY9K2cv4pvZCYa+vGzbsFU
cnO6YI4LTVRUe+I3Ix8kO5ReU6WG9xVc77VcDIcA0r38OidX2T6WbJe4
-----END PRIVATE KEY-----
";
        let mut c = config(pem);
        c.public_key =
            "BFB-1suL0xj0rZy_im9kJhr68bNuwVRyc7pgjgtNVFR74jcjHyQ7lF5TpYb3FVzvtVwMhwDSvfw6J1fZPpZsl7g"
                .into();
        let http = Http::new(&OutboundConfig::default()).unwrap();
        assert!(WebPushProvider::new(c, http).is_ok());
    }

    #[test]
    fn the_payload_leaves_out_what_is_unset() {
        let push = Push {
            title: "Hi".into(),
            body: "There".into(),
            data: None,
            url: Some("https://app.example/x".into()),
            image: None,
        };
        assert_eq!(
            String::from_utf8(payload(&push)).unwrap(),
            r#"{"title":"Hi","body":"There","url":"https://app.example/x"}"#
        );
    }
}
