//! Smart channel order and engagement, end to end: a workflow `{"smart": {"channels": ["inbox",
//! "email"], "wait": "15m", "until": "seen"}}` with open and click tracking on. The inbox is
//! Herald's own (the real inbox provider, into the store); email goes to a recording provider.
//! The worker is driven with its clock (`drain_at`), never with sleeps.

use crate::harness::TestApp;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use herald_channels::inbox::InboxProvider;
use herald_core::channel::{Channel, Identity};
use herald_core::delivery::{Configured, Content, Delivery, Directory, Outgoing, Provider};
use herald_core::store::{Store, StoreError};
use herald_core::Env;
use herald_server::worker;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The email provider: records every email (message id, HTML) and accepts it.
#[derive(Default)]
struct Mailbox(Mutex<Vec<(String, String)>>);

#[async_trait]
impl Provider for Mailbox {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::Email { html, .. } = &message.content else {
            panic!("not an email: {:?}", message.content);
        };
        self.0
            .lock()
            .unwrap()
            .push((message.message_id.clone(), html.clone().unwrap_or_default()));
        Delivery::Sent {
            provider_id: Some(format!("mail-{}", message.message_id)),
        }
    }
}

/// The inbox (Herald's own provider over the app's store, set once the app is up) and the
/// mailbox.
struct Providers {
    store: OnceLock<Arc<dyn Store>>,
    mailbox: Arc<Mailbox>,
}

#[async_trait]
impl Directory for Providers {
    async fn configured(&self, _: Env) -> Result<Configured, StoreError> {
        Ok(Configured::from([
            (Channel::Inbox, "inbox".to_owned()),
            (Channel::Email, "smtp".to_owned()),
        ]))
    }

    async fn provider(
        &self,
        _: Env,
        identity: &Identity,
    ) -> Result<Option<Arc<dyn Provider>>, StoreError> {
        Ok(match identity.channel {
            Channel::Inbox => {
                let store = self.store.get().expect("the store is set").clone();
                Some(Arc::new(InboxProvider::new(store)) as Arc<dyn Provider>)
            }
            Channel::Email => Some(self.mailbox.clone() as Arc<dyn Provider>),
            _ => None,
        })
    }
}

const LINK: &str = "https://example.com/report/1?x=1&y=2";

/// An app with the smart workflow `nudge` and user ada (inbox and email) in the test
/// environment; the mailbox it sends email to.
async fn spawn() -> (TestApp, Arc<Mailbox>) {
    let mailbox = Arc::new(Mailbox::default());
    let providers = Arc::new(Providers {
        store: OnceLock::new(),
        mailbox: mailbox.clone(),
    });
    let app = TestApp::spawn_with_directory(providers.clone(), |_| {}).await;
    providers.store.set(app.store.clone()).ok();
    app.call(
        "POST",
        "/v1/workflow/",
        Some(json!({
            "slug": "nudge",
            "policy": {"smart": {"channels": ["inbox", "email"], "wait": "15m", "until": "seen"}},
            "tracking": {"opens": true, "clicks": true},
            "channels": {
                "inbox": {"title": "Report", "body": "Your report {{n}} is ready"},
                "email": {
                    "subject": "Report {{n}}",
                    "html": "<html><body><p>Report {{n}}: <a href=\"https://example.com/report/1?x=1&amp;y=2\">open it</a> \
                             or <a href=\"mailto:help@example.com\">write to us</a></p></body></html>",
                    "text": "Report {{n}} is ready"
                }
            }
        })),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"$inbox": ["ada"], "$email": ["ada@example.com"]})),
    )
    .await
    .expect(201);
    (app, mailbox)
}

async fn trigger(app: &TestApp) {
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": "nudge", "recipients": ["ada"], "data": {"n": "7"}})),
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

/// Triggers and sends the inbox message at `t0` (the worker's clock, just after the trigger);
/// the email waits.
async fn inbox_sent(app: &TestApp) -> (DateTime<Utc>, HashMap<String, Value>) {
    trigger(app).await;
    let t0 = Utc::now();
    let before = log(app).await;
    assert_eq!(before["inbox"]["status"], "queued", "{before:?}");
    assert_eq!(before["email"]["status"], "waiting");
    assert_eq!(worker::drain_at(&app.app, t0).await, 1);
    let after = log(app).await;
    assert_eq!(after["inbox"]["status"], "sent");
    assert_eq!(after["email"]["status"], "waiting");
    let reason = after["email"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("unless seen on") && reason.contains("(inbox)"),
        "{reason}"
    );
    (t0, after)
}

#[tokio::test]
async fn without_engagement_the_next_channel_is_sent_when_the_wait_after_the_send_is_over() {
    let (app, mailbox) = spawn().await;
    let (t0, _) = inbox_sent(&app).await;
    // Not before the wait (counted from the inbox send) is over.
    assert_eq!(
        worker::drain_at(&app.app, t0 + Duration::minutes(14)).await,
        0
    );
    assert!(mailbox.0.lock().unwrap().is_empty());
    // Then it is sent, and the log shows why.
    assert_eq!(
        worker::drain_at(&app.app, t0 + Duration::minutes(15)).await,
        1
    );
    let sent = mailbox.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let after = log(&app).await;
    let email = &after["email"];
    assert_eq!(statuses(email), ["waiting", "queued", "sent"]);
    assert_eq!(email["reason"], "not seen on an earlier channel");
    assert_eq!(sent[0].0, email["message_id"].as_str().unwrap());
    assert_eq!(email["seen_at"], Value::Null);
    // A restart after that changes nothing, and nothing is sent twice.
    let app = app.restart().await;
    assert_eq!(worker::drain_at(&app.app, t0 + Duration::hours(1)).await, 0);
    assert_eq!(mailbox.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_inbox_item_seen_before_the_wait_is_over_skips_the_next_channel_as_engaged() {
    let (app, mailbox) = spawn().await;
    let (t0, log0) = inbox_sent(&app).await;
    let inbox_id = log0["inbox"]["message_id"].as_str().unwrap();
    // Ada reads the item (read implies seen): the inbox message is seen.
    app.call(
        "POST",
        &format!("/v1/user/ada/inbox/{inbox_id}/mark/"),
        Some(json!({"action": "read"})),
    )
    .await
    .expect(200);
    let seen = app
        .call("GET", &format!("/v1/message/{inbox_id}/"), None)
        .await
        .expect(200);
    assert!(seen["seen_at"].is_string(), "{seen}");
    assert_eq!(seen["clicked_at"], Value::Null);

    assert_eq!(
        worker::drain_at(&app.app, t0 + Duration::minutes(16)).await,
        1,
        "claimed, and its gate closed"
    );
    assert!(mailbox.0.lock().unwrap().is_empty(), "no email sent");
    let after = log(&app).await;
    let email = &after["email"];
    assert_eq!(email["status"], "skipped");
    assert_eq!(email["reason"], "engaged");
    assert_eq!(statuses(email), ["waiting", "skipped"]);
    let skipped = app
        .call("GET", "/v1/message/?status=skipped", None)
        .await
        .expect(200);
    assert_eq!(skipped["meta"]["count"], 1);
    // Nothing is left to send.
    assert_eq!(worker::drain_at(&app.app, t0 + Duration::hours(2)).await, 0);
}

/// The path (from `/t/`) of the first URL in `html` starting with `base`+`/t/<kind>/`.
fn tracking_path(html: &str, kind: char) -> String {
    let marker = format!("/t/{kind}/");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"));
    let end = html[at..].find('"').unwrap();
    html[at..at + end].to_owned()
}

#[tokio::test]
async fn tracked_email_opens_and_clicks_record_engagement_and_a_tampered_token_goes_nowhere() {
    let (app, mailbox) = spawn().await;
    let (t0, _) = inbox_sent(&app).await;
    worker::drain_at(&app.app, t0 + Duration::minutes(15)).await;
    let (email_id, html) = mailbox.0.lock().unwrap()[0].clone();
    // Links in anchors go through Herald; other schemes stay; the pixel is in the body.
    assert!(
        !html.contains(LINK) && !html.contains("x=1&amp;y=2\""),
        "{html}"
    );
    assert!(html.contains("href=\"mailto:help@example.com\""), "{html}");
    assert!(html.contains("/t/c/") && html.contains("/t/o/"), "{html}");
    assert!(html.find("<img").unwrap() < html.find("</body>").unwrap());
    let pixel = tracking_path(&html, 'o');
    let click = tracking_path(&html, 'c');

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| {
        let client = no_redirects.clone();
        let url = format!("{}{path}", app.base);
        async move { client.get(url).send().await.unwrap() }
    };

    // A tampered token: refused, no redirect, nothing recorded.
    let (payload, sig) = click["/t/c/".len()..].split_once('.').unwrap();
    let mut forged_sig = sig.to_owned();
    let last = forged_sig.pop().unwrap();
    forged_sig.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        format!("/t/c/{payload}.{forged_sig}"),
        format!("/t/c/x{payload}.{sig}"),
        // A pixel's token on the click path (a genuine token of the other kind).
        format!("/t/c/{}", &pixel["/t/o/".len()..]),
        format!("/t/o/{}", &click["/t/c/".len()..]),
    ] {
        let r = get(bad.clone()).await;
        assert_eq!(r.status().as_u16(), 404, "{bad}");
        assert!(r.headers().get("location").is_none());
    }
    let untouched = app
        .call("GET", &format!("/v1/message/{email_id}/"), None)
        .await
        .expect(200);
    assert_eq!(untouched["seen_at"], Value::Null);

    // The pixel: a GIF, and the email is seen.
    let r = get(pixel.clone()).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/gif");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.bytes().await.unwrap().starts_with(b"GIF89a"));
    let opened = app
        .call("GET", &format!("/v1/message/{email_id}/"), None)
        .await
        .expect(200);
    let seen_at = opened["seen_at"].as_str().unwrap().to_owned();
    assert_eq!(opened["clicked_at"], Value::Null);

    // The click: 302 to the original URL (entities decoded), clicked recorded; seen kept.
    let r = get(click.clone()).await;
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], LINK);
    let clicked = app
        .call("GET", &format!("/v1/message/{email_id}/"), None)
        .await
        .expect(200);
    assert!(clicked["clicked_at"].is_string(), "{clicked}");
    assert_eq!(clicked["seen_at"], seen_at.as_str(), "the first time wins");
    // Again: the same redirect, the same times.
    let again = get(click).await;
    assert_eq!(again.status().as_u16(), 302);
    let later = app
        .call("GET", &format!("/v1/message/{email_id}/"), None)
        .await
        .expect(200);
    assert_eq!(later["clicked_at"], clicked["clicked_at"]);
}

#[tokio::test]
async fn message_events_are_recorded_once_in_the_callers_environment_only() {
    let (app, _) = spawn().await;
    let (t0, log0) = inbox_sent(&app).await;
    let inbox_id = log0["inbox"]["message_id"].as_str().unwrap();
    let email_id = log0["email"]["message_id"].as_str().unwrap();
    let path = format!("/v1/message/{inbox_id}/event/");

    // Another environment's key: no such message there, and nothing recorded.
    app.call_in(Env::Live, "POST", &path, Some(json!({"event": "seen"})))
        .await
        .expect_error(404, None);
    let untouched = app
        .call("GET", &format!("/v1/message/{inbox_id}/"), None)
        .await
        .expect(200);
    assert_eq!(untouched["seen_at"], Value::Null);

    // Refused input, naming the field.
    for body in [json!({}), json!({"event": "opened"}), json!({"event": 3})] {
        app.call("POST", &path, Some(body))
            .await
            .expect_error(400, Some("event"));
    }
    // A message that never went out (the waiting email) cannot be engaged with.
    app.call(
        "POST",
        &format!("/v1/message/{email_id}/event/"),
        Some(json!({"event": "seen"})),
    )
    .await
    .expect_error(409, Some("event"));

    // A click: clicked and seen, once.
    let clicked = app
        .call("POST", &path, Some(json!({"event": "clicked"})))
        .await
        .expect(200);
    assert!(clicked["clicked_at"].is_string());
    assert_eq!(clicked["seen_at"], clicked["clicked_at"]);
    let again = app
        .call("POST", &path, Some(json!({"event": "clicked"})))
        .await
        .expect(200);
    assert_eq!(again["clicked_at"], clicked["clicked_at"]);
    let delivered = app
        .call("POST", &path, Some(json!({"event": "delivered"})))
        .await
        .expect(200);
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(statuses(&delivered), ["queued", "sent", "delivered"]);

    // The click counts as engagement: the email is skipped when its wait is over.
    worker::drain_at(&app.app, t0 + Duration::minutes(15)).await;
    let after = log(&app).await;
    assert_eq!(after["email"]["reason"], "engaged");
}
