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
pub const GENERAL_KEYS: [&str; 6] = [
    "name",
    "country",
    "$timezone",
    "$preferred_language",
    "$locale",
    crate::quiet::PROPERTY,
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

    /// [`to_wire`](Self::to_wire) serialised straight from the profile, without building a JSON
    /// tree (no copy of the properties): the same bytes, for the read path.
    pub fn wire(&self) -> WireProfile<'_> {
        WireProfile(self)
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
/// A profile in its wire form (see [`Profile::wire`]).
pub struct WireProfile<'a>(&'a Profile);

impl Serialize for WireProfile<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("distinct_id", p.distinct_id.as_str())?;
        map.serialize_entry("properties", &p.properties)?;
        map.serialize_entry("status", p.status.as_str())?;
        map.serialize_entry("created_at", &format_time(p.created_at))?;
        map.serialize_entry("updated_at", &format_time(p.updated_at))?;
        map.serialize_entry("version", &p.version)?;
        for channel in Channel::ALL {
            if p.identities_on(channel).next().is_some() {
                map.serialize_entry(channel.key(), &WireIdentities(p, channel))?;
            }
        }
        map.end()
    }
}

/// The identities of one channel in their wire form ([`Identity::to_wire`]).
struct WireIdentities<'a>(&'a Profile, Channel);

impl Serialize for WireIdentities<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.identities_on(self.1).map(WireIdentity))
    }
}

struct WireIdentity<'a>(&'a Identity);

impl Serialize for WireIdentity<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let i = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("value", &i.value)?;
        if let Some(p) = &i.provider {
            map.serialize_entry("id_provider", p)?;
        }
        if let Some(b) = &i.bundle_id {
            map.serialize_entry("bundle_id", b)?;
        }
        if let Some(d) = &i.device_id {
            map.serialize_entry("device_id", d)?;
        }
        map.serialize_entry("status", &i.status)?;
        map.serialize_entry("perma_status", &i.perma_status)?;
        if let Some(f) = &i.perma_failure {
            map.serialize_entry("perma_reason", &f.reason)?;
            map.serialize_entry("perma_at", &format_time(f.at))?;
        }
        map.end()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::IdentityStatus;
    use serde_json::json;

    fn identity(channel: Channel, value: Value, provider: Option<&str>) -> Identity {
        Identity {
            channel,
            value,
            provider: provider.map(str::to_owned),
            bundle_id: provider.map(|_| "com.example".to_owned()),
            device_id: None,
            status: IdentityStatus::Active,
            perma_status: IdentityStatus::Disabled,
            perma_failure: None,
        }
    }

    /// The borrowed wire form is byte for byte the JSON of `to_wire`, key order included.
    #[test]
    fn the_borrowed_wire_form_is_the_same_json_as_to_wire() {
        let now = Utc.timestamp_micros(1_764_000_000_123_456).unwrap();
        let mut p = Profile::new(DistinctId::parse("ada").unwrap(), now);
        let bare = serde_json::to_string(&p.wire()).unwrap();
        assert_eq!(bare, p.to_wire().to_string());
        p.properties = json!({"z": 1, "name": "Ada", "a": {"b": [1, "x"]}, "$timezone": "UTC"})
            .as_object()
            .unwrap()
            .clone();
        p.version = 7;
        p.status = Status::Disabled;
        p.identities = vec![
            identity(Channel::Sms, json!("+447700900123"), None),
            identity(Channel::Email, json!("ada@example.com"), None),
            identity(Channel::Iospush, json!("tok"), Some("apns")),
            identity(Channel::Email, json!("ada2@example.com"), None),
            identity(Channel::Slack, json!({"channel": "C1"}), None),
        ];
        let wire = serde_json::to_string(&p.wire()).unwrap();
        assert_eq!(wire, p.to_wire().to_string());
        assert!(
            wire.contains(r#""$email":[{"value":"ada@example.com""#),
            "{wire}"
        );
    }
}
