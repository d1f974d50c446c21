//! Android push (and any FCM registration token: iOS apps using Firebase register them too)
//! through FCM HTTP v1. The service account's key
//! signs an RS256 JWT (`iss` its `client_email`, `scope` firebase.messaging, `aud` its
//! `token_uri`, one hour), exchanged at `token_uri` (`grant_type`
//! `urn:ietf:params:oauth:grant-type:jwt-bearer`) for an OAuth access token. The token is kept
//! and shared by every send until a minute before it expires (a 401 from FCM drops it and the
//! send is tried once more with a new one); then `POST
//! {endpoint}/v1/projects/{project_id}/messages:send` with the bearer token.

use crate::config::Secret;
use crate::http::{parse_url, Answer, Http, Origin};
use crate::jwt::{now_seconds, Rs256};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{token_kind, Content, Delivery, Outgoing, Provider, Push};
use herald_core::error::Invalid;
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

pub const DEFAULT_ENDPOINT: &str = "https://fcm.googleapis.com";
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The OAuth scope FCM HTTP v1 asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// An access token is used until this long before it expires.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// How long the signed assertion (the JWT exchanged for a token) is valid.
const ASSERTION_LIFETIME_SECS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// The service-account key file from the Firebase console, as JSON (write-only).
    pub service_account: ServiceAccount,
    /// Replaces `https://fcm.googleapis.com` (a proxy, or a test's fake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl FcmConfig {
    pub const SECRETS: &'static [&'static str] = &["service_account"];
}

/// The fields of a Google service-account key file that FCM needs; the file's other fields
/// (`client_id`, `auth_uri`, …) are accepted and not kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceAccount {
    /// `service_account` when given.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub project_id: String,
    /// Sent as the assertion's `kid` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_id: Option<String>,
    /// PEM, PKCS#8 (`-----BEGIN PRIVATE KEY-----`).
    pub private_key: Secret,
    pub client_email: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    DEFAULT_TOKEN_URI.to_owned()
}

/// An access token and the moment it stops being used.
struct AccessToken {
    value: Secret,
    good_until: Instant,
}

pub struct FcmProvider {
    key: Rs256,
    key_id: Option<String>,
    client_email: String,
    token_url: Url,
    send_url: Url,
    http: Http,
    /// Shared by every send; held across an exchange, so concurrent sends wait for one.
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

impl FcmProvider {
    pub fn new(config: FcmConfig, http: Http) -> Result<Self, Invalid> {
        let account = config.service_account;
        let at = |field: &str| format!("service_account.{field}");
        if account
            .kind
            .as_deref()
            .is_some_and(|k| k != "service_account")
        {
            return Err(Invalid::new(
                at("type"),
                "must be service_account (a service-account key file)",
            ));
        }
        let project = account.project_id.trim();
        if project.is_empty()
            || !project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
        {
            return Err(Invalid::new(
                at("project_id"),
                "must be a Firebase project id (letters, digits, -)",
            ));
        }
        if !account.client_email.contains('@') {
            return Err(Invalid::new(
                at("client_email"),
                "must be the service account's email address",
            ));
        }
        let key = Rs256::from_pem(&at("private_key"), account.private_key.expose())?;
        let token_url = parse_url(&at("token_uri"), &account.token_uri)?;
        let endpoint = parse_url(
            "endpoint",
            config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
        )?;
        let send_url = endpoint
            .join(&format!("/v1/projects/{project}/messages:send"))
            .map_err(|e| Invalid::new(at("project_id"), e.to_string()))?;
        Ok(FcmProvider {
            key,
            key_id: account.private_key_id.filter(|k| !k.trim().is_empty()),
            client_email: account.client_email,
            token_url,
            send_url,
            http,
            token: tokio::sync::Mutex::default(),
        })
    }

    /// The access token to send with: the kept one while it is good, else a new one.
    async fn access_token(&self) -> Result<Secret, Delivery> {
        let mut kept = self.token.lock().await;
        if let Some(token) = kept.as_ref().filter(|t| Instant::now() < t.good_until) {
            return Ok(token.value.clone());
        }
        let token = self.exchange().await?;
        let value = token.value.clone();
        *kept = Some(token);
        Ok(value)
    }

    /// Forgets `used` if it is still the kept token (FCM refused it).
    async fn drop_token(&self, used: &Secret) {
        let mut kept = self.token.lock().await;
        if kept.as_ref().is_some_and(|t| t.value == *used) {
            *kept = None;
        }
    }

    /// The OAuth 2.0 JWT-bearer grant (RFC 7523) at the account's `token_uri`.
    async fn exchange(&self) -> Result<AccessToken, Delivery> {
        let iat = now_seconds();
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_url.as_str(),
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        let mut header = json!({"typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let assertion = self
            .key
            .sign(header, &claims)
            .map_err(|reason| Delivery::Failed {
                reason: format!("fcm: {reason}"),
                identity_invalid: false,
            })?;
        let started = Instant::now();
        let request = self
            .http
            .request(Method::POST, self.token_url.clone(), Origin::Operator)?
            .form(&[("grant_type", GRANT_TYPE), ("assertion", &assertion)]);
        let answer = self.http.execute(request).await?;
        let json = answer.json();
        let token = json
            .as_ref()
            .and_then(|j| j["access_token"].as_str())
            .filter(|t| !t.is_empty());
        match token {
            Some(token) if answer.status.is_success() => {
                let lifetime = json
                    .as_ref()
                    .and_then(|j| j["expires_in"].as_u64())
                    .unwrap_or(3600);
                let usable = Duration::from_secs(lifetime).saturating_sub(EXPIRY_MARGIN);
                Ok(AccessToken {
                    value: Secret::new(token),
                    good_until: started + usable,
                })
            }
            _ if answer.is_retryable() => Err(Delivery::Retry {
                reason: format!(
                    "fcm: the token exchange answered {}: {}",
                    answer.status,
                    answer.snippet()
                ),
                after: answer.retry_after,
            }),
            _ => Err(Delivery::Failed {
                reason: format!(
                    "fcm: the service account's token exchange was refused ({}): {}",
                    answer.status,
                    answer.snippet()
                ),
                identity_invalid: false,
            }),
        }
    }

    async fn post(&self, body: &Value) -> Result<Answer, Delivery> {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let request = self
                .http
                .request(Method::POST, self.send_url.clone(), Origin::Operator)?
                .bearer_auth(token.expose())
                .json(body);
            let answer = self.http.execute(request).await?;
            if answer.status == StatusCode::UNAUTHORIZED && !retried {
                self.drop_token(&token).await;
                retried = true;
                continue;
            }
            return Ok(answer);
        }
    }
}

#[async_trait]
impl Provider for FcmProvider {
    fn channel(&self) -> Channel {
        Channel::Androidpush
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let identity = &message.identity;
        let (push, platform) = match (&message.content, identity.channel) {
            (Content::Androidpush(push), Channel::Androidpush) => (push, Platform::Android),
            (Content::Iospush(push), Channel::Iospush) => (push, Platform::Ios),
            // The content must be for the identity's own platform.
            (other, channel) => {
                let expected = match channel {
                    Channel::Iospush => Channel::Iospush,
                    _ => Channel::Androidpush,
                };
                return crate::wrong_content("fcm", expected, other);
            }
        };
        if let Some(other) = token_kind(identity).filter(|kind| *kind != "fcm") {
            return Delivery::Failed {
                reason: format!("fcm does not deliver {other} tokens"),
                identity_invalid: false,
            };
        }
        let Some(token) = message
            .identity
            .value
            .as_str()
            .filter(|t| !t.trim().is_empty())
        else {
            return crate::unusable_identity("an FCM registration token");
        };
        match self.post(&payload(token, push, platform)).await {
            Ok(answer) => outcome(&answer),
            Err(outcome) => outcome,
        }
    }
}

/// Which app an FCM token belongs to: the message carries that platform's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Android,
    /// An iOS app using Firebase: FCM hands the message to APNs.
    Ios,
}

/// The `messages:send` body: the notification, `data` as FCM wants it (string values; other
/// JSON values encoded as JSON text; `url` added unless the data has one), and the platform's
/// block: for Android the tap's target as the notification's `click_action`; for iOS an `apns`
/// block whose payload is the alert APNs shows (`aps.alert` with the title and body,
/// `mutable-content` with an image, for the app's notification service extension) and the image
/// in `fcm_options`.
pub fn payload(token: &str, push: &Push, platform: Platform) -> Value {
    let mut notification = Map::new();
    for (key, value) in [
        ("title", Some(&push.title)),
        ("body", Some(&push.body)),
        ("image", push.image.as_ref()),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            notification.insert(key.into(), json!(v));
        }
    }
    let mut message = Map::new();
    message.insert("token".into(), json!(token));
    message.insert("notification".into(), Value::Object(notification));
    let mut data: Map<String, Value> = match &push.data {
        Some(Value::Object(fields)) => fields
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(text))
            })
            .collect(),
        _ => Map::new(),
    };
    if let Some(url) = &push.url {
        data.entry("url").or_insert_with(|| json!(url));
    }
    match platform {
        Platform::Android => {
            if let Some(url) = &push.url {
                message.insert(
                    "android".into(),
                    json!({"notification": {"click_action": url}}),
                );
            }
        }
        Platform::Ios => {
            message.insert("apns".into(), apns_block(push));
        }
    }
    if !data.is_empty() {
        message.insert("data".into(), Value::Object(data));
    }
    json!({ "message": message })
}

/// The `apns` block of an iOS message (FCM v1's `ApnsConfig`): `payload.aps.alert` and, with an
/// image, `mutable-content` and `fcm_options.image`.
fn apns_block(push: &Push) -> Value {
    let mut alert = Map::new();
    for (key, value) in [("title", &push.title), ("body", &push.body)] {
        if !value.is_empty() {
            alert.insert(key.into(), json!(value));
        }
    }
    let mut aps = json!({ "alert": alert });
    let mut block = Map::new();
    if let Some(image) = push.image.as_ref().filter(|i| !i.is_empty()) {
        aps["mutable-content"] = json!(1);
        block.insert("fcm_options".into(), json!({ "image": image }));
    }
    block.insert("payload".into(), json!({ "aps": aps }));
    Value::Object(block)
}

fn outcome(answer: &Answer) -> Delivery {
    let json = answer.json();
    if answer.status.is_success() {
        let name = json.as_ref().and_then(|j| j["name"].as_str());
        return Delivery::Sent {
            provider_id: name.map(str::to_owned),
        };
    }
    let error = json.as_ref().map(|j| &j["error"]).unwrap_or(&Value::Null);
    let message = error["message"].as_str().unwrap_or_default();
    let status = error["status"].as_str().unwrap_or_default();
    let details = error["details"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let code = details
        .iter()
        .find_map(|d| d["errorCode"].as_str())
        .unwrap_or(status);
    match (answer.status.as_u16(), code) {
        (404, "UNREGISTERED") => {
            answer.identity_invalid("fcm", &format!("UNREGISTERED: {message}"))
        }
        (400, "INVALID_ARGUMENT") if names_the_token(message, details) => {
            answer.identity_invalid("fcm", &format!("INVALID_ARGUMENT: {message}"))
        }
        _ => answer.default_outcome("fcm"),
    }
}

/// Whether an `INVALID_ARGUMENT` is about the registration token (and not, say, the data).
fn names_the_token(message: &str, details: &[Value]) -> bool {
    let violation = details.iter().any(|d| {
        d["fieldViolations"]
            .as_array()
            .is_some_and(|vs| vs.iter().any(|v| v["field"] == "message.token"))
    });
    violation || message.to_lowercase().contains("registration token")
}
