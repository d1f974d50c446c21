//! `/v1/property/…`, filtered `GET /v1/user/` and `GET /v1/user/{id}/export/`.

use crate::harness::TestApp;
use herald_core::Env;
use serde_json::{json, Value};

fn ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["distinct_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn people(app: &TestApp) {
    for (id, body) in [
        (
            "ada",
            json!({"name": "Ada Lovelace", "plan": "pro", "age": 36, "tags": ["math"], "$email": ["ada@example.com"]}),
        ),
        (
            "alan",
            json!({"name": "Alan Turing", "plan": "free", "age": 41, "$sms": ["+447700900123"]}),
        ),
        (
            "grace",
            json!({"name": "Grace Hopper", "plan": "pro", "age": 85, "$email": ["grace@navy.mil"]}),
        ),
    ] {
        app.call("POST", &format!("/v1/user/{id}/"), Some(body))
            .await
            .expect(201);
    }
    app.call(
        "PATCH",
        "/v1/user/alan/status/",
        Some(json!({"status": "disabled"})),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn filters_select_and_count_over_http() {
    let app = TestApp::spawn().await;
    people(&app).await;
    for (query, want) in [
        ("prop.plan=eq:pro", vec!["ada", "grace"]),
        ("prop.plan=ne:pro", vec!["alan"]),
        ("prop.plan=in:free,team", vec!["alan"]),
        ("prop.age=gte:41", vec!["alan", "grace"]),
        ("prop.age=lt:40", vec!["ada"]),
        ("prop.tags=contains:math", vec!["ada"]),
        ("prop.tags=exists:false", vec!["alan", "grace"]),
        ("status=disabled", vec!["alan"]),
        ("has_channel=email", vec!["ada", "grace"]),
        ("lacks_channel=email", vec!["alan"]),
        ("q=GRA", vec!["grace"]),
        ("q=turing", vec!["alan"]),
        ("q=4477", vec!["alan"]),
        (
            "created_at=gte:2000-01-01T00:00:00Z&prop.plan=eq:pro&status=enabled",
            vec!["ada", "grace"],
        ),
        ("updated_at=lt:2000-01-01T00:00:00Z", vec![]),
    ] {
        let body = app
            .call("GET", &format!("/v1/user/?with_count=true&{query}"), None)
            .await
            .expect(200);
        assert_eq!(ids(&body), want, "{query}");
        assert_eq!(body["meta"]["count"], want.len(), "{query}");
        assert_eq!(body["meta"]["count_is_estimate"], false, "{query}");
    }
    // The same filter pages by cursor.
    let first = app
        .call(
            "GET",
            "/v1/user/?prop.plan=eq:pro&limit=1&sort=distinct_id",
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&first), ["ada"]);
    let after = first["meta"]["after"].as_str().unwrap();
    let second = app
        .call(
            "GET",
            &format!("/v1/user/?prop.plan=eq:pro&limit=1&sort=distinct_id&after={after}"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&second), ["grace"]);
    assert_eq!(second["meta"]["has_next"], false);
    // A filtered page counts only when asked; an unfiltered one always carries its counter.
    assert_eq!(
        (
            second["meta"]["count"].clone(),
            second["meta"]["count_is_estimate"].clone()
        ),
        (Value::Null, Value::Null)
    );
    let all = app.call("GET", "/v1/user/?limit=1", None).await.expect(200);
    assert_eq!(
        (
            all["meta"]["count"].clone(),
            all["meta"]["count_is_estimate"].clone()
        ),
        (json!(3), json!(false))
    );
    // The live environment sees none of it.
    let live = app
        .call_in(Env::Live, "GET", "/v1/user/?prop.plan=eq:pro", None)
        .await
        .expect(200);
    assert_eq!(ids(&live), Vec::<String>::new());
}

#[tokio::test]
async fn bad_filters_are_400s_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("prop.plan=like:pro", "prop.plan"),
        ("prop.plan=pro", "prop.plan"),
        ("prop.age=gt:old", "prop.age"),
        ("prop.x=exists:maybe", "prop.x"),
        ("status=paused", "status"),
        ("has_channel=pigeon", "has_channel"),
        ("created_at=gte:yesterday", "created_at"),
        ("sort=name", "sort"),
        ("with_count=maybe", "with_count"),
    ] {
        app.call("GET", &format!("/v1/user/?{query}"), None)
            .await
            .expect_error(400, Some(field));
    }
}

#[tokio::test]
async fn the_registry_lists_counts_and_changes_properties() {
    let app = TestApp::spawn().await;
    people(&app).await;
    let list = app.call("GET", "/v1/property/", None).await.expect(200);
    let find = |list: &Value, key: &str| -> Value {
        list["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == key)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let plan = find(&list, "plan");
    assert_eq!(
        (
            plan["kind"].clone(),
            plan["profiles"].clone(),
            plan["show_in_table"].clone(),
            plan["observed_types"].clone()
        ),
        (json!("custom"), json!(3), json!(false), json!(["string"]))
    );
    assert_eq!(find(&list, "name")["show_in_table"], true);
    assert_eq!(find(&list, "$email")["profiles"], 2);
    assert_eq!(find(&list, "$sms")["kind"], "channel");
    assert_eq!(find(&list, "$created_at")["profiles"], 3);
    assert_eq!(find(&list, "$updated_at")["types"], json!(["datetime"]));
    assert_eq!(find(&list, "$status")["types"], json!(["string"]));
    assert_eq!(find(&list, "country")["show_in_table"], false);

    // Declare, change, refuse while used, delete when unused.
    let declared = app
        .call(
            "POST",
            "/v1/property/",
            Some(json!({"key": "tier", "type": "string", "label": "Tier"})),
        )
        .await
        .expect(201);
    assert_eq!(
        (declared["declared"].clone(), declared["profiles"].clone()),
        (json!(true), json!(0))
    );
    app.call("POST", "/v1/property/", Some(json!({"key": "tier"})))
        .await
        .expect_error(409, Some("key"));
    app.call("POST", "/v1/property/", Some(json!({"key": "$tier"})))
        .await
        .expect_error(400, Some("key"));
    app.call(
        "POST",
        "/v1/property/",
        Some(json!({"key": "x", "type": "date"})),
    )
    .await
    .expect_error(400, Some("type"));
    let shown = app
        .call(
            "PATCH",
            "/v1/property/plan/",
            Some(json!({"show_in_table": true, "label": "Plan"})),
        )
        .await
        .expect(200);
    assert_eq!(
        (shown["show_in_table"].clone(), shown["label"].clone()),
        (json!(true), json!("Plan"))
    );
    app.call(
        "PATCH",
        "/v1/property/plan/",
        Some(json!({"show_in_table": "yes"})),
    )
    .await
    .expect_error(400, Some("show_in_table"));
    app.call(
        "PATCH",
        "/v1/property/%24email/",
        Some(json!({"show_in_table": false})),
    )
    .await
    .expect(200);
    app.call("GET", "/v1/property/nope/", None)
        .await
        .expect_error(404, None);
    app.call("DELETE", "/v1/property/plan/", None)
        .await
        .expect_error(409, Some("key"));
    app.call("DELETE", "/v1/property/name/", None)
        .await
        .expect_error(409, Some("key"));
    app.call("DELETE", "/v1/property/tier/", None)
        .await
        .expect(204);
    let after = app.call("GET", "/v1/property/", None).await.expect(200);
    assert_eq!(find(&after, "tier"), Value::Null);
    assert_eq!(find(&after, "plan")["show_in_table"], true);
    assert_eq!(find(&after, "$email")["show_in_table"], false);

    // Counts follow unsets and deletes; the live registry is separate.
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$unset": ["plan"]}]})),
    )
    .await
    .expect(202);
    app.call("DELETE", "/v1/user/grace/", None)
        .await
        .expect(204);
    let now = app.call("GET", "/v1/property/", None).await.expect(200);
    assert_eq!(find(&now, "plan")["profiles"], 1);
    assert_eq!(find(&now, "$created_at")["profiles"], 2);
    let live = app
        .call_in(Env::Live, "GET", "/v1/property/", None)
        .await
        .expect(200);
    assert_eq!(find(&live, "plan"), Value::Null);
    assert_eq!(find(&live, "$created_at")["profiles"], 0);
}

#[tokio::test]
async fn a_custom_created_at_is_its_own_property_beside_the_built_in_timestamp() {
    // Apps often keep their own sign-up time as `created_at`; it must not hide behind Herald's.
    let app = TestApp::spawn().await;
    people(&app).await;
    app.call(
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$set": {"created_at": "2015-06-01T00:00:00Z"}}]})),
    )
    .await
    .expect(202);
    let one = |key: &str| {
        let path = format!("/v1/property/{}/", key.replace('$', "%24"));
        let app = &app;
        async move { app.call("GET", &path, None).await.expect(200) }
    };
    let custom = one("created_at").await;
    assert_eq!(
        (
            custom["kind"].clone(),
            custom["profiles"].clone(),
            custom["observed_types"].clone()
        ),
        (json!("custom"), json!(1), json!(["datetime"]))
    );
    let built_in = one("$created_at").await;
    assert_eq!(
        (built_in["kind"].clone(), built_in["profiles"].clone()),
        (json!("general"), json!(3))
    );
    // The custom value filters as a property; the query parameter still means Herald's field.
    let r = app
        .call(
            "GET",
            "/v1/user/?prop.created_at=lt:2020-01-01T00:00:00Z",
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&r), vec!["ada"]);
    let r = app
        .call("GET", "/v1/user/?created_at=lt:2020-01-01T00:00:00Z", None)
        .await
        .expect(200);
    assert_eq!(ids(&r), Vec::<String>::new());
}

#[tokio::test]
async fn export_holds_the_profile_and_its_whole_history() {
    let app = TestApp::spawn().await;
    people(&app).await;
    for n in 0..5 {
        app.call(
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [{"$set": {"n": n}}]})),
        )
        .await
        .expect(202);
    }
    let export = app
        .call("GET", "/v1/user/ada/export/", None)
        .await
        .expect(200);
    assert_eq!(export["distinct_id"], "ada");
    assert_eq!(export["environment"], "test");
    assert_eq!(export["profile"]["properties"]["n"], 4);
    assert_eq!(export["profile"]["$email"][0]["value"], "ada@example.com");
    let history = export["history"].as_array().unwrap();
    assert_eq!(history.len(), 6, "created + 5 edits");
    assert_eq!(history[0]["action"], "updated");
    assert_eq!(history[5]["action"], "created");
    app.call("GET", "/v1/user/nobody/export/", None)
        .await
        .expect_error(404, None);
    app.call_in(Env::Live, "GET", "/v1/user/ada/export/", None)
        .await
        .expect_error(404, None);
}
