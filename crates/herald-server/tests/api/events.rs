//! `POST /event/`: identity events, single or batched, with their limits and idempotency.

use crate::harness::{Auth, TestApp};
use serde_json::{json, Value};

fn event(app: &TestApp, id: &str, ops: Value, insert_id: Option<&str>) -> Value {
    let mut e = json!({
        "distinct_id": id, "env": app.test.workspace_key, "$time": 1_700_000_000_000_i64,
        "$user_operations": ops,
    });
    if let Some(i) = insert_id {
        e["$insert_id"] = json!(i);
    }
    e
}

#[tokio::test]
async fn a_single_event_and_a_batch_apply_their_operations() {
    let app = TestApp::spawn().await;
    let one = event(
        &app,
        "ada",
        json!([{"$set": {"plan": "pro"}}, {"$append": {"$email": "ada@example.com"}}]),
        None,
    );
    for auth in [Auth::Hmac, Auth::Bearer] {
        let r = app
            .send(&app.test, auth, "POST", "/event/", Some(&one.to_string()))
            .await
            .expect(202);
        assert_eq!(r["status"], "success");
    }
    let got = app.call("GET", "/v1/user/ada/", None).await.expect(200);
    assert_eq!(got["properties"]["plan"], "pro");
    assert_eq!(got["$email"].as_array().unwrap().len(), 1);

    let batch: Vec<Value> = (0..10)
        .map(|i| event(&app, &format!("b{i}"), json!([{"$set": {"i": i}}]), None))
        .collect();
    let r = app
        .call("POST", "/event/", Some(json!(batch)))
        .await
        .expect(202);
    assert_eq!(r["status"], "success", "{r}");
    for i in 0..10 {
        let u = app
            .call("GET", &format!("/v1/user/b{i}/"), None)
            .await
            .expect(200);
        assert_eq!(u["properties"]["i"], i);
    }
}

#[tokio::test]
async fn a_retried_insert_id_is_applied_once() {
    let app = TestApp::spawn().await;
    let add = json!([{"$add": {"n": 1}}]);
    for _ in 0..3 {
        app.call(
            "POST",
            "/event/",
            Some(event(&app, "ada", add.clone(), Some("evt-1"))),
        )
        .await
        .expect(202);
    }
    let got = app.call("GET", "/v1/user/ada/", None).await.expect(200);
    assert_eq!(got["properties"]["n"], 1);
    app.call(
        "POST",
        "/event/",
        Some(event(&app, "ada", add.clone(), Some("evt-2"))),
    )
    .await
    .expect(202);
    app.call("POST", "/event/", Some(event(&app, "ada", add, None)))
        .await
        .expect(202);
    let got = app.call("GET", "/v1/user/ada/", None).await.expect(200);
    assert_eq!(got["properties"]["n"], 3);
}

#[tokio::test]
async fn malformed_or_oversized_events_change_nothing() {
    let app = TestApp::spawn().await;
    let good = event(&app, "ada", json!([{"$set": {"ok": true}}]), None);
    let mut wrong_env = good.clone();
    wrong_env["env"] = json!(app.live.workspace_key);
    let bad_op = event(&app, "ada", json!([{"$set": {"country": "XX"}}]), None);
    // One bad event in a batch refuses the whole batch before anything is applied.
    let r = app
        .call(
            "POST",
            "/event/",
            Some(json!([good.clone(), {"distinct_id": "x"}])),
        )
        .await;
    r.expect_error(400, Some("[1].$user_operations"));
    app.call("POST", "/event/", Some(wrong_env))
        .await
        .expect_error(400, Some("[0].env"));
    app.call("POST", "/event/", Some(json!([])))
        .await
        .expect_error(400, Some("body"));
    app.call("POST", "/event/", Some(json!("text")))
        .await
        .expect_error(400, Some("body"));
    app.call("POST", "/event/", Some(json!({"distinct_id": "ada"})))
        .await
        .expect_error(400, Some("[0].$user_operations"));
    let too_many: Vec<Value> = (0..401).map(|_| good.clone()).collect();
    app.call("POST", "/event/", Some(json!(too_many)))
        .await
        .expect_error(413, None);
    let big = event(
        &app,
        "ada",
        json!([{"$set": {"blob": "x".repeat(11 * 1024)}}]),
        None,
    );
    app.call("POST", "/event/", Some(big))
        .await
        .expect_error(413, None);
    let huge = "x".repeat(2 * 1024 * 1024 + 10);
    app.call("POST", "/v1/user/ada/", Some(json!({ "blob": huge })))
        .await
        .expect_error(413, None);
    app.call("GET", "/v1/user/ada/", None)
        .await
        .expect_error(404, None);
    // A single invalid operation is the call's failure, and applies nothing.
    app.call("POST", "/event/", Some(bad_op))
        .await
        .expect_error(400, None);
    app.call("GET", "/v1/user/ada/", None)
        .await
        .expect_error(404, None);
}

fn with_insert_id(mut e: Value, insert_id: &str) -> Value {
    e["$insert_id"] = json!(insert_id);
    e
}

#[tokio::test]
async fn a_batch_applies_in_order_and_reports_each_event() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"plan": "pro", "n": 1})),
    )
    .await
    .expect(201);
    let batch = json!([
        event(&app, "ada", json!([{"$add": {"n": 1}}]), None),
        // Applies nothing: its second operation fails, so its first is not applied either.
        event(
            &app,
            "ada",
            json!([{"$set": {"x": 1}}, {"$append": {"plan": "y"}}]),
            None
        ),
        event(&app, "bob", json!([{"$set": {"n": 10}}]), None),
        event(
            &app,
            "bob",
            json!([{"$add": {"n": 5}}, {"$increment": {"n": -1}}]),
            None
        ),
    ]);
    let r = app.call("POST", "/event/", Some(batch)).await.expect(202);
    assert_eq!(r["status"], "partial", "{r}");
    let records = r["records"].as_array().unwrap();
    assert_eq!(records.len(), 4);
    for i in [0, 2, 3] {
        assert_eq!(
            records[i],
            json!({"status": "success", "status_code": 202}),
            "{i}"
        );
    }
    assert_eq!(records[1]["status"], "error");
    assert_eq!(records[1]["status_code"], 400);
    assert_eq!(records[1]["error"]["type"], "validation_error");
    assert!(
        records[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[1].$user_operations[1].$append.plan: cannot append"),
        "{r}"
    );
    let ada = app.user("ada").await;
    assert_eq!(ada["properties"], json!({"plan": "pro", "n": 2}));
    assert_eq!(app.user("bob").await["properties"]["n"], 14);
    let bob = app
        .call("GET", "/v1/user/bob/history/", None)
        .await
        .expect(200);
    assert_eq!(bob["results"].as_array().unwrap().len(), 2);

    // All failing: `fail`, still 202 with the records.
    let r = app
        .call(
            "POST",
            "/event/",
            Some(json!([
                event(&app, "ada", json!([{"$append": {"plan": "a"}}]), None),
                event(&app, "ada", json!([{"$add": {"plan": 1}}]), None),
            ])),
        )
        .await
        .expect(202);
    assert_eq!(r["status"], "fail");
    assert!(r["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["status_code"] == 400));
    // A single object that cannot apply fails the call, with the field.
    let e = app
        .call(
            "POST",
            "/event/",
            Some(event(
                &app,
                "ada",
                json!([{"$set": {"x": 1}}, {"$append": {"plan": "y"}}]),
                None,
            )),
        )
        .await
        .expect_error(400, Some("[0].$user_operations[1].$append.plan"));
    assert_eq!(e["error_code"], "validation_error");
    assert_eq!(app.user("ada").await, ada, "nothing changed");
}

#[tokio::test]
async fn malformed_track_and_identify_events_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({"n": 1})))
        .await
        .expect(201);
    let before = app.snapshot(herald_core::Env::Test).await;
    // web's login event carries no distinct_id.
    let identify = json!({
        "event": "$identify", "$insert_id": "c1b0a6a4-0000-4000-8000-000000000001",
        "$time": 1_795_908_108_000_i64, "env": app.test.workspace_key,
        "properties": {"$identified_id": "ada"}
    });
    let reserved = json!({"event": "ss_signed_up", "distinct_id": "ada"});
    // web's top-level operation form, without $user_operations.
    let web_style = json!({"distinct_id": "ada", "$insert_id": "w1", "$time": 1_795_908_108_000_i64, "$set": {"n": 5}});
    for (body, field, rule) in [
        (identify.clone(), "[0].distinct_id", "is required"),
        (reserved.clone(), "[0].event", "reserved"),
        (
            json!([
                event(&app, "ada", json!([{"$add": {"n": 1}}]), None),
                reserved
            ]),
            "[1].event",
            "reserved",
        ),
        (json!([identify]), "[0].distinct_id", "is required"),
        (web_style, "[0].$user_operations", "is required"),
    ] {
        let e = app
            .call("POST", "/event/", Some(body))
            .await
            .expect_error(400, Some(field));
        assert!(e["message"].as_str().unwrap().contains(rule), "{e}");
    }
    // A track event no workflow listens to is accepted and changes nothing.
    let track = json!({"event": "signed_up", "distinct_id": "ada", "env": app.test.workspace_key, "properties": {"plan": "pro"}});
    app.call("POST", "/event/", Some(track)).await.expect(202);
    assert_eq!(app.snapshot(herald_core::Env::Test).await, before);
}

#[tokio::test]
async fn malformed_events_name_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"n": 1, "name": "Ada"})),
    )
    .await
    .expect(201);
    let before = app.snapshot(herald_core::Env::Test).await;
    let good = event(&app, "ada", json!([{"$add": {"n": 1}}]), None);
    let ops = |ops: Value| event(&app, "ada", ops, None);
    let mut no_id = good.clone();
    no_id.as_object_mut().unwrap().remove("distinct_id");
    let mut numeric_id = good.clone();
    numeric_id["distinct_id"] = json!(5);
    let mut live_env = good.clone();
    live_env["env"] = json!(app.live.workspace_key);
    let mut numeric_env = good.clone();
    numeric_env["env"] = json!(1);
    let cases: Vec<(Value, &str)> = vec![
        (no_id, "[0].distinct_id"),
        (numeric_id, "[0].distinct_id"),
        (json!([good.clone(), 5]), "[1]"),
        (ops(json!({"$set": {"n": 2}})), "[0].$user_operations"),
        (ops(json!([5])), "[0].$user_operations[0]"),
        (
            ops(json!([{"$set": {"country": "XX"}}])),
            "[0].$user_operations[0].$set.country",
        ),
        (
            ops(json!([{"$set": {"$timezone": "Mars/Base"}}])),
            "[0].$user_operations[0].$set.$timezone",
        ),
        (
            ops(json!([{"$append": {"$email": "nope"}}])),
            "[0].$user_operations[0].$append.$email",
        ),
        (
            ops(json!([{"$set": {"$foo": 1}}])),
            "[0].$user_operations[0].$set.$foo",
        ),
        (
            ops(json!([{"$frob": {"n": 1}}])),
            "[0].$user_operations[0].$frob",
        ),
        (
            json!([good.clone(), ops(json!([{"$append": {"name": "x"}}]))]),
            "[1].$user_operations[0].$append.name",
        ),
        (with_insert_id(good.clone(), ""), "[0].$insert_id"),
        (
            json!([good.clone(), {"distinct_id": "ada", "$user_operations": [], "$insert_id": 7}]),
            "[1].$insert_id",
        ),
        (live_env, "[0].env"),
        (numeric_env, "[0].env"),
    ];
    for (body, field) in cases {
        let e = app
            .call("POST", "/event/", Some(body.clone()))
            .await
            .expect_error(400, Some(field));
        assert_eq!(e["error_code"], "validation_error", "{body}: {e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}: ")),
            "{e}"
        );
    }
    for raw in ["{\"distinct_id\": ", "[{}", "nope", "42", "null"] {
        app.send(&app.test, Auth::Bearer, "POST", "/event/", Some(raw))
            .await
            .expect_error(400, Some("body"));
    }
    assert_eq!(app.snapshot(herald_core::Env::Test).await, before);
}

#[tokio::test]
async fn events_need_only_a_distinct_id_and_operations() {
    let app = TestApp::spawn().await;
    // No env, no $insert_id; $schema, $time, properties, tenant_id and unknown keys are ignored.
    let minimal = json!({"distinct_id": "ada", "$user_operations": [{"$set": {"a": 1}}]});
    let full = json!({
        "$schema": "2", "$insert_id": "0b9e6f3c-5b7e-4f43-9d1e-6b1f2f7d9a01", "$time": 1_795_908_108_000_i64,
        "env": app.test.workspace_key, "distinct_id": "ada", "tenant_id": "t1", "whatever": [1],
        "$user_operations": [{"$increment": {"logins": 1}}, {"$append": {"$email": "ada@work.example"}}],
        "properties": {"$ss_sdk_version": "suprsend-py-sdk/0.20.0"}
    });
    for (auth, path, body) in [
        (Auth::Bearer, "/event/", &minimal),
        (Auth::Hmac, "/event", &full),
    ] {
        let r = app
            .send(&app.test, auth, "POST", path, Some(&body.to_string()))
            .await
            .expect(202);
        assert_eq!(r, json!({"status": "success"}));
    }
    let ada = app.user("ada").await;
    assert_eq!(ada["properties"], json!({"a": 1, "logins": 1}));
    assert_eq!(ada["$email"][0]["value"], "ada@work.example");
    assert!(ada["properties"].get("tenant_id").is_none());
    // The live key's events reach live, with live's workspace key as env.
    let mut live = full.clone();
    live["env"] = json!(app.live.workspace_key);
    app.send(
        &app.live,
        Auth::Hmac,
        "POST",
        "/event/",
        Some(&live.to_string()),
    )
    .await
    .expect(202);
    let l = app
        .call_in(herald_core::Env::Live, "GET", "/v1/user/ada/", None)
        .await
        .expect(200);
    assert_eq!(l["properties"], json!({"logins": 1}));
    assert_eq!(app.user("ada").await, ada, "test untouched by live");
}

#[tokio::test]
async fn insert_ids_apply_once_per_environment_even_within_a_batch() {
    let app = TestApp::spawn().await;
    let add = |id: &str, key: &str| {
        with_insert_id(event(&app, id, json!([{"$add": {"n": 1}}]), None), key)
    };
    // Twice in one batch: both acknowledged, applied once.
    let r = app
        .call(
            "POST",
            "/event/",
            Some(json!([
                add("ada", "k1"),
                add("ada", "k1"),
                add("ada", "k2")
            ])),
        )
        .await
        .expect(202);
    assert_eq!(r["status"], "success");
    assert_eq!(r["records"].as_array().unwrap().len(), 3);
    assert_eq!(app.user("ada").await["properties"]["n"], 2);
    // Live has its own keys.
    let mut live = add("ada", "k1");
    live["env"] = json!(app.live.workspace_key);
    for _ in 0..2 {
        app.call_in(
            herald_core::Env::Live,
            "POST",
            "/event/",
            Some(live.clone()),
        )
        .await
        .expect(202);
    }
    let l = app
        .call_in(herald_core::Env::Live, "GET", "/v1/user/ada/", None)
        .await
        .expect(200);
    assert_eq!(l["properties"]["n"], 1);
    // null is no key at all.
    let mut null_key = add("ada", "x");
    null_key["$insert_id"] = Value::Null;
    for _ in 0..2 {
        app.call("POST", "/event/", Some(null_key.clone()))
            .await
            .expect(202);
    }
    assert_eq!(app.user("ada").await["properties"]["n"], 4);
}

#[tokio::test]
async fn a_refused_event_keeps_its_insert_id_free_and_a_no_op_uses_it() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({"plan": "pro"})))
        .await
        .expect(201);
    // Refused while applying: the key is not recorded, so the corrected retry applies.
    let bad = with_insert_id(
        event(
            &app,
            "ada",
            json!([{"$add": {"n": 1}}, {"$append": {"plan": "x"}}]),
            None,
        ),
        "r1",
    );
    app.call("POST", "/event/", Some(bad))
        .await
        .expect_error(400, Some("[0].$user_operations[1].$append.plan"));
    let fixed = with_insert_id(event(&app, "ada", json!([{"$add": {"n": 1}}]), None), "r1");
    app.call("POST", "/event/", Some(fixed.clone()))
        .await
        .expect(202);
    app.call("POST", "/event/", Some(fixed)).await.expect(202);
    assert_eq!(app.user("ada").await["properties"]["n"], 1);
    // An event that changed nothing still uses its key.
    let same = with_insert_id(
        event(&app, "ada", json!([{"$set": {"plan": "pro"}}]), None),
        "r2",
    );
    app.call("POST", "/event/", Some(same)).await.expect(202);
    let other = with_insert_id(
        event(&app, "ada", json!([{"$set": {"plan": "free"}}]), None),
        "r2",
    );
    app.call("POST", "/event/", Some(other)).await.expect(202);
    assert_eq!(app.user("ada").await["properties"]["plan"], "pro");
}

#[tokio::test]
async fn a_retry_for_a_deleted_user_is_acknowledged_not_a_resurrection() {
    // The retry gets the answer the first delivery got, and the deleted profile stays deleted.
    let app = TestApp::spawn().await;
    let e = with_insert_id(event(&app, "ada", json!([{"$set": {"k": 1}}]), None), "d1");
    app.call("POST", "/event/", Some(e.clone()))
        .await
        .expect(202);
    app.call("DELETE", "/v1/user/ada/", None).await.expect(204);
    let before = app.snapshot(herald_core::Env::Test).await;
    let r = app
        .call("POST", "/event/", Some(e.clone()))
        .await
        .expect(202);
    assert_eq!(r, json!({"status": "success"}));
    let r = app
        .call("POST", "/event/", Some(json!([e])))
        .await
        .expect(202);
    assert_eq!(r["status"], "success");
    assert_eq!(r["records"][0]["status_code"], 202);
    app.call("GET", "/v1/user/ada/", None)
        .await
        .expect_error(404, None);
    assert_eq!(app.snapshot(herald_core::Env::Test).await, before);
}

#[tokio::test]
async fn an_insert_id_reused_for_another_user_is_acknowledged_and_ignored() {
    // docs/api.md: keys are "per environment — not per user: the same `$insert_id` sent for
    // another user within the window is also acknowledged and ignored."
    let app = TestApp::spawn().await;
    let add = |id: &str| {
        with_insert_id(
            event(&app, id, json!([{"$add": {"n": 1}}]), None),
            "shared-key",
        )
    };
    app.call("POST", "/v1/user/bob/", Some(json!({"n": 0})))
        .await
        .expect(201);
    app.call("POST", "/event/", Some(add("ada")))
        .await
        .expect(202);
    assert_eq!(app.user("ada").await["properties"]["n"], 1);
    let before = app.snapshot(herald_core::Env::Test).await;
    // An existing user: acknowledged, not applied.
    let r = app
        .call("POST", "/event/", Some(add("bob")))
        .await
        .expect(202);
    assert_eq!(r, json!({"status": "success"}));
    // A user that does not exist: acknowledged too, and not created.
    let r = app.call("POST", "/event/", Some(add("carol"))).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (202, json!({"status": "success"})),
        "an already-applied $insert_id for a new user"
    );
    assert_eq!(app.snapshot(herald_core::Env::Test).await, before);
}

#[tokio::test]
async fn identity_events_around_a_track_event_apply_in_order_with_a_record_each() {
    let app = TestApp::spawn().await;
    let reply = app
        .call(
            "POST",
            "/event/",
            Some(json!([
                {"distinct_id": "ada", "$user_operations": [{"$set": {"n": 1}}]},
                {"distinct_id": "ada", "$user_operations": [{"$append": {"n": 2}}]},
                {"event": "nobody_listens", "distinct_id": "ada"},
                {"distinct_id": "ada", "$user_operations": [{"$add": {"n": 1}}]},
                {"distinct_id": "bob", "$user_operations": [{"$set": {"x": 1}}]}
            ])),
        )
        .await
        .expect(202);
    assert_eq!(reply["status"], "partial", "{reply}");
    let codes: Vec<_> = reply["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [202, 400, 202, 202, 202], "{reply}");
    let refused = reply["records"][1]["error"]["message"].as_str().unwrap();
    assert!(
        refused.starts_with("[1].$user_operations[0]"),
        "names the event's position in the call: {refused}"
    );
    assert_eq!(app.user("ada").await["properties"]["n"], 2);
    assert_eq!(app.user("bob").await["properties"]["x"], 1);
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    assert_eq!(
        history["results"].as_array().unwrap().len(),
        2,
        "two applied events, the refused one recorded nothing: {history}"
    );
}
