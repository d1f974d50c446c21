//! Channels and the identities (addresses) a profile holds on them.

use crate::validate;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Whatsapp,
    Androidpush,
    Iospush,
    Webpush,
    Slack,
    #[serde(rename = "ms_teams")]
    MsTeams,
    Discord,
    Inbox,
}

impl Channel {
    pub const ALL: [Channel; 10] = [
        Channel::Email,
        Channel::Sms,
        Channel::Whatsapp,
        Channel::Androidpush,
        Channel::Iospush,
        Channel::Webpush,
        Channel::Slack,
        Channel::MsTeams,
        Channel::Discord,
        Channel::Inbox,
    ];

    /// The channel's name in preferences and filters: `email`, `ms_teams`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Androidpush => "androidpush",
            Channel::Iospush => "iospush",
            Channel::Webpush => "webpush",
            Channel::Slack => "slack",
            Channel::MsTeams => "ms_teams",
            Channel::Discord => "discord",
            Channel::Inbox => "inbox",
        }
    }

    /// The profile key that holds this channel's identities: `$email`, `$ms_teams`, …
    pub fn key(self) -> &'static str {
        match self {
            Channel::Email => "$email",
            Channel::Sms => "$sms",
            Channel::Whatsapp => "$whatsapp",
            Channel::Androidpush => "$androidpush",
            Channel::Iospush => "$iospush",
            Channel::Webpush => "$webpush",
            Channel::Slack => "$slack",
            Channel::MsTeams => "$ms_teams",
            Channel::Discord => "$discord",
            Channel::Inbox => "$inbox",
        }
    }

    pub fn from_key(key: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.key() == key)
    }

    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }

    fn default_provider(self) -> Option<&'static str> {
        match self {
            Channel::Androidpush => Some("fcm"),
            Channel::Iospush => Some("apns"),
            Channel::Webpush => Some("vapid"),
            // The wire's user object shows inbox identities with this provider (wire spec §2.2).
            Channel::Inbox => Some("suprsend"),
            _ => None,
        }
    }

    fn allowed_providers(self) -> &'static [&'static str] {
        match self {
            Channel::Androidpush => &["fcm", "xiaomi", "oppo"],
            // An iOS app using Firebase registers FCM tokens, not APNs device tokens.
            Channel::Iospush => &["apns", "fcm"],
            Channel::Webpush => &["vapid"],
            Channel::Inbox => &["suprsend"],
            _ => &[],
        }
    }
}

/// An identity's `status` or `perma_status`. Only an `active` identity is sent to.
/// `disabled` is SuprSend's value (and what Herald wrote for a dead address before `invalid`
/// existed); `invalid` is a `perma_status` only: a provider answered that the address is dead for
/// good, and the identity carries why and when ([`Identity::perma_failure`], see
/// [`crate::health`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdentityStatus {
    #[default]
    Active,
    Disabled,
    Invalid,
}

impl IdentityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStatus::Active => "active",
            IdentityStatus::Disabled => "disabled",
            IdentityStatus::Invalid => "invalid",
        }
    }
}

/// Why and when a provider found an identity dead for good: the provider's answer (`"twilio
/// answered 400 Bad Request: error 21211: …"`, `"fcm: UNREGISTERED"`) and the time it was heard.
/// Present exactly when `perma_status` is `invalid` ([`crate::health`] keeps it so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermaFailure {
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// One address on one channel. `value` is a string for most channels and an object for web push,
/// Slack and Teams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub channel: Channel,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default)]
    pub status: IdentityStatus,
    #[serde(default)]
    pub perma_status: IdentityStatus,
    /// Why `perma_status` is `invalid`; `None` otherwise. (Boxed: rare, and identities travel
    /// by value through dispatch.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perma_failure: Option<Box<PermaFailure>>,
}

/// Metadata sent beside a channel value (`$id_provider`, `$bundle_id`, `$device_id` siblings in an
/// operation, or keys of a push object in an upsert or recipient).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityMeta {
    pub provider: Option<String>,
    pub bundle_id: Option<String>,
    pub device_id: Option<String>,
}

impl Identity {
    /// Parses one raw value for `channel` into a normalised identity. The error is the rule broken.
    pub fn parse(channel: Channel, raw: &Value, meta: &IdentityMeta) -> Result<Identity, String> {
        let mut meta = meta.clone();
        let value = match channel {
            Channel::Email => {
                Value::String(validate::email(as_str(raw, "an email address string")?)?)
            }
            Channel::Sms | Channel::Whatsapp => {
                Value::String(validate::phone(as_str(raw, "a phone number string")?)?)
            }
            Channel::Inbox => Value::String(token(raw, "an inbox id")?),
            Channel::Androidpush | Channel::Iospush => Value::String(push_token(raw, &mut meta)?),
            Channel::Webpush => webpush(raw)?,
            Channel::Slack => slack(raw)?,
            Channel::MsTeams => ms_teams(raw)?,
            Channel::Discord => discord(raw)?,
        };
        let provider = match meta
            .provider
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            None => channel.default_provider().map(str::to_owned),
            Some(p) => {
                let p = p.to_lowercase();
                let allowed = channel.allowed_providers();
                if !allowed.is_empty() && !allowed.contains(&p.as_str()) {
                    return Err(format!(
                        "provider '{p}' is not one of {}",
                        allowed.join(", ")
                    ));
                }
                Some(p)
            }
        };
        Ok(Identity {
            channel,
            value,
            provider,
            bundle_id: meta.bundle_id.filter(|s| !s.trim().is_empty()),
            device_id: meta.device_id.filter(|s| !s.trim().is_empty()),
            status: IdentityStatus::Active,
            perma_status: IdentityStatus::Active,
            perma_failure: None,
        })
    }

    /// What makes two identities the same address: emails compare case-insensitively, web push by
    /// endpoint, objects by their canonical JSON.
    pub fn dedup_key(&self) -> String {
        match (&self.channel, &self.value) {
            (Channel::Email, Value::String(s)) => s.to_lowercase(),
            (Channel::Webpush, Value::Object(o)) => o
                .get("endpoint")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            (_, Value::String(s)) => s.clone(),
            (_, other) => canonical_json(other),
        }
    }

    /// The wire form inside a channel array: `{value, id_provider?, bundle_id?, device_id?,
    /// status, perma_status, perma_reason?, perma_at?}` (the last two when `invalid`).
    pub fn to_wire(&self) -> Value {
        let mut o = Map::new();
        o.insert("value".into(), self.value.clone());
        if let Some(p) = &self.provider {
            o.insert("id_provider".into(), Value::String(p.clone()));
        }
        if let Some(b) = &self.bundle_id {
            o.insert("bundle_id".into(), Value::String(b.clone()));
        }
        if let Some(d) = &self.device_id {
            o.insert("device_id".into(), Value::String(d.clone()));
        }
        o.insert(
            "status".into(),
            serde_json::to_value(self.status).unwrap_or_default(),
        );
        o.insert(
            "perma_status".into(),
            serde_json::to_value(self.perma_status).unwrap_or_default(),
        );
        if let Some(f) = &self.perma_failure {
            o.insert("perma_reason".into(), Value::String(f.reason.clone()));
            o.insert(
                "perma_at".into(),
                Value::String(crate::profile::format_time(f.at)),
            );
        }
        Value::Object(o)
    }
}

fn as_str<'a>(raw: &'a Value, what: &str) -> Result<&'a str, String> {
    raw.as_str()
        .ok_or_else(|| format!("must be {what}, got {}", type_name(raw)))
}

fn token(raw: &Value, what: &str) -> Result<String, String> {
    let s = as_str(raw, &format!("{what} string"))?.trim();
    if s.is_empty() || s.len() > 4096 {
        return Err(format!("{what} must be 1 to 4096 characters"));
    }
    Ok(s.to_owned())
}

/// A push token is a string, or an object `{token|value, provider|id_provider, bundle_id, device_id}`
/// as recipients and upserts send it.
fn push_token(raw: &Value, meta: &mut IdentityMeta) -> Result<String, String> {
    match raw {
        Value::Object(o) => {
            for key in o.keys() {
                if !matches!(
                    key.as_str(),
                    "token" | "value" | "provider" | "id_provider" | "bundle_id" | "device_id"
                ) {
                    return Err(format!("unknown key '{key}' in push token object"));
                }
            }
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            meta.provider = text("provider")
                .or_else(|| text("id_provider"))
                .or(meta.provider.take());
            meta.bundle_id = text("bundle_id").or(meta.bundle_id.take());
            meta.device_id = text("device_id").or(meta.device_id.take());
            let tok = o
                .get("token")
                .or_else(|| o.get("value"))
                .ok_or("push token object needs 'token'")?;
            token(tok, "a push token")
        }
        other => token(other, "a push token"),
    }
}

fn webpush(raw: &Value) -> Result<Value, String> {
    WebPushSubscription::parse(raw)?;
    Ok(raw.clone())
}

/// A web push subscription as the browser's `PushSubscription.toJSON()` gives it:
/// `{"endpoint", "keys": {"p256dh", "auth"}}` (other keys, such as `expirationTime`, are kept on
/// the identity and ignored here). The keys are what RFC 8291 encrypts to, so a subscription
/// whose keys could never encrypt is refused when it is stored, not when it is first sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPushSubscription {
    /// The push service URL to POST to (http(s)).
    pub endpoint: String,
    /// The user agent's P-256 public key, uncompressed: `0x04 ‖ X ‖ Y`.
    pub p256dh: [u8; 65],
    /// The authentication secret shared with the user agent.
    pub auth: [u8; 16],
}

impl WebPushSubscription {
    /// Parses a subscription object; the error is the rule broken (naming `endpoint`,
    /// `keys.p256dh` or `keys.auth`). Keys are base64url, padded or not.
    pub fn parse(raw: &Value) -> Result<WebPushSubscription, String> {
        let o = raw
            .as_object()
            .ok_or("must be a web push subscription object {endpoint, keys}")?;
        let endpoint = o
            .get("endpoint")
            .and_then(Value::as_str)
            .ok_or("web push subscription needs 'endpoint'")?;
        let endpoint = validate::url(endpoint, &[])?;
        let keys = o
            .get("keys")
            .and_then(Value::as_object)
            .ok_or("web push subscription needs 'keys' {p256dh, auth}")?;
        let key = |name: &str| -> Result<Vec<u8>, String> {
            let text = keys
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| format!("web push subscription needs keys.{name}"))?;
            base64url(text).ok_or_else(|| format!("keys.{name} must be base64url"))
        };
        let p256dh: [u8; 65] = key("p256dh")?
            .try_into()
            .ok()
            .filter(|point: &[u8; 65]| point[0] == 0x04)
            .ok_or("keys.p256dh must be an uncompressed P-256 public key (65 bytes, 0x04 first)")?;
        let auth: [u8; 16] = key("auth")?
            .try_into()
            .map_err(|_| "keys.auth must be a 16-byte authentication secret")?;
        Ok(WebPushSubscription {
            endpoint,
            p256dh,
            auth,
        })
    }
}

/// Decodes base64url with or without padding (the standard alphabet's `+` and `/` are taken
/// too: stored subscriptions are not always re-encoded with care).
fn base64url(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let normalised: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    LENIENT.decode(normalised).ok()
}

fn slack(raw: &Value) -> Result<Value, String> {
    let o = raw
        .as_object()
        .ok_or("must be an object with email, user_id, channel_id or incoming_webhook")?;
    let mut addressed = false;
    for (k, v) in o {
        let s = v.as_str();
        match k.as_str() {
            "access_token" => {
                if !s.is_some_and(|s| s.starts_with("xox")) {
                    return Err("access_token must be a Slack token starting with xox".into());
                }
            }
            "channel_id" => {
                addressed = true;
                if !s.is_some_and(|s| matches_id(s, &['c', 'C'])) {
                    return Err("channel_id must look like C0123ABC".into());
                }
            }
            "user_id" => {
                addressed = true;
                if !s.is_some_and(|s| matches_id(s, &['u', 'U', 'w', 'W'])) {
                    return Err("user_id must look like U0123ABC".into());
                }
            }
            "email" => {
                addressed = true;
                validate::email(s.ok_or("email must be a string")?)?;
            }
            "incoming_webhook" => {
                addressed = true;
                webhook_url(v, &["https://hooks.slack.com/"])?;
            }
            other => return Err(format!("unknown key '{other}' in Slack identity")),
        }
    }
    if !addressed {
        return Err(
            "a Slack identity needs one of email, user_id, channel_id, incoming_webhook".into(),
        );
    }
    if o.contains_key("incoming_webhook") || o.contains_key("access_token") {
        Ok(raw.clone())
    } else {
        Err("a Slack identity needs access_token unless it is an incoming_webhook".into())
    }
}

fn ms_teams(raw: &Value) -> Result<Value, String> {
    let o = raw.as_object().ok_or("must be an object with tenant_id, service_url and a conversation_id, user_id or incoming_webhook")?;
    let mut addressed = false;
    for (k, v) in o {
        match k.as_str() {
            "tenant_id" | "conversation_id" | "user_id" => {
                if v.as_str().is_none_or(str::is_empty) {
                    return Err(format!("{k} must be a non-empty string"));
                }
                addressed |= k != "tenant_id";
            }
            "service_url" => {
                validate::url(
                    v.as_str().ok_or("service_url must be a string")?,
                    &["https://smba.trafficmanager.net/"],
                )?;
            }
            "incoming_webhook" => {
                addressed = true;
                webhook_url(v, &[])?;
            }
            other => return Err(format!("unknown key '{other}' in MS Teams identity")),
        }
    }
    if !addressed {
        return Err(
            "an MS Teams identity needs conversation_id, user_id or incoming_webhook".into(),
        );
    }
    Ok(raw.clone())
}

/// Herald's addition: a Discord incoming-webhook URL, as a string or `{incoming_webhook: {url}}`.
fn discord(raw: &Value) -> Result<Value, String> {
    const PREFIXES: &[&str] = &[
        "https://discord.com/api/webhooks/",
        "https://discordapp.com/api/webhooks/",
    ];
    match raw {
        Value::String(s) => Ok(Value::String(validate::url(s, PREFIXES)?)),
        Value::Object(_) => {
            let hook = raw
                .get("incoming_webhook")
                .ok_or("a Discord identity is a webhook URL")?;
            Ok(Value::String(webhook_url(hook, PREFIXES)?))
        }
        other => Err(format!(
            "must be a Discord webhook URL, got {}",
            type_name(other)
        )),
    }
}

fn webhook_url(v: &Value, prefixes: &[&str]) -> Result<String, String> {
    let url = v
        .get("url")
        .and_then(Value::as_str)
        .ok_or("incoming_webhook must be {\"url\": \"https://...\"}")?;
    validate::url(url, prefixes)
}

fn matches_id(s: &str, first: &[char]) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| first.contains(&c))
        && s.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric())
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON with object keys sorted at every level, for comparing values regardless of key order.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<_> = o.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&o[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(c: Channel, v: Value) -> Result<Identity, String> {
        Identity::parse(c, &v, &IdentityMeta::default())
    }

    #[test]
    fn push_tokens_take_provider_and_bundle() {
        let meta = IdentityMeta {
            provider: Some("FCM".into()),
            bundle_id: Some("com.x".into()),
            device_id: None,
        };
        let id = Identity::parse(Channel::Androidpush, &json!("tok"), &meta).unwrap();
        assert_eq!(id.provider.as_deref(), Some("fcm"));
        assert_eq!(id.bundle_id.as_deref(), Some("com.x"));
        let obj = parse(
            Channel::Iospush,
            json!({"token": "t", "provider": "apns", "device_id": "d1"}),
        )
        .unwrap();
        assert_eq!(
            (obj.value, obj.device_id.as_deref()),
            (json!("t"), Some("d1"))
        );
        let firebase = parse(Channel::Iospush, json!({"token": "t", "provider": "fcm"})).unwrap();
        assert_eq!(firebase.provider.as_deref(), Some("fcm"));
        assert_eq!(
            parse(
                Channel::Iospush,
                json!({"token": "t", "provider": "xiaomi"})
            )
            .unwrap_err(),
            "provider 'xiaomi' is not one of apns, fcm"
        );
        assert!(parse(Channel::Androidpush, json!("")).is_err());
        assert_eq!(
            parse(Channel::Androidpush, json!("x"))
                .unwrap()
                .provider
                .as_deref(),
            Some("fcm")
        );
    }

    #[test]
    fn slack_rules() {
        assert!(parse(
            Channel::Slack,
            json!({"email": "a@b.com", "access_token": "xoxb-1"})
        )
        .is_ok());
        assert!(parse(
            Channel::Slack,
            json!({"channel_id": "C123", "access_token": "xoxb-1"})
        )
        .is_ok());
        assert!(parse(
            Channel::Slack,
            json!({"incoming_webhook": {"url": "https://hooks.slack.com/services/x"}})
        )
        .is_ok());
        assert!(
            parse(Channel::Slack, json!({"email": "a@b.com"})).is_err(),
            "needs a token"
        );
        assert!(parse(
            Channel::Slack,
            json!({"channel_id": "X1", "access_token": "xoxb"})
        )
        .is_err());
        assert!(parse(
            Channel::Slack,
            json!({"user_id": "U1", "access_token": "bad"})
        )
        .is_err());
        assert!(parse(
            Channel::Slack,
            json!({"user_id": "U1", "access_token": "xoxb", "extra": 1})
        )
        .is_err());
        assert!(parse(
            Channel::Slack,
            json!({"incoming_webhook": {"url": "https://evil.com/x"}})
        )
        .is_err());
    }

    #[test]
    fn teams_webpush_discord() {
        assert!(parse(Channel::MsTeams, json!({"tenant_id": "t", "service_url": "https://smba.trafficmanager.net/amer", "conversation_id": "c"})).is_ok());
        assert!(parse(
            Channel::MsTeams,
            json!({"tenant_id": "t", "service_url": "https://x.com", "conversation_id": "c"})
        )
        .is_err());
        assert!(parse(Channel::MsTeams, json!({"tenant_id": "t"})).is_err());
        let sub = json!({"endpoint": "https://push.example/abc", "keys": {"p256dh": UA_PUBLIC, "auth": AUTH}});
        assert_eq!(
            parse(Channel::Webpush, sub).unwrap().dedup_key(),
            "https://push.example/abc"
        );
        assert!(parse(Channel::Webpush, json!({"endpoint": "https://p"})).is_err());
        assert!(parse(
            Channel::Discord,
            json!("https://discord.com/api/webhooks/1/abc")
        )
        .is_ok());
        assert!(parse(
            Channel::Discord,
            json!({"incoming_webhook": {"url": "https://discord.com/api/webhooks/1/a"}})
        )
        .is_ok());
        assert!(parse(Channel::Discord, json!("https://example.com/hook")).is_err());
    }

    // RFC 8291 Appendix A: the user agent's public key and authentication secret.
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    #[test]
    fn web_push_subscriptions_carry_usable_keys() {
        let sub = WebPushSubscription::parse(&json!({
            "endpoint": " https://push.example/abc ", "expirationTime": null,
            "keys": {"p256dh": UA_PUBLIC, "auth": AUTH}
        }))
        .unwrap();
        assert_eq!(sub.endpoint, "https://push.example/abc");
        assert_eq!(sub.p256dh[0], 0x04);
        assert_eq!(&sub.auth[..4], &[0x05, 0x30, 0x59, 0x32]);
        // Padded, or in the standard alphabet, the same keys.
        let padded = WebPushSubscription::parse(&json!({
            "endpoint": "https://push.example/abc",
            "keys": {"p256dh": format!("{UA_PUBLIC}="), "auth": format!("{}==", AUTH.replace('_', "/"))}
        }))
        .unwrap();
        assert_eq!(padded, sub);
        for (keys, rule) in [
            (
                json!({"p256dh": "k", "auth": AUTH}),
                "keys.p256dh must be base64url",
            ),
            (
                json!({"p256dh": AUTH, "auth": AUTH}),
                "keys.p256dh must be an uncompressed",
            ),
            (
                json!({"p256dh": UA_PUBLIC, "auth": UA_PUBLIC}),
                "keys.auth must be a 16-byte",
            ),
            (json!({"p256dh": UA_PUBLIC}), "needs keys.auth"),
            (json!({"p256dh": " ", "auth": AUTH}), "needs keys.p256dh"),
        ] {
            let raw = json!({"endpoint": "https://push.example/abc", "keys": keys});
            let err = parse(Channel::Webpush, raw).unwrap_err();
            assert!(err.contains(rule), "{err} should say {rule}");
        }
        let compressed = format!("A{}", &UA_PUBLIC[1..]);
        assert!(WebPushSubscription::parse(&json!({
            "endpoint": "https://push.example/abc", "keys": {"p256dh": compressed, "auth": AUTH}
        }))
        .unwrap_err()
        .contains("uncompressed"));
        assert!(parse(
            Channel::Webpush,
            json!({"endpoint": "nope", "keys": {"p256dh": UA_PUBLIC, "auth": AUTH}})
        )
        .unwrap_err()
        .contains("http(s) URL"));
    }

    #[test]
    fn email_dedup_is_case_insensitive() {
        let a = parse(Channel::Email, json!("A@x.com")).unwrap();
        let b = parse(Channel::Email, json!("a@X.com")).unwrap();
        assert_eq!(a.dedup_key(), b.dedup_key());
        assert_eq!(a.value, json!("A@x.com"));
    }
}
