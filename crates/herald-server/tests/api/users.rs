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

#[tokio::test]
async fn the_user_object_has_the_documented_shape() {
    let app = TestApp::spawn().await;
    let body = json!({
        "name": "  Ada Lovelace ", "$timezone": "europe/london", "plan": "pro",
        "$email": ["Ada@Example.COM", "ada@example.com"],
        "$sms": "+1 (415) 555-0123",
        "$whatsapp": ["+14155550124"],
        "$androidpush": [{"token": "fcm-token-1", "provider": "fcm", "device_id": "pixel"}],
        "$iospush": ["apns-token-1"],
        "$webpush": [{"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}],
        "$slack": {"email": "ada@example.com", "access_token": "xoxb-123"},
        "$ms_teams": [{"tenant_id": "t1", "service_url": "https://smba.trafficmanager.net/amer/", "conversation_id": "19:abc"}],
        "$discord": "https://discord.com/api/webhooks/123/abc",
        "$inbox": [" inbox-ada "]
    });
    let r = app
        .send(
            &app.test,
            Auth::Bearer,
            "POST",
            "/v1/user/ada/",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let made = r.expect(201);
    let keys: Vec<&str> = made
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "distinct_id",
            "properties",
            "status",
            "created_at",
            "updated_at",
            "version",
            "$email",
            "$sms",
            "$whatsapp",
            "$androidpush",
            "$iospush",
            "$webpush",
            "$slack",
            "$ms_teams",
            "$discord",
            "$inbox"
        ]
    );
    assert_eq!(made["distinct_id"], "ada");
    assert_eq!(
        made["properties"],
        json!({"name": "Ada Lovelace", "$timezone": "Europe/London", "plan": "pro"})
    );
    assert_eq!(
        (made["status"].clone(), made["version"].clone()),
        (json!("enabled"), json!(1))
    );
    for t in ["created_at", "updated_at"] {
        let s = made[t].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(s).unwrap();
        assert!(s.ends_with("+00:00") && s.len() == 32, "{t}: {s}");
        assert!((chrono::Utc::now() - parsed.to_utc()).num_seconds().abs() < 60);
    }
    assert_eq!(made["created_at"], made["updated_at"]);
    let active = |v: Value| json!({"value": v, "status": "active", "perma_status": "active"});
    let with = |v: Value, extra: Value| {
        let mut o = extra;
        o["value"] = v;
        o["status"] = json!("active");
        o["perma_status"] = json!("active");
        o
    };
    // Duplicates compare case-insensitively; the first spelling stays.
    assert_eq!(made["$email"], json!([active(json!("Ada@example.com"))]));
    assert_eq!(made["$sms"], json!([active(json!("+14155550123"))]));
    assert_eq!(made["$whatsapp"], json!([active(json!("+14155550124"))]));
    assert_eq!(
        made["$androidpush"],
        json!([with(
            json!("fcm-token-1"),
            json!({"id_provider": "fcm", "device_id": "pixel"})
        )])
    );
    assert_eq!(
        made["$iospush"],
        json!([with(json!("apns-token-1"), json!({"id_provider": "apns"}))])
    );
    assert_eq!(made["$webpush"][0]["id_provider"], "vapid");
    assert_eq!(
        made["$webpush"][0]["value"]["endpoint"],
        "https://fcm.googleapis.com/fcm/send/abc"
    );
    assert_eq!(
        made["$slack"],
        json!([active(
            json!({"email": "ada@example.com", "access_token": "xoxb-123"})
        )])
    );
    assert_eq!(made["$ms_teams"][0]["value"]["conversation_id"], "19:abc");
    assert_eq!(
        made["$discord"],
        json!([active(json!("https://discord.com/api/webhooks/123/abc"))])
    );
    assert_eq!(
        made["$inbox"],
        json!([{"value": "inbox-ada", "id_provider": "suprsend", "status": "active", "perma_status": "active"}])
    );
    // GET returns exactly what the write returned.
    assert_eq!(app.user("ada").await, made);
}

#[tokio::test]
async fn upsert_sets_properties_adds_identities_and_keeps_created_at() {
    let app = TestApp::spawn().await;
    let first = app
        .call(
            "POST",
            "/v1/user/ada/",
            Some(json!({"plan": "free", "seats": 1, "$email": ["a@example.com"]})),
        )
        .await
        .expect(201);
    let second = app
        .call(
            "POST",
            "/v1/user/ada/",
            Some(json!({"plan": "pro", "$email": ["A@EXAMPLE.com", "b@example.com"], "$status": "disabled"})),
        )
        .await
        .expect(201);
    assert_eq!(second["properties"], json!({"plan": "pro", "seats": 1}));
    let emails: Vec<&str> = second["$email"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);
    assert_eq!(second["status"], "disabled");
    assert_eq!(second["version"], 2);
    assert_eq!(second["created_at"], first["created_at"]);
    assert!(second["updated_at"].as_str() >= first["updated_at"].as_str());
    assert_eq!(app.user("ada").await, second);
    // An empty body, or none, makes an empty profile.
    for (id, body) in [("e1", Some("{}")), ("e2", None), ("e3", Some("  "))] {
        let r = app
            .send(
                &app.test,
                Auth::Hmac,
                "POST",
                &format!("/v1/user/{id}/"),
                body,
            )
            .await
            .expect(201);
        assert_eq!(r["properties"], json!({}), "{id}");
        assert_eq!(r["status"], "enabled");
    }
}

#[tokio::test]
async fn patch_creates_a_missing_user_and_applies_every_operator_as_documented() {
    let app = TestApp::spawn().await;
    let fresh = app
        .call(
            "PATCH",
            "/v1/user/new/",
            Some(json!({"operations": [{"$set": {"k": 1}}]})),
        )
        .await
        .expect(202);
    assert_eq!(
        (fresh["version"].clone(), fresh["properties"].clone()),
        (json!(1), json!({"k": 1}))
    );
    assert_eq!(app.user("new").await, fresh);

    // The example of docs/api.md § Operations, with its documented outcome.
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"$email": ["a@example.com"], "tags": ["a", "b"], "n": 1, "name": "Ada"})),
    )
    .await
    .expect(201);
    let edited = app
        .call(
            "PATCH",
            "/v1/user/ada",
            Some(json!({"operations": [
                {"$set_once": {"$email": "b@example.com", "first_seen": "2026-01-01", "n": 99}},
                {"$remove": {"tags": "a", "$email": "A@EXAMPLE.COM"}},
                {"$add": {"n": 0.5}},
                {"$set": {"$sms": ["+14155550100", "+14155550101"], "name": null}},
                {"$unset": "$status"},
                {"$append": {"$androidpush": "fcm-token-1", "$id_provider": "fcm", "$bundle_id": "com.example.app"}}
            ]})),
        )
        .await
        .expect(202);
    assert_eq!(
        edited["properties"],
        json!({"tags": ["b"], "n": 1.5, "name": null, "first_seen": "2026-01-01"})
    );
    assert!(edited.get("$email").is_none(), "{edited}");
    let sms: Vec<&str> = edited["$sms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(sms, ["+14155550100", "+14155550101"]);
    assert_eq!(edited["status"], "enabled");
    assert_eq!(
        edited["$androidpush"],
        json!([{"value": "fcm-token-1", "id_provider": "fcm", "bundle_id": "com.example.app", "status": "active", "perma_status": "active"}])
    );
    assert_eq!(edited["version"], 2, "one call, one version");
    // `$set` of a channel to null or [] empties it; a known token with new metadata updates it.
    let emptied = app
        .call(
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [
                {"$set": {"$sms": null}},
                {"$append": {"$androidpush": "fcm-token-1", "$id_provider": "xiaomi"}},
                {"$remove": {"$androidpush": "nope"}}
            ]})),
        )
        .await
        .expect(202);
    assert!(emptied.get("$sms").is_none());
    assert_eq!(emptied["$androidpush"].as_array().unwrap().len(), 1);
    assert_eq!(emptied["$androidpush"][0]["id_provider"], "xiaomi");
    assert_eq!(emptied["$androidpush"][0]["bundle_id"], "com.example.app");
}

#[tokio::test]
async fn delete_answers_204_without_a_body_then_404() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({"k": 1})))
        .await
        .expect(201);
    app.call("POST", "/v1/user/bob/", Some(json!({})))
        .await
        .expect(201);
    for auth in [Auth::Hmac, Auth::Bearer] {
        app.call("POST", "/v1/user/ada/", Some(json!({"k": 1})))
            .await
            .expect(201);
        let r = app
            .send(&app.test, auth, "DELETE", "/v1/user/ada", None)
            .await;
        assert_eq!((r.status, r.body), (204, Value::Null));
        let e = app
            .send(&app.test, auth, "DELETE", "/v1/user/ada/", None)
            .await
            .expect_error(404, None);
        assert_eq!(e["message"], "user [distinct_id: 'ada'] not found");
        app.call("GET", "/v1/user/ada/", None)
            .await
            .expect_error(404, None);
    }
    let list = app
        .call("GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(list["meta"]["count"], 1);
    assert_eq!(list["results"][0]["distinct_id"], "bob");
    // A bulk delete of nothing that exists deletes nothing.
    let r = app
        .call("DELETE", "/v1/bulk/user", Some(json!({"distinct_ids": []})))
        .await
        .expect(202);
    assert_eq!(r, json!({"success": true, "deleted": 0, "requested": 0}));
    assert_eq!(app.user("bob").await["distinct_id"], "bob");
}

#[tokio::test]
async fn status_is_set_by_endpoint_upsert_and_operations_and_filters_the_list() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({"k": 1})))
        .await
        .expect(201);
    app.call("POST", "/v1/user/bob/", Some(json!({})))
        .await
        .expect(201);
    let steps: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "PATCH",
            "/v1/user/ada/status",
            json!({"status": "disabled"}),
            200,
            "disabled",
        ),
        (
            "PATCH",
            "/v1/user/ada/status/",
            json!({"status": "enabled"}),
            200,
            "enabled",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$set": {"$status": "disabled"}}]}),
            202,
            "disabled",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$set_once": {"$status": "enabled"}}]}),
            202,
            "disabled",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$unset": ["$status"]}]}),
            202,
            "enabled",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$status": "disabled"}),
            201,
            "disabled",
        ),
    ];
    for (method, path, body, status, want) in steps {
        let r = app
            .call(method, path, Some(body.clone()))
            .await
            .expect(status);
        assert_eq!(r["status"], want, "{method} {path} {body}");
        assert_eq!(app.user("ada").await["status"], want);
        assert!(
            r["properties"].get("$status").is_none(),
            "status is not a property"
        );
    }
    let disabled = app
        .call("GET", "/v1/user/?status=disabled", None)
        .await
        .expect(200);
    let ids: Vec<&str> = disabled["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["distinct_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ada"]);
    // The endpoint does not create a missing user.
    app.call(
        "PATCH",
        "/v1/user/ghost/status/",
        Some(json!({"status": "disabled"})),
    )
    .await
    .expect_error(404, None);
    app.call("GET", "/v1/user/ghost/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn list_cursors_are_stable_while_profiles_change() {
    let app = TestApp::spawn().await;
    for i in 0..10 {
        app.call("POST", &format!("/v1/user/u{i:02}/"), Some(json!({})))
            .await
            .expect(201);
    }
    let ids = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["distinct_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = app
        .call("GET", "/v1/user/?limit=4&sort=distinct_id", None)
        .await
        .expect(200);
    assert_eq!(ids(&first), ["u00", "u01", "u02", "u03"]);
    assert_eq!(
        (
            first["meta"]["has_prev"].clone(),
            first["meta"]["has_next"].clone(),
            first["meta"]["before"].clone()
        ),
        (json!(false), json!(true), Value::Null)
    );
    assert_eq!(first["meta"]["sort"], "distinct_id");
    // Between pages: one profile of page 1 goes, one sorting before everything arrives.
    app.call("DELETE", "/v1/user/u01/", None).await.expect(204);
    app.call("POST", "/v1/user/a00/", Some(json!({})))
        .await
        .expect(201);
    let after = first["meta"]["after"].as_str().unwrap();
    let second = app
        .call(
            "GET",
            &format!("/v1/user/?limit=4&sort=distinct_id&after={after}"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&second), ["u04", "u05", "u06", "u07"]);
    assert_eq!(
        (
            second["meta"]["has_prev"].clone(),
            second["meta"]["has_next"].clone()
        ),
        (json!(true), json!(true))
    );
    let back = app
        .call(
            "GET",
            &format!(
                "/v1/user/?limit=4&sort=distinct_id&before={}",
                second["meta"]["before"].as_str().unwrap()
            ),
            None,
        )
        .await
        .expect(200);
    assert_eq!(ids(&back), ["a00", "u00", "u02", "u03"]);
    // Descending sorts page the other way.
    let desc = app
        .call("GET", "/v1/user/?limit=3&sort=-distinct_id", None)
        .await
        .expect(200);
    assert_eq!(ids(&desc), ["u09", "u08", "u07"]);
    // Cursor misuse names the parameter.
    for (q, field) in [
        (format!("after={after}&before={after}"), "after"),
        (format!("sort=-distinct_id&after={after}"), "after"),
        ("before=garbage".to_owned(), "before"),
        ("sort=name".to_owned(), "sort"),
        ("with_count=maybe".to_owned(), "with_count"),
    ] {
        app.call("GET", &format!("/v1/user/?{q}"), None)
            .await
            .expect_error(400, Some(field));
    }
}

#[tokio::test]
async fn merge_keeps_the_primarys_values_and_gains_what_it_lacks() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/main/",
        Some(json!({"name": "Main", "plan": "pro", "nested": {"a": 1}, "$email": ["Shared@Example.com"]})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/old/",
        Some(json!({
            "name": "Old", "plan": "free", "nested": {"b": 2}, "city": "Oslo", "$status": "disabled",
            "$email": ["shared@example.com", "old@example.com"],
            "$iospush": [{"token": "apns-1", "device_id": "iphone"}]
        })),
    )
    .await
    .expect(201);
    let merged = app
        .send(
            &app.test,
            Auth::Hmac,
            "POST",
            "/v1/user/main/merge",
            Some(r#"{"from_user_id": "old"}"#),
        )
        .await
        .expect(201);
    assert_eq!(merged["distinct_id"], "main");
    assert_eq!(
        merged["properties"],
        json!({"name": "Main", "plan": "pro", "nested": {"a": 1}, "city": "Oslo"})
    );
    assert_eq!(merged["status"], "enabled", "the primary's status stands");
    let emails: Vec<&str> = merged["$email"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["Shared@example.com", "old@example.com"]);
    assert_eq!(
        merged["$iospush"],
        json!([{"value": "apns-1", "id_provider": "apns", "device_id": "iphone", "status": "active", "perma_status": "active"}])
    );
    assert_eq!(merged["version"], 2);
    assert_eq!(app.user("main").await, merged);
    app.call("GET", "/v1/user/old/", None)
        .await
        .expect_error(404, None);
    // Again: the secondary is gone, so 404, and the primary is unchanged.
    let e = app
        .call(
            "POST",
            "/v1/user/main/merge/",
            Some(json!({"from_user_id": "old"})),
        )
        .await
        .expect_error(404, None);
    assert_eq!(e["message"], "user [distinct_id: 'old'] not found");
    assert_eq!(app.user("main").await, merged);
    // A missing secondary does not create the primary either.
    app.call(
        "POST",
        "/v1/user/nobody/merge/",
        Some(json!({"from_user_id": "ghost"})),
    )
    .await
    .expect_error(404, None);
    app.call("GET", "/v1/user/nobody/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn wrong_types_invalid_values_and_reserved_keys_name_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Ada", "n": 1, "tags": ["a"], "$email": ["ada@example.com"]})),
    )
    .await
    .expect(201);
    app.call("POST", "/v1/user/big/", Some(json!({"n": i64::MAX})))
        .await
        .expect(201);
    app.call("POST", "/v1/user/old/", Some(json!({})))
        .await
        .expect(201);
    let before = app.snapshot(herald_core::Env::Test).await;
    let ops = |o: Value| json!({ "operations": o }).to_string();
    // (method, path, raw body, field; "" = the envelope's field is null)
    let cases: Vec<(&str, &str, String, &str)> = vec![
        // Malformed JSON on every writing endpoint.
        ("POST", "/v1/user/ada/", "{not json".into(), "body"),
        (
            "PATCH",
            "/v1/user/ada/",
            "{\"operations\": [".into(),
            "body",
        ),
        (
            "PATCH",
            "/v1/user/ada/status/",
            "{'status': 'disabled'}".into(),
            "body",
        ),
        (
            "POST",
            "/v1/user/ada/merge/",
            "{\"from_user_id\": old}".into(),
            "body",
        ),
        (
            "DELETE",
            "/v1/bulk/user/",
            "{\"distinct_ids\": [\"ada\",]}".into(),
            "body",
        ),
        // Wrong types.
        ("POST", "/v1/user/ada/", "[1]".into(), ""),
        ("POST", "/v1/user/ada/", "\"ada\"".into(), ""),
        (
            "POST",
            "/v1/user/ada/",
            json!({"name": 5}).to_string(),
            "name",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"country": 1}).to_string(),
            "country",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$timezone": ["UTC"]}).to_string(),
            "$timezone",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$email": 5}).to_string(),
            "$email",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$id_provider": 5, "$androidpush": "t"}).to_string(),
            "$id_provider",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": "x"}).to_string(),
            "operations",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": {"$set": {"n": 2}}}).to_string(),
            "operations",
        ),
        ("PATCH", "/v1/user/ada/", ops(json!([5])), "operations[0]"),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": ["n"]}])),
            "operations[0].$set",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$unset": 5}])),
            "operations[0].$unset",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$unset": [5]}])),
            "operations[0].$unset[0]",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$add": {"n": "1"}}])),
            "operations[0].$add.n",
        ),
        (
            "PATCH",
            "/v1/user/ada/status/",
            json!({"status": 1}).to_string(),
            "status",
        ),
        (
            "PATCH",
            "/v1/user/ada/status/",
            json!({}).to_string(),
            "status",
        ),
        (
            "POST",
            "/v1/user/ada/merge/",
            json!({"from_user_id": 5}).to_string(),
            "from_user_id",
        ),
        (
            "POST",
            "/v1/user/ada/merge/",
            json!({"from_user_id": "  "}).to_string(),
            "from_user_id",
        ),
        (
            "DELETE",
            "/v1/bulk/user/",
            json!({"distinct_ids": "ada"}).to_string(),
            "distinct_ids",
        ),
        (
            "DELETE",
            "/v1/bulk/user/",
            json!({}).to_string(),
            "distinct_ids",
        ),
        (
            "DELETE",
            "/v1/bulk/user/",
            json!({"distinct_ids": ["ada", ""]}).to_string(),
            "distinct_ids[1]",
        ),
        // Invalid values, in upserts and in operations.
        (
            "POST",
            "/v1/user/ada/",
            json!({"$email": ["ok@example.com", "a@b"]}).to_string(),
            "$email[1]",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$whatsapp": "0044 7700"}).to_string(),
            "$whatsapp",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$locale": "english"}).to_string(),
            "$locale",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$status": "paused"}).to_string(),
            "$status",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$androidpush": [{"token": "t", "provider": "apns"}]}).to_string(),
            "$androidpush[0]",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$slack": {"email": "ada@example.com"}}).to_string(),
            "$slack",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"$webpush": {"endpoint": "nope", "keys": {"p256dh": "a", "auth": "b"}}})
                .to_string(),
            "$webpush",
        ),
        // A subscription whose keys could never be encrypted to.
        (
            "PATCH",
            "/v1/user/ada/",
            ops(
                json!([{"$append": {"$webpush": {"endpoint": "https://push.example/1", "keys": {"p256dh": "BNc", "auth": "tBH"}}}}]),
            ),
            "operations[0].$append.$webpush",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"$email": "nope"}}])),
            "operations[0].$set.$email",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$append": {"$email": "nope"}}])),
            "operations[0].$append.$email",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"$sms": ["+14155550100", "07700"]}}])),
            "operations[0].$set.$sms[1]",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"$timezone": "Mars/Base"}}])),
            "operations[0].$set.$timezone",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"country": "Atlantis"}}])),
            "operations[0].$set.country",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set_once": {"$preferred_language": "xx"}}])),
            "operations[0].$set_once.$preferred_language",
        ),
        // Reserved keys and general properties used the wrong way.
        (
            "POST",
            "/v1/user/ada/",
            json!({"$plan": 1}).to_string(),
            "$plan",
        ),
        (
            "POST",
            "/v1/user/ada/",
            json!({"SS_plan": 1}).to_string(),
            "SS_plan",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"$foo": 1}}])),
            "operations[0].$set.$foo",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"ss_foo": 1}}])),
            "operations[0].$set.ss_foo",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$add": {"ss_n": 1}}])),
            "operations[0].$add.ss_n",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$unset": ["$foo"]}])),
            "operations[0].$unset[0]",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$add": {"name": 1}}])),
            "operations[0].$add.name",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$add": {"$email": 1}}])),
            "operations[0].$add.$email",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$append": {"name": "x"}}])),
            "operations[0].$append.name",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$append": {"$status": "disabled"}}])),
            "operations[0].$append.$status",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$remove": {"$status": "enabled"}}])),
            "operations[0].$remove.$status",
        ),
        // Unknown operators.
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$frobnicate": {"n": 1}}])),
            "operations[0].$frobnicate",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"n": 2}, "set": {"n": 3}}])),
            "operations[0].set",
        ),
        // All or nothing: a later operation failing, while parsing or while applying.
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"n": 99}}, {"$set": {"country": "XX"}}])),
            "operations[1].$set.country",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"n": 99}}, {"$append": {"n": 1}}])),
            "operations[1].$append.n",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$unset": ["tags"]}, {"$add": {"name": 1}}])),
            "operations[1].$add.name",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$append": {"$email": "x@example.com"}}, {"$add": {"tags": 1}}])),
            "operations[1].$add.tags",
        ),
        (
            "PATCH",
            "/v1/user/ada/",
            ops(json!([{"$set": {"k": 1}}, {"$remove": {"name": "Ada"}}])),
            "operations[1].$remove.name",
        ),
        (
            "PATCH",
            "/v1/user/big/",
            ops(json!([{"$set": {"m": 1}}, {"$add": {"n": 1}}])),
            "operations[1].$add.n",
        ),
        // A refused edit of a new id does not create it.
        (
            "PATCH",
            "/v1/user/newcomer/",
            ops(json!([{"$set": {"k": 1}}, {"$append": {"name": "x"}}])),
            "operations[1].$append.name",
        ),
        (
            "POST",
            "/v1/user/newcomer/",
            json!({"k": 1, "country": "XX"}).to_string(),
            "country",
        ),
        // Merging into itself.
        (
            "POST",
            "/v1/user/old/merge/",
            json!({"from_user_id": "old"}).to_string(),
            "from_user_id",
        ),
    ];
    for auth in [Auth::Bearer, Auth::Hmac] {
        for (method, path, body, field) in &cases {
            let r = app.send(&app.test, auth, method, path, Some(body)).await;
            let e = if field.is_empty() {
                let e = r.expect_error(400, None);
                assert_eq!(e["field"], Value::Null, "{method} {path} {body}: {e}");
                e
            } else {
                r.expect_error(400, Some(field))
            };
            assert_eq!(
                e["error_code"], "validation_error",
                "{method} {path} {body}"
            );
            assert_eq!(e["type"], "ValidationError");
            if !field.is_empty() {
                assert!(
                    e["message"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{field}: ")),
                    "{method} {path} {body}: {e}"
                );
            }
        }
    }
    assert_eq!(app.snapshot(herald_core::Env::Test).await, before);
}

#[tokio::test]
async fn every_endpoint_takes_its_path_with_or_without_the_trailing_slash() {
    let app = TestApp::spawn().await;
    for auth in [Auth::Bearer, Auth::Hmac] {
        let s = |b: Value| Some(b.to_string());
        let steps: Vec<(&str, &str, Option<String>, u16)> = vec![
            ("POST", "/v1/user/a", s(json!({"k": 1})), 201),
            ("POST", "/v1/user/b", s(json!({"j": 1})), 201),
            ("GET", "/v1/user/a", None, 200),
            (
                "PATCH",
                "/v1/user/a",
                s(json!({"operations": [{"$add": {"k": 1}}]})),
                202,
            ),
            (
                "PATCH",
                "/v1/user/a/status",
                s(json!({"status": "disabled"})),
                200,
            ),
            ("GET", "/v1/user/a/history", None, 200),
            ("GET", "/v1/user/a/history?limit=1", None, 200),
            ("GET", "/v1/user/a/export", None, 200),
            ("GET", "/v1/user", None, 200),
            ("GET", "/v1/user?limit=1", None, 200),
            (
                "POST",
                "/v1/user/a/merge",
                s(json!({"from_user_id": "b"})),
                201,
            ),
            (
                "POST",
                "/event",
                s(json!({"distinct_id": "a", "$user_operations": [{"$add": {"k": 1}}]})),
                202,
            ),
            (
                "DELETE",
                "/v1/bulk/user",
                s(json!({"distinct_ids": ["a"]})),
                202,
            ),
            ("POST", "/v1/user/c", s(json!({})), 201),
            ("DELETE", "/v1/user/c", None, 204),
        ];
        for (method, path, body, status) in steps {
            let r = app
                .send(&app.test, auth, method, path, body.as_deref())
                .await;
            assert_eq!(r.status, status, "{auth:?} {method} {path}: {}", r.body);
            if path == "/v1/user/a/history?limit=1" {
                assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
                assert_eq!(r.body["meta"]["limit"], 1);
            }
            if path == "/v1/user?limit=1" {
                assert_eq!(r.body["meta"]["limit"], 1);
            }
            if path == "/v1/user/a/merge" {
                assert_eq!(r.body["properties"], json!({"k": 2, "j": 1}));
            }
        }
        app.call("GET", "/v1/user/a/", None)
            .await
            .expect_error(404, None);
    }
}

#[tokio::test]
async fn operations_endpoints_are_public_and_say_real_things() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.raw("GET", "/healthz", &[]).await.expect(200),
        json!({"status": "ok"})
    );
    assert_eq!(
        app.raw("GET", "/readyz/", &[]).await.expect(200),
        json!({"status": "ready"})
    );
    let doc = app.raw("GET", "/openapi.json", &[]).await;
    assert_eq!(doc.content_type.as_deref(), Some("application/json"));
    let doc = doc.expect(200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/user/", vec!["get"]),
        (
            "/v1/user/{distinct_id}/",
            vec!["get", "post", "patch", "delete"],
        ),
        ("/v1/user/{distinct_id}/merge/", vec!["post"]),
        ("/v1/user/{distinct_id}/status/", vec!["patch"]),
        ("/v1/user/{distinct_id}/history/", vec!["get"]),
        ("/v1/bulk/user/", vec!["delete"]),
        ("/event/", vec!["post"]),
    ] {
        for m in methods {
            assert!(paths[path].get(m).is_some(), "openapi lacks {m} {path}");
        }
    }

    app.call("POST", "/v1/user/secret-ada/", Some(json!({})))
        .await
        .expect(201);
    app.call("POST", "/v1/user/secret-ada/", Some(json!({})))
        .await
        .expect(201);
    app.call("GET", "/v1/user/secret-ada/", None)
        .await
        .expect(200);
    let m = app.raw("GET", "/metrics", &[]).await;
    assert_eq!(m.content_type.as_deref(), Some("text/plain; version=0.0.4"));
    let text = m.body.as_str().unwrap().to_owned();
    assert!(
        text.lines().any(|l| l
            == "herald_http_requests_total{method=\"POST\",route=\"/v1/user/{id}\",status=\"201\"} 2"),
        "{text}"
    );
    assert!(text.contains(
        "herald_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/user/{id}\",status=\"200\"} 1"
    ));
    assert!(!text.contains("secret-ada"), "ids stay out of metrics");
    // Store gauges: profiles per environment from the counters, and that the database answered.
    app.call_in(
        herald_core::Env::Live,
        "POST",
        "/v1/user/bob/",
        Some(json!({})),
    )
    .await
    .expect(201);
    let text = app.raw("GET", "/metrics", &[]).await.body;
    let text = text.as_str().unwrap();
    for line in [
        "herald_store_up 1",
        "herald_profiles{env=\"test\"} 1",
        "herald_profiles{env=\"live\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
}

#[tokio::test]
async fn if_match_makes_an_edit_apply_only_to_the_version_read() {
    let app = TestApp::spawn().await;
    let created = app
        .call_with("POST", "/v1/user/ada/", Some(json!({"plan": "free"})), &[])
        .await;
    assert_eq!(
        (created.status, created.etag.as_deref()),
        (201, Some("\"1\""))
    );
    let read = app.call_with("GET", "/v1/user/ada/", None, &[]).await;
    assert_eq!(read.etag.as_deref(), Some("\"1\""));

    // Two editors read version 1; the first edit wins, the second is refused, not applied.
    let set = |plan: &str| json!({"operations": [{"$set": {"plan": plan}}]});
    let first = app
        .call_with(
            "PATCH",
            "/v1/user/ada/",
            Some(set("pro")),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!((first.status, first.etag.as_deref()), (202, Some("\"2\"")));
    let before = app.snapshot(herald_core::Env::Test).await;
    let second = app
        .call_with(
            "PATCH",
            "/v1/user/ada/",
            Some(set("team")),
            &[("If-Match", "\"1\"")],
        )
        .await
        .expect_error(412, Some("If-Match"));
    assert_eq!(second["error_code"], "precondition_failed");
    assert!(
        second["message"]
            .as_str()
            .unwrap()
            .contains("the profile is at version 2, not 1"),
        "{second}"
    );
    for (method, path, body) in [
        ("POST", "/v1/user/ada/", json!({"plan": "team"})),
        (
            "PATCH",
            "/v1/user/ada/status/",
            json!({"status": "disabled"}),
        ),
    ] {
        app.call_with(method, path, Some(body), &[("If-Match", "W/\"1\"")])
            .await
            .expect_error(412, Some("If-Match"));
    }
    // A profile that does not exist is at no version: nothing is created.
    app.call_with(
        "POST",
        "/v1/user/bob/",
        Some(json!({})),
        &[("If-Match", "1")],
    )
    .await
    .expect_error(412, Some("If-Match"));
    for bad in ["*", "abc", "0", "\"-2\""] {
        app.call_with(
            "PATCH",
            "/v1/user/ada/",
            Some(set("x")),
            &[("If-Match", bad)],
        )
        .await
        .expect_error(400, Some("If-Match"));
    }
    assert_eq!(app.snapshot(herald_core::Env::Test).await, before);

    // The current version applies, for every conditional endpoint.
    let r = app
        .call_with(
            "PATCH",
            "/v1/user/ada/status/",
            Some(json!({"status": "disabled"})),
            &[("If-Match", "2")],
        )
        .await;
    assert_eq!((r.status, r.etag.as_deref()), (200, Some("\"3\"")));
    let r = app
        .call_with(
            "POST",
            "/v1/user/ada/",
            Some(json!({"plan": "team"})),
            &[("If-Match", "\"3\"")],
        )
        .await;
    assert_eq!((r.status, r.etag.as_deref()), (201, Some("\"4\"")));
    assert_eq!(app.user("ada").await["properties"]["plan"], "team");
}

#[tokio::test]
async fn a_merge_dry_run_shows_the_result_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"name": "Ada", "plan": "pro", "$email": ["ada@example.com"]})),
    )
    .await
    .expect(201);
    app.call(
        "POST",
        "/v1/user/ada-old/",
        Some(json!({"name": "A. L.", "city": "London", "$email": ["ada@old.example.com"]})),
    )
    .await
    .expect(201);
    let before = app.snapshot(herald_core::Env::Test).await;
    let body = json!({"from_user_id": "ada-old"});
    let preview = app
        .call(
            "POST",
            "/v1/user/ada/merge/?dry_run=true",
            Some(body.clone()),
        )
        .await
        .expect(200);
    assert_eq!(
        app.snapshot(herald_core::Env::Test).await,
        before,
        "a dry run writes nothing"
    );
    assert_eq!(
        app.call(
            "POST",
            "/v1/user/ada/merge/?dry_run=maybe",
            Some(body.clone())
        )
        .await
        .expect_error(400, Some("dry_run"))["code"],
        400
    );
    app.call(
        "POST",
        "/v1/user/ada/merge/?dry_run=true",
        Some(json!({"from_user_id": "nobody"})),
    )
    .await
    .expect_error(404, None);
    // The real merge leaves exactly what the preview showed (but for the time it ran).
    let merged = app
        .call("POST", "/v1/user/ada/merge/", Some(body))
        .await
        .expect(201);
    let without_time = |mut v: Value| {
        v.as_object_mut().unwrap().remove("updated_at");
        v
    };
    assert_eq!(without_time(preview.clone()), without_time(merged));
    assert_eq!(preview["properties"]["city"], "London");
    assert_eq!(preview["properties"]["name"], "Ada");
    assert_eq!(preview["$email"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_edit_retried_with_its_idempotency_key_applies_once() {
    let app = TestApp::spawn().await;
    let add = json!({"operations": [{"$add": {"n": 1}}]});
    let key = [("Idempotency-Key", "3f1c-retry-1")];
    for _ in 0..3 {
        let r = app
            .call_with("PATCH", "/v1/user/ada/", Some(add.clone()), &key)
            .await;
        assert_eq!(r.status, 202);
        assert_eq!(
            (r.body["properties"]["n"].clone(), r.body["version"].clone()),
            (json!(1), json!(1))
        );
    }
    // The same key on another request (an upsert here) is refused: a key names one request.
    app.call_with("POST", "/v1/user/ada/", Some(json!({"n": 50})), &key)
        .await
        .expect_error(422, Some("Idempotency-Key"));
    assert_eq!(app.user("ada").await["properties"]["n"], 1);
    // Another key applies.
    let r = app
        .call_with(
            "PATCH",
            "/v1/user/ada/",
            Some(add.clone()),
            &[("Idempotency-Key", "3f1c-retry-2")],
        )
        .await;
    assert_eq!(r.body["properties"]["n"], 2);
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    assert_eq!(history["results"].as_array().unwrap().len(), 2);
    // Refused keys name the header and change nothing.
    let long = "k".repeat(256);
    for bad in ["", long.as_str()] {
        app.call_with(
            "PATCH",
            "/v1/user/ada/",
            Some(add.clone()),
            &[("Idempotency-Key", bad)],
        )
        .await
        .expect_error(400, Some("Idempotency-Key"));
    }
    // A retry after the user was deleted finds nothing to answer with, and creates nothing.
    app.call("DELETE", "/v1/user/ada/", None).await.expect(204);
    app.call_with("PATCH", "/v1/user/ada/", Some(add), &key)
        .await
        .expect_error(404, None);
    app.call("GET", "/v1/user/ada/", None)
        .await
        .expect_error(404, None);
}
