//! PostgreSQL: the in-app inbox, and its signals across nodes. A write that changes an inbox
//! sends `NOTIFY herald_inbox` in its own transaction (so the signal leaves only if the write
//! commits); a feed is a connection of its own that `LISTEN`s, reconnecting when it drops (and
//! then telling its reader to resync, since signals may have been missed meanwhile). Channels
//! are database-wide, so the payload names the schema and a feed keeps its own schema's.

use super::{db, pg, Attempt, PostgresStore};
use crate::{rows, sql};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use herald_core::env::{Env, EnvScope};
use herald_core::ids::DistinctId;
use herald_core::inbox::{
    Delivered, InboxCounts, InboxFeed, InboxItem, InboxPage, InboxQuery, InboxSignal, Mark,
    NewItem, Stamp,
};
use herald_core::profile::micros;
use herald_core::store::{InboxStore, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls, Notification};

/// The channel every node's writes notify and every feed listens on.
const CHANNEL: &str = "herald_inbox";

/// Notifies the change of user `$2`'s inbox in env `$1` (`$3`: the new item's message id, or
/// null for marks), naming this connection's schema.
const NOTIFY: &str = "SELECT pg_notify('herald_inbox', json_build_object('s', current_schema(), \
     'e', $1::text, 'd', $2::text, 'm', $3::text)::text)";

/// Signals waiting for the slowest reader before it is told to resync.
const SIGNALS_BUFFERED: usize = 1024;

/// How long a feed waits before reconnecting after its connection dropped.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

async fn notify(
    tx: &Transaction<'_>,
    env: Env,
    id: &str,
    message_id: Option<&str>,
) -> Result<(), Attempt> {
    tx.execute(NOTIFY, &[&env.as_str(), &id, &message_id])
        .await?;
    Ok(())
}

async fn deliver(tx: &Transaction<'_>, env: Env, item: &NewItem) -> Result<Delivered, Attempt> {
    let added = tx
        .execute(
            pg(sql::INSERT_INBOX_ITEM).as_ref(),
            &[
                &env.as_str(),
                &item.message_id,
                &item.title,
                &item.body,
                &item.action_url,
                &micros(item.created_at),
            ],
        )
        .await?;
    let row = tx
        .query_opt(
            pg(sql::INBOX_ITEM).as_ref(),
            &[&env.as_str(), &item.message_id],
        )
        .await?;
    let Some(stored) = row.as_ref().map(rows::inbox_item).transpose()? else {
        return Ok(Delivered::NoMessage);
    };
    if added == 1 {
        notify(
            tx,
            env,
            stored.distinct_id.as_str(),
            Some(&stored.message_id),
        )
        .await?;
        Ok(Delivered::Added(stored))
    } else {
        Ok(Delivered::Already(stored))
    }
}

/// Marks user `id`'s items (one when `message_id`); how many changed, and the item when one.
async fn mark(
    tx: &Transaction<'_>,
    env: Env,
    id: &str,
    message_id: Option<&str>,
    mark: Mark,
    now: i64,
) -> Result<(u64, Option<InboxItem>), Attempt> {
    let effect = mark.effect();
    let changed = tx
        .execute(
            pg(sql::MARK_INBOX).as_ref(),
            &[
                &env.as_str(),
                &id,
                &effect.seen.code(),
                &effect.read.code(),
                &effect.archived.code(),
                &now,
                &message_id,
            ],
        )
        .await?;
    // A seen (or read) item is engagement with its message (`smart` policies read it).
    if effect.seen == Stamp::Set {
        tx.execute(
            pg(sql::SEEN_FROM_INBOX).as_ref(),
            &[&env.as_str(), &id, &now, &message_id],
        )
        .await?;
    }
    let item = match message_id {
        Some(m) => tx
            .query_opt(pg(sql::USER_INBOX_ITEM).as_ref(), &[&env.as_str(), &id, &m])
            .await?
            .as_ref()
            .map(rows::inbox_item)
            .transpose()?,
        None => None,
    };
    if changed > 0 {
        notify(tx, env, id, None).await?;
    }
    Ok((changed, item))
}

#[async_trait]
impl InboxStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn deliver_inbox(
        &self,
        scope: EnvScope,
        item: &NewItem,
    ) -> Result<Delivered, StoreError> {
        let item = Arc::new(item.clone());
        self.in_transaction(|tx| {
            let item = item.clone();
            Box::pin(async move { deliver(tx, scope.env(), &item).await })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), limit = q.limit))]
    async fn list_inbox(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        q: &InboxQuery,
    ) -> Result<InboxPage, StoreError> {
        let (id, q) = (id.clone(), q.clone());
        self.listing(scope.env(), move |tx| {
            Box::pin(async move {
                let stmt = tx.prepare_cached(&pg(sql::INBOX_PAGE)).await.map_err(db)?;
                let found = tx
                    .query(
                        &stmt,
                        &[
                            &scope.env().as_str(),
                            &id.as_str(),
                            &q.before.unwrap_or(i64::MAX),
                            &q.filter.seen,
                            &q.filter.read,
                            &q.filter.archived,
                            &((q.limit + 1) as i64),
                        ],
                    )
                    .await
                    .map_err(db)?;
                let found = found
                    .iter()
                    .map(rows::inbox_item)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(InboxPage::of(found, q.limit))
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn inbox_item(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        message_id: &str,
    ) -> Result<Option<InboxItem>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&pg(sql::USER_INBOX_ITEM))
            .await
            .map_err(db)?;
        client
            .query_opt(&stmt, &[&scope.env().as_str(), &id.as_str(), &message_id])
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::inbox_item)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn inbox_counts(
        &self,
        scope: EnvScope,
        id: &DistinctId,
    ) -> Result<InboxCounts, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&pg(sql::INBOX_COUNTS))
            .await
            .map_err(db)?;
        let row = client
            .query_one(&stmt, &[&scope.env().as_str(), &id.as_str()])
            .await
            .map_err(db)?;
        rows::inbox_counts(&row)
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), mark = m.as_str()))]
    async fn mark_inbox_item(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        message_id: &str,
        m: Mark,
        now: DateTime<Utc>,
    ) -> Result<Option<InboxItem>, StoreError> {
        let (id, message_id) = (Arc::new(id.clone()), Arc::new(message_id.to_owned()));
        let (_, item) = self
            .in_transaction(|tx| {
                let (id, message_id) = (id.clone(), message_id.clone());
                Box::pin(async move {
                    mark(
                        tx,
                        scope.env(),
                        id.as_str(),
                        Some(&message_id),
                        m,
                        micros(now),
                    )
                    .await
                })
            })
            .await?;
        Ok(item)
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), mark = m.as_str()))]
    async fn mark_inbox(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        m: Mark,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let id = Arc::new(id.clone());
        let (changed, _) = self
            .in_transaction(|tx| {
                let id = id.clone();
                Box::pin(
                    async move { mark(tx, scope.env(), id.as_str(), None, m, micros(now)).await },
                )
            })
            .await?;
        Ok(changed)
    }

    async fn inbox_feed(&self) -> Result<Box<dyn InboxFeed>, StoreError> {
        // Listening before this returns: a signal committed after it is not missed.
        let listener = Listener::connect(&self.config)
            .await
            .map_err(|e| StoreError::unavailable_from("PostgreSQL inbox listener", e))?;
        let (signals, receiver) = broadcast::channel(SIGNALS_BUFFERED);
        let task = tokio::spawn(relay(self.config.clone(), listener, signals));
        Ok(Box::new(Feed {
            signals: receiver,
            relay: Abort(task),
        }))
    }
}

/// Aborts its task when dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A feed: the relay's signals, and the relay itself, stopped (with its connection) when the
/// feed is dropped.
struct Feed {
    signals: broadcast::Receiver<InboxSignal>,
    #[allow(dead_code)] // held for its Drop
    relay: Abort,
}

#[async_trait]
impl InboxFeed for Feed {
    async fn next(&mut self) -> Option<InboxSignal> {
        match self.signals.recv().await {
            Ok(signal) => Some(signal),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(InboxSignal::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// One listening connection: its client (dropping it closes the connection), the task driving
/// it, the notifications it received, and the schema whose signals are ours.
struct Listener {
    #[allow(dead_code)] // held: dropping it closes the connection
    client: tokio_postgres::Client,
    #[allow(dead_code)] // held for its Drop
    driver: Abort,
    notifications: mpsc::UnboundedReceiver<Notification>,
    schema: Option<String>,
}

impl Listener {
    async fn connect(config: &tokio_postgres::Config) -> Result<Listener, tokio_postgres::Error> {
        let (client, mut connection) = config.connect(NoTls).await?;
        let (sender, notifications) = mpsc::unbounded_channel();
        // Polling the connection also carries the client's own queries.
        let driver = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if sender.send(n).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the inbox listener's connection failed");
                        break;
                    }
                }
            }
        });
        let driver = Abort(driver);
        let schema: Option<String> = client
            .query_one("SELECT current_schema()", &[])
            .await?
            .get(0);
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok(Listener {
            client,
            driver,
            notifications,
            schema,
        })
    }
}

/// Relays a listener's notifications as signals, reconnecting (then asking for a resync) when
/// its connection drops. Runs until its feed is dropped.
async fn relay(
    config: tokio_postgres::Config,
    mut listener: Listener,
    signals: broadcast::Sender<InboxSignal>,
) {
    loop {
        while let Some(n) = listener.notifications.recv().await {
            if let Some(signal) = signal_of(&n, listener.schema.as_deref()) {
                let _ = signals.send(signal);
            }
        }
        tracing::warn!("the inbox listener lost its connection; reconnecting");
        listener = loop {
            tokio::time::sleep(RECONNECT_AFTER).await;
            match Listener::connect(&config).await {
                Ok(l) => break l,
                Err(e) => tracing::warn!(error = %e, "the inbox listener cannot reconnect yet"),
            }
        };
        let _ = signals.send(InboxSignal::Resync);
    }
}

#[derive(serde::Deserialize)]
struct Payload {
    s: Option<String>,
    e: String,
    d: String,
    m: Option<String>,
}

/// The signal a notification carries, if it is one of this schema's.
fn signal_of(n: &Notification, schema: Option<&str>) -> Option<InboxSignal> {
    if n.channel() != CHANNEL {
        return None;
    }
    let p: Payload = serde_json::from_str(n.payload()).ok()?;
    if p.s.as_deref() != schema {
        return None;
    }
    let env = p.e.parse().ok()?;
    let distinct_id = DistinctId::parse(&p.d).ok()?;
    Some(match p.m {
        Some(message_id) => InboxSignal::Added {
            env,
            distinct_id,
            message_id,
        },
        None => InboxSignal::Marked { env, distinct_id },
    })
}
