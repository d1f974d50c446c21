//! History rows: stored compactly (actors named once, changes packed beside the request), read
//! back as the same events, and rows a version-14 Herald wrote read as they were.

use super::*;
use herald_core::history::{Change, HistoryEvent};
use herald_store::testing::migrate_to;
use serde_json::Value;

/// Runs `sql` on the database as it is, through the backend's own driver, and returns the first
/// column of each row it answers, as text.
async fn raw(scratch: &Scratch, sql: &str) -> Vec<String> {
    if scratch.is_postgres() {
        let (client, conn) = tokio_postgres::connect(&scratch.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut out = Vec::new();
        for m in client.simple_query(sql).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                out.push(r.get(0).unwrap_or_default().to_owned());
            }
        }
        out
    } else {
        let path = scratch.url.strip_prefix("sqlite://").unwrap();
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut out = Vec::new();
        for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
            let mut stmt = conn.prepare(statement).unwrap();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                out.push(match r.get_ref(0).unwrap() {
                    rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                    v => v.as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        out
    }
}

async fn events(s: &dyn Store, who: &str) -> Vec<HistoryEvent> {
    s.list_history(EnvScope::operator(Env::Test), &id(who), None, 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_creation_stores_its_values_once_and_its_actor_by_reference() {
    for b in backends().await {
        let body = json!({"name": "Ada", "$email": ["Ada@Example.COM"], "age": 36});
        profiles::upsert(b.store.as_ref(), &ctx(Env::Test), &id("ada"), &body)
            .await
            .unwrap();
        profiles::upsert(
            b.store.as_ref(),
            &ctx(Env::Test),
            &id("bob"),
            &json!({"n": 1}),
        )
        .await
        .unwrap();
        // The request's keys in byte order are `$email`, `age`, `name`: the changes point at
        // them, and store whole only what the request does not say (normalised, or derived).
        let stored = raw(
            &b.scratch,
            "SELECT changes FROM history WHERE distinct_id = 'ada'",
        )
        .await;
        let stored: Value = serde_json::from_str(&stored[0]).unwrap();
        assert_eq!(
            stored,
            json!([
                2,
                1,
                ["$status", "enabled"],
                ["$email", ["Ada@example.com"]]
            ]),
            "{}",
            b.name
        );
        let actors = raw(&b.scratch, "SELECT count(*) FROM history_actors").await;
        assert_eq!(actors, ["1"], "{}: one actor, named once", b.name);

        let got = events(b.store.as_ref(), "ada").await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].actor, Actor::new("test", "contract"), "{}", b.name);
        assert_eq!(got[0].request, body, "{}", b.name);
        let expected: Vec<Change> = serde_json::from_value(json!([
            {"key": "name", "after": "Ada"},
            {"key": "age", "after": 36},
            {"key": "$status", "after": "enabled"},
            {"key": "$email", "after": ["Ada@example.com"]}
        ]))
        .unwrap();
        assert_eq!(got[0].changes, expected, "{}", b.name);
    }
}

/// What a version-14 Herald stored: each actor as JSON on its row, changes whole.
const VERSION_14_ROWS: &str = r#"INSERT INTO history (env, distinct_id, at, actor, action, request, changes) VALUES
  ('test', 'ada', 1000, '{"kind":"api_key","id":"hb_test_abcd"}', 'created',
   '{"name":"Ada","plan":"free"}',
   '[{"key":"name","after":"Ada"},{"key":"plan","after":"free"},{"key":"$status","after":"enabled"}]'),
  ('test', 'ada', 2000, '{"kind":"workspace_key","id":"hk_test_0123456789abcdefghij"}', 'updated',
   '{"operations":[{"$set":{"plan":"pro"}},{"$unset":["name"]},{"$append":{"tags":"c"}}]}',
   '[{"key":"name","before":"Ada"},{"key":"plan","before":"free","after":"pro"},{"key":"tags","added":["c"]}]'),
  ('test', 'ada', 3000, '{"kind":"api_key","id":"hb_test_abcd"}', 'updated',
   '{"$status":"disabled"}', '[{"key":"$status","before":"enabled","after":"disabled"}]')"#;

#[tokio::test]
async fn rows_written_before_the_compact_form_read_as_they_were() {
    let mut scratches = vec![Scratch::sqlite()];
    if let Some(base) = postgres_url() {
        scratches.push(Scratch::postgres(&base).await);
    }
    for scratch in scratches {
        let name = if scratch.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        };
        migrate_to(&scratch.url, 14).await;
        raw(&scratch, VERSION_14_ROWS).await;
        // Upgrading runs migration 16: the actors move to their table.
        let store = connect(&scratch.url, &StoreOptions::default())
            .await
            .unwrap();
        let got = events(store.as_ref(), "ada").await;
        let wire: Vec<Value> = got.iter().map(HistoryEvent::to_wire).collect();
        let strip = |mut e: Value| {
            e.as_object_mut().unwrap().shift_remove("id");
            e
        };
        let wire: Vec<Value> = wire.into_iter().map(strip).collect();
        assert_eq!(
            serde_json::to_string(&wire).unwrap(),
            concat!(
                r#"[{"distinct_id":"ada","at":"1970-01-01T00:00:00.003000+00:00","actor":{"kind":"api_key","id":"hb_test_abcd"},"action":"updated","request":{"$status":"disabled"},"changes":[{"key":"$status","before":"enabled","after":"disabled"}]},"#,
                r#"{"distinct_id":"ada","at":"1970-01-01T00:00:00.002000+00:00","actor":{"kind":"workspace_key","id":"hk_test_0123456789abcdefghij"},"action":"updated","request":{"operations":[{"$set":{"plan":"pro"}},{"$unset":["name"]},{"$append":{"tags":"c"}}]},"changes":[{"key":"name","before":"Ada"},{"key":"plan","before":"free","after":"pro"},{"key":"tags","added":["c"]}]},"#,
                r#"{"distinct_id":"ada","at":"1970-01-01T00:00:00.001000+00:00","actor":{"kind":"api_key","id":"hb_test_abcd"},"action":"created","request":{"name":"Ada","plan":"free"},"changes":[{"key":"name","after":"Ada"},{"key":"plan","after":"free"},{"key":"$status","after":"enabled"}]}]"#
            ),
            "{name}"
        );
        let actors = raw(&scratch, "SELECT count(*) FROM history_actors").await;
        assert_eq!(actors, ["2"], "{name}: each actor once");

        // New events beside the old ones: an actor already named is not named again.
        let by_key = Ctx::new(
            EnvScope::operator(Env::Test),
            Actor::new("api_key", "hb_test_abcd"),
            Utc::now(),
        );
        profiles::upsert(
            store.as_ref(),
            &by_key,
            &id("ada"),
            &json!({"plan": "team"}),
        )
        .await
        .unwrap();
        let got = events(store.as_ref(), "ada").await;
        assert_eq!(got.len(), 4, "{name}");
        assert_eq!(
            got[0].actor,
            Actor::new("api_key", "hb_test_abcd"),
            "{name}"
        );
        assert_eq!(got[0].request, json!({"plan": "team"}), "{name}");
        let actors = raw(&scratch, "SELECT count(*) FROM history_actors").await;
        assert_eq!(actors, ["2"], "{name}");
    }
}
