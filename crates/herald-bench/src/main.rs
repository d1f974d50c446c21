//! `herald-bench`: drives a running Herald (one or more nodes) and prints throughput and latency,
//! each next to a baseline measured in the same run (`GET /healthz`, which touches no database), so
//! figures from noisy machines compare as ratios.

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "herald-bench", about = "Load generator for Herald")]
struct Cli {
    /// Base URL of a Herald node; repeat for several nodes (requests alternate between them).
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Bearer API key of the environment to use.
    #[arg(long, env = "HERALD_API_KEY")]
    api_key: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Requests per measurement.
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Parallel `$add` edits of ONE profile (the hardest case: every edit contends for one row),
    /// then checks that none was lost.
    Contended,
    /// Parallel upserts of distinct new profiles.
    Upserts,
}

struct Run {
    secs: f64,
    latencies: Vec<Duration>,
    errors: usize,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.secs
    }

    fn pct(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Sends `total` requests, `concurrency` at a time; `make(i)` builds request i.
async fn drive<F>(cli: &Cli, make: F) -> Run
where
    F: Fn(&reqwest::Client, &str, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.concurrency)
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let urls = Arc::new(cli.urls.clone());
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..cli.concurrency {
        let (client, next, make, urls, total) = (
            client.clone(),
            next.clone(),
            make.clone(),
            urls.clone(),
            cli.requests,
        );
        workers.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                match make(&client, &urls[i % urls.len()], i).send().await {
                    Ok(r) if r.status().is_success() => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut run = Run {
        secs: 0.0,
        latencies: Vec::new(),
        errors: 0,
    };
    for w in workers {
        let (lat, errors) = w.await.expect("worker");
        run.latencies.extend(lat);
        run.errors += errors;
    }
    run.secs = started.elapsed().as_secs_f64();
    run
}

fn report(name: &str, run: &Run, baseline: &Run) {
    println!(
        "{name:<28} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {:>4}  ratio to baseline {:.3}",
        run.rate(),
        run.pct(0.5),
        run.pct(0.99),
        run.errors,
        run.rate() / baseline.rate()
    );
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let auth = format!("Bearer {}", cli.api_key);
    let baseline = drive(&cli, |c, url, _| c.get(format!("{url}/healthz"))).await;
    println!(
        "nodes: {}  concurrency: {}  requests: {}",
        cli.urls.len(),
        cli.concurrency,
        cli.requests
    );
    report("baseline GET /healthz", &baseline, &baseline);
    match cli.scenario {
        Scenario::Contended => {
            let user = format!("bench-counter-{}", std::process::id());
            let a = auth.clone();
            let u = user.clone();
            let run = drive(&cli, move |c, url, _| {
                c.patch(format!("{url}/v1/user/{u}/"))
                    .header("Authorization", &a)
                    .json(&json!({"operations": [{"$add": {"n": 1}}]}))
            })
            .await;
            report("PATCH $add, one profile", &run, &baseline);
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
                eprintln!("LOST UPDATES: {} acknowledged, n = {n}", acknowledged);
                std::process::exit(1);
            }
        }
        Scenario::Upserts => {
            let a = auth.clone();
            let tag = std::process::id();
            let run = drive(&cli, move |c, url, i| {
                c.post(format!("{url}/v1/user/bench-{tag}-{i}/"))
                    .header("Authorization", &a)
                    .json(&json!({"name": format!("User {i}"), "$email": [format!("u{i}@example.com")], "plan": "pro"}))
            })
            .await;
            report("POST upsert, new profiles", &run, &baseline);
        }
    }
}
