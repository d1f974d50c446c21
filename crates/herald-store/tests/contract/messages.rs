//! The message log and the outbox: atomic enqueue, trigger idempotency, exclusive leased claims
//! across nodes, completion under the current claim only, retries, release, listing, erasure.

use super::{backends, ctx, edit, id};
use chrono::{DateTime, Duration, Utc};
use herald_core::channel::{Channel, Identity};
use herald_core::delivery::{Content, Delivery};
use herald_core::engagement::{Event, Gate, Until};
use herald_core::message::{Message, MessageOrigin, MessageStatus, SkipReason};
use herald_core::profile::truncate;
use herald_core::service::profiles;
use herald_core::store::{
    Claim, Completion, Engaged, EnqueueOutcome, GateOutcome, MessageQuery, NewMessage, OnceKey,
    Store,
};
use herald_core::{Env, EnvScope};
use serde_json::json;
use std::collections::BTreeSet;

const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

fn origin(env: Env, msg: &str, user: &str, channel: Channel, workflow: &str) -> MessageOrigin {
    MessageOrigin {
        id: msg.into(),
        env,
        workflow: workflow.into(),
        category: Some(format!("{workflow}-news")),
        distinct_id: id(user),
        channel,
        trigger_id: format!("t-{msg}"),
        idempotency_key: None,
    }
}

fn email(user: &str) -> Identity {
    Identity::parse(
        Channel::Email,
        &json!(format!("{user}@example.com")),
        &Default::default(),
    )
    .unwrap()
}

/// A queued email to `user`, created at `at`.
fn queued_at(env: Env, msg: &str, user: &str, at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        message: Message::queued(
            origin(env, msg, user, Channel::Email, "welcome"),
            email(user),
            at,
        ),
        content: Some(Content::Email {
            subject: format!("Hi {user}"),
            html: None,
            text: Some(format!("message {msg}")),
        }),
        waits_for: None,
        gate: None,
    }
}

fn queued(env: Env, msg: &str, user: &str) -> NewMessage {
    queued_at(env, msg, user, truncate(Utc::now()))
}

fn skipped(env: Env, msg: &str, user: &str, channel: Channel, workflow: &str) -> NewMessage {
    NewMessage {
        message: Message::skipped(
            origin(env, msg, user, channel, workflow),
            SkipReason::CategoryOptedOut,
            truncate(Utc::now()),
        ),
        content: None,
        waits_for: None,
        gate: None,
    }
}

fn scope(env: Env) -> EnvScope {
    EnvScope::operator(env)
}

fn enqueued(ids: &[&str]) -> EnqueueOutcome {
    EnqueueOutcome::Enqueued {
        message_ids: ids.iter().map(|s| s.to_string()).collect(),
    }
}

/// Everything due far in the future (nothing is leased that long).
async fn claim_all(store: &dyn Store) -> Vec<Claim> {
    store
        .claim_due(Utc::now() + Duration::days(1), LEASE, 10_000)
        .await
        .unwrap()
}

fn sent() -> Delivery {
    Delivery::Sent {
        provider_id: Some("p-1".into()),
    }
}

fn statuses(m: &Message) -> Vec<MessageStatus> {
    m.history.iter().map(|c| c.status).collect()
}

#[tokio::test]
async fn enqueue_writes_messages_and_entries_in_one_transaction() {
    for b in backends().await {
        let s = b.store.as_ref();
        let batch = vec![
            queued(Env::Test, "m1", "ada"),
            skipped(Env::Test, "m2", "ada", Channel::Sms, "welcome"),
        ];
        let wrote = s.enqueue(scope(Env::Test), batch.clone(), None).await;
        assert_eq!(wrote.unwrap(), enqueued(&["m1", "m2"]), "{}", b.name);
        for new in &batch {
            let stored = s.get_message(scope(Env::Test), &new.message.id).await;
            assert_eq!(stored.unwrap().as_ref(), Some(&new.message), "{}", b.name);
        }
        // A duplicate id in the middle of a batch rolls the whole batch back.
        let bad = vec![
            queued(Env::Test, "m3", "bob"),
            queued(Env::Test, "m1", "bob"),
            queued(Env::Test, "m4", "bob"),
        ];
        assert!(s.enqueue(scope(Env::Test), bad, None).await.is_err());
        // So does a queued message with nothing to send, after a good one.
        let mut empty = queued(Env::Test, "m6", "bob");
        empty.content = None;
        let bad = vec![queued(Env::Test, "m5", "bob"), empty];
        assert!(s.enqueue(scope(Env::Test), bad, None).await.is_err());
        for gone in ["m3", "m4", "m5", "m6"] {
            let found = s.get_message(scope(Env::Test), gone).await.unwrap();
            assert_eq!(found, None, "{}: {gone} written", b.name);
        }
        // Only the queued message of the first batch has an entry, with what to send.
        let claims = claim_all(s).await;
        assert_eq!(claims.len(), 1, "{}", b.name);
        let entry = &claims[0].entry;
        assert_eq!(entry.message_id, "m1");
        assert_eq!((entry.env, entry.attempt), (Env::Test, 0));
        assert_eq!(entry.identity, email("ada"));
        assert_eq!(Some(&entry.content), batch[0].content.as_ref());
        assert_eq!(entry.due_at, batch[0].message.created_at);
    }
}

#[tokio::test]
async fn a_trigger_key_enqueues_once_per_env() {
    for b in backends().await {
        let s = b.store.as_ref();
        let key = |fp: &str| OnceKey {
            key: "order-42".into(),
            fingerprint: Some(fp.into()),
        };
        let first = vec![
            queued(Env::Live, "a1", "ada"),
            queued(Env::Live, "a2", "bob"),
        ];
        let outcome = s.enqueue(scope(Env::Live), first, Some(&key("f1"))).await;
        assert_eq!(outcome.unwrap(), enqueued(&["a1", "a2"]), "{}", b.name);
        let again = s
            .enqueue(
                scope(Env::Live),
                vec![queued(Env::Live, "a3", "ada")],
                Some(&key("f1")),
            )
            .await
            .unwrap();
        assert_eq!(
            again,
            EnqueueOutcome::AlreadyEnqueued {
                message_ids: vec!["a1".into(), "a2".into()]
            },
            "{}",
            b.name
        );
        let other = s
            .enqueue(
                scope(Env::Live),
                vec![queued(Env::Live, "a4", "ada")],
                Some(&key("f2")),
            )
            .await
            .unwrap();
        assert_eq!(other, EnqueueOutcome::KeyReused, "{}", b.name);
        for gone in ["a3", "a4"] {
            assert_eq!(s.get_message(scope(Env::Live), gone).await.unwrap(), None);
        }
        assert_eq!(
            claim_all(s).await.len(),
            2,
            "{}: a repeat wrote entries",
            b.name
        );
        // The same key is new in the other environment, and again once purged.
        let test = s
            .enqueue(
                scope(Env::Test),
                vec![queued(Env::Test, "t1", "ada")],
                Some(&key("f1")),
            )
            .await;
        assert_eq!(test.unwrap(), enqueued(&["t1"]), "{}", b.name);
        let purged = s
            .purge_trigger_keys(Utc::now() + Duration::seconds(1))
            .await;
        assert_eq!(purged.unwrap(), 2, "{}", b.name);
        let after = s
            .enqueue(
                scope(Env::Live),
                vec![queued(Env::Live, "a5", "ada")],
                Some(&key("f2")),
            )
            .await;
        assert_eq!(after.unwrap(), enqueued(&["a5"]), "{}", b.name);
    }
}

#[tokio::test]
async fn one_trigger_key_sent_to_two_nodes_at_once_enqueues_once() {
    for b in backends().await {
        let key = OnceKey {
            key: "race".into(),
            fingerprint: Some("f".into()),
        };
        let nodes = [b.store.clone(), b.another_node().await];
        let tasks: Vec<_> = nodes
            .into_iter()
            .enumerate()
            .map(|(n, node)| {
                let key = key.clone();
                tokio::spawn(async move {
                    let batch = (0..20)
                        .map(|i| queued(Env::Test, &format!("n{n}-{i}"), "ada"))
                        .collect();
                    node.enqueue(scope(Env::Test), batch, Some(&key))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let firsts: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                EnqueueOutcome::Enqueued { message_ids } => Some(message_ids.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(firsts.len(), 1, "{}: {outcomes:?}", b.name);
        let repeat = EnqueueOutcome::AlreadyEnqueued {
            message_ids: firsts[0].clone(),
        };
        assert!(outcomes.contains(&repeat), "{}: {outcomes:?}", b.name);
        assert_eq!(claim_all(b.store.as_ref()).await.len(), 20, "{}", b.name);
    }
}

#[tokio::test]
async fn two_nodes_claiming_at_once_claim_each_entry_once() {
    for b in backends().await {
        let batch: Vec<_> = (0..200)
            .map(|i| {
                let env = if i % 2 == 0 { Env::Test } else { Env::Live };
                queued(env, &format!("c{i:03}"), &format!("u{i}"))
            })
            .collect();
        for env in Env::ALL {
            let mine = batch.iter().filter(|n| n.message.env == env).cloned();
            b.store
                .enqueue(scope(env), mine.collect(), None)
                .await
                .unwrap();
        }
        let other = b.another_node().await;
        let mut tasks = Vec::new();
        for node in [b.store.clone(), other] {
            for _ in 0..4 {
                let node = node.clone();
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let claims = node.claim_due(Utc::now(), LEASE, 7).await.unwrap();
                        if claims.is_empty() {
                            return mine;
                        }
                        mine.extend(claims.into_iter().map(|c| c.entry.message_id));
                    }
                }));
            }
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let distinct: BTreeSet<_> = all.iter().cloned().collect();
        assert_eq!(all.len(), 200, "{}: an entry was claimed twice", b.name);
        assert_eq!(distinct.len(), 200, "{}", b.name);
    }
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again_and_the_stale_completion_changes_nothing() {
    for b in backends().await {
        let s = b.store.as_ref();
        s.enqueue(scope(Env::Test), vec![queued(Env::Test, "x1", "ada")], None)
            .await
            .unwrap();
        let t0 = Utc::now();
        let lease = std::time::Duration::from_secs(10);
        let first = s.claim_due(t0, lease, 10).await.unwrap();
        assert_eq!(first.len(), 1, "{}", b.name);
        let later = t0 + Duration::seconds(5);
        assert!(s.claim_due(later, lease, 10).await.unwrap().is_empty());
        // The first worker died: after its lease, another takes the entry and sends it.
        let expired = t0 + Duration::seconds(11);
        let second = s.claim_due(expired, lease, 10).await.unwrap();
        assert_eq!(second.len(), 1, "{}: an expired lease is due again", b.name);
        let done = s
            .complete(&second[0], &sent(), expired, None)
            .await
            .unwrap();
        assert!(matches!(done, Completion::Recorded { retry_at: None, .. }));
        // The first worker's late completion is refused, whatever it says.
        for outcome in [
            sent(),
            Delivery::Retry {
                reason: "late".into(),
                after: None,
            },
        ] {
            let stale = s
                .complete(&first[0], &outcome, expired, Some(expired))
                .await;
            assert_eq!(stale.unwrap(), Completion::Stale, "{}", b.name);
        }
        let m = s
            .get_message(scope(Env::Test), "x1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(statuses(&m), [MessageStatus::Queued, MessageStatus::Sent]);
        assert_eq!((m.attempts, m.provider_id.as_deref()), (1, Some("p-1")));
        // Final: the entry is gone, and completing the same claim again is stale too.
        assert!(claim_all(s).await.is_empty(), "{}", b.name);
        let twice = s.complete(&second[0], &sent(), expired, None).await;
        assert_eq!(twice.unwrap(), Completion::Stale, "{}", b.name);
    }
}

#[tokio::test]
async fn a_retry_reschedules_with_one_more_attempt_and_a_final_failure_removes_the_entry() {
    for b in backends().await {
        let s = b.store.as_ref();
        let batch = vec![
            queued(Env::Test, "r1", "ada"),
            queued(Env::Test, "r2", "bob"),
        ];
        s.enqueue(scope(Env::Test), batch, None).await.unwrap();
        let t0 = truncate(Utc::now());
        let claims = s.claim_due(t0, LEASE, 10).await.unwrap();
        let (r1, r2) = if claims[0].entry.message_id == "r1" {
            (&claims[0], &claims[1])
        } else {
            (&claims[1], &claims[0])
        };
        let retry = Delivery::Retry {
            reason: "HTTP 503".into(),
            after: None,
        };
        let t1 = t0 + Duration::seconds(30);
        let done = s.complete(r1, &retry, t0, Some(t1)).await.unwrap();
        let Completion::Recorded {
            message, retry_at, ..
        } = done
        else {
            panic!("{}: {done:?}", b.name)
        };
        assert_eq!(
            (message.status, retry_at),
            (MessageStatus::Queued, Some(t1))
        );
        // Retries spent: a retry with no next attempt fails the message.
        let spent = s.complete(r2, &retry, t0, None).await.unwrap();
        assert!(
            matches!(&spent, Completion::Recorded { message, retry_at: None, .. }
                if message.status == MessageStatus::Failed && message.reason.as_deref() == Some("HTTP 503"))
        );
        assert!(s
            .claim_due(t1 - Duration::seconds(1), LEASE, 10)
            .await
            .unwrap()
            .is_empty());
        let again = s.claim_due(t1, LEASE, 10).await.unwrap();
        assert_eq!(again.len(), 1, "{}", b.name);
        assert_eq!(
            (again[0].entry.message_id.as_str(), again[0].entry.attempt),
            ("r1", 1)
        );
        let dead = Delivery::Failed {
            reason: "550 no such user".into(),
            identity_invalid: true,
        };
        let failed = s.complete(&again[0], &dead, t1, None).await.unwrap();
        let Completion::Recorded {
            message,
            invalid_identity,
            ..
        } = failed
        else {
            panic!("{}: {failed:?}", b.name)
        };
        assert_eq!(invalid_identity, Some(email("ada")), "{}", b.name);
        assert_eq!(message.attempts, 2);
        let stored = s
            .get_message(scope(Env::Test), "r1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, *message, "{}", b.name);
        use MessageStatus::*;
        assert_eq!(statuses(&stored), [Queued, Queued, Failed]);
        assert!(
            claim_all(s).await.is_empty(),
            "{}: a final outcome left its entry",
            b.name
        );
    }
}

#[tokio::test]
async fn released_claims_are_due_again_at_once() {
    for b in backends().await {
        let s = b.store.as_ref();
        let batch = (0..3)
            .map(|i| queued(Env::Live, &format!("l{i}"), "ada"))
            .collect();
        s.enqueue(scope(Env::Live), batch, None).await.unwrap();
        let now = Utc::now();
        let claims = s.claim_due(now, LEASE, 10).await.unwrap();
        assert_eq!(claims.len(), 3, "{}", b.name);
        assert!(s.claim_due(now, LEASE, 10).await.unwrap().is_empty());
        s.release(&claims).await.unwrap();
        let again = s.claim_due(now, LEASE, 10).await.unwrap();
        assert_eq!(again.len(), 3, "{}: released entries are not due", b.name);
        // A release of an outdated claim gives nothing back, and its completion is stale.
        s.release(&claims).await.unwrap();
        assert!(
            s.claim_due(now, LEASE, 10).await.unwrap().is_empty(),
            "{}",
            b.name
        );
        let stale = s.complete(&claims[0], &sent(), now, None).await.unwrap();
        assert_eq!(stale, Completion::Stale, "{}", b.name);
    }
}

#[tokio::test]
async fn listings_filter_page_newest_first_and_stay_in_their_env() {
    for b in backends().await {
        let s = b.store.as_ref();
        let t0 = truncate(Utc::now());
        for env in Env::ALL {
            let p = env.as_str();
            let batch = vec![
                queued_at(env, &format!("{p}-1"), "ada", t0),
                skipped(env, &format!("{p}-2"), "ada", Channel::Sms, "digest"),
                queued_at(env, &format!("{p}-3"), "bob", t0 + Duration::seconds(10)),
                skipped(env, &format!("{p}-4"), "bob", Channel::Slack, "welcome"),
                queued_at(env, &format!("{p}-5"), "ada", t0 + Duration::seconds(20)),
            ];
            s.enqueue(scope(env), batch, None).await.unwrap();
        }
        let ids = |q: MessageQuery| async move {
            let page = s.list_messages(scope(Env::Test), &q).await.unwrap();
            page.messages.into_iter().map(|m| m.id).collect::<Vec<_>>()
        };
        let q = |limit| MessageQuery {
            limit,
            ..MessageQuery::default()
        };
        assert_eq!(
            ids(q(10)).await,
            ["test-5", "test-4", "test-3", "test-2", "test-1"]
        );
        let by_user = MessageQuery {
            distinct_ids: vec![id("ada")],
            ..q(10)
        };
        assert_eq!(
            ids(by_user).await,
            ["test-5", "test-2", "test-1"],
            "{}",
            b.name
        );
        // Several users: any of them (a user with no messages changes nothing), and the other
        // filters still apply to each.
        let by_users = MessageQuery {
            distinct_ids: vec![id("bob"), id("nobody"), id("ada")],
            ..q(10)
        };
        assert_eq!(
            ids(by_users.clone()).await,
            ["test-5", "test-4", "test-3", "test-2", "test-1"],
            "{}",
            b.name
        );
        let queued_of_both = MessageQuery {
            status: Some(MessageStatus::Queued),
            before: Some(i64::MAX),
            ..by_users
        };
        assert_eq!(
            ids(queued_of_both).await,
            ["test-5", "test-3", "test-1"],
            "{}",
            b.name
        );
        let only_bob = MessageQuery {
            distinct_ids: vec![id("bob"), id("cy")],
            ..q(10)
        };
        assert_eq!(ids(only_bob).await, ["test-4", "test-3"], "{}", b.name);
        let by_status = MessageQuery {
            status: Some(MessageStatus::Skipped),
            ..q(10)
        };
        assert_eq!(ids(by_status).await, ["test-4", "test-2"], "{}", b.name);
        let by_channel = MessageQuery {
            channel: Some(Channel::Slack),
            ..q(10)
        };
        assert_eq!(ids(by_channel).await, ["test-4"], "{}", b.name);
        let by_workflow = MessageQuery {
            workflow: Some("digest".into()),
            ..q(10)
        };
        assert_eq!(ids(by_workflow).await, ["test-2"], "{}", b.name);
        let by_category = MessageQuery {
            category: Some("welcome-news".into()),
            ..q(10)
        };
        assert_eq!(ids(by_category).await.len(), 4, "{}", b.name);
        let window = MessageQuery {
            created_after: Some(t0 + Duration::seconds(10)),
            created_before: Some(t0 + Duration::seconds(20)),
            channel: Some(Channel::Email),
            ..q(10)
        };
        assert_eq!(ids(window).await, ["test-3"], "{}", b.name);
        // Paging by the cursor visits each message once, newest first.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = s
                .list_messages(scope(Env::Test), &MessageQuery { before, ..q(2) })
                .await
                .unwrap();
            seen.extend(page.messages.iter().map(|m| m.id.clone()));
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            ["test-5", "test-4", "test-3", "test-2", "test-1"],
            "{}",
            b.name
        );
        let ada = s
            .user_messages(scope(Env::Live), &id("ada"), None, 2)
            .await
            .unwrap();
        let ada_ids: Vec<_> = ada.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ada_ids, ["live-5", "live-2"], "{}", b.name);
        assert!(ada.next.is_some());
        // Another environment's message is not found by id either.
        assert_eq!(
            s.get_message(scope(Env::Test), "live-1").await.unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn deleting_a_user_erases_their_messages_and_outbox_entries() {
    for b in backends().await {
        let s = b.store.as_ref();
        for user in ["ada", "bob"] {
            edit(s, Env::Test, user, json!([{"$set": {"x": 1}}]))
                .await
                .unwrap();
        }
        let batch = [
            queued(Env::Test, "d1", "ada"),
            skipped(Env::Test, "d2", "ada", Channel::Sms, "welcome"),
            queued(Env::Test, "d3", "bob"),
            queued(Env::Live, "d4", "ada"),
        ];
        let (test, live) = batch.split_at(3);
        s.enqueue(scope(Env::Test), test.to_vec(), None)
            .await
            .unwrap();
        s.enqueue(scope(Env::Live), live.to_vec(), None)
            .await
            .unwrap();
        profiles::bulk_delete(s, &ctx(Env::Test), &[id("ada")])
            .await
            .unwrap();
        for gone in ["d1", "d2"] {
            assert_eq!(s.get_message(scope(Env::Test), gone).await.unwrap(), None);
        }
        let left: BTreeSet<_> = claim_all(s)
            .await
            .into_iter()
            .map(|c| c.entry.message_id)
            .collect();
        assert_eq!(
            left,
            BTreeSet::from(["d3".into(), "d4".into()]),
            "{}",
            b.name
        );
        assert!(s
            .get_message(scope(Env::Live), "d4")
            .await
            .unwrap()
            .is_some());
    }
}

fn sms(user: &str) -> Identity {
    let _ = user;
    Identity::parse(Channel::Sms, &json!("+14155550100"), &Default::default()).unwrap()
}

/// A `first_success` chain for `user`: an email sent now (`{p}1`), then an SMS (`{p}2`)
/// waiting for it, then another email (`{p}3`) waiting for the SMS.
fn chain(env: Env, p: &str, user: &str) -> Vec<NewMessage> {
    let first = queued(env, &format!("{p}1"), user);
    let at = first.message.created_at;
    let second = NewMessage {
        message: Message::waiting(
            origin(env, &format!("{p}2"), user, Channel::Sms, "welcome"),
            sms(user),
            &first.message,
            at,
        ),
        content: Some(Content::Sms {
            text: format!("sms to {user}"),
        }),
        waits_for: Some(first.message.id.clone()),
        gate: None,
    };
    let third = NewMessage {
        message: Message::waiting(
            origin(env, &format!("{p}3"), user, Channel::Email, "welcome"),
            email(user),
            &second.message,
            at,
        ),
        content: Some(Content::Email {
            subject: "again".into(),
            html: None,
            text: Some("third".into()),
        }),
        waits_for: Some(second.message.id.clone()),
        gate: None,
    };
    vec![first, second, third]
}

async fn stored(s: &dyn Store, env: Env, id: &str) -> Message {
    s.get_message(scope(env), id).await.unwrap().unwrap()
}

fn ids(claims: &[Claim]) -> Vec<&str> {
    claims.iter().map(|c| c.entry.message_id.as_str()).collect()
}

#[tokio::test]
async fn a_fallback_waits_unclaimed_until_the_message_before_it_fails_for_good() {
    use MessageStatus::*;
    for b in backends().await {
        let s = b.store.as_ref();
        let batch = chain(Env::Test, "f", "ada");
        s.enqueue(scope(Env::Test), batch.clone(), None)
            .await
            .unwrap();
        // Recorded waiting, visible in the log with what it waits for; only the first is due.
        let second = stored(s, Env::Test, "f2").await;
        assert_eq!(second, batch[1].message, "{}", b.name);
        assert_eq!(second.reason.as_deref(), Some("waits for f1 (email)"));
        let t0 = truncate(Utc::now());
        let claims = s.claim_due(t0, LEASE, 10).await.unwrap();
        assert_eq!(ids(&claims), ["f1"], "{}", b.name);
        // (Within the first's lease: a year later would claim it again, as a lease ran out.)
        let within = s.claim_due(t0 + Duration::seconds(50), LEASE, 10).await;
        assert!(within.unwrap().is_empty(), "{}: a fallback was due", b.name);
        // A retryable failure of the first: retried later, the fallback still waits.
        let retry = Delivery::Retry {
            reason: "HTTP 503".into(),
            after: None,
        };
        let t1 = t0 + Duration::seconds(30);
        s.complete(&claims[0], &retry, t0, Some(t1)).await.unwrap();
        assert_eq!(stored(s, Env::Test, "f2").await.status, Waiting);
        let again = s.claim_due(t1, LEASE, 10).await.unwrap();
        assert_eq!(ids(&again), ["f1"], "{}", b.name);
        // A stale completion (a lease that ran out) moves nothing either.
        let stale = s.complete(&claims[0], &retry, t1, None).await.unwrap();
        assert_eq!(stale, Completion::Stale, "{}", b.name);
        assert_eq!(stored(s, Env::Test, "f2").await.status, Waiting);
        // The retries are spent: the first fails, and in the same completion the SMS is due.
        s.complete(&again[0], &retry, t1, None).await.unwrap();
        assert_eq!(stored(s, Env::Test, "f1").await.status, Failed);
        let second = stored(s, Env::Test, "f2").await;
        assert_eq!(statuses(&second), [Waiting, Queued], "{}", b.name);
        assert_eq!(second.reason.as_deref(), Some("email failed"));
        assert_eq!(stored(s, Env::Test, "f3").await.status, Waiting);
        let next = s.claim_due(t1, LEASE, 10).await.unwrap();
        assert_eq!(
            ids(&next),
            ["f2"],
            "{}: the fallback is due at once",
            b.name
        );
        assert_eq!(next[0].entry.attempt, 0);
        assert_eq!(next[0].entry.identity, sms("ada"));
        assert_eq!(Some(&next[0].entry.content), batch[1].content.as_ref());
        // The SMS is sent: the last fallback is closed, never sent, and its entry gone.
        s.complete(&next[0], &sent(), t1, None).await.unwrap();
        let third = stored(s, Env::Test, "f3").await;
        assert_eq!(statuses(&third), [Waiting, Skipped], "{}", b.name);
        assert_eq!(third.reason.as_deref(), Some("sent_on_other_channel"));
        assert!(claim_all(s).await.is_empty(), "{}", b.name);
    }
}

#[tokio::test]
async fn once_a_message_is_sent_every_fallback_after_it_is_skipped() {
    use MessageStatus::*;
    for b in backends().await {
        let s = b.store.as_ref();
        s.enqueue(scope(Env::Live), chain(Env::Live, "s", "ada"), None)
            .await
            .unwrap();
        // Another user's chain in the same environment is not touched.
        s.enqueue(scope(Env::Live), chain(Env::Live, "o", "bob"), None)
            .await
            .unwrap();
        let t0 = truncate(Utc::now());
        let claims = s.claim_due(t0, LEASE, 10).await.unwrap();
        let mine = claims.iter().find(|c| c.entry.message_id == "s1").unwrap();
        let done = s.complete(mine, &sent(), t0, None).await.unwrap();
        assert!(matches!(&done, Completion::Recorded { message, .. } if message.status == Sent));
        for id in ["s2", "s3"] {
            let m = stored(s, Env::Live, id).await;
            assert_eq!(statuses(&m), [Waiting, Skipped], "{}: {id}", b.name);
            assert_eq!(m.reason.as_deref(), Some("sent_on_other_channel"));
            assert_eq!(m.attempts, 0);
        }
        assert_eq!(stored(s, Env::Live, "o2").await.status, Waiting);
        // A permanent failure of bob's first message hands over to his SMS.
        let other = claims.iter().find(|c| c.entry.message_id == "o1").unwrap();
        let dead = Delivery::Failed {
            reason: "550 no such user".into(),
            identity_invalid: true,
        };
        s.complete(other, &dead, t0, None).await.unwrap();
        assert_eq!(ids(&claim_all(s).await), ["o2"], "{}", b.name);
    }
}

#[tokio::test]
async fn a_broken_fallback_chain_is_refused_and_writes_nothing() {
    for b in backends().await {
        let s = b.store.as_ref();
        let mut batch = chain(Env::Test, "b", "ada");
        // The last waits for a message that is not in the batch.
        batch[2].waits_for = Some("elsewhere".into());
        assert!(s.enqueue(scope(Env::Test), batch, None).await.is_err());
        // A waiting message written before the one it waits for.
        let mut batch = chain(Env::Test, "b", "ada");
        batch.swap(0, 1);
        assert!(s.enqueue(scope(Env::Test), batch, None).await.is_err());
        for gone in ["b1", "b2", "b3"] {
            let found = s.get_message(scope(Env::Test), gone).await.unwrap();
            assert_eq!(found, None, "{}: {gone} written", b.name);
        }
        assert!(claim_all(s).await.is_empty(), "{}", b.name);
    }
}

#[tokio::test]
async fn erasing_a_user_erases_their_waiting_fallbacks() {
    for b in backends().await {
        let s = b.store.as_ref();
        edit(s, Env::Test, "ada", json!([{"$set": {"x": 1}}]))
            .await
            .unwrap();
        s.enqueue(scope(Env::Test), chain(Env::Test, "e", "ada"), None)
            .await
            .unwrap();
        let claims = claim_all(s).await;
        profiles::bulk_delete(s, &ctx(Env::Test), &[id("ada")])
            .await
            .unwrap();
        // The first's late failure finds nothing to hand over to, and nothing is left.
        let failed = Delivery::Failed {
            reason: "x".into(),
            identity_invalid: false,
        };
        let done = s.complete(&claims[0], &failed, Utc::now(), None).await;
        assert_eq!(done.unwrap(), Completion::Stale, "{}", b.name);
        for gone in ["e1", "e2", "e3"] {
            assert_eq!(s.get_message(scope(Env::Test), gone).await.unwrap(), None);
        }
        assert!(claim_all(s).await.is_empty(), "{}", b.name);
    }
}

#[tokio::test]
async fn late_answers_find_a_message_by_provider_id_in_its_env_and_apply_once() {
    use herald_core::message::LateAnswer;
    for b in backends().await {
        let s = b.store.as_ref();
        for (env, msg) in [(Env::Test, "m1"), (Env::Live, "m2")] {
            s.enqueue(scope(env), vec![queued(env, msg, "ada")], None)
                .await
                .unwrap();
        }
        // Both sent; the provider gave both the same id (two accounts, two environments).
        for claim in claim_all(s).await {
            s.complete(&claim, &sent(), Utc::now(), None).await.unwrap();
        }
        let found = s.message_by_provider_id(scope(Env::Test), "p-1").await;
        assert_eq!(
            found.unwrap().map(|m| m.id),
            Some("m1".into()),
            "{}",
            b.name
        );
        let found = s.message_by_provider_id(scope(Env::Live), "p-1").await;
        assert_eq!(
            found.unwrap().map(|m| m.id),
            Some("m2".into()),
            "{}",
            b.name
        );
        let none = s.message_by_provider_id(scope(Env::Test), "p-9").await;
        assert_eq!(none.unwrap(), None, "{}", b.name);

        let failed = LateAnswer::Failed {
            reason: "undelivered".into(),
            identity_invalid: true,
        };
        let at = truncate(Utc::now());
        let heard = s
            .hear(scope(Env::Test), "m1", &failed, at)
            .await
            .unwrap()
            .unwrap();
        assert!(heard.changed, "{}", b.name);
        assert_eq!(heard.message.status, MessageStatus::Failed, "{}", b.name);
        let stored_m1 = stored(s, Env::Test, "m1").await;
        assert_eq!(stored_m1, *heard.message, "{}: as stored", b.name);
        assert_eq!(
            statuses(&stored_m1),
            [
                MessageStatus::Queued,
                MessageStatus::Sent,
                MessageStatus::Failed
            ]
        );
        // Heard again: nothing changes. Another environment's id: no such message.
        let again = s
            .hear(scope(Env::Test), "m1", &failed, at)
            .await
            .unwrap()
            .unwrap();
        assert!(!again.changed, "{}", b.name);
        assert_eq!(stored(s, Env::Test, "m1").await, stored_m1, "{}", b.name);
        let other = s
            .hear(scope(Env::Test), "m2", &LateAnswer::Delivered, at)
            .await;
        assert_eq!(other.unwrap(), None, "{}", b.name);
        assert_eq!(stored(s, Env::Live, "m2").await.status, MessageStatus::Sent);
        // A move the rules refuse (failed → delivered) is not applied.
        let refused = s
            .hear(scope(Env::Test), "m1", &LateAnswer::Delivered, at)
            .await
            .unwrap()
            .unwrap();
        assert!(!refused.changed, "{}", b.name);
        assert_eq!(stored(s, Env::Test, "m1").await, stored_m1, "{}", b.name);
    }
}

/// A `smart` pair of one trigger for `user`: an email (`{p}1`) queued now, then an SMS (`{p}2`)
/// waiting for it with a gate (15 minutes, until seen).
fn smart_pair(env: Env, p: &str, user: &str) -> Vec<NewMessage> {
    let trigger = |msg: String, channel| MessageOrigin {
        trigger_id: format!("t-{p}"),
        ..origin(env, &msg, user, channel, "nudge")
    };
    let at = truncate(Utc::now());
    let first = NewMessage {
        message: Message::queued(trigger(format!("{p}1"), Channel::Email), email(user), at),
        content: Some(Content::Email {
            subject: "s".into(),
            html: None,
            text: Some("t".into()),
        }),
        waits_for: None,
        gate: None,
    };
    let second = NewMessage {
        message: Message::waiting(
            trigger(format!("{p}2"), Channel::Sms),
            sms(user),
            &first.message,
            at,
        ),
        content: Some(Content::Sms { text: "sms".into() }),
        waits_for: Some(first.message.id.clone()),
        gate: Some(Gate {
            wait: Duration::minutes(15),
            until: Until::Seen,
        }),
    };
    vec![first, second]
}

#[tokio::test]
async fn a_smart_step_is_due_after_the_send_and_its_gate_reads_the_triggers_engagement() {
    use MessageStatus::*;
    let sent = Delivery::Sent { provider_id: None };
    for b in backends().await {
        let s = b.store.as_ref();
        for (p, engaged) in [("g", true), ("h", false)] {
            s.enqueue(scope(Env::Test), smart_pair(Env::Test, p, "ada"), None)
                .await
                .unwrap();
            let t0 = truncate(Utc::now());
            let first = format!("{p}1");
            let second = format!("{p}2");
            let claims = s.claim_due(t0, LEASE, 10).await.unwrap();
            assert_eq!(ids(&claims), [first.as_str()], "{}", b.name);
            // Engagement before the send is refused: it never went out.
            assert!(matches!(
                s.engage(scope(Env::Test), &first, Event::Seen, t0)
                    .await
                    .unwrap(),
                Engaged::Refused(_)
            ));
            s.complete(&claims[0], &sent, t0, None).await.unwrap();
            // Still waiting, due 15 minutes after the send.
            let waiting = stored(s, Env::Test, &second).await;
            assert_eq!(waiting.status, Waiting, "{}", b.name);
            assert!(waiting.reason.unwrap().contains("unless seen"));
            let early = t0 + Duration::minutes(14);
            assert!(s.claim_due(early, LEASE, 10).await.unwrap().is_empty());
            if engaged {
                let Engaged::Recorded { message, changed } = s
                    .engage(scope(Env::Test), &first, Event::Clicked, early)
                    .await
                    .unwrap()
                else {
                    panic!("not recorded");
                };
                assert!(changed);
                assert_eq!(message.clicked_at, Some(early));
                assert_eq!(stored(s, Env::Test, &first).await.seen_at, Some(early));
                // A repeat changes nothing; another environment has no such message.
                let again = s
                    .engage(
                        scope(Env::Test),
                        &first,
                        Event::Seen,
                        t0 + Duration::hours(1),
                    )
                    .await
                    .unwrap();
                assert!(matches!(again, Engaged::Recorded { changed: false, .. }));
                let live = s
                    .engage(scope(Env::Live), &first, Event::Seen, early)
                    .await
                    .unwrap();
                assert_eq!(live, Engaged::NotFound, "{}", b.name);
            }
            let due = t0 + Duration::minutes(15);
            let claims = s.claim_due(due, LEASE, 10).await.unwrap();
            assert_eq!(ids(&claims), [second.as_str()], "{}", b.name);
            assert_eq!(claims[0].entry.gate.map(|g| g.until), Some(Until::Seen));
            let outcome = s.open_gate(&claims[0], due).await.unwrap();
            let after = stored(s, Env::Test, &second).await;
            if engaged {
                assert!(matches!(outcome, GateOutcome::Closed(_)), "{}", b.name);
                assert_eq!(
                    (after.status, after.reason.as_deref()),
                    (Skipped, Some("engaged"))
                );
                // The entry is gone: nothing to send, and the claim completes nothing.
                assert!(s
                    .claim_due(due + Duration::hours(1), LEASE, 10)
                    .await
                    .unwrap()
                    .is_empty());
            } else {
                assert_eq!(outcome, GateOutcome::Open, "{}", b.name);
                assert_eq!(after.status, Queued);
                // A second open of the same claim changes nothing: the message is not waiting.
                let again = s.open_gate(&claims[0], due).await.unwrap();
                assert_eq!(again, GateOutcome::Stale);
                let done = s.complete(&claims[0], &sent, due, None).await.unwrap();
                assert!(matches!(done, Completion::Recorded { .. }), "{}", b.name);
                assert_eq!(stored(s, Env::Test, &second).await.status, Sent);
            }
        }
    }
}

#[tokio::test]
async fn marking_an_inbox_item_seen_or_read_marks_its_message_seen() {
    use herald_core::inbox::{Mark, NewItem};
    let sent = Delivery::Sent { provider_id: None };
    for b in backends().await {
        let s = b.store.as_ref();
        s.enqueue(
            scope(Env::Test),
            vec![
                queued(Env::Test, "i1", "ada"),
                queued(Env::Test, "i2", "ada"),
            ],
            None,
        )
        .await
        .unwrap();
        let t0 = truncate(Utc::now());
        for claim in s.claim_due(t0, LEASE, 10).await.unwrap() {
            s.complete(&claim, &sent, t0, None).await.unwrap();
        }
        for m in ["i1", "i2"] {
            let item = NewItem {
                message_id: m.into(),
                title: "t".into(),
                body: "b".into(),
                action_url: None,
                created_at: t0,
            };
            s.deliver_inbox(scope(Env::Test), &item).await.unwrap();
        }
        let t1 = t0 + Duration::seconds(5);
        s.mark_inbox_item(scope(Env::Test), &id("ada"), "i1", Mark::Archive, t1)
            .await
            .unwrap();
        assert_eq!(stored(s, Env::Test, "i1").await.seen_at, None, "{}", b.name);
        s.mark_inbox_item(scope(Env::Test), &id("ada"), "i1", Mark::Read, t1)
            .await
            .unwrap();
        assert_eq!(
            stored(s, Env::Test, "i1").await.seen_at,
            Some(t1),
            "{}",
            b.name
        );
        assert_eq!(stored(s, Env::Test, "i2").await.seen_at, None);
        let t2 = t1 + Duration::seconds(5);
        s.mark_inbox(scope(Env::Test), &id("ada"), Mark::Seen, t2)
            .await
            .unwrap();
        assert_eq!(
            stored(s, Env::Test, "i1").await.seen_at,
            Some(t1),
            "first wins"
        );
        assert_eq!(
            stored(s, Env::Test, "i2").await.seen_at,
            Some(t2),
            "{}",
            b.name
        );
    }
}
