//! The store contract: every test runs against each backend (SQLite always, PostgreSQL when
//! `HERALD_TEST_POSTGRES_URL` is set) and expects the same behaviour.

use chrono::{Duration, Utc};
use herald_core::credentials::{hash_api_key, NewCredentials};
use herald_core::filter::Filter;
use herald_core::history::{Action, Actor};
use herald_core::listing::{Cursor, ListQuery, PagePosition, Sort, SortField};
use herald_core::service::{profiles, Ctx, Error};
use herald_core::store::Store;
use herald_core::{DistinctId, Env, EnvScope};
use herald_store::testing::{postgres_url, Scratch};
use herald_store::{connect, StoreOptions};
use serde_json::json;
use std::sync::Arc;

mod batch;
mod copy;
mod digests;
mod filters;
mod hardening;
mod history;
mod inbox;
mod messages;
mod operators;
mod providers;
mod schema;
mod workflows;

struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    scratch: Scratch,
}

impl Backend {
    /// A second connection to the same database, as another Herald node would have.
    async fn another_node(&self) -> Arc<dyn Store> {
        connect(&self.scratch.url, &StoreOptions::default())
            .await
            .expect("second node connects")
    }
}

/// A fresh, empty database per backend.
async fn backends() -> Vec<Backend> {
    let mut all = Vec::new();
    let scratch = Scratch::sqlite();
    all.push(Backend {
        name: "sqlite",
        store: connect(&scratch.url, &StoreOptions::default())
            .await
            .unwrap(),
        scratch,
    });
    if let Some(base) = postgres_url() {
        let scratch = Scratch::postgres(&base).await;
        all.push(Backend {
            name: "postgres",
            store: connect(&scratch.url, &StoreOptions::default())
                .await
                .unwrap(),
            scratch,
        });
    } else {
        eprintln!("!!! PostgreSQL contract tests skipped: HERALD_TEST_POSTGRES_URL is not set");
    }
    all
}

fn id(s: &str) -> DistinctId {
    DistinctId::parse(s).unwrap()
}

fn ctx(env: Env) -> Ctx {
    Ctx::new(
        EnvScope::operator(env),
        Actor::new("test", "contract"),
        Utc::now(),
    )
}

fn ctx_at(env: Env, offset_ms: i64) -> Ctx {
    Ctx::new(
        EnvScope::operator(env),
        Actor::new("test", "contract"),
        Utc::now() + Duration::milliseconds(offset_ms),
    )
}

async fn edit(
    store: &dyn Store,
    env: Env,
    user: &str,
    ops: serde_json::Value,
) -> Result<herald_core::Profile, Error> {
    profiles::edit(store, &ctx(env), &id(user), &ops).await
}

#[tokio::test]
async fn credentials_are_found_by_workspace_key_and_api_key_hash() {
    for b in backends().await {
        let new = NewCredentials::from_random(
            Env::Live,
            [
                "a".repeat(24).as_str(),
                "b".repeat(40).as_str(),
                "c".repeat(40).as_str(),
            ],
            Utc::now(),
        );
        b.store.insert_credentials(&new.credentials).await.unwrap();
        let by_key = b
            .store
            .credentials_by_workspace_key(&new.credentials.workspace_key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_key.env, Env::Live, "{}", b.name);
        assert_eq!(
            by_key.workspace_secret, new.credentials.workspace_secret,
            "{}",
            b.name
        );
        let by_hash = b
            .store
            .credentials_by_api_key_hash(&hash_api_key(&new.api_key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            by_hash.workspace_key, new.credentials.workspace_key,
            "{}",
            b.name
        );
        assert!(
            b.store
                .credentials_by_workspace_key("nope")
                .await
                .unwrap()
                .is_none(),
            "{}",
            b.name
        );
        assert!(
            b.store.insert_credentials(&new.credentials).await.is_err(),
            "{}: duplicate key accepted",
            b.name
        );
        assert_eq!(
            b.store.list_credentials().await.unwrap().len(),
            1,
            "{}",
            b.name
        );
        // Revoked: found neither way, and revoking again says there was nothing.
        let key = &new.credentials.workspace_key;
        assert!(b.store.delete_credentials(key).await.unwrap(), "{}", b.name);
        assert!(b
            .store
            .credentials_by_workspace_key(key)
            .await
            .unwrap()
            .is_none());
        assert!(b
            .store
            .credentials_by_api_key_hash(&hash_api_key(&new.api_key))
            .await
            .unwrap()
            .is_none());
        assert!(
            !b.store.delete_credentials(key).await.unwrap(),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn edits_create_update_and_skip_no_ops() {
    for b in backends().await {
        let s = b.store.as_ref();
        let p = edit(s, Env::Test, "u1", json!([{"$set": {"a": 1}}]))
            .await
            .unwrap();
        assert_eq!(
            (p.version, p.properties["a"].clone()),
            (1, json!(1)),
            "{}",
            b.name
        );
        let p = edit(
            s,
            Env::Test,
            "u1",
            json!([{"$set": {"a": 2, "$email": "x@y.com"}}]),
        )
        .await
        .unwrap();
        assert_eq!(p.version, 2, "{}", b.name);
        let same = edit(s, Env::Test, "u1", json!([{"$set": {"a": 2}}]))
            .await
            .unwrap();
        assert_eq!(
            same.version, 2,
            "{}: a no-op must not bump the version",
            b.name
        );
        let stored = s
            .get_profile(EnvScope::operator(Env::Test), &id("u1"))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.same_content(&p), "{}", b.name);
        assert_eq!(stored.identities.len(), 1, "{}", b.name);
        let history = s
            .list_history(EnvScope::operator(Env::Test), &id("u1"), None, 10)
            .await
            .unwrap();
        assert_eq!(
            history.iter().map(|e| e.action).collect::<Vec<_>>(),
            vec![Action::Updated, Action::Created],
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn refused_edits_change_nothing() {
    for b in backends().await {
        let s = b.store.as_ref();
        edit(s, Env::Test, "u1", json!([{"$set": {"s": "text"}}]))
            .await
            .unwrap();
        let err = edit(
            s,
            Env::Test,
            "u1",
            json!([{"$set": {"a": 1}}, {"$add": {"s": 1}}]),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{}: {err}", b.name);
        let p = s
            .get_profile(EnvScope::operator(Env::Test), &id("u1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((p.version, p.properties.get("a")), (1, None), "{}", b.name);
        let missing = profiles::set_status(
            s,
            &ctx(Env::Test),
            &id("ghost"),
            herald_core::Status::Disabled,
        )
        .await
        .unwrap_err();
        assert!(matches!(missing, Error::NotFound { .. }), "{}", b.name);
        assert!(
            s.get_profile(EnvScope::operator(Env::Test), &id("ghost"))
                .await
                .unwrap()
                .is_none(),
            "{}",
            b.name
        );
        assert_eq!(
            s.list_history(EnvScope::operator(Env::Test), &id("u1"), None, 10)
                .await
                .unwrap()
                .len(),
            1,
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn many_profiles_are_read_at_once_within_their_environment() {
    for b in backends().await {
        let s = b.store.as_ref();
        for user in ["ada", "alan"] {
            edit(s, Env::Test, user, json!([{"$set": {"name": user}}]))
                .await
                .unwrap();
        }
        edit(s, Env::Live, "grace", json!([{"$set": {"name": "grace"}}]))
            .await
            .unwrap();
        let wanted = [id("ada"), id("alan"), id("grace"), id("nobody")];
        let mut found: Vec<String> = s
            .get_profiles(EnvScope::operator(Env::Test), &wanted)
            .await
            .unwrap()
            .into_iter()
            .map(|p| format!("{}={}", p.distinct_id, p.properties["name"]))
            .collect();
        found.sort();
        assert_eq!(found, ["ada=\"ada\"", "alan=\"alan\""], "{}", b.name);
        let live = s
            .get_profiles(EnvScope::operator(Env::Live), &wanted)
            .await
            .unwrap();
        assert_eq!(live.len(), 1, "{}", b.name);
        assert!(s
            .get_profiles(EnvScope::operator(Env::Test), &[])
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn environments_never_cross() {
    for b in backends().await {
        let s = b.store.as_ref();
        edit(s, Env::Test, "same", json!([{"$set": {"where": "test"}}]))
            .await
            .unwrap();
        edit(s, Env::Live, "same", json!([{"$set": {"where": "live"}}]))
            .await
            .unwrap();
        edit(s, Env::Live, "live-only", json!([{"$set": {"x": 1}}]))
            .await
            .unwrap();
        let t = s
            .get_profile(EnvScope::operator(Env::Test), &id("same"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.properties["where"], "test", "{}", b.name);
        assert!(
            s.get_profile(EnvScope::operator(Env::Test), &id("live-only"))
                .await
                .unwrap()
                .is_none(),
            "{}",
            b.name
        );
        assert_eq!(
            s.count_profiles(EnvScope::operator(Env::Test), &Filter::default())
                .await
                .unwrap()
                .value,
            1,
            "{}",
            b.name
        );
        assert_eq!(
            s.count_profiles(EnvScope::operator(Env::Live), &Filter::default())
                .await
                .unwrap()
                .value,
            2,
            "{}",
            b.name
        );
        let q = ListQuery {
            filter: Filter::default(),
            sort: Sort::default(),
            limit: 10,
            position: PagePosition::First,
        };
        assert_eq!(
            s.list_profiles(EnvScope::operator(Env::Test), &q)
                .await
                .unwrap()
                .len(),
            1,
            "{}",
            b.name
        );
        // Deleting and merging in test leave live alone.
        assert!(
            profiles::delete(s, &ctx(Env::Test), &id("live-only"))
                .await
                .is_err(),
            "{}",
            b.name
        );
        assert!(
            profiles::merge(s, &ctx(Env::Test), &id("same"), &id("live-only"))
                .await
                .is_err(),
            "{}",
            b.name
        );
        profiles::delete(s, &ctx(Env::Test), &id("same"))
            .await
            .unwrap();
        let l = s
            .get_profile(EnvScope::operator(Env::Live), &id("same"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.properties["where"], "live", "{}", b.name);
        assert_eq!(
            s.list_history(EnvScope::operator(Env::Live), &id("same"), None, 10)
                .await
                .unwrap()
                .len(),
            1,
            "{}",
            b.name
        );
        assert!(
            s.get_profile(EnvScope::operator(Env::Live), &id("live-only"))
                .await
                .unwrap()
                .is_some(),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn listing_pages_forward_and_back_in_every_order() {
    for b in backends().await {
        let s = b.store.as_ref();
        // Distinct creation times, some equal, so the tie-breaker matters.
        for i in 0..23 {
            let c = ctx_at(Env::Test, (i / 2) * 10);
            profiles::edit(
                s,
                &c,
                &id(&format!("user-{:02}", (i * 7) % 23)),
                &json!([{"$set": {"i": i}}]),
            )
            .await
            .unwrap();
        }
        edit(s, Env::Live, "elsewhere", json!([{"$set": {"x": 1}}]))
            .await
            .unwrap();
        for field in [
            SortField::CreatedAt,
            SortField::UpdatedAt,
            SortField::DistinctId,
        ] {
            for descending in [false, true] {
                let sort = Sort { field, descending };
                let all = s
                    .list_profiles(
                        EnvScope::operator(Env::Test),
                        &ListQuery {
                            filter: Filter::default(),
                            sort,
                            limit: 100,
                            position: PagePosition::First,
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(all.len(), 23, "{} {sort:?}", b.name);
                let keys: Vec<_> = all.iter().map(|p| Cursor::of(p, sort)).collect();
                let mut sorted = keys.clone();
                sorted.sort_by(|a, b| {
                    let ord = format!("{:?}{}", a.value, a.distinct_id)
                        .cmp(&format!("{:?}{}", b.value, b.distinct_id));
                    let ord = match (&a.value, &b.value) {
                        (
                            herald_core::listing::SortValue::Time(x),
                            herald_core::listing::SortValue::Time(y),
                        ) => x.cmp(y).then(a.distinct_id.cmp(&b.distinct_id)),
                        _ => ord,
                    };
                    if descending {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
                assert_eq!(keys, sorted, "{} {sort:?}: wrong order", b.name);
                // Walk forward 5 at a time, then back from the end.
                let mut seen = Vec::new();
                let mut position = PagePosition::First;
                loop {
                    let q = ListQuery {
                        filter: Filter::default(),
                        sort,
                        limit: 5,
                        position: position.clone(),
                    };
                    let page = herald_core::listing::Page::assemble(
                        &q,
                        s.list_profiles(EnvScope::operator(Env::Test), &q)
                            .await
                            .unwrap(),
                    );
                    seen.extend(page.items.iter().map(|p| p.distinct_id.to_string()));
                    match page.after {
                        Some(a) => {
                            position =
                                PagePosition::After(Cursor::decode(&a, "after", sort).unwrap())
                        }
                        None => break,
                    }
                }
                let expected: Vec<_> = all.iter().map(|p| p.distinct_id.to_string()).collect();
                assert_eq!(seen, expected, "{} {sort:?}: forward walk", b.name);
                let last = Cursor::of(all.last().unwrap(), sort);
                let q = ListQuery {
                    filter: Filter::default(),
                    sort,
                    limit: 5,
                    position: PagePosition::Before(last),
                };
                let page = herald_core::listing::Page::assemble(
                    &q,
                    s.list_profiles(EnvScope::operator(Env::Test), &q)
                        .await
                        .unwrap(),
                );
                let back: Vec<_> = page
                    .items
                    .iter()
                    .map(|p| p.distinct_id.to_string())
                    .collect();
                assert_eq!(
                    back,
                    expected[17..22].to_vec(),
                    "{} {sort:?}: backward page",
                    b.name
                );
                assert!(page.has_prev && page.has_next, "{}", b.name);
            }
        }
    }
}

#[tokio::test]
async fn history_pages_newest_first_and_deletion_erases_it() {
    for b in backends().await {
        let s = b.store.as_ref();
        let scope = EnvScope::operator(Env::Test);
        for i in 0..7 {
            edit(s, Env::Test, "h", json!([{"$set": {"i": i}}]))
                .await
                .unwrap();
        }
        let first = s.list_history(scope, &id("h"), None, 3).await.unwrap();
        assert_eq!(first.len(), 4, "{}: limit + 1 rows", b.name);
        assert!(first.windows(2).all(|w| w[0].id > w[1].id), "{}", b.name);
        assert_eq!(first[0].changes[0].after, Some(json!(6)), "{}", b.name);
        let next = s
            .list_history(scope, &id("h"), Some(first[2].id), 10)
            .await
            .unwrap();
        assert_eq!(next.len(), 4, "{}", b.name);
        assert_eq!(next.last().unwrap().action, Action::Created, "{}", b.name);
        profiles::delete(s, &ctx(Env::Test), &id("h"))
            .await
            .unwrap();
        let after = s.list_history(scope, &id("h"), None, 10).await.unwrap();
        assert_eq!(after.len(), 1, "{}", b.name);
        assert_eq!(
            (after[0].action, after[0].changes.len()),
            (Action::Deleted, 0),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn merge_moves_what_the_primary_lacks_and_removes_the_secondary() {
    for b in backends().await {
        let s = b.store.as_ref();
        let scope = EnvScope::operator(Env::Test);
        edit(
            s,
            Env::Test,
            "p",
            json!([{"$set": {"name": "Primary", "plan": "pro", "$email": "p@x.com"}}]),
        )
        .await
        .unwrap();
        edit(s, Env::Test, "q", json!([{"$set": {"name": "Secondary", "age": 30, "$email": ["q@x.com", "p@x.com"], "$sms": "+14155550100"}}])).await.unwrap();
        let merged = profiles::merge(s, &ctx(Env::Test), &id("p"), &id("q"))
            .await
            .unwrap();
        assert_eq!(merged.properties["name"], "Primary", "{}", b.name);
        assert_eq!(merged.properties["age"], 30, "{}", b.name);
        let emails: Vec<_> = merged
            .identities
            .iter()
            .map(|i| i.value.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            emails,
            vec!["p@x.com", "q@x.com", "+14155550100"],
            "{}",
            b.name
        );
        assert!(
            s.get_profile(scope, &id("q")).await.unwrap().is_none(),
            "{}",
            b.name
        );
        assert_eq!(
            s.list_history(scope, &id("p"), None, 1).await.unwrap()[0].action,
            Action::Merged,
            "{}",
            b.name
        );
        let q_history = s.list_history(scope, &id("q"), None, 10).await.unwrap();
        assert_eq!(
            q_history.iter().map(|e| e.action).collect::<Vec<_>>(),
            vec![Action::MergedInto],
            "{}",
            b.name
        );
        // Missing secondary: not found; missing primary: created from the secondary.
        assert!(
            matches!(
                profiles::merge(s, &ctx(Env::Test), &id("p"), &id("q")).await,
                Err(Error::NotFound { .. })
            ),
            "{}",
            b.name
        );
        let fresh = profiles::merge(s, &ctx(Env::Test), &id("new"), &id("p"))
            .await
            .unwrap();
        assert_eq!(
            (fresh.version, fresh.properties["plan"].clone()),
            (1, json!("pro")),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn bulk_delete_reports_what_existed() {
    for b in backends().await {
        let s = b.store.as_ref();
        for u in ["a", "b", "c"] {
            edit(s, Env::Test, u, json!([{"$set": {"x": 1}}]))
                .await
                .unwrap();
        }
        let deleted = profiles::bulk_delete(s, &ctx(Env::Test), &[id("c"), id("zz"), id("a")])
            .await
            .unwrap();
        assert_eq!(deleted, vec![id("c"), id("a")], "{}", b.name);
        assert_eq!(
            s.count_profiles(EnvScope::operator(Env::Test), &Filter::default())
                .await
                .unwrap()
                .value,
            1,
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn concurrent_edits_on_two_nodes_lose_nothing() {
    for b in backends().await {
        let other = b.another_node().await;
        let nodes = [b.store.clone(), other];
        let mut tasks = Vec::new();
        for i in 0..100 {
            let store = nodes[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                edit(
                    store.as_ref(),
                    Env::Test,
                    "counter",
                    json!([{"$add": {"n": 1}}]),
                )
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let p = b
            .store
            .get_profile(EnvScope::operator(Env::Test), &id("counter"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.properties["n"].clone(), p.version),
            (json!(100), 100),
            "{}",
            b.name
        );
        assert_eq!(
            b.store
                .list_history(EnvScope::operator(Env::Test), &id("counter"), None, 200)
                .await
                .unwrap()
                .len(),
            100,
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn racing_creates_of_one_new_id_make_one_profile() {
    for b in backends().await {
        let other = b.another_node().await;
        let nodes = [b.store.clone(), other];
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = nodes[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                profiles::upsert(
                    store.as_ref(),
                    &ctx(Env::Test),
                    &id("fresh"),
                    &json!({ format!("k{i}"): i }),
                )
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap().expect("no caller sees the race");
        }
        let p = b
            .store
            .get_profile(EnvScope::operator(Env::Test), &id("fresh"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((p.properties.len(), p.version), (40, 40), "{}", b.name);
        assert_eq!(
            b.store
                .count_profiles(EnvScope::operator(Env::Test), &Filter::default())
                .await
                .unwrap()
                .value,
            1,
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn an_edit_with_an_idempotency_key_applies_once_per_env() {
    for b in backends().await {
        let add = || {
            herald_core::ops::parse_operations(&json!([{"$add": {"n": 1}}]), "operations").unwrap()
        };
        let once = |store: Arc<dyn Store>, env: Env, key: &'static str| {
            let ops = add();
            async move {
                profiles::apply_once(
                    store.as_ref(),
                    &ctx(env),
                    &id("retried"),
                    ops,
                    json!({}),
                    true,
                    Some(key),
                )
                .await
                .unwrap()
                .map(|p| p.properties["n"].clone())
            }
        };
        let n = |env: Env| {
            let store = b.store.clone();
            async move {
                store
                    .get_profile(EnvScope::operator(env), &id("retried"))
                    .await
                    .unwrap()
                    .map(|p| p.properties["n"].clone())
            }
        };
        // Two nodes racing with the same key, then a retry: applied once.
        let other = b.another_node().await;
        let (a, c) = tokio::join!(
            once(b.store.clone(), Env::Test, "evt-1"),
            once(other.clone(), Env::Test, "evt-1")
        );
        assert!(
            matches!((&a, &c), (Some(n), None) | (None, Some(n)) if *n == json!(1)),
            "{}: one node applies, the other is told it was applied: {a:?} {c:?}",
            b.name
        );
        assert_eq!(
            once(b.store.clone(), Env::Test, "evt-1").await,
            None,
            "{}: retry runs nothing",
            b.name
        );
        assert_eq!(n(Env::Test).await, Some(json!(1)), "{}", b.name);
        // Another key applies; the same key in the other environment is its own.
        let next = once(b.store.clone(), Env::Test, "evt-2").await;
        assert_eq!(next, Some(json!(2)), "{}", b.name);
        let live = once(b.store.clone(), Env::Live, "evt-1").await;
        assert_eq!(live, Some(json!(1)), "{}", b.name);
        // An applied key is not run again even once its profile is gone: no resurrection.
        profiles::delete(b.store.as_ref(), &ctx(Env::Live), &id("retried"))
            .await
            .unwrap();
        assert_eq!(
            once(b.store.clone(), Env::Live, "evt-1").await,
            None,
            "{}",
            b.name
        );
        assert_eq!(n(Env::Live).await, None, "{}", b.name);
        // Purging old keys forgets them: the key may then apply again.
        let purged = b
            .store
            .purge_applied_keys(Utc::now() + Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(purged, 3, "{}", b.name);
        let after = once(b.store.clone(), Env::Test, "evt-1").await;
        assert_eq!(after, Some(json!(3)), "{}", b.name);
    }
}
