//! Reading stored rows into domain values, once for both backends. Each backend implements
//! [`Columns`] for its row type (SQLite keeps JSON as text, PostgreSQL as `JSONB`; integers and
//! flags have different widths); the mapping from columns to values is written here.

use herald_core::admin::{LoginAttempts, Operator, Session, Username};
use herald_core::channel::Channel;
use herald_core::credentials::Credentials;
use herald_core::engagement::{Engagement, Gate, Until};
use herald_core::erasure;
use herald_core::history::{self, Action, Actor, HistoryEvent, StoredChange};
use herald_core::ids::DistinctId;
use herald_core::inbox::{InboxCounts, InboxItem};
use herald_core::message::{Message, MessageStatus};
use herald_core::preference::Category;
use herald_core::profile::{from_micros, Profile, Status};
use herald_core::property::{PropertyKind, PropertyRecord};
use herald_core::store::StoreError;
use herald_core::store::{DigestClaim, MessagePage, OutboxEntry, ProviderRecord};
use herald_core::workflow::{Workflow, WorkflowInput};
use serde::de::DeserializeOwned;

/// Typed access to the columns of one result row. Errors name what could not be read; the
/// caller adds which row.
pub(crate) trait Columns {
    fn text(&self, i: usize) -> Result<String, String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, String>;
    /// Any integer column, widened.
    fn int(&self, i: usize) -> Result<i64, String>;
    /// A nullable integer column (`BIGINT` on PostgreSQL).
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String>;
    fn flag(&self, i: usize) -> Result<bool, String>;
    /// A JSON document (text on SQLite, `JSONB` on PostgreSQL).
    fn json<T: DeserializeOwned>(&self, i: usize) -> Result<T, String>;
}

fn unreadable(what: &str) -> impl Fn(String) -> StoreError + '_ {
    move |e| StoreError::internal(format!("stored {what} is unreadable: {e}"))
}

/// A profile from the columns of `sql::profile_columns!()`, in their order.
pub(crate) fn profile(row: &impl Columns) -> Result<Profile, StoreError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::internal(format!("stored profile has an unreadable {what}: {e}"))
    };
    let id = row.text(0).map_err(|e| bad("distinct_id", &e))?;
    let status = row.text(1).map_err(|e| bad("status", &e))?;
    Ok(Profile {
        distinct_id: DistinctId::parse(&id).map_err(|e| bad("distinct_id", &e))?,
        status: Status::parse(&status).map_err(|e| bad("status", &e))?,
        properties: row.json(2).map_err(|e| bad("properties", &e))?,
        identities: row.json(3).map_err(|e| bad("identities", &e))?,
        created_at: from_micros(row.int(4).map_err(|e| bad("created_at", &e))?),
        updated_at: from_micros(row.int(5).map_err(|e| bad("updated_at", &e))?),
        version: row.int(6).map_err(|e| bad("version", &e))?,
        preferences: row.json(7).map_err(|e| bad("preferences", &e))?,
    })
}

/// Credentials from the columns of the `sql::*CREDENTIALS*` selects.
pub(crate) fn credentials(row: &impl Columns) -> Result<Credentials, StoreError> {
    let bad = unreadable("credentials");
    Ok(Credentials {
        workspace_key: row.text(0).map_err(&bad)?,
        env: row.text(1).map_err(&bad)?.parse().map_err(&bad)?,
        workspace_secret: row.text(2).map_err(&bad)?,
        api_key_hash: row.text(3).map_err(&bad)?,
        api_key_prefix: row.text(4).map_err(&bad)?,
        created_at: from_micros(row.int(5).map_err(&bad)?),
    })
}

/// A registry record from the columns of [`crate::sql::LIST_PROPERTY_RECORDS`].
pub(crate) fn property_record(row: &impl Columns) -> Result<PropertyRecord, StoreError> {
    let bad = unreadable("property record");
    let key = row.text(0).map_err(&bad)?;
    Ok(PropertyRecord {
        kind: PropertyKind::of(&key),
        key,
        label: row.text(1).map_err(&bad)?,
        description: row.text(2).map_err(&bad)?,
        show_in_table: row.flag(3).map_err(&bad)?,
        declared_type: row.opt_text(4).map_err(&bad)?,
        declared: row.flag(5).map_err(&bad)?,
        types_seen: row.int(6).map_err(&bad)? as u8,
        created_at: from_micros(row.int(7).map_err(&bad)?),
    })
}

/// A stored category document; a malformed one is an error, never a panic.
pub(crate) fn category(row: &impl Columns) -> Result<Category, StoreError> {
    row.json(0)
        .map_err(|e| StoreError::internal(format!("a stored category is malformed: {e}")))
}

/// A stored workflow document ([`Workflow::to_input`]), checked again as it is read; a
/// malformed one is an error, never a panic.
pub(crate) fn workflow(row: &impl Columns) -> Result<Workflow, StoreError> {
    let bad = |e: &dyn std::fmt::Display| {
        StoreError::internal(format!("a stored workflow is malformed: {e}"))
    };
    let input: WorkflowInput = row.json(0).map_err(|e| bad(&e))?;
    Workflow::parse(input).map_err(|e| bad(&e))
}

/// A provider configuration from the columns of [`crate::sql::GET_PROVIDER_CONFIG`].
pub(crate) fn provider_config(row: &impl Columns) -> Result<ProviderRecord, StoreError> {
    let bad = unreadable("provider config");
    let name = row.text(0).map_err(&bad)?;
    let channel = Channel::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
        .ok_or_else(|| bad(format!("no channel is named '{name}'")))?;
    Ok(ProviderRecord {
        channel,
        config: row.json(1).map_err(&bad)?,
        updated_at: from_micros(row.int(2).map_err(&bad)?),
    })
}

/// The ids one user's history is filed under: its own, and the keyed hash its tombstone is
/// filed under (the id itself while no erasure secret exists yet).
pub(crate) struct HistoryOwner {
    pub id: DistinctId,
    pub erased: DistinctId,
}

impl HistoryOwner {
    pub fn new(id: &DistinctId, erasure_secret: Option<&str>) -> HistoryOwner {
        HistoryOwner {
            id: id.clone(),
            erased: erasure_secret
                .map_or_else(|| id.clone(), |secret| erasure::tombstone_id(secret, id)),
        }
    }
}

/// A history event from the columns of [`crate::sql::HISTORY_PAGE`]; its `distinct_id` is the
/// id it is filed under (the tombstone keeps its hash), its changes unpacked from their stored
/// form ([`history::unpack`]).
pub(crate) fn event(row: &impl Columns, owner: &HistoryOwner) -> Result<HistoryEvent, StoreError> {
    let event_id = row.int(0).map_err(unreadable("history event"))?;
    let bad =
        |what: &str| StoreError::internal(format!("history event {event_id}: unreadable {what}"));
    let filed_under = row.text(7).map_err(|_| bad("distinct_id"))?;
    let action = row.text(4).map_err(|_| bad("action"))?;
    let request = row.json(5).map_err(|_| bad("request"))?;
    let stored: Vec<StoredChange> = row.json(6).map_err(|_| bad("changes"))?;
    Ok(HistoryEvent {
        id: event_id,
        distinct_id: if filed_under == owner.erased.as_str() {
            owner.erased.clone()
        } else {
            owner.id.clone()
        },
        at: from_micros(row.int(1).map_err(|_| bad("at"))?),
        actor: Actor {
            kind: row.text(2).map_err(|_| bad("actor"))?,
            id: row.text(3).map_err(|_| bad("actor"))?,
        },
        action: Action::parse(&action).ok_or_else(|| bad("action"))?,
        changes: history::unpack(&request, stored).map_err(|e| bad(&format!("changes ({e})")))?,
        request,
    })
}

/// A message and its listing cursor from the columns of the `sql::*MESSAGE*` selects.
pub(crate) fn message(row: &impl Columns) -> Result<(i64, Message), StoreError> {
    let bad = unreadable("message");
    let channel = row.text(6).map_err(&bad)?;
    let status = row.text(8).map_err(&bad)?;
    let distinct_id = row.text(5).map_err(&bad)?;
    let message = Message {
        id: row.text(1).map_err(&bad)?,
        env: row.text(2).map_err(&bad)?.parse().map_err(&bad)?,
        workflow: row.text(3).map_err(&bad)?,
        category: row.opt_text(4).map_err(&bad)?,
        distinct_id: DistinctId::parse(&distinct_id).map_err(|e| bad(e.to_string()))?,
        channel: Channel::from_name(&channel).ok_or_else(|| bad(format!("channel {channel}")))?,
        identity: row.json(7).map_err(&bad)?,
        status: MessageStatus::from_name(&status).ok_or_else(|| bad(format!("status {status}")))?,
        reason: row.opt_text(9).map_err(&bad)?,
        provider_id: row.opt_text(10).map_err(&bad)?,
        history: row.json(11).map_err(&bad)?,
        attempts: row.int(12).map_err(&bad)? as u32,
        trigger_id: row.text(13).map_err(&bad)?,
        idempotency_key: row.opt_text(14).map_err(&bad)?,
        created_at: from_micros(row.int(15).map_err(&bad)?),
        seen_at: row.opt_int(16).map_err(&bad)?.map(from_micros),
        clicked_at: row.opt_int(17).map_err(&bad)?.map(from_micros),
        held_until: row.opt_int(18).map_err(&bad)?.map(from_micros),
    };
    Ok((row.int(0).map_err(&bad)?, message))
}

/// A gate from its two outbox columns at `at` and `at + 1` (see `sql::gate_columns`).
fn gate(row: &impl Columns, at: usize) -> Result<Option<Gate>, String> {
    let wait = row.opt_int(at)?;
    let until = row.opt_text(at + 1)?;
    match (wait, until) {
        (Some(secs), Some(until)) => Ok(Some(Gate {
            wait: chrono::Duration::seconds(secs),
            until: Until::parse("gate_until", &until).map_err(|e| e.to_string())?,
        })),
        (None, None) => Ok(None),
        _ => Err("a gate with only one of its columns".into()),
    }
}

/// A waiting entry's id and gate from the columns of [`crate::sql::WAITER`].
pub(crate) fn waiter(row: &impl Columns) -> Result<(String, Option<Gate>), StoreError> {
    let bad = unreadable("outbox entry");
    Ok((row.text(0).map_err(&bad)?, gate(row, 1).map_err(&bad)?))
}

/// One message's engagement from the columns of [`crate::sql::TRIGGER_ENGAGEMENT`].
pub(crate) fn engagement(row: &impl Columns) -> Result<Engagement, StoreError> {
    let bad = unreadable("message");
    Ok(Engagement {
        seen_at: row.opt_int(0).map_err(&bad)?.map(from_micros),
        clicked_at: row.opt_int(1).map_err(&bad)?.map(from_micros),
    })
}

/// A claimed digest from the columns of [`crate::sql::DIGEST_COLUMNS`] (`claim` is its token),
/// with its `items` read apart.
pub(crate) fn digest(
    row: &impl Columns,
    items: Vec<herald_core::digest::Item>,
    lease_until: chrono::DateTime<chrono::Utc>,
) -> Result<DigestClaim, StoreError> {
    let bad = unreadable("digest");
    let distinct_id = row.text(2).map_err(&bad)?;
    Ok(DigestClaim {
        id: row.text(0).map_err(&bad)?,
        env: row.text(1).map_err(&bad)?.parse().map_err(&bad)?,
        distinct_id: DistinctId::parse(&distinct_id).map_err(|e| bad(e.to_string()))?,
        workflow: row.text(3).map_err(&bad)?,
        items,
        first_at: from_micros(row.int(4).map_err(&bad)?),
        lease_until,
        token: row.int(5).map_err(&bad)?,
    })
}

/// An outbox entry and its claim token from the columns of [`crate::sql::ENTRY_COLUMNS`].
pub(crate) fn entry(row: &impl Columns) -> Result<(OutboxEntry, i64), StoreError> {
    let bad = unreadable("outbox entry");
    let entry = OutboxEntry {
        message_id: row.text(0).map_err(&bad)?,
        env: row.text(1).map_err(&bad)?.parse().map_err(&bad)?,
        attempt: row.int(2).map_err(&bad)? as u32,
        due_at: from_micros(row.int(3).map_err(&bad)?),
        content: row.json(4).map_err(&bad)?,
        identity: row.json(5).map_err(&bad)?,
        gate: gate(row, 7).map_err(&bad)?,
    };
    Ok((entry, row.int(6).map_err(&bad)?))
}

/// A page from up to `limit + 1` rows: the cursor of the last shown when there are more.
pub(crate) fn message_page(mut found: Vec<(i64, Message)>, limit: usize) -> MessagePage {
    let more = found.len() > limit;
    found.truncate(limit);
    MessagePage {
        next: found.last().filter(|_| more).map(|(seq, _)| *seq),
        messages: found.into_iter().map(|(_, m)| m).collect(),
    }
}

/// An inbox item from the columns of [`crate::sql`]'s inbox selects.
pub(crate) fn inbox_item(row: &impl Columns) -> Result<InboxItem, StoreError> {
    let bad = unreadable("inbox item");
    let time = |i: usize| -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let stamp: Option<i64> = row.opt_int(i).map_err(&bad)?;
        Ok(stamp.map(from_micros))
    };
    let distinct_id = row.text(2).map_err(&bad)?;
    Ok(InboxItem {
        seq: row.int(0).map_err(&bad)?,
        message_id: row.text(1).map_err(&bad)?,
        distinct_id: DistinctId::parse(&distinct_id).map_err(|e| bad(e.to_string()))?,
        workflow: row.text(3).map_err(&bad)?,
        category: row.opt_text(4).map_err(&bad)?,
        title: row.text(5).map_err(&bad)?,
        body: row.text(6).map_err(&bad)?,
        action_url: row.opt_text(7).map_err(&bad)?,
        created_at: from_micros(row.int(8).map_err(&bad)?),
        seen_at: time(9)?,
        read_at: time(10)?,
        archived_at: time(11)?,
    })
}

/// Counts from the columns of [`crate::sql::INBOX_COUNTS`].
pub(crate) fn inbox_counts(row: &impl Columns) -> Result<InboxCounts, StoreError> {
    let bad = unreadable("inbox count");
    let n = |i: usize| row.int(i).map(|n| n.max(0) as u64).map_err(&bad);
    Ok(InboxCounts {
        total: n(0)?,
        unseen: n(1)?,
        unread: n(2)?,
        archived: n(3)?,
    })
}

/// An operator account from the columns of [`crate::sql::LIST_OPERATORS`].
pub(crate) fn operator(row: &impl Columns) -> Result<Operator, StoreError> {
    let bad = unreadable("operator");
    Ok(Operator {
        username: username(row.text(0).map_err(&bad)?)?,
        password_hash: row.text(1).map_err(&bad)?,
        created_at: from_micros(row.int(2).map_err(&bad)?),
    })
}

/// A session from the columns of [`crate::sql::GET_SESSION`].
pub(crate) fn session(row: &impl Columns) -> Result<Session, StoreError> {
    let bad = unreadable("session");
    Ok(Session {
        id_hash: row.text(0).map_err(&bad)?,
        username: username(row.text(1).map_err(&bad)?)?,
        csrf_token: row.text(2).map_err(&bad)?,
        created_at: from_micros(row.int(3).map_err(&bad)?),
        expires_at: from_micros(row.int(4).map_err(&bad)?),
    })
}

/// Login attempts from the columns of [`crate::sql::GET_LOGIN_ATTEMPTS`].
pub(crate) fn login_attempts(row: &impl Columns) -> Result<LoginAttempts, StoreError> {
    let bad = unreadable("login attempts");
    Ok(LoginAttempts {
        count: u32::try_from(row.int(0).map_err(&bad)?).unwrap_or(u32::MAX),
        window_start: from_micros(row.int(1).map_err(&bad)?),
    })
}

fn username(raw: String) -> Result<Username, StoreError> {
    Username::parse(&raw).map_err(|e| StoreError::internal(format!("stored username: {e}")))
}
