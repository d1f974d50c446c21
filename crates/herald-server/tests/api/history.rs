//! `GET /v1/user/{id}/history/`: every change, newest first, with who made it, what they sent and
//! the before and after of each changed key; tombstones for deletions and merges.

use crate::harness::{Auth, TestApp};
use chrono::DateTime;
use herald_core::Env;
use serde_json::{json, Value};

async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    app.call("GET", &format!("/v1/user/{id}/history/?limit=1000"), None)
        .await
        .expect(200)["results"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn every_change_is_recorded_newest_first_with_actor_request_and_diff() {
    let app = TestApp::spawn().await;
    let created =
        json!({"name": "Ada", "country": "gbr", "plan": "free", "$email": ["Ada@Example.COM"]});
    app.call("POST", "/v1/user/ada/", Some(created.clone()))
        .await
        .expect(201);
    let ops = json!({"operations": [
        {"$set": {"plan": "pro"}}, {"$unset": ["name"]}, {"$append": {"$sms": "+1 415 555 0123"}}
    ]});
    app.send(
        &app.test,
        Auth::Hmac,
        "PATCH",
        "/v1/user/ada/",
        Some(&ops.to_string()),
    )
    .await
    .expect(202);
    app.call(
        "PATCH",
        "/v1/user/ada/status/",
        Some(json!({"status": "disabled"})),
    )
    .await
    .expect(200);

    let events = history(&app, "ada").await;
    assert_eq!(events.len(), 3, "{events:?}");
    // Newest first: ids strictly decreasing, times never increasing.
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let times: Vec<_> = events
        .iter()
        .map(|e| DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert!(events.iter().all(|e| e["distinct_id"] == "ada"));

    let bearer = json!({"kind": "api_key", "id": &app.test.api_key[..12]});
    let signed = json!({"kind": "workspace_key", "id": app.test.workspace_key});

    // Creation: the body as sent (before normalisation), every key new, no `before`.
    let c = &events[2];
    assert_eq!(c["action"], "created");
    assert_eq!(c["actor"], bearer);
    assert_eq!(c["request"], created);
    assert_eq!(
        c["changes"],
        json!([
            {"key": "name", "after": "Ada"},
            {"key": "country", "after": "GB"},
            {"key": "plan", "after": "free"},
            {"key": "$status", "after": "enabled"},
            {"key": "$email", "after": ["Ada@example.com"]}
        ])
    );

    // The signed edit: removed keys have no `after`, new keys no `before`.
    let u = &events[1];
    assert_eq!(u["action"], "updated");
    assert_eq!(u["actor"], signed);
    assert_eq!(u["request"], ops);
    assert_eq!(
        u["changes"],
        json!([
            {"key": "name", "before": "Ada"},
            {"key": "plan", "before": "free", "after": "pro"},
            {"key": "$sms", "after": ["+14155550123"]}
        ])
    );

    let s = &events[0];
    assert_eq!(s["action"], "updated");
    assert_eq!(s["actor"], bearer);
    assert_eq!(s["request"], json!({"$status": "disabled"}));
    assert_eq!(
        s["changes"],
        json!([{"key": "$status", "before": "enabled", "after": "disabled"}])
    );
}

#[tokio::test]
async fn a_request_that_changes_nothing_is_not_recorded() {
    let app = TestApp::spawn().await;
    let made = app
        .call(
            "POST",
            "/v1/user/ada/",
            Some(json!({"plan": "pro", "$email": ["ada@example.com"]})),
        )
        .await
        .expect(201);
    assert_eq!(made["version"], 1);
    let noops = [
        ("POST", "/v1/user/ada/", json!({"plan": "pro"})),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$email": ["ADA@example.com"]}),
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$set": {"plan": "pro"}}]}),
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$set_once": {"plan": "free", "$email": "x@example.com"}}]}),
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$remove": {"tags": "a", "$sms": "+14155550123"}}, {"$unset": ["nothing"]}]}),
        ),
        (
            "PATCH",
            "/v1/user/ada/status/",
            json!({"status": "enabled"}),
        ),
    ];
    for (method, path, body) in noops {
        let r = app.call(method, path, Some(body.clone())).await;
        assert!(r.status < 300, "{method} {path} {body}: {}", r.body);
        assert_eq!(r.body["version"], 1, "{method} {path} {body}: {}", r.body);
    }
    let after = app.user("ada").await;
    assert_eq!(after, made, "nothing changed, not even updated_at");
    let events = history(&app, "ada").await;
    assert_eq!(events.len(), 1, "only the creation: {events:?}");
}

#[tokio::test]
async fn pages_follow_the_cursor_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({"n": 0})))
        .await
        .expect(201);
    for n in 1..12 {
        app.call(
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [{"$set": {"n": n}}]})),
        )
        .await
        .expect(202);
    }
    let all: Vec<i64> = history(&app, "ada")
        .await
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(all.len(), 12);

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    // Without the trailing slash, as go and web send paths.
    let mut path = "/v1/user/ada/history?limit=5".to_owned();
    loop {
        let page = app.call("GET", &path, None).await.expect(200);
        assert_eq!(page["meta"]["limit"], 5);
        let results = page["results"].as_array().unwrap();
        sizes.push(results.len());
        seen.extend(results.iter().map(|e| e["id"].as_i64().unwrap()));
        let has_next = page["meta"]["has_next"].as_bool().unwrap();
        match page["meta"]["after"].as_str() {
            Some(after) => {
                assert!(has_next);
                path = format!("/v1/user/ada/history?limit=5&after={after}");
            }
            None => {
                assert!(!has_next);
                break;
            }
        }
    }
    assert_eq!(sizes, vec![5, 5, 2]);
    assert_eq!(seen, all, "paging gives the same events in the same order");
    // The newest event holds the last value; the oldest is the creation.
    let first = app
        .call("GET", "/v1/user/ada/history/?limit=1", None)
        .await
        .expect(200);
    assert_eq!(
        first["results"][0]["changes"],
        json!([{"key": "n", "before": 10, "after": 11}])
    );
    assert_eq!(first["meta"]["has_next"], true);
}

#[tokio::test]
async fn bad_cursors_limits_and_unknown_users_are_refused() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({})))
        .await
        .expect(201);
    app.call_in(Env::Live, "POST", "/v1/user/lively/", Some(json!({})))
        .await
        .expect(201);
    for (path, field) in [
        ("/v1/user/ada/history/?after=abc", "after"),
        ("/v1/user/ada/history/?after=1.5", "after"),
        ("/v1/user/ada/history/?limit=0", "limit"),
        ("/v1/user/ada/history/?limit=1001", "limit"),
        ("/v1/user/ada/history/?limit=ten", "limit"),
        ("/v1/user/ada/history/?limit=-1", "limit"),
    ] {
        app.call("GET", path, None)
            .await
            .expect_error(400, Some(field));
    }
    app.call("GET", "/v1/user/ada/history/?limit=1000", None)
        .await
        .expect(200);
    for path in ["/v1/user/ghost/history/", "/v1/user/lively/history/"] {
        let e = app.call("GET", path, None).await.expect_error(404, None);
        assert_eq!(e["error_code"], "not_found");
    }
}

#[tokio::test]
async fn a_deleted_user_keeps_only_a_tombstone() {
    let app = TestApp::spawn().await;
    for id in ["ada", "bob"] {
        app.call("POST", &format!("/v1/user/{id}/"), Some(json!({"n": 1})))
            .await
            .expect(201);
        app.call(
            "PATCH",
            &format!("/v1/user/{id}/"),
            Some(json!({"operations": [{"$add": {"n": 1}}]})),
        )
        .await
        .expect(202);
    }
    app.send(&app.test, Auth::Hmac, "DELETE", "/v1/user/ada/", None)
        .await
        .expect(204);
    app.call(
        "DELETE",
        "/v1/bulk/user/",
        Some(json!({"distinct_ids": ["bob"]})),
    )
    .await
    .expect(202);
    let signed = json!({"kind": "workspace_key", "id": app.test.workspace_key});
    let bearer = json!({"kind": "api_key", "id": &app.test.api_key[..12]});
    for (id, actor) in [("ada", signed), ("bob", bearer)] {
        let events = history(&app, id).await;
        assert_eq!(events.len(), 1, "{id}: {events:?}");
        assert_eq!(events[0]["action"], "deleted");
        assert_eq!(events[0]["request"], Value::Null);
        assert_eq!(events[0]["changes"], json!([]));
        assert_eq!(events[0]["actor"], actor);
    }
    // A new profile under the same id starts afresh, after the tombstone.
    let again = app
        .call("POST", "/v1/user/ada/", Some(json!({"m": 1})))
        .await
        .expect(201);
    assert_eq!(again["version"], 1);
    assert_eq!(again["properties"], json!({"m": 1}));
    let events = history(&app, "ada").await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "deleted"]);
}

#[tokio::test]
async fn a_merge_is_recorded_on_both_sides() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/main/",
        Some(json!({"name": "Main", "$email": ["a@example.com"]})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/old/",
        Some(json!({"name": "Old", "city": "Oslo", "$email": ["b@example.com"]})),
    )
    .await
    .expect(201);
    app.call(
        "PATCH",
        "/v1/user/old/",
        Some(json!({"operations": [{"$set": {"plan": "team"}}]})),
    )
    .await
    .expect(202);
    app.send(
        &app.test,
        Auth::Hmac,
        "POST",
        "/v1/user/main/merge/",
        Some(&json!({"from_user_id": "old"}).to_string()),
    )
    .await
    .expect(201);
    let signed = json!({"kind": "workspace_key", "id": app.test.workspace_key});

    let main = history(&app, "main").await;
    assert_eq!(main.len(), 2);
    assert_eq!(main[0]["action"], "merged");
    assert_eq!(main[0]["actor"], signed);
    assert_eq!(main[0]["request"], json!({"from_user_id": "old"}));
    assert_eq!(
        main[0]["changes"],
        json!([
            {"key": "$email", "before": ["a@example.com"], "after": ["a@example.com", "b@example.com"]},
            {"key": "city", "after": "Oslo"},
            {"key": "plan", "after": "team"}
        ])
    );
    assert_eq!(main[1]["action"], "created");

    // The secondary's history is replaced by one tombstone naming where it went.
    let old = history(&app, "old").await;
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(old[0]["action"], "merged_into");
    assert_eq!(old[0]["request"], json!({"into_user_id": "main"}));
    assert_eq!(old[0]["actor"], signed);

    // Merging into a primary that does not exist creates it from the secondary.
    app.call("POST", "/v1/user/src/", Some(json!({"k": 1})))
        .await
        .expect(201);
    let fresh = app
        .call(
            "POST",
            "/v1/user/fresh/merge/",
            Some(json!({"from_user_id": "src"})),
        )
        .await
        .expect(201);
    assert_eq!(fresh["properties"], json!({"k": 1}));
    assert_eq!(fresh["version"], 1);
    let events = history(&app, "fresh").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["action"], "created");
    assert_eq!(events[0]["request"], json!({"from_user_id": "src"}));
}

#[tokio::test]
async fn identity_events_record_their_operations_and_insert_id() {
    let app = TestApp::spawn().await;
    let ops = json!([{"$add": {"logins": 1}}]);
    app.call(
        "POST",
        "/event/",
        Some(json!({
            "distinct_id": "ada", "env": app.test.workspace_key, "$insert_id": "evt-ada-1",
            "$time": 1_795_908_108_000_i64, "$user_operations": ops
        })),
    )
    .await
    .expect(202);
    app.call(
        "POST",
        "/event/",
        Some(json!({"distinct_id": "ada", "$user_operations": ops})),
    )
    .await
    .expect(202);
    let events = history(&app, "ada").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["action"], "created");
    assert_eq!(
        events[1]["request"],
        json!({"operations": ops, "$insert_id": "evt-ada-1"})
    );
    assert_eq!(
        events[1]["changes"],
        json!([{"key": "logins", "after": 1}, {"key": "$status", "after": "enabled"}])
    );
    assert_eq!(events[0]["action"], "updated");
    assert_eq!(
        events[0]["request"],
        json!({"operations": ops, "$insert_id": null})
    );
    assert_eq!(
        events[0]["changes"],
        json!([{"key": "logins", "before": 1, "after": 2}])
    );
}

/// An entry as the endpoint serialises it, byte for byte, without its `id` and `at` (which vary
/// from run to run) and with the keys standing for the run's credentials.
fn pinned(app: &TestApp, entry: &Value) -> String {
    let mut entry = entry.clone();
    let map = entry.as_object_mut().unwrap();
    assert!(map.shift_remove("id").unwrap().is_i64());
    assert!(map.shift_remove("at").unwrap().is_string());
    serde_json::to_string(&entry)
        .unwrap()
        .replace(&app.test.workspace_key, "<workspace_key>")
        .replace(&app.test.api_key[..12], "<api_key>")
}

/// The wire form of history entries, pinned byte for byte (key order included) so that a change
/// in how history is stored cannot change what the endpoint and the export answer. The request
/// bodies use keys in the order PostgreSQL's JSONB keeps them, so both backends answer the same.
#[tokio::test]
async fn history_entries_keep_their_wire_form_byte_for_byte() {
    let app = TestApp::spawn().await;
    let created = r#"{"age":36,"name":"Ada","plan":"free","tags":["a","b"],"$email":["Ada@Example.COM"],"country":"gbr"}"#;
    app.send(
        &app.test,
        Auth::Bearer,
        "POST",
        "/v1/user/ada/",
        Some(created),
    )
    .await
    .expect(201);
    for ops in [
        r#"{"operations":[{"$set":{"plan":"pro"}},{"$unset":["name"]},{"$append":{"tags":"c"}}]}"#,
        r#"{"operations":[{"$remove":{"tags":"a"}},{"$set":{"age":null}}]}"#,
    ] {
        app.send(&app.test, Auth::Hmac, "PATCH", "/v1/user/ada/", Some(ops))
            .await
            .expect(202);
    }
    app.call("POST", "/v1/user/bob/", Some(json!({"n": 1})))
        .await
        .expect(201);
    app.call(
        "POST",
        "/v1/user/ada/merge/",
        Some(json!({"from_user_id": "bob"})),
    )
    .await
    .expect(201);

    // (`$set` to null shows only the `before`: a null value has always read back as none.)
    let expected = [
        r#"{"distinct_id":"ada","actor":{"kind":"api_key","id":"<api_key>"},"action":"merged","request":{"from_user_id":"bob"},"changes":[{"key":"n","after":1}]}"#,
        r#"{"distinct_id":"ada","actor":{"kind":"workspace_key","id":"<workspace_key>"},"action":"updated","request":{"operations":[{"$remove":{"tags":"a"}},{"$set":{"age":null}}]},"changes":[{"key":"age","before":36},{"key":"tags","removed":["a"]}]}"#,
        r#"{"distinct_id":"ada","actor":{"kind":"workspace_key","id":"<workspace_key>"},"action":"updated","request":{"operations":[{"$set":{"plan":"pro"}},{"$unset":["name"]},{"$append":{"tags":"c"}}]},"changes":[{"key":"name","before":"Ada"},{"key":"plan","before":"free","after":"pro"},{"key":"tags","added":["c"]}]}"#,
        r#"{"distinct_id":"ada","actor":{"kind":"api_key","id":"<api_key>"},"action":"created","request":{"age":36,"name":"Ada","plan":"free","tags":["a","b"],"$email":["Ada@Example.COM"],"country":"gbr"},"changes":[{"key":"age","after":36},{"key":"name","after":"Ada"},{"key":"plan","after":"free"},{"key":"tags","after":["a","b"]},{"key":"country","after":"GB"},{"key":"$status","after":"enabled"},{"key":"$email","after":["Ada@example.com"]}]}"#,
    ];
    let events = history(&app, "ada").await;
    let got: Vec<String> = events.iter().map(|e| pinned(&app, e)).collect();
    assert_eq!(got, expected);
    let tombstone = history(&app, "bob").await;
    assert_eq!(
        pinned(&app, &tombstone[0]),
        r#"{"distinct_id":"bob","actor":{"kind":"api_key","id":"<api_key>"},"action":"merged_into","request":{"into_user_id":"ada"},"changes":[]}"#
    );

    // The right-of-access export carries the same entries in the same form.
    let export = app
        .call("GET", "/v1/user/ada/export/", None)
        .await
        .expect(200);
    let exported: Vec<String> = export["history"]
        .as_array()
        .expect("the export has the history")
        .iter()
        .map(|e| pinned(&app, e))
        .collect();
    assert_eq!(exported, expected);
}
