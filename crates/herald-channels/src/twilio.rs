//! SMS and WhatsApp through Twilio's Messages API:
//! `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, form-encoded `To`, `From`,
//! `Body`, HTTP Basic auth with the account SID and auth token; `201 Created` carries the `sid`.

use crate::config::Secret;
use crate::http::{parse_url, Answer, Http, Origin};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use herald_core::error::Invalid;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Twilio error codes that mean the recipient's number itself cannot be messaged: 21211 invalid
/// 'To' number, 21217 number not valid, 21610 recipient unsubscribed (replied STOP), 21612 'To'
/// not reachable, 21614 'To' not a mobile number. (21408, no permission for the region, is the
/// account's setting, not the number's, so it fails without marking the identity.)
const INVALID_RECIPIENT_CODES: &[u64] = &[21211, 21217, 21610, 21612, 21614];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    /// The sender: a Twilio number in E.164 (`whatsapp:` is added on the WhatsApp channel) or an
    /// alphanumeric sender id. One of `from` and `messaging_service_sid` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_service_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

impl TwilioConfig {
    pub const SECRETS: &'static [&'static str] = &["auth_token"];
}

pub struct TwilioProvider {
    channel: Channel,
    messages_url: Url,
    config: TwilioConfig,
    http: Http,
}

impl TwilioProvider {
    /// A provider for `channel` (SMS or WhatsApp).
    pub fn new(channel: Channel, config: TwilioConfig, http: Http) -> Result<Self, Invalid> {
        if !matches!(channel, Channel::Sms | Channel::Whatsapp) {
            return Err(Invalid::new(
                "kind",
                "twilio sends on sms and whatsapp only",
            ));
        }
        let sid = config.account_sid.trim();
        if !(sid.starts_with("AC")
            && sid.len() > 2
            && sid.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(Invalid::new(
                "account_sid",
                "must be a Twilio account SID (AC…)",
            ));
        }
        if config.auth_token.expose().is_empty() {
            return Err(Invalid::new("auth_token", "must not be empty"));
        }
        if config.from.as_deref().is_none_or(|f| f.trim().is_empty())
            && config
                .messaging_service_sid
                .as_deref()
                .is_none_or(|m| m.trim().is_empty())
        {
            return Err(Invalid::new(
                "from",
                "one of from and messaging_service_sid is required",
            ));
        }
        let base = parse_url(
            "base_url",
            config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let messages_url = base
            .join(&format!("/2010-04-01/Accounts/{sid}/Messages.json"))
            .map_err(|e| Invalid::new("account_sid", e.to_string()))?;
        Ok(TwilioProvider {
            channel,
            messages_url,
            config,
            http,
        })
    }

    /// WhatsApp addresses on Twilio are the number with a `whatsapp:` prefix.
    fn address(&self, number: &str) -> String {
        match self.channel {
            Channel::Whatsapp if !number.starts_with("whatsapp:") => format!("whatsapp:{number}"),
            _ => number.to_owned(),
        }
    }
}

#[async_trait]
impl Provider for TwilioProvider {
    fn channel(&self) -> Channel {
        self.channel
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let body = match (&message.content, self.channel) {
            (Content::Sms { text }, Channel::Sms)
            | (Content::Whatsapp { text }, Channel::Whatsapp) => text,
            (other, _) => return crate::wrong_content("twilio", self.channel, other),
        };
        let Some(number) = message.identity.value.as_str() else {
            return crate::unusable_identity("a phone number string");
        };
        let mut form = vec![("To", self.address(number)), ("Body", body.clone())];
        if let Some(from) = self.config.from.as_deref().filter(|f| !f.trim().is_empty()) {
            form.push(("From", self.address(from.trim())));
        }
        if let Some(service) = &self.config.messaging_service_sid {
            form.push(("MessagingServiceSid", service.clone()));
        }
        let request =
            match self
                .http
                .request(Method::POST, self.messages_url.clone(), Origin::Operator)
            {
                Ok(request) => request
                    .basic_auth(
                        &self.config.account_sid,
                        Some(self.config.auth_token.expose()),
                    )
                    .form(&form),
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
        let sid = json
            .as_ref()
            .and_then(|j| j["sid"].as_str())
            .map(str::to_owned);
        return Delivery::Sent { provider_id: sid };
    }
    if answer.status.is_client_error() && !answer.is_retryable() {
        let code = json.as_ref().and_then(|j| j["code"].as_u64());
        if let Some(code) = code.filter(|c| INVALID_RECIPIENT_CODES.contains(c)) {
            let message = json
                .as_ref()
                .and_then(|j| j["message"].as_str())
                .unwrap_or_default();
            return answer.identity_invalid("twilio", &format!("error {code}: {message}"));
        }
    }
    answer.default_outcome("twilio")
}
