//! SQLite: the notification log and the outbox. Every write runs on the writer, inside the
//! `IMMEDIATE` transaction that also shuts out another process's writer, so a claim is exclusive
//! without row locks.

use super::{execute, json, query, query_opt, value, SqliteStore};
use crate::query::Dialect;
use crate::{rows, sql};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::delivery::Delivery;
use herald_core::engagement::Event;
use herald_core::env::Env;
use herald_core::env::EnvScope;
use herald_core::message::{Followed, LateAnswer, Message};
use herald_core::profile::{from_micros, micros};
use herald_core::store::{
    Claim, Completion, DigestClaim, DigestItem, Engaged, Enqueue, EnqueueOutcome, GateOutcome,
    Heard, MessagePage, MessageQuery, MessageStore, NewMessage, StoreError,
};
use herald_core::throttle;
use rows::Columns;
use rusqlite::{params, Connection};
use std::collections::HashMap;

fn insert_message(conn: &Connection, m: &Message) -> Result<(), StoreError> {
    let inserted = execute(
        conn,
        sql::INSERT_MESSAGE,
        params![
            m.id,
            m.env.as_str(),
            m.workflow,
            m.category,
            m.distinct_id.as_str(),
            m.channel.as_str(),
            json(&m.identity),
            m.status.as_str(),
            m.reason,
            m.provider_id,
            json(&m.history),
            m.attempts,
            m.trigger_id,
            m.idempotency_key,
            micros(m.created_at),
            m.held_until.map(micros)
        ],
    )?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!("message id {} exists", m.id)))
    }
}

fn update_message(conn: &Connection, m: &Message, now: DateTime<Utc>) -> Result<(), StoreError> {
    execute(
        conn,
        sql::UPDATE_MESSAGE,
        params![
            m.id,
            m.status.as_str(),
            m.reason,
            m.provider_id,
            json(&m.history),
            m.attempts,
            micros(now)
        ],
    )
    .map(drop)
}

fn message_by_id(conn: &Connection, id: &str) -> Result<Option<Message>, StoreError> {
    query_opt(conn, sql::MESSAGE_BY_ID, [id], |r| rows::message(r)).map(|m| m.map(|(_, m)| m))
}

/// Moves the fallbacks waiting for `completed` on ([`Message::follow_step`]): the next one is
/// due at `now` when `completed` failed for good (a smart step: due at the end of its wait when
/// `completed` was sent); otherwise each one after it in the chain is skipped and its entry
/// deleted. Runs in the completion's transaction.
fn follow_chain(
    conn: &Connection,
    completed: &Message,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut previous = completed.clone();
    loop {
        let waiter = query_opt(conn, sql::WAITER, [previous.id.as_str()], |r| {
            rows::waiter(r)
        })?;
        let Some((id, gate)) = waiter else {
            return Ok(());
        };
        let Some(mut next) = message_by_id(conn, &id)? else {
            return Ok(());
        };
        let followed = match next.follow_step(&previous, now, gate.as_ref()) {
            Ok(Followed::Unchanged) => return Ok(()),
            Ok(followed) => followed,
            Err(e) => {
                tracing::warn!(message = %next.id, error = %e, "a fallback entry's message is not waiting; left as it is");
                return Ok(());
            }
        };
        update_message(conn, &next, now)?;
        match followed {
            Followed::Queued => {
                execute(conn, sql::WAKE_ENTRY, params![next.id, micros(now)])?;
                return Ok(());
            }
            Followed::Due(at) => {
                execute(conn, sql::DELAY_ENTRY, params![next.id, micros(at)])?;
                return Ok(());
            }
            Followed::Closed | Followed::Unchanged => {
                execute(conn, sql::DELETE_ENTRY, [next.id.as_str()])?;
                previous = next;
            }
        }
    }
}

/// Records `messages` and the outbox entries of the queued and waiting ones; their ids, in
/// order. Runs in the caller's write.
fn insert_messages(
    conn: &Connection,
    env: Env,
    messages: &[NewMessage],
) -> Result<Vec<String>, StoreError> {
    NewMessage::check_chains(messages).map_err(StoreError::internal)?;
    let mut ids = Vec::with_capacity(messages.len());
    for new in messages {
        let entry = new.entry(env).map_err(StoreError::internal)?;
        insert_message(conn, &new.message)?;
        if let Some(e) = entry {
            let (gate_wait, gate_until) = sql::gate_columns(e.gate);
            execute(
                conn,
                sql::INSERT_ENTRY,
                params![
                    e.message_id,
                    env.as_str(),
                    e.attempt,
                    sql::entry_due(new.waits_for.is_some(), e.due_at),
                    json(&e.content),
                    json(&e.identity),
                    new.waits_for,
                    gate_wait,
                    gate_until
                ],
            )?;
        }
        ids.push(new.message.id.clone());
    }
    Ok(ids)
}

/// Adds `item` to its user's open digest of its workflow (opening one if there is none) and
/// sets the digest's due time ([`herald_core::digest::Digest::due_at`]). Runs in the caller's
/// write.
fn add_digest_item(conn: &Connection, env: Env, item: &DigestItem) -> Result<(), StoreError> {
    let (user, at) = (item.distinct_id.as_str(), micros(item.at));
    execute(
        conn,
        sql::OPEN_DIGEST,
        params![
            item.new_id,
            env.as_str(),
            user,
            item.workflow,
            at,
            sql::WAITING_DUE
        ],
    )?;
    let grown = query_opt(
        conn,
        sql::GROW_DIGEST,
        params![env.as_str(), user, item.workflow],
        |r| {
            let id: String = r.get(0).map_err(super::pool::internal)?;
            let items: i64 = r.get(1).map_err(super::pool::internal)?;
            let first_at: i64 = r.get(2).map_err(super::pool::internal)?;
            Ok((id, items, first_at))
        },
    )?;
    let (id, items, first_at) =
        grown.ok_or_else(|| StoreError::internal("the open digest vanished in its write"))?;
    execute(
        conn,
        sql::INSERT_DIGEST_ITEM,
        params![id, items, json(&item.item), at],
    )?;
    let due = item
        .policy
        .due_at(from_micros(first_at), items as u32, item.at)
        .map_or(sql::WAITING_DUE, micros);
    execute(conn, sql::DIGEST_DUE, params![id, due]).map(drop)
}

impl SqliteStore {
    /// The message of `scope`'s environment that `sql` (`?1` the environment, `?2` the key) finds.
    async fn message_where(
        &self,
        sql: &'static str,
        scope: EnvScope,
        key: &str,
    ) -> Result<Option<Message>, StoreError> {
        let key = key.to_owned();
        self.readers
            .read(move |conn| {
                query_opt(conn, sql, params![scope.env().as_str(), key], |r| {
                    rows::message(r)
                })
                .map(|m| m.map(|(_, m)| m))
            })
            .await
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env(), messages = batch.messages.len()))]
    async fn enqueue_batch(
        &self,
        scope: EnvScope,
        batch: Enqueue,
    ) -> Result<EnqueueOutcome, StoreError> {
        self.writer
            .write(move |conn| {
                let env = scope.env();
                let Enqueue {
                    mut messages,
                    once,
                    throttle: check,
                    digest_items,
                } = batch;
                if let Some(key) = &once {
                    let stored = query_opt(
                        conn,
                        sql::SELECT_TRIGGER_KEY,
                        params![env.as_str(), key.key],
                        |r| {
                            let f: Option<String> = r.get(0).map_err(super::pool::internal)?;
                            let ids: String = r.get(1).map_err(super::pool::internal)?;
                            Ok((f, ids))
                        },
                    )?;
                    if let Some((fingerprint, ids)) = stored {
                        if key.reused_by(fingerprint.as_deref()) {
                            return Ok(EnqueueOutcome::KeyReused);
                        }
                        let message_ids = serde_json::from_str(&ids).map_err(|e| {
                            StoreError::internal(format!("stored trigger key is unreadable: {e}"))
                        })?;
                        return Ok(EnqueueOutcome::AlreadyEnqueued { message_ids });
                    }
                }
                // The one writer makes the count and the writes below one step: no other
                // enqueue can come between them.
                if let Some(t) = &check {
                    let mut counted = HashMap::new();
                    for id in throttle::to_count(&messages) {
                        let n: Option<i64> = value(
                            conn,
                            sql::THROTTLE_COUNT,
                            params![env.as_str(), id.as_str(), t.workflow, micros(t.since)],
                        )?;
                        counted.insert(id, n.unwrap_or(0) as u64);
                    }
                    t.throttle.apply(&mut messages, &counted);
                }
                let ids = insert_messages(conn, env, &messages)?;
                for item in &digest_items {
                    add_digest_item(conn, env, item)?;
                }
                if let Some(key) = &once {
                    execute(
                        conn,
                        sql::RECORD_TRIGGER_KEY,
                        params![
                            env.as_str(),
                            key.key,
                            key.fingerprint,
                            json(&ids),
                            micros(Utc::now())
                        ],
                    )?;
                }
                Ok(EnqueueOutcome::Enqueued { message_ids: ids })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(limit = limit))]
    async fn claim_digests(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<DigestClaim>, StoreError> {
        let lease_until = now + lease;
        let select = format!(
            "SELECT {} FROM digests WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2",
            sql::DIGEST_COLUMNS
        );
        self.writer
            .write(move |conn| {
                let due = query(conn, &select, params![micros(now), limit as i64], |r| {
                    rows::digest(r, Vec::new(), lease_until)
                })?;
                let mut claims = Vec::with_capacity(due.len());
                for mut claim in due {
                    execute(
                        conn,
                        sql::CLAIM_DIGEST,
                        params![claim.id, micros(lease_until), micros(now)],
                    )?;
                    claim.token += 1;
                    claim.items = query(conn, sql::DIGEST_ITEMS, [claim.id.as_str()], |r| {
                        r.json(0).map_err(StoreError::internal)
                    })?;
                    claims.push(claim);
                }
                Ok(claims)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(digest = %claim.id))]
    async fn finish_digest(
        &self,
        claim: &DigestClaim,
        messages: Vec<NewMessage>,
    ) -> Result<bool, StoreError> {
        let claim = claim.clone();
        self.writer
            .write(move |conn| {
                let current: Option<i64> = value(conn, sql::DIGEST_CLAIM, [claim.id.as_str()])?;
                if current != Some(claim.token) {
                    return Ok(false);
                }
                insert_messages(conn, claim.env, &messages)?;
                for statement in sql::DELETE_DIGEST {
                    execute(conn, statement, [claim.id.as_str()])?;
                }
                Ok(true)
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_trigger_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = micros(before);
        self.writer
            .write(move |conn| execute(conn, sql::PURGE_TRIGGER_KEYS, [before]).map(|n| n as u64))
            .await
    }

    #[tracing::instrument(skip_all, fields(limit = limit))]
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, StoreError> {
        let lease_until = now + lease;
        let select = format!(
            "SELECT {} FROM outbox WHERE due_at <= ?1 AND waits_for IS NULL \
             ORDER BY due_at LIMIT ?2",
            sql::ENTRY_COLUMNS
        );
        self.writer
            .write(move |conn| {
                let due = query(conn, &select, params![micros(now), limit as i64], |r| {
                    rows::entry(r)
                })?;
                let mut claims = Vec::with_capacity(due.len());
                for (entry, token) in due {
                    execute(
                        conn,
                        sql::CLAIM_ENTRY,
                        params![entry.message_id, micros(lease_until), micros(now)],
                    )?;
                    claims.push(Claim {
                        entry,
                        lease_until,
                        token: token + 1,
                    });
                }
                Ok(claims)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(message = %claim.entry.message_id))]
    async fn complete(
        &self,
        claim: &Claim,
        outcome: &Delivery,
        now: DateTime<Utc>,
        next_due: Option<DateTime<Utc>>,
    ) -> Result<Completion, StoreError> {
        let (claim, outcome) = (claim.clone(), outcome.clone());
        self.writer
            .write(move |conn| {
                let id = claim.entry.message_id.as_str();
                let current: Option<i64> = value(conn, sql::ENTRY_CLAIM, [id])?;
                if current != Some(claim.token) {
                    return Ok(Completion::Stale);
                }
                let Some(mut message) = message_by_id(conn, id)? else {
                    return Ok(Completion::Stale);
                };
                let Ok(retry_at) = message.settle(&outcome, now, next_due) else {
                    return Ok(Completion::Stale);
                };
                update_message(conn, &message, now)?;
                match retry_at {
                    Some(due) => {
                        execute(conn, sql::RETRY_ENTRY, params![id, micros(due)])?;
                    }
                    None => {
                        execute(conn, sql::DELETE_ENTRY, [id])?;
                        follow_chain(conn, &message, now)?;
                    }
                }
                Ok(Completion::Recorded {
                    message: Box::new(message),
                    retry_at,
                    invalid_identity: claim.invalid_identity(&outcome),
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(claims = claims.len()))]
    async fn release(&self, claims: &[Claim]) -> Result<(), StoreError> {
        let claims = claims.to_vec();
        self.writer
            .write(move |conn| {
                for c in &claims {
                    execute(
                        conn,
                        sql::RELEASE_ENTRY,
                        params![c.entry.message_id, micros(c.entry.due_at), c.token],
                    )?;
                }
                Ok(())
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(message = %claim.entry.message_id))]
    async fn open_gate(
        &self,
        claim: &Claim,
        now: DateTime<Utc>,
    ) -> Result<GateOutcome, StoreError> {
        let claim = claim.clone();
        self.writer
            .write(move |conn| {
                let id = claim.entry.message_id.as_str();
                let current: Option<i64> = value(conn, sql::ENTRY_CLAIM, [id])?;
                let (Some(gate), true) = (claim.entry.gate, current == Some(claim.token)) else {
                    return Ok(GateOutcome::Stale);
                };
                let Some(mut message) = message_by_id(conn, id)? else {
                    return Ok(GateOutcome::Stale);
                };
                let earlier = query(
                    conn,
                    sql::TRIGGER_ENGAGEMENT,
                    params![message.env.as_str(), message.trigger_id, id],
                    |r| rows::engagement(r),
                )?;
                let Ok(open) = message.open_gate(&earlier, gate.until, now) else {
                    return Ok(GateOutcome::Stale);
                };
                update_message(conn, &message, now)?;
                if open {
                    execute(conn, sql::OPEN_GATE_ENTRY, [id])?;
                    return Ok(GateOutcome::Open);
                }
                execute(conn, sql::DELETE_ENTRY, [id])?;
                follow_chain(conn, &message, now)?;
                Ok(GateOutcome::Closed(Box::new(message)))
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), event = event.as_str()))]
    async fn engage(
        &self,
        scope: EnvScope,
        id: &str,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<Engaged, StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| {
                let found = query_opt(
                    conn,
                    sql::GET_MESSAGE,
                    params![scope.env().as_str(), id],
                    |r| rows::message(r),
                )?;
                let Some((_, mut message)) = found else {
                    return Ok(Engaged::NotFound);
                };
                let changed = match message.engage(event, now) {
                    Ok(changed) => changed,
                    Err(refused) => return Ok(Engaged::Refused(refused)),
                };
                if changed {
                    update_message(conn, &message, now)?;
                    execute(
                        conn,
                        sql::ENGAGE_MESSAGE,
                        params![
                            message.id,
                            message.seen_at.map(micros),
                            message.clicked_at.map(micros)
                        ],
                    )?;
                }
                Ok(Engaged::Recorded {
                    message: Box::new(message),
                    changed,
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn get_message(&self, scope: EnvScope, id: &str) -> Result<Option<Message>, StoreError> {
        self.message_where(sql::GET_MESSAGE, scope, id).await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn message_by_provider_id(
        &self,
        scope: EnvScope,
        provider_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        self.message_where(sql::MESSAGE_BY_PROVIDER_ID, scope, provider_id)
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), message = %id))]
    async fn hear(
        &self,
        scope: EnvScope,
        id: &str,
        answer: &LateAnswer,
        now: DateTime<Utc>,
    ) -> Result<Option<Heard>, StoreError> {
        let (id, answer) = (id.to_owned(), answer.clone());
        self.writer
            .write(move |conn| {
                let found = query_opt(
                    conn,
                    sql::GET_MESSAGE,
                    params![scope.env().as_str(), id],
                    |r| rows::message(r),
                )?;
                let Some((_, mut message)) = found else {
                    return Ok(None);
                };
                let changed = message.hear(&answer, now).unwrap_or(false);
                if changed {
                    update_message(conn, &message, now)?;
                }
                Ok(Some(Heard {
                    message: Box::new(message),
                    changed,
                }))
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), limit = query.limit))]
    async fn list_messages(
        &self,
        scope: EnvScope,
        query: &MessageQuery,
    ) -> Result<MessagePage, StoreError> {
        let sql = crate::query::message_page(Dialect::Sqlite, scope.env(), query);
        let limit = query.limit;
        self.readers
            .read_listing(scope.env(), move |conn| {
                let found = super::query(conn, &sql.text, super::listing::args(&sql), |r| {
                    rows::message(r)
                })?;
                Ok(rows::message_page(found, limit))
            })
            .await
    }
}
