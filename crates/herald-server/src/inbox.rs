//! This node's live inbox streams: one store feed per node (opened with the first stream, closed
//! with the last), fanned out to the streams of each user. On PostgreSQL the feed hears every
//! node's writes (`LISTEN`/`NOTIFY`); on SQLite this store's. Streams per user and per node are
//! bounded (`[inbox]`), a stream that goes away frees its place at once, and [`Hub::close`] ends
//! every stream (at shutdown, so requests in flight can finish).

use crate::config::InboxConfig;
use herald_core::inbox::{InboxFeed, InboxSignal};
use herald_core::store::{Store, StoreError};
use herald_core::{DistinctId, Env};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Signals waiting for one slow stream before it is told to resync.
const PER_USER_BUFFER: usize = 16;

type UserKey = (Env, DistinctId);

/// The fan-out of one node. `Default` so every `App` can start with one.
#[derive(Default)]
pub struct Hub {
    state: Mutex<State>,
    /// Serialises opening the store feed.
    opening: tokio::sync::Mutex<()>,
    closed: CancellationToken,
}

#[derive(Default)]
struct State {
    /// Each user with open streams: their channel and how many streams listen on it.
    users: HashMap<UserKey, (broadcast::Sender<InboxSignal>, usize)>,
    streams: usize,
    /// The task relaying the store's feed, while any stream is open.
    relay: Option<tokio::task::JoinHandle<()>>,
}

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("this user has {0} live inbox streams open on this node already (inbox.max_streams_per_user)")]
    TooManyForUser(usize),
    #[error("this node serves {0} live inbox streams already (inbox.max_streams)")]
    TooMany(usize),
    #[error("the server is shutting down")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One open stream's place: the user's signals. Dropping it frees the place (and, for the
/// node's last stream, the store feed).
pub struct Subscription {
    hub: Arc<Hub>,
    key: UserKey,
    signals: broadcast::Receiver<InboxSignal>,
}

impl Subscription {
    /// The next signal about this user's inbox (`Resync` when some may have been missed);
    /// `None` once the hub is gone.
    pub async fn next(&mut self) -> Option<InboxSignal> {
        match self.signals.recv().await {
            Ok(signal) => Some(signal),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(InboxSignal::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// Cancelled when the hub closes (the server shuts down).
    pub fn closing(&self) -> CancellationToken {
        self.hub.closed.clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        state.streams = state.streams.saturating_sub(1);
        if let Some((_, n)) = state.users.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                state.users.remove(&self.key);
            }
        }
        if state.users.is_empty() {
            if let Some(relay) = state.relay.take() {
                relay.abort();
            }
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Streams open on this node.
    pub fn streams(&self) -> usize {
        self.lock().streams
    }

    /// Ends every stream, and refuses new ones.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// A place for one stream of `id`'s inbox in `env`, with the store feed running (and
    /// listening) before it returns, so nothing committed afterwards is missed.
    pub async fn subscribe(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        env: Env,
        id: &DistinctId,
        limits: &InboxConfig,
    ) -> Result<Subscription, OpenError> {
        if self.closed.is_cancelled() {
            return Err(OpenError::Closed);
        }
        let _opening = self.opening.lock().await;
        self.check_room(env, id, limits)?;
        if self.lock().relay.as_ref().is_none_or(|r| r.is_finished()) {
            let feed = store.inbox_feed().await?;
            let relay = tokio::spawn(relay(Arc::downgrade(self), feed));
            self.lock().relay = Some(relay);
        }
        let mut state = self.lock();
        // Checked again under the lock that registers (a stream may have opened meanwhile).
        Self::room(&state, env, id, limits)?;
        state.streams += 1;
        let (sender, n) = state
            .users
            .entry((env, id.clone()))
            .or_insert_with(|| (broadcast::channel(PER_USER_BUFFER).0, 0));
        *n += 1;
        let signals = sender.subscribe();
        Ok(Subscription {
            hub: self.clone(),
            key: (env, id.clone()),
            signals,
        })
    }

    fn check_room(&self, env: Env, id: &DistinctId, limits: &InboxConfig) -> Result<(), OpenError> {
        Self::room(&self.lock(), env, id, limits)
    }

    fn room(
        state: &State,
        env: Env,
        id: &DistinctId,
        limits: &InboxConfig,
    ) -> Result<(), OpenError> {
        if state.streams >= limits.max_streams {
            return Err(OpenError::TooMany(state.streams));
        }
        let mine = state.users.get(&(env, id.clone())).map_or(0, |(_, n)| *n);
        if mine >= limits.max_streams_per_user {
            return Err(OpenError::TooManyForUser(mine));
        }
        Ok(())
    }

    /// Hands a signal to the streams it concerns (a resync to every stream).
    fn dispatch(&self, signal: InboxSignal) {
        let state = self.lock();
        match signal.user() {
            Some((env, id)) => {
                if let Some((sender, _)) = state.users.get(&(env, id.clone())) {
                    let _ = sender.send(signal);
                }
            }
            None => {
                for (sender, _) in state.users.values() {
                    let _ = sender.send(InboxSignal::Resync);
                }
            }
        }
    }
}

/// Relays the store's feed to the hub until either is gone.
async fn relay(hub: Weak<Hub>, mut feed: Box<dyn InboxFeed>) {
    while let Some(signal) = feed.next().await {
        let Some(hub) = hub.upgrade() else { return };
        hub.dispatch(signal);
    }
    tracing::warn!("the inbox feed ended; live streams get no more updates on this node");
}
