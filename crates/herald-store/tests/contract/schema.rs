//! Both migration trees must produce the same tables and columns.

use herald_store::testing::{postgres_url, Scratch};
use herald_store::{connect, StoreOptions};
use std::collections::BTreeMap;

type Tables = BTreeMap<String, Vec<String>>;

#[tokio::test]
async fn sqlite_and_postgres_schemas_match() {
    let Some(base) = postgres_url() else {
        eprintln!("!!! schema parity skipped: HERALD_TEST_POSTGRES_URL is not set");
        return;
    };
    let lite = Scratch::sqlite();
    drop(connect(&lite.url, &StoreOptions::default()).await.unwrap());
    let pg = Scratch::postgres(&base).await;
    drop(connect(&pg.url, &StoreOptions::default()).await.unwrap());
    let sqlite_tables = sqlite_columns(lite.url.trim_start_matches("sqlite://"));
    let pg_tables = postgres_columns(&pg.url).await;
    assert!(sqlite_tables.contains_key("profiles"), "{sqlite_tables:?}");
    assert_eq!(sqlite_tables, pg_tables);
}

fn sqlite_columns(path: &str) -> Tables {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut tables = Tables::new();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in names {
        let mut cols: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info({t})"))
            .unwrap()
            .query_map([], |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        cols.sort();
        tables.insert(t, cols);
    }
    tables
}

async fn postgres_columns(url: &str) -> Tables {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() ORDER BY table_name, column_name",
            &[],
        )
        .await
        .unwrap();
    let mut tables = Tables::new();
    for r in rows {
        tables.entry(r.get(0)).or_default().push(r.get(1));
    }
    tables
}
