//! The SQL of filtered listings and counts, shared by both backends: the filter is answered from
//! the `profile_values` index rows (see `herald_core::index`), so both databases run the same
//! conditions on the same columns; only placeholders and one string function differ. Index rows
//! are keyed by the profile's row id and an interned key id (`index_keys`, which implies the
//! environment); a key is named by [`key_id`]'s subquery, so a key never seen matches nothing.

use herald_core::filter::{Bound, Filter, PropOp, TimeField};
use herald_core::index::{EntryKind, SEARCH_KEY};
use herald_core::listing::{ListQuery, PagePosition, SortField, SortValue};
use herald_core::profile::micros;
use herald_core::store::MessageQuery;
use herald_core::Env;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Int(i64),
    Real(f64),
}

/// SQL text with its arguments, numbered in order (`?1` or `$1`).
#[derive(Debug)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
    dialect: Dialect,
}

impl Sql {
    fn new(dialect: Dialect) -> Sql {
        Sql {
            text: String::new(),
            args: Vec::new(),
            dialect,
        }
    }

    /// Binds an argument and returns its placeholder.
    fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.args.len()),
            Dialect::Postgres => format!("${}", self.args.len()),
        }
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(Arg::Text(s.to_owned()))
    }

    fn list(&mut self, texts: &[String]) -> String {
        let marks: Vec<String> = texts.iter().map(|t| self.text(t)).collect();
        marks.join(", ")
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
}

/// A search prefix matching at most this many terms is "narrow": the listing starts from the
/// matching terms (cost grows with matches). A broader one scans profiles in page order and
/// checks each (cost shrinks as matches get denser). [`search_probe`] tells which.
pub const NARROW_SEARCH: u64 = 2000;

/// What the store learnt before planning a listing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    pub narrow_search: bool,
}

/// Counts the search terms of `q`, stopping past [`NARROW_SEARCH`].
pub fn search_probe(dialect: Dialect, env: Env, q: &str) -> Sql {
    let mut sql = Sql::new(dialect);
    let range = search_range(&mut sql, env, q);
    sql.push(&format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM profile_values s WHERE {range} LIMIT {}) probe",
        NARROW_SEARCH + 1
    ));
    sql
}

/// The id of env's `key` in `index_keys`, as an uncorrelated subquery (evaluated once per
/// statement; NULL, so matching nothing, for a key no profile has used).
fn key_id(sql: &mut Sql, env: Env, key: &str) -> String {
    let e = sql.text(env.as_str());
    let k = sql.text(key);
    format!("(SELECT id FROM index_keys WHERE env = {e} AND key = {k})")
}

/// `s.…` conditions selecting the search terms starting with `q`: `q` ≤ term < `q` + U+10FFFF,
/// a prefix range on the value index, in byte order.
fn search_range(sql: &mut Sql, env: Env, q: &str) -> String {
    let k = key_id(sql, env, SEARCH_KEY);
    let lo = sql.text(q);
    let hi = sql.text(&format!("{q}\u{10FFFF}"));
    format!(
        "s.key_id = {k} AND s.kind = {SEARCH} AND s.kind {IN_VALUE_INDEX} \
         AND s.text_value >= {lo} AND s.text_value < {hi}"
    )
}

/// Columns of `profiles` a profile is read from, qualified by the alias `p`.
pub const PROFILE_COLUMNS: &str =
    "p.distinct_id, p.status, p.properties, p.identities, p.created_at, p.updated_at, p.version, p.preferences";

const VALUE: i16 = EntryKind::Value as i16;
const ELEMENT: i16 = EntryKind::Element as i16;
const SEARCH: i16 = EntryKind::Search as i16;
/// The kinds the value index holds (its `WHERE`, migration 15): a query that reads it repeats
/// the condition word for word, which is how SQLite knows a partial index applies.
const IN_VALUE_INDEX: &str = "IN (0, 3)";
const _: () = assert!(VALUE == 0 && SEARCH == 3);

/// The prop filter that can drive a listing sorted by creation time from the value index: an
/// equality on one text. Index `(key_id, kind, text_value, created_at, profile_id)` then yields
/// matches in creation order (only profiles created in the same microsecond are sorted, by
/// distinct_id), so the first page costs the same for rare and common values.
fn driver(query: &ListQuery) -> Option<usize> {
    if query.sort.field != SortField::CreatedAt {
        return None;
    }
    query
        .filter
        .props
        .iter()
        .position(|f| matches!(&f.op, PropOp::OneOf(t) if t.len() == 1))
}

/// Appends ` AND …` for every condition of `filter` except the prop filter `skip` (and the search
/// when `skip_search`: a driver answered them).
fn conditions(sql: &mut Sql, env: Env, filter: &Filter, skip: Option<usize>, skip_search: bool) {
    let lower_contains = |sql: &mut Sql, needle: &str| {
        let n = sql.text(needle);
        match sql.dialect {
            Dialect::Sqlite => format!("instr(lower(v.text_value), {n}) > 0"),
            Dialect::Postgres => format!("strpos(lower(v.text_value), {n}) > 0"),
        }
    };
    if let Some(s) = filter.status {
        let m = sql.text(s.as_str());
        sql.push(&format!(" AND p.status = {m}"));
    }
    for t in &filter.times {
        let column = match t.field {
            TimeField::CreatedAt => "p.created_at",
            TimeField::UpdatedAt => "p.updated_at",
        };
        let m = sql.bind(Arg::Int(t.at));
        sql.push(&format!(" AND {column} {} {m}", t.cmp.symbol()));
    }
    let exists = |sql: &mut Sql, negate: bool, key: &str, cond: Option<String>| {
        let k = key_id(sql, env, key);
        let extra = cond.map(|c| format!(" AND ({c})")).unwrap_or_default();
        sql.push(&format!(
            " AND {}EXISTS (SELECT 1 FROM profile_values v WHERE v.profile_id = p.id AND v.key_id = {k}{extra})",
            if negate { "NOT " } else { "" }
        ));
    };
    for (channel, has) in &filter.channels {
        exists(sql, !has, channel.key(), None);
    }
    if let Some(q) = filter.q.as_deref().filter(|_| !skip_search) {
        // Checked per profile on the (profile_id, key_id, kind, text) index: a broad prefix
        // matches often, so the scan in page order stops early.
        let range = search_range(sql, env, q);
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM profile_values s WHERE {range} AND s.profile_id = p.id)"
        ));
    }
    for (i, f) in filter.props.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        match &f.op {
            PropOp::OneOf(texts) => {
                let list = sql.list(texts);
                exists(
                    sql,
                    false,
                    &f.key,
                    Some(format!("v.kind = {VALUE} AND v.text_value IN ({list})")),
                );
            }
            PropOp::NoneOf(texts) => {
                let list = sql.list(texts);
                exists(
                    sql,
                    true,
                    &f.key,
                    Some(format!("v.kind = {VALUE} AND v.text_value IN ({list})")),
                );
            }
            PropOp::Exists(want) => exists(sql, !want, &f.key, None),
            PropOp::Contains { elements, needle } => {
                let list = sql.list(elements);
                let inside = lower_contains(sql, needle);
                exists(
                    sql,
                    false,
                    &f.key,
                    Some(format!(
                        "(v.kind = {ELEMENT} AND v.text_value IN ({list})) OR (v.kind = {VALUE} AND {inside})"
                    )),
                );
            }
            PropOp::Range(cmp, bound) => {
                let (column, m) = match bound {
                    Bound::Num(n) => ("v.num_value", sql.bind(Arg::Real(*n))),
                    Bound::Time(t) => ("v.time_value", sql.bind(Arg::Int(*t))),
                };
                exists(
                    sql,
                    false,
                    &f.key,
                    Some(format!(
                        "v.kind = {VALUE} AND {column} {} {m}",
                        cmp.symbol()
                    )),
                );
            }
        }
    }
}

/// `FROM … WHERE …` of a listing: driven by the search terms of a narrow `q`, else by the value
/// index when [`driver`] finds a condition, else by `profiles` and its (env, sort column)
/// indexes. Returns the alias whose columns order the page.
fn from_where(sql: &mut Sql, env: Env, query: &ListQuery, plan: Plan) -> &'static str {
    if let Some(q) = query.filter.q.as_deref().filter(|_| plan.narrow_search) {
        let range = search_range(sql, env, q);
        let e = sql.text(env.as_str());
        // CROSS JOIN keeps the matching terms as the outer loop (SQLite never reorders it).
        sql.push(&format!(
            " FROM (SELECT DISTINCT s.profile_id FROM profile_values s WHERE {range}) m \
             CROSS JOIN profiles p WHERE p.id = m.profile_id AND p.env = {e}"
        ));
        conditions(sql, env, &query.filter, None, true);
        return "p";
    }
    match driver(query) {
        Some(i) => {
            let f = &query.filter.props[i];
            let PropOp::OneOf(texts) = &f.op else {
                unreachable!("driver() picks equalities")
            };
            // The key id implies the environment.
            let k = key_id(sql, env, &f.key);
            let t = sql.text(&texts[0]);
            sql.push(&format!(
                " FROM profile_values d JOIN profiles p ON p.id = d.profile_id \
                 WHERE d.key_id = {k} AND d.kind = {VALUE} AND d.kind {IN_VALUE_INDEX} AND d.text_value = {t}"
            ));
            conditions(sql, env, &query.filter, Some(i), false);
            "d"
        }
        None => {
            let e = sql.text(env.as_str());
            sql.push(&format!(" FROM profiles p WHERE p.env = {e}"));
            conditions(sql, env, &query.filter, None, false);
            "p"
        }
    }
}

/// Up to `limit + 1` profiles of a page, in scan order.
pub fn list(dialect: Dialect, env: Env, query: &ListQuery, plan: Plan) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push(&format!("SELECT {PROFILE_COLUMNS}"));
    let source = from_where(&mut sql, env, query, plan);
    let column = match query.sort.field {
        SortField::CreatedAt => "created_at",
        SortField::UpdatedAt => "updated_at",
        SortField::DistinctId => "distinct_id",
    };
    // Scanning backwards (the page before a cursor) flips the order; either way the cursor bound
    // is "further along the scan".
    let descending = query.sort.descending != query.scans_backwards();
    let (dir, cmp) = if descending {
        ("DESC", "<")
    } else {
        ("ASC", ">")
    };
    if let PagePosition::After(c) | PagePosition::Before(c) = &query.position {
        let v = sql.bind(match &c.value {
            SortValue::Time(t) => Arg::Int(*t),
            SortValue::Text(s) => Arg::Text(s.clone()),
        });
        let id = sql.text(&c.distinct_id);
        if source == "p" {
            sql.push(&format!(
                " AND (p.{column}, p.distinct_id) {cmp} ({v}, {id})"
            ));
        } else {
            // The sort column and the tie-breaker are on two tables: the bound on the first is
            // spelt out on its own, so the value index starts its range there.
            sql.push(&format!(
                " AND {source}.{column} {cmp}= {v} AND ({source}.{column} {cmp} {v} OR p.distinct_id {cmp} {id})"
            ));
        }
    }
    sql.push(&format!(
        " ORDER BY {source}.{column} {dir}, p.distinct_id {dir} LIMIT {}",
        query.limit + 1
    ));
    sql
}

/// `SELECT COUNT(*)` of the profiles passing the filter, stopping at `cap`.
pub fn count_capped(dialect: Dialect, env: Env, filter: &Filter, cap: u64, plan: Plan) -> Sql {
    let query = ListQuery {
        filter: filter.clone(),
        sort: Default::default(),
        limit: 0,
        position: PagePosition::First,
    };
    let mut sql = Sql::new(dialect);
    let only_one_equality = filter.props.len() == 1
        && driver(&query).is_some()
        && Filter {
            props: Vec::new(),
            ..filter.clone()
        }
        .is_empty();
    if only_one_equality {
        // The value index alone answers it: no profile rows to visit.
        let PropOp::OneOf(texts) = &filter.props[0].op else {
            unreachable!("driver() picks equalities")
        };
        let k = key_id(&mut sql, env, &filter.props[0].key);
        let t = sql.text(&texts[0]);
        sql.push(&format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM profile_values d WHERE d.key_id = {k} \
             AND d.kind = {VALUE} AND d.kind {IN_VALUE_INDEX} AND d.text_value = {t} LIMIT {cap}) capped"
        ));
        return sql;
    }
    let only_a_search = filter.q.is_some()
        && Filter {
            q: None,
            ..filter.clone()
        }
        .is_empty();
    if let Some(q) = filter.q.as_deref().filter(|_| only_a_search) {
        // The search terms alone answer it, however broad the prefix.
        let range = search_range(&mut sql, env, q);
        sql.push(&format!(
            "SELECT COUNT(*) FROM (SELECT DISTINCT s.profile_id FROM profile_values s WHERE {range} LIMIT {cap}) capped"
        ));
        return sql;
    }
    sql.push("SELECT COUNT(*) FROM (SELECT 1");
    from_where(&mut sql, env, &query, plan);
    sql.push(&format!(" LIMIT {cap}) capped"));
    sql
}

/// `SELECT COUNT(*)` of the sampled ids that exist (`filter: None`) or also pass the filter.
pub fn count_sample(dialect: Dialect, env: Env, filter: &Filter, ids: &[i64]) -> Sql {
    let mut sql = Sql::new(dialect);
    let e = sql.text(env.as_str());
    // The ids are integers made by `sample_ids`, never caller input: safe to inline.
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let list = if list.is_empty() { "NULL".into() } else { list };
    // SQLite: `+` keeps the env index out, so the id list drives (one rowid lookup per sample).
    let env_column = match dialect {
        Dialect::Sqlite => "+p.env",
        Dialect::Postgres => "p.env",
    };
    // One pass: how many sampled ids exist in this environment, and how many of those match.
    sql.push("SELECT COUNT(*), COUNT(*) FILTER (WHERE 1 = 1");
    conditions(&mut sql, env, filter, None, false);
    sql.push(&format!(
        ") FROM profiles p WHERE p.id IN ({list}) AND {env_column} = {e}"
    ));
    sql
}

// ---- the message log ----

/// A page of env's messages as `q` filters them, newest first, up to `q.limit + 1` rows (the
/// extra one tells that there is a next page). Only the filters that are set become conditions,
/// so the planner sees plain equalities: one user is `distinct_id = ?`, which index
/// `messages_by_user (env, distinct_id, seq)` answers in page order; several are `IN (…)`.
pub fn message_page(dialect: Dialect, env: Env, q: &MessageQuery) -> Sql {
    let mut sql = Sql::new(dialect);
    let e = sql.text(env.as_str());
    sql.push(&format!(
        "SELECT {} FROM messages WHERE env = {e}",
        crate::sql::MESSAGE_COLUMNS
    ));
    match q.distinct_ids.as_slice() {
        [] => {}
        [one] => {
            let id = sql.text(one.as_str());
            sql.push(&format!(" AND distinct_id = {id}"));
        }
        many => {
            let ids: Vec<String> = many.iter().map(|d| d.as_str().to_owned()).collect();
            let marks = sql.list(&ids);
            sql.push(&format!(" AND distinct_id IN ({marks})"));
        }
    }
    if let Some(before) = q.before {
        let b = sql.bind(Arg::Int(before));
        sql.push(&format!(" AND seq < {b}"));
    }
    let texts = [
        ("status", q.status.map(|s| s.as_str().to_owned())),
        ("channel", q.channel.map(|c| c.as_str().to_owned())),
        ("workflow", q.workflow.clone()),
        ("category", q.category.clone()),
    ];
    for (column, value) in texts {
        if let Some(v) = value {
            let m = sql.text(&v);
            sql.push(&format!(" AND {column} = {m}"));
        }
    }
    if let Some(after) = q.created_after {
        let m = sql.bind(Arg::Int(micros(after)));
        sql.push(&format!(" AND created_at >= {m}"));
    }
    if let Some(before) = q.created_before {
        let m = sql.bind(Arg::Int(micros(before)));
        sql.push(&format!(" AND created_at < {m}"));
    }
    let limit = sql.bind(Arg::Int((q.limit + 1) as i64));
    sql.push(&format!(" ORDER BY seq DESC LIMIT {limit}"));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::listing::Sort;

    fn query(q: &str, sort: &str) -> ListQuery {
        let pairs: Vec<(String, String)> = q
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        ListQuery {
            filter: Filter::parse(&pairs).unwrap(),
            sort: Sort::parse(sort).unwrap(),
            limit: 20,
            position: PagePosition::First,
        }
    }

    #[test]
    fn an_equality_drives_a_creation_ordered_listing_from_the_value_index() {
        let sql = list(
            Dialect::Postgres,
            Env::Test,
            &query("prop.plan=eq:pro&status=enabled", "-created_at"),
            Plan::default(),
        );
        assert!(
            sql.text.contains("FROM profile_values d JOIN profiles p"),
            "{}",
            sql.text
        );
        assert!(sql
            .text
            .contains("ORDER BY d.created_at DESC, p.distinct_id DESC LIMIT 21"));
        assert_eq!(
            sql.args[..3],
            [
                Arg::Text("test".into()),
                Arg::Text("plan".into()),
                Arg::Text("pro".into())
            ]
        );
        let by_id = list(
            Dialect::Sqlite,
            Env::Test,
            &query("prop.plan=eq:pro", "distinct_id"),
            Plan::default(),
        );
        assert!(by_id
            .text
            .starts_with(&format!("SELECT {PROFILE_COLUMNS} FROM profiles p")));
        assert!(by_id.text.contains("?3"), "{}", by_id.text);
    }

    #[test]
    fn a_message_page_names_only_the_filters_set() {
        use herald_core::DistinctId;
        let one = MessageQuery {
            distinct_ids: vec![DistinctId::parse("ada").unwrap()],
            limit: 20,
            ..MessageQuery::default()
        };
        let sql = message_page(Dialect::Postgres, Env::Test, &one);
        assert!(
            sql.text
                .ends_with("WHERE env = $1 AND distinct_id = $2 ORDER BY seq DESC LIMIT $3"),
            "{}",
            sql.text
        );
        assert_eq!(sql.args[2], Arg::Int(21));
        let many = MessageQuery {
            distinct_ids: ["ada", "bob", "cy"]
                .map(|d| DistinctId::parse(d).unwrap())
                .to_vec(),
            before: Some(7),
            channel: Some(herald_core::Channel::Email),
            limit: 5,
            ..MessageQuery::default()
        };
        let sql = message_page(Dialect::Sqlite, Env::Live, &many);
        assert!(
            sql.text.ends_with(
                "WHERE env = ?1 AND distinct_id IN (?2, ?3, ?4) AND seq < ?5 \
                 AND channel = ?6 ORDER BY seq DESC LIMIT ?7"
            ),
            "{}",
            sql.text
        );
        assert_eq!(sql.args[4], Arg::Int(7));
        let all = message_page(Dialect::Sqlite, Env::Test, &MessageQuery::default());
        assert!(all
            .text
            .ends_with("WHERE env = ?1 ORDER BY seq DESC LIMIT ?2"));
    }
}

/// The plans the databases choose for one user's page: served by `messages_by_user` in page
/// order (no sort), with stats and without, on both backends.
#[cfg(all(test, feature = "testing"))]
mod plans {
    use super::*;
    use crate::testing::{postgres_url, Scratch};
    use herald_core::message::MessageStatus;
    use herald_core::DistinctId;

    fn user_pages() -> Vec<MessageQuery> {
        let one = MessageQuery {
            distinct_ids: vec![DistinctId::parse("u0007").unwrap()],
            limit: 20,
            ..MessageQuery::default()
        };
        vec![
            one.clone(),
            MessageQuery {
                before: Some(12_345),
                ..one.clone()
            },
            MessageQuery {
                status: Some(MessageStatus::Sent),
                ..one
            },
        ]
    }

    /// 20,000 messages over 500 users (and the other environment), like `docs/performance.md`'s
    /// larger run; columns as the SQLite and PostgreSQL fill scripts there.
    const FILL: &str = "INSERT INTO messages (id, env, workflow, category, distinct_id, channel, \
         identity, status, reason, provider_id, history, attempts, trigger_id, idempotency_key, \
         created_at, updated_at) SELECT 'msg_' || i, CASE WHEN i % 10 = 0 THEN 'live' ELSE 'test' END, \
         'w', NULL, 'u' || substr('0000' || (i % 500), -4), 'email', '{}', 'sent', NULL, NULL, \
         '[]', 1, 't', NULL, i, i FROM ";

    #[test]
    fn sqlite_serves_a_users_page_from_messages_by_user() {
        let scratch = Scratch::sqlite();
        let path = scratch.url.trim_start_matches("sqlite://");
        let mut conn = rusqlite::Connection::open(path).unwrap();
        crate::sqlite::migrate(&mut conn).unwrap();
        conn.execute_batch(&format!(
            "{FILL} (WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999) SELECT i FROM n)"
        ))
        .unwrap();
        for analyzed in [false, true] {
            if analyzed {
                conn.execute_batch("ANALYZE").unwrap();
            }
            for q in user_pages() {
                let sql = message_page(Dialect::Sqlite, Env::Test, &q);
                let mut explain = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
                    .unwrap();
                let plan: Vec<String> = explain
                    .query_map(crate::sqlite::listing::args(&sql), |r| r.get(3))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let shown = format!("analyzed {analyzed}: {}: {plan:?}", sql.text);
                assert!(
                    plan.iter()
                        .any(|p| p.contains("USING INDEX messages_by_user")),
                    "{shown}"
                );
                assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{shown}");
            }
        }
    }

    /// The partial value index (migration 15) serves an equality's page, its count and a search
    /// prefix: the queries repeat its `WHERE`, without which SQLite would scan the table.
    #[test]
    fn sqlite_reads_equalities_and_search_prefixes_from_the_partial_value_index() {
        use herald_core::filter::Filter;
        use herald_core::listing::Sort;
        let scratch = Scratch::sqlite();
        let path = scratch.url.trim_start_matches("sqlite://");
        let mut conn = rusqlite::Connection::open(path).unwrap();
        crate::sqlite::migrate(&mut conn).unwrap();
        let filter = |q: &str| {
            let (k, v) = q.split_once('=').unwrap();
            Filter::parse(&[(k.to_owned(), v.to_owned())]).unwrap()
        };
        let page = |q: &str| ListQuery {
            filter: filter(q),
            sort: Sort::parse("-created_at").unwrap(),
            limit: 20,
            position: PagePosition::First,
        };
        let narrow = Plan {
            narrow_search: true,
        };
        let statements = [
            list(
                Dialect::Sqlite,
                Env::Test,
                &page("prop.plan=eq:pro"),
                Plan::default(),
            ),
            list(Dialect::Sqlite, Env::Test, &page("q=grace"), narrow),
            count_capped(
                Dialect::Sqlite,
                Env::Test,
                &filter("prop.plan=eq:pro"),
                10,
                Plan::default(),
            ),
            count_capped(
                Dialect::Sqlite,
                Env::Test,
                &filter("q=grace"),
                10,
                Plan::default(),
            ),
            search_probe(Dialect::Sqlite, Env::Test, "grace"),
        ];
        for sql in statements {
            let mut explain = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
                .unwrap();
            let plan: Vec<String> = explain
                .query_map(crate::sqlite::listing::args(&sql), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|p| p.contains("INDEX profile_values_by_value (key_id=? AND kind=?")),
                "{}: {plan:?}",
                sql.text
            );
        }
    }

    #[tokio::test]
    async fn postgres_serves_a_users_page_from_messages_by_user() {
        let Some(base) = postgres_url() else {
            eprintln!("!!! PostgreSQL plan test skipped: HERALD_TEST_POSTGRES_URL is not set");
            return;
        };
        let scratch = Scratch::postgres(&base).await;
        drop(
            crate::connect(&scratch.url, &crate::StoreOptions::default())
                .await
                .unwrap(),
        );
        let (client, conn) = tokio_postgres::connect(&scratch.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "{} generate_series(0, 19999) AS i; ANALYZE messages",
                FILL.replace("'{}'", "'{}'::jsonb")
                    .replace("'[]'", "'[]'::jsonb")
            ))
            .await
            .unwrap();
        // A custom plan (the first executions), then the generic one a prepared statement may
        // settle on.
        for mode in ["force_custom_plan", "force_generic_plan"] {
            client
                .batch_execute(&format!("SET plan_cache_mode = {mode}"))
                .await
                .unwrap();
            for q in user_pages() {
                let page = message_page(Dialect::Postgres, Env::Test, &q);
                let explain = Sql {
                    text: format!("EXPLAIN {}", page.text),
                    args: page.args.clone(),
                    dialect: Dialect::Postgres,
                };
                let owned = crate::postgres::listing::params(&explain);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = owned
                    .iter()
                    .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let plan: Vec<String> = client
                    .query(&explain.text, &refs)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let shown = format!("{mode}: {}:\n{}", page.text, plan.join("\n"));
                assert!(
                    plan.iter().any(|p| p.contains("using messages_by_user")),
                    "{shown}"
                );
                assert!(!plan.iter().any(|p| p.contains("Sort")), "{shown}");
            }
        }
    }
}
