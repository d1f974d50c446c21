//! Delivery policies end to end through the real server, with the worker driven at chosen
//! times (`worker::drain_at`) instead of sleeps: quiet hours in the user's time zone (held
//! until the window ends; a mandatory category is not held; the workspace default and a user's
//! opt-out), throttles (5 triggers with limit 3 → 3 sent, 2 `throttled`, also from two nodes
//! at once), and digests (flushed once at the window's end with every item rendered, or when
//! full; a claim lost in a crash is sent once by the next worker; planned with the union of
//! its triggers' `$channels`; given up and logged `failed` when its render keeps failing).

use crate::harness::TestApp;
use chrono::{DateTime, DurationRound, FixedOffset, TimeDelta, Utc};
use herald_core::quiet::{QuietHours, Workspace};
use herald_server::worker;
use serde_json::{json, Value};

/// `HH:MM` of `t` at `offset_hours` from UTC (Tokyo is +9 all year).
fn hhmm(t: DateTime<Utc>, offset_hours: i32) -> String {
    let offset = FixedOffset::east_opt(offset_hours * 3600).unwrap();
    t.with_timezone(&offset).format("%H:%M").to_string()
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap()
}

async fn put(app: &TestApp, path: &str, body: Value) {
    let r = app.call("PUT", path, Some(body)).await;
    assert!([200, 201].contains(&r.status), "{path}: {}", r.body);
}

/// An inbox-only workflow `slug` with `extra` keys (category, throttle, digest).
async fn workflow(app: &TestApp, slug: &str, title: &str, body: &str, extra: Value) {
    let mut w = json!({"channels": {"inbox": {"title": title, "body": body}}});
    for (k, v) in extra.as_object().unwrap() {
        w[k] = v.clone();
    }
    put(app, &format!("/v1/workflow/{slug}/"), w).await;
}

async fn user(app: &TestApp, id: &str, props: Value) {
    let mut body = json!({"$inbox": [id]});
    for (k, v) in props.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.call("POST", &format!("/v1/user/{id}/"), Some(body))
        .await
        .expect(201);
}

async fn trigger(app: &TestApp, slug: &str, id: &str, data: Value) {
    app.call(
        "POST",
        "/trigger/",
        Some(json!({"workflow": slug, "recipients": [id], "data": data})),
    )
    .await
    .expect(202);
}

/// The user's log, oldest first.
async fn log(app: &TestApp, id: &str) -> Vec<Value> {
    let page = app
        .call("GET", &format!("/v1/user/{id}/message/?limit=100"), None)
        .await
        .expect(200);
    let mut all = page["results"].as_array().unwrap().clone();
    all.reverse();
    all
}

/// The user's inbox items, oldest first, as `title|body`.
async fn inbox(app: &TestApp, id: &str) -> Vec<String> {
    let page = app
        .call("GET", &format!("/v1/user/{id}/inbox/"), None)
        .await
        .expect(200);
    let mut all: Vec<String> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}|{}",
                i["title"].as_str().unwrap(),
                i["body"].as_str().unwrap()
            )
        })
        .collect();
    all.reverse();
    all
}

fn statuses(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .map(|m| {
            (
                m["status"].as_str().unwrap().to_owned(),
                m["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn quiet_hours_hold_a_message_until_the_window_ends_in_the_users_time_zone() {
    let now = Utc::now();
    // The workspace default: a window around now in UTC (for users with no window of their own).
    let default = QuietHours::parse(
        &hhmm(now - TimeDelta::hours(1), 0),
        &hhmm(now + TimeDelta::hours(3), 0),
    )
    .unwrap();
    let app = TestApp::spawn_with(|c| {
        c.quiet_hours.workspace = Workspace {
            window: Some(default),
            ..Workspace::default()
        }
    })
    .await;
    for (slug, preference) in [("news", "opt_in"), ("security", "mandatory")] {
        app.call(
            "POST",
            "/v1/category/",
            Some(json!({"category": slug, "name": slug, "default_preference": preference})),
        )
        .await
        .expect(201);
    }
    workflow(
        &app,
        "digest-news",
        "News",
        "{{headline}}",
        json!({"category": "news"}),
    )
    .await;
    workflow(
        &app,
        "login-alert",
        "Alert",
        "{{where}}",
        json!({"category": "security"}),
    )
    .await;
    // Kenji, in Tokyo, is inside his own quiet hours now: from an hour ago to two hours ahead,
    // as his clock reads them.
    let tokyo = 9;
    let end = minute(now + TimeDelta::hours(2));
    let window = json!({"start": hhmm(now - TimeDelta::hours(1), tokyo), "end": hhmm(end, tokyo)});
    user(
        &app,
        "kenji",
        json!({"$timezone": "Asia/Tokyo", "$quiet_hours": window}),
    )
    .await;
    assert_eq!(
        app.user("kenji").await["properties"]["$quiet_hours"],
        window
    );

    trigger(
        &app,
        "digest-news",
        "kenji",
        json!({"headline": "Rates up"}),
    )
    .await;
    let held = log(&app, "kenji").await;
    assert_eq!(statuses(&held), pairs(&[("queued", "quiet_hours")]));
    let held_until = held[0]["held_until"].as_str().unwrap();
    assert_eq!(
        DateTime::parse_from_rfc3339(held_until).unwrap(),
        end,
        "the end of Kenji's window, in UTC: {}",
        held[0]
    );
    assert_eq!(held[0]["status_history"][0]["reason"], "quiet_hours");
    // Nothing goes out before the window ends, whenever the worker looks.
    assert_eq!(worker::drain_at(&app.app, now).await, 0);
    assert_eq!(
        worker::drain_at(&app.app, end - TimeDelta::seconds(1)).await,
        0
    );
    assert!(inbox(&app, "kenji").await.is_empty());
    // The urgent category is sent at once, quiet hours or not.
    trigger(&app, "login-alert", "kenji", json!({"where": "Osaka"})).await;
    let both = log(&app, "kenji").await;
    assert_eq!(both[1]["held_until"], Value::Null, "{}", both[1]);
    assert_eq!(worker::drain_at(&app.app, Utc::now()).await, 1);
    assert_eq!(inbox(&app, "kenji").await, ["Alert|Osaka"]);
    // The window ends: the held message goes.
    assert_eq!(worker::drain_at(&app.app, end).await, 1);
    assert_eq!(inbox(&app, "kenji").await, ["Alert|Osaka", "News|Rates up"]);
    let sent = log(&app, "kenji").await;
    assert_eq!(sent[0]["status"], "sent");
    assert_eq!(
        sent[0]["held_until"], held_until,
        "the log keeps when it was held until"
    );

    // Noor set nothing: the workspace's window holds her (in its time zone, UTC); Ola opted out.
    user(&app, "noor", json!({})).await;
    user(&app, "ola", json!({"$quiet_hours": {"off": true}})).await;
    trigger(&app, "digest-news", "noor", json!({"headline": "a"})).await;
    trigger(&app, "digest-news", "ola", json!({"headline": "b"})).await;
    let noor = log(&app, "noor").await;
    let default_end = minute(now + TimeDelta::hours(3));
    assert_eq!(
        DateTime::parse_from_rfc3339(noor[0]["held_until"].as_str().unwrap()).unwrap(),
        default_end
    );
    assert_eq!(log(&app, "ola").await[0]["held_until"], Value::Null);
    assert_eq!(worker::drain_at(&app.app, Utc::now()).await, 1);
    assert_eq!(inbox(&app, "ola").await, ["News|b"]);
    assert!(inbox(&app, "noor").await.is_empty());

    // A bad window is refused naming the property, and changes nothing.
    let before = app.user("kenji").await;
    let refused = app
        .call(
            "POST",
            "/v1/user/kenji/",
            Some(json!({"$quiet_hours": {"start": "25:00", "end": "08:00"}})),
        )
        .await
        .expect_error(400, Some("$quiet_hours"));
    assert!(
        refused["message"].as_str().unwrap().contains("start"),
        "{refused}"
    );
    assert_eq!(app.user("kenji").await, before);
}

#[tokio::test]
async fn a_throttle_lets_limit_triggers_through_per_window_and_skips_the_rest() {
    let app = TestApp::spawn().await;
    workflow(
        &app,
        "promo",
        "Promo",
        "{{n}}",
        json!({"throttle": {"limit": 3, "window": "1h"}}),
    )
    .await;
    let saved = app
        .call("GET", "/v1/workflow/promo/", None)
        .await
        .expect(200);
    assert_eq!(saved["throttle"], json!({"limit": 3, "window": "1h"}));
    user(&app, "tara", json!({})).await;
    for n in 1..=5 {
        trigger(&app, "promo", "tara", json!({"n": n})).await;
    }
    assert_eq!(
        statuses(&log(&app, "tara").await),
        pairs(&[
            ("queued", ""),
            ("queued", ""),
            ("queued", ""),
            ("skipped", "throttled"),
            ("skipped", "throttled"),
        ])
    );
    assert_eq!(worker::drain(&app.app).await, 3);
    // (Sent side by side: the inbox's order is the order they arrived in.)
    let mut sent = inbox(&app, "tara").await;
    sent.sort();
    assert_eq!(sent, ["Promo|1", "Promo|2", "Promo|3"]);
    // Another user has a window of their own.
    user(&app, "uma", json!({})).await;
    trigger(&app, "promo", "uma", json!({"n": 1})).await;
    assert_eq!(statuses(&log(&app, "uma").await), pairs(&[("queued", "")]));

    // Bad throttles are refused naming the field.
    for (throttle, field) in [
        (json!({"limit": 0, "window": "1h"}), "throttle.limit"),
        (json!({"limit": 2, "window": "soon"}), "throttle.window"),
        (json!({"limit": 2}), "throttle.window"),
    ] {
        app.call(
            "PUT",
            "/v1/workflow/bad/",
            Some(json!({"channels": {"inbox": {"body": "x"}}, "throttle": throttle})),
        )
        .await
        .expect_error(400, Some(field));
    }
    app.call(
        "PUT",
        "/v1/workflow/bad/",
        Some(json!({"channels": {"inbox": {"body": "x"}}, "throttle": {"limit": 1, "window": "1h"}, "digest": {"window": "1h"}})),
    )
    .await
    .expect_error(400, Some("digest"));
}

#[tokio::test]
async fn a_throttle_is_exact_when_two_nodes_trigger_at_once() {
    let app = TestApp::spawn().await;
    workflow(
        &app,
        "promo",
        "Promo",
        "{{n}}",
        json!({"throttle": {"limit": 3, "window": "1h"}}),
    )
    .await;
    user(&app, "vic", json!({})).await;
    let other = app.another_node().await;
    let sends = (0..10).map(|n| {
        let node = if n % 2 == 0 { &app } else { &other };
        trigger(node, "promo", "vic", json!({"n": n}))
    });
    futures_util::future::join_all(sends).await;
    let all = log(&app, "vic").await;
    let queued = all.iter().filter(|m| m["status"] == "queued").count();
    let throttled = all.iter().filter(|m| m["reason"] == "throttled").count();
    assert_eq!((queued, throttled), (3, 7), "{:?}", statuses(&all));
}

#[tokio::test]
async fn a_digest_collects_triggers_and_sends_them_once_when_its_window_ends() {
    let app = TestApp::spawn().await;
    workflow(
        &app,
        "daily",
        "{{digest.count}} updates",
        "{{#each digest.items}}{{this.title}};{{/each}}",
        json!({"digest": {"window": "1h"}}),
    )
    .await;
    let saved = app
        .call("GET", "/v1/workflow/daily/", None)
        .await
        .expect(200);
    assert_eq!(saved["digest"], json!({"window": "1h"}));
    user(&app, "dina", json!({})).await;
    let first = Utc::now();
    for title in ["a", "b", "c"] {
        trigger(&app, "daily", "dina", json!({"title": title})).await;
    }
    // Each trigger is logged as collected, nothing is sent yet.
    assert_eq!(
        statuses(&log(&app, "dina").await),
        pairs(&[
            ("skipped", "digested"),
            ("skipped", "digested"),
            ("skipped", "digested")
        ])
    );
    assert_eq!(worker::drain_at(&app.app, first).await, 0);
    assert_eq!(
        worker::drain_at(&app.app, first + TimeDelta::minutes(59)).await,
        0
    );
    // A worker claims the due digest and dies before sending it: nothing is lost, and the
    // digest is not sent while its lease runs.
    let due = Utc::now() + TimeDelta::hours(1);
    let lost = app
        .store
        .claim_digests(due, std::time::Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(lost.len(), 1);
    let items: Vec<&Value> = lost[0].items.iter().map(|i| &i.data).collect();
    assert_eq!(
        items,
        [
            &json!({"title": "a"}),
            &json!({"title": "b"}),
            &json!({"title": "c"})
        ]
    );
    assert_eq!(worker::drain_at(&app.app, due).await, 0);
    assert!(inbox(&app, "dina").await.is_empty());
    // Once the lease has run out, the next worker sends it, once.
    let later = due + TimeDelta::seconds(61);
    assert_eq!(
        worker::drain_at(&app.app, later).await,
        2,
        "the digest, then its message"
    );
    assert_eq!(inbox(&app, "dina").await, ["3 updates|a;b;c;"]);
    assert!(
        !app.store.finish_digest(&lost[0], Vec::new()).await.unwrap(),
        "the dead worker's claim is stale"
    );
    assert_eq!(
        worker::drain_at(&app.app, later + TimeDelta::hours(5)).await,
        0
    );
    assert_eq!(inbox(&app, "dina").await.len(), 1, "never sent twice");
    let all = log(&app, "dina").await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[3]["status"], "sent");
    assert_eq!(all[3]["reason"], "digest of 3 items");
    assert!(all[3]["trigger_id"].as_str().unwrap().starts_with("dgs_"));

    // A new trigger opens a new digest.
    trigger(&app, "daily", "dina", json!({"title": "d"})).await;
    assert_eq!(worker::drain_at(&app.app, Utc::now()).await, 0);
    let next = Utc::now() + TimeDelta::hours(1);
    assert_eq!(worker::drain_at(&app.app, next).await, 2);
    assert_eq!(
        inbox(&app, "dina").await,
        ["3 updates|a;b;c;", "1 updates|d;"]
    );
}

#[tokio::test]
async fn a_digest_with_a_count_is_sent_when_full() {
    let app = TestApp::spawn().await;
    workflow(
        &app,
        "batch",
        "{{digest.count}} new",
        "{{#each digest.items}}{{this.n}},{{/each}}",
        json!({"digest": {"count": 3}}),
    )
    .await;
    user(&app, "eli", json!({})).await;
    trigger(&app, "batch", "eli", json!({"n": 1})).await;
    trigger(&app, "batch", "eli", json!({"n": 2})).await;
    // Not full: it waits, however late the worker looks.
    assert_eq!(
        worker::drain_at(&app.app, Utc::now() + TimeDelta::days(60)).await,
        0
    );
    trigger(&app, "batch", "eli", json!({"n": 3})).await;
    assert_eq!(worker::drain_at(&app.app, Utc::now()).await, 2);
    assert_eq!(inbox(&app, "eli").await, ["3 new|1,2,3,"]);
    trigger(&app, "batch", "eli", json!({"n": 4})).await;
    assert_eq!(
        worker::drain_at(&app.app, Utc::now()).await,
        0,
        "a new digest"
    );
    // Deleting the workflow drops its open digest: one made again with the slug starts empty.
    app.call("DELETE", "/v1/workflow/batch/", None)
        .await
        .expect(204);
    workflow(
        &app,
        "batch",
        "{{digest.count}} new",
        "{{#each digest.items}}{{this.n}},{{/each}}",
        json!({"digest": {"count": 2}}),
    )
    .await;
    trigger(&app, "batch", "eli", json!({"n": 5})).await;
    assert_eq!(worker::drain_at(&app.app, Utc::now()).await, 0);
    trigger(&app, "batch", "eli", json!({"n": 6})).await;
    assert_eq!(worker::drain_at(&app.app, Utc::now()).await, 2);
    assert_eq!(inbox(&app, "eli").await, ["3 new|1,2,3,", "2 new|5,6,"]);

    for (digest, field) in [
        (json!({}), "digest"),
        (json!({"count": 1}), "digest.count"),
        (json!({"window": "forever"}), "digest.window"),
    ] {
        app.call(
            "PUT",
            "/v1/workflow/bad/",
            Some(json!({"channels": {"inbox": {"body": "x"}}, "digest": digest})),
        )
        .await
        .expect_error(400, Some(field));
    }
}

/// The (channel, status) of the messages digest flushes recorded for `id`, sorted.
async fn digest_messages(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let mut sent: Vec<(String, String)> = log(app, id)
        .await
        .iter()
        .filter(|m| m["trigger_id"].as_str().unwrap().starts_with("dgs_"))
        .map(|m| {
            (
                m["channel"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    sent.sort();
    sent
}

#[tokio::test]
async fn a_digest_keeps_its_triggers_channels_and_is_planned_with_their_union() {
    const HOOK: &str = "https://discord.com/api/webhooks/123/abc";
    let app = TestApp::spawn().await;
    put(
        &app,
        "/v1/workflow/mixed/",
        json!({
            "channels": {"inbox": {"body": "{{digest.count}}"}, "discord": {"content": "{{digest.count}}"}},
            "digest": {"window": "1h"}
        }),
    )
    .await;
    for id in ["rita", "sam", "tom"] {
        user(&app, id, json!({"$discord": HOOK})).await;
    }
    let to = |id: &str, channels: Option<&[&str]>| match channels {
        Some(c) => json!({"distinct_id": id, "$channels": c}),
        None => json!(id),
    };
    let triggers = [
        // Only the inbox, twice: the digest goes to the inbox alone.
        to("rita", Some(&["inbox"])),
        to("rita", Some(&["inbox"])),
        // One for the inbox, one for Discord: both channels (the union).
        to("sam", Some(&["inbox"])),
        to("sam", Some(&["discord"])),
        // One restricted, one not: every channel.
        to("tom", Some(&["discord"])),
        to("tom", None),
    ];
    for recipient in triggers {
        app.call(
            "POST",
            "/trigger/",
            Some(json!({"workflow": "mixed", "recipients": [recipient], "data": {}})),
        )
        .await
        .expect(202);
    }
    // Collected, each trigger logged on its own channels only.
    let collected: Vec<_> = log(&app, "rita")
        .await
        .iter()
        .map(|m| (m["channel"].clone(), m["reason"].clone()))
        .collect();
    let inbox_digested = (json!("inbox"), json!("digested"));
    assert_eq!(collected, [inbox_digested.clone(), inbox_digested]);
    // Flushing records the digests' messages (nothing is sent to Discord: no drain).
    let due = Utc::now() + TimeDelta::hours(1);
    assert_eq!(worker::flush_digests(&app.app, due).await.unwrap(), 3);
    let queued = |channels: &[&str]| -> Vec<(String, String)> {
        channels
            .iter()
            .map(|c| ((*c).to_owned(), "queued".to_owned()))
            .collect()
    };
    assert_eq!(digest_messages(&app, "rita").await, queued(&["inbox"]));
    assert_eq!(
        digest_messages(&app, "sam").await,
        queued(&["discord", "inbox"])
    );
    assert_eq!(
        digest_messages(&app, "tom").await,
        queued(&["discord", "inbox"])
    );
}

#[tokio::test]
async fn a_digest_whose_render_keeps_failing_is_given_up_and_logged_failed() {
    let app = TestApp::spawn().await;
    // Eight items through six nested loops: 8^6 iterations, past the render limit.
    let nested = format!(
        "{}x{}",
        "{{#each @root.digest.items}}".repeat(6),
        "{{/each}}".repeat(6)
    );
    workflow(
        &app,
        "heavy",
        "{{digest.count}} updates",
        &nested,
        json!({"digest": {"window": "1h"}}),
    )
    .await;
    user(&app, "una", json!({})).await;
    for n in 0..8 {
        trigger(&app, "heavy", "una", json!({"n": n})).await;
    }
    let lease = TimeDelta::seconds(app.app.config.dispatch.lease_secs as i64 + 1);
    let mut at = Utc::now() + TimeDelta::hours(1);
    // Each claim fails to render and leaves the digest to its lease; nothing is logged yet.
    for _ in 1..herald_core::digest::MAX_CLAIMS {
        assert_eq!(worker::drain_at(&app.app, at).await, 1, "claimed");
        assert_eq!(
            log(&app, "una").await.len(),
            8,
            "only the collected triggers"
        );
        assert_eq!(worker::drain_at(&app.app, at).await, 0, "leased");
        at += lease;
    }
    // The last claim gives it up: the inbox message is logged failed with the reason.
    assert_eq!(worker::drain_at(&app.app, at).await, 1);
    let all = log(&app, "una").await;
    assert_eq!(all.len(), 9);
    let failed = &all[8];
    assert_eq!(failed["channel"], "inbox");
    assert_eq!(failed["status"], "failed");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("digest_failed: ")
            && reason.ends_with(&format!(
                "(gave up after {} attempts)",
                herald_core::digest::MAX_CLAIMS
            )),
        "{reason}"
    );
    assert!(reason.contains("iterations"), "names the limit: {reason}");
    assert!(inbox(&app, "una").await.is_empty());
    // The digest is gone: never claimed again.
    assert_eq!(worker::drain_at(&app.app, at + TimeDelta::days(1)).await, 0);
    assert_eq!(log(&app, "una").await.len(), 9);
    // A new trigger opens a new digest.
    trigger(&app, "heavy", "una", json!({"n": 9})).await;
    assert_eq!(
        worker::drain_at(&app.app, Utc::now() + TimeDelta::hours(2)).await,
        2,
        "the digest, then its message"
    );
    assert_eq!(inbox(&app, "una").await, ["1 updates|x"]);
}
