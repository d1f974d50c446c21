//! A small Prometheus registry: request counts and latency histograms per route. Enough for
//! dashboards and alerts without pulling in a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The method as a metrics label: the standard methods by name, anything else `other`, so made-up
/// methods cannot grow the registry (labels are kept for the life of the process).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, name)| name)
}

/// Series by route, then by method and status. A request looks its series up by the borrowed
/// route: nothing is allocated once the route has been seen.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<Routes>,
}

impl Metrics {
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let by_route = match map.get_mut(route) {
            Some(series) => series,
            None => map.entry(route.to_owned()).or_default(),
        };
        let s = by_route.entry((method, status)).or_default();
        s.count += 1;
        s.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP herald_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE herald_http_requests_total counter\n");
        for (r, ((m, st), s)) in series(&map) {
            let _ = writeln!(
                out,
                "herald_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP herald_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE herald_http_request_duration_seconds histogram\n");
        for (r, ((m, st), s)) in series(&map) {
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{st}\"");
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "herald_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "herald_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "herald_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "herald_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

type Routes = BTreeMap<String, BTreeMap<(&'static str, u16), Series>>;

/// Every series with its route, method and status.
fn series(map: &Routes) -> impl Iterator<Item = (&String, (&(&'static str, u16), &Series))> {
    map.iter()
        .flat_map(|(route, by)| by.iter().map(move |entry| (route, entry)))
}
