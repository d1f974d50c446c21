//! Audit findings (issue 8): hardening_store.

#[allow(unused_imports)]
use crate::harness::*;
use herald_core::Env;
use serde_json::json;

/// Finding 5: a listing takes at most 20 filters and an `in:` at most 100 values.
#[tokio::test]
async fn listing_filters_and_in_values_are_limited() {
    let app = TestApp::spawn().await;
    let filters = |n: usize| {
        (0..n)
            .map(|i| format!("prop.k{i}=exists:true"))
            .collect::<Vec<_>>()
            .join("&")
    };
    app.call("GET", &format!("/v1/user/?{}", filters(20)), None)
        .await
        .expect(200);
    let body = app
        .call("GET", &format!("/v1/user/?{}", filters(21)), None)
        .await
        .expect_error(400, Some("prop.k20"));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 20 filters"),
        "{body}"
    );
    let values = |n: usize| {
        (0..n)
            .map(|i| format!("v{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    app.call(
        "GET",
        &format!("/v1/user/?prop.plan=in:{}", values(100)),
        None,
    )
    .await
    .expect(200);
    let body = app
        .call(
            "GET",
            &format!("/v1/user/?prop.plan=in:{}", values(101)),
            None,
        )
        .await
        .expect_error(400, Some("prop.plan"));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 100 values"),
        "{body}"
    );
    // The count endpoint parses the same filter.
    app.call(
        "GET",
        &format!("/v1/user/?with_count=true&{}", filters(21)),
        None,
    )
    .await
    .expect_error(400, Some("prop.k20"));
}

/// Finding 5: a listing over the statement timeout is a 503 with `Retry-After`, not a 500.
#[tokio::test]
async fn a_listing_over_the_statement_timeout_is_a_503() {
    let app = TestApp::spawn_with(|c| c.store.statement_timeout_ms = 1).await;
    let ctx = herald_core::service::Ctx::new(
        herald_core::EnvScope::operator(Env::Test),
        herald_core::history::Actor::cli(),
        chrono::Utc::now(),
    );
    let items: Vec<_> = (0..5000)
        .map(|i| {
            let id = herald_core::DistinctId::parse(&format!("u{i:05}")).unwrap();
            let bio = format!("profile number {i} writes long biographies about engines");
            (id, json!({"bio": bio, "n": i}), chrono::Utc::now())
        })
        .collect();
    herald_core::service::profiles::import(app.store.as_ref(), &ctx, &items)
        .await
        .unwrap();
    // Twenty substring scans over every profile, none matching: far more than 1 ms.
    let filter = (0..20)
        .map(|i| format!("prop.bio=contains:zz{i}"))
        .collect::<Vec<_>>()
        .join("&");
    let url = format!("{}/v1/user/?with_count=true&{filter}", app.base);
    let response = app
        .http
        .get(&url)
        .header("Authorization", format!("Bearer {}", app.test.api_key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 503, "{body}");
    assert_eq!(body["error_code"], "service_unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("statement timeout"),
        "{body}"
    );
    // The readers are back: a cheap request still works.
    app.call("GET", "/v1/user/u00001/", None).await.expect(200);
}
