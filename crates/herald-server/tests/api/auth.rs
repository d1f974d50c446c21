//! Authentication: bearer keys and HMAC signatures, and every way they can be wrong.

use crate::harness::{authorization, Auth, Keys, Response, TestApp};
use chrono::{Duration, SecondsFormat, Utc};
use herald_core::Env;
use serde_json::{json, Value};

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

const CT: &str = "application/json; charset=utf-8";

/// A request signed over `signed` (method, path, body, Content-Type, Date) but sent as `sent`:
/// every part of the string to sign must match what arrives.
struct Parts<'a> {
    method: &'a str,
    path: &'a str,
    body: &'a str,
    content_type: Option<&'a str>,
    date: &'a str,
}

async fn signed_as(app: &TestApp, keys: &Keys, signed: &Parts<'_>, sent: &Parts<'_>) -> Response {
    let auth = authorization(
        keys,
        signed.method,
        signed.path,
        signed.body.as_bytes(),
        signed.content_type.unwrap_or(""),
        signed.date,
    );
    let mut headers = vec![("Date", sent.date), ("Authorization", auth.as_str())];
    if let Some(ct) = sent.content_type {
        headers.push(("Content-Type", ct));
    }
    app.raw_body(sent.method, sent.path, &headers, sent.body.to_owned())
        .await
}

#[tokio::test]
async fn the_signature_covers_method_path_query_body_content_type_and_date() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({"n": 1})))
        .await
        .expect(201);
    let before = app.snapshot(Env::Test).await;
    let date = rfc1123(Utc::now());
    let later = rfc1123(Utc::now() + Duration::seconds(1));
    let body = r#"{"operations": [{"$add": {"n": 1}}]}"#;
    let base = Parts {
        method: "PATCH",
        path: "/v1/user/ada/",
        body,
        content_type: Some(CT),
        date: &date,
    };
    let tampered: Vec<(&str, Parts)> = vec![
        (
            "method",
            Parts {
                method: "POST",
                ..base
            },
        ),
        (
            "path",
            Parts {
                path: "/v1/user/bob/",
                ..base
            },
        ),
        (
            "trailing slash",
            Parts {
                path: "/v1/user/ada",
                ..base
            },
        ),
        (
            "query",
            Parts {
                path: "/v1/user/ada/?x=1",
                ..base
            },
        ),
        (
            "body",
            Parts {
                body: r#"{"operations": [{"$add": {"n": 9}}]}"#,
                ..base
            },
        ),
        (
            "body whitespace",
            Parts {
                body: r#"{"operations":[{"$add":{"n":1}}]}"#,
                ..base
            },
        ),
        (
            "content type",
            Parts {
                content_type: Some("application/json"),
                ..base
            },
        ),
        (
            "no content type",
            Parts {
                content_type: None,
                ..base
            },
        ),
        (
            "date",
            Parts {
                date: &later,
                ..base
            },
        ),
    ];
    for (what, sent) in &tampered {
        let e = signed_as(&app, &app.test, &base, sent)
            .await
            .expect_error(401, None);
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("signature mismatch"),
            "{what}: {e}"
        );
    }
    assert_eq!(app.snapshot(Env::Test).await, before, "nothing applied");
    // The same parts, untampered, are accepted: the refusals above were the tampering.
    let ok = signed_as(&app, &app.test, &base, &base).await.expect(202);
    assert_eq!(ok["properties"]["n"], 2);
    // A request without Content-Type signs an empty line.
    let bare = Parts {
        content_type: None,
        ..base
    };
    let ok = signed_as(&app, &app.test, &bare, &bare).await.expect(202);
    assert_eq!(ok["properties"]["n"], 3);
    // Signed queries: the raw query is part of the URI, and a bare `?` is not.
    let list = Parts {
        method: "GET",
        path: "/v1/user/?limit=5&sort=distinct_id",
        body: "",
        content_type: Some(CT),
        date: &date,
    };
    let page = signed_as(&app, &app.test, &list, &list).await.expect(200);
    assert_eq!(page["meta"]["limit"], 5);
    let unqueried = Parts {
        path: "/v1/user/",
        ..list
    };
    let bare_q = Parts {
        path: "/v1/user/?",
        ..list
    };
    signed_as(&app, &app.test, &unqueried, &bare_q)
        .await
        .expect(200);
}

#[tokio::test]
async fn percent_encoded_ids_are_signed_as_sent_and_decoded_after() {
    let app = TestApp::spawn().await;
    // (as sent on the wire, as stored): py quote(safe=""), node encodeURIComponent.
    let ids = [
        ("a%40b.com", "a@b.com"),
        ("%C3%BCser~%21%2A%27%28%29", "üser~!*'()"),
        ("%C3%BCser~!*'()%20a%2Fb", "üser~!*'() a/b"),
        ("plus+sign", "plus+sign"),
    ];
    for (wire, id) in ids {
        for auth in [Auth::Hmac, Auth::Bearer] {
            let made = app
                .send(
                    &app.test,
                    auth,
                    "POST",
                    &format!("/v1/user/{wire}/"),
                    Some(r#"{"k": 1}"#),
                )
                .await
                .expect(201);
            assert_eq!(made["distinct_id"], id, "{wire}");
            let got = app
                .send(&app.test, auth, "GET", &format!("/v1/user/{wire}/"), None)
                .await
                .expect(200);
            assert_eq!(got["distinct_id"], id, "{wire}");
            assert_eq!(got["properties"]["k"], 1);
        }
        let edited = app
            .send(
                &app.test,
                Auth::Hmac,
                "PATCH",
                &format!("/v1/user/{wire}"),
                Some(r#"{"operations": [{"$add": {"k": 1}}]}"#),
            )
            .await
            .expect(202);
        assert_eq!(edited["properties"]["k"], 2);
        let h = app
            .send(
                &app.test,
                Auth::Hmac,
                "GET",
                &format!("/v1/user/{wire}/history/?limit=1"),
                None,
            )
            .await
            .expect(200);
        assert_eq!(h["results"][0]["distinct_id"], id);
    }
    // Each is one profile under its decoded id.
    let list = app
        .send(
            &app.test,
            Auth::Hmac,
            "GET",
            "/v1/user/?sort=distinct_id&with_count=true",
            None,
        )
        .await
        .expect(200);
    let listed: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["distinct_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["a@b.com", "plus+sign", "üser~!*'()", "üser~!*'() a/b"]
    );
    // Signing the decoded path instead of the one sent is a mismatch.
    let date = rfc1123(Utc::now());
    let decoded = Parts {
        method: "DELETE",
        path: "/v1/user/a@b.com/",
        body: "",
        content_type: Some(CT),
        date: &date,
    };
    let sent = Parts {
        path: "/v1/user/a%40b.com/",
        ..decoded
    };
    signed_as(&app, &app.test, &decoded, &sent)
        .await
        .expect_error(401, None);
    // And signed as sent (py signs an empty MD5 for a DELETE), it deletes.
    signed_as(&app, &app.test, &sent, &sent).await.expect(204);
    app.call("GET", "/v1/user/a%40b.com/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn a_key_works_only_with_its_own_secret_and_form() {
    let app = TestApp::spawn().await;
    let now = rfc1123(Utc::now());
    let wrong = [
        // The live workspace key signed with the test secret, and the other way round.
        app.send_signed(
            &app.live,
            &app.test.workspace_secret,
            &now,
            "GET",
            "/v1/user/",
            "",
        )
        .await,
        app.send_signed(
            &app.test,
            &app.live.workspace_secret,
            &now,
            "GET",
            "/v1/user/",
            "",
        )
        .await,
        // Secrets and workspace keys are not bearer keys.
        app.raw(
            "GET",
            "/v1/user/",
            &[(
                "Authorization",
                &format!("Bearer {}", app.test.workspace_secret),
            )],
        )
        .await,
        app.raw(
            "GET",
            "/v1/user/",
            &[(
                "Authorization",
                &format!("Bearer {}", app.test.workspace_key),
            )],
        )
        .await,
        app.raw("GET", "/v1/user/", &[("Authorization", "Bearer ")])
            .await,
        // An API key is not a workspace key.
        app.raw(
            "GET",
            "/v1/user/",
            &[
                ("Authorization", &format!("{}:c2ln", app.test.api_key)),
                ("Date", &now),
            ],
        )
        .await,
        // Neither form.
        app.raw("GET", "/v1/user/", &[("Authorization", "Basic dXNlcg")])
            .await,
        app.raw("GET", "/v1/user/", &[("Authorization", "")]).await,
    ];
    for (i, r) in wrong.into_iter().enumerate() {
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/json"),
            "case {i}"
        );
        let e = r.expect_error(401, None);
        assert_eq!(e["error_code"], "authentication_failed", "case {i}: {e}");
        assert_eq!(e["type"], "AuthenticationError", "case {i}: {e}");
        assert_eq!(e["field"], Value::Null, "case {i}: {e}");
    }
    // A live bearer key reaches live, with surrounding spaces trimmed.
    app.call_in(Env::Live, "POST", "/v1/user/vip/", Some(json!({})))
        .await
        .expect(201);
    let r = app
        .raw(
            "GET",
            "/v1/user/vip/",
            &[("Authorization", &format!("Bearer {}  ", app.live.api_key))],
        )
        .await
        .expect(200);
    assert_eq!(r["distinct_id"], "vip");
}

#[tokio::test]
async fn every_authenticated_endpoint_refuses_bad_credentials_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(json!({"n": 1, "$email": ["ada@example.com"]})),
    )
    .await
    .expect(201);
    app.call("POST", "/v1/user/old/", Some(json!({"m": 1})))
        .await
        .expect(201);
    let before = app.snapshot(Env::Test).await;
    let event = json!({"distinct_id": "ada", "$user_operations": [{"$add": {"n": 1}}]});
    let calls: Vec<(&str, &str, Value)> = vec![
        ("GET", "/v1/user/", Value::Null),
        ("GET", "/v1/user/ada/", Value::Null),
        ("POST", "/v1/user/ada/", json!({"n": 5})),
        ("POST", "/v1/user/ghost/", json!({"n": 5})),
        (
            "PATCH",
            "/v1/user/ada/",
            json!({"operations": [{"$add": {"n": 1}}]}),
        ),
        ("DELETE", "/v1/user/ada/", Value::Null),
        (
            "PATCH",
            "/v1/user/ada/status/",
            json!({"status": "disabled"}),
        ),
        (
            "POST",
            "/v1/user/ada/merge/",
            json!({"from_user_id": "old"}),
        ),
        ("GET", "/v1/user/ada/history/", Value::Null),
        ("GET", "/v1/user/ada/export/", Value::Null),
        ("DELETE", "/v1/bulk/user/", json!({"distinct_ids": ["ada"]})),
        ("POST", "/event/", event),
    ];
    let stale = rfc1123(Utc::now() - Duration::minutes(16));
    for (method, path, body) in &calls {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let now = rfc1123(Utc::now());
        let bad_sig = format!("{}:AAAA", app.test.workspace_key);
        let good_but_stale = authorization(&app.test, method, path, body.as_bytes(), CT, &stale);
        let attempts: Vec<Vec<(&str, &str)>> = vec![
            vec![("Content-Type", CT)],
            vec![
                ("Content-Type", CT),
                ("Authorization", "Bearer hb_test_unknown"),
            ],
            vec![
                ("Content-Type", CT),
                ("Authorization", &bad_sig),
                ("Date", &now),
            ],
            vec![
                ("Content-Type", CT),
                ("Authorization", &good_but_stale),
                ("Date", &stale),
            ],
        ];
        for (i, headers) in attempts.iter().enumerate() {
            let r = app.raw_body(method, path, headers, body.clone()).await;
            assert_eq!(
                r.content_type.as_deref(),
                Some("application/json"),
                "{method} {path} attempt {i}"
            );
            let e = r.expect_error(401, None);
            assert_eq!(
                e["error_code"], "authentication_failed",
                "{method} {path} attempt {i}: {e}"
            );
        }
    }
    assert_eq!(app.snapshot(Env::Test).await, before);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_answered_before_credentials() {
    let app = TestApp::spawn().await;
    for headers in [vec![], vec![("Authorization", "Bearer hb_test_unknown")]] {
        let e = app
            .raw("GET", "/v1/nothing-here/", &headers)
            .await
            .expect_error(404, None);
        assert_eq!(e["message"], "no such endpoint");
        let e = app
            .raw("PUT", "/v1/user/ada/", &headers)
            .await
            .expect_error(405, None);
        assert_eq!(e["error_code"], "method_not_allowed");
    }
    // With valid credentials the answers are the same.
    app.call("GET", "/v1/nothing-here/", None)
        .await
        .expect_error(404, None);
    app.call("PUT", "/v1/user/ada/", Some(json!({})))
        .await
        .expect_error(405, None);
    app.call("GET", "/v1/user/ada/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn the_clock_skew_is_configurable_and_dates_parse_in_every_sdk_form() {
    let app = TestApp::spawn_with(|c| c.auth.max_clock_skew_secs = 60).await;
    let keys = &app.test;
    let e = app
        .send_signed(
            keys,
            &keys.workspace_secret,
            &rfc1123(Utc::now() - Duration::seconds(120)),
            "GET",
            "/v1/user/",
            "",
        )
        .await
        .expect_error(401, None);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("(at most 60s allowed)"),
        "{e}"
    );
    let t = Utc::now() - Duration::seconds(30);
    for date in [
        rfc1123(t),
        // RFC 2822 with a numeric zone, RFC 3339 as node's messages API sends it, and with an offset.
        t.format("%a, %d %b %Y %H:%M:%S +0000").to_string(),
        t.to_rfc3339_opts(SecondsFormat::Millis, true),
        t.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
            .to_rfc3339(),
    ] {
        app.send_signed(keys, &keys.workspace_secret, &date, "GET", "/v1/user/", "")
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn a_revoked_key_set_is_refused_on_the_next_request_in_both_forms() {
    let app = TestApp::spawn().await;
    for auth in [Auth::Bearer, Auth::Hmac] {
        app.send(&app.test, auth, "GET", "/v1/user/", None)
            .await
            .expect(200);
    }
    // Through this node, as the dashboard revokes: its credential cache is emptied.
    herald_server::keys::revoke_on(&app.app, &app.test.workspace_key)
        .await
        .unwrap();
    for auth in [Auth::Bearer, Auth::Hmac] {
        let r = app
            .send(&app.test, auth, "POST", "/v1/user/ada/", Some("{}"))
            .await
            .expect_error(401, None);
        assert_eq!(r["error_code"], "authentication_failed");
    }
    let ada = herald_core::DistinctId::parse("ada").unwrap();
    let stored = app
        .store
        .get_profile(herald_core::EnvScope::operator(Env::Test), &ada)
        .await
        .unwrap();
    assert!(stored.is_none(), "a refused request changes nothing");
    // The other environment's keys are untouched.
    app.send(&app.live, Auth::Bearer, "GET", "/v1/user/", None)
        .await
        .expect(200);
}

/// Every request form a key set can sign in with, on `node`: 200 while the keys are valid.
async fn answers(node: &TestApp, keys: &Keys) -> [u16; 2] {
    let mut statuses = [0; 2];
    for (i, auth) in [Auth::Bearer, Auth::Hmac].into_iter().enumerate() {
        statuses[i] = node.send(keys, auth, "GET", "/v1/user/", None).await.status;
    }
    statuses
}

/// The revocation bound of `auth.credential_cache_ms`: the node that revokes refuses the key from
/// the next request on however long its bound; a node that cached the key may accept it until
/// its bound has passed since its last store read, and refuses it from then on.
#[tokio::test]
async fn a_revoked_key_is_refused_at_once_where_revoked_and_within_the_bound_elsewhere() {
    const SHORT_MS: u64 = 300;
    let revoking = TestApp::spawn_with(|c| c.auth.credential_cache_ms = 60_000).await;
    let cached = revoking.another_node().await;
    let short = revoking
        .another_node_with(|c| c.auth.credential_cache_ms = SHORT_MS)
        .await;
    let keys = revoking.test.clone();
    for node in [&revoking, &cached, &short] {
        assert_eq!(answers(node, &keys).await, [200, 200]);
    }
    herald_server::keys::revoke_on(&revoking.app, &keys.workspace_key)
        .await
        .unwrap();
    assert_eq!(
        answers(&revoking, &keys).await,
        [401, 401],
        "the revoking node"
    );
    // Within its 60 s bound, the other node still trusts what it read before the revocation.
    assert_eq!(
        answers(&cached, &keys).await,
        [200, 200],
        "within the bound"
    );
    tokio::time::sleep(std::time::Duration::from_millis(SHORT_MS)).await;
    assert_eq!(answers(&short, &keys).await, [401, 401], "past the bound");
    // The other environment's keys are untouched everywhere.
    for node in [&revoking, &cached, &short] {
        assert_eq!(answers(node, &revoking.live).await, [200, 200]);
    }
}

/// "Unknown key" is never cached: a key set created a moment ago (here straight in the store, as
/// `herald keys create` or another node does) works at once on nodes that have just refused it.
#[tokio::test]
async fn a_new_key_works_at_once_on_every_node() {
    let first = TestApp::spawn_with(|c| c.auth.credential_cache_ms = 60_000).await;
    let second = first.another_node().await;
    let random = herald_server::keys::random(24);
    let new = herald_core::credentials::NewCredentials::from_random(
        Env::Test,
        [&random, &herald_server::keys::random(40), &random],
        Utc::now(),
    );
    let keys = Keys {
        workspace_key: new.credentials.workspace_key.clone(),
        workspace_secret: new.credentials.workspace_secret.clone(),
        api_key: new.api_key.clone(),
    };
    for node in [&first, &second] {
        assert_eq!(answers(node, &keys).await, [401, 401], "not created yet");
    }
    first
        .store
        .insert_credentials(&new.credentials)
        .await
        .unwrap();
    for node in [&first, &second] {
        assert_eq!(answers(node, &keys).await, [200, 200], "created");
    }
}

/// With `auth.credential_cache_ms = 0` nothing is cached: a key set removed from the store by any
/// process is refused by every node on its next request.
#[tokio::test]
async fn a_bound_of_zero_asks_the_store_every_time() {
    let app = TestApp::spawn_with(|c| c.auth.credential_cache_ms = 0).await;
    let other = app.another_node().await;
    for node in [&app, &other] {
        assert_eq!(answers(node, &app.test).await, [200, 200]);
    }
    assert!(app
        .store
        .delete_credentials(&app.test.workspace_key)
        .await
        .unwrap());
    for node in [&app, &other] {
        assert_eq!(answers(node, &app.test).await, [401, 401]);
    }
}
