//! Audit findings (issue 8) that live in the store, on every backend.

#[allow(unused_imports)]
use super::*;

mod typed_index {
    //! Finding 9: a value switching between number and string (`30` -> `"30"`) keeps its index
    //! entry's number in step, so range filters and counters stay exact.
    use super::*;
    use herald_core::index::types;
    use herald_core::listing::{Count, PagePosition, Sort};

    pub(super) async fn ids(store: &dyn Store, q: &str) -> Vec<String> {
        let (k, v) = q.split_once('=').unwrap();
        let filter = Filter::parse(&[(k.to_owned(), v.to_owned())]).unwrap();
        let query = ListQuery {
            filter,
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
    async fn a_value_switching_between_number_and_string_is_filtered_by_its_type() {
        for b in backends().await {
            let store = b.store.as_ref();
            edit(store, Env::Test, "ada", json!([{"$set": {"age": 30}}]))
                .await
                .unwrap();
            edit(store, Env::Test, "bob", json!([{"$set": {"age": "30"}}]))
                .await
                .unwrap();
            assert_eq!(ids(store, "prop.age=gte:30").await, ["ada"], "{}", b.name);
            // The number becomes a string, the string a number.
            edit(store, Env::Test, "ada", json!([{"$set": {"age": "30"}}]))
                .await
                .unwrap();
            edit(store, Env::Test, "bob", json!([{"$set": {"age": 30}}]))
                .await
                .unwrap();
            assert_eq!(
                ids(store, "prop.age=eq:30").await,
                ["ada", "bob"],
                "{}",
                b.name
            );
            assert_eq!(ids(store, "prop.age=gte:30").await, ["bob"], "{}", b.name);
            assert_eq!(ids(store, "prop.age=lt:31").await, ["bob"], "{}", b.name);
            let count = store
                .count_profiles(
                    EnvScope::operator(Env::Test),
                    &Filter::parse(&[("prop.age".into(), "gt:29".into())]).unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(count, Count::exact(1), "{}", b.name);
            let counts = store
                .property_counts(EnvScope::operator(Env::Test))
                .await
                .unwrap();
            assert_eq!(counts.get("age"), Some(&2), "{}: {counts:?}", b.name);
            assert_eq!(counts.get("*"), Some(&2), "{}: {counts:?}", b.name);
            let record = store
                .list_property_records(EnvScope::operator(Env::Test))
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.key == "age")
                .unwrap();
            assert_eq!(
                record.types_seen,
                types::STRING | types::NUMBER,
                "{}",
                b.name
            );
        }
    }
}

mod registry_races {
    //! Finding 15: deleting a property record cannot race a write that starts using the key, and a
    //! malformed stored category is an error, not a panic.
    use super::*;

    async fn raw_postgres(url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    #[tokio::test]
    async fn a_record_is_not_deleted_under_a_write_that_starts_using_it() {
        for b in backends().await {
            let store = b.store.clone();
            let scope = EnvScope::operator(Env::Test);
            // The key was used once and is unused now: its record may be deleted.
            edit(
                store.as_ref(),
                Env::Test,
                "ada",
                json!([{"$set": {"k": 1}}]),
            )
            .await
            .unwrap();
            edit(store.as_ref(), Env::Test, "ada", json!([{"$unset": ["k"]}]))
                .await
                .unwrap();
            let mut held = None;
            if b.scratch.is_postgres() {
                // Stall the next write of "k" on its counter row, mid-transaction.
                let raw = raw_postgres(&b.scratch.url).await;
                raw.batch_execute(
                    "BEGIN; SELECT * FROM property_counts WHERE env = 'test' AND key = 'k' FOR UPDATE",
                )
                .await
                .unwrap();
                held = Some(raw);
            }
            let write = tokio::spawn({
                let store = store.clone();
                async move {
                    edit(
                        store.as_ref(),
                        Env::Test,
                        "ada",
                        json!([{"$set": {"k": 2}}]),
                    )
                    .await
                    .unwrap();
                }
            });
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let delete = tokio::spawn({
                let store = store.clone();
                async move { store.delete_property_record(scope, "k").await.unwrap() }
            });
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if let Some(raw) = held {
                raw.batch_execute("COMMIT").await.unwrap();
            }
            write.await.unwrap();
            let deleted = delete.await.unwrap();
            let counts = store.property_counts(scope).await.unwrap();
            assert_eq!(counts.get("k"), Some(&1), "{}", b.name);
            assert_eq!(
                deleted,
                herald_core::store::PropertyDeletion::StillCarried(1),
                "{}: the record of a used key was deleted",
                b.name
            );
            let records = store.list_property_records(scope).await.unwrap();
            assert!(
                records.iter().any(|r| r.key == "k"),
                "{}: a used property lost its record",
                b.name
            );
        }
    }

    #[tokio::test]
    async fn a_malformed_stored_category_is_an_error() {
        for b in backends().await {
            let malformed = "INSERT INTO categories (env, slug, doc, created_at, updated_at) \
                             VALUES ('test', 'broken', '{\"nope\": 1}', 0, 0)";
            if b.scratch.is_postgres() {
                raw_postgres(&b.scratch.url)
                    .await
                    .batch_execute(malformed)
                    .await
                    .unwrap();
            } else {
                let path = b.scratch.url.strip_prefix("sqlite://").unwrap();
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(malformed)
                    .unwrap();
            }
            let scope = EnvScope::operator(Env::Test);
            assert!(b.store.list_categories(scope).await.is_err(), "{}", b.name);
            assert!(
                b.store.get_category(scope, "broken").await.is_err(),
                "{}",
                b.name
            );
        }
    }

    /// A stored workflow is checked again as it is read: a document that no longer parses (a
    /// template edited in the database) is an error naming no user data, never a panic.
    #[tokio::test]
    async fn a_malformed_stored_workflow_is_an_error() {
        for b in backends().await {
            let malformed = "INSERT INTO workflows (env, slug, doc, created_at, updated_at) \
                             VALUES ('test', 'broken', \
                             '{\"slug\": \"broken\", \"channels\": {\"sms\": {\"text\": \"{{#if}}\"}}}', 0, 0); \
                             INSERT INTO workflow_events (env, event, slug) VALUES ('test', 'go', 'broken')";
            if b.scratch.is_postgres() {
                raw_postgres(&b.scratch.url)
                    .await
                    .batch_execute(malformed)
                    .await
                    .unwrap();
            } else {
                let path = b.scratch.url.strip_prefix("sqlite://").unwrap();
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(malformed)
                    .unwrap();
            }
            let scope = EnvScope::operator(Env::Test);
            let name = b.name;
            let err = b.store.get_workflow(scope, "broken").await.unwrap_err();
            assert!(
                err.to_string().contains("channels.sms.text"),
                "{name}: {err}"
            );
            assert!(b.store.list_workflows(scope).await.is_err(), "{name}");
            assert!(
                b.store.workflows_for_event(scope, "go").await.is_err(),
                "{name}"
            );
        }
    }
}

mod erasure {
    //! Finding 14: a deleted (or merged-away) profile's tombstone keeps no raw id; it is filed
    //! under a keyed hash and still listed for the id.
    use super::*;

    /// Every value of every table, as text.
    pub(super) async fn all_text(b: &Backend) -> Vec<String> {
        let mut out = Vec::new();
        if b.scratch.is_postgres() {
            let (client, conn) = tokio_postgres::connect(&b.scratch.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let tables = client
                .query(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
                    &[],
                )
                .await
                .unwrap();
            assert!(tables.len() > 5);
            for t in tables {
                let name: String = t.get(0);
                for row in client
                    .query(&format!("SELECT x::text FROM \"{name}\" x"), &[])
                    .await
                    .unwrap()
                {
                    out.push(format!("{name}: {}", row.get::<_, String>(0)));
                }
            }
        } else {
            let path = b.scratch.url.strip_prefix("sqlite://").unwrap();
            let conn = rusqlite::Connection::open(path).unwrap();
            let tables: Vec<String> = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(tables.len() > 5);
            for name in tables {
                let mut s = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
                let n = s.column_count();
                let mut rows = s.query([]).unwrap();
                while let Some(row) = rows.next().unwrap() {
                    let mut line = format!("{name}:");
                    for i in 0..n {
                        let v: rusqlite::types::Value = row.get(i).unwrap();
                        line.push_str(&format!(" {v:?}"));
                    }
                    out.push(line);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn a_tombstone_keeps_no_raw_id_and_is_still_listed() {
        for b in backends().await {
            let s = b.store.as_ref();
            let gone = "erase.me@example.com";
            edit(
                s,
                Env::Test,
                gone,
                json!([{"$set": {"name": "Erase Me", "$email": "erase.me@example.com"}}]),
            )
            .await
            .unwrap();
            edit(s, Env::Test, gone, json!([{"$set": {"plan": "pro"}}]))
                .await
                .unwrap();
            edit(s, Env::Test, "keeper", json!([{"$set": {"a": 1}}]))
                .await
                .unwrap();
            edit(
                s,
                Env::Test,
                "merged.away@example.com",
                json!([{"$set": {"b": 2}}]),
            )
            .await
            .unwrap();
            profiles::merge(
                s,
                &ctx(Env::Test),
                &id("keeper"),
                &id("merged.away@example.com"),
            )
            .await
            .unwrap();
            profiles::delete(s, &ctx(Env::Test), &id(gone))
                .await
                .unwrap();

            let text = all_text(&b).await;
            let leaks: Vec<&String> = text.iter().filter(|l| l.contains("erase.me")).collect();
            assert!(leaks.is_empty(), "{}: the raw id stayed: {leaks:?}", b.name);
            // The merged-away id is named by the keeper's own `merged` event only; no event is
            // filed under it.
            let filed: Vec<&String> = text
                .iter()
                .filter(|l| {
                    l.starts_with("history")
                        && l.contains("merged.away")
                        && !l.contains("from_user_id")
                })
                .collect();
            assert!(filed.is_empty(), "{}: {filed:?}", b.name);

            for (who, action) in [
                (gone, Action::Deleted),
                ("merged.away@example.com", Action::MergedInto),
            ] {
                let page = profiles::history(s, &ctx(Env::Test), &id(who), None, 10)
                    .await
                    .unwrap();
                assert_eq!(
                    page.events.iter().map(|e| e.action).collect::<Vec<_>>(),
                    [action],
                    "{}: {who}",
                    b.name
                );
                assert_eq!(page.events[0].distinct_id, id(who), "{}", b.name);
            }
            // Deleted twice: one tombstone, still found.
            edit(s, Env::Test, gone, json!([{"$set": {"c": 3}}]))
                .await
                .unwrap();
            let page = profiles::history(s, &ctx(Env::Test), &id(gone), None, 10)
                .await
                .unwrap();
            assert_eq!(
                page.events.iter().map(|e| e.action).collect::<Vec<_>>(),
                [Action::Created, Action::Deleted],
                "{}",
                b.name
            );
            profiles::delete(s, &ctx(Env::Test), &id(gone))
                .await
                .unwrap();
            let page = profiles::history(s, &ctx(Env::Test), &id(gone), None, 10)
                .await
                .unwrap();
            assert_eq!(
                page.events.iter().map(|e| e.action).collect::<Vec<_>>(),
                [Action::Deleted],
                "{}",
                b.name
            );
            // Another id is not taken for the deleted one.
            assert!(
                profiles::history(s, &ctx(Env::Test), &id("never"), None, 10)
                    .await
                    .is_err()
            );
        }
    }
}

mod repair_migration {
    //! Migration 8 repairs what was stored before the fixes of findings 14 and 9: tombstones
    //! filed under the raw id, and index rows holding a number for a string (or the reverse).
    use super::erasure::all_text;
    use super::typed_index::ids;
    use super::*;
    use herald_core::erasure;
    use herald_store::testing::migrate_to;

    /// Runs `sql` on the database as it is, through the backend's own driver.
    async fn raw(scratch: &Scratch, sql: &str) {
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

    /// What a version-7 Herald stored: tombstones under raw ids (one naming the id in its JSON
    /// too, as a legacy one might), and index rows whose number disagrees with the value.
    /// `secret`: the database already holds an erasure secret and a newer Herald's tombstone of
    /// the same id, older than the raw one.
    async fn version_7(scratch: &Scratch, secret: Option<&str>) {
        migrate_to(&scratch.url, 7).await;
        let actor = r#"{"kind":"test","id":"contract"}"#;
        let mut sql = format!(
            "INSERT INTO profiles (env, distinct_id, status, properties, identities, created_at, updated_at, version)
             VALUES ('test', 'ada', 'enabled', '{{\"age\":\"30\"}}', '[]', 1, 1, 1),
                    ('test', 'bob', 'enabled', '{{\"age\":30}}', '[]', 2, 2, 1);
             INSERT INTO profile_values (env, distinct_id, key, kind, text_value, num_value, time_value, created_at)
             VALUES ('test', 'ada', 'age', 0, '30', 30, NULL, 1),
                    ('test', 'ada', '$search', 3, 'ada', NULL, NULL, 1),
                    ('test', 'bob', 'age', 0, '30', NULL, NULL, 2),
                    ('test', 'bob', '$search', 3, 'bob', NULL, NULL, 2);
             INSERT INTO property_counts (env, key, shard, n) VALUES ('test', '*', 0, 2), ('test', 'age', 0, 2);
             INSERT INTO history (env, distinct_id, at, actor, action, request, changes) VALUES
               ('test', 'gone@example.com', 2000, '{actor}', 'deleted',
                '{{\"distinct_id\":\"gone@example.com\"}}', '[{{\"key\":\"$email\",\"before\":\"gone@example.com\"}}]'),
               ('test', 'away@example.com', 3000, '{actor}', 'merged_into', '{{\"into_user_id\":\"ada\"}}', '[]'),
               ('test', 'erased:not-a-hash', 4000, '{actor}', 'deleted', 'null', '[]');"
        );
        if let Some(secret) = secret {
            let hashed = erasure::tombstone_id(secret, &id("gone@example.com"));
            // Inserted after the raw one, so only its `at` says it is older.
            sql = format!(
                "{sql}
                 INSERT INTO server_secrets (name, value) VALUES ('erasure', '{secret}');
                 INSERT INTO history (env, distinct_id, at, actor, action, request, changes) VALUES
                   ('test', '{hashed}', 1000, '{actor}', 'deleted', 'null', '[]');"
            );
        }
        raw(scratch, &sql).await;
    }

    #[tokio::test]
    async fn upgrading_refiles_legacy_tombstones_and_repairs_stale_index_rows() {
        let mut scratches = vec![Scratch::sqlite(), Scratch::sqlite()];
        if let Some(base) = postgres_url() {
            scratches.push(Scratch::postgres(&base).await);
            scratches.push(Scratch::postgres(&base).await);
        }
        for (n, scratch) in scratches.into_iter().enumerate() {
            let secret = (n % 2 == 1).then_some("an-older-secret");
            version_7(&scratch, secret).await;
            let name = format!(
                "{} ({})",
                if scratch.is_postgres() {
                    "postgres"
                } else {
                    "sqlite"
                },
                if secret.is_some() {
                    "with a secret"
                } else {
                    "no secret"
                }
            );
            // Upgrading runs migration 8; then filters read each value by its own type.
            let store = connect(&scratch.url, &StoreOptions::default())
                .await
                .unwrap();
            let b = Backend {
                name: "upgraded",
                store,
                scratch,
            };
            let s = b.store.as_ref();
            assert_eq!(ids(s, "prop.age=gte:30").await, ["bob"], "{name}");
            assert_eq!(ids(s, "prop.age=lt:31").await, ["bob"], "{name}");
            assert_eq!(ids(s, "prop.age=eq:30").await, ["ada", "bob"], "{name}");

            let text = all_text(&b).await;
            let leaks: Vec<&String> = text
                .iter()
                .filter(|l| l.contains("gone@") || l.contains("away@") || l.contains("not-a-hash"))
                .collect();
            assert!(leaks.is_empty(), "{name}: a raw id stayed: {leaks:?}");
            for (who, action, at) in [
                ("gone@example.com", Action::Deleted, 2000),
                ("away@example.com", Action::MergedInto, 3000),
                ("erased:not-a-hash", Action::Deleted, 4000),
            ] {
                let page = profiles::history(s, &ctx(Env::Test), &id(who), None, 10)
                    .await
                    .unwrap();
                let got: Vec<_> = page
                    .events
                    .iter()
                    .map(|e| (e.action, e.at.timestamp_micros()))
                    .collect();
                assert_eq!(got, [(action, at)], "{name}: {who}");
                assert!(page.events[0].changes.is_empty(), "{name}: {who}");
            }
            let merged = profiles::history(s, &ctx(Env::Test), &id("away@example.com"), None, 1)
                .await
                .unwrap();
            assert_eq!(
                merged.events[0].request,
                json!({"into_user_id": "ada"}),
                "{name}"
            );
            if let Some(secret) = secret {
                let stored = s
                    .server_secret(erasure::SECRET_NAME, "unused")
                    .await
                    .unwrap();
                assert_eq!(stored, secret, "{name}: the secret in use is kept");
            }
            // Counters count keys; the repair left them alone.
            let counts = s
                .property_counts(EnvScope::operator(Env::Test))
                .await
                .unwrap();
            assert_eq!(counts.get("age"), Some(&2), "{name}");
        }
    }
}

mod copy_resume {
    //! Finding 12: a copy interrupted half way completes on a second run, everything exactly once.
    use super::*;
    use herald_core::service::copy;

    async fn populate(store: &dyn Store) {
        let c = ctx(Env::Test);
        let items: Vec<_> = (0..700)
            .map(|i| {
                (
                    id(&format!("u{i:04}")),
                    json!({"n": i, "$email": format!("u{i}@example.com")}),
                    Utc::now(),
                )
            })
            .collect();
        profiles::import(store, &c, &items).await.unwrap();
        edit(
            store,
            Env::Test,
            "u0001",
            json!([{"$set": {"plan": "pro"}}]),
        )
        .await
        .unwrap();
        profiles::merge(store, &c, &id("u0002"), &id("u0003"))
            .await
            .unwrap();
        // Deleted, then back: its tombstone is part of its history.
        profiles::delete(store, &c, &id("u0650")).await.unwrap();
        edit(store, Env::Test, "u0650", json!([{"$set": {"back": true}}]))
            .await
            .unwrap();
    }

    /// Every profile of the test environment with its whole history (event ids left out).
    async fn everything(store: &dyn Store) -> Vec<Value> {
        let scope = EnvScope::operator(Env::Test);
        let mut all = profiles::AllProfiles::new(scope);
        let mut out = Vec::new();
        loop {
            let page = all.next_page(store, 1000).await.unwrap();
            if page.is_empty() {
                return out;
            }
            for p in page {
                let history: Vec<Value> = profiles::whole_history(store, scope, &p.distinct_id)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| {
                        let mut w = e.to_wire();
                        w.as_object_mut().unwrap().remove("id");
                        w
                    })
                    .collect();
                out.push(json!({"profile": p.to_wire(), "history": history}));
            }
        }
    }

    use serde_json::Value;

    #[tokio::test]
    async fn an_interrupted_copy_resumes_with_everything_exactly_once() {
        for source in backends().await {
            populate(source.store.as_ref()).await;
            let want = everything(source.store.as_ref()).await;
            assert_eq!(want.len(), 699);
            for target in backends().await {
                let name = format!("{} -> {}", source.name, target.name);
                // Interrupted after the first batch of profiles (as a killed process would be).
                let (from, to) = (source.store.clone(), target.store.clone());
                let interrupted = tokio::spawn(async move {
                    copy::run(from.as_ref(), to.as_ref(), &|_, _| panic!("interrupted")).await
                })
                .await;
                assert!(interrupted.is_err(), "{name}");
                let part =
                    profiles::count_all(target.store.as_ref(), EnvScope::operator(Env::Test))
                        .await
                        .unwrap();
                assert!(
                    part > 0 && part < 699,
                    "{name}: {part} copied before the stop"
                );
                // A plain copy still refuses a non-empty target.
                assert!(matches!(
                    copy::run(source.store.as_ref(), target.store.as_ref(), &|_, _| {}).await,
                    Err(Error::Conflict(_))
                ));
                let report = copy::resume(source.store.as_ref(), target.store.as_ref(), &|_, _| {})
                    .await
                    .unwrap();
                assert_eq!(report.test.skipped, part, "{name}");
                assert_eq!(report.test.profiles + part, 699, "{name}");
                assert!(
                    everything(target.store.as_ref()).await == want,
                    "{name}: the copy differs"
                );
                // The tombstone of u0650 came along and is found on the target.
                let page = profiles::history(
                    target.store.as_ref(),
                    &ctx(Env::Test),
                    &id("u0650"),
                    None,
                    10,
                )
                .await
                .unwrap();
                assert_eq!(
                    page.events.iter().map(|e| e.action).collect::<Vec<_>>(),
                    [Action::Created, Action::Deleted],
                    "{name}"
                );
                // Resuming a finished copy changes nothing.
                let again = copy::resume(source.store.as_ref(), target.store.as_ref(), &|_, _| {})
                    .await
                    .unwrap();
                assert_eq!(
                    (again.test.profiles, again.test.skipped),
                    (0, 699),
                    "{name}"
                );
                assert!(everything(target.store.as_ref()).await == want, "{name}");
            }
        }
    }
}
