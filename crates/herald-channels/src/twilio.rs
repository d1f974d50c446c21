//! SMS and WhatsApp through Twilio's Messages API:
//! `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, form-encoded `To`, `From`,
//! `Body`, HTTP Basic auth with the account SID and auth token; `201 Created` carries the `sid`.

use crate::config::Secret;
use crate::http::{parse_url, Answer, Http, Origin};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use herald_core::error::Invalid;
use herald_core::message::LateAnswer;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Twilio error codes that mean the recipient's number itself cannot be messaged, so its
/// identity is marked invalid (as the send's answer, or later in a status callback's
/// `ErrorCode`):
/// - 21211 invalid 'To' number; 21214 'To' number cannot be reached; 21217 number not valid;
///   21401 invalid phone number; 21407 the number's type does not take SMS;
/// - 21610 the recipient unsubscribed (replied STOP); 21612 'To' not reachable by this sender;
///   21614 'To' is not a mobile number;
/// - 30005 unknown destination handset; 30006 landline or unreachable carrier.
///
/// Left out on purpose: 21408 (no permission for the region: the account's setting, not the
/// number's), 30003 (handset switched off or out of coverage: passing) and 30007 (carrier
/// filtering: the content's fault). Those fail the message without marking the identity.
pub const INVALID_RECIPIENT_CODES: &[u64] = &[
    21211, 21214, 21217, 21401, 21407, 21610, 21612, 21614, 30005, 30006,
];

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
    /// Where Twilio posts the message's later statuses (`StatusCallback`). When unset and the
    /// server's `public_url` is, Herald fills in its own callback,
    /// `{public_url}/v1/callback/twilio/{env}/`; with neither, no callback is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<String>,
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
        if let Some(callback) = &config.status_callback {
            parse_url("status_callback", callback)?;
        }
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
        if let Some(callback) = &self.config.status_callback {
            form.push(("StatusCallback", callback.clone()));
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

/// `X-Twilio-Signature` of a request Twilio made to `url` (the full URL it was given, query
/// included) with form `params`: base64 of HMAC-SHA1, keyed with the account's auth token, over
/// the URL followed by each parameter's name and value, sorted by name.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        auth_token.as_bytes(),
    );
    STANDARD.encode(ring::hmac::sign(&key, signed_text(url, params).as_bytes()).as_ref())
}

/// Whether `claimed` is the [`signature`] of this request, compared in constant time.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    claimed: &str,
) -> bool {
    let Ok(claimed) = STANDARD.decode(claimed.trim()) else {
        return false;
    };
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        auth_token.as_bytes(),
    );
    ring::hmac::verify(&key, signed_text(url, params).as_bytes(), &claimed).is_ok()
}

fn signed_text(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut text = url.to_owned();
    for (name, value) in sorted {
        text.push_str(name);
        text.push_str(value);
    }
    text
}

/// What a status callback's `MessageStatus` and `ErrorCode` say about a message Twilio accepted:
/// `delivered` (and WhatsApp's `read`) confirm it; `undelivered` and `failed` fail it, marking
/// the number invalid when the code is one of [`INVALID_RECIPIENT_CODES`]; the statuses on the
/// way (`queued`, `sending`, `sent`, …) say nothing new (`None`).
pub fn late_answer(status: &str, error_code: Option<&str>) -> Option<LateAnswer> {
    match status {
        "delivered" | "read" => Some(LateAnswer::Delivered),
        "undelivered" | "failed" => {
            let code = error_code.map(str::trim).filter(|c| !c.is_empty());
            let identity_invalid = code
                .and_then(|c| c.parse::<u64>().ok())
                .is_some_and(|c| INVALID_RECIPIENT_CODES.contains(&c));
            let reason = match code {
                Some(code) => format!("twilio status {status}: error {code}"),
                None => format!("twilio status {status}"),
            };
            Some(LateAnswer::Failed {
                reason,
                identity_invalid,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The example of Twilio's webhook security documentation, with its published signature.
    #[test]
    fn the_signature_matches_twilios_documented_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        // Out of order on purpose: the signature sorts them.
        let p = params(&[
            ("Digits", "1234"),
            ("CallSid", "CA1234567890ABCDE"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
            ("From", "+14158675309"),
        ]);
        let token = "12345";
        assert_eq!(signature(token, url, &p), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify_signature(
            token,
            url,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify_signature(
            "54321",
            url,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify_signature(
            token,
            "https://example.com/other",
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify_signature(token, url, &p, "not base64!"));
        let mut changed = p.clone();
        changed[0].1 = "9999".into();
        assert!(!verify_signature(
            token,
            url,
            &changed,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn callback_statuses_map_to_late_answers() {
        assert_eq!(late_answer("delivered", None), Some(LateAnswer::Delivered));
        assert_eq!(late_answer("read", Some("")), Some(LateAnswer::Delivered));
        for passing in [
            "queued",
            "accepted",
            "sending",
            "sent",
            "scheduled",
            "canceled",
        ] {
            assert_eq!(late_answer(passing, None), None, "{passing}");
        }
        assert_eq!(
            late_answer("undelivered", Some("30005")),
            Some(LateAnswer::Failed {
                reason: "twilio status undelivered: error 30005".into(),
                identity_invalid: true
            })
        );
        for code in INVALID_RECIPIENT_CODES {
            let answer = late_answer("failed", Some(&code.to_string()));
            assert!(
                matches!(
                    answer,
                    Some(LateAnswer::Failed {
                        identity_invalid: true,
                        ..
                    })
                ),
                "{code}"
            );
        }
        for code in [Some("30003"), Some("21408"), Some("30007"), None, Some("x")] {
            assert!(
                matches!(
                    late_answer("undelivered", code),
                    Some(LateAnswer::Failed {
                        identity_invalid: false,
                        ..
                    })
                ),
                "{code:?}"
            );
        }
    }
}
