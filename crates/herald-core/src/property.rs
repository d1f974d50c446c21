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
use serde_json::Value;
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
    /// Every type it has: the declared one first (if profiles have not shown it yet), then those
    /// seen on profiles.
    pub fn types(&self) -> Vec<&str> {
        let r = &self.record;
        let mut types: Vec<&str> = types::names(r.types_seen);
        if let Some(t) = r.declared_type.as_deref() {
            if !types.contains(&t) {
                types.insert(0, t);
            }
        }
        types
    }

    /// The types seen on profiles.
    pub fn observed_types(&self) -> Vec<&'static str> {
        types::names(self.record.types_seen)
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
    all.push(built_in(
        crate::quiet::PROPERTY,
        "Quiet hours",
        General,
        false,
        types::OBJECT,
    ));
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

/// The types a property may be declared with.
pub const DECLARABLE_TYPES: [&str; 6] =
    ["string", "number", "boolean", "object", "array", "datetime"];

/// The refusal for a type that cannot be declared; `shown` is what the caller sent.
pub fn not_a_type(shown: impl std::fmt::Display) -> Invalid {
    Invalid::new(
        "type",
        format!("{shown} is not a type ({})", DECLARABLE_TYPES.join(", ")),
    )
}

/// What a caller may set on a property (`PATCH /v1/property/{key}/`, and with a declaration);
/// `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyAttributes {
    pub label: Option<String>,
    pub description: Option<String>,
    pub show_in_table: Option<bool>,
}

/// `POST /v1/property/`: a custom property declared before any profile carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyDeclaration {
    pub key: String,
    /// One of [`DECLARABLE_TYPES`].
    pub declared_type: Option<String>,
    pub attributes: PropertyAttributes,
}

impl PropertyDeclaration {
    /// The record it makes: a custom key (not `$…`, `ss_…` or a built-in), a declarable type,
    /// label at most 100 characters (the key when empty), description 1000.
    pub fn into_record(self, now: DateTime<Utc>) -> Result<PropertyRecord, Invalid> {
        let key = validate::custom_key(&self.key).map_err(|e| Invalid::new("key", e))?;
        if PropertyKind::of(&key) != PropertyKind::Custom {
            return Err(Invalid::new(
                "key",
                format!(
                    "'{key}' is a built-in property; change its label or visibility with PATCH"
                ),
            ));
        }
        let mut record = discovered(&key, 0, now);
        record.declared = true;
        record.declared_type = match self.declared_type {
            None => None,
            Some(t) if DECLARABLE_TYPES.contains(&t.as_str()) => Some(t),
            Some(t) => return Err(not_a_type(Value::from(t))),
        };
        record.patched(self.attributes)
    }
}

impl PropertyRecord {
    /// This record with `attributes` applied.
    pub fn patched(mut self, attributes: PropertyAttributes) -> Result<PropertyRecord, Invalid> {
        if let Some(l) = attributes.label {
            self.label = text("label", &l, 100)?;
        }
        if let Some(d) = attributes.description {
            self.description = text("description", &d, 1000)?;
        }
        if let Some(s) = attributes.show_in_table {
            self.show_in_table = s;
        }
        if self.label.trim().is_empty() {
            self.label = self.key.clone();
        }
        Ok(self)
    }
}

fn text(field: &str, s: &str, max: usize) -> Result<String, Invalid> {
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
        let r = built_ins()
            .into_iter()
            .find(|r| r.key == "country")
            .unwrap();
        let r = r
            .patched(PropertyAttributes {
                show_in_table: Some(true),
                label: Some("Land".into()),
                description: None,
            })
            .unwrap();
        let all = assemble(vec![r], &BTreeMap::new());
        let country = all.iter().find(|p| p.record.key == "country").unwrap();
        assert_eq!(
            (country.record.label.as_str(), country.record.show_in_table),
            ("Land", true)
        );
        assert_eq!(country.record.kind, PropertyKind::General);
    }

    fn declaration(key: &str, declared_type: Option<&str>) -> PropertyDeclaration {
        PropertyDeclaration {
            key: key.into(),
            declared_type: declared_type.map(str::to_owned),
            attributes: PropertyAttributes::default(),
        }
    }

    #[test]
    fn declarations_are_validated() {
        let mut plan = declaration("plan", Some("string"));
        plan.attributes.label = Some(" Plan ".into());
        plan.attributes.show_in_table = Some(true);
        let ok = plan.into_record(now()).unwrap();
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
            declaration("x", None).into_record(now()).unwrap().label,
            "x"
        );
        let long = |field: &str| {
            let mut d = declaration("plan", None);
            match field {
                "label" => d.attributes.label = Some("x".repeat(101)),
                "description" => d.attributes.description = Some("x".repeat(1001)),
                _ => d.attributes.label = Some("a\0b".into()),
            }
            d
        };
        for (d, field) in [
            (declaration("$plan", None), "key"),
            (declaration("ss_plan", None), "key"),
            (declaration("name", None), "key"),
            (declaration("", None), "key"),
            (declaration("plan", Some("date")), "type"),
            (long("label"), "label"),
            (long("description"), "description"),
            (long("nul"), "label"),
        ] {
            assert_eq!(
                d.clone().into_record(now()).unwrap_err().field,
                field,
                "{d:?}"
            );
        }
        assert_eq!(
            declaration("plan", Some("date"))
                .into_record(now())
                .unwrap_err()
                .rule,
            "\"date\" is not a type (string, number, boolean, object, array, datetime)"
        );
        // An empty label falls back to the key; texts are trimmed.
        let r = discovered("plan", 0, now())
            .patched(PropertyAttributes {
                label: Some("  ".into()),
                description: Some(" Billing ".into()),
                show_in_table: None,
            })
            .unwrap();
        assert_eq!(
            (r.label.as_str(), r.description.as_str()),
            ("plan", "Billing")
        );
    }
}
