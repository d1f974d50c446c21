//! Templates: Handlebars, rendered against one user. Every template sees the same variables:
//! the caller's `data` at the top level (`{{order_id}}`), the user as `$recipient`
//! (`{{$recipient.name}}`, `{{$recipient.$email}}`), and `$hosted_preference_url`, a signed link to
//! the page where the user manages their own preferences.

use crate::channel::Channel;
use crate::error::Invalid;
use crate::profile::Profile;
use handlebars::template::{Parameter, TemplateElement};
use handlebars::{
    Handlebars, Helper, HelperDef, HelperResult, Output, Path, RenderContext, RenderErrorReason,
    Template,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// Checks a caller's `data`: absent (null) or an object whose keys do not start with `$`
/// (those are Herald's variables). Run where the data arrives (a trigger) and before each render.
pub fn check_data(data: &Value) -> Result<(), Invalid> {
    match data {
        Value::Null => Ok(()),
        Value::Object(d) => match d.keys().find(|k| k.starts_with('$')) {
            Some(k) => Err(Invalid::new(
                format!("data.{k}"),
                "keys starting with $ are Herald's template variables",
            )),
            None => Ok(()),
        },
        _ => Err(Invalid::new("data", "must be a JSON object")),
    }
}

/// The variables of a template rendered for `profile`. `data` must be an object; its keys may
/// not start with `$` (those are Herald's).
pub fn variables(profile: &Profile, preference_url: &str, data: &Value) -> Result<Value, Invalid> {
    variables_with_actor(profile, None, preference_url, data)
}

/// [`variables`], plus the user who caused the notification as `$actor` (the same shape as
/// `$recipient`), when there is one.
pub fn variables_with_actor(
    profile: &Profile,
    actor: Option<&Profile>,
    preference_url: &str,
    data: &Value,
) -> Result<Value, Invalid> {
    check_data(data)?;
    let mut vars = Map::new();
    if let Value::Object(d) = data {
        vars.extend(d.clone());
    }
    vars.insert("$recipient".into(), recipient(profile));
    if let Some(actor) = actor {
        vars.insert("$actor".into(), recipient(actor));
    }
    vars.insert(
        HOSTED_PREFERENCE_URL.into(),
        Value::String(preference_url.to_owned()),
    );
    Ok(Value::Object(vars))
}

/// Limits on one render. A template is text a caller controls, and dispatch renders the same
/// templates, so every render is bounded in nesting, work, output and time; a template that
/// breaks one is refused (`template: …`) instead of taking a worker or the process down.
pub mod limits {
    use std::time::Duration;

    /// Blocks (`{{#each}}`, `{{#if}}`, `{{#*inline}}`, …) and subexpressions nested in one
    /// template. Parsing and rendering recurse per level, so this also keeps the stack small.
    pub const MAX_NESTING: usize = 16;
    /// Loop iterations plus partial renders in one render: `{{#each}}` bodies run per item and
    /// nest multiplicatively, so a small template over a small array can mean billions of steps.
    pub const MAX_ITERATIONS: usize = 100_000;
    /// Bytes one render may produce (256 KiB).
    pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
    /// Wall time of one render.
    pub const MAX_RENDER_TIME: Duration = Duration::from_secs(1);
    /// Bytes of one template's source (100 KiB).
    pub const MAX_SOURCE_BYTES: usize = 100 * 1024;
}

/// Checks a template without rendering it: it must be at most [`limits::MAX_SOURCE_BYTES`]
/// long, parse, nest at most
/// [`limits::MAX_NESTING`] deep, and include only partials it defines inline
/// (`{{#*inline "name"}}`), by a literal name, never itself (directly or through others). Run
/// where a template is saved as well as before each render.
pub fn check(field: &str, source: &str) -> Result<(), Invalid> {
    compile(field, source).map(|_| ())
}

/// Renders `source` with `vars`. Missing variables render empty; `{{x}}` escapes HTML, `{{{x}}}`
/// does not. A template that does not parse, or breaks one of the [`limits`], is an error naming
/// `field`. CPU-bound for up to [`limits::MAX_RENDER_TIME`]: async callers run it on a blocking
/// thread.
pub fn render(field: &str, source: &str, vars: &Value) -> Result<String, Invalid> {
    let tpl = compile(field, source)?;
    let budget = Arc::new(Budget {
        steps: AtomicUsize::new(0),
        deadline: Instant::now() + limits::MAX_RENDER_TIME,
        broken: Mutex::new(None),
    });
    let mut hb = Handlebars::new();
    hb.register_helper(TICK, Box::new(Tick(budget.clone())));
    hb.register_template("t", tpl);
    let mut out = Capped {
        buf: Vec::new(),
        budget: &budget,
    };
    let ctx = handlebars::Context::from(vars.clone());
    let rendered = hb.render_with_context_to_write("t", &ctx, &mut out);
    if let Some(rule) = budget
        .broken
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(Invalid::new(field, rule));
    }
    rendered.map_err(|e| Invalid::new(field, format!("does not render: {e}")))?;
    String::from_utf8(out.buf).map_err(|e| Invalid::new(field, format!("does not render: {e}")))
}

/// The helper counted once per loop iteration and per partial render (see [`instrument`]).
const TICK: &str = "__herald_tick";

struct Budget {
    steps: AtomicUsize,
    deadline: Instant,
    /// The limit that stopped the render, as the rule to report.
    broken: Mutex<Option<String>>,
}

impl Budget {
    fn over(&self, rule: String) -> std::io::Error {
        let mut broken = self.broken.lock().unwrap_or_else(|e| e.into_inner());
        broken.get_or_insert(rule.clone());
        std::io::Error::other(rule)
    }

    fn in_time(&self) -> Result<(), std::io::Error> {
        if Instant::now() > self.deadline {
            return Err(self.over(format!(
                "took longer than the render time limit of {} ms",
                limits::MAX_RENDER_TIME.as_millis()
            )));
        }
        Ok(())
    }
}

struct Tick(Arc<Budget>);

impl HelperDef for Tick {
    fn call<'reg: 'rc, 'rc>(
        &self,
        _: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut RenderContext<'reg, 'rc>,
        _: &mut dyn Output,
    ) -> HelperResult {
        let steps = self.0.steps.fetch_add(1, Ordering::Relaxed) + 1;
        let stop = if steps > limits::MAX_ITERATIONS {
            Some(self.0.over(format!(
                "exceeds the limit of {} loop iterations and partial renders",
                limits::MAX_ITERATIONS
            )))
        } else {
            self.0.in_time().err()
        };
        match stop {
            Some(e) => Err(RenderErrorReason::Other(e.to_string()).into()),
            None => Ok(()),
        }
    }
}

/// The render's output: refuses to grow past [`limits::MAX_OUTPUT_BYTES`] and checks the
/// deadline on every write.
struct Capped<'a> {
    buf: Vec<u8>,
    budget: &'a Budget,
}

impl std::io::Write for Capped<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.budget.in_time()?;
        if self.buf.len() + bytes.len() > limits::MAX_OUTPUT_BYTES {
            return Err(self.budget.over(format!(
                "renders more than the output limit of {} bytes",
                limits::MAX_OUTPUT_BYTES
            )));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parses `source` and checks it (see [`check`]); the result is instrumented for [`render`].
fn compile(field: &str, source: &str) -> Result<Template, Invalid> {
    if source.len() > limits::MAX_SOURCE_BYTES {
        return Err(Invalid::new(
            field,
            format!(
                "is longer than the limit of {} bytes",
                limits::MAX_SOURCE_BYTES
            ),
        ));
    }
    // The parser recurses per nesting level: measure the nesting before handing it over.
    let depth = lexical_nesting(source);
    if depth > limits::MAX_NESTING {
        return Err(Invalid::new(field, nesting_rule()));
    }
    let mut tpl = Template::compile(source)
        .map_err(|e| Invalid::new(field, format!("does not render: {e}")))?;
    let mut inline = HashMap::new();
    walk(&tpl, 0, &mut |e, depth| {
        if depth > limits::MAX_NESTING {
            return Err(nesting_rule());
        }
        if let TemplateElement::DecoratorBlock(d) | TemplateElement::DecoratorExpression(d) = e {
            if !matches!(&d.name, Parameter::Name(n) if n == "inline") {
                return Err(format!("uses an unknown decorator {}", param_text(&d.name)));
            }
            let name = match d.params.first() {
                Some(Parameter::Literal(Value::String(s))) => s.clone(),
                Some(Parameter::Name(s)) => s.clone(),
                _ => {
                    return Err(
                        "names an inline partial with something other than a literal name".into(),
                    )
                }
            };
            if inline.contains_key(&name) {
                return Err(format!("defines the inline partial '{name}' twice"));
            }
            let mut calls = Vec::new();
            if let Some(body) = &d.template {
                partial_calls(body, &mut calls)?;
            }
            inline.insert(name, calls);
        }
        Ok(())
    })
    .map_err(|rule| Invalid::new(field, rule))?;
    let mut top = Vec::new();
    partial_calls(&tpl, &mut top).map_err(|rule| Invalid::new(field, rule))?;
    for name in inline.values().flatten().chain(&top) {
        if !inline.contains_key(name) {
            return Err(Invalid::new(
                field,
                format!("includes the partial '{name}', which it does not define inline"),
            ));
        }
    }
    // Partials are expanded at render time, so one that reaches itself never ends.
    for start in inline.keys() {
        let mut seen = vec![start.as_str()];
        let mut todo: Vec<&str> = inline[start].iter().map(String::as_str).collect();
        while let Some(next) = todo.pop() {
            if next == start {
                return Err(Invalid::new(
                    field,
                    format!("the partial '{start}' includes itself: partials may not recurse"),
                ));
            }
            if !seen.contains(&next) {
                seen.push(next);
                todo.extend(inline[next].iter().map(String::as_str));
            }
        }
    }
    instrument(&mut tpl);
    Ok(tpl)
}

fn nesting_rule() -> String {
    format!(
        "nests blocks or subexpressions more than {} deep",
        limits::MAX_NESTING
    )
}

/// The deepest nesting of `{{#…}}` blocks and of parentheses inside mustaches, counted on the
/// text, so that it is known before the (recursive) parser sees it.
fn lexical_nesting(source: &str) -> usize {
    let (mut blocks, mut max) = (0usize, 0usize);
    let mut rest = source;
    while let Some(at) = rest.find("{{") {
        rest = &rest[at + 2..];
        let tag = rest.trim_start_matches(['{', '~', ' ']);
        if tag.starts_with('#') {
            blocks += 1;
        } else if tag.starts_with('/') {
            blocks = blocks.saturating_sub(1);
        }
        let end = rest.find("}}").unwrap_or(rest.len());
        let mut parens = 0usize;
        for c in rest[..end].chars() {
            match c {
                '(' => {
                    parens += 1;
                    max = max.max(blocks + parens);
                }
                ')' => parens = parens.saturating_sub(1),
                _ => {}
            }
        }
        max = max.max(blocks);
        rest = &rest[end..];
    }
    max
}

/// Calls `f` on every element with its block nesting depth (subexpressions count as a level).
fn walk(
    tpl: &Template,
    depth: usize,
    f: &mut dyn FnMut(&TemplateElement, usize) -> Result<(), String>,
) -> Result<(), String> {
    for e in &tpl.elements {
        f(e, depth)?;
        let (params, bodies): (Vec<&Parameter>, Vec<&Template>) = match e {
            TemplateElement::HtmlExpression(h)
            | TemplateElement::Expression(h)
            | TemplateElement::HelperBlock(h) => (
                std::iter::once(&h.name)
                    .chain(&h.params)
                    .chain(h.hash.values())
                    .collect(),
                h.template.iter().chain(&h.inverse).collect(),
            ),
            TemplateElement::DecoratorExpression(d)
            | TemplateElement::DecoratorBlock(d)
            | TemplateElement::PartialExpression(d)
            | TemplateElement::PartialBlock(d) => (
                std::iter::once(&d.name)
                    .chain(&d.params)
                    .chain(d.hash.values())
                    .collect(),
                d.template.iter().collect(),
            ),
            _ => (vec![], vec![]),
        };
        for p in params {
            if param_depth(p) + depth > limits::MAX_NESTING {
                return Err(nesting_rule());
            }
        }
        for body in bodies {
            walk(body, depth + 1, f)?;
        }
    }
    Ok(())
}

fn param_depth(p: &Parameter) -> usize {
    match p {
        Parameter::Subexpression(s) => {
            let inner = match s.element.as_ref() {
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => h
                    .params
                    .iter()
                    .chain(h.hash.values())
                    .map(param_depth)
                    .max()
                    .unwrap_or(0),
                _ => 0,
            };
            1 + inner
        }
        _ => 0,
    }
}

fn param_text(p: &Parameter) -> String {
    match p {
        Parameter::Name(n) => n.clone(),
        Parameter::Path(Path::Relative((_, raw)) | Path::Local((_, _, raw))) => raw.clone(),
        Parameter::Literal(v) => v.to_string(),
        _ => "(…)".into(),
    }
}

/// The partials `tpl` includes, not looking into inline partial definitions (those are
/// checked on their own). A partial named by a path or subexpression is refused: what it names
/// is only known while rendering.
fn partial_calls(tpl: &Template, calls: &mut Vec<String>) -> Result<(), String> {
    for e in &tpl.elements {
        match e {
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                match &d.name {
                    Parameter::Name(n) => calls.push(n.clone()),
                    Parameter::Literal(Value::String(n)) => calls.push(n.clone()),
                    other => {
                        return Err(format!(
                            "includes a partial by a computed name ({}): only partials defined inline, by name, may be included",
                            param_text(other)
                        ))
                    }
                }
                if let Some(body) = &d.template {
                    partial_calls(body, calls)?;
                }
            }
            TemplateElement::HelperBlock(h) => {
                for body in h.template.iter().chain(&h.inverse) {
                    partial_calls(body, calls)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Puts a counting helper at the start of every `{{#each}}` body and inline partial, so that
/// every iteration and every partial render is counted against [`limits::MAX_ITERATIONS`] and
/// the deadline, even when it writes nothing.
fn instrument(tpl: &mut Template) {
    for e in &mut tpl.elements {
        match e {
            TemplateElement::HelperBlock(h) => {
                let is_each = matches!(&h.name, Parameter::Name(n) if n == "each");
                if let Some(body) = h.template.as_mut() {
                    instrument(body);
                    if is_each {
                        tick_first(body);
                    }
                }
                if let Some(inverse) = h.inverse.as_mut() {
                    instrument(inverse);
                }
            }
            TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => {
                if let Some(body) = d.template.as_mut() {
                    instrument(body);
                    tick_first(body);
                }
            }
            _ => {}
        }
    }
}

fn tick_first(body: &mut Template) {
    let tick = Template::compile(&format!("{{{{{TICK}}}}}")).expect("the tick template parses");
    body.elements.splice(0..0, tick.elements);
    body.mapping.splice(0..0, tick.mapping);
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
    fn the_actor_is_seen_like_the_recipient() {
        let mut grace = Profile::new(DistinctId::parse("grace").unwrap(), Utc::now());
        grace.properties.insert("name".into(), json!("Grace"));
        let vars = variables_with_actor(&ada(), Some(&grace), "u", &json!({"n": 1})).unwrap();
        let out = render(
            "t",
            "{{$actor.name}} ({{$actor.distinct_id}}) to {{$recipient.distinct_id}}: {{n}}",
            &vars,
        )
        .unwrap();
        assert_eq!(out, "Grace (grace) to ada: 1");
        let without = variables(&ada(), "u", &Value::Null).unwrap();
        assert_eq!(render("t", "[{{$actor.name}}]", &without).unwrap(), "[]");
    }

    #[test]
    fn sources_over_the_size_limit_are_refused_before_parsing() {
        let big = "x".repeat(limits::MAX_SOURCE_BYTES + 1);
        let e = check("channels.email.html", &big).unwrap_err();
        assert_eq!(e.field, "channels.email.html");
        assert!(e.rule.contains("limit of 102400 bytes"), "{}", e.rule);
        assert!(check("t", &big[1..]).is_ok());
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

#[cfg(test)]
mod limit_tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn rule(source: &str, vars: &Value) -> String {
        let e = render("template", source, vars).unwrap_err();
        assert_eq!(e.field, "template");
        e.rule
    }

    #[test]
    fn inline_partials_render_and_recursion_is_refused_before_rendering() {
        let vars = json!({"x": 1});
        assert_eq!(
            render(
                "t",
                r#"{{#*inline "p"}}[{{x}}]{{/inline}}{{> p}}{{> p}}"#,
                &vars
            )
            .unwrap(),
            "[1][1]"
        );
        for bad in [
            r#"{{#*inline "r"}}{{> r}}{{/inline}}{{> r}}"#,
            r#"{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{#if x}}{{> a}}{{/if}}{{/inline}}{{> a}}"#,
            r#"{{#*inline "r"}}{{> r}}{{/inline}}"#,
        ] {
            assert!(rule(bad, &vars).contains("includes itself"), "{bad}");
            assert!(check("template", bad).is_err());
        }
        assert!(rule("{{> missing}}", &vars).contains("does not define inline"));
        assert!(rule("{{> (lookup this 'p')}}", &vars).contains("computed name"));
    }

    #[test]
    fn nesting_is_bounded_before_parsing() {
        let deep = "{{#if x}}".repeat(5000) + &"{{/if}}".repeat(5000);
        assert!(rule(&deep, &json!({})).contains("nests"));
        let parens = format!("{{{{x {}1{}}}}}", "(lookup ".repeat(3000), ")".repeat(3000));
        assert!(rule(&parens, &json!({})).contains("nests"));
        let ok =
            "{{#if x}}".repeat(limits::MAX_NESTING) + "y" + &"{{/if}}".repeat(limits::MAX_NESTING);
        assert_eq!(render("t", &ok, &json!({"x": true})).unwrap(), "y");
    }

    #[test]
    fn loop_work_output_and_time_are_bounded() {
        let items: Vec<u32> = (0..1000).collect();
        let vars = json!({"a": items});
        let started = Instant::now();
        let r = rule(
            "{{#each a}}{{#each ../a}}{{#each ../../a}}{{/each}}{{/each}}{{/each}}",
            &vars,
        );
        assert!(r.contains("100000 loop iterations"), "{r}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Partials that fan out without loops are counted too.
        let mut fan = String::from(r#"{{#*inline "p0"}}{{/inline}}"#);
        for i in 1..40 {
            fan += &format!(
                r#"{{{{#*inline "p{i}"}}}}{{{{> p{j}}}}}{{{{> p{j}}}}}{{{{/inline}}}}"#,
                j = i - 1
            );
        }
        fan += "{{> p39}}";
        let r = rule(&fan, &vars);
        assert!(
            r.contains("partial renders") || r.contains("render time"),
            "{r}"
        );
        let r = rule(
            "{{#each a}}{{#each ../a}}xxxxxxxxxx{{/each}}{{/each}}",
            &vars,
        );
        assert!(r.contains("output limit"), "{r}");
        // A loop within the limits renders in full.
        let out = render("t", "{{#each a}}{{this}},{{/each}}", &vars).unwrap();
        assert!(out.starts_with("0,1,2,") && out.ends_with("999,"));
    }
}
