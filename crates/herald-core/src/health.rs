//! Identity health: a provider's permanent answer about one address (a hard bounce, an unknown
//! number, an unregistered push token, a webhook that is gone) marks that identity
//! `perma_status: invalid` with the answer and the time; dispatch then skips it
//! (`identity_invalid`) until an operator resets it. Pure rules over plain data; the use cases
//! that persist them are in [`crate::service::health`].

use crate::channel::{Channel, Identity, IdentityStatus, PermaFailure};
use crate::error::Invalid;
use crate::profile::Profile;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// The most characters of a provider's answer kept as an identity's `perma_reason` (the rest is
/// cut, with `…`): a provider may answer with a page of HTML, and a profile has a size limit.
pub const MAX_REASON_CHARS: usize = 300;

/// `identity` as a permanent failure heard at `at` leaves it: `perma_status: invalid` with the
/// (shortened) `reason` and `at`. An identity already `invalid` keeps its first reason and time,
/// so hearing the same failure again (a retried callback, a second message to the same dead
/// address) changes nothing. `status` (the caller's own switch) is left as it is.
pub fn mark_invalid(identity: &Identity, reason: &str, at: DateTime<Utc>) -> Identity {
    let mut next = identity.clone();
    if next.perma_status == IdentityStatus::Invalid && next.perma_failure.is_some() {
        return next;
    }
    next.perma_status = IdentityStatus::Invalid;
    next.perma_failure = Some(Box::new(PermaFailure {
        reason: shorten(reason),
        at: crate::profile::truncate(at),
    }));
    next
}

/// `identity` as an operator's reset leaves it: `perma_status: active`, no reason or time.
/// Resets a legacy `disabled` too.
pub fn reset(identity: &Identity) -> Identity {
    let mut next = identity.clone();
    next.perma_status = IdentityStatus::Active;
    next.perma_failure = None;
    next
}

/// Which identity of a profile a health change is about: its channel and its address as
/// [`Identity::dedup_key`] compares them (so `Ada@Example.com` finds `ada@example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub channel: Channel,
    pub key: String,
    /// The address as given, for history and error messages.
    pub value: Value,
}

impl Target {
    pub fn of(identity: &Identity) -> Target {
        Target {
            channel: identity.channel,
            key: identity.dedup_key(),
            value: identity.value.clone(),
        }
    }

    /// A target from an API body `{"channel": "email", "value": "ada@example.com"}`: the channel
    /// by name, the value parsed and normalised as that channel's identities are.
    pub fn parse(body: &Value) -> Result<Target, Invalid> {
        let name = body
            .get("channel")
            .and_then(Value::as_str)
            .ok_or_else(|| Invalid::new("channel", "is required: a channel name such as email"))?;
        let channel = Channel::from_name(name)
            .ok_or_else(|| Invalid::new("channel", format!("'{name}' is not a channel")))?;
        let raw = body
            .get("value")
            .ok_or_else(|| Invalid::new("value", "is required: the identity's address"))?;
        let identity = Identity::parse(channel, raw, &Default::default())
            .map_err(|rule| Invalid::new("value", rule))?;
        Ok(Target::of(&identity))
    }

    fn matches(&self, identity: &Identity) -> bool {
        identity.channel == self.channel && identity.dedup_key() == self.key
    }
}

/// Marks the profile's identity `target` invalid ([`mark_invalid`]). `false`: the profile no
/// longer holds it (removed since the message was sent), and nothing changed.
pub fn mark_on_profile(
    profile: &mut Profile,
    target: &Target,
    reason: &str,
    at: DateTime<Utc>,
) -> bool {
    change(profile, target, |i| mark_invalid(i, reason, at))
}

/// Resets the profile's identity `target` ([`reset`]). An identity the profile does not hold is
/// refused, naming `value`.
pub fn reset_on_profile(profile: &mut Profile, target: &Target) -> Result<(), Invalid> {
    if change(profile, target, reset) {
        Ok(())
    } else {
        Err(Invalid::new(
            "value",
            format!(
                "the user has no {} identity {}",
                target.channel.as_str(),
                target.value
            ),
        ))
    }
}

fn change(profile: &mut Profile, target: &Target, f: impl Fn(&Identity) -> Identity) -> bool {
    let mut found = false;
    for identity in profile.identities.iter_mut() {
        if target.matches(identity) {
            *identity = f(identity);
            found = true;
        }
    }
    found
}

/// What history records as the request of a health change (the actor says who): which identity,
/// the status it was given and, for a failure, why.
pub fn request(target: &Target, status: IdentityStatus, reason: Option<&str>) -> Value {
    let mut change = json!({
        "channel": target.channel.as_str(),
        "value": target.value,
        "status": status.as_str(),
    });
    if let Some(reason) = reason {
        change["reason"] = Value::String(shorten(reason));
    }
    json!({ "$perma_status": change })
}

/// Which message a late answer is about: Herald's message id, or the provider's id for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef {
    Id(String),
    ProviderId(String),
}

/// How an email bounced, as a bounce report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceKind {
    /// The mailbox does not exist or refuses mail for good: the message fails and the address
    /// is marked invalid.
    Hard,
    /// A passing refusal (mailbox full, greylisting): noted on the message only.
    Soft,
    /// The recipient reported the message as spam: noted on the message only (the address
    /// works; whether to stop mailing them is a preference, not a dead address).
    Complaint,
}

impl BounceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceKind::Hard => "hard",
            BounceKind::Soft => "soft",
            BounceKind::Complaint => "complaint",
        }
    }
}

/// A bounce report as `POST /v1/callback/email/{env}/` takes it:
/// `{"message_id" | "provider_id", "recipient"?, "type": "hard"|"soft"|"complaint", "reason"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub message: MessageRef,
    /// The address that bounced, when the report names it: it must be the one the message
    /// went to.
    pub recipient: Option<String>,
    pub kind: BounceKind,
    pub reason: Option<String>,
}

impl Bounce {
    pub fn parse(body: &Value) -> Result<Bounce, Invalid> {
        let o = body
            .as_object()
            .ok_or_else(|| Invalid::new("", "a bounce report is a JSON object"))?;
        for key in o.keys() {
            if !matches!(
                key.as_str(),
                "message_id" | "provider_id" | "recipient" | "type" | "reason"
            ) {
                return Err(Invalid::new(
                    key.clone(),
                    "is not a field of a bounce report (message_id, provider_id, recipient, type, reason)",
                ));
            }
        }
        let text = |k: &str| -> Result<Option<String>, Invalid> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 1000 => {
                    Ok(Some(s.trim().to_owned()))
                }
                Some(_) => Err(Invalid::new(k, "must be a string of 1 to 1000 characters")),
            }
        };
        let message = match (text("message_id")?, text("provider_id")?) {
            (Some(id), None) => MessageRef::Id(id),
            (None, Some(id)) => MessageRef::ProviderId(id),
            (Some(_), Some(_)) => {
                return Err(Invalid::new(
                    "provider_id",
                    "give message_id or provider_id, not both",
                ))
            }
            (None, None) => {
                return Err(Invalid::new(
                    "message_id",
                    "is required (Herald's message id), or provider_id (the SMTP queue id)",
                ))
            }
        };
        let kind = match text("type")?.as_deref() {
            Some("hard") => BounceKind::Hard,
            Some("soft") => BounceKind::Soft,
            Some("complaint") => BounceKind::Complaint,
            Some(other) => {
                return Err(Invalid::new(
                    "type",
                    format!("'{other}' is not one of hard, soft, complaint"),
                ))
            }
            None => return Err(Invalid::new("type", "is required: hard, soft or complaint")),
        };
        Ok(Bounce {
            message,
            recipient: text("recipient")?,
            kind,
            reason: text("reason")?,
        })
    }

    /// What the report means for the message: a hard bounce fails it and marks the address; a
    /// soft bounce or a complaint is noted.
    pub fn answer(&self) -> crate::message::LateAnswer {
        use crate::message::LateAnswer;
        let reason = match &self.reason {
            Some(r) => format!("{} bounce: {r}", self.kind.as_str()),
            None => format!("{} bounce", self.kind.as_str()),
        };
        let reason = match self.kind {
            BounceKind::Complaint => reason.replacen("complaint bounce", "complaint", 1),
            _ => reason,
        };
        match self.kind {
            BounceKind::Hard => LateAnswer::Failed {
                reason,
                identity_invalid: true,
            },
            BounceKind::Soft | BounceKind::Complaint => LateAnswer::Note { reason },
        }
    }
}

fn shorten(reason: &str) -> String {
    let reason = reason.trim();
    if reason.chars().count() <= MAX_REASON_CHARS {
        return reason.to_owned();
    }
    let mut cut: String = reason.chars().take(MAX_REASON_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DistinctId;
    use chrono::TimeZone;

    fn email(value: &str) -> Identity {
        Identity::parse(Channel::Email, &json!(value), &Default::default()).unwrap()
    }

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_764_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn marking_sets_invalid_with_reason_and_time_and_keeps_status() {
        let mut id = email("ada@example.com");
        id.status = IdentityStatus::Disabled;
        let marked = mark_invalid(&id, "smtp Rcpt: 550 no such user", t(0));
        assert_eq!(marked.perma_status, IdentityStatus::Invalid);
        assert_eq!(
            marked.status,
            IdentityStatus::Disabled,
            "the caller's switch"
        );
        assert_eq!(
            marked.perma_failure,
            Some(Box::new(PermaFailure {
                reason: "smtp Rcpt: 550 no such user".into(),
                at: t(0)
            }))
        );
        assert_eq!(marked.value, id.value);
        let wire = marked.to_wire();
        assert_eq!(wire["perma_status"], "invalid");
        assert_eq!(wire["perma_reason"], "smtp Rcpt: 550 no such user");
        assert_eq!(wire["perma_at"], "2025-11-24T16:00:00.000000+00:00");
        assert!(id.to_wire().get("perma_reason").is_none());
    }

    #[test]
    fn marking_again_keeps_the_first_reason_and_time() {
        let once = mark_invalid(&email("a@x.com"), "first", t(0));
        let twice = mark_invalid(&once, "second", t(60));
        assert_eq!(once, twice);
    }

    #[test]
    fn a_legacy_disabled_identity_becomes_invalid_with_a_reason() {
        let mut id = email("a@x.com");
        id.perma_status = IdentityStatus::Disabled;
        let marked = mark_invalid(&id, "bounce", t(0));
        assert_eq!(marked.perma_status, IdentityStatus::Invalid);
        assert_eq!(marked.perma_failure.unwrap().reason, "bounce");
    }

    #[test]
    fn a_long_reason_is_shortened() {
        let long = "x".repeat(5000);
        let marked = mark_invalid(&email("a@x.com"), &long, t(0));
        let reason = marked.perma_failure.unwrap().reason;
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
        assert!(reason.ends_with('…'));
    }

    #[test]
    fn reset_clears_every_perma_state() {
        for status in [
            IdentityStatus::Active,
            IdentityStatus::Disabled,
            IdentityStatus::Invalid,
        ] {
            let mut id = mark_invalid(&email("a@x.com"), "gone", t(0));
            id.perma_status = status;
            let back = reset(&id);
            assert_eq!(back.perma_status, IdentityStatus::Active);
            assert_eq!(back.perma_failure, None);
            assert_eq!(back, email("a@x.com"));
        }
    }

    #[test]
    fn the_stored_form_round_trips_and_old_rows_read_as_healthy() {
        let marked = mark_invalid(&email("a@x.com"), "gone", t(0));
        let stored = serde_json::to_value(&marked).unwrap();
        assert_eq!(stored["perma_status"], "invalid");
        assert_eq!(serde_json::from_value::<Identity>(stored).unwrap(), marked);
        let old = json!({"channel": "email", "value": "a@x.com", "status": "active", "perma_status": "disabled"});
        let old: Identity = serde_json::from_value(old).unwrap();
        assert_eq!(
            (old.perma_status, old.perma_failure),
            (IdentityStatus::Disabled, None)
        );
    }

    #[test]
    fn profile_changes_find_the_identity_by_its_normalised_address() {
        let mut p = Profile::new(DistinctId::parse("ada").unwrap(), t(0));
        p.identities = vec![email("ada@example.com"), email("bob@example.com")];
        let target =
            Target::parse(&json!({"channel": "email", "value": "ADA@Example.com"})).unwrap();
        assert!(mark_on_profile(&mut p, &target, "550", t(1)));
        assert_eq!(p.identities[0].perma_status, IdentityStatus::Invalid);
        assert_eq!(p.identities[1].perma_status, IdentityStatus::Active);
        // The same address on another channel is another identity.
        let sms = Target {
            channel: Channel::Sms,
            ..target.clone()
        };
        let before = p.clone();
        assert!(!mark_on_profile(&mut p, &sms, "x", t(2)));
        assert_eq!(p, before);
        reset_on_profile(&mut p, &target).unwrap();
        assert_eq!(p.identities[0], email("ada@example.com"));
        let missing =
            Target::parse(&json!({"channel": "email", "value": "eve@example.com"})).unwrap();
        assert_eq!(
            reset_on_profile(&mut p, &missing).unwrap_err().field,
            "value"
        );
    }

    #[test]
    fn targets_name_the_field_they_break() {
        for (body, field) in [
            (json!({"value": "a@x.com"}), "channel"),
            (json!({"channel": "pager", "value": "a@x.com"}), "channel"),
            (json!({"channel": "email"}), "value"),
            (
                json!({"channel": "email", "value": "not-an-email"}),
                "value",
            ),
            (json!({"channel": "sms", "value": 5}), "value"),
        ] {
            assert_eq!(Target::parse(&body).unwrap_err().field, field, "{body}");
        }
    }

    #[test]
    fn bounce_reports_parse_and_mean_what_their_type_says() {
        use crate::message::LateAnswer;
        let hard = Bounce::parse(&json!({"message_id": "m1", "recipient": "a@x.com", "type": "hard", "reason": "550 5.1.1 no such user"})).unwrap();
        assert_eq!(hard.message, MessageRef::Id("m1".into()));
        assert_eq!(
            hard.answer(),
            LateAnswer::Failed {
                reason: "hard bounce: 550 5.1.1 no such user".into(),
                identity_invalid: true
            }
        );
        let soft = Bounce::parse(&json!({"provider_id": "Q1", "type": "soft"})).unwrap();
        assert_eq!(soft.message, MessageRef::ProviderId("Q1".into()));
        assert_eq!(
            soft.answer(),
            LateAnswer::Note {
                reason: "soft bounce".into()
            }
        );
        let complaint =
            Bounce::parse(&json!({"message_id": "m1", "type": "complaint", "reason": "abuse"}))
                .unwrap();
        assert_eq!(
            complaint.answer(),
            LateAnswer::Note {
                reason: "complaint: abuse".into()
            }
        );
        for (body, field) in [
            (json!([]), ""),
            (json!({"type": "hard"}), "message_id"),
            (
                json!({"message_id": "m", "provider_id": "p", "type": "hard"}),
                "provider_id",
            ),
            (json!({"message_id": "m"}), "type"),
            (json!({"message_id": "m", "type": "bounced"}), "type"),
            (json!({"message_id": 5, "type": "hard"}), "message_id"),
            (
                json!({"message_id": "m", "type": "hard", "extra": 1}),
                "extra",
            ),
        ] {
            assert_eq!(Bounce::parse(&body).unwrap_err().field, field, "{body}");
        }
    }

    #[test]
    fn the_history_request_says_which_identity_and_why() {
        let target = Target::of(&email("a@x.com"));
        assert_eq!(
            request(&target, IdentityStatus::Invalid, Some("550")),
            json!({"$perma_status": {"channel": "email", "value": "a@x.com", "status": "invalid", "reason": "550"}})
        );
        assert_eq!(
            request(&target, IdentityStatus::Active, None),
            json!({"$perma_status": {"channel": "email", "value": "a@x.com", "status": "active"}})
        );
    }
}
