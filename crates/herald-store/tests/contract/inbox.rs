//! The in-app inbox: delivery once per message, listings newest first with filters and a cursor,
//! counts, marks of one item or all (scoped to the user and environment), signals after each
//! change (from another node on PostgreSQL), and erasure with the user.

use super::{backends, ctx, edit, id};
use chrono::{DateTime, Duration, Utc};
use herald_core::channel::{Channel, Identity};
use herald_core::delivery::Content;
use herald_core::inbox::{
    Delivered, InboxCounts, InboxFeed, InboxFilter, InboxItem, InboxQuery, InboxSignal, Mark,
    NewItem,
};
use herald_core::message::{Message, MessageOrigin};
use herald_core::profile::truncate;
use herald_core::service::profiles;
use herald_core::store::{NewMessage, Store};
use herald_core::{Env, EnvScope};
use serde_json::json;

fn scope(env: Env) -> EnvScope {
    EnvScope::operator(env)
}

/// Queued inbox messages `ids` to `user` in `env`, from the workflow `welcome` (category `news`).
async fn messages(store: &dyn Store, env: Env, user: &str, ids: &[&str]) {
    let inbox = Identity::parse(Channel::Inbox, &json!(user), &Default::default()).unwrap();
    let batch = ids
        .iter()
        .map(|m| NewMessage {
            message: Message::queued(
                MessageOrigin {
                    id: (*m).into(),
                    env,
                    workflow: "welcome".into(),
                    category: Some("news".into()),
                    distinct_id: id(user),
                    channel: Channel::Inbox,
                    trigger_id: format!("t-{m}"),
                    idempotency_key: None,
                },
                inbox.clone(),
                truncate(Utc::now()),
            ),
            content: Some(Content::Inbox {
                title: format!("title {m}"),
                body: format!("body {m}"),
                action_url: None,
            }),
            waits_for: None,
            gate: None,
        })
        .collect();
    store.enqueue(scope(env), batch, None).await.unwrap();
}

fn new_item(message_id: &str, at: DateTime<Utc>) -> NewItem {
    NewItem {
        message_id: message_id.into(),
        title: format!("title {message_id}"),
        body: format!("body {message_id}"),
        action_url: Some(format!("https://example.com/{message_id}")),
        created_at: at,
    }
}

async fn deliver(store: &dyn Store, env: Env, message_id: &str) -> Delivered {
    store
        .deliver_inbox(scope(env), &new_item(message_id, truncate(Utc::now())))
        .await
        .unwrap()
}

async fn page(store: &dyn Store, env: Env, user: &str, query: InboxQuery) -> Vec<String> {
    let page = store
        .list_inbox(scope(env), &id(user), &query)
        .await
        .unwrap();
    page.items.into_iter().map(|i| i.message_id).collect()
}

fn all(limit: usize) -> InboxQuery {
    InboxQuery {
        limit,
        ..InboxQuery::default()
    }
}

async fn counts(store: &dyn Store, env: Env, user: &str) -> InboxCounts {
    store.inbox_counts(scope(env), &id(user)).await.unwrap()
}

fn counted(total: u64, unseen: u64, unread: u64, archived: u64) -> InboxCounts {
    InboxCounts {
        total,
        unseen,
        unread,
        archived,
    }
}

/// The next signal, waiting at most a bound (a missing signal fails, it does not hang).
async fn next(feed: &mut Box<dyn InboxFeed>) -> InboxSignal {
    tokio::time::timeout(std::time::Duration::from_secs(20), feed.next())
        .await
        .expect("a signal arrives")
        .expect("the feed is open")
}

#[tokio::test]
async fn a_message_is_delivered_once_with_its_user_workflow_and_category() {
    for b in backends().await {
        let s = b.store.as_ref();
        messages(s, Env::Test, "ada", &["m1"]).await;
        let at = truncate(Utc::now());
        let Delivered::Added(first) = s
            .deliver_inbox(scope(Env::Test), &new_item("m1", at))
            .await
            .unwrap()
        else {
            panic!("{}: the first delivery adds the item", b.name)
        };
        let expected = InboxItem {
            message_id: "m1".into(),
            distinct_id: id("ada"),
            seq: first.seq,
            workflow: "welcome".into(),
            category: Some("news".into()),
            title: "title m1".into(),
            body: "body m1".into(),
            action_url: Some("https://example.com/m1".into()),
            created_at: at,
            seen_at: None,
            read_at: None,
            archived_at: None,
        };
        assert_eq!(first, expected, "{}", b.name);
        // At least once: the same message again (even with other content) keeps the one item
        // and its marks.
        s.mark_inbox_item(scope(Env::Test), &id("ada"), "m1", Mark::Read, at)
            .await
            .unwrap();
        let mut again = new_item("m1", at + Duration::seconds(5));
        again.title = "changed".into();
        let Delivered::Already(kept) = s.deliver_inbox(scope(Env::Test), &again).await.unwrap()
        else {
            panic!("{}: a second delivery adds nothing", b.name)
        };
        assert_eq!(kept, expected.marked(Mark::Read, at), "{}", b.name);
        assert_eq!(
            page(s, Env::Test, "ada", all(10)).await,
            ["m1"],
            "{}",
            b.name
        );
        // An unknown message, or one of the other environment, has no item.
        assert_eq!(
            deliver(s, Env::Test, "nope").await,
            Delivered::NoMessage,
            "{}",
            b.name
        );
        assert_eq!(
            deliver(s, Env::Live, "m1").await,
            Delivered::NoMessage,
            "{}",
            b.name
        );
        assert!(
            page(s, Env::Live, "ada", all(10)).await.is_empty(),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn listings_page_newest_first_filter_and_stay_with_their_user_and_env() {
    for b in backends().await {
        let s = b.store.as_ref();
        let ids = ["a1", "a2", "a3", "a4", "a5"];
        messages(s, Env::Test, "ada", &ids).await;
        messages(s, Env::Test, "bob", &["b1"]).await;
        messages(s, Env::Live, "ada", &["l1"]).await;
        for m in ids {
            deliver(s, Env::Test, m).await;
        }
        deliver(s, Env::Test, "b1").await;
        deliver(s, Env::Live, "l1").await;
        // Newest first, two at a time, following the cursor.
        let mut seen = Vec::new();
        let mut query = all(2);
        loop {
            let p = s
                .list_inbox(scope(Env::Test), &id("ada"), &query)
                .await
                .unwrap();
            assert!(p.items.len() <= 2, "{}", b.name);
            seen.extend(p.items.iter().map(|i| i.message_id.clone()));
            match p.next {
                Some(n) => query.before = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ["a5", "a4", "a3", "a2", "a1"], "{}", b.name);
        assert_eq!(
            page(s, Env::Test, "bob", all(10)).await,
            ["b1"],
            "{}",
            b.name
        );
        assert_eq!(
            page(s, Env::Live, "ada", all(10)).await,
            ["l1"],
            "{}",
            b.name
        );
        // Filters: each stamp, alone and together, as InboxFilter::matches says.
        let at = truncate(Utc::now());
        let user = id("ada");
        s.mark_inbox_item(scope(Env::Test), &user, "a1", Mark::Read, at)
            .await
            .unwrap();
        s.mark_inbox_item(scope(Env::Test), &user, "a2", Mark::Seen, at)
            .await
            .unwrap();
        s.mark_inbox_item(scope(Env::Test), &user, "a3", Mark::Archive, at)
            .await
            .unwrap();
        let everything = s
            .list_inbox(scope(Env::Test), &user, &all(10))
            .await
            .unwrap()
            .items;
        for seen in [None, Some(true), Some(false)] {
            for read in [None, Some(true), Some(false)] {
                for archived in [None, Some(true), Some(false)] {
                    let filter = InboxFilter {
                        seen,
                        read,
                        archived,
                    };
                    let expected: Vec<String> = everything
                        .iter()
                        .filter(|i| filter.matches(i))
                        .map(|i| i.message_id.clone())
                        .collect();
                    let query = InboxQuery {
                        filter: filter.clone(),
                        limit: 10,
                        before: None,
                    };
                    assert_eq!(
                        page(s, Env::Test, "ada", query).await,
                        expected,
                        "{}: {filter:?}",
                        b.name
                    );
                }
            }
        }
        let unread_inbox = InboxQuery {
            filter: InboxFilter {
                read: Some(false),
                archived: Some(false),
                ..InboxFilter::default()
            },
            limit: 10,
            before: None,
        };
        assert_eq!(
            page(s, Env::Test, "ada", unread_inbox).await,
            ["a5", "a4", "a2"],
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn marks_change_counts_for_one_item_or_all_and_only_the_users_own() {
    for b in backends().await {
        let s = b.store.as_ref();
        messages(s, Env::Test, "ada", &["m1", "m2", "m3"]).await;
        messages(s, Env::Test, "bob", &["b1"]).await;
        messages(s, Env::Live, "ada", &["l1"]).await;
        for (env, m) in [
            (Env::Test, "m1"),
            (Env::Test, "m2"),
            (Env::Test, "m3"),
            (Env::Test, "b1"),
            (Env::Live, "l1"),
        ] {
            deliver(s, env, m).await;
        }
        let (t, ada) = (scope(Env::Test), id("ada"));
        let at = truncate(Utc::now());
        assert_eq!(
            counts(s, Env::Test, "ada").await,
            counted(3, 3, 3, 0),
            "{}",
            b.name
        );
        let read = s
            .mark_inbox_item(t, &ada, "m1", Mark::Read, at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (read.seen_at, read.read_at),
            (Some(at), Some(at)),
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Test, "ada").await,
            counted(3, 2, 2, 0),
            "{}",
            b.name
        );
        // Another user's item, another environment's, an unknown one: not found, nothing changes.
        for (scope, user, m) in [
            (t, "ada", "b1"),
            (t, "bob", "m2"),
            (scope(Env::Live), "ada", "m2"),
            (t, "ada", "nope"),
        ] {
            let got = s
                .mark_inbox_item(scope, &id(user), m, Mark::Archive, at)
                .await
                .unwrap();
            assert_eq!(got, None, "{}: {user} {m}", b.name);
        }
        assert_eq!(
            counts(s, Env::Test, "bob").await,
            counted(1, 1, 1, 0),
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Live, "ada").await,
            counted(1, 1, 1, 0),
            "{}",
            b.name
        );
        // Marking what is already so changes nothing (and answers the item as it is).
        let later = at + Duration::seconds(3);
        let same = s
            .mark_inbox_item(t, &ada, "m1", Mark::Seen, later)
            .await
            .unwrap();
        assert_eq!(same, Some(read.clone()), "{}", b.name);
        // All at once: only the items it changes count.
        assert_eq!(
            s.mark_inbox(t, &ada, Mark::Seen, later).await.unwrap(),
            2,
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Test, "ada").await,
            counted(3, 0, 2, 0),
            "{}",
            b.name
        );
        assert_eq!(
            s.mark_inbox(t, &ada, Mark::Seen, later).await.unwrap(),
            0,
            "{}",
            b.name
        );
        assert_eq!(
            s.mark_inbox(t, &ada, Mark::Read, later).await.unwrap(),
            2,
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Test, "ada").await,
            counted(3, 0, 0, 0),
            "{}",
            b.name
        );
        assert_eq!(
            s.mark_inbox(t, &ada, Mark::Unread, later).await.unwrap(),
            3,
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Test, "ada").await,
            counted(3, 0, 3, 0),
            "{}",
            b.name
        );
        s.mark_inbox_item(t, &ada, "m2", Mark::Archive, later)
            .await
            .unwrap();
        assert_eq!(
            counts(s, Env::Test, "ada").await,
            counted(3, 0, 2, 1),
            "{}",
            b.name
        );
        assert_eq!(
            s.mark_inbox(t, &ada, Mark::Archive, later).await.unwrap(),
            2,
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Test, "ada").await,
            counted(3, 0, 0, 3),
            "{}",
            b.name
        );
        assert_eq!(
            s.mark_inbox(t, &ada, Mark::Unarchive, later).await.unwrap(),
            3,
            "{}",
            b.name
        );
        // The first read kept its time through it all; the others were stamped later.
        let items = s.list_inbox(t, &ada, &all(10)).await.unwrap().items;
        assert!(items.iter().all(|i| i.read_at.is_none()), "{}", b.name);
        let m1 = items.iter().find(|i| i.message_id == "m1").unwrap();
        assert_eq!(m1.seen_at, Some(at), "{}", b.name);
        // Nobody else's inbox moved.
        assert_eq!(
            counts(s, Env::Test, "bob").await,
            counted(1, 1, 1, 0),
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Live, "ada").await,
            counted(1, 1, 1, 0),
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Test, "nobody").await,
            counted(0, 0, 0, 0),
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn changes_are_signalled_once_committed_to_every_feed() {
    for b in backends().await {
        let s = b.store.as_ref();
        // On PostgreSQL the writes come from another node: the signal crosses through the database.
        let other = if b.scratch.is_postgres() {
            Some(b.another_node().await)
        } else {
            None
        };
        let writer: &dyn Store = other.as_deref().unwrap_or(s);
        let mut feed = s.inbox_feed().await.unwrap();
        messages(writer, Env::Test, "ada", &["m1", "m2"]).await;
        deliver(writer, Env::Test, "m1").await;
        let added = |m: &str| InboxSignal::Added {
            env: Env::Test,
            distinct_id: id("ada"),
            message_id: m.into(),
        };
        let marked = InboxSignal::Marked {
            env: Env::Test,
            distinct_id: id("ada"),
        };
        assert_eq!(next(&mut feed).await, added("m1"), "{}", b.name);
        // A repeated delivery and a mark that changes nothing signal nothing: the next signal is
        // the next real change.
        deliver(writer, Env::Test, "m1").await;
        let at = truncate(Utc::now());
        writer
            .mark_inbox(scope(Env::Test), &id("ada"), Mark::Unread, at)
            .await
            .unwrap();
        writer
            .mark_inbox_item(scope(Env::Test), &id("ada"), "m1", Mark::Read, at)
            .await
            .unwrap();
        assert_eq!(next(&mut feed).await, marked, "{}", b.name);
        deliver(writer, Env::Test, "m2").await;
        assert_eq!(next(&mut feed).await, added("m2"), "{}", b.name);
        writer
            .mark_inbox(scope(Env::Test), &id("ada"), Mark::Archive, at)
            .await
            .unwrap();
        assert_eq!(next(&mut feed).await, marked, "{}", b.name);
        // A second feed hears the same from then on.
        let mut second = s.inbox_feed().await.unwrap();
        messages(writer, Env::Live, "bob", &["l1"]).await;
        deliver(writer, Env::Live, "l1").await;
        let live = InboxSignal::Added {
            env: Env::Live,
            distinct_id: id("bob"),
            message_id: "l1".into(),
        };
        assert_eq!(next(&mut feed).await, live, "{}", b.name);
        assert_eq!(next(&mut second).await, live, "{}", b.name);
    }
}

#[tokio::test]
async fn deleting_or_merging_away_a_user_erases_their_inbox() {
    for b in backends().await {
        let s = b.store.as_ref();
        for user in ["ada", "bob", "cy"] {
            edit(s, Env::Test, user, json!([{"$set": {"x": 1}}]))
                .await
                .unwrap();
        }
        edit(s, Env::Live, "ada", json!([{"$set": {"x": 1}}]))
            .await
            .unwrap();
        messages(s, Env::Test, "ada", &["a1", "a2"]).await;
        messages(s, Env::Test, "bob", &["b1"]).await;
        messages(s, Env::Test, "cy", &["c1"]).await;
        messages(s, Env::Live, "ada", &["l1"]).await;
        for (env, m) in [
            (Env::Test, "a1"),
            (Env::Test, "a2"),
            (Env::Test, "b1"),
            (Env::Test, "c1"),
            (Env::Live, "l1"),
        ] {
            deliver(s, env, m).await;
        }
        profiles::bulk_delete(s, &ctx(Env::Test), &[id("ada")])
            .await
            .unwrap();
        assert!(
            page(s, Env::Test, "ada", all(10)).await.is_empty(),
            "{}",
            b.name
        );
        assert_eq!(
            counts(s, Env::Test, "ada").await,
            counted(0, 0, 0, 0),
            "{}",
            b.name
        );
        assert_eq!(
            page(s, Env::Live, "ada", all(10)).await,
            ["l1"],
            "{}",
            b.name
        );
        // A profile re-created under the id starts with an empty inbox.
        edit(s, Env::Test, "ada", json!([{"$set": {"x": 2}}]))
            .await
            .unwrap();
        assert!(
            page(s, Env::Test, "ada", all(10)).await.is_empty(),
            "{}",
            b.name
        );
        // A merged-away secondary's inbox goes with it, as its messages do.
        profiles::merge(s, &ctx(Env::Test), &id("bob"), &id("cy"))
            .await
            .unwrap();
        assert!(
            page(s, Env::Test, "cy", all(10)).await.is_empty(),
            "{}",
            b.name
        );
        assert_eq!(
            page(s, Env::Test, "bob", all(10)).await,
            ["b1"],
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn a_copy_carries_the_inbox_secrets_so_subscriber_ids_keep_working() {
    use herald_core::service::inbox as service;
    for b in backends().await {
        let target = herald_store::testing::Scratch::sqlite();
        let to = herald_store::connect(&target.url, &herald_store::StoreOptions::default())
            .await
            .unwrap();
        let (test, live) = (ctx(Env::Test), ctx(Env::Live));
        let secret = service::secret(b.store.as_ref(), &test).await.unwrap();
        assert!(service::copy_secrets(b.store.as_ref(), to.as_ref())
            .await
            .unwrap());
        assert_eq!(
            service::secret(to.as_ref(), &test).await.unwrap(),
            secret,
            "{}",
            b.name
        );
        assert_eq!(
            service::secret(to.as_ref(), &live).await.unwrap(),
            service::secret(b.store.as_ref(), &live).await.unwrap(),
            "{}",
            b.name
        );
        // A target with secrets of its own keeps them, and says so.
        service::rotate_secret(to.as_ref(), &test).await.unwrap();
        assert!(!service::copy_secrets(b.store.as_ref(), to.as_ref())
            .await
            .unwrap());
    }
}
