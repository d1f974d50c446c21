//! Quiet hours: a window of the day, in the user's own time zone, in which nothing is sent. A
//! message planned inside the window is held until the window ends ([`held_until`]). The window
//! is the user's `$quiet_hours` property, else the workspace's default; categories users cannot
//! opt out of (`mandatory`) are never held.

use crate::channel::type_name;
use crate::error::Invalid;
use crate::preference::{Category, DefaultPreference};
use crate::profile::Profile;
use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

/// The profile property holding a user's own quiet hours.
pub const PROPERTY: &str = "$quiet_hours";

/// A daily window `[start, end)` in local time, to the minute. `start > end` crosses midnight
/// (`22:00`–`08:00`); `start == end` is refused (it would be empty, or the whole day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
}

/// A user's choice: the workspace default (no `$quiet_hours`, or `null`), none at all
/// (`{"off": true}`), or a window of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Default,
    Off,
    Window(QuietHours),
}

/// The workspace's defaults (configuration `[quiet_hours]`): the window for users who set none
/// (`None`: no quiet hours), and the time zone of users without a `$timezone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workspace {
    pub window: Option<QuietHours>,
    pub timezone: Tz,
}

impl Default for Workspace {
    fn default() -> Self {
        Workspace {
            window: None,
            timezone: Tz::UTC,
        }
    }
}

/// `"HH:MM"`, 00:00 to 23:59.
pub fn parse_time(raw: &str) -> Result<NaiveTime, String> {
    let t = raw.trim();
    let ok = t.len() == 5 && t.as_bytes()[2] == b':';
    ok.then(|| NaiveTime::parse_from_str(t, "%H:%M").ok())
        .flatten()
        .ok_or_else(|| format!("'{t}' is not a time of day as HH:MM (e.g. 22:00)"))
}

impl QuietHours {
    /// A window from `start` to `end` (each `"HH:MM"`); the error names which is wrong.
    pub fn parse(start: &str, end: &str) -> Result<QuietHours, Invalid> {
        let start = parse_time(start).map_err(|r| Invalid::new("start", r))?;
        let end = parse_time(end).map_err(|r| Invalid::new("end", r))?;
        if start == end {
            return Err(Invalid::new("end", "must differ from start"));
        }
        Ok(QuietHours { start, end })
    }

    /// When the window that holds `now` ends, in `tz`; `None` when `now` is outside it. The end
    /// is the first instant at or after the local `end` time: a time skipped by a DST change
    /// ends the window when the clocks jump, and a repeated one at its first occurrence.
    pub fn ends(&self, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&tz);
        let (date, time) = (local.date_naive(), local.time());
        let end_date = if self.start < self.end {
            (self.start <= time && time < self.end).then_some(date)?
        } else if time >= self.start {
            date.succ_opt()?
        } else if time < self.end {
            date
        } else {
            return None;
        };
        let end = first_instant(tz, end_date, self.end)?;
        (end > now).then_some(end)
    }

    /// The wire form: `{"start": "22:00", "end": "08:00"}`.
    pub fn to_value(&self) -> Value {
        json!({
            "start": self.start.format("%H:%M").to_string(),
            "end": self.end.format("%H:%M").to_string(),
        })
    }
}

/// The first instant whose local time in `tz` is `time` on `date`, or the first after it when
/// the clocks skip it.
fn first_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let mut at = date.and_time(time);
    // Gaps are at most a few hours; walk minute by minute past one.
    for _ in 0..=24 * 60 {
        match tz.from_local_datetime(&at) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
            LocalResult::None => at += Duration::minutes(1),
        }
    }
    None
}

impl Setting {
    /// Reads a `$quiet_hours` value: `null` (the workspace default), `{"off": true}`, or
    /// `{"start": "HH:MM", "end": "HH:MM"}`. Errors name the field within it.
    pub fn parse(v: &Value) -> Result<Setting, Invalid> {
        let obj = match v {
            Value::Null => return Ok(Setting::Default),
            Value::Object(o) => o,
            other => {
                return Err(Invalid::new(
                    "",
                    format!(
                        "must be {{\"start\": \"HH:MM\", \"end\": \"HH:MM\"}}, {{\"off\": true}} or null, got {}",
                        type_name(other)
                    ),
                ))
            }
        };
        if let Some(key) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "start" | "end" | "off"))
        {
            return Err(Invalid::new(
                key.as_str(),
                "is not a field of quiet hours (start, end, off)",
            ));
        }
        match obj.get("off") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) if obj.len() == 1 => return Ok(Setting::Off),
            Some(Value::Bool(true)) => {
                return Err(Invalid::new("off", "cannot be given with start and end"))
            }
            Some(other) => {
                return Err(Invalid::new(
                    "off",
                    format!("must be true or false, got {}", type_name(other)),
                ))
            }
        }
        let text = |field: &str| match obj.get(field) {
            Some(Value::String(s)) => Ok(s.as_str()),
            None => Err(Invalid::new(field, "is required (HH:MM)")),
            Some(other) => Err(Invalid::new(
                field,
                format!("must be a string HH:MM, got {}", type_name(other)),
            )),
        };
        QuietHours::parse(text("start")?, text("end")?).map(Setting::Window)
    }

    /// The stored form: what [`Setting::parse`] reads back as this setting.
    pub fn to_value(&self) -> Value {
        match self {
            Setting::Default => Value::Null,
            Setting::Off => json!({"off": true}),
            Setting::Window(w) => w.to_value(),
        }
    }
}

/// Checks and normalises a `$quiet_hours` value on write (times as `HH:MM`).
pub fn normalize(v: &Value) -> Result<Value, Invalid> {
    Setting::parse(v).map(|s| s.to_value())
}

/// The time zone a user is judged in: their `$timezone`, else the workspace's.
pub fn timezone_of(profile: &Profile, workspace: &Workspace) -> Tz {
    profile
        .properties
        .get("$timezone")
        .and_then(Value::as_str)
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(workspace.timezone)
}

/// Until when a message of `category` (none: outside every category) to `profile`, planned at
/// `now`, is held: the end of the quiet window that holds `now`, in UTC, or `None` to send now.
/// Rules, in order:
/// 1. a `mandatory` category is never held (it cannot be opted out of, so it is urgent);
/// 2. the user's `$quiet_hours` wins: `{"off": true}` is never held, a window of their own is
///    used instead of the workspace's; unset, `null` (or unreadable) takes the workspace's;
/// 3. no window at all: sent now;
/// 4. the window is read in the user's `$timezone`, else the workspace's time zone.
pub fn held_until(
    profile: &Profile,
    category: Option<&Category>,
    workspace: &Workspace,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if category.is_some_and(|c| c.default_preference == DefaultPreference::Mandatory) {
        return None;
    }
    let own = profile
        .properties
        .get(PROPERTY)
        .map(|v| Setting::parse(v).unwrap_or(Setting::Default))
        .unwrap_or(Setting::Default);
    let window = match own {
        Setting::Off => return None,
        Setting::Window(w) => w,
        Setting::Default => workspace.window?,
    };
    window.ends(timezone_of(profile, workspace), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DistinctId;
    use std::collections::BTreeSet;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(start: &str, end: &str) -> QuietHours {
        QuietHours::parse(start, end).unwrap()
    }

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    #[test]
    fn a_window_within_one_day() {
        let w = window("12:00", "14:00");
        let utc = Tz::UTC;
        assert_eq!(w.ends(utc, at("2026-06-01T11:59:59Z")), None);
        assert_eq!(
            w.ends(utc, at("2026-06-01T12:00:00Z")),
            Some(at("2026-06-01T14:00:00Z"))
        );
        assert_eq!(
            w.ends(utc, at("2026-06-01T13:59:00Z")),
            Some(at("2026-06-01T14:00:00Z"))
        );
        assert_eq!(w.ends(utc, at("2026-06-01T14:00:00Z")), None, "end is open");
        assert_eq!(w.ends(utc, at("2026-06-01T23:00:00Z")), None);
    }

    #[test]
    fn a_window_crossing_midnight() {
        let w = window("22:00", "08:00");
        let utc = Tz::UTC;
        assert_eq!(w.ends(utc, at("2026-06-01T21:59:00Z")), None);
        // Evening: held until the next morning.
        assert_eq!(
            w.ends(utc, at("2026-06-01T22:00:00Z")),
            Some(at("2026-06-02T08:00:00Z"))
        );
        assert_eq!(
            w.ends(utc, at("2026-06-01T23:59:59Z")),
            Some(at("2026-06-02T08:00:00Z"))
        );
        // After midnight: held until this morning.
        assert_eq!(
            w.ends(utc, at("2026-06-02T00:00:00Z")),
            Some(at("2026-06-02T08:00:00Z"))
        );
        assert_eq!(
            w.ends(utc, at("2026-06-02T07:59:00Z")),
            Some(at("2026-06-02T08:00:00Z"))
        );
        assert_eq!(w.ends(utc, at("2026-06-02T08:00:00Z")), None);
        assert_eq!(w.ends(utc, at("2026-06-02T12:00:00Z")), None);
    }

    #[test]
    fn the_window_is_read_in_the_users_time_zone() {
        let w = window("22:00", "08:00");
        // 14:00 UTC is 23:00 in Tokyo (UTC+9, no DST): held until 08:00 Tokyo, 23:00 UTC.
        assert_eq!(
            w.ends(tz("Asia/Tokyo"), at("2026-06-01T14:00:00Z")),
            Some(at("2026-06-01T23:00:00Z"))
        );
        // The same instant is 10:00 in New York (EDT): not held there.
        assert_eq!(
            w.ends(tz("America/New_York"), at("2026-06-01T14:00:00Z")),
            None
        );
        // A half-hour zone: 17:00 UTC is 22:30 in Kolkata; held until 08:00 IST = 02:30 UTC.
        assert_eq!(
            w.ends(tz("Asia/Kolkata"), at("2026-06-01T17:00:00Z")),
            Some(at("2026-06-02T02:30:00Z"))
        );
    }

    #[test]
    fn daylight_saving_changes_move_the_end_in_utc() {
        let w = window("22:00", "08:00");
        let ny = tz("America/New_York");
        // The night the clocks spring forward (2026-03-08, 02:00 EST → 03:00 EDT): 23:00 EST is
        // 04:00 UTC; 08:00 the next morning is EDT, 12:00 UTC (a night of 8 hours, not 9).
        assert_eq!(
            w.ends(ny, at("2026-03-08T04:00:00Z")),
            Some(at("2026-03-08T12:00:00Z"))
        );
        // The night they fall back (2026-11-01, 02:00 EDT → 01:00 EST): 23:00 EDT is 03:00
        // UTC; 08:00 the next morning is EST, 13:00 UTC.
        assert_eq!(
            w.ends(ny, at("2026-11-01T03:00:00Z")),
            Some(at("2026-11-01T13:00:00Z"))
        );
        // A window ending inside the skipped hour ends when the clocks jump (03:00 EDT).
        let early = window("01:00", "02:30");
        assert_eq!(
            early.ends(ny, at("2026-03-08T06:30:00Z")),
            Some(at("2026-03-08T07:00:00Z"))
        );
        // A window ending inside the repeated hour ends at its first occurrence (01:30 EDT).
        let repeated = window("00:00", "01:30");
        assert_eq!(
            repeated.ends(ny, at("2026-11-01T04:30:00Z")),
            Some(at("2026-11-01T05:30:00Z"))
        );
        // Europe changes on another date: on 2026-03-29 (02:00 CET → 03:00 CEST) in Berlin,
        // 23:00 CET on the 28th is 22:00 UTC; 08:00 CEST is 06:00 UTC.
        assert_eq!(
            w.ends(tz("Europe/Berlin"), at("2026-03-28T22:00:00Z")),
            Some(at("2026-03-29T06:00:00Z"))
        );
    }

    #[test]
    fn times_and_settings_parse_or_name_the_field() {
        assert!(parse_time("7:00").is_err());
        assert!(parse_time("24:00").is_err());
        assert!(parse_time("12:60").is_err());
        assert!(parse_time("1200").is_err());
        assert_eq!(
            parse_time(" 07:05 ").unwrap(),
            NaiveTime::from_hms_opt(7, 5, 0).unwrap()
        );
        assert_eq!(Setting::parse(&Value::Null), Ok(Setting::Default));
        assert_eq!(Setting::parse(&json!({"off": true})), Ok(Setting::Off));
        assert_eq!(
            Setting::parse(&json!({"start": "22:00", "end": "08:00"})),
            Ok(Setting::Window(window("22:00", "08:00")))
        );
        assert_eq!(
            Setting::parse(&json!({"start": "22:00", "end": "08:00", "off": false})),
            Ok(Setting::Window(window("22:00", "08:00")))
        );
        let field = |v: Value| Setting::parse(&v).unwrap_err().field;
        assert_eq!(field(json!({"start": "22:00"})), "end");
        assert_eq!(field(json!({"start": "25:00", "end": "08:00"})), "start");
        assert_eq!(field(json!({"start": "08:00", "end": "08:00"})), "end");
        assert_eq!(field(json!({"start": 22, "end": "08:00"})), "start");
        assert_eq!(field(json!({"off": "yes"})), "off");
        assert_eq!(
            field(json!({"off": true, "start": "22:00", "end": "08:00"})),
            "off"
        );
        assert_eq!(field(json!({"from": "22:00"})), "from");
        assert_eq!(field(json!("22:00-08:00")), "");
        assert_eq!(
            normalize(&json!({"start": " 22:00", "end": "08:00 "})).unwrap(),
            json!({"start": "22:00", "end": "08:00"})
        );
    }

    fn profile(props: Value) -> Profile {
        let mut p = Profile::new(DistinctId::parse("ada").unwrap(), Utc::now());
        p.properties = serde_json::from_value(props).unwrap();
        p
    }

    fn category(default_preference: DefaultPreference) -> Category {
        Category {
            slug: "c".into(),
            name: "c".into(),
            description: String::new(),
            section: None,
            default_preference,
            locked_channels: BTreeSet::new(),
            visible: true,
        }
    }

    #[test]
    fn the_decision_over_its_combinations() {
        let night = at("2026-06-01T23:00:00Z");
        let morning = Some(at("2026-06-02T08:00:00Z"));
        let default_on = Workspace {
            window: Some(window("22:00", "08:00")),
            timezone: Tz::UTC,
        };
        let default_off = Workspace::default();
        let own = json!({"$quiet_hours": {"start": "23:00", "end": "07:00"}});
        let off = json!({"$quiet_hours": {"off": true}});
        let opt_in = category(DefaultPreference::OptIn);
        let mandatory = category(DefaultPreference::Mandatory);
        type Case<'a> = (
            &'a str,
            Value,
            Option<&'a Category>,
            &'a Workspace,
            Option<DateTime<Utc>>,
        );
        let cases: [Case; 9] = [
            (
                "workspace default",
                json!({}),
                Some(&opt_in),
                &default_on,
                morning,
            ),
            ("no category", json!({}), None, &default_on, morning),
            (
                "null is the default",
                json!({"$quiet_hours": null}),
                None,
                &default_on,
                morning,
            ),
            (
                "no default, no own",
                json!({}),
                Some(&opt_in),
                &default_off,
                None,
            ),
            (
                "own window without a default",
                own.clone(),
                Some(&opt_in),
                &default_off,
                Some(at("2026-06-02T07:00:00Z")),
            ),
            (
                "own window over the default",
                own.clone(),
                None,
                &default_on,
                Some(at("2026-06-02T07:00:00Z")),
            ),
            (
                "opted out of quiet hours",
                off,
                Some(&opt_in),
                &default_on,
                None,
            ),
            (
                "mandatory is never held",
                own,
                Some(&mandatory),
                &default_on,
                None,
            ),
            (
                "own time zone",
                json!({"$timezone": "Asia/Tokyo"}),
                None,
                &default_on,
                None, // 08:00 in Tokyo: the window just ended
            ),
        ];
        for (name, props, category, workspace, want) in cases {
            assert_eq!(
                held_until(&profile(props), category, workspace, night),
                want,
                "{name}"
            );
        }
        // Without a $timezone, the workspace's time zone.
        let tokyo_default = Workspace {
            window: Some(window("22:00", "08:00")),
            timezone: tz("Asia/Tokyo"),
        };
        assert_eq!(
            held_until(
                &profile(json!({})),
                None,
                &tokyo_default,
                at("2026-06-01T14:00:00Z")
            ),
            Some(at("2026-06-01T23:00:00Z"))
        );
        assert_eq!(
            held_until(
                &profile(json!({"$timezone": "UTC"})),
                None,
                &tokyo_default,
                at("2026-06-01T14:00:00Z")
            ),
            None
        );
    }
}
