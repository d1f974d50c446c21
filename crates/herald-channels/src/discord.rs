//! Discord incoming webhooks: `POST {webhook}?wait=true` with `{"content", "embeds"}`; `wait`
//! makes Discord answer with the created message, whose `id` is kept.

use crate::http::{parse_url, webhook_target, Answer, Http};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use herald_core::error::Invalid;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// Discord API error codes for a webhook that is gone: 10015 Unknown Webhook, 50027 Invalid
/// Webhook Token.
const DEAD_WEBHOOK_CODES: &[u64] = &[10015, 50027];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// Replaces the origin of every webhook URL (a proxy, or a test's fake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

pub struct DiscordProvider {
    base_url: Option<Url>,
    http: Http,
}

impl DiscordProvider {
    pub fn new(config: DiscordConfig, http: Http) -> Result<Self, Invalid> {
        let base_url = config
            .base_url
            .as_deref()
            .map(|b| parse_url("base_url", b))
            .transpose()?;
        Ok(DiscordProvider { base_url, http })
    }
}

#[async_trait]
impl Provider for DiscordProvider {
    fn channel(&self) -> Channel {
        Channel::Discord
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::Discord { content, embeds } = &message.content else {
            return crate::wrong_content("discord", Channel::Discord, &message.content);
        };
        let Some(hook) = message.identity.value.as_str() else {
            return crate::unusable_identity("a Discord webhook URL");
        };
        let (mut url, origin) = match webhook_target(hook, self.base_url.as_ref()) {
            Ok(target) => target,
            Err(outcome) => return outcome,
        };
        if !url.query_pairs().any(|(k, _)| k == "wait") {
            url.query_pairs_mut().append_pair("wait", "true");
        }
        let mut body = json!({"content": content});
        if let Some(embeds) = embeds {
            body["embeds"] = embeds_array(embeds);
        }
        let request = match self.http.request(Method::POST, url, origin) {
            Ok(request) => request.json(&body),
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
            .and_then(|j| j["id"].as_str())
            .map(str::to_owned);
        return Delivery::Sent { provider_id: id };
    }
    let code = json.as_ref().and_then(|j| j["code"].as_u64());
    if matches!(answer.status.as_u16(), 401 | 404 | 410)
        || code.is_some_and(|c| DEAD_WEBHOOK_CODES.contains(&c))
    {
        return answer.identity_invalid("discord", &answer.snippet());
    }
    if answer.status.as_u16() == 429 && answer.retry_after.is_none() {
        // Discord also states the wait in the body, in (fractional) seconds.
        let after = json
            .as_ref()
            .and_then(|j| j["retry_after"].as_f64())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        return Delivery::Retry {
            reason: format!("discord rate limited: {}", answer.snippet()),
            after,
        };
    }
    answer.default_outcome("discord")
}

/// The `embeds` Discord accepts are an array; a single object is wrapped.
pub fn embeds_array(embeds: &Value) -> Value {
    match embeds {
        Value::Array(_) => embeds.clone(),
        other => Value::Array(vec![other.clone()]),
    }
}
