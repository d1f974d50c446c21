//! WhatsApp through Meta's Cloud API: `POST {base_url}/{api_version}/{phone_number_id}/messages`
//! with a bearer token and `{"messaging_product":"whatsapp","to":…,"type":"text","text":{"body":…}}`;
//! the answer's `messages[0].id` is the message id.

use crate::config::Secret;
use crate::http::{parse_url, Answer, Http, Origin};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use herald_core::error::Invalid;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_API_VERSION: &str = "v19.0";

/// Cloud API error codes that mean the recipient cannot get WhatsApp messages: 131026 message
/// undeliverable (not a WhatsApp user, or an old client), 131030 recipient not in the test
/// number's allowed list.
const INVALID_RECIPIENT_CODES: &[u64] = &[131026, 131030];
/// Throttling codes, answered with HTTP 400 but worth a retry: 4 and 80007 (rate limits),
/// 130429 (throughput), 131048 (spam rate limit), 131056 (pair rate limit).
const THROTTLED_CODES: &[u64] = &[4, 80007, 130429, 131048, 131056];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaWhatsappConfig {
    pub phone_number_id: String,
    pub access_token: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

impl MetaWhatsappConfig {
    pub const SECRETS: &'static [&'static str] = &["access_token"];
}

pub struct MetaWhatsappProvider {
    messages_url: Url,
    access_token: Secret,
    http: Http,
}

impl MetaWhatsappProvider {
    pub fn new(config: MetaWhatsappConfig, http: Http) -> Result<Self, Invalid> {
        let id = config.phone_number_id.trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(Invalid::new(
                "phone_number_id",
                "must be the numeric phone number id",
            ));
        }
        if config.access_token.expose().is_empty() {
            return Err(Invalid::new("access_token", "must not be empty"));
        }
        let version = config.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        if !(version.starts_with('v')
            && version[1..].chars().all(|c| c.is_ascii_digit() || c == '.'))
        {
            return Err(Invalid::new("api_version", "must look like v19.0"));
        }
        let base = parse_url(
            "base_url",
            config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let messages_url = base
            .join(&format!("/{version}/{id}/messages"))
            .map_err(|e| Invalid::new("phone_number_id", e.to_string()))?;
        Ok(MetaWhatsappProvider {
            messages_url,
            access_token: config.access_token,
            http,
        })
    }
}

#[async_trait]
impl Provider for MetaWhatsappProvider {
    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::Whatsapp { text } = &message.content else {
            return crate::wrong_content("meta_whatsapp", Channel::Whatsapp, &message.content);
        };
        let Some(number) = message.identity.value.as_str() else {
            return crate::unusable_identity("a phone number string");
        };
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": number,
            "type": "text",
            "text": {"body": text},
        });
        let request =
            match self
                .http
                .request(Method::POST, self.messages_url.clone(), Origin::Operator)
            {
                Ok(request) => request.bearer_auth(self.access_token.expose()).json(&body),
                Err(outcome) => return outcome,
            };
        match self.http.execute(request).await {
            Ok(answer) => outcome(&answer),
            Err(outcome) => outcome,
        }
    }
}

fn outcome(answer: &Answer) -> Delivery {
    let json = answer.json();
    if answer.status.is_success() {
        let id = json
            .as_ref()
            .and_then(|j| j["messages"][0]["id"].as_str())
            .map(str::to_owned);
        return Delivery::Sent { provider_id: id };
    }
    let error = json.as_ref().map(|j| &j["error"]);
    let code = error.and_then(|e| e["code"].as_u64());
    let message = error
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default();
    match code {
        Some(code) if INVALID_RECIPIENT_CODES.contains(&code) => {
            answer.identity_invalid("meta_whatsapp", &format!("error {code}: {message}"))
        }
        Some(code) if THROTTLED_CODES.contains(&code) => Delivery::Retry {
            reason: format!("meta_whatsapp throttled: error {code}: {message}"),
            after: answer.retry_after,
        },
        _ => answer.default_outcome("meta_whatsapp"),
    }
}
