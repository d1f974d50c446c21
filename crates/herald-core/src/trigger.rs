//! A trigger as the wire sends it (`POST /trigger/`, wire spec §2.7): a workflow, recipients by
//! distinct_id or as inline recipient objects, an actor, the template `data`, an idempotency key.
//! [`TriggerRequest::parse`] is the one place the trigger's JSON is read.

use crate::channel::{type_name, Channel};
use crate::error::Invalid;
use crate::ids::DistinctId;
use crate::ops::{self, Step};
use crate::validate;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Recipients one trigger may name. The API also takes at most 100 triggers per call, so one
/// call fans out to at most 100,000 recipients (and their messages are committed before the 202).
pub const MAX_RECIPIENTS: usize = 1000;

/// Characters of an `$idempotency_key` (the wire schema's limit).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The top-level keys of a trigger body. `tenant_id`, `cancellation_key` and `metadata` are
/// accepted (the SDKs send them) and not used yet.
const TRIGGER_KEYS: [&str; 8] = [
    "workflow",
    "recipients",
    "data",
    "actor",
    "$idempotency_key",
    "tenant_id",
    "cancellation_key",
    "metadata",
];

/// One recipient (or the actor).
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub distinct_id: DistinctId,
    /// `$channels`: sending is restricted to these channels, when given.
    pub channels: Option<Vec<Channel>>,
    /// `is_transient`: the inline data is used for this trigger only; no profile is written.
    pub is_transient: bool,
    /// `$skip_create`: the inline data updates a stored profile but does not create one.
    pub skip_create: bool,
    /// The inline channels and properties, as upsert operations on the profile (channels are
    /// added to those held, properties set). Empty for a bare distinct_id.
    pub upsert: Vec<Step>,
}

impl Recipient {
    /// A recipient named by its distinct_id alone.
    pub fn by_id(distinct_id: DistinctId) -> Recipient {
        Recipient {
            distinct_id,
            channels: None,
            is_transient: false,
            skip_create: false,
            upsert: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRequest {
    /// The workflow's slug.
    pub workflow: String,
    /// 1 to [`MAX_RECIPIENTS`], distinct by distinct_id.
    pub recipients: Vec<Recipient>,
    pub actor: Option<Recipient>,
    /// The template variables (`{{order}}`); keys never start with `$`.
    pub data: Map<String, Value>,
    pub idempotency_key: Option<String>,
}

impl TriggerRequest {
    /// Reads one trigger body. Errors name the field as the caller wrote it
    /// (`recipients[2].distinct_id`, `recipients[0].$channels[1]`, `data.$x`).
    pub fn parse(raw: &Value) -> Result<TriggerRequest, Invalid> {
        let body = raw.as_object().ok_or_else(|| {
            Invalid::new(
                "",
                format!("a trigger must be a JSON object, got {}", type_name(raw)),
            )
        })?;
        if let Some(k) = body.keys().find(|k| !TRIGGER_KEYS.contains(&k.as_str())) {
            return Err(Invalid::new(
                k.as_str(),
                format!("is not a trigger field ({})", TRIGGER_KEYS.join(", ")),
            ));
        }
        let workflow = match body.get("workflow") {
            Some(Value::String(s)) => {
                validate::slug(s, "workflow").map_err(|r| Invalid::new("workflow", r))?
            }
            None | Some(Value::Null) => {
                return Err(Invalid::new("workflow", "is required: the workflow's slug"))
            }
            Some(other) => {
                return Err(Invalid::new(
                    "workflow",
                    format!("must be a string, got {}", type_name(other)),
                ))
            }
        };
        let list = match body.get("recipients") {
            Some(Value::Array(list)) => list,
            None | Some(Value::Null) => return Err(Invalid::new("recipients", "is required")),
            Some(other) => {
                return Err(Invalid::new(
                    "recipients",
                    format!("must be a list, got {}", type_name(other)),
                ))
            }
        };
        if list.is_empty() || list.len() > MAX_RECIPIENTS {
            return Err(Invalid::new(
                "recipients",
                format!(
                    "must list 1 to {MAX_RECIPIENTS} recipients, got {}",
                    list.len()
                ),
            ));
        }
        let mut recipients: Vec<Recipient> = Vec::with_capacity(list.len());
        // One message per (trigger, recipient, channel): a repeated recipient is refused.
        let mut seen: HashMap<DistinctId, usize> = HashMap::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let r = recipient(item).map_err(|e| e.within(format!("recipients[{i}]")))?;
            if let Some(j) = seen.insert(r.distinct_id.clone(), i) {
                return Err(Invalid::new(
                    format!("recipients[{i}]"),
                    format!("repeats recipients[{j}] ('{}')", r.distinct_id),
                ));
            }
            recipients.push(r);
        }
        let actor = match body.get("actor") {
            None | Some(Value::Null) => None,
            Some(a) => Some(recipient(a).map_err(|e| e.within("actor"))?),
        };
        let data = match body.get("data") {
            None | Some(Value::Null) => Map::new(),
            Some(d) => {
                crate::template::check_data(d)?;
                validate::custom_value(d).map_err(|e| e.within("data"))?;
                d.as_object().cloned().unwrap_or_default()
            }
        };
        let idempotency_key = match body.get("$idempotency_key") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => {
                let n = k.chars().count();
                if n == 0 || n > MAX_IDEMPOTENCY_KEY_CHARS {
                    return Err(Invalid::new(
                        "$idempotency_key",
                        format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"),
                    ));
                }
                validate::no_nul(k).map_err(|r| Invalid::new("$idempotency_key", r))?;
                Some(k.clone())
            }
            Some(other) => {
                return Err(Invalid::new(
                    "$idempotency_key",
                    format!("must be a string, got {}", type_name(other)),
                ))
            }
        };
        for (key, max) in [("tenant_id", 64), ("cancellation_key", 255)] {
            match body.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.chars().count() <= max => {}
                Some(_) => {
                    return Err(Invalid::new(
                        key,
                        format!("must be a string of at most {max} characters"),
                    ))
                }
            }
        }
        if body
            .get("metadata")
            .is_some_and(|m| !m.is_object() && !m.is_null())
        {
            return Err(Invalid::new("metadata", "must be a JSON object"));
        }
        Ok(TriggerRequest {
            workflow,
            recipients,
            actor,
            data,
            idempotency_key,
        })
    }
}

/// A recipient: a distinct_id string, or an object with `distinct_id`, optional `$channels`,
/// `is_transient`, `$skip_create`, and any channels (`$email`, …) and properties to upsert.
fn recipient(raw: &Value) -> Result<Recipient, Invalid> {
    let obj = match raw {
        Value::String(s) => return DistinctId::parse(s).map(Recipient::by_id).map_err(bare),
        Value::Object(o) => o,
        other => {
            return Err(Invalid::new(
                "",
                format!(
                    "must be a distinct_id string or a recipient object, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    let distinct_id = match obj.get("distinct_id") {
        Some(Value::String(s)) => DistinctId::parse(s)?,
        None | Some(Value::Null) => {
            return Err(Invalid::new(
                "distinct_id",
                "is required in a recipient object",
            ))
        }
        Some(other) => {
            return Err(Invalid::new(
                "distinct_id",
                format!("must be a string, got {}", type_name(other)),
            ))
        }
    };
    let channels = match obj.get("$channels") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => {
            let mut out = Vec::with_capacity(names.len());
            for (i, n) in names.iter().enumerate() {
                let at = format!("$channels[{i}]");
                let name = n
                    .as_str()
                    .ok_or_else(|| Invalid::new(&at, "must be a channel name"))?;
                let c = crate::preference::channel_named(&at, name)?;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            Some(out)
        }
        Some(other) => {
            return Err(Invalid::new(
                "$channels",
                format!("must be a list of channel names, got {}", type_name(other)),
            ))
        }
    };
    let flag = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Invalid::new(
            key,
            format!("must be true or false, got {}", type_name(other)),
        )),
    };
    let is_transient = flag("is_transient")?;
    let skip_create = flag("$skip_create")?;
    let rest: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "distinct_id" | "$channels" | "is_transient" | "$skip_create"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let upsert = if rest.is_empty() {
        Vec::new()
    } else {
        ops::upsert_operations(&Value::Object(rest))?
    };
    Ok(Recipient {
        distinct_id,
        channels,
        is_transient,
        skip_create,
        upsert,
    })
}

/// A bare distinct_id's error belongs to the list item itself, not to a `distinct_id` key.
fn bare(e: Invalid) -> Invalid {
    Invalid::new("", e.rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use chrono::Utc;
    use serde_json::json;

    fn parse(v: Value) -> Result<TriggerRequest, Invalid> {
        TriggerRequest::parse(&v)
    }

    #[test]
    fn string_recipients_and_the_defaults() {
        let t = parse(json!({"workflow": "welcome", "recipients": ["ada", " bob "]})).unwrap();
        assert_eq!(t.workflow, "welcome");
        assert_eq!(
            t.recipients,
            vec![
                Recipient::by_id(DistinctId::parse("ada").unwrap()),
                Recipient::by_id(DistinctId::parse("bob").unwrap())
            ]
        );
        assert_eq!((t.actor, t.data.len(), t.idempotency_key), (None, 0, None));
    }

    #[test]
    fn recipient_objects_carry_channels_transience_and_inline_data() {
        let t = parse(json!({
            "workflow": "welcome",
            "recipients": [{
                "distinct_id": "ada",
                "$channels": ["email", "ms_teams", "email"],
                "is_transient": true,
                "$email": "Ada@Example.COM",
                "name": "Ada",
                "plan": "pro"
            }, {"distinct_id": "bob", "$skip_create": true}],
            "actor": "grace",
            "data": {"order": 42},
            "$idempotency_key": "order-42",
            "tenant_id": "default",
            "metadata": {}
        }))
        .unwrap();
        let ada = &t.recipients[0];
        assert_eq!(ada.channels, Some(vec![Channel::Email, Channel::MsTeams]));
        assert!(ada.is_transient && !ada.skip_create);
        // The inline data is what an upsert of the same keys would do to a profile.
        let applied = ops::apply(
            &Profile::new(ada.distinct_id.clone(), Utc::now()),
            &ada.upsert,
        )
        .unwrap();
        assert_eq!(
            applied.identities_on(Channel::Email).next().unwrap().value,
            json!("Ada@example.com")
        );
        assert_eq!(applied.properties["plan"], json!("pro"));
        let bob = &t.recipients[1];
        assert!(bob.skip_create && !bob.is_transient && bob.upsert.is_empty());
        assert_eq!(bob.channels, None);
        assert_eq!(t.actor.unwrap().distinct_id.as_str(), "grace");
        assert_eq!(t.data["order"], json!(42));
        assert_eq!(t.idempotency_key.as_deref(), Some("order-42"));
    }

    #[test]
    fn bad_fields_are_named() {
        let many: Vec<String> = (0..=MAX_RECIPIENTS).map(|i| format!("u{i}")).collect();
        let cases = [
            (json!([]), ""),
            (json!({"recipients": ["a"]}), "workflow"),
            (json!({"workflow": 1, "recipients": ["a"]}), "workflow"),
            (
                json!({"workflow": "Bad Slug", "recipients": ["a"]}),
                "workflow",
            ),
            (json!({"workflow": "w"}), "recipients"),
            (json!({"workflow": "w", "recipients": []}), "recipients"),
            (json!({"workflow": "w", "recipients": many}), "recipients"),
            (json!({"workflow": "w", "recipients": "a"}), "recipients"),
            (
                json!({"workflow": "w", "recipients": ["a", ""]}),
                "recipients[1]",
            ),
            (
                json!({"workflow": "w", "recipients": ["a", 7]}),
                "recipients[1]",
            ),
            (
                json!({"workflow": "w", "recipients": ["a", "b", {"name": "x"}]}),
                "recipients[2].distinct_id",
            ),
            (
                json!({"workflow": "w", "recipients": ["a", "b", {"distinct_id": 5}]}),
                "recipients[2].distinct_id",
            ),
            (
                json!({"workflow": "w", "recipients": ["a", {"distinct_id": "a"}]}),
                "recipients[1]",
            ),
            (
                json!({"workflow": "w", "recipients": [{"distinct_id": "a", "$channels": ["email", "messenger"]}]}),
                "recipients[0].$channels[1]",
            ),
            (
                json!({"workflow": "w", "recipients": [{"distinct_id": "a", "$channels": "email"}]}),
                "recipients[0].$channels",
            ),
            (
                json!({"workflow": "w", "recipients": [{"distinct_id": "a", "is_transient": "yes"}]}),
                "recipients[0].is_transient",
            ),
            (
                json!({"workflow": "w", "recipients": [{"distinct_id": "a", "$email": "not-an-email"}]}),
                "recipients[0].$email",
            ),
            (
                json!({"workflow": "w", "recipients": [{"distinct_id": "a", "$bogus": 1}]}),
                "recipients[0].$bogus",
            ),
            (
                json!({"workflow": "w", "recipients": ["a"], "actor": {"distinct_id": ""}}),
                "actor.distinct_id",
            ),
            (
                json!({"workflow": "w", "recipients": ["a"], "data": [1]}),
                "data",
            ),
            (
                json!({"workflow": "w", "recipients": ["a"], "data": {"$recipient": 1}}),
                "data.$recipient",
            ),
            (
                json!({"workflow": "w", "recipients": ["a"], "data": {"x": "a\u{0}"}}),
                "data.x",
            ),
            (
                json!({"workflow": "w", "recipients": ["a"], "$idempotency_key": ""}),
                "$idempotency_key",
            ),
            (
                json!({"workflow": "w", "recipients": ["a"], "$idempotency_key": "k".repeat(256)}),
                "$idempotency_key",
            ),
            (
                json!({"workflow": "w", "recipients": ["a"], "tenant_id": "t".repeat(65)}),
                "tenant_id",
            ),
            (
                json!({"workflow": "w", "recipients": ["a"], "extra": 1}),
                "extra",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(parse(body.clone()).unwrap_err().field, field, "{body}");
        }
        // The limits themselves are accepted.
        let max: Vec<String> = (0..MAX_RECIPIENTS).map(|i| format!("u{i}")).collect();
        assert!(parse(
            json!({"workflow": "w", "recipients": max, "$idempotency_key": "k".repeat(255)})
        )
        .is_ok());
    }
}
