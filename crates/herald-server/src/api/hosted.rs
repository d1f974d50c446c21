//! The hosted preference page: `GET/POST /preferences/{token}`, a small server-rendered form where
//! a user sees and changes their own preferences without logging in. The token (minted by
//! `POST /v1/user/{id}/preference/link/`, see `herald_core::service::links`) is a signed,
//! expiring link for one user in one environment; it is the page's only credential, so responses
//! are never cached and never send a referrer. The HTML is in `templates/hosted/`.

use super::error::ApiError;
use super::{Caller, JsonBody, UserId};
use crate::App;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use herald_core::channel::Channel;
use herald_core::link::{LinkError, LinkSubject};
use herald_core::preference::{
    self, Category, ChannelRestriction, Choice, ChoiceRequest, DefaultPreference, UserView,
    PREFERENCE_CHANNELS,
};
use herald_core::service::links::{self, LinkDays, Links, OpenError};
use herald_core::service::{preferences, profiles, Error};
use herald_core::Profile;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The largest form the page accepts: a checkbox name per category and channel, far below it.
/// Smaller than the API's body limit because the page needs no key.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

// `herald links rotate|retire`, under the names the API tests import.
pub use links::{retire_old as retire_old_link_secrets, rotate as rotate_link_secret};

/// This node's link service: its cached keys, and the public base URL links point at.
pub(crate) fn link_service<'a>(app: &'a App, public_base: &'a str) -> Links<'a> {
    Links::new(app.store.as_ref(), &app.links, public_base)
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
    const FIELD: &str = "expires_in_days";
    let days = match body.get(FIELD) {
        None | Some(Value::Null) => LinkDays::DEFAULT,
        Some(v) => LinkDays::new(FIELD, v.as_i64().ok_or_else(|| LinkDays::refusal(FIELD))?)?,
    };
    let ctx = caller.ctx();
    let profile = profiles::get(app.store.as_ref(), &ctx, &id).await?;
    let base = app.config.public_base();
    let link = link_service(&app, &base)
        .mint(caller.scope.env(), &profile, days, ctx.now)
        .await?;
    let body =
        json!({"url": link.url, "token": link.token, "expires_at": link.expires_at.to_rfc3339()});
    Ok((StatusCode::CREATED, Json(body)).into_response())
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
/// stops opening. Links minted afterwards work.
pub async fn revoke(
    State(app): State<App>,
    caller: Caller,
    UserId(id): UserId,
) -> Result<StatusCode, ApiError> {
    links::revoke(app.store.as_ref(), &caller.ctx(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- The page ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "hosted/message.html")]
struct MessagePage<'a> {
    text: &'a str,
}

#[derive(Template)]
#[template(path = "hosted/preferences.html")]
struct PreferencesPage {
    saved: bool,
    sections: Vec<SectionBox>,
    restrictions: Vec<ChannelBox>,
}

/// A section of preference checkboxes, as the hosted page and the dashboard's user page show it.
pub(crate) struct SectionBox {
    pub name: String,
    pub categories: Vec<CategoryBox>,
}

pub(crate) struct CategoryBox {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub checked: bool,
    /// Mandatory: always sent, the box cannot be unticked.
    pub fixed: bool,
    pub channels: Vec<ChannelBox>,
}

pub(crate) struct ChannelBox {
    pub name: &'static str,
    pub checked: bool,
    pub fixed: bool,
}

/// `view` (with opted-out channels) as checkboxes on the channels `offered`: the categories by
/// section, and the "essential only" restriction of each channel.
pub(crate) fn preference_boxes(
    view: UserView,
    offered: &[Channel],
) -> (Vec<SectionBox>, Vec<ChannelBox>) {
    let sections = view
        .sections
        .into_iter()
        .map(|s| SectionBox {
            name: s.name.unwrap_or_else(|| "Notifications".into()),
            categories: s
                .categories
                .into_iter()
                .map(|c| CategoryBox {
                    channels: offered
                        .iter()
                        .map(|ch| {
                            let shown = c.channels.iter().find(|v| v.channel == *ch);
                            ChannelBox {
                                name: ch.as_str(),
                                checked: shown.is_some_and(|v| v.preference == Choice::OptIn),
                                fixed: !shown.is_some_and(|v| v.is_editable),
                            }
                        })
                        .collect(),
                    checked: c.preference == Choice::OptIn,
                    fixed: !c.is_editable,
                    slug: c.slug,
                    name: c.name,
                    description: c.description,
                })
                .collect(),
        })
        .collect();
    let restrictions = offered
        .iter()
        .map(|ch| ChannelBox {
            name: ch.as_str(),
            checked: view
                .channels
                .iter()
                .any(|v| v.channel == *ch && v.is_restricted),
            fixed: false,
        })
        .collect();
    (sections, restrictions)
}

impl PreferencesPage {
    /// `view` (with opted-out channels) shown with the channels the page offers.
    fn new(view: UserView, offered: &[Channel], saved: bool) -> Self {
        let (sections, restrictions) = preference_boxes(view, offered);
        PreferencesPage {
            saved,
            sections,
            restrictions,
        }
    }
}

/// HTML with the headers a page whose URL is a credential needs.
fn page(status: StatusCode, html: Result<String, askama::Error>) -> Response {
    let html = match html {
        Ok(html) => html,
        Err(e) => {
            return ApiError::internal(format!("the page did not render: {e}")).into_response()
        }
    };
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

fn message(status: StatusCode, text: &str) -> Response {
    page(status, MessagePage { text }.render())
}

fn refused(e: LinkError) -> Response {
    match e {
        LinkError::Expired => message(
            StatusCode::GONE,
            "This link has expired. Ask for a new one from the message you received.",
        ),
        LinkError::Invalid => message(
            StatusCode::NOT_FOUND,
            "This link is not valid. Check that you copied all of it.",
        ),
    }
}

/// Opens a token: whom it speaks for, and their profile. The signature is checked (with the
/// cached keys) before the store is read; then the link must still speak for the stored profile.
async fn open(app: &App, token: &str) -> Result<(LinkSubject, Profile), Response> {
    let base = app.config.public_base();
    let subject = match link_service(app, &base).open(token, Utc::now()).await {
        Ok(s) => s,
        Err(OpenError::Refused(e)) => return Err(refused(e)),
        Err(OpenError::Store(e)) => return Err(ApiError::from(e).into_response()),
    };
    match links::holder(app.store.as_ref(), &subject).await {
        Ok(Some(profile)) => Ok((subject, profile)),
        Ok(None) => Err(refused(LinkError::Invalid)),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

/// A service error as the page shows it: a user gone is a dead link.
fn failed(e: Error) -> Response {
    match e {
        Error::NotFound { .. } => refused(LinkError::Invalid),
        e => ApiError::from(e).into_response(),
    }
}

/// The channels the page offers: those the user has an address on (all, if none).
pub(crate) fn channels_of(profile: &Profile) -> Vec<Channel> {
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
    let (subject, profile) = match open(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ctx = links::acting_as(&subject, Utc::now());
    let categories = match preferences::list_categories(app.store.as_ref(), &ctx).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let saved = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "saved=1"));
    let view = UserView::of(&categories, &profile.preferences, true);
    let html = PreferencesPage::new(view, &channels_of(&profile), saved).render();
    page(StatusCode::OK, html)
}

/// What a posted form asks for. Unticked boxes are absent from a form post, so the whole state is
/// derived from what is present: every visible, non-mandatory category and every offered channel
/// is set.
pub(crate) fn changes_of(
    form: &HashMap<String, String>,
    categories: &[Category],
    offered: &[Channel],
) -> Result<(Vec<preference::CategoryChange>, Vec<ChannelRestriction>), herald_core::Invalid> {
    let ticked = |name: String| form.contains_key(&name);
    let mut changes = Vec::new();
    for c in categories
        .iter()
        .filter(|c| c.visible && c.default_preference != DefaultPreference::Mandatory)
    {
        let mut request = ChoiceRequest::new(if ticked(format!("category:{}", c.slug)) {
            Choice::OptIn
        } else {
            Choice::OptOut
        });
        // Channel boxes only mean something while the category is on; keep earlier ones otherwise.
        if request.preference == Choice::OptIn {
            request.opt_out_channels = Some(
                offered
                    .iter()
                    .copied()
                    .filter(|ch| {
                        !c.locked_channels.contains(ch)
                            && !ticked(format!("channel:{}:{}", c.slug, ch.as_str()))
                    })
                    .collect::<BTreeSet<_>>(),
            );
        }
        changes.push(request.for_category(c)?);
    }
    let restrictions = offered
        .iter()
        .map(|&channel| ChannelRestriction {
            channel,
            restricted: ticked(format!("restrict:{}", channel.as_str())),
        })
        .collect();
    Ok((changes, restrictions))
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
/// `POST /preferences/{token}`: the form, applied as one change to the link's user (checked again
/// under the row lock), then back to the page (post/redirect/get).
pub async fn save(
    State(app): State<App>,
    Path(token): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let (subject, profile) = match open(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Read only once the link is known good, and no more than a form of checkboxes needs.
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await else {
        return message(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("That form is larger than {MAX_FORM_BYTES} bytes."),
        );
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let store = app.store.as_ref();
    let ctx = links::acting_as(&subject, Utc::now());
    let categories = match preferences::list_categories(store, &ctx).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let outcome = match changes_of(&form, &categories, &channels_of(&profile)) {
        Err(e) => Err(Error::Invalid(e)),
        Ok((changes, restrictions)) => {
            let request = json!({"preference_page": form});
            links::change_as_holder(store, &ctx, subject, request, move |p| {
                for c in &changes {
                    c.apply(&mut p.preferences)?;
                }
                preference::restrict(&mut p.preferences, &restrictions);
                Ok(())
            })
            .await
        }
    };
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
        Err(Error::Invalid(e)) => message(
            StatusCode::BAD_REQUEST,
            &format!("That change is not possible: {e}"),
        ),
        Err(e) => failed(e),
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
