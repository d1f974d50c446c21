//! The provider directory of this node: which channels each environment can send on and the
//! provider that delivers to one identity (see [`herald_core::delivery::Directory`]), and the use
//! cases of `/v1/provider/` (here, not in core: checking a config needs `herald-channels`).
//!
//! A PUT replaces the whole config: secrets must be sent every time (the API never returns them,
//! so a config read back and saved unchanged fails on its missing secret rather than silently
//! keeping one the caller cannot see).

use async_trait::async_trait;
use herald_channels::inbox::InboxProvider;
use herald_channels::{Http, OutboundConfig, ProviderConfig};
use herald_core::channel::{Channel, Identity};
use herald_core::delivery::{route, Configured, Directory, Provider, Route};
use herald_core::service::Error;
use herald_core::store::{ProviderRecord, Store, StoreError};
use herald_core::{Env, EnvScope, Invalid};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A directory with nothing configured: every channel is `no_provider`.
#[derive(Default)]
pub struct Unconfigured;

#[async_trait]
impl Directory for Unconfigured {
    async fn configured(&self, _: Env) -> Result<Configured, StoreError> {
        Ok(Configured::new())
    }

    async fn provider(
        &self,
        _: Env,
        _: &Identity,
    ) -> Result<Option<Arc<dyn Provider>>, StoreError> {
        Ok(None)
    }
}

/// The channel a `/v1/provider/{channel}/` path names.
pub fn channel_named(name: &str) -> Result<Channel, Invalid> {
    Channel::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
        .ok_or_else(|| Invalid::new("channel", format!("'{name}' is not a channel")))
}

/// A submitted config, checked for `channel` the way it will be used: parsed, then built (a bad
/// field, or a kind that does not send on the channel, is an `Invalid` naming it).
pub fn check(channel: Channel, raw: &Value, http: &Http) -> Result<ProviderConfig, Invalid> {
    let config = ProviderConfig::parse(raw)?;
    config.clone().build(channel, http)?;
    Ok(config)
}

/// A stored config as the API shows it: `channel`, the config with its secrets as `set`/`unset`,
/// `updated_at`.
pub fn public_view(record: &ProviderRecord) -> Value {
    let mut view = match ProviderConfig::parse(&record.config) {
        Ok(config) => config.public_view(),
        // Stored configs were checked when put; one that no longer parses shows its kind only.
        Err(_) => json!({"kind": record.config.get("kind"), "invalid": true}),
    };
    if let Value::Object(fields) = &mut view {
        fields.insert("channel".into(), json!(record.channel.as_str()));
        fields.insert("updated_at".into(), json!(record.updated_at.to_rfc3339()));
    }
    view
}

pub async fn list(store: &dyn Store, scope: EnvScope) -> Result<Vec<Value>, Error> {
    let records = store.list_provider_configs(scope).await?;
    Ok(records.iter().map(public_view).collect())
}

pub async fn get(store: &dyn Store, scope: EnvScope, channel: Channel) -> Result<Value, Error> {
    store
        .get_provider_config(scope, channel)
        .await?
        .map(|r| public_view(&r))
        .ok_or_else(|| not_configured(channel))
}

/// Checks and stores `raw` as the whole config of `channel`; the public view, and whether it
/// was created.
pub async fn put(
    store: &dyn Store,
    http: &Http,
    scope: EnvScope,
    channel: Channel,
    raw: &Value,
) -> Result<(Value, bool), Error> {
    let config = check(channel, raw, http).map_err(Error::Invalid)?;
    // Stored as parsed (defaults filled, nothing unknown), so what is read back is what was checked.
    let stored = serde_json::to_value(&config)
        .map_err(|e| StoreError::internal(format!("a provider config serialises: {e}")))?;
    let created = store.put_provider_config(scope, channel, &stored).await?;
    Ok((get(store, scope, channel).await?, created))
}

pub async fn delete(store: &dyn Store, scope: EnvScope, channel: Channel) -> Result<(), Error> {
    if store.delete_provider_config(scope, channel).await? {
        Ok(())
    } else {
        Err(not_configured(channel))
    }
}

fn not_configured(channel: Channel) -> Error {
    Error::Missing {
        what: "provider for channel",
        key: channel.as_str().to_owned(),
    }
}

/// The kind configured on each channel of `records`.
fn configured(records: &[ProviderRecord]) -> Configured {
    records
        .iter()
        .filter_map(|r| Some((r.channel, r.config.get("kind")?.as_str()?.to_owned())))
        .collect()
}

/// A provider and the stored config it was built from.
type Built = (Value, Arc<dyn Provider>);

/// The directory over the stored configurations. A built provider is kept per (env, channel)
/// with the config it was built from, and rebuilt when the stored config differs: a PUT on any
/// node is seen by the next send on every node.
pub struct Stored {
    store: Arc<dyn Store>,
    http: Http,
    built: Mutex<HashMap<(Env, Channel), Built>>,
    /// For identities that carry their own endpoint when their channel has no config: the
    /// providers that need none (Slack, Discord and Teams webhooks; Slack identities with their
    /// own token).
    endpoint_only: HashMap<Channel, Arc<dyn Provider>>,
    /// The inbox, which Herald delivers itself into the store: the provider of every inbox
    /// identity (the inbox channel takes no configuration).
    inbox: Arc<dyn Provider>,
    /// The server's `public_url` (no trailing `/`), when set: providers that report later
    /// statuses are told to call back there ([`status_callback`]).
    public_url: Option<String>,
}

/// Where a provider of `kind` in `env` calls back with later statuses, under `public_url`:
/// `/v1/callback/twilio/{env}/` for Twilio. `None` for kinds without status callbacks.
pub fn status_callback(public_url: &str, kind: &str, env: Env) -> Option<String> {
    match kind {
        "twilio" => Some(format!("{public_url}/v1/callback/twilio/{env}/")),
        _ => None,
    }
}

impl Stored {
    pub fn new(store: Arc<dyn Store>, outbound: &OutboundConfig) -> Result<Stored, Invalid> {
        let http = Http::new(outbound)?;
        let mut endpoint_only = HashMap::new();
        for (channel, kind) in [
            (Channel::Slack, "slack"),
            (Channel::Discord, "discord"),
            (Channel::MsTeams, "teams"),
        ] {
            let provider =
                ProviderConfig::parse(&json!({ "kind": kind }))?.build(channel, &http)?;
            endpoint_only.insert(channel, provider);
        }
        Ok(Stored {
            inbox: Arc::new(InboxProvider::new(store.clone())),
            store,
            http,
            built: Mutex::default(),
            endpoint_only,
            public_url: None,
        })
    }

    /// Providers that report later statuses (Twilio) are told to call back under `public_url`
    /// (the server's option), unless their config names its own `status_callback`. An empty
    /// `public_url` asks for no callbacks: Herald does not know where it is reachable.
    pub fn calling_back_to(mut self, public_url: &str) -> Stored {
        let url = public_url.trim().trim_end_matches('/');
        self.public_url = (!url.is_empty()).then(|| url.to_owned());
        self
    }

    fn build(&self, env: Env, record: &ProviderRecord) -> Result<Arc<dyn Provider>, StoreError> {
        let key = (env, record.channel);
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((config, provider)) = built.get(&key) {
            if *config == record.config {
                return Ok(provider.clone());
            }
        }
        let provider = ProviderConfig::parse(&record.config)
            .map(|mut config| {
                if let (ProviderConfig::Twilio(twilio), Some(public_url)) =
                    (&mut config, &self.public_url)
                {
                    if twilio.status_callback.is_none() {
                        twilio.status_callback = status_callback(public_url, "twilio", env);
                    }
                }
                config
            })
            .and_then(|c| c.build(record.channel, &self.http))
            .map_err(|e| {
                StoreError::internal(format!(
                    "the stored {} provider of {env} does not build: {e}",
                    record.channel.as_str()
                ))
            })?;
        built.insert(key, (record.config.clone(), provider.clone()));
        Ok(provider)
    }
}

#[async_trait]
impl Directory for Stored {
    async fn configured(&self, env: Env) -> Result<Configured, StoreError> {
        let records = self
            .store
            .list_provider_configs(EnvScope::operator(env))
            .await?;
        Ok(configured(&records))
    }

    async fn provider(
        &self,
        env: Env,
        identity: &Identity,
    ) -> Result<Option<Arc<dyn Provider>>, StoreError> {
        if identity.channel == Channel::Inbox {
            return Ok(Some(self.inbox.clone()));
        }
        let records = self
            .store
            .list_provider_configs(EnvScope::operator(env))
            .await?;
        let on = |channel: Channel| records.iter().find(|r| r.channel == channel);
        let stored = match route(identity, &configured(&records)) {
            Route::Configured(channel) => on(channel),
            // The channel's provider refuses the token with its reason (`fcm does not deliver
            // apns tokens`): the configs changed since the message was planned.
            Route::Mismatch { .. } => on(identity.channel),
            Route::Unconfigured => return Ok(self.endpoint_only.get(&identity.channel).cloned()),
            Route::NoProvider => None,
        };
        stored.map(|record| self.build(env, record)).transpose()
    }
}
