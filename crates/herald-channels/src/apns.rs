//! iOS push through APNs: HTTP/2 (nothing else is accepted) to `POST
//! {endpoint}/3/device/{token}`, authenticated with a provider token: an ES256 JWT (`kid` the
//! key id, `iss` the team id, `iat`) signed with the `.p8` key, kept and reused for 50 minutes
//! (Apple refuses tokens older than an hour and too-frequent new ones).

use crate::config::Secret;
use crate::http::{parse_url, Answer, Http, Origin};
use crate::jwt::{now_seconds, Es256};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{token_kind, Content, Delivery, Outgoing, Provider, Push};
use herald_core::error::Invalid;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const PRODUCTION_ENDPOINT: &str = "https://api.push.apple.com";
pub const SANDBOX_ENDPOINT: &str = "https://api.sandbox.push.apple.com";
/// A provider token is reused this long, then a new one is signed.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(50 * 60);

/// APNs `reason`s that mean the device token itself is dead (for this app).
const DEAD_TOKEN_REASONS: &[&str] = &["BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered"];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApnsEnvironment {
    #[default]
    Production,
    Sandbox,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsConfig {
    /// The Apple Developer team id (10 characters).
    pub team_id: String,
    /// The id of the APNs auth key (10 characters).
    pub key_id: String,
    /// The `.p8` key file's contents (PEM, PKCS#8, P-256); write-only.
    pub private_key: Secret,
    /// The topic for identities that carry no `bundle_id` of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    /// Which APNs: `production` (the default) or `sandbox` (development builds).
    #[serde(default)]
    pub environment: ApnsEnvironment,
    /// Replaces the environment's `https://api(.sandbox).push.apple.com` (a proxy, or a test's
    /// fake: `http://` speaks h2c with prior knowledge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl ApnsConfig {
    pub const SECRETS: &'static [&'static str] = &["private_key"];
}

pub struct ApnsProvider {
    key: Es256,
    key_id: String,
    team_id: String,
    bundle_id: Option<String>,
    endpoint: Url,
    /// HTTP/2 only.
    http: Http,
    /// The provider token and when it was signed.
    token: Mutex<Option<(Secret, Instant)>>,
}

/// Apple's team and key ids: 10 letters or digits.
fn apple_id(field: &str, value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    if value.len() != 10 || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Invalid::new(field, "must be 10 letters or digits"));
    }
    Ok(value.to_owned())
}

impl ApnsProvider {
    pub fn new(config: ApnsConfig, http: &Http) -> Result<Self, Invalid> {
        let team_id = apple_id("team_id", &config.team_id)?;
        let key_id = apple_id("key_id", &config.key_id)?;
        let key = Es256::from_pem("private_key", config.private_key.expose())?;
        let bundle_id = match config.bundle_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(b) if b.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(Invalid::new("bundle_id", "must be an app's bundle id"))
            }
            Some(b) => Some(b.to_owned()),
        };
        let default = match config.environment {
            ApnsEnvironment::Production => PRODUCTION_ENDPOINT,
            ApnsEnvironment::Sandbox => SANDBOX_ENDPOINT,
        };
        let endpoint = parse_url("endpoint", config.endpoint.as_deref().unwrap_or(default))?;
        Ok(ApnsProvider {
            key,
            key_id,
            team_id,
            bundle_id,
            endpoint,
            http: http.http2_only()?,
            token: Mutex::default(),
        })
    }

    /// The provider token: the kept one while younger than [`TOKEN_LIFETIME`], else a new one.
    fn provider_token(&self) -> Result<Secret, Delivery> {
        let mut kept = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, _)) = kept
            .as_ref()
            .filter(|(_, made)| made.elapsed() < TOKEN_LIFETIME)
        {
            return Ok(token.clone());
        }
        let token = self
            .key
            .sign(
                json!({"kid": self.key_id}),
                &json!({"iss": self.team_id, "iat": now_seconds()}),
            )
            .map_err(|reason| Delivery::Failed {
                reason: format!("apns: {reason}"),
                identity_invalid: false,
            })?;
        let token = Secret::new(token);
        *kept = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    /// Forgets `used` if it is still the kept token (APNs called it expired).
    fn drop_token(&self, used: &Secret) {
        let mut kept = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if kept.as_ref().is_some_and(|(t, _)| t == used) {
            *kept = None;
        }
    }
}

#[async_trait]
impl Provider for ApnsProvider {
    fn channel(&self) -> Channel {
        Channel::Iospush
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::Iospush(push) = &message.content else {
            return crate::wrong_content("apns", Channel::Iospush, &message.content);
        };
        if let Some(other) = token_kind(&message.identity).filter(|kind| *kind != "apns") {
            return Delivery::Failed {
                reason: format!("apns does not deliver {other} tokens"),
                identity_invalid: false,
            };
        }
        let Some(device) = message
            .identity
            .value
            .as_str()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return crate::unusable_identity("an APNs device token");
        };
        let Some(topic) = message
            .identity
            .bundle_id
            .as_deref()
            .or(self.bundle_id.as_deref())
        else {
            return Delivery::Failed {
                reason: "apns: no topic: the identity has no bundle_id and the provider none"
                    .into(),
                identity_invalid: false,
            };
        };
        let mut url = self.endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend(["3", "device", device]);
        }
        let token = match self.provider_token() {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let mut request = match self.http.request(Method::POST, url, Origin::Operator) {
            Ok(request) => request
                .header("authorization", format!("bearer {}", token.expose()))
                .header("apns-topic", topic)
                .header("apns-push-type", "alert")
                .json(&payload(push)),
            Err(outcome) => return outcome,
        };
        if is_uuid(&message.message_id) {
            request = request.header("apns-id", &message.message_id);
        }
        let answer = match self.http.execute(request).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        if reason(&answer).as_deref() == Some("ExpiredProviderToken") {
            self.drop_token(&token);
        }
        outcome(&answer)
    }
}

/// The notification: `aps.alert` with the title and body (`mutable-content` when there is an
/// image, for a notification service extension to fetch it), the data's keys beside `aps`, then
/// `url` and `image`.
pub fn payload(push: &Push) -> Value {
    let mut alert = Map::new();
    if !push.title.is_empty() {
        alert.insert("title".into(), json!(push.title));
    }
    if !push.body.is_empty() {
        alert.insert("body".into(), json!(push.body));
    }
    let mut aps = json!({ "alert": alert });
    if push.image.is_some() {
        aps["mutable-content"] = json!(1);
    }
    let mut out = Map::new();
    out.insert("aps".into(), aps);
    if let Some(Value::Object(data)) = &push.data {
        for (k, v) in data.iter().filter(|(k, _)| *k != "aps") {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(url) = &push.url {
        out.insert("url".into(), json!(url));
    }
    if let Some(image) = &push.image {
        out.insert("image".into(), json!(image));
    }
    Value::Object(out)
}

/// The `reason` of an APNs error answer (`{"reason": "BadDeviceToken"}`).
fn reason(answer: &Answer) -> Option<String> {
    answer
        .json()
        .and_then(|j| j["reason"].as_str().map(str::to_owned))
}

fn outcome(answer: &Answer) -> Delivery {
    if answer.status.is_success() {
        return Delivery::Sent {
            provider_id: answer.header("apns-id").map(str::to_owned),
        };
    }
    let reason = reason(answer).unwrap_or_default();
    match answer.status.as_u16() {
        410 => answer.identity_invalid("apns", &format!("{reason} (the device token is gone)")),
        400 if DEAD_TOKEN_REASONS.contains(&reason.as_str()) => {
            answer.identity_invalid("apns", &reason)
        }
        // Signed again on the next attempt.
        403 if reason == "ExpiredProviderToken" => Delivery::Retry {
            reason: format!("apns answered {}: {reason}", answer.status),
            after: answer.retry_after,
        },
        _ => answer.default_outcome("apns"),
    }
}

/// Whether `id` is a UUID in its canonical text form (what `apns-id` takes).
fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_recognised() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("msg_01"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    }

    #[test]
    fn the_payload_puts_data_beside_aps() {
        let push = Push {
            title: "Hi".into(),
            body: String::new(),
            data: Some(json!({"order": 42, "aps": "ignored"})),
            url: Some("https://x.example/o/42".into()),
            image: Some("https://x.example/i.png".into()),
        };
        assert_eq!(
            payload(&push),
            json!({"aps": {"alert": {"title": "Hi"}, "mutable-content": 1}, "order": 42,
                   "url": "https://x.example/o/42", "image": "https://x.example/i.png"})
        );
    }
}
