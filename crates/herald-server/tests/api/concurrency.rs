//! Concurrent writers and restarts lose nothing.

use crate::harness::{Auth, TestApp};
use herald_core::Env;
use serde_json::{json, Value};
use std::sync::Arc;

/// Runs `n` requests at once (task `i` sends `request(i)`) and returns their statuses and bodies.
async fn parallel<F>(app: &Arc<TestApp>, n: usize, request: F) -> Vec<(u16, Value)>
where
    F: Fn(usize) -> (Auth, &'static str, String, Option<Value>),
{
    let mut tasks = Vec::new();
    for i in 0..n {
        let app = app.clone();
        let (auth, method, path, body) = request(i);
        tasks.push(tokio::spawn(async move {
            let body = body.map(|b| b.to_string());
            let r = app
                .send(&app.test, auth, method, &path, body.as_deref())
                .await;
            (r.status, r.body)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn auth_of(i: usize) -> Auth {
    if i.is_multiple_of(2) {
        Auth::Bearer
    } else {
        Auth::Hmac
    }
}

#[tokio::test]
async fn a_hundred_parallel_adds_make_a_hundred() {
    let app = Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.call(
                "PATCH",
                "/v1/user/counter/",
                Some(json!({"operations": [{"$add": {"n": 1}}]})),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    let p = app.call("GET", "/v1/user/counter/", None).await.expect(200);
    assert_eq!(p["properties"]["n"], 100);
    assert_eq!(p["version"], 100);
}

#[tokio::test]
async fn racing_upserts_of_a_new_id_make_one_profile() {
    let app = Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.call(
                "POST",
                "/v1/user/fresh/",
                Some(json!({ format!("k{i}"): i })),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let p = app.call("GET", "/v1/user/fresh/", None).await.expect(200);
    assert_eq!(p["properties"].as_object().unwrap().len(), 30);
    let list = app
        .call("GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 1);
}

#[tokio::test]
async fn a_restart_keeps_every_acknowledged_write() {
    let app = TestApp::spawn().await;
    for i in 0..20 {
        app.call("POST", &format!("/v1/user/u{i}/"), Some(json!({"i": i})))
            .await
            .expect(201);
    }
    app.call(
        "PATCH",
        "/v1/user/u3/",
        Some(json!({"operations": [{"$set": {"x": true}}]})),
    )
    .await
    .expect(202);
    let app = app.restart().await;
    let list = app
        .call("GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 20);
    let u3 = app.call("GET", "/v1/user/u3/", None).await.expect(200);
    assert_eq!(
        (u3["properties"]["i"].clone(), u3["properties"]["x"].clone()),
        (json!(3), json!(true))
    );
    // The same keys still work after the restart, in both environments.
    app.call_in(herald_core::Env::Live, "GET", "/v1/user/?limit=1", None)
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn parallel_edits_and_events_from_both_auth_modes_lose_nothing() {
    let app = Arc::new(TestApp::spawn().await);
    let results = parallel(&app, 100, |i| {
        if i % 4 < 2 {
            (
                auth_of(i),
                "PATCH",
                "/v1/user/counter/".into(),
                Some(json!({"operations": [{"$add": {"n": 1}}]})),
            )
        } else {
            (
                auth_of(i),
                "POST",
                "/event/".into(),
                Some(json!({"distinct_id": "counter", "$user_operations": [{"$add": {"n": 1}}]})),
            )
        }
    })
    .await;
    for (i, (status, body)) in results.iter().enumerate() {
        assert_eq!(*status, 202, "{i}: {body}");
    }
    let p = app.user("counter").await;
    assert_eq!(p["properties"]["n"], 100);
    assert_eq!(p["version"], 100);
    let h = app
        .call("GET", "/v1/user/counter/history/?limit=1000", None)
        .await
        .expect(200);
    let events = h["results"].as_array().unwrap();
    assert_eq!(events.len(), 100);
    assert_eq!(
        events.iter().filter(|e| e["action"] == "created").count(),
        1
    );
    // Each event saw the value before it: the `before`s are 1..=99 once each.
    let mut befores: Vec<i64> = events
        .iter()
        .filter_map(|e| e["changes"][0]["before"].as_i64())
        .collect();
    befores.sort();
    assert_eq!(befores, (1..100).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn fifty_racing_upserts_of_a_new_id_create_it_once() {
    let app = Arc::new(TestApp::spawn().await);
    let results = parallel(&app, 50, |i| {
        (
            auth_of(i),
            "POST",
            "/v1/user/fresh/".into(),
            Some(json!({ format!("k{i}"): i, "$email": [format!("u{i}@example.com")] })),
        )
    })
    .await;
    assert!(results.iter().all(|(s, _)| *s == 201), "{results:?}");
    let p = app.user("fresh").await;
    assert_eq!(p["properties"].as_object().unwrap().len(), 50);
    assert_eq!(p["$email"].as_array().unwrap().len(), 50);
    assert_eq!(p["version"], 50);
    let h = app
        .call("GET", "/v1/user/fresh/history/?limit=1000", None)
        .await
        .expect(200);
    let actions: Vec<&str> = h["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.len(), 50);
    assert_eq!(actions.iter().filter(|a| **a == "created").count(), 1);
    assert_eq!(actions.last(), Some(&"created"));
    let list = app
        .call("GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn parallel_retries_of_one_insert_id_apply_once() {
    let app = Arc::new(TestApp::spawn().await);
    app.call("POST", "/v1/user/ada/", Some(json!({"n": 0})))
        .await
        .expect(201);
    let results = parallel(&app, 50, |i| {
        (
            auth_of(i),
            "POST",
            "/event/".into(),
            Some(json!({
                "distinct_id": "ada", "$insert_id": "6f1c1d38-2f0e-4bb6-9d1a-8d2f6b9f0c11",
                "$user_operations": [{"$add": {"n": 1}}]
            })),
        )
    })
    .await;
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 202 && b["status"] == "success"),
        "{results:?}"
    );
    let p = app.user("ada").await;
    assert_eq!(p["properties"]["n"], 1);
    assert_eq!(p["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn racing_deletes_and_merges_succeed_exactly_once() {
    let app = Arc::new(TestApp::spawn().await);
    app.call("POST", "/v1/user/doomed/", Some(json!({})))
        .await
        .expect(201);
    let deletes = parallel(&app, 20, |i| {
        (auth_of(i), "DELETE", "/v1/user/doomed/".into(), None)
    })
    .await;
    let statuses: Vec<u16> = deletes.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        19,
        "{statuses:?}"
    );

    // One secondary, twenty primaries racing to absorb it: exactly one gets it.
    app.call(
        "POST",
        "/v1/user/secondary/",
        Some(json!({"prize": true, "$sms": ["+14155550100"]})),
    )
    .await
    .expect(201);
    let merges = parallel(&app, 20, |i| {
        (
            auth_of(i),
            "POST",
            format!("/v1/user/p{i}/merge/"),
            Some(json!({"from_user_id": "secondary"})),
        )
    })
    .await;
    let winners: Vec<usize> = merges
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| *s == 201)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{merges:?}");
    assert!(merges.iter().all(|(s, _)| *s == 201 || *s == 404));
    let w = app.user(&format!("p{}", winners[0])).await;
    assert_eq!(w["properties"]["prize"], true);
    assert_eq!(w["$sms"][0]["value"], "+14155550100");
    app.call("GET", "/v1/user/secondary/", None)
        .await
        .expect_error(404, None);
    let list = app
        .call("GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 1, "only the winner exists: {list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn parallel_appends_keep_every_identity() {
    let app = Arc::new(TestApp::spawn().await);
    let results = parallel(&app, 50, |i| {
        (
            auth_of(i),
            "PATCH",
            "/v1/user/ada/".into(),
            Some(json!({"operations": [
                {"$append": {"$email": format!("ada+{i}@example.com"), "tags": i}}
            ]})),
        )
    })
    .await;
    assert!(results.iter().all(|(s, _)| *s == 202), "{results:?}");
    let p = app.user("ada").await;
    let mut emails: Vec<String> = p["$email"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect();
    emails.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("ada+{i}@example.com")).collect();
    want.sort();
    assert_eq!(emails, want);
    let mut tags: Vec<i64> = p["properties"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, (0..50).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_restart_keeps_histories_insert_ids_deletions_and_both_environments() {
    let app = TestApp::spawn().await;
    let event = json!({"distinct_id": "ada", "$insert_id": "before-restart", "$user_operations": [{"$add": {"n": 1}}]});
    app.call("POST", "/event/", Some(event.clone()))
        .await
        .expect(202);
    app.call(
        "PATCH",
        "/v1/user/ada/status/",
        Some(json!({"status": "disabled"})),
    )
    .await
    .expect(200);
    app.call("POST", "/v1/user/gone/", Some(json!({})))
        .await
        .expect(201);
    app.call("DELETE", "/v1/user/gone/", None).await.expect(204);
    app.call_in(
        Env::Live,
        "POST",
        "/v1/user/ada/",
        Some(json!({"live": true})),
    )
    .await
    .expect(201);
    let test_before = app.snapshot(Env::Test).await;
    let live_before = app.snapshot(Env::Live).await;
    let gone_before = app
        .call("GET", "/v1/user/gone/history/", None)
        .await
        .expect(200);

    let app = app.restart().await;
    assert_eq!(app.snapshot(Env::Test).await, test_before);
    assert_eq!(app.snapshot(Env::Live).await, live_before);
    assert_eq!(
        app.call("GET", "/v1/user/gone/history/", None)
            .await
            .expect(200),
        gone_before
    );
    app.call("GET", "/v1/user/gone/", None)
        .await
        .expect_error(404, None);
    // The applied $insert_id is remembered across the restart.
    app.call("POST", "/event/", Some(event)).await.expect(202);
    let ada = app.user("ada").await;
    assert_eq!(ada["properties"]["n"], 1);
    assert_eq!(ada["status"], "disabled");
    // HMAC keys too.
    app.send(&app.live, Auth::Hmac, "GET", "/v1/user/ada/", None)
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn opposite_merges_racing_leave_one_profile_per_pair() {
    let app = Arc::new(TestApp::spawn().await);
    for p in 0..10 {
        for side in ["x", "y"] {
            app.call(
                "POST",
                &format!("/v1/user/{side}{p}/"),
                Some(json!({ side: p })),
            )
            .await
            .expect(201);
        }
    }
    // x{p} absorbs y{p} while y{p} absorbs x{p}.
    let results = parallel(&app, 20, |i| {
        let p = i / 2;
        let (into, from) = if i.is_multiple_of(2) {
            ("x", "y")
        } else {
            ("y", "x")
        };
        (
            auth_of(i),
            "POST",
            format!("/v1/user/{into}{p}/merge/"),
            Some(json!({ "from_user_id": format!("{from}{p}") })),
        )
    })
    .await;
    // Both merges may succeed one after the other (the second creates its primary from the
    // first's result, as documented); either way exactly one profile of each pair remains,
    // holding both sides' properties, and no request fails otherwise.
    for p in 0..10 {
        let pair = [&results[2 * p], &results[2 * p + 1]];
        assert!(
            pair.iter().all(|(s, _)| *s == 201 || *s == 404) && pair.iter().any(|(s, _)| *s == 201),
            "pair {p}: {pair:?}"
        );
        let x = app.call("GET", &format!("/v1/user/x{p}/"), None).await;
        let y = app.call("GET", &format!("/v1/user/y{p}/"), None).await;
        let mut statuses = [x.status, y.status];
        statuses.sort();
        assert_eq!(statuses, [200, 404], "pair {p}: x {} y {}", x.body, y.body);
        let survivor = if x.status == 200 { x.body } else { y.body };
        let props = survivor["properties"].as_object().unwrap();
        assert_eq!(props.len(), 2, "{survivor}");
        assert_eq!(
            (props["x"].clone(), props["y"].clone()),
            (json!(p), json!(p))
        );
    }
    let list = app
        .call("GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn edits_racing_a_merge_are_kept_on_one_side_or_the_other() {
    let app = Arc::new(TestApp::spawn().await);
    app.call("POST", "/v1/user/main/", Some(json!({"name": "Main"})))
        .await
        .expect(201);
    app.call("POST", "/v1/user/old/", Some(json!({})))
        .await
        .expect(201);
    // 40 increments of old's n, with the merge of old into main among them.
    let results = parallel(&app, 41, |i| {
        if i == 20 {
            (
                Auth::Bearer,
                "POST",
                "/v1/user/main/merge/".into(),
                Some(json!({"from_user_id": "old"})),
            )
        } else {
            (
                auth_of(i),
                "PATCH",
                "/v1/user/old/".into(),
                Some(json!({"operations": [{"$add": {"n": 1}}]})),
            )
        }
    })
    .await;
    assert_eq!(results[20].0, 201, "{:?}", results[20]);
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, (s, _))| i == 20 || *s == 202),
        "{results:?}"
    );
    // Increments before the merge moved to main; those after it made a new `old`.
    let main = app.user("main").await;
    let moved = main["properties"]["n"].as_i64().unwrap_or(0);
    let old = app.call("GET", "/v1/user/old/", None).await;
    let after = if old.status == 404 {
        0
    } else {
        old.body["properties"]["n"].as_i64().unwrap()
    };
    assert_eq!(moved + after, 40, "main has {moved}, old has {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conditional_edits_of_one_version_apply_exactly_once() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    app.call("POST", "/v1/user/ada/", Some(json!({"n": 0})))
        .await
        .expect(201);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.call_with(
                "PATCH",
                "/v1/user/ada/",
                Some(json!({"operations": [{"$add": {"n": 1}}, {"$set": {"winner": i}}]})),
                &[("If-Match", "\"1\"")],
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        19,
        "{statuses:?}"
    );
    let ada = app.user("ada").await;
    assert_eq!(
        (ada["properties"]["n"].clone(), ada["version"].clone()),
        (json!(1), json!(2))
    );
}
