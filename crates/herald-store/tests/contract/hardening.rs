//! Audit findings (issue 8) that live in the store, on every backend.

#[allow(unused_imports)]
use super::*;

mod typed_index {
    //! Finding 9: a value switching between number and string (`30` -> `"30"`) keeps its index
    //! entry's number in step, so range filters and counters stay exact.
    use super::*;
    use herald_core::index::types;
    use herald_core::listing::{Count, PagePosition, Sort};

    async fn ids(store: &dyn Store, q: &str) -> Vec<String> {
        let (k, v) = q.split_once('=').unwrap();
        let filter = Filter::parse(&[(k.to_owned(), v.to_owned())]).unwrap();
        let query = ListQuery {
            filter,
            sort: Sort::default(),
            limit: 100,
            position: PagePosition::First,
        };
        let mut ids: Vec<String> = store
            .list_profiles(EnvScope::new(Env::Test), &query)
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
                    EnvScope::new(Env::Test),
                    &Filter::parse(&[("prop.age".into(), "gt:29".into())]).unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(count, Count::exact(1), "{}", b.name);
            let counts = store
                .property_counts(EnvScope::new(Env::Test))
                .await
                .unwrap();
            assert_eq!(counts.get("age"), Some(&2), "{}: {counts:?}", b.name);
            assert_eq!(counts.get("*"), Some(&2), "{}: {counts:?}", b.name);
            let record = store
                .list_property_records(EnvScope::new(Env::Test))
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
