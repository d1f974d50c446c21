//! Authentication: bearer keys and HMAC signatures, and every way they can be wrong.

use crate::harness::TestApp;
use chrono::{Duration, SecondsFormat, Utc};

fn rfc1123(t: chrono::DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[tokio::test]
async fn every_failure_is_a_401_in_the_envelope() {
    let app = TestApp::spawn().await;
    let keys = &app.test;
    let now = rfc1123(Utc::now());
    let cases = vec![
        ("no header", app.raw("GET", "/v1/user/", &[]).await),
        (
            "unknown bearer",
            app.raw(
                "GET",
                "/v1/user/",
                &[("Authorization", "Bearer hb_test_nope")],
            )
            .await,
        ),
        (
            "unknown workspace key",
            app.raw(
                "GET",
                "/v1/user/",
                &[("Authorization", "hk_nope:c2ln"), ("Date", &now)],
            )
            .await,
        ),
        (
            "wrong secret",
            app.send_signed(keys, "not-the-secret", &now, "GET", "/v1/user/", "")
                .await,
        ),
        (
            "no date",
            app.raw(
                "GET",
                "/v1/user/",
                &[("Authorization", &format!("{}:c2ln", keys.workspace_key))],
            )
            .await,
        ),
        (
            "stale date",
            app.send_signed(
                keys,
                &keys.workspace_secret,
                &rfc1123(Utc::now() - Duration::minutes(16)),
                "GET",
                "/v1/user/",
                "",
            )
            .await,
        ),
        (
            "future date",
            app.send_signed(
                keys,
                &keys.workspace_secret,
                &rfc1123(Utc::now() + Duration::minutes(16)),
                "GET",
                "/v1/user/",
                "",
            )
            .await,
        ),
        (
            "unparseable date",
            app.send_signed(
                keys,
                &keys.workspace_secret,
                "yesterday",
                "GET",
                "/v1/user/",
                "",
            )
            .await,
        ),
    ];
    for (what, resp) in cases {
        let body = resp.expect_error(401, None);
        assert_eq!(
            body["error_code"], "authentication_failed",
            "{what}: {body}"
        );
    }
}

#[tokio::test]
async fn signatures_cover_the_body() {
    let app = TestApp::spawn().await;
    let keys = &app.test;
    let date = rfc1123(Utc::now());
    // Signed for one body, sent with another.
    let to_sign = herald_core::signature::string_to_sign(
        "POST",
        b"{\"a\": 1}",
        "application/json; charset=utf-8",
        &date,
        "/v1/user/ada/",
    );
    let sig = herald_core::signature::sign(&keys.workspace_secret, &to_sign);
    let resp = app
        .http
        .post(format!("{}/v1/user/ada/", app.base))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Date", &date)
        .header("Authorization", format!("{}:{sig}", keys.workspace_key))
        .body("{\"a\": 2}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    app.call("GET", "/v1/user/ada/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn rfc3339_dates_and_a_skew_within_bounds_are_accepted() {
    let app = TestApp::spawn().await;
    let keys = &app.test;
    for date in [
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        (Utc::now() - Duration::minutes(14)).to_rfc3339_opts(SecondsFormat::Millis, false),
        rfc1123(Utc::now() + Duration::minutes(14)),
    ] {
        app.send_signed(
            keys,
            &keys.workspace_secret,
            &date,
            "POST",
            "/v1/user/ada/",
            "{\"x\": 1}",
        )
        .await
        .expect(201);
    }
}
