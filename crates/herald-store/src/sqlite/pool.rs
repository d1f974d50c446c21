//! SQLite connections: one writer thread that commits jobs in batches, and a few readers used
//! from blocking tasks. The async runtime never waits on SQLite directly.

use crate::SqliteSynchronous;
use herald_core::store::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::{oneshot, Semaphore};

/// Jobs taken in one transaction at most. A burst of writes shares one commit.
const MAX_BATCH: usize = 256;

const NOT_RUN: &str = "the SQLite writer could not run this write (see the server log)";

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

pub fn open_connection(
    path: &Path,
    read_only: bool,
    synchronous: SqliteSynchronous,
) -> Result<Connection, StoreError> {
    let synchronous = synchronous.pragma();
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA busy_timeout = 5000;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -16000;"
    ))
    .map_err(internal)?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;")
            .map_err(internal)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// The single writer. Jobs queue on a channel; the thread drains what is waiting, runs each job in
/// its own savepoint (a failed job rolls back alone), commits once, then answers every caller.
/// A caller hears "done" only after its data is committed.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || run_writer(conn, rx))
            .expect("spawn the SQLite writer thread");
        Writer { jobs }
    }

    /// Runs `f` inside the write transaction. An `Err` rolls back what `f` wrote.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, reply)
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable(NOT_RUN.into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable(NOT_RUN.into()))?
    }
}

fn run_writer(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs answers their callers with `NOT_RUN`; nothing was written.
            tracing::error!(error = %e, jobs = batch.len(), "cannot begin a SQLite write transaction");
            continue;
        }
        for job in batch {
            if let Err(e) = conn.execute_batch("SAVEPOINT job") {
                tracing::error!(error = %e, "cannot open a savepoint; the write is not run");
                continue;
            }
            let (ok, reply) = job(&conn);
            if !ok {
                let _ = conn.execute_batch("ROLLBACK TO job");
            }
            let _ = conn.execute_batch("RELEASE job");
            replies.push(reply);
        }
        let committed = conn.execute_batch("COMMIT").map_err(internal);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(committed.clone());
        }
    }
}

/// Read-only connections handed out to blocking tasks, at most one task per connection.
pub struct Readers {
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub fn new(conns: Vec<Connection>) -> Readers {
        let n = conns.len();
        Readers {
            conns: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(n)),
        }
    }

    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("store closed".into()))?;
        let conns = self.conns.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .expect("a permit guarantees a free connection");
            let result = f(&conn);
            conns.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}
