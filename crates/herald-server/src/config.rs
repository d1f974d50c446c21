//! Configuration: built-in defaults, then an optional TOML file, then `HERALD_*` environment
//! variables, then command-line flags. Read once at start and handed down as typed structs.

use serde::Deserialize;
use std::path::{Path, PathBuf};

const DEFAULTS: &str = include_str!("defaults.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub public_url: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub server: ServerConfig,
    pub tasks: TasksConfig,
    /// Every provider call: the address guard for user-supplied URLs, timeout, answer size.
    pub outbound: herald_channels::OutboundConfig,
    pub dispatch: DispatchConfig,
    /// The workspace's quiet hours and default time zone (see [`herald_core::quiet`]).
    pub quiet_hours: QuietHoursConfig,
    /// The live inbox streams of this node.
    pub inbox: InboxConfig,
    pub dashboard: DashboardConfig,
    /// Notification categories declared in the file (`[[categories]]`), created or overwritten at
    /// start in the environments each names (`env = "test"` or `"live"`; both when absent).
    #[serde(default)]
    pub categories: Vec<serde_json::Value>,
    /// Workflows declared in the file (`[[workflows]]`, the body of `PUT /v1/workflow/{slug}/`),
    /// created or replaced at start after the categories, in the environments each names as
    /// categories do.
    #[serde(default)]
    pub workflows: Vec<serde_json::Value>,
    /// Provider configurations declared in the file (`[[providers]]`: `channel`, optional `env`,
    /// and the body of `PUT /v1/provider/{channel}/`), put at start in the environments each names.
    #[serde(default)]
    pub providers: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub max_clock_skew_secs: u64,
    /// How long a node trusts credentials it read, in milliseconds: the bound within which a key
    /// revoked elsewhere is refused on this node (see [`crate::credential_cache`]). 0: no cache.
    pub credential_cache_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub pool_size: usize,
    pub migrate_on_start: bool,
    pub sqlite_synchronous: herald_store::SqliteSynchronous,
    /// Longest a listing or count query may run, in milliseconds.
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    /// Largest body of `POST /v1/bulk/user/import/` (read as a stream, applied in chunks).
    pub bulk_import_max_bytes: u64,
}

/// How long a connection may take over each part of its work, so slow or idle clients cannot
/// hold connections (and their memory) open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// To send a request head (line and headers); also how long a kept-alive connection may wait
    /// idle for its next request.
    pub header_read_timeout_secs: u64,
    /// From the head's arrival to the response, body read included: past it a 503.
    pub request_timeout_secs: u64,
}

/// Which background tasks a server node runs (see [`crate::tasks`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksConfig {
    /// Forget idempotency keys older than [`crate::IDEMPOTENCY_WINDOW`], every ten minutes.
    pub purge_idempotency_keys: bool,
    /// Run the dispatch worker (see [`crate::worker`]) on this node.
    pub dispatch: bool,
}

/// How the dispatch worker claims, sends and retries (see [`crate::worker`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    /// How long a claim is this worker's; past it another worker may send the message again.
    pub lease_secs: u64,
    /// Longest one provider call may take; past it the attempt is retried.
    pub send_timeout_secs: u64,
    /// Seconds before each retry, in order; as many retries as entries.
    pub retry_backoff_secs: Vec<u64>,
    /// Outbox entries claimed (and sent concurrently) per step.
    pub batch_size: usize,
    /// How long an idle worker waits before looking for due entries again.
    pub poll_interval_ms: u64,
}

/// `[quiet_hours]`: the window (`start`, `end` as `HH:MM`; both empty: none) held for users
/// who set no `$quiet_hours` of their own, and the time zone of users without a `$timezone`.
/// Checked when the configuration is read: a bad value names its option.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "QuietHoursRaw")]
pub struct QuietHoursConfig {
    pub workspace: herald_core::quiet::Workspace,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietHoursRaw {
    start: String,
    end: String,
    timezone: String,
}

impl TryFrom<QuietHoursRaw> for QuietHoursConfig {
    type Error = String;

    fn try_from(raw: QuietHoursRaw) -> Result<Self, String> {
        use herald_core::quiet::QuietHours;
        let window = match (raw.start.trim(), raw.end.trim()) {
            ("", "") => None,
            (start, end) => Some(
                QuietHours::parse(start, end)
                    .map_err(|e| format!("quiet_hours.{}: {}", e.field, e.rule))?,
            ),
        };
        let timezone = herald_core::validate::timezone(&raw.timezone)
            .and_then(|name| name.parse().map_err(|_| name))
            .map_err(|e| format!("quiet_hours.timezone: {e}"))?;
        Ok(QuietHoursConfig {
            workspace: herald_core::quiet::Workspace { window, timezone },
        })
    }
}

/// Live inbox streams (Server-Sent Events) on this node (see [`crate::inbox`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// Seconds between keep-alive comments on an idle stream.
    pub keep_alive_secs: u64,
    /// Longest one stream stays open; the browser's EventSource then reconnects.
    pub stream_max_secs: u64,
    /// Streams one user may hold open on this node at once.
    pub max_streams_per_user: usize,
    /// Streams this node holds open at once.
    pub max_streams: usize,
}

/// The dashboard (see [`crate::dashboard`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Believe `X-Forwarded-Proto` and `X-Forwarded-For` (set them only behind a proxy that
    /// overwrites both): session cookies are `Secure` when the proxy saw HTTPS, and logins are
    /// throttled per client address rather than per proxy.
    pub trust_forwarded_headers: bool,
}

/// Environment variables and the option each sets (`section.key`).
pub const ENV_VARS: &[(&str, &str)] = &[
    ("HERALD_LISTEN", "listen"),
    ("HERALD_PUBLIC_URL", "public_url"),
    ("HERALD_DATABASE_URL", "database_url"),
    ("HERALD_DATA_DIR", "data_dir"),
    ("HERALD_LOG_FORMAT", "log.format"),
    ("HERALD_LOG_LEVEL", "log.level"),
    (
        "HERALD_AUTH_MAX_CLOCK_SKEW_SECS",
        "auth.max_clock_skew_secs",
    ),
    (
        "HERALD_AUTH_CREDENTIAL_CACHE_MS",
        "auth.credential_cache_ms",
    ),
    ("HERALD_STORE_POOL_SIZE", "store.pool_size"),
    ("HERALD_STORE_MIGRATE_ON_START", "store.migrate_on_start"),
    (
        "HERALD_STORE_SQLITE_SYNCHRONOUS",
        "store.sqlite_synchronous",
    ),
    ("HERALD_LIMITS_MAX_BODY_BYTES", "limits.max_body_bytes"),
    (
        "HERALD_LIMITS_BULK_IMPORT_MAX_BYTES",
        "limits.bulk_import_max_bytes",
    ),
    (
        "HERALD_SERVER_HEADER_READ_TIMEOUT_SECS",
        "server.header_read_timeout_secs",
    ),
    (
        "HERALD_SERVER_REQUEST_TIMEOUT_SECS",
        "server.request_timeout_secs",
    ),
    (
        "HERALD_STORE_STATEMENT_TIMEOUT_MS",
        "store.statement_timeout_ms",
    ),
    (
        "HERALD_TASKS_PURGE_IDEMPOTENCY_KEYS",
        "tasks.purge_idempotency_keys",
    ),
    ("HERALD_OUTBOUND_ALLOW_PRIVATE", "outbound.allow_private"),
    ("HERALD_OUTBOUND_TIMEOUT_MS", "outbound.timeout_ms"),
    (
        "HERALD_OUTBOUND_MAX_RESPONSE_KIB",
        "outbound.max_response_kib",
    ),
    ("HERALD_TASKS_DISPATCH", "tasks.dispatch"),
    ("HERALD_DISPATCH_LEASE_SECS", "dispatch.lease_secs"),
    (
        "HERALD_DISPATCH_SEND_TIMEOUT_SECS",
        "dispatch.send_timeout_secs",
    ),
    (
        "HERALD_DISPATCH_RETRY_BACKOFF_SECS",
        "dispatch.retry_backoff_secs",
    ),
    ("HERALD_DISPATCH_BATCH_SIZE", "dispatch.batch_size"),
    (
        "HERALD_DISPATCH_POLL_INTERVAL_MS",
        "dispatch.poll_interval_ms",
    ),
    ("HERALD_QUIET_HOURS_START", "quiet_hours.start"),
    ("HERALD_QUIET_HOURS_END", "quiet_hours.end"),
    ("HERALD_QUIET_HOURS_TIMEZONE", "quiet_hours.timezone"),
    ("HERALD_INBOX_KEEP_ALIVE_SECS", "inbox.keep_alive_secs"),
    ("HERALD_INBOX_STREAM_MAX_SECS", "inbox.stream_max_secs"),
    (
        "HERALD_INBOX_MAX_STREAMS_PER_USER",
        "inbox.max_streams_per_user",
    ),
    ("HERALD_INBOX_MAX_STREAMS", "inbox.max_streams"),
    (
        "HERALD_DASHBOARD_TRUST_FORWARDED_HEADERS",
        "dashboard.trust_forwarded_headers",
    ),
];

impl Config {
    /// Where users reach this Herald: `public_url`, or `http://<listen>`, without a trailing `/`.
    pub fn public_base(&self) -> String {
        let base = if self.public_url.trim().is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim().to_owned()
        };
        base.trim_end_matches('/').to_owned()
    }

    /// Loads the layers. `env` is passed in so tests need not touch the process environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let mut table: toml::Table = DEFAULTS
            .parse()
            .map_err(|e| format!("built-in defaults: {e}"))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            let layer: toml::Table = text
                .parse()
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
            merge(&mut table, layer);
        }
        for (var, key) in ENV_VARS {
            if let Some(raw) = env(var) {
                set(&mut table, key, &raw).map_err(|e| format!("{var}: {e}"))?;
            }
        }
        Config::deserialize(toml::Value::Table(table)).map_err(|e| format!("configuration: {e}"))
    }
}

fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (k, v) in layer {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets one option by its dotted name, with the type the defaults give it.
fn set(table: &mut toml::Table, key: &str, raw: &str) -> Result<(), String> {
    let (section, name) = match key.split_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, key),
    };
    let target = match section {
        Some(s) => table
            .get_mut(s)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| format!("no section [{s}]"))?,
        None => table,
    };
    let value = match target.get(name) {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("'{raw}' is not an integer"))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            raw.trim()
                .parse()
                .map_err(|_| format!("'{raw}' is not true or false"))?,
        ),
        // A list of integers, comma-separated: `10,60,300`.
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map(toml::Value::Integer))
                .collect::<Result<_, _>>()
                .map_err(|_| format!("'{raw}' is not a comma-separated list of integers"))?,
        ),
        _ => toml::Value::String(raw.to_owned()),
    };
    target.insert(name.to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_come_from_the_file() {
        let dir = std::env::temp_dir().join(format!("herald-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("herald.toml");
        std::fs::write(
            &file,
            "[[categories]]\ncategory = \"security\"\nname = \"Security\"\ndefault_preference = \"mandatory\"\nenv = \"live\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&file), |_| None).unwrap();
        assert_eq!(config.categories.len(), 1);
        assert_eq!(config.categories[0]["category"], "security");
        assert_eq!(config.categories[0]["env"], "live");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_documented_workflows_load_and_parse() {
        let docs = include_str!("../../../docs/configuration.md");
        let section = docs
            .split("## Workflows")
            .nth(1)
            .expect("a Workflows section");
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a TOML example");
        let dir = std::env::temp_dir().join(format!("herald-config-wf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("herald.toml");
        std::fs::write(&file, toml).unwrap();
        let config = Config::load(Some(&file), |_| None).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(config.workflows.len(), 3);
        assert_eq!(config.workflows[2]["env"], "live");
        for raw in &config.workflows {
            let mut body = raw.clone();
            body.as_object_mut().unwrap().remove("env");
            let input = crate::api::workflows::parse_input(&body).unwrap();
            let w = herald_core::workflow::Workflow::parse(input).unwrap();
            if w.slug == "report-ready" {
                assert!(w.gate().is_some() && w.tracking.opens && w.tracking.clicks);
            }
        }
    }

    #[test]
    fn every_option_is_documented() {
        let docs = include_str!("../../../docs/configuration.md");
        for (var, key) in ENV_VARS {
            let row = docs
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` | `{var}` |")));
            assert!(
                row.is_some(),
                "docs/configuration.md has no row for {key} / {var}"
            );
        }
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\n[auth]\nmax_clock_skew_secs = 60\n",
        )
        .unwrap();
        let env = |k: &str| (k == "HERALD_AUTH_MAX_CLOCK_SKEW_SECS").then(|| "30".to_owned());
        let c = Config::load(Some(&file), env).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.auth.max_clock_skew_secs, 30);
        assert_eq!(c.store.pool_size, 8);
        let backoff = Config::load(None, |k| {
            (k == "HERALD_DISPATCH_RETRY_BACKOFF_SECS").then(|| "5, 50".to_owned())
        })
        .unwrap();
        assert_eq!(backoff.dispatch.retry_backoff_secs, [5, 50]);
    }

    #[test]
    fn quiet_hours_are_off_by_default_and_checked_when_read() {
        use herald_core::quiet::QuietHours;
        let off = Config::load(None, |_| None).unwrap();
        assert_eq!(off.quiet_hours.workspace, Default::default());
        let vars = |k: &str| match k {
            "HERALD_QUIET_HOURS_START" => Some("22:00".to_owned()),
            "HERALD_QUIET_HOURS_END" => Some("08:00".to_owned()),
            "HERALD_QUIET_HOURS_TIMEZONE" => Some("europe/paris".to_owned()),
            _ => None,
        };
        let on = Config::load(None, vars).unwrap().quiet_hours.workspace;
        assert_eq!(
            on.window,
            Some(QuietHours::parse("22:00", "08:00").unwrap())
        );
        assert_eq!(on.timezone.name(), "Europe/Paris");
        for (var, value, named) in [
            ("HERALD_QUIET_HOURS_START", "10pm", "quiet_hours.start"),
            ("HERALD_QUIET_HOURS_END", "08:00", "quiet_hours.start"),
            (
                "HERALD_QUIET_HOURS_TIMEZONE",
                "Mars/Olympus",
                "quiet_hours.timezone",
            ),
        ] {
            let err = Config::load(None, |k| (k == var).then(|| value.to_owned())).unwrap_err();
            assert!(err.contains(named), "{var}={value}: {err}");
        }
    }

    #[test]
    fn bad_values_and_unknown_keys_are_errors() {
        let bad_int = Config::load(None, |k| {
            (k == "HERALD_STORE_POOL_SIZE").then(|| "many".to_owned())
        });
        assert!(bad_int.unwrap_err().contains("HERALD_STORE_POOL_SIZE"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(Config::load(Some(&file), |_| None)
            .unwrap_err()
            .contains("lisen"));
        let fmt = Config::load(None, |k| {
            (k == "HERALD_LOG_FORMAT").then(|| "xml".to_owned())
        });
        assert!(fmt.is_err());
    }
}
