//! Test and live never cross: the key picks the environment.

use crate::harness::{Auth, TestApp};
use herald_core::Env;
use serde_json::json;

#[tokio::test]
async fn a_test_key_can_neither_read_nor_touch_a_live_profile() {
    let app = TestApp::spawn().await;
    app.call_in(
        Env::Live,
        "POST",
        "/v1/user/vip/",
        Some(json!({"plan": "live"})),
    )
    .await
    .expect(201);
    for auth in [Auth::Bearer, Auth::Hmac] {
        for (method, path, body) in [
            ("GET", "/v1/user/vip/", None),
            ("GET", "/v1/user/vip/history/", None),
            ("GET", "/v1/user/vip/export/", None),
            ("DELETE", "/v1/user/vip/", None),
            (
                "PATCH",
                "/v1/user/vip/status/",
                Some(json!({"status": "disabled"}).to_string()),
            ),
            (
                "POST",
                "/v1/user/other/merge/",
                Some(json!({"from_user_id": "vip"}).to_string()),
            ),
        ] {
            app.send(&app.test, auth, method, path, body.as_deref())
                .await
                .expect_error(404, None);
        }
    }
    for auth in [Auth::Bearer, Auth::Hmac] {
        // An edit from test creates a test profile; the live one is untouched.
        app.send(
            &app.test,
            auth,
            "PATCH",
            "/v1/user/vip/",
            Some(&json!({"operations": [{"$set": {"plan": "test"}}]}).to_string()),
        )
        .await
        .expect(202);
        app.send(
            &app.test,
            auth,
            "DELETE",
            "/v1/bulk/user/",
            Some(&json!({"distinct_ids": ["vip"]}).to_string()),
        )
        .await
        .expect(202);
    }
    let live = app
        .call_in(Env::Live, "GET", "/v1/user/vip/", None)
        .await
        .expect(200);
    assert_eq!(live["properties"]["plan"], "live");
    assert_eq!(live["status"], "enabled");
}

#[tokio::test]
async fn one_distinct_id_holds_different_data_in_each_environment() {
    let app = TestApp::spawn().await;
    app.call_in(
        Env::Test,
        "POST",
        "/v1/user/ada/",
        Some(json!({"plan": "t"})),
    )
    .await
    .expect(201);
    app.call_in(
        Env::Live,
        "POST",
        "/v1/user/ada/",
        Some(json!({"plan": "l"})),
    )
    .await
    .expect(201);
    app.call_in(Env::Live, "POST", "/v1/user/bob/", Some(json!({})))
        .await
        .expect(201);
    let t = app
        .call_in(Env::Test, "GET", "/v1/user/ada/", None)
        .await
        .expect(200);
    let l = app
        .call_in(Env::Live, "GET", "/v1/user/ada/", None)
        .await
        .expect(200);
    assert_eq!(
        (
            t["properties"]["plan"].clone(),
            l["properties"]["plan"].clone()
        ),
        (json!("t"), json!("l"))
    );
    let test_list = app
        .call_in(Env::Test, "GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(test_list["meta"]["count"], 1);
    assert_eq!(test_list["results"][0]["distinct_id"], "ada");
    let live_list = app
        .call_in(Env::Live, "GET", "/v1/user/?with_count=true", None)
        .await
        .expect(200);
    assert_eq!(live_list["meta"]["count"], 2);
}

async fn ids(app: &TestApp, env: Env, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = format!("/v1/user/?limit=2&sort=distinct_id{query}");
    loop {
        let page = app.call_in(env, "GET", &path, None).await.expect(200);
        out.extend(
            page["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["distinct_id"].as_str().unwrap().to_owned()),
        );
        match page["meta"]["after"].as_str() {
            Some(a) => path = format!("/v1/user/?limit=2&sort=distinct_id{query}&after={a}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn a_live_key_can_neither_read_nor_touch_a_test_profile() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"plan": "test", "$email": ["ada@example.com"]})),
    )
    .await
    .expect(201);
    app.call("POST", "/v1/user/ada-old/", Some(json!({"old": true})))
        .await
        .expect(201);
    let test_before = app.snapshot(Env::Test).await;
    for auth in [Auth::Bearer, Auth::Hmac] {
        for (method, path, body) in [
            ("GET", "/v1/user/ada/", None),
            ("GET", "/v1/user/ada", None),
            ("GET", "/v1/user/ada/history/", None),
            ("GET", "/v1/user/ada/export/", None),
            ("DELETE", "/v1/user/ada/", None),
            (
                "PATCH",
                "/v1/user/ada/status/",
                Some(json!({"status": "disabled"})),
            ),
            // ada-old exists only in test: live cannot merge it into anything.
            (
                "POST",
                "/v1/user/ada/merge/",
                Some(json!({"from_user_id": "ada-old"})),
            ),
        ] {
            let body = body.map(|b| b.to_string());
            let e = app
                .send(&app.live, auth, method, path, body.as_deref())
                .await
                .expect_error(404, None);
            assert_eq!(e["error_code"], "not_found", "{method} {path}");
        }
        let r = app
            .send(
                &app.live,
                auth,
                "DELETE",
                "/v1/bulk/user/",
                Some(&json!({"distinct_ids": ["ada", "ada-old"]}).to_string()),
            )
            .await
            .expect(202);
        assert_eq!(r["deleted"], 0);
    }
    assert_eq!(app.snapshot(Env::Test).await, test_before);
    assert_eq!(
        app.snapshot(Env::Live).await,
        json!([]),
        "live is still empty"
    );

    // Writes with the live key make live profiles of the same name and leave test's alone.
    let live_ada = app
        .call_in(
            Env::Live,
            "PATCH",
            "/v1/user/ada/",
            Some(json!({"operations": [{"$set": {"plan": "live"}}, {"$unset": ["$email"]}]})),
        )
        .await
        .expect(202);
    assert_eq!(live_ada["version"], 1, "a new live profile");
    assert!(live_ada.get("$email").is_none());
    app.call_in(
        Env::Live,
        "POST",
        "/v1/user/ada-old/",
        Some(json!({"x": 1})),
    )
    .await
    .expect(201);
    let merged = app
        .call_in(
            Env::Live,
            "POST",
            "/v1/user/ada/merge/",
            Some(json!({"from_user_id": "ada-old"})),
        )
        .await
        .expect(201);
    assert_eq!(merged["properties"], json!({"plan": "live", "x": 1}));
    app.call_in(Env::Live, "DELETE", "/v1/user/ada/", None)
        .await
        .expect(204);
    assert_eq!(app.snapshot(Env::Test).await, test_before);
}

#[tokio::test]
async fn listings_counts_filters_and_searches_never_cross() {
    let app = TestApp::spawn().await;
    for id in ["t1", "t2", "t3", "t4", "t5", "shared"] {
        app.call_in(
            Env::Test,
            "POST",
            &format!("/v1/user/{id}/"),
            Some(json!({"env": "test", "$email": [format!("{id}@test.example")]})),
        )
        .await
        .expect(201);
    }
    for id in ["l1", "l2", "shared"] {
        app.call_in(
            Env::Live,
            "POST",
            &format!("/v1/user/{id}/"),
            Some(json!({"env": "live"})),
        )
        .await
        .expect(201);
    }
    assert_eq!(
        ids(&app, Env::Test, "").await,
        ["shared", "t1", "t2", "t3", "t4", "t5"]
    );
    assert_eq!(ids(&app, Env::Live, "").await, ["l1", "l2", "shared"]);
    for (env, query, want) in [
        (Env::Test, "&prop.env=eq:live", vec![]),
        (Env::Live, "&prop.env=eq:test", vec![]),
        (Env::Live, "&has_channel=email", vec![]),
        (Env::Live, "&q=t", vec![]),
        (Env::Test, "&q=sha", vec!["shared"]),
        (Env::Live, "&q=sha", vec!["shared"]),
        (
            Env::Test,
            "&prop.env=eq:test&has_channel=email",
            vec!["shared", "t1", "t2", "t3", "t4", "t5"],
        ),
    ] {
        assert_eq!(ids(&app, env, query).await, want, "{env:?} {query}");
    }
    for (env, n) in [(Env::Test, 6), (Env::Live, 3)] {
        let c = app
            .call_in(env, "GET", "/v1/user/?with_count=true", None)
            .await
            .expect(200);
        assert_eq!(c["meta"]["count"], n, "{env:?}");
        let c = app
            .call_in(env, "GET", "/v1/user/?with_count=true&q=shared", None)
            .await
            .expect(200);
        assert_eq!(c["meta"]["count"], 1, "{env:?}");
    }
    // Deleting the shared id in live leaves test's.
    app.call_in(Env::Live, "DELETE", "/v1/user/shared/", None)
        .await
        .expect(204);
    let t = app
        .call_in(Env::Test, "GET", "/v1/user/shared/", None)
        .await
        .expect(200);
    assert_eq!(t["properties"]["env"], "test");
    assert_eq!(t["$email"][0]["value"], "shared@test.example");
}

#[tokio::test]
async fn histories_are_per_environment() {
    let app = TestApp::spawn().await;
    app.call_in(Env::Test, "POST", "/v1/user/ada/", Some(json!({"n": 1})))
        .await
        .expect(201);
    app.call_in(
        Env::Test,
        "PATCH",
        "/v1/user/ada/",
        Some(json!({"operations": [{"$add": {"n": 1}}]})),
    )
    .await
    .expect(202);
    app.send(
        &app.live,
        Auth::Hmac,
        "POST",
        "/v1/user/ada/",
        Some(r#"{"n": 100}"#),
    )
    .await
    .expect(201);
    let t = app
        .call_in(Env::Test, "GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    let l = app
        .call_in(Env::Live, "GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    let (t, l) = (
        t["results"].as_array().unwrap(),
        l["results"].as_array().unwrap(),
    );
    assert_eq!((t.len(), l.len()), (2, 1));
    assert!(t.iter().all(|e| e["actor"]["id"] == app.test.api_key[..12]));
    assert_eq!(l[0]["actor"]["id"], app.live.workspace_key);
    assert_eq!(l[0]["changes"][0], json!({"key": "n", "after": 100}));
    assert_ne!(app.test.workspace_key, app.live.workspace_key);
    assert!(
        app.test.workspace_key.starts_with("hk_test_")
            && app.live.workspace_key.starts_with("hk_live_")
    );
}

#[tokio::test]
async fn an_event_must_name_the_environment_of_its_key() {
    let app = TestApp::spawn().await;
    for (keys, other, env) in [
        (&app.test, &app.live, Env::Test),
        (&app.live, &app.test, Env::Live),
    ] {
        for auth in [Auth::Bearer, Auth::Hmac] {
            let e = json!({"distinct_id": "ada", "env": other.workspace_key, "$user_operations": [{"$set": {"k": 1}}]});
            app.send(keys, auth, "POST", "/event/", Some(&e.to_string()))
                .await
                .expect_error(400, Some("[0].env"));
        }
        app.call_in(env, "GET", "/v1/user/ada/", None)
            .await
            .expect_error(404, None);
    }
}
