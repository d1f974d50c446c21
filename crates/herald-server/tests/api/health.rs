//! Identity health end to end: a provider's permanent answer (an SMTP 5xx on RCPT, a Twilio
//! invalid-number code) marks the identity `perma_status: invalid` with the reason and time, and
//! the next trigger skips it as `identity_invalid`; Twilio's status callback and the email bounce
//! webhook, signed and unsigned, update the message and the identity later; the reset endpoint
//! sends to the identity again. Providers are local fakes: a plain-text SMTP server and a
//! Twilio Messages API that records each form it is posted.

use crate::harness::TestApp;
use axum::extract::{Request, State};
use herald_core::signature::sign_body;
use herald_server::worker;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PUBLIC_URL: &str = "https://herald.example.com";
const BOUNCE_SECRET: &str = "bounce-secret-0123456789";
const AUTH_TOKEN: &str = "twilio-auth-token-test";

/// An SMTP server speaking just enough for lettre: it refuses (550 5.1.1) any recipient whose
/// address starts with `gone`, and accepts the rest, each message queued as `Q<n>`.
async fn smtp_fake() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut queued = 0;
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            queued += 1;
            let n = queued;
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 fake ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        &format!("250 2.0.0 Ok: queued as Q{n}\r\n").into_bytes()
                    } else {
                        let upper = line.to_ascii_uppercase();
                        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                            b"250 fake\r\n"
                        } else if upper.starts_with("RCPT TO:<GONE") {
                            b"550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown\r\n"
                        } else if upper.starts_with("DATA") {
                            in_data = true;
                            b"354 go ahead\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 ok\r\n"
                        }
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Every form the Twilio fake was posted, as decoded pairs.
type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;
/// The fake's answers, in order: status and JSON body.
type Answers = Arc<Vec<(u16, Value)>>;

/// Twilio's Messages API: answers each send with the next of `answers` (the last repeats);
/// a 201 answer gets `sid` `SM<n>`.
async fn twilio_fake(answers: Vec<(u16, Value)>) -> (Forms, String) {
    let forms: Forms = Arc::default();
    let state = (forms.clone(), Arc::new(answers));
    let router = axum::Router::new()
        .fallback(
            |State((forms, answers)): State<(Forms, Answers)>, request: Request| async move {
                let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let form: Vec<(String, String)> =
                    form_urlencoded::parse(&body).into_owned().collect();
                let n = {
                    let mut seen = forms.lock().unwrap();
                    seen.push(form);
                    seen.len()
                };
                let (status, mut body) = answers[(n - 1).min(answers.len() - 1)].clone();
                if status == 201 {
                    body["sid"] = json!(format!("SM{n}"));
                }
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(body),
                )
            },
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (forms, base)
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| c.public_url = PUBLIC_URL.into()).await
}

/// The `notify` workflow on email and SMS, and user `ada` with the given identities.
async fn workflow_and_user(app: &TestApp, user: Value) {
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({
            "slug": "notify", "name": "Notify", "policy": "all",
            "channels": {
                "email": {"subject": "Hello", "text": "Hello {{$recipient.name}}"},
                "sms": {"text": "Hello {{$recipient.name}}"}
            }
        })),
    )
    .await
    .expect(201);
    app.call("POST", "/v1/user/ada/", Some(user))
        .await
        .expect(201);
}

async fn smtp_provider(app: &TestApp, port: u16) {
    app.call(
        "PUT",
        "/v1/provider/email/",
        Some(
            json!({"kind": "smtp", "host": "127.0.0.1", "port": port, "tls": "none",
                    "from": "herald@example.com", "bounce_secret": BOUNCE_SECRET}),
        ),
    )
    .await
    .expect(201);
}

async fn twilio_provider(app: &TestApp, base: &str) {
    app.call(
        "PUT",
        "/v1/provider/sms/",
        Some(
            json!({"kind": "twilio", "account_sid": "AC0123456789abcdef0123456789abcdef",
                    "auth_token": AUTH_TOKEN, "from": "+15550001111", "base_url": base}),
        ),
    )
    .await
    .expect(201);
}

/// Triggers `notify` for ada, runs the worker, and returns her newest message on `channel`.
async fn trigger(app: &TestApp, channel: &str) -> Value {
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": "notify", "recipients": ["ada"]})),
    )
    .await
    .expect(202);
    worker::drain(&app.app).await;
    newest(app, channel).await
}

async fn newest(app: &TestApp, channel: &str) -> Value {
    let log = app
        .call("GET", "/v1/user/ada/message/", None)
        .await
        .expect(200);
    log["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["channel"] == channel)
        .unwrap_or_else(|| panic!("no {channel} message in {log}"))
        .clone()
}

async fn message(app: &TestApp, id: &Value) -> Value {
    app.call(
        "GET",
        &format!("/v1/message/{}/", id.as_str().unwrap()),
        None,
    )
    .await
    .expect(200)
}

/// The identity's wire form, by its value.
async fn identity(app: &TestApp, key: &str, value: &str) -> Value {
    let user = app.user("ada").await;
    user[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {user}"))
        .iter()
        .find(|i| i["value"] == value)
        .unwrap_or_else(|| panic!("no {value} in {user}"))
        .clone()
}

async fn last_history(app: &TestApp) -> Value {
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    history["results"][0].clone()
}

#[tokio::test]
async fn an_smtp_refusal_of_the_recipient_marks_the_email_invalid_and_the_next_trigger_skips_it() {
    let app = spawn().await;
    smtp_provider(&app, smtp_fake().await).await;
    workflow_and_user(
        &app,
        json!({"name": "Ada", "$email": ["gone@example.com", "ada@example.com"]}),
    )
    .await;
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);

    let first = trigger(&app, "email").await;
    assert_eq!(first["status"], "failed", "{first}");
    let dead = identity(&app, "$email", "gone@example.com").await;
    assert_eq!(dead["perma_status"], "invalid", "{dead}");
    let reason = dead["perma_reason"].as_str().unwrap();
    assert!(reason.contains("550"), "{dead}");
    let at = chrono::DateTime::parse_from_rfc3339(dead["perma_at"].as_str().unwrap()).unwrap();
    assert!(at >= before && at <= chrono::Utc::now(), "{dead}");
    let other = identity(&app, "$email", "ada@example.com").await;
    assert_eq!(other["perma_status"], "active");
    assert!(other.get("perma_reason").is_none(), "{other}");
    // History says who (the worker) and which identity, why.
    let event = last_history(&app).await;
    assert_eq!(event["actor"]["kind"], "dispatch", "{event}");
    assert_eq!(
        event["request"]["$perma_status"],
        json!({"channel": "email", "value": "gone@example.com", "status": "invalid", "reason": reason}),
        "{event}"
    );

    // The next trigger goes to the other address.
    let second = trigger(&app, "email").await;
    assert_eq!(second["status"], "sent", "{second}");
    assert_ne!(second["message_id"], first["message_id"]);

    // With only the dead one left, the email is skipped as identity_invalid.
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$remove": {"$email": "ada@example.com"}}]})),
    )
    .await
    .expect(202);
    let third = trigger(&app, "email").await;
    assert_eq!(
        (&third["status"], &third["reason"]),
        (&json!("skipped"), &json!("identity_invalid")),
        "{third}"
    );
}

#[tokio::test]
async fn a_twilio_invalid_number_marks_the_phone_invalid_and_the_next_trigger_skips_it() {
    let app = spawn().await;
    let (forms, base) = twilio_fake(vec![(
        400,
        json!({"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.", "status": 400}),
    )])
    .await;
    twilio_provider(&app, &base).await;
    workflow_and_user(&app, json!({"name": "Ada", "$sms": ["+15005550001"]})).await;

    let first = trigger(&app, "sms").await;
    assert_eq!(first["status"], "failed", "{first}");
    let dead = identity(&app, "$sms", "+15005550001").await;
    assert_eq!(dead["perma_status"], "invalid", "{dead}");
    assert!(
        dead["perma_reason"]
            .as_str()
            .unwrap()
            .contains("error 21211"),
        "{dead}"
    );
    assert!(dead["perma_at"].is_string(), "{dead}");

    let second = trigger(&app, "sms").await;
    assert_eq!(
        (&second["status"], &second["reason"]),
        (&json!("skipped"), &json!("identity_invalid")),
        "{second}"
    );
    assert_eq!(
        forms.lock().unwrap().len(),
        1,
        "the dead number is not tried again"
    );
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Posts a Twilio status callback for `env`, signed with `token` over the URL Twilio was given.
async fn twilio_callback(
    app: &TestApp,
    env: &str,
    token: &str,
    params: &[(&str, &str)],
) -> crate::harness::Response {
    let path = format!("/v1/callback/twilio/{env}/");
    let params = form(params);
    let signature =
        herald_channels::twilio::signature(token, &format!("{PUBLIC_URL}{path}"), &params);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    app.raw_body(
        "POST",
        &path,
        &[
            ("x-twilio-signature", &signature),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn twilio_status_callbacks_are_verified_then_update_the_message_and_the_number() {
    let app = spawn().await;
    let (forms, base) = twilio_fake(vec![(201, json!({"status": "queued"}))]).await;
    twilio_provider(&app, &base).await;
    workflow_and_user(&app, json!({"name": "Ada", "$sms": ["+15005550006"]})).await;

    let sent = trigger(&app, "sms").await;
    assert_eq!(
        (&sent["status"], &sent["provider_id"]),
        (&json!("sent"), &json!("SM1")),
        "{sent}"
    );
    // Herald asked Twilio to call back, per environment, under its public URL.
    let asked = forms.lock().unwrap()[0].clone();
    assert!(
        asked.contains(&(
            "StatusCallback".into(),
            format!("{PUBLIC_URL}/v1/callback/twilio/test/")
        )),
        "{asked:?}"
    );

    // A wrong signature, a signature of another environment, or none: 403, nothing changes.
    let delivered = [("MessageSid", "SM1"), ("MessageStatus", "delivered")];
    twilio_callback(&app, "test", "not-the-token", &delivered)
        .await
        .expect_error(403, None);
    twilio_callback(&app, "live", AUTH_TOKEN, &delivered)
        .await
        .expect_error(403, None);
    app.raw_body(
        "POST",
        "/v1/callback/twilio/test/",
        &[],
        "MessageSid=SM1&MessageStatus=delivered",
    )
    .await
    .expect_error(403, None);
    assert_eq!(message(&app, &sent["message_id"]).await["status"], "sent");

    // Signed: delivered, once.
    let answer = twilio_callback(&app, "test", AUTH_TOKEN, &delivered)
        .await
        .expect(200);
    assert_eq!(answer, json!({"status": "success", "changed": true}));
    assert_eq!(
        message(&app, &sent["message_id"]).await["status"],
        "delivered"
    );
    let again = twilio_callback(&app, "test", AUTH_TOKEN, &delivered)
        .await
        .expect(200);
    assert_eq!(again["changed"], false);
    // A status on the way, and a SID Herald never sent: 200, nothing changes.
    for params in [
        [("MessageSid", "SM1"), ("MessageStatus", "sent")],
        [("MessageSid", "SM999"), ("MessageStatus", "undelivered")],
    ] {
        let answer = twilio_callback(&app, "test", AUTH_TOKEN, &params)
            .await
            .expect(200);
        assert_eq!(answer["changed"], false, "{params:?}");
    }
    twilio_callback(&app, "test", AUTH_TOKEN, &[("MessageStatus", "failed")])
        .await
        .expect_error(400, Some("MessageSid"));

    // Undelivered with an unknown-handset code: the message fails and the number is invalid.
    let second = trigger(&app, "sms").await;
    assert_eq!(second["provider_id"], "SM2", "{second}");
    let undelivered = [
        ("MessageSid", "SM2"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30005"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
    ];
    let answer = twilio_callback(&app, "test", AUTH_TOKEN, &undelivered)
        .await
        .expect(200);
    assert_eq!(answer["changed"], true);
    let failed = message(&app, &second["message_id"]).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let dead = identity(&app, "$sms", "+15005550006").await;
    assert_eq!(dead["perma_status"], "invalid", "{dead}");
    assert_eq!(
        dead["perma_reason"],
        "twilio status undelivered: error 30005"
    );
    let event = last_history(&app).await;
    assert_eq!(event["actor"], json!({"kind": "callback", "id": "twilio"}));

    // Replayed after an operator's reset, the callback does not undo the reset.
    app.call(
        "POST",
        "/v1/user/ada/identity/reset/",
        Some(json!({"channel": "sms", "value": "+15005550006"})),
    )
    .await
    .expect(200);
    let replay = twilio_callback(&app, "test", AUTH_TOKEN, &undelivered)
        .await
        .expect(200);
    assert_eq!(replay["changed"], false);
    assert_eq!(
        identity(&app, "$sms", "+15005550006").await["perma_status"],
        "active"
    );
}

async fn bounce(
    app: &TestApp,
    env: &str,
    secret: &str,
    report: &Value,
) -> crate::harness::Response {
    let body = report.to_string();
    let signature = sign_body(secret, body.as_bytes());
    app.raw_body(
        "POST",
        &format!("/v1/callback/email/{env}/"),
        &[
            ("x-herald-signature", &signature),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn bounce_reports_are_verified_and_a_hard_one_fails_the_message_and_marks_the_address() {
    let app = spawn().await;
    let port = smtp_fake().await;
    // The bounce secret is checked, and write-only.
    app.call(
        "PUT",
        "/v1/provider/email/",
        Some(
            json!({"kind": "smtp", "host": "127.0.0.1", "port": port, "tls": "none",
                    "from": "herald@example.com", "bounce_secret": "short"}),
        ),
    )
    .await
    .expect_error(400, Some("bounce_secret"));
    smtp_provider(&app, port).await;
    let shown = app
        .call("GET", "/v1/provider/email/", None)
        .await
        .expect(200);
    assert_eq!(shown["bounce_secret"], "set", "{shown}");
    assert!(!shown.to_string().contains(BOUNCE_SECRET), "{shown}");
    workflow_and_user(&app, json!({"name": "Ada", "$email": ["ada@example.com"]})).await;
    let sent = trigger(&app, "email").await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let id = sent["message_id"].as_str().unwrap().to_owned();
    let queue_id = sent["provider_id"].as_str().unwrap().to_owned();
    assert!(queue_id.starts_with('Q'), "{sent}");

    // Unsigned, wrongly signed, or for an environment without a bounce_secret: 403.
    let hard = json!({"message_id": id, "recipient": "ADA@example.com", "type": "hard", "reason": "550 5.1.1 user unknown"});
    bounce(&app, "test", "another-secret-0123456789", &hard)
        .await
        .expect_error(403, None);
    bounce(&app, "live", BOUNCE_SECRET, &hard)
        .await
        .expect_error(403, None);
    app.raw_body("POST", "/v1/callback/email/test/", &[], hard.to_string())
        .await
        .expect_error(403, None);
    // Signed but breaking a rule: 400 naming the field.
    bounce(
        &app,
        "test",
        BOUNCE_SECRET,
        &json!({"message_id": id, "type": "bounced"}),
    )
    .await
    .expect_error(400, Some("type"));
    bounce(
        &app,
        "test",
        BOUNCE_SECRET,
        &json!({"message_id": id, "type": "hard", "recipient": "eve@example.com"}),
    )
    .await
    .expect_error(400, Some("recipient"));
    assert_eq!(message(&app, &json!(id)).await["status"], "sent");

    // Soft, by the SMTP queue id: noted on the message, status and identity unchanged.
    let soft = json!({"provider_id": queue_id, "type": "soft", "reason": "452 mailbox full"});
    let answer = bounce(&app, "test", BOUNCE_SECRET, &soft).await.expect(200);
    assert_eq!(answer["changed"], true);
    let noted = message(&app, &json!(id)).await;
    assert_eq!(noted["status"], "sent", "{noted}");
    let last = noted["status_history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "soft bounce: 452 mailbox full", "{noted}");
    let again = bounce(&app, "test", BOUNCE_SECRET, &soft).await.expect(200);
    assert_eq!(again["changed"], false);
    assert_eq!(
        identity(&app, "$email", "ada@example.com").await["perma_status"],
        "active"
    );

    // Hard: sent → failed, the address invalid; once.
    let answer = bounce(&app, "test", BOUNCE_SECRET, &hard).await.expect(200);
    assert_eq!(answer["changed"], true);
    let failed = message(&app, &json!(id)).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let dead = identity(&app, "$email", "ada@example.com").await;
    assert_eq!(dead["perma_status"], "invalid");
    assert_eq!(dead["perma_reason"], "hard bounce: 550 5.1.1 user unknown");
    let event = last_history(&app).await;
    assert_eq!(event["actor"], json!({"kind": "callback", "id": "email"}));
    let version = app.user("ada").await["version"].clone();
    let again = bounce(&app, "test", BOUNCE_SECRET, &hard).await.expect(200);
    assert_eq!(again["changed"], false);
    assert_eq!(
        app.user("ada").await["version"],
        version,
        "nothing more changed"
    );
    // An unknown message: 200, nothing to change.
    let unknown = bounce(
        &app,
        "test",
        BOUNCE_SECRET,
        &json!({"message_id": "no-such-message", "type": "hard"}),
    )
    .await
    .expect(200);
    assert_eq!(unknown["changed"], false);

    let next = trigger(&app, "email").await;
    assert_eq!(
        (&next["status"], &next["reason"]),
        (&json!("skipped"), &json!("identity_invalid")),
        "{next}"
    );
}

#[tokio::test]
async fn a_reset_identity_is_sent_to_again() {
    let app = spawn().await;
    smtp_provider(&app, smtp_fake().await).await;
    workflow_and_user(&app, json!({"name": "Ada", "$email": ["gone@example.com"]})).await;
    assert_eq!(trigger(&app, "email").await["status"], "failed");
    assert_eq!(
        identity(&app, "$email", "gone@example.com").await["perma_status"],
        "invalid"
    );

    // Refusals name the field and change nothing.
    let version = app.user("ada").await["version"].clone();
    for (body, field) in [
        (json!({"value": "gone@example.com"}), "channel"),
        (
            json!({"channel": "pager", "value": "gone@example.com"}),
            "channel",
        ),
        (json!({"channel": "email"}), "value"),
        (
            json!({"channel": "email", "value": "eve@example.com"}),
            "value",
        ),
    ] {
        app.call("POST", "/v1/user/ada/identity/reset/", Some(body))
            .await
            .expect_error(400, Some(field));
    }
    app.call(
        "POST",
        "/v1/user/nobody/identity/reset/",
        Some(json!({"channel": "email", "value": "gone@example.com"})),
    )
    .await
    .expect_error(404, None);
    assert_eq!(app.user("ada").await["version"], version);

    // The address as the channel normalises it (the domain's case does not matter).
    let user = app
        .call(
            "POST",
            "/v1/user/ada/identity/reset/",
            Some(json!({"channel": "email", "value": "gone@EXAMPLE.com"})),
        )
        .await
        .expect(200);
    let reset = &user["$email"][0];
    assert_eq!(reset["perma_status"], "active", "{user}");
    assert!(reset.get("perma_reason").is_none() && reset.get("perma_at").is_none());
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    let events = history["results"].as_array().unwrap();
    let (event, created) = (&events[0], events.last().unwrap());
    assert_eq!(
        event["actor"], created["actor"],
        "the caller's key: {history}"
    );
    assert_eq!(
        event["request"]["$perma_status"],
        json!({"channel": "email", "value": "gone@example.com", "status": "active"})
    );
    // Sent to again (and refused again by this fake, so marked again).
    let next = trigger(&app, "email").await;
    assert_eq!(next["status"], "failed", "{next}");
}
