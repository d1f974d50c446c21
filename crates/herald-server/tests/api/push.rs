//! Push end to end through the real server: FCM and APNs configured with `PUT /v1/provider/…`
//! and pointed at a local fake (Google's token endpoint and FCM over HTTP/1.1, APNs over h2c),
//! a workflow with push templates triggered for users with `$androidpush` / `$iospush`
//! identities, the worker driven, and a token APNs calls gone skipped on the next trigger. An
//! iOS user with an FCM token (`id_provider: fcm`) is reached through FCM, an APNs one through
//! APNs, and neither kind of token ever reaches the other service.
//! Web push the same way: a `vapid` provider with a fresh key pair, a `$webpush` subscription
//! whose private key the test holds as the browser would, a local push service that records the
//! request; the test checks the VAPID token and decrypts the body. A subscription the push
//! service calls gone (410) is skipped on the next trigger.
//! (Each protocol's wire checks — signatures, claims, every error — are in herald-channels'
//! provider tests.)

use crate::harness::TestApp;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use herald_core::message::{Message, MessageStatus};
use herald_core::store::MessageQuery;
use herald_core::{Env, EnvScope};
use herald_server::worker;
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, hkdf, signature};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// The throwaway RSA key of herald-channels' FCM tests (PKCS#8).
const FCM_KEY: &str =
    include_str!("../../../herald-channels/tests/providers/keys/fcm_service_account.pem");
const ACCESS_TOKEN: &str = "ya29.e2e-token";
const SEND_PATH: &str = "/v1/projects/herald-e2e/messages:send";

/// One request the fake took: path, HTTP version, `apns-topic`, JSON body.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    version: Version,
    topic: Option<String>,
    body: Value,
}

#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Fake {
    /// Serves HTTP/1.1 and h2c (axum detects the HTTP/2 preface) on 127.0.0.1.
    async fn start() -> (Fake, String) {
        let fake = Fake::default();
        let router = axum::Router::new()
            .fallback(answer)
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (fake, base)
    }

    fn calls(&self, prefix: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

async fn answer(State(fake): State<Fake>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let version = request.version();
    let topic = request
        .headers()
        .get("apns-topic")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    fake.calls.lock().unwrap().push(Call {
        path: path.clone(),
        version,
        topic,
        body,
    });
    if path == "/token" {
        let form = String::from_utf8_lossy(&bytes).into_owned();
        if !form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
        return Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3599})).into_response();
    }
    if path == SEND_PATH {
        if bearer != format!("Bearer {ACCESS_TOKEN}") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        return Json(json!({"name": "projects/herald-e2e/messages/0:1"})).into_response();
    }
    if let Some(device) = path.strip_prefix("/3/device/") {
        if version != Version::HTTP_2 || !bearer.starts_with("bearer ") {
            return StatusCode::HTTP_VERSION_NOT_SUPPORTED.into_response();
        }
        if device == "gone" {
            return (StatusCode::GONE, Json(json!({"reason": "Unregistered"}))).into_response();
        }
        return ([("apns-id", "7a4e6f7a-0000-4000-8000-000000000001")], "").into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

async fn messages(app: &TestApp) -> Vec<Message> {
    let query = MessageQuery {
        limit: 100,
        ..MessageQuery::default()
    };
    let mut list = app
        .store
        .list_messages(EnvScope::operator(Env::Test), &query)
        .await
        .unwrap()
        .messages;
    list.sort_by_key(|m| m.created_at);
    list
}

/// `(distinct_id, channel, status, reason)` of each message of `trigger`, sorted.
fn summary(list: &[Message]) -> Vec<(String, &'static str, MessageStatus, Option<String>)> {
    let mut out: Vec<_> = list
        .iter()
        .map(|m| {
            (
                m.distinct_id.to_string(),
                m.channel.as_str(),
                m.status,
                m.reason.clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

#[tokio::test]
async fn push_workflows_reach_fcm_and_apns_and_a_dead_token_is_skipped_next_time() {
    let (fake, base) = Fake::start().await;
    let app = TestApp::spawn().await;

    let fcm = json!({"kind": "fcm", "endpoint": base, "service_account": {
        "type": "service_account", "project_id": "herald-e2e", "private_key_id": "k1",
        "private_key": FCM_KEY, "client_email": "herald@herald-e2e.iam.gserviceaccount.com",
        "token_uri": format!("{base}/token"), "client_id": "1"
    }});
    let view = app
        .call("PUT", "/v1/provider/androidpush/", Some(fcm))
        .await
        .expect(201);
    assert_eq!(view["kind"], "fcm");
    assert_eq!(view["service_account"], "set", "{view}");
    let p8 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let apns = json!({"kind": "apns", "team_id": "TEAM123456", "key_id": "KEY7654321",
        "private_key": p8, "bundle_id": "com.example.herald", "environment": "sandbox", "endpoint": base});
    let view = app
        .call("PUT", "/v1/provider/iospush/", Some(apns))
        .await
        .expect(201);
    assert_eq!(view["private_key"], "set", "{view}");
    assert!(!view.to_string().contains("PRIVATE KEY"));

    let push = json!({"title": "Order {{order}}", "body": "Hi {{$recipient.name}}",
        "data": {"order": "{{order}}"}, "action": "https://shop.example/o/{{order}}"});
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({"slug": "shipped", "channels": {"androidpush": push, "iospush": push}})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Ada", "$androidpush": ["fcm-ada"], "$iospush": ["ios-ada"]})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/bob/",
        Some(json!({"name": "Bob", "$iospush": ["gone"]})),
    )
    .await
    .expect(201);

    let trigger =
        json!({"workflow": "shipped", "recipients": ["ada", "bob"], "data": {"order": "42"}});
    app.call("POST", "/trigger/", Some(trigger.clone()))
        .await
        .expect(202);
    assert_eq!(worker::drain(&app.app).await, 3);
    let list = messages(&app).await;
    let outcome = summary(&list);
    assert_eq!(
        outcome
            .iter()
            .map(|(id, channel, status, _)| (id.as_str(), *channel, *status))
            .collect::<Vec<_>>(),
        vec![
            ("ada", "androidpush", MessageStatus::Sent),
            ("ada", "iospush", MessageStatus::Sent),
            ("bob", "androidpush", MessageStatus::Skipped),
            ("bob", "iospush", MessageStatus::Failed),
        ],
        "{outcome:?}"
    );
    assert!(
        outcome[3]
            .3
            .as_deref()
            .unwrap_or_default()
            .contains("Unregistered"),
        "{outcome:?}"
    );
    let sent: Vec<_> = list
        .iter()
        .filter(|m| m.status == MessageStatus::Sent)
        .collect();
    assert!(sent
        .iter()
        .any(|m| m.provider_id.as_deref() == Some("projects/herald-e2e/messages/0:1")));
    assert!(sent
        .iter()
        .any(|m| m.provider_id.as_deref() == Some("7a4e6f7a-0000-4000-8000-000000000001")));

    // What the fakes saw: one token exchange, the rendered notification on each service.
    assert_eq!(fake.calls("/token").len(), 1);
    let fcm = fake.calls(SEND_PATH);
    assert_eq!(fcm.len(), 1);
    let message = &fcm[0].body["message"];
    assert_eq!(message["token"], "fcm-ada");
    assert_eq!(
        message["notification"],
        json!({"title": "Order 42", "body": "Hi Ada"})
    );
    assert_eq!(message["data"]["order"], "42");
    assert_eq!(message["data"]["url"], "https://shop.example/o/42");
    let apns = fake.calls("/3/device/");
    assert_eq!(apns.len(), 2);
    for call in &apns {
        assert_eq!(call.version, Version::HTTP_2);
        assert_eq!(call.topic.as_deref(), Some("com.example.herald"));
        assert_eq!(call.body["aps"]["alert"]["title"], "Order 42");
        assert_eq!(call.body["url"], "https://shop.example/o/42");
    }
    let ada = apns.iter().find(|c| c.path == "/3/device/ios-ada").unwrap();
    assert_eq!(ada.body["aps"]["alert"]["body"], "Hi Ada");

    // APNs called bob's token gone: the identity is marked, and the next trigger skips it.
    let bob = app.user("bob").await;
    assert_ne!(bob["$iospush"][0]["perma_status"], "active", "{bob}");
    app.call("POST", "/trigger/", Some(trigger))
        .await
        .expect(202);
    assert_eq!(worker::drain(&app.app).await, 2, "ada's two only");
    let list = messages(&app).await;
    let bob_ios: Vec<_> = list
        .iter()
        .filter(|m| m.distinct_id.to_string() == "bob" && m.channel.as_str() == "iospush")
        .collect();
    assert_eq!(bob_ios.len(), 2);
    let latest = bob_ios.iter().max_by_key(|m| m.created_at).unwrap();
    assert_eq!(latest.status, MessageStatus::Skipped);
    assert_eq!(latest.reason.as_deref(), Some("identity_invalid"));
    assert_eq!(
        fake.calls("/3/device/gone").len(),
        1,
        "the dead token was not tried again"
    );
    assert_eq!(fake.calls("/token").len(), 1, "the access token was kept");
}

/// The FCM provider config of the e2e project, its endpoint and token URI on the fake at `base`.
fn fcm_config(base: &str) -> Value {
    json!({"kind": "fcm", "endpoint": base, "service_account": {
        "type": "service_account", "project_id": "herald-e2e", "private_key_id": "k1",
        "private_key": FCM_KEY, "client_email": "herald@herald-e2e.iam.gserviceaccount.com",
        "token_uri": format!("{base}/token"), "client_id": "1"
    }})
}

/// The latest message of `user` on iospush.
fn latest_ios<'a>(list: &'a [Message], user: &str) -> &'a Message {
    list.iter()
        .filter(|m| m.distinct_id.to_string() == user && m.channel.as_str() == "iospush")
        .max_by_key(|m| m.created_at)
        .unwrap_or_else(|| panic!("no iospush message for {user}"))
}

/// An iOS app using Firebase registers FCM tokens: an `$iospush` identity with `id_provider: fcm`
/// is reached through the FCM provider (the one on `androidpush` when `iospush` holds APNs),
/// with an `apns` block, while APNs tokens still go to APNs. With FCM on `iospush` instead, an
/// APNs token is skipped `provider_mismatch` and left active: never sent to FCM.
#[tokio::test]
async fn an_ios_fcm_token_goes_through_fcm_and_an_apns_token_never_does() {
    let (fake, base) = Fake::start().await;
    let app = TestApp::spawn().await;
    app.call("PUT", "/v1/provider/androidpush/", Some(fcm_config(&base)))
        .await
        .expect(201);
    let p8 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let apns = json!({"kind": "apns", "team_id": "TEAM123456", "key_id": "KEY7654321",
        "private_key": p8, "bundle_id": "com.example.herald", "endpoint": base});
    app.call("PUT", "/v1/provider/iospush/", Some(apns))
        .await
        .expect(201);
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({"slug": "shipped", "channels": {"iospush": {
            "title": "Order {{order}}", "body": "Hi {{$recipient.name}}",
            "image": "https://shop.example/img/{{order}}.png"}}})),
    )
    .await
    .expect(201);
    // ivy's app uses Firebase: her token comes with $id_provider fcm, as the SDKs send it.
    app.call(
        "POST",
        "/v1/user/ivy/",
        Some(json!({"name": "Ivy", "$iospush": [{"token": "fcm-ivy", "id_provider": "fcm"}]})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Ada", "$iospush": ["ios-ada"]})),
    )
    .await
    .expect(201);
    assert_eq!(
        app.user("ivy").await["$iospush"][0]["id_provider"],
        "fcm",
        "the identity keeps its provider"
    );

    let trigger =
        json!({"workflow": "shipped", "recipients": ["ivy", "ada"], "data": {"order": "7"}});
    app.call("POST", "/trigger/", Some(trigger.clone()))
        .await
        .expect(202);
    assert_eq!(worker::drain(&app.app).await, 2);
    let list = messages(&app).await;
    for user in ["ivy", "ada"] {
        let m = latest_ios(&list, user);
        assert_eq!(m.status, MessageStatus::Sent, "{user}: {m:?}");
    }
    assert_eq!(
        latest_ios(&list, "ivy").provider_id.as_deref(),
        Some("projects/herald-e2e/messages/0:1")
    );
    let fcm = fake.calls(SEND_PATH);
    assert_eq!(fcm.len(), 1, "ivy's token only");
    let message = &fcm[0].body["message"];
    assert_eq!(message["token"], "fcm-ivy");
    assert_eq!(
        message["apns"],
        json!({"payload": {"aps": {"alert": {"title": "Order 7", "body": "Hi Ivy"}, "mutable-content": 1}},
               "fcm_options": {"image": "https://shop.example/img/7.png"}})
    );
    assert!(message.get("android").is_none(), "{message}");
    let apns: Vec<String> = fake
        .calls("/3/device/")
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(apns, ["/3/device/ios-ada"], "ada's APNs token only");

    // FCM on iospush instead of APNs: ivy is reached through it; ada's APNs token has no
    // provider of its kind, so it is skipped, never sent to FCM, and stays active.
    let view = app
        .call("PUT", "/v1/provider/iospush/", Some(fcm_config(&base)))
        .await
        .expect(200);
    assert_eq!(view["kind"], "fcm");
    app.call("DELETE", "/v1/provider/androidpush/", None)
        .await
        .expect(204);
    app.call("POST", "/trigger/", Some(trigger))
        .await
        .expect(202);
    assert_eq!(worker::drain(&app.app).await, 1, "ivy's only");
    let list = messages(&app).await;
    let ivy = latest_ios(&list, "ivy");
    assert_eq!(ivy.status, MessageStatus::Sent, "{ivy:?}");
    let ada = latest_ios(&list, "ada");
    assert_eq!(ada.status, MessageStatus::Skipped, "{ada:?}");
    assert_eq!(ada.reason.as_deref(), Some("provider_mismatch"));
    let fcm = fake.calls(SEND_PATH);
    assert_eq!(
        fcm.iter()
            .map(|c| &c.body["message"]["token"])
            .collect::<Vec<_>>(),
        ["fcm-ivy", "fcm-ivy"]
    );
    assert_eq!(
        fake.calls("/3/device/").len(),
        1,
        "APNs was not called again"
    );
    let ada = app.user("ada").await;
    assert_eq!(ada["$iospush"][0]["perma_status"], "active", "{ada}");
}

/// A browser's side of a web push subscription: its P-256 key pair (the private half kept until
/// the one message is decrypted) and its 16-byte auth secret. (The decryption is herald-channels'
/// provider test's, read from the receiving end of RFC 8291 §3.4 / RFC 8188 §2.)
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

    /// The plaintext of an `aes128gcm` body: the header (salt, record size, the sender's
    /// ephemeral key), the ECDH secret with it, the key and nonce, one record and its delimiter.
    fn decrypt(self, body: &[u8]) -> Vec<u8> {
        let salt = &body[..16];
        assert_eq!(u32::from_be_bytes(body[16..20].try_into().unwrap()), 4096);
        assert_eq!(
            body[20], 65,
            "keyid is the sender's uncompressed public key"
        );
        let as_public = &body[21..86];
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
        let mut record = body[86..].to_vec();
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

/// The claims of `Authorization: vapid t=<jwt>, k=<key>` once a push service's checks pass
/// (RFC 8292 §3, §4.2): `k` is `public_key`, and the JWT is ES256 and signed by it.
#[track_caller]
fn vapid_claims(authorization: &str, public_key: &str) -> Value {
    let rest = authorization
        .strip_prefix("vapid ")
        .unwrap_or_else(|| panic!("not a vapid authorization: {authorization}"));
    let part = |prefix: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {authorization}"))
    };
    let (token, key) = (part("t="), part("k="));
    assert_eq!(key, public_key, "k is the configured public key");
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        URL_SAFE_NO_PAD.decode(public_key).unwrap(),
    )
    .verify(
        signing_input.as_bytes(),
        &URL_SAFE_NO_PAD.decode(sig).unwrap(),
    )
    .expect("the VAPID token's ES256 signature verifies with the configured public key");
    let (header, claims) = signing_input.split_once('.').unwrap();
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(decode(header)["alg"], "ES256");
    decode(claims)
}

/// One request the web push fake took.
#[derive(Debug, Clone)]
struct Posted {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

type Inbox = Arc<Mutex<Vec<Posted>>>;

const PUSH_LOCATION: &str = "https://push.example/m/0042";

/// A push service on 127.0.0.1 that records every request and answers each with `status`
/// (a success with a `Location`).
async fn push_service(status: StatusCode) -> (Inbox, String) {
    let posted: Inbox = Arc::default();
    let router = axum::Router::new()
        .fallback(
            move |State(posted): State<Inbox>, request: Request| async move {
                let path = request.uri().path().to_owned();
                let headers = request.headers().clone();
                let body = axum::body::to_bytes(request.into_body(), 1 << 16)
                    .await
                    .unwrap()
                    .to_vec();
                posted.lock().unwrap().push(Posted {
                    path,
                    headers,
                    body,
                });
                if status.is_success() {
                    (status, [("location", PUSH_LOCATION)]).into_response()
                } else {
                    status.into_response()
                }
            },
        )
        .with_state(posted.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (posted, base)
}

/// A `vapid` provider with a fresh key pair, as `herald vapid-keys` makes one; its public key.
async fn vapid_provider(app: &TestApp) -> String {
    let (public_key, private_key) = herald_channels::webpush::generate_vapid_keys().unwrap();
    let view = app
        .call(
            "PUT",
            "/v1/provider/webpush/",
            Some(json!({"kind": "vapid", "subject": "mailto:ops@example.com",
                "public_key": public_key, "private_key": private_key, "ttl": 600})),
        )
        .await
        .expect(201);
    assert_eq!(view["kind"], "vapid", "{view}");
    assert_eq!(view["public_key"], public_key.as_str(), "{view}");
    assert_eq!(view["private_key"], "set", "{view}");
    assert!(!view.to_string().contains("PRIVATE KEY"), "{view}");
    public_key
}

/// The `shipped` workflow on web push, and ada subscribed at `endpoint` with `browser`'s keys.
async fn webpush_workflow_and_user(app: &TestApp, browser: &Browser, endpoint: &str) {
    let template = json!({"title": "Order {{order}}", "body": "Hi {{$recipient.name}}",
        "data": {"order": "{{order}}", "screen": "orders"}, "url": "https://shop.example/o/{{order}}"});
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({"slug": "shipped", "channels": {"webpush": template}})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Ada", "$webpush": [browser.subscription(endpoint)]})),
    )
    .await
    .expect(201);
}

/// Triggers `shipped` for ada, runs the worker, and returns her newest web push message.
async fn trigger_webpush(app: &TestApp) -> Value {
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": "shipped", "recipients": ["ada"], "data": {"order": "42"}})),
    )
    .await
    .expect(202);
    worker::drain(&app.app).await;
    let log = app
        .call("GET", "/v1/user/ada/message/", None)
        .await
        .expect(200);
    log["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["channel"] == "webpush")
        .unwrap_or_else(|| panic!("no webpush message in {log}"))
        .clone()
}

#[tokio::test]
async fn web_push_is_encrypted_for_the_subscription_and_signed_for_its_push_service() {
    let (posted, base) = push_service(StatusCode::CREATED).await;
    let app = TestApp::spawn().await;
    let public_key = vapid_provider(&app).await;
    let browser = Browser::new();
    let endpoint = format!("{base}/push/v2/sub-ada");
    webpush_workflow_and_user(&app, &browser, &endpoint).await;

    let message = trigger_webpush(&app).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["provider_id"], PUSH_LOCATION, "{message}");

    let posted = posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let request = posted.into_iter().next().unwrap();
    assert_eq!(request.path, "/push/v2/sub-ada");
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-encoding"), "aes128gcm");
    assert_eq!(header("ttl"), "600");
    let claims = vapid_claims(&header("authorization"), &public_key);
    assert_eq!(claims["aud"], base, "the audience is the endpoint's origin");
    assert_eq!(claims["sub"], "mailto:ops@example.com");
    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > now && exp <= now + 24 * 3600, "{claims}");

    let plaintext = browser.decrypt(&request.body);
    assert_eq!(
        serde_json::from_slice::<Value>(&plaintext).unwrap(),
        json!({"title": "Order 42", "body": "Hi Ada",
            "data": {"order": "42", "screen": "orders"}, "url": "https://shop.example/o/42"})
    );
}

#[tokio::test]
async fn a_subscription_the_push_service_calls_gone_is_marked_and_skipped_next_time() {
    let (posted, base) = push_service(StatusCode::GONE).await;
    let app = TestApp::spawn().await;
    vapid_provider(&app).await;
    let endpoint = format!("{base}/push/v2/sub-gone");
    webpush_workflow_and_user(&app, &Browser::new(), &endpoint).await;
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);

    let first = trigger_webpush(&app).await;
    assert_eq!(first["status"], "failed", "{first}");
    assert!(
        first["reason"].as_str().unwrap_or_default().contains("410"),
        "{first}"
    );
    assert_eq!(posted.lock().unwrap().len(), 1);
    let user = app.user("ada").await;
    let identity = &user["$webpush"][0];
    assert_eq!(identity["value"]["endpoint"], endpoint, "{user}");
    assert_eq!(identity["perma_status"], "invalid", "{user}");
    let reason = identity["perma_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("410") && reason.contains("subscription is gone"),
        "{identity}"
    );
    let at = chrono::DateTime::parse_from_rfc3339(identity["perma_at"].as_str().unwrap()).unwrap();
    assert!(at >= before && at <= chrono::Utc::now(), "{identity}");

    let second = trigger_webpush(&app).await;
    assert_ne!(second["message_id"], first["message_id"], "{second}");
    assert_eq!(
        (&second["status"], &second["reason"]),
        (&json!("skipped"), &json!("identity_invalid")),
        "{second}"
    );
    assert_eq!(
        posted.lock().unwrap().len(),
        1,
        "the gone subscription was not posted to again"
    );
}
