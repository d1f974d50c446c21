use super::*;
use crate::channel::{Identity, IdentityMeta};
use crate::ids::DistinctId;
use chrono::Utc;

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
        id.status = status;
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
        Some(IdentityStatus::Disabled) => Err(Skip::IdentityInvalid),
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
    assert_eq!(checked, 2 * 3 * 2 * 5 * 2 * 3);
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

#[test]
fn category_choices_are_validated() {
    let news = category(DefaultPreference::OptIn, &[Channel::Inbox]);
    let mut prefs = Preferences::default();
    choose_category(
        &mut prefs,
        &news,
        &json!({"preference": "opt_in", "opt_out_channels": ["email", "sms"]}),
    )
    .unwrap();
    choose_category(
        &mut prefs,
        &news,
        &json!({"preference": "opt_in", "opt_in_channels": ["sms"]}),
    )
    .unwrap();
    let c = &prefs.categories["news"];
    assert_eq!(
        (
            c.preference,
            c.opt_out_channels.iter().copied().collect::<Vec<_>>()
        ),
        (Choice::OptIn, vec![Channel::Email])
    );
    for (body, field) in [
        (json!({"preference": "maybe"}), "preference"),
        (json!({}), "preference"),
        (
            json!({"preference": "opt_in", "opt_out_channels": ["pigeon"]}),
            "opt_out_channels[0]",
        ),
        (
            json!({"preference": "opt_in", "opt_out_channels": ["inbox"]}),
            "opt_out_channels",
        ),
        (
            json!({"preference": "opt_in", "opt_out_channels": "email"}),
            "opt_out_channels",
        ),
    ] {
        let before = prefs.clone();
        assert_eq!(
            choose_category(&mut prefs, &news, &body).unwrap_err().field,
            field,
            "{body}"
        );
        assert_eq!(prefs, before, "a refused choice changes nothing");
    }
    let err = choose_category(
        &mut prefs,
        &category(DefaultPreference::Mandatory, &[]),
        &json!({"preference": "opt_out"}),
    )
    .unwrap_err();
    assert!(err.rule.contains("mandatory"), "{}", err.rule);
}

#[test]
fn channel_restrictions_and_wire_shapes() {
    let mut prefs = Preferences::default();
    restrict_channels(&mut prefs, &json!({"channel_preferences": [{"channel": "sms", "is_restricted": true}, {"channel": "email", "is_restricted": false}]})).unwrap();
    assert!(prefs.restricted_channels.contains(&Channel::Sms));
    assert_eq!(
        restrict_channels(
            &mut prefs,
            &json!({"channel_preferences": [{"channel": "sms"}]})
        )
        .unwrap_err()
        .field,
        "channel_preferences[0].is_restricted"
    );
    let wire = channels_wire(&prefs);
    assert_eq!(wire[1], json!({"channel": "sms", "is_restricted": true}));
    let news = category(DefaultPreference::OptIn, &[]);
    choose_category(
        &mut prefs,
        &news,
        &json!({"preference": "opt_in", "opt_out_channels": ["email"]}),
    )
    .unwrap();
    let cat = category_wire(&news, &prefs, true);
    assert_eq!(cat["preference"], "opt_in");
    assert_eq!(
        cat["channels"][0],
        json!({"channel": "email", "preference": "opt_out", "is_editable": true})
    );
    let hidden = category_wire(&news, &prefs, false);
    assert!(hidden["channels"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["channel"] != "email"));
    // Stored form round-trips with wire channel names.
    let stored = serde_json::to_value(&prefs).unwrap();
    assert_eq!(stored["restricted_channels"], json!(["sms"]));
    assert_eq!(
        serde_json::from_value::<Preferences>(stored).unwrap(),
        prefs
    );
}

#[test]
fn categories_are_parsed_and_patched() {
    let c = parse_category(&json!({"category": "product-updates", "name": "Product updates", "section": "Marketing", "default_preference": "opt_out", "locked_channels": ["inbox"]})).unwrap();
    assert_eq!(
        (c.slug.as_str(), c.default_preference, c.section.as_deref()),
        (
            "product-updates",
            DefaultPreference::OptOut,
            Some("Marketing")
        )
    );
    for (body, field) in [
        (json!({"name": "x"}), "category"),
        (json!({"category": "Bad Slug"}), "category"),
        (
            json!({"category": "a", "default_preference": "sometimes"}),
            "default_preference",
        ),
        (
            json!({"category": "a", "locked_channels": ["fax"]}),
            "locked_channels[0]",
        ),
        (json!({"category": "a", "colour": "red"}), "colour"),
    ] {
        assert_eq!(parse_category(&body).unwrap_err().field, field, "{body}");
    }
    let mut c = c;
    patch_category(
        &mut c,
        &json!({"default_preference": "mandatory", "visible": false}),
    )
    .unwrap();
    assert_eq!(
        (c.default_preference, c.visible),
        (DefaultPreference::Mandatory, false)
    );
    assert_eq!(
        patch_category(&mut c, &json!({"category": "other"}))
            .unwrap_err()
            .field,
        "category"
    );
}
