//! Digests in the store: items collect in one open digest per (environment, user, workflow),
//! in order; it is due as its policy says; two nodes claiming at once claim each digest once,
//! a claim closes it (new items open another), and only the current claim finishes it; erasing
//! the user drops it.

use super::{backends, id};
use chrono::{DateTime, Duration, Utc};
use herald_core::channel::Channel;
use herald_core::digest::{Digest, DigestInput, Item};
use herald_core::service::profiles;
use herald_core::store::{DigestItem, Enqueue, Store};
use herald_core::{Env, EnvScope};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT: AtomicU64 = AtomicU64::new(0);

const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

fn policy(window: Option<&str>, count: Option<u32>) -> Digest {
    Digest::parse(&DigestInput {
        window: window.map(str::to_owned),
        count,
    })
    .unwrap()
}

fn item(n: u32, user: &str, workflow: &str, policy: &Digest, at: DateTime<Utc>) -> DigestItem {
    DigestItem {
        // Random in the service; unique here.
        new_id: format!("dgs_{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        distinct_id: id(user),
        workflow: workflow.into(),
        policy: policy.clone(),
        item: Item {
            data: json!({"n": n}),
            channels: None,
        },
        at,
    }
}

fn data(items: &[Item]) -> Vec<serde_json::Value> {
    items.iter().map(|i| i.data.clone()).collect()
}

async fn add(store: &dyn Store, env: Env, items: Vec<DigestItem>) {
    let batch = Enqueue {
        digest_items: items,
        ..Enqueue::default()
    };
    store
        .enqueue_batch(EnvScope::operator(env), batch)
        .await
        .unwrap();
}

#[tokio::test]
async fn items_collect_in_one_digest_until_it_is_due_and_a_claim_closes_it() {
    for b in backends().await {
        let store = b.store.as_ref();
        let t0 = Utc::now();
        let hour = policy(Some("1h"), None);
        add(store, Env::Test, vec![item(1, "ada", "daily", &hour, t0)]).await;
        add(
            store,
            Env::Test,
            vec![
                item(2, "ada", "daily", &hour, t0 + Duration::minutes(5)),
                // Another user, another workflow, another environment: digests of their own.
                item(1, "bob", "daily", &hour, t0),
                item(1, "ada", "weekly", &hour, t0),
            ],
        )
        .await;
        add(store, Env::Live, vec![item(1, "ada", "daily", &hour, t0)]).await;
        let early = t0 + Duration::minutes(59);
        assert!(
            store
                .claim_digests(early, LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
        let due = t0 + Duration::hours(1);
        let claims = store.claim_digests(due, LEASE, 10).await.unwrap();
        let mut seen: Vec<_> = claims
            .iter()
            .map(|c| {
                (
                    c.env,
                    c.distinct_id.as_str().to_owned(),
                    c.workflow.clone(),
                    c.items.len(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                (Env::Test, "ada".into(), "daily".into(), 2),
                (Env::Test, "ada".into(), "weekly".into(), 1),
                (Env::Test, "bob".into(), "daily".into(), 1),
                (Env::Live, "ada".into(), "daily".into(), 1),
            ],
            "{}",
            b.name
        );
        let ada = claims
            .iter()
            .find(|c| {
                c.env == Env::Test && c.distinct_id.as_str() == "ada" && c.workflow == "daily"
            })
            .unwrap();
        assert_eq!(
            data(&ada.items),
            [json!({"n": 1}), json!({"n": 2})],
            "{}",
            b.name
        );
        assert_eq!(
            ada.first_at.timestamp_micros(),
            t0.timestamp_micros(),
            "{}",
            b.name
        );
        // Closed by the claim: a new item opens another digest, not due with this one.
        add(store, Env::Test, vec![item(3, "ada", "daily", &hour, due)]).await;
        assert!(
            store
                .claim_digests(due, LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
        assert!(
            store.finish_digest(ada, Vec::new()).await.unwrap(),
            "{}",
            b.name
        );
        assert!(
            !store.finish_digest(ada, Vec::new()).await.unwrap(),
            "{}: finished twice",
            b.name
        );
        let next = store
            .claim_digests(due + Duration::hours(1), LEASE, 10)
            .await
            .unwrap();
        let fresh: Vec<_> = next
            .iter()
            .filter(|c| {
                c.distinct_id.as_str() == "ada" && c.workflow == "daily" && c.env == Env::Test
            })
            .collect();
        assert_eq!(fresh.len(), 1, "{}", b.name);
        assert_eq!(data(&fresh[0].items), [json!({"n": 3})], "{}", b.name);
    }
}

#[tokio::test]
async fn a_count_digest_is_due_when_full_and_an_expired_claim_is_stale() {
    for b in backends().await {
        let store = b.store.as_ref();
        let t0 = Utc::now();
        let three = policy(None, Some(3));
        for n in 1..=2 {
            add(store, Env::Test, vec![item(n, "ada", "batch", &three, t0)]).await;
        }
        let far = t0 + Duration::days(365);
        assert!(
            store
                .claim_digests(far, LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
        add(store, Env::Test, vec![item(3, "ada", "batch", &three, t0)]).await;
        let first = store.claim_digests(t0, LEASE, 10).await.unwrap();
        assert_eq!(first.len(), 1, "{}", b.name);
        assert_eq!(first[0].items.len(), 3, "{}", b.name);
        // Its worker dies: after the lease another claims it, and the first claim is stale.
        let later = t0 + Duration::seconds(61);
        let second = store.claim_digests(later, LEASE, 10).await.unwrap();
        assert_eq!(second.len(), 1, "{}", b.name);
        // The token counts the digest's claims (what gives up a digest that keeps failing).
        assert_eq!((first[0].token, second[0].token), (1, 2), "{}", b.name);
        assert!(
            !store.finish_digest(&first[0], Vec::new()).await.unwrap(),
            "{}",
            b.name
        );
        assert!(
            store.finish_digest(&second[0], Vec::new()).await.unwrap(),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn two_nodes_claiming_at_once_claim_each_digest_once() {
    for b in backends().await {
        let t0 = Utc::now();
        let hour = policy(Some("1h"), None);
        let items = (0..60)
            .map(|i| item(1, &format!("u{i:02}"), "daily", &hour, t0))
            .collect();
        add(b.store.as_ref(), Env::Test, items).await;
        let due = t0 + Duration::hours(1);
        let other = b.another_node().await;
        let mut tasks = Vec::new();
        for node in [b.store.clone(), other] {
            for _ in 0..3 {
                let node: Arc<dyn Store> = node.clone();
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let claims = node.claim_digests(due, LEASE, 7).await.unwrap();
                        if claims.is_empty() {
                            return mine;
                        }
                        mine.extend(claims.into_iter().map(|c| c.id));
                    }
                }));
            }
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let distinct: BTreeSet<_> = all.iter().cloned().collect();
        assert_eq!(
            (all.len(), distinct.len()),
            (60, 60),
            "{}: a digest was claimed twice",
            b.name
        );
    }
}

#[tokio::test]
async fn erasing_a_user_drops_their_digests() {
    for b in backends().await {
        let store = b.store.as_ref();
        let t0 = Utc::now();
        let hour = policy(Some("1h"), None);
        let ctx = super::ctx(Env::Test);
        profiles::upsert(store, &ctx, &id("ada"), &json!({"name": "Ada"}))
            .await
            .unwrap();
        add(
            store,
            Env::Test,
            vec![
                item(1, "ada", "daily", &hour, t0),
                item(1, "bob", "daily", &hour, t0),
            ],
        )
        .await;
        profiles::delete(store, &ctx, &id("ada")).await.unwrap();
        let left = store
            .claim_digests(t0 + Duration::hours(1), LEASE, 10)
            .await
            .unwrap();
        let users: Vec<_> = left.iter().map(|c| c.distinct_id.as_str()).collect();
        assert_eq!(users, ["bob"], "{}", b.name);
    }
}

#[tokio::test]
async fn items_keep_their_recipients_channels() {
    for b in backends().await {
        let store = b.store.as_ref();
        let t0 = Utc::now();
        let hour = policy(Some("1h"), None);
        let mut email = item(1, "ada", "channels", &hour, t0);
        email.item.channels = Some(vec![Channel::Email, Channel::Sms]);
        let open = item(2, "ada", "channels", &hour, t0);
        let mut none = item(3, "ada", "channels", &hour, t0);
        none.item.channels = Some(Vec::new());
        add(
            store,
            Env::Test,
            vec![email.clone(), open.clone(), none.clone()],
        )
        .await;
        let claims = store
            .claim_digests(t0 + Duration::hours(1), LEASE, 100)
            .await
            .unwrap();
        let ada = claims
            .iter()
            .find(|c| c.distinct_id.as_str() == "ada" && c.workflow == "channels")
            .unwrap();
        assert_eq!(ada.items, [email.item, open.item, none.item], "{}", b.name);
        assert_eq!(ada.token, 1, "{}", b.name);
    }
}
