//! Notification preferences: the categories (topics) operators define, each user's choices, and
//! the one decision every send goes through ([`decide`]).

use crate::channel::Channel;
use crate::error::Invalid;
use crate::profile::{Profile, Status};
use crate::IdentityStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

    /// `opt_in`, `opt_out`, or `mandatory` (also spelt `cant_unsubscribe`).
    pub fn from_name(name: &str) -> Option<DefaultPreference> {
        match name {
            "opt_in" => Some(DefaultPreference::OptIn),
            "opt_out" => Some(DefaultPreference::OptOut),
            "mandatory" | "cant_unsubscribe" => Some(DefaultPreference::Mandatory),
            _ => None,
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

    /// `opt_in` or `opt_out`.
    pub fn from_name(name: &str) -> Option<Choice> {
        match name {
            "opt_in" => Some(Choice::OptIn),
            "opt_out" => Some(Choice::OptOut),
            _ => None,
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

/// The refusal for something that is not a preference channel; `shown` is what the caller sent.
pub fn not_a_channel(field: impl Into<String>, shown: impl std::fmt::Display) -> Invalid {
    Invalid::new(
        field,
        format!(
            "{shown} is not a channel ({})",
            PREFERENCE_CHANNELS.map(Channel::as_str).join(", ")
        ),
    )
}

/// A channel by its preference name (`email`, `ms_teams`).
pub fn channel_named(field: &str, name: &str) -> Result<Channel, Invalid> {
    Channel::from_name(name).ok_or_else(|| not_a_channel(field, Value::from(name)))
}

// ---- What a user sees -------------------------------------------------------------------------

/// One channel of a category as a user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CategoryChannelView {
    pub channel: Channel,
    pub preference: Choice,
    /// False for a channel the category locks (or every channel of a mandatory category).
    pub is_editable: bool,
}

/// A category's effective state for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryView {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub section: Option<String>,
    /// The category's default (the wire's `original_preference`).
    pub default_preference: DefaultPreference,
    /// The user's effective choice: theirs, else the default; always opt-in when mandatory.
    pub preference: Choice,
    pub is_editable: bool,
    /// In [`PREFERENCE_CHANNELS`] order; channels turned off are left out unless asked for.
    pub channels: Vec<CategoryChannelView>,
}

impl CategoryView {
    pub fn of(category: &Category, prefs: &Preferences, show_opt_out_channels: bool) -> Self {
        let mandatory = category.default_preference == DefaultPreference::Mandatory;
        let choice = prefs.categories.get(&category.slug);
        let preference = match (mandatory, choice) {
            (true, _) => Choice::OptIn,
            (false, Some(c)) => c.preference,
            (false, None) if category.default_preference == DefaultPreference::OptIn => {
                Choice::OptIn
            }
            (false, None) => Choice::OptOut,
        };
        let channels = PREFERENCE_CHANNELS
            .iter()
            .filter_map(|&c| {
                let locked = mandatory || category.locked_channels.contains(&c);
                let off = !locked
                    && (preference == Choice::OptOut
                        || choice.is_some_and(|x| x.opt_out_channels.contains(&c)));
                if off && !show_opt_out_channels {
                    return None;
                }
                Some(CategoryChannelView {
                    channel: c,
                    preference: if off { Choice::OptOut } else { Choice::OptIn },
                    is_editable: !locked,
                })
            })
            .collect();
        CategoryView {
            slug: category.slug.clone(),
            name: category.name.clone(),
            description: category.description.clone(),
            section: category.section.clone(),
            default_preference: category.default_preference,
            preference,
            is_editable: !mandatory,
            channels,
        }
    }
}

/// One channel of a user's global channel preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelView {
    pub channel: Channel,
    /// Only notifications that cannot be opted out of are sent on it.
    pub is_restricted: bool,
}

/// The global channel preferences, every channel in [`PREFERENCE_CHANNELS`] order.
pub fn channel_views(prefs: &Preferences) -> Vec<ChannelView> {
    PREFERENCE_CHANNELS
        .iter()
        .map(|&channel| ChannelView {
            channel,
            is_restricted: prefs.restricted_channels.contains(&channel),
        })
        .collect()
}

/// Visible categories of one section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: Option<String>,
    pub categories: Vec<CategoryView>,
}

/// Everything a user's preference page shows: visible categories by section, and the channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    /// Ordered by section name, the unnamed section first.
    pub sections: Vec<Section>,
    pub channels: Vec<ChannelView>,
}

impl UserView {
    pub fn of(categories: &[Category], prefs: &Preferences, show_opt_out_channels: bool) -> Self {
        let mut sections: BTreeMap<Option<String>, Vec<CategoryView>> = BTreeMap::new();
        for c in categories.iter().filter(|c| c.visible) {
            sections
                .entry(c.section.clone())
                .or_default()
                .push(CategoryView::of(c, prefs, show_opt_out_channels));
        }
        UserView {
            sections: sections
                .into_iter()
                .map(|(name, categories)| Section { name, categories })
                .collect(),
            channels: channel_views(prefs),
        }
    }
}

// ---- What a user asks for ---------------------------------------------------------------------

/// A user's choice for one category, as asked (`PATCH …/preference/category/{slug}/`, an item of
/// a bulk call): any channel names are already channels. Checked against the category by
/// [`ChoiceRequest::for_category`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceRequest {
    pub preference: Choice,
    /// Replaces the channels turned off for the category, when given.
    pub opt_out_channels: Option<BTreeSet<Channel>>,
    /// Turned back on (after `opt_out_channels`).
    pub opt_in_channels: BTreeSet<Channel>,
}

impl ChoiceRequest {
    pub fn new(preference: Choice) -> Self {
        ChoiceRequest {
            preference,
            opt_out_channels: None,
            opt_in_channels: BTreeSet::new(),
        }
    }

    /// The request made for `category`: refused if it opts out of a mandatory category or turns
    /// off a channel the category locks.
    pub fn for_category(self, category: &Category) -> Result<CategoryChange, Invalid> {
        let change = CategoryChange {
            category: category.clone(),
            request: self,
        };
        change.apply(&mut Preferences::default())?;
        Ok(change)
    }
}

/// A [`ChoiceRequest`] that holds for its category. Applying it can still be refused if the
/// user's stored channel opt-outs include a channel the category has locked since.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryChange {
    category: Category,
    request: ChoiceRequest,
}

impl CategoryChange {
    pub fn category(&self) -> &Category {
        &self.category
    }

    /// Sets the choice on `prefs`; on refusal `prefs` is unchanged.
    pub fn apply(&self, prefs: &mut Preferences) -> Result<(), Invalid> {
        let (category, request) = (&self.category, &self.request);
        if category.default_preference == DefaultPreference::Mandatory
            && request.preference == Choice::OptOut
        {
            return Err(Invalid::new(
                "preference",
                format!(
                    "'{}' is mandatory: users cannot opt out of it",
                    category.slug
                ),
            ));
        }
        let mut off = match &request.opt_out_channels {
            Some(set) => set.clone(),
            None => prefs
                .categories
                .get(&category.slug)
                .map(|c| c.opt_out_channels.clone())
                .unwrap_or_default(),
        };
        for c in &request.opt_in_channels {
            off.remove(c);
        }
        if let Some(locked) = off.iter().find(|c| category.locked_channels.contains(c)) {
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
                preference: request.preference,
                opt_out_channels: off,
            },
        );
        Ok(())
    }
}

/// One line of `PATCH …/preference/channel_preference/`: restrict a channel to notifications
/// that cannot be opted out of, or lift that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelRestriction {
    pub channel: Channel,
    pub restricted: bool,
}

/// Applies restrictions in order (a later line for a channel wins).
pub fn restrict(prefs: &mut Preferences, restrictions: &[ChannelRestriction]) {
    for r in restrictions {
        if r.restricted {
            prefs.restricted_channels.insert(r.channel);
        } else {
            prefs.restricted_channels.remove(&r.channel);
        }
    }
}

// ---- Declaring categories ---------------------------------------------------------------------

/// Attributes of a category a caller sets (`POST /v1/category/`, `PATCH /v1/category/{slug}/`,
/// the configuration file); `None` leaves one as it is. Texts are checked and trimmed by
/// [`Category::declare`] and [`Category::patched`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryAttributes {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` clears the section.
    pub section: Option<Option<String>>,
    pub default_preference: Option<DefaultPreference>,
    pub locked_channels: Option<BTreeSet<Channel>>,
    pub visible: Option<bool>,
}

/// A category text: no U+0000, at most `max` characters, trimmed.
fn category_text(field: &str, s: &str, max: usize) -> Result<String, Invalid> {
    crate::validate::no_nul(s).map_err(|rule| Invalid::new(field, rule))?;
    if s.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(s.trim().to_owned())
}

impl Category {
    /// A new category: `slug` per [`parse_slug`]; the name defaults to the slug, the default
    /// preference to opt-in.
    pub fn declare(slug: &str, attributes: CategoryAttributes) -> Result<Category, Invalid> {
        let slug = parse_slug(slug)?;
        Category {
            name: slug.clone(),
            slug,
            description: String::new(),
            section: None,
            default_preference: DefaultPreference::OptIn,
            locked_channels: BTreeSet::new(),
            visible: true,
        }
        .patched(attributes)
    }

    /// This category with `attributes` applied: names at most 100 characters, descriptions 1000,
    /// an empty section is none, an empty name is the slug.
    pub fn patched(mut self, attributes: CategoryAttributes) -> Result<Category, Invalid> {
        let CategoryAttributes {
            name,
            description,
            section,
            default_preference,
            locked_channels,
            visible,
        } = attributes;
        if let Some(n) = name {
            self.name = category_text("name", &n, 100)?;
        }
        if let Some(d) = description {
            self.description = category_text("description", &d, 1000)?;
        }
        if let Some(s) = section {
            self.section = match s {
                None => None,
                Some(s) => Some(category_text("section", &s, 100)?).filter(|s| !s.is_empty()),
            };
        }
        if let Some(d) = default_preference {
            self.default_preference = d;
        }
        if let Some(l) = locked_channels {
            self.locked_channels = l;
        }
        if let Some(v) = visible {
            self.visible = v;
        }
        if self.name.is_empty() {
            self.name = self.slug.clone();
        }
        Ok(self)
    }
}

/// A category slug: 1–64 of `a-z 0-9 - _`.
pub fn parse_slug(raw: &str) -> Result<String, Invalid> {
    crate::validate::slug(raw, "category").map_err(|rule| Invalid::new("category", rule))
}

#[cfg(test)]
mod tests;
