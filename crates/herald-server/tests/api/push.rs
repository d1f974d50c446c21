//! Push end to end through the real server: FCM and APNs configured with `PUT /v1/provider/…`
//! and pointed at a local fake (Google's token endpoint and FCM over HTTP/1.1, APNs over h2c),
//! a workflow with push templates triggered for users with `$androidpush` / `$iospush`
//! identities, the worker driven, and a token APNs calls gone skipped on the next trigger.
//! (Each protocol's wire checks — signatures, claims, every error — are in herald-channels'
//! provider tests.)

use crate::harness::TestApp;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::message::{Message, MessageStatus};
use herald_core::store::MessageQuery;
use herald_core::{Env, EnvScope};
use herald_server::worker;
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
