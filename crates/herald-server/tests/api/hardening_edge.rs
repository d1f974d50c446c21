//! Audit findings (issue 8): hardening_edge.

#[allow(unused_imports)]
use crate::harness::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects to the test server with a raw socket.
async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `within` passes): what it sent, and whether
/// it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn hardening_a_bad_bearer_key_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn().await;
    // Announce 2 MB (within the limit), send a few bytes and never finish: the refusal must not
    // wait for the body.
    let mut s = connect(&app).await;
    let head = "POST /event/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer hb_test_nope\r\n\
                Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{\"a\":";
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (reply, _) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A signed request with an unknown key is refused as soon as its key is looked up too.
    let mut s = connect(&app).await;
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let head = format!(
        "POST /event/ HTTP/1.1\r\nHost: x\r\nAuthorization: hk_nope:c2ln\r\nDate: {date}\r\n\
         Content-Length: 2000000\r\n\r\n{{\"a\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (reply, _) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
}

#[tokio::test]
async fn hardening_a_stale_or_missing_date_is_refused_before_the_body_is_read() {
    let app = TestApp::spawn().await;
    let mut s = connect(&app).await;
    let head = format!(
        "POST /event/ HTTP/1.1\r\nHost: x\r\nAuthorization: {}:c2ln\r\n\
         Content-Length: 2000000\r\n\r\n{{\"a\":",
        app.test.workspace_key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (reply, _) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
}

#[tokio::test]
async fn hardening_a_half_sent_request_line_is_disconnected_after_the_header_timeout() {
    let app = TestApp::spawn_with(|c| c.server.header_read_timeout_secs = 1).await;
    let mut s = connect(&app).await;
    s.write_all(b"GET /heal").await.unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "the connection is still open after 5s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // An idle kept-alive connection is closed after the same time.
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (reply, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(closed, "an idle connection is still open after 5s");
}

#[tokio::test]
async fn hardening_a_body_that_never_arrives_times_out_with_the_envelope() {
    let app = TestApp::spawn_with(|c| c.server.request_timeout_secs = 1).await;
    let mut s = connect(&app).await;
    let head = format!(
        "POST /event/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"a\":",
        app.test.api_key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (reply, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(
        reply.contains("\"code\":503") || reply.contains("service_unavailable"),
        "{reply}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn hardening_metrics_labels_are_bounded() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let m = format!("MADEUP{i}");
        app.raw(&m, "/healthz", &[]).await;
        app.raw(&m, &format!("/no/such/path-{i}"), &[]).await;
        app.raw("GET", &format!("/no/such/path-{i}"), &[]).await;
    }
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("MADEUP"), "{text}");
    assert!(!text.contains("path-"), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
}

#[tokio::test]
async fn hardening_an_unknown_workspace_key_and_a_wrong_signature_answer_alike() {
    let app = TestApp::spawn().await;
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let unknown_keys = Keys {
        workspace_key: "hk_test_not_a_key_at_all_0000".into(),
        ..app.test.clone()
    };
    let unknown = app
        .send_signed(&unknown_keys, "whatever", &date, "GET", "/v1/user/", "")
        .await;
    let wrong = app
        .send_signed(&app.test, "not-the-secret", &date, "GET", "/v1/user/", "")
        .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body, wrong.body, "the two refusals differ");
    assert!(unknown.body["message"]
        .as_str()
        .unwrap()
        .starts_with("signature mismatch"));
}

#[tokio::test]
async fn hardening_an_idempotency_key_is_bound_to_its_request() {
    let app = TestApp::spawn().await;
    let key = [("Idempotency-Key", "bound-1")];
    let add = |n: i64| Some(serde_json::json!({"operations": [{"$add": {"n": n}}]}));
    let first = app.call_with("PATCH", "/v1/user/ada/", add(1), &key).await;
    assert_eq!(first.status, 202);
    // The same request again: a retry, answered with the profile, applied once.
    let retry = app.call_with("PATCH", "/v1/user/ada/", add(1), &key).await;
    assert_eq!(
        (retry.status, retry.body["properties"]["n"].clone()),
        (202, 1.into())
    );
    // Another body, another user or another method with the key: 422 naming the header.
    let e = app
        .call_with("PATCH", "/v1/user/ada/", add(5), &key)
        .await
        .expect_error(422, Some("Idempotency-Key"));
    assert!(
        e["message"].as_str().unwrap().contains("Idempotency-Key"),
        "{e}"
    );
    app.call_with("PATCH", "/v1/user/bob/", add(1), &key)
        .await
        .expect_error(422, Some("Idempotency-Key"));
    app.call_with(
        "PATCH",
        "/v1/user/ada/status/",
        Some(serde_json::json!({"status": "disabled"})),
        &key,
    )
    .await
    .expect_error(422, Some("Idempotency-Key"));
    // Nothing of them was applied.
    let ada = app.user("ada").await;
    assert_eq!(
        (ada["properties"]["n"].clone(), ada["status"].clone()),
        (1.into(), "enabled".into())
    );
    app.call("GET", "/v1/user/bob/", None)
        .await
        .expect_error(404, None);
    // An event's $insert_id stays unbound: a retry with another body is still "already applied".
    let event = |n: i64| {
        serde_json::json!({"distinct_id": "ada", "$insert_id": "ins-1", "env": app.test.workspace_key,
            "$user_operations": [{"$add": {"n": n}}]})
    };
    app.call("POST", "/event/", Some(event(10)))
        .await
        .expect(202);
    app.call("POST", "/event/", Some(event(20)))
        .await
        .expect(202);
    assert_eq!(app.user("ada").await["properties"]["n"], 11);
}

/// Mints a preference link for `id` (test env) and returns its token.
async fn link_token(app: &TestApp, id: &str) -> String {
    let r = app
        .call("POST", &format!("/v1/user/{id}/preference/link/"), None)
        .await
        .expect(201);
    r["token"].as_str().unwrap().to_owned()
}

async fn page_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(format!("{}/preferences/{token}", app.base))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn hardening_a_link_stops_opening_when_its_user_is_deleted_and_re_created() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(serde_json::json!({"name": "Ada"})),
    )
    .await
    .expect(201);
    let token = link_token(&app, "ada").await;
    assert_eq!(page_status(&app, &token).await, 200);
    app.call("DELETE", "/v1/user/ada/", None).await.expect(204);
    assert_eq!(page_status(&app, &token).await, 404);
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(serde_json::json!({"name": "Ada 2"})),
    )
    .await
    .expect(201);
    assert_eq!(
        page_status(&app, &token).await,
        404,
        "a re-created user is another user"
    );
    let post = app
        .http
        .post(format!("{}/preferences/{token}", app.base))
        .body("restrict:email=on")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 404);
    // A link minted for the new profile opens.
    assert_eq!(page_status(&app, &link_token(&app, "ada").await).await, 200);
}

#[tokio::test]
async fn hardening_revoking_a_users_links_closes_every_earlier_link() {
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(serde_json::json!({"name": "Ada"})),
    )
    .await
    .expect(201);
    let (one, two) = (link_token(&app, "ada").await, link_token(&app, "ada").await);
    assert_eq!(page_status(&app, &one).await, 200);
    app.call("DELETE", "/v1/user/ada/preference/link/", None)
        .await
        .expect(204);
    assert_eq!(page_status(&app, &one).await, 404);
    assert_eq!(page_status(&app, &two).await, 404);
    let before = app.user("ada").await;
    let post = app
        .http
        .post(format!("{}/preferences/{one}", app.base))
        .body("restrict:email=on")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 404);
    assert_eq!(
        app.user("ada").await,
        before,
        "a revoked link changes nothing"
    );
    assert_eq!(page_status(&app, &link_token(&app, "ada").await).await, 200);
    // Revoking a user that does not exist is a 404 in the envelope.
    app.call("DELETE", "/v1/user/ghost/preference/link/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn hardening_link_secrets_rotate_and_retire() {
    use herald_server::api::hosted::{retire_old_link_secrets, rotate_link_secret};
    let app = TestApp::spawn().await;
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(serde_json::json!({"name": "Ada"})),
    )
    .await
    .expect(201);
    let old = link_token(&app, "ada").await;
    let (kid, retired) = rotate_link_secret(app.store.as_ref(), false).await.unwrap();
    assert_eq!((kid.as_str(), retired), ("2", 0));
    // A node that read the keys before the rotation keeps them for a while (no store read per
    // link): the old link opens. After a restart the new key signs, and the old still opens.
    assert_eq!(page_status(&app, &old).await, 200);
    let app = app.restart().await;
    let new = link_token(&app, "ada").await;
    assert_ne!(new.split('.').next(), old.split('.').next());
    assert_eq!(
        page_status(&app, &old).await,
        200,
        "kept through a rotation"
    );
    assert_eq!(page_status(&app, &new).await, 200);
    assert_eq!(
        retire_old_link_secrets(app.store.as_ref()).await.unwrap(),
        1
    );
    let app = app.restart().await;
    assert_eq!(
        page_status(&app, &old).await,
        404,
        "signed with a retired secret"
    );
    assert_eq!(page_status(&app, &new).await, 200);
    // Rotating with --retire-old closes every link at once.
    rotate_link_secret(app.store.as_ref(), true).await.unwrap();
    let app = app.restart().await;
    assert_eq!(page_status(&app, &new).await, 404);
}

#[tokio::test]
async fn hardening_the_preference_page_checks_its_link_before_reading_a_form() {
    let app = TestApp::spawn().await;
    // A made-up token with a form announced at 2 MB that never arrives: refused at once.
    let mut s = connect(&app).await;
    let head = "POST /preferences/bm9wZQ.bm9wZQ HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 2000000\r\n\r\nrestrict:";
    s.write_all(head.as_bytes()).await.unwrap();
    let (reply, _) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");

    // A real link with a form larger than any page makes: refused, nothing changes.
    app.call(
        "POST",
        "/v1/user/ada/",
        Some(serde_json::json!({"$email": ["ada@example.com"]})),
    )
    .await
    .expect(201);
    let token = link_token(&app, "ada").await;
    let before = app.user("ada").await;
    let form = format!("restrict:email=on&{}", "x=y&".repeat(20_000));
    let r = app
        .http
        .post(format!("{}/preferences/{token}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(app.user("ada").await, before);
    // The same choice in a form of normal size is saved.
    let r = app
        .http
        .post(format!("{}/preferences/{token}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("restrict:email=on")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success() || r.status().is_redirection());
    assert_ne!(app.user("ada").await, before);
}
