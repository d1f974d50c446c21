//! Imports and exports at speed (issue 12): `herald user import` of CSV and NDJSON as a real
//! process (rejects file, `--dry-run`, re-runs, a SIGKILL mid-import), `herald user export` with
//! listing filters and CSV columns, and `POST /v1/bulk/user/import/` (refusals, idempotence,
//! limits, keys and environments).

use crate::harness::TestApp;
use herald_core::service::profiles;
use herald_core::{Env, EnvScope};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

/// The `herald` binary against the app's database.
fn herald(app: &TestApp, data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_herald"));
    c.env("HERALD_DATABASE_URL", &app.config.database_url)
        .env("HERALD_DATA_DIR", data)
        .env("HERALD_LOG_LEVEL", "warn");
    c
}

fn run(app: &TestApp, data: &std::path::Path, args: &[&str]) -> (Output, String) {
    let out = herald(app, data).args(args).output().expect("herald runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// Line 1 is the header; the record of lines 4-5 holds a quoted line break and doubled quotes;
/// lines 6, 7-8, 9 and 10 are refused.
const CSV: &str = "distinct_id,name,$email,$sms,plan,age:number,beta:boolean\r
ada,Ada Lovelace,ada@example.com,+14155550100,pro,36,true\r
\"grace\",\"Hopper, Grace\",grace@example.com,,team,,false\r
alan,\"Alan
\"\"the\"\" Turing\",alan@example.com,,free,41,\r
bad-email,Bad,nope,,free,,\r
\"multi
line\",x,,,,old,\r
,no id,,,,,\r
short,row\r
last,Last,,,,,\r
";

#[tokio::test]
async fn csv_rows_become_profiles_and_refused_rows_go_to_the_rejects_file() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, CSV).unwrap();
    let rejects = dir.path().join("rejects.ndjson");
    let file_arg = file.to_str().unwrap();

    // A dry run reports what would happen and writes nothing.
    let empty = app.snapshot(Env::Test).await;
    let (out, stderr) = run(
        &app,
        dir.path(),
        &["user", "import", file_arg, "--env", "test", "--dry-run"],
    );
    assert!(
        !out.status.success(),
        "refused lines make the exit non-zero"
    );
    assert!(
        stderr.contains("dry run: 4 lines would apply to test, 4 would be refused"),
        "{stderr}"
    );
    assert_eq!(app.snapshot(Env::Test).await, empty, "a dry run wrote");

    let (out, stderr) = run(
        &app,
        dir.path(),
        &[
            "user",
            "import",
            file_arg,
            "--env",
            "test",
            "--rejects",
            rejects.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("applied 4 lines to test"), "{stderr}");
    assert!(stderr.contains("4 lines were refused"), "{stderr}");
    let rejected: Vec<Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<(u64, &str)> = rejected
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().split(':').next().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (6, "$email"),
            (7, "age"),
            (9, "distinct_id"),
            (10, "has 2 fields, the header 7")
        ],
        "{rejected:?}"
    );
    assert_eq!(rejected[0]["input"], "bad-email,Bad,nope,,free,,");
    assert_eq!(rejected[1]["input"], "\"multi\nline\",x,,,,old,");

    let ada = app.user("ada").await;
    assert_eq!(ada["properties"]["name"], "Ada Lovelace");
    assert_eq!(ada["properties"]["plan"], "pro");
    assert_eq!(ada["properties"]["age"], 36, "age:number is a number");
    assert_eq!(ada["properties"]["beta"], true);
    assert_eq!(ada["$email"][0]["value"], "ada@example.com");
    assert_eq!(ada["$sms"][0]["value"], "+14155550100");
    let grace = app.user("grace").await;
    assert_eq!(grace["properties"]["name"], "Hopper, Grace");
    assert_eq!(grace["properties"]["beta"], false);
    assert!(
        grace["properties"].get("age").is_none(),
        "an empty cell sets nothing"
    );
    assert!(grace["$sms"].as_array().is_none_or(Vec::is_empty));
    assert_eq!(
        app.user("alan").await["properties"]["name"],
        "Alan\n\"the\" Turing"
    );
    app.call("GET", "/v1/user/bad-email/", None)
        .await
        .expect_error(404, None);
    let history = app
        .call("GET", "/v1/user/ada/history/", None)
        .await
        .expect(200);
    assert_eq!(history["results"][0]["actor"]["kind"], "cli");

    // Running it again changes nothing and records no history.
    let before = app.snapshot(Env::Test).await;
    let (_, stderr) = run(
        &app,
        dir.path(),
        &["user", "import", file_arg, "--env", "test"],
    );
    assert!(stderr.contains("applied 4 lines to test"), "{stderr}");
    assert!(stderr.contains("0 new profiles"), "{stderr}");
    assert_eq!(
        app.snapshot(Env::Test).await,
        before,
        "a re-run changed something"
    );

    // Standard input needs a format.
    let (out, stderr) = run(&app, dir.path(), &["user", "import", "-", "--env", "test"]);
    assert!(!out.status.success());
    assert!(stderr.contains("--format"), "{stderr}");
}

#[tokio::test]
async fn an_export_takes_the_listing_filters_and_writes_csv_columns() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..30 {
        let plan = ["free", "pro", "team"][i % 3];
        app.call(
            "POST",
            &format!("/v1/user/u{i:02}/"),
            Some(json!({"plan": plan, "age": i, "name": format!("User, {i}"), "$email": [format!("u{i}@example.com")]})),
        )
        .await
        .expect(201);
    }
    app.call(
        "POST",
        "/v1/user/u01/",
        Some(json!({"$status": "disabled"})),
    )
    .await
    .expect(201);

    let (out, stderr) = run(
        &app,
        dir.path(),
        &[
            "user",
            "export",
            "--env",
            "test",
            "--filter",
            "prop.plan=eq:pro",
            "--filter",
            "status=enabled",
        ],
    );
    assert!(out.status.success(), "{stderr}");
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["distinct_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..30)
        .filter(|i| i % 3 == 1 && *i != 1)
        .map(|i| format!("u{i:02}"))
        .collect();
    assert_eq!(ids, expected);

    let csv = dir.path().join("team.csv");
    let (out, stderr) = run(
        &app,
        dir.path(),
        &[
            "user",
            "export",
            "--env",
            "test",
            "--filter",
            "prop.plan=eq:team",
            "--format",
            "csv",
            "--columns",
            "distinct_id,name,$email,age:number,plan",
            "--output",
            csv.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("distinct_id,name,$email,age:number,plan")
    );
    assert_eq!(lines.next(), Some("u02,\"User, 2\",u2@example.com,2,team"));
    assert_eq!(text.lines().count(), 11);

    // The CSV reads back: imported into live, the same values.
    let (out, stderr) = run(
        &app,
        dir.path(),
        &["user", "import", csv.to_str().unwrap(), "--env", "live"],
    );
    assert!(out.status.success(), "{stderr}");
    let u05 = app
        .call_in(Env::Live, "GET", "/v1/user/u05/", None)
        .await
        .expect(200);
    assert_eq!(
        u05["properties"],
        json!({"name": "User, 5", "age": 5, "plan": "team"})
    );

    // A name that is not a filter is refused.
    let (out, stderr) = run(
        &app,
        dir.path(),
        &["user", "export", "--env", "test", "--filter", "limit=5"],
    );
    assert!(!out.status.success());
    assert!(stderr.contains("'limit' is not a filter"), "{stderr}");
}

/// A body of `n` good lines, with a refused line after every 100th (`n / 100` of them) and a
/// blank line at the top.
fn body(n: usize) -> (String, Vec<u64>) {
    let mut text = String::from("\n");
    let mut bad = Vec::new();
    let mut line = 1;
    for i in 0..n {
        text += &format!(
            "{}\n",
            json!({"distinct_id": format!("b{i:05}"), "name": format!("B {i}"), "n": i, "$email": [format!("b{i}@example.com")]})
        );
        line += 1;
        if i % 100 == 99 {
            text += "{\"distinct_id\": \"x\", \"country\": \"Atlantis\"}\n";
            line += 1;
            bad.push(line);
        }
    }
    (text, bad)
}

async fn bulk(app: &TestApp, env: Env, body: String) -> crate::harness::Response {
    let auth = format!("Bearer {}", app.keys(env).api_key);
    app.raw_body(
        "POST",
        "/v1/bulk/user/import/",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/x-ndjson"),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn the_bulk_endpoint_applies_lines_in_chunks_and_lists_refusals() {
    let app = TestApp::spawn().await;
    let (text, bad) = body(1000);
    let reply = bulk(&app, Env::Test, text.clone()).await.expect(200);
    assert_eq!(reply["applied"], 1000);
    assert_eq!(reply["refused_total"], 10);
    let lines: Vec<u64> = reply["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, bad);
    let first = &reply["refused"][0]["error"];
    assert_eq!(first["code"], 400);
    assert_eq!(first["error_code"], "validation_error");
    assert_eq!(first["field"], "country");
    assert_eq!(app.user("b00999").await["properties"]["n"], 999);
    let live = app
        .call_in(Env::Live, "GET", "/v1/user/?limit=1", None)
        .await
        .expect(200);
    assert_eq!(
        live["meta"]["count"], 0,
        "a test key imports into test only"
    );

    // The same body again: same answer, same profiles, no new history.
    let before = app.snapshot(Env::Test).await;
    let again = bulk(&app, Env::Test, text).await.expect(200);
    assert_eq!(again, reply);
    assert!(
        app.snapshot(Env::Test).await == before,
        "a re-run changed something"
    );

    // The live key imports into live.
    bulk(&app, Env::Live, "{\"distinct_id\": \"l1\"}".into())
        .await
        .expect(200);
    app.call_in(Env::Live, "GET", "/v1/user/l1/", None)
        .await
        .expect(200);
    app.call("GET", "/v1/user/l1/", None)
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn the_bulk_endpoint_refuses_what_is_not_ndjson_unauthenticated_or_too_large() {
    let app = TestApp::spawn_with(|c| c.limits.bulk_import_max_bytes = 256 * 1024).await;
    let line = "{\"distinct_id\": \"a\"}";
    let none = app
        .raw_body("POST", "/v1/bulk/user/import/", &[], line)
        .await;
    assert_eq!(none.status, 401, "{:?}", none.body);
    let wrong = app
        .raw_body(
            "POST",
            "/v1/bulk/user/import/",
            &[("Authorization", "Bearer nope")],
            line,
        )
        .await;
    assert_eq!(wrong.status, 401);

    bulk(&app, Env::Test, "name,plan\nada,pro\n".into())
        .await
        .expect_error(400, Some("body"));
    bulk(&app, Env::Test, "[1, 2]\n".into())
        .await
        .expect_error(400, Some("body"));
    bulk(&app, Env::Test, "\n \n".into())
        .await
        .expect_error(400, Some("body"));

    // Over the limit with a Content-Length: refused before anything is read.
    // Bigger than the limit and than one chunk (`import::BULK_CHUNK` lines), so the chunked post
    // below commits at least one whole chunk before it is cut off.
    let (big, _) = body(4000);
    let refused = bulk(&app, Env::Test, big.clone())
        .await
        .expect_error(413, None);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("262144 bytes"),
        "{refused}"
    );
    let count = app.call("GET", "/v1/user/?limit=1", None).await.expect(200);
    assert_eq!(count["meta"]["count"], 0);

    // Without one (chunked): cut off when it grows past the limit, saying what was applied.
    let reply = chunked_post(&app, &big).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    let applied = profiles::count_all(app.store.as_ref(), EnvScope::operator(Env::Test))
        .await
        .unwrap();
    assert!(applied > 0, "whole chunks were applied before the cut");
    assert!(
        reply.contains(&format!("({applied} applied, ")),
        "the answer says what was applied: {reply}"
    );
}

/// Posts `body` to the bulk endpoint with chunked transfer encoding (no Content-Length) and
/// returns the raw response.
async fn chunked_post(app: &TestApp, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/bulk/user/import/ HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.test.api_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in body.as_bytes().chunks(4096) {
        let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
        frame.extend_from_slice(piece);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).await.is_err() {
            break; // the server answered and closed
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    String::from_utf8_lossy(&reply).into_owned()
}

const BIG: usize = 50_000;

/// Line `i` (1-based) of the big file: three values that must arrive together.
fn big_line(i: usize) -> String {
    json!({"distinct_id": format!("k{i:06}"), "a": i, "b": i, "$email": [format!("k{i}@example.com")]})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_way_keeps_every_committed_chunk_and_resumes() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for i in 1..=BIG {
        writeln!(out, "{}", big_line(i)).unwrap();
    }
    out.flush().unwrap();
    drop(out);

    let mut child = herald(&app, dir.path())
        .args([
            "user",
            "import",
            file.to_str().unwrap(),
            "--env",
            "test",
            "--log-chunks",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut committed = 0;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed through line ") {
            committed = n.parse::<usize>().unwrap();
            if committed >= 2000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        (2000..BIG).contains(&committed),
        "killed mid-way: {committed}"
    );

    // Every reported chunk is there, and every profile there is whole.
    let mut all = profiles::AllProfiles::new(EnvScope::operator(Env::Test));
    let mut seen = 0;
    loop {
        let page = all.next_page(app.store.as_ref(), 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for p in &page {
            let i: usize = p.distinct_id.as_str()[1..].parse().unwrap();
            assert_eq!(p.properties["a"], json!(i), "{}", p.distinct_id.as_str());
            assert_eq!(p.properties["b"], json!(i), "{}", p.distinct_id.as_str());
            assert_eq!(p.identities.len(), 1, "{}", p.distinct_id.as_str());
            seen += 1;
        }
    }
    assert!(
        seen >= committed,
        "{seen} profiles, {committed} reported committed"
    );
    for i in [1, committed / 2, committed] {
        app.user(&format!("k{i:06}")).await;
    }

    // Running it again completes it, with exact counts.
    let (out, stderr) = run(
        &app,
        dir.path(),
        &["user", "import", file.to_str().unwrap(), "--env", "test"],
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("applied {BIG} lines to test")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{} new profiles ({BIG} now)", BIG - seen)),
        "{stderr}"
    );
    for i in [1, committed, BIG] {
        let history = app
            .call("GET", &format!("/v1/user/k{i:06}/history/"), None)
            .await
            .expect(200);
        assert_eq!(
            history["results"].as_array().unwrap().len(),
            1,
            "k{i}: one event"
        );
    }
}

#[tokio::test]
async fn seed_goes_through_the_import_path_with_its_creation_times() {
    use chrono::Utc;
    use herald_core::history::Actor;
    use herald_core::service::Ctx;
    let app = TestApp::spawn().await;
    let ctx = Ctx::new(EnvScope::operator(Env::Test), Actor::cli(), Utc::now());
    let created = herald_server::seed::run(app.store.as_ref(), &ctx, 0, 300, 128)
        .await
        .unwrap();
    assert_eq!(created, 300);
    let first = app.user("user-0000000").await;
    let last = app.user("user-0000299").await;
    let at = |u: &Value| {
        chrono::DateTime::parse_from_rfc3339(u["created_at"].as_str().unwrap()).unwrap()
    };
    assert_eq!(
        (at(&last) - at(&first)).num_seconds(),
        299,
        "one second apart"
    );
    let seeded: serde_json::Map<String, Value> = herald_server::seed::profile(0)
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(first["properties"], Value::Object(seeded));
    let history = app
        .call("GET", "/v1/user/user-0000000/history/", None)
        .await
        .expect(200);
    assert_eq!(history["results"][0]["action"], "created");

    // Seeding again creates nothing and changes nothing.
    let before = app.snapshot(Env::Test).await;
    let again = herald_server::seed::run(app.store.as_ref(), &ctx, 0, 300, 128)
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert!(
        app.snapshot(Env::Test).await == before,
        "a second seed changed something"
    );
}
