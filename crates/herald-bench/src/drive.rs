//! The load driver every HTTP figure goes through, Herald's and the in-process baselines' alike:
//! `concurrency` workers over one keep-alive client, each sending its next request as soon as the
//! previous one's body has arrived, for a number of requests or for a duration.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much load to apply.
#[derive(Clone)]
pub struct Load {
    /// Base URLs; request i goes to `urls[i % len]`.
    pub urls: Vec<String>,
    pub concurrency: usize,
    /// Requests in all (ignored when `duration` is set).
    pub requests: usize,
    /// Send for this long instead of a number of requests.
    pub duration: Option<Duration>,
}

/// What a run measured.
pub struct Run {
    pub secs: f64,
    /// One per successful request.
    pub latencies: Vec<Duration>,
    /// Units of work acknowledged (rows, profiles: what `check` counted).
    pub units: u64,
    pub errors: usize,
    /// The first failure, for the message.
    pub first_error: Option<String>,
}

impl Run {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.secs
    }

    /// Acknowledged units per second.
    pub fn unit_rate(&self) -> f64 {
        self.units as f64 / self.secs
    }

    /// Latency percentile in milliseconds.
    pub fn pct(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// A keep-alive client with room for `concurrency` idle connections.
pub fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()
        .expect("client")
}

/// Counts a 2xx as one unit.
pub fn ok(status: reqwest::StatusCode, _body: &[u8]) -> Result<u64, String> {
    if status.is_success() {
        Ok(1)
    } else {
        Err(status.to_string())
    }
}

/// Sends requests built by `make(client, url, i)`; each response's body is read whole and judged
/// by `check`, which says how many units it acknowledged or why it failed.
pub async fn drive<F, C>(load: &Load, make: F, check: C) -> Run
where
    F: Fn(&reqwest::Client, &str, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
    C: Fn(reqwest::StatusCode, &[u8]) -> Result<u64, String> + Send + Sync + 'static,
{
    let client = client(load.concurrency);
    let next = Arc::new(AtomicUsize::new(0));
    let (make, check) = (Arc::new(make), Arc::new(check));
    let urls = Arc::new(load.urls.clone());
    let first_error = Arc::new(Mutex::new(None));
    let total = if load.duration.is_some() {
        usize::MAX
    } else {
        load.requests
    };
    let started = Instant::now();
    let deadline = load.duration.map(|d| started + d);
    let mut workers = Vec::new();
    for _ in 0..load.concurrency.max(1) {
        let (client, next, make, check, urls, first_error) = (
            client.clone(),
            next.clone(),
            make.clone(),
            check.clone(),
            urls.clone(),
            first_error.clone(),
        );
        workers.push(tokio::spawn(async move {
            let (mut lat, mut units, mut errors) = (Vec::new(), 0, 0);
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                let outcome = match make(&client, &urls[i % urls.len()], i).send().await {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(body) => check(status, &body).map_err(|e| {
                                format!(
                                    "{e}: {}",
                                    String::from_utf8_lossy(&body[..body.len().min(300)])
                                )
                            }),
                            Err(e) => Err(format!("reading the body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{e}")),
                };
                match outcome {
                    Ok(n) => {
                        lat.push(t.elapsed());
                        units += n;
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.lock().expect("first error").get_or_insert(e);
                    }
                }
            }
            (lat, units, errors)
        }));
    }
    let mut run = Run {
        secs: 0.0,
        latencies: Vec::new(),
        units: 0,
        errors: 0,
        first_error: None,
    };
    for w in workers {
        let (lat, units, errors) = w.await.expect("worker");
        run.latencies.extend(lat);
        run.units += units;
        run.errors += errors;
    }
    run.secs = started.elapsed().as_secs_f64();
    run.first_error = first_error.lock().expect("first error").take();
    if let Some(e) = &run.first_error {
        eprintln!("{} failed requests; the first: {e}", run.errors);
    }
    run
}
