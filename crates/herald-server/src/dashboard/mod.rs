//! The dashboard: server-rendered HTML for operators, served at `/` by the same `herald serve`.
//! Pages read and write through the same `herald_core::service` use cases as the API, in the
//! environment their URL names (`/test/…`, `/live/…`), behind an operator session (see
//! [`session`]). Templates are in `templates/dashboard/`, the stylesheet and script in `assets/`,
//! all compiled into the binary.
//!
//! A page module has handlers and their askama structs; each struct carries a [`Shell`] (the
//! frame: banner, tabs, sections, operator) built by [`Shell::of`]. A new section is a module, a
//! line in [`SECTIONS`] and its routes in [`router`].

mod categories;
mod keys;
mod login;
mod properties;
mod providers;
pub mod session;
mod users;
mod workflows;

use crate::App;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use herald_core::Env;
use session::Console;

/// Every dashboard route. Merged beside the API's (none of these paths is the API's); not in the
/// OpenAPI document, which describes the machine API only. The environment is the first segment
/// of a page's path, spelled out per environment so that no other path reaches the dashboard.
pub fn router() -> Router<App> {
    let mut router = Router::new()
        .route("/", get(login::home))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/assets/dashboard.css", get(stylesheet))
        .route("/assets/dashboard.js", get(script));
    for env in Env::ALL {
        let at = |path: &str| format!("/{}{path}", env.as_str());
        router = router
            .route(&at(""), get(login::env_home))
            .route(&at("/users"), get(users::list))
            .route(&at("/users/count"), get(users::count))
            .route(&at("/users/new"), get(users::new_page).post(users::create))
            .route(&at("/users/{id}"), get(users::show))
            .route(&at("/users/{id}/edit"), post(users::edit))
            .route(&at("/users/{id}/status"), post(users::status))
            .route(
                &at("/users/{id}/identity/reset"),
                post(users::reset_identity),
            )
            .route(&at("/users/{id}/preferences"), post(users::preferences))
            .route(&at("/users/{id}/delete"), post(users::delete))
            .route(
                &at("/properties"),
                get(properties::list).post(properties::declare),
            )
            .route(&at("/properties/{key}"), post(properties::update))
            .route(
                &at("/categories"),
                get(categories::list).post(categories::create),
            )
            .route(&at("/categories/{slug}/delete"), post(categories::delete))
            .route(&at("/workflows"), get(workflows::list))
            .route(&at("/workflows/{slug}"), get(workflows::show))
            .route(&at("/providers"), get(providers::list).post(providers::put))
            .route(&at("/providers/{channel}/delete"), post(providers::delete))
            .route(&at("/keys"), get(keys::list).post(keys::create))
            .route(&at("/keys/revoke"), post(keys::revoke));
    }
    router
}

/// The sections of an environment, in the order the navigation shows them.
pub const SECTIONS: [(&str, &str); 6] = [
    ("users", "Users"),
    ("properties", "Properties"),
    ("categories", "Categories"),
    ("workflows", "Workflows"),
    ("providers", "Providers"),
    ("keys", "Keys"),
];

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The frame of a page: which environment (none on the login and welcome pages), which section,
/// and who is signed in.
pub struct Shell {
    pub env: Option<EnvFrame>,
    pub operator: Option<OperatorFrame>,
}

pub struct EnvFrame {
    pub slug: &'static str,
    pub label: &'static str,
    pub is_test: bool,
    pub tabs: Vec<Tab>,
    pub sections: Vec<Tab>,
}

pub struct Tab {
    pub slug: &'static str,
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

pub struct OperatorFrame {
    pub username: String,
    pub csrf: String,
}

impl Shell {
    /// A page outside any environment and session (login, welcome).
    pub fn bare() -> Shell {
        Shell {
            env: None,
            operator: None,
        }
    }

    /// A page of `section` in the console's environment. The tabs lead to the same section of
    /// each environment, never to one record: a distinct_id of one says nothing in the other.
    pub fn of(console: &Console, section: &str) -> Shell {
        let env = console.env;
        Shell {
            env: Some(EnvFrame {
                slug: env.as_str(),
                label: env_label(env),
                is_test: env == Env::Test,
                tabs: Env::ALL
                    .iter()
                    .map(|e| Tab {
                        slug: e.as_str(),
                        label: env_label(*e),
                        href: format!("/{}/{section}", e.as_str()),
                        current: *e == env,
                    })
                    .collect(),
                sections: SECTIONS
                    .iter()
                    .map(|(slug, label)| Tab {
                        slug,
                        label,
                        href: format!("/{}/{slug}", env.as_str()),
                        current: *slug == section,
                    })
                    .collect(),
            }),
            operator: Some(OperatorFrame {
                username: console.session.username.to_string(),
                csrf: console.session.csrf_token.clone(),
            }),
        }
    }
}

pub fn env_label(env: Env) -> &'static str {
    match env {
        Env::Test => "Test",
        Env::Live => "Live",
    }
}

/// A rendered page with the headers every dashboard page has: never cached (it shows personal
/// data), no framing, scripts and styles from this origin only.
pub fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> Response {
    let body = match rendered {
        Ok(body) => body,
        Err(e) => {
            return crate::api::error::ApiError::internal(format!(
                "a dashboard page did not render: {e}"
            ))
            .into_response()
        }
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    r
}

fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// `303 See Other` to a path of this site (post/redirect/get).
pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(r.headers_mut());
    r
}

#[derive(Template)]
#[template(path = "dashboard/message.html")]
pub struct MessagePage {
    pub shell: Shell,
    pub title: String,
    pub text: String,
    pub back: Option<Back>,
}

pub struct Back {
    pub href: String,
    pub label: String,
}

/// A page that only says something, in `shell`'s frame.
pub fn message(status: StatusCode, shell: Shell, title: &str, text: &str) -> Response {
    html(
        status,
        MessagePage {
            shell,
            title: title.to_owned(),
            text: text.to_owned(),
            back: None,
        }
        .render(),
    )
}

/// A service error as a page: 404 for what does not exist, the refusal's text for bad input,
/// 409/412 for conflicts, and the API's error handling (logged, no detail shown) for faults.
pub fn failure(shell: Shell, e: herald_core::service::Error) -> Response {
    use herald_core::service::Error;
    match e {
        Error::NotFound { .. } | Error::Missing { .. } => {
            message(StatusCode::NOT_FOUND, shell, "Not found", &e.to_string())
        }
        Error::Invalid(_) | Error::KeyReused => message(
            StatusCode::BAD_REQUEST,
            shell,
            "Not possible",
            &e.to_string(),
        ),
        Error::Conflict(_) | Error::Stale { .. } => {
            message(StatusCode::CONFLICT, shell, "Not possible", &e.to_string())
        }
        Error::Store(e) => crate::api::error::ApiError::from(e).into_response(),
    }
}

/// A form's refusal keyed by the field it names when the form has that field, else by
/// `fallback`, the field the message goes beside.
pub fn error_beside(
    e: &herald_core::Invalid,
    fields: &[&str],
    fallback: &str,
) -> std::collections::BTreeMap<String, String> {
    let field = if fields.contains(&e.field.as_str()) {
        e.field.as_str()
    } else {
        fallback
    };
    std::collections::BTreeMap::from([(field.to_owned(), e.rule.clone())])
}

/// The value of route parameter `name` (routes carry `{env}` beside their own), empty if absent.
pub fn path_param(params: Vec<(String, String)>, name: &str) -> String {
    params
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// A path segment percent-encoded (unreserved characters stay), for ids in links.
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs (`a=1&b=x%20y`), percent-encoded as forms encode them.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// How a JSON value reads in a table cell or a property list: strings as they are, lists joined
/// with commas, anything else as compact JSON.
pub fn display_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(display_value)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// A time as the dashboard shows it: UTC, to the second.
pub fn show_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_links_are_encoded() {
        assert_eq!(segment("ada"), "ada");
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(segment("é"), "%C3%A9");
        assert_eq!(query_string([("q", "a b&c")]), "q=a+b%26c");
    }

    #[test]
    fn values_read_plainly() {
        use serde_json::json;
        assert_eq!(display_value(&json!("x")), "x");
        assert_eq!(display_value(&json!(["a@x", "b@x"])), "a@x, b@x");
        assert_eq!(display_value(&json!(3)), "3");
        assert_eq!(display_value(&json!({"a": 1})), "{\"a\":1}");
    }
}
