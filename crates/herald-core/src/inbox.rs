//! The in-app inbox: the items the `inbox` channel delivers (one per message, stored by Herald
//! itself), what marking one does, and how a browser proves it may read one user's inbox.
//!
//! - [`InboxItem`] is one delivered notification, keyed by its message id: delivery is at least
//!   once, and a second delivery of the same message finds the item already there.
//! - [`Mark`] is what a user does to items (seen, read, unread, archive, unarchive); its
//!   [`Effect`] says what happens to each timestamp, and the stores write exactly that.
//! - [`subscriber_id`] is the browser credential: `hex(HMAC-SHA256(inbox secret, distinct_id))`,
//!   computed by the application's backend with the environment's inbox secret
//!   ([`secret_name`]) and checked in constant time by [`verify`].
//! - [`InboxSignal`] is what a store announces when a user's inbox changes, so live streams (on
//!   any node) can tell their browser.

use crate::env::Env;
use crate::error::Invalid;
use crate::ids::DistinctId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One notification in a user's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    /// The message it was delivered for (the item's key).
    pub message_id: String,
    pub distinct_id: DistinctId,
    /// Order of arrival in the store: a listing is newest first by it, and it is the cursor.
    pub seq: i64,
    pub workflow: String,
    pub category: Option<String>,
    pub title: String,
    pub body: String,
    pub action_url: Option<String>,
    /// When it arrived in the inbox.
    pub created_at: DateTime<Utc>,
    pub seen_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
}

impl InboxItem {
    /// The item after `mark` at `now` (what the stores write, as a plain function).
    pub fn marked(&self, mark: Mark, now: DateTime<Utc>) -> InboxItem {
        let effect = mark.effect();
        InboxItem {
            seen_at: effect.seen.apply(self.seen_at, now),
            read_at: effect.read.apply(self.read_at, now),
            archived_at: effect.archived.apply(self.archived_at, now),
            ..self.clone()
        }
    }
}

/// What the inbox provider records for one message: the rendered inbox content.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub message_id: String,
    pub title: String,
    pub body: String,
    pub action_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What [`crate::store::InboxStore::deliver_inbox`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivered {
    /// The item is new.
    Added(InboxItem),
    /// The message had been delivered before: the item as it is (marks kept), nothing written.
    Already(InboxItem),
    /// No such message in the environment (erased with its user since it was claimed).
    NoMessage,
}

/// A user's inbox in numbers. `unseen` and `unread` count items not archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboxCounts {
    /// Every item, archived ones included.
    pub total: u64,
    pub unseen: u64,
    pub unread: u64,
    pub archived: u64,
}

/// What a user does to an item, or to all of their items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// Seen (shown in a list): `seen_at` is set once.
    Seen,
    /// Read (opened): `read_at` is set once, and `seen_at` if it was not.
    Read,
    /// Back to unread: `read_at` is cleared (it stays seen).
    Unread,
    /// Archived: `archived_at` is set once; it leaves the unseen and unread counts.
    Archive,
    /// Back from the archive: `archived_at` is cleared.
    Unarchive,
}

/// What a mark does to one timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Keep,
    /// Set to now unless already set (the first time counts).
    Set,
    Clear,
}

impl Stamp {
    /// How the shared SQL names it (`0` keep, `1` set, `2` clear).
    pub fn code(self) -> i64 {
        match self {
            Stamp::Keep => 0,
            Stamp::Set => 1,
            Stamp::Clear => 2,
        }
    }

    pub fn apply(
        self,
        current: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Stamp::Keep => current,
            Stamp::Set => current.or(Some(now)),
            Stamp::Clear => None,
        }
    }
}

/// A mark's effect on each timestamp of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    pub seen: Stamp,
    pub read: Stamp,
    pub archived: Stamp,
}

impl Mark {
    pub const ALL: [Mark; 5] = [
        Mark::Seen,
        Mark::Read,
        Mark::Unread,
        Mark::Archive,
        Mark::Unarchive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Seen => "seen",
            Mark::Read => "read",
            Mark::Unread => "unread",
            Mark::Archive => "archive",
            Mark::Unarchive => "unarchive",
        }
    }

    /// The mark a request names, in `field`; anything else is refused naming the field and the
    /// accepted names.
    pub fn parse(field: &str, name: &str) -> Result<Mark, Invalid> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == name)
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    format!("'{name}' is not one of seen, read, unread, archive, unarchive"),
                )
            })
    }

    pub fn effect(self) -> Effect {
        use Stamp::*;
        let (seen, read, archived) = match self {
            Mark::Seen => (Set, Keep, Keep),
            Mark::Read => (Set, Set, Keep),
            Mark::Unread => (Keep, Clear, Keep),
            Mark::Archive => (Keep, Keep, Set),
            Mark::Unarchive => (Keep, Keep, Clear),
        };
        Effect {
            seen,
            read,
            archived,
        }
    }
}

/// Which items a listing shows: each filter applies when set (`archived: Some(false)` is the
/// inbox without its archive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxFilter {
    pub seen: Option<bool>,
    pub read: Option<bool>,
    pub archived: Option<bool>,
}

impl InboxFilter {
    /// Whether `item` passes (the stores' SQL asks the same of the columns).
    pub fn matches(&self, item: &InboxItem) -> bool {
        let ok = |want: Option<bool>, stamp: &Option<DateTime<Utc>>| {
            want.is_none_or(|w| w == stamp.is_some())
        };
        ok(self.seen, &item.seen_at)
            && ok(self.read, &item.read_at)
            && ok(self.archived, &item.archived_at)
    }
}

/// A page request of one user's inbox, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxQuery {
    pub filter: InboxFilter,
    /// The cursor: items older than the one [`InboxPage::next`] named.
    pub before: Option<i64>,
    pub limit: usize,
}

/// One page of a user's inbox, newest first; `next` is the cursor of the following page.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub next: Option<i64>,
}

impl InboxPage {
    /// A page from up to `limit + 1` items found: the cursor of the last shown when there are more.
    pub fn of(mut found: Vec<InboxItem>, limit: usize) -> InboxPage {
        let next = (found.len() > limit).then(|| {
            found.truncate(limit);
            found.last().map_or(0, |i| i.seq)
        });
        InboxPage { items: found, next }
    }
}

/// What changed in one user's inbox, as a store announces it after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxSignal {
    /// A new item arrived.
    Added {
        env: Env,
        distinct_id: DistinctId,
        message_id: String,
    },
    /// Marks changed the user's items (one, or all).
    Marked { env: Env, distinct_id: DistinctId },
    /// Signals may have been lost (a listener fell behind or reconnected): every inbox may have
    /// changed.
    Resync,
}

impl InboxSignal {
    /// The inbox the signal is about; `None` for [`InboxSignal::Resync`].
    pub fn user(&self) -> Option<(Env, &DistinctId)> {
        match self {
            InboxSignal::Added {
                env, distinct_id, ..
            }
            | InboxSignal::Marked { env, distinct_id } => Some((*env, distinct_id)),
            InboxSignal::Resync => None,
        }
    }
}

/// A store's signals, from the moment it was opened (see
/// [`crate::store::InboxStore::inbox_feed`]). On PostgreSQL they come from every node.
#[async_trait]
pub trait InboxFeed: Send {
    /// The next signal; `None` once the feed has ended for good.
    async fn next(&mut self) -> Option<InboxSignal>;
}

// ---- Browser access --------------------------------------------------------------------------

/// The server secret an environment's subscriber ids are keyed with: `inbox:test`, `inbox:live`.
pub fn secret_name(env: Env) -> String {
    format!("inbox:{env}")
}

/// A new inbox secret (256 bits, hex).
pub fn fresh_secret() -> String {
    crate::erasure::fresh_secret()
}

fn mac(secret: &str, id: &DistinctId) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    m.update(id.as_str().as_bytes());
    m
}

/// The browser credential of `id`: lower-case hex of HMAC-SHA256 keyed with the secret's text
/// (UTF-8) over the distinct_id (UTF-8), e.g.
/// `printf %s "$ID" | openssl dgst -sha256 -hmac "$SECRET"`.
pub fn subscriber_id(secret: &str, id: &DistinctId) -> String {
    mac(secret, id)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whom a verified subscriber id speaks for: one user's inbox in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub env: Env,
    pub distinct_id: DistinctId,
}

/// Checks `candidate` (hex, either case) against the subscriber id of `id`, in constant time.
pub fn verify(secret: &str, env: Env, id: &DistinctId, candidate: &str) -> Option<Subscriber> {
    let bytes = decode_hex(candidate.trim())?;
    mac(secret, id).verify_slice(&bytes).ok()?;
    Some(Subscriber {
        env,
        distinct_id: id.clone(),
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn item() -> InboxItem {
        InboxItem {
            message_id: "msg_1".into(),
            distinct_id: DistinctId::parse("ada").unwrap(),
            seq: 1,
            workflow: "w".into(),
            category: None,
            title: "t".into(),
            body: "b".into(),
            action_url: None,
            created_at: at(0),
            seen_at: None,
            read_at: None,
            archived_at: None,
        }
    }

    #[test]
    fn marks_set_once_and_clear() {
        let read = item().marked(Mark::Read, at(5));
        assert_eq!((read.seen_at, read.read_at), (Some(at(5)), Some(at(5))));
        // The first time counts: a later read or seen keeps the earlier stamps.
        let again = read.marked(Mark::Read, at(9)).marked(Mark::Seen, at(9));
        assert_eq!(again, read);
        let unread = read.marked(Mark::Unread, at(10));
        assert_eq!((unread.seen_at, unread.read_at), (Some(at(5)), None));
        let archived = unread.marked(Mark::Archive, at(11));
        assert_eq!(archived.archived_at, Some(at(11)));
        assert_eq!(archived.marked(Mark::Unarchive, at(12)).archived_at, None);
        let seen = item().marked(Mark::Seen, at(3));
        assert_eq!((seen.seen_at, seen.read_at), (Some(at(3)), None));
    }

    #[test]
    fn mark_names_parse_or_name_the_field() {
        for m in Mark::ALL {
            assert_eq!(Mark::parse("action", m.as_str()), Ok(m));
        }
        let e = Mark::parse("action", "delete").unwrap_err();
        assert_eq!(e.field, "action");
        assert!(e.to_string().contains("'delete'"), "{e}");
    }

    #[test]
    fn filters_match_on_each_stamp() {
        let fresh = item();
        let read = fresh.marked(Mark::Read, at(1));
        let archived = fresh.marked(Mark::Archive, at(1));
        let unread_inbox = InboxFilter {
            read: Some(false),
            archived: Some(false),
            ..InboxFilter::default()
        };
        assert!(unread_inbox.matches(&fresh));
        assert!(!unread_inbox.matches(&read));
        assert!(!unread_inbox.matches(&archived));
        assert!(InboxFilter::default().matches(&archived));
        let seen = InboxFilter {
            seen: Some(true),
            ..InboxFilter::default()
        };
        assert!(seen.matches(&read) && !seen.matches(&fresh));
    }

    #[test]
    fn a_page_names_the_cursor_of_its_last_item_when_more_exist() {
        let items: Vec<InboxItem> = (0..3)
            .map(|i| InboxItem {
                seq: 10 - i,
                ..item()
            })
            .collect();
        let page = InboxPage::of(items.clone(), 2);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next, Some(9));
        assert_eq!(InboxPage::of(items, 3).next, None);
    }

    #[test]
    fn subscriber_ids_are_keyed_per_user_and_checked_exactly() {
        let ada = DistinctId::parse("ada").unwrap();
        let bob = DistinctId::parse("bob").unwrap();
        let id = subscriber_id("s3cret", &ada);
        assert_eq!(id.len(), 64);
        // RFC 4231-style check against an independent computation (openssl dgst -sha256 -hmac).
        assert_eq!(
            subscriber_id(
                "key",
                &DistinctId::parse("The quick brown fox jumps over the lazy dog").unwrap()
            ),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            verify("s3cret", Env::Test, &ada, &id),
            Some(Subscriber {
                env: Env::Test,
                distinct_id: ada.clone()
            })
        );
        assert!(verify("s3cret", Env::Test, &ada, &id.to_uppercase()).is_some());
        assert!(
            verify("s3cret", Env::Test, &bob, &id).is_none(),
            "another user"
        );
        assert!(
            verify("other", Env::Test, &ada, &id).is_none(),
            "another secret"
        );
        assert!(verify("s3cret", Env::Test, &ada, &id[..62]).is_none());
        assert!(verify("s3cret", Env::Test, &ada, "").is_none());
        assert!(verify("s3cret", Env::Test, &ada, &"zz".repeat(32)).is_none());
        assert!(verify("s3cret", Env::Test, &ada, "é".repeat(32).as_str()).is_none());
    }
}
