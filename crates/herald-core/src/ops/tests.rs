//! Unit tests of the operations engine: parsing, each operator, ordering, all-or-nothing, error
//! paths, upserts, and a property test against an independent model.

use super::*;
use crate::channel::IdentityStatus;
use crate::ids::DistinctId;
use chrono::Utc;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

fn profile() -> Profile {
    Profile::new(DistinctId::parse("u1").unwrap(), Utc::now())
}

fn ops(raw: Value) -> Vec<Step> {
    parse_operations(&raw, "operations").unwrap_or_else(|e| panic!("{raw} should parse: {e}"))
}

/// Parses and applies `raw`, which must succeed.
fn run(p: &Profile, raw: Value) -> Profile {
    apply(p, &ops(raw.clone())).unwrap_or_else(|e| panic!("{raw} should apply: {e}"))
}

/// Parses `raw` (which must parse) and applies it, which must fail; checks the input is untouched.
fn run_err(p: &Profile, raw: Value) -> Invalid {
    let before = p.clone();
    let err = apply(p, &ops(raw.clone())).expect_err(&format!("{raw} should fail"));
    assert_eq!(p, &before, "a failed apply must not touch its input");
    err
}

fn parse_err(raw: Value) -> Invalid {
    parse_operations(&raw, "").expect_err(&format!("{raw} should not parse"))
}

fn values(p: &Profile, channel: Channel) -> Vec<Value> {
    p.identities_on(channel).map(|i| i.value.clone()).collect()
}

fn emails(p: &Profile) -> Vec<Value> {
    values(p, Channel::Email)
}

fn email_identity(value: &str) -> Identity {
    Identity {
        channel: Channel::Email,
        value: Value::String(value.to_owned()),
        provider: None,
        bundle_id: None,
        device_id: None,
        status: IdentityStatus::Active,
        perma_status: IdentityStatus::Active,
        perma_failure: None,
    }
}

// ---------------------------------------------------------------------------------------------
// $set

#[test]
fn set_custom_properties_inserts_and_overwrites_in_place() {
    let p = run(
        &profile(),
        json!([{"$set": {"plan": "free", "seats": 3, "meta": {"tags": [1, 2]}, "flag": true}}]),
    );
    assert_eq!(p.properties["plan"], json!("free"));
    assert_eq!(p.properties["seats"], json!(3));
    assert_eq!(p.properties["meta"], json!({"tags": [1, 2]}));
    assert_eq!(p.properties["flag"], json!(true));

    let p = run(&p, json!([{"$set": {"plan": "pro", "extra": null}}]));
    assert_eq!(p.properties["plan"], json!("pro"));
    assert_eq!(p.properties["extra"], Value::Null);
    // An overwritten key keeps its place; new keys go last.
    let keys: Vec<&str> = p.properties.keys().map(String::as_str).collect();
    assert_eq!(keys, ["plan", "seats", "meta", "flag", "extra"]);
    // Keys are trimmed.
    let p = run(&p, json!([{"$set": {"  plan ": "team"}}]));
    assert_eq!(p.properties["plan"], json!("team"));
    assert!(!p.properties.contains_key("  plan "));
    assert!(p.identities.is_empty());
    assert_eq!(p.status, Status::Enabled);
}

#[test]
fn set_normalises_general_properties() {
    let p = run(
        &profile(),
        json!([{"$set": {
            "country": "Germany",
            "$timezone": "america/new_york",
            "$preferred_language": "EN",
            "$locale": "en-gb",
            "name": "  Ada Lovelace  ",
        }}]),
    );
    assert_eq!(p.properties["country"], json!("DE"));
    assert_eq!(p.properties["$timezone"], json!("America/New_York"));
    assert_eq!(p.properties["$preferred_language"], json!("en"));
    assert_eq!(p.properties["$locale"], json!("en_GB"));
    assert_eq!(p.properties["name"], json!("Ada Lovelace"));

    let p = run(
        &p,
        json!([{"$set": {"country": "deu", "$locale": "es_419"}}]),
    );
    assert_eq!(p.properties["country"], json!("DE"));
    assert_eq!(p.properties["$locale"], json!("es_419"));
    let p = run(&p, json!([{"$set": {"country": "united kingdom"}}]));
    assert_eq!(p.properties["country"], json!("GB"));

    // A general property may be cleared with null.
    let p = run(&p, json!([{"$set": {"$timezone": null, "name": null}}]));
    assert_eq!(p.properties["$timezone"], Value::Null);
    assert_eq!(p.properties["name"], Value::Null);
}

#[test]
fn set_channel_replaces_that_channels_identities_only() {
    let p = run(
        &profile(),
        json!([{"$append": {"$email": ["a@x.com", "b@x.com"], "$sms": "+14155550123"}}]),
    );
    assert_eq!(emails(&p), [json!("a@x.com"), json!("b@x.com")]);

    let p = run(&p, json!([{"$set": {"$email": "C@Example.COM"}}]));
    assert_eq!(emails(&p), [json!("C@example.com")]);
    assert_eq!(values(&p, Channel::Sms), [json!("+14155550123")]);

    // A list is deduplicated; phone numbers are normalised to E.164 first.
    let p = run(
        &p,
        json!([{"$set": {"$sms": ["+1 (415) 555-0199", "+14155550199", "+447700900123"]}}]),
    );
    assert_eq!(
        values(&p, Channel::Sms),
        [json!("+14155550199"), json!("+447700900123")]
    );
    assert_eq!(emails(&p), [json!("C@example.com")]);

    // null or [] clears the channel.
    let cleared = run(&p, json!([{"$set": {"$email": null}}]));
    assert!(emails(&cleared).is_empty());
    assert_eq!(values(&cleared, Channel::Sms).len(), 2);
    let cleared = run(&p, json!([{"$set": {"$sms": []}}]));
    assert!(values(&cleared, Channel::Sms).is_empty());
    assert_eq!(emails(&cleared).len(), 1);
    // Channels never leak into properties.
    assert!(cleared.properties.is_empty());
}

#[test]
fn set_status() {
    let p = run(&profile(), json!([{"$set": {"$status": "disabled"}}]));
    assert_eq!(p.status, Status::Disabled);
    assert!(!p.properties.contains_key("$status"));
    let p = run(&p, json!([{"$set": {"$status": " enabled "}}]));
    assert_eq!(p.status, Status::Enabled);
}

// ---------------------------------------------------------------------------------------------
// $set_once

#[test]
fn set_once_sets_only_absent_properties() {
    let p = run(&profile(), json!([{"$set": {"plan": "free"}}]));
    let p = run(
        &p,
        json!([{"$set_once": {"plan": "pro", "first_seen": "2024-01-01", "country": "France"}}]),
    );
    assert_eq!(p.properties["plan"], json!("free"));
    assert_eq!(p.properties["first_seen"], json!("2024-01-01"));
    assert_eq!(p.properties["country"], json!("FR"), "normalised like $set");

    let p = run(
        &p,
        json!([{"$set_once": {"first_seen": "2025-01-01", "country": "DE"}}]),
    );
    assert_eq!(p.properties["first_seen"], json!("2024-01-01"));
    assert_eq!(p.properties["country"], json!("FR"));

    // Once unset, it may be set once again.
    let p = run(
        &p,
        json!([{"$unset": ["plan"]}, {"$set_once": {"plan": "team"}}]),
    );
    assert_eq!(p.properties["plan"], json!("team"));
}

#[test]
fn set_once_channels_only_when_the_channel_is_empty() {
    let p = run(
        &profile(),
        json!([{"$set_once": {"$email": "first@x.com"}}]),
    );
    assert_eq!(emails(&p), [json!("first@x.com")]);
    let p = run(
        &p,
        json!([{"$set_once": {"$email": ["second@x.com"], "$sms": "+14155550123"}}]),
    );
    assert_eq!(emails(&p), [json!("first@x.com")]);
    assert_eq!(values(&p, Channel::Sms), [json!("+14155550123")]);
}

#[test]
fn set_once_status_never_changes_it() {
    // A profile always has a status, so $set_once never applies to it.
    let p = run(&profile(), json!([{"$set_once": {"$status": "disabled"}}]));
    assert_eq!(p.status, Status::Enabled);
}

// ---------------------------------------------------------------------------------------------
// $unset

#[test]
fn unset_properties_channels_and_status() {
    let p = run(
        &profile(),
        json!([{"$set": {
            "plan": "pro", "seats": 2, "$timezone": "Europe/Berlin",
            "$email": "a@x.com", "$sms": "+14155550123", "$status": "disabled",
        }}]),
    );
    assert_eq!(p.status, Status::Disabled);

    let q = run(
        &p,
        json!([{"$unset": ["plan", "$timezone", "$email", "$status", "never_set"]}]),
    );
    assert!(!q.properties.contains_key("plan"));
    assert!(!q.properties.contains_key("$timezone"));
    assert_eq!(q.properties["seats"], json!(2));
    assert!(emails(&q).is_empty());
    assert_eq!(values(&q, Channel::Sms), [json!("+14155550123")]);
    assert_eq!(q.status, Status::Enabled, "$status resets to enabled");

    // A single key may be given as a string.
    let q = run(&p, json!([{"$unset": "$sms"}]));
    assert!(values(&q, Channel::Sms).is_empty());
    assert_eq!(emails(&q), [json!("a@x.com")]);
    let q = run(&p, json!([{"$unset": " seats "}]));
    assert!(!q.properties.contains_key("seats"));

    // Unsetting what is absent changes nothing.
    assert!(run(&p, json!([{"$unset": ["nope", "$slack"]}])).same_content(&p));
    assert!(run(&p, json!([{"$unset": []}])).same_content(&p));
}

// ---------------------------------------------------------------------------------------------
// $append

#[test]
fn append_custom_lists() {
    let p = run(&profile(), json!([{"$append": {"tags": "a"}}]));
    assert_eq!(p.properties["tags"], json!(["a"]), "a scalar starts a list");
    let p = run(&p, json!([{"$append": {"tags": "b"}}]));
    assert_eq!(p.properties["tags"], json!(["a", "b"]));
    let p = run(&p, json!([{"$append": {"tags": ["c", "a"]}}]));
    assert_eq!(
        p.properties["tags"],
        json!(["a", "b", "c", "a"]),
        "an array extends the list; property lists keep repeats"
    );
    let p = run(&p, json!([{"$append": {"tags": {"k": 1}}}]));
    assert_eq!(p.properties["tags"][4], json!({"k": 1}));

    // An array on an absent key becomes the list itself; null counts as absent.
    let p = run(
        &p,
        json!([{"$set": {"n": null}}, {"$append": {"fresh": [1, 2], "n": 7}}]),
    );
    assert_eq!(p.properties["fresh"], json!([1, 2]));
    assert_eq!(p.properties["n"], json!([7]));
}

#[test]
fn append_to_a_non_list_fails() {
    let p = run(&profile(), json!([{"$set": {"plan": "pro"}}]));
    let err = run_err(&p, json!([{"$append": {"plan": "x"}}]));
    assert_eq!(err.field, "operations[0].$append.plan");
    assert!(err.rule.contains("not a list"), "{}", err.rule);
}

#[test]
fn append_channels_with_metadata_siblings() {
    let p = run(
        &profile(),
        json!([
            {"$append": {"$androidpush": "tok-1", "$id_provider": "Xiaomi", "$device_id": "dev-1"}},
            {"$append": {"$iospush": "apns-tok", "$bundle_id": "com.example.app"}},
            {"$append": {"$androidpush": "tok-2"}},
        ]),
    );
    let android: Vec<&Identity> = p.identities_on(Channel::Androidpush).collect();
    assert_eq!(android.len(), 2);
    assert_eq!(android[0].value, json!("tok-1"));
    assert_eq!(android[0].provider.as_deref(), Some("xiaomi"));
    assert_eq!(android[0].device_id.as_deref(), Some("dev-1"));
    assert_eq!(android[1].value, json!("tok-2"));
    assert_eq!(
        android[1].provider.as_deref(),
        Some("fcm"),
        "default provider"
    );
    assert_eq!(android[1].device_id, None);
    let ios: Vec<&Identity> = p.identities_on(Channel::Iospush).collect();
    assert_eq!(ios.len(), 1);
    assert_eq!(ios[0].bundle_id.as_deref(), Some("com.example.app"));
    assert_eq!(ios[0].provider.as_deref(), Some("apns"));
    // Metadata keys never become properties.
    assert!(p.properties.is_empty());

    // Appending the same token again updates its metadata instead of adding a duplicate.
    let q = run(
        &p,
        json!([{"$append": {"$androidpush": "tok-1", "$device_id": "dev-9"}}]),
    );
    let android: Vec<&Identity> = q.identities_on(Channel::Androidpush).collect();
    assert_eq!(android.len(), 2);
    assert_eq!(android[0].device_id.as_deref(), Some("dev-9"));
    assert_eq!(
        android[0].provider.as_deref(),
        Some("fcm"),
        "the repeat carries the default provider"
    );
}

#[test]
fn append_email_deduplicates_case_insensitively() {
    let p = run(
        &profile(),
        json!([{"$append": {"$email": "Ann@Example.COM"}}]),
    );
    assert_eq!(
        emails(&p),
        [json!("Ann@example.com")],
        "domain lower-cased, local part kept"
    );
    let p = run(
        &p,
        json!([{"$append": {"$email": ["ann@example.com", "ANN@EXAMPLE.com", " bob@example.com "]}}]),
    );
    assert_eq!(
        emails(&p),
        [json!("Ann@example.com"), json!("bob@example.com")]
    );
    // Duplicates within one list collapse to the first.
    let p = run(
        &profile(),
        json!([{"$append": {"$email": ["Cy@x.com", "cy@x.com"]}}]),
    );
    assert_eq!(emails(&p), [json!("Cy@x.com")]);
}

#[test]
fn appended_identities_stay_grouped_by_channel() {
    let p = run(
        &profile(),
        json!([
            {"$append": {"$email": "a@x.com"}},
            {"$append": {"$sms": "+14155550123"}},
            {"$append": {"$email": "b@x.com"}},
        ]),
    );
    let order: Vec<(Channel, Value)> = p
        .identities
        .iter()
        .map(|i| (i.channel, i.value.clone()))
        .collect();
    assert_eq!(
        order,
        [
            (Channel::Email, json!("a@x.com")),
            (Channel::Email, json!("b@x.com")),
            (Channel::Sms, json!("+14155550123")),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// $remove

#[test]
fn remove_list_values() {
    let p = run(
        &profile(),
        json!([{"$set": {"tags": ["a", "b", "a", 1, {"k": 1}]}}]),
    );
    let q = run(&p, json!([{"$remove": {"tags": "a"}}]));
    assert_eq!(
        q.properties["tags"],
        json!(["b", 1, {"k": 1}]),
        "every occurrence"
    );
    let q = run(&p, json!([{"$remove": {"tags": ["b", 1, "zzz"]}}]));
    assert_eq!(q.properties["tags"], json!(["a", "a", {"k": 1}]));
    let q = run(&p, json!([{"$remove": {"tags": {"k": 1}}}]));
    assert_eq!(q.properties["tags"], json!(["a", "b", "a", 1]));
    // Removing from an absent or null key changes nothing.
    let q = run(
        &p,
        json!([{"$set": {"n": null}}, {"$remove": {"absent": "x", "n": 1}}]),
    );
    assert!(!q.properties.contains_key("absent"));
    assert_eq!(q.properties["n"], Value::Null);
}

#[test]
fn remove_from_a_non_list_fails() {
    let p = run(&profile(), json!([{"$set": {"n": 5}}]));
    let err = run_err(&p, json!([{"$remove": {"n": 5}}]));
    assert_eq!(err.field, "operations[0].$remove.n");
}

#[test]
fn remove_channel_identities() {
    let p = run(
        &profile(),
        json!([{"$append": {
            "$email": ["Ann@example.com", "bob@example.com"],
            "$sms": ["+14155550123", "+447700900123"],
        }}]),
    );
    let q = run(
        &p,
        json!([{"$remove": {"$email": "ANN@EXAMPLE.COM", "$sms": "+1 (415) 555-0123"}}]),
    );
    assert_eq!(emails(&q), [json!("bob@example.com")]);
    assert_eq!(values(&q, Channel::Sms), [json!("+447700900123")]);

    let q = run(
        &p,
        json!([{"$remove": {"$email": ["bob@EXAMPLE.com", "nobody@example.com"]}}]),
    );
    assert_eq!(emails(&q), [json!("Ann@example.com")]);
    assert_eq!(values(&q, Channel::Sms).len(), 2);

    // Removing an address on one channel leaves the others alone.
    let q = run(&p, json!([{"$remove": {"$whatsapp": "+14155550123"}}]));
    assert!(q.same_content(&p));
}

#[test]
fn remove_matches_stored_values_that_no_longer_validate() {
    let mut p = profile();
    p.identities.push(email_identity("Legacy-Address"));
    p.identities.push(email_identity("ok@x.com"));
    let q = run(&p, json!([{"$remove": {"$email": "legacy-address"}}]));
    assert_eq!(emails(&q), [json!("ok@x.com")]);
}

// ---------------------------------------------------------------------------------------------
// $add / $increment

#[test]
fn add_integers_stay_integers() {
    let p = run(&profile(), json!([{"$add": {"logins": 1}}]));
    assert_eq!(
        p.properties["logins"],
        json!(1),
        "absent starts at the amount"
    );
    let p = run(
        &p,
        json!([{"$add": {"logins": 2}}, {"$increment": {"logins": 4}}]),
    );
    assert_eq!(p.properties["logins"], json!(7));
    assert!(p.properties["logins"].is_i64());
    let p = run(&p, json!([{"$add": {"logins": -10}}]));
    assert_eq!(p.properties["logins"], json!(-3));
    assert!(p.properties["logins"].is_i64());
    let p = run(&p, json!([{"$increment": {"fresh": -2}}]));
    assert_eq!(p.properties["fresh"], json!(-2));
}

#[test]
fn add_floats() {
    let p = run(
        &profile(),
        json!([{"$set": {"score": 1}}, {"$add": {"score": 0.5}}]),
    );
    assert_eq!(p.properties["score"].as_f64(), Some(1.5));
    assert!(!p.properties["score"].is_i64());
    let p = run(&p, json!([{"$add": {"score": -2.25}}]));
    assert_eq!(p.properties["score"].as_f64(), Some(-0.75));
    let p = run(&p, json!([{"$add": {"score": 1}}]));
    assert_eq!(p.properties["score"].as_f64(), Some(0.25));
    let p = run(&profile(), json!([{"$add": {"f": 2.5}}]));
    assert_eq!(p.properties["f"].as_f64(), Some(2.5));
}

#[test]
fn add_treats_null_as_absent() {
    let p = run(
        &profile(),
        json!([{"$set": {"n": null}}, {"$add": {"n": 3}}]),
    );
    assert_eq!(p.properties["n"], json!(3));
}

#[test]
fn add_to_a_non_number_fails() {
    let p = run(&profile(), json!([{"$set": {"s": "text", "l": [1]}}]));
    let err = run_err(&p, json!([{"$add": {"s": 1}}]));
    assert_eq!(err.field, "operations[0].$add.s");
    assert!(err.rule.contains("not a number"), "{}", err.rule);
    let err = run_err(&p, json!([{"$increment": {"l": 1}}]));
    assert!(err.field.starts_with("operations[0]."), "{}", err.field);
    assert!(err.field.ends_with(".l"), "{}", err.field);
}

#[test]
fn add_overflow_fails() {
    let p = run(
        &profile(),
        json!([{"$set": {"n": i64::MAX, "m": i64::MIN}}]),
    );
    let err = run_err(&p, json!([{"$add": {"n": 1}}]));
    assert_eq!(err.field, "operations[0].$add.n");
    assert!(err.rule.contains("overflow"), "{}", err.rule);
    let err = run_err(&p, json!([{"$add": {"m": -1}}]));
    assert_eq!(err.field, "operations[0].$add.m");
    // Up to the limit is fine.
    let q = run(&p, json!([{"$add": {"n": -1}}, {"$add": {"n": 1}}]));
    assert_eq!(q.properties["n"], json!(i64::MAX));
    // A float sum that is no longer finite fails too.
    let p = run(&profile(), json!([{"$set": {"f": f64::MAX}}]));
    let err = run_err(&p, json!([{"$add": {"f": f64::MAX}}]));
    assert_eq!(err.field, "operations[0].$add.f");
}

// ---------------------------------------------------------------------------------------------
// Ordering

#[test]
fn operations_apply_in_order() {
    let p = run(&profile(), json!([{"$set": {"a": 1}}, {"$unset": ["a"]}]));
    assert!(!p.properties.contains_key("a"));
    let p = run(&profile(), json!([{"$unset": ["a"]}, {"$set": {"a": 1}}]));
    assert_eq!(p.properties["a"], json!(1));

    let p = run(
        &profile(),
        json!([
            {"$append": {"$email": "a@x.com"}},
            {"$unset": "$email"},
            {"$append": {"$email": "b@x.com"}},
        ]),
    );
    assert_eq!(emails(&p), [json!("b@x.com")]);

    let p = run(
        &profile(),
        json!([{"$set_once": {"a": 1}}, {"$set_once": {"a": 2}}, {"$add": {"a": 10}}]),
    );
    assert_eq!(p.properties["a"], json!(11));
}

#[test]
fn operators_in_one_object_apply_in_written_order() {
    let list = json!([{"$set": {"a": 1}, "$add": {"a": 2}, "$unset": ["b"], "$append": {"b": 9}}]);
    let parsed = ops(list.clone());
    assert_eq!(parsed.len(), 4);
    assert!(matches!(parsed[0].op, Op::Set(_)));
    assert!(matches!(parsed[1].op, Op::Add(_)));
    assert!(matches!(parsed[2].op, Op::Unset(_)));
    assert!(matches!(parsed[3].op, Op::Append(_)));
    let p = run(&profile(), list);
    assert_eq!(p.properties["a"], json!(3));
    assert_eq!(p.properties["b"], json!([9]));

    let p = run(&profile(), json!([{"$unset": ["a"], "$set": {"a": 5}}]));
    assert_eq!(p.properties["a"], json!(5));
    let p = run(&profile(), json!([{"$set": {"a": 5}, "$unset": ["a"]}]));
    assert!(!p.properties.contains_key("a"));
}

#[test]
fn keys_in_one_operator_apply_in_written_order() {
    // Within one $set the keys are independent, but their insertion order is kept.
    let p = run(&profile(), json!([{"$set": {"z": 1, "y": 2, "x": 3}}]));
    let keys: Vec<&str> = p.properties.keys().map(String::as_str).collect();
    assert_eq!(keys, ["z", "y", "x"]);
}

// ---------------------------------------------------------------------------------------------
// All or nothing

#[test]
fn a_failing_operation_leaves_the_profile_unchanged() {
    let p = run(
        &profile(),
        json!([{"$set": {"s": "text", "n": 1}, "$append": {"$email": "keep@x.com"}}]),
    );
    let before = p.clone();
    let list = json!([
        {"$set": {"n": 2, "new": true, "$status": "disabled"}},
        {"$add": {"s": 1}},
        {"$unset": ["$email"]},
    ]);
    let err = apply(&p, &ops(list)).unwrap_err();
    assert_eq!(err.field, "operations[1].$add.s");
    assert!(err.field.starts_with("operations[1]"));
    assert_eq!(p, before);
    assert_eq!(p.properties["n"], json!(1));
    assert!(!p.properties.contains_key("new"));
    assert_eq!(p.status, Status::Enabled);
    assert_eq!(emails(&p), [json!("keep@x.com")]);

    let err = run_err(
        &p,
        json!([
            {"$append": {"$email": "other@x.com"}},
            {"$add": {"n": 1}},
            {"$append": {"n": 1}},
        ]),
    );
    assert_eq!(err.field, "operations[2].$append.n");
    let err = run_err(&p, json!([{"$remove": {"s": "t"}}, {"$set": {"x": 1}}]));
    assert_eq!(err.field, "operations[0].$remove.s");
}

#[test]
fn an_error_names_the_operation_object_even_when_it_holds_several_operators() {
    let p = run(&profile(), json!([{"$set": {"s": "text"}}]));
    let err = run_err(
        &p,
        json!([{"$set": {"a": 1}, "$add": {"n": 1}, "$append": {"s": 1}}, {"$set": {"b": 2}}]),
    );
    assert_eq!(err.field, "operations[0].$append.s");
    let err = run_err(
        &p,
        json!([{"$set": {"a": 1}}, {"$unset": ["x"], "$add": {"s": 1}}]),
    );
    assert_eq!(err.field, "operations[1].$add.s");
}

// ---------------------------------------------------------------------------------------------
// Parse errors

#[test]
fn parse_rejects_non_lists_and_non_objects() {
    let err = parse_err(json!({"$set": {"a": 1}}));
    assert_eq!(err.field, "");
    assert!(err.rule.contains("list of operations"), "{}", err.rule);
    let err = parse_err(json!([1]));
    assert_eq!(err.field, "[0]");
    let err = parse_err(json!([{"$set": {"a": 1}}, "x"]));
    assert_eq!(err.field, "[1]");
    assert_eq!(err.within("operations").field, "operations[1]");
    let err = parse_err(json!([{"$set": [1]}]));
    assert_eq!(err.field, "[0].$set");
    let err = parse_err(json!([{"$remove": "x"}]));
    assert_eq!(err.field, "[0].$remove");
    assert!(ops(json!([])).is_empty());
    assert!(ops(json!([{}])).is_empty());
}

#[test]
fn parse_rejects_unknown_operators() {
    let err = parse_err(json!([{"$set": {"a": 1}}, {"$sett": {"a": 1}}]));
    assert_eq!(err.field, "[1].$sett");
    assert!(err.rule.contains("unknown operator"), "{}", err.rule);
    let err = parse_err(json!([{"set": {"a": 1}}]));
    assert_eq!(err.field, "[0].set");
}

#[test]
fn parse_rejects_reserved_keys() {
    for (list, field) in [
        (json!([{"$set": {"$foo": 1}}]), "[0].$set.$foo"),
        (json!([{"$set": {"ss_x": 1}}]), "[0].$set.ss_x"),
        (json!([{"$set_once": {"SS_y": 1}}]), "[0].$set_once.SS_y"),
        (json!([{"$append": {"$foo": 1}}]), "[0].$append.$foo"),
        (json!([{"$remove": {"ss_x": 1}}]), "[0].$remove.ss_x"),
        (json!([{"$add": {"$foo": 1}}]), "[0].$add.$foo"),
        (json!([{"$increment": {"ss_x": 1}}]), "[0].$increment.ss_x"),
        (json!([{"$unset": ["ok", "$foo"]}]), "[0].$unset[1]"),
        (json!([{"$unset": "ss_x"}]), "[0].$unset[0]"),
        (json!([{"$set": {"": 1}}]), "[0].$set"),
    ] {
        let err = parse_err(list.clone());
        assert_eq!(err.field, field, "{list}");
    }
    let err = parse_err(json!([{"$set": {"$foo": 1}}]));
    assert!(err.rule.contains("reserved"), "{}", err.rule);
}

#[test]
fn parse_rejects_invalid_addresses() {
    let err = parse_err(json!([{"$append": {"$email": "not-an-email"}}]));
    assert_eq!(err.field, "[0].$append.$email");
    let err = parse_err(json!([{"$set": {"$email": ["a@x.com", "a@b"]}}]));
    assert_eq!(err.field, "[0].$set.$email[1]", "the field names the item");
    let err = parse_err(json!([{"$append": {"$email": 5}}]));
    assert_eq!(err.field, "[0].$append.$email");
    let err = parse_err(json!([{"$append": {"$email": null}}]));
    assert_eq!(err.field, "[0].$append.$email");
    let err = parse_err(json!([{"$set_once": {"$sms": "4155550123"}}]));
    assert_eq!(err.field, "[0].$set_once.$sms");
    let err = parse_err(json!([{"$append": {"$whatsapp": "+0123"}}]));
    assert_eq!(err.field, "[0].$append.$whatsapp");
    let err = parse_err(json!([{"$append": {"$iospush": "t", "$id_provider": "xiaomi"}}]));
    assert_eq!(err.field, "[0].$append.$iospush");
    let err = parse_err(json!([{"$append": {"$androidpush": "t", "$id_provider": 5}}]));
    assert_eq!(err.field, "[0].$append.$id_provider");
}

#[test]
fn parse_rejects_invalid_general_properties() {
    for (list, field) in [
        (
            json!([{"$set": {"$timezone": "Mars/Olympus"}}]),
            "[0].$set.$timezone",
        ),
        (json!([{"$set": {"$timezone": 5}}]), "[0].$set.$timezone"),
        (
            json!([{"$set": {"country": "Atlantis"}}]),
            "[0].$set.country",
        ),
        (
            json!([{"$set_once": {"country": "XX"}}]),
            "[0].$set_once.country",
        ),
        (
            json!([{"$set": {"$preferred_language": "xx"}}]),
            "[0].$set.$preferred_language",
        ),
        (
            json!([{"$set": {"$preferred_language": "eng"}}]),
            "[0].$set.$preferred_language",
        ),
        (
            json!([{"$set": {"$locale": "english"}}]),
            "[0].$set.$locale",
        ),
        (json!([{"$set": {"$locale": "en_ZZ"}}]), "[0].$set.$locale"),
        (json!([{"$set": {"name": 42}}]), "[0].$set.name"),
        (
            json!([{"$set": {"name": "x".repeat(256)}}]),
            "[0].$set.name",
        ),
    ] {
        let err = parse_err(list.clone());
        assert_eq!(err.field, field, "{list}");
    }
    // The service reports them under `operations`.
    let err = parse_err(json!([{"$set": {"a": 1}}, {"$set": {"country": "Atlantis"}}]));
    assert_eq!(err.within("operations").field, "operations[1].$set.country");
}

#[test]
fn parse_rejects_non_numeric_add() {
    let err = parse_err(json!([{"$add": {"n": "1"}}]));
    assert_eq!(err.field, "[0].$add.n");
    assert!(err.rule.contains("must be a number"), "{}", err.rule);
    let err = parse_err(json!([{"$increment": {"n": null}}]));
    assert_eq!(err.field, "[0].$increment.n");
    let err = parse_err(json!([{"$add": {"n": [1]}}]));
    assert_eq!(err.field, "[0].$add.n");
    let err = parse_err(json!([{"$add": 1}]));
    assert_eq!(err.field, "[0].$add");
}

#[test]
fn parse_rejects_adding_to_general_properties_and_channels() {
    for key in [
        "$timezone",
        "$locale",
        "$preferred_language",
        "name",
        "country",
        "$email",
        "$status",
    ] {
        let err = parse_err(json!([{"$add": {key: 1}}]));
        assert_eq!(err.field, format!("[0].$add.{key}"));
        assert!(err.rule.contains("only custom"), "{key}: {}", err.rule);
    }
}

#[test]
fn parse_rejects_appending_to_general_properties() {
    for key in [
        "$timezone",
        "$locale",
        "$preferred_language",
        "name",
        "country",
    ] {
        let err = parse_err(json!([{"$append": {key: "x"}}]));
        assert_eq!(err.field, format!("[0].$append.{key}"));
    }
}

#[test]
fn parse_rejects_bad_status() {
    let err = parse_err(json!([{"$set": {"$status": "paused"}}]));
    assert_eq!(err.field, "[0].$set.$status");
    assert!(err.rule.contains("not a status"), "{}", err.rule);
    let err = parse_err(json!([{"$set": {"$status": false}}]));
    assert_eq!(err.field, "[0].$set.$status");
    let err = parse_err(json!([{"$append": {"$status": "enabled"}}]));
    assert_eq!(err.field, "[0].$append.$status");
    let err = parse_err(json!([{"$remove": {"$status": "enabled"}}]));
    assert_eq!(err.field, "[0].$remove.$status");
}

#[test]
fn parse_rejects_non_string_unset_keys() {
    let err = parse_err(json!([{"$unset": 5}]));
    assert_eq!(err.field, "[0].$unset");
    let err = parse_err(json!([{"$unset": {"a": 1}}]));
    assert_eq!(err.field, "[0].$unset");
    let err = parse_err(json!([{"$unset": ["a", 1]}]));
    assert_eq!(err.field, "[0].$unset[1]");
}

#[test]
fn key_parse_classifies() {
    assert_eq!(Key::parse("$status"), Ok(Key::Status));
    assert_eq!(Key::parse(" $email "), Ok(Key::Channel(Channel::Email)));
    assert_eq!(Key::parse("$ms_teams"), Ok(Key::Channel(Channel::MsTeams)));
    assert_eq!(
        Key::parse("$timezone"),
        Ok(Key::Property("$timezone".into()))
    );
    assert_eq!(Key::parse(" plan "), Ok(Key::Property("plan".into())));
    assert!(Key::parse("$id_provider").is_err());
    assert!(Key::parse("ss_x").is_err());
    assert_eq!(Key::Channel(Channel::Sms).name(), "$sms");
    assert_eq!(Key::Status.name(), "$status");
}

// ---------------------------------------------------------------------------------------------
// Upsert

#[test]
fn upsert_sets_properties_and_appends_channels() {
    let p = run(
        &profile(),
        json!([{"$set": {"plan": "free", "seats": 1}, "$append": {"$email": "old@x.com"}}]),
    );
    let body = json!({
        "name": " Ada ",
        "country": "Germany",
        "plan": "pro",
        "$email": ["new@x.com", "OLD@X.com"],
        "$sms": "+1 415 555 0123",
        "$status": "disabled",
    });
    let upsert = upsert_operations(&body).unwrap();
    assert_eq!(upsert.len(), 2);
    let q = apply(&p, &upsert).unwrap();
    assert_eq!(q.properties["name"], json!("Ada"));
    assert_eq!(q.properties["country"], json!("DE"));
    assert_eq!(q.properties["plan"], json!("pro"));
    assert_eq!(q.properties["seats"], json!(1), "untouched keys are kept");
    assert_eq!(
        emails(&q),
        [json!("old@x.com"), json!("new@x.com")],
        "added to those held, without duplicates"
    );
    assert_eq!(values(&q, Channel::Sms), [json!("+14155550123")]);
    assert_eq!(q.status, Status::Disabled);
    assert!(!q.properties.contains_key("$email"));
    assert!(!q.properties.contains_key("$status"));
}

#[test]
fn upsert_push_tokens_take_metadata() {
    let body = json!({
        "$androidpush": [{"token": "t1", "provider": "xiaomi", "device_id": "d1"}, "t2"],
        "$iospush": "i1",
        "$bundle_id": "com.x",
    });
    let p = apply(&profile(), &upsert_operations(&body).unwrap()).unwrap();
    let android: Vec<&Identity> = p.identities_on(Channel::Androidpush).collect();
    assert_eq!(android.len(), 2);
    assert_eq!(android[0].provider.as_deref(), Some("xiaomi"));
    assert_eq!(android[0].device_id.as_deref(), Some("d1"));
    assert_eq!(android[1].provider.as_deref(), Some("fcm"));
    let ios: Vec<&Identity> = p.identities_on(Channel::Iospush).collect();
    assert_eq!(ios[0].bundle_id.as_deref(), Some("com.x"));
    assert!(p.properties.is_empty());
}

#[test]
fn upsert_errors() {
    let err = upsert_operations(&json!([1])).unwrap_err();
    assert_eq!(err.field, "");
    let err = upsert_operations(&json!({"$foo": 1})).unwrap_err();
    assert_eq!(err.field, "$foo");
    let err = upsert_operations(&json!({"country": "Atlantis"})).unwrap_err();
    assert_eq!(err.field, "country");
    let err = upsert_operations(&json!({"$email": "nope"})).unwrap_err();
    assert_eq!(err.field, "$email");
    let err = upsert_operations(&json!({"$status": "maybe"})).unwrap_err();
    assert_eq!(err.field, "$status");
    // An empty body changes nothing.
    let p = run(&profile(), json!([{"$set": {"a": 1}}]));
    let q = apply(&p, &upsert_operations(&json!({})).unwrap()).unwrap();
    assert!(q.same_content(&p));
}

#[test]
fn add_identity_if_absent_keeps_the_existing_metadata() {
    let mut p = run(
        &profile(),
        json!([{"$append": {"$androidpush": "t", "$device_id": "primary"}}]),
    );
    let meta = IdentityMeta {
        provider: None,
        bundle_id: None,
        device_id: Some("secondary".into()),
    };
    add_identity_if_absent(
        &mut p,
        Identity::parse(Channel::Androidpush, &json!("t"), &meta).unwrap(),
    );
    let android: Vec<&Identity> = p.identities_on(Channel::Androidpush).collect();
    assert_eq!(android.len(), 1);
    assert_eq!(android[0].device_id.as_deref(), Some("primary"));
    add_identity_if_absent(
        &mut p,
        Identity::parse(Channel::Androidpush, &json!("u"), &meta).unwrap(),
    );
    assert_eq!(p.identities_on(Channel::Androidpush).count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Property test against an independent model

const KEYS: [&str; 3] = ["a", "b", "c"];
const ADDRESSES: [&str; 6] = [
    "ann@x.com",
    "ANN@x.com",
    "ann@X.COM",
    "Bob@y.org",
    "bob@Y.ORG",
    "cy@z.net",
];

/// One generated operation object (one operator each), in terms the model understands.
#[derive(Debug, Clone)]
enum Gen {
    Set(Vec<(usize, Value)>),
    SetOnce(Vec<(usize, Value)>),
    Unset(Vec<usize>),
    Add(Vec<(usize, i64)>),
    Append(Vec<(usize, Value)>),
    Remove(Vec<(usize, Value)>),
    SetEmail(Vec<usize>),
    AppendEmail(Vec<usize>),
    RemoveEmail(Vec<usize>),
    UnsetEmail,
}

fn small() -> impl Strategy<Value = i64> {
    -3i64..=3
}

/// A small int or a short list of small ints.
fn small_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        small().prop_map(Value::from),
        prop::collection::vec(small(), 0..3).prop_map(|v| json!(v)),
    ]
}

/// One to three `(key, value)` pairs with distinct keys (a JSON object cannot repeat a key).
fn pairs<S>(values: S) -> impl Strategy<Value = Vec<(usize, S::Value)>>
where
    S: Strategy,
    S::Value: Clone,
{
    prop::collection::vec((0..KEYS.len(), values), 1..4).prop_map(|mut v| {
        let mut seen = Vec::new();
        v.retain(|(k, _)| {
            let fresh = !seen.contains(k);
            seen.push(*k);
            fresh
        });
        v
    })
}

fn addresses() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..ADDRESSES.len(), 1..4)
}

fn gen_op() -> impl Strategy<Value = Gen> {
    prop_oneof![
        pairs(small_value()).prop_map(Gen::Set),
        pairs(small_value()).prop_map(Gen::SetOnce),
        prop::collection::vec(0..KEYS.len(), 1..3).prop_map(Gen::Unset),
        pairs(small()).prop_map(Gen::Add),
        pairs(small_value()).prop_map(Gen::Append),
        pairs(small_value()).prop_map(Gen::Remove),
        addresses().prop_map(Gen::SetEmail),
        addresses().prop_map(Gen::AppendEmail),
        addresses().prop_map(Gen::RemoveEmail),
        Just(Gen::UnsetEmail),
    ]
}

fn object(pairs: &[(usize, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (KEYS[*k].to_owned(), v.clone()))
            .collect(),
    )
}

/// One address as a string, several as a list.
fn address_value(list: &[usize]) -> Value {
    match list {
        [one] => json!(ADDRESSES[*one]),
        many => Value::Array(many.iter().map(|i| json!(ADDRESSES[*i])).collect()),
    }
}

impl Gen {
    fn to_json(&self) -> Value {
        match self {
            Gen::Set(p) => json!({"$set": object(p)}),
            Gen::SetOnce(p) => json!({"$set_once": object(p)}),
            Gen::Unset(keys) => {
                json!({"$unset": keys.iter().map(|k| KEYS[*k]).collect::<Vec<_>>()})
            }
            Gen::Add(p) => {
                let p: Vec<(usize, Value)> = p.iter().map(|(k, n)| (*k, json!(n))).collect();
                json!({"$add": object(&p)})
            }
            Gen::Append(p) => json!({"$append": object(p)}),
            Gen::Remove(p) => json!({"$remove": object(p)}),
            Gen::SetEmail(a) => json!({"$set": {"$email": address_value(a)}}),
            Gen::AppendEmail(a) => json!({"$append": {"$email": address_value(a)}}),
            Gen::RemoveEmail(a) => json!({"$remove": {"$email": address_value(a)}}),
            Gen::UnsetEmail => json!({"$unset": ["$email"]}),
        }
    }
}

/// What the engine should do, written independently of it.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    props: BTreeMap<String, Value>,
    emails: Vec<String>,
}

/// The stored form of an address: the domain is lower-cased, the local part kept.
fn normal_email(raw: &str) -> String {
    let (local, domain) = raw.rsplit_once('@').expect("generated addresses have an @");
    format!("{local}@{}", domain.to_ascii_lowercase())
}

fn same_email(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn items_of(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

impl Model {
    fn append_email(&mut self, raw: &str) {
        let address = normal_email(raw);
        if !self.emails.iter().any(|e| same_email(e, &address)) {
            self.emails.push(address);
        }
    }

    /// Applies one operation; an error is the field path inside the operation.
    fn step(&mut self, op: &Gen) -> Result<(), String> {
        match op {
            Gen::Set(pairs) => {
                for (k, v) in pairs {
                    self.props.insert(KEYS[*k].to_owned(), v.clone());
                }
            }
            Gen::SetOnce(pairs) => {
                for (k, v) in pairs {
                    self.props
                        .entry(KEYS[*k].to_owned())
                        .or_insert_with(|| v.clone());
                }
            }
            Gen::Unset(keys) => {
                for k in keys {
                    self.props.remove(KEYS[*k]);
                }
            }
            Gen::Add(pairs) => {
                for (k, n) in pairs {
                    let key = KEYS[*k];
                    let next = match self.props.get(key) {
                        None => *n,
                        Some(Value::Number(cur)) => cur.as_i64().expect("small ints") + n,
                        Some(_) => return Err(format!("$add.{key}")),
                    };
                    self.props.insert(key.to_owned(), json!(next));
                }
            }
            Gen::Append(pairs) => {
                for (k, v) in pairs {
                    let key = KEYS[*k];
                    match self.props.get_mut(key) {
                        None => {
                            self.props.insert(key.to_owned(), Value::Array(items_of(v)));
                        }
                        Some(Value::Array(list)) => list.extend(items_of(v)),
                        Some(_) => return Err(format!("$append.{key}")),
                    }
                }
            }
            Gen::Remove(pairs) => {
                for (k, v) in pairs {
                    let key = KEYS[*k];
                    match self.props.get_mut(key) {
                        None => {}
                        Some(Value::Array(list)) => {
                            let gone = items_of(v);
                            list.retain(|x| !gone.contains(x));
                        }
                        Some(_) => return Err(format!("$remove.{key}")),
                    }
                }
            }
            Gen::SetEmail(list) => {
                self.emails.clear();
                for i in list {
                    self.append_email(ADDRESSES[*i]);
                }
            }
            Gen::AppendEmail(list) => {
                for i in list {
                    self.append_email(ADDRESSES[*i]);
                }
            }
            Gen::RemoveEmail(list) => {
                let gone: Vec<String> = list.iter().map(|i| normal_email(ADDRESSES[*i])).collect();
                self.emails
                    .retain(|e| !gone.iter().any(|g| same_email(e, g)));
            }
            Gen::UnsetEmail => self.emails.clear(),
        }
        Ok(())
    }
}

fn initial_state() -> impl Strategy<Value = (Vec<(usize, Value)>, Vec<usize>)> {
    (
        prop::collection::vec((0..KEYS.len(), small_value()), 0..4),
        prop::collection::vec(0..ADDRESSES.len(), 0..3),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn engine_matches_model(
        (initial_props, initial_emails) in initial_state(),
        sequence in prop::collection::vec(gen_op(), 0..12),
    ) {
        // The same starting state, built directly on both sides.
        let mut model = Model { props: BTreeMap::new(), emails: Vec::new() };
        let mut start = profile();
        for (k, v) in &initial_props {
            model.props.insert(KEYS[*k].to_owned(), v.clone());
            start.properties.insert(KEYS[*k].to_owned(), v.clone());
        }
        for i in &initial_emails {
            model.append_email(ADDRESSES[*i]);
        }
        for e in &model.emails {
            start.identities.push(email_identity(e));
        }

        let raw = Value::Array(sequence.iter().map(Gen::to_json).collect());
        let parsed = parse_operations(&raw, "operations");
        prop_assert!(parsed.is_ok(), "{raw} should parse: {:?}", parsed.err());
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.len(), sequence.len());

        let mut expected_error = None;
        for (i, op) in sequence.iter().enumerate() {
            if let Err(field) = model.step(op) {
                expected_error = Some(format!("operations[{i}].{field}"));
                break;
            }
        }

        let before = start.clone();
        let result = apply(&start, &parsed);
        prop_assert_eq!(&start, &before);
        match (result, expected_error) {
            (Err(err), Some(field)) => prop_assert_eq!(err.field, field),
            (Ok(p), None) => {
                let props: BTreeMap<String, Value> = p.properties.clone().into_iter().collect();
                prop_assert_eq!(props, model.props);
                let got: Vec<String> = p
                    .identities
                    .iter()
                    .map(|i| {
                        assert_eq!(i.channel, Channel::Email);
                        i.value.as_str().unwrap().to_owned()
                    })
                    .collect();
                prop_assert_eq!(got, model.emails);
                prop_assert_eq!(p.status, Status::Enabled);
            }
            (Ok(p), Some(field)) => {
                prop_assert!(false, "expected an error at {field}, got {:?}", p.properties)
            }
            (Err(err), None) => prop_assert!(false, "unexpected error {err} for {raw}"),
        }
    }

    #[test]
    fn applying_in_two_steps_equals_applying_at_once(
        first in prop::collection::vec(gen_op(), 0..6),
        second in prop::collection::vec(gen_op(), 0..6),
    ) {
        let all: Vec<Value> = first.iter().chain(&second).map(Gen::to_json).collect();
        let at_once = apply(&profile(), &ops(Value::Array(all)));
        let first = ops(Value::Array(first.iter().map(Gen::to_json).collect()));
        let second = ops(Value::Array(second.iter().map(Gen::to_json).collect()));
        let stepwise = apply(&profile(), &first).and_then(|p| apply(&p, &second));
        prop_assert_eq!(at_once.is_ok(), stepwise.is_ok());
        if let (Ok(a), Ok(b)) = (at_once, stepwise) {
            prop_assert!(a.same_content(&b));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Export lines: a profile's upsert body recreates it

#[test]
fn an_upsert_body_recreates_the_profile_it_was_made_from() {
    let p = run(
        &profile(),
        json!([
            {"$append": {"$sms": "+447700900123"}},
            {"$set": {"name": "Ada", "plan": "pro", "nested": {"a": [1, 2]}, "country": "GB", "$status": "disabled"}},
            {"$append": {"$email": ["Ada@Example.com", "ada@work.example"]}},
            {"$append": {"$androidpush": "fcm-1", "$id_provider": "xiaomi", "$bundle_id": "com.x", "$device_id": "d1"}},
            {"$append": {"$iospush": "apns-1"}},
            {"$append": {"$webpush": {"endpoint": "https://push.example/1", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}}},
            {"$append": {"$slack": {"email": "ada@example.com", "access_token": "xoxb-1"}}},
            {"$append": {"$ms_teams": {"conversation_id": "19:abc"}}},
            {"$append": {"$discord": "https://discord.com/api/webhooks/1/abc"}},
            {"$append": {"$inbox": "inbox-ada"}},
            {"$set": {"tags": ["a", "b"]}},
        ]),
    );
    let body = Value::Object(p.to_upsert_body());
    let again = apply(&profile(), &upsert_operations(&body).unwrap()).unwrap();
    assert!(again.same_content(&p), "{body}\n{:?}\n{:?}", again, p);
    assert_eq!(
        again.properties.keys().collect::<Vec<_>>(),
        p.properties.keys().collect::<Vec<_>>()
    );
    assert_eq!(body["$androidpush"][0]["provider"], "xiaomi");
    // Applied to the profile itself, it changes nothing.
    assert!(apply(&p, &upsert_operations(&body).unwrap())
        .unwrap()
        .same_content(&p));
}
