//! `herald user import` and `export`: NDJSON lines become profiles through the upsert rules,
//! refused lines are named and skipped, lines of one user keep their order; an export imported
//! elsewhere recreates every profile.

use crate::harness::TestApp;
use chrono::Utc;
use herald_core::history::Actor;
use herald_core::service::Ctx;
use herald_core::{Env, EnvScope};
use herald_server::import::{self, Format, Reader, Summary};
use herald_server::ndjson;
use serde_json::{json, Value};
use std::cell::Cell;

fn ctx(env: Env) -> Ctx {
    Ctx::new(EnvScope::operator(env), Actor::cli(), Utc::now())
}

/// Imports NDJSON `text` as `herald user import` does: the summary, the refused lines (number,
/// reason) and the bytes reported read.
async fn import_ndjson(app: &TestApp, env: Env, text: &str) -> (Summary, Vec<(u64, String)>, u64) {
    let reader = Reader::new(
        std::io::Cursor::new(text.to_owned().into_bytes()),
        Format::Ndjson,
    )
    .unwrap();
    let mut refused = Vec::new();
    let mut read = 0;
    let summary = import::run(app.store.as_ref(), &ctx(env), reader, false, |p| {
        refused.extend(
            p.outcome
                .refused
                .iter()
                .map(|r| (r.line, r.error.to_string())),
        );
        read = p.bytes;
        Ok(())
    })
    .await
    .unwrap();
    (summary, refused, read)
}

#[tokio::test]
async fn lines_become_profiles_and_refused_lines_are_named() {
    let app = TestApp::spawn().await;
    // A byte-order mark and Windows line ends, as spreadsheet tools write them, are fine.
    let mut file = String::from("\u{feff}{\"distinct_id\": \"bom\"}\r\n");
    for i in 0..600 {
        file += &format!(
            "{}\n",
            json!({"distinct_id": format!("u{i}"), "name": format!("User {i}"), "plan": "pro", "$email": [format!("u{i}@example.com")]})
        );
    }
    // The same user again further on: applied after the first line, adding to it.
    file += "{\"distinct_id\": \"u7\", \"plan\": \"team\", \"$sms\": [\"+14155550123\"]}\n\n";
    file += "{\"distinct_id\": \"bad-email\", \"$email\": [\"nope\"]}\n";
    file += "{\"name\": \"no id\"}\n";
    file += "not json\n";
    file += "{\"distinct_id\": \"last\", \"country\": \"GBR\"}";
    let (summary, refused, read) = import_ndjson(&app, Env::Test, &file).await;
    assert_eq!(summary.applied, 603);
    let refused: Vec<(u64, &str)> = refused
        .iter()
        .map(|(n, r)| (*n, r.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        refused,
        [
            (604, "$email[0]"),
            (605, "distinct_id"),
            (606, "not valid JSON")
        ],
    );
    assert_eq!(read, file.len() as u64, "progress covers every byte");

    let u7 = app.user("u7").await;
    assert_eq!(u7["properties"]["plan"], "team");
    assert_eq!(u7["$email"][0]["value"], "u7@example.com");
    assert_eq!(u7["$sms"][0]["value"], "+14155550123");
    assert_eq!(app.user("last").await["properties"]["country"], "GB");
    app.call("GET", "/v1/user/bad-email/", None)
        .await
        .expect_error(404, None);
    let list = app.call("GET", "/v1/user/?limit=1", None).await.expect(200);
    assert_eq!(list["meta"]["count"], 602);
    let history = app
        .call("GET", "/v1/user/u1/history/", None)
        .await
        .expect(200);
    assert_eq!(history["results"][0]["actor"]["kind"], "cli");

    // Running the same file again leaves every profile as it was. Only u7, on two lines with
    // different plans, passes through its first line's value again (and its history says so).
    let without_u7 = |snapshot: serde_json::Value| -> Vec<serde_json::Value> {
        snapshot
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["profile"]["distinct_id"] != "u7")
            .cloned()
            .collect()
    };
    let before = without_u7(app.snapshot(Env::Test).await);
    let (again, _, _) = import_ndjson(&app, Env::Test, &file).await;
    assert_eq!((again.applied, again.refused), (603, 3));
    assert!(
        without_u7(app.snapshot(Env::Test).await) == before,
        "a second run changed a profile"
    );
    let u7_again = app.user("u7").await;
    assert_eq!(
        (
            &u7_again["properties"],
            &u7_again["$email"],
            &u7_again["$sms"]
        ),
        (&u7["properties"], &u7["$email"], &u7["$sms"])
    );
    let live = app
        .call_in(Env::Live, "GET", "/v1/user/?limit=1", None)
        .await
        .expect(200);
    assert_eq!(live["meta"]["count"], 0);
}

#[tokio::test]
async fn an_export_imported_into_the_other_environment_recreates_every_profile() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({
            "name": "Ada", "plan": "pro", "prefs": {"theme": "dark"}, "$status": "disabled",
            "$email": ["ada@example.com", "ada@work.example"], "$sms": ["+447700900123"],
            "$androidpush": [{"token": "fcm-1", "provider": "xiaomi", "bundle_id": "com.x", "device_id": "d1"}],
            "$webpush": [{"endpoint": "https://push.example/1", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}],
            "$slack": [{"email": "ada@example.com", "access_token": "xoxb-1"}],
            "$inbox": ["inbox-ada"]
        })),
    )
    .await
    .expect(201);
    for i in 0..1500 {
        app.call("POST", &format!("/v1/user/u{i:04}/"), Some(json!({"n": i})))
            .await
            .expect(201);
    }
    let mut file = Vec::new();
    let pages = Cell::new(0);
    let written = ndjson::export(
        app.store.as_ref(),
        EnvScope::operator(Env::Test),
        Default::default(),
        &ndjson::Shape::Ndjson,
        &mut file,
        |_| pages.set(pages.get() + 1),
    )
    .await
    .unwrap();
    assert_eq!((written, pages.get()), (1501, 2));
    let text = String::from_utf8(file).unwrap();
    assert_eq!(text.lines().count(), 1501);
    assert!(text
        .lines()
        .next()
        .unwrap()
        .starts_with("{\"distinct_id\":\"ada\""));

    let (summary, _, _) = import_ndjson(&app, Env::Live, &text).await;
    assert_eq!((summary.applied, summary.refused), (1501, 0));
    let same = |mut v: Value| {
        for k in ["created_at", "updated_at", "version"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    for id in ["ada", "u0000", "u1499"] {
        let path = format!("/v1/user/{id}/");
        let test = app.call_in(Env::Test, "GET", &path, None).await.expect(200);
        let live = app.call_in(Env::Live, "GET", &path, None).await.expect(200);
        assert_eq!(same(live), same(test), "{id}");
    }
}
