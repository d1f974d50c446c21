//! Validators for the general properties and channel addresses. Each one parses a raw value into
//! its normal form or says which rule it breaks; the field name is added by the caller.

use crate::error::Invalid;
use isocountry::CountryCode;
use serde_json::Value;

/// Lower-cases the domain and checks a pragmatic address syntax (RFC 5321 lengths, one `@`, a dotted
/// domain of letters, digits and hyphens). Deliverability is the provider's business.
pub fn email(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.len() > 254 {
        return Err("must be an email address of at most 254 characters".into());
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Err(format!("'{value}' is not an email address (missing @)"));
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[],;:\\\"".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
    if !local_ok || !domain_ok {
        return Err(format!("'{value}' is not a valid email address"));
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

/// E.164: `+`, a non-zero country digit, at most 15 digits in all. Spaces, dashes, dots and
/// parentheses that people type are dropped first.
pub fn phone(raw: &str) -> Result<String, String> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let valid = !digits.is_empty()
        && digits.len() >= 2
        && digits.len() <= 15
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(compact)
    } else {
        Err(format!(
            "'{}' is not a phone number in E.164 form (e.g. +14155550123)",
            raw.trim()
        ))
    }
}

/// An IANA time zone name, returned in its canonical spelling.
pub fn timezone(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    value
        .parse::<chrono_tz::Tz>()
        .or_else(|_| {
            chrono_tz::TZ_VARIANTS
                .iter()
                .copied()
                .find(|tz| tz.name().eq_ignore_ascii_case(value))
                .ok_or(())
        })
        .map(|tz| tz.name().to_owned())
        .map_err(|_| format!("'{value}' is not an IANA time zone (e.g. America/New_York)"))
}

/// ISO 3166-1 alpha-2. Alpha-3 codes and English names (official or common) are normalised to it.
pub fn country(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    let code = match value.len() {
        2 => CountryCode::for_alpha2_caseless(value).ok(),
        3 => CountryCode::for_alpha3_caseless(value).ok(),
        _ => None,
    }
    .or_else(|| country_by_name(value));
    code.map(|c| c.alpha2().to_owned())
        .ok_or_else(|| format!("'{value}' is not an ISO 3166-1 country code or country name"))
}

fn country_by_name(name: &str) -> Option<CountryCode> {
    const COMMON: &[(&str, &str)] = &[
        ("united states", "US"),
        ("usa", "US"),
        ("united kingdom", "GB"),
        ("uk", "GB"),
        ("great britain", "GB"),
        ("russia", "RU"),
        ("south korea", "KR"),
        ("north korea", "KP"),
        ("iran", "IR"),
        ("vietnam", "VN"),
        ("syria", "SY"),
        ("laos", "LA"),
        ("bolivia", "BO"),
        ("venezuela", "VE"),
        ("tanzania", "TZ"),
        ("moldova", "MD"),
        ("taiwan", "TW"),
        ("czech republic", "CZ"),
        ("ivory coast", "CI"),
        ("netherlands", "NL"),
    ];
    let wanted = name.to_lowercase();
    if let Some((_, code)) = COMMON.iter().find(|(n, _)| *n == wanted) {
        return CountryCode::for_alpha2(code).ok();
    }
    CountryCode::iter()
        .find(|c| c.name().to_lowercase() == wanted)
        .copied()
}

/// ISO 639-1 two-letter language code, lower-cased.
pub fn language(raw: &str) -> Result<String, String> {
    let value = raw.trim().to_lowercase();
    if value.len() == 2 && isolang::Language::from_639_1(&value).is_some() {
        Ok(value)
    } else {
        Err(format!(
            "'{}' is not an ISO 639-1 language code (e.g. en)",
            raw.trim()
        ))
    }
}

/// A locale such as `en`, `en_GB` or `en-GB`: an ISO 639-1 language, optionally a region
/// (ISO 3166-1 alpha-2 or a UN M.49 number). Returned as `ll_RR`.
pub fn locale(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    let fail = || format!("'{value}' is not a locale (language[_REGION], e.g. en_GB)");
    let mut parts = value.splitn(2, ['_', '-']);
    let lang = language(parts.next().unwrap_or("")).map_err(|_| fail())?;
    match parts.next() {
        None => Ok(lang),
        Some(region) if region.len() == 3 && region.chars().all(|c| c.is_ascii_digit()) => {
            Ok(format!("{lang}_{region}"))
        }
        Some(region) => CountryCode::for_alpha2_caseless(region)
            .map(|c| format!("{lang}_{}", c.alpha2()))
            .map_err(|_| fail()),
    }
}

/// A custom property key: trimmed, 1–128 characters, not starting with `$` or `ss_` (reserved).
pub fn custom_key(raw: &str) -> Result<String, String> {
    let key = raw.trim();
    if key.is_empty() {
        return Err("property keys must not be empty".into());
    }
    if key.chars().count() > 128 {
        return Err("property keys must be at most 128 characters".into());
    }
    if key.starts_with('$') || key.to_lowercase().starts_with("ss_") {
        return Err(format!(
            "'{key}' is reserved: keys starting with $ or ss_ belong to Herald"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("property keys must not contain control characters".into());
    }
    Ok(key.to_owned())
}

/// How deep a custom property value may nest (`[[1]]` is 2 deep, a scalar 0). A stored value is
/// read back inside larger documents (history entries put it two levels deeper, exports and
/// `herald copy` deeper still) whose parsers stop at 128 levels; 32 leaves ample room.
pub const MAX_VALUE_DEPTH: usize = 32;

/// U+0000 is refused in every stored string: PostgreSQL's text and jsonb cannot hold it, so
/// refusing it everywhere keeps both backends (and a copy between them) alike.
pub fn no_nul(s: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err("must not contain the NUL character (U+0000)".into());
    }
    Ok(())
}

/// Checks any JSON value bound for storage: no U+0000 in a string or key, at any depth. The
/// error's field is the path inside `v` (`a.b[2]`), empty for `v` itself.
pub fn no_nul_in(v: &Value) -> Result<(), Invalid> {
    match v {
        Value::String(s) => no_nul(s).map_err(|rule| Invalid::new("", rule)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| no_nul_in(item).map_err(|e| e.within_index(i))),
        Value::Object(map) => map.iter().try_for_each(|(k, item)| {
            no_nul(k).map_err(|rule| Invalid::new(k.as_str(), format!("keys {rule}")))?;
            no_nul_in(item).map_err(|e| e.within(k))
        }),
        _ => Ok(()),
    }
}

/// Checks a custom property value: nested at most [`MAX_VALUE_DEPTH`] deep (reported on the
/// value itself: empty field), and no U+0000 in any string or key (see [`no_nul_in`]).
pub fn custom_value(v: &Value) -> Result<(), Invalid> {
    if nesting(v, MAX_VALUE_DEPTH + 1) > MAX_VALUE_DEPTH {
        return Err(Invalid::new(
            "",
            format!("nests deeper than the limit of {MAX_VALUE_DEPTH} levels"),
        ));
    }
    no_nul_in(v)
}

/// How deep `v` nests, counted no further than `cap`.
fn nesting(v: &Value, cap: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return 0,
    };
    1 + children.map(|c| nesting(c, cap - 1)).max().unwrap_or(0)
}

/// A slug naming a `what` (category, workflow): 1-64 of `a-z 0-9 - _`, trimmed.
pub fn slug(raw: &str, what: &str) -> Result<String, String> {
    let s = raw.trim();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a {what} slug (1-64 of a-z, 0-9, - and _)"
        ))
    }
}

/// An http(s) URL, optionally required to start with `prefix`.
pub fn url(raw: &str, prefixes: &[&str]) -> Result<String, String> {
    let value = raw.trim();
    let scheme_ok = value.starts_with("https://") || value.starts_with("http://");
    let host_ok = value
        .split("://")
        .nth(1)
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !scheme_ok || !host_ok || value.chars().any(char::is_whitespace) {
        return Err(format!("'{value}' is not an http(s) URL"));
    }
    if !prefixes.is_empty() && !prefixes.iter().any(|p| value.starts_with(p)) {
        return Err(format!(
            "'{value}' must start with {}",
            prefixes.join(" or ")
        ));
    }
    Ok(value.to_owned())
}

/// A span of time as `<n><unit>`: `30s`, `15m`, `1h`, `2d` (a whole number of seconds,
/// minutes, hours or days), from one second to `max_days` days.
pub fn duration(raw: &str, max_days: i64) -> Result<chrono::TimeDelta, String> {
    let t = raw.trim();
    let bad = || format!("'{t}' is not a duration like 30s, 15m, 1h or 2d");
    let unit = t.chars().last().ok_or_else(bad)?;
    let n: i64 = t[..t.len() - unit.len_utf8()]
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(bad)?;
    let seconds = match unit {
        's' => Some(n),
        'm' => n.checked_mul(60),
        'h' => n.checked_mul(3600),
        'd' => n.checked_mul(86_400),
        _ => return Err(bad()),
    };
    match seconds {
        Some(s) if s <= max_days * 86_400 => Ok(chrono::TimeDelta::seconds(s)),
        _ => Err(format!("'{t}' is longer than {max_days} days")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email(" Jo.Doe+x@Example.COM ").unwrap(),
            "Jo.Doe+x@example.com"
        );
        assert_eq!(email("ü@bücher.de").unwrap(), "ü@bücher.de");
        for bad in [
            "",
            "a",
            "a@",
            "@b.com",
            "a@b",
            "a b@c.com",
            "a@b..com",
            "a@-b.com",
            "a..b@c.com",
            "a@b.c",
            "a@b.123",
        ] {
            assert!(email(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn phones() {
        assert_eq!(phone("+1 (415) 555-0123").unwrap(), "+14155550123");
        for bad in [
            "",
            "4155550123",
            "+0123",
            "+1",
            "+1234567890123456",
            "+1abc",
        ] {
            assert!(phone(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn durations() {
        let secs = |raw| duration(raw, 30).map(|d| d.num_seconds());
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs(" 15m"), Ok(900));
        assert_eq!(secs("1h"), Ok(3600));
        assert_eq!(secs("2d"), Ok(172_800));
        assert_eq!(secs("30d"), Ok(2_592_000));
        for bad in [
            "",
            "h",
            "0m",
            "-1h",
            "1.5h",
            "1w",
            "1 h",
            "99999999999999999d",
        ] {
            assert!(secs(bad).is_err(), "{bad}");
        }
        assert!(secs("31d").unwrap_err().contains("longer than 30 days"));
    }

    #[test]
    fn timezones() {
        assert_eq!(timezone("Asia/Kolkata").unwrap(), "Asia/Kolkata");
        assert_eq!(timezone("america/new_york").unwrap(), "America/New_York");
        assert!(timezone("Mars/Olympus").is_err());
        assert!(timezone("").is_err());
    }

    #[test]
    fn countries() {
        assert_eq!(country("in").unwrap(), "IN");
        assert_eq!(country("DEU").unwrap(), "DE");
        assert_eq!(country("Germany").unwrap(), "DE");
        assert_eq!(country("United States").unwrap(), "US");
        assert_eq!(
            country("united kingdom of great britain and northern ireland").unwrap(),
            "GB"
        );
        assert!(country("XX").is_err());
        assert!(country("Atlantis").is_err());
    }

    #[test]
    fn languages_and_locales() {
        assert_eq!(language("EN").unwrap(), "en");
        assert!(language("eng").is_err());
        assert!(language("xx").is_err());
        assert_eq!(locale("en-gb").unwrap(), "en_GB");
        assert_eq!(locale("es_419").unwrap(), "es_419");
        assert_eq!(locale("fr").unwrap(), "fr");
        assert!(locale("en_ZZ").is_err());
        assert!(locale("english").is_err());
    }

    #[test]
    fn custom_values_are_bounded_in_depth_and_refuse_nul() {
        use serde_json::json;
        let nest = |n: usize| (0..n).fold(json!(1), |v, _| json!([v]));
        assert!(custom_value(&nest(MAX_VALUE_DEPTH)).is_ok());
        let e = custom_value(&nest(MAX_VALUE_DEPTH + 1)).unwrap_err();
        assert!(e.rule.contains("32 levels") && e.field.is_empty(), "{e}");
        let deep_obj = (0..40).fold(json!(1), |v, _| json!({ "a": v }));
        assert!(custom_value(&deep_obj).is_err());
        assert!(no_nul_in(&deep_obj).is_ok());
        assert_eq!(
            custom_value(&json!({"a": [1, "x\0"]})).unwrap_err().field,
            "a[1]"
        );
        assert_eq!(
            custom_value(&json!({"a": {"k\0": 1}})).unwrap_err().field,
            "a.k\0"
        );
        assert!(custom_value(&json!("\0")).unwrap_err().field.is_empty());
        assert!(custom_key("a\0b").is_err());
    }

    #[test]
    fn custom_keys() {
        assert_eq!(custom_key(" plan ").unwrap(), "plan");
        assert!(custom_key("$plan").is_err());
        assert!(custom_key("SS_x").is_err());
        assert!(custom_key("").is_err());
    }
}
