use super::*;
use crate::channel::IdentityMeta;
use crate::ids::DistinctId;
use crate::preference::{CategoryChoice, Choice};
use crate::profile::Status;
use crate::workflow::WorkflowInput;
use chrono::Utc;
use serde_json::{json, Value};

fn workflow(policy: Value) -> Workflow {
    let input: WorkflowInput = serde_json::from_value(json!({
        "slug": "w",
        "category": "news",
        "policy": policy,
        "channels": {
            "email": {"subject": "s", "text": "t"},
            "sms": {"text": "t"},
            "slack": {"text": "t"},
            "inbox": {"body": "b"}
        }
    }))
    .unwrap();
    Workflow::parse(input).unwrap()
}

fn identity(channel: Channel, value: Value) -> Identity {
    Identity::parse(channel, &value, &IdentityMeta::default()).unwrap()
}

/// A user with an identity on every channel of the workflow.
fn user() -> Profile {
    let mut p = Profile::new(DistinctId::parse("ada").unwrap(), Utc::now());
    p.identities = vec![
        identity(Channel::Email, json!("ada@example.com")),
        identity(Channel::Sms, json!("+14155550100")),
        identity(
            Channel::Slack,
            json!({"user_id": "U123", "access_token": "xoxb-1"}),
        ),
        identity(Channel::Inbox, json!("ada")),
    ];
    p
}

fn news(default: DefaultPreference) -> Category {
    Category {
        slug: "news".into(),
        name: "News".into(),
        description: String::new(),
        section: None,
        default_preference: default,
        locked_channels: BTreeSet::new(),
        visible: true,
    }
}

#[derive(Debug, PartialEq)]
enum Fate {
    Now(Value),
    Fallback(Value),
    Skipped(SkipReason),
    Absent,
}

fn fate(plan: &Plan, channel: Channel) -> Fate {
    let found = |list: &[Send]| {
        list.iter()
            .find(|s| s.channel == channel)
            .map(|s| s.identity.value.clone())
    };
    if let Some(v) = found(&plan.now) {
        return Fate::Now(v);
    }
    if let Some(v) = found(&plan.fallbacks) {
        return Fate::Fallback(v);
    }
    match plan.skipped.iter().find(|(c, _)| *c == channel) {
        Some((_, r)) => Fate::Skipped(*r),
        None => Fate::Absent,
    }
}

fn every_provider(i: &Identity) -> Route {
    Route::Configured(i.channel)
}

/// Each case changes one thing about an otherwise sendable user and says what becomes of the
/// email channel and of the SMS channel (which the change should leave alone unless it is
/// about the user as a whole).
#[test]
fn every_skip_reason_arises_from_its_state_and_nothing_else() {
    type Setup = fn(&mut Profile, &mut Category);
    let email = || Fate::Now(json!("ada@example.com"));
    let sms = || Fate::Now(json!("+14155550100"));
    let cases: Vec<(&str, Setup, Fate, Fate)> = vec![
        ("nothing changed", |_, _| {}, email(), sms()),
        (
            "disabled user",
            |p, _| p.status = Status::Disabled,
            Fate::Skipped(SkipReason::UserDisabled),
            Fate::Skipped(SkipReason::UserDisabled),
        ),
        (
            "disabled user in a mandatory category",
            |p, c| {
                p.status = Status::Disabled;
                c.default_preference = DefaultPreference::Mandatory;
            },
            Fate::Skipped(SkipReason::UserDisabled),
            Fate::Skipped(SkipReason::UserDisabled),
        ),
        (
            "user opted out of the category",
            |p, _| opt(p, Choice::OptOut, &[]),
            Fate::Skipped(SkipReason::CategoryOptedOut),
            Fate::Skipped(SkipReason::CategoryOptedOut),
        ),
        (
            "category defaults to opt-out, no choice made",
            |_, c| c.default_preference = DefaultPreference::OptOut,
            Fate::Skipped(SkipReason::CategoryOptedOut),
            Fate::Skipped(SkipReason::CategoryOptedOut),
        ),
        (
            "category defaults to opt-out, user opted in",
            |p, c| {
                c.default_preference = DefaultPreference::OptOut;
                opt(p, Choice::OptIn, &[]);
            },
            email(),
            sms(),
        ),
        (
            "opted out of another category",
            |p, _| {
                p.preferences.categories.insert(
                    "other".into(),
                    CategoryChoice {
                        preference: Choice::OptOut,
                        opt_out_channels: BTreeSet::new(),
                    },
                );
            },
            email(),
            sms(),
        ),
        (
            "email turned off for the category",
            |p, _| opt(p, Choice::OptIn, &[Channel::Email]),
            Fate::Skipped(SkipReason::ChannelOptedOut),
            sms(),
        ),
        (
            "email turned off, but the category locks email",
            |p, c| {
                opt(p, Choice::OptIn, &[Channel::Email]);
                c.locked_channels.insert(Channel::Email);
            },
            email(),
            sms(),
        ),
        (
            "email restricted globally",
            |p, _| {
                p.preferences.restricted_channels.insert(Channel::Email);
            },
            Fate::Skipped(SkipReason::ChannelRestricted),
            sms(),
        ),
        (
            "email restricted globally, category mandatory",
            |p, c| {
                p.preferences.restricted_channels.insert(Channel::Email);
                c.default_preference = DefaultPreference::Mandatory;
            },
            email(),
            sms(),
        ),
        (
            "opted out of a mandatory category",
            |p, c| {
                opt(p, Choice::OptOut, &[Channel::Sms]);
                c.default_preference = DefaultPreference::Mandatory;
            },
            email(),
            sms(),
        ),
        (
            "no email identity",
            |p, _| p.identities.retain(|i| i.channel != Channel::Email),
            Fate::Skipped(SkipReason::NoIdentity),
            sms(),
        ),
        (
            "email permanently failed",
            |p, _| p.identities[0].perma_status = IdentityStatus::Disabled,
            Fate::Skipped(SkipReason::IdentityInvalid),
            sms(),
        ),
        (
            "email marked invalid by a provider",
            |p, _| {
                p.identities[0] =
                    crate::health::mark_invalid(&p.identities[0], "smtp 550", Utc::now())
            },
            Fate::Skipped(SkipReason::IdentityInvalid),
            sms(),
        ),
        (
            "email disabled",
            |p, _| p.identities[0].status = IdentityStatus::Disabled,
            Fate::Skipped(SkipReason::IdentityInvalid),
            sms(),
        ),
        (
            "first email failed, second valid: the second is used",
            |p, _| {
                p.identities[0] =
                    crate::health::mark_invalid(&p.identities[0], "smtp 550", Utc::now());
                p.identities
                    .push(identity(Channel::Email, json!("ada@work.example")));
            },
            Fate::Now(json!("ada@work.example")),
            sms(),
        ),
        (
            "opted out and no identity: the preference is the reason",
            |p, _| {
                opt(p, Choice::OptOut, &[]);
                p.identities.clear();
            },
            Fate::Skipped(SkipReason::CategoryOptedOut),
            Fate::Skipped(SkipReason::CategoryOptedOut),
        ),
    ];
    let w = workflow(json!("all"));
    for (name, setup, want_email, want_sms) in cases {
        let mut p = user();
        let mut c = news(DefaultPreference::OptIn);
        setup(&mut p, &mut c);
        let plan = plan(&w, &p, Some(&c), None, &every_provider);
        assert_eq!(fate(&plan, Channel::Email), want_email, "{name}: email");
        assert_eq!(fate(&plan, Channel::Sms), want_sms, "{name}: sms");
        assert!(plan.fallbacks.is_empty(), "{name}");
        // Every channel of the workflow has exactly one fate.
        assert_eq!(plan.now.len() + plan.skipped.len(), 4, "{name}");
    }
}

fn opt(p: &mut Profile, preference: Choice, off: &[Channel]) {
    p.preferences.categories.insert(
        "news".into(),
        CategoryChoice {
            preference,
            opt_out_channels: off.iter().copied().collect(),
        },
    );
}

#[test]
fn no_provider_when_none_is_configured_unless_the_identity_carries_its_endpoint() {
    let w = workflow(json!("all"));
    let mut p = user();
    // A Slack identity with its own incoming webhook after one that needs a bot token.
    p.identities.push(identity(
        Channel::Slack,
        json!({"incoming_webhook": {"url": "https://hooks.slack.com/services/T0/B0/x"}}),
    ));
    let only_email_and_webhooks = |i: &Identity| {
        if i.channel == Channel::Email || i.value.get("incoming_webhook").is_some() {
            Route::Configured(i.channel)
        } else {
            Route::NoProvider
        }
    };
    let plan = plan(
        &w,
        &p,
        Some(&news(DefaultPreference::OptIn)),
        None,
        &only_email_and_webhooks,
    );
    assert_eq!(
        fate(&plan, Channel::Email),
        Fate::Now(json!("ada@example.com"))
    );
    assert_eq!(
        fate(&plan, Channel::Slack),
        Fate::Now(json!({"incoming_webhook": {"url": "https://hooks.slack.com/services/T0/B0/x"}}))
    );
    assert_eq!(
        fate(&plan, Channel::Sms),
        Fate::Skipped(SkipReason::NoProvider)
    );
    assert_eq!(
        fate(&plan, Channel::Inbox),
        Fate::Skipped(SkipReason::NoProvider)
    );
    // A disabled user is skipped for being disabled, not for the missing provider.
    p.status = Status::Disabled;
    let plan = plan_of(&w, &p, &|_| Route::NoProvider);
    assert_eq!(
        fate(&plan, Channel::Sms),
        Fate::Skipped(SkipReason::UserDisabled)
    );
}

fn plan_of(w: &Workflow, p: &Profile, configured: &dyn Fn(&Identity) -> Route) -> Plan {
    plan(
        w,
        p,
        Some(&news(DefaultPreference::OptIn)),
        None,
        configured,
    )
}

#[test]
fn recipient_channels_restrict_the_plan_without_logging_skips() {
    let w = workflow(json!("all"));
    let mut p = user();
    p.identities.retain(|i| i.channel != Channel::Sms);
    let plan = plan(
        &w,
        &p,
        Some(&news(DefaultPreference::OptIn)),
        Some(&[Channel::Sms, Channel::Inbox, Channel::Discord]),
        &every_provider,
    );
    assert_eq!(fate(&plan, Channel::Email), Fate::Absent);
    assert_eq!(fate(&plan, Channel::Slack), Fate::Absent);
    assert_eq!(
        fate(&plan, Channel::Sms),
        Fate::Skipped(SkipReason::NoIdentity)
    );
    assert_eq!(fate(&plan, Channel::Inbox), Fate::Now(json!("ada")));
    assert_eq!(fate(&plan, Channel::Discord), Fate::Absent);
}

#[test]
fn without_a_category_only_status_restrictions_and_identities_apply() {
    let w = workflow(json!("all"));
    let mut p = user();
    opt(&mut p, Choice::OptOut, &[]);
    p.preferences.restricted_channels.insert(Channel::Sms);
    let plan = plan(&w, &p, None, None, &every_provider);
    assert_eq!(
        fate(&plan, Channel::Email),
        Fate::Now(json!("ada@example.com"))
    );
    assert_eq!(
        fate(&plan, Channel::Sms),
        Fate::Skipped(SkipReason::ChannelRestricted)
    );
    p.status = Status::Disabled;
    let plan = plan_of_none(&w, &p);
    assert_eq!(
        fate(&plan, Channel::Email),
        Fate::Skipped(SkipReason::UserDisabled)
    );
}

fn plan_of_none(w: &Workflow, p: &Profile) -> Plan {
    plan(w, p, None, None, &every_provider)
}

#[test]
fn first_success_sends_the_first_sendable_channel_and_keeps_the_rest_in_order() {
    let w = workflow(json!({"first_success": ["inbox", "slack", "email", "sms"]}));
    let mut p = user();
    // Slack is unavailable: it is skipped and the chain passes over it.
    p.identities.retain(|i| i.channel != Channel::Slack);
    let plan = plan_of(&w, &p, &every_provider);
    assert_eq!(
        plan.now.iter().map(|s| s.channel).collect::<Vec<_>>(),
        vec![Channel::Inbox]
    );
    assert_eq!(
        plan.fallbacks.iter().map(|s| s.channel).collect::<Vec<_>>(),
        vec![Channel::Email, Channel::Sms]
    );
    assert_eq!(plan.skipped, vec![(Channel::Slack, SkipReason::NoIdentity)]);
    let next = |c| plan.next_after(c).map(|s| s.channel);
    assert_eq!(next(Channel::Inbox), Some(Channel::Email));
    assert_eq!(next(Channel::Email), Some(Channel::Sms));
    assert_eq!(next(Channel::Sms), None);
    assert_eq!(next(Channel::Slack), None);

    // The order is the policy's, not the channels' own.
    let w = workflow(json!({"first_success": ["sms", "email"]}));
    let plan = plan_of(&w, &user(), &every_provider);
    assert_eq!(fate(&plan, Channel::Sms), Fate::Now(json!("+14155550100")));
    assert_eq!(
        fate(&plan, Channel::Email),
        Fate::Fallback(json!("ada@example.com"))
    );
    // Channels with templates that the policy does not list are not used.
    assert_eq!(fate(&plan, Channel::Inbox), Fate::Absent);

    // Nothing sendable: nothing now, nothing to fall back to.
    let mut off = user();
    off.status = Status::Disabled;
    let plan = plan_of(&w, &off, &every_provider);
    assert!(plan.now.is_empty() && plan.fallbacks.is_empty());
    assert_eq!(plan.skipped.len(), 2);
}

/// An iOS user's tokens against the environment's push providers: the first token a provider of
/// its kind delivers is the one planned; a token only a provider of another kind could take is
/// `provider_mismatch`, not `no_provider`.
#[test]
fn an_ios_token_is_planned_only_for_a_provider_of_its_kind() {
    let input: WorkflowInput = serde_json::from_value(json!({
        "slug": "w", "channels": {"iospush": {"title": "t", "body": "b"}}
    }))
    .unwrap();
    let w = Workflow::parse(input).unwrap();
    let token = |value: &str, provider: &str| {
        let meta = IdentityMeta {
            provider: Some(provider.into()),
            ..IdentityMeta::default()
        };
        Identity::parse(Channel::Iospush, &json!(value), &meta).unwrap()
    };
    let mut p = Profile::new(DistinctId::parse("ada").unwrap(), Utc::now());
    p.identities = vec![token("apns-1", "apns"), token("fcm-1", "fcm")];
    let kinds = |pairs: &[(Channel, &str)]| -> crate::delivery::Configured {
        pairs.iter().map(|(c, k)| (*c, (*k).to_owned())).collect()
    };
    let fate_with = |p: &Profile, configured: crate::delivery::Configured| {
        let plan = plan(&w, p, None, None, &|i| {
            crate::delivery::route(i, &configured)
        });
        fate(&plan, Channel::Iospush)
    };
    let apns = kinds(&[(Channel::Iospush, "apns")]);
    let fcm_on_ios = kinds(&[(Channel::Iospush, "fcm")]);
    let fcm_on_android = kinds(&[(Channel::Androidpush, "fcm")]);
    assert_eq!(fate_with(&p, apns.clone()), Fate::Now(json!("apns-1")));
    assert_eq!(fate_with(&p, fcm_on_ios.clone()), Fate::Now(json!("fcm-1")));
    assert_eq!(
        fate_with(&p, fcm_on_android.clone()),
        Fate::Now(json!("fcm-1"))
    );
    assert_eq!(
        fate_with(&p, kinds(&[])),
        Fate::Skipped(SkipReason::NoProvider)
    );
    let only_apns_token = {
        let mut p = p.clone();
        p.identities.truncate(1);
        p
    };
    assert_eq!(
        fate_with(&only_apns_token, fcm_on_ios),
        Fate::Skipped(SkipReason::ProviderMismatch)
    );
    assert_eq!(
        fate_with(&only_apns_token, fcm_on_android),
        Fate::Skipped(SkipReason::NoProvider)
    );
    let only_fcm_token = {
        let mut p = p.clone();
        p.identities.remove(0);
        p
    };
    assert_eq!(
        fate_with(&only_fcm_token, apns),
        Fate::Skipped(SkipReason::ProviderMismatch)
    );
}
