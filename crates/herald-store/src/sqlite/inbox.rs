//! SQLite: the in-app inbox. Writes run on the writer; once one has committed and changed an
//! inbox, its signal goes to this store's in-process broadcast (one node: nothing else writes).

use super::{execute, query, query_opt, SqliteStore};
use crate::{rows, sql};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::env::EnvScope;
use herald_core::ids::DistinctId;
use herald_core::inbox::{
    Delivered, InboxCounts, InboxFeed, InboxItem, InboxPage, InboxQuery, InboxSignal, Mark,
    NewItem, Stamp,
};
use herald_core::profile::micros;
use herald_core::store::{InboxStore, StoreError};
use rusqlite::params;
use tokio::sync::broadcast;

/// Signals waiting for the slowest feed before it is told to resync.
pub(super) const SIGNALS_BUFFERED: usize = 1024;

/// A feed over the store's broadcast; a feed that fell behind is told to resync.
struct Feed(broadcast::Receiver<InboxSignal>);

#[async_trait]
impl InboxFeed for Feed {
    async fn next(&mut self) -> Option<InboxSignal> {
        match self.0.recv().await {
            Ok(signal) => Some(signal),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(InboxSignal::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl SqliteStore {
    fn announce(&self, signal: InboxSignal) {
        // No feed open is no error.
        let _ = self.inbox.send(signal);
    }
}

/// Marks `mark` on user `id`'s items (one when `message_id`), in the writer's transaction.
fn mark(
    conn: &rusqlite::Connection,
    env: &str,
    id: &str,
    message_id: Option<&str>,
    mark: Mark,
    now: i64,
) -> Result<usize, StoreError> {
    let effect = mark.effect();
    let changed = execute(
        conn,
        sql::MARK_INBOX,
        params![
            env,
            id,
            effect.seen.code(),
            effect.read.code(),
            effect.archived.code(),
            now,
            message_id
        ],
    )?;
    // A seen (or read) item is engagement with its message (`smart` policies read it).
    if effect.seen == Stamp::Set {
        execute(
            conn,
            sql::SEEN_FROM_INBOX,
            params![env, id, now, message_id],
        )?;
    }
    Ok(changed)
}

#[async_trait]
impl InboxStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn deliver_inbox(
        &self,
        scope: EnvScope,
        item: &NewItem,
    ) -> Result<Delivered, StoreError> {
        let item = item.clone();
        let delivered = self
            .writer
            .write(move |conn| {
                let env = scope.env().as_str();
                let added = execute(
                    conn,
                    sql::INSERT_INBOX_ITEM,
                    params![
                        env,
                        item.message_id,
                        item.title,
                        item.body,
                        item.action_url,
                        micros(item.created_at)
                    ],
                )?;
                let stored =
                    query_opt(conn, sql::INBOX_ITEM, params![env, item.message_id], |r| {
                        rows::inbox_item(r)
                    })?;
                Ok(match (stored, added) {
                    (Some(i), 1) => Delivered::Added(i),
                    (Some(i), _) => Delivered::Already(i),
                    (None, _) => Delivered::NoMessage,
                })
            })
            .await?;
        if let Delivered::Added(i) = &delivered {
            self.announce(InboxSignal::Added {
                env: scope.env(),
                distinct_id: i.distinct_id.clone(),
                message_id: i.message_id.clone(),
            });
        }
        Ok(delivered)
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), limit = q.limit))]
    async fn list_inbox(
        &self,
        scope: EnvScope,
        id: &DistinctId,
        q: &InboxQuery,
    ) -> Result<InboxPage, StoreError> {
        let (id, q) = (id.clone(), q.clone());
        self.readers
            .read(move |conn| {
                let found = query(
                    conn,
                    sql::INBOX_PAGE,
                    params![
                        scope.env().as_str(),
                        id.as_str(),
                        q.before.unwrap_or(i64::MAX),
                        q.filter.seen,
                        q.filter.read,
                        q.filter.archived,
                        (q.limit + 1) as i64
                    ],
                    |r| rows::inbox_item(r),
                )?;
                Ok(InboxPage::of(found, q.limit))
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
        let (id, message_id) = (id.clone(), message_id.to_owned());
        self.readers
            .read(move |conn| {
                query_opt(
                    conn,
                    sql::USER_INBOX_ITEM,
                    params![scope.env().as_str(), id.as_str(), message_id],
                    |r| rows::inbox_item(r),
                )
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn inbox_counts(
        &self,
        scope: EnvScope,
        id: &DistinctId,
    ) -> Result<InboxCounts, StoreError> {
        let id = id.clone();
        self.readers
            .read(move |conn| {
                query_opt(
                    conn,
                    sql::INBOX_COUNTS,
                    params![scope.env().as_str(), id.as_str()],
                    |r| rows::inbox_counts(r),
                )
                .map(Option::unwrap_or_default)
            })
            .await
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
        let (user, message_id) = (id.clone(), message_id.to_owned());
        let (changed, item) = self
            .writer
            .write(move |conn| {
                let env = scope.env().as_str();
                let changed = mark(conn, env, user.as_str(), Some(&message_id), m, micros(now))?;
                let item = query_opt(
                    conn,
                    sql::USER_INBOX_ITEM,
                    params![env, user.as_str(), message_id],
                    |r| rows::inbox_item(r),
                )?;
                Ok((changed, item))
            })
            .await?;
        if changed > 0 {
            self.announce(InboxSignal::Marked {
                env: scope.env(),
                distinct_id: id.clone(),
            });
        }
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
        let user = id.clone();
        let changed = self
            .writer
            .write(move |conn| {
                mark(
                    conn,
                    scope.env().as_str(),
                    user.as_str(),
                    None,
                    m,
                    micros(now),
                )
            })
            .await?;
        if changed > 0 {
            self.announce(InboxSignal::Marked {
                env: scope.env(),
                distinct_id: id.clone(),
            });
        }
        Ok(changed as u64)
    }

    async fn inbox_feed(&self) -> Result<Box<dyn InboxFeed>, StoreError> {
        Ok(Box::new(Feed(self.inbox.subscribe())))
    }
}
