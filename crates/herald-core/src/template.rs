//! Templates: Handlebars, rendered against one user. Every template sees the same variables:
//! the caller's `data` at the top level (`{{order_id}}`), the user as `$recipient`
//! (`{{$recipient.name}}`, `{{$recipient.$email}}`), and `$hosted_preference_url`, a signed link to
//! the page where the user manages their own preferences.

use crate::channel::Channel;
use crate::error::Invalid;
use crate::profile::Profile;
use handlebars::Handlebars;
use serde_json::{Map, Value};

/// The variable holding the user's hosted preference page link.
pub const HOSTED_PREFERENCE_URL: &str = "$hosted_preference_url";

/// The user as templates see them: distinct_id, every property, and the first address on each
/// channel (`$email`, `$sms`, …).
pub fn recipient(profile: &Profile) -> Value {
    let mut r = profile.properties.clone();
    r.insert(
        "distinct_id".into(),
        Value::String(profile.distinct_id.to_string()),
    );
    for channel in Channel::ALL {
        if let Some(first) = profile.identities_on(channel).next() {
            r.insert(channel.key().into(), first.value.clone());
        }
    }
    Value::Object(r)
}

/// The variables of a template rendered for `profile`. `data` must be an object; its keys may
/// not start with `$` (those are Herald's).
pub fn variables(profile: &Profile, preference_url: &str, data: &Value) -> Result<Value, Invalid> {
    let mut vars = Map::new();
    match data {
        Value::Null => {}
        Value::Object(d) => {
            if let Some(k) = d.keys().find(|k| k.starts_with('$')) {
                return Err(Invalid::new(
                    format!("data.{k}"),
                    "keys starting with $ are Herald's template variables",
                ));
            }
            vars.extend(d.clone());
        }
        _ => return Err(Invalid::new("data", "must be a JSON object")),
    }
    vars.insert("$recipient".into(), recipient(profile));
    vars.insert(
        HOSTED_PREFERENCE_URL.into(),
        Value::String(preference_url.to_owned()),
    );
    Ok(Value::Object(vars))
}

/// Renders `source` with `vars`. Missing variables render empty; `{{x}}` escapes HTML, `{{{x}}}`
/// does not. A template that does not parse is an error naming `field`.
pub fn render(field: &str, source: &str, vars: &Value) -> Result<String, Invalid> {
    let hb = Handlebars::new();
    hb.render_template(source, vars)
        .map_err(|e| Invalid::new(field, format!("does not render: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Identity, IdentityMeta};
    use crate::ids::DistinctId;
    use chrono::Utc;
    use serde_json::json;

    fn ada() -> Profile {
        let mut p = Profile::new(DistinctId::parse("ada").unwrap(), Utc::now());
        p.properties = json!({"name": "Ada <3", "plan": "pro"})
            .as_object()
            .unwrap()
            .clone();
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
    fn templates_see_data_the_recipient_and_the_preference_link() {
        let vars = variables(
            &ada(),
            "https://h.example/preferences/tok",
            &json!({"order": 42}),
        )
        .unwrap();
        let out = render(
            "template",
            "Hi {{$recipient.name}} ({{$recipient.$email}}), order {{order}}. Manage: {{{$hosted_preference_url}}} {{missing}}",
            &vars,
        )
        .unwrap();
        assert_eq!(
            out,
            "Hi Ada &lt;3 (ada@example.com), order 42. Manage: https://h.example/preferences/tok "
        );
    }

    #[test]
    fn bad_templates_and_data_are_refused() {
        let vars = variables(&ada(), "u", &Value::Null).unwrap();
        assert_eq!(
            render("template", "{{#if}}", &vars).unwrap_err().field,
            "template"
        );
        assert_eq!(
            variables(&ada(), "u", &json!([1])).unwrap_err().field,
            "data"
        );
        assert_eq!(
            variables(&ada(), "u", &json!({"$recipient": 1}))
                .unwrap_err()
                .field,
            "data.$recipient"
        );
    }
}
