//! Who is at the dashboard: the session cookie, the environment a page's URL names, and the CSRF
//! token every form carries.
//!
//! - The cookie `herald_session` holds a random id (43 letters and digits); the store keeps only
//!   its SHA-256 ([`herald_core::admin::Session`]), so sessions live in the database and any node
//!   serves them. `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` when the request came over
//!   HTTPS (see [`is_https`]).
//! - A page that needs a session and has none redirects to `/login?next=<the page>`.
//! - Every POST carries the session's CSRF token in the hidden field `csrf`; a missing or wrong
//!   one is refused with a 403 page and changes nothing. The login form, before any session,
//!   uses a double-submit token (the cookie `herald_login` and the field must agree).

use super::{message, Shell};
use crate::App;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_core::admin::{hash_session_id, Session, SESSION_LIFETIME};
use herald_core::history::Actor;
use herald_core::service::Ctx;
use herald_core::{Env, EnvScope};

pub const SESSION_COOKIE: &str = "herald_session";
pub const LOGIN_COOKIE: &str = "herald_login";

/// The largest form a dashboard page posts: a user edit or a preference grid, far below it.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached Herald over HTTPS: `public_url` says so, or (only when the
/// configuration trusts a proxy to set it) `X-Forwarded-Proto: https`.
pub fn is_https(app: &App, headers: &HeaderMap) -> bool {
    app.config.public_base().starts_with("https://")
        || (app.config.dashboard.trust_forwarded_headers
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

/// The client's address, for throttling logins: the peer, or behind a trusted proxy the first
/// address of `X-Forwarded-For`.
pub fn client_address(app: &App, parts: &Parts) -> String {
    if app.config.dashboard.trust_forwarded_headers {
        if let Some(first) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return first.to_owned();
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS; `max_age` 0 deletes.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session cookie for a session just opened.
pub fn session_cookie(value: &str, secure: bool) -> String {
    set_cookie(
        SESSION_COOKIE,
        value,
        SESSION_LIFETIME.num_seconds(),
        secure,
    )
}

/// Equal strings, compared in time that depends on their lengths only.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The live session the request's cookie names, if any.
pub async fn current(app: &App, headers: &HeaderMap) -> Result<Option<Session>, Response> {
    let Some(id) = cookie(headers, SESSION_COOKIE).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    app.store
        .get_session(&hash_session_id(id), Utc::now())
        .await
        .map_err(|e| crate::api::error::ApiError::from(e).into_response())
}

/// Where a page without a session sends the browser: the login page, then back here (for a form
/// post, whose path answers POST only, back to the environment's users).
fn to_login(parts: &Parts) -> Response {
    let here = if parts.method == axum::http::Method::GET {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into())
    } else {
        env_of(parts.uri.path()).map_or_else(|| "/".into(), |env| format!("/{env}/users"))
    };
    super::redirect(&format!(
        "/login?{}",
        super::query_string([("next", here.as_str())])
    ))
}

/// An operator at a page of one environment: their session, the environment the URL names, and
/// the context use cases run in (actor `dashboard`/username).
pub struct Console {
    pub session: Session,
    pub env: Env,
    pub ctx: Ctx,
}

impl Console {
    fn new(session: Session, env: Env) -> Console {
        let ctx = Ctx::new(
            EnvScope::signed_in(&session, env),
            Actor::new("dashboard", session.username.as_str()),
            Utc::now(),
        );
        Console { session, env, ctx }
    }
}

/// The environment a dashboard path starts with (`/test/…`, `/live/…`); `None` for the pages
/// outside one (`/logout`).
pub fn env_of(path: &str) -> Option<Env> {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .and_then(|first| first.parse::<Env>().ok())
}

fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        Shell::bare(),
        "Not found",
        "There is no such page. Environments are /test/… and /live/….",
    )
}

impl FromRequestParts<App> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let env = env_of(parts.uri.path()).ok_or_else(not_found)?;
        match current(app, &parts.headers).await? {
            Some(session) => Ok(Console::new(session, env)),
            None => Err(to_login(parts)),
        }
    }
}

/// A posted form, its CSRF token checked against the session's: the fields in order, and the
/// operator (with the environment, when the path has one). A missing session redirects to the
/// login page; a bad token is a 403 page, and nothing happens.
pub struct Posted {
    pub session: Session,
    pub env: Option<Env>,
    pub fields: Fields,
}

impl Posted {
    /// The console of a form posted to an environment's page.
    pub fn console(&self) -> Option<Console> {
        self.env.map(|env| Console::new(self.session.clone(), env))
    }
}

impl FromRequest<App> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let env = env_of(parts.uri.path());
        let Some(session) = current(app, &parts.headers).await? else {
            return Err(to_login(&parts));
        };
        let fields = read_form(body).await?;
        if !fields
            .get("csrf")
            .is_some_and(|t| same_token(t, &session.csrf_token))
        {
            return Err(csrf_refused());
        }
        Ok(Posted {
            session,
            env,
            fields,
        })
    }
}

pub fn csrf_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        Shell::bare(),
        "Refused",
        "This form was not sent from a current dashboard page (its security token is missing or out of date), so nothing was changed. Go back, reload the page and try again.",
    )
}

/// A url-encoded form body, at most [`MAX_FORM_BYTES`].
pub async fn read_form(body: axum::body::Body) -> Result<Fields, Response> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            message(
                StatusCode::PAYLOAD_TOO_LARGE,
                Shell::bare(),
                "Too large",
                &format!("A dashboard form may carry at most {MAX_FORM_BYTES} bytes."),
            )
        })?;
    Ok(Fields(
        form_urlencoded::parse(&bytes).into_owned().collect(),
    ))
}

/// Form or query fields, in order (a name may repeat).
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; herald_session=abc; herald_login=x".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), Some("x"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_https() {
        let c = session_cookie("v", true);
        assert!(c.starts_with("herald_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age="));
        assert!(c.ends_with("; Secure"));
        assert!(!session_cookie("v", false).contains("Secure"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", "a"));
    }
}
