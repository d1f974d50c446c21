//! Provider configuration as `PUT /v1/provider/{channel}/` stores it per environment:
//! `{"kind": "smtp", …}`. Secrets are write-only: [`ProviderConfig::public_view`] shows them as
//! `"set"` and never their value.

use crate::apns::{ApnsConfig, ApnsProvider};
use crate::discord::{DiscordConfig, DiscordProvider};
use crate::fcm::{FcmConfig, FcmProvider};
use crate::http::Http;
use crate::meta_whatsapp::{MetaWhatsappConfig, MetaWhatsappProvider};
use crate::slack::{SlackConfig, SlackProvider};
use crate::smtp::{SmtpConfig, SmtpProvider};
use crate::teams::{TeamsConfig, TeamsProvider};
use crate::twilio::{TwilioConfig, TwilioProvider};
use crate::webpush::{VapidConfig, WebPushProvider};
use herald_core::channel::Channel;
use herald_core::delivery::Provider;
use herald_core::error::Invalid;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// A credential: stored and used, never shown (its `Debug` is redacted too).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderConfig {
    Smtp(SmtpConfig),
    Twilio(TwilioConfig),
    MetaWhatsapp(MetaWhatsappConfig),
    Slack(SlackConfig),
    Discord(DiscordConfig),
    Teams(TeamsConfig),
    Fcm(FcmConfig),
    Apns(ApnsConfig),
    Vapid(VapidConfig),
}

impl ProviderConfig {
    pub const KINDS: &'static [&'static str] = &[
        "smtp",
        "twilio",
        "meta_whatsapp",
        "slack",
        "discord",
        "teams",
        "fcm",
        "apns",
        "vapid",
    ];

    /// Parses a stored or submitted config; the error names the field and the rule. (Read in
    /// two steps, `kind` then the kind's own struct, so the error keeps the field's path.)
    pub fn parse(raw: &Value) -> Result<ProviderConfig, Invalid> {
        let Some(object) = raw.as_object() else {
            return Err(Invalid::new(
                "",
                "a provider config is an object with a kind",
            ));
        };
        let kinds = Self::KINDS.join(", ");
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| Invalid::new("kind", format!("is required: one of {kinds}")))?;
        let mut fields = object.clone();
        fields.remove("kind");
        let fields = Value::Object(fields);
        Ok(match kind {
            "smtp" => ProviderConfig::Smtp(typed(fields)?),
            "twilio" => ProviderConfig::Twilio(typed(fields)?),
            "meta_whatsapp" => ProviderConfig::MetaWhatsapp(typed(fields)?),
            "slack" => ProviderConfig::Slack(typed(fields)?),
            "discord" => ProviderConfig::Discord(typed(fields)?),
            "teams" => ProviderConfig::Teams(typed(fields)?),
            "fcm" => ProviderConfig::Fcm(typed(fields)?),
            "apns" => ProviderConfig::Apns(typed(fields)?),
            "vapid" => ProviderConfig::Vapid(typed(fields)?),
            other => {
                return Err(Invalid::new(
                    "kind",
                    format!("'{other}' is not one of {kinds}"),
                ))
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Smtp(_) => "smtp",
            ProviderConfig::Twilio(_) => "twilio",
            ProviderConfig::MetaWhatsapp(_) => "meta_whatsapp",
            ProviderConfig::Slack(_) => "slack",
            ProviderConfig::Discord(_) => "discord",
            ProviderConfig::Teams(_) => "teams",
            ProviderConfig::Fcm(_) => "fcm",
            ProviderConfig::Apns(_) => "apns",
            ProviderConfig::Vapid(_) => "vapid",
        }
    }

    /// The channels this kind of provider sends on.
    pub fn channels(&self) -> &'static [Channel] {
        match self {
            ProviderConfig::Smtp(_) => &[Channel::Email],
            ProviderConfig::Twilio(_) => &[Channel::Sms, Channel::Whatsapp],
            ProviderConfig::MetaWhatsapp(_) => &[Channel::Whatsapp],
            ProviderConfig::Slack(_) => &[Channel::Slack],
            ProviderConfig::Discord(_) => &[Channel::Discord],
            ProviderConfig::Teams(_) => &[Channel::MsTeams],
            // Any FCM token: Android apps', and iOS apps' that use Firebase.
            ProviderConfig::Fcm(_) => &[Channel::Androidpush, Channel::Iospush],
            ProviderConfig::Apns(_) => &[Channel::Iospush],
            ProviderConfig::Vapid(_) => &[Channel::Webpush],
        }
    }

    fn secrets(&self) -> &'static [&'static str] {
        match self {
            ProviderConfig::Smtp(_) => SmtpConfig::SECRETS,
            ProviderConfig::Twilio(_) => TwilioConfig::SECRETS,
            ProviderConfig::MetaWhatsapp(_) => MetaWhatsappConfig::SECRETS,
            ProviderConfig::Slack(_) => SlackConfig::SECRETS,
            ProviderConfig::Vapid(_) => VapidConfig::SECRETS,
            ProviderConfig::Discord(_) | ProviderConfig::Teams(_) => &[],
            ProviderConfig::Fcm(_) => FcmConfig::SECRETS,
            ProviderConfig::Apns(_) => ApnsConfig::SECRETS,
        }
    }

    /// The config as the API shows it: every secret field `"set"` or `"unset"`, never its value.
    pub fn public_view(&self) -> Value {
        let mut view = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut view {
            for name in self.secrets() {
                let state = if fields.get(*name).is_some_and(|v| !v.is_null()) {
                    "set"
                } else {
                    "unset"
                };
                fields.insert((*name).to_owned(), Value::String(state.to_owned()));
            }
        }
        view
    }

    /// The provider for `channel`, checked: a kind that does not send on the channel, or a bad
    /// field, is an `Invalid` naming it.
    pub fn build(self, channel: Channel, http: &Http) -> Result<Arc<dyn Provider>, Invalid> {
        if !self.channels().contains(&channel) {
            let names: Vec<&str> = self.channels().iter().map(|c| c.as_str()).collect();
            return Err(Invalid::new(
                "kind",
                format!(
                    "{} sends on {}, not {}",
                    self.kind(),
                    names.join(", "),
                    channel.as_str()
                ),
            ));
        }
        let http = http.clone();
        Ok(match self {
            ProviderConfig::Smtp(config) => Arc::new(SmtpProvider::new(config)?),
            ProviderConfig::Twilio(config) => Arc::new(TwilioProvider::new(channel, config, http)?),
            ProviderConfig::MetaWhatsapp(config) => {
                Arc::new(MetaWhatsappProvider::new(config, http)?)
            }
            ProviderConfig::Slack(config) => Arc::new(SlackProvider::new(config, http)?),
            ProviderConfig::Discord(config) => Arc::new(DiscordProvider::new(config, http)?),
            ProviderConfig::Teams(config) => Arc::new(TeamsProvider::new(config, http)?),
            ProviderConfig::Fcm(config) => Arc::new(FcmProvider::new(config, http)?),
            ProviderConfig::Apns(config) => Arc::new(ApnsProvider::new(config, &http)?),
            ProviderConfig::Vapid(config) => Arc::new(WebPushProvider::new(config, http)?),
        })
    }
}

fn typed<T: DeserializeOwned>(fields: Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let path = e.path().to_string();
        let rule = e.into_inner().to_string();
        // A missing field is named in serde's message only.
        let missing = rule
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => String::new(),
            (_, Some(name)) => format!("{path}.{name}"),
            (_, None) => path,
        };
        Invalid::new(field, rule)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::OutboundConfig;
    use serde_json::json;

    #[test]
    fn parses_the_issue_example_and_names_bad_fields() {
        let smtp = json!({"kind":"smtp","host":"127.0.0.1","port":2525,"tls":"none","from":"herald@example.com"});
        let config = ProviderConfig::parse(&smtp).unwrap();
        assert_eq!(config.kind(), "smtp");
        let err =
            ProviderConfig::parse(&json!({"kind":"smtp","host":"h","tls":"ssl","from":"a@b.co"}))
                .unwrap_err();
        assert_eq!(err.field, "tls");
        let err = ProviderConfig::parse(&json!({"kind":"discord","base_url":"http://x","extra":1}))
            .unwrap_err();
        assert!(err.rule.contains("extra"), "{err}");
        let err = ProviderConfig::parse(&json!({"kind":"twilio","account_sid":"AC1","from":"+1"}))
            .unwrap_err();
        assert_eq!(err.field, "auth_token", "a missing field is named: {err}");
        let err = ProviderConfig::parse(&json!({"kind":"pigeon"})).unwrap_err();
        assert_eq!(err.field, "kind");
        assert!(err.rule.contains("pigeon"), "{err}");
    }

    #[test]
    fn secrets_are_never_shown() {
        let twilio = ProviderConfig::parse(&json!({
            "kind":"twilio","account_sid":"AC123","auth_token":"tok-secret","from":"+15550001111"
        }))
        .unwrap();
        let view = twilio.public_view();
        assert_eq!(view["auth_token"], "set");
        assert_eq!(view["account_sid"], "AC123");
        assert!(!view.to_string().contains("tok-secret"));
        assert!(!format!("{twilio:?}").contains("tok-secret"));
        let slack = ProviderConfig::parse(&json!({"kind":"slack"})).unwrap();
        assert_eq!(slack.public_view()["bot_token"], "unset");
        // What the store keeps round-trips, secret included.
        let stored = serde_json::to_value(&twilio).unwrap();
        assert_eq!(ProviderConfig::parse(&stored).unwrap(), twilio);
    }

    #[test]
    fn build_checks_channel_and_fields() {
        let http = Http::new(&OutboundConfig::default()).unwrap();
        let smtp =
            ProviderConfig::parse(&json!({"kind":"smtp","host":"h","tls":"none","from":"a@b.co"}))
                .unwrap();
        assert_eq!(
            smtp.clone().build(Channel::Sms, &http).err().unwrap().field,
            "kind"
        );
        assert_eq!(
            smtp.build(Channel::Email, &http).unwrap().channel(),
            Channel::Email
        );
        let bad_from =
            ProviderConfig::parse(&json!({"kind":"smtp","host":"h","tls":"none","from":"nope"}))
                .unwrap();
        assert_eq!(
            bad_from.build(Channel::Email, &http).err().unwrap().field,
            "from"
        );
        let bad_sid = ProviderConfig::parse(
            &json!({"kind":"twilio","account_sid":"x","auth_token":"t","from":"+1"}),
        )
        .unwrap();
        assert_eq!(
            bad_sid.build(Channel::Sms, &http).err().unwrap().field,
            "account_sid"
        );
        let bad_base =
            ProviderConfig::parse(&json!({"kind":"teams","base_url":"ftp://x"})).unwrap();
        assert_eq!(
            bad_base.build(Channel::MsTeams, &http).err().unwrap().field,
            "base_url"
        );
    }
}
