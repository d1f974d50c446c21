//! A Herald process killed mid-work (SIGKILL, no shutdown) loses no acknowledged write, and a
//! client retrying every event it sent (with the same `$insert_id`) applies each exactly once.

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

/// Starts `herald serve` on a free port and waits until it answers.
async fn serve(url: &str, data: &std::path::Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = herald(url, data)
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
    let (mut child, base) = serve(&scratch.url, data.path()).await;
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
    let (mut child, base) = serve(&scratch.url, data.path()).await;
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
