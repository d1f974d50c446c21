//! Test support (feature `testing`): scratch databases for both backends, so every test runs on
//! its own fresh, empty schema and leaves nothing behind.

use std::path::PathBuf;

/// The PostgreSQL server tests use: `HERALD_TEST_POSTGRES_URL`. `None` when unset, unless
/// `HERALD_REQUIRE_POSTGRES` is set (as in CI), in which case a missing URL fails the test.
pub fn postgres_url() -> Option<String> {
    match std::env::var("HERALD_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("HERALD_REQUIRE_POSTGRES").is_none(),
                "HERALD_REQUIRE_POSTGRES is set but HERALD_TEST_POSTGRES_URL is not"
            );
            None
        }
    }
}

/// A database that exists for one test: a temporary SQLite file, or a fresh PostgreSQL schema
/// (selected through the URL's `search_path`), dropped when this value is dropped.
pub struct Scratch {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema { base_url: String, schema: String },
}

impl Scratch {
    pub fn sqlite() -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        let path: PathBuf = dir.path().join("herald.db");
        Scratch {
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::Dir(dir),
        }
    }

    pub async fn postgres(base_url: &str) -> Scratch {
        let schema = format!("herald_t_{:016x}", rand_u64());
        let (client, conn) = tokio_postgres::connect(base_url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create a scratch schema");
        let sep = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{sep}options=-csearch_path%3D{schema}");
        Scratch {
            url,
            cleanup: Cleanup::Schema {
                base_url: base_url.to_owned(),
                schema,
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.cleanup, Cleanup::Schema { .. })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Cleanup::Schema { base_url, schema } = &self.cleanup {
            let (base_url, schema) = (base_url.clone(), schema.clone());
            // Drop runs inside async tests; a thread of its own may block on its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok((client, conn)) =
                        tokio_postgres::connect(&base_url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        let _ = client
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Brings the database at `url` (a [`Scratch`]'s) to schema `version` only, as an older Herald
/// left it, so a test can store what that version stored and then upgrade with
/// [`crate::connect`].
pub async fn migrate_to(url: &str, version: i64) {
    match crate::DatabaseUrl::parse(url).expect("a database URL") {
        crate::DatabaseUrl::Sqlite(path) => {
            let mut conn = rusqlite::Connection::open(path).expect("open SQLite");
            crate::sqlite::migrate_to(&mut conn, version).expect("migrate SQLite");
        }
        crate::DatabaseUrl::Postgres(url) => {
            let options = crate::StoreOptions::default();
            crate::postgres::PostgresStore::unmigrated(&url, &options)
                .expect("PostgreSQL pool")
                .migrate_to(version)
                .await
                .expect("migrate PostgreSQL");
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}
