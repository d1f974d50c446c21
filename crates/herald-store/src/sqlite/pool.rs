//! SQLite connections: one writer thread that commits jobs in batches, and a few readers used
//! from blocking tasks. The async runtime never waits on SQLite directly.

use crate::limits::{self, EnvSlots};
use crate::SqliteSynchronous;
use herald_core::env::Env;
use herald_core::store::StoreError;
use rusqlite::{Connection, InterruptHandle};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// Jobs taken in one transaction at most. A burst of writes shares one commit.
const MAX_BATCH: usize = 256;

/// Write jobs that may wait for the writer at most. A full queue answers [`StoreError::Busy`]
/// at once instead of growing memory without bound while the disk lags behind.
pub const WRITER_QUEUE_CAPACITY: usize = 10_000;

const NOT_RUN: &str = "the SQLite writer could not run this write (see the server log)";
const DEAD: &str = "the SQLite writer has stopped (see the server log)";
const BATCH_LOST: &str =
    "SQLite rolled back the write transaction; nothing in this batch was saved (see the server log)";

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// A job as it waits in the queue: `alone` asks for a transaction of its own (see
/// [`Writer::write_alone`]).
struct Queued {
    job: Job,
    alone: bool,
}

pub fn open_connection(
    path: &Path,
    read_only: bool,
    synchronous: SqliteSynchronous,
) -> Result<Connection, StoreError> {
    let synchronous = synchronous.pragma();
    let conn = Connection::open(path)
        .map_err(|e| StoreError::unavailable_from(path.display().to_string(), e))?;
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
    } else {
        // The writer's savepoints (one per job, one per edit of a batch) keep the pages they
        // change in a sub-journal: in memory, not in a temporary file written at every change.
        conn.execute_batch("PRAGMA temp_store = MEMORY;")
            .map_err(internal)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::internal_from("SQLite", e)
}

/// The single writer. Jobs queue on a bounded channel; the thread drains what is waiting, runs
/// each job in its own savepoint (a failed or panicking job rolls back alone), commits once, then
/// answers every caller. A caller hears "done" only after its data is committed. If SQLite rolls
/// the whole transaction back on its own (I/O error, disk full), every job of the batch fails:
/// nothing is half-committed.
pub struct Writer {
    jobs: mpsc::SyncSender<Queued>,
    alive: Arc<AtomicBool>,
}

/// Marks the writer dead when its thread ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        Writer::with_capacity(conn, WRITER_QUEUE_CAPACITY)
    }

    fn with_capacity(conn: Connection, capacity: usize) -> Writer {
        let (jobs, rx) = mpsc::sync_channel::<Queued>(capacity);
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || {
                let _guard = guard;
                run_writer(conn, rx)
            })
            .expect("spawn the SQLite writer thread");
        Writer { jobs, alive }
    }

    /// `Err` once the writer thread is gone: no write can succeed any more.
    pub fn check_alive(&self) -> Result<(), StoreError> {
        if self.alive.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::unavailable(DEAD))
        }
    }

    /// Runs `f` inside the write transaction. An `Err` (or a panic) rolls back what `f` wrote.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(f, false).await
    }

    /// Like [`Writer::write`], but `f` runs in a transaction of its own, without a savepoint
    /// around it: for jobs that write a lot (a batch of edits, an import chunk). Inside a
    /// savepoint, every page the job changes is copied to SQLite's sub-journal, and every
    /// statement that may abort (an insert into a table with a unique index) ends by truncating
    /// that in-memory journal to where the statement began, which walks it from its start: a
    /// batch of 400 new profiles spent a quarter of the writer's time there (perf). Alone, a
    /// statement's savepoint is the outermost one and ends by freeing its own few pages. It
    /// costs the job a commit of its own; an `Err` rolls back the job's transaction.
    pub async fn write_alone<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(f, true).await
    }

    async fn enqueue<T, F>(&self, f: F, alone: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // A panic is this job's failure alone: its savepoint rolls back, the writer goes on.
            let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|panic| {
                let what = panic_message(panic.as_ref());
                tracing::error!(panic = %what, "a SQLite write job panicked; it was rolled back");
                Err(StoreError::internal(format!("a write panicked: {what}")))
            });
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, reply)
        });
        self.check_alive()?;
        self.jobs
            .try_send(Queued { job, alone })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => StoreError::Busy(format!(
                    "the SQLite write queue is full ({WRITER_QUEUE_CAPACITY} writes waiting)"
                )),
                mpsc::TrySendError::Disconnected(_) => StoreError::unavailable(DEAD),
            })?;
        rx.await.map_err(|_| StoreError::unavailable(NOT_RUN))?
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn run_writer(conn: Connection, rx: mpsc::Receiver<Queued>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        // In queue order: the jobs between two that run alone share one transaction.
        let mut batch = Vec::with_capacity(waiting.len());
        for q in waiting {
            if q.alone {
                commit_batch(&conn, std::mem::take(&mut batch));
                run_alone(&conn, q.job);
            } else {
                batch.push(q.job);
            }
        }
        commit_batch(&conn, batch);
    }
}

/// Runs `job` in a transaction of its own, with no savepoint: committed if it succeeds, rolled
/// back if it fails or panics; its caller hears of it after that.
fn run_alone(conn: &Connection, job: Job) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Dropping the job answers its caller with `NOT_RUN`; nothing was written.
        tracing::error!(error = %e, "cannot begin a SQLite write transaction");
        return;
    }
    let ran = catch_unwind(AssertUnwindSafe(|| job(conn)));
    let (ok, reply) = match ran {
        Ok(ran) => ran,
        // Only the job's own reply wrapper can get here; its caller hears `NOT_RUN`.
        Err(_) => (false, Box::new(drop) as Reply),
    };
    let committed = if conn.is_autocommit() {
        // SQLite rolled the transaction back itself (I/O error, disk full).
        if ok {
            Err(StoreError::unavailable(BATCH_LOST))
        } else {
            Ok(())
        }
    } else if ok {
        conn.execute_batch("COMMIT").map_err(internal)
    } else {
        // The job's own `Err` is its answer; what it wrote goes.
        conn.execute_batch("ROLLBACK").map_err(internal)
    };
    if let Err(e) = &committed {
        tracing::error!(error = %e, "a SQLite write failed; nothing of it was saved");
        if !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "cannot roll back the failed SQLite write");
            }
        }
    }
    let _ = catch_unwind(AssertUnwindSafe(|| reply(committed)));
}

/// Runs `batch` in one transaction, each job in its own savepoint, and answers each caller once
/// it is committed (or failed as a whole).
fn commit_batch(conn: &Connection, batch: Vec<Job>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Dropping the jobs answers their callers with `NOT_RUN`; nothing was written.
        tracing::error!(error = %e, jobs = batch.len(), "cannot begin a SQLite write transaction");
        return;
    }
    let (replies, outcome) = run_batch(conn, batch);
    let committed = outcome.and_then(|()| conn.execute_batch("COMMIT").map_err(internal));
    if let Err(e) = &committed {
        tracing::error!(error = %e, jobs = replies.len(), "a SQLite write batch failed; nothing in it was saved");
        if !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "cannot roll back the failed SQLite batch");
            }
        }
    }
    for reply in replies {
        // A reply only sends on a channel; a panic there must not stop the writer either.
        let commit = committed
            .as_ref()
            .map(|_| ())
            .map_err(StoreError::for_each_caller);
        let _ = catch_unwind(AssertUnwindSafe(|| reply(commit)));
    }
}

/// Runs the jobs of one batch, each in its own savepoint, inside the open transaction. `Err`:
/// the transaction can no longer be committed as a whole, so the batch must fail; the jobs not
/// run are dropped, which answers their callers with an error.
fn run_batch(conn: &Connection, batch: Vec<Job>) -> (Vec<Reply>, Result<(), StoreError>) {
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            tracing::error!(error = %e, "cannot open a savepoint; the batch is abandoned");
            return (replies, Err(internal(e)));
        }
        let ok = match catch_unwind(AssertUnwindSafe(|| job(conn))) {
            Ok((ok, reply)) => {
                replies.push(reply);
                ok
            }
            // Only the job's own reply wrapper can get here; its caller hears `NOT_RUN`.
            Err(_) => false,
        };
        // SQLite may have rolled back the whole transaction (I/O error, disk full, ...): what the
        // earlier jobs wrote is gone, and the later savepoints would commit on their own.
        if conn.is_autocommit() {
            return (replies, Err(StoreError::unavailable(BATCH_LOST)));
        }
        let ended = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = ended {
            return (replies, Err(internal(e)));
        }
        if conn.is_autocommit() {
            return (replies, Err(StoreError::unavailable(BATCH_LOST)));
        }
    }
    (replies, Ok(()))
}

/// Read-only connections handed out to blocking tasks, at most one task per connection.
pub struct Readers {
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    /// Listings per environment (see [`EnvSlots`]).
    listing: EnvSlots,
    statement_timeout: Duration,
}

/// Interrupts the query running on a reader unless it has finished: on a timeout, and when the
/// request waiting for it goes away (its future is dropped).
struct Interrupter {
    handle: InterruptHandle,
    /// True while the connection runs this listing; checked under the lock so an interrupt never
    /// reaches the connection's next user.
    running: Arc<Mutex<bool>>,
}

impl Interrupter {
    fn interrupt(&self) {
        if *self.running.lock().unwrap_or_else(|p| p.into_inner()) {
            self.handle.interrupt();
        }
    }
}

impl Drop for Interrupter {
    fn drop(&mut self) {
        self.interrupt();
    }
}

impl Readers {
    pub fn new(conns: Vec<Connection>, statement_timeout: Duration) -> Readers {
        let n = conns.len();
        Readers {
            conns: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(n)),
            listing: EnvSlots::new(n),
            statement_timeout,
        }
    }

    /// A listing or count of `env`: like [`read`](Self::read), but within the environment's
    /// share of the readers, stopped at the statement timeout (a [`StoreError::Busy`]) and when
    /// the caller stops waiting.
    pub async fn read_listing<T, F>(&self, env: Env, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let slot = self.listing.acquire(env).await?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::unavailable("store closed"))?;
        let conn = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .expect("a permit guarantees a free connection");
        let running = Arc::new(Mutex::new(true));
        let interrupter = Interrupter {
            handle: conn.get_interrupt_handle(),
            running: running.clone(),
        };
        let conns = self.conns.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            let result = catch_unwind(AssertUnwindSafe(|| f(&conn))).unwrap_or_else(|panic| {
                Err(StoreError::internal(format!(
                    "a read panicked: {}",
                    panic_message(panic.as_ref())
                )))
            });
            *running.lock().unwrap_or_else(|p| p.into_inner()) = false;
            conns.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            drop((permit, slot));
            result
        });
        let joined = match tokio::time::timeout(self.statement_timeout, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                interrupter.interrupt();
                // An interrupted statement returns at once; its connection goes back to the pool.
                let _ = task.await;
                return Err(limits::timed_out(self.statement_timeout));
            }
        };
        joined.map_err(|e| StoreError::internal(format!("read task failed: {e}")))?
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
            .map_err(|_| StoreError::unavailable("store closed"))?;
        let conns = self.conns.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .expect("a permit guarantees a free connection");
            // A panicking read must still give its connection back, or the pool would shrink
            // under its permits.
            let result = catch_unwind(AssertUnwindSafe(|| f(&conn))).unwrap_or_else(|panic| {
                Err(StoreError::internal(format!(
                    "a read panicked: {}",
                    panic_message(panic.as_ref())
                )))
            });
            conns.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::internal(format!("read task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(capacity: usize) -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn =
            open_connection(&dir.path().join("w.db"), false, SqliteSynchronous::Full).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        (Writer::with_capacity(conn, capacity), dir)
    }

    async fn insert(w: &Writer, v: i64) -> Result<(), StoreError> {
        w.write(move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map(drop)
                .map_err(internal)
        })
        .await
    }

    async fn values(w: &Writer) -> Vec<i64> {
        w.write(|c| {
            let mut s = c.prepare("SELECT v FROM t ORDER BY v").map_err(internal)?;
            let rows = s.query_map([], |r| r.get(0)).map_err(internal)?;
            rows.collect::<Result<Vec<i64>, _>>().map_err(internal)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_writer_lives_on() {
        let (w, _dir) = writer(16);
        let panicked = w
            .write(|c| -> Result<(), StoreError> {
                c.execute("INSERT INTO t (v) VALUES (1)", []).unwrap();
                panic!("boom");
            })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Internal { .. })),
            "{panicked:?}"
        );
        assert!(
            w.check_alive().is_ok(),
            "the writer survives a panicking job"
        );
        insert(&w, 2).await.expect("the next write works");
        assert_eq!(
            values(&w).await,
            vec![2],
            "the panicking job was rolled back"
        );
    }

    /// Blocks the writer thread on a job until the returned sender is used or dropped.
    async fn hold(w: &Arc<Writer>) -> std::sync::mpsc::Sender<()> {
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let w = w.clone();
        tokio::spawn(async move {
            w.write(move |_| {
                let _ = started_tx.send(());
                hold_rx.recv().ok();
                Ok(())
            })
            .await
        });
        started_rx.await.unwrap();
        hold_tx
    }

    #[tokio::test]
    async fn a_transaction_rolled_back_by_sqlite_fails_the_whole_batch() {
        let (w, _dir) = writer(64);
        let w = Arc::new(w);
        // Hold the writer so the next three jobs land in one batch, in this order.
        let held = hold(&w).await;
        let spawn_insert = |v| {
            let w = w.clone();
            tokio::spawn(async move { insert(&w, v).await })
        };
        let before = spawn_insert(1);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // What SQLite does on an I/O error or a full disk: the transaction is gone.
        let rollback = tokio::spawn({
            let w = w.clone();
            async move {
                w.write(|c| c.execute_batch("ROLLBACK").map_err(internal))
                    .await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let after = spawn_insert(3);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(held);
        assert!(
            before.await.unwrap().is_err(),
            "an earlier job of the batch is not saved"
        );
        assert!(rollback.await.unwrap().is_err());
        assert!(
            after.await.unwrap().is_err(),
            "a later job of the batch is not saved"
        );
        assert_eq!(
            values(&w).await,
            Vec::<i64>::new(),
            "nothing half-committed"
        );
        assert!(w.check_alive().is_ok());
        insert(&w, 4).await.expect("the next batch works");
        assert_eq!(values(&w).await, vec![4]);
    }

    #[tokio::test]
    async fn a_job_run_alone_commits_or_rolls_back_on_its_own_in_queue_order() {
        let (w, _dir) = writer(64);
        let w = Arc::new(w);
        // Hold the writer so the next jobs are drained together, in this order.
        let held = hold(&w).await;
        let spawn = |v: i64, alone: bool, fail: bool| {
            let w = w.clone();
            let job = move |c: &Connection| {
                c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                    .map_err(internal)?;
                // What a job reads sees every job queued before it.
                let n: i64 = c
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(internal)?;
                if fail {
                    return Err(StoreError::internal(format!("job {v} fails")));
                }
                Ok(n)
            };
            let task = tokio::spawn(async move {
                if alone {
                    w.write_alone(job).await
                } else {
                    w.write(job).await
                }
            });
            task
        };
        let mut jobs = Vec::new();
        for (v, alone, fail) in [
            (1, false, false),
            (2, true, true),
            (3, true, false),
            (4, false, false),
            (5, false, true),
            (6, false, false),
        ] {
            jobs.push(spawn(v, alone, fail));
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        drop(held);
        let mut answers = Vec::new();
        for j in jobs {
            answers.push(j.await.unwrap().ok());
        }
        assert_eq!(
            answers,
            vec![Some(1), None, Some(2), Some(3), None, Some(4)],
            "each job saw the ones before it, failed ones rolled back"
        );
        assert_eq!(values(&w).await, vec![1, 3, 4, 6]);
        assert!(w.check_alive().is_ok());
    }

    #[tokio::test]
    async fn a_stopped_writer_is_reported() {
        let (jobs, rx) = mpsc::sync_channel::<Queued>(1);
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        // However the thread ends (here: at once), the guard marks the writer dead.
        std::thread::spawn(move || {
            let _guard = guard;
            drop(rx);
        })
        .join()
        .unwrap();
        let w = Writer { jobs, alive };
        assert!(matches!(
            w.check_alive(),
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            insert(&w, 1).await,
            Err(StoreError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn a_full_queue_is_busy() {
        let (w, _dir) = writer(2);
        let w = Arc::new(w);
        let held = hold(&w).await;
        let queued: Vec<_> = (0..2)
            .map(|v| {
                let w = w.clone();
                tokio::spawn(async move { insert(&w, v).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let full = insert(&w, 9).await;
        assert!(matches!(full, Err(StoreError::Busy(_))), "{full:?}");
        drop(held);
        for q in queued {
            q.await.unwrap().unwrap();
        }
        insert(&w, 5)
            .await
            .expect("room again once the queue drains");
    }
}
