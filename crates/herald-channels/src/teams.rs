//! Microsoft Teams incoming webhooks: plain `{"text"}`, or a message with an Adaptive Card
//! attachment. Identities addressing a bot conversation (Bot Framework) are not sent here.

use crate::http::{parse_url, webhook_target, Answer, Http};
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use herald_core::error::Invalid;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// Replaces the origin of every webhook URL (a proxy, or a test's fake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

pub struct TeamsProvider {
    base_url: Option<Url>,
    http: Http,
}

impl TeamsProvider {
    pub fn new(config: TeamsConfig, http: Http) -> Result<Self, Invalid> {
        let base_url = config
            .base_url
            .as_deref()
            .map(|b| parse_url("base_url", b))
            .transpose()?;
        Ok(TeamsProvider { base_url, http })
    }
}

#[async_trait]
impl Provider for TeamsProvider {
    fn channel(&self) -> Channel {
        Channel::MsTeams
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::MsTeams { text, card } = &message.content else {
            return crate::wrong_content("teams", Channel::MsTeams, &message.content);
        };
        let Some(hook) = message.identity.value["incoming_webhook"]["url"].as_str() else {
            return Delivery::Failed {
                reason: "teams: only incoming_webhook identities are supported (bot conversations are not)".into(),
                identity_invalid: false,
            };
        };
        let body = match (text, card) {
            (_, Some(card)) => {
                let mut body = json!({
                    "type": "message",
                    "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": null, "content": card}],
                });
                if let Some(text) = text {
                    body["text"] = json!(text);
                }
                body
            }
            (Some(text), None) => json!({"text": text}),
            (None, None) => {
                return Delivery::Failed {
                    reason: "teams: the content has neither text nor card".into(),
                    identity_invalid: false,
                }
            }
        };
        let (url, origin) = match webhook_target(hook, self.base_url.as_ref()) {
            Ok(target) => target,
            Err(outcome) => return outcome,
        };
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
    if answer.status.is_success() {
        return Delivery::Sent { provider_id: None };
    }
    if matches!(answer.status.as_u16(), 404 | 410) {
        return answer.identity_invalid("teams", "the webhook is gone");
    }
    answer.default_outcome("teams")
}
