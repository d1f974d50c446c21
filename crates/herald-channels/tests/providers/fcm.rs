//! FCM HTTP v1 against a fake that plays both Google's OAuth token endpoint — verifying the
//! RS256 assertion with the service account's public key, its claims and the grant type — and
//! `messages:send`, checking the bearer token it issued and the body.
//!
//! `keys/fcm_service_account.pem` is a throwaway RSA key made for these tests only
//! (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`, PKCS#8), and
//! `keys/fcm_service_account.pub.pem` its public key (`openssl rsa -RSAPublicKey_out`): the fake
//! verifies with the file openssl wrote, not with anything derived by the code under test.

use crate::fake_http::{HttpFake, Reply, Seen};
use crate::{assert_failed, assert_retry, http, outgoing};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use herald_channels::fcm::{FcmConfig, FcmProvider, GRANT_TYPE, SCOPE};
use herald_channels::ProviderConfig;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider, Push};
use reqwest::Url;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const PRIVATE_KEY: &str = include_str!("keys/fcm_service_account.pem");
const PUBLIC_KEY: &str = include_str!("keys/fcm_service_account.pub.pem");
const PROJECT: &str = "herald-test";
const CLIENT_EMAIL: &str = "herald@herald-test.iam.gserviceaccount.com";
const SEND_PATH: &str = "/v1/projects/herald-test/messages:send";

/// A service-account key file as the Firebase console gives it, its token URI on `base`.
pub fn service_account(base: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "kid-0001",
        "private_key": PRIVATE_KEY,
        "client_email": CLIENT_EMAIL,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": format!("{base}/token"),
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/herald",
        "universe_domain": "googleapis.com"
    })
}

fn public_key_der() -> Vec<u8> {
    let body: String = PUBLIC_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

/// The form fields of an `application/x-www-form-urlencoded` body.
fn form(seen: &Seen) -> Vec<(String, String)> {
    let url = Url::parse(&format!("http://x/?{}", seen.text())).unwrap();
    url.query_pairs().into_owned().collect()
}

fn segment(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Checks a token request as Google would; the rule broken, if any.
fn check_grant(seen: &Seen, token_uri: &str) -> Result<(), String> {
    if seen.method != "POST" {
        return Err(format!("method {}", seen.method));
    }
    if seen.header("content-type") != "application/x-www-form-urlencoded" {
        return Err(format!("content-type {}", seen.header("content-type")));
    }
    let fields = form(seen);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if get("grant_type") != GRANT_TYPE {
        return Err(format!("grant_type {}", get("grant_type")));
    }
    let assertion = get("assertion");
    let (input, signature) = assertion.rsplit_once('.').ok_or("not a JWT")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der(),
    )
    .verify(input.as_bytes(), &signature)
    .map_err(|_| "the RS256 signature does not verify".to_owned())?;
    let (header, claims) = input.split_once('.').ok_or("not a JWT")?;
    let header = segment(header);
    if header != json!({"alg": "RS256", "typ": "JWT", "kid": "kid-0001"}) {
        return Err(format!("header {header}"));
    }
    let claims = segment(claims);
    let now = chrono::Utc::now().timestamp();
    let iat = claims["iat"].as_i64().ok_or("no iat")?;
    if (now - iat).abs() > 60 || claims["exp"].as_i64() != Some(iat + 3600) {
        return Err(format!("iat/exp {claims}"));
    }
    let expected = json!({"iss": CLIENT_EMAIL, "scope": SCOPE, "aud": token_uri});
    for (k, v) in expected.as_object().unwrap() {
        if &claims[k] != v {
            return Err(format!("claim {k}: {}", claims[k]));
        }
    }
    Ok(())
}

type SendReply = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// Google's token endpoint and FCM in one fake. Tokens are `ya29.token-N` (N counts the
/// exchanges) living `lifetime` seconds; a send with any token but the latest is a 401; a send
/// with the latest is answered by `reply` (with N).
struct Google {
    fake: HttpFake,
    exchanges: Arc<AtomicUsize>,
}

impl Google {
    async fn start(
        lifetime: u64,
        reply: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> Google {
        let exchanges = Arc::new(AtomicUsize::new(0));
        let base: Arc<Mutex<String>> = Arc::default();
        let reply: Arc<SendReply> = Arc::new(reply);
        let (count, at) = (exchanges.clone(), base.clone());
        let fake = HttpFake::start(move |seen| {
            let token_uri = format!("{}/token", at.lock().unwrap());
            match seen.target.as_str() {
                "/token" => match check_grant(seen, &token_uri) {
                    Ok(()) => {
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        Reply::json(
                            200,
                            json!({"access_token": format!("ya29.token-{n}"), "expires_in": lifetime, "token_type": "Bearer"}),
                        )
                    }
                    Err(why) => Reply::json(
                        400,
                        json!({"error": "invalid_grant", "error_description": why}),
                    ),
                },
                SEND_PATH => {
                    let n = count.load(Ordering::SeqCst);
                    if seen.header("authorization") != format!("Bearer ya29.token-{n}") {
                        return Reply::json(
                            401,
                            json!({"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "Request had invalid authentication credentials."}}),
                        );
                    }
                    reply(seen, n)
                }
                other => Reply::json(404, json!({"error": format!("no route {other}")})),
            }
        })
        .await;
        *base.lock().unwrap() = fake.base();
        Google { fake, exchanges }
    }

    fn provider(&self) -> FcmProvider {
        let config: FcmConfig = serde_json::from_value(json!({
            "service_account": service_account(&self.fake.base()),
            "endpoint": self.fake.base(),
        }))
        .unwrap();
        FcmProvider::new(config, http()).unwrap()
    }

    fn exchanges(&self) -> usize {
        self.exchanges.load(Ordering::SeqCst)
    }

    fn sends(&self) -> Vec<Seen> {
        self.fake
            .seen()
            .into_iter()
            .filter(|s| s.target == SEND_PATH)
            .collect()
    }
}

fn sent(n: usize) -> Reply {
    Reply::json(
        200,
        json!({"name": format!("projects/herald-test/messages/0:{n}")}),
    )
}

fn ok(_: &Seen, n: usize) -> Reply {
    sent(n)
}

fn push() -> Push {
    Push {
        title: "Order 42".into(),
        body: "Hi Ada".into(),
        data: Some(json!({"order": "42", "count": 3, "meta": {"a": true}})),
        url: Some("https://shop.example/o/42".into()),
        image: Some("https://img.example/42.png".into()),
    }
}

fn android(token: &str) -> Outgoing {
    outgoing(
        Channel::Androidpush,
        json!(token),
        Content::Androidpush(push()),
    )
}

#[tokio::test]
async fn sends_the_notification_with_a_token_from_a_verified_grant() {
    let google = Google::start(3599, ok).await;
    let outcome = google.provider().send(&android("device-token-1")).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("projects/herald-test/messages/0:1".into())
        }
    );
    assert_eq!(google.exchanges(), 1, "the grant verified");
    let sends = google.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].method, "POST");
    assert_eq!(sends[0].header("content-type"), "application/json");
    assert_eq!(
        sends[0].json(),
        json!({"message": {
            "token": "device-token-1",
            "notification": {"title": "Order 42", "body": "Hi Ada", "image": "https://img.example/42.png"},
            "android": {"notification": {"click_action": "https://shop.example/o/42"}},
            "data": {"order": "42", "count": "3", "meta": "{\"a\":true}", "url": "https://shop.example/o/42"}
        }})
    );
}

#[tokio::test]
async fn one_token_serves_many_sends_until_it_nears_expiry() {
    let google = Google::start(3599, ok).await;
    let provider = google.provider();
    for token in ["t-1", "t-2", "t-3"] {
        let outcome = provider.send(&android(token)).await;
        assert!(matches!(outcome, Delivery::Sent { .. }), "{outcome:?}");
    }
    assert_eq!(google.exchanges(), 1, "three sends, one exchange");

    // A token that lives less than the safety margin is never reused.
    let google = Google::start(30, ok).await;
    let provider = google.provider();
    for token in ["t-1", "t-2"] {
        let outcome = provider.send(&android(token)).await;
        assert!(matches!(outcome, Delivery::Sent { .. }), "{outcome:?}");
    }
    assert_eq!(google.exchanges(), 2);
}

#[tokio::test]
async fn a_401_drops_the_token_and_the_send_is_tried_once_more() {
    // FCM refuses the first token it issued (revoked); the second works.
    let google = Google::start(3599, |_, n| {
        if n == 1 {
            Reply::json(
                401,
                json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
            )
        } else {
            sent(n)
        }
    })
    .await;
    let outcome = google.provider().send(&android("t-1")).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("projects/herald-test/messages/0:2".into())
        }
    );
    assert_eq!(google.exchanges(), 2);
    assert_eq!(google.sends().len(), 2);

    // Always 401: tried twice, then a failure that does not blame the identity.
    let google = Google::start(3599, |_, _| {
        Reply::json(
            401,
            json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
        )
    })
    .await;
    let outcome = google.provider().send(&android("t-1")).await;
    assert_failed(&outcome, false);
    assert_eq!(google.sends().len(), 2);
}

fn fcm_error(status: u16, code: &str, message: &str, extra: Vec<Value>) -> Reply {
    let mut details = vec![
        json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}),
    ];
    details.extend(extra);
    let rpc_status = match status {
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        _ => "UNAVAILABLE",
    };
    Reply::json(
        status,
        json!({"error": {"code": status, "message": message, "status": rpc_status, "details": details}}),
    )
}

#[tokio::test]
async fn dead_tokens_mark_the_identity_and_other_errors_do_not() {
    let google = Google::start(3599, |seen, _| {
        let token = seen.json()["message"]["token"].as_str().unwrap().to_owned();
        match token.as_str() {
            "unregistered" => fcm_error(404, "UNREGISTERED", "Requested entity was not found.", vec![]),
            "malformed" => fcm_error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                vec![json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]})],
            ),
            "bad-data" => fcm_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. Unknown name \"from\" at 'message.data'",
                vec![],
            ),
            "other-project" => fcm_error(403, "SENDER_ID_MISMATCH", "SenderId mismatch", vec![]),
            "busy" => fcm_error(429, "QUOTA_EXCEEDED", "Quota exceeded", vec![]).header("retry-after", "7"),
            "down" => fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", vec![]),
            _ => sent(0),
        }
    })
    .await;
    let provider = google.provider();
    let send = |token: &'static str| {
        let provider = &provider;
        async move { provider.send(&android(token)).await }
    };
    let unregistered = send("unregistered").await;
    assert_failed(&unregistered, true);
    assert!(
        format!("{unregistered:?}").contains("UNREGISTERED"),
        "{unregistered:?}"
    );
    assert_failed(&send("malformed").await, true);
    assert_failed(&send("bad-data").await, false);
    assert_failed(&send("other-project").await, false);
    assert_retry(&send("busy").await, Some(Duration::from_secs(7)));
    assert_retry(&send("down").await, None);
    assert!(matches!(send("fine").await, Delivery::Sent { .. }));
    assert_eq!(google.exchanges(), 1);
}

#[tokio::test]
async fn a_refused_grant_fails_without_sending() {
    // Google does not know this account: the fake refuses its assertion.
    let google = Google::start(3599, ok).await;
    let mut account = service_account(&google.fake.base());
    account["client_email"] = json!("stranger@elsewhere.iam.gserviceaccount.com");
    let config: FcmConfig =
        serde_json::from_value(json!({"service_account": account, "endpoint": google.fake.base()}))
            .unwrap();
    let outcome = FcmProvider::new(config, http())
        .unwrap()
        .send(&android("t-1"))
        .await;
    assert_failed(&outcome, false);
    assert!(
        format!("{outcome:?}").contains("invalid_grant"),
        "{outcome:?}"
    );
    assert!(google.sends().is_empty());
}

#[tokio::test]
async fn other_content_and_other_push_services_are_not_sent() {
    let google = Google::start(3599, ok).await;
    let provider = google.provider();
    let wrong = outgoing(Channel::Androidpush, json!("t"), Content::Iospush(push()));
    assert_failed(&provider.send(&wrong).await, false);
    let mut xiaomi = android("t");
    xiaomi.identity.provider = Some("xiaomi".into());
    assert_failed(&provider.send(&xiaomi).await, false);
    // An iOS identity holds an APNs device token unless its id_provider says fcm.
    let apns_token = outgoing(Channel::Iospush, json!("t"), Content::Iospush(push()));
    let outcome = provider.send(&apns_token).await;
    assert_failed(&outcome, false);
    assert!(
        format!("{outcome:?}").contains("fcm does not deliver apns tokens"),
        "{outcome:?}"
    );
    let mut ios_content_on_android = ios("t");
    ios_content_on_android.identity.channel = Channel::Androidpush;
    assert_failed(&provider.send(&ios_content_on_android).await, false);
    assert!(google.fake.seen().is_empty());
}

/// An FCM token of an iOS app (`$iospush` with `id_provider: fcm`).
fn ios(token: &str) -> Outgoing {
    let mut message = outgoing(Channel::Iospush, json!(token), Content::Iospush(push()));
    message.identity.provider = Some("fcm".into());
    message
}

#[tokio::test]
async fn an_ios_fcm_token_gets_the_apns_block() {
    let google = Google::start(3599, ok).await;
    let provider = google.provider();
    let outcome = provider.send(&ios("ios-fcm-token-1")).await;
    assert_eq!(
        outcome,
        Delivery::Sent {
            provider_id: Some("projects/herald-test/messages/0:1".into())
        }
    );
    assert_eq!(google.exchanges(), 1, "the grant verified");
    let sends = google.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].json(),
        json!({"message": {
            "token": "ios-fcm-token-1",
            "notification": {"title": "Order 42", "body": "Hi Ada", "image": "https://img.example/42.png"},
            "apns": {
                "payload": {"aps": {"alert": {"title": "Order 42", "body": "Hi Ada"}, "mutable-content": 1}},
                "fcm_options": {"image": "https://img.example/42.png"}
            },
            "data": {"order": "42", "count": "3", "meta": "{\"a\":true}", "url": "https://shop.example/o/42"}
        }})
    );

    // Without an image: the alert alone, no mutable-content, no fcm_options; no Android block.
    let mut plain = ios("ios-fcm-token-2");
    if let Content::Iospush(push) = &mut plain.content {
        push.image = None;
        push.url = None;
        push.data = None;
    }
    let outcome = provider.send(&plain).await;
    assert!(matches!(outcome, Delivery::Sent { .. }), "{outcome:?}");
    assert_eq!(
        google.sends()[1].json(),
        json!({"message": {
            "token": "ios-fcm-token-2",
            "notification": {"title": "Order 42", "body": "Hi Ada"},
            "apns": {"payload": {"aps": {"alert": {"title": "Order 42", "body": "Hi Ada"}}}}
        }})
    );
    assert_eq!(google.exchanges(), 1, "the access token is shared");
}

#[test]
fn the_config_hides_the_service_account_and_names_bad_fields() {
    let raw =
        json!({"kind": "fcm", "service_account": service_account("https://oauth2.googleapis.com")});
    let config = ProviderConfig::parse(&raw).unwrap();
    assert_eq!(config.kind(), "fcm");
    let view = config.public_view();
    assert_eq!(view["service_account"], "set");
    assert!(!view.to_string().contains("PRIVATE KEY"), "{view}");
    assert!(!format!("{config:?}").contains("PRIVATE KEY"));
    // What the store keeps round-trips, and builds for Android and iOS push (FCM tokens on
    // both), nothing else.
    let stored = serde_json::to_value(&config).unwrap();
    assert_eq!(ProviderConfig::parse(&stored).unwrap(), config);
    let http = http();
    assert!(config.clone().build(Channel::Androidpush, &http).is_ok());
    assert!(config.clone().build(Channel::Iospush, &http).is_ok());
    let err = config.build(Channel::Webpush, &http).err().unwrap();
    assert_eq!(err.field, "kind");
    assert!(err.rule.contains("androidpush, iospush"), "{err}");

    let field_of = |change: &dyn Fn(&mut Value)| {
        let mut raw = raw.clone();
        change(&mut raw);
        match ProviderConfig::parse(&raw) {
            Err(e) => e.field,
            Ok(c) => {
                c.build(Channel::Androidpush, &http)
                    .err()
                    .expect("refused")
                    .field
            }
        }
    };
    assert_eq!(
        field_of(&|r| r["service_account"]["private_key"] =
            json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")),
        "service_account.private_key"
    );
    assert_eq!(
        field_of(&|r| r["service_account"]["project_id"] = json!("a/b")),
        "service_account.project_id"
    );
    assert_eq!(
        field_of(&|r| r["service_account"]["type"] = json!("authorized_user")),
        "service_account.type"
    );
    assert_eq!(
        field_of(&|r| {
            r["service_account"]
                .as_object_mut()
                .unwrap()
                .remove("client_email");
        }),
        "service_account.client_email"
    );
    assert_eq!(field_of(&|r| r["endpoint"] = json!("ftp://x")), "endpoint");
    let err = ProviderConfig::parse(
        &json!({"kind": "fcm", "service_account": raw["service_account"], "extra": 1}),
    )
    .unwrap_err();
    assert!(err.rule.contains("extra"), "{err}");
}
