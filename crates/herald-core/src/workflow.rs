//! Workflows: what a trigger sends. A slug, a preference category, a Handlebars template per
//! channel, and the policy that says which channels are used. Every template is checked when the
//! workflow is saved ([`Workflow::parse`]) and rendered per recipient ([`Workflow::render`]).

use crate::channel::Channel;
use crate::delivery::{Content, Push};
use crate::digest::{Digest, DigestInput};
use crate::engagement::{Gate, Tracking, Until};
use crate::error::Invalid;
use crate::template;
use crate::throttle::{Throttle, ThrottleInput};
use crate::validate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

/// Limits on one workflow, beyond those of each template ([`template::limits`]).
pub mod limits {
    /// String leaves in one JSON template (Slack blocks, Discord embeds, a Teams card): each is
    /// a template rendered on its own.
    pub const MAX_JSON_LEAVES: usize = 500;
    /// Bytes one rendered [`Content`](crate::delivery::Content) may hold in total (1 MiB): the
    /// per-render output limit applies to each field, this to all of them together.
    pub const MAX_CONTENT_BYTES: usize = 1024 * 1024;
    /// Event names one workflow listens to.
    pub const MAX_EVENTS: usize = 100;
    /// Characters of a workflow's name.
    pub const MAX_NAME_CHARS: usize = 100;
}

// ---- The wire body ----------------------------------------------------------------------------

/// The body of `POST /v1/workflow/`, `PUT /v1/workflow/{slug}/` and a workflow in the
/// configuration file. Also what `GET` answers ([`Workflow::to_input`]), so a workflow read can
/// be saved back unchanged. Checked by [`Workflow::parse`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowInput {
    /// Required; a `PUT` may leave it out and take the path's.
    #[serde(default)]
    pub slug: String,
    /// Defaults to the slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A preference category's slug; none or empty for notifications outside every category.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub policy: PolicyInput,
    pub channels: ChannelsInput,
    /// Event names (`POST /event/`) that start this workflow.
    #[serde(default)]
    pub events: Vec<String>,
    /// Open and click tracking of HTML emails; both off when left out.
    #[serde(default, skip_serializing_if = "TrackingInput::is_off")]
    pub tracking: TrackingInput,
    /// At most `limit` triggers per user per `window` ([`crate::throttle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleInput>,
    /// Collect a user's triggers and send them as one ([`crate::digest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestInput>,
}

/// `"all"`, `{"first_success": ["inbox", "email"]}` or
/// `{"smart": {"channels": ["inbox", "email"], "wait": "15m", "until": "seen"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyInput {
    #[default]
    All,
    FirstSuccess(Vec<String>),
    Smart(SmartInput),
}

/// A smart channel order on the wire. `until` defaults to `seen`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartInput {
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub wait: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// `{"opens": true, "clicks": true}`; a switch left out is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingInput {
    #[serde(default)]
    pub opens: bool,
    #[serde(default)]
    pub clicks: bool,
}

impl TrackingInput {
    fn is_off(&self) -> bool {
        !self.opens && !self.clicks
    }
}

/// One template per channel, under the channel's name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<TextInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<TextInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms_teams: Option<TeamsInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discord: Option<DiscordInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<InboxInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub androidpush: Option<PushInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iospush: Option<PushInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webpush: Option<PushInput>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// SMS and WhatsApp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Block Kit blocks (a JSON array); every string in it is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Discord embeds (a JSON array); every string in it is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeds: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An Adaptive Card (a JSON object); every string in it is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
}

/// Android, iOS and web push: the same fields on each (see [`Push`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Key/value data beside the notification (a JSON object); every string in it is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Where a tap leads; `action` is accepted for it on input.
    #[serde(default, alias = "action", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An image URL shown with the notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

// ---- The checked workflow ---------------------------------------------------------------------

/// Which channels of a workflow are used for a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Every channel with a template that the user can receive on.
    All,
    /// One channel at a time in this order: the next only after the one before failed for good
    /// (or was skipped). Every channel listed has a template.
    FirstSuccess(Vec<Channel>),
    /// One channel at a time in this order: the next `wait` after the one before was sent,
    /// unless the user engaged with an earlier one (see [`crate::engagement`]); at once after a
    /// failure for good.
    Smart(SmartPolicy),
}

/// A checked smart channel order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartPolicy {
    /// Distinct channels, each with a template.
    pub channels: Vec<Channel>,
    pub gate: Gate,
}

/// The longest wait of a smart step (30 days).
pub const MAX_SMART_WAIT_SECS: i64 = 30 * 24 * 3600;

/// A wait of a smart step: a whole number and a unit, `s`, `m`, `h` or `d` (`90s`, `15m`,
/// `2h`, `1d`), from 1 second to [`MAX_SMART_WAIT_SECS`]. Errors name `field`.
pub fn parse_wait(field: &str, raw: &str) -> Result<chrono::Duration, Invalid> {
    let refuse = || {
        Invalid::new(
            field,
            format!(
                "'{raw}' is not a wait: a whole number and a unit s, m, h or d (15m), from 1s to 30d"
            ),
        )
    };
    let raw_t = raw.trim();
    let unit = raw_t.chars().last().ok_or_else(refuse)?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(refuse()),
    };
    let digits = &raw_t[..raw_t.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let n: i64 = digits.parse().map_err(|_| refuse())?;
    let secs = n.checked_mul(scale).ok_or_else(refuse)?;
    if !(1..=MAX_SMART_WAIT_SECS).contains(&secs) {
        return Err(refuse());
    }
    Ok(chrono::Duration::seconds(secs))
}

/// A wait in the largest unit that divides it ([`parse_wait`] reads it back).
pub fn format_wait(wait: chrono::Duration) -> String {
    let secs = wait.num_seconds();
    for (unit, scale) in [('d', 86_400), ('h', 3600), ('m', 60)] {
        if secs % scale == 0 {
            return format!("{}{unit}", secs / scale);
        }
    }
    format!("{secs}s")
}

/// A channel's template, checked. Each text is a Handlebars source; each JSON template renders
/// its string leaves and keeps its structure.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelTemplate {
    Email {
        subject: String,
        html: Option<String>,
        text: Option<String>,
    },
    Sms {
        text: String,
    },
    Whatsapp {
        text: String,
    },
    Slack {
        text: String,
        blocks: Option<Value>,
    },
    Discord {
        /// Empty when only embeds are sent.
        content: String,
        embeds: Option<Value>,
    },
    MsTeams {
        text: Option<String>,
        card: Option<Value>,
    },
    Inbox {
        title: String,
        body: String,
        action_url: Option<String>,
    },
    Androidpush(PushTemplate),
    Iospush(PushTemplate),
    Webpush(PushTemplate),
}

/// A push channel's template: `title` and `body` (at least one not empty), optional `data` (a
/// JSON object whose string leaves are templates), `url` and `image`.
#[derive(Debug, Clone, PartialEq)]
pub struct PushTemplate {
    /// Empty when only a body is sent.
    pub title: String,
    /// Empty when only a title is sent.
    pub body: String,
    pub data: Option<Value>,
    pub url: Option<String>,
    pub image: Option<String>,
}

impl PushTemplate {
    fn to_input(&self) -> PushInput {
        PushInput {
            title: Some(self.title.clone()).filter(|t| !t.is_empty()),
            body: Some(self.body.clone()).filter(|b| !b.is_empty()),
            data: self.data.clone(),
            url: self.url.clone(),
            image: self.image.clone(),
        }
    }

    /// Checks one push channel's template; `at` is the channel's name.
    fn parse(at: &str, input: PushInput) -> Result<PushTemplate, Invalid> {
        if input.title.as_deref().is_none_or(str::is_empty)
            && input.body.as_deref().is_none_or(str::is_empty)
        {
            return Err(Invalid::new(at, "needs title or body (or both)"));
        }
        Ok(PushTemplate {
            title: optional(&format!("{at}.title"), input.title)?.unwrap_or_default(),
            body: optional(&format!("{at}.body"), input.body)?.unwrap_or_default(),
            data: json(&format!("{at}.data"), input.data, false)?,
            url: optional(&format!("{at}.url"), input.url)?,
            image: optional(&format!("{at}.image"), input.image)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub slug: String,
    pub name: String,
    /// The preference category's slug (its existence is the service's to check).
    pub category: Option<String>,
    pub policy: Policy,
    /// In [`Channel::ALL`] order.
    pub templates: BTreeMap<Channel, ChannelTemplate>,
    pub events: Vec<String>,
    /// Open and click tracking of its HTML emails.
    pub tracking: Tracking,
    pub throttle: Option<Throttle>,
    pub digest: Option<Digest>,
}

/// The channels a workflow may have templates for: every channel.
pub const TEMPLATE_CHANNELS: [Channel; 10] = Channel::ALL;

impl Workflow {
    /// Checks a workflow as saved: slug and category per [`validate::slug`], a name of at most
    /// [`limits::MAX_NAME_CHARS`], at least one channel, each template complete and passing
    /// [`template::check`], a `first_success` order of distinct channels that have templates,
    /// and event names as `POST /event/` accepts them. Errors name the field
    /// (`channels.email.subject`, `policy.first_success[1]`, `events[0]`), a `throttle` and a
    /// `digest` per their own checks (not both: a digest sends at most one message a window).
    pub fn parse(input: WorkflowInput) -> Result<Workflow, Invalid> {
        let slug = validate::slug(&input.slug, "workflow").map_err(|r| Invalid::new("slug", r))?;
        let name = match input.name.as_deref().map(str::trim) {
            None | Some("") => slug.clone(),
            Some(n) => {
                validate::no_nul(n).map_err(|r| Invalid::new("name", r))?;
                if n.chars().count() > limits::MAX_NAME_CHARS {
                    return Err(Invalid::new(
                        "name",
                        format!("must be at most {} characters", limits::MAX_NAME_CHARS),
                    ));
                }
                n.to_owned()
            }
        };
        let category = match input.category.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(crate::preference::parse_slug(c)?),
        };
        let templates = templates(input.channels).map_err(|e| e.within("channels"))?;
        let policy = match input.policy {
            PolicyInput::All => Policy::All,
            PolicyInput::FirstSuccess(names) => Policy::FirstSuccess(
                first_success(&names, &templates)
                    .map_err(|e| e.within("first_success").within("policy"))?,
            ),
            PolicyInput::Smart(smart) => Policy::Smart(
                smart_policy(smart, &templates).map_err(|e| e.within("smart").within("policy"))?,
            ),
        };
        let events = events(input.events).map_err(|e| e.within("events"))?;
        let throttle = input
            .throttle
            .as_ref()
            .map(|t| Throttle::parse(t).map_err(|e| e.within("throttle")))
            .transpose()?;
        let digest = input
            .digest
            .as_ref()
            .map(|d| Digest::parse(d).map_err(|e| e.within("digest")))
            .transpose()?;
        if throttle.is_some() && digest.is_some() {
            return Err(Invalid::new(
                "digest",
                "cannot be combined with throttle: a digest already sends at most one message per window",
            ));
        }
        Ok(Workflow {
            slug,
            name,
            category,
            policy,
            templates,
            events,
            tracking: Tracking {
                opens: input.tracking.opens,
                clicks: input.tracking.clicks,
            },
            throttle,
            digest,
        })
    }

    /// The channels used for a recipient, in order: the `first_success` order, or every channel
    /// with a template.
    pub fn channels(&self) -> Vec<Channel> {
        match &self.policy {
            Policy::All => self.templates.keys().copied().collect(),
            Policy::FirstSuccess(order) => order.clone(),
            Policy::Smart(smart) => smart.channels.clone(),
        }
    }

    /// The gate of each channel after the first under a `smart` policy; `None` otherwise.
    pub fn gate(&self) -> Option<Gate> {
        match &self.policy {
            Policy::Smart(smart) => Some(smart.gate),
            _ => None,
        }
    }

    /// The wire form ([`WorkflowInput`]) of this workflow; parsing it gives it back.
    pub fn to_input(&self) -> WorkflowInput {
        let mut channels = ChannelsInput::default();
        for t in self.templates.values() {
            match t.clone() {
                ChannelTemplate::Email {
                    subject,
                    html,
                    text,
                } => {
                    channels.email = Some(EmailInput {
                        subject: Some(subject),
                        html,
                        text,
                    })
                }
                ChannelTemplate::Sms { text } => {
                    channels.sms = Some(TextInput { text: Some(text) })
                }
                ChannelTemplate::Whatsapp { text } => {
                    channels.whatsapp = Some(TextInput { text: Some(text) })
                }
                ChannelTemplate::Slack { text, blocks } => {
                    channels.slack = Some(SlackInput {
                        text: Some(text),
                        blocks,
                    })
                }
                ChannelTemplate::Discord { content, embeds } => {
                    channels.discord = Some(DiscordInput {
                        content: Some(content).filter(|c| !c.is_empty()),
                        embeds,
                    })
                }
                ChannelTemplate::MsTeams { text, card } => {
                    channels.ms_teams = Some(TeamsInput { text, card })
                }
                ChannelTemplate::Inbox {
                    title,
                    body,
                    action_url,
                } => {
                    channels.inbox = Some(InboxInput {
                        title: Some(title).filter(|t| !t.is_empty()),
                        body: Some(body),
                        action_url,
                    })
                }
                ChannelTemplate::Androidpush(p) => channels.androidpush = Some(p.to_input()),
                ChannelTemplate::Iospush(p) => channels.iospush = Some(p.to_input()),
                ChannelTemplate::Webpush(p) => channels.webpush = Some(p.to_input()),
            }
        }
        WorkflowInput {
            slug: self.slug.clone(),
            name: Some(self.name.clone()),
            category: self.category.clone(),
            policy: match &self.policy {
                Policy::All => PolicyInput::All,
                Policy::FirstSuccess(order) => {
                    PolicyInput::FirstSuccess(order.iter().map(|c| c.as_str().into()).collect())
                }
                Policy::Smart(smart) => PolicyInput::Smart(SmartInput {
                    channels: smart.channels.iter().map(|c| c.as_str().into()).collect(),
                    wait: format_wait(smart.gate.wait),
                    until: Some(smart.gate.until.as_str().into()),
                }),
            },
            channels,
            events: self.events.clone(),
            tracking: TrackingInput {
                opens: self.tracking.opens,
                clicks: self.tracking.clicks,
            },
            throttle: self.throttle.as_ref().map(Throttle::to_input),
            digest: self.digest.as_ref().map(Digest::to_input),
        }
    }

    /// Renders the `channel` template for one recipient with `vars` (see
    /// [`template::variables_with_actor`]). JSON templates render every string leaf and keep
    /// their structure. Errors name the field (`channels.slack.blocks[0].text.text`). CPU-bound
    /// (each field up to [`template::limits::MAX_RENDER_TIME`], the whole bounded by twice that
    /// and by [`limits::MAX_CONTENT_BYTES`]): async callers run it on a blocking thread.
    pub fn render(&self, channel: Channel, vars: &Value) -> Result<Content, Invalid> {
        let t = self.templates.get(&channel).ok_or_else(|| {
            Invalid::new(
                "channel",
                format!(
                    "workflow '{}' has no template for {}",
                    self.slug,
                    channel.as_str()
                ),
            )
        })?;
        let mut r = Renderer {
            vars,
            started: Instant::now(),
            bytes: 0,
            at: format!("channels.{}", channel.as_str()),
        };
        Ok(match t {
            ChannelTemplate::Email {
                subject,
                html,
                text,
            } => Content::Email {
                subject: r.text("subject", subject)?,
                html: r.optional("html", html)?,
                text: r.optional("text", text)?,
            },
            ChannelTemplate::Sms { text } => Content::Sms {
                text: r.text("text", text)?,
            },
            ChannelTemplate::Whatsapp { text } => Content::Whatsapp {
                text: r.text("text", text)?,
            },
            ChannelTemplate::Slack { text, blocks } => Content::Slack {
                text: r.text("text", text)?,
                blocks: r.optional_json("blocks", blocks)?,
            },
            ChannelTemplate::Discord { content, embeds } => Content::Discord {
                content: r.text("content", content)?,
                embeds: r.optional_json("embeds", embeds)?,
            },
            ChannelTemplate::MsTeams { text, card } => Content::MsTeams {
                text: r.optional("text", text)?,
                card: r.optional_json("card", card)?,
            },
            ChannelTemplate::Inbox {
                title,
                body,
                action_url,
            } => Content::Inbox {
                title: r.text("title", title)?,
                body: r.text("body", body)?,
                action_url: r.optional("action_url", action_url)?,
            },
            ChannelTemplate::Androidpush(p) => Content::Androidpush(r.push(p)?),
            ChannelTemplate::Iospush(p) => Content::Iospush(r.push(p)?),
            ChannelTemplate::Webpush(p) => Content::Webpush(r.push(p)?),
        })
    }
}

/// Renders the fields of one channel's template against one budget.
struct Renderer<'a> {
    vars: &'a Value,
    started: Instant,
    bytes: usize,
    /// `channels.<channel>`.
    at: String,
}

impl Renderer<'_> {
    fn push(&mut self, t: &PushTemplate) -> Result<Push, Invalid> {
        Ok(Push {
            title: self.text("title", &t.title)?,
            body: self.text("body", &t.body)?,
            data: self.optional_json("data", &t.data)?,
            url: self.optional("url", &t.url)?,
            image: self.optional("image", &t.image)?,
        })
    }

    fn text(&mut self, field: &str, source: &str) -> Result<String, Invalid> {
        self.leaf(&format!("{}.{field}", self.at), source)
    }

    fn optional(
        &mut self,
        field: &str,
        source: &Option<String>,
    ) -> Result<Option<String>, Invalid> {
        source.as_deref().map(|s| self.text(field, s)).transpose()
    }

    fn optional_json(
        &mut self,
        field: &str,
        source: &Option<Value>,
    ) -> Result<Option<Value>, Invalid> {
        source
            .as_ref()
            .map(|v| self.json(format!("{}.{field}", self.at), v))
            .transpose()
    }

    fn json(&mut self, field: String, v: &Value) -> Result<Value, Invalid> {
        Ok(match v {
            Value::String(s) => Value::String(self.leaf(&field, s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.json(format!("{field}[{i}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, item)| Ok((k.clone(), self.json(format!("{field}.{k}"), item)?)))
                    .collect::<Result<_, Invalid>>()?,
            ),
            other => other.clone(),
        })
    }

    fn leaf(&mut self, field: &str, source: &str) -> Result<String, Invalid> {
        let max_time = template::limits::MAX_RENDER_TIME * 2;
        if self.started.elapsed() > max_time {
            return Err(Invalid::new(
                field,
                format!(
                    "the channel's templates took longer than {} ms to render",
                    max_time.as_millis()
                ),
            ));
        }
        let out = template::render(field, source, self.vars)?;
        self.bytes += out.len();
        if self.bytes > limits::MAX_CONTENT_BYTES {
            return Err(Invalid::new(
                field,
                format!(
                    "the channel's templates render more than {} bytes in total",
                    limits::MAX_CONTENT_BYTES
                ),
            ));
        }
        Ok(out)
    }
}

// ---- Checks at save time ----------------------------------------------------------------------

/// A required text template: present, no NUL, passing [`template::check`].
fn required(field: &str, source: Option<String>) -> Result<String, Invalid> {
    let source = source.ok_or_else(|| Invalid::new(field, "is required"))?;
    text(field, &source)?;
    Ok(source)
}

fn optional(field: &str, source: Option<String>) -> Result<Option<String>, Invalid> {
    if let Some(s) = &source {
        text(field, s)?;
    }
    Ok(source)
}

fn text(field: &str, source: &str) -> Result<(), Invalid> {
    validate::no_nul(source).map_err(|r| Invalid::new(field, r))?;
    template::check(field, source)
}

/// A JSON template of the `shape` wanted ("array" or "object"): nested and sized like a stored
/// value, at most [`limits::MAX_JSON_LEAVES`] strings, each a template that passes the checks.
fn json(field: &str, value: Option<Value>, array: bool) -> Result<Option<Value>, Invalid> {
    let Some(value) = value else { return Ok(None) };
    let shape_ok = if array {
        value.is_array()
    } else {
        value.is_object()
    };
    if !shape_ok {
        let want = if array {
            "a JSON array"
        } else {
            "a JSON object"
        };
        return Err(Invalid::new(field, format!("must be {want}")));
    }
    validate::custom_value(&value).map_err(|e| e.within(field))?;
    let size = value.to_string().len();
    if size > template::limits::MAX_SOURCE_BYTES {
        return Err(Invalid::new(
            field,
            format!(
                "is longer than the limit of {} bytes",
                template::limits::MAX_SOURCE_BYTES
            ),
        ));
    }
    let mut leaves = 0;
    check_leaves(field.to_owned(), &value, &mut leaves)?;
    Ok(Some(value))
}

fn check_leaves(field: String, v: &Value, leaves: &mut usize) -> Result<(), Invalid> {
    match v {
        Value::String(s) => {
            *leaves += 1;
            if *leaves > limits::MAX_JSON_LEAVES {
                return Err(Invalid::new(
                    field,
                    format!(
                        "is past the limit of {} strings in one JSON template",
                        limits::MAX_JSON_LEAVES
                    ),
                ));
            }
            template::check(&field, s)
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_leaves(format!("{field}[{i}]"), item, leaves)),
        Value::Object(o) => o
            .iter()
            .try_for_each(|(k, item)| check_leaves(format!("{field}.{k}"), item, leaves)),
        _ => Ok(()),
    }
}

fn templates(input: ChannelsInput) -> Result<BTreeMap<Channel, ChannelTemplate>, Invalid> {
    let ChannelsInput {
        email,
        sms,
        whatsapp,
        slack,
        ms_teams,
        discord,
        inbox,
        androidpush,
        iospush,
        webpush,
    } = input;
    let mut out = BTreeMap::new();
    if let Some(e) = email {
        let subject = required("email.subject", e.subject)?;
        if e.html.is_none() && e.text.is_none() {
            return Err(Invalid::new("email", "needs html or text (or both)"));
        }
        out.insert(
            Channel::Email,
            ChannelTemplate::Email {
                subject,
                html: optional("email.html", e.html)?,
                text: optional("email.text", e.text)?,
            },
        );
    }
    if let Some(s) = sms {
        let text = required("sms.text", s.text)?;
        out.insert(Channel::Sms, ChannelTemplate::Sms { text });
    }
    if let Some(w) = whatsapp {
        let text = required("whatsapp.text", w.text)?;
        out.insert(Channel::Whatsapp, ChannelTemplate::Whatsapp { text });
    }
    if let Some(s) = slack {
        out.insert(
            Channel::Slack,
            ChannelTemplate::Slack {
                text: required("slack.text", s.text)?,
                blocks: json("slack.blocks", s.blocks, true)?,
            },
        );
    }
    if let Some(t) = ms_teams {
        if t.text.is_none() && t.card.is_none() {
            return Err(Invalid::new("ms_teams", "needs text or card"));
        }
        out.insert(
            Channel::MsTeams,
            ChannelTemplate::MsTeams {
                text: optional("ms_teams.text", t.text)?,
                card: json("ms_teams.card", t.card, false)?,
            },
        );
    }
    if let Some(d) = discord {
        if d.content.is_none() && d.embeds.is_none() {
            return Err(Invalid::new("discord", "needs content or embeds"));
        }
        out.insert(
            Channel::Discord,
            ChannelTemplate::Discord {
                content: optional("discord.content", d.content)?.unwrap_or_default(),
                embeds: json("discord.embeds", d.embeds, true)?,
            },
        );
    }
    if let Some(i) = inbox {
        out.insert(
            Channel::Inbox,
            ChannelTemplate::Inbox {
                title: optional("inbox.title", i.title)?.unwrap_or_default(),
                body: required("inbox.body", i.body)?,
                action_url: optional("inbox.action_url", i.action_url)?,
            },
        );
    }
    for (channel, input) in [
        (Channel::Androidpush, androidpush),
        (Channel::Iospush, iospush),
        (Channel::Webpush, webpush),
    ] {
        let Some(input) = input else { continue };
        let t = PushTemplate::parse(channel.as_str(), input)?;
        out.insert(
            channel,
            match channel {
                Channel::Androidpush => ChannelTemplate::Androidpush(t),
                Channel::Iospush => ChannelTemplate::Iospush(t),
                _ => ChannelTemplate::Webpush(t),
            },
        );
    }
    if out.is_empty() {
        return Err(Invalid::new(
            "",
            format!(
                "needs a template for at least one channel ({})",
                TEMPLATE_CHANNELS.map(Channel::as_str).join(", ")
            ),
        ));
    }
    Ok(out)
}

fn first_success(
    names: &[String],
    templates: &BTreeMap<Channel, ChannelTemplate>,
) -> Result<Vec<Channel>, Invalid> {
    if names.is_empty() {
        return Err(Invalid::new("", "must list at least one channel"));
    }
    let mut order: Vec<Channel> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let at = format!("[{i}]");
        let channel = crate::preference::channel_named(&at, name)?;
        if !templates.contains_key(&channel) {
            return Err(Invalid::new(
                at,
                format!("{name} has no template in channels"),
            ));
        }
        if order.contains(&channel) {
            return Err(Invalid::new(at, format!("{name} is listed twice")));
        }
        order.push(channel);
    }
    Ok(order)
}

/// A smart order: its channels as [`first_success`] checks them (`channels[1]`), a wait per
/// [`parse_wait`] (`wait`) and `until` `seen` (the default) or `clicked` (`until`).
fn smart_policy(
    input: SmartInput,
    templates: &BTreeMap<Channel, ChannelTemplate>,
) -> Result<SmartPolicy, Invalid> {
    let channels = first_success(&input.channels, templates).map_err(|e| e.within("channels"))?;
    let wait = parse_wait("wait", &input.wait)?;
    let until = match input.until.as_deref() {
        None => Until::Seen,
        Some(u) => Until::parse("until", u)?,
    };
    Ok(SmartPolicy {
        channels,
        gate: Gate { wait, until },
    })
}

/// Event names: 2 to 255 characters, no control characters, not starting with `$` or `ss_`
/// (reserved, wire spec §3); repeats are dropped.
fn events(names: Vec<String>) -> Result<Vec<String>, Invalid> {
    if names.len() > limits::MAX_EVENTS {
        return Err(Invalid::new(
            "",
            format!("must list at most {} events", limits::MAX_EVENTS),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let at = format!("[{i}]");
        let n = name.trim();
        let len = n.chars().count();
        if !(2..=255).contains(&len) {
            return Err(Invalid::new(at, "must be 2 to 255 characters"));
        }
        if n.chars().any(char::is_control) {
            return Err(Invalid::new(at, "must not contain control characters"));
        }
        if n.starts_with('$') || n.starts_with("ss_") {
            return Err(Invalid::new(
                at,
                "event names starting with $ or ss_ are reserved",
            ));
        }
        if !out.iter().any(|o| o == n) {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
