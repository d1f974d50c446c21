//! Batches of edits (`edit_profiles`, behind `/event/` and the NDJSON import): one unit of work
//! in the store, each edit all or nothing on its own and answered as if the edits had run one
//! after another; history, index rows and counters exactly as single edits leave them.

use super::*;
use herald_core::index::{entries, presence};
use herald_core::store::{BatchEdit, EditOutcome, OnceKey, Refusal, StoreError};
use std::collections::BTreeMap;

fn batch_edit(user: &str, ops: serde_json::Value, key: Option<&str>) -> BatchEdit {
    let steps = herald_core::ops::parse_operations(&ops, "operations").unwrap();
    BatchEdit {
        edit: profiles::edit_fn(&ctx(Env::Test), &id(user), steps, json!({"ops": ops}), true),
        id: id(user),
        once: key.map(|k| OnceKey {
            key: k.to_owned(),
            fingerprint: None,
        }),
    }
}

async fn run(store: &dyn Store, edits: Vec<BatchEdit>) -> Vec<EditOutcome> {
    store
        .edit_profiles(EnvScope::operator(Env::Test), edits)
        .await
        .into_iter()
        .map(|r| r.expect("no storage fault"))
        .collect()
}

async fn profile(store: &dyn Store, user: &str) -> Option<herald_core::Profile> {
    store
        .get_profile(EnvScope::operator(Env::Test), &id(user))
        .await
        .unwrap()
}

fn n_of(outcome: &EditOutcome) -> Option<serde_json::Value> {
    match outcome {
        EditOutcome::Applied(p) => p.properties.get("n").cloned(),
        _ => None,
    }
}

/// Every index row stored for env `test`: (distinct_id, key, kind, text, number, time).
type Row = (String, String, i64, String, Option<f64>, Option<i64>);

async fn stored_rows(b: &Backend) -> Vec<Row> {
    let sql = "SELECT p.distinct_id, k.key, CAST(v.kind AS BIGINT), v.text_value, v.num_value, \
               v.time_value FROM profile_values v JOIN profiles p ON p.id = v.profile_id \
               JOIN index_keys k ON k.id = v.key_id WHERE k.env = 'test' ORDER BY 1, 2, 3, 4";
    if b.scratch.is_postgres() {
        let (client, conn) = tokio_postgres::connect(&b.scratch.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query(sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect()
    } else {
        let path = b.scratch.url.strip_prefix("sqlite://").unwrap();
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut s = conn.prepare(sql).unwrap();
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }
}

/// The index rows and counters the domain derives from the stored profiles of `users`
/// (every profile of env `test`).
fn derived(profiles: &[herald_core::Profile]) -> (Vec<Row>, BTreeMap<String, i64>) {
    let mut rows = Vec::new();
    let mut counts = BTreeMap::new();
    for p in profiles {
        for e in entries(p) {
            rows.push((
                p.distinct_id.to_string(),
                e.key,
                e.kind.code() as i64,
                e.text,
                e.num,
                e.time,
            ));
        }
        for key in presence(p).into_keys() {
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1, a.2, &a.3).cmp(&(&b.0, &b.1, b.2, &b.3)));
    (rows, counts)
}

/// The stored index rows and counters of env `test` are exactly what its profiles derive.
async fn assert_index_exact(b: &Backend, users: &[&str]) {
    let mut all = Vec::new();
    for u in users {
        all.extend(profile(b.store.as_ref(), u).await);
    }
    let (rows, counts) = derived(&all);
    assert_eq!(stored_rows(b).await, rows, "{}: index rows", b.name);
    let mut stored = b
        .store
        .property_counts(EnvScope::operator(Env::Test))
        .await
        .unwrap();
    stored.retain(|_, n| *n != 0);
    assert_eq!(stored, counts, "{}: counters", b.name);
}

#[tokio::test]
async fn a_refused_edit_of_a_batch_is_unapplied_and_the_others_applied() {
    for b in backends().await {
        let s = b.store.as_ref();
        let out = run(
            s,
            vec![
                batch_edit("ada", json!([{"$set": {"s": "text", "plan": "pro"}}]), None),
                // Refused as a whole: its first operation is not applied either.
                batch_edit(
                    "ada",
                    json!([{"$set": {"plan": "team"}}, {"$add": {"s": 1}}]),
                    Some("refused"),
                ),
                batch_edit(
                    "bob",
                    json!([{"$append": {"$email": "bob@example.com"}}]),
                    None,
                ),
                batch_edit("cy", json!([{"$set": {"name": "Cy"}}]), Some("cy-1")),
                batch_edit(
                    "dee",
                    json!([{"$set": {"n": 1}}, {"$append": {"n": 2}}]),
                    None,
                ),
            ],
        )
        .await;
        assert!(
            matches!(out[0], EditOutcome::Applied(_)),
            "{}: {out:?}",
            b.name
        );
        assert!(
            matches!(&out[1], EditOutcome::Refused(Refusal::Invalid(_))),
            "{}: {:?}",
            b.name,
            out[1]
        );
        assert!(matches!(out[2], EditOutcome::Applied(_)), "{}", b.name);
        assert!(matches!(out[3], EditOutcome::Applied(_)), "{}", b.name);
        assert!(
            matches!(&out[4], EditOutcome::Refused(Refusal::Invalid(_))),
            "{}",
            b.name
        );
        let ada = profile(s, "ada").await.unwrap();
        assert_eq!(
            (ada.version, &ada.properties["plan"]),
            (1, &json!("pro")),
            "{}",
            b.name
        );
        assert!(
            profile(s, "dee").await.is_none(),
            "{}: refused, not created",
            b.name
        );
        assert_eq!(
            profile(s, "bob").await.unwrap().identities.len(),
            1,
            "{}",
            b.name
        );
        // The refused edit's key was not recorded: sent again (fixed), it applies.
        let again = run(
            s,
            vec![batch_edit(
                "ada",
                json!([{"$set": {"plan": "team"}}]),
                Some("refused"),
            )],
        )
        .await;
        assert!(matches!(again[0], EditOutcome::Applied(_)), "{}", b.name);
        let history = s
            .list_history(EnvScope::operator(Env::Test), &id("ada"), None, 10)
            .await
            .unwrap();
        assert_eq!(
            history.iter().map(|e| e.action).collect::<Vec<_>>(),
            [Action::Updated, Action::Created],
            "{}",
            b.name
        );
        assert_index_exact(&b, &["ada", "bob", "cy", "dee"]).await;
    }
}

#[tokio::test]
async fn edits_of_one_user_in_a_batch_apply_in_order() {
    for b in backends().await {
        let s = b.store.as_ref();
        edit(
            s,
            Env::Test,
            "ada",
            json!([{"$set": {"n": 10, "tags": ["a"]}}]),
        )
        .await
        .unwrap();
        let out = run(
            s,
            vec![
                batch_edit("ada", json!([{"$add": {"n": 1}}]), None),
                batch_edit("new", json!([{"$set": {"n": 1, "plan": "free"}}]), None),
                batch_edit(
                    "ada",
                    json!([{"$set": {"n": 100}}, {"$append": {"tags": "b"}}]),
                    None,
                ),
                batch_edit(
                    "new",
                    json!([{"$add": {"n": 1}}, {"$unset": ["plan"]}]),
                    None,
                ),
                batch_edit(
                    "ada",
                    json!([{"$add": {"n": 1}}, {"$remove": {"tags": "a"}}]),
                    None,
                ),
                // No change: answered with the profile, no version bump, no history.
                batch_edit("ada", json!([{"$set": {"n": 101}}]), None),
            ],
        )
        .await;
        let ns: Vec<_> = out.iter().map(n_of).collect();
        assert_eq!(
            ns,
            [
                Some(json!(11)),
                Some(json!(1)),
                Some(json!(100)),
                Some(json!(2)),
                Some(json!(101)),
                Some(json!(101))
            ],
            "{}",
            b.name
        );
        let ada = profile(s, "ada").await.unwrap();
        assert_eq!(ada.version, 4, "{}", b.name);
        assert_eq!(ada.properties["tags"], json!(["b"]), "{}", b.name);
        let new = profile(s, "new").await.unwrap();
        assert_eq!(
            (new.version, new.properties.get("plan")),
            (2, None),
            "{}",
            b.name
        );
        let history = s
            .list_history(EnvScope::operator(Env::Test), &id("ada"), None, 10)
            .await
            .unwrap();
        let afters: Vec<_> = history
            .iter()
            .map(|e| {
                e.changes
                    .iter()
                    .find(|c| c.key == "n")
                    .and_then(|c| c.after.clone())
            })
            .collect();
        assert_eq!(
            afters,
            [
                Some(json!(101)),
                Some(json!(100)),
                Some(json!(11)),
                Some(json!(10))
            ],
            "{}: one event per write, newest first",
            b.name
        );
        assert_eq!(
            typed_ids(s, "prop.n=eq:101").await,
            ["ada"],
            "{}: the index holds the final value",
            b.name
        );
        assert!(typed_ids(s, "prop.n=eq:11").await.is_empty(), "{}", b.name);
        assert!(
            typed_ids(s, "prop.plan=exists:true").await.is_empty(),
            "{}",
            b.name
        );
        assert_index_exact(&b, &["ada", "new"]).await;
    }
}

/// The ids env `test`'s listing finds for one filter, sorted.
async fn typed_ids(store: &dyn Store, q: &str) -> Vec<String> {
    let (k, v) = q.split_once('=').unwrap();
    let query = ListQuery {
        filter: Filter::parse(&[(k.to_owned(), v.to_owned())]).unwrap(),
        sort: Sort::default(),
        limit: 100,
        position: PagePosition::First,
    };
    let mut ids: Vec<String> = store
        .list_profiles(EnvScope::operator(Env::Test), &query)
        .await
        .unwrap()
        .iter()
        .map(|p| p.distinct_id.to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn an_insert_id_applies_once_within_and_across_batches() {
    for b in backends().await {
        let s = b.store.as_ref();
        let add = |user: &str, key: &str| batch_edit(user, json!([{"$add": {"n": 1}}]), Some(key));
        let out = run(
            s,
            vec![
                add("ada", "k1"),
                add("ada", "k1"),
                add("bob", "k1"),
                add("ada", "k2"),
            ],
        )
        .await;
        assert_eq!(n_of(&out[0]), Some(json!(1)), "{}", b.name);
        assert!(
            matches!(out[1], EditOutcome::AlreadyApplied),
            "{}: {:?}",
            b.name,
            out[1]
        );
        assert!(
            matches!(out[2], EditOutcome::AlreadyApplied),
            "{}: a key applied for another user is applied",
            b.name
        );
        assert_eq!(n_of(&out[3]), Some(json!(2)), "{}", b.name);
        assert!(profile(s, "bob").await.is_none(), "{}", b.name);
        // The next batch, and a single edit, find the keys applied.
        let out = run(
            s,
            vec![add("ada", "k2"), add("ada", "k3"), add("ada", "k1")],
        )
        .await;
        assert!(matches!(out[0], EditOutcome::AlreadyApplied), "{}", b.name);
        assert_eq!(n_of(&out[1]), Some(json!(3)), "{}", b.name);
        assert!(matches!(out[2], EditOutcome::AlreadyApplied), "{}", b.name);
        let single = profiles::apply_once(
            s,
            &ctx(Env::Test),
            &id("ada"),
            herald_core::ops::parse_operations(&json!([{"$add": {"n": 1}}]), "o").unwrap(),
            json!({}),
            true,
            Some("k3"),
        )
        .await
        .unwrap();
        assert!(single.is_none(), "{}", b.name);
        assert_eq!(
            profile(s, "ada").await.unwrap().properties["n"],
            json!(3),
            "{}",
            b.name
        );
        // Keys are per environment.
        let live = s
            .edit_profiles(
                EnvScope::operator(Env::Live),
                vec![BatchEdit {
                    edit: profiles::edit_fn(
                        &ctx(Env::Live),
                        &id("ada"),
                        herald_core::ops::parse_operations(&json!([{"$add": {"n": 1}}]), "o")
                            .unwrap(),
                        json!({}),
                        true,
                    ),
                    id: id("ada"),
                    once: Some(OnceKey {
                        key: "k1".into(),
                        fingerprint: None,
                    }),
                }],
            )
            .await;
        assert!(
            matches!(&live[0], Ok(EditOutcome::Applied(p)) if p.properties["n"] == json!(1)),
            "{}",
            b.name
        );
        assert_index_exact(&b, &["ada", "bob"]).await;
    }
}

#[tokio::test]
async fn batches_racing_on_two_nodes_lose_nothing_and_apply_each_key_once() {
    for b in backends().await {
        let other = b.another_node().await;
        let stores = [b.store.clone(), other];
        // Eight batches over the same users from two nodes, in crossed orders, each batch
        // carrying its keys twice (once per node): every key applies exactly once.
        let mut tasks = Vec::new();
        for round in 0..8usize {
            let store = stores[round % 2].clone();
            tasks.push(tokio::spawn(async move {
                let mut edits = Vec::new();
                for u in 0..20usize {
                    let user = if round % 2 == 0 { u } else { 19 - u };
                    let key = format!("r{}-u{user}", round / 2);
                    edits.push(batch_edit(
                        &format!("user-{user:02}"),
                        json!([{"$add": {"n": 1}}, {"$set": {"plan": format!("p{round}")}}]),
                        Some(&key),
                    ));
                }
                run(store.as_ref(), edits).await
            }));
        }
        let mut applied = 0;
        for t in tasks {
            applied += t
                .await
                .unwrap()
                .iter()
                .filter(|o| matches!(o, EditOutcome::Applied(_)))
                .count();
        }
        assert_eq!(applied, 4 * 20, "{}: each key once", b.name);
        let users: Vec<String> = (0..20).map(|u| format!("user-{u:02}")).collect();
        for u in &users {
            let p = profile(b.store.as_ref(), u).await.unwrap();
            assert_eq!(p.properties["n"], json!(4), "{}: {u}", b.name);
            assert_eq!(p.version, 4, "{}: {u}", b.name);
        }
        let names: Vec<&str> = users.iter().map(String::as_str).collect();
        assert_index_exact(&b, &names).await;
    }
}

/// Runs `sql` on the database as it is, through the backend's own driver.
async fn raw(b: &Backend, sql: &str) {
    if b.scratch.is_postgres() {
        let (client, conn) = tokio_postgres::connect(&b.scratch.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    } else {
        let path = b.scratch.url.strip_prefix("sqlite://").unwrap();
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

#[tokio::test]
async fn an_edit_that_hits_a_storage_fault_fails_alone() {
    for b in backends().await {
        let s = b.store.as_ref();
        for user in ["ada", "bad"] {
            edit(s, Env::Test, user, json!([{"$set": {"n": 0}}]))
                .await
                .unwrap();
        }
        // A stored row that cannot be read (its properties are not an object).
        raw(
            &b,
            "UPDATE profiles SET properties = '[1]' WHERE distinct_id = 'bad'",
        )
        .await;
        let results = s
            .edit_profiles(
                EnvScope::operator(Env::Test),
                vec![
                    batch_edit("ada", json!([{"$add": {"n": 1}}]), Some("a1")),
                    batch_edit("bad", json!([{"$add": {"n": 1}}]), Some("b1")),
                    batch_edit("cy", json!([{"$set": {"n": 5}}]), None),
                    batch_edit("ada", json!([{"$add": {"n": 1}}]), Some("a2")),
                ],
            )
            .await;
        assert!(
            matches!(&results[1], Err(StoreError::Internal { .. })),
            "{}: {results:?}",
            b.name
        );
        let ns: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().ok().and_then(n_of))
            .collect();
        assert_eq!(
            ns,
            [Some(json!(1)), None, Some(json!(5)), Some(json!(2))],
            "{}",
            b.name
        );
        // Applied once each, though the batch may have run twice to isolate the fault.
        assert_eq!(
            profile(s, "ada").await.unwrap().properties["n"],
            json!(2),
            "{}",
            b.name
        );
        assert_eq!(
            s.list_history(EnvScope::operator(Env::Test), &id("ada"), None, 10)
                .await
                .unwrap()
                .len(),
            3,
            "{}",
            b.name
        );
        // The faulty edit's key was not recorded; the others' were.
        let again = run(
            s,
            vec![
                batch_edit("ada", json!([{"$add": {"n": 1}}]), Some("a1")),
                batch_edit("cy", json!([{"$add": {"n": 1}}]), Some("b1")),
            ],
        )
        .await;
        assert!(
            matches!(again[0], EditOutcome::AlreadyApplied),
            "{}",
            b.name
        );
        assert_eq!(n_of(&again[1]), Some(json!(6)), "{}", b.name);
    }
}
