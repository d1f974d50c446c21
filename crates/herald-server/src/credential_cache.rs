//! This node's cache of credentials, so that a request does not ask the store who its key belongs
//! to every time. The bound on revocation is `auth.credential_cache_ms`:
//!
//! - An entry is trusted for that long **from the moment its store read began**, so once a
//!   revocation is committed, every node refuses the key within the bound at the latest (a read
//!   that began after the commit no longer finds the key; one that began before expires in time).
//! - A revocation made through this node ([`crate::keys::revoke_on`]) empties this node's cache
//!   after the store commits it, and a read that was under way meanwhile is not cached
//!   (a generation counter), so this node refuses the key from the next request on.
//! - Only keys found are cached, never "unknown": a key created a moment ago works at once on
//!   every node, and guessing keys fills no memory. Entries are real key sets, of which there are
//!   few; past [`MAX_ENTRIES`] expired entries are dropped, and if that is not enough, all.
//! - A bound of 0 turns the cache off: every request asks the store.

use herald_core::credentials::Credentials;
use herald_core::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Most entries kept per index (bearer hashes, workspace keys).
pub const MAX_ENTRIES: usize = 10_000;

struct Entry {
    credentials: Arc<Credentials>,
    /// When the store read that found them began.
    read_at: Instant,
}

#[derive(Default)]
struct Index {
    entries: HashMap<String, Entry>,
}

/// Credentials by bearer-key hash and by workspace key, each trusted for a bounded time.
pub struct CredentialCache {
    bound: Duration,
    by_api_key_hash: RwLock<Index>,
    by_workspace_key: RwLock<Index>,
    /// Bumped by every local revocation: a read that began before it is not cached.
    generation: AtomicU64,
}

impl Default for CredentialCache {
    /// The cache with the default bound of one second.
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl CredentialCache {
    pub fn new(bound: Duration) -> Self {
        Self {
            bound,
            by_api_key_hash: RwLock::default(),
            by_workspace_key: RwLock::default(),
            generation: AtomicU64::new(0),
        }
    }

    /// The cache with the configured bound (`auth.credential_cache_ms`).
    pub fn for_config(config: &crate::config::Config) -> Self {
        Self::new(Duration::from_millis(config.auth.credential_cache_ms))
    }

    /// How long a key revoked on another node (or by the CLI) may still be accepted here.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// The key set whose bearer key has this SHA-256 (hex), from the cache while fresh.
    pub async fn by_api_key_hash(
        &self,
        store: &dyn Store,
        hash: &str,
    ) -> Result<Option<Arc<Credentials>>, StoreError> {
        self.lookup(&self.by_api_key_hash, hash, || {
            store.credentials_by_api_key_hash(hash)
        })
        .await
    }

    /// The key set with this workspace key, from the cache while fresh.
    pub async fn by_workspace_key(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<Arc<Credentials>>, StoreError> {
        self.lookup(&self.by_workspace_key, key, || {
            store.credentials_by_workspace_key(key)
        })
        .await
    }

    /// Forgets everything: called after a revocation on this node is committed.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for index in [&self.by_api_key_hash, &self.by_workspace_key] {
            index
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entries
                .clear();
        }
    }

    async fn lookup<F, Fut>(
        &self,
        index: &RwLock<Index>,
        key: &str,
        read: F,
    ) -> Result<Option<Arc<Credentials>>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Credentials>, StoreError>>,
    {
        if self.bound.is_zero() {
            return Ok(read().await?.map(Arc::new));
        }
        if let Some(entry) = index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .get(key)
        {
            if entry.read_at.elapsed() < self.bound {
                return Ok(Some(entry.credentials.clone()));
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let read_at = Instant::now();
        let Some(found) = read().await?.map(Arc::new) else {
            return Ok(None);
        };
        let mut index = index.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock `forget_all` takes after bumping: a revocation on this node
        // since the read began keeps what the read found out of the cache.
        if self.generation.load(Ordering::SeqCst) == generation {
            if index.entries.len() >= MAX_ENTRIES && !index.entries.contains_key(key) {
                let bound = self.bound;
                index.entries.retain(|_, e| e.read_at.elapsed() < bound);
                if index.entries.len() >= MAX_ENTRIES {
                    index.entries.clear();
                }
            }
            index.entries.insert(
                key.to_owned(),
                Entry {
                    credentials: found.clone(),
                    read_at,
                },
            );
        }
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn creds(key: &str) -> Credentials {
        herald_core::credentials::NewCredentials::from_random(
            herald_core::Env::Test,
            [key, "secret", "bearer"],
            chrono::Utc::now(),
        )
        .credentials
    }

    /// Counts store reads; answers `found` or nothing.
    async fn read(
        reads: &AtomicUsize,
        found: Option<Credentials>,
    ) -> Result<Option<Credentials>, StoreError> {
        reads.fetch_add(1, Ordering::SeqCst);
        Ok(found)
    }

    #[tokio::test]
    async fn a_found_key_is_read_once_within_the_bound() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        for _ in 0..3 {
            let got = cache
                .lookup(&cache.by_workspace_key, "k", || {
                    read(&reads, Some(creds("k")))
                })
                .await
                .unwrap();
            assert_eq!(got.unwrap().workspace_key, "hk_test_k");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unknown_key_is_never_cached() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        for _ in 0..3 {
            let got = cache
                .lookup(&cache.by_api_key_hash, "h", || read(&reads, None))
                .await
                .unwrap();
            assert!(got.is_none());
        }
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        assert!(cache.by_api_key_hash.read().unwrap().entries.is_empty());
    }

    #[tokio::test]
    async fn a_bound_of_zero_reads_every_time() {
        let cache = CredentialCache::new(Duration::ZERO);
        let reads = AtomicUsize::new(0);
        for _ in 0..2 {
            cache
                .lookup(&cache.by_workspace_key, "k", || {
                    read(&reads, Some(creds("k")))
                })
                .await
                .unwrap();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn forgetting_empties_the_cache_and_drops_reads_under_way() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        cache
            .lookup(&cache.by_workspace_key, "k", || {
                read(&reads, Some(creds("k")))
            })
            .await
            .unwrap();
        cache.forget_all();
        assert!(cache.by_workspace_key.read().unwrap().entries.is_empty());
        // A read that began before a revocation and ends after it is answered, not cached.
        let got = cache
            .lookup(&cache.by_workspace_key, "k", || async {
                cache.forget_all();
                read(&reads, Some(creds("k"))).await
            })
            .await
            .unwrap();
        assert!(got.is_some());
        assert!(cache.by_workspace_key.read().unwrap().entries.is_empty());
    }

    #[tokio::test]
    async fn the_cache_never_holds_more_than_its_maximum() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        for i in 0..=MAX_ENTRIES {
            let key = format!("k{i}");
            cache
                .lookup(&cache.by_workspace_key, &key, || {
                    read(&reads, Some(creds(&key)))
                })
                .await
                .unwrap();
        }
        assert!(cache.by_workspace_key.read().unwrap().entries.len() <= MAX_ENTRIES);
    }
}
