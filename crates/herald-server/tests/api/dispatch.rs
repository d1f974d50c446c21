//! The dispatch worker and the message log: messages enqueued in the store are sent by a real
//! provider (Discord webhooks) to a local fake, retried, failed, and shown by `/v1/message/`.

use crate::harness::TestApp;
use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_channels::discord::{DiscordConfig, DiscordProvider};
use herald_channels::http::{Http, OutboundConfig};
use herald_core::channel::{Channel, Identity};
use herald_core::delivery::{Configured, Content, Directory, Provider};
use herald_core::message::{Message, MessageOrigin, SkipReason};
use herald_core::store::{NewMessage, StoreError};
use herald_core::{DistinctId, Env, EnvScope};
use herald_server::worker;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const HOOK: &str = "https://discord.com/api/webhooks/42/tok-ada";

/// A Discord webhook fake: records each request (path and query, JSON body) and answers with
/// the next scripted status (200 with a message id once the script is spent).
#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Fake {
    async fn start(script: &[u16]) -> (Fake, String) {
        let fake = Fake::default();
        fake.script.lock().unwrap().extend(script);
        let router = axum::Router::new()
            .fallback(answer)
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (fake, base)
    }

    fn seen(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(State(fake): State<Fake>, request: Request) -> Response {
    let target = request.uri().to_string();
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let n = {
        let mut seen = fake.seen.lock().unwrap();
        seen.push((target, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        seen.len()
    };
    let status = fake.script.lock().unwrap().pop_front().unwrap_or(200);
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let body = match status.as_u16() {
        200 => json!({"id": format!("discord-{n}")}),
        404 => json!({"message": "Unknown Webhook", "code": 10015}),
        _ => json!({"message": "try later"}),
    };
    (status, axum::Json(body)).into_response()
}

/// Discord identities go to the fake; nothing else has a provider.
struct FakeDirectory(Arc<DiscordProvider>);

#[async_trait]
impl Directory for FakeDirectory {
    async fn configured(&self, _: Env) -> Result<Configured, StoreError> {
        Ok(Configured::from([(Channel::Discord, "discord".to_owned())]))
    }

    async fn provider(
        &self,
        _: Env,
        identity: &Identity,
    ) -> Result<Option<Arc<dyn Provider>>, StoreError> {
        Ok((identity.channel == Channel::Discord).then(|| self.0.clone() as Arc<dyn Provider>))
    }
}

/// An app whose Discord sends reach a fake answering `script`, with user `ada` (test and live)
/// holding the webhook [`HOOK`] and an email address.
async fn spawn(script: &[u16]) -> (TestApp, Fake) {
    let (fake, base) = Fake::start(script).await;
    let http = Http::new(&OutboundConfig {
        allow_private: true,
        ..OutboundConfig::default()
    })
    .unwrap();
    let discord = DiscordProvider::new(
        DiscordConfig {
            base_url: Some(base),
        },
        http,
    )
    .unwrap();
    let app =
        TestApp::spawn_with_directory(Arc::new(FakeDirectory(Arc::new(discord))), |_| {}).await;
    for env in [Env::Test, Env::Live] {
        app.call_in(
            env,
            "POST",
            "/v1/user/ada/",
            Some(json!({"$discord": [HOOK], "$email": ["ada@example.com"]})),
        )
        .await
        .expect(201);
    }
    (app, fake)
}

/// Enqueues one message to ada on `channel` in `env`, as the trigger does; returns its id.
async fn enqueue(app: &TestApp, env: Env, id: &str, channel: Channel) -> String {
    let (raw, content) = match channel {
        Channel::Discord => (
            json!(HOOK),
            Content::Discord {
                content: format!("Hello Ada ({id})"),
                embeds: None,
            },
        ),
        _ => (
            json!("ada@example.com"),
            Content::Email {
                subject: "Hi".into(),
                html: None,
                text: Some("Hello".into()),
            },
        ),
    };
    let identity = Identity::parse(channel, &raw, &Default::default()).unwrap();
    let origin = MessageOrigin {
        id: id.into(),
        env,
        workflow: "welcome".into(),
        category: Some("news".into()),
        distinct_id: DistinctId::parse("ada").unwrap(),
        channel,
        trigger_id: format!("t-{id}"),
        idempotency_key: None,
    };
    let message = NewMessage {
        message: Message::queued(origin, identity, Utc::now()),
        content: Some(content),
        waits_for: None,
        gate: None,
    };
    app.store
        .enqueue(EnvScope::operator(env), vec![message], None)
        .await
        .expect("enqueued");
    id.to_owned()
}

async fn message(app: &TestApp, env: Env, id: &str) -> Value {
    app.call_in(env, "GET", &format!("/v1/message/{id}/"), None)
        .await
        .expect(200)
}

fn statuses(m: &Value) -> Vec<&str> {
    m["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_message_is_sent_once_and_shown_in_the_log() {
    let (app, fake) = spawn(&[]).await;
    let id = enqueue(&app, Env::Test, "m-1", Channel::Discord).await;
    assert_eq!(worker::drain(&app.app).await, 1);
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "/api/webhooks/42/tok-ada?wait=true");
    assert_eq!(seen[0].1, json!({"content": "Hello Ada (m-1)"}));

    let m = message(&app, Env::Test, &id).await;
    assert_eq!(m["status"], "sent");
    assert_eq!(m["provider_id"], "discord-1");
    assert_eq!(m["channel"], "discord");
    assert_eq!(m["identity"]["value"], HOOK);
    assert_eq!(m["recipient"]["distinct_id"], "ada");
    assert_eq!(statuses(&m), ["queued", "sent"]);
    assert!(m["sent_at"].is_string());

    let mine = app
        .call("GET", "/v1/user/ada/message/", None)
        .await
        .expect(200);
    assert_eq!(mine["results"][0]["message_id"], id);
    let all = app
        .call(
            "GET",
            "/v1/message/?recipient_id%5B%5D=ada&status=sent&channel=discord",
            None,
        )
        .await
        .expect(200);
    assert_eq!(all["meta"]["count"], 1);
    assert_eq!(all["results"][0]["message_id"], id);
    let none = app
        .call("GET", "/v1/message/?status=failed", None)
        .await
        .expect(200);
    assert_eq!(none["meta"]["count"], 0);

    // Never twice: nothing is due any more, now or much later.
    assert_eq!(worker::drain(&app.app).await, 0);
    let later = Utc::now() + chrono::TimeDelta::days(1);
    assert_eq!(worker::drain_at(&app.app, later).await, 0);
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn a_503_is_retried_after_the_backoff_and_sent_once() {
    let (app, fake) = spawn(&[503]).await;
    let id = enqueue(&app, Env::Test, "m-retry", Channel::Discord).await;
    assert_eq!(worker::drain(&app.app).await, 1);
    let m = message(&app, Env::Test, &id).await;
    assert_eq!(m["status"], "queued");
    assert_eq!(m["attempts"], 1);
    assert!(m["reason"].as_str().unwrap().contains("503"), "{m}");
    // Not due before the first backoff (10 s)...
    assert_eq!(worker::drain(&app.app).await, 0);
    assert_eq!(fake.seen().len(), 1);
    // ...and due after it.
    let after = Utc::now() + chrono::TimeDelta::seconds(11);
    assert_eq!(worker::drain_at(&app.app, after).await, 1);
    let m = message(&app, Env::Test, &id).await;
    assert_eq!(m["status"], "sent");
    assert_eq!(m["provider_id"], "discord-2");
    assert_eq!(statuses(&m), ["queued", "queued", "sent"]);
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn retries_are_spent_then_the_message_fails() {
    let (app, fake) = spawn(&[503; 10]).await;
    let id = enqueue(&app, Env::Test, "m-spent", Channel::Discord).await;
    let mut now = Utc::now();
    for _ in 0..10 {
        worker::drain_at(&app.app, now).await;
        now += chrono::TimeDelta::hours(1);
    }
    // The first call and one retry per backoff entry (four by default).
    assert_eq!(fake.seen().len(), 5);
    let m = message(&app, Env::Test, &id).await;
    assert_eq!(m["status"], "failed");
    assert!(m["failure_reason"].as_str().unwrap().contains("503"), "{m}");
}

#[tokio::test]
async fn a_dead_webhook_fails_and_marks_the_identity_invalid() {
    let (app, fake) = spawn(&[404]).await;
    let id = enqueue(&app, Env::Test, "m-dead", Channel::Discord).await;
    assert_eq!(worker::drain(&app.app).await, 1);
    assert_eq!(fake.seen().len(), 1);
    let m = message(&app, Env::Test, &id).await;
    assert_eq!(m["status"], "failed");
    assert!(m["failure_reason"].is_string(), "{m}");

    let user = app.user("ada").await;
    let dead = &user["$discord"][0];
    assert_eq!(dead["perma_status"], "invalid", "{user}");
    assert!(
        dead["perma_reason"]
            .as_str()
            .unwrap()
            .starts_with("discord answered 404"),
        "{user}"
    );
    assert!(dead["perma_at"].is_string(), "{user}");
    assert_eq!(user["$email"][0]["perma_status"], "active", "{user}");
    assert!(user["$email"][0].get("perma_reason").is_none(), "{user}");
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    let last = &history["results"][0];
    assert_eq!(last["actor"]["kind"], "dispatch", "{last}");
    let change = &last["request"]["$perma_status"];
    assert_eq!(
        (&change["channel"], &change["status"], &change["value"]),
        (&json!("discord"), &json!("invalid"), &dead["value"]),
        "{last}"
    );
    assert_eq!(change["reason"], dead["perma_reason"], "{last}");
    // Live's ada is another profile: untouched.
    let live = app
        .call_in(Env::Live, "GET", "/v1/user/ada/", None)
        .await
        .expect(200);
    assert_eq!(live["$discord"][0]["perma_status"], "active");
}

#[tokio::test]
async fn a_channel_without_a_provider_fails_as_no_provider() {
    let (app, fake) = spawn(&[]).await;
    let id = enqueue(&app, Env::Test, "m-email", Channel::Email).await;
    assert_eq!(worker::drain(&app.app).await, 1);
    let m = message(&app, Env::Test, &id).await;
    assert_eq!(m["status"], "failed");
    assert_eq!(m["reason"], "no_provider");
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn test_and_live_logs_never_cross() {
    let (app, _fake) = spawn(&[]).await;
    let test_id = enqueue(&app, Env::Test, "m-test", Channel::Discord).await;
    let live_id = enqueue(&app, Env::Live, "m-live", Channel::Discord).await;
    assert_eq!(worker::drain(&app.app).await, 2);
    for (env, mine, theirs) in [
        (Env::Test, &test_id, &live_id),
        (Env::Live, &live_id, &test_id),
    ] {
        let list = app
            .call_in(env, "GET", "/v1/message/", None)
            .await
            .expect(200);
        let ids: Vec<_> = list["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [mine.as_str()]);
        let user = app
            .call_in(env, "GET", "/v1/user/ada/message/", None)
            .await
            .expect(200);
        assert_eq!(user["meta"]["count"], 1);
        app.call_in(env, "GET", &format!("/v1/message/{theirs}/"), None)
            .await
            .expect_error(404, None);
    }
}

#[tokio::test]
async fn claims_released_at_shutdown_are_sent_later() {
    let (app, fake) = spawn(&[]).await;
    let id = enqueue(&app, Env::Test, "m-released", Channel::Discord).await;
    let stopping = herald_server::tasks::CancellationToken::new();
    stopping.cancel();
    let claimed = worker::step_until(&app.app, Utc::now(), &stopping)
        .await
        .unwrap();
    assert_eq!(claimed, 1);
    assert!(
        fake.seen().is_empty(),
        "nothing is sent once shutdown began"
    );
    assert_eq!(message(&app, Env::Test, &id).await["status"], "queued");
    // Released, not leased: due again at once, not after the lease.
    assert_eq!(worker::drain(&app.app).await, 1);
    assert_eq!(fake.seen().len(), 1);
    assert_eq!(message(&app, Env::Test, &id).await["status"], "sent");
}

#[tokio::test]
async fn the_log_refuses_bad_filters_naming_them() {
    let (app, _fake) = spawn(&[]).await;
    for (query, field) in [
        ("status=done", "status"),
        ("channel=fax", "channel"),
        ("limit=0", "limit"),
        ("after=x", "after"),
        ("created_at_gte=yesterday", "created_at_gte"),
        ("channel=email&channel=sms", "channel"),
        ("recipient_id=a&recipient_id=%00", "recipient_id"),
    ] {
        app.call("GET", &format!("/v1/message/?{query}"), None)
            .await
            .expect_error(400, Some(field));
    }
}

/// Records a skipped message to `user` on `channel` in `env` (no provider involved).
async fn skipped(app: &TestApp, env: Env, id: &str, user: &str, channel: Channel) {
    let origin = MessageOrigin {
        id: id.into(),
        env,
        workflow: "welcome".into(),
        category: None,
        distinct_id: DistinctId::parse(user).unwrap(),
        channel,
        trigger_id: format!("t-{id}"),
        idempotency_key: None,
    };
    let message = NewMessage {
        message: Message::skipped(origin, SkipReason::NoIdentity, Utc::now()),
        content: None,
        waits_for: None,
        gate: None,
    };
    app.store
        .enqueue(EnvScope::operator(env), vec![message], None)
        .await
        .expect("enqueued");
}

#[tokio::test]
async fn the_log_lists_several_recipients_at_once() {
    let (app, _fake) = spawn(&[]).await;
    for (id, user, channel) in [
        ("s1", "ada", Channel::Email),
        ("s2", "bob", Channel::Sms),
        ("s3", "cy", Channel::Email),
        ("s4", "ada", Channel::Sms),
        ("s5", "bob", Channel::Email),
    ] {
        skipped(&app, Env::Test, id, user, channel).await;
    }
    skipped(&app, Env::Live, "l1", "bob", Channel::Email).await;
    let ids = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |env: Env, query: &'static str| {
        let app = &app;
        async move {
            app.call_in(env, "GET", &format!("/v1/message/?{query}"), None)
                .await
                .expect(200)
        }
    };
    // The SDK's form (brackets percent-encoded), any of the ids, newest first.
    let both = list(Env::Test, "recipient_id%5B%5D=ada&recipient_id%5B%5D=bob").await;
    assert_eq!(ids(&both), ["s5", "s4", "s2", "s1"], "{both}");
    // AND with the other filters; a repeated id counts once; no brackets works too.
    let sms = list(
        Env::Test,
        "recipient_id=ada&recipient_id=bob&recipient_id=ada&channel=sms",
    )
    .await;
    assert_eq!(ids(&sms), ["s4", "s2"], "{sms}");
    // Paging through several recipients visits each message once.
    let first = list(Env::Test, "recipient_id=cy&recipient_id=bob&limit=2").await;
    assert_eq!(ids(&first), ["s5", "s3"]);
    let after = first["meta"]["after"].as_str().unwrap().to_owned();
    let rest = app
        .call(
            "GET",
            &format!("/v1/message/?recipient_id=cy&recipient_id=bob&limit=2&after={after}"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&rest), ["s2"]);
    // Never another environment's.
    let live = list(Env::Live, "recipient_id=ada&recipient_id=bob").await;
    assert_eq!(ids(&live), ["l1"]);

    // Up to 100 distinct ids; the same id repeated is one.
    let hundred: Vec<String> = (0..99)
        .map(|i| format!("recipient_id=u{i}"))
        .chain(["recipient_id=bob".to_owned()])
        .collect();
    let page = app
        .call("GET", &format!("/v1/message/?{}", hundred.join("&")), None)
        .await
        .expect(200);
    assert_eq!(ids(&page), ["s5", "s2"]);
    let repeated = vec!["recipient_id=ada"; 150].join("&");
    app.call("GET", &format!("/v1/message/?{repeated}"), None)
        .await
        .expect(200);
    let too_many = format!("{}&recipient_id=ada", hundred.join("&"));
    let refused = app
        .call("GET", &format!("/v1/message/?{too_many}"), None)
        .await
        .expect_error(400, Some("recipient_id"));
    assert!(
        refused["message"].as_str().unwrap().contains("at most 100"),
        "{refused}"
    );
}
