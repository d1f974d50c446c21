//! Filtered listings and the property registry: each store's SQL must agree with the domain's
//! definition of a match (`Filter::matches`) and its counters with a recount of the profiles.

use crate::{backends, ctx, edit, id};
use herald_core::filter::Filter;
use herald_core::index::presence;
use herald_core::listing::{Count, ListQuery, Page, PagePosition, Sort};
use herald_core::property::{PropertyAttributes, PropertyDeclaration, PropertyRecord};
use herald_core::service::{profiles, properties};
use herald_core::store::Store;
use herald_core::{Env, EnvScope, Profile};
use serde_json::json;
use std::collections::BTreeMap;

fn pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Every profile of the listing, through all pages.
async fn list_all(store: &dyn Store, env: Env, filter: &Filter, sort: Sort) -> Vec<Profile> {
    let mut out = Vec::new();
    let mut position = PagePosition::First;
    loop {
        let q = ListQuery {
            filter: filter.clone(),
            sort,
            limit: 3,
            position: position.clone(),
        };
        let rows = store
            .list_profiles(EnvScope::operator(env), &q)
            .await
            .unwrap();
        let page = Page::assemble(&q, rows);
        out.extend(page.items.iter().cloned());
        match page.after {
            Some(_) => {
                position = PagePosition::After(herald_core::listing::Cursor::of(
                    page.items.last().unwrap(),
                    sort,
                ))
            }
            None => return out,
        }
    }
}

async fn everyone(store: &dyn Store, env: Env) -> Vec<Profile> {
    list_all(store, env, &Filter::default(), Sort::default()).await
}

/// A small population covering every kind of value the filters read.
async fn populate(store: &dyn Store) {
    let people = [
        (
            "ada",
            json!({"name": "Ada Lovelace", "plan": "pro", "age": 36, "tags": ["math", "poetry"], "$email": ["ada@example.com"], "bio": "Wrote the first Program", "renews": "2026-06-01T00:00:00Z"}),
        ),
        (
            "alan",
            json!({"name": "Alan Turing", "plan": "free", "age": 41, "tags": ["math"], "$sms": ["+447700900123"], "vip": true}),
        ),
        (
            "grace",
            json!({"name": "Grace Hopper", "plan": "pro", "age": 85.5, "$email": ["grace@navy.mil"], "$sms": ["+12025550123"], "address": {"city": "NYC"}}),
        ),
        (
            "linus",
            json!({"name": "Linus", "plan": "team", "age": "unknown", "renews": "2025-01-01T00:00:00Z"}),
        ),
        ("nobody", json!({})),
        (
            "edsger",
            json!({"name": "Edsger Dijkstra", "tags": [], "vip": false, "$email": ["ewd@example.org"]}),
        ),
        (
            "margaret",
            json!({"name": "Margaret Hamilton", "plan": "pro", "age": 30, "$email": ["mh@nasa.gov"]}),
        ),
    ];
    for (i, (who, body)) in people.iter().enumerate() {
        let c = crate::ctx_at(Env::Test, i as i64 * 10);
        profiles::upsert(store, &c, &id(who), body).await.unwrap();
    }
    profiles::set_status(
        store,
        &ctx(Env::Test),
        &id("alan"),
        herald_core::Status::Disabled,
    )
    .await
    .unwrap();
    // The other environment holds look-alikes that must never show.
    profiles::upsert(
        store,
        &ctx(Env::Live),
        &id("ada"),
        &json!({"plan": "pro", "name": "Ada"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn every_filter_returns_what_the_domain_says_matches() {
    for b in backends().await {
        populate(b.store.as_ref()).await;
        every_filter_agrees(b.name, b.store.as_ref()).await;
    }
}

/// The filters of [`every_filter_returns_what_the_domain_says_matches`], through every sort and
/// page, with their counts, on a store holding [`populate`]'s profiles.
async fn every_filter_agrees(name: &str, store: &dyn Store) {
    let queries = [
        "prop.plan=eq:pro",
        "prop.plan=ne:pro",
        "prop.plan=in:free,team",
        "prop.age=eq:36",
        "prop.age=gt:35",
        "prop.age=gte:36&prop.age=lt:86",
        "prop.age=lte:30",
        "prop.age=eq:unknown",
        "prop.vip=eq:true",
        "prop.vip=exists:true",
        "prop.vip=exists:false",
        "prop.address=exists:true",
        "prop.tags=contains:math",
        "prop.tags=exists:true",
        "prop.bio=contains:PROGRAM",
        "prop.name=contains:ho",
        "prop.renews=gt:2026-01-01T00:00:00Z",
        "prop.renews=lt:2026-01-01T00:00:00Z",
        "prop.$email=contains:mh@nasa.gov",
        "prop.never=exists:false",
        "prop.never=eq:x",
        "status=disabled",
        "status=enabled&prop.plan=eq:pro",
        "has_channel=email",
        "has_channel=email&has_channel=sms",
        "lacks_channel=email",
        "q=a",
        "q=ada",
        "q=TURING",
        "q=grace@",
        "q=4477",
        "q=+1202",
        "q=zzz",
        "created_at=gte:2000-01-01T00:00:00Z",
        "updated_at=lt:2000-01-01T00:00:00Z",
        "prop.plan=eq:pro&has_channel=email&q=m",
    ];
    {
        let all = everyone(store, Env::Test).await;
        assert_eq!(all.len(), 7, "{}", name);
        for q in queries {
            let filter = Filter::parse(&pairs(q)).unwrap();
            let mut want: Vec<String> = all
                .iter()
                .filter(|p| filter.matches(p))
                .map(|p| p.distinct_id.to_string())
                .collect();
            want.sort();
            for sort in ["-created_at", "created_at", "distinct_id", "-updated_at"] {
                let sort = Sort::parse(sort).unwrap();
                let got = list_all(store, Env::Test, &filter, sort).await;
                let mut ids: Vec<String> = got.iter().map(|p| p.distinct_id.to_string()).collect();
                let listed = ids.clone();
                ids.sort();
                assert_eq!(ids, want, "{}: {q} sorted {}", name, sort.as_string());
                let mut in_order = got.clone();
                in_order.sort_by_key(|p| match sort.field {
                    herald_core::listing::SortField::DistinctId => (0, p.distinct_id.to_string()),
                    herald_core::listing::SortField::CreatedAt => {
                        (p.created_at.timestamp_micros(), p.distinct_id.to_string())
                    }
                    herald_core::listing::SortField::UpdatedAt => {
                        (p.updated_at.timestamp_micros(), p.distinct_id.to_string())
                    }
                });
                if sort.descending {
                    in_order.reverse();
                }
                let expected: Vec<String> =
                    in_order.iter().map(|p| p.distinct_id.to_string()).collect();
                assert_eq!(listed, expected, "{}: {q} order {}", name, sort.as_string());
            }
            let count = store
                .count_profiles(EnvScope::operator(Env::Test), &filter)
                .await
                .unwrap();
            assert_eq!(
                count,
                Count::exact(want.len() as u64),
                "{}: count of {q}",
                name
            );
        }
        let live = Filter::parse(&pairs("prop.plan=eq:pro")).unwrap();
        let live_ids: Vec<String> = list_all(store, Env::Live, &live, Sort::default())
            .await
            .iter()
            .map(|p| p.distinct_id.to_string())
            .collect();
        assert_eq!(live_ids, ["ada"], "{}", name);
    }
}

/// SQL text literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// What Herald stored at migration 14 for `people`: the profiles, their index rows keyed by
/// (env, distinct_id, key) text, and their counters.
fn as_version_14(people: &[(Env, Profile)]) -> String {
    let mut sql = String::new();
    let mut counts: BTreeMap<(&str, String), i64> = BTreeMap::new();
    for (env, p) in people {
        let (e, d) = (lit(env.as_str()), lit(p.distinct_id.as_str()));
        let created = p.created_at.timestamp_micros();
        sql.push_str(&format!(
            "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, \
             updated_at, version, preferences) VALUES ({e}, {d}, {}, {}, {}, {created}, {}, {}, {});\n",
            lit(p.status.as_str()),
            lit(&serde_json::to_string(&p.properties).unwrap()),
            lit(&serde_json::to_string(&p.identities).unwrap()),
            p.updated_at.timestamp_micros(),
            p.version,
            lit(&serde_json::to_string(&p.preferences).unwrap()),
        ));
        for x in herald_core::index::entries(p) {
            sql.push_str(&format!(
                "INSERT INTO profile_values (env, distinct_id, key, kind, text_value, num_value, \
                 time_value, created_at) VALUES ({e}, {d}, {}, {}, {}, {}, {}, {created});\n",
                lit(&x.key),
                x.kind.code(),
                lit(&x.text),
                x.num.map_or("NULL".into(), |n| format!("{n:?}")),
                x.time.map_or("NULL".into(), |t| t.to_string()),
            ));
        }
        for key in presence(p).into_keys() {
            *counts.entry((env.as_str(), key)).or_default() += 1;
        }
    }
    for ((env, key), n) in counts {
        sql.push_str(&format!(
            "INSERT INTO property_counts (env, key, shard, n) VALUES ({}, {}, 0, {n});\n",
            lit(env),
            lit(&key)
        ));
    }
    sql
}

/// Runs `sql` on the database as it is, through the backend's own driver.
async fn raw(scratch: &herald_store::testing::Scratch, sql: &str) {
    if scratch.is_postgres() {
        let (client, conn) = tokio_postgres::connect(&scratch.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    } else {
        let path = scratch.url.strip_prefix("sqlite://").unwrap();
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

/// A database at migration 14, whose index rows repeat env, distinct_id and key as text, holds
/// profiles: migration 15 carries its rows over to the profile-id, key-id rows, and then every
/// filter answers as on a database that had them from the start.
#[tokio::test]
async fn upgrading_from_text_keyed_index_rows_keeps_every_filter() {
    use herald_store::testing::{migrate_to, postgres_url, Scratch};
    use herald_store::{connect, StoreOptions};
    for b in backends().await {
        populate(b.store.as_ref()).await;
        let mut people = Vec::new();
        for env in [Env::Test, Env::Live] {
            people.extend(
                everyone(b.store.as_ref(), env)
                    .await
                    .into_iter()
                    .map(|p| (env, p)),
            );
        }
        let old = if b.scratch.is_postgres() {
            Scratch::postgres(&postgres_url().unwrap()).await
        } else {
            Scratch::sqlite()
        };
        migrate_to(&old.url, 14).await;
        raw(&old, &as_version_14(&people)).await;
        let upgraded = connect(&old.url, &StoreOptions::default()).await.unwrap();
        every_filter_agrees(b.name, upgraded.as_ref()).await;
        let before = upgraded
            .property_counts(EnvScope::operator(Env::Test))
            .await
            .unwrap();
        assert_eq!(before.get("plan"), Some(&5), "{}: counters carried", b.name);
        // And the upgraded index keeps up with edits.
        profiles::upsert(
            upgraded.as_ref(),
            &ctx(Env::Test),
            &id("linus"),
            &json!({"plan": "pro"}),
        )
        .await
        .unwrap();
        let pro = Filter::parse(&pairs("prop.plan=eq:pro")).unwrap();
        let ids: Vec<String> = list_all(upgraded.as_ref(), Env::Test, &pro, Sort::default())
            .await
            .iter()
            .map(|p| p.distinct_id.to_string())
            .collect();
        assert_eq!(ids, ["margaret", "linus", "grace", "ada"], "{}", b.name);
    }
}

/// What the counters must say: a recount over every profile of `env`.
async fn recount(store: &dyn Store, env: Env) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for p in everyone(store, env).await {
        for key in presence(&p).into_keys() {
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    counts
}

async fn stored_counts(store: &dyn Store, env: Env) -> BTreeMap<String, i64> {
    let mut c = store
        .property_counts(EnvScope::operator(env))
        .await
        .unwrap();
    c.retain(|_, n| *n != 0);
    c
}

#[tokio::test]
async fn registry_counts_stay_exact_through_edits_merges_and_deletes() {
    for b in backends().await {
        let store = b.store.as_ref();
        populate(store).await;
        let check = |step: &'static str| async move {
            for env in [Env::Test, Env::Live] {
                assert_eq!(
                    stored_counts(store, env).await,
                    recount(store, env).await,
                    "{}: after {step} in {env:?}",
                    b.name
                );
            }
        };
        check("creates").await;
        edit(
            store,
            Env::Test,
            "ada",
            json!([{"$unset": ["plan", "tags", "$email"]}, {"$set": {"team": "x"}}]),
        )
        .await
        .unwrap();
        edit(
            store,
            Env::Test,
            "linus",
            json!([{"$set": {"age": 50}}, {"$append": {"$email": "linus@example.com"}}]),
        )
        .await
        .unwrap();
        check("edits and unsets").await;
        profiles::merge(store, &ctx(Env::Test), &id("grace"), &id("margaret"))
            .await
            .unwrap();
        check("a merge").await;
        profiles::bulk_delete(
            store,
            &ctx(Env::Test),
            &[id("alan"), id("nobody"), id("ghost")],
        )
        .await
        .unwrap();
        profiles::delete(store, &ctx(Env::Test), &id("edsger"))
            .await
            .unwrap();
        check("deletes").await;
        let count = store
            .count_profiles(EnvScope::operator(Env::Test), &Filter::default())
            .await
            .unwrap();
        assert_eq!(count, Count::exact(3), "{}: ada, grace, linus", b.name);

        // The registry as callers see it: discovered keys with their counts and types.
        let all = properties::list(store, &ctx(Env::Test)).await.unwrap();
        let find = |k: &str| all.iter().find(|p| p.record.key == k);
        assert_eq!(find("team").map(|p| p.profiles), Some(1), "{}", b.name);
        assert_eq!(find("$email").map(|p| p.profiles), Some(2), "{}", b.name);
        assert_eq!(
            find("$created_at").map(|p| p.profiles),
            Some(3),
            "{}",
            b.name
        );
        let age = find("age").unwrap();
        assert_eq!(
            herald_core::index::types::names(age.record.types_seen),
            ["string", "number"],
            "{}: age was seen as a number and as a string",
            b.name
        );
        assert!(find("tags").is_some_and(|p| p.profiles == 0), "{}", b.name);
    }
}

#[tokio::test]
async fn declared_properties_can_change_and_go_only_while_unused() {
    for b in backends().await {
        let store = b.store.as_ref();
        let c = ctx(Env::Test);
        let declared = properties::declare(
            store,
            &c,
            PropertyDeclaration {
                key: "plan".into(),
                declared_type: Some("string".into()),
                attributes: PropertyAttributes {
                    label: Some("Plan".into()),
                    ..Default::default()
                },
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (declared.profiles, declared.record.declared),
            (0, true),
            "{}",
            b.name
        );
        let again = properties::declare(
            store,
            &c,
            PropertyDeclaration {
                key: "plan".into(),
                declared_type: None,
                attributes: PropertyAttributes::default(),
            },
        )
        .await;
        assert!(
            matches!(again, Err(herald_core::service::Error::Conflict(_))),
            "{}",
            b.name
        );
        let shown = properties::update(
            store,
            &c,
            "plan",
            PropertyAttributes {
                show_in_table: Some(true),
                description: Some("Billing plan".into()),
                label: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (
                shown.record.show_in_table,
                shown.record.description.as_str(),
                shown.record.label.as_str()
            ),
            (true, "Billing plan", "Plan"),
            "{}",
            b.name
        );
        // A built-in changes visibility but cannot be deleted.
        let shown_only = PropertyAttributes {
            show_in_table: Some(true),
            ..Default::default()
        };
        let country = properties::update(store, &c, "country", shown_only)
            .await
            .unwrap();
        assert!(country.record.show_in_table, "{}", b.name);
        assert!(matches!(
            properties::delete(store, &c, "country").await,
            Err(herald_core::service::Error::Conflict(_))
        ));
        // In use: refused; unused again: deleted.
        edit(store, Env::Test, "ada", json!([{"$set": {"plan": "pro"}}]))
            .await
            .unwrap();
        let refused = properties::delete(store, &c, "plan").await;
        assert!(
            matches!(refused, Err(herald_core::service::Error::Conflict(_))),
            "{}",
            b.name
        );
        edit(store, Env::Test, "ada", json!([{"$unset": ["plan"]}]))
            .await
            .unwrap();
        properties::delete(store, &c, "plan").await.unwrap();
        assert!(matches!(
            properties::get(store, &c, "plan").await,
            Err(herald_core::service::Error::Missing { .. })
        ));
        // The live registry never saw any of it.
        let live: Vec<PropertyRecord> = store
            .list_property_records(EnvScope::operator(Env::Live))
            .await
            .unwrap();
        assert!(live.is_empty(), "{}: {live:?}", b.name);
    }
}

#[tokio::test]
async fn broad_and_narrow_searches_page_alike() {
    // More terms than the narrow-search bound, so `q=zed` takes the scanning plan while
    // `q=zed-00001` starts from its terms.
    let n = herald_store::NARROW_SEARCH + 100;
    for b in backends().await {
        let store = b.store.as_ref();
        let items: Vec<_> = (0..n)
            .map(|i| {
                (
                    id(&format!("zed-{i:05}")),
                    json!({"name": format!("Zed {i}"), "even": i % 2 == 0}),
                    chrono::Utc::now() + chrono::Duration::milliseconds(i as i64),
                )
            })
            .collect();
        let made = profiles::import(store, &ctx(Env::Test), &items)
            .await
            .unwrap();
        assert_eq!(made, n, "{}", b.name);
        populate(store).await;
        for q in [
            "q=zed",
            "q=zed-00001",
            "q=zed&prop.even=eq:true",
            "q=zed 1",
            "q=a",
        ] {
            let filter = Filter::parse(&pairs(q)).unwrap();
            let all = everyone(store, Env::Test).await;
            let mut want: Vec<String> = all
                .iter()
                .filter(|p| filter.matches(p))
                .map(|p| p.distinct_id.to_string())
                .collect();
            want.sort();
            let q_limit = ListQuery {
                filter: filter.clone(),
                sort: Sort::default(),
                limit: 1000,
                position: PagePosition::First,
            };
            let mut got = Vec::new();
            let mut position = PagePosition::First;
            loop {
                let page_q = ListQuery {
                    position: position.clone(),
                    ..q_limit.clone()
                };
                let rows = store
                    .list_profiles(EnvScope::operator(Env::Test), &page_q)
                    .await
                    .unwrap();
                let page = Page::assemble(&page_q, rows);
                got.extend(page.items.iter().map(|p| p.distinct_id.to_string()));
                match page.after {
                    Some(_) => {
                        position = PagePosition::After(herald_core::listing::Cursor::of(
                            page.items.last().unwrap(),
                            Sort::default(),
                        ))
                    }
                    None => break,
                }
            }
            got.sort();
            assert_eq!(got, want, "{}: {q}", b.name);
            let count = store
                .count_profiles(EnvScope::operator(Env::Test), &filter)
                .await
                .unwrap();
            assert_eq!(
                count,
                Count::exact(want.len() as u64),
                "{}: count {q}",
                b.name
            );
        }
    }
}
