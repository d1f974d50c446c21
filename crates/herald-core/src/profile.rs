//! The profile: one user in one environment, keyed by distinct_id.

use crate::channel::{Channel, Identity};
use crate::error::Invalid;
use crate::ids::DistinctId;
use crate::preference::Preferences;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A disabled user receives nothing; their profile is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Enabled,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
        }
    }

    pub fn parse(raw: &str) -> Result<Status, String> {
        match raw.trim() {
            "enabled" => Ok(Status::Enabled),
            "disabled" => Ok(Status::Disabled),
            other => Err(format!(
                "'{other}' is not a status (expected enabled or disabled)"
            )),
        }
    }
}

/// The general properties Herald validates. They live in `properties` beside the custom ones.
pub const GENERAL_KEYS: [&str; 5] = [
    "name",
    "country",
    "$timezone",
    "$preferred_language",
    "$locale",
];

/// How big one profile may grow. Edits arrive 10 KB at a time but add up: without these, one
/// profile (and every read, export and copy of it) grows without end.
pub mod limits {
    /// The profile's serialized size (its wire form plus preferences), in bytes: 64 KiB.
    pub const MAX_PROFILE_BYTES: usize = 64 * 1024;
    /// Custom property keys on one profile.
    pub const MAX_CUSTOM_KEYS: usize = 500;
    /// Identities on one channel of one profile (e.g. push tokens of many devices).
    pub const MAX_IDENTITIES_PER_CHANNEL: usize = 100;
}

/// The key under which status is set and reported in operations and history.
pub const STATUS_KEY: &str = "$status";

/// The key under which preference changes are reported in history.
pub const PREFERENCES_KEY: &str = "$preferences";

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub distinct_id: DistinctId,
    pub status: Status,
    /// General and custom properties, in the order they were first set.
    pub properties: Map<String, Value>,
    /// Identities, grouped by channel in insertion order.
    pub identities: Vec<Identity>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped on every change; 0 for a profile not yet stored.
    pub version: i64,
    /// The user's notification preferences.
    pub preferences: Preferences,
}

impl Profile {
    pub fn new(distinct_id: DistinctId, now: DateTime<Utc>) -> Self {
        Self {
            distinct_id,
            status: Status::Enabled,
            properties: Map::new(),
            identities: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 0,
            preferences: Preferences::default(),
        }
    }

    pub fn identities_on(&self, channel: Channel) -> impl Iterator<Item = &Identity> {
        self.identities.iter().filter(move |i| i.channel == channel)
    }

    /// The SuprSend user object: `{distinct_id, properties, created_at, updated_at, $email: [...], ...}`,
    /// plus Herald's `status` and `version`.
    pub fn to_wire(&self) -> Value {
        let mut o = Map::new();
        o.insert(
            "distinct_id".into(),
            Value::String(self.distinct_id.to_string()),
        );
        o.insert("properties".into(), Value::Object(self.properties.clone()));
        o.insert("status".into(), Value::String(self.status.as_str().into()));
        o.insert(
            "created_at".into(),
            Value::String(format_time(self.created_at)),
        );
        o.insert(
            "updated_at".into(),
            Value::String(format_time(self.updated_at)),
        );
        o.insert("version".into(), Value::from(self.version));
        for channel in Channel::ALL {
            let ids: Vec<Value> = self.identities_on(channel).map(Identity::to_wire).collect();
            if !ids.is_empty() {
                o.insert(channel.key().into(), Value::Array(ids));
            }
        }
        Value::Object(o)
    }

    /// Every key of the profile with a comparable value: properties, `$status`, each channel as
    /// the list of its addresses, and `$preferences`. History diffs are computed over this view.
    pub fn flat(&self) -> Map<String, Value> {
        let mut m = self.properties.clone();
        m.insert(
            STATUS_KEY.into(),
            Value::String(self.status.as_str().into()),
        );
        for channel in Channel::ALL {
            let values: Vec<Value> = self
                .identities_on(channel)
                .map(|i| i.value.clone())
                .collect();
            if !values.is_empty() {
                m.insert(channel.key().into(), Value::Array(values));
            }
        }
        if !self.preferences.is_empty() {
            let prefs = serde_json::to_value(&self.preferences).expect("preferences serialise");
            m.insert(PREFERENCES_KEY.into(), prefs);
        }
        m
    }

    /// The profile as an upsert body (`POST /v1/user/{id}/`) that recreates its properties, status
    /// and identities, in their order: the line format of `herald user export` and `import`. Push
    /// tokens carry their provider, bundle and device in the object form. Not carried: history,
    /// preferences, and the device and bundle ids of web push identities (the upsert body has no
    /// per-identity place for them).
    pub fn to_upsert_body(&self) -> Map<String, Value> {
        let mut body = self.properties.clone();
        body.insert(
            STATUS_KEY.into(),
            Value::String(self.status.as_str().into()),
        );
        let mut channels: Vec<(Channel, Vec<Value>)> = Vec::new();
        for i in &self.identities {
            let value = match i.channel {
                Channel::Androidpush | Channel::Iospush => {
                    let mut o = Map::new();
                    o.insert("token".into(), i.value.clone());
                    for (k, v) in [
                        ("provider", &i.provider),
                        ("bundle_id", &i.bundle_id),
                        ("device_id", &i.device_id),
                    ] {
                        if let Some(v) = v {
                            o.insert(k.into(), Value::String(v.clone()));
                        }
                    }
                    Value::Object(o)
                }
                _ => i.value.clone(),
            };
            match channels.iter_mut().find(|(c, _)| *c == i.channel) {
                Some((_, values)) => values.push(value),
                None => channels.push((i.channel, vec![value])),
            }
        }
        for (channel, values) in channels {
            body.insert(channel.key().into(), Value::Array(values));
        }
        body
    }

    /// Refuses a profile over one of the [`limits`] that it crossed coming from `before` (a
    /// profile stored over a limit before it existed may still be edited, if not grown on it).
    pub fn check_limits(&self, before: Option<&Profile>) -> Result<(), Invalid> {
        let custom = |p: &Profile| {
            p.properties
                .keys()
                .filter(|k| !GENERAL_KEYS.contains(&k.as_str()))
                .count()
        };
        let n = custom(self);
        if n > limits::MAX_CUSTOM_KEYS && before.is_none_or(|b| n > custom(b)) {
            return Err(Invalid::new(
                "properties",
                format!(
                    "a profile may hold at most {} custom properties; this edit would make {n}",
                    limits::MAX_CUSTOM_KEYS
                ),
            ));
        }
        for channel in Channel::ALL {
            let n = self.identities_on(channel).count();
            if n > limits::MAX_IDENTITIES_PER_CHANNEL
                && before.is_none_or(|b| n > b.identities_on(channel).count())
            {
                return Err(Invalid::new(
                    channel.key(),
                    format!(
                        "a profile may hold at most {} identities per channel; this edit would make {n}",
                        limits::MAX_IDENTITIES_PER_CHANNEL
                    ),
                ));
            }
        }
        let size = self.size();
        if size > limits::MAX_PROFILE_BYTES && before.is_none_or(|b| size > b.size()) {
            return Err(Invalid::new(
                "profile",
                format!(
                    "a profile may take at most {} bytes; this edit would make it {size}",
                    limits::MAX_PROFILE_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// The serialized size [`limits::MAX_PROFILE_BYTES`] bounds.
    pub fn size(&self) -> usize {
        let wire = serde_json::to_vec(&self.to_wire()).map_or(0, |b| b.len());
        let prefs = serde_json::to_vec(&self.preferences).map_or(0, |b| b.len());
        wire + prefs
    }

    /// Same content, ignoring bookkeeping (timestamps, version).
    pub fn same_content(&self, other: &Profile) -> bool {
        self.status == other.status
            && self.properties == other.properties
            && self.identities == other.identities
            && self.preferences == other.preferences
    }
}

/// `2025-04-04T21:37:36.712496+00:00`, the form SuprSend returns.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Timestamps are kept to the microsecond, the precision both stores hold.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// The current time truncated to what a store can hold.
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(micros(t))
}
