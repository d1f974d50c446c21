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
    app.call(
        "POST",
        "/event/",
        Some(json!({"event": "signed_up", "distinct_id": "ada"})),
    )
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
