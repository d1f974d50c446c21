//! Concurrent writers and restarts lose nothing.

use crate::harness::TestApp;
use serde_json::json;
use std::sync::Arc;

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
