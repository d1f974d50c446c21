use super::*;
use crate::channel::{Identity, IdentityMeta};
use crate::ids::DistinctId;
use chrono::Utc;
use serde_json::json;

fn category(default: DefaultPreference, locked: &[Channel]) -> Category {
    Category {
        slug: "news".into(),
        name: "News".into(),
        description: String::new(),
        section: None,
        default_preference: default,
        locked_channels: locked.iter().copied().collect(),
        visible: true,
    }
}

fn user(with_email: Option<IdentityStatus>) -> Profile {
    let mut p = Profile::new(DistinctId::parse("u").unwrap(), Utc::now());
    if let Some(status) = with_email {
        let mut id = Identity::parse(
            Channel::Email,
            &json!("u@example.com"),
            &IdentityMeta::default(),
        )
        .unwrap();
        match status {
            // A provider found the address dead: the perma status, with its reason.
            IdentityStatus::Invalid => id = crate::health::mark_invalid(&id, "gone", Utc::now()),
            other => id.status = other,
        }
        p.identities.push(id);
    }
    p
}

/// The rules written out independently of `decide`, for the exhaustive comparison.
fn model(
    disabled: bool,
    default: DefaultPreference,
    locked: bool,
    choice: Option<(Choice, bool)>,
    restricted: bool,
    identity: Option<IdentityStatus>,
) -> Result<(), Skip> {
    if disabled {
        return Err(Skip::UserDisabled);
    }
    let forced = default == DefaultPreference::Mandatory || locked;
    if !forced {
        let opted_in = match choice {
            Some((c, _)) => c == Choice::OptIn,
            None => default == DefaultPreference::OptIn,
        };
        if !opted_in {
            return Err(Skip::CategoryOptedOut);
        }
        if choice.is_some_and(|(_, channel_off)| channel_off) {
            return Err(Skip::ChannelOptedOut);
        }
        if restricted {
            return Err(Skip::ChannelRestricted);
        }
    }
    match identity {
        None => Err(Skip::NoIdentity),
        Some(IdentityStatus::Disabled | IdentityStatus::Invalid) => Err(Skip::IdentityInvalid),
        Some(IdentityStatus::Active) => Ok(()),
    }
}

#[test]
fn decide_follows_the_rules_for_every_combination() {
    let mut checked = 0;
    for disabled in [false, true] {
        for default in [
            DefaultPreference::OptIn,
            DefaultPreference::OptOut,
            DefaultPreference::Mandatory,
        ] {
            for locked in [false, true] {
                for choice in [
                    None,
                    Some((Choice::OptIn, false)),
                    Some((Choice::OptIn, true)),
                    Some((Choice::OptOut, false)),
                    Some((Choice::OptOut, true)),
                ] {
                    for restricted in [false, true] {
                        for identity in [
                            None,
                            Some(IdentityStatus::Active),
                            Some(IdentityStatus::Disabled),
                            Some(IdentityStatus::Invalid),
                        ] {
                            let cat =
                                category(default, if locked { &[Channel::Email] } else { &[] });
                            let mut p = user(identity);
                            if disabled {
                                p.status = Status::Disabled;
                            }
                            if let Some((preference, channel_off)) = choice {
                                let mut off = BTreeSet::new();
                                if channel_off {
                                    off.insert(Channel::Email);
                                }
                                p.preferences.categories.insert(
                                    "news".into(),
                                    CategoryChoice {
                                        preference,
                                        opt_out_channels: off,
                                    },
                                );
                            }
                            if restricted {
                                p.preferences.restricted_channels.insert(Channel::Email);
                            }
                            let want =
                                model(disabled, default, locked, choice, restricted, identity);
                            assert_eq!(
                                decide(&p, &cat, Channel::Email),
                                want,
                                "disabled={disabled} default={default:?} locked={locked} choice={choice:?} restricted={restricted} identity={identity:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 3 * 2 * 5 * 2 * 4);
}

#[test]
fn the_rules_in_words() {
    let active = Some(IdentityStatus::Active);
    let news = category(DefaultPreference::OptIn, &[]);
    // Defaults: opt-in categories send, opt-out ones do not.
    assert_eq!(decide(&user(active), &news, Channel::Email), Ok(()));
    assert_eq!(
        decide(
            &user(active),
            &category(DefaultPreference::OptOut, &[]),
            Channel::Email
        ),
        Err(Skip::CategoryOptedOut)
    );
    // A disabled user receives nothing, not even mandatory notifications.
    let mut off = user(active);
    off.status = Status::Disabled;
    assert_eq!(
        decide(
            &off,
            &category(DefaultPreference::Mandatory, &[]),
            Channel::Email
        ),
        Err(Skip::UserDisabled)
    );
    // A category opt-out keeps the channels the category locks.
    let mut out = user(active);
    out.preferences.categories.insert(
        "news".into(),
        CategoryChoice {
            preference: Choice::OptOut,
            opt_out_channels: BTreeSet::new(),
        },
    );
    assert_eq!(
        decide(&out, &news, Channel::Email),
        Err(Skip::CategoryOptedOut)
    );
    assert_eq!(
        decide(
            &out,
            &category(DefaultPreference::OptIn, &[Channel::Email]),
            Channel::Email
        ),
        Ok(())
    );
    // A restricted channel only receives mandatory categories.
    let mut r = user(active);
    r.preferences.restricted_channels.insert(Channel::Email);
    assert_eq!(
        decide(&r, &news, Channel::Email),
        Err(Skip::ChannelRestricted)
    );
    assert_eq!(
        decide(
            &r,
            &category(DefaultPreference::Mandatory, &[]),
            Channel::Email
        ),
        Ok(())
    );
    // No address, or only bouncing ones.
    assert_eq!(
        decide(&user(None), &news, Channel::Email),
        Err(Skip::NoIdentity)
    );
    assert_eq!(
        decide(&user(Some(IdentityStatus::Disabled)), &news, Channel::Email),
        Err(Skip::IdentityInvalid)
    );
}

fn request(preference: Choice, off: Option<&[Channel]>, on: &[Channel]) -> ChoiceRequest {
    ChoiceRequest {
        preference,
        opt_out_channels: off.map(|l| l.iter().copied().collect()),
        opt_in_channels: on.iter().copied().collect(),
    }
}

#[test]
fn category_choices_are_validated() {
    let news = category(DefaultPreference::OptIn, &[Channel::Inbox]);
    let mut prefs = Preferences::default();
    request(Choice::OptIn, Some(&[Channel::Email, Channel::Sms]), &[])
        .for_category(&news)
        .unwrap()
        .apply(&mut prefs)
        .unwrap();
    // Without opt_out_channels the stored ones are kept, less those turned back on.
    request(Choice::OptIn, None, &[Channel::Sms])
        .for_category(&news)
        .unwrap()
        .apply(&mut prefs)
        .unwrap();
    let c = &prefs.categories["news"];
    assert_eq!(
        (
            c.preference,
            c.opt_out_channels.iter().copied().collect::<Vec<_>>()
        ),
        (Choice::OptIn, vec![Channel::Email])
    );
    // A locked channel cannot be turned off, unless turned back on in the same request.
    let err = request(Choice::OptIn, Some(&[Channel::Inbox]), &[])
        .for_category(&news)
        .unwrap_err();
    assert_eq!(err.field, "opt_out_channels");
    assert!(
        err.rule.contains("inbox cannot be turned off for 'news'"),
        "{}",
        err.rule
    );
    request(Choice::OptIn, Some(&[Channel::Inbox]), &[Channel::Inbox])
        .for_category(&news)
        .unwrap();
    let err = request(Choice::OptOut, None, &[])
        .for_category(&category(DefaultPreference::Mandatory, &[]))
        .unwrap_err();
    assert_eq!(err.field, "preference");
    assert!(err.rule.contains("mandatory"), "{}", err.rule);
    // A channel the category locked after the user turned it off: applying refuses, unchanged.
    let change = request(Choice::OptIn, None, &[])
        .for_category(&category(DefaultPreference::OptIn, &[Channel::Email]))
        .unwrap();
    let before = prefs.clone();
    assert_eq!(
        change.apply(&mut prefs).unwrap_err().field,
        "opt_out_channels"
    );
    assert_eq!(prefs, before, "a refused choice changes nothing");
    // Vocabulary.
    assert_eq!(Choice::from_name("opt_out"), Some(Choice::OptOut));
    assert_eq!(Choice::from_name("maybe"), None);
    assert_eq!(
        DefaultPreference::from_name("cant_unsubscribe"),
        Some(DefaultPreference::Mandatory)
    );
    assert_eq!(DefaultPreference::from_name("sometimes"), None);
    assert_eq!(channel_named("x", "ms_teams").unwrap(), Channel::MsTeams);
    let err = channel_named("opt_out_channels[0]", "pigeon").unwrap_err();
    assert_eq!(err.field, "opt_out_channels[0]");
    assert!(
        err.rule
            .starts_with("\"pigeon\" is not a channel (email, sms,"),
        "{}",
        err.rule
    );
}

#[test]
fn channel_restrictions_and_views() {
    let mut prefs = Preferences::default();
    restrict(
        &mut prefs,
        &[
            ChannelRestriction {
                channel: Channel::Sms,
                restricted: true,
            },
            ChannelRestriction {
                channel: Channel::Email,
                restricted: true,
            },
            ChannelRestriction {
                channel: Channel::Email,
                restricted: false,
            },
        ],
    );
    assert_eq!(
        prefs
            .restricted_channels
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![Channel::Sms]
    );
    let views = channel_views(&prefs);
    assert_eq!(views.len(), PREFERENCE_CHANNELS.len());
    assert_eq!(
        views[1],
        ChannelView {
            channel: Channel::Sms,
            is_restricted: true
        }
    );
    let news = category(DefaultPreference::OptIn, &[]);
    request(Choice::OptIn, Some(&[Channel::Email]), &[])
        .for_category(&news)
        .unwrap()
        .apply(&mut prefs)
        .unwrap();
    let cat = CategoryView::of(&news, &prefs, true);
    assert_eq!((cat.preference, cat.is_editable), (Choice::OptIn, true));
    assert_eq!(
        cat.channels[0],
        CategoryChannelView {
            channel: Channel::Email,
            preference: Choice::OptOut,
            is_editable: true
        }
    );
    let hidden = CategoryView::of(&news, &prefs, false);
    assert!(hidden.channels.iter().all(|c| c.channel != Channel::Email));
    // Mandatory: opted in whatever the user chose, nothing editable; opt-out default: all off.
    let all = CategoryView::of(
        &category(DefaultPreference::Mandatory, &[]),
        &Preferences::default(),
        false,
    );
    assert_eq!((all.preference, all.is_editable), (Choice::OptIn, false));
    assert!(all
        .channels
        .iter()
        .all(|c| !c.is_editable && c.preference == Choice::OptIn));
    let off = CategoryView::of(
        &category(DefaultPreference::OptOut, &[Channel::Inbox]),
        &Preferences::default(),
        true,
    );
    assert_eq!(off.preference, Choice::OptOut);
    assert!(off
        .channels
        .iter()
        .all(|c| (c.preference == Choice::OptIn) == (c.channel == Channel::Inbox)));
    // The page: visible categories only, by section, the unnamed section first.
    let mut billing = category(DefaultPreference::OptIn, &[]);
    billing.slug = "billing".into();
    billing.section = Some("Account".into());
    let mut hidden_cat = category(DefaultPreference::OptIn, &[]);
    hidden_cat.slug = "internal".into();
    hidden_cat.visible = false;
    let page = UserView::of(&[billing, news, hidden_cat], &prefs, true);
    let names: Vec<_> = page
        .sections
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.categories
                    .iter()
                    .map(|c| c.slug.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (None, vec!["news".to_owned()]),
            (Some("Account".to_owned()), vec!["billing".to_owned()])
        ]
    );
    assert_eq!(page.channels, views);
    // Stored form round-trips with wire channel names.
    let stored = serde_json::to_value(&prefs).unwrap();
    assert_eq!(stored["restricted_channels"], json!(["sms"]));
    assert_eq!(
        serde_json::from_value::<Preferences>(stored).unwrap(),
        prefs
    );
}

#[test]
fn categories_are_declared_and_patched() {
    let c = Category::declare(
        "product-updates",
        CategoryAttributes {
            name: Some(" Product updates ".into()),
            section: Some(Some("Marketing".into())),
            default_preference: Some(DefaultPreference::OptOut),
            locked_channels: Some([Channel::Inbox].into()),
            ..CategoryAttributes::default()
        },
    )
    .unwrap();
    assert_eq!(
        (
            c.slug.as_str(),
            c.name.as_str(),
            c.default_preference,
            c.section.as_deref()
        ),
        (
            "product-updates",
            "Product updates",
            DefaultPreference::OptOut,
            Some("Marketing")
        )
    );
    let bare = Category::declare(" a ", CategoryAttributes::default()).unwrap();
    assert_eq!(
        (
            bare.slug.as_str(),
            bare.name.as_str(),
            bare.default_preference,
            bare.visible
        ),
        ("a", "a", DefaultPreference::OptIn, true)
    );
    for slug in ["Bad Slug", "", &"x".repeat(65)] {
        assert_eq!(
            Category::declare(slug, CategoryAttributes::default())
                .unwrap_err()
                .field,
            "category"
        );
    }
    for (attributes, field) in [
        (
            CategoryAttributes {
                name: Some("x".repeat(101)),
                ..Default::default()
            },
            "name",
        ),
        (
            CategoryAttributes {
                description: Some("x".repeat(1001)),
                ..Default::default()
            },
            "description",
        ),
        (
            CategoryAttributes {
                section: Some(Some("x".repeat(101))),
                ..Default::default()
            },
            "section",
        ),
        (
            CategoryAttributes {
                name: Some("a\0b".into()),
                ..Default::default()
            },
            "name",
        ),
    ] {
        assert_eq!(Category::declare("a", attributes).unwrap_err().field, field);
    }
    let c = c
        .patched(CategoryAttributes {
            default_preference: Some(DefaultPreference::Mandatory),
            visible: Some(false),
            section: Some(Some("  ".into())),
            name: Some(String::new()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        (
            c.default_preference,
            c.visible,
            c.section.as_deref(),
            c.name.as_str()
        ),
        (DefaultPreference::Mandatory, false, None, "product-updates")
    );
}
