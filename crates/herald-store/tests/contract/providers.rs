//! Provider configurations: one per (environment, channel), stored whole (secrets included),
//! replaced by a put, carried by `herald copy`.

use super::*;
use herald_core::channel::Channel;
use herald_core::service::copy;

fn smtp(host: &str) -> serde_json::Value {
    json!({"kind": "smtp", "host": host, "port": 2525, "tls": "none",
           "from": "herald@example.com", "password": "pw-secret"})
}

#[tokio::test]
async fn provider_configs_round_trip_per_environment_and_never_cross() {
    for b in backends().await {
        let s = b.store.as_ref();
        let name = b.name;
        let (test, live) = (EnvScope::operator(Env::Test), EnvScope::operator(Env::Live));
        assert!(
            s.list_provider_configs(test).await.unwrap().is_empty(),
            "{name}"
        );
        assert!(
            s.put_provider_config(test, Channel::Email, &smtp("a.example"))
                .await
                .unwrap(),
            "{name}: the first put creates"
        );
        let discord = json!({"kind": "discord", "base_url": "http://127.0.0.1:9"});
        assert!(s
            .put_provider_config(test, Channel::Discord, &discord)
            .await
            .unwrap());
        let stored = s
            .get_provider_config(test, Channel::Email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.channel, &stored.config),
            (Channel::Email, &smtp("a.example")),
            "{name}: stored whole, the secret with it"
        );
        // A put replaces the whole config and says it did not create.
        let first_update = stored.updated_at;
        assert!(
            !s.put_provider_config(test, Channel::Email, &smtp("b.example"))
                .await
                .unwrap(),
            "{name}: a second put replaces"
        );
        let replaced = s
            .get_provider_config(test, Channel::Email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replaced.config["host"], "b.example", "{name}");
        assert!(replaced.updated_at >= first_update, "{name}");
        let listed: Vec<Channel> = s
            .list_provider_configs(test)
            .await
            .unwrap()
            .iter()
            .map(|r| r.channel)
            .collect();
        assert_eq!(
            listed,
            [Channel::Discord, Channel::Email],
            "{name}: by channel name"
        );
        // Live holds none of it.
        assert!(
            s.list_provider_configs(live).await.unwrap().is_empty(),
            "{name}"
        );
        assert!(s
            .get_provider_config(live, Channel::Email)
            .await
            .unwrap()
            .is_none());
        assert!(!s
            .delete_provider_config(live, Channel::Email)
            .await
            .unwrap());
        // Deleted once: gone; deleting again says there was none.
        assert!(s
            .delete_provider_config(test, Channel::Email)
            .await
            .unwrap());
        assert!(!s
            .delete_provider_config(test, Channel::Email)
            .await
            .unwrap());
        assert!(s
            .get_provider_config(test, Channel::Email)
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            s.list_provider_configs(test).await.unwrap().len(),
            1,
            "{name}"
        );
        // Created again after a delete: a create.
        assert!(s
            .put_provider_config(test, Channel::Email, &smtp("c.example"))
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn a_copy_carries_provider_configs_with_their_secrets() {
    let sources = backends().await;
    for source in &sources {
        let from = source.store.as_ref();
        let test = EnvScope::operator(Env::Test);
        from.put_provider_config(test, Channel::Email, &smtp("mail.example"))
            .await
            .unwrap();
        for target in backends().await {
            let name = format!("{} -> {}", source.name, target.name);
            let to = target.store.as_ref();
            let report = copy::run(from, to, &|_, _| {}).await.unwrap();
            assert_eq!(
                (report.test.providers, report.live.providers),
                (1, 0),
                "{name}"
            );
            let copied = to
                .get_provider_config(test, Channel::Email)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(copied.config, smtp("mail.example"), "{name}");
            assert!(to
                .list_provider_configs(EnvScope::operator(Env::Live))
                .await
                .unwrap()
                .is_empty());
        }
    }
}
