//! The embedded SQLite backend (the default): WAL, one batching writer, a few readers. Each
//! aggregate has its module; the statements shared with PostgreSQL are in [`crate::sql`], the
//! row mapping in [`crate::rows`].

mod categories;
mod credentials;
mod history;
mod inbox;
mod index;
pub(crate) mod listing;
mod messages;
mod migrate;
mod operators;
mod pool;
mod profiles;
mod properties;
mod providers;
mod workflows;

use crate::rows::Columns;
use crate::StoreOptions;
use herald_core::store::StoreError;
use pool::{internal, open_connection, Readers, Writer};
use rusqlite::{Connection, OptionalExtension, Params, Row};
use std::path::Path;

pub use migrate::migrate;
#[cfg(feature = "testing")]
pub(crate) use migrate::migrate_to;
#[cfg(test)]
pub(crate) use migrate::MIGRATIONS;

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    /// Inbox signals of this store's committed writes (see [`inbox`]).
    inbox: tokio::sync::broadcast::Sender<herald_core::inbox::InboxSignal>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and, unless told not to, applies pending migrations.
    pub async fn open(path: &Path, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        let path = path.to_owned();
        let readers = options.pool_size.max(1);
        let migrate_now = options.migrate;
        let synchronous = options.sqlite_synchronous;
        let statement_timeout = options.statement_timeout;
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::unavailable_from(dir.display().to_string(), e))?;
            }
            let mut conn = open_connection(&path, false, synchronous)?;
            if migrate_now {
                migrate(&mut conn)?;
            } else {
                migrate::check_current(&conn)?;
            }
            let readers = (0..readers)
                .map(|_| open_connection(&path, true, synchronous))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SqliteStore {
                writer: Writer::start(conn),
                readers: Readers::new(readers, statement_timeout),
                inbox: tokio::sync::broadcast::channel(inbox::SIGNALS_BUFFERED).0,
            })
        })
        .await
        .map_err(|e| StoreError::internal_from("opening SQLite", e))?
    }
}

impl Columns for Row<'_> {
    fn text(&self, i: usize) -> Result<String, String> {
        self.get(i).map_err(|e| e.to_string())
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
        self.get(i).map_err(|e| e.to_string())
    }

    fn int(&self, i: usize) -> Result<i64, String> {
        self.get(i).map_err(|e| e.to_string())
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        self.get(i).map_err(|e| e.to_string())
    }

    fn flag(&self, i: usize) -> Result<bool, String> {
        self.get(i).map_err(|e| e.to_string())
    }

    fn json<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, String> {
        let text: String = self.get(i).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }
}

/// A JSON document as SQLite stores it.
fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("profile parts serialise to JSON")
}

/// Runs a (cached) statement; the number of rows it changed.
fn execute(conn: &Connection, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(internal)
}

/// The rows of a (cached) query, each read by `map`.
fn query<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut s = conn.prepare_cached(sql).map_err(internal)?;
    let mut rows = s.query(params).map_err(internal)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(internal)? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// The first row of a (cached) query, read by `map`; `None` when there is none.
fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut s = conn.prepare_cached(sql).map_err(internal)?;
    let mut rows = s.query(params).map_err(internal)?;
    rows.next().map_err(internal)?.map(map).transpose()
}

/// A single value of a (cached) query that returns one row.
fn value<T: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Option<T>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get(0)).optional())
        .map_err(internal)
}
