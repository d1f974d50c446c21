//! `/` (the welcome page while no operator exists, else on to the users), `/login`, `/logout`.

use super::session::{
    self, client_address, cookie, is_https, read_form, same_token, set_cookie, Posted,
    LOGIN_COOKIE, SESSION_COOKIE,
};
use super::{html, redirect, Shell};
use crate::admin::{self, LoginError};
use crate::App;
use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_core::Env;

#[derive(Template)]
#[template(path = "dashboard/setup.html")]
struct SetupPage {
    shell: Shell,
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    shell: Shell,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

/// `GET /`: how to create the first account while there is none; else the users page (through
/// the login page when there is no session).
pub async fn home(State(app): State<App>, request: Request) -> Response {
    match app.store.list_operators().await {
        Ok(all) if all.is_empty() => {
            return html(
                StatusCode::OK,
                SetupPage {
                    shell: Shell::bare(),
                }
                .render(),
            )
        }
        Ok(_) => {}
        Err(e) => return crate::api::error::ApiError::from(e).into_response(),
    }
    match session::current(&app, request.headers()).await {
        Ok(Some(_)) => redirect("/test/users"),
        Ok(None) => redirect("/login"),
        Err(r) => r,
    }
}

/// `GET /test`, `GET /live`: that environment's users.
pub async fn env_home(uri: axum::http::Uri) -> Response {
    let env = session::env_of(uri.path()).unwrap_or(Env::Test);
    redirect(&format!("/{env}/users"))
}

/// Where to go after logging in: a path of this site only (never `//host` or a URL).
fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.starts_with("/login")
        && !next.chars().any(char::is_control);
    if ok {
        next.to_owned()
    } else {
        "/test/users".to_owned()
    }
}

/// The login page, with a fresh double-submit token in its cookie and its form.
fn login_page(
    app: &App,
    headers: &axum::http::HeaderMap,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<String>,
) -> Response {
    let token = crate::keys::random(32);
    let mut r = html(
        status,
        LoginPage {
            shell: Shell::bare(),
            csrf: token.clone(),
            next: next.to_owned(),
            username: username.to_owned(),
            error,
        }
        .render(),
    );
    let secure = is_https(app, headers);
    if let Ok(v) = HeaderValue::from_str(&set_cookie(LOGIN_COOKIE, &token, 3600, secure)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `GET /login[?next=/test/users]`.
pub async fn page(State(app): State<App>, request: Request) -> Response {
    let next = request
        .uri()
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let next = safe_next(&next);
    if let Ok(Some(_)) = session::current(&app, request.headers()).await {
        return redirect(&next);
    }
    login_page(&app, request.headers(), StatusCode::OK, &next, "", None)
}

/// `POST /login`: username, password, the double-submit token, next. Throttled per account and
/// address (429); a wrong username or password is one answer (401), whichever it was.
pub async fn submit(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let address = client_address(&app, &parts);
    let fields = match read_form(body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let sent = fields.get("csrf").unwrap_or("");
    if !cookie(&parts.headers, LOGIN_COOKIE).is_some_and(|c| !c.is_empty() && same_token(c, sent)) {
        return session::csrf_refused();
    }
    let next = safe_next(fields.get("next").unwrap_or(""));
    let username = fields.text("username");
    let password = fields.get("password").unwrap_or("");
    match admin::login(
        app.store.as_ref(),
        &username,
        password,
        &address,
        Utc::now(),
    )
    .await
    {
        Ok(opened) => {
            let secure = is_https(&app, &parts.headers);
            let mut r = redirect(&next);
            let h = r.headers_mut();
            for c in [
                session::session_cookie(&opened.cookie, secure),
                set_cookie(LOGIN_COOKIE, "", 0, secure),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            tracing::info!(operator = %opened.session.username, "dashboard login");
            r
        }
        Err(LoginError::Refused) => login_page(
            &app,
            &parts.headers,
            StatusCode::UNAUTHORIZED,
            &next,
            &username,
            Some("Wrong username or password.".into()),
        ),
        Err(LoginError::Throttled { retry_after }) => {
            let wait = (retry_after - Utc::now()).num_minutes().max(1);
            let mut r = login_page(
                &app,
                &parts.headers,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &username,
                Some(format!(
                    "Too many login attempts. Try again in {wait} minute{}.",
                    if wait == 1 { "" } else { "s" }
                )),
            );
            let secs = (retry_after - Utc::now()).num_seconds().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(LoginError::Store(e)) => crate::api::error::ApiError::from(e).into_response(),
    }
}

/// `POST /logout`: ends the session (on every node: it is deleted from the store).
pub async fn logout(State(app): State<App>, posted: Posted) -> Response {
    if let Err(e) = app.store.delete_session(&posted.session.id_hash).await {
        return crate::api::error::ApiError::from(e).into_response();
    }
    let mut r = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0, false)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/live/users?q=a"), "/live/users?q=a");
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/login",
            "users",
        ] {
            assert_eq!(safe_next(bad), "/test/users", "{bad}");
        }
    }
}
