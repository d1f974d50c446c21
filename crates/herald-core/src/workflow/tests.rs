use super::*;
use crate::channel::{Identity, IdentityMeta};
use crate::ids::DistinctId;
use crate::profile::Profile;
use chrono::Utc;
use serde_json::json;

/// A workflow body as the API receives it.
fn input(body: Value) -> WorkflowInput {
    serde_json::from_value(body).expect("the body deserializes")
}

fn parse(body: Value) -> Result<Workflow, Invalid> {
    Workflow::parse(input(body))
}

fn field_of(body: Value) -> String {
    parse(body).expect_err("refused").field
}

fn full() -> Value {
    json!({
        "slug": "order-shipped",
        "name": "Order shipped",
        "category": "transactional",
        "policy": {"first_success": ["inbox", "email"]},
        "channels": {
            "email": {"subject": "Order {{order}}", "html": "<p>Hi {{$recipient.name}}</p>", "text": "Hi {{$recipient.name}}"},
            "sms": {"text": "Order {{order}} shipped"},
            "slack": {"text": "Order {{order}}", "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "*{{$recipient.name}}*, order {{order}}"}},
                {"type": "divider"}
            ]},
            "inbox": {"title": "Shipped", "body": "Order {{order}} by {{$actor.name}}", "action_url": "https://shop.example/o/{{order}}"}
        },
        "events": ["order_shipped", "order_shipped", "Order Resent"]
    })
}

#[test]
fn a_full_workflow_parses_and_round_trips_through_its_wire_form() {
    let w = parse(full()).unwrap();
    assert_eq!(w.slug, "order-shipped");
    assert_eq!(w.category.as_deref(), Some("transactional"));
    assert_eq!(
        w.policy,
        Policy::FirstSuccess(vec![Channel::Inbox, Channel::Email])
    );
    assert_eq!(w.channels(), vec![Channel::Inbox, Channel::Email]);
    assert_eq!(
        w.templates.keys().copied().collect::<Vec<_>>(),
        vec![Channel::Email, Channel::Sms, Channel::Slack, Channel::Inbox]
    );
    // Repeated events are dropped.
    assert_eq!(w.events, vec!["order_shipped", "Order Resent"]);
    let wire = serde_json::to_value(w.to_input()).unwrap();
    assert_eq!(parse(wire).unwrap(), w);
    // Defaults: the name is the slug, the policy all, no category, no events.
    let w =
        parse(json!({"slug": "a", "channels": {"sms": {"text": "x"}}, "category": ""})).unwrap();
    assert_eq!(
        (w.name.as_str(), &w.category, &w.policy),
        ("a", &None, &Policy::All)
    );
    assert_eq!(w.channels(), vec![Channel::Sms]);
}

#[test]
fn unknown_wire_fields_are_refused_by_the_deserializer() {
    for body in [
        json!({"slug": "a", "channels": {"sms": {"text": "x"}}, "extra": 1}),
        json!({"slug": "a", "channels": {"fax": {"text": "x"}}}),
        json!({"slug": "a", "channels": {"sms": {"text": "x", "subject": "y"}}}),
        json!({"slug": "a", "channels": {"sms": {"text": "x"}}, "policy": "some"}),
    ] {
        assert!(
            serde_json::from_value::<WorkflowInput>(body.clone()).is_err(),
            "{body}"
        );
    }
}

#[test]
fn parse_errors_name_the_field() {
    let with = |path: &[&str], v: Value| {
        let mut body = full();
        let mut at = &mut body;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = v;
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&["slug"], json!("Not A Slug")), "slug"),
        (with(&["slug"], json!("")), "slug"),
        (with(&["name"], json!("n".repeat(101))), "name"),
        (with(&["category"], json!("Bad Cat")), "category"),
        (json!({"slug": "a", "channels": {}}), "channels"),
        (
            with(&["channels", "email", "subject"], Value::Null),
            "channels.email.subject",
        ),
        (
            with(&["channels", "email"], json!({"subject": "s"})),
            "channels.email",
        ),
        (
            with(&["channels", "email", "subject"], json!("{{#if}}")),
            "channels.email.subject",
        ),
        (
            with(&["channels", "email", "html"], json!("{{> nowhere}}")),
            "channels.email.html",
        ),
        (with(&["channels", "sms"], json!({})), "channels.sms.text"),
        (
            with(&["channels", "slack", "blocks"], json!({"type": "section"})),
            "channels.slack.blocks",
        ),
        (
            with(
                &["channels", "slack", "blocks"],
                json!([{"text": {"text": "ok"}}, {"text": {"text": "{{#each}}"}}]),
            ),
            "channels.slack.blocks[1].text.text",
        ),
        (
            with(&["channels", "inbox", "body"], Value::Null),
            "channels.inbox.body",
        ),
        (
            with(&["channels", "inbox", "action_url"], json!("{{/if}}")),
            "channels.inbox.action_url",
        ),
        (
            with(&["channels", "ms_teams"], json!({})),
            "channels.ms_teams",
        ),
        (
            with(&["channels", "ms_teams"], json!({"card": [1]})),
            "channels.ms_teams.card",
        ),
        (
            with(&["channels", "discord"], json!({"content": "a\u{0}b"})),
            "channels.discord.content",
        ),
        (
            with(&["policy"], json!({"first_success": ["inbox", "fax"]})),
            "policy.first_success[1]",
        ),
        (
            with(&["policy"], json!({"first_success": ["email", "whatsapp"]})),
            "policy.first_success[1]",
        ),
        (
            with(&["policy"], json!({"first_success": ["email", "email"]})),
            "policy.first_success[1]",
        ),
        (
            with(&["policy"], json!({"first_success": []})),
            "policy.first_success",
        ),
        (with(&["events"], json!(["ok", "x"])), "events[1]"),
        (with(&["events"], json!(["$identify"])), "events[0]"),
        (with(&["events"], json!(["ok", "ss_x"])), "events[1]"),
        (with(&["events"], json!(["a\nb"])), "events[0]"),
    ];
    for (body, field) in cases {
        assert_eq!(field_of(body.clone()), field, "{body}");
    }
}

#[test]
fn templates_over_the_limits_are_refused_at_save_time() {
    let deep = "{{#if x}}".repeat(17) + &"{{/if}}".repeat(17);
    let e = parse(json!({"slug": "a", "channels": {"sms": {"text": deep}}})).unwrap_err();
    assert_eq!(e.field, "channels.sms.text");
    assert!(e.rule.contains("nests"), "{}", e.rule);

    let long = "x".repeat(template::limits::MAX_SOURCE_BYTES + 1);
    let e = parse(json!({"slug": "a", "channels": {"email": {"subject": "s", "text": long}}}))
        .unwrap_err();
    assert_eq!(e.field, "channels.email.text");

    let recursive = r#"{{#*inline "r"}}{{> r}}{{/inline}}{{> r}}"#;
    let e =
        parse(json!({"slug": "a", "channels": {"discord": {"embeds": [{"title": recursive}]}}}))
            .unwrap_err();
    assert_eq!(e.field, "channels.discord.embeds[0].title");

    let many: Vec<Value> = (0..=limits::MAX_JSON_LEAVES)
        .map(|i| json!(i.to_string()))
        .collect();
    let e = parse(json!({"slug": "a", "channels": {"slack": {"text": "t", "blocks": many}}}))
        .unwrap_err();
    assert_eq!(
        e.field,
        format!("channels.slack.blocks[{}]", limits::MAX_JSON_LEAVES)
    );

    let mut nested = json!("x");
    for _ in 0..40 {
        nested = json!([nested]);
    }
    let e = parse(json!({"slug": "a", "channels": {"ms_teams": {"card": {"body": nested}}}}))
        .unwrap_err();
    assert_eq!(e.field, "channels.ms_teams.card");
    assert!(e.rule.contains("nests deeper"), "{}", e.rule);

    let big = json!([{"t": "y".repeat(template::limits::MAX_SOURCE_BYTES)}]);
    let e = parse(json!({"slug": "a", "channels": {"slack": {"text": "t", "blocks": big}}}))
        .unwrap_err();
    assert_eq!(e.field, "channels.slack.blocks");
}

fn ada() -> Profile {
    let mut p = Profile::new(DistinctId::parse("ada").unwrap(), Utc::now());
    p.properties.insert("name".into(), json!("Ada <3"));
    p.identities.push(
        Identity::parse(
            Channel::Email,
            &json!("ada@example.com"),
            &IdentityMeta::default(),
        )
        .unwrap(),
    );
    p
}

fn vars() -> Value {
    let mut grace = Profile::new(DistinctId::parse("grace").unwrap(), Utc::now());
    grace.properties.insert("name".into(), json!("Grace"));
    template::variables_with_actor(&ada(), Some(&grace), "https://h/p/t", &json!({"order": 42}))
        .unwrap()
}

#[test]
fn rendering_email_fills_every_part_and_leaves_absent_parts_absent() {
    let w = parse(full()).unwrap();
    assert_eq!(
        w.render(Channel::Email, &vars()).unwrap(),
        Content::Email {
            subject: "Order 42".into(),
            html: Some("<p>Hi Ada &lt;3</p>".into()),
            text: Some("Hi Ada &lt;3".into()),
        }
    );
    let text_only = parse(json!({"slug": "a", "channels": {"email": {"subject": "{{$recipient.$email}}", "text": "{{{$hosted_preference_url}}}"}}})).unwrap();
    assert_eq!(
        text_only.render(Channel::Email, &vars()).unwrap(),
        Content::Email {
            subject: "ada@example.com".into(),
            html: None,
            text: Some("https://h/p/t".into()),
        }
    );
}

#[test]
fn rendering_slack_blocks_renders_string_leaves_and_keeps_the_structure() {
    let w = parse(full()).unwrap();
    assert_eq!(
        w.render(Channel::Slack, &vars()).unwrap(),
        Content::Slack {
            text: "Order 42".into(),
            blocks: Some(json!([
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Ada &lt;3*, order 42"}},
                {"type": "divider"}
            ])),
        }
    );
    let teams = parse(json!({"slug": "a", "channels": {"ms_teams": {"card": {"type": "AdaptiveCard", "version": 1.5, "body": [{"type": "TextBlock", "text": "{{order}}", "wrap": true}]}}}})).unwrap();
    assert_eq!(
        teams.render(Channel::MsTeams, &vars()).unwrap(),
        Content::MsTeams {
            text: None,
            card: Some(
                json!({"type": "AdaptiveCard", "version": 1.5, "body": [{"type": "TextBlock", "text": "42", "wrap": true}]})
            ),
        }
    );
}

#[test]
fn rendering_inbox_sees_the_actor_and_other_channels_are_refused() {
    let w = parse(full()).unwrap();
    assert_eq!(
        w.render(Channel::Inbox, &vars()).unwrap(),
        Content::Inbox {
            title: "Shipped".into(),
            body: "Order 42 by Grace".into(),
            action_url: Some("https://shop.example/o/42".into()),
        }
    );
    assert_eq!(
        w.render(Channel::Sms, &vars()).unwrap(),
        Content::Sms {
            text: "Order 42 shipped".into()
        }
    );
    let e = w.render(Channel::Discord, &vars()).unwrap_err();
    assert_eq!(e.field, "channel");
}

#[test]
fn rendering_errors_name_the_leaf_and_the_total_output_is_bounded() {
    let items: Vec<u32> = (0..1000).collect();
    let vars = json!({"a": items});
    // Each leaf renders within the per-render limit (200 KB), together past the content limit.
    let leaf = "{{#each a}}".to_owned() + &"x".repeat(200) + "{{/each}}";
    let blocks: Vec<Value> = (0..6).map(|_| json!({"text": leaf})).collect();
    let w = parse(json!({"slug": "a", "channels": {"slack": {"text": "t", "blocks": blocks}}}))
        .unwrap();
    let e = w.render(Channel::Slack, &vars).unwrap_err();
    assert_eq!(e.field, "channels.slack.blocks[5].text");
    assert!(e.rule.contains("in total"), "{}", e.rule);
    // One leaf past the per-render output limit is named by its path.
    let huge = "{{#each a}}{{#each ../a}}x{{/each}}{{/each}}";
    let w = parse(json!({"slug": "a", "channels": {"discord": {"content": "c", "embeds": [{"description": huge}]}}}))
        .unwrap();
    let e = w.render(Channel::Discord, &vars).unwrap_err();
    assert_eq!(e.field, "channels.discord.embeds[0].description");
}

#[test]
fn push_templates_render_on_each_push_channel_and_round_trip() {
    let body = json!({"slug": "shipped", "channels": {
        "androidpush": {"title": "Order {{order}}", "body": "Hi {{$recipient.name}}",
                        "data": {"order": "{{order}}", "kind": "shipping", "n": 3, "nested": {"by": "{{$actor.name}}"}},
                        "action": "https://shop.example/o/{{order}}", "image": "https://img.example/{{order}}.png"},
        "iospush": {"title": "Order {{order}}", "body": "Hi"},
        "webpush": {"body": "Only a body", "url": "https://shop.example/{{order}}"}
    }});
    let w = parse(body).unwrap();
    assert_eq!(
        w.templates.keys().copied().collect::<Vec<_>>(),
        vec![Channel::Androidpush, Channel::Iospush, Channel::Webpush]
    );
    assert_eq!(
        w.render(Channel::Androidpush, &vars()).unwrap(),
        Content::Androidpush(Push {
            title: "Order 42".into(),
            body: "Hi Ada &lt;3".into(),
            data: Some(
                json!({"order": "42", "kind": "shipping", "n": 3, "nested": {"by": "Grace"}})
            ),
            url: Some("https://shop.example/o/42".into()),
            image: Some("https://img.example/42.png".into()),
        })
    );
    assert_eq!(
        w.render(Channel::Iospush, &vars()).unwrap(),
        Content::Iospush(Push {
            title: "Order 42".into(),
            body: "Hi".into(),
            data: None,
            url: None,
            image: None,
        })
    );
    let web = w.render(Channel::Webpush, &vars()).unwrap();
    assert_eq!(web.channel(), Channel::Webpush);
    assert_eq!(
        web,
        Content::Webpush(Push {
            title: String::new(),
            body: "Only a body".into(),
            data: None,
            url: Some("https://shop.example/42".into()),
            image: None,
        })
    );
    // `action` is read as `url`, and the wire form writes `url`.
    let wire = serde_json::to_value(w.to_input()).unwrap();
    assert_eq!(
        wire["channels"]["androidpush"]["url"],
        "https://shop.example/o/{{order}}"
    );
    assert!(wire["channels"]["webpush"].get("title").is_none(), "{wire}");
    assert_eq!(parse(wire).unwrap(), w);
    // The rendered content keeps its channel on the wire (the message log stores it).
    let stored = serde_json::to_value(&web).unwrap();
    assert_eq!(stored["channel"], "webpush");
    assert_eq!(serde_json::from_value::<Content>(stored).unwrap(), web);
}

#[test]
fn push_templates_are_checked_like_the_others() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"androidpush": {}}), "channels.androidpush"),
        (
            json!({"iospush": {"title": "", "body": ""}}),
            "channels.iospush",
        ),
        (
            json!({"webpush": {"body": "{{#if x}}"}}),
            "channels.webpush.body",
        ),
        (
            json!({"androidpush": {"title": "t", "data": ["not", "an", "object"]}}),
            "channels.androidpush.data",
        ),
        (
            json!({"androidpush": {"title": "t", "data": {"k": "{{/each}}"}}}),
            "channels.androidpush.data.k",
        ),
        (
            json!({"iospush": {"title": "t", "url": "{{> nowhere}}"}}),
            "channels.iospush.url",
        ),
        (
            json!({"webpush": {"title": "t", "image": "a\u{0}b"}}),
            "channels.webpush.image",
        ),
    ];
    for (channels, field) in cases {
        let body = json!({"slug": "a", "channels": channels});
        assert_eq!(field_of(body.clone()), field, "{body}");
    }
    // Unknown fields are refused by the deserializer.
    assert!(serde_json::from_value::<WorkflowInput>(
        json!({"slug": "a", "channels": {"iospush": {"title": "t", "sound": "x"}}})
    )
    .is_err());
    // A push channel may lead a first_success order.
    let w = parse(
        json!({"slug": "a", "policy": {"first_success": ["iospush", "email"]},
        "channels": {"iospush": {"title": "t"}, "email": {"subject": "s", "text": "x"}}}),
    )
    .unwrap();
    assert_eq!(w.channels(), vec![Channel::Iospush, Channel::Email]);
}

fn smart(policy: Value) -> Value {
    let mut body = full();
    body["policy"] = json!({ "smart": policy });
    body
}

#[test]
fn a_smart_policy_parses_round_trips_and_names_the_field_it_refuses() {
    let mut body = smart(json!({"channels": ["inbox", "email"], "wait": "15m"}));
    body["tracking"] = json!({"opens": true, "clicks": false});
    let w = parse(body).unwrap();
    assert_eq!(
        w.policy,
        Policy::Smart(SmartPolicy {
            channels: vec![Channel::Inbox, Channel::Email],
            gate: Gate {
                wait: chrono::Duration::minutes(15),
                until: Until::Seen
            },
        })
    );
    assert_eq!(w.channels(), vec![Channel::Inbox, Channel::Email]);
    assert_eq!(w.gate().map(|g| g.until), Some(Until::Seen));
    assert_eq!(
        w.tracking,
        Tracking {
            opens: true,
            clicks: false
        }
    );
    let wire = serde_json::to_value(w.to_input()).unwrap();
    assert_eq!(wire["policy"]["smart"]["wait"], "15m");
    assert_eq!(wire["policy"]["smart"]["until"], "seen");
    assert_eq!(wire["tracking"], json!({"opens": true, "clicks": false}));
    assert_eq!(parse(wire).unwrap(), w);
    // Tracking is off unless asked for, and then left out of the wire form.
    let plain = parse(full()).unwrap();
    assert_eq!(plain.tracking, Tracking::default());
    assert!(serde_json::to_value(plain.to_input()).unwrap()["tracking"].is_null());
    let clicked = parse(smart(
        json!({"channels": ["sms", "email"], "wait": "90s", "until": "clicked"}),
    ))
    .unwrap();
    assert_eq!(clicked.gate().map(|g| g.until), Some(Until::Clicked));
    assert_eq!(format_wait(clicked.gate().unwrap().wait), "90s");

    for (policy, field) in [
        (
            json!({"channels": [], "wait": "15m"}),
            "policy.smart.channels",
        ),
        (
            json!({"channels": ["inbox", "fax"], "wait": "15m"}),
            "policy.smart.channels[1]",
        ),
        (
            json!({"channels": ["email", "whatsapp"], "wait": "15m"}),
            "policy.smart.channels[1]",
        ),
        (
            json!({"channels": ["email"], "wait": ""}),
            "policy.smart.wait",
        ),
        (
            json!({"channels": ["email"], "wait": "15"}),
            "policy.smart.wait",
        ),
        (
            json!({"channels": ["email"], "wait": "0m"}),
            "policy.smart.wait",
        ),
        (
            json!({"channels": ["email"], "wait": "31d"}),
            "policy.smart.wait",
        ),
        (
            json!({"channels": ["email"], "wait": "-5m"}),
            "policy.smart.wait",
        ),
        (
            json!({"channels": ["email"], "wait": "5m", "until": "read"}),
            "policy.smart.until",
        ),
    ] {
        assert_eq!(field_of(smart(policy.clone())), field, "{policy}");
    }
    // Unknown keys in the policy or the tracking switch are refused when read.
    assert!(serde_json::from_value::<WorkflowInput>(smart(
        json!({"channels": ["email"], "wait": "5m", "after": "sent"})
    ))
    .is_err());
    let mut typo = full();
    typo["tracking"] = json!({"open": true});
    assert!(serde_json::from_value::<WorkflowInput>(typo).is_err());
}

#[test]
fn waits_read_every_unit_and_print_back_in_the_largest() {
    for (raw, secs, printed) in [
        ("1s", 1, "1s"),
        ("90s", 90, "90s"),
        ("120s", 120, "2m"),
        ("15m", 900, "15m"),
        (" 2h ", 7200, "2h"),
        ("1d", 86_400, "1d"),
        ("30d", MAX_SMART_WAIT_SECS, "30d"),
    ] {
        let w = parse_wait("wait", raw).unwrap();
        assert_eq!(w.num_seconds(), secs, "{raw}");
        assert_eq!(format_wait(w), printed);
    }
    for bad in ["", "m", "1.5h", "1w", "+5m", "99999999999999999999d"] {
        assert_eq!(parse_wait("wait", bad).unwrap_err().field, "wait", "{bad}");
    }
}
