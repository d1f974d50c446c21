//! Audit findings (issue 8): hardening_input.

#[allow(unused_imports)]
use crate::harness::*;
use herald_core::Env;
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

// ---- Finding 2: custom values nest at most 32 deep ----

fn nested(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!("x"), |v, _| json!([v]))
}

#[tokio::test]
async fn hardening_values_deeper_than_32_are_refused_everywhere_and_32_reads_back() {
    let app = TestApp::spawn().await;
    with_user(&app, "ada").await;
    let before = app.snapshot(Env::Test).await;
    let too_deep = nested(33);
    let r = app
        .call("POST", "/v1/user/ada/", Some(json!({"deep": too_deep})))
        .await
        .expect_error(400, Some("deep"));
    assert!(r["message"].as_str().unwrap().contains("32"), "{r}");
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$set": {"deep": too_deep}}]})),
    )
    .await
    .expect_error(400, Some("operations[0].$set.deep"));
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$append": {"list": [too_deep]}}]})),
    )
    .await
    .expect_error(400, Some("operations[0].$append.list"));
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$remove": {"list": too_deep}}]})),
    )
    .await
    .expect_error(400, Some("operations[0].$remove.list"));
    app.call(
        "POST",
        "/event/",
        Some(json!({"distinct_id": "ada", "$user_operations": [{"$set": {"deep": too_deep}}]})),
    )
    .await
    .expect_error(400, Some("[0].$user_operations[0].$set.deep"));
    assert_eq!(app.snapshot(Env::Test).await, before, "nothing changed");

    // 32 deep is accepted, and the history and export that hold it read back.
    let ok = nested(32);
    app.call("POST", "/v1/user/ada/", Some(json!({"deep": ok})))
        .await
        .expect(201);
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$append": {"list": ok}}]})),
    )
    .await
    .expect(202);
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    assert_eq!(history["results"].as_array().unwrap().len(), 3);
    let export = app
        .call("GET", "/v1/user/ada/export/", None)
        .await
        .expect(200);
    assert_eq!(export["profile"]["properties"]["deep"], ok);
}

// ---- Finding 8: U+0000 is refused at the edge on every backend ----

#[tokio::test]
async fn hardening_nul_characters_are_a_400_naming_the_field_never_a_500() {
    let app = TestApp::spawn().await;
    with_user(&app, "ada").await;
    let before = app.snapshot(Env::Test).await;
    for (method, path, body, field) in [
        ("POST", "/v1/user/ada/", json!({"plan": "p\u{0}"}), "plan"),
        (
            "POST",
            "/v1/user/ada/",
            json!({"plan": {"tiers": ["a", "b\u{0}"]}}),
            "plan.tiers[1]",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"pl\u{0}an": 1}),
            "pl\u{0}an",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"plan": {"k\u{0}": 1}}),
            "plan.k\u{0}",
        ),
        ("POST", "/v1/user/ada/", json!({"name": "A\u{0}"}), "name"),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$set": {"x": "\u{0}"}}]}),
            "operations[0].$set.x",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$append": {"$androidpush": "tok\u{0}en"}}]}),
            "operations[0].$append.$androidpush",
        ),
        (
            "POST",
            "/event/",
            json!([{"distinct_id": "ada", "$user_operations": [{"$set": {"x": "\u{0}"}}]}]),
            "[0].$user_operations[0].$set.x",
        ),
        (
            "POST",
            "/event/",
            json!({"distinct_id": "a\u{0}b", "$user_operations": [{"$set": {"x": 1}}]}),
            "distinct_id",
        ),
        (
            "POST",
            "/v1/category/",
            json!({"category": "news", "name": "N\u{0}"}),
            "name",
        ),
        (
            "POST",
            "/v1/property/",
            json!({"key": "plan", "type": "string", "label": "P\u{0}"}),
            "label",
        ),
    ] {
        app.call(method, path, Some(body.clone()))
            .await
            .expect_error(400, Some(field));
    }
    // A distinct_id in the path.
    app.call("GET", "/v1/user/a%00b/", None)
        .await
        .expect_error(400, Some("distinct_id"));
    app.call("POST", "/v1/user/a%00b/", Some(json!({"x": 1})))
        .await
        .expect_error(400, Some("distinct_id"));
    assert_eq!(app.snapshot(Env::Test).await, before, "nothing changed");
}

// ---- Finding 3: preference edits are capped, strict, and history keeps only the change ----

#[tokio::test]
async fn hardening_preference_edits_refuse_unknown_fields_and_huge_bodies() {
    let app = TestApp::spawn().await;
    with_user(&app, "ada").await;
    app.call(
        "POST",
        "/v1/category/",
        Some(json!({"category": "newsletter", "default_preference": "opt_in"})),
    )
    .await
    .expect(201);
    let before = app.snapshot(Env::Test).await;
    let padding = "x".repeat(20_000);
    for (path, body, field) in [
        (
            "/v1/user/ada/preference/category/newsletter/",
            json!({"preference": "opt_out", "note": "hi"}),
            "note",
        ),
        (
            "/v1/user/ada/preference/category/newsletter/",
            json!({"preference": "opt_out", "opt_in_channels": vec!["email"; 3000]}),
            "body",
        ),
        (
            "/v1/user/ada/preference/channel_preference/",
            json!({"channel_preferences": [{"channel": "email", "is_restricted": true}], "junk": padding}),
            "junk",
        ),
        (
            "/v1/user/ada/preference/channel_preference/",
            json!({"channel_preferences": [{"channel": "email", "is_restricted": true, "why": 1}]}),
            "channel_preferences[0].why",
        ),
        (
            "/v1/bulk/subscriber/preference/",
            json!({"distinct_ids": ["ada"], "categories": [{"category": "newsletter", "preference": "opt_out", "x": 1}]}),
            "categories[0].x",
        ),
        (
            "/v1/bulk/subscriber/preference/",
            json!({"distinct_ids": ["ada"], "categories": [{"category": "newsletter", "preference": "opt_out"}], "pad": padding}),
            "pad",
        ),
        (
            "/v1/bulk/subscriber/preference/reset/",
            json!({"distinct_ids": ["ada"], "reset_categories": true, "extra": true}),
            "extra",
        ),
    ] {
        app.call("PATCH", path, Some(body))
            .await
            .expect_error(400, Some(field));
    }
    assert_eq!(app.snapshot(Env::Test).await, before, "nothing changed");
}

#[tokio::test]
async fn hardening_preference_history_holds_the_change_not_the_request() {
    let app = TestApp::spawn().await;
    with_user(&app, "ada").await;
    app.call(
        "POST",
        "/v1/category/",
        Some(json!({"category": "newsletter", "default_preference": "opt_in"})),
    )
    .await
    .expect(201);
    let channels: Vec<&str> = vec!["email"; 500];
    app.call(
        "PATCH",
        "/v1/user/ada/preference/category/newsletter/",
        Some(json!({"preference": "opt_in", "opt_out_channels": channels})),
    )
    .await
    .expect(202);
    app.call(
        "PATCH",
        "/v1/bulk/subscriber/preference/",
        Some(json!({"distinct_ids": ["ada"], "categories": [{"category": "newsletter", "preference": "opt_out"}]})),
    )
    .await
    .expect(202);
    let history = app
        .call("GET", "/v1/user/ada/history/?limit=2", None)
        .await
        .expect(200);
    let events = history["results"].as_array().unwrap();
    assert_eq!(
        events[1]["request"],
        json!({"preference": {"category": "newsletter"}})
    );
    assert_eq!(
        events[1]["changes"],
        json!([{"key": "$preferences", "after": {"categories": {"newsletter": {"preference": "opt_in", "opt_out_channels": ["email"]}}}}])
    );
    assert_eq!(
        events[0]["request"],
        json!({"bulk_preference": {"categories": ["newsletter"], "channel_preferences": false}})
    );
    for e in events {
        let size = e.to_string().len();
        assert!(size < 600, "{size} bytes: {e}");
    }
}

// ---- Finding 6: profiles are capped and history of list edits stays small ----

#[tokio::test]
async fn hardening_profile_caps_refuse_the_edit_that_crosses_them() {
    let app = TestApp::spawn().await;
    with_user(&app, "ada").await;
    // 500 custom keys fit; the 501st is refused whole.
    let keys: serde_json::Map<String, serde_json::Value> =
        (0..500).map(|i| (format!("k{i}"), json!(1))).collect();
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(serde_json::Value::Object(keys)),
    )
    .await
    .expect(201);
    let before = app.snapshot(Env::Test).await;
    let r = app
        .call(
            "POST",
            "/v1/user/ada/",
            Some(json!({"one_more": 1, "k0": 2})),
        )
        .await
        .expect_error(400, Some("properties"));
    assert!(r["message"].as_str().unwrap().contains("500"), "{r}");
    assert_eq!(app.snapshot(Env::Test).await, before);
    // Identities per channel.
    let tokens: Vec<String> = (0..101).map(|i| format!("tok-{i}")).collect();
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$append": {"$androidpush": tokens}}]})),
    )
    .await
    .expect_error(400, Some("$androidpush"));
    // The serialized size: 9 KB at a time, refused once past 64 KiB.
    with_user(&app, "bob").await;
    let blob = "x".repeat(9000);
    let mut refused = None;
    for i in 0..10 {
        let r = app
            .call(
                "POST",
                "/v1/user/bob/",
                Some(json!({ format!("blob{i}"): blob })),
            )
            .await;
        if r.status != 201 {
            refused = Some((i, r.expect_error(400, Some("profile"))));
            break;
        }
    }
    let (i, body) = refused.expect("the profile cap is reached");
    assert_eq!(i, 7, "{body}");
    let bob = app.user("bob").await;
    assert!(bob["properties"].get("blob7").is_none());
}

#[tokio::test]
async fn hardening_appending_to_a_list_keeps_history_entries_small() {
    let app = TestApp::spawn().await;
    with_user(&app, "ada").await;
    for i in 0..200 {
        app.call(
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [{"$append": {"list": format!("item-{i}")}}]})),
        )
        .await
        .expect(202);
    }
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$remove": {"list": ["item-3", "item-150"]}}]})),
    )
    .await
    .expect(202);
    let history = app
        .call("GET", "/v1/user/ada/history/?limit=1000", None)
        .await
        .expect(200);
    let events = history["results"].as_array().unwrap();
    assert_eq!(events.len(), 202);
    assert_eq!(
        events[0]["changes"],
        json!([{"key": "list", "removed": ["item-3", "item-150"]}])
    );
    assert_eq!(
        events[1]["changes"],
        json!([{"key": "list", "added": ["item-199"]}])
    );
    for e in events {
        let size = e.to_string().len();
        assert!(size < 400, "{size} bytes: {e}");
    }
}
