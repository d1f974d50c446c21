//! Storage adapters for Herald. Each backend implements `herald_core::store::Store`; [`connect`]
//! picks one from the database URL.

mod batch;
mod limits;
pub use limits::DEFAULT_STATEMENT_TIMEOUT;
mod migrate;
pub mod postgres;
mod query;
pub use query::NARROW_SEARCH;
mod rows;
mod sql;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use herald_core::profile::Profile;
use herald_core::store::{EditOutcome, Refusal, Store};
use std::path::PathBuf;
use std::sync::Arc;

/// Which backend a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("database URL '{0}' has an unknown scheme: use sqlite://PATH (or a plain file path) or postgres://USER@HOST/DB")]
    UnknownScheme(String),
    #[error("database URL must not be empty")]
    Empty,
    #[error("cannot open the database: {0}")]
    Open(String),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<DatabaseUrl, ConnectError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ConnectError::Empty);
        }
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ConnectError::Empty);
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_owned()));
        }
        // Anything else with a scheme is a mistake, never a file name.
        if let Some((scheme, _)) = raw.split_once("://") {
            if !scheme.is_empty() {
                return Err(ConnectError::UnknownScheme(redact_url(raw)));
            }
        }
        if raw.split_once(':').is_some_and(|(s, _)| {
            s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '+')
        }) {
            return Err(ConnectError::UnknownScheme(redact_url(raw)));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(raw)))
    }
}

/// The URL as it may be shown: the password after `user:` in the authority and any `password=`
/// parameter become `***`. Every message that names a database URL shows it through this.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(s) = out.find("://") {
        let rest_start = s + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    let mut from = 0;
    while let Some(i) = out[from..].to_ascii_lowercase().find("password=") {
        let start = from + i + "password=".len();
        let end = out[start..]
            .find(['&', ' ', '#'])
            .map_or(out.len(), |j| start + j);
        out.replace_range(start..end, "***");
        from = start + 3;
    }
    out
}

/// `message` with the URL's password (if it has one) masked, for errors that may quote it.
fn scrub(message: String, url: &str) -> String {
    let redacted = redact_url(url);
    let mut message = message.replace(url, &redacted);
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| p.len() >= 3);
    if let Some(p) = password {
        message = message.replace(p, "***");
    }
    message
}

/// Settings for opening a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections that serve reads concurrently (SQLite readers; the PostgreSQL pool size).
    pub pool_size: usize,
    /// Apply pending migrations on open; when off, opening fails unless the schema is current.
    pub migrate: bool,
    /// How SQLite waits for the disk at each commit (PostgreSQL has its own settings).
    pub sqlite_synchronous: SqliteSynchronous,
    /// How long one listing or count query may run (SQLite interrupt, PostgreSQL
    /// `statement_timeout`); past it the query stops with [`StoreError::Busy`](herald_core::store::StoreError::Busy).
    pub statement_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 4,
            migrate: true,
            sqlite_synchronous: SqliteSynchronous::default(),
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

/// SQLite's `synchronous` setting for the writer (WAL mode either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Every commit reaches the disk before it is acknowledged: nothing acknowledged is lost,
    /// even to a power cut.
    #[default]
    Full,
    /// Commits reach the OS before they are acknowledged and the disk at checkpoints: a process
    /// crash loses nothing, a power cut may lose the last commits.
    Normal,
}

impl SqliteSynchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

/// With migrations off at start, a schema behind this build is an error that says what to run.
fn check_schema_version(current: i64, latest: i64) -> Result<(), herald_core::store::StoreError> {
    if current == latest {
        Ok(())
    } else {
        Err(herald_core::store::StoreError::unavailable(format!(
            "the database schema is at version {current}, this Herald needs {latest}: run `herald migrate`"
        )))
    }
}

/// The outcome of an edit that ran: the profile as stored after it, or, when there was none and
/// the edit created none, the refusal a missing profile gets.
fn applied(stored: Option<Profile>) -> EditOutcome {
    match stored {
        Some(p) => EditOutcome::Applied(Box::new(p)),
        None => EditOutcome::Refused(Refusal::Missing),
    }
}

/// Opens the store a URL names (and brings its schema up to date when `options.migrate`).
pub async fn connect(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, ConnectError> {
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Sqlite(path) => {
            let store = sqlite::SqliteStore::open(&path, options)
                .await
                .map_err(|e| ConnectError::Open(e.to_string()))?;
            Ok(Arc::new(store))
        }
        DatabaseUrl::Postgres(url) => {
            let store = postgres::PostgresStore::open(&url, options)
                .await
                .map_err(|e| ConnectError::Open(scrub(e.to_string(), &url)))?;
            Ok(Arc::new(store))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_a_backend_or_fail_clearly() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://./data/h.db").unwrap(),
            DatabaseUrl::Sqlite("./data/h.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:h.db").unwrap(),
            DatabaseUrl::Sqlite("h.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("/var/lib/herald.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/herald.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!(matches!(
            DatabaseUrl::parse("mysql://u@h/db"),
            Err(ConnectError::UnknownScheme(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("redis:foo"),
            Err(ConnectError::UnknownScheme(_))
        ));
        assert!(matches!(DatabaseUrl::parse(" "), Err(ConnectError::Empty)));
    }

    #[test]
    fn a_mistyped_scheme_never_shows_the_password() {
        for url in [
            "postgress://herald:s3cr3t-pw@db.internal:5432/herald",
            "mysql://herald:s3cr3t-pw@db/herald?sslmode=require",
            "postgress://herald@db/herald?password=s3cr3t-pw&sslmode=require",
        ] {
            let e = DatabaseUrl::parse(url).unwrap_err().to_string();
            assert!(!e.contains("s3cr3t-pw"), "{e}");
            assert!(e.contains("***") && e.contains("unknown scheme"), "{e}");
        }
        assert_eq!(
            redact_url("postgres://u:p@ss@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            scrub("no route to u:pw123@h".into(), "postgres://u:pw123@h/db"),
            "no route to u:***@h"
        );
    }
}
