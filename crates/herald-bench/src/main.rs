//! `herald-bench`: drives a running Herald (one or more nodes) and prints throughput and latency,
//! each next to its baselines measured in the same run: `GET /healthz` of the same nodes (which
//! touches no database), and the in-process baselines of [`baselines`] (a fixed-body axum server,
//! an axum + rusqlite point lookup, raw rusqlite upserts, pgbench), so figures from noisy
//! machines compare as ratios. With `--results FILE` every figure is also appended to FILE, where
//! later figures find their baselines and `herald-bench report` prints the whole run.

mod baselines;
mod drive;
mod profile;
mod results;

use clap::{Parser, Subcommand};
use drive::{Load, Run};
use results::Record;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "herald-bench", about = "Load generator for Herald")]
struct Cli {
    /// Base URL of a Herald node; repeat for several nodes (requests alternate between them).
    #[arg(long = "url")]
    urls: Vec<String>,
    /// Bearer API key of the environment to use.
    #[arg(long, env = "HERALD_API_KEY", default_value = "")]
    api_key: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Requests per measurement (when no --duration).
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// Seconds per measurement, instead of a number of requests.
    #[arg(long)]
    duration: Option<f64>,
    /// Append every figure to this file (JSON lines); baselines are looked up there.
    #[arg(long)]
    results: Option<PathBuf>,
    /// The setup the nodes form, naming the figures: sqlite, pg1, pg2, ...
    #[arg(long, default_value = "sqlite")]
    setup: String,
    /// Another baseline of the scenario's figure, as setup:name (repeatable), e.g.
    /// local:baseline-fixed or pg1:get.
    #[arg(long = "baseline", global = true)]
    baselines: Vec<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Parallel `$add` edits of ONE profile (every edit contends for one row), then checks that
    /// none was lost. Figure `patch-hot`.
    #[command(alias = "patch-hot")]
    Contended,
    /// PATCH `$set` of one property on random seeded profiles (`herald seed`). Figure `patch-many`.
    PatchMany {
        /// How many profiles were seeded (user-0000000 ..).
        #[arg(long)]
        profiles: u64,
    },
    /// GET of random seeded profiles (`herald seed`), keep-alive; first checks that a served
    /// profile holds the data the baselines hold. Figure `get`.
    Get {
        /// How many profiles were seeded (user-0000000 ..).
        #[arg(long)]
        profiles: u64,
    },
    /// Parallel upserts of distinct new profiles. Figure `upserts`.
    Upserts,
    /// Bulk identity events: calls of `POST /event/`, each `--per-call` events creating new
    /// profiles (a name, an email, a custom property, a `$insert_id`). Reports profiles/s, then
    /// checks the profile counter grew by exactly the events acknowledged. Figure `events`.
    Events {
        /// Identity events per `/event/` call (at most 400).
        #[arg(long, default_value_t = 400)]
        per_call: usize,
    },
    /// The streaming import endpoint: `--rows` new profiles (seeded-like) posted to
    /// `POST /v1/bulk/user/import/` as NDJSON bodies of `--per-call` lines, bodies built before
    /// the clock starts; every answer must say `applied` = its lines. Figure `import-http`.
    ImportHttp {
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        #[arg(long, default_value_t = 5_000)]
        per_call: usize,
    },
    /// Listing filters on a seeded population (`herald seed`), one request at a time: median
    /// latency of each filter's first page, of deep pages reached by cursor, and of counts.
    Filters {
        /// Requests per measured query.
        #[arg(long, default_value_t = 30)]
        reps: usize,
        /// Pages walked by cursor for the deep-page figures.
        #[arg(long, default_value_t = 200)]
        pages: usize,
    },
    /// Notifications end to end: `--requests` notifications fired with `POST /trigger/` by
    /// distinct_id only (`--per-call` recipients a call, `--concurrency` calls in flight), each
    /// delivered by the nodes' workers through the Discord provider to a sink in this process.
    /// Measures triggers acknowledged and notifications delivered per second, then checks every
    /// notification reached the sink exactly once.
    Dispatch {
        /// Recipients per `/trigger/` call.
        #[arg(long, default_value_t = 100)]
        per_call: usize,
        /// Distinct users the notifications go to (created before the measurement).
        #[arg(long, default_value_t = 1000)]
        users: usize,
    },
    /// The dashboard's pages on a seeded population, one request at a time, as an operator
    /// logged in through the form: median latency of the users page (plain, filtered, deep by
    /// cursor), its deferred count, a user's page and the properties page.
    Dashboard {
        /// An operator account (`herald admin create`).
        #[arg(long)]
        username: String,
        /// Its password.
        #[arg(long, env = "HERALD_BENCH_PASSWORD")]
        password: String,
        /// Requests per measured page.
        #[arg(long, default_value_t = 30)]
        reps: usize,
    },
    /// Baseline: an axum server in this process answering a fixed body the size of a profile
    /// GET, loaded like `get`. Figure `local:baseline-fixed`.
    BaselineFixed,
    /// Baseline: raw rusqlite upserts of the seeded profiles' rows in one transaction into a new
    /// file `--db`. Figures `local:baseline-upserts`, `local:baseline-sqlite-size`.
    BaselineUpserts {
        #[arg(long)]
        profiles: u64,
        #[arg(long)]
        db: PathBuf,
    },
    /// Baseline: axum + rusqlite point lookups over the rows of `baseline-upserts` (made first if
    /// `--db` is missing), loaded like `get`. Figure `local:baseline-sqlite-get`.
    BaselineSqliteGet {
        #[arg(long)]
        profiles: u64,
        #[arg(long)]
        db: PathBuf,
    },
    /// Baseline: pgbench `-M prepared` point selects on a plain table of the seeded profiles'
    /// rows in `--schema` (created, loaded by COPY, dropped after), `--concurrency` clients for
    /// `--duration` seconds. Figure `pg1:baseline-pg-get`.
    BaselinePgGet {
        #[arg(long)]
        pg_url: String,
        #[arg(long)]
        schema: String,
        #[arg(long)]
        profiles: u64,
    },
    /// Writes `--count` seeded-like profiles as NDJSON lines (`herald user import`'s format) to
    /// standard output, ids `{prefix}-{n}`.
    Ndjson {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value = "imp")]
        prefix: String,
    },
    /// Records a figure measured outside (seed time, import CLI, peak RSS, database size):
    /// printed with its baselines and appended to `--results`.
    Record {
        #[arg(long)]
        name: String,
        #[arg(long)]
        value: f64,
        #[arg(long)]
        unit: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Prints every figure in `--results` with its ratios, the figure before and target.
    Report,
}

impl Cli {
    fn load(&self) -> Load {
        Load {
            urls: self.urls.clone(),
            concurrency: self.concurrency,
            requests: self.requests,
            duration: self.duration.map(Duration::from_secs_f64),
        }
    }

    fn results(&self) -> Option<&Path> {
        self.results.as_deref()
    }

    /// Emits a request-rate figure of the nodes with the healthz and `--baseline` baselines.
    fn emit(&self, name: &str, run: &Run, extra: &[&str], note: &str) {
        Record::new(&self.setup, name, run.rate(), "req/s")
            .latency(run.pct(0.5), run.pct(0.99))
            .baselines(extra.iter().copied().chain(["healthz"]))
            .baselines(&self.baselines)
            .note(format!(
                "{note} c={} errors={}",
                self.concurrency, run.errors
            ))
            .emit(self.results());
    }

    fn needs_nodes(&self) {
        if self.urls.is_empty() {
            eprintln!("this scenario needs --url of a Herald node");
            std::process::exit(2);
        }
    }
}

/// Fails the bench when a measurement had failed requests: its figure would flatter.
fn no_errors(name: &str, run: &Run) {
    if run.errors > 0 {
        eprintln!("{name}: {} requests failed", run.errors);
        std::process::exit(1);
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let auth = format!("Bearer {}", cli.api_key);
    let results = cli.results();
    match &cli.scenario {
        Scenario::BaselineFixed => return baselines::fixed(&cli.load(), results).await,
        Scenario::BaselineUpserts { profiles, db } => {
            return baselines::upserts(db, *profiles, results)
        }
        Scenario::BaselineSqliteGet { profiles, db } => {
            return baselines::sqlite_get(db, *profiles, &cli.load(), results).await
        }
        Scenario::BaselinePgGet {
            pg_url,
            schema,
            profiles,
        } => {
            let secs = cli.duration.unwrap_or(10.0).ceil() as u64;
            return baselines::pg_get(pg_url, schema, *profiles, cli.concurrency, secs, results);
        }
        Scenario::Ndjson { count, prefix } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for i in 0..*count {
                writeln!(out, "{}", profile::ndjson_line(&format!("{prefix}-{i}"), i))
                    .expect("write");
            }
            return;
        }
        Scenario::Record {
            name,
            value,
            unit,
            note,
        } => {
            return Record::new(&cli.setup, name, *value, unit)
                .baselines(&cli.baselines)
                .note(note.clone())
                .emit(results)
        }
        Scenario::Report => {
            let Some(path) = results else {
                eprintln!("report needs --results FILE");
                std::process::exit(2);
            };
            return results::report(path);
        }
        Scenario::Filters { reps, pages } => {
            cli.needs_nodes();
            return filters(&cli, &auth, *reps, *pages).await;
        }
        Scenario::Dashboard {
            username,
            password,
            reps,
        } => {
            cli.needs_nodes();
            return dashboard(&cli, username, password, *reps).await;
        }
        _ => cli.needs_nodes(),
    }
    // At least 5000 requests, so a scenario of few large calls still gets a steady baseline.
    let baseline = drive::drive(
        &Load {
            requests: cli.requests.max(5000),
            duration: None,
            ..cli.load()
        },
        |c, url, _| c.get(format!("{url}/healthz")),
        drive::ok,
    )
    .await;
    no_errors("GET /healthz", &baseline);
    println!(
        "nodes: {}  concurrency: {}  {}",
        cli.urls.len(),
        cli.concurrency,
        match cli.duration {
            Some(d) => format!("duration: {d} s"),
            None => format!("requests: {}", cli.requests),
        }
    );
    Record::new(&cli.setup, "healthz", baseline.rate(), "req/s")
        .latency(baseline.pct(0.5), baseline.pct(0.99))
        .note(format!("c={}", cli.concurrency))
        .emit(results);
    let tag = std::process::id();
    match cli.scenario {
        Scenario::Contended => {
            let user = format!("bench-counter-{tag}");
            let a = auth.clone();
            let u = user.clone();
            let run = drive::drive(
                &cli.load(),
                move |c, url, _| {
                    c.patch(format!("{url}/v1/user/{u}/"))
                        .header("Authorization", &a)
                        .json(&json!({"operations": [{"$add": {"n": 1}}]}))
                },
                drive::ok,
            )
            .await;
            cli.emit("patch-hot", &run, &[], "PATCH $add on one profile;");
            let got: Value = reqwest::Client::new()
                .get(format!("{}/v1/user/{user}/", cli.urls[0]))
                .header("Authorization", &auth)
                .send()
                .await
                .expect("read back")
                .json()
                .await
                .expect("json");
            let n = got["properties"]["n"].as_u64().unwrap_or(0) as usize;
            let acknowledged = run.latencies.len();
            println!(
                "acknowledged edits: {acknowledged}  final n: {n}  lost: {}",
                acknowledged.saturating_sub(n)
            );
            if n != acknowledged {
                eprintln!("LOST UPDATES: {acknowledged} acknowledged, n = {n}");
                std::process::exit(1);
            }
        }
        Scenario::PatchMany { profiles } => {
            let a = auth.clone();
            let run = drive::drive(
                &cli.load(),
                move |c, url, i| {
                    let id = profile::seeded_id(profile::rand(i as u64, 98) % profiles.max(1));
                    c.patch(format!("{url}/v1/user/{id}/"))
                        .header("Authorization", &a)
                        .json(&json!({"operations": [{"$set": {"score": i}}]}))
                },
                drive::ok,
            )
            .await;
            no_errors("patch-many", &run);
            cli.emit(
                "patch-many",
                &run,
                &[],
                &format!("PATCH $set on random profiles of {profiles};"),
            );
        }
        Scenario::Get { profiles } => get(&cli, &auth, profiles).await,
        Scenario::Events { per_call } => events(&cli, &auth, per_call.clamp(1, 400)).await,
        Scenario::ImportHttp { rows, per_call } => {
            import_http(&cli, &auth, rows, per_call.max(1)).await
        }
        Scenario::Dispatch { per_call, users } => {
            dispatch(&cli, &auth, per_call.max(1), users.max(1)).await
        }
        Scenario::Upserts => {
            let a = auth.clone();
            let run = drive::drive(
                &cli.load(),
                move |c, url, i| {
                    c.post(format!("{url}/v1/user/bench-{tag}-{i}/"))
                        .header("Authorization", &a)
                        .json(&json!({"name": format!("User {i}"), "$email": [format!("u{i}@example.com")], "plan": "pro"}))
                },
                drive::ok,
            )
            .await;
            no_errors("upserts", &run);
            cli.emit("upserts", &run, &[], "POST upsert of new profiles;");
        }
        _ => unreachable!("handled above"),
    }
}

/// The `get` scenario: see [`Scenario::Get`].
async fn get(cli: &Cli, auth: &str, profiles: u64) {
    let probe = profiles / 2;
    let id = profile::seeded_id(probe);
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/user/{id}/", cli.urls[0]))
        .header("Authorization", auth)
        .send()
        .await
        .expect("GET a seeded profile");
    let status = resp.status();
    let served: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!("GET {id}: {status} {served}: were {profiles} profiles seeded?");
        std::process::exit(1);
    }
    if !profile::matches_served(&served, &id, probe) {
        println!(
            "note: {id} as served differs from the baselines' row (they hold {}): {served}",
            profile::get_json(&id, probe)
        );
    }
    let a = auth.to_owned();
    let run = drive::drive(
        &cli.load(),
        move |c, url, i| {
            let id = profile::seeded_id(profile::rand(i as u64, 99) % profiles.max(1));
            c.get(format!("{url}/v1/user/{id}/"))
                .header("Authorization", &a)
        },
        drive::ok,
    )
    .await;
    no_errors("get", &run);
    cli.emit(
        "get",
        &run,
        &[],
        &format!("GET random profiles of {profiles};"),
    );
}

/// How many profiles the environment holds (the unfiltered count is a counter).
async fn profile_count(client: &reqwest::Client, url: &str, auth: &str) -> u64 {
    let body: Value = client
        .get(format!("{url}/v1/user/?limit=1"))
        .header("Authorization", auth)
        .send()
        .await
        .expect("count request")
        .json()
        .await
        .expect("json");
    body["meta"]["count"].as_u64().expect("meta.count")
}

/// The `events` scenario: see [`Scenario::Events`].
async fn events(cli: &Cli, auth: &str, per_call: usize) {
    let client = reqwest::Client::new();
    let before = profile_count(&client, &cli.urls[0], auth).await;
    let a = auth.to_owned();
    let tag = std::process::id();
    let run = drive::drive(
        &cli.load(),
        move |c, url, n| {
            let events: Vec<Value> = (n * per_call..(n + 1) * per_call)
                .map(|i| {
                    json!({"distinct_id": format!("bench-ev-{tag}-{i}"),
                           "$insert_id": format!("bench-ev-{tag}-{i}"),
                           "$user_operations": [
                               {"$set": {"name": format!("User {i}"), "plan": "pro"}},
                               {"$append": {"$email": format!("u{i}@example.com")}}]})
                })
                .collect();
            c.post(format!("{url}/event/"))
                .header("Authorization", &a)
                .json(&events)
        },
        drive::ok,
    )
    .await;
    no_errors("events", &run);
    let acknowledged = (run.latencies.len() * per_call) as u64;
    Record::new(
        &cli.setup,
        "events",
        acknowledged as f64 / run.secs,
        "profiles/s",
    )
    .latency(run.pct(0.5), run.pct(0.99))
    .baselines(["local:baseline-upserts"])
    .baselines(&cli.baselines)
    .note(format!(
        "POST /event/ x{per_call} new profiles, {:.0} calls/s, c={}",
        run.rate(),
        cli.concurrency
    ))
    .emit(cli.results());
    let after = profile_count(&client, &cli.urls[0], auth).await;
    if after - before != acknowledged {
        eprintln!(
            "PROFILE COUNT MISMATCH: {acknowledged} acknowledged, the count grew by {}",
            after - before
        );
        std::process::exit(1);
    }
}

/// The `import-http` scenario: see [`Scenario::ImportHttp`].
async fn import_http(cli: &Cli, auth: &str, rows: usize, per_call: usize) {
    let url = format!("{}/v1/bulk/user/import/", cli.urls[0]);
    // The route must exist: a missing endpoint is a failed bench, not a figure.
    let probe = reqwest::Client::new()
        .post(&url)
        .header("Authorization", auth)
        .header("Content-Type", "application/x-ndjson")
        .body(String::new())
        .send()
        .await
        .expect("POST /v1/bulk/user/import/");
    let status = probe.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::METHOD_NOT_ALLOWED
    {
        eprintln!(
            "IMPORT ENDPOINT MISSING: POST /v1/bulk/user/import/ answered {status}: {}",
            probe.text().await.unwrap_or_default()
        );
        std::process::exit(1);
    }
    let tag = std::process::id();
    let calls = rows.div_ceil(per_call);
    let bodies: std::sync::Arc<Vec<(usize, String)>> = std::sync::Arc::new(
        (0..calls)
            .map(|n| {
                let lines = n * per_call..((n + 1) * per_call).min(rows);
                let count = lines.len();
                let mut body = String::with_capacity(count * 260);
                for i in lines {
                    body += &profile::ndjson_line(&format!("imp-{tag}-{i}"), i as u64);
                    body.push('\n');
                }
                (count, body)
            })
            .collect(),
    );
    let a = auth.to_owned();
    let b = bodies.clone();
    let expected: Vec<usize> = bodies.iter().map(|(n, _)| *n).collect();
    let run = drive::drive(
        &Load {
            requests: calls,
            duration: None,
            ..cli.load()
        },
        move |c, url, n| {
            c.post(format!("{url}/v1/bulk/user/import/"))
                .header("Authorization", &a)
                .header("Content-Type", "application/x-ndjson")
                .body(b[n].1.clone())
        },
        move |status, body| {
            if !status.is_success() {
                return Err(status.to_string());
            }
            let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
            let applied = v["applied"].as_u64().ok_or("no `applied`")?;
            let refused = v["refused_total"]
                .as_u64()
                .unwrap_or(v["refused"].as_array().map_or(0, Vec::len) as u64);
            if refused > 0 || !expected.contains(&(applied as usize)) {
                return Err(format!("applied {applied}, refused {refused}"));
            }
            Ok(applied)
        },
    )
    .await;
    no_errors("import-http", &run);
    Record::new(&cli.setup, "import-http", run.unit_rate(), "rows/s")
        .latency(run.pct(0.5), run.pct(0.99))
        .baselines(["local:baseline-upserts"])
        .baselines(&cli.baselines)
        .note(format!(
            "{} rows in {calls} bodies of {per_call} lines, c={}",
            run.units, cli.concurrency
        ))
        .emit(cli.results());
}

/// Median latency in ms of `reps` sequential GETs of `path`, and the last body.
async fn median(
    client: &reqwest::Client,
    url: &str,
    auth: &str,
    path: &str,
    reps: usize,
) -> (f64, Value) {
    let mut times = Vec::with_capacity(reps);
    let mut body = Value::Null;
    for _ in 0..reps {
        let t = Instant::now();
        let resp = client
            .get(format!("{url}{path}"))
            .header("Authorization", auth)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        body = resp.json().await.expect("json");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(status.is_success(), "{path}: {status} {body}");
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], body)
}

async fn filters(cli: &Cli, auth: &str, reps: usize, pages: usize) {
    let client = reqwest::Client::new();
    let url = &cli.urls[0];
    let (base, _) = median(&client, url, auth, "/healthz", reps).await;
    println!("baseline GET /healthz median {base:.2} ms (sequential)");
    // Latencies, not rates: each is recorded with its multiple of /healthz's in the note.
    let line = |name: &str, ms: f64, extra: String| {
        Record::new(&cli.setup, &format!("list {name}"), ms, "ms median")
            .note(format!("{:.1}x /healthz {extra}", ms / base))
            .emit(cli.results());
    };
    // An email prefix that exists in a seeded population: the local part of user 1234's email.
    let (_, user) = median(&client, url, auth, "/v1/user/user-0001234/", 1).await;
    let email = user["$email"][0]["value"].as_str().unwrap_or("nobody@");
    let email_prefix = format!("q={}", &email[..email.find('@').unwrap_or(0)]);
    for (name, query) in [
        ("first page, status=disabled (5 %)", "status=disabled"),
        ("first page, status=enabled (95 %)", "status=enabled"),
        (
            "first page, prop.plan=eq:enterprise (5 %)",
            "prop.plan=eq:enterprise",
        ),
        ("first page, prop.plan=eq:pro (25 %)", "prop.plan=eq:pro"),
        (
            "first page, q=email prefix (1 match)",
            "q=ada.lovelace.1234",
        ),
        ("first page, q=name prefix (~6 %)", "q=grace"),
        ("first page, prop.age=gte:70 (range)", "prop.age=gte:70"),
        (
            "first page, plan=pro & has_channel=sms & enabled",
            "prop.plan=eq:pro&has_channel=sms&status=enabled",
        ),
    ] {
        let (ms, body) = median(
            &client,
            url,
            auth,
            &format!("/v1/user/?limit=20&{query}"),
            reps,
        )
        .await;
        let n = body["results"].as_array().map_or(0, Vec::len);
        line(name, ms, format!("({n} rows)"));
    }
    for (name, query) in [
        ("count, no filter", ""),
        ("count, status=disabled", "&status=disabled"),
        ("count, prop.plan=eq:pro", "&prop.plan=eq:pro"),
        ("count, prop.plan=eq:enterprise", "&prop.plan=eq:enterprise"),
        ("count, q=grace", "&q=grace"),
        ("count, q=email prefix", &format!("&{email_prefix}")),
    ] {
        let (ms, body) = median(
            &client,
            url,
            auth,
            &format!("/v1/user/?limit=1&with_count=true{query}"),
            reps,
        )
        .await;
        line(
            name,
            ms,
            format!(
                "(count {} estimate {})",
                body["meta"]["count"], body["meta"]["count_is_estimate"]
            ),
        );
    }
    // Deep paging: walk `pages` pages of 50 by cursor; the last must cost what the first does.
    for query in ["status=enabled", "prop.plan=eq:pro"] {
        let mut after: Option<String> = None;
        let mut first = 0.0;
        let mut last = 0.0;
        let mut reached = 0;
        for page in 1..=pages.max(1) {
            reached = page;
            let path = match &after {
                Some(a) => format!("/v1/user/?limit=50&{query}&after={a}"),
                None => format!("/v1/user/?limit=50&{query}"),
            };
            let (ms, body) = median(&client, url, auth, &path, 3).await;
            if page == 1 {
                first = ms;
            }
            last = ms;
            after = body["meta"]["after"].as_str().map(str::to_owned);
            if after.is_none() {
                break;
            }
        }
        line(&format!("page 1 of 50, {query}"), first, String::new());
        line(
            &format!("page {reached} of 50 ({} deep), {query}", reached * 50),
            last,
            String::new(),
        );
    }
}

/// The `dispatch` scenario: see [`Scenario::Dispatch`].
async fn dispatch(cli: &Cli, auth: &str, per_call: usize, users: usize) {
    let sink = sink::start().await;
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, url: String, body: Value| {
        let request = client
            .request(method, url)
            .header("Authorization", auth)
            .json(&body);
        async move {
            let resp = request.send().await.expect("request");
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            assert!(status.is_success(), "{status}: {text}");
        }
    };
    let url = &cli.urls[0];
    // The Discord provider with its origin replaced by the sink: the identities keep real
    // webhook URLs, the sink receives their paths.
    call(
        reqwest::Method::PUT,
        format!("{url}/v1/provider/discord/"),
        json!({"kind": "discord", "base_url": sink.url}),
    )
    .await;
    let tag = std::process::id();
    let workflow = format!("bench-dispatch-{tag}");
    call(
        reqwest::Method::POST,
        format!("{url}/v1/workflow/"),
        json!({"slug": workflow, "name": "Bench", "policy": "all",
               "channels": {"discord": {"content": "Hello {{$recipient.name}}, code {{code}}"}}}),
    )
    .await;
    let user = move |i: usize| format!("bench-{tag}-{}", i % users);
    for chunk in (0..users).collect::<Vec<_>>().chunks(400) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|&i| json!({"distinct_id": user(i), "$insert_id": format!("bench-{tag}-u{i}"),
                             "$user_operations": [{"$set": {"name": format!("User {i}")}},
                                 {"$append": {"$discord": format!("https://discord.com/api/webhooks/{i}/token")}}]}))
            .collect();
        call(
            reqwest::Method::POST,
            format!("{url}/event/"),
            json!(events),
        )
        .await;
    }
    let calls = cli.requests.div_ceil(per_call);
    let total = calls * per_call;
    println!(
        "{total} notifications: {calls} trigger calls of {per_call} recipients, {users} users"
    );
    let a = auth.to_owned();
    let w = workflow.clone();
    let started = Instant::now();
    let triggers = drive::drive(
        &Load {
            requests: calls,
            duration: None,
            ..cli.load()
        },
        move |c, url, n| {
            let recipients: Vec<String> = (n * per_call..(n + 1) * per_call).map(user).collect();
            c.post(format!("{url}/trigger/"))
                .header("Authorization", &a)
                .json(&json!({"workflow": w, "recipients": recipients, "data": {"code": n}}))
        },
        drive::ok,
    )
    .await;
    let acknowledged = triggers.latencies.len() * per_call;
    // Delivered: wait until the sink has them all (or nothing arrives for 30 s).
    let (mut seen, mut last_change) = (0, Instant::now());
    while seen < acknowledged && last_change.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = sink.received();
        if now != seen {
            (seen, last_change) = (now, Instant::now());
        }
    }
    let delivered_secs = started.elapsed().as_secs_f64() - last_change.elapsed().as_secs_f64();
    cli.emit(
        "trigger-calls",
        &triggers,
        &[],
        &format!("POST /trigger/ x{per_call};"),
    );
    let rate = seen as f64 / delivered_secs;
    Record::new(&cli.setup, "dispatch-delivered", rate, "notifications/s")
        .baselines(["healthz"])
        .note(format!(
            "{seen} of {acknowledged} acknowledged, {delivered_secs:.2} s"
        ))
        .emit(cli.results());
    // Late duplicates would arrive now: give them a moment, then check exactly once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (received, distinct) = (sink.received(), sink.distinct());
    if received != acknowledged || distinct != users.min(acknowledged) {
        eprintln!(
            "DELIVERY MISMATCH: {acknowledged} acknowledged, {received} received at the sink ({distinct} distinct webhooks)"
        );
        std::process::exit(1);
    }
}

/// A local HTTP/1.1 sink: answers every request `204 No Content` and counts them (and the
/// distinct paths). Hand-written so the load generator needs no server framework.
mod sink {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct Sink {
        pub url: String,
        count: Arc<AtomicUsize>,
        paths: Arc<Mutex<HashSet<String>>>,
    }

    impl Sink {
        pub fn received(&self) -> usize {
            self.count.load(Ordering::Relaxed)
        }

        pub fn distinct(&self) -> usize {
            self.paths.lock().expect("paths").len()
        }
    }

    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the sink");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let count = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(HashSet::new()));
        let (c, p) = (count.clone(), paths.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, c.clone(), p.clone()));
            }
        });
        Sink { url, count, paths }
    }

    /// Serves one keep-alive connection until the peer closes it.
    async fn serve(
        mut stream: tokio::net::TcpStream,
        count: Arc<AtomicUsize>,
        paths: Arc<Mutex<HashSet<String>>>,
    ) {
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            // Headers, then the body by Content-Length.
            let head_end = loop {
                if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < head_end + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..head_end + length);
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            paths.lock().expect("paths").insert(path);
            count.fetch_add(1, Ordering::Relaxed);
            if stream
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
}

/// Median latency in ms of `reps` sequential GETs of a dashboard page, and the last body.
async fn page_median(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    path: &str,
    reps: usize,
) -> (f64, String) {
    let mut times = Vec::with_capacity(reps);
    let mut body = String::new();
    for _ in 0..reps {
        let t = Instant::now();
        let resp = client
            .get(format!("{url}{path}"))
            .header("Cookie", cookie)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        body = resp.text().await.expect("body");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(status.is_success(), "{path}: {status}");
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], body)
}

async fn dashboard(cli: &Cli, username: &str, password: &str, reps: usize) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let url = &cli.urls[0];
    let form = client
        .get(format!("{url}/login"))
        .send()
        .await
        .expect("the login page");
    let token = set_cookie(&form, "herald_login").expect("a login token");
    let login = client
        .post(format!("{url}/login"))
        .header("Cookie", format!("herald_login={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", username),
            ("password", password),
            ("next", "/test/users"),
        ])
        .send()
        .await
        .expect("login");
    let session = set_cookie(&login, "herald_session")
        .unwrap_or_else(|| panic!("login refused: {}", login.status()));
    let cookie = format!("herald_session={session}");
    let (base, _) = page_median(&client, url, "", "/healthz", reps).await;
    println!("baseline GET /healthz median {base:.2} ms (sequential)");
    let line = |name: &str, ms: f64| {
        println!(
            "{name:<58} median {ms:>8.2} ms  ratio to /healthz {:>7.1}",
            ms / base
        );
    };
    for (name, path) in [
        (
            "users page, first page (20 rows, exact count)",
            "/test/users",
        ),
        ("users page, 200 rows", "/test/users?limit=200"),
        (
            "users page, sorted by distinct_id",
            "/test/users?sort=distinct_id",
        ),
        ("users page, status=disabled", "/test/users?status=disabled"),
        (
            "users page, plan = pro (filter form)",
            "/test/users?fk=plan&fo=eq&fv=pro",
        ),
        ("users page, search 'grace'", "/test/users?q=grace"),
        (
            "users page, age >= 70 (filter form)",
            "/test/users?fk=age&fo=gte&fv=70",
        ),
        (
            "count of status=disabled (fetched after the page)",
            "/test/users/count?status=disabled",
        ),
        (
            "count of plan = pro (fetched after the page)",
            "/test/users/count?prop.plan=eq%3Apro",
        ),
        ("user page (user-0001234)", "/test/users/user-0001234"),
        ("properties page", "/test/properties"),
    ] {
        let (ms, _) = page_median(&client, url, &cookie, path, reps).await;
        line(name, ms);
    }
    // Deep paging through the Next links: page 200 must cost what page 1 does.
    let mut path = "/test/users?limit=50".to_owned();
    let mut first = 0.0;
    let mut last = 0.0;
    for page in 1..=200 {
        let (ms, body) = page_median(&client, url, &cookie, &path, 3).await;
        if page == 1 {
            first = ms;
        }
        last = ms;
        let Some(at) = body.find("id=\"next\"") else {
            break;
        };
        let before = &body[..at];
        let href = before
            .rfind("href=\"")
            .map(|i| &before[i + 6..])
            .unwrap_or("");
        path = href[..href.find('"').unwrap_or(0)].replace("&amp;", "&");
    }
    line("users page, page 1 of 50", first);
    line("users page, page 200 of 50 (10,000 deep, Next links)", last);
}
