//! Audit findings (issue 8): hardening_input.

#[allow(unused_imports)]
use crate::harness::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn with_user(app: &TestApp, id: &str) {
    app.call(
        "POST",
        &format!("/v1/user/{id}/"),
        Some(json!({"name": "Ada", "$email": ["ada@example.com"]})),
    )
    .await
    .expect(201);
}

// ---- Finding 1: templates are bounded and rendered off the async runtime ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_template_self_inclusion_is_refused_and_the_server_keeps_answering() {
    let app = TestApp::spawn().await;
    with_user(&app, "ada").await;
    let r = app
        .call(
            "POST",
            "/v1/user/ada/preview/",
            Some(json!({"template": "{{#*inline \"r\"}}{{> r}}{{/inline}}{{> r}}"})),
        )
        .await
        .expect_error(400, Some("template"));
    assert!(
        r["message"].as_str().unwrap().contains("includes itself"),
        "{r}"
    );
    app.call("GET", "/healthz", None).await.expect(200);
    app.call("GET", "/v1/user/ada/", None).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_template_loop_bombs_hit_a_limit_while_other_requests_answer() {
    let app = Arc::new(TestApp::spawn().await);
    with_user(&app, "ada").await;
    let items: Vec<u32> = (0..1000).collect();
    let bomb = json!({
        "template": "{{#each a}}{{#each ../a}}{{#each ../../a}}{{this}}{{/each}}{{/each}}{{/each}}",
        "data": {"a": items},
    });
    let started = Instant::now();
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let (app, bomb) = (app.clone(), bomb.clone());
            tokio::spawn(async move {
                app.call("POST", "/v1/user/ada/preview/", Some(bomb))
                    .await
                    .expect_error(400, Some("template"))
            })
        })
        .collect();
    // While the bombs render, the server answers others promptly.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let t = Instant::now();
        app.call("GET", "/healthz", None).await.expect(200);
        app.call("GET", "/v1/user/ada/", None).await.expect(200);
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    }
    for b in bombs {
        let body = b.await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("loop iterations")
                || message.contains("output limit")
                || message.contains("render time"),
            "{body}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}
