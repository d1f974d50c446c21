//! What Herald's figures are compared with, measured in the same run on the same machine:
//! an axum server answering a fixed body, an axum server doing a rusqlite point lookup over the
//! same rows, raw rusqlite upserts of those rows in one transaction, and pgbench's prepared point
//! select on a plain PostgreSQL table of the same rows. The servers run in this process on a
//! runtime of their own (two workers, as Herald on this machine), loaded by the same client code
//! as Herald ([`crate::drive`]).

use crate::drive::{self, Load};
use crate::profile::{get_json, seeded_id};
use crate::results::Record;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rusqlite::{Connection, OptionalExtension};
use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

/// Starts `router` on a loopback port in a thread with its own two-worker runtime; its base URL.
fn serve_in_thread(router: axum::Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            tx.send(url).expect("send the url");
            axum::serve(listener, router).await.expect("serve");
        });
    });
    rx.recv().expect("the server's url")
}

fn emit_http(setup: &str, name: &str, run: &drive::Run, results: Option<&Path>, note: &str) {
    if run.errors > 0 {
        eprintln!("{name}: {} requests failed", run.errors);
        std::process::exit(1);
    }
    Record::new(setup, name, run.rate(), "req/s")
        .latency(run.pct(0.5), run.pct(0.99))
        .note(note)
        .emit(results);
}

/// `baseline-fixed`: GET of a fixed JSON body the size of a seeded profile's GET.
pub async fn fixed(load: &Load, results: Option<&Path>) {
    let body = get_json(&seeded_id(42), 42);
    let bytes = body.len();
    let url = serve_in_thread(axum::Router::new().route(
        "/fixed",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    ));
    let load = Load {
        urls: vec![url],
        ..load.clone()
    };
    let run = drive::drive(&load, |c, url, _| c.get(format!("{url}/fixed")), drive::ok).await;
    emit_http(
        "local",
        "baseline-fixed",
        &run,
        results,
        &format!("axum, {bytes}-byte body, c={}", load.concurrency),
    );
}

/// Opens the baseline database as Herald opens its own by default: WAL, `synchronous = FULL`.
fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open the baseline database");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .expect("pragmas");
    conn
}

/// `baseline-upserts`: `profiles` rows of the seeded profiles' GET bodies (id text primary key,
/// body text), upserted with one prepared statement in one transaction into a fresh file at `db`.
/// Rows/s counts building each row's JSON too, as Herald must.
pub fn upserts(db: &Path, profiles: u64, results: Option<&Path>) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let mut conn = open(db);
    conn.execute_batch("CREATE TABLE profiles (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        .expect("create the table");
    let started = Instant::now();
    let tx = conn.transaction().expect("begin");
    {
        let mut upsert = tx
            .prepare(
                "INSERT INTO profiles (id, body) VALUES (?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            )
            .expect("prepare");
        for i in 0..profiles {
            let id = seeded_id(i);
            let body = get_json(&id, i);
            upsert.execute((&id, &body)).expect("upsert");
        }
    }
    tx.commit().expect("commit");
    let secs = started.elapsed().as_secs_f64();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    drop(conn);
    Record::new(
        "local",
        "baseline-upserts",
        profiles as f64 / secs,
        "rows/s",
    )
    .note(format!("{profiles} rows, one transaction, {secs:.2} s"))
    .emit(results);
    let size = std::fs::metadata(db).map_or(0, |m| m.len());
    Record::new(
        "local",
        "baseline-sqlite-size",
        size as f64 / 1048576.0,
        "MiB",
    )
    .note(format!("{profiles} rows"))
    .emit(results);
}

thread_local! {
    /// Each server worker's own read connection to the baseline database.
    static READER: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

async fn lookup(State(db): State<Arc<PathBuf>>, UrlPath(id): UrlPath<String>) -> Response {
    let found = READER.with(|reader| {
        let mut reader = reader.borrow_mut();
        let conn = reader.get_or_insert_with(|| open(&db));
        conn.prepare_cached("SELECT body FROM profiles WHERE id = ?1")
            .and_then(|mut s| s.query_row([&id], |r| r.get::<_, String>(0)).optional())
    });
    match found {
        Ok(Some(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `baseline-sqlite-get`: axum + rusqlite point lookups of random seeded ids over the table
/// [`upserts`] wrote (written first if `db` does not exist), each worker thread with its own
/// connection and cached statement, the lookup inline in the handler.
pub async fn sqlite_get(db: &Path, profiles: u64, load: &Load, results: Option<&Path>) {
    if !db.exists() {
        upserts(db, profiles, results);
    }
    let url = serve_in_thread(
        axum::Router::new()
            .route("/{id}", get(lookup))
            .with_state(Arc::new(db.to_owned())),
    );
    let load = Load {
        urls: vec![url],
        ..load.clone()
    };
    let run = drive::drive(
        &load,
        move |c, url, i| {
            let id = seeded_id(crate::profile::rand(i as u64, 99) % profiles);
            c.get(format!("{url}/{id}"))
        },
        drive::ok,
    )
    .await;
    emit_http(
        "local",
        "baseline-sqlite-get",
        &run,
        results,
        &format!("axum + rusqlite, {profiles} rows, c={}", load.concurrency),
    );
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `baseline-pg-get`: pgbench with `-M prepared`, a point select of a random seeded id on a plain
/// table `{schema}.profiles (id text primary key, body jsonb)` of the same rows, loaded by COPY.
/// The table is dropped afterwards.
pub fn pg_get(
    url: &str,
    schema: &str,
    profiles: u64,
    concurrency: usize,
    secs: u64,
    results: Option<&Path>,
) {
    let table = format!("{schema}.profiles");
    psql(url, &format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
    psql(url, &format!("DROP TABLE IF EXISTS {table}"));
    psql(
        url,
        &format!("CREATE TABLE {table} (id text PRIMARY KEY, body jsonb NOT NULL)"),
    );
    let mut copy = Command::new("psql")
        .args([
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            &format!("COPY {table} (id, body) FROM STDIN"),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run psql");
    {
        let mut stdin = std::io::BufWriter::new(copy.stdin.take().expect("stdin"));
        for i in 0..profiles {
            let id = seeded_id(i);
            // The JSON holds no tab, newline or backslash: COPY's text format takes it as is.
            writeln!(stdin, "{id}\t{}", get_json(&id, i)).expect("write a row");
        }
    }
    assert!(copy.wait().expect("psql").success(), "COPY failed");
    psql(url, &format!("VACUUM ANALYZE {table}"));
    let script = std::env::temp_dir().join(format!("herald-bench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "\\set r random(0, {})\nSELECT body FROM {table} WHERE id = 'user-' || lpad(:r::text, 7, '0');\n",
            profiles.saturating_sub(1)
        ),
    )
    .expect("write the pgbench script");
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-f"])
        .arg(&script)
        .args([
            "-c",
            &concurrency.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            url,
        ])
        .output()
        .expect("run pgbench");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let tps = field("tps = ").expect("pgbench printed no tps");
    let latency = field("latency average = ").unwrap_or(0.0);
    psql(url, &format!("DROP TABLE {table}"));
    Record::new("pg1", "baseline-pg-get", tps, "tps")
        .note(format!(
            "pgbench -M prepared, {profiles} rows, c={concurrency}, latency average {latency:.2} ms"
        ))
        .emit(results);
}
