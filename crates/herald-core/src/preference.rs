//! Notification preferences: the categories (topics) operators define, each user's choices, and
//! the one decision every send goes through ([`decide`]).

use crate::channel::Channel;
use crate::error::Invalid;
use crate::profile::{Profile, Status};
use crate::IdentityStatus;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What a category does for users who have not chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultPreference {
    OptIn,
    OptOut,
    /// Always sent; users cannot opt out.
    Mandatory,
}

impl DefaultPreference {
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultPreference::OptIn => "opt_in",
            DefaultPreference::OptOut => "opt_out",
            DefaultPreference::Mandatory => "mandatory",
        }
    }
}

/// A user's choice for a category or a channel of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    OptIn,
    OptOut,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::OptIn => "opt_in",
            Choice::OptOut => "opt_out",
        }
    }

    fn parse(field: &str, v: &Value) -> Result<Choice, Invalid> {
        match v.as_str() {
            Some("opt_in") => Ok(Choice::OptIn),
            Some("opt_out") => Ok(Choice::OptOut),
            _ => Err(Invalid::new(
                field,
                format!("must be opt_in or opt_out, got {v}"),
            )),
        }
    }
}

/// A notification topic, per environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Groups categories on preference pages.
    #[serde(default)]
    pub section: Option<String>,
    pub default_preference: DefaultPreference,
    /// Channels the user may not turn off for this category.
    #[serde(default, with = "channel_names")]
    pub locked_channels: BTreeSet<Channel>,
    /// Hidden categories apply but are not listed to users.
    #[serde(default = "visible")]
    pub visible: bool,
}

fn visible() -> bool {
    true
}

/// Channel sets stored by their preference names (`email`, `ms_teams`).
mod channel_names {
    use crate::channel::Channel;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::collections::BTreeSet;

    pub fn serialize<S: Serializer>(set: &BTreeSet<Channel>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(set.iter().map(|c| c.as_str()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<Channel>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|n| {
                Channel::from_name(n)
                    .ok_or_else(|| D::Error::custom(format!("unknown channel {n}")))
            })
            .collect()
    }
}

/// One user's choice for one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryChoice {
    pub preference: Choice,
    /// Channels turned off for this category (only meaningful while opted in).
    #[serde(
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        with = "channel_names"
    )]
    pub opt_out_channels: BTreeSet<Channel>,
}

/// Everything a user chose. Kept on the profile, so it is locked, versioned, recorded in history,
/// merged, exported and erased with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, CategoryChoice>,
    /// Channels that only receive mandatory (can't-unsubscribe) notifications.
    #[serde(
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        with = "channel_names"
    )]
    pub restricted_channels: BTreeSet<Channel>,
    /// Bumped to revoke every preference link sent so far (a link names the epoch it was minted
    /// in). Kept here so it is locked, versioned, copied and exported with the profile.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link_epoch: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Preferences {
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty() && self.restricted_channels.is_empty() && self.link_epoch == 0
    }
}

/// Why a notification is not sent on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    UserDisabled,
    CategoryOptedOut,
    ChannelOptedOut,
    ChannelRestricted,
    NoIdentity,
    IdentityInvalid,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UserDisabled => "user_disabled",
            Skip::CategoryOptedOut => "category_opted_out",
            Skip::ChannelOptedOut => "channel_opted_out",
            Skip::ChannelRestricted => "channel_restricted",
            Skip::NoIdentity => "no_identity",
            Skip::IdentityInvalid => "identity_invalid",
        }
    }
}

/// Whether a notification of `category` goes to `profile` on `channel`. The only place
/// preferences are evaluated. Rules, in order:
/// 1. a disabled user receives nothing;
/// 2. a mandatory category, and a channel the category locks, cannot be opted out of;
/// 3. a category opt-out (the user's, or the category's default) skips all its other channels;
/// 4. a channel the user turned off for the category is skipped;
/// 5. a channel the user restricted globally only receives what cannot be opted out of;
/// 6. the user needs an identity on the channel, and one that is active.
pub fn decide(profile: &Profile, category: &Category, channel: Channel) -> Result<(), Skip> {
    if profile.status == Status::Disabled {
        return Err(Skip::UserDisabled);
    }
    let forced = category.default_preference == DefaultPreference::Mandatory
        || category.locked_channels.contains(&channel);
    if !forced {
        let choice = profile.preferences.categories.get(&category.slug);
        let opted_in = match choice {
            Some(c) => c.preference == Choice::OptIn,
            None => category.default_preference == DefaultPreference::OptIn,
        };
        if !opted_in {
            return Err(Skip::CategoryOptedOut);
        }
        if choice.is_some_and(|c| c.opt_out_channels.contains(&channel)) {
            return Err(Skip::ChannelOptedOut);
        }
        if profile.preferences.restricted_channels.contains(&channel) {
            return Err(Skip::ChannelRestricted);
        }
    }
    let mut identities = profile.identities_on(channel).peekable();
    if identities.peek().is_none() {
        return Err(Skip::NoIdentity);
    }
    if !identities
        .any(|i| i.status == IdentityStatus::Active && i.perma_status == IdentityStatus::Active)
    {
        return Err(Skip::IdentityInvalid);
    }
    Ok(())
}

/// The channels preferences speak of, in the wire order: all of them.
pub const PREFERENCE_CHANNELS: [Channel; 10] = Channel::ALL;

fn channel(field: &str, v: &Value) -> Result<Channel, Invalid> {
    v.as_str().and_then(Channel::from_name).ok_or_else(|| {
        Invalid::new(
            field,
            format!(
                "{v} is not a channel ({})",
                PREFERENCE_CHANNELS.map(Channel::as_str).join(", ")
            ),
        )
    })
}

fn channels(field: &str, v: Option<&Value>) -> Result<BTreeSet<Channel>, Invalid> {
    match v {
        None | Some(Value::Null) => Ok(BTreeSet::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, c)| channel(&format!("{field}[{i}]"), c))
            .collect(),
        Some(other) => Err(Invalid::new(
            field,
            format!("must be a list of channels, got {other}"),
        )),
    }
}

/// A category's effective state for one user, as the wire's Category object.
pub fn category_wire(
    category: &Category,
    prefs: &Preferences,
    show_opt_out_channels: bool,
) -> Value {
    let mandatory = category.default_preference == DefaultPreference::Mandatory;
    let choice = prefs.categories.get(&category.slug);
    let preference = match (mandatory, choice) {
        (true, _) => Choice::OptIn,
        (false, Some(c)) => c.preference,
        (false, None) if category.default_preference == DefaultPreference::OptIn => Choice::OptIn,
        (false, None) => Choice::OptOut,
    };
    let channels: Vec<Value> = PREFERENCE_CHANNELS
        .iter()
        .filter_map(|&c| {
            let locked = mandatory || category.locked_channels.contains(&c);
            let off = !locked
                && (preference == Choice::OptOut
                    || choice.is_some_and(|x| x.opt_out_channels.contains(&c)));
            if off && !show_opt_out_channels {
                return None;
            }
            let p = if off { Choice::OptOut } else { Choice::OptIn };
            Some(json!({"channel": c.as_str(), "preference": p.as_str(), "is_editable": !locked}))
        })
        .collect();
    json!({
        "name": category.name,
        "category": category.slug,
        "description": category.description,
        "section": category.section,
        "original_preference": category.default_preference.as_str(),
        "preference": preference.as_str(),
        "is_editable": !mandatory,
        "channels": channels,
    })
}

/// The global channel preferences, as `[{channel, is_restricted}]`.
pub fn channels_wire(prefs: &Preferences) -> Value {
    Value::Array(
        PREFERENCE_CHANNELS
            .iter()
            .map(|c| json!({"channel": c.as_str(), "is_restricted": prefs.restricted_channels.contains(c)}))
            .collect(),
    )
}

/// Applies `PATCH …/preference/category/{slug}/`:
/// `{"preference": "opt_in"|"opt_out", "opt_out_channels": [..]|null, "opt_in_channels": [..]?}`.
pub fn choose_category(
    prefs: &mut Preferences,
    category: &Category,
    body: &Value,
) -> Result<(), Invalid> {
    let obj = body
        .as_object()
        .ok_or_else(|| Invalid::new("", "the body must be a JSON object"))?;
    let preference = Choice::parse(
        "preference",
        obj.get("preference")
            .ok_or_else(|| Invalid::new("preference", "is required: opt_in or opt_out"))?,
    )?;
    if category.default_preference == DefaultPreference::Mandatory && preference == Choice::OptOut {
        return Err(Invalid::new(
            "preference",
            format!(
                "'{}' is mandatory: users cannot opt out of it",
                category.slug
            ),
        ));
    }
    let mut current = prefs
        .categories
        .get(&category.slug)
        .map(|c| c.opt_out_channels.clone())
        .unwrap_or_default();
    if let Some(v) = obj.get("opt_out_channels") {
        current = channels("opt_out_channels", Some(v))?;
    }
    for c in channels("opt_in_channels", obj.get("opt_in_channels"))? {
        current.remove(&c);
    }
    if let Some(locked) = current
        .iter()
        .find(|c| category.locked_channels.contains(c))
    {
        return Err(Invalid::new(
            "opt_out_channels",
            format!(
                "{} cannot be turned off for '{}'",
                locked.as_str(),
                category.slug
            ),
        ));
    }
    prefs.categories.insert(
        category.slug.clone(),
        CategoryChoice {
            preference,
            opt_out_channels: current,
        },
    );
    Ok(())
}

/// Applies `PATCH …/preference/channel_preference/`:
/// `{"channel_preferences": [{"channel": "email", "is_restricted": true}]}`.
pub fn restrict_channels(prefs: &mut Preferences, body: &Value) -> Result<(), Invalid> {
    let list = body
        .get("channel_preferences")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Invalid::new(
                "channel_preferences",
                "is required: a list of {\"channel\", \"is_restricted\"}",
            )
        })?;
    let mut next = prefs.restricted_channels.clone();
    for (i, item) in list.iter().enumerate() {
        let field = format!("channel_preferences[{i}]");
        let c = channel(
            &format!("{field}.channel"),
            item.get("channel").unwrap_or(&Value::Null),
        )?;
        match item.get("is_restricted").and_then(Value::as_bool) {
            Some(true) => next.insert(c),
            Some(false) => next.remove(&c),
            None => {
                return Err(Invalid::new(
                    format!("{field}.is_restricted"),
                    "must be true or false",
                ))
            }
        };
    }
    prefs.restricted_channels = next;
    Ok(())
}

/// `POST /v1/category/` and the config file: `{category | slug, name, description?, section?,
/// default_preference, locked_channels?, visible?}`.
pub fn parse_category(body: &Value) -> Result<Category, Invalid> {
    let obj = body
        .as_object()
        .ok_or_else(|| Invalid::new("", "the body must be a JSON object"))?;
    let slug = obj
        .get("category")
        .or_else(|| obj.get("slug"))
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::new("category", "is required: the category's slug"))?;
    let slug = parse_slug(slug)?;
    let mut category = Category {
        name: slug.clone(),
        slug,
        description: String::new(),
        section: None,
        default_preference: DefaultPreference::OptIn,
        locked_channels: BTreeSet::new(),
        visible: true,
    };
    update_category(&mut category, obj, false)?;
    Ok(category)
}

/// `PATCH /v1/category/{slug}/`.
pub fn patch_category(category: &mut Category, body: &Value) -> Result<(), Invalid> {
    let obj = body
        .as_object()
        .ok_or_else(|| Invalid::new("", "the body must be a JSON object"))?;
    update_category(category, obj, true)
}

fn update_category(
    c: &mut Category,
    obj: &Map<String, Value>,
    patching: bool,
) -> Result<(), Invalid> {
    for (k, v) in obj {
        let text = |max: usize| -> Result<String, Invalid> {
            let s = v
                .as_str()
                .ok_or_else(|| Invalid::new(k.as_str(), "must be a string"))?;
            crate::validate::no_nul(s).map_err(|rule| Invalid::new(k.as_str(), rule))?;
            if s.chars().count() > max {
                return Err(Invalid::new(
                    k.as_str(),
                    format!("must be at most {max} characters"),
                ));
            }
            Ok(s.trim().to_owned())
        };
        match k.as_str() {
            "category" | "slug" if !patching => {}
            "name" => c.name = text(100)?,
            "description" => c.description = text(1000)?,
            "section" => {
                c.section = match v {
                    Value::Null => None,
                    _ => Some(text(100)?).filter(|s| !s.is_empty()),
                }
            }
            "default_preference" => {
                c.default_preference = match v.as_str() {
                    Some("opt_in") => DefaultPreference::OptIn,
                    Some("opt_out") => DefaultPreference::OptOut,
                    Some("mandatory") | Some("cant_unsubscribe") => DefaultPreference::Mandatory,
                    _ => {
                        return Err(Invalid::new(
                            k.as_str(),
                            format!("must be opt_in, opt_out or mandatory, got {v}"),
                        ))
                    }
                }
            }
            "locked_channels" => c.locked_channels = channels(k, Some(v))?,
            "visible" => {
                c.visible = v
                    .as_bool()
                    .ok_or_else(|| Invalid::new(k.as_str(), "must be true or false"))?
            }
            _ => return Err(Invalid::new(k.as_str(), "is not a category attribute")),
        }
    }
    if c.name.is_empty() {
        c.name = c.slug.clone();
    }
    Ok(())
}

/// A category slug: 1–64 of `a-z 0-9 - _`.
pub fn parse_slug(raw: &str) -> Result<String, Invalid> {
    let s = raw.trim();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Invalid::new(
            "category",
            format!("'{s}' is not a category slug (1-64 of a-z, 0-9, - and _)"),
        ))
    }
}

#[cfg(test)]
mod tests;
