//! Figures of one bench run: each measurement is printed with its ratio to its baselines and
//! appended as a JSON line to the results file (`--results`), so later measurements find their
//! baselines there and `herald-bench report` prints the whole run, beside the figures issue 12
//! started from and its targets.

use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// One figure.
pub struct Record {
    /// Which setup measured it: `local` (in-process baselines), `sqlite`, `pg1`, `pg2`.
    pub setup: String,
    pub name: String,
    pub value: f64,
    /// `req/s`, `rows/s`, `profiles/s`, `MiB`, `ms`…: a rate unless it is a size or a latency.
    pub unit: String,
    /// Latency percentiles in ms, when measured.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Baselines as `setup:name` (or `name` in the same setup).
    pub baselines: Vec<String>,
    pub note: String,
}

impl Record {
    pub fn new(setup: &str, name: &str, value: f64, unit: &str) -> Self {
        Record {
            setup: setup.to_owned(),
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            p50: None,
            p99: None,
            baselines: Vec::new(),
            note: String::new(),
        }
    }

    pub fn latency(mut self, p50: f64, p99: f64) -> Self {
        (self.p50, self.p99) = (Some(p50), Some(p99));
        self
    }

    pub fn baselines<S: AsRef<str>>(mut self, b: impl IntoIterator<Item = S>) -> Self {
        self.baselines
            .extend(b.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    fn to_json(&self) -> Value {
        json!({"setup": self.setup, "name": self.name, "value": self.value, "unit": self.unit,
               "p50": self.p50, "p99": self.p99, "baselines": self.baselines, "note": self.note})
    }

    fn from_json(v: &Value) -> Option<Self> {
        Some(Record {
            setup: v["setup"].as_str()?.to_owned(),
            name: v["name"].as_str()?.to_owned(),
            value: v["value"].as_f64()?,
            unit: v["unit"].as_str()?.to_owned(),
            p50: v["p50"].as_f64(),
            p99: v["p99"].as_f64(),
            baselines: v["baselines"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            note: v["note"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// Prints the figure with its ratios to the baselines already in `results`, then appends it.
    pub fn emit(self, results: Option<&Path>) {
        let known = results.map(load).unwrap_or_default();
        println!("{}", self.line(&known));
        if let Some(path) = results {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            writeln!(f, "{}", self.to_json()).expect("write the results");
        }
    }

    /// The figure, its latencies and its ratio to each baseline found in `known`.
    fn line(&self, known: &[Record]) -> String {
        let mut s = format!(
            "[{:<6}] {:<34} {:>12} {:<10}",
            self.setup,
            self.name,
            thousands(self.value),
            self.unit
        );
        if let (Some(p50), Some(p99)) = (self.p50, self.p99) {
            s += &format!(" p50 {p50:>6.2} ms  p99 {p99:>6.2} ms");
        }
        for b in &self.baselines {
            let (setup, name) = b.split_once(':').unwrap_or((&self.setup, b));
            match known
                .iter()
                .rev()
                .find(|r| r.setup == setup && r.name == name)
            {
                Some(r) if r.value > 0.0 => {
                    s += &format!(
                        "  {:.3}x {setup}:{name} ({} {})",
                        self.value / r.value,
                        thousands(r.value),
                        r.unit
                    )
                }
                _ => s += &format!("  (no {setup}:{name})"),
            }
        }
        if !self.note.is_empty() {
            s += &format!("  [{}]", self.note);
        }
        s
    }
}

fn thousands(v: f64) -> String {
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else {
        format!("{v:.2}")
    }
}

fn load(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Record::from_json(&v))
        .collect()
}

/// Issue 12's figures before this work and its targets, by setup and figure.
fn before_and_target(setup: &str, name: &str) -> (&'static str, &'static str) {
    match (setup, name) {
        ("local", "baseline-fixed") => ("~194,000 req/s", ""),
        ("local", "baseline-upserts") => ("~730,000 rows/s", ""),
        ("sqlite", "seed") => ("~3,300 profiles/s", ""),
        ("sqlite", "get") => (
            "~18,700 req/s, p99 5.3 ms",
            ">= 0.40x baseline-fixed, >= 0.8x baseline-sqlite-get, p99 <= 10 ms at 64 connections",
        ),
        ("sqlite", "events") => (
            "~2,400 profiles/s",
            ">= 100,000 profiles/s, >= 0.15x baseline-upserts",
        ),
        ("sqlite", "import-http") => ("", ">= 200,000 rows/s"),
        ("sqlite", "import-cli") => ("~10,500 lines/s", ">= 200,000 rows/s"),
        ("sqlite", "db-size") => ("3.3 GB at 1M profiles", "<= 1 GB for 1M profiles"),
        (_, "server-peak-rss") => ("", "<= 200 MiB"),
        ("pg1", "baseline-pg-get") => ("~66,900 tps (pgbench)", ""),
        ("pg1", "get") => ("~15,200 req/s (200k)", ">= 0.5x baseline-pg-get"),
        ("pg1", "events") => (
            "~1,600 profiles/s (one upsert statement ~157,000 rows/s)",
            ">= 30,000 profiles/s",
        ),
        ("pg2", "upserts") => ("~980 req/s", ""),
        _ => ("", ""),
    }
}

/// `herald-bench report`: every figure of the run (the last of each name per setup), with its
/// ratios, the figure before and the target.
pub fn report(path: &Path) {
    let all = load(path);
    let mut seen = Vec::new();
    // /healthz is measured before each scenario: it shows in their ratios, not on its own.
    for r in all.iter().filter(|r| r.name != "healthz") {
        let key = (r.setup.clone(), r.name.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let at = all
            .iter()
            .rposition(|x| x.setup == r.setup && x.name == r.name)
            .expect("itself");
        let last = &all[at];
        // Its ratios as they were printed: to the baselines measured before it.
        println!("{}", last.line(&all[..at]));
        let (before, target) = before_and_target(&last.setup, &last.name);
        if !before.is_empty() || !target.is_empty() {
            println!(
                "{:>10}before: {}{}",
                "",
                if before.is_empty() { "-" } else { before },
                if target.is_empty() {
                    String::new()
                } else {
                    format!("   target: {target}")
                }
            );
        }
    }
}
