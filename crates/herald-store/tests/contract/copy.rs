//! `herald copy`: everything one database holds arrives in another, across backends.

use super::*;
use herald_core::channel::Channel;
use herald_core::preference::{
    Category, CategoryAttributes, Choice, ChoiceRequest, DefaultPreference,
};
use herald_core::property::{PropertyAttributes, PropertyDeclaration};
use herald_core::service::{copy, preferences, properties};
use serde_json::Value;

/// Keys, categories, registry labels, and profiles with edits, preferences, a merge and a delete,
/// in both environments.
async fn populate(store: &dyn Store) {
    let operator = herald_core::admin::Operator {
        username: herald_core::admin::Username::parse("ada").unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
    };
    assert!(store.insert_operator(&operator).await.unwrap());
    for env in [Env::Test, Env::Live] {
        let new = NewCredentials::from_random(
            env,
            [
                &format!("{env}{}", "k".repeat(24)),
                &"s".repeat(40),
                &format!("{env}{}", "b".repeat(40)),
            ],
            Utc::now(),
        );
        store.insert_credentials(&new.credentials).await.unwrap();
        let c = ctx(env);
        let news = Category::declare(
            "news",
            CategoryAttributes {
                name: Some("News".into()),
                section: Some(Some("Marketing".into())),
                default_preference: Some(DefaultPreference::OptOut),
                locked_channels: Some([Channel::Inbox].into()),
                ..CategoryAttributes::default()
            },
        )
        .unwrap();
        preferences::create_category(store, &c, news).await.unwrap();
        properties::declare(
            store,
            &c,
            PropertyDeclaration {
                key: "signup_source".into(),
                declared_type: Some("string".into()),
                attributes: PropertyAttributes {
                    label: Some("Signup source".into()),
                    description: None,
                    show_in_table: Some(true),
                },
            },
        )
        .await
        .unwrap();
        properties::update(
            store,
            &c,
            "country",
            PropertyAttributes {
                show_in_table: Some(true),
                label: Some("Land".into()),
                description: None,
            },
        )
        .await
        .unwrap();
        for i in 0..603 {
            let user = format!("{env}-{i:04}");
            profiles::upsert(
                store,
                &c,
                &id(&user),
                &json!({"name": format!("User {i}"), "plan": if i % 2 == 0 { "free" } else { "pro" }, "$email": [format!("u{i}@example.com")]}),
            )
            .await
            .unwrap();
        }
        edit(
            store,
            env,
            &format!("{env}-0001"),
            json!([{"$add": {"logins": 1}}, {"$set": {"country": "DE"}}]),
        )
        .await
        .unwrap();
        edit(
            store,
            env,
            &format!("{env}-0001"),
            json!([{"$add": {"logins": 1}}, {"$append": {"$sms": "+14155550123"}}]),
        )
        .await
        .unwrap();
        preferences::choose(
            store,
            &c,
            &id(&format!("{env}-0002")),
            "news",
            ChoiceRequest {
                preference: Choice::OptIn,
                opt_out_channels: Some([Channel::Sms].into()),
                opt_in_channels: Default::default(),
            },
        )
        .await
        .unwrap();
        profiles::merge(
            store,
            &c,
            &id(&format!("{env}-0003")),
            &id(&format!("{env}-0004")),
        )
        .await
        .unwrap();
        profiles::delete(store, &c, &id(&format!("{env}-0005")))
            .await
            .unwrap();
    }
}

/// What a caller can see of one environment, with store-assigned event ids left out.
async fn everything(store: &dyn Store, env: Env) -> Value {
    let c = ctx(env);
    let mut users = Vec::new();
    let mut all = profiles::AllProfiles::new(EnvScope::operator(env));
    loop {
        let page = all.next_page(store, 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for p in page {
            let history: Vec<Value> =
                profiles::whole_history(store, EnvScope::operator(env), &p.distinct_id)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| {
                        let mut w = e.to_wire();
                        w.as_object_mut().unwrap().remove("id");
                        w
                    })
                    .collect();
            users.push(
                json!({"profile": p.to_wire(), "preferences": p.preferences, "history": history}),
            );
        }
    }
    let registry: Vec<Value> = properties::list(store, &c)
        .await
        .unwrap()
        .iter()
        .map(|p| {
            let r = &p.record;
            json!({
                "key": r.key, "kind": r.kind.as_str(), "label": r.label,
                "description": r.description, "show_in_table": r.show_in_table,
                "type": r.declared_type, "types": p.types(), "observed_types": p.observed_types(),
                "declared": r.declared,
                "created_at": r.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "profiles": p.profiles,
            })
        })
        .collect();
    let categories: Vec<Value> = preferences::list_categories(store, &c)
        .await
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    json!({"users": users, "registry": registry, "categories": categories})
}

#[tokio::test]
async fn a_copy_holds_everything_the_source_held_across_backends() {
    let sources = backends().await;
    for source in &sources {
        populate(source.store.as_ref()).await;
        for target in backends().await {
            let name = format!("{} -> {}", source.name, target.name);
            let counted = std::sync::atomic::AtomicU64::new(0);
            let report = copy::run(source.store.as_ref(), target.store.as_ref(), &|_, n| {
                counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .unwrap();
            // 603 upserted, one merged away and one deleted, per environment.
            assert_eq!(report.credentials, 2, "{name}");
            assert_eq!(report.operators, 1, "{name}");
            assert_eq!(
                source.store.list_operators().await.unwrap(),
                target.store.list_operators().await.unwrap(),
                "{name}: operator accounts, hashes and all"
            );
            assert_eq!(
                (report.test.profiles, report.live.profiles),
                (601, 601),
                "{name}"
            );
            assert_eq!(counted.into_inner(), 1202, "{name}");
            assert_eq!(report.test.categories, 1, "{name}");
            for env in [Env::Test, Env::Live] {
                let (a, b) = (
                    everything(source.store.as_ref(), env).await,
                    everything(target.store.as_ref(), env).await,
                );
                assert!(a == b, "{name} {env}: the copy differs");
                assert_eq!(a["users"].as_array().unwrap().len(), 601);
            }
            assert_eq!(
                source.store.list_credentials().await.unwrap(),
                target.store.list_credentials().await.unwrap(),
                "{name}"
            );
            // Filters work on the copy: its index was built as the profiles arrived.
            let pro = herald_core::filter::Filter::parse(&[("prop.plan".into(), "eq:pro".into())])
                .unwrap();
            assert_eq!(
                target
                    .store
                    .count_profiles(EnvScope::operator(Env::Test), &pro)
                    .await
                    .unwrap(),
                source
                    .store
                    .count_profiles(EnvScope::operator(Env::Test), &pro)
                    .await
                    .unwrap(),
                "{name}"
            );
            // A second copy into the now-full target is refused and changes nothing.
            let again = copy::run(source.store.as_ref(), target.store.as_ref(), &|_, _| {}).await;
            assert!(
                matches!(&again, Err(Error::Conflict(e)) if e.rule.contains("already holds 601 profiles in test")),
                "{name}: {again:?}"
            );
        }
    }
}
