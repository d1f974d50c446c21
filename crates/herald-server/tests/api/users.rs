//! `/v1/user/…`: the profile endpoints.

use crate::harness::{Auth, TestApp};
use serde_json::json;

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
    }
}
