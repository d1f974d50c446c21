//! `/v1/workflow/…`: round trip, every bad field named, test/live isolation, the configuration
//! file's workflows.

use crate::harness::{Auth, TestApp};
use herald_core::Env;
use serde_json::{json, Value};

fn welcome() -> Value {
    json!({
        "slug": "welcome",
        "name": "Welcome",
        "category": "transactional",
        "policy": {"first_success": ["inbox", "email"]},
        "channels": {
            "email": {"subject": "Welcome, {{$recipient.name}}", "html": "<p>Code {{code}}</p>", "text": "Code {{code}}"},
            "slack": {"text": "Code {{code}}", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{code}}*"}}]},
            "inbox": {"title": "Welcome", "body": "Code {{code}}", "action_url": "https://example.com/{{code}}"}
        },
        "events": ["signed_up"]
    })
}

async fn with_category(app: &TestApp, env: Env) {
    app.call_in(
        env,
        "POST",
        "/v1/category/",
        Some(json!({"category": "transactional", "name": "Transactional"})),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn workflows_round_trip() {
    let app = TestApp::spawn().await;
    with_category(&app, Env::Test).await;
    let created = app
        .call("POST", "/v1/workflow/", Some(welcome()))
        .await
        .expect(201);
    assert_eq!(created, welcome(), "stored as sent");
    for auth in [Auth::Bearer, Auth::Hmac] {
        let got = app
            .send(&app.test, auth, "GET", "/v1/workflow/welcome/", None)
            .await
            .expect(200);
        assert_eq!(got, welcome());
    }
    app.call("POST", "/v1/workflow/", Some(welcome()))
        .await
        .expect_error(409, Some("slug"));
    // PUT replaces the whole workflow; the slug may be left out.
    let replaced = json!({"channels": {"sms": {"text": "Code {{code}}"}}, "events": ["invited"]});
    let body = app
        .call("PUT", "/v1/workflow/welcome/", Some(replaced))
        .await
        .expect(200);
    assert_eq!(
        body,
        json!({"slug": "welcome", "name": "welcome", "category": null, "policy": "all",
               "channels": {"sms": {"text": "Code {{code}}"}}, "events": ["invited"]})
    );
    assert_eq!(
        app.call("GET", "/v1/workflow/welcome/", None)
            .await
            .expect(200),
        body
    );
    // PUT of a new slug creates it; a GET answer can be saved back unchanged.
    let mut digest = welcome();
    digest["slug"] = json!("digest");
    app.call("PUT", "/v1/workflow/digest/", Some(digest.clone()))
        .await
        .expect(201);
    app.call("PUT", "/v1/workflow/digest/", Some(digest.clone()))
        .await
        .expect(200);
    let list = app.call("GET", "/v1/workflow/", None).await.expect(200);
    assert_eq!(list["meta"]["count"], 2);
    let slugs: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["digest", "welcome"]);
    app.call("DELETE", "/v1/workflow/welcome/", None)
        .await
        .expect(204);
    app.call("GET", "/v1/workflow/welcome/", None)
        .await
        .expect_error(404, None);
    app.call("DELETE", "/v1/workflow/welcome/", None)
        .await
        .expect_error(404, None);
    assert_eq!(
        app.call("GET", "/v1/workflow/", None).await.expect(200)["meta"]["count"],
        1
    );
}

#[tokio::test]
async fn every_bad_field_is_named() {
    let app = TestApp::spawn().await;
    with_category(&app, Env::Test).await;
    let with = |path: &[&str], v: Value| {
        let mut body = welcome();
        let mut at = &mut body;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = v;
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&["channels", "email", "subject"], json!("Hi {{#if}}")),
            "channels.email.subject",
        ),
        (
            with(
                &["channels", "slack", "blocks"],
                json!([{"text": "{{/x}}"}]),
            ),
            "channels.slack.blocks[0].text",
        ),
        (
            with(&["channels", "fax"], json!({"text": "x"})),
            "channels.fax",
        ),
        (
            with(&["channels", "inbox", "subject"], json!("x")),
            "channels.inbox.subject",
        ),
        (with(&["colour"], json!("blue")), "colour"),
        (
            with(&["policy"], json!({"first_success": ["inbox", "sms"]})),
            "policy.first_success[1]",
        ),
        (with(&["policy"], json!("some")), "policy"),
        (with(&["category"], json!("nope")), "category"),
        (with(&["slug"], json!("Not A Slug")), "slug"),
        (with(&["events"], json!(["$reserved"])), "events[0]"),
        (with(&["name"], json!(7)), "name"),
        (json!({"slug": "x"}), "channels"),
        (json!({"slug": "x", "channels": {}}), "channels"),
    ];
    for (body, field) in cases {
        app.call("POST", "/v1/workflow/", Some(body.clone()))
            .await
            .expect_error(400, Some(field));
    }
    app.call("POST", "/v1/workflow/", Some(json!([1])))
        .await
        .expect_error(400, None);
    // PUT: the same checks, and a body slug must be the path's.
    app.call("PUT", "/v1/workflow/other/", Some(welcome()))
        .await
        .expect_error(400, Some("slug"));
    app.call(
        "PUT",
        "/v1/workflow/welcome/",
        Some(with(&["channels", "email", "subject"], json!("{{"))),
    )
    .await
    .expect_error(400, Some("channels.email.subject"));
    // Nothing was stored by any of them.
    assert_eq!(
        app.call("GET", "/v1/workflow/", None).await.expect(200)["meta"]["count"],
        0
    );
}

#[tokio::test]
async fn a_live_key_can_neither_see_nor_change_a_test_workflow() {
    let app = TestApp::spawn().await;
    with_category(&app, Env::Test).await;
    app.call("POST", "/v1/workflow/", Some(welcome()))
        .await
        .expect(201);
    for auth in [Auth::Bearer, Auth::Hmac] {
        let list = app
            .send(&app.live, auth, "GET", "/v1/workflow/", None)
            .await
            .expect(200);
        assert_eq!(list["meta"]["count"], 0);
        for (method, path) in [
            ("GET", "/v1/workflow/welcome/"),
            ("DELETE", "/v1/workflow/welcome/"),
        ] {
            app.send(&app.live, auth, method, path, None)
                .await
                .expect_error(404, None);
        }
    }
    // Live has no such category, so it cannot even create its own copy without one.
    app.call_in(Env::Live, "PUT", "/v1/workflow/welcome/", Some(welcome()))
        .await
        .expect_error(400, Some("category"));
    with_category(&app, Env::Live).await;
    let mut live = welcome();
    live["name"] = json!("Live welcome");
    app.call_in(Env::Live, "PUT", "/v1/workflow/welcome/", Some(live))
        .await
        .expect(201);
    app.call_in(Env::Live, "DELETE", "/v1/workflow/welcome/", None)
        .await
        .expect(204);
    assert_eq!(
        app.call("GET", "/v1/workflow/welcome/", None)
            .await
            .expect(200),
        welcome(),
        "the test workflow is untouched"
    );
}

#[tokio::test]
async fn workflows_declared_in_the_configuration_exist_at_start() {
    let app = TestApp::spawn_with(|config| {
        config.categories =
            vec![json!({"category": "transactional", "name": "Transactional"})];
        config.workflows = vec![
            welcome(),
            json!({"slug": "digest", "env": "live", "channels": {"email": {"subject": "Digest", "text": "{{count}} new"}}, "events": ["weekly"]}),
        ];
    })
    .await;
    assert_eq!(
        app.call("GET", "/v1/workflow/welcome/", None)
            .await
            .expect(200),
        welcome()
    );
    app.call("GET", "/v1/workflow/digest/", None)
        .await
        .expect_error(404, None);
    let live = app
        .call_in(Env::Live, "GET", "/v1/workflow/", None)
        .await
        .expect(200);
    assert_eq!(live["meta"]["count"], 2);
    // A change made over the API is replaced by the file's at the next start.
    app.call(
        "PUT",
        "/v1/workflow/welcome/",
        Some(json!({"channels": {"sms": {"text": "x"}}})),
    )
    .await
    .expect(200);
    let app = app.restart().await;
    assert_eq!(
        app.call("GET", "/v1/workflow/welcome/", None)
            .await
            .expect(200),
        welcome()
    );
}

#[tokio::test]
async fn a_bad_workflow_in_the_configuration_stops_the_start_naming_it() {
    let mut config = herald_server::config::Config::load(None, |_| None).unwrap();
    config.workflows =
        vec![json!({"slug": "x", "channels": {"email": {"subject": "{{#if}}", "text": "t"}}})];
    let scratch = crate::harness::scratch().await;
    config.database_url = scratch.url.clone();
    let store = herald_server::open_store(&config).await.unwrap();
    let err = herald_server::declare(store.as_ref(), &config)
        .await
        .unwrap_err();
    assert!(
        err.starts_with("configuration workflows[0]") && err.contains("channels.email.subject"),
        "{err}"
    );
}
