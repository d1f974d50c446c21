//! Workflows: stored per environment, found by event, carried by `herald copy`.

use super::*;
use herald_core::preference::{Category, CategoryAttributes};
use herald_core::service::{copy, preferences, workflows};
use herald_core::workflow::{Workflow, WorkflowInput};
use serde_json::Value;

fn input(body: Value) -> WorkflowInput {
    serde_json::from_value(body).unwrap()
}

fn welcome(events: &[&str]) -> WorkflowInput {
    input(json!({
        "slug": "welcome",
        "name": "Welcome",
        "category": "news",
        "policy": {"first_success": ["inbox", "email"]},
        "channels": {
            "email": {"subject": "Hi {{$recipient.name}}", "html": "<p>{{code}}</p>"},
            "slack": {"text": "hi", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{code}}*"}}]},
            "inbox": {"title": "Welcome", "body": "Code {{code}}"}
        },
        "events": events,
    }))
}

async fn with_category(store: &dyn Store, env: Env) {
    let news = Category::declare("news", CategoryAttributes::default()).unwrap();
    preferences::declare_categories(store, &ctx(env), &[news])
        .await
        .unwrap();
}

fn slugs(found: &[Workflow]) -> Vec<&str> {
    found.iter().map(|w| w.slug.as_str()).collect()
}

#[tokio::test]
async fn workflows_round_trip_per_environment_and_never_cross() {
    for b in backends().await {
        let s = b.store.as_ref();
        let name = b.name;
        with_category(s, Env::Test).await;
        let created = workflows::create(s, &ctx(Env::Test), welcome(&["signed_up"]))
            .await
            .unwrap();
        let stored = s
            .get_workflow(EnvScope::operator(Env::Test), "welcome")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, created, "{name}: read back as saved");
        assert_eq!(stored.to_input(), created.to_input(), "{name}");
        // Live has neither the workflow nor its category.
        let live = EnvScope::operator(Env::Live);
        assert!(
            s.get_workflow(live, "welcome").await.unwrap().is_none(),
            "{name}"
        );
        assert!(s.list_workflows(live).await.unwrap().is_empty(), "{name}");
        assert!(!s.delete_workflow(live, "welcome").await.unwrap(), "{name}");
        assert!(
            s.workflows_for_event(live, "signed_up")
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        let refused = workflows::create(s, &ctx(Env::Live), welcome(&[])).await;
        assert!(
            matches!(&refused, Err(Error::Invalid(e)) if e.field == "category"),
            "{name}: {refused:?}"
        );
        // A second create is a conflict and keeps the first.
        let again = workflows::create(s, &ctx(Env::Test), welcome(&["other"])).await;
        assert!(matches!(again, Err(Error::Conflict(_))), "{name}");
        assert_eq!(
            s.get_workflow(EnvScope::operator(Env::Test), "welcome")
                .await
                .unwrap()
                .unwrap()
                .events,
            ["signed_up"],
            "{name}"
        );
        // The same slug in live is another workflow.
        with_category(s, Env::Live).await;
        let mut live_input = welcome(&["signed_up"]);
        live_input.name = Some("Live welcome".into());
        workflows::create(s, &ctx(Env::Live), live_input)
            .await
            .unwrap();
        assert!(
            workflows::delete(s, &ctx(Env::Test), "welcome")
                .await
                .is_ok(),
            "{name}"
        );
        assert!(
            matches!(
                workflows::delete(s, &ctx(Env::Test), "welcome").await,
                Err(Error::Missing {
                    what: "workflow",
                    ..
                })
            ),
            "{name}"
        );
        let left = s.get_workflow(live, "welcome").await.unwrap().unwrap();
        assert_eq!(left.name, "Live welcome", "{name}: deleting test kept live");
        assert_eq!(
            slugs(&s.workflows_for_event(live, "signed_up").await.unwrap()),
            ["welcome"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn events_find_their_workflows_and_follow_replace_and_delete() {
    for b in backends().await {
        let (s, name) = (b.store.as_ref(), b.name);
        let scope = EnvScope::operator(Env::Test);
        with_category(s, Env::Test).await;
        let c = ctx(Env::Test);
        workflows::create(s, &c, welcome(&["signed_up", "invited"]))
            .await
            .unwrap();
        let mut other = welcome(&["signed_up"]);
        other.slug = "another".into();
        workflows::create(s, &c, other).await.unwrap();
        assert_eq!(
            slugs(&s.workflows_for_event(scope, "signed_up").await.unwrap()),
            ["another", "welcome"],
            "{name}: by slug"
        );
        assert_eq!(
            slugs(&s.workflows_for_event(scope, "invited").await.unwrap()),
            ["welcome"]
        );
        assert!(
            s.workflows_for_event(scope, "Signed_Up")
                .await
                .unwrap()
                .is_empty(),
            "{name}: exact names"
        );
        // Replacing changes the events with the workflow.
        let (_, put) = workflows::put(s, &c, "welcome", welcome(&["invited", "paid"]))
            .await
            .unwrap();
        assert_eq!(put, workflows::Put::Replaced, "{name}");
        assert_eq!(
            slugs(&s.workflows_for_event(scope, "signed_up").await.unwrap()),
            ["another"],
            "{name}"
        );
        assert_eq!(
            slugs(&s.workflows_for_event(scope, "paid").await.unwrap()),
            ["welcome"],
            "{name}"
        );
        let mut fresh = welcome(&[]);
        fresh.slug = String::new();
        let (created, put) = workflows::put(s, &c, "fresh", fresh).await.unwrap();
        assert_eq!(
            (created.slug.as_str(), put),
            ("fresh", workflows::Put::Created),
            "{name}"
        );
        // Deleting takes its events along.
        workflows::delete(s, &c, "welcome").await.unwrap();
        assert!(
            s.workflows_for_event(scope, "paid")
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        assert!(
            s.workflows_for_event(scope, "invited")
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        assert_eq!(
            slugs(&s.list_workflows(scope).await.unwrap()),
            ["another", "fresh"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_copy_carries_workflows_with_their_events() {
    let sources = backends().await;
    for source in &sources {
        let from = source.store.as_ref();
        for env in [Env::Test, Env::Live] {
            with_category(from, env).await;
            workflows::create(from, &ctx(env), welcome(&[&format!("{env}_event")]))
                .await
                .unwrap();
        }
        for target in backends().await {
            let name = format!("{} -> {}", source.name, target.name);
            let to = target.store.as_ref();
            let report = copy::run(from, to, &|_, _| {}).await.unwrap();
            assert_eq!(
                (report.test.workflows, report.live.workflows),
                (1, 1),
                "{name}"
            );
            for env in [Env::Test, Env::Live] {
                let scope = EnvScope::operator(env);
                assert_eq!(
                    from.list_workflows(scope).await.unwrap(),
                    to.list_workflows(scope).await.unwrap(),
                    "{name} {env}"
                );
                assert_eq!(
                    slugs(
                        &to.workflows_for_event(scope, &format!("{env}_event"))
                            .await
                            .unwrap()
                    ),
                    ["welcome"],
                    "{name} {env}"
                );
            }
        }
    }
}
