//! The operations engine: `$set`, `$set_once`, `$unset`, `$append`, `$remove`, `$add`
//! (alias `$increment`), parsed once from the wire and applied in order, all or nothing.

use crate::channel::{type_name, Channel, Identity, IdentityMeta};
use crate::error::Invalid;
use crate::profile::{Profile, Status, GENERAL_KEYS, STATUS_KEY};
use crate::validate;
use serde_json::{Map, Number, Value};

/// A property key, classified once.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Status,
    Channel(Channel),
    /// A general or custom property stored in `properties`.
    Property(String),
}

impl Key {
    /// Classifies a key. General `$` keys and channels are allowed; other `$`/`ss_` keys are reserved.
    pub fn parse(raw: &str) -> Result<Key, String> {
        let key = raw.trim();
        if key == STATUS_KEY {
            return Ok(Key::Status);
        }
        if let Some(channel) = Channel::from_key(key) {
            return Ok(Key::Channel(channel));
        }
        if matches!(
            key,
            "$timezone" | "$preferred_language" | "$locale" | crate::quiet::PROPERTY
        ) {
            return Ok(Key::Property(key.to_owned()));
        }
        validate::custom_key(key).map(Key::Property)
    }

    pub fn name(&self) -> &str {
        match self {
            Key::Status => STATUS_KEY,
            Key::Channel(c) => c.key(),
            Key::Property(k) => k,
        }
    }
}

/// One key with its validated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Assign {
    Status(Status),
    Channel(Channel, Vec<Identity>),
    Property(String, Value),
}

/// A channel entry to remove, matched by the same key identities are deduplicated by.
#[derive(Debug, Clone, PartialEq)]
pub enum Removal {
    Channel(Channel, Vec<String>),
    Property(String, Value),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Set(Vec<Assign>),
    SetOnce(Vec<Assign>),
    Unset(Vec<Key>),
    Append(Vec<Assign>),
    Remove(Vec<Removal>),
    Add(Vec<(String, Number)>),
}

/// The operator keys an operation object may hold.
pub const OPERATORS: [&str; 7] = [
    "$set",
    "$set_once",
    "$unset",
    "$append",
    "$remove",
    "$add",
    "$increment",
];
const META_KEYS: [&str; 3] = ["$id_provider", "$bundle_id", "$device_id"];

/// One parsed operator and where the request wrote it (`operations[2]`), so that an error found
/// while applying it names the caller's own position even when one object holds several operators.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub op: Op,
    /// The field path of the operation object; empty for an upsert body, whose keys stand alone.
    pub at: String,
}

/// Parses a list of operation objects (`[{"$set": {...}}, {"$unset": [...]}]`) found at `path` in
/// the request. Each object may hold several operators; they are applied in the order written.
pub fn parse_operations(raw: &Value, path: &str) -> Result<Vec<Step>, Invalid> {
    let list = raw.as_array().ok_or_else(|| {
        Invalid::new(
            path,
            format!("must be a list of operations, got {}", type_name(raw)),
        )
    })?;
    let mut steps = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let obj = item
            .as_object()
            .ok_or_else(|| Invalid::new(&at, "each operation must be an object"))?;
        for (op, value) in obj {
            let op = parse_op(op, value).map_err(|e| e.within(&at))?;
            steps.push(Step { op, at: at.clone() });
        }
    }
    Ok(steps)
}

fn parse_op(op: &str, value: &Value) -> Result<Op, Invalid> {
    let at = |e: Invalid| e.within(op);
    match op {
        "$set" => Ok(Op::Set(
            assignments(object(value).map_err(at)?, false).map_err(at)?,
        )),
        "$set_once" => Ok(Op::SetOnce(
            assignments(object(value).map_err(at)?, false).map_err(at)?,
        )),
        "$append" => Ok(Op::Append(
            assignments(object(value).map_err(at)?, true).map_err(at)?,
        )),
        "$remove" => Ok(Op::Remove(
            removals(object(value).map_err(at)?).map_err(at)?,
        )),
        "$add" | "$increment" => {
            let mut adds = Vec::new();
            for (k, v) in object(value).map_err(at)? {
                let key = match Key::parse(k) {
                    Ok(Key::Property(key))
                        if !key.starts_with('$') && !GENERAL_KEYS.contains(&key.as_str()) =>
                    {
                        key
                    }
                    Ok(_) => {
                        return Err(Invalid::new(
                            format!("{op}.{k}"),
                            "only custom properties can be incremented",
                        ))
                    }
                    Err(rule) => return Err(Invalid::new(format!("{op}.{k}"), rule)),
                };
                let n = v.as_number().ok_or_else(|| {
                    Invalid::new(
                        format!("{op}.{k}"),
                        format!("must be a number, got {}", type_name(v)),
                    )
                })?;
                adds.push((key, n.clone()));
            }
            Ok(Op::Add(adds))
        }
        "$unset" => {
            let names: Vec<&Value> = match value {
                Value::Array(a) => a.iter().collect(),
                single @ Value::String(_) => vec![single],
                other => {
                    return Err(Invalid::new(
                        op,
                        format!("must be a list of keys, got {}", type_name(other)),
                    ))
                }
            };
            let mut keys = Vec::new();
            for (i, name) in names.into_iter().enumerate() {
                let name = name
                    .as_str()
                    .ok_or_else(|| Invalid::new(format!("{op}[{i}]"), "keys must be strings"))?;
                keys.push(
                    Key::parse(name).map_err(|rule| Invalid::new(format!("{op}[{i}]"), rule))?,
                );
            }
            Ok(Op::Unset(keys))
        }
        other => Err(Invalid::new(
            other,
            format!(
                "unknown operator (expected one of {})",
                OPERATORS.join(", ")
            ),
        )),
    }
}

fn object(value: &Value) -> Result<&Map<String, Value>, Invalid> {
    value.as_object().ok_or_else(|| {
        Invalid::new(
            "",
            format!("must be an object of key: value, got {}", type_name(value)),
        )
    })
}

fn meta_of(obj: &Map<String, Value>) -> Result<IdentityMeta, Invalid> {
    let text = |k: &str| -> Result<Option<String>, Invalid> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => validate::no_nul(s)
                .map(|()| Some(s.clone()))
                .map_err(|rule| Invalid::new(k, rule)),
            Some(other) => Err(Invalid::new(
                k,
                format!("must be a string, got {}", type_name(other)),
            )),
        }
    };
    Ok(IdentityMeta {
        provider: text("$id_provider")?,
        bundle_id: text("$bundle_id")?,
        device_id: text("$device_id")?,
    })
}

/// Validates `{key: value}` pairs. Channel values may be one item or a list of items.
fn assignments(obj: &Map<String, Value>, appending: bool) -> Result<Vec<Assign>, Invalid> {
    let meta = meta_of(obj)?;
    let mut out = Vec::new();
    for (k, v) in obj {
        if META_KEYS.contains(&k.as_str()) {
            continue;
        }
        let key = Key::parse(k).map_err(|rule| Invalid::new(k, rule))?;
        out.push(assign(key, v, &meta, appending).map_err(|e| e.within(k.trim()))?);
    }
    Ok(out)
}

/// Validates one value for one key: general properties are normalised, identities parsed.
/// The error's field is relative to the key (`[2]` for the third identity of a list).
pub fn assign(
    key: Key,
    v: &Value,
    meta: &IdentityMeta,
    appending: bool,
) -> Result<Assign, Invalid> {
    let whole = |rule: String| Invalid::new("", rule);
    // Whatever is stored must nest boundedly and hold no U+0000 (see `validate::custom_value`).
    validate::custom_value(v)?;
    match key {
        Key::Status => {
            if appending {
                return Err(whole("$status is set, not appended".into()));
            }
            let s = v.as_str().ok_or_else(|| {
                whole(format!("must be enabled or disabled, got {}", type_name(v)))
            })?;
            Ok(Assign::Status(Status::parse(s).map_err(whole)?))
        }
        Key::Channel(channel) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Null if !appending => Vec::new(),
                other => vec![other],
            };
            let mut ids: Vec<Identity> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let id = Identity::parse(channel, item, meta).map_err(|rule| {
                    let at = if v.is_array() {
                        format!("[{i}]")
                    } else {
                        String::new()
                    };
                    Invalid::new(at, rule)
                })?;
                if !ids.iter().any(|x| x.dedup_key() == id.dedup_key()) {
                    ids.push(id);
                }
            }
            Ok(Assign::Channel(channel, ids))
        }
        Key::Property(name) => {
            let value = if appending {
                // General properties hold one validated value; a list would bypass validation.
                if GENERAL_KEYS.contains(&name.as_str()) {
                    return Err(whole(format!("{name} is set, not appended")));
                }
                v.clone()
            } else {
                general(&name, v).map_err(whole)?
            };
            Ok(Assign::Property(name, value))
        }
    }
}

/// Normalises a general property (`country`, `$timezone`, …); custom values pass unchanged.
fn general(key: &str, v: &Value) -> Result<Value, String> {
    let check: fn(&str) -> Result<String, String> = match key {
        "country" => validate::country,
        "$timezone" => validate::timezone,
        "$preferred_language" => validate::language,
        "$locale" => validate::locale,
        crate::quiet::PROPERTY => {
            return crate::quiet::normalize(v).map_err(|e| e.to_string());
        }
        "name" => {
            return match v {
                Value::String(s) if s.chars().count() <= 255 => {
                    Ok(Value::String(s.trim().to_owned()))
                }
                Value::String(_) => Err("must be at most 255 characters".into()),
                Value::Null => Ok(Value::Null),
                other => Err(format!("must be a string, got {}", type_name(other))),
            }
        }
        _ => return Ok(v.clone()),
    };
    match v {
        Value::String(s) => check(s).map(Value::String),
        Value::Null => Ok(Value::Null),
        other => Err(format!("must be a string, got {}", type_name(other))),
    }
}

fn removals(obj: &Map<String, Value>) -> Result<Vec<Removal>, Invalid> {
    let meta = meta_of(obj)?;
    let mut out = Vec::new();
    for (k, v) in obj {
        if META_KEYS.contains(&k.as_str()) {
            continue;
        }
        // The values are kept in history with the request, so they obey the stored-value rules.
        validate::custom_value(v).map_err(|e| e.within(k.trim()))?;
        match Key::parse(k).map_err(|rule| Invalid::new(k, rule))? {
            Key::Status => return Err(Invalid::new(k, "$status is set, not removed")),
            Key::Channel(channel) => {
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                // What was stored may predate a validation rule, so an unparsable value still matches raw.
                let keys = items
                    .into_iter()
                    .map(|item| match Identity::parse(channel, item, &meta) {
                        Ok(id) => id.dedup_key(),
                        Err(_) => match item {
                            Value::String(s) if channel == Channel::Email => {
                                s.trim().to_lowercase()
                            }
                            Value::String(s) => s.trim().to_owned(),
                            other => crate::channel::canonical_json(other),
                        },
                    })
                    .collect();
                out.push(Removal::Channel(channel, keys));
            }
            Key::Property(name) => out.push(Removal::Property(name, v.clone())),
        }
    }
    Ok(out)
}

/// Applies `steps` in order to a copy of `profile`. Any failure leaves the original untouched.
pub fn apply(profile: &Profile, steps: &[Step]) -> Result<Profile, Invalid> {
    let mut p = profile.clone();
    for s in steps {
        apply_one(&mut p, &s.op).map_err(|e| e.within(&s.at))?;
    }
    Ok(p)
}

fn apply_one(p: &mut Profile, op: &Op) -> Result<(), Invalid> {
    match op {
        Op::Set(assigns) => assigns.iter().for_each(|a| set(p, a)),
        Op::SetOnce(assigns) => {
            for a in assigns {
                let present = match a {
                    Assign::Status(_) => true,
                    Assign::Channel(c, _) => p.identities_on(*c).next().is_some(),
                    Assign::Property(k, _) => p.properties.contains_key(k),
                };
                if !present {
                    set(p, a);
                }
            }
        }
        Op::Unset(keys) => {
            for key in keys {
                match key {
                    Key::Status => p.status = Status::Enabled,
                    Key::Channel(c) => p.identities.retain(|i| i.channel != *c),
                    Key::Property(k) => {
                        p.properties.shift_remove(k);
                    }
                }
            }
        }
        Op::Append(assigns) => {
            for a in assigns {
                match a {
                    Assign::Channel(_, ids) => {
                        ids.iter().for_each(|id| add_identity(p, id.clone()))
                    }
                    Assign::Property(k, v) => append(p, k, v)?,
                    // `assign` refuses `$status` when appending, so there is nothing to do.
                    Assign::Status(_) => {}
                }
            }
        }
        Op::Remove(removals) => {
            for r in removals {
                match r {
                    Removal::Channel(c, keys) => p
                        .identities
                        .retain(|i| i.channel != *c || !keys.contains(&i.dedup_key())),
                    Removal::Property(k, v) => remove(p, k, v)?,
                }
            }
        }
        Op::Add(adds) => {
            for (k, n) in adds {
                let sum = match p.properties.get(k) {
                    None | Some(Value::Null) => Value::Number(n.clone()),
                    Some(Value::Number(cur)) => add(cur, n)
                        .ok_or_else(|| Invalid::new(format!("$add.{k}"), "the sum overflows"))?,
                    Some(other) => {
                        return Err(Invalid::new(
                            format!("$add.{k}"),
                            format!(
                                "cannot add to {}: the property is not a number",
                                type_name(other)
                            ),
                        ))
                    }
                };
                p.properties.insert(k.clone(), sum);
            }
        }
    }
    Ok(())
}

fn set(p: &mut Profile, a: &Assign) {
    match a {
        Assign::Status(s) => p.status = *s,
        Assign::Channel(c, ids) => {
            p.identities.retain(|i| i.channel != *c);
            ids.iter().for_each(|id| add_identity(p, id.clone()));
        }
        Assign::Property(k, v) => {
            p.properties.insert(k.clone(), v.clone());
        }
    }
}

/// Adds an identity unless the same address is there; a repeat may update its provider metadata.
pub fn add_identity(p: &mut Profile, id: Identity) {
    let key = id.dedup_key();
    if let Some(existing) = p
        .identities
        .iter_mut()
        .find(|i| i.channel == id.channel && i.dedup_key() == key)
    {
        if id.bundle_id.is_some() {
            existing.bundle_id = id.bundle_id;
        }
        if id.device_id.is_some() {
            existing.device_id = id.device_id;
        }
        if id.provider.is_some() {
            existing.provider = id.provider;
        }
        return;
    }
    // Keep identities grouped by channel so the stored order is stable.
    let at = p
        .identities
        .iter()
        .rposition(|i| i.channel == id.channel)
        .map_or(p.identities.len(), |i| i + 1);
    p.identities.insert(at, id);
}

fn append(p: &mut Profile, k: &str, v: &Value) -> Result<(), Invalid> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    match p.properties.get_mut(k) {
        None | Some(Value::Null) => {
            p.properties.insert(k.to_owned(), Value::Array(items));
        }
        Some(Value::Array(list)) => list.extend(items),
        Some(other) => {
            return Err(Invalid::new(
                format!("$append.{k}"),
                format!(
                    "cannot append: the property is {}, not a list",
                    type_name(other)
                ),
            ))
        }
    }
    Ok(())
}

fn remove(p: &mut Profile, k: &str, v: &Value) -> Result<(), Invalid> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    match p.properties.get_mut(k) {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => list.retain(|x| !items.contains(x)),
        Some(other) => {
            return Err(Invalid::new(
                format!("$remove.{k}"),
                format!(
                    "cannot remove: the property is {}, not a list",
                    type_name(other)
                ),
            ))
        }
    }
    Ok(())
}

/// Integers stay integers while they fit; anything else is added as a float.
fn add(a: &Number, b: &Number) -> Option<Value> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.checked_add(y).map(Value::from);
    }
    let sum = a.as_f64()? + b.as_f64()?;
    Number::from_f64(sum).map(Value::Number)
}

#[cfg(test)]
mod tests;

/// Adds an identity only when the profile does not hold that address yet (merges: primary wins).
pub fn add_identity_if_absent(p: &mut Profile, id: Identity) {
    let key = id.dedup_key();
    if !p
        .identities
        .iter()
        .any(|i| i.channel == id.channel && i.dedup_key() == key)
    {
        add_identity(p, id);
    }
}

/// The operations an upsert body stands for: channel values are added to those held, `$status` and
/// properties are set.
pub fn upsert_operations(body: &Value) -> Result<Vec<Step>, Invalid> {
    let obj = body.as_object().ok_or_else(|| {
        Invalid::new(
            "",
            format!(
                "the body must be a JSON object of properties, got {}",
                type_name(body)
            ),
        )
    })?;
    let mut sets = Vec::new();
    let mut appends = Vec::new();
    let meta = meta_of(obj)?;
    for (k, v) in obj {
        if META_KEYS.contains(&k.as_str()) {
            continue;
        }
        let key = Key::parse(k).map_err(|rule| Invalid::new(k, rule))?;
        let appending = matches!(key, Key::Channel(_));
        let a = assign(key, v, &meta, appending).map_err(|e| e.within(k.trim()))?;
        if appending {
            appends.push(a)
        } else {
            sets.push(a)
        }
    }
    Ok([Op::Set(sets), Op::Append(appends)]
        .into_iter()
        .map(|op| Step {
            op,
            at: String::new(),
        })
        .collect())
}
