//! The users table (`/{env}/users`), a user's page (`/{env}/users/{id}`) with its edit forms,
//! and creating a user (`/{env}/users/new`). Listing, filters and edits go through the same core
//! use cases and parsers as `GET /v1/user/` and `PATCH /v1/user/{id}/`.

use super::session::{Console, Fields, Posted};
use super::{display_value, failure, html, query_string, redirect, segment, show_time, Shell};
use crate::api::hosted::{ChannelBox, SectionBox};
use crate::App;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use herald_core::channel::{Channel, IdentityStatus};
use herald_core::listing::{Count, ListRequest, Sort};
use herald_core::message::MessageStatus;
use herald_core::preference::{self, UserView};
use herald_core::property::Property;
use herald_core::service::{preferences, profiles, properties, Error};
use herald_core::store::MessageQuery;
use herald_core::{DistinctId, Invalid, Profile, Status};
use serde_json::{json, Value};
use std::collections::BTreeMap;

// ---- the table -------------------------------------------------------------------------------

/// The operators of a property filter, as the listing API names them.
const OPERATORS: [(&str, &str); 9] = [
    ("eq", "is"),
    ("ne", "is not"),
    ("in", "is one of (a,b)"),
    ("contains", "contains"),
    ("exists", "exists (true/false)"),
    ("gt", ">"),
    ("gte", "≥"),
    ("lt", "<"),
    ("lte", "≤"),
];

const SORTS: [(&str, &str); 6] = [
    ("-created_at", "Newest first"),
    ("created_at", "Oldest first"),
    ("-updated_at", "Recently updated"),
    ("updated_at", "Least recently updated"),
    ("distinct_id", "distinct_id A→Z"),
    ("-distinct_id", "distinct_id Z→A"),
];

#[derive(Template)]
#[template(path = "dashboard/users.html")]
struct UsersPage {
    shell: Shell,
    env: &'static str,
    q: String,
    limit: usize,
    sorts: Vec<Opt>,
    statuses: Vec<Opt>,
    conditions: Vec<Condition>,
    error: Option<String>,
    columns: Vec<String>,
    rows: Vec<Row>,
    count: String,
    /// A filtered listing's count is fetched afterwards (it may take longer than the page):
    /// the URL that answers it, and the page with it inline for browsers without JavaScript.
    count_url: Option<String>,
    count_inline: Option<String>,
    prev: Option<String>,
    next: Option<String>,
}

/// An option of a `<select>`.
struct Opt {
    value: String,
    label: String,
    selected: bool,
}

fn options<'a>(all: impl IntoIterator<Item = (&'a str, &'a str)>, current: &str) -> Vec<Opt> {
    all.into_iter()
        .map(|(value, label)| Opt {
            value: value.to_owned(),
            label: label.to_owned(),
            selected: value == current,
        })
        .collect()
}

/// One row of the property filter form.
struct Condition {
    n: usize,
    keys: Vec<Opt>,
    operators: Vec<Opt>,
    value: String,
}

struct Row {
    href: String,
    distinct_id: String,
    cells: Vec<String>,
}

/// The query a users page was asked with, as the listing reads it: the API's parameters, plus
/// the filter form's rows (`fk`, `fo`, `fv`: key, operator, value) as `prop.<key>=<op>:<value>`.
/// Empty fields of the form are left out.
fn listing_pairs(fields: &Fields) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = fields
        .0
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "fk" | "fo" | "fv") && !v.trim().is_empty())
        .cloned()
        .collect();
    let keys: Vec<&str> = fields.all("fk").collect();
    let ops: Vec<&str> = fields.all("fo").collect();
    let values: Vec<&str> = fields.all("fv").collect();
    for (i, key) in keys.iter().enumerate() {
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        let op = ops.get(i).copied().unwrap_or("eq");
        let value = values.get(i).copied().unwrap_or("").trim();
        let value = if op == "exists" && value.is_empty() {
            "true"
        } else {
            value
        };
        pairs.push((format!("prop.{key}"), format!("{op}:{value}")));
    }
    pairs
}

/// The property filters of a listing as form rows (so a page shows the conditions it applied),
/// then one empty row to add another.
fn conditions(pairs: &[(String, String)], keys: &[(String, String)]) -> Vec<Condition> {
    let row = |n, key: &str, op: &str, value: &str| {
        let mut key_opts = vec![Opt {
            value: String::new(),
            label: "Property…".into(),
            selected: key.is_empty(),
        }];
        key_opts.extend(keys.iter().map(|(k, label)| Opt {
            value: k.clone(),
            label: label.clone(),
            selected: k == key,
        }));
        Condition {
            n,
            keys: key_opts,
            operators: options(OPERATORS, op),
            value: value.to_owned(),
        }
    };
    let mut out: Vec<Condition> = pairs
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("prop.")?;
            let (op, value) = v.split_once(':').unwrap_or(("eq", v));
            Some((key, op, value))
        })
        .enumerate()
        .map(|(n, (key, op, value))| row(n, key, op, value))
        .collect();
    out.push(row(out.len(), "", "eq", ""));
    out
}

fn count_text(count: Option<Count>) -> String {
    match count {
        None => String::new(),
        Some(c) => {
            let n = thousands(c.value);
            let noun = if c.value == 1 { "user" } else { "users" };
            if c.is_estimate {
                format!("about {n} {noun} (estimated)")
            } else {
                format!("{n} {noun}")
            }
        }
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A cell: the value of `key` on the profile (properties, channels, status, timestamps).
fn cell(p: &Profile, flat: &serde_json::Map<String, Value>, key: &str) -> String {
    let text = match key {
        "$created_at" => show_time(p.created_at),
        "$updated_at" => show_time(p.updated_at),
        _ => flat.get(key).map(display_value).unwrap_or_default(),
    };
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(79).collect::<String>())
    } else {
        text
    }
}

/// `GET /{env}/users`: the table, one row per user: distinct_id (linking to the user's page),
/// then the properties marked "See in Table". Search, status, sort, property filters and cursor
/// paging are the listing API's, with the total count.
pub async fn list(State(app): State<App>, console: Console, uri: Uri) -> Response {
    let fields = Fields(crate::api::query_pairs(&uri));
    let mut pairs = listing_pairs(&fields);
    let store = app.store.as_ref();
    let ctx = &console.ctx;
    let all_props = match properties::list(store, ctx).await {
        Ok(p) => p,
        Err(e) => return failure(Shell::of(&console, "users"), e),
    };
    // Columns no user carries would be empty: left out until some user has the property.
    let shown: Vec<&Property> = all_props
        .iter()
        .filter(|p| p.record.show_in_table && p.profiles > 0)
        .collect();
    let keys: Vec<(String, String)> = all_props
        .iter()
        .filter(|p| !p.record.key.starts_with("$created") && !p.record.key.starts_with("$updated"))
        .map(|p| {
            (
                p.record.key.clone(),
                if p.record.label == p.record.key {
                    p.record.key.clone()
                } else {
                    format!("{} ({})", p.record.label, p.record.key)
                },
            )
        })
        .collect();
    let (mut rows, mut count, mut prev, mut next, mut error) = (vec![], None, None, None, None);
    let (mut count_url, mut count_inline) = (None, None);
    let parsed = ListRequest::parse(&pairs);
    let (sort, limit) = match &parsed {
        Ok(r) => (r.query.sort, r.query.limit),
        Err(_) => (Sort::default(), herald_core::listing::DEFAULT_LIMIT),
    };
    let status_code = match parsed {
        Err(e) => {
            error = Some(e.to_string());
            StatusCode::BAD_REQUEST
        }
        Ok(request) => match profiles::list(store, ctx, &request.query, request.with_count).await {
            Err(Error::Invalid(e)) => {
                error = Some(e.to_string());
                StatusCode::BAD_REQUEST
            }
            Err(e) => return failure(Shell::of(&console, "users"), e),
            Ok(listing) => {
                count = listing.count;
                let env = console.env.as_str();
                if count.is_none() {
                    let kept = pairs
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "after" | "before" | "with_count"))
                        .map(|(k, v)| (k.as_str(), v.as_str()));
                    let q = query_string(kept);
                    count_url = Some(format!("/{env}/users/count?{q}"));
                    count_inline = Some(format!("/{env}/users?{q}&with_count=true"));
                }
                let page_link = |cursor_name: &str, cursor: &str| {
                    let kept = pairs
                        .iter()
                        .filter(|(k, _)| k != "after" && k != "before")
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .chain([(cursor_name, cursor)]);
                    format!("/{env}/users?{}", query_string(kept))
                };
                prev = listing
                    .page
                    .before
                    .as_deref()
                    .map(|c| page_link("before", c));
                next = listing.page.after.as_deref().map(|c| page_link("after", c));
                rows = listing
                    .page
                    .items
                    .iter()
                    .map(|p| {
                        let flat = p.flat();
                        Row {
                            href: format!("/{env}/users/{}", segment(p.distinct_id.as_str())),
                            distinct_id: p.distinct_id.to_string(),
                            cells: shown
                                .iter()
                                .map(|prop| cell(p, &flat, &prop.record.key))
                                .collect(),
                        }
                    })
                    .collect();
                StatusCode::OK
            }
        },
    };
    pairs.retain(|(k, _)| k.starts_with("prop."));
    let page = UsersPage {
        env: console.env.as_str(),
        q: fields.text("q"),
        limit,
        sorts: options(SORTS, &sort.as_string()),
        statuses: options(
            [
                ("", "All users"),
                ("enabled", "Enabled"),
                ("disabled", "Disabled"),
            ],
            fields.get("status").unwrap_or(""),
        ),
        conditions: conditions(&pairs, &keys),
        error,
        columns: shown.iter().map(|p| p.record.label.clone()).collect(),
        rows,
        count: count_text(count),
        count_url,
        count_inline,
        prev,
        next,
        shell: Shell::of(&console, "users"),
    };
    html(status_code, page.render())
}

/// `GET /{env}/users/count?<the listing's query>`: how many users a filtered listing holds, as
/// the users page shows it (plain text). The page fetches it after it has loaded, so a count
/// over a million profiles never holds the table back.
pub async fn count(State(app): State<App>, console: Console, uri: Uri) -> Response {
    use axum::response::IntoResponse;
    let pairs = listing_pairs(&Fields(crate::api::query_pairs(&uri)));
    let text = match ListRequest::parse(&pairs) {
        Err(e) => Err(Error::Invalid(e)),
        Ok(mut request) => {
            request.query.limit = 1;
            request.query.position = herald_core::listing::PagePosition::First;
            profiles::list(app.store.as_ref(), &console.ctx, &request.query, true)
                .await
                .map(|l| count_text(l.count))
        }
    };
    match text {
        Ok(text) => {
            let mut r = text.into_response();
            r.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(Error::Invalid(e)) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => failure(Shell::of(&console, "users"), e),
    }
}

// ---- creating a user -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dashboard/user_new.html")]
struct NewUserPage {
    shell: Shell,
    env: &'static str,
    csrf: String,
    values: BTreeMap<&'static str, String>,
    errors: BTreeMap<String, String>,
}

impl NewUserPage {
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }
}

const NEW_USER_FIELDS: [&str; 4] = ["distinct_id", "name", "email", "sms"];

/// `GET /{env}/users/new`.
pub async fn new_page(console: Console) -> Response {
    let page = NewUserPage {
        env: console.env.as_str(),
        csrf: console.session.csrf_token.clone(),
        values: BTreeMap::new(),
        errors: BTreeMap::new(),
        shell: Shell::of(&console, "users"),
    };
    html(StatusCode::OK, page.render())
}

/// `POST /{env}/users/new`: distinct_id, and optionally name, an email and a phone; refused
/// (beside the field) when the id exists or a value breaks a rule, as `POST /v1/user/{id}/`
/// would refuse it.
pub async fn create(State(app): State<App>, posted: Posted) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let f = &posted.fields;
    let values: BTreeMap<&'static str, String> =
        NEW_USER_FIELDS.iter().map(|k| (*k, f.text(k))).collect();
    let mut body = serde_json::Map::new();
    for (field, key) in [("name", "name"), ("email", "$email"), ("sms", "$sms")] {
        if !values[field].is_empty() {
            body.insert(key.into(), json!(values[field]));
        }
    }
    let store = app.store.as_ref();
    let result = match DistinctId::parse(&values["distinct_id"]) {
        Err(e) => Err(Error::Invalid(e)),
        Ok(id) => match store.get_profile(console.ctx.scope, &id).await {
            Err(e) => Err(Error::Store(e)),
            Ok(Some(_)) => Err(Error::Conflict(Invalid::new(
                "distinct_id",
                "a user with this distinct_id exists already",
            ))),
            Ok(None) => {
                let body = Value::Object(body);
                match within_edit_limit(&body) {
                    Err(e) => Err(Error::Invalid(e)),
                    Ok(()) => profiles::upsert(store, &console.ctx, &id, &body).await,
                }
            }
        },
    };
    match result {
        Ok(p) => redirect(&format!(
            "/{}/users/{}?saved=created",
            console.env,
            segment(p.distinct_id.as_str())
        )),
        Err(Error::Invalid(e) | Error::Conflict(e)) => {
            let field = match e.field.as_str() {
                f if f.starts_with("$email") => "email",
                f if f.starts_with("$sms") => "sms",
                "name" => "name",
                _ => "distinct_id",
            };
            let page = NewUserPage {
                env: console.env.as_str(),
                csrf: console.session.csrf_token.clone(),
                errors: BTreeMap::from([(field.to_owned(), e.rule.clone())]),
                values,
                shell: Shell::of(&console, "users"),
            };
            html(StatusCode::BAD_REQUEST, page.render())
        }
        Err(e) => failure(Shell::of(&console, "users"), e),
    }
}

// ---- one user ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dashboard/user.html")]
struct UserPage {
    shell: Shell,
    env: &'static str,
    base: String,
    csrf: String,
    distinct_id: String,
    enabled: bool,
    created_at: String,
    updated_at: String,
    version: i64,
    saved: Option<&'static str>,
    /// Errors beside a form's field: form name → message.
    errors: BTreeMap<String, String>,
    general: Vec<PropRow>,
    channels: Vec<ChannelBlock>,
    custom: Vec<PropRow>,
    channel_opts: Vec<Opt>,
    type_opts: Vec<Opt>,
    /// Custom keys of the registry with the value type their input starts with.
    known_keys: Vec<(String, &'static str)>,
    messages: Vec<MessageRow>,
    message_filters: MessageFilters,
    messages_next: Option<String>,
    sections: Vec<SectionBox>,
    restrictions: Vec<ChannelBox>,
    history: Vec<HistoryRow>,
    history_next: Option<String>,
}

impl UserPage {
    fn error(&self, form: &str) -> Option<&str> {
        self.errors.get(form).map(String::as_str)
    }
}

struct PropRow {
    key: String,
    label: String,
    value: String,
}

struct ChannelBlock {
    channel: &'static str,
    label: String,
    identities: Vec<IdentityRow>,
}

struct IdentityRow {
    /// What `$remove` names it by (JSON for object identities).
    value: String,
    shown: String,
    status: String,
    /// When `perma_status` is not active: it, and (for `invalid`) the provider's answer and when.
    perma: Option<PermaRow>,
}

struct PermaRow {
    status: &'static str,
    reason: String,
    at: String,
}

struct MessageRow {
    id: String,
    workflow: String,
    channel: &'static str,
    status: &'static str,
    at: String,
    reason: String,
    /// Held by the user's quiet hours until then.
    held_until: Option<String>,
    history: Vec<(String, &'static str, String)>,
}

/// A message's steps for its row: every status, and when the user first saw and clicked it
/// (engagement), in time order.
fn status_history(m: &herald_core::message::Message) -> Vec<(String, &'static str, String)> {
    let mut steps: Vec<_> = m
        .history
        .iter()
        .map(|h| {
            (
                h.at,
                h.status.as_str(),
                h.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    steps.extend(m.seen_at.map(|at| (at, "seen", String::new())));
    steps.extend(m.clicked_at.map(|at| (at, "clicked", String::new())));
    // Stable: a status and an engagement at the same instant keep that order.
    steps.sort_by_key(|(at, ..)| *at);
    steps
        .into_iter()
        .map(|(at, status, reason)| (show_time(at), status, reason))
        .collect()
}

struct MessageFilters {
    statuses: Vec<Opt>,
    channels: Vec<Opt>,
    workflow: String,
}

struct HistoryRow {
    at: String,
    actor: String,
    action: &'static str,
    changes: Vec<String>,
}

/// An identity-health event's line (a provider's permanent answer, or a reset): the profile's
/// properties do not change, so the diff is empty, and the request says what happened
/// (`{"$perma_status": {"channel", "value", "status", "reason"?}}`, see `herald_core::health::request`).
fn perma_change(request: &Value) -> Option<String> {
    let change = request.get("$perma_status")?;
    let text = |k: &str| change.get(k).and_then(Value::as_str).unwrap_or_default();
    let value = change.get("value").map(display_value).unwrap_or_default();
    let mut line = format!(
        "{} {value}: perma_status → {}",
        text("channel"),
        text("status")
    );
    if !text("reason").is_empty() {
        line.push_str(&format!(" ({})", text("reason")));
    }
    Some(line)
}

fn user_id(raw: &str) -> Result<DistinctId, Error> {
    DistinctId::parse(raw).map_err(Error::Invalid)
}

/// `GET /{env}/users/{id}`: properties, channels, status, notifications sent (filterable),
/// preferences and history, each with its form.
pub async fn show(
    State(app): State<App>,
    console: Console,
    Path(params): Path<Vec<(String, String)>>,
    uri: Uri,
) -> Response {
    let raw = super::path_param(params, "id");
    let query = Fields(crate::api::query_pairs(&uri));
    let saved = match query.get("saved") {
        Some("created") => Some("User created."),
        Some("status") => Some("Status saved."),
        Some("preferences") => Some("Preferences saved."),
        Some("edit") => Some("Saved."),
        Some("identity") => Some("Identity reset: it will be sent to again."),
        _ => None,
    };
    match user_page(&app, &console, &raw, &query, BTreeMap::new(), saved).await {
        Ok(page) => html(StatusCode::OK, page.render()),
        Err(e) => failure(Shell::of(&console, "users"), e),
    }
}

async fn user_page(
    app: &App,
    console: &Console,
    raw: &str,
    query: &Fields,
    errors: BTreeMap<String, String>,
    saved: Option<&'static str>,
) -> Result<UserPage, Error> {
    let store = app.store.as_ref();
    let ctx = &console.ctx;
    let id = user_id(raw)?;
    let profile = profiles::get(store, ctx, &id).await?;
    let env = console.env.as_str();
    let base = format!("/{env}/users/{}", segment(id.as_str()));
    let props = properties::list(store, ctx).await?;
    let label_of = |key: &str| {
        props
            .iter()
            .find(|p| p.record.key == key)
            .map(|p| p.record.label.clone())
            .unwrap_or_else(|| key.to_owned())
    };
    let general = herald_core::profile::GENERAL_KEYS
        .iter()
        .map(|k| PropRow {
            key: (*k).to_owned(),
            label: label_of(k),
            value: profile
                .properties
                .get(*k)
                .map(display_value)
                .unwrap_or_default(),
        })
        .collect();
    let custom = profile
        .properties
        .iter()
        .filter(|(k, _)| !herald_core::profile::GENERAL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| PropRow {
            key: k.clone(),
            label: label_of(k),
            value: match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        })
        .collect();
    let channels = Channel::ALL
        .iter()
        .filter_map(|c| {
            let identities: Vec<IdentityRow> = profile
                .identities_on(*c)
                .map(|i| IdentityRow {
                    value: match &i.value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                    shown: display_value(&i.value),
                    status: i.to_wire()["status"].as_str().unwrap_or("").to_owned(),
                    perma: (i.perma_status != IdentityStatus::Active).then(|| PermaRow {
                        status: i.perma_status.as_str(),
                        reason: i
                            .perma_failure
                            .as_ref()
                            .map(|f| f.reason.clone())
                            .unwrap_or_default(),
                        at: i
                            .perma_failure
                            .as_ref()
                            .map(|f| show_time(f.at))
                            .unwrap_or_default(),
                    }),
                })
                .collect();
            (!identities.is_empty()).then(|| ChannelBlock {
                channel: c.as_str(),
                label: label_of(c.key()),
                identities,
            })
        })
        .collect();
    // Notifications sent, newest first, with the page's filters.
    let status_filter = query.get("m_status").and_then(MessageStatus::from_name);
    let channel_filter = query.get("m_channel").and_then(Channel::from_name);
    let workflow_filter = query.text("m_workflow");
    let before = query
        .get("m_before")
        .and_then(|b| b.trim().parse::<i64>().ok());
    let page = store
        .list_messages(
            ctx.scope,
            &MessageQuery {
                distinct_ids: vec![id.clone()],
                status: status_filter,
                channel: channel_filter,
                workflow: (!workflow_filter.is_empty()).then(|| workflow_filter.clone()),
                before,
                limit: 20,
                ..MessageQuery::default()
            },
        )
        .await?;
    let messages_next = page.next.map(|n| {
        let kept: Vec<(&str, &str)> = query
            .0
            .iter()
            .filter(|(k, _)| k.starts_with("m_") && k != "m_before")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let n = n.to_string();
        format!(
            "{base}?{}#notifications",
            query_string(kept.into_iter().chain([("m_before", n.as_str())]))
        )
    });
    let messages = page
        .messages
        .iter()
        .map(|m| MessageRow {
            id: m.id.clone(),
            workflow: m.workflow.clone(),
            channel: m.channel.as_str(),
            status: m.status.as_str(),
            at: show_time(m.created_at),
            reason: m.reason.clone().unwrap_or_default(),
            held_until: m.held_until.map(show_time),
            history: status_history(m),
        })
        .collect();
    let mut statuses = vec![Opt {
        value: String::new(),
        label: "Any status".into(),
        selected: status_filter.is_none(),
    }];
    statuses.extend(MessageStatus::ALL.iter().map(|s| Opt {
        value: s.as_str().into(),
        label: s.as_str().into(),
        selected: status_filter == Some(*s),
    }));
    let mut channel_opts_filter = vec![Opt {
        value: String::new(),
        label: "Any channel".into(),
        selected: channel_filter.is_none(),
    }];
    channel_opts_filter.extend(Channel::ALL.iter().map(|c| Opt {
        value: c.as_str().into(),
        label: c.as_str().into(),
        selected: channel_filter == Some(*c),
    }));
    // Preferences, as the hosted page shows them, on the channels the user has.
    let categories = preferences::list_categories(store, ctx).await?;
    let offered = crate::api::hosted::channels_of(&profile);
    let (sections, restrictions) = crate::api::hosted::preference_boxes(
        UserView::of(&categories, &profile.preferences, true),
        &offered,
    );
    // History, newest first.
    let after = query
        .get("h_after")
        .and_then(|a| a.trim().parse::<i64>().ok());
    let history_page = profiles::history(store, ctx, &id, after, 20).await?;
    let history_next = history_page
        .after
        .map(|a| format!("{base}?h_after={a}#history"));
    let history = history_page
        .events
        .iter()
        .map(|e| HistoryRow {
            at: show_time(e.at),
            actor: format!("{} {}", e.actor.kind, e.actor.id),
            action: e.action.as_str(),
            changes: e
                .changes
                .iter()
                .map(|c| {
                    let show = |v: &Option<Value>| {
                        v.as_ref().map(display_value).unwrap_or_else(|| "—".into())
                    };
                    match (&c.added, &c.removed) {
                        (Some(a), _) => format!("{}: added {}", c.key, display_value(&json!(a))),
                        (_, Some(r)) => {
                            format!("{}: removed {}", c.key, display_value(&json!(r)))
                        }
                        _ => format!("{}: {} → {}", c.key, show(&c.before), show(&c.after)),
                    }
                })
                .chain(perma_change(&e.request))
                .collect(),
        })
        .collect();
    let mut known_keys: Vec<(String, &'static str)> = props
        .iter()
        .filter(|p| p.record.kind == herald_core::property::PropertyKind::Custom)
        .map(|p| (p.record.key.clone(), input_type(&p.types())))
        .collect();
    known_keys.sort();
    Ok(UserPage {
        shell: Shell::of(console, "users"),
        env,
        csrf: console.session.csrf_token.clone(),
        distinct_id: id.to_string(),
        enabled: profile.status == Status::Enabled,
        created_at: show_time(profile.created_at),
        updated_at: show_time(profile.updated_at),
        version: profile.version,
        saved,
        errors,
        general,
        channels,
        custom,
        channel_opts: Channel::ALL
            .iter()
            .map(|c| Opt {
                value: c.as_str().into(),
                label: c.as_str().into(),
                selected: false,
            })
            .collect(),
        type_opts: options(VALUE_TYPES, "string"),
        known_keys,
        messages,
        message_filters: MessageFilters {
            statuses,
            channels: channel_opts_filter,
            workflow: workflow_filter,
        },
        messages_next,
        sections,
        restrictions,
        history,
        history_next,
        base,
    })
}

/// The types a custom property's value may be entered as.
const VALUE_TYPES: [(&str, &str); 5] = [
    ("string", "text"),
    ("number", "number"),
    ("boolean", "true/false"),
    ("datetime", "date and time"),
    ("json", "JSON (list or object)"),
];

/// The form's value type for a property of these types (the declared or first seen one).
fn input_type(types: &[&str]) -> &'static str {
    match types.first().copied() {
        Some("number") => "number",
        Some("boolean") => "boolean",
        Some("datetime") => "datetime",
        Some("object" | "array") => "json",
        _ => "string",
    }
}

/// A typed value from the property form: the type says how `raw` is read.
fn typed_value(kind: &str, raw: &str) -> Result<Value, Invalid> {
    let bad = |rule: String| Invalid::new("value", rule);
    match kind {
        "string" => Ok(Value::String(raw.to_owned())),
        "number" => {
            let t = raw.trim();
            if let Ok(i) = t.parse::<i64>() {
                Ok(json!(i))
            } else {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| json!(f))
                    .ok_or_else(|| bad(format!("'{t}' is not a number")))
            }
        }
        "boolean" => match raw.trim() {
            "true" => Ok(json!(true)),
            "false" => Ok(json!(false)),
            other => Err(bad(format!("'{other}' is not true or false"))),
        },
        "datetime" => {
            let t = raw.trim();
            // A datetime-local input sends 2026-01-31T09:30[:15] (no zone): read as UTC.
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S")
                        .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M"))
                        .map(|n| n.and_utc())
                })
                .map(|d| Value::String(d.to_rfc3339()))
                .map_err(|_| bad(format!("'{t}' is not a date and time (2026-01-31T09:30)")))
        }
        "json" => serde_json::from_str::<Value>(raw.trim())
            .map_err(|e| bad(format!("is not valid JSON: {e}"))),
        other => Err(Invalid::new(
            "type",
            format!("'{other}' is not a value type"),
        )),
    }
}

/// An identity value from the form: object channels (Slack, Teams, Discord) take JSON.
fn identity_value(raw: &str) -> Value {
    let t = raw.trim();
    if t.starts_with('{') {
        serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_owned()))
    } else {
        Value::String(t.to_owned())
    }
}

/// What an edit form asks for, as operations of `PATCH /v1/user/{id}/`, and the form the
/// answer's errors belong beside.
fn edit_operations(f: &Fields) -> Result<(&'static str, Value), (&'static str, Invalid)> {
    let channel_key = |form| {
        let name = f.text("channel");
        Channel::from_name(&name).map(|c| c.key()).ok_or_else(|| {
            (
                form,
                Invalid::new("channel", format!("'{name}' is not a channel")),
            )
        })
    };
    match f.get("action").unwrap_or("") {
        "add_identity" => {
            let key = channel_key("identity")?;
            Ok((
                "identity",
                json!([{"$append": {key: identity_value(f.get("value").unwrap_or(""))}}]),
            ))
        }
        "remove_identity" => {
            let key = channel_key("identities")?;
            Ok((
                "identities",
                json!([{"$remove": {key: identity_value(f.get("value").unwrap_or(""))}}]),
            ))
        }
        "set_property" => {
            let key = f.text("key");
            if key.is_empty() {
                return Err(("property", Invalid::new("key", "is required")));
            }
            let value = typed_value(&f.text("type"), f.get("value").unwrap_or(""))
                .map_err(|e| ("property", e))?;
            Ok(("property", json!([{"$set": {key: value}}])))
        }
        "unset_property" => Ok(("custom", json!([{"$unset": [f.text("key")]}]))),
        "general" => {
            let mut set = serde_json::Map::new();
            let mut unset = Vec::new();
            for key in herald_core::profile::GENERAL_KEYS {
                match f.get(key).map(str::trim) {
                    Some("") => unset.push(json!(key)),
                    // Quiet hours are an object, shown (and edited) as its JSON.
                    Some(v) if key == herald_core::quiet::PROPERTY => {
                        let value = serde_json::from_str(v).unwrap_or_else(|_| json!(v));
                        set.insert(key.into(), value);
                    }
                    Some(v) => {
                        set.insert(key.into(), json!(v));
                    }
                    None => {}
                }
            }
            let mut ops = vec![];
            if !set.is_empty() {
                ops.push(json!({"$set": set}));
            }
            if !unset.is_empty() {
                ops.push(json!({"$unset": unset}));
            }
            Ok(("general", Value::Array(ops)))
        }
        other => Err((
            "general",
            Invalid::new("action", format!("'{other}' is not an edit")),
        )),
    }
}

/// `PATCH /v1/user/{id}/`'s limit on one edit (SuprSend's 10 KB), for the dashboard's edits too.
fn within_edit_limit(ops: &Value) -> Result<(), Invalid> {
    let size = ops.to_string().len();
    let max = herald_core::service::limits::MAX_EDIT_BYTES;
    if size > max {
        return Err(Invalid::new(
            "value",
            format!("a profile edit may carry at most {max} bytes, this one has {size}"),
        ));
    }
    Ok(())
}

/// Shows the user page again with `error` beside `form` (400), or the failure page.
async fn refused_edit(app: &App, console: &Console, raw: &str, form: &str, e: Error) -> Response {
    let message = match e {
        // `operations[0].$set.age: …` reads as `age: …` beside the form that sent it.
        Error::Invalid(mut e) | Error::Conflict(mut e) => {
            if let Some(rest) = e.field.strip_prefix("operations[") {
                let after_op = rest.split_once("].").map_or("", |(_, r)| r);
                e.field = after_op
                    .split_once('.')
                    .map_or(after_op, |(_, key)| key)
                    .to_owned();
            }
            e.to_string()
        }
        other => return failure(Shell::of(console, "users"), other),
    };
    let errors = BTreeMap::from([(form.to_owned(), message)]);
    match user_page(app, console, raw, &Fields::default(), errors, None).await {
        Ok(page) => html(StatusCode::BAD_REQUEST, page.render()),
        Err(e) => failure(Shell::of(console, "users"), e),
    }
}

/// `POST /{env}/users/{id}/edit`: one of the page's edit forms (`action`: add_identity,
/// remove_identity, set_property, unset_property, general), applied with the same rules as
/// `PATCH /v1/user/{id}/` (history actor `dashboard`/operator). Refusals are shown beside the form.
pub async fn edit(
    State(app): State<App>,
    Path(params): Path<Vec<(String, String)>>,
    posted: Posted,
) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let raw = super::path_param(params, "id");
    let (form, ops) = match edit_operations(&posted.fields) {
        Ok(x) => x,
        Err((form, e)) => return refused_edit(&app, &console, &raw, form, Error::Invalid(e)).await,
    };
    let id = match user_id(&raw) {
        Ok(id) => id,
        Err(e) => return failure(Shell::of(&console, "users"), e),
    };
    // The API's rules: its size limit for one edit, its operations parser, and the locked edit;
    // a user that is gone stays gone (404), it is not re-created.
    let applied = match within_edit_limit(&ops)
        .and_then(|()| herald_core::ops::parse_operations(&ops, "operations"))
    {
        Err(e) => Err(Error::Invalid(e)),
        Ok(steps) => {
            let request = json!({ "operations": ops });
            match profiles::apply(app.store.as_ref(), &console.ctx, &id, steps, request, false)
                .await
            {
                Err(Error::NotFound { .. }) => {
                    return failure(Shell::of(&console, "users"), Error::user_not_found(&id))
                }
                other => other,
            }
        }
    };
    match applied {
        Ok(_) => redirect(&format!(
            "/{}/users/{}?saved=edit",
            console.env,
            segment(id.as_str())
        )),
        Err(e) => refused_edit(&app, &console, &raw, form, e).await,
    }
}

/// `POST /{env}/users/{id}/status`: `status` = enabled | disabled. A disabled user receives
/// nothing (triggers skip them with `user_disabled`).
pub async fn status(
    State(app): State<App>,
    Path(params): Path<Vec<(String, String)>>,
    posted: Posted,
) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let raw = super::path_param(params, "id");
    let status = match Status::parse(posted.fields.get("status").unwrap_or("")) {
        Ok(s) => s,
        Err(rule) => {
            let e = Error::Invalid(Invalid::new("status", rule));
            return refused_edit(&app, &console, &raw, "status", e).await;
        }
    };
    let result = match user_id(&raw) {
        Ok(id) => profiles::set_status(app.store.as_ref(), &console.ctx, &id, status).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => redirect(&format!(
            "/{}/users/{}?saved=status",
            console.env,
            segment(p.distinct_id.as_str())
        )),
        Err(e) => refused_edit(&app, &console, &raw, "status", e).await,
    }
}

/// `POST /{env}/users/{id}/identity/reset`: `channel` and `value` of an identity a provider
/// found dead, set back to `perma_status: active` (as `POST /v1/user/{id}/identity/reset/`,
/// history actor `dashboard`/operator).
pub async fn reset_identity(
    State(app): State<App>,
    Path(params): Path<Vec<(String, String)>>,
    posted: Posted,
) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let raw = super::path_param(params, "id");
    let body = json!({
        "channel": posted.fields.text("channel"),
        "value": identity_value(posted.fields.get("value").unwrap_or("")),
    });
    let result = match (user_id(&raw), herald_core::health::Target::parse(&body)) {
        (Ok(id), Ok(target)) => {
            herald_core::service::health::reset(app.store.as_ref(), &console.ctx, &id, &target)
                .await
        }
        (Err(e), _) => Err(e),
        (_, Err(invalid)) => Err(Error::Invalid(invalid)),
    };
    match result {
        Ok(p) => redirect(&format!(
            "/{}/users/{}?saved=identity",
            console.env,
            segment(p.distinct_id.as_str())
        )),
        Err(e) => refused_edit(&app, &console, &raw, "identities", e).await,
    }
}

/// `POST /{env}/users/{id}/preferences`: the whole grid, as the hosted preference page posts it
/// (`category:<slug>`, `channel:<slug>:<channel>`, `restrict:<channel>`), applied as one change.
pub async fn preferences(
    State(app): State<App>,
    Path(params): Path<Vec<(String, String)>>,
    posted: Posted,
) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let raw = super::path_param(params, "id");
    let store = app.store.as_ref();
    let ctx = &console.ctx;
    let result = async {
        let id = user_id(&raw)?;
        let profile = profiles::get(store, ctx, &id).await?;
        let categories = preferences::list_categories(store, ctx).await?;
        let form: std::collections::HashMap<String, String> =
            posted.fields.0.iter().cloned().collect();
        let (changes, restrictions) = crate::api::hosted::changes_of(
            &form,
            &categories,
            &crate::api::hosted::channels_of(&profile),
        )?;
        let history = json!({"preference": {"dashboard": true}});
        profiles::change_recorded(store, ctx, &id, history, move |p| {
            for c in &changes {
                c.apply(&mut p.preferences)?;
            }
            preference::restrict(&mut p.preferences, &restrictions);
            Ok(())
        })
        .await
    }
    .await;
    match result {
        Ok(p) => redirect(&format!(
            "/{}/users/{}?saved=preferences#preferences",
            console.env,
            segment(p.distinct_id.as_str())
        )),
        Err(e) => refused_edit(&app, &console, &raw, "preferences", e).await,
    }
}

/// `POST /{env}/users/{id}/delete`: deletes the user once `confirm` repeats their distinct_id
/// (history erased, a tombstone kept, as `DELETE /v1/user/{id}/`).
pub async fn delete(
    State(app): State<App>,
    Path(params): Path<Vec<(String, String)>>,
    posted: Posted,
) -> Response {
    let Some(console) = posted.console() else {
        return super::session::csrf_refused();
    };
    let raw = super::path_param(params, "id");
    let id = match user_id(&raw) {
        Ok(id) => id,
        Err(e) => return failure(Shell::of(&console, "users"), e),
    };
    if posted.fields.text("confirm") != id.as_str() {
        let e = Error::Invalid(Invalid::new(
            "confirm",
            "type the user's distinct_id exactly to delete them",
        ));
        return refused_edit(&app, &console, &raw, "delete", e).await;
    }
    match profiles::delete(app.store.as_ref(), &console.ctx, &id).await {
        Ok(()) => redirect(&format!("/{}/users?deleted=1", console.env)),
        Err(e) => failure(Shell::of(&console, "users"), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_rows_become_listing_parameters() {
        let f = Fields(
            [
                ("q", "ada"),
                ("status", ""),
                ("fk", "plan"),
                ("fo", "eq"),
                ("fv", "pro"),
                ("fk", "beta"),
                ("fo", "exists"),
                ("fv", ""),
                ("fk", ""),
                ("fo", "eq"),
                ("fv", "ignored"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let pairs = listing_pairs(&f);
        let as_str: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            as_str,
            [
                ("q", "ada"),
                ("prop.plan", "eq:pro"),
                ("prop.beta", "exists:true")
            ]
        );
        assert!(ListRequest::parse(&pairs).is_ok());
    }

    #[test]
    fn values_are_read_by_their_type() {
        assert_eq!(typed_value("number", " 42 ").unwrap(), json!(42));
        assert_eq!(typed_value("number", "4.5").unwrap(), json!(4.5));
        assert_eq!(typed_value("number", "x").unwrap_err().field, "value");
        assert_eq!(typed_value("boolean", "true").unwrap(), json!(true));
        assert_eq!(typed_value("json", "[1, 2]").unwrap(), json!([1, 2]));
        assert_eq!(typed_value("string", " a ").unwrap(), json!(" a "));
        assert_eq!(
            typed_value("datetime", "2026-01-31T09:30").unwrap(),
            json!("2026-01-31T09:30:00+00:00")
        );
        assert_eq!(
            typed_value("datetime", "2026-01-31T09:30:15").unwrap(),
            json!("2026-01-31T09:30:15+00:00")
        );
        assert_eq!(
            typed_value("datetime", "2026-01-31T09:30:00+02:00").unwrap(),
            json!("2026-01-31T07:30:00+00:00")
        );
        assert!(typed_value("datetime", "tomorrow").is_err());
        assert_eq!(input_type(&["number"]), "number");
        assert_eq!(input_type(&["array", "string"]), "json");
        assert_eq!(input_type(&[]), "string");
    }

    #[test]
    fn counts_read_well() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(count_text(Some(Count::exact(1))), "1 user");
        assert_eq!(
            count_text(Some(Count {
                value: 1_000_000,
                is_estimate: true
            })),
            "about 1,000,000 users (estimated)"
        );
    }
}
