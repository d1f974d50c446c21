//! `/v1/user/…`: the profile endpoints, their happy paths and their refusals.

use crate::harness::{Auth, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn upsert_then_get_round_trips_in_both_auth_modes() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "Ada", "$email": ["ada@example.com"]}).to_string();
    for auth in [Auth::Bearer, Auth::Hmac] {
        let created = app
            .send(&app.test, auth, "POST", "/v1/user/ada/", Some(&body))
            .await
            .expect(201);
        assert_eq!(created["properties"]["name"], "Ada");
        let got = app
            .send(&app.test, auth, "GET", "/v1/user/ada/", None)
            .await
            .expect(200);
        assert_eq!(got["$email"][0]["value"], "ada@example.com");
        assert_eq!(got["$email"][0]["status"], "active");
    }
}

#[tokio::test]
async fn general_properties_are_validated_and_normalised() {
    let app = TestApp::spawn().await;
    let made = app
        .call(
            "POST",
            "/v1/user/ada/",
            Some(json!({
                "name": "Ada", "country": "United Kingdom", "$timezone": "Europe/London",
                "$preferred_language": "EN", "$locale": "en_gb", "$sms": ["+44 7700 900123"],
                "$email": ["Ada@Example.COM"], "plan": {"tier": "pro"}
            })),
        )
        .await
        .expect(201);
    let p = &made["properties"];
    assert_eq!(p["country"], "GB");
    assert_eq!(p["$timezone"], "Europe/London");
    assert_eq!(p["$preferred_language"], "en");
    assert_eq!(p["$locale"], "en_GB");
    assert_eq!(p["plan"]["tier"], "pro");
    assert_eq!(made["$sms"][0]["value"], "+447700900123");
    assert_eq!(made["$email"][0]["value"], "Ada@example.com");
    assert_eq!(made["status"], "enabled");
    assert!(made["created_at"].is_string() && made["updated_at"].is_string());
}

#[tokio::test]
async fn edits_apply_operations_in_order() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"tags": ["a"], "n": 1})),
    )
    .await
    .expect(201);
    let edited = app
        .call(
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [
                {"$set": {"plan": "pro"}},
                {"$set_once": {"plan": "free", "first": true}},
                {"$add": {"n": 2}},
                {"$increment": {"m": 1}},
                {"$append": {"tags": "b", "$email": "ada@example.com"}},
                {"$remove": {"tags": "a"}},
                {"$unset": ["first"]},
                {"$append": {"$androidpush": "tok-1", "$id_provider": "fcm"}}
            ]})),
        )
        .await
        .expect(202);
    let p = &edited["properties"];
    assert_eq!(p["plan"], "pro");
    assert_eq!(p["n"], 3);
    assert_eq!(p["m"], 1);
    assert_eq!(p["tags"], json!(["b"]));
    assert!(p.get("first").is_none());
    assert_eq!(edited["$email"][0]["value"], "ada@example.com");
    assert_eq!(edited["$androidpush"][0]["id_provider"], "fcm");
    // Unsetting a whole channel.
    let unset = app
        .call(
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [{"$unset": ["$email"]}]})),
        )
        .await
        .expect(202);
    assert!(unset.get("$email").is_none(), "{unset}");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Ada", "n": 1})),
    )
    .await
    .expect(201);
    let before = app.call("GET", "/v1/user/ada/", None).await.expect(200);
    let long_id = format!("/v1/user/{}/", "x".repeat(300));
    // (method, path, body, status, field the envelope names)
    type Case<'a> = (&'a str, String, Option<String>, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/user/ada/".into(),
            Some("{not json".into()),
            400,
            None,
        ),
        (
            "POST",
            "/v1/user/ada/".into(),
            Some(json!(["a"]).to_string()),
            400,
            None,
        ),
        (
            "POST",
            "/v1/user/ada/".into(),
            Some(json!({"$email": ["nope"]}).to_string()),
            400,
            Some("$email[0]"),
        ),
        (
            "POST",
            "/v1/user/ada/".into(),
            Some(json!({"$sms": ["12345"]}).to_string()),
            400,
            Some("$sms[0]"),
        ),
        (
            "POST",
            "/v1/user/ada/".into(),
            Some(json!({"$timezone": "Mars/Base"}).to_string()),
            400,
            Some("$timezone"),
        ),
        (
            "POST",
            "/v1/user/ada/".into(),
            Some(json!({"country": "Atlantis"}).to_string()),
            400,
            Some("country"),
        ),
        (
            "POST",
            "/v1/user/ada/".into(),
            Some(json!({"$preferred_language": "klingon"}).to_string()),
            400,
            Some("$preferred_language"),
        ),
        (
            "POST",
            "/v1/user/ada/".into(),
            Some(json!({"$secret": 1}).to_string()),
            400,
            Some("$secret"),
        ),
        (
            "POST",
            "/v1/user/ada/".into(),
            Some(json!({"ss_internal": 1}).to_string()),
            400,
            Some("ss_internal"),
        ),
        ("POST", long_id, Some("{}".into()), 400, Some("distinct_id")),
        (
            "PATCH",
            "/v1/user/ada/".into(),
            Some(json!({"ops": []}).to_string()),
            400,
            Some("operations"),
        ),
        (
            "PATCH",
            "/v1/user/ada/".into(),
            Some(json!({"operations": [{"$frobnicate": {"n": 1}}]}).to_string()),
            400,
            None,
        ),
        (
            "PATCH",
            "/v1/user/ada/".into(),
            Some(json!({"operations": [{"$add": {"n": "one"}}]}).to_string()),
            400,
            None,
        ),
        // All or nothing: the first operation is valid, the second is not.
        (
            "PATCH",
            "/v1/user/ada/".into(),
            Some(
                json!({"operations": [{"$set": {"n": 99}}, {"$set": {"country": "XX"}}]})
                    .to_string(),
            ),
            400,
            None,
        ),
        (
            "PATCH",
            "/v1/user/ada/status/".into(),
            Some(json!({"status": "paused"}).to_string()),
            400,
            Some("status"),
        ),
        (
            "POST",
            "/v1/user/ada/merge/".into(),
            Some(json!({}).to_string()),
            400,
            Some("from_user_id"),
        ),
        (
            "POST",
            "/v1/user/ada/merge/".into(),
            Some(json!({"from_user_id": "ada"}).to_string()),
            400,
            Some("from_user_id"),
        ),
        (
            "DELETE",
            "/v1/bulk/user/".into(),
            Some(json!({"distinct_ids": [1]}).to_string()),
            400,
            Some("distinct_ids[0]"),
        ),
        (
            "GET",
            "/v1/user/?limit=1001".into(),
            None,
            400,
            Some("limit"),
        ),
        ("GET", "/v1/user/?limit=0".into(), None, 400, Some("limit")),
        (
            "GET",
            "/v1/user/?after=garbage".into(),
            None,
            400,
            Some("after"),
        ),
        (
            "GET",
            "/v1/user/ada/history/?limit=5000".into(),
            None,
            400,
            Some("limit"),
        ),
    ];
    for (method, path, body, status, field) in cases {
        let resp = app
            .send(&app.test, Auth::Bearer, method, &path, body.as_deref())
            .await;
        let env = resp.expect_error(status, field);
        assert_eq!(
            env["error_code"], "validation_error",
            "{method} {path}: {env}"
        );
    }
    let after = app.call("GET", "/v1/user/ada/", None).await.expect(200);
    assert_eq!(before, after, "refused requests changed the profile");
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    assert_eq!(
        history["results"].as_array().unwrap().len(),
        1,
        "only the creation"
    );
}

#[tokio::test]
async fn missing_users_are_404s() {
    let app = TestApp::spawn().await;
    for (method, path, body) in [
        ("GET", "/v1/user/ghost/", None),
        ("DELETE", "/v1/user/ghost/", None),
        ("GET", "/v1/user/ghost/history/", None),
        ("GET", "/v1/user/ghost/export/", None),
        (
            "PATCH",
            "/v1/user/ghost/status/",
            Some(json!({"status": "disabled"})),
        ),
        (
            "POST",
            "/v1/user/ada/merge/",
            Some(json!({"from_user_id": "ghost"})),
        ),
    ] {
        let env = app.call(method, path, body).await.expect_error(404, None);
        assert_eq!(env["error_code"], "not_found", "{method} {path}");
    }
    app.call("GET", "/v1/nothing-here/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn status_can_be_set_by_endpoint_and_by_operation() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({})))
        .await
        .expect(201);
    let off = app
        .call(
            "PATCH",
            "/v1/user/ada/status/",
            Some(json!({"status": "disabled"})),
        )
        .await
        .expect(200);
    assert_eq!(off["status"], "disabled");
    let on = app
        .call(
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [{"$set": {"$status": "enabled"}}]})),
        )
        .await
        .expect(202);
    assert_eq!(on["status"], "enabled");
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    let changes: Vec<Value> = history["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["changes"].as_array().unwrap().clone())
        .filter(|c| c["key"] == "$status" && c.get("before").is_some())
        .collect();
    assert_eq!(changes.len(), 2, "both status changes recorded: {history}");
    assert_eq!(changes[0]["after"], "enabled");
    assert_eq!(changes[1]["after"], "disabled");
}

#[tokio::test]
async fn list_pages_through_everyone_once() {
    let app = TestApp::spawn().await;
    for i in 0..25 {
        app.call("POST", &format!("/v1/user/u{i:02}/"), Some(json!({"i": i})))
            .await
            .expect(201);
    }
    for sort in ["-created_at", "distinct_id", "-updated_at"] {
        let mut seen = Vec::new();
        let mut path = format!("/v1/user/?limit=7&sort={sort}&with_count=true");
        loop {
            let page = app.call("GET", &path, None).await.expect(200);
            assert_eq!(page["meta"]["count"], 25);
            seen.extend(
                page["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["distinct_id"].as_str().unwrap().to_owned()),
            );
            match page["meta"]["after"].as_str() {
                Some(after) => {
                    path = format!("/v1/user/?limit=7&sort={sort}&with_count=true&after={after}")
                }
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (25, 25), "{sort}");
        if sort == "distinct_id" {
            assert_eq!(seen, unique);
        }
    }
    // And back: the page before the last page's start.
    let first = app
        .call("GET", "/v1/user/?limit=10&sort=distinct_id", None)
        .await
        .expect(200);
    let second = app
        .call(
            "GET",
            &format!(
                "/v1/user/?limit=10&sort=distinct_id&after={}",
                first["meta"]["after"].as_str().unwrap()
            ),
            None,
        )
        .await
        .expect(200);
    let back = app
        .call(
            "GET",
            &format!(
                "/v1/user/?limit=10&sort=distinct_id&before={}",
                second["meta"]["before"].as_str().unwrap()
            ),
            None,
        )
        .await
        .expect(200);
    assert_eq!(back["results"], first["results"]);
}

#[tokio::test]
async fn merge_keeps_the_primary_and_removes_the_secondary() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/main/",
        Some(json!({"name": "Main", "plan": "pro", "$email": ["a@example.com"]})),
    )
    .await
    .expect(201);
    app.call("POST", "/v1/user/old/", Some(json!({"name": "Old", "city": "Oslo", "$email": ["b@example.com"], "$sms": ["+4790000000"]})))
        .await
        .expect(201);
    let merged = app
        .call(
            "POST",
            "/v1/user/main/merge/",
            Some(json!({"from_user_id": "old"})),
        )
        .await
        .expect(201);
    assert_eq!(merged["properties"]["name"], "Main");
    assert_eq!(merged["properties"]["city"], "Oslo");
    assert_eq!(merged["$email"].as_array().unwrap().len(), 2);
    assert_eq!(merged["$sms"][0]["value"], "+4790000000");
    app.call("GET", "/v1/user/old/", None)
        .await
        .expect_error(404, None);
    let history = app
        .call("GET", "/v1/user/main/history/", None)
        .await
        .expect(200);
    assert_eq!(history["results"][0]["action"], "merged", "{history}");
}

#[tokio::test]
async fn delete_and_bulk_delete_remove_profiles() {
    let app = TestApp::spawn().await;
    for id in ["a", "b", "c"] {
        app.call("POST", &format!("/v1/user/{id}/"), Some(json!({})))
            .await
            .expect(201);
    }
    app.call("DELETE", "/v1/user/a/", None).await.expect(204);
    app.call("GET", "/v1/user/a/", None)
        .await
        .expect_error(404, None);
    let bulk = app
        .call(
            "DELETE",
            "/v1/bulk/user/",
            Some(json!({"distinct_ids": ["b", "c", "nobody"]})),
        )
        .await
        .expect(202);
    assert_eq!(
        (bulk["deleted"].clone(), bulk["requested"].clone()),
        (json!(2), json!(3))
    );
    let list = app
        .call("GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 0);
}

#[tokio::test]
async fn history_is_newest_first_with_a_cursor() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({"n": 0})))
        .await
        .expect(201);
    for n in 1..=4 {
        app.call(
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [{"$set": {"n": n}}]})),
        )
        .await
        .expect(202);
    }
    let page = app
        .call("GET", "/v1/user/ada/history/?limit=3", None)
        .await
        .expect(200);
    let events = page["results"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0]["changes"][0],
        json!({"key": "n", "before": 3, "after": 4})
    );
    assert_eq!(events[0]["actor"]["kind"], "api_key");
    let rest = app
        .call(
            "GET",
            &format!(
                "/v1/user/ada/history/?limit=3&after={}",
                page["meta"]["after"].as_str().unwrap()
            ),
            None,
        )
        .await
        .expect(200);
    let rest = rest["results"].as_array().unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1]["action"], "created");
}

#[tokio::test]
async fn trailing_slashes_are_optional_and_ids_are_percent_decoded() {
    let app = TestApp::spawn().await;
    for auth in [Auth::Bearer, Auth::Hmac] {
        app.send(
            &app.test,
            auth,
            "POST",
            "/v1/user/a%40b.com",
            Some("{\"x\": 1}"),
        )
        .await
        .expect(201);
        let got = app
            .send(&app.test, auth, "GET", "/v1/user/a%40b.com/", None)
            .await
            .expect(200);
        assert_eq!(got["distinct_id"], "a@b.com");
    }
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let r = app.raw("GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.is_object(), "{path}: {}", r.body);
    }
    app.call("POST", "/v1/user/ada/", Some(json!({})))
        .await
        .expect(201);
    let metrics = app.raw("GET", "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("herald_"), "{text}");
}
