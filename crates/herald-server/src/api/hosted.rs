//! The hosted preference page: `GET/POST /preferences/{token}`, a small server-rendered form where
//! a user sees and changes their own preferences without logging in. The token (minted by
//! `POST /v1/user/{id}/preference/link/`) is a signed, expiring link for one user in one
//! environment; it is the page's only credential, so responses are never cached and never send a
//! referrer.

use super::error::ApiError;
use super::{Caller, JsonBody, UserId};
use crate::App;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, Utc};
use herald_core::channel::Channel;
use herald_core::history::Actor;
use herald_core::link::{self, Keyring, LinkError, LinkSubject};
use herald_core::preference::{self, Category, Choice, DefaultPreference, PREFERENCE_CHANNELS};
use herald_core::service::{preferences, profiles, Ctx};
use herald_core::store::{Store, StoreError};
use herald_core::{DistinctId, EnvScope, Profile};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

const SECRET_NAME: &str = "preference_links";
const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 365;
/// The largest form the page accepts: a checkbox name per category and channel, far below it.
/// Smaller than the API's body limit because the page needs no key.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// The field a save's in-lock link check refuses with (never shown: the page says the link is dead).
const LINK_FIELD: &str = "$preference_link";
/// How long a node uses the link keyring it loaded before reading it again, so a rotation
/// (`herald links rotate`) reaches every running node within this time.
pub const LINK_KEYS_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

fn fresh_secret() -> String {
    crate::keys::random(48)
}

/// The secrets that sign preference links, loaded from the store on first use and kept for
/// [`LINK_KEYS_REFRESH`]: opening a link checks its signature without touching the store.
#[derive(Default)]
pub struct LinkKeys(tokio::sync::Mutex<Option<(std::time::Instant, Arc<Keyring>)>>);

impl LinkKeys {
    pub async fn get(&self, store: &dyn Store) -> Result<Arc<Keyring>, StoreError> {
        let mut cached = self.0.lock().await;
        if let Some((at, ring)) = cached.as_ref() {
            if at.elapsed() < LINK_KEYS_REFRESH {
                return Ok(ring.clone());
            }
        }
        let ring = Arc::new(load_keyring(store).await?);
        *cached = Some((std::time::Instant::now(), ring.clone()));
        Ok(ring)
    }
}

/// The stored keyring, created (one fresh secret) by whichever node needs it first.
async fn load_keyring(store: &dyn Store) -> Result<Keyring, StoreError> {
    let candidate = Keyring::new(fresh_secret()).to_stored();
    Ok(Keyring::parse(
        &store.server_secret(SECRET_NAME, &candidate).await?,
    ))
}

/// `herald links rotate`: a new current secret signs links from now on (running nodes pick it
/// up within [`LINK_KEYS_REFRESH`]). Older secrets keep verifying unless `retire_old`, which
/// makes every link signed with them stop opening. Returns the new key id and how many were retired.
pub async fn rotate_link_secret(
    store: &dyn Store,
    retire_old: bool,
) -> Result<(String, usize), StoreError> {
    change_keyring(store, |ring| {
        let kid = ring.rotate(fresh_secret());
        let retired = if retire_old { ring.retire_old() } else { 0 };
        (kid, retired)
    })
    .await
}

/// `herald links retire`: forgets every secret but the current one. Returns how many.
pub async fn retire_old_link_secrets(store: &dyn Store) -> Result<usize, StoreError> {
    change_keyring(store, Keyring::retire_old).await
}

/// Applies `change` to the stored keyring, again if another process changed it meanwhile.
async fn change_keyring<T>(
    store: &dyn Store,
    change: impl Fn(&mut Keyring) -> T,
) -> Result<T, StoreError> {
    loop {
        let candidate = Keyring::new(fresh_secret()).to_stored();
        let stored = store.server_secret(SECRET_NAME, &candidate).await?;
        let mut ring = Keyring::parse(&stored);
        let out = change(&mut ring);
        if store
            .replace_server_secret(SECRET_NAME, &stored, &ring.to_stored())
            .await?
        {
            return Ok(out);
        }
    }
}

/// Gives `to` the secret that signs `from`'s preference links, so links already sent keep
/// opening after a move. `false`: `to` had a secret of its own, which it keeps.
pub async fn copy_link_secret(
    from: &dyn herald_core::store::Store,
    to: &dyn herald_core::store::Store,
) -> Result<bool, herald_core::store::StoreError> {
    let secret = from.server_secret(SECRET_NAME, &fresh_secret()).await?;
    Ok(to.server_secret(SECRET_NAME, &secret).await? == secret)
}

#[utoipa::path(
    post,
    path = "/v1/user/{id}/preference/link",
    operation_id = "preferenceLink",
    tag = "preferences",
    summary = "Mint a hosted preference page link",
    description = "A signed, expiring link to a page where this user, without logging in, sees and changes their own preferences. Anyone holding the link can, until it expires, the user's links are revoked (DELETE on this path) or the user is deleted. The URL starts with the public_url option.",
    params(
        crate::api::doc::UserPath
    ),
    request_body(content = Option<crate::api::doc::LinkBody>, example = json!({"expires_in_days": 7})),
    responses(
        (status = 201, description = "The link.", body = crate::api::doc::Link, example = json!({"url": "https://herald.example.com/preferences/eyJlIjoidGVzdCIsImQiOiJhZGEiLCJ4IjoxNzk2NTEzMDU2fQ.x6WoT0uOB5MqmxotJ-xlNskWC7ax_-ek2w1pqZ1B-DQ", "token": "eyJlIjoidGVzdCIsImQiOiJhZGEiLCJ4IjoxNzk2NTEzMDU2fQ.x6WoT0uOB5MqmxotJ-xlNskWC7ax_-ek2w1pqZ1B-DQ", "expires_at": "2026-12-05T23:24:16.196280731+00:00"})),
        (status = 400, description = "expires_in_days is not a whole number from 1 to 365.", body = crate::api::doc::ErrorBody),
        (status = 404, response = crate::api::doc::UserNotFound)
    )
)]
/// `POST /v1/user/{id}/preference/link/` with optional `{"expires_in_days": 1..=365}` (default 30).
pub async fn mint(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
    JsonBody(body, _): JsonBody,
) -> Result<Response, ApiError> {
    let days = match body.get("expires_in_days") {
        None | Some(Value::Null) => DEFAULT_DAYS,
        Some(v) => v
            .as_i64()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "expires_in_days",
                    format!("must be a whole number of days from 1 to {MAX_DAYS}"),
                )
            })?,
    };
    let profile = profiles::get(app.store.as_ref(), &caller.ctx(), &id).await?;
    let link = preference_link(&app, caller.scope.env(), &profile, days).await?;
    let body =
        json!({"url": link.url, "token": link.token, "expires_at": link.expires_at.to_rfc3339()});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A signed link to a user's preference page.
pub struct PreferenceLink {
    pub url: String,
    pub token: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// Mints a link to `profile`'s page valid for `days` (or until revoked, or the profile is
/// deleted); also what templates get as `$hosted_preference_url`.
pub async fn preference_link(
    app: &App,
    env: herald_core::Env,
    profile: &Profile,
    days: i64,
) -> Result<PreferenceLink, ApiError> {
    let expires_at = Utc::now() + Duration::days(days);
    let ring = app.links.get(app.store.as_ref()).await?;
    let token = link::mint(&ring, &LinkSubject::of(env, profile), expires_at);
    let url = format!("{}/preferences/{token}", app.config.public_base());
    Ok(PreferenceLink {
        url,
        token,
        expires_at,
    })
}

/// How long the links put in templates last.
pub const TEMPLATE_LINK_DAYS: i64 = DEFAULT_DAYS;

/// HTML with the headers a page whose URL is a credential needs.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        title = esc(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f6f7f9;color:#1d2430;margin:0}\
main{max-width:40rem;margin:2rem auto;padding:0 1rem}fieldset{background:#fff;border:1px solid #dde1e7;\
border-radius:8px;margin:0 0 1rem;padding:1rem}legend{font-weight:600}.category{margin:.5rem 0 1rem}\
.channels{margin:.25rem 0 0 1.6rem;color:#4b5565}label{margin-right:1rem}button{font-size:1rem;\
padding:.5rem 1.5rem}.note{color:#4b5565}.saved{color:#106b2f}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn refused(e: LinkError) -> Response {
    let (status, text) = match e {
        LinkError::Expired => (
            StatusCode::GONE,
            "This link has expired. Ask for a new one from the message you received.",
        ),
        LinkError::Invalid => (
            StatusCode::NOT_FOUND,
            "This link is not valid. Check that you copied all of it.",
        ),
    };
    page(
        status,
        "Preferences",
        &format!("<h1>Preferences</h1><p>{text}</p>"),
    )
}

#[utoipa::path(
    delete,
    path = "/v1/user/{id}/preference/link",
    operation_id = "revokePreferenceLinks",
    tag = "preferences",
    summary = "Revoke the user's hosted preference page links",
    description = "Every preference link minted for this user so far stops opening (the profile's link epoch is bumped); links minted afterwards work. Links also stop opening when the user is deleted, even if a user with the same distinct_id is created again.",
    params(
        crate::api::doc::UserPath
    ),
    responses(
        (status = 204, description = "Revoked; no body."),
        (status = 400, description = "The distinct_id in the path is empty, longer than 255 bytes or holds control characters.", body = crate::api::doc::ErrorBody),
        (status = 404, description = "No such user.", body = crate::api::doc::ErrorBody)
    )
)]
/// `DELETE /v1/user/{id}/preference/link/`: every preference link minted for the user so far
/// stops opening (the profile's link epoch is bumped). Links minted afterwards work.
pub async fn revoke(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<StatusCode, ApiError> {
    let request = json!({"revoke_preference_links": true});
    profiles::change_existing(app.store.as_ref(), &caller.ctx(), &id, request, |p| {
        p.preferences.link_epoch += 1;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Opens a token: the user it speaks for and a context acting as them. The signature is checked
/// (with the cached keys) before the store is read; then the link must still speak for the
/// stored profile: the same one (its `created_at`) and not revoked (its link epoch).
async fn open(app: &App, token: &str) -> Result<(Ctx, DistinctId, link::LinkSubject), Response> {
    let ring = app
        .links
        .get(app.store.as_ref())
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let subject = link::open(&ring, token, Utc::now()).map_err(refused)?;
    let (env, id) = (subject.env, subject.distinct_id.clone());
    let current = app
        .store
        .get_profile(EnvScope::new(env), &id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    if !current.is_some_and(|p| subject.still_matches(&p)) {
        return Err(refused(LinkError::Invalid));
    }
    let ctx = Ctx::new(
        EnvScope::new(env),
        Actor::new("preference_page", id.as_str()),
        Utc::now(),
    );
    Ok((ctx, id, subject))
}

/// The channels the page offers: those the user has an address on (all, if none).
fn channels_of(profile: &Profile) -> Vec<Channel> {
    let held: Vec<Channel> = PREFERENCE_CHANNELS
        .into_iter()
        .filter(|c| profile.identities_on(*c).next().is_some())
        .collect();
    if held.is_empty() {
        PREFERENCE_CHANNELS.to_vec()
    } else {
        held
    }
}

fn render(profile: &Profile, categories: &[Category], saved: bool) -> String {
    let prefs = &profile.preferences;
    let channels = channels_of(profile);
    let mut sections: Vec<(Option<String>, Vec<&Category>)> = Vec::new();
    for c in categories.iter().filter(|c| c.visible) {
        match sections.iter_mut().find(|(s, _)| *s == c.section) {
            Some((_, list)) => list.push(c),
            None => sections.push((c.section.clone(), vec![c])),
        }
    }
    let mut html = String::from("<h1>Your notification preferences</h1>");
    if saved {
        html.push_str("<p class=\"saved\" id=\"saved\">Saved.</p>");
    }
    html.push_str("<form method=\"post\">");
    for (section, list) in &sections {
        html.push_str(&format!(
            "<fieldset><legend>{}</legend>",
            esc(section.as_deref().unwrap_or("Notifications"))
        ));
        for c in list {
            let wire = preference::category_wire(c, prefs, true);
            let mandatory = c.default_preference == DefaultPreference::Mandatory;
            let on = wire["preference"] == "opt_in";
            html.push_str(&format!(
                "<div class=\"category\"><label><input type=\"checkbox\" name=\"category:{slug}\" id=\"category-{slug}\" value=\"on\"{checked}{disabled}> <strong>{name}</strong></label>{note}<div class=\"note\">{desc}</div><div class=\"channels\">",
                slug = esc(&c.slug),
                checked = if on { " checked" } else { "" },
                disabled = if mandatory { " disabled" } else { "" },
                name = esc(&c.name),
                note = if mandatory { " <span class=\"note\">(always sent)</span>" } else { "" },
                desc = esc(&c.description),
            ));
            for ch in &channels {
                let entry = wire["channels"]
                    .as_array()
                    .and_then(|a| a.iter().find(|e| e["channel"] == ch.as_str()));
                let ch_on = entry.is_some_and(|e| e["preference"] == "opt_in");
                let editable = entry.is_some_and(|e| e["is_editable"] == true);
                html.push_str(&format!(
                    "<label><input type=\"checkbox\" name=\"channel:{slug}:{ch}\" id=\"channel-{slug}-{ch}\" value=\"on\"{checked}{disabled}> {ch}</label>",
                    slug = esc(&c.slug),
                    ch = ch.as_str(),
                    checked = if ch_on { " checked" } else { "" },
                    disabled = if editable { "" } else { " disabled" },
                ));
            }
            html.push_str("</div></div>");
        }
        html.push_str("</fieldset>");
    }
    html.push_str("<fieldset><legend>Channels</legend><p class=\"note\">Tick a channel to receive only notifications you cannot unsubscribe from on it.</p>");
    for ch in &channels {
        html.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"restrict:{ch}\" id=\"restrict-{ch}\" value=\"on\"{checked}> Essential only on {ch}</label>",
            ch = ch.as_str(),
            checked = if prefs.restricted_channels.contains(ch) { " checked" } else { "" },
        ));
    }
    html.push_str("</fieldset><button type=\"submit\" id=\"save\">Save</button></form>");
    html
}

async fn show(app: &App, ctx: &Ctx, id: &DistinctId, saved: bool) -> Response {
    let store = app.store.as_ref();
    let loaded = async {
        let profile = profiles::get(store, ctx, id).await?;
        let categories = preferences::list_categories(store, ctx).await?;
        Ok::<_, herald_core::service::Error>((profile, categories))
    }
    .await;
    match loaded {
        Ok((profile, categories)) => page(
            StatusCode::OK,
            "Your notification preferences",
            &render(&profile, &categories, saved),
        ),
        Err(herald_core::service::Error::NotFound { .. }) => refused(LinkError::Invalid),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/preferences/{token}",
    operation_id = "preferencePage",
    tag = "preferences",
    summary = "The hosted preference page",
    description = "HTML, no login. Sent with Cache-Control: no-store, Referrer-Policy: no-referrer, a strict Content-Security-Policy and X-Frame-Options: DENY.",
    params(
        ("token" = String, Path, description = "The token of a link minted by POST /v1/user/{distinct_id}/preference/link/."),
        ("saved" = Option<String>, Query, description = "1 shows the 'saved' notice.")
    ),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 404, description = "The link is not valid (altered, or the user is gone); an HTML page with no data.", body = String, content_type = "text/html"),
        (status = 410, description = "The link has expired; an HTML page with no data.", body = String, content_type = "text/html")
    )
)]
/// `GET /preferences/{token}`.
pub async fn view(
    State(app): State<App>,
    Path(token): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    let (ctx, id, _) = match open(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let saved = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "saved=1"));
    show(&app, &ctx, &id, saved).await
}

#[utoipa::path(
    post,
    path = "/preferences/{token}",
    operation_id = "savePreferencePage",
    tag = "preferences",
    summary = "Save the hosted preference page's form",
    description = "The whole state is taken from the form: every visible, non-mandatory category and every channel the user has is set. Recorded in history with the actor preference_page.",
    params(
        ("token" = String, Path, description = "The token of a link minted by POST /v1/user/{distinct_id}/preference/link/.")
    ),
    request_body(content = Option<crate::api::doc::PreferenceForm>, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Saved; Location: /preferences/{token}?saved=1."),
        (status = 400, description = "A change the categories do not allow (HTML).", body = String, content_type = "text/html"),
        (status = 404, description = "The link is not valid (HTML).", body = String, content_type = "text/html"),
        (status = 410, description = "The link has expired (HTML).", body = String, content_type = "text/html")
    )
)]
/// `POST /preferences/{token}`: the form. Unticked boxes are absent from a form post, so the whole
/// state is derived from what is present: every visible, non-mandatory category and every offered
/// channel is set. Then back to the page (post/redirect/get).
pub async fn save(
    State(app): State<App>,
    Path(token): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let (ctx, id, subject) = match open(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Read only once the link is known good, and no more than a form of checkboxes needs.
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await else {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Preferences",
            &format!("<h1>Preferences</h1><p>That form is larger than {MAX_FORM_BYTES} bytes.</p>"),
        );
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let store = app.store.as_ref();
    let (profile, categories) = match async {
        Ok::<_, herald_core::service::Error>((
            profiles::get(store, &ctx, &id).await?,
            preferences::list_categories(store, &ctx).await?,
        ))
    }
    .await
    {
        Ok(x) => x,
        Err(herald_core::service::Error::NotFound { .. }) => return refused(LinkError::Invalid),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let channels = channels_of(&profile);
    let ticked = |name: String| form.contains_key(&name);
    let mut choices = Vec::new();
    for c in categories
        .iter()
        .filter(|c| c.visible && c.default_preference != DefaultPreference::Mandatory)
    {
        let preference = if ticked(format!("category:{}", c.slug)) {
            Choice::OptIn
        } else {
            Choice::OptOut
        };
        let off: Vec<&str> = channels
            .iter()
            .filter(|ch| {
                !c.locked_channels.contains(ch)
                    && !ticked(format!("channel:{}:{}", c.slug, ch.as_str()))
            })
            .map(|ch| ch.as_str())
            .collect();
        // Channel boxes only mean something while the category is on; keep earlier ones otherwise.
        let body = if preference == Choice::OptIn {
            json!({"preference": preference.as_str(), "opt_out_channels": off})
        } else {
            json!({"preference": preference.as_str()})
        };
        choices.push((c.clone(), body));
    }
    let restricted: BTreeSet<Channel> = channels
        .iter()
        .copied()
        .filter(|ch| ticked(format!("restrict:{}", ch.as_str())))
        .collect();
    let offered = channels.clone();
    let request = json!({"preference_page": form});
    let outcome = profiles::change_existing(store, &ctx, &id, request, move |p| {
        // Checked again under the row lock: a revoke or re-creation racing this save wins.
        if !subject.still_matches(p) {
            return Err(herald_core::Invalid::new(
                LINK_FIELD,
                "the link was revoked",
            ));
        }
        for (c, body) in &choices {
            preference::choose_category(&mut p.preferences, c, body)?;
        }
        for ch in &offered {
            if restricted.contains(ch) {
                p.preferences.restricted_channels.insert(*ch);
            } else {
                p.preferences.restricted_channels.remove(ch);
            }
        }
        Ok(())
    })
    .await;
    match outcome {
        Ok(_) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            let to = format!("/preferences/{token}?saved=1");
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&to).expect("a token is URL-safe"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(herald_core::service::Error::Invalid(e)) if e.field == LINK_FIELD => {
            refused(LinkError::Invalid)
        }
        Err(herald_core::service::Error::Invalid(e)) => page(
            StatusCode::BAD_REQUEST,
            "Preferences",
            &format!(
                "<h1>Preferences</h1><p>That change is not possible: {}</p>",
                esc(&e.to_string())
            ),
        ),
        Err(herald_core::service::Error::NotFound { .. }) => refused(LinkError::Invalid),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The authenticated link endpoints, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(mint, revoke))
}

/// The public page the links open, with its documentation.
pub fn page_router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(view, save))
}
