//! A notification from a distinct_id alone, through every layer: the provider configured over
//! the API (pointed at a local fake), a workflow, `POST /trigger/` naming only the user, the
//! dispatch worker, the provider on the wire, and the log under the user and in `/v1/message/`.

use crate::harness::TestApp;
use axum::extract::{Request, State};
use herald_server::worker;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// What the fake received: each request's target and JSON body.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A Discord API fake: records every request, answers with a message id.
async fn discord_fake() -> (Seen, String) {
    let seen: Seen = Arc::default();
    let router = axum::Router::new()
        .fallback(|State(seen): State<Seen>, request: Request| async move {
            let target = request.uri().to_string();
            let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            seen.lock().unwrap().push((target, body));
            axum::Json(json!({"id": "discord-msg-1"}))
        })
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (seen, base)
}

#[tokio::test]
async fn a_trigger_naming_only_a_distinct_id_is_delivered_and_logged_on_the_user() {
    let app = TestApp::spawn().await;
    let (seen, fake) = discord_fake().await;
    app.call(
        "PUT",
        "/v1/provider/discord/",
        Some(json!({"kind": "discord", "base_url": fake})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/category/",
        Some(json!({"category": "account", "name": "Account"})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({
            "slug": "login-code", "name": "Login code", "category": "account", "policy": "all",
            "channels": {
                "discord": {"content": "Hello {{$recipient.name}}, code {{code}}"},
                "email": {"subject": "Your code", "text": "Code {{code}}"}
            }
        })),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({
            "name": "Ada",
            "$email": ["ada@example.com"],
            "$discord": "https://discord.com/api/webhooks/77/tok-ada"
        })),
    )
    .await
    .expect(201);

    // The caller names the workflow and the user; Herald finds the channels.
    let answer = app
        .call(
            "POST",
            "/trigger/",
            Some(json!({"workflow": "login-code", "recipients": ["ada"], "data": {"code": "314"}})),
        )
        .await
        .expect(202);
    assert!(answer["message_id"].is_string(), "{answer}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing is sent before the worker runs"
    );

    assert!(worker::drain(&app.app).await >= 1);
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "/api/webhooks/77/tok-ada?wait=true");
    assert_eq!(sent[0].1["content"], "Hello Ada, code 314");

    // The log, under the user: Discord sent with the provider's id, email skipped (no provider).
    let log = app
        .call("GET", "/v1/user/ada/message/", None)
        .await
        .expect(200);
    let results = log["results"].as_array().unwrap();
    let on = |channel: &str| {
        results
            .iter()
            .find(|m| m["channel"] == channel)
            .unwrap_or_else(|| panic!("no {channel} message in {log}"))
            .clone()
    };
    let discord = on("discord");
    assert_eq!(discord["status"], "sent");
    assert_eq!(discord["provider_id"], "discord-msg-1");
    assert_eq!(discord["workflow"]["slug"], "login-code");
    let history: Vec<&str> = discord["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["queued", "sent"]);
    let email = on("email");
    assert_eq!(email["status"], "skipped");
    assert_eq!(email["reason"], "no_provider");

    // The same message in the environment's log, and by id; nothing more to send.
    let by_id = app
        .call(
            "GET",
            &format!("/v1/message/{}/", discord["message_id"].as_str().unwrap()),
            None,
        )
        .await
        .expect(200);
    assert_eq!(by_id["status"], "sent");
    assert_eq!(worker::drain(&app.app).await, 0);
    assert_eq!(seen.lock().unwrap().len(), 1, "never sent twice");

    // A disabled user receives nothing: the message is skipped with the reason.
    app.call(
        "PATCH",
        "/v1/user/ada/status/",
        Some(json!({"status": "disabled"})),
    )
    .await
    .expect(200);
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": "login-code", "recipients": ["ada"], "data": {"code": "315"}})),
    )
    .await
    .expect(202);
    worker::drain(&app.app).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    let log = app
        .call("GET", "/v1/user/ada/message/?channel=discord", None)
        .await
        .expect(200);
    let newest = &log["results"][0];
    assert_eq!(newest["status"], "skipped", "{log}");
    assert_eq!(newest["reason"], "user_disabled");
}
