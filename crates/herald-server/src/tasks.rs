//! Background work of a server node (today the idempotency-key purge; next the dispatch worker).
//! A [`Supervisor`] starts the enabled tasks with the server and, at shutdown, cancels them through
//! one [`CancellationToken`] and waits for each to finish. Each task logs when it starts, stops
//! and fails, under its name.

use std::future::Future;
use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;

/// The tasks of one server, and the token that stops them.
#[derive(Default)]
pub struct Supervisor {
    cancel: CancellationToken,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Supervisor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `task` (unless `enabled` is false: then it never runs). The task is handed a token
    /// that is cancelled at shutdown and must return soon after; `Err` means it failed.
    pub fn start<F, Fut>(&mut self, name: &'static str, enabled: bool, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        if !enabled {
            tracing::info!(task = name, "background task disabled in the configuration");
            return;
        }
        let work = task(self.cancel.child_token());
        let handle = tokio::spawn(async move {
            tracing::info!(task = name, "background task started");
            match work.await {
                Ok(()) => tracing::info!(task = name, "background task stopped"),
                Err(error) => tracing::error!(task = name, %error, "background task failed"),
            }
        });
        self.running.push((name, handle));
    }

    /// Names of the tasks started so far.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|(name, _)| *name).collect()
    }

    /// Cancels every task and waits until each has returned.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for (name, handle) in self.running {
            if let Err(e) = handle.await {
                tracing::error!(task = name, error = %e, "background task failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn shutdown_stops_the_tasks_and_a_disabled_task_never_runs() {
        let stopped = Arc::new(AtomicBool::new(false));
        let disabled_ran = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let mut tasks = Supervisor::new();
        let flag = stopped.clone();
        tasks.start("waits_for_shutdown", true, move |cancel| async move {
            let _ = started_tx.send(());
            cancel.cancelled().await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        let flag = disabled_ran.clone();
        tasks.start("switched_off", false, move |_| async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        tasks.start("fails", true, |_| async { Err("no database".to_owned()) });
        assert_eq!(tasks.names(), ["waits_for_shutdown", "fails"]);
        started_rx.await.expect("the task started");
        assert!(!stopped.load(Ordering::SeqCst), "running until shutdown");
        tokio::time::timeout(std::time::Duration::from_secs(5), tasks.shutdown())
            .await
            .expect("shutdown waits for the tasks, which return when cancelled");
        assert!(
            stopped.load(Ordering::SeqCst),
            "the task saw the cancellation"
        );
        assert!(
            !disabled_ran.load(Ordering::SeqCst),
            "a disabled task never runs"
        );
    }
}
