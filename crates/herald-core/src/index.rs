//! What of a profile can be filtered and counted, derived in one place.
//!
//! Stores keep the [`Entry`] rows of every profile beside it, so list filters run on indexes
//! instead of parsing JSON per row, and they apply the [`Change`] of every write to the property
//! registry's counters, so "how many profiles carry this key" stays current without rescans. The
//! in-memory [`crate::filter::Filter::matches`] reads the same entries, so the SQL of each store
//! and the domain's definition of a match cannot drift apart unnoticed (the contract tests compare
//! them).

use crate::channel::{Channel, Identity};
use crate::profile::{micros, Profile, GENERAL_KEYS};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The key of the free-text search entries (`q=`).
pub const SEARCH_KEY: &str = "$search";
/// The presence key every profile carries: its counter is the number of profiles.
pub const EVERY_PROFILE: &str = "*";
/// Index entries keep at most this many bytes of a value; longer strings are compared on it.
pub const MAX_INDEXED_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A scalar property value (`eq`, `in`, `gt`…, substring `contains`).
    Value = 0,
    /// One element of a list, or one identity of a channel (list `contains`).
    Element = 1,
    /// A key whose value is not indexable (object, null, empty list): it only exists.
    Present = 2,
    /// A lower-cased term for the free-text prefix search.
    Search = 3,
}

impl EntryKind {
    pub fn code(self) -> i16 {
        self as i16
    }
}

/// One index row. Its identity is `(key, kind, text)`; `num` and `time` are derived from `text`'s
/// source value so range filters can use them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub kind: EntryKind,
    pub text: String,
    pub num: Option<f64>,
    /// Microseconds since the epoch, for strings that are RFC 3339 timestamps.
    pub time: Option<i64>,
}

impl Entry {
    fn identity(&self) -> (&str, EntryKind, &str) {
        (&self.key, self.kind, &self.text)
    }

    /// Whether both carry the same typed value: the number 30 and the string "30" share a text
    /// (and a row identity) but not `num`, which range filters read.
    fn same_value(&self, other: &Entry) -> bool {
        self.num.map(f64::to_bits) == other.num.map(f64::to_bits) && self.time == other.time
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.identity().cmp(&other.identity())
    }
}

/// The text a scalar is indexed and compared as: strings as they are (cut to
/// [`MAX_INDEXED_BYTES`]), numbers in canonical form (`30`, `2.5`), booleans as `true`/`false`.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(truncate(s).to_owned()),
        Value::Number(n) => n.as_f64().map(number_text),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The texts a filter operand matches, in the form of [`scalar_text`]: the operand as written and,
/// when it is a number, its canonical form (`eq:30.0` finds the number 30 and the string "30.0").
pub fn operand_texts(raw: &str) -> Vec<String> {
    let mut texts = vec![truncate(raw).to_owned()];
    if let Ok(n) = raw.parse::<f64>() {
        if n.is_finite() && looks_numeric(raw) {
            let canonical = number_text(n);
            if canonical != texts[0] {
                texts.push(canonical);
            }
        }
    }
    texts
}

fn looks_numeric(raw: &str) -> bool {
    // `inf`, `NaN` and the like parse as f64 but are words here.
    raw.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_INDEXED_BYTES {
        return s;
    }
    let mut end = MAX_INDEXED_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Microseconds since the epoch of an RFC 3339 timestamp.
pub fn parse_time(raw: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .ok()
        .map(|t| micros(t.with_timezone(&chrono::Utc)))
}

fn scalar(key: &str, kind: EntryKind, v: &Value) -> Option<Entry> {
    let text = scalar_text(v)?;
    Some(Entry {
        key: key.to_owned(),
        kind,
        num: v.as_f64(),
        time: v.as_str().and_then(parse_time),
        text,
    })
}

fn present(key: &str) -> Entry {
    Entry {
        key: key.to_owned(),
        kind: EntryKind::Present,
        text: String::new(),
        num: None,
        time: None,
    }
}

fn search(term: &str) -> Entry {
    Entry {
        key: SEARCH_KEY.to_owned(),
        kind: EntryKind::Search,
        text: truncate(&term.to_ascii_lowercase()).to_owned(),
        num: None,
        time: None,
    }
}

/// The text an identity is indexed under: its address, or the compact JSON of an object
/// (Slack, Teams, web push).
pub fn identity_text(i: &Identity) -> String {
    match &i.value {
        Value::String(s) => truncate(s).to_owned(),
        other => truncate(&other.to_string()).to_owned(),
    }
}

/// Every index entry of a profile, sorted and without duplicates.
pub fn entries(p: &Profile) -> Vec<Entry> {
    let mut out = Vec::new();
    for (key, v) in &p.properties {
        match v {
            Value::Array(items) => {
                let before = out.len();
                out.extend(
                    items
                        .iter()
                        .filter_map(|item| scalar(key, EntryKind::Element, item)),
                );
                if out.len() == before {
                    out.push(present(key));
                }
            }
            Value::Object(_) | Value::Null => out.push(present(key)),
            scalar_value => out.extend(scalar(key, EntryKind::Value, scalar_value)),
        }
    }
    for i in &p.identities {
        out.push(Entry {
            key: i.channel.key().to_owned(),
            kind: EntryKind::Element,
            text: identity_text(i),
            num: None,
            time: None,
        });
    }
    out.push(search(p.distinct_id.as_str()));
    if let Some(name) = p.properties.get("name").and_then(Value::as_str) {
        out.push(search(name));
        // "love" finds "Ada Lovelace": every word of the name is a term too.
        out.extend(name.split_whitespace().skip(1).map(search));
    }
    for i in &p.identities {
        if let (Channel::Email | Channel::Sms | Channel::Whatsapp, Value::String(s)) =
            (i.channel, &i.value)
        {
            out.push(search(s));
            if let Some(digits) = s.strip_prefix('+') {
                out.push(search(digits));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Bits of the JSON types a property has been seen with.
pub mod types {
    pub const STRING: u8 = 1;
    pub const NUMBER: u8 = 2;
    pub const BOOLEAN: u8 = 4;
    pub const OBJECT: u8 = 8;
    pub const ARRAY: u8 = 16;
    pub const NULL: u8 = 32;
    /// A string holding an RFC 3339 time.
    pub const DATETIME: u8 = 64;

    pub fn of(v: &serde_json::Value) -> u8 {
        use serde_json::Value::*;
        match v {
            String(s) if super::parse_time(s).is_some() => DATETIME,
            String(_) => STRING,
            Number(_) => NUMBER,
            Bool(_) => BOOLEAN,
            Object(_) => OBJECT,
            Array(_) => ARRAY,
            Null => NULL,
        }
    }

    pub fn names(bits: u8) -> Vec<&'static str> {
        [
            (STRING, "string"),
            (NUMBER, "number"),
            (BOOLEAN, "boolean"),
            (OBJECT, "object"),
            (ARRAY, "array"),
            (NULL, "null"),
            (DATETIME, "datetime"),
        ]
        .into_iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n)
        .collect()
    }

    pub fn parse(name: &str) -> Option<u8> {
        Some(match name {
            "string" => STRING,
            "number" => NUMBER,
            "boolean" => BOOLEAN,
            "object" => OBJECT,
            "array" => ARRAY,
            "null" => NULL,
            "datetime" => DATETIME,
            _ => return None,
        })
    }
}

/// The keys a profile carries, each with the type bits of its value: [`EVERY_PROFILE`], every
/// property key (general or custom) and every channel with at least one identity.
pub fn presence(p: &Profile) -> BTreeMap<String, u8> {
    let mut keys = BTreeMap::new();
    keys.insert(EVERY_PROFILE.to_owned(), 0);
    for (k, v) in &p.properties {
        keys.insert(k.clone(), types::of(v));
    }
    for i in &p.identities {
        keys.insert(i.channel.key().to_owned(), 0);
    }
    keys
}

/// Whether a key is a custom property (not general, not a channel, not Herald's own).
pub fn is_custom(key: &str) -> bool {
    key != EVERY_PROFILE && !GENERAL_KEYS.contains(&key) && Channel::from_key(key).is_none()
}

/// What a store must do beside writing (or removing) one profile.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Change {
    pub removed: Vec<Entry>,
    pub added: Vec<Entry>,
    /// Presence counter deltas, by key.
    pub counts: Vec<(String, i64)>,
    /// Custom keys that appeared on this profile or changed type, with the type bits now seen:
    /// the registry records them (first sight creates the entry).
    pub seen: Vec<(String, u8)>,
}

impl Change {
    /// From the stored state (`None`: not stored) to the next (`None`: removed).
    pub fn between(before: Option<&Profile>, after: Option<&Profile>) -> Change {
        let old = before.map(entries).unwrap_or_default();
        let new = after.map(entries).unwrap_or_default();
        let (removed, added) = sorted_difference(&old, &new);
        let old_keys = before.map(presence).unwrap_or_default();
        let new_keys = after.map(presence).unwrap_or_default();
        let mut counts = Vec::new();
        for k in old_keys.keys().filter(|k| !new_keys.contains_key(*k)) {
            counts.push((k.clone(), -1));
        }
        let mut seen = Vec::new();
        for (k, bits) in &new_keys {
            match old_keys.get(k) {
                None => counts.push((k.clone(), 1)),
                Some(old_bits) if old_bits == bits => continue,
                Some(_) => {}
            }
            if is_custom(k) {
                seen.push((k.clone(), *bits));
            }
        }
        counts.sort();
        Change {
            removed,
            added,
            counts,
            seen,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
            && self.added.is_empty()
            && self.counts.is_empty()
            && self.seen.is_empty()
    }
}

/// `(in a but not b, in b but not a)` of two sorted, deduplicated lists.
fn sorted_difference(a: &[Entry], b: &[Entry]) -> (Vec<Entry>, Vec<Entry>) {
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Less => {
                    only_a.push(x.clone());
                    i += 1;
                }
                Ordering::Greater => {
                    only_b.push(y.clone());
                    j += 1;
                }
                Ordering::Equal => {
                    // Same row, another type (30 -> "30"): the row is replaced, or range filters
                    // would keep reading the old number.
                    if !x.same_value(y) {
                        only_a.push(x.clone());
                        only_b.push(y.clone());
                    }
                    i += 1;
                    j += 1;
                }
            },
            (Some(x), None) => {
                only_a.push(x.clone());
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::IdentityMeta;
    use crate::ids::DistinctId;
    use chrono::Utc;
    use serde_json::json;

    fn profile(props: Value) -> Profile {
        let mut p = Profile::new(DistinctId::parse("Ada-1").unwrap(), Utc::now());
        p.properties = props.as_object().unwrap().clone();
        p
    }

    #[test]
    fn a_value_switching_between_number_and_string_replaces_its_entry() {
        let number = profile(json!({"age": 30}));
        let string = profile(json!({"age": "30"}));
        let change = Change::between(Some(&number), Some(&string));
        assert_eq!(change.removed.len(), 1, "{change:?}");
        assert_eq!(change.removed[0].num, Some(30.0));
        assert_eq!(change.added.len(), 1, "{change:?}");
        assert_eq!(change.added[0].num, None);
        assert!(
            change.counts.is_empty(),
            "the key stays present: {change:?}"
        );
        let back = Change::between(Some(&string), Some(&number));
        assert_eq!(back.added[0].num, Some(30.0));
        assert!(Change::between(Some(&number), Some(&number)).is_empty());
    }

    fn texts(p: &Profile, key: &str) -> Vec<(EntryKind, String)> {
        entries(p)
            .into_iter()
            .filter(|e| e.key == key)
            .map(|e| (e.kind, e.text))
            .collect()
    }

    #[test]
    fn scalars_lists_and_objects_become_entries() {
        let p = profile(json!({
            "plan": "pro", "age": 30.0, "vip": true, "tags": ["a", "b", "a", {"x": 1}],
            "address": {"city": "Paris"}, "empty": [], "nothing": null,
            "signup": "2026-01-02T03:04:05Z"
        }));
        assert_eq!(texts(&p, "plan"), [(EntryKind::Value, "pro".into())]);
        assert_eq!(texts(&p, "age"), [(EntryKind::Value, "30".into())]);
        assert_eq!(texts(&p, "vip"), [(EntryKind::Value, "true".into())]);
        assert_eq!(
            texts(&p, "tags"),
            [
                (EntryKind::Element, "a".into()),
                (EntryKind::Element, "b".into())
            ]
        );
        for key in ["address", "empty", "nothing"] {
            assert_eq!(
                texts(&p, key),
                [(EntryKind::Present, String::new())],
                "{key}"
            );
        }
        let signup = entries(&p).into_iter().find(|e| e.key == "signup").unwrap();
        assert_eq!(signup.time, parse_time("2026-01-02T03:04:05+00:00"));
        let age = entries(&p).into_iter().find(|e| e.key == "age").unwrap();
        assert_eq!(age.num, Some(30.0));
    }

    #[test]
    fn search_terms_cover_id_name_words_emails_and_phones() {
        let mut p = profile(json!({"name": "Ada Lovelace"}));
        for (channel, raw) in [
            (Channel::Email, "Ada@Example.com"),
            (Channel::Sms, "+447700900123"),
        ] {
            p.identities
                .push(Identity::parse(channel, &json!(raw), &IdentityMeta::default()).unwrap());
        }
        let terms: Vec<String> = texts(&p, SEARCH_KEY).into_iter().map(|(_, t)| t).collect();
        for want in [
            "ada-1",
            "ada lovelace",
            "lovelace",
            "ada@example.com",
            "+447700900123",
            "447700900123",
        ] {
            assert!(terms.iter().any(|t| t == want), "{want} in {terms:?}");
        }
        assert_eq!(
            texts(&p, "$email"),
            [(EntryKind::Element, "Ada@example.com".into())]
        );
    }

    #[test]
    fn presence_records_each_key_with_its_type() {
        let p =
            profile(json!({"renews": "2026-06-01T00:00:00Z", "plan": "pro", "n": 1, "tags": []}));
        let keys = presence(&p);
        assert_eq!(keys["renews"], types::DATETIME);
        assert_eq!(types::names(keys["renews"]), ["datetime"]);
        assert_eq!(
            (keys["plan"], keys["n"], keys["tags"]),
            (types::STRING, types::NUMBER, types::ARRAY)
        );
        assert_eq!(keys[EVERY_PROFILE], 0);
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let long = "é".repeat(300);
        let p = profile(json!({ "bio": long }));
        let text = &texts(&p, "bio")[0].1;
        assert!(text.len() <= MAX_INDEXED_BYTES && long.starts_with(text.as_str()));
        assert_eq!(operand_texts(&long), vec![text.to_owned()]);
    }

    #[test]
    fn operands_match_the_indexed_form() {
        assert_eq!(operand_texts("30.0"), ["30.0", "30"]);
        assert_eq!(operand_texts("2.50"), ["2.50", "2.5"]);
        assert_eq!(operand_texts("30"), ["30"]);
        assert_eq!(operand_texts("pro"), ["pro"]);
        assert_eq!(operand_texts("inf"), ["inf"]);
        assert_eq!(operand_texts("007"), ["007", "7"]);
    }

    #[test]
    fn a_change_lists_entry_and_count_differences() {
        let before = profile(json!({"plan": "free", "age": 3, "name": "Ada"}));
        let after = profile(json!({"plan": "pro", "age": "three", "team": "x", "name": "Ada"}));
        let c = Change::between(Some(&before), Some(&after));
        let show = |es: &[Entry]| {
            es.iter()
                .filter(|e| e.key != SEARCH_KEY)
                .map(|e| format!("{}={}", e.key, e.text))
                .collect::<Vec<_>>()
        };
        assert_eq!(show(&c.removed), ["age=3", "plan=free"]);
        assert_eq!(show(&c.added), ["age=three", "plan=pro", "team=x"]);
        assert_eq!(c.counts, [("team".to_owned(), 1)]);
        assert_eq!(
            c.seen,
            [
                ("age".to_owned(), types::STRING),
                ("team".to_owned(), types::STRING)
            ]
        );

        let created = Change::between(None, Some(&before));
        assert!(created.counts.contains(&(EVERY_PROFILE.to_owned(), 1)));
        assert!(created.counts.contains(&("name".to_owned(), 1)));
        let removed = Change::between(Some(&before), None);
        assert_eq!(removed.added, []);
        assert_eq!(removed.removed.len(), entries(&before).len());
        assert_eq!(
            removed.counts.len(),
            4,
            "*, age, name, plan: {:?}",
            removed.counts
        );
        assert!(Change::between(Some(&before), Some(&before)).is_empty());
    }
}
