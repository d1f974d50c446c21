//! `first_success` fallbacks, end to end: a workflow ordered Discord, Slack, Teams (each provider
//! configured over the API and pointed at one local webhook fake); the trigger records the
//! fallbacks waiting, the worker sends the first, and only a failure for good hands over to the
//! next; once one is sent the rest are closed, never sent.

use crate::harness::TestApp;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_server::worker;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

const DISCORD: &str = "https://discord.com/api/webhooks/42/tok-ada";
const SLACK: &str = "https://hooks.slack.com/services/T0/B0/ada";
const TEAMS: &str = "https://example.webhook.office.com/webhookb2/ada";

/// One fake for the three webhooks: records which provider was called (by path) with what
/// body, and answers each provider's next scripted status (200 once its script is spent).
#[derive(Clone, Default)]
struct Hooks {
    seen: Arc<Mutex<Vec<(&'static str, Value)>>>,
    script: Arc<Mutex<HashMap<&'static str, VecDeque<u16>>>>,
}

fn provider_of(path: &str) -> &'static str {
    if path.starts_with("/api/webhooks/") {
        "discord"
    } else if path.starts_with("/services/") {
        "slack"
    } else {
        "teams"
    }
}

async fn answer(State(hooks): State<Hooks>, request: Request) -> Response {
    let provider = provider_of(request.uri().path());
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    hooks.seen.lock().unwrap().push((provider, body));
    let status = hooks
        .script
        .lock()
        .unwrap()
        .get_mut(provider)
        .and_then(VecDeque::pop_front)
        .unwrap_or(200);
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    match (provider, status.as_u16()) {
        ("discord", 200) => (status, axum::Json(json!({"id": "discord-1"}))).into_response(),
        (_, 200) => (status, "ok").into_response(),
        (_, 400) => (status, axum::Json(json!({"message": "Invalid Form Body"}))).into_response(),
        _ => (status, "try later").into_response(),
    }
}

impl Hooks {
    fn seen(&self) -> Vec<&'static str> {
        self.seen.lock().unwrap().iter().map(|(p, _)| *p).collect()
    }
}

/// An app with the three providers configured at one fake answering `script` per provider, a
/// `first_success` workflow `alert` over discord, slack, ms_teams, and ada holding all three.
async fn spawn(script: &[(&'static str, &[u16])]) -> (TestApp, Hooks) {
    let hooks = Hooks::default();
    for (provider, statuses) in script {
        hooks
            .script
            .lock()
            .unwrap()
            .insert(provider, statuses.iter().copied().collect());
    }
    let router = axum::Router::new()
        .fallback(answer)
        .with_state(hooks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let app = TestApp::spawn().await;
    for (channel, kind) in [
        ("discord", "discord"),
        ("slack", "slack"),
        ("ms_teams", "teams"),
    ] {
        app.call(
            "PUT",
            &format!("/v1/provider/{channel}/"),
            Some(json!({"kind": kind, "base_url": base})),
        )
        .await
        .expect(201);
    }
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({
            "slug": "alert", "name": "Alert",
            "policy": {"first_success": ["discord", "slack", "ms_teams"]},
            "channels": {
                "discord": {"content": "Discord: {{what}}"},
                "slack": {"text": "Slack: {{what}}"},
                "ms_teams": {"text": "Teams: {{what}}"}
            }
        })),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({
            "$discord": DISCORD,
            "$slack": {"incoming_webhook": {"url": SLACK}},
            "$ms_teams": {"incoming_webhook": {"url": TEAMS}}
        })),
    )
    .await
    .expect(201);
    (app, hooks)
}

async fn trigger(app: &TestApp) {
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": "alert", "recipients": ["ada"], "data": {"what": "disk full"}})),
    )
    .await
    .expect(202);
}

/// Ada's messages by channel.
async fn log(app: &TestApp) -> HashMap<String, Value> {
    let page = app
        .call("GET", "/v1/user/ada/message/", None)
        .await
        .expect(200);
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["channel"].as_str().unwrap().to_owned(), m.clone()))
        .collect()
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
async fn fallbacks_wait_in_the_log_and_a_permanent_failure_hands_over_to_the_next_channel() {
    let (app, hooks) = spawn(&[("discord", &[400])]).await;
    trigger(&app).await;
    // Recorded at trigger time: the first queued, the fallbacks waiting, each for the one
    // before it.
    let before = log(&app).await;
    assert_eq!(before.len(), 3, "{before:?}");
    assert_eq!(before["discord"]["status"], "queued");
    let discord_id = before["discord"]["message_id"].as_str().unwrap();
    let slack_id = before["slack"]["message_id"].as_str().unwrap();
    for (channel, after) in [("slack", discord_id), ("ms_teams", slack_id)] {
        let m = &before[channel];
        assert_eq!(m["status"], "waiting", "{m}");
        let waits = m["reason"].as_str().unwrap();
        assert!(waits.starts_with(&format!("waits for {after} (")), "{m}");
        assert!(m["identity"].is_object(), "{m}");
    }
    let waiting = app
        .call("GET", "/v1/message/?status=waiting", None)
        .await
        .expect(200);
    assert_eq!(waiting["meta"]["count"], 2, "{waiting}");

    // One round: Discord refuses (400, for good); in that same completion Slack becomes due.
    // A restart between the rounds (as after a crash) loses nothing: the switch is stored.
    assert_eq!(worker::step(&app.app, Utc::now()).await.unwrap(), 1);
    assert_eq!(hooks.seen(), ["discord"]);
    let app = app.restart().await;
    let mid = log(&app).await;
    assert_eq!(mid["discord"]["status"], "failed");
    assert_eq!(statuses(&mid["slack"]), ["waiting", "queued"]);
    assert_eq!(mid["slack"]["reason"], "discord failed");
    assert_eq!(mid["ms_teams"]["status"], "waiting");

    assert_eq!(worker::drain(&app.app).await, 1);
    assert_eq!(hooks.seen(), ["discord", "slack"]);
    let sent = hooks.seen.lock().unwrap()[1].1.clone();
    assert_eq!(sent["text"], "Slack: disk full", "rendered at trigger time");
    let after = log(&app).await;
    assert_eq!(statuses(&after["slack"]), ["waiting", "queued", "sent"]);
    assert_eq!(statuses(&after["ms_teams"]), ["waiting", "skipped"]);
    assert_eq!(after["ms_teams"]["reason"], "sent_on_other_channel");
    // Nothing else is ever due.
    let later = Utc::now() + chrono::TimeDelta::days(2);
    assert_eq!(worker::drain_at(&app.app, later).await, 0);
    assert_eq!(hooks.seen(), ["discord", "slack"]);
}

#[tokio::test]
async fn when_the_first_channel_is_sent_the_others_are_never_sent_and_say_why() {
    let (app, hooks) = spawn(&[]).await;
    trigger(&app).await;
    assert_eq!(worker::drain(&app.app).await, 1);
    assert_eq!(hooks.seen(), ["discord"]);
    let after = log(&app).await;
    assert_eq!(after["discord"]["status"], "sent");
    for channel in ["slack", "ms_teams"] {
        let m = &after[channel];
        assert_eq!(statuses(m), ["waiting", "skipped"], "{m}");
        assert_eq!(m["reason"], "sent_on_other_channel", "{m}");
        assert_eq!(m["attempts"], 0, "{m}");
        assert!(m["sent_at"].is_null(), "{m}");
    }
    let skipped = app
        .call("GET", "/v1/message/?status=skipped&channel=slack", None)
        .await
        .expect(200);
    assert_eq!(skipped["meta"]["count"], 1);
    let later = Utc::now() + chrono::TimeDelta::days(2);
    assert_eq!(worker::drain_at(&app.app, later).await, 0);
    assert_eq!(hooks.seen(), ["discord"]);
}

#[tokio::test]
async fn a_retryable_failure_is_retried_first_and_falls_back_only_once_the_retries_are_spent() {
    let (app, hooks) = spawn(&[("discord", &[503; 10])]).await;
    trigger(&app).await;
    assert_eq!(worker::drain(&app.app).await, 1);
    let first = log(&app).await;
    assert_eq!(first["discord"]["status"], "queued");
    assert_eq!(first["slack"]["status"], "waiting");
    // Each retry on the backoff schedule (four by default), the fallback still waiting.
    let mut now = Utc::now();
    let mut rounds = 0;
    while hooks.seen().len() < 5 {
        now += chrono::TimeDelta::hours(1);
        worker::drain_at(&app.app, now).await;
        rounds += 1;
        assert!(rounds <= 10, "{:?}", hooks.seen());
        if hooks.seen().len() < 5 {
            assert_eq!(log(&app).await["slack"]["status"], "waiting");
        }
    }
    // The last retry spent the schedule: Discord failed, and Slack went in the same drain.
    assert_eq!(
        hooks.seen(),
        ["discord", "discord", "discord", "discord", "discord", "slack"]
    );
    let after = log(&app).await;
    assert_eq!(after["discord"]["status"], "failed");
    assert!(
        after["discord"]["failure_reason"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{}",
        after["discord"]
    );
    assert_eq!(after["slack"]["status"], "sent");
    assert_eq!(after["ms_teams"]["status"], "skipped");
}
