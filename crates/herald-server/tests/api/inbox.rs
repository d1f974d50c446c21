//! The in-app inbox end to end: a workflow's inbox template triggered for a user with an `$inbox`
//! identity lands in `GET /v1/user/{id}/inbox/` once the worker ran; counts and marks (one,
//! all); at-least-once delivery makes one item; environments never cross; deleting the user
//! erases the inbox; the browser routes take a subscriber_id (a wrong one is 401) and stream new
//! items and counts as Server-Sent Events, on PostgreSQL also from another node.

use crate::harness::{utf8_percent_encode, Keys, TestApp};
use herald_core::channel::{Channel, Identity};
use herald_core::delivery::{Content, Delivery, Outgoing};
use herald_core::Env;
use herald_server::worker;
use serde_json::{json, Value};
use std::time::Duration;

/// A workflow that sends only to the inbox, and a user `id` with an `$inbox` identity, in `env`.
async fn setup(app: &TestApp, env: Env, id: &str) {
    let workflow = json!({
        "slug": "welcome", "name": "Welcome",
        "channels": {"inbox": {
            "title": "Hello {{$recipient.name}}",
            "body": "Your code is {{code}}",
            "action_url": "https://example.com/code/{{code}}"
        }}
    });
    let created = app
        .call_in(env, "PUT", "/v1/workflow/welcome/", Some(workflow))
        .await;
    assert!([200, 201].contains(&created.status), "{}", created.body);
    app.call_in(
        env,
        "POST",
        &format!("/v1/user/{id}/"),
        Some(json!({"name": id.to_uppercase(), "$inbox": [id]})),
    )
    .await
    .expect(201);
}

/// Triggers `welcome` for `id` in `env` with `code`; the id of the (one) message it made.
async fn trigger(app: &TestApp, env: Env, id: &str, code: &str) -> String {
    app.call_in(
        env,
        "POST",
        "/trigger/",
        Some(json!({"workflow": "welcome", "recipients": [id], "data": {"code": code}})),
    )
    .await
    .expect(202);
    let log = app
        .call_in(
            env,
            "GET",
            &format!("/v1/user/{}/message/?limit=1", utf8_percent_encode(id)),
            None,
        )
        .await
        .expect(200);
    assert_eq!(log["results"][0]["channel"], "inbox", "{log}");
    log["results"][0]["message_id"].as_str().unwrap().to_owned()
}

async fn inbox(app: &TestApp, env: Env, id: &str) -> Value {
    app.call_in(env, "GET", &format!("/v1/user/{id}/inbox/"), None)
        .await
        .expect(200)
}

fn ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message_id"].as_str().unwrap().to_owned())
        .collect()
}

fn counts(total: u64, unseen: u64, unread: u64, archived: u64) -> Value {
    json!({"total": total, "unseen": unseen, "unread": unread, "archived": archived})
}

async fn mark(app: &TestApp, path: &str, action: &str) -> Value {
    app.call("POST", path, Some(json!({ "action": action })))
        .await
        .expect(200)
}

#[tokio::test]
async fn a_triggered_inbox_message_is_delivered_rendered_and_logged_sent() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test, "ada").await;
    let id = trigger(&app, Env::Test, "ada", "314").await;
    assert!(
        ids(&inbox(&app, Env::Test, "ada").await).is_empty(),
        "not before the worker"
    );
    assert_eq!(worker::drain(&app.app).await, 1);

    let page = inbox(&app, Env::Test, "ada").await;
    assert_eq!(ids(&page), [id.as_str()]);
    let item = &page["results"][0];
    assert_eq!(item["title"], "Hello ADA");
    assert_eq!(item["body"], "Your code is 314");
    assert_eq!(item["action_url"], "https://example.com/code/314");
    assert_eq!(item["workflow"], "welcome");
    assert_eq!(item["seen_at"], Value::Null);
    assert_eq!(item["read_at"], Value::Null);
    assert_eq!(page["meta"]["counts"], counts(1, 1, 1, 0));
    assert_eq!(page["meta"]["count"], 1);
    let count = app
        .call("GET", "/v1/user/ada/inbox/count/", None)
        .await
        .expect(200);
    assert_eq!(count, counts(1, 1, 1, 0));

    // The log says sent, with the message id as the provider's id; nothing is left to send.
    let message = app
        .call("GET", &format!("/v1/message/{id}/"), None)
        .await
        .expect(200);
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["channel"], "inbox");
    assert_eq!(message["provider_id"], id.as_str());
    assert_eq!(worker::drain(&app.app).await, 0);

    // Delivered again (at least once: a worker whose lease ran out): still one item, marks kept.
    mark(&app, &format!("/v1/user/ada/inbox/{id}/mark/"), "read").await;
    let inbox_identity =
        Identity::parse(Channel::Inbox, &json!("ada"), &Default::default()).unwrap();
    let provider = app
        .providers
        .provider(Env::Test, &inbox_identity)
        .await
        .unwrap()
        .expect("the inbox has its provider");
    let again = provider
        .send(&Outgoing {
            env: Env::Test,
            message_id: id.clone(),
            identity: inbox_identity,
            content: Content::Inbox {
                title: "Hello ADA".into(),
                body: "Your code is 314".into(),
                action_url: None,
            },
        })
        .await;
    assert_eq!(
        again,
        Delivery::Sent {
            provider_id: Some(id.clone())
        }
    );
    let page = inbox(&app, Env::Test, "ada").await;
    assert_eq!(ids(&page), [id.as_str()], "one item per message");
    assert!(page["results"][0]["read_at"].is_string(), "{page}");
    assert_eq!(page["meta"]["counts"], counts(1, 0, 0, 0));
}

#[tokio::test]
async fn marks_change_one_item_or_all_and_the_counts() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test, "ada").await;
    setup(&app, Env::Test, "bob").await;
    // Delivered one at a time: items are listed in the order they arrived (a worker sends a
    // batch concurrently, so one drain of several would arrive in any order).
    let mut delivered = Vec::new();
    for (user, code) in [("ada", "1"), ("ada", "2"), ("ada", "3"), ("bob", "9")] {
        delivered.push(trigger(&app, Env::Test, user, code).await);
        assert_eq!(worker::drain(&app.app).await, 1);
    }
    let [first, second, third, bobs] = <[String; 4]>::try_from(delivered).unwrap();
    let page = inbox(&app, Env::Test, "ada").await;
    assert_eq!(
        ids(&page),
        [third.clone(), second.clone(), first.clone()],
        "newest first"
    );

    let read = mark(&app, &format!("/v1/user/ada/inbox/{first}/mark/"), "read").await;
    assert_eq!(read["item"]["message_id"], first.as_str());
    assert!(read["item"]["read_at"].is_string() && read["item"]["seen_at"].is_string());
    assert_eq!(read["counts"], counts(3, 2, 2, 0));
    let archived = mark(
        &app,
        &format!("/v1/user/ada/inbox/{second}/mark/"),
        "archive",
    )
    .await;
    assert!(archived["item"]["archived_at"].is_string());
    assert_eq!(archived["counts"], counts(3, 1, 1, 1));
    // Filters: the inbox without its archive, unread in it, the archive.
    let unread = app
        .call("GET", "/v1/user/ada/inbox/?read=false&archived=false", None)
        .await
        .expect(200);
    assert_eq!(ids(&unread), [third.as_str()]);
    let archive = app
        .call("GET", "/v1/user/ada/inbox/?archived=true", None)
        .await
        .expect(200);
    assert_eq!(ids(&archive), [second.as_str()]);
    // Paging: one at a time, following meta.after.
    let one = app
        .call("GET", "/v1/user/ada/inbox/?limit=1", None)
        .await
        .expect(200);
    assert_eq!(ids(&one), [third.as_str()]);
    let after = one["meta"]["after"].as_str().unwrap();
    let two = app
        .call(
            "GET",
            &format!("/v1/user/ada/inbox/?limit=1&after={after}"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&two), [second.as_str()]);

    // All at once: only what changes is counted.
    let all = mark(&app, "/v1/user/ada/inbox/mark/", "read").await;
    assert_eq!(all["updated"], 2, "{all}");
    assert_eq!(all["counts"], counts(3, 0, 0, 1));
    let again = mark(&app, "/v1/user/ada/inbox/mark/", "read").await;
    assert_eq!(again["updated"], 0);
    let unread_all = mark(&app, "/v1/user/ada/inbox/mark/", "unread").await;
    assert_eq!(unread_all["counts"], counts(3, 0, 2, 1));
    let back = mark(&app, "/v1/user/ada/inbox/mark/", "unarchive").await;
    assert_eq!(
        (back["updated"].clone(), back["counts"].clone()),
        (json!(1), counts(3, 0, 3, 0))
    );

    // Another user's item is not found through this user, and theirs did not move.
    app.call(
        "POST",
        &format!("/v1/user/ada/inbox/{bobs}/mark/"),
        Some(json!({"action": "read"})),
    )
    .await
    .expect_error(404, None);
    assert_eq!(
        inbox(&app, Env::Test, "bob").await["meta"]["counts"],
        counts(1, 1, 1, 0)
    );

    // Bad input names the field and changes nothing.
    for (path, body, field) in [
        (
            "/v1/user/ada/inbox/mark/",
            json!({"action": "delete"}),
            "action",
        ),
        ("/v1/user/ada/inbox/mark/", json!({}), "action"),
        (
            "/v1/user/ada/inbox/mark/",
            json!({"action": "read", "ids": []}),
            "ids",
        ),
        (
            &format!("/v1/user/ada/inbox/{first}/mark/") as &str,
            json!({"action": 3}),
            "action",
        ),
    ] {
        app.call("POST", path, Some(body))
            .await
            .expect_error(400, Some(field));
    }
    let long = "m".repeat(300);
    app.call(
        "POST",
        &format!("/v1/user/ada/inbox/{long}/mark/"),
        Some(json!({"action": "read"})),
    )
    .await
    .expect_error(400, Some("message_id"));
    for (query, field) in [
        ("limit=0", "limit"),
        ("read=yes", "read"),
        ("after=x", "after"),
    ] {
        app.call("GET", &format!("/v1/user/ada/inbox/?{query}"), None)
            .await
            .expect_error(400, Some(field));
    }
    assert_eq!(
        inbox(&app, Env::Test, "ada").await["meta"]["counts"],
        counts(3, 0, 3, 0)
    );
}

#[tokio::test]
async fn test_and_live_inboxes_never_cross_and_deleting_the_user_erases_theirs() {
    let app = TestApp::spawn().await;
    for env in Env::ALL {
        setup(&app, env, "ada").await;
    }
    let test_id = trigger(&app, Env::Test, "ada", "1").await;
    let live_id = trigger(&app, Env::Live, "ada", "2").await;
    assert_eq!(worker::drain(&app.app).await, 2);
    assert_eq!(
        ids(&inbox(&app, Env::Test, "ada").await),
        [test_id.as_str()]
    );
    assert_eq!(
        ids(&inbox(&app, Env::Live, "ada").await),
        [live_id.as_str()]
    );
    // The test key cannot mark a live item, nor read live's secret.
    app.call(
        "POST",
        &format!("/v1/user/ada/inbox/{live_id}/mark/"),
        Some(json!({"action": "archive"})),
    )
    .await
    .expect_error(404, None);
    let test_secret = app.call("GET", "/v1/inbox/secret/", None).await.expect(200);
    let live_secret = app
        .call_in(Env::Live, "GET", "/v1/inbox/secret/", None)
        .await
        .expect(200);
    assert_eq!(
        (test_secret["env"].as_str(), live_secret["env"].as_str()),
        (Some("test"), Some("live"))
    );
    assert_ne!(test_secret["secret"], live_secret["secret"]);
    // A test subscriber id opens nothing in live.
    let sub = subscriber(&app, Env::Test, "ada").await;
    app.raw(
        "GET",
        &format!("/inbox/{}/ada/?subscriber_id={sub}", app.live.workspace_key),
        &[],
    )
    .await
    .expect_error(401, None);

    app.call("DELETE", "/v1/user/ada/", None).await.expect(204);
    let gone = inbox(&app, Env::Test, "ada").await;
    assert!(ids(&gone).is_empty(), "{gone}");
    assert_eq!(gone["meta"]["counts"], counts(0, 0, 0, 0));
    assert_eq!(ids(&inbox(&app, Env::Live, "ada").await), [live_id]);
}

/// The user's subscriber id, as the API computes it.
async fn subscriber(app: &TestApp, env: Env, id: &str) -> String {
    let body = app
        .call_in(
            env,
            "GET",
            &format!("/v1/user/{id}/inbox/subscriber/"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(body["workspace_key"], app.keys(env).workspace_key.as_str());
    body["subscriber_id"].as_str().unwrap().to_owned()
}

fn browser_path(keys: &Keys, id: &str, rest: &str, subscriber_id: &str) -> String {
    format!(
        "/inbox/{}/{}/{rest}?subscriber_id={subscriber_id}",
        keys.workspace_key,
        utf8_percent_encode(id)
    )
}

#[tokio::test]
async fn browsers_use_a_subscriber_id_computed_from_the_inbox_secret() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test, "ada@example.com").await;
    let id = trigger(&app, Env::Test, "ada@example.com", "7").await;
    worker::drain(&app.app).await;
    let secret = app.call("GET", "/v1/inbox/secret/", None).await.expect(200);
    let secret = secret["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    // The documented recipe gives the id the API hands out.
    let ada = herald_core::DistinctId::parse("ada@example.com").unwrap();
    let sub = herald_core::inbox::subscriber_id(&secret, &ada);
    assert_eq!(subscriber(&app, Env::Test, "ada@example.com").await, sub);

    let keys = app.test.clone();
    let list = app
        .raw(
            "GET",
            &browser_path(&keys, "ada@example.com", "", &sub),
            &[],
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(ids(&list.body), [id.as_str()]);
    let count = app
        .raw(
            "GET",
            &browser_path(&keys, "ada@example.com", "count/", &sub),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(count, counts(1, 1, 1, 0));
    // Marks, with a body sent as plain text (no preflight in a browser).
    let marked = app
        .raw_body(
            "POST",
            &browser_path(&keys, "ada@example.com", &format!("{id}/mark/"), &sub),
            &[("Content-Type", "text/plain")],
            r#"{"action": "read"}"#,
        )
        .await
        .expect(200);
    assert_eq!(marked["counts"], counts(1, 0, 0, 0));
    let all = app
        .raw_body(
            "POST",
            &browser_path(&keys, "ada@example.com", "mark/", &sub),
            &[],
            r#"{"action": "archive"}"#,
        )
        .await
        .expect(200);
    assert_eq!(all["counts"], counts(1, 0, 0, 1));
    // Any origin may read the answers; nothing caches them.
    let answer = app
        .http
        .get(format!(
            "{}{}",
            app.base,
            browser_path(&keys, "ada@example.com", "count/", &sub)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
    assert_eq!(answer.headers()["cache-control"], "no-store");

    // Refused: no id, a wrong one, another user's, an unknown workspace key; all 401 in the
    // envelope, the stream too.
    let bob = herald_core::DistinctId::parse("bob").unwrap();
    let bobs = herald_core::inbox::subscriber_id(&secret, &bob);
    let unknown = Keys {
        workspace_key: "hk_test_unknown".into(),
        ..keys.clone()
    };
    for path in [
        format!("/inbox/{}/ada%40example.com/", keys.workspace_key),
        browser_path(&keys, "ada@example.com", "", &"0".repeat(64)),
        browser_path(&keys, "ada@example.com", "", "not-hex"),
        browser_path(&keys, "ada@example.com", "", &bobs),
        browser_path(&unknown, "ada@example.com", "", &sub),
        browser_path(&keys, "ada@example.com", "stream/", &bobs),
        browser_path(
            &keys,
            "ada@example.com",
            "count/",
            &sub.to_uppercase()[..63],
        ),
    ] {
        app.raw("GET", &path, &[]).await.expect_error(401, None);
    }
    app.raw_body(
        "POST",
        &browser_path(&keys, "ada@example.com", "mark/", &bobs),
        &[],
        r#"{"action": "unarchive"}"#,
    )
    .await
    .expect_error(401, None);
    // A rotated secret retires every id made with the old one.
    let rotated = app
        .call("POST", "/v1/inbox/secret/rotate/", None)
        .await
        .expect(200);
    assert_ne!(rotated["secret"].as_str().unwrap(), secret);
    app.raw(
        "GET",
        &browser_path(&keys, "ada@example.com", "", &sub),
        &[],
    )
    .await
    .expect_error(401, None);
    let fresh = subscriber(&app, Env::Test, "ada@example.com").await;
    assert_ne!(fresh, sub);
    let count = app
        .raw(
            "GET",
            &browser_path(&keys, "ada@example.com", "count/", &fresh),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(count, counts(1, 0, 0, 1), "the archive mark held");
}

/// A reader of one Server-Sent Events response: each event's name and JSON data.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, path: &str) -> Events {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("the stream opens");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), waiting at most a bound so a missing event
    /// fails rather than hangs.
    async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut name = String::from("message");
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            name = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if data.is_empty() {
                        continue; // a keep-alive comment
                    }
                    return (name, serde_json::from_str(&data).expect("JSON data"));
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .expect("the stream reads")
                    .expect("the stream stays open");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("an event arrives")
    }
}

#[tokio::test]
async fn the_stream_sends_counts_then_new_items_and_marks() {
    let app = TestApp::spawn().await;
    setup(&app, Env::Test, "ada").await;
    setup(&app, Env::Test, "bob").await;
    let sub = subscriber(&app, Env::Test, "ada").await;
    let mut events = Events::open(&app, &browser_path(&app.test, "ada", "stream/", &sub)).await;
    assert_eq!(
        events.next().await,
        ("counts".into(), json!({"counts": counts(0, 0, 0, 0)}))
    );

    // An item triggered after the stream opened; bob's goes to bob only.
    trigger(&app, Env::Test, "bob", "1").await;
    let id = trigger(&app, Env::Test, "ada", "42").await;
    assert_eq!(worker::drain(&app.app).await, 2);
    let (name, data) = events.next().await;
    assert_eq!(name, "item");
    assert_eq!(data["item"]["message_id"], id.as_str());
    assert_eq!(data["item"]["title"], "Hello ADA");
    assert_eq!(data["item"]["body"], "Your code is 42");
    assert_eq!(data["counts"], counts(1, 1, 1, 0));

    // A mark (through the API) moves the counts.
    mark(&app, "/v1/user/ada/inbox/mark/", "seen").await;
    assert_eq!(
        events.next().await,
        ("counts".into(), json!({"counts": counts(1, 0, 1, 0)}))
    );
}

#[tokio::test]
async fn streams_per_user_are_bounded_and_a_closed_one_frees_its_place() {
    let app = TestApp::spawn_with(|c| {
        c.inbox.max_streams_per_user = 2;
        c.inbox.keep_alive_secs = 1;
    })
    .await;
    setup(&app, Env::Test, "ada").await;
    let sub = subscriber(&app, Env::Test, "ada").await;
    let path = browser_path(&app.test, "ada", "stream/", &sub);
    let mut first = Events::open(&app, &path).await;
    first.next().await;
    let mut second = Events::open(&app, &path).await;
    second.next().await;
    assert_eq!(app.app.inbox.streams(), 2);
    app.raw("GET", &path, &[]).await.expect_error(429, None);
    // Another user is not held back by ada's streams.
    setup(&app, Env::Test, "bob").await;
    let bobs = subscriber(&app, Env::Test, "bob").await;
    let mut bob = Events::open(&app, &browser_path(&app.test, "bob", "stream/", &bobs)).await;
    bob.next().await;
    drop(bob);
    // A client that goes away frees its place once the server notices (its next keep-alive).
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.app.inbox.streams() > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed streams were not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut again = Events::open(&app, &path).await;
    assert_eq!(again.next().await.0, "counts");
    drop(second);
}

#[tokio::test]
async fn a_stream_hears_items_delivered_by_another_node() {
    let app = TestApp::spawn().await;
    if !app.is_postgres() {
        eprintln!("!!! skipped: several nodes share one database on PostgreSQL only");
        return;
    }
    let other = app.another_node().await;
    setup(&app, Env::Test, "ada").await;
    let sub = subscriber(&app, Env::Test, "ada").await;
    let mut events = Events::open(&app, &browser_path(&app.test, "ada", "stream/", &sub)).await;
    assert_eq!(events.next().await.0, "counts");
    // Triggered and delivered on the other node: this node's store never wrote it.
    let id = trigger(&other, Env::Test, "ada", "99").await;
    assert_eq!(worker::drain(&other.app).await, 1);
    let (name, data) = events.next().await;
    assert_eq!(name, "item");
    assert_eq!(data["item"]["message_id"], id.as_str());
    assert_eq!(data["item"]["body"], "Your code is 99");
    // A mark on the other node reaches this node's stream too.
    other
        .call(
            "POST",
            "/v1/user/ada/inbox/mark/",
            Some(json!({"action": "read"})),
        )
        .await
        .expect(200);
    assert_eq!(
        events.next().await,
        ("counts".into(), json!({"counts": counts(1, 0, 0, 0)}))
    );
}

#[tokio::test]
async fn the_cli_prints_and_rotates_the_secret_and_subscriber_ids() {
    let app = TestApp::spawn().await;
    let herald = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .env("HERALD_DATABASE_URL", &app.config.database_url)
            .env("HERALD_LOG_LEVEL", "warn")
            .output()
            .expect("herald runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let secret = app.call("GET", "/v1/inbox/secret/", None).await.expect(200);
    assert_eq!(
        herald(&["inbox", "secret", "--env", "test"]),
        secret["secret"]
    );
    assert_eq!(
        herald(&["inbox", "subscriber", "ada", "--env", "test"]),
        subscriber(&app, Env::Test, "ada").await
    );
    let rotated = herald(&["inbox", "secret", "--env", "test", "--rotate"]);
    assert_ne!(rotated, secret["secret"].as_str().unwrap());
    let now = app.call("GET", "/v1/inbox/secret/", None).await.expect(200);
    assert_eq!(
        now["secret"],
        rotated.as_str(),
        "every node reads the stored secret"
    );
    let live = app
        .call_in(Env::Live, "GET", "/v1/inbox/secret/", None)
        .await
        .expect(200);
    assert_ne!(live["secret"], rotated.as_str(), "live's is its own");
}
