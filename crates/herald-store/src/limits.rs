//! Cost limits of listing queries, shared by both backends: a time limit per query, and a cap
//! on the connections one environment's listings may hold, so a slow scan in one environment
//! never starves the other.

use herald_core::env::Env;
use herald_core::store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long one listing or count query may run before it is stopped (`store.statement_timeout_ms`).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Listing slots per environment: `pool_size - 1` (at least one), so whatever one environment
/// runs, the other still finds a connection.
pub(crate) struct EnvSlots {
    test: Arc<Semaphore>,
    live: Arc<Semaphore>,
}

impl EnvSlots {
    pub(crate) fn new(pool_size: usize) -> EnvSlots {
        let n = pool_size.saturating_sub(1).max(1);
        EnvSlots {
            test: Arc::new(Semaphore::new(n)),
            live: Arc::new(Semaphore::new(n)),
        }
    }

    pub(crate) async fn acquire(&self, env: Env) -> Result<OwnedSemaphorePermit, StoreError> {
        let slots = match env {
            Env::Test => &self.test,
            Env::Live => &self.live,
        };
        slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::unavailable("store closed"))
    }
}

/// The error of a query stopped at its time limit.
pub(crate) fn timed_out(limit: Duration) -> StoreError {
    StoreError::Busy(format!(
        "the query ran past the statement timeout of {} ms; narrow the filter",
        limit.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_environment_leaves_the_other_a_slot() {
        let slots = EnvSlots::new(4);
        let held: Vec<_> = acquire_n(&slots, Env::Test, 3).await;
        assert!(
            slots.test.clone().try_acquire_owned().is_err(),
            "test holds its share: pool_size - 1"
        );
        assert!(slots.live.clone().try_acquire_owned().is_ok());
        drop(held);
        assert_eq!(EnvSlots::new(1).test.available_permits(), 1);
    }

    async fn acquire_n(slots: &EnvSlots, env: Env, n: usize) -> Vec<OwnedSemaphorePermit> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(slots.acquire(env).await.unwrap());
        }
        out
    }
}
