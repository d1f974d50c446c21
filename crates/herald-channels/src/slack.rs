//! Slack: incoming webhooks (`POST` the identity's `incoming_webhook.url` with `{"text",
//! "blocks"}`), and `chat.postMessage` with a bot token (the identity's `access_token`, else the
//! provider's `bot_token`) to the identity's `channel_id`, `user_id`, or the user found by
//! `users.lookupByEmail`.

use crate::config::Secret;
use crate::http::{parse_url, webhook_target, Answer, Http, Origin};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use herald_core::error::Invalid;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub const DEFAULT_API_BASE: &str = "https://slack.com";

/// Web API errors that mean the address is dead.
const DEAD_ADDRESS_ERRORS: &[&str] = &[
    "channel_not_found",
    "is_archived",
    "user_not_found",
    "users_not_found",
    "user_disabled",
    "not_in_channel",
];
/// Web API errors that mean the token is dead: the identity's fault when it carried the token.
const DEAD_TOKEN_ERRORS: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "invalid_token",
];
const TRANSIENT_ERRORS: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];
/// Incoming-webhook answers (plain text bodies) for a webhook that is gone.
const DEAD_WEBHOOK_ANSWERS: &[&str] = &[
    "invalid_token",
    "no_service",
    "channel_not_found",
    "channel_is_archived",
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Replaces the origin of webhook URLs and of the Web API (`https://slack.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Used for identities that carry no `access_token` of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<Secret>,
}

impl SlackConfig {
    pub const SECRETS: &'static [&'static str] = &["bot_token"];
}

pub struct SlackProvider {
    base_url: Option<Url>,
    api_base: Url,
    bot_token: Option<Secret>,
    http: Http,
}

impl SlackProvider {
    pub fn new(config: SlackConfig, http: Http) -> Result<Self, Invalid> {
        let base_url = config
            .base_url
            .as_deref()
            .map(|b| parse_url("base_url", b))
            .transpose()?;
        let api_base = match &base_url {
            Some(base) => base.clone(),
            None => parse_url("base_url", DEFAULT_API_BASE)?,
        };
        if let Some(token) = &config.bot_token {
            if !token.expose().starts_with("xox") {
                return Err(Invalid::new(
                    "bot_token",
                    "must be a Slack token starting with xox",
                ));
            }
        }
        Ok(SlackProvider {
            base_url,
            api_base,
            bot_token: config.bot_token,
            http,
        })
    }

    async fn webhook(&self, hook: &str, payload: &Value) -> Delivery {
        let (url, origin) = match webhook_target(hook, self.base_url.as_ref()) {
            Ok(target) => target,
            Err(outcome) => return outcome,
        };
        let request = match self.http.request(Method::POST, url, origin) {
            Ok(request) => request.json(payload),
            Err(outcome) => return outcome,
        };
        let answer = match self.http.execute(request).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        if answer.status.is_success() {
            return Delivery::Sent { provider_id: None };
        }
        let said = answer.snippet();
        if matches!(answer.status.as_u16(), 404 | 410)
            || DEAD_WEBHOOK_ANSWERS.contains(&said.as_str())
        {
            return answer.identity_invalid("slack", &format!("the webhook is gone ({said})"));
        }
        answer.default_outcome("slack")
    }

    async fn api(
        &self,
        method: Method,
        path: &str,
        token: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, Delivery> {
        let mut url = self.api_base.join(path).map_err(|e| Delivery::Failed {
            reason: format!("slack: bad API URL: {e}"),
            identity_invalid: false,
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .http
            .request(method, url, Origin::Operator)?
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.http.execute(request).await
    }

    async fn post_message(&self, identity: &Map<String, Value>, payload: Value) -> Delivery {
        let (token, token_is_identitys) =
            match identity.get("access_token").and_then(Value::as_str) {
                Some(token) => (token, true),
                None => match &self.bot_token {
                    Some(token) => (token.expose(), false),
                    None => return Delivery::Failed {
                        reason:
                            "slack: the identity has no access_token and the provider no bot_token"
                                .into(),
                        identity_invalid: false,
                    },
                },
            };
        let judge = |answer: &Answer| web_api_outcome(answer, token_is_identitys);
        let channel = match (
            identity.get("channel_id"),
            identity.get("user_id"),
            identity.get("email"),
        ) {
            (Some(Value::String(channel)), _, _) | (None, Some(Value::String(channel)), _) => {
                channel.clone()
            }
            (None, None, Some(Value::String(email))) => {
                let answer = match self
                    .api(
                        Method::GET,
                        "/api/users.lookupByEmail",
                        token,
                        &[("email", email)],
                        None,
                    )
                    .await
                {
                    Ok(answer) => answer,
                    Err(outcome) => return outcome,
                };
                match answer
                    .json()
                    .filter(|j| j["ok"] == json!(true))
                    .and_then(|j| j["user"]["id"].as_str().map(str::to_owned))
                {
                    Some(user) => user,
                    None => return judge(&answer),
                }
            }
            _ => {
                return crate::unusable_identity(
                    "a Slack channel_id, user_id, email or incoming_webhook",
                )
            }
        };
        let mut payload = payload;
        payload["channel"] = json!(channel);
        match self
            .api(
                Method::POST,
                "/api/chat.postMessage",
                token,
                &[],
                Some(&payload),
            )
            .await
        {
            Ok(answer) => judge(&answer),
            Err(outcome) => outcome,
        }
    }
}

/// The Web API answers 200 with `{"ok": false, "error": …}` for most failures.
fn web_api_outcome(answer: &Answer, token_is_identitys: bool) -> Delivery {
    let json = answer.json();
    if !answer.status.is_success() {
        return answer.default_outcome("slack");
    }
    let Some(json) = json else {
        return Delivery::Failed {
            reason: format!(
                "slack answered {} with no readable JSON: {}",
                answer.status,
                answer.snippet()
            ),
            identity_invalid: false,
        };
    };
    if json["ok"] == json!(true) {
        let ts = json["ts"].as_str().map(str::to_owned);
        return Delivery::Sent { provider_id: ts };
    }
    let error = json["error"].as_str().unwrap_or("unknown_error");
    let reason = format!("slack: {error}");
    if TRANSIENT_ERRORS.contains(&error) {
        Delivery::Retry {
            reason,
            after: answer.retry_after,
        }
    } else {
        let identity_invalid = DEAD_ADDRESS_ERRORS.contains(&error)
            || (token_is_identitys && DEAD_TOKEN_ERRORS.contains(&error));
        Delivery::Failed {
            reason,
            identity_invalid,
        }
    }
}

#[async_trait]
impl Provider for SlackProvider {
    fn channel(&self) -> Channel {
        Channel::Slack
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::Slack { text, blocks } = &message.content else {
            return crate::wrong_content("slack", Channel::Slack, &message.content);
        };
        let mut payload = json!({"text": text});
        if let Some(blocks) = blocks {
            payload["blocks"] = blocks.clone();
        }
        let Some(identity) = message.identity.value.as_object() else {
            return crate::unusable_identity("a Slack identity object");
        };
        match identity
            .get("incoming_webhook")
            .and_then(|h| h["url"].as_str())
        {
            Some(hook) => self.webhook(hook, &payload).await,
            None => self.post_message(identity, payload).await,
        }
    }
}
