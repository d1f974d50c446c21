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
