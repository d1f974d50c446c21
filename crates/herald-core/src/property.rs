//! The property registry: which properties exist in an environment, what they look like, which
//! the users table shows, and how many profiles carry each.
//!
//! General and channel properties are built in; custom ones are discovered when a profile first
//! carries them or declared ahead of use. Stores keep a [`PropertyRecord`] per custom property
//! (and per built-in whose label or visibility was changed) and presence counters kept current by
//! [`crate::index::Change`].

use crate::channel::Channel;
use crate::error::Invalid;
use crate::index::{types, EVERY_PROFILE};
use crate::profile::{GENERAL_KEYS, STATUS_KEY};
use crate::validate;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyKind {
    General,
    Channel,
    Custom,
}

impl PropertyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyKind::General => "general",
            PropertyKind::Channel => "channel",
            PropertyKind::Custom => "custom",
        }
    }

    pub fn of(key: &str) -> PropertyKind {
        if Channel::from_key(key).is_some() {
            PropertyKind::Channel
        } else if GENERAL_KEYS.contains(&key) || BUILT_IN_FIELDS.iter().any(|f| f.0 == key) {
            PropertyKind::General
        } else {
            PropertyKind::Custom
        }
    }
}

/// General properties that are profile fields rather than keys in `properties`, with their type.
/// Their keys start with `$`, which custom keys cannot, so a custom `created_at` is its own
/// property.
const BUILT_IN_FIELDS: [(&str, &str, u8); 3] = [
    (STATUS_KEY, "Status", types::STRING),
    ("$created_at", "Created at", types::DATETIME),
    ("$updated_at", "Updated at", types::DATETIME),
];

/// What is stored about one property.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyRecord {
    pub key: String,
    pub kind: PropertyKind,
    pub label: String,
    pub description: String,
    pub show_in_table: bool,
    /// The type a caller declared, if any.
    pub declared_type: Option<String>,
    /// Whether a caller declared it (rather than Herald discovering it on a profile).
    pub declared: bool,
    /// Bits of [`types`] seen on profiles.
    pub types_seen: u8,
    pub created_at: DateTime<Utc>,
}

/// One entry of `GET /v1/property/`.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub record: PropertyRecord,
    /// Profiles carrying it now.
    pub profiles: u64,
}

impl Property {
    pub fn to_wire(&self) -> Value {
        let r = &self.record;
        let mut types = types::names(r.types_seen);
        if let Some(t) = &r.declared_type {
            if !types.contains(&t.as_str()) {
                types.insert(0, t);
            }
        }
        json!({
            "key": r.key,
            "kind": r.kind,
            "label": r.label,
            "description": r.description,
            "show_in_table": r.show_in_table,
            "type": r.declared_type,
            "observed_types": types::names(r.types_seen),
            "types": types,
            "declared": r.declared,
            "created_at": r.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "profiles": self.profiles,
        })
    }
}

fn built_in(key: &str, label: &str, kind: PropertyKind, shown: bool, bits: u8) -> PropertyRecord {
    PropertyRecord {
        key: key.to_owned(),
        kind,
        label: label.to_owned(),
        description: String::new(),
        show_in_table: shown,
        declared_type: None,
        declared: false,
        types_seen: bits,
        created_at: DateTime::<Utc>::UNIX_EPOCH,
    }
}

/// The built-in properties in display order, with their default labels and visibility: name, the
/// channels, status and the timestamps are shown; country, time zone, language and locale hidden.
pub fn built_ins() -> Vec<PropertyRecord> {
    use PropertyKind::General;
    let s = types::STRING;
    let mut all = vec![built_in("name", "Name", General, true, s)];
    for c in Channel::ALL {
        let label = channel_label(c);
        all.push(built_in(
            c.key(),
            label,
            PropertyKind::Channel,
            true,
            types::ARRAY,
        ));
    }
    for (key, label) in [
        ("country", "Country"),
        ("$timezone", "Time zone"),
        ("$preferred_language", "Language"),
        ("$locale", "Locale"),
    ] {
        all.push(built_in(key, label, General, false, s));
    }
    for (key, label, bits) in BUILT_IN_FIELDS {
        all.push(built_in(key, label, General, true, bits));
    }
    all
}

fn channel_label(c: Channel) -> &'static str {
    match c {
        Channel::Email => "Email",
        Channel::Sms => "SMS",
        Channel::Whatsapp => "WhatsApp",
        Channel::Androidpush => "Android push",
        Channel::Iospush => "iOS push",
        Channel::Webpush => "Web push",
        Channel::Slack => "Slack",
        Channel::MsTeams => "Microsoft Teams",
        Channel::Discord => "Discord",
        Channel::Inbox => "In-app inbox",
    }
}

/// The registry as callers see it: built-ins first (stored overrides applied), then custom
/// properties by key. A custom key carried by profiles but without a record (possible only in a
/// race with its deletion) still shows.
pub fn assemble(records: Vec<PropertyRecord>, counts: &BTreeMap<String, i64>) -> Vec<Property> {
    let mut stored: BTreeMap<String, PropertyRecord> =
        records.into_iter().map(|r| (r.key.clone(), r)).collect();
    let count = |key: &str| {
        let key = if BUILT_IN_FIELDS.iter().any(|f| f.0 == key) {
            EVERY_PROFILE
        } else {
            key
        };
        counts.get(key).copied().unwrap_or(0).max(0) as u64
    };
    let mut out = Vec::new();
    for mut b in built_ins() {
        if let Some(r) = stored.remove(&b.key) {
            b.label = r.label;
            b.description = r.description;
            b.show_in_table = r.show_in_table;
        }
        out.push(Property {
            profiles: count(&b.key),
            record: b,
        });
    }
    for (key, n) in counts {
        if *n > 0 && PropertyKind::of(key) == PropertyKind::Custom && key != EVERY_PROFILE {
            stored
                .entry(key.clone())
                .or_insert_with(|| discovered(key, 0, DateTime::<Utc>::UNIX_EPOCH));
        }
    }
    for (key, record) in stored {
        out.push(Property {
            profiles: count(&key),
            record,
        });
    }
    out
}

/// The record Herald makes when a profile first carries a custom key.
pub fn discovered(key: &str, bits: u8, now: DateTime<Utc>) -> PropertyRecord {
    PropertyRecord {
        key: key.to_owned(),
        kind: PropertyKind::Custom,
        label: key.to_owned(),
        description: String::new(),
        show_in_table: false,
        declared_type: None,
        declared: false,
        types_seen: bits,
        created_at: now,
    }
}

const DECLARABLE_TYPES: [&str; 6] = ["string", "number", "boolean", "object", "array", "datetime"];

/// `POST /v1/property/`: `{key, type?, label?, description?, show_in_table?}`.
pub fn parse_declaration(body: &Value, now: DateTime<Utc>) -> Result<PropertyRecord, Invalid> {
    let obj = object(body)?;
    let key = obj
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::new("key", "is required: the property's key, a string"))?;
    let key = validate::custom_key(key).map_err(|e| Invalid::new("key", e))?;
    if PropertyKind::of(&key) != PropertyKind::Custom {
        return Err(Invalid::new(
            "key",
            format!("'{key}' is a built-in property; change its label or visibility with PATCH"),
        ));
    }
    let mut record = discovered(&key, 0, now);
    record.declared = true;
    record.declared_type = match obj.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if DECLARABLE_TYPES.contains(&t.as_str()) => Some(t.clone()),
        Some(other) => {
            return Err(Invalid::new(
                "type",
                format!("{other} is not a type ({})", DECLARABLE_TYPES.join(", ")),
            ))
        }
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["key", "type", "label", "description", "show_in_table"].contains(&k.as_str()))
    {
        return Err(Invalid::new(
            unknown.as_str(),
            "is not a property attribute",
        ));
    }
    apply_patch(&mut record, obj, false)?;
    Ok(record)
}

/// `PATCH /v1/property/{key}/`: any of `label`, `description`, `show_in_table`.
pub fn patch(record: &mut PropertyRecord, body: &Value) -> Result<(), Invalid> {
    let obj = object(body)?;
    apply_patch(record, obj, true)
}

fn apply_patch(
    record: &mut PropertyRecord,
    obj: &Map<String, Value>,
    strict: bool,
) -> Result<(), Invalid> {
    for (k, v) in obj {
        match k.as_str() {
            "label" => record.label = text(k, v, 100)?,
            "description" => record.description = text(k, v, 1000)?,
            "show_in_table" => {
                record.show_in_table = v
                    .as_bool()
                    .ok_or_else(|| Invalid::new(k.as_str(), "must be true or false"))?
            }
            _ if strict => {
                return Err(Invalid::new(
                    k.as_str(),
                    "cannot be changed (label, description and show_in_table can)",
                ))
            }
            _ => {}
        }
    }
    if record.label.trim().is_empty() {
        record.label = record.key.clone();
    }
    Ok(())
}

fn object(body: &Value) -> Result<&Map<String, Value>, Invalid> {
    body.as_object()
        .ok_or_else(|| Invalid::new("", "the body must be a JSON object"))
}

fn text(field: &str, v: &Value, max: usize) -> Result<String, Invalid> {
    let s = v
        .as_str()
        .ok_or_else(|| Invalid::new(field, "must be a string"))?;
    crate::validate::no_nul(s).map_err(|rule| Invalid::new(field, rule))?;
    if s.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn built_ins_come_first_with_default_visibility() {
        let counts = BTreeMap::from([
            (EVERY_PROFILE.to_owned(), 5),
            ("name".to_owned(), 4),
            ("$email".to_owned(), 3),
            ("plan".to_owned(), 2),
            ("gone".to_owned(), 0),
        ]);
        let all = assemble(vec![discovered("plan", types::STRING, now())], &counts);
        let find = |k: &str| all.iter().find(|p| p.record.key == k).unwrap();
        assert_eq!(all[0].record.key, "name");
        assert_eq!(
            (find("name").profiles, find("name").record.show_in_table),
            (4, true)
        );
        assert_eq!(find("$email").profiles, 3);
        assert_eq!(find("$email").record.kind, PropertyKind::Channel);
        assert_eq!(
            (
                find("country").profiles,
                find("country").record.show_in_table
            ),
            (0, false)
        );
        assert_eq!(find("$created_at").profiles, 5);
        assert_eq!(find("$status").profiles, 5);
        assert_eq!(
            (find("plan").profiles, find("plan").record.show_in_table),
            (2, false)
        );
        assert!(all
            .iter()
            .all(|p| p.record.key != "gone" && p.record.key != "*"));
        assert_eq!(all.last().unwrap().record.key, "plan");
    }

    #[test]
    fn stored_overrides_apply_to_built_ins() {
        let mut r = built_ins()
            .into_iter()
            .find(|r| r.key == "country")
            .unwrap();
        patch(&mut r, &json!({"show_in_table": true, "label": "Land"})).unwrap();
        let all = assemble(vec![r], &BTreeMap::new());
        let country = all.iter().find(|p| p.record.key == "country").unwrap();
        assert_eq!(
            (country.record.label.as_str(), country.record.show_in_table),
            ("Land", true)
        );
        assert_eq!(country.record.kind, PropertyKind::General);
    }

    #[test]
    fn declarations_are_validated() {
        let ok = parse_declaration(
            &json!({"key": "plan", "type": "string", "label": "Plan", "show_in_table": true}),
            now(),
        )
        .unwrap();
        assert_eq!(
            (
                ok.declared,
                ok.declared_type.as_deref(),
                ok.show_in_table,
                ok.label.as_str()
            ),
            (true, Some("string"), true, "Plan")
        );
        assert_eq!(
            parse_declaration(&json!({"key": "x"}), now())
                .unwrap()
                .label,
            "x"
        );
        for (body, field) in [
            (json!({"type": "string"}), "key"),
            (json!({"key": "$plan"}), "key"),
            (json!({"key": "ss_plan"}), "key"),
            (json!({"key": "name"}), "key"),
            (json!({"key": "plan", "type": "date"}), "type"),
            (
                json!({"key": "plan", "show_in_table": "yes"}),
                "show_in_table",
            ),
            (json!({"key": "plan", "label": "x".repeat(101)}), "label"),
            (json!({"key": "plan", "colour": "red"}), "colour"),
            (json!(["plan"]), ""),
        ] {
            assert_eq!(
                parse_declaration(&body, now()).unwrap_err().field,
                field,
                "{body}"
            );
        }
        let mut r = discovered("plan", 0, now());
        assert_eq!(
            patch(&mut r, &json!({"key": "other"})).unwrap_err().field,
            "key"
        );
    }
}
