//! Every documented limit, on both sides of its boundary: what is at the limit is accepted, what
//! is over it is refused with the right status and changes nothing.

use crate::harness::{Auth, TestApp};
use herald_core::Env;
use serde_json::{json, Value};

const MIB2: usize = 2 * 1024 * 1024;
const KB10: usize = 10 * 1024;

/// `json` followed by spaces, `size` bytes in all.
fn padded(json: &Value, size: usize) -> String {
    let mut s = json.to_string();
    assert!(s.len() <= size, "{} > {size}", s.len());
    s.push_str(&" ".repeat(size - s.len()));
    s
}

fn event(app: &TestApp, id: &str, ops: Value) -> Value {
    json!({"distinct_id": id, "env": app.test.workspace_key, "$user_operations": ops})
}

async fn count(app: &TestApp, env: Env) -> u64 {
    app.call_in(env, "GET", "/v1/user/?with_count=true&limit=1", None)
        .await
        .expect(200)["meta"]["count"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn list_limit_defaults_to_20_and_stops_at_1000() {
    let app = TestApp::spawn().await;
    // 1001 profiles, seeded in one store call (the event path is covered below and is slow on
    // PostgreSQL at this size).
    let ctx = herald_core::service::Ctx::new(
        herald_core::EnvScope::operator(Env::Test),
        herald_core::history::Actor::cli(),
        chrono::Utc::now(),
    );
    let items: Vec<_> = (0..1001)
        .map(|i| {
            let id = herald_core::DistinctId::parse(&format!("u{i:04}")).unwrap();
            (id, json!({"k": 1}), chrono::Utc::now())
        })
        .collect();
    let created = herald_core::service::profiles::import(app.store.as_ref(), &ctx, &items)
        .await
        .unwrap();
    assert_eq!(created, 1001);
    assert_eq!(count(&app, Env::Test).await, 1001);

    let default = app.call("GET", "/v1/user/", None).await.expect(200);
    assert_eq!(default["meta"]["limit"], 20);
    assert_eq!(default["results"].as_array().unwrap().len(), 20);
    assert_eq!(default["meta"]["has_next"], true);

    let max = app
        .call("GET", "/v1/user/?limit=1000&sort=distinct_id", None)
        .await
        .expect(200);
    assert_eq!(max["meta"]["limit"], 1000);
    let page: Vec<&str> = max["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["distinct_id"].as_str().unwrap())
        .collect();
    assert_eq!(page.len(), 1000);
    assert_eq!((page[0], page[999]), ("u0000", "u0999"));
    assert_eq!(max["meta"]["has_next"], true);
    let rest = app
        .call(
            "GET",
            &format!(
                "/v1/user/?limit=1000&sort=distinct_id&after={}",
                max["meta"]["after"].as_str().unwrap()
            ),
            None,
        )
        .await
        .expect(200);
    assert_eq!(rest["results"].as_array().unwrap().len(), 1);
    assert_eq!(rest["results"][0]["distinct_id"], "u1000");
    assert_eq!(rest["meta"]["has_next"], false);
    assert_eq!(rest["meta"]["after"], Value::Null);

    for bad in ["1001", "0", "-1", "ten", "1.5", "", "100000000000000000000"] {
        let e = app
            .call("GET", &format!("/v1/user/?limit={bad}"), None)
            .await
            .expect_error(400, Some("limit"));
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("must be an integer from 1 to 1000"),
            "{bad}: {e}"
        );
    }
}

#[tokio::test]
async fn an_event_call_takes_at_most_400_events() {
    let app = TestApp::spawn().await;
    let at_limit: Vec<Value> = (0..400)
        .map(|_| event(&app, "counter", json!([{"$add": {"n": 1}}])))
        .collect();
    let r = app
        .call("POST", "/event/", Some(json!(at_limit)))
        .await
        .expect(202);
    assert_eq!(r["status"], "success");
    let records = r["records"].as_array().unwrap();
    assert_eq!(records.len(), 400);
    assert!(records.iter().all(|x| x["status_code"] == 202));
    assert_eq!(app.user("counter").await["properties"]["n"], 400);

    let before = app.snapshot(Env::Test).await;
    let mut over: Vec<Value> = (0..400)
        .map(|_| event(&app, "counter", json!([{"$add": {"n": 1}}])))
        .collect();
    over.push(event(&app, "newcomer", json!([{"$set": {"k": 1}}])));
    for auth in [Auth::Bearer, Auth::Hmac] {
        let e = app
            .send(
                &app.test,
                auth,
                "POST",
                "/event/",
                Some(&json!(over).to_string()),
            )
            .await
            .expect_error(413, None);
        assert_eq!(e["error_code"], "payload_too_large");
        assert_eq!(e["message"], "at most 400 events per call, got 401");
    }
    assert_eq!(app.snapshot(Env::Test).await, before);
}

#[tokio::test]
async fn an_identity_event_carries_at_most_10_kb() {
    let app = TestApp::spawn().await;
    // An event whose compact JSON is exactly `size` bytes.
    let sized = |id: &str, size: usize| {
        let mut e = event(&app, id, json!([{"$set": {"blob": ""}}]));
        let base = serde_json::to_vec(&e).unwrap().len();
        e["$user_operations"][0]["$set"]["blob"] = json!("x".repeat(size - base));
        assert_eq!(serde_json::to_vec(&e).unwrap().len(), size);
        e
    };
    app.call("POST", "/event/", Some(sized("at-limit", KB10)))
        .await
        .expect(202);
    let stored = app.user("at-limit").await;
    assert!(stored["properties"]["blob"].as_str().unwrap().len() > 10_000);

    let before = app.snapshot(Env::Test).await;
    let e = app
        .call("POST", "/event/", Some(sized("over", KB10 + 1)))
        .await
        .expect_error(413, None);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("event [0] has 10241 bytes"),
        "{e}"
    );
    // In a batch, one oversized event refuses the whole call: the small one before it is not applied.
    let batch = json!([
        event(&app, "small", json!([{"$set": {"k": 1}}])),
        sized("over", KB10 + 1)
    ]);
    let e = app
        .call("POST", "/event/", Some(batch))
        .await
        .expect_error(413, None);
    assert!(
        e["message"].as_str().unwrap().starts_with("event [1] has"),
        "{e}"
    );
    assert_eq!(app.snapshot(Env::Test).await, before);
}

#[tokio::test]
async fn upsert_and_edit_bodies_carry_at_most_10_kb_as_sent() {
    let app = TestApp::spawn().await;
    app.call("POST", "/v1/user/ada/", Some(json!({"n": 1})))
        .await
        .expect(201);
    // Exactly at the limit (padding counts: the limit is on the bytes sent).
    for auth in [Auth::Bearer, Auth::Hmac] {
        let upsert = padded(&json!({"n": 2}), KB10);
        app.send(&app.test, auth, "POST", "/v1/user/ada/", Some(&upsert))
            .await
            .expect(201);
        let edit = padded(&json!({"operations": [{"$add": {"n": 1}}]}), KB10);
        app.send(&app.test, auth, "PATCH", "/v1/user/ada/", Some(&edit))
            .await
            .expect(202);
    }
    assert_eq!(app.user("ada").await["properties"]["n"], 3);

    let before = app.snapshot(Env::Test).await;
    for auth in [Auth::Bearer, Auth::Hmac] {
        for (method, body) in [
            ("POST", padded(&json!({"n": 100}), KB10 + 1)),
            (
                "PATCH",
                padded(&json!({"operations": [{"$add": {"n": 100}}]}), KB10 + 1),
            ),
            ("POST", json!({"blob": "x".repeat(KB10)}).to_string()),
        ] {
            let e = app
                .send(&app.test, auth, method, "/v1/user/ada/", Some(&body))
                .await
                .expect_error(413, None);
            assert_eq!(e["error_code"], "payload_too_large", "{method}: {e}");
            assert!(
                e["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("a profile edit may carry at most 10240 bytes"),
                "{e}"
            );
        }
        // A new id over the limit is not created either.
        app.send(
            &app.test,
            auth,
            "PATCH",
            "/v1/user/newcomer/",
            Some(&padded(&json!({"operations": []}), KB10 + 1)),
        )
        .await
        .expect_error(413, None);
    }
    assert_eq!(app.snapshot(Env::Test).await, before);
}

#[tokio::test]
async fn a_body_over_2_mib_is_413_before_anything_else() {
    let app = TestApp::spawn().await;
    for id in ["a", "b", "c"] {
        app.call("POST", &format!("/v1/user/{id}/"), Some(json!({"k": id})))
            .await
            .expect(201);
    }
    // Exactly 2 MiB is read (bulk delete has no 10 KB rule).
    let exact = padded(&json!({"distinct_ids": ["a"]}), MIB2);
    let r = app
        .send(
            &app.test,
            Auth::Hmac,
            "DELETE",
            "/v1/bulk/user/",
            Some(&exact),
        )
        .await
        .expect(202);
    assert_eq!(r["deleted"], 1);

    let before = app.snapshot(Env::Test).await;
    let over = padded(&json!({"distinct_ids": ["b"]}), MIB2 + 1);
    let huge_event = padded(&event(&app, "c", json!([{"$unset": ["k"]}])), MIB2 + 1);
    let huge_edit = padded(&json!({"operations": [{"$unset": ["k"]}]}), 3 * 1024 * 1024);
    let cases: Vec<(&str, &str, &String)> = vec![
        ("DELETE", "/v1/bulk/user/", &over),
        ("POST", "/event/", &huge_event),
        ("PATCH", "/v1/user/c/", &huge_edit),
        ("POST", "/v1/user/c/", &huge_edit),
    ];
    for (method, path, body) in &cases {
        for auth in [Auth::Bearer, Auth::Hmac] {
            let e = app
                .send(&app.test, auth, method, path, Some(body))
                .await
                .expect_error(413, None);
            assert_eq!(e["error_code"], "payload_too_large");
            assert_eq!(
                e["message"],
                format!("the request body is larger than the limit of {MIB2} bytes"),
                "{method} {path}"
            );
        }
        // Answered before credentials: no key at all still gets the 413, not a 401.
        let r = app
            .raw_body(
                method,
                path,
                &[("Content-Type", "application/json")],
                body.to_string(),
            )
            .await;
        assert_eq!(
            r.status, 413,
            "{method} {path} without credentials: {}",
            r.body
        );
    }
    assert_eq!(app.snapshot(Env::Test).await, before);
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = TestApp::spawn_with(|c| c.limits.max_body_bytes = 4096).await;
    let at = padded(&json!({"k": 1}), 4096);
    app.send(&app.test, Auth::Bearer, "POST", "/v1/user/ada/", Some(&at))
        .await
        .expect(201);
    let e = app
        .send(
            &app.test,
            Auth::Bearer,
            "POST",
            "/v1/user/ada/",
            Some(&padded(&json!({"k": 2}), 4097)),
        )
        .await
        .expect_error(413, None);
    assert_eq!(
        e["message"],
        "the request body is larger than the limit of 4096 bytes"
    );
    assert_eq!(app.user("ada").await["properties"]["k"], 1);
}

#[tokio::test]
async fn a_bulk_delete_takes_at_most_1000_ids() {
    let app = TestApp::spawn().await;
    for id in ["a", "b", "c"] {
        app.call("POST", &format!("/v1/user/{id}/"), Some(json!({})))
            .await
            .expect(201);
    }
    let before = app.snapshot(Env::Test).await;
    let mut ids: Vec<String> = (0..998).map(|i| format!("ghost{i}")).collect();
    ids.extend(["a".into(), "b".into(), "c".into()]);
    let e = app
        .call(
            "DELETE",
            "/v1/bulk/user/",
            Some(json!({"distinct_ids": ids})),
        )
        .await
        .expect_error(400, Some("distinct_ids"));
    assert_eq!(
        e["message"],
        "distinct_ids: at most 1000 per call, got 1001"
    );
    assert_eq!(app.snapshot(Env::Test).await, before);

    ids.remove(0);
    let r = app
        .call(
            "DELETE",
            "/v1/bulk/user/",
            Some(json!({"distinct_ids": ids})),
        )
        .await
        .expect(202);
    assert_eq!(
        (r["deleted"].clone(), r["requested"].clone()),
        (json!(3), json!(1000))
    );
    assert_eq!(count(&app, Env::Test).await, 0);
}

#[tokio::test]
async fn distinct_ids_are_at_most_255_bytes_everywhere() {
    let app = TestApp::spawn().await;
    // 255 bytes of UTF-8 (127 two-byte characters and one ASCII), percent-encoded on the wire.
    let longest = format!("{}a", "é".repeat(127));
    let too_long = "é".repeat(128);
    assert_eq!((longest.len(), too_long.len()), (255, 256));
    let enc = |s: &str| crate::harness::utf8_percent_encode(s);

    for auth in [Auth::Bearer, Auth::Hmac] {
        let made = app
            .send(
                &app.test,
                auth,
                "POST",
                &format!("/v1/user/{}/", enc(&longest)),
                Some("{\"k\": 1}"),
            )
            .await
            .expect(201);
        assert_eq!(made["distinct_id"], longest.as_str());
    }
    let got = app.user(&enc(&longest)).await;
    assert_eq!(got["distinct_id"], longest.as_str());

    let before = app.snapshot(Env::Test).await;
    let path = format!("/v1/user/{}/", enc(&too_long));
    let message = "distinct_id: must be at most 255 bytes, got 256";
    for (method, body) in [
        ("GET", None),
        ("POST", Some(json!({"k": 2}))),
        ("PATCH", Some(json!({"operations": [{"$set": {"k": 2}}]}))),
        ("DELETE", None),
    ] {
        let e = app
            .call(method, &path, body)
            .await
            .expect_error(400, Some("distinct_id"));
        assert_eq!(e["message"], message, "{method}");
    }
    let e = app
        .call(
            "POST",
            "/event/",
            Some(event(&app, &too_long, json!([{"$set": {"k": 2}}]))),
        )
        .await
        .expect_error(400, Some("[0].distinct_id"));
    assert_eq!(e["message"], format!("[0].{message}"));
    app.call(
        "DELETE",
        "/v1/bulk/user/",
        Some(json!({"distinct_ids": [longest, too_long]})),
    )
    .await
    .expect_error(400, Some("distinct_ids[1]"));
    app.call(
        "POST",
        &format!("/v1/user/{}/merge/", enc(&longest)),
        Some(json!({"from_user_id": too_long})),
    )
    .await
    .expect_error(400, Some("from_user_id"));
    // Empty (after trimming) and control characters are refused too.
    for bad in ["%20", "%20%20", "a%0Ab", "%00", "%FF", "a%C3"] {
        app.call("POST", &format!("/v1/user/{bad}/"), Some(json!({})))
            .await
            .expect_error(400, Some("distinct_id"));
    }
    assert_eq!(app.snapshot(Env::Test).await, before);
}

#[tokio::test]
async fn keys_names_addresses_tokens_and_insert_ids_have_length_limits() {
    let app = TestApp::spawn().await;
    let key128 = "k".repeat(128);
    let key129 = "k".repeat(129);
    let name255 = "n".repeat(255);
    // A 254-character address: 64 local + @ + a 189-character domain.
    let email254 = format!(
        "{}@{}.{}.{}.com",
        "l".repeat(64),
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(57)
    );
    assert_eq!(email254.len(), 254);
    let email255 = format!(
        "{}@{}.{}.{}.com",
        "l".repeat(64),
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(58)
    );
    let token4096 = "t".repeat(4096);
    let made = app
        .call(
            "POST",
            "/v1/user/ada/",
            Some(json!({
                key128.clone(): 1, "name": name255, "$email": [email254],
                "$androidpush": [token4096]
            })),
        )
        .await
        .expect(201);
    assert_eq!(made["properties"][&key128], 1);
    assert_eq!(made["properties"]["name"], name255.as_str());
    assert_eq!(made["$email"][0]["value"], email254.as_str());
    assert_eq!(made["$androidpush"][0]["value"], token4096.as_str());

    let before = app.snapshot(Env::Test).await;
    for (body, field) in [
        (json!({ key129.clone(): 1 }), key129.as_str()),
        (json!({"name": "n".repeat(256)}), "name"),
        (json!({"$email": [email255]}), "$email[0]"),
        (
            json!({"$androidpush": ["t".repeat(4097)]}),
            "$androidpush[0]",
        ),
        (json!({"$inbox": ["i".repeat(4097)]}), "$inbox[0]"),
    ] {
        app.call("POST", "/v1/user/ada/", Some(body))
            .await
            .expect_error(400, Some(field));
    }
    let with_insert_id = |id: String| {
        let mut e = event(&app, "ada", json!([{"$add": {"n": 1}}]));
        e["$insert_id"] = json!(id);
        e
    };
    app.call("POST", "/event/", Some(with_insert_id("i".repeat(256))))
        .await
        .expect_error(400, Some("[0].$insert_id"));
    assert_eq!(app.snapshot(Env::Test).await, before);
    app.call("POST", "/event/", Some(with_insert_id("i".repeat(255))))
        .await
        .expect(202);
    assert_eq!(app.user("ada").await["properties"]["n"], 1);
}
