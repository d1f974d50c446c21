//! The users-list filter language (`GET /v1/user/?status=enabled&prop.plan=eq:pro&q=ada`), parsed
//! into a [`Filter`] and defined by [`Filter::matches`] over the profile's index entries. Stores
//! translate the same structure to SQL over the same entries.

use crate::channel::Channel;
use crate::error::Invalid;
use crate::index::{self, Entry, EntryKind, SEARCH_KEY};
use crate::profile::{micros, Profile, Status};

/// A comparison of `gt`, `gte`, `lt`, `lte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    /// The comparison as an infix operator.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }

    fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Gt => left > right,
            Cmp::Gte => left >= right,
            Cmp::Lt => left < right,
            Cmp::Lte => left <= right,
        }
    }

    fn parse(op: &str) -> Option<Cmp> {
        Some(match op {
            "gt" => Cmp::Gt,
            "gte" => Cmp::Gte,
            "lt" => Cmp::Lt,
            "lte" => Cmp::Lte,
            _ => return None,
        })
    }
}

/// The right-hand side of a range: a number, or an RFC 3339 time (as epoch microseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Num(f64),
    Time(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropOp {
    /// `eq` and `in`: a scalar value equal to one of these texts (see [`index::operand_texts`]).
    OneOf(Vec<String>),
    /// `ne`: no scalar value equal to one of these (profiles without the key match).
    NoneOf(Vec<String>),
    Exists(bool),
    /// `contains`: a list holding one of `elements`, or a string containing `needle` (ASCII
    /// case-insensitive; `needle` is lower-cased).
    Contains {
        elements: Vec<String>,
        needle: String,
    },
    Range(Cmp, Bound),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PropFilter {
    pub key: String,
    pub op: PropOp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    CreatedAt,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeFilter {
    pub field: TimeField,
    pub cmp: Cmp,
    /// Epoch microseconds.
    pub at: i64,
}

/// All conditions hold at once (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub status: Option<Status>,
    /// `(channel, true)`: has at least one identity on it; `false`: has none.
    pub channels: Vec<(Channel, bool)>,
    /// Lower-cased prefix of a search term (distinct_id, name or one of its words, email, phone).
    pub q: Option<String>,
    pub props: Vec<PropFilter>,
    pub times: Vec<TimeFilter>,
}

const OPERATORS: &str = "eq, ne, in, exists, contains, gt, gte, lt, lte";

/// Conditions (`prop.*`, `created_at`, `updated_at`, `has_channel`, `lacks_channel`) one listing
/// may combine: each is a join or subquery, so an unbounded number makes one request as costly
/// as the caller likes.
pub const MAX_FILTERS: usize = 20;

/// Values one `in:` may list (each is a probe of the value index).
pub const MAX_IN_VALUES: usize = 100;

impl Filter {
    /// Takes the filter parameters out of a query string's pairs; other parameters are not its
    /// business and are left to the caller.
    pub fn parse(pairs: &[(String, String)]) -> Result<Filter, Invalid> {
        let mut f = Filter::default();
        for (name, raw) in pairs {
            let conditions = f.channels.len() + f.props.len() + f.times.len();
            let is_condition = matches!(
                name.as_str(),
                "has_channel" | "lacks_channel" | "created_at" | "updated_at"
            ) || name.starts_with("prop.");
            if is_condition && conditions == MAX_FILTERS {
                return Err(Invalid::new(
                    name.as_str(),
                    format!("a listing takes at most {MAX_FILTERS} filters (prop.*, created_at, updated_at, has_channel, lacks_channel)"),
                ));
            }
            match name.as_str() {
                "status" => {
                    f.status = Some(Status::parse(raw).map_err(|e| Invalid::new("status", e))?)
                }
                "has_channel" | "lacks_channel" => {
                    let channel = Channel::from_name(raw.trim()).ok_or_else(|| {
                        Invalid::new(
                            name.as_str(),
                            format!(
                                "'{raw}' is not a channel ({})",
                                Channel::ALL.map(Channel::as_str).join(", ")
                            ),
                        )
                    })?;
                    f.channels.push((channel, name == "has_channel"));
                }
                "q" => {
                    let q = raw.trim().to_ascii_lowercase();
                    f.q = (!q.is_empty()).then_some(q);
                }
                "created_at" | "updated_at" => {
                    let field = if name == "created_at" {
                        TimeField::CreatedAt
                    } else {
                        TimeField::UpdatedAt
                    };
                    let (op, value) = split_op(name, raw)?;
                    let cmp = Cmp::parse(op).ok_or_else(|| {
                        Invalid::new(
                            name.as_str(),
                            format!("'{op}' is not an operator for a time (gt, gte, lt, lte)"),
                        )
                    })?;
                    let at = index::parse_time(value).ok_or_else(|| {
                        Invalid::new(
                            name.as_str(),
                            format!("'{value}' is not an RFC 3339 time (2026-01-31T00:00:00Z)"),
                        )
                    })?;
                    f.times.push(TimeFilter { field, cmp, at });
                }
                _ => {
                    if let Some(key) = name.strip_prefix("prop.") {
                        f.props.push(PropFilter::parse(key, raw)?);
                    }
                }
            }
        }
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `p` passes every condition. The definition the stores' SQL must agree with.
    pub fn matches(&self, p: &Profile) -> bool {
        let entries = index::entries(p);
        fn of<'a>(entries: &'a [Entry], key: &'a str) -> impl Iterator<Item = &'a Entry> {
            entries.iter().filter(move |e| e.key == key)
        }
        if self.status.is_some_and(|s| s != p.status) {
            return false;
        }
        if !self
            .channels
            .iter()
            .all(|(c, has)| of(&entries, c.key()).next().is_some() == *has)
        {
            return false;
        }
        if let Some(q) = &self.q {
            if !of(&entries, SEARCH_KEY).any(|e| e.text.starts_with(q.as_str())) {
                return false;
            }
        }
        let times_hold = self.times.iter().all(|t| {
            let at = match t.field {
                TimeField::CreatedAt => micros(p.created_at),
                TimeField::UpdatedAt => micros(p.updated_at),
            };
            t.cmp.holds(at, t.at)
        });
        times_hold
            && self
                .props
                .iter()
                .all(|f| f.op.holds(&of(&entries, &f.key).collect::<Vec<_>>()))
    }
}

fn split_op<'a>(name: &str, raw: &'a str) -> Result<(&'a str, &'a str), Invalid> {
    raw.split_once(':').ok_or_else(|| {
        Invalid::new(
            name,
            format!("'{raw}' is not <operator>:<value> (operators: {OPERATORS})"),
        )
    })
}

impl PropFilter {
    fn parse(key: &str, raw: &str) -> Result<PropFilter, Invalid> {
        let field = format!("prop.{key}");
        if key.is_empty() || key == SEARCH_KEY || key == index::EVERY_PROFILE {
            return Err(Invalid::new(field, "names no property"));
        }
        let (op, value) = split_op(&field, raw)?;
        let op = match op {
            "eq" => PropOp::OneOf(index::operand_texts(value)),
            "ne" => PropOp::NoneOf(index::operand_texts(value)),
            "in" => {
                if value.split(',').count() > MAX_IN_VALUES {
                    return Err(Invalid::new(
                        field,
                        format!("in takes at most {MAX_IN_VALUES} values"),
                    ));
                }
                PropOp::OneOf(value.split(',').flat_map(index::operand_texts).collect())
            }
            "exists" => PropOp::Exists(match value {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(Invalid::new(
                        field,
                        format!("exists takes true or false, not '{value}'"),
                    ))
                }
            }),
            "contains" => PropOp::Contains {
                elements: index::operand_texts(value),
                needle: value.to_ascii_lowercase(),
            },
            _ => {
                let cmp = Cmp::parse(op).ok_or_else(|| {
                    Invalid::new(&field, format!("'{op}' is not an operator ({OPERATORS})"))
                })?;
                let bound = match (value.trim().parse::<f64>(), index::parse_time(value)) {
                    (Ok(n), _) if n.is_finite() => Bound::Num(n),
                    (_, Some(t)) => Bound::Time(t),
                    _ => {
                        return Err(Invalid::new(
                            field,
                            format!("{op} compares numbers or RFC 3339 times, not '{value}'"),
                        ))
                    }
                };
                PropOp::Range(cmp, bound)
            }
        };
        Ok(PropFilter {
            key: key.to_owned(),
            op,
        })
    }
}

impl PropOp {
    /// Whether the entries of one key (all kinds) satisfy the operator.
    fn holds(&self, entries: &[&Entry]) -> bool {
        let values = || entries.iter().filter(|e| e.kind == EntryKind::Value);
        match self {
            PropOp::OneOf(texts) => values().any(|e| texts.contains(&e.text)),
            PropOp::NoneOf(texts) => !values().any(|e| texts.contains(&e.text)),
            PropOp::Exists(want) => entries.is_empty() != *want,
            PropOp::Contains { elements, needle } => entries.iter().any(|e| match e.kind {
                EntryKind::Element => elements.contains(&e.text),
                EntryKind::Value => e.text.to_ascii_lowercase().contains(needle.as_str()),
                _ => false,
            }),
            PropOp::Range(cmp, Bound::Num(n)) => {
                values().any(|e| e.num.is_some_and(|v| cmp.holds(v, *n)))
            }
            PropOp::Range(cmp, Bound::Time(t)) => {
                values().any(|e| e.time.is_some_and(|v| cmp.holds(v, *t)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Identity, IdentityMeta};
    use crate::ids::DistinctId;
    use chrono::{TimeZone, Utc};
    use serde_json::{json, Value};

    fn pairs(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    fn matches(q: &str, p: &Profile) -> bool {
        Filter::parse(&pairs(q)).unwrap().matches(p)
    }

    fn error(q: &str) -> Invalid {
        Filter::parse(&pairs(q)).unwrap_err()
    }

    #[test]
    fn filters_and_in_values_are_limited() {
        let many = |n: usize| {
            (0..n)
                .map(|i| format!("prop.k{i}=eq:1"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert!(Filter::parse(&pairs(&many(MAX_FILTERS))).is_ok());
        let e = error(&format!(
            "{}&created_at=gt:2026-01-01T00:00:00Z",
            many(MAX_FILTERS)
        ));
        assert_eq!(e.field, "created_at");
        assert!(e.to_string().contains("at most 20 filters"), "{e}");
        let values = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert!(Filter::parse(&pairs(&format!("prop.a=in:{}", values(MAX_IN_VALUES)))).is_ok());
        let e = error(&format!("prop.a=in:{}", values(MAX_IN_VALUES + 1)));
        assert_eq!(e.field, "prop.a");
        assert!(e.to_string().contains("at most 100 values"), "{e}");
    }

    fn ada() -> Profile {
        let mut p = Profile::new(
            DistinctId::parse("ada").unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        );
        let props: Value = json!({
            "name": "Ada Lovelace", "plan": "pro", "age": 36, "score": 2.5, "vip": true,
            "tags": ["math", "poetry"], "bio": "Wrote the first Program", "address": {"city": "London"},
            "renews": "2026-06-01T00:00:00Z"
        });
        p.properties = props.as_object().unwrap().clone();
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

    #[test]
    fn each_operator_matches_as_documented() {
        let p = ada();
        let yes = [
            "prop.plan=eq:pro",
            "prop.age=eq:36",
            "prop.age=eq:36.0",
            "prop.vip=eq:true",
            "prop.plan=ne:free",
            "prop.missing=ne:x",
            "prop.plan=in:free,pro",
            "prop.age=in:1,36",
            "prop.address=exists:true",
            "prop.missing=exists:false",
            "prop.tags=contains:math",
            "prop.bio=contains:program",
            "prop.$email=contains:ada@example.com",
            "prop.age=gt:35",
            "prop.age=gte:36",
            "prop.age=lt:36.5",
            "prop.score=lte:2.5",
            "prop.renews=gt:2026-05-01T00:00:00Z",
            "prop.renews=lte:2026-06-01T00:00:00+00:00",
            "status=enabled",
            "has_channel=email",
            "lacks_channel=sms",
            "q=ada",
            "q=LOVE",
            "q=ada@ex",
            "created_at=gte:2026-03-01T00:00:00Z",
            "created_at=lt:2026-03-02T00:00:00Z&updated_at=gt:2026-01-01T00:00:00Z",
            "prop.plan=eq:pro&prop.age=gte:30&status=enabled",
        ];
        for q in yes {
            assert!(matches(q, &p), "{q} should match");
        }
        let no = [
            "prop.plan=eq:Pro",
            "prop.plan=ne:pro",
            "prop.plan=in:free,basic",
            "prop.address=exists:false",
            "prop.missing=exists:true",
            "prop.tags=contains:art",
            "prop.bio=contains:poem",
            "prop.plan=gt:1",
            "prop.age=gt:36",
            "prop.age=lt:36",
            "prop.renews=gt:2026-06-01T00:00:00Z",
            "prop.tags=eq:math",
            "status=disabled",
            "has_channel=sms",
            "lacks_channel=email",
            "q=lovelacex",
            "q=example",
            "created_at=gt:2026-03-01T00:00:00Z",
            "prop.plan=eq:pro&prop.age=lt:30",
        ];
        for q in no {
            assert!(!matches(q, &p), "{q} should not match");
        }
        assert!(Filter::parse(&pairs("limit=5&sort=-created_at"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_filters_name_the_parameter_and_the_rule() {
        for (q, field, rule) in [
            ("prop.plan=like:pro", "prop.plan", "not an operator"),
            ("prop.plan=pro", "prop.plan", "<operator>:<value>"),
            ("prop.age=gt:old", "prop.age", "numbers or RFC 3339"),
            ("prop.x=exists:maybe", "prop.x", "true or false"),
            ("prop.=eq:1", "prop.", "names no property"),
            ("status=paused", "status", "not a status"),
            ("has_channel=pigeon", "has_channel", "not a channel"),
            (
                "created_at=eq:2026-01-01T00:00:00Z",
                "created_at",
                "not an operator",
            ),
            ("updated_at=gt:yesterday", "updated_at", "RFC 3339"),
        ] {
            let e = error(q);
            assert_eq!(e.field, field, "{q}");
            assert!(e.rule.contains(rule), "{q}: {}", e.rule);
        }
    }
}
