//! PostgreSQL: the notification log and the outbox. Claims take due entries with
//! `FOR UPDATE SKIP LOCKED`, so nodes claiming at once never take the same entry; a completion
//! locks its entry and applies only while its claim is the current one.

use super::{db, pg, Attempt, PostgresStore};
use crate::query::Dialect;
use crate::{rows, sql};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use futures_util::future::{try_join, try_join3, try_join_all};
use herald_core::delivery::Delivery;
use herald_core::engagement::{Event, Gate};
use herald_core::env::Env;
use herald_core::env::EnvScope;
use herald_core::message::{Followed, LateAnswer, Message};
use herald_core::profile::{from_micros, micros};
use herald_core::store::{
    Claim, Completion, DigestClaim, DigestItem, Engaged, Enqueue, EnqueueOutcome, GateOutcome,
    Heard, MessagePage, MessageQuery, MessageStore, NewMessage, OnceKey, OutboxEntry, StoreError,
};
use herald_core::throttle;
use rows::Columns;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::types::Json;
use tokio_postgres::Statement;

/// Leases up to `$3` entries due at `$1` until `$2`; each row as [`sql::ENTRY_COLUMNS`], with the
/// time it was due before the lease and its new claim token.
const CLAIM_DUE: &str = "WITH due AS (SELECT message_id, due_at AS was_due FROM outbox \
     WHERE due_at <= $1 AND waits_for IS NULL ORDER BY due_at LIMIT $3 \
     FOR UPDATE SKIP LOCKED) \
     UPDATE outbox o SET due_at = $2, claim = o.claim + 1 FROM due \
     WHERE o.message_id = due.message_id \
     RETURNING o.message_id, o.env, o.attempt, due.was_due, o.content, o.identity, o.claim, \
     o.gate_wait, o.gate_until";

async fn insert_message(
    tx: &Transaction<'_>,
    stmt: &Statement,
    m: &Message,
) -> Result<(), Attempt> {
    let inserted = tx
        .execute(
            stmt,
            &[
                &m.id,
                &m.env.as_str(),
                &m.workflow,
                &m.category,
                &m.distinct_id.as_str(),
                &m.channel.as_str(),
                &Json(&m.identity),
                &m.status.as_str(),
                &m.reason,
                &m.provider_id,
                &Json(&m.history),
                &i64::from(m.attempts),
                &m.trigger_id,
                &m.idempotency_key,
                &micros(m.created_at),
                &m.held_until.map(micros),
            ],
        )
        .await?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!("message id {} exists", m.id)).into())
    }
}

async fn insert_entry(
    tx: &Transaction<'_>,
    stmt: &Statement,
    e: &OutboxEntry,
    waits_for: &Option<String>,
) -> Result<(), Attempt> {
    let due = sql::entry_due(waits_for.is_some(), e.due_at);
    let (gate_wait, gate_until) = sql::gate_columns(e.gate);
    tx.execute(
        stmt,
        &[
            &e.message_id,
            &e.env.as_str(),
            &i64::from(e.attempt),
            &due,
            &Json(&e.content),
            &Json(&e.identity),
            waits_for,
            &gate_wait,
            &gate_until,
        ],
    )
    .await?;
    Ok(())
}

async fn update_message(
    tx: &Transaction<'_>,
    message: &Message,
    now: DateTime<Utc>,
) -> Result<(), Attempt> {
    tx.execute(
        pg(sql::UPDATE_MESSAGE).as_ref(),
        &[
            &message.id,
            &message.status.as_str(),
            &message.reason,
            &message.provider_id,
            &Json(&message.history),
            &i64::from(message.attempts),
            &micros(now),
        ],
    )
    .await?;
    Ok(())
}

async fn message_by_id(tx: &Transaction<'_>, id: &str) -> Result<Option<Message>, Attempt> {
    let row = tx
        .query_opt(pg(sql::MESSAGE_BY_ID).as_ref(), &[&id])
        .await?;
    Ok(row.as_ref().map(rows::message).transpose()?.map(|(_, m)| m))
}

/// Moves the fallbacks waiting for `completed` on ([`Message::follow_step`]): the next one is
/// due at `now` when `completed` failed for good (a smart step: due at the end of its wait when
/// `completed` was sent); otherwise each one after it in the chain is skipped and its entry
/// deleted. Runs in the completion's transaction. (A waiting entry is never claimed, so only
/// this completion, holding `completed`'s entry, moves it.)
async fn follow_chain(
    tx: &Transaction<'_>,
    completed: &Message,
    now: DateTime<Utc>,
    mut waiter: Option<(String, Option<Gate>)>,
) -> Result<(), Attempt> {
    let mut previous = completed.clone();
    loop {
        let Some((id, gate)) = waiter.take() else {
            return Ok(());
        };
        let Some(mut next) = message_by_id(tx, &id).await? else {
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
        update_message(tx, &next, now).await?;
        match followed {
            Followed::Queued => {
                tx.execute(pg(sql::WAKE_ENTRY).as_ref(), &[&next.id, &micros(now)])
                    .await?;
                return Ok(());
            }
            Followed::Due(at) => {
                tx.execute(pg(sql::DELAY_ENTRY).as_ref(), &[&next.id, &micros(at)])
                    .await?;
                return Ok(());
            }
            Followed::Closed | Followed::Unchanged => {
                tx.execute(pg(sql::DELETE_ENTRY).as_ref(), &[&next.id])
                    .await?;
                waiter = waiter_of(tx, &next.id).await?;
                previous = next;
            }
        }
    }
}

/// The entry waiting for message `id`, if any, and its gate.
async fn waiter_of(
    tx: &Transaction<'_>,
    id: &str,
) -> Result<Option<(String, Option<Gate>)>, Attempt> {
    let row = tx.query_opt(pg(sql::WAITER).as_ref(), &[&id]).await?;
    Ok(row.as_ref().map(rows::waiter).transpose()?)
}

async fn open_gate(
    tx: &Transaction<'_>,
    claim: &Claim,
    now: DateTime<Utc>,
) -> Result<GateOutcome, Attempt> {
    let id = claim.entry.message_id.as_str();
    let Some(gate) = claim.entry.gate else {
        return Ok(GateOutcome::Stale);
    };
    let Some(row) = tx
        .query_opt(pg(sql::CLAIMED_MESSAGE_FOR_UPDATE).as_ref(), &[&id])
        .await?
    else {
        return Ok(GateOutcome::Stale);
    };
    if row.get::<_, i64>(sql::CLAIMED_MESSAGE_CLAIM) != claim.token {
        return Ok(GateOutcome::Stale);
    }
    let (_, mut message) = rows::message(&row)?;
    let earlier = tx
        .query(
            pg(sql::TRIGGER_ENGAGEMENT).as_ref(),
            &[&message.env.as_str(), &message.trigger_id, &id],
        )
        .await?
        .iter()
        .map(rows::engagement)
        .collect::<Result<Vec<_>, _>>()?;
    let Ok(open) = message.open_gate(&earlier, gate.until, now) else {
        return Ok(GateOutcome::Stale);
    };
    update_message(tx, &message, now).await?;
    if open {
        tx.execute(pg(sql::OPEN_GATE_ENTRY).as_ref(), &[&id])
            .await?;
        return Ok(GateOutcome::Open);
    }
    tx.execute(pg(sql::DELETE_ENTRY).as_ref(), &[&id]).await?;
    let waiter = waiter_of(tx, id).await?;
    follow_chain(tx, &message, now, waiter).await?;
    Ok(GateOutcome::Closed(Box::new(message)))
}

async fn engage(
    tx: &Transaction<'_>,
    scope: EnvScope,
    id: &str,
    event: Event,
    now: DateTime<Utc>,
) -> Result<Engaged, Attempt> {
    let found = tx
        .query_opt(
            &format!("{} FOR UPDATE", pg(sql::GET_MESSAGE)),
            &[&scope.env().as_str(), &id],
        )
        .await?;
    let Some((_, mut message)) = found.as_ref().map(rows::message).transpose()? else {
        return Ok(Engaged::NotFound);
    };
    let changed = match message.engage(event, now) {
        Ok(changed) => changed,
        Err(refused) => return Ok(Engaged::Refused(refused)),
    };
    if changed {
        update_message(tx, &message, now).await?;
        tx.execute(
            pg(sql::ENGAGE_MESSAGE).as_ref(),
            &[
                &message.id,
                &message.seen_at.map(micros),
                &message.clicked_at.map(micros),
            ],
        )
        .await?;
    }
    Ok(Engaged::Recorded {
        message: Box::new(message),
        changed,
    })
}

/// What a stored trigger key says about this enqueue: `None` if the key is new.
async fn key_enqueued(
    tx: &Transaction<'_>,
    env: &str,
    once: &OnceKey,
) -> Result<Option<EnqueueOutcome>, Attempt> {
    let row = tx
        .query_opt(pg(sql::SELECT_TRIGGER_KEY).as_ref(), &[&env, &once.key])
        .await?;
    Ok(row.map(|row| {
        let fingerprint: Option<String> = row.get(0);
        let Json(message_ids) = row.get(1);
        if once.reused_by(fingerprint.as_deref()) {
            EnqueueOutcome::KeyReused
        } else {
            EnqueueOutcome::AlreadyEnqueued { message_ids }
        }
    }))
}

/// The lock that makes throttle counts of one (environment, workflow, user) exact: held until
/// the transaction ends, so concurrent enqueues on any node count one after the other.
const THROTTLE_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

async fn enqueue(
    tx: &Transaction<'_>,
    scope: EnvScope,
    batch: &Enqueue,
) -> Result<EnqueueOutcome, Attempt> {
    let env = scope.env();
    if let Some(key) = &batch.once {
        if let Some(outcome) = key_enqueued(tx, env.as_str(), key).await? {
            return Ok(outcome);
        }
    }
    let mut messages = batch.messages.clone();
    if let Some(t) = &batch.throttle {
        let mut counted = HashMap::new();
        // Locked in one order (sorted ids), so two batches cannot deadlock.
        for id in throttle::to_count(&messages) {
            let lock = format!(
                "throttle\n{}\n{}\n{}",
                env.as_str(),
                t.workflow,
                id.as_str()
            );
            tx.execute(THROTTLE_LOCK, &[&lock]).await?;
            let n: i64 = tx
                .query_one(
                    pg(sql::THROTTLE_COUNT).as_ref(),
                    &[&env.as_str(), &id.as_str(), &t.workflow, &micros(t.since)],
                )
                .await?
                .get(0);
            counted.insert(id, n as u64);
        }
        t.throttle.apply(&mut messages, &counted);
    }
    let ids = insert_messages(tx, env, &messages).await?;
    for item in &batch.digest_items {
        add_digest_item(tx, env, item).await?;
    }
    if let Some(key) = &batch.once {
        let recorded = tx
            .execute(
                pg(sql::RECORD_TRIGGER_KEY).as_ref(),
                &[
                    &env.as_str(),
                    &key.key,
                    &key.fingerprint,
                    &Json(&ids),
                    &micros(Utc::now()),
                ],
            )
            .await?;
        // Another node enqueued the same key first: run again, and answer as it did.
        if recorded != 1 {
            return Err(Attempt::Retry);
        }
    }
    Ok(EnqueueOutcome::Enqueued { message_ids: ids })
}

/// Records `messages` and the outbox entries of the queued and waiting ones, in the caller's
/// transaction; their ids, in order.
async fn insert_messages(
    tx: &Transaction<'_>,
    env: Env,
    messages: &[NewMessage],
) -> Result<Vec<String>, Attempt> {
    NewMessage::check_chains(messages).map_err(StoreError::internal)?;
    let mut entries = Vec::new();
    for new in messages {
        if let Some(e) = new.entry(env).map_err(StoreError::internal)? {
            entries.push((e, &new.waits_for));
        }
    }
    // Every insert is sent at once and answered in order on this connection (pipelining): a
    // trigger of 100 recipients costs a few round trips, not 200.
    let (insert_message_stmt, insert_entry_stmt) = (
        tx.prepare_cached(&pg(sql::INSERT_MESSAGE)).await?,
        tx.prepare_cached(&pg(sql::INSERT_ENTRY)).await?,
    );
    try_join(
        try_join_all(
            messages
                .iter()
                .map(|new| insert_message(tx, &insert_message_stmt, &new.message)),
        ),
        try_join_all(
            entries
                .iter()
                .map(|(e, waits_for)| insert_entry(tx, &insert_entry_stmt, e, waits_for)),
        ),
    )
    .await?;
    Ok(messages.iter().map(|new| new.message.id.clone()).collect())
}

/// Adds `item` to its user's open digest of its workflow (opening one if there is none) and
/// sets the digest's due time, in the caller's transaction. The grow locks the open digest's
/// row, so a claim (which skips locked rows) cannot close it under this item; one closed just
/// before is not grown, and the attempt runs again to open a new one.
async fn add_digest_item(tx: &Transaction<'_>, env: Env, item: &DigestItem) -> Result<(), Attempt> {
    let (user, at) = (item.distinct_id.as_str(), micros(item.at));
    tx.execute(
        pg(sql::OPEN_DIGEST).as_ref(),
        &[
            &item.new_id,
            &env.as_str(),
            &user,
            &item.workflow,
            &at,
            &sql::WAITING_DUE,
        ],
    )
    .await?;
    let Some(row) = tx
        .query_opt(
            pg(sql::GROW_DIGEST).as_ref(),
            &[&env.as_str(), &user, &item.workflow],
        )
        .await?
    else {
        return Err(Attempt::Retry);
    };
    let (id, items, first_at): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
    tx.execute(
        pg(sql::INSERT_DIGEST_ITEM).as_ref(),
        &[&id, &items, &Json(&item.item), &at],
    )
    .await?;
    let due = item
        .policy
        .due_at(from_micros(first_at), items as u32, item.at)
        .map_or(sql::WAITING_DUE, micros);
    tx.execute(pg(sql::DIGEST_DUE).as_ref(), &[&id, &due])
        .await?;
    Ok(())
}

/// Leases up to `$3` digests due at `$1` until `$2` and closes them; each row as
/// [`sql::DIGEST_COLUMNS`], with its new claim token.
const CLAIM_DIGESTS: &str = "WITH due AS (SELECT id FROM digests WHERE due_at <= $1 \
     ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
     UPDATE digests d SET due_at = $2, claim = d.claim + 1, closed = 1 FROM due \
     WHERE d.id = due.id RETURNING d.id, d.env, d.distinct_id, d.workflow, d.first_at, d.claim";

async fn finish_digest(
    tx: &Transaction<'_>,
    claim: &DigestClaim,
    messages: &[NewMessage],
) -> Result<bool, Attempt> {
    let current = tx
        .query_opt(
            "SELECT claim FROM digests WHERE id = $1 FOR UPDATE",
            &[&claim.id],
        )
        .await?
        .map(|row| row.get::<_, i64>(0));
    if current != Some(claim.token) {
        return Ok(false);
    }
    insert_messages(tx, claim.env, messages).await?;
    for statement in sql::DELETE_DIGEST {
        tx.execute(pg(statement).as_ref(), &[&claim.id]).await?;
    }
    Ok(true)
}

async fn complete(
    tx: &Transaction<'_>,
    claim: &Claim,
    outcome: &Delivery,
    now: DateTime<Utc>,
    next_due: Option<DateTime<Utc>>,
) -> Result<Completion, Attempt> {
    let id = claim.entry.message_id.as_str();
    // The entry's claim (locked) and its message in one round trip; no row: the entry or the
    // message is gone.
    let Some(row) = tx
        .query_opt(pg(sql::CLAIMED_MESSAGE_FOR_UPDATE).as_ref(), &[&id])
        .await?
    else {
        return Ok(Completion::Stale);
    };
    if row.get::<_, i64>(sql::CLAIMED_MESSAGE_CLAIM) != claim.token {
        return Ok(Completion::Stale);
    }
    let (_, mut message) = rows::message(&row)?;
    let Ok(retry_at) = message.settle(outcome, now, next_due) else {
        return Ok(Completion::Stale);
    };
    // The writes that follow are independent: sent together (pipelined) on the connection.
    let entry = async {
        match retry_at {
            Some(due) => tx
                .execute(pg(sql::RETRY_ENTRY).as_ref(), &[&id, &micros(due)])
                .await
                .map_err(Attempt::from),
            None => tx
                .execute(pg(sql::DELETE_ENTRY).as_ref(), &[&id])
                .await
                .map_err(Attempt::from),
        }
    };
    let waiter = async {
        match retry_at {
            Some(_) => Ok(None),
            None => waiter_of(tx, id).await,
        }
    };
    let ((), _, waiter) = try_join3(update_message(tx, &message, now), entry, waiter).await?;
    follow_chain(tx, &message, now, waiter).await?;
    Ok(Completion::Recorded {
        message: Box::new(message),
        retry_at,
        invalid_identity: claim.invalid_identity(outcome),
    })
}

#[async_trait]
impl MessageStore for PostgresStore {
    #[tracing::instrument(skip_all, fields(env = %scope.env(), messages = batch.messages.len()))]
    async fn enqueue_batch(
        &self,
        scope: EnvScope,
        batch: Enqueue,
    ) -> Result<EnqueueOutcome, StoreError> {
        let batch = Arc::new(batch);
        self.in_transaction(|tx| {
            let batch = batch.clone();
            Box::pin(async move { enqueue(tx, scope, &batch).await })
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
        let client = self.client().await?;
        let claimed = client
            .query(
                CLAIM_DIGESTS,
                &[&micros(now), &micros(lease_until), &(limit as i64)],
            )
            .await
            .map_err(db)?;
        let mut claims = Vec::with_capacity(claimed.len());
        for row in &claimed {
            let mut claim = rows::digest(row, Vec::new(), lease_until)?;
            let items = client
                .query(pg(sql::DIGEST_ITEMS).as_ref(), &[&claim.id])
                .await
                .map_err(db)?;
            claim.items = items
                .iter()
                .map(|r| r.json(0).map_err(StoreError::internal))
                .collect::<Result<_, _>>()?;
            claims.push(claim);
        }
        Ok(claims)
    }

    #[tracing::instrument(skip_all, fields(digest = %claim.id))]
    async fn finish_digest(
        &self,
        claim: &DigestClaim,
        messages: Vec<NewMessage>,
    ) -> Result<bool, StoreError> {
        let (claim, messages) = (Arc::new(claim.clone()), Arc::new(messages));
        self.in_transaction(|tx| {
            let (claim, messages) = (claim.clone(), messages.clone());
            Box::pin(async move { finish_digest(tx, &claim, &messages).await })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_trigger_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(pg(sql::PURGE_TRIGGER_KEYS).as_ref(), &[&micros(before)])
            .await
            .map_err(db)
    }

    #[tracing::instrument(skip_all, fields(limit = limit))]
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, StoreError> {
        let lease_until = now + lease;
        let client = self.client().await?;
        let stmt = client.prepare_cached(CLAIM_DUE).await.map_err(db)?;
        let claimed = client
            .query(
                &stmt,
                &[&micros(now), &micros(lease_until), &(limit as i64)],
            )
            .await
            .map_err(db)?;
        claimed
            .iter()
            .map(|row| {
                let (entry, token) = rows::entry(row)?;
                Ok(Claim {
                    entry,
                    lease_until,
                    token,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(message = %claim.entry.message_id))]
    async fn complete(
        &self,
        claim: &Claim,
        outcome: &Delivery,
        now: DateTime<Utc>,
        next_due: Option<DateTime<Utc>>,
    ) -> Result<Completion, StoreError> {
        let (claim, outcome) = (Arc::new(claim.clone()), Arc::new(outcome.clone()));
        self.in_transaction(|tx| {
            let (claim, outcome) = (claim.clone(), outcome.clone());
            Box::pin(async move { complete(tx, &claim, &outcome, now, next_due).await })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(claims = claims.len()))]
    async fn release(&self, claims: &[Claim]) -> Result<(), StoreError> {
        let client = self.client().await?;
        for c in claims {
            client
                .execute(
                    pg(sql::RELEASE_ENTRY).as_ref(),
                    &[&c.entry.message_id, &micros(c.entry.due_at), &c.token],
                )
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(message = %claim.entry.message_id))]
    async fn open_gate(
        &self,
        claim: &Claim,
        now: DateTime<Utc>,
    ) -> Result<GateOutcome, StoreError> {
        let claim = Arc::new(claim.clone());
        self.in_transaction(|tx| {
            let claim = claim.clone();
            Box::pin(async move { open_gate(tx, &claim, now).await })
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
        let id: Arc<str> = id.into();
        self.in_transaction(|tx| {
            let id = id.clone();
            Box::pin(async move { engage(tx, scope, &id, event, now).await })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn get_message(&self, scope: EnvScope, id: &str) -> Result<Option<Message>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(pg(sql::GET_MESSAGE).as_ref(), &[&scope.env().as_str(), &id])
            .await
            .map_err(db)?;
        Ok(row.as_ref().map(rows::message).transpose()?.map(|(_, m)| m))
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env()))]
    async fn message_by_provider_id(
        &self,
        scope: EnvScope,
        provider_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                pg(sql::MESSAGE_BY_PROVIDER_ID).as_ref(),
                &[&scope.env().as_str(), &provider_id],
            )
            .await
            .map_err(db)?;
        Ok(row.as_ref().map(rows::message).transpose()?.map(|(_, m)| m))
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), message = %id))]
    async fn hear(
        &self,
        scope: EnvScope,
        id: &str,
        answer: &LateAnswer,
        now: DateTime<Utc>,
    ) -> Result<Option<Heard>, StoreError> {
        let (id, answer) = (Arc::new(id.to_owned()), Arc::new(answer.clone()));
        self.in_transaction(|tx| {
            let (id, answer) = (id.clone(), answer.clone());
            Box::pin(async move {
                let row = tx
                    .query_opt(
                        pg(sql::GET_MESSAGE_FOR_UPDATE).as_ref(),
                        &[&scope.env().as_str(), &id.as_str()],
                    )
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let (_, mut message) = rows::message(&row)?;
                let changed = message.hear(&answer, now).unwrap_or(false);
                if changed {
                    update_message(tx, &message, now).await?;
                }
                Ok(Some(Heard {
                    message: Box::new(message),
                    changed,
                }))
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(env = %scope.env(), limit = query.limit))]
    async fn list_messages(
        &self,
        scope: EnvScope,
        query: &MessageQuery,
    ) -> Result<MessagePage, StoreError> {
        let sql = crate::query::message_page(Dialect::Postgres, scope.env(), query);
        let limit = query.limit;
        self.listing(scope.env(), move |tx| {
            Box::pin(async move {
                let found = super::listing::run(tx, &sql).await?;
                let found = found
                    .iter()
                    .map(rows::message)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows::message_page(found, limit))
            })
        })
        .await
    }
}
