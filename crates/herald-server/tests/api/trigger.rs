//! `POST /trigger/` and track events (`/event/`, `/v2/event/`): planned, rendered and recorded
//! messages (read back from the store), skip reasons, transient recipients, idempotency,
//! test/live isolation, bad fields named.

use crate::harness::TestApp;
use herald_core::message::{Message, MessageStatus};
use herald_core::store::MessageQuery;
use herald_core::{Env, EnvScope};
use serde_json::{json, Value};

const HOOK: &str = "https://discord.com/api/webhooks/123/abc";

/// A category `news` and a workflow `welcome` (email and Discord, policy `all`, started by
/// `signed_up`), in `env`.
async fn setup(app: &TestApp, env: Env) {
    app.call_in(
        env,
        "POST",
        "/v1/category/",
        Some(json!({"category": "news", "name": "News"})),
    )
    .await
    .expect(201);
    let workflow = json!({
        "slug": "welcome", "name": "Welcome", "category": "news", "policy": "all",
        "channels": {
            "email": {"subject": "Hi", "text": "Hello {{$recipient.name}}, code {{code}}"},
            "discord": {"content": "Hello {{$recipient.name}}, code {{code}}"}
        },
        "events": ["signed_up"]
    });
    app.call_in(env, "POST", "/v1/workflow/", Some(workflow))
        .await
        .expect(201);
}

async fn messages(app: &TestApp, env: Env) -> Vec<Message> {
    let query = MessageQuery {
        limit: 100,
        ..MessageQuery::default()
    };
    app.store
        .list_messages(EnvScope::operator(env), &query)
        .await
        .unwrap()
        .messages
}

/// `(distinct_id, channel, status, reason)` of each message, sorted.
fn summary(list: &[Message]) -> Vec<(String, String, MessageStatus, Option<String>)> {
    let mut out: Vec<_> = list
        .iter()
        .map(|m| {
            (
                m.distinct_id.to_string(),
                m.channel.as_str().to_owned(),
                m.status,
                m.reason.clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn skipped(
    id: &str,
    channel: &str,
    reason: &str,
) -> (String, String, MessageStatus, Option<String>) {
    (
        id.into(),
        channel.into(),
        MessageStatus::Skipped,
        Some(reason.into()),
    )
}

fn queued(id: &str, channel: &str) -> (String, String, MessageStatus, Option<String>) {
    (id.into(), channel.into(), MessageStatus::Queued, None)
}

async fn trigger(app: &TestApp, body: Value) -> Value {
    app.call("POST", "/trigger/", Some(body)).await.expect(202)
}

#[tokio::test]
async fn a_trigger_queues_rendered_messages_and_skips_with_reasons() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test).await;
    for (id, body) in [
        (
            "ada",
            json!({"name": "Ada", "$email": "ada@example.com", "$discord": HOOK}),
        ),
        (
            "dis",
            json!({"name": "Dis", "$discord": HOOK, "$status": "disabled"}),
        ),
        ("opt", json!({"name": "Opt", "$discord": HOOK})),
    ] {
        app.call("POST", &format!("/v1/user/{id}/"), Some(body))
            .await
            .expect(201);
    }
    app.call(
        "PATCH",
        "/v1/user/opt/preference/category/news/",
        Some(json!({"preference": "opt_out"})),
    )
    .await
    .expect(202);
    let reply = trigger(
        &app,
        json!({"workflow": "welcome", "recipients": ["ada", "dis", "opt"], "data": {"code": "42"}}),
    )
    .await;
    assert_eq!(reply["status"], "success");
    assert!(reply["message_id"].as_str().unwrap().starts_with("trg_"));
    let list = messages(&app, Env::Test).await;
    assert_eq!(
        summary(&list),
        vec![
            queued("ada", "discord"),
            // Nothing is configured: an email needs a provider, a webhook carries its own.
            skipped("ada", "email", "no_provider"),
            skipped("dis", "discord", "user_disabled"),
            skipped("dis", "email", "user_disabled"),
            skipped("opt", "discord", "category_opted_out"),
            skipped("opt", "email", "category_opted_out"),
        ]
    );
    let sent = list
        .iter()
        .find(|m| m.status == MessageStatus::Queued)
        .unwrap();
    assert_eq!(sent.workflow, "welcome");
    assert_eq!(sent.category.as_deref(), Some("news"));
    assert_eq!(sent.identity.as_ref().unwrap().value, json!(HOOK));
    // The rendered content is in the outbox, ready for the worker.
    let claims = app
        .store
        .claim_due(chrono::Utc::now(), std::time::Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].entry.message_id, sent.id);
    assert_eq!(
        claims[0].entry.content,
        herald_core::delivery::Content::Discord {
            content: "Hello Ada, code 42".into(),
            embeds: None
        }
    );
    // $channels restricts: only email is planned.
    trigger(
        &app,
        json!({"workflow": "welcome", "recipients": [{"distinct_id": "ada", "$channels": ["email"]}]}),
    )
    .await;
    assert_eq!(messages(&app, Env::Test).await.len(), list.len() + 1);
}

#[tokio::test]
async fn inline_data_upserts_transient_stores_nothing_and_bare_ids_are_created() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test).await;
    trigger(
        &app,
        json!({"workflow": "welcome", "recipients": [
            {"distinct_id": "tmp", "is_transient": true, "name": "Tim", "$discord": HOOK},
            {"distinct_id": "new", "name": "Nina", "$discord": HOOK},
            "bare"
        ], "actor": "ada", "data": {"code": "7"}}),
    )
    .await;
    app.call("GET", "/v1/user/tmp/", None)
        .await
        .expect_error(404, None);
    assert_eq!(app.user("new").await["properties"]["name"], "Nina");
    // A recipient named by distinct_id alone is created, as SuprSend does; the actor is not.
    app.call("GET", "/v1/user/bare/", None).await.expect(200);
    app.call("GET", "/v1/user/ada/", None)
        .await
        .expect_error(404, None);
    let list = messages(&app, Env::Test).await;
    assert_eq!(
        summary(&list),
        vec![
            skipped("bare", "discord", "no_identity"),
            skipped("bare", "email", "no_identity"),
            queued("new", "discord"),
            skipped("new", "email", "no_identity"),
            queued("tmp", "discord"),
            skipped("tmp", "email", "no_identity"),
        ]
    );
    let claims = app
        .store
        .claim_due(chrono::Utc::now(), std::time::Duration::from_secs(30), 10)
        .await
        .unwrap();
    let mut texts: Vec<String> = claims
        .iter()
        .map(|c| match &c.entry.content {
            herald_core::delivery::Content::Discord { content, .. } => content.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    texts.sort();
    assert_eq!(texts, ["Hello Nina, code 7", "Hello Tim, code 7"]);
}

#[tokio::test]
async fn an_idempotency_key_repeat_answers_the_same_and_sends_nothing() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test).await;
    app.call("POST", "/v1/user/ada/", Some(json!({"$discord": HOOK})))
        .await
        .expect(201);
    let body = json!({"workflow": "welcome", "recipients": ["ada"], "$idempotency_key": "k-1"});
    let first = trigger(&app, body.clone()).await;
    let count = messages(&app, Env::Test).await.len();
    assert_eq!(count, 2);
    assert_eq!(trigger(&app, body).await, first);
    assert_eq!(messages(&app, Env::Test).await.len(), count);
    // The key with another trigger is refused, naming it; nothing is recorded.
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": "welcome", "recipients": ["bob"], "$idempotency_key": "k-1"})),
    )
    .await
    .expect_error(409, Some("$idempotency_key"));
    assert_eq!(messages(&app, Env::Test).await.len(), count);
    // The same key in live is another key.
    setup(&app, Env::Live).await;
    app.call_in(
        Env::Live,
        "POST",
        "/trigger/",
        Some(json!({"workflow": "welcome", "recipients": ["ada"], "$idempotency_key": "k-1"})),
    )
    .await
    .expect(202);
    assert_eq!(messages(&app, Env::Live).await.len(), 2);
}

#[tokio::test]
async fn a_test_key_cannot_trigger_a_live_user() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test).await;
    setup(&app, Env::Live).await;
    app.call_in(
        Env::Live,
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Live Ada", "$discord": HOOK})),
    )
    .await
    .expect(201);
    let live_before = app.snapshot(Env::Live).await;
    trigger(
        &app,
        json!({"workflow": "welcome", "recipients": [{"distinct_id": "ada", "name": "Test Ada"}]}),
    )
    .await;
    assert_eq!(app.snapshot(Env::Live).await, live_before);
    assert!(messages(&app, Env::Live).await.is_empty());
    assert_eq!(
        summary(&messages(&app, Env::Test).await),
        vec![
            skipped("ada", "discord", "no_identity"),
            skipped("ada", "email", "no_identity")
        ]
    );
    // A workflow of the live environment is not found with a test key.
    app.call_in(Env::Live, "DELETE", "/v1/workflow/welcome/", None)
        .await
        .expect(204);
    app.call_in(
        Env::Live,
        "POST",
        "/trigger/",
        Some(json!({"workflow": "welcome", "recipients": ["ada"]})),
    )
    .await
    .expect_error(404, None);
}

#[tokio::test]
async fn bad_triggers_name_the_field_and_bulk_answers_per_item() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test).await;
    for (body, status, field) in [
        (json!({"recipients": ["a"]}), 400, Some("workflow")),
        (
            json!({"workflow": "welcome", "recipients": [""]}),
            400,
            Some("recipients[0]"),
        ),
        (
            json!({"workflow": "welcome", "recipients": [{"distinct_id": "a", "$email": "nope"}]}),
            400,
            Some("recipients[0].$email"),
        ),
        (
            json!({"workflow": "welcome", "recipients": ["a"], "data": {"$x": 1}}),
            400,
            Some("data.$x"),
        ),
        (json!({"workflow": "nope", "recipients": ["a"]}), 404, None),
        (json!("text"), 400, Some("body")),
    ] {
        let e = app
            .call("POST", "/trigger/", Some(body.clone()))
            .await
            .expect_error(status, field);
        if status == 404 {
            assert!(
                e["message"].as_str().unwrap().contains("workflow 'nope'"),
                "{e}"
            );
        }
    }
    let e = app
        .call("POST", "/trigger/", Some(json!([])))
        .await
        .expect_error(400, Some("body"));
    assert_eq!(e["records"], json!([]), "py reads records even on errors");
    assert!(messages(&app, Env::Test).await.is_empty());
    let reply = trigger(
        &app,
        json!([
            {"workflow": "welcome", "recipients": ["a"]},
            {"workflow": "welcome", "recipients": [7]},
            {"workflow": "gone", "recipients": ["a"]}
        ]),
    )
    .await;
    assert_eq!(reply["status"], "partial");
    let records = reply["records"].as_array().unwrap();
    assert_eq!(records[0]["status"], "success");
    assert_eq!(records[0]["status_code"], 202);
    assert_eq!(records[1]["status_code"], 400);
    assert!(records[1]["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("[1].recipients[0]"));
    assert_eq!(records[2]["status_code"], 404);
    assert_eq!(messages(&app, Env::Test).await.len(), 2);
}

#[tokio::test]
async fn track_events_start_the_workflows_listing_them() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test).await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Ada", "$discord": HOOK})),
    )
    .await
    .expect(201);
    // py track_event: /v2/event/.
    let event = json!({"$insert_id": "0b9e6f3c-5b7e-4f43-9d1e-6b1f2f7d9a02", "$time": 1_795_908_108_000_i64,
        "event": "signed_up", "env": app.test.workspace_key, "distinct_id": "ada",
        "properties": {"code": "99", "$ss_sdk_version": "suprsend-py-sdk/0.20.0"}});
    let reply = app
        .call("POST", "/v2/event/", Some(event.clone()))
        .await
        .expect(202);
    assert_eq!(reply["status"], "success");
    assert!(reply["message_id"].as_str().unwrap().starts_with("trg_"));
    let claims = app
        .store
        .claim_due(chrono::Utc::now(), std::time::Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(
        claims[0].entry.content,
        herald_core::delivery::Content::Discord {
            content: "Hello Ada, code 99".into(),
            embeds: None
        }
    );
    // A retry with the same $insert_id starts nothing again.
    assert_eq!(
        app.call("POST", "/v2/event/", Some(event))
            .await
            .expect(202),
        reply
    );
    assert_eq!(messages(&app, Env::Test).await.len(), 2);
    // node: /event/, alone and in an array with an identity event; no listener is no error.
    let reply = app
        .call(
            "POST",
            "/event/",
            Some(json!({"event": "signed_up", "distinct_id": "ada", "properties": {"code": "1"}})),
        )
        .await
        .expect(202);
    assert_eq!(reply["status"], "success");
    let reply = app
        .call(
            "POST",
            "/event/",
            Some(json!([
                {"distinct_id": "bob", "$user_operations": [{"$set": {"name": "Bob"}}, {"$append": {"$discord": HOOK}}]},
                {"event": "signed_up", "distinct_id": "bob"},
                {"event": "nobody_listens", "distinct_id": "bob"}
            ])),
        )
        .await
        .expect(202);
    assert_eq!(reply["status"], "success", "{reply}");
    assert_eq!(reply["records"][2]["message_id"], Value::Null);
    assert_eq!(app.user("bob").await["properties"]["name"], "Bob");
    let bob: Vec<_> = messages(&app, Env::Test)
        .await
        .into_iter()
        .filter(|m| m.distinct_id.as_str() == "bob" && m.status == MessageStatus::Queued)
        .collect();
    assert_eq!(
        bob.len(),
        1,
        "the identity event applied before the track event"
    );
    // Bad track events name the field and start nothing.
    for (body, field) in [
        (
            json!({"event": "$reserved", "distinct_id": "ada"}),
            "[0].event",
        ),
        (json!({"event": "signed_up"}), "[0].distinct_id"),
        (
            json!([{"event": "signed_up", "distinct_id": "ada", "properties": [1]}]),
            "[0].properties",
        ),
    ] {
        app.call("POST", "/event/", Some(body))
            .await
            .expect_error(400, Some(field));
    }
    app.call(
        "POST",
        "/v2/event/",
        Some(json!({"event": "x", "distinct_id": "ada"})),
    )
    .await
    .expect_error(400, Some("event"));
}

#[tokio::test]
async fn bulk_track_events_answer_one_record_each_and_always_carry_records() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test).await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Ada", "$discord": HOOK})),
    )
    .await
    .expect(201);
    // py bulk_events: /v2/bulk/event/ with an array; each event runs on its own.
    let reply = app
        .call(
            "POST",
            "/v2/bulk/event/",
            Some(json!([
                {"event": "signed_up", "distinct_id": "ada", "properties": {"code": "7"}},
                {"event": "signed_up", "properties": {}},
                {"event": "nobody_listens", "distinct_id": "ada"}
            ])),
        )
        .await
        .expect(202);
    assert_eq!(reply["status"], "partial", "{reply}");
    let records = reply["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["status"], "success");
    assert!(records[0]["message_id"]
        .as_str()
        .unwrap()
        .starts_with("trg_"));
    assert_eq!(records[1]["status"], "error");
    assert_eq!(records[1]["status_code"], 400);
    assert!(
        records[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[1].distinct_id"),
        "{reply}"
    );
    assert_eq!(records[2]["status"], "success");
    assert_eq!(records[2]["message_id"], Value::Null);
    // Only the first event started a workflow: email (no provider) and Discord.
    assert_eq!(messages(&app, Env::Test).await.len(), 2);
    // Refused as a whole, the answer still carries records.
    for body in [json!([]), json!({"event": "signed_up"})] {
        let r = app.call("POST", "/v2/bulk/event/", Some(body)).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["records"], json!([]), "{}", r.body);
        assert_eq!(r.body["field"], "body");
    }
}
