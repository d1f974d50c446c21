//! A Herald process killed mid-work (SIGKILL, no shutdown) loses no acknowledged write, a
//! client retrying every event it sent (with the same `$insert_id`) applies each exactly once, and
//! a message claimed by a killed worker is delivered once by the next process.

use crate::harness::scratch;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const EVENTS: usize = 3000;
const SENDERS: usize = 16;
/// The kill comes once this many events were acknowledged, while the rest are still being sent.
const KILL_AFTER: usize = 500;

fn herald(url: &str, data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_herald"));
    c.env("HERALD_DATABASE_URL", url)
        .env("HERALD_DATA_DIR", data)
        .env("HERALD_LOG_LEVEL", "warn");
    c
}

/// Starts `herald serve` on a free port (with `env` set) and waits until it answers.
async fn serve(url: &str, data: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = herald(url, data)
        .envs(env.iter().copied())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .expect("herald starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("herald did not become ready at {base}");
}

fn event(workspace_key: &str, i: usize) -> Value {
    json!({"distinct_id": "ada", "$insert_id": format!("evt-{i}"), "env": workspace_key,
           "$user_operations": [{"$add": {"n": 1}}]})
}

async fn n_of_ada(http: &reqwest::Client, base: &str, api_key: &str) -> i64 {
    let user: Value = http
        .get(format!("{base}/v1/user/ada/"))
        .bearer_auth(api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    user["properties"]["n"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_server_loses_no_acknowledged_write_and_retries_apply_once() {
    let scratch = scratch().await;
    let data = tempfile::tempdir().unwrap();
    let out = herald(&scratch.url, data.path())
        .args(["keys", "create", "--env", "test", "--json"])
        .output()
        .expect("herald keys create runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (workspace_key, api_key) = (
        keys["workspace_key"].as_str().unwrap().to_owned(),
        keys["api_key"].as_str().unwrap().to_owned(),
    );
    let http = reqwest::Client::new();
    let (mut child, base) = serve(&scratch.url, data.path(), &[]).await;
    http.post(format!("{base}/v1/user/ada/"))
        .bearer_auth(&api_key)
        .json(&json!({"n": 0}))
        .send()
        .await
        .unwrap();

    // Senders stream events; each records the ones the server acknowledged.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (http, base, key, ws, acked) = (
            http.clone(),
            base.clone(),
            api_key.clone(),
            workspace_key.clone(),
            acked.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (s..EVENTS).step_by(SENDERS) {
                let sent = http
                    .post(format!("{base}/event/"))
                    .bearer_auth(&key)
                    .json(&event(&ws, i))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().as_u16() == 202 => {
                        mine.push(i);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => break, // the server is gone
                }
            }
            mine
        }));
    }
    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for s in senders {
        acknowledged.extend(s.await.unwrap());
    }
    assert!(
        acknowledged.len() < EVENTS,
        "the kill came after every event was sent; nothing was tested"
    );

    // Every acknowledged event survived the kill.
    let (mut child, base) = serve(&scratch.url, data.path(), &[]).await;
    let after_crash = n_of_ada(&http, &base, &api_key).await;
    eprintln!(
        "killed after {} acknowledged events; {after_crash} were stored",
        acknowledged.len()
    );
    assert!(
        after_crash >= acknowledged.len() as i64,
        "{} events were acknowledged but n is {after_crash}",
        acknowledged.len()
    );

    // The client retries everything it sent; each event applies exactly once.
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(400) {
        let batch: Vec<Value> = chunk.iter().map(|i| event(&workspace_key, *i)).collect();
        let r = http
            .post(format!("{base}/event/"))
            .bearer_auth(&api_key)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success", "{body}");
    }
    assert_eq!(n_of_ada(&http, &base, &api_key).await, EVENTS as i64);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A Discord API fake whose first call never gets an answer (the provider hangs while the worker
/// that sent it is killed); later calls are answered. Counts the calls it answered.
async fn hanging_discord() -> (Arc<AtomicUsize>, Arc<AtomicUsize>, String) {
    let (seen, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, a) = (seen.clone(), answered.clone());
    let router = axum::Router::new().fallback(move || {
        let (s, a) = (s.clone(), a.clone());
        async move {
            if s.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
            a.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"id": "discord-ok"}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (seen, answered, base)
}

/// Polls `check` every 50 ms for up to `within`; whether it became true.
async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_claiming_is_replaced_and_the_message_delivered_once() {
    let scratch = scratch().await;
    let data = tempfile::tempdir().unwrap();
    let out = herald(&scratch.url, data.path())
        .args(["keys", "create", "--env", "test", "--json"])
        .output()
        .expect("herald keys create runs");
    assert!(out.status.success());
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    let api_key = keys["api_key"].as_str().unwrap().to_owned();
    let env = [
        ("HERALD_OUTBOUND_ALLOW_PRIVATE", "true"),
        ("HERALD_DISPATCH_LEASE_SECS", "1"),
        ("HERALD_DISPATCH_POLL_INTERVAL_MS", "50"),
    ];
    let (seen, answered, fake) = hanging_discord().await;
    let http = reqwest::Client::new();
    let (mut child, base) = serve(&scratch.url, data.path(), &env).await;
    let call = |method: reqwest::Method, base: &str, path: &str, body: Value| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&api_key)
            .json(&body)
            .send()
    };
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    let r = call(
        put,
        &base,
        "/v1/provider/discord/",
        json!({"kind": "discord", "base_url": fake}),
    );
    assert!(r.await.unwrap().status().is_success());
    let workflow = json!({"slug": "ping", "name": "Ping", "policy": "all",
        "channels": {"discord": {"content": "ping {{n}}"}}});
    let r = call(post.clone(), &base, "/v1/workflow/", workflow);
    assert_eq!(r.await.unwrap().status(), 201);
    let user = json!({"$discord": "https://discord.com/api/webhooks/9/tok"});
    let r = call(post.clone(), &base, "/v1/user/ada/", user);
    assert!(r.await.unwrap().status().is_success());
    let trigger = json!({"workflow": "ping", "recipients": ["ada"], "data": {"n": 1}});
    let r = call(post.clone(), &base, "/trigger/", trigger);
    assert_eq!(r.await.unwrap().status(), 202);

    // The worker claimed the message and is waiting on the provider: kill it there.
    assert!(
        eventually(Duration::from_secs(20), async || seen
            .load(Ordering::SeqCst)
            == 1)
        .await,
        "the worker never called the provider"
    );
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert_eq!(answered.load(Ordering::SeqCst), 0);

    // A new process takes the claim over once its lease is out, and delivers it.
    let (mut child, base) = serve(&scratch.url, data.path(), &env).await;
    let log = async || -> Value {
        http.get(format!("{base}/v1/user/ada/message/"))
            .bearer_auth(&api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(20), async || log().await["results"][0]
            ["status"]
            == "sent")
        .await,
        "the message was not delivered after the restart: {}",
        log().await
    );
    // Delivered once: one answered call, one `sent` in the message's history, and no more later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(answered.load(Ordering::SeqCst), 1);
    let message = log().await["results"][0].clone();
    let sent = message["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "sent")
        .count();
    assert_eq!(sent, 1, "{message}");
    assert_eq!(message["provider_id"], "discord-ok");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}
