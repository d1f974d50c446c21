//! Email open and click tracking: `GET /t/o/{token}` (the 1×1 pixel put in tracked HTML emails)
//! and `GET /t/c/{token}` (the redirect every tracked link goes through). Public: the token is
//! the credential, signed by the server's link keyring, naming the message and, for a click,
//! the URL it goes to (so the redirect goes nowhere else). See `herald_core::engagement`.

use super::error::ApiError;
use super::hosted::link_service;
use crate::App;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_core::service::engagement::{self, TrackError};
use utoipa_axum::{router::OpenApiRouter, routes};

/// A transparent 1×1 GIF.
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn refused(e: TrackError) -> ApiError {
    match e {
        TrackError::Invalid => ApiError::not_found("no such tracking link"),
        TrackError::Store(e) => e.into(),
    }
}

#[utoipa::path(
    get,
    path = "/t/o/{token}",
    operation_id = "trackOpen",
    tag = "messages",
    summary = "Email open tracking pixel",
    description = "The 1×1 image Herald adds to the HTML of emails whose workflow has `tracking.opens` on. Fetching it records the message as seen (the first time only). Sent with Cache-Control: no-store.",
    params(("token" = String, Path, description = "The signed token Herald put in the email.")),
    responses(
        (status = 200, description = "A transparent GIF.", body = Vec<u8>, content_type = "image/gif"),
        (status = 404, description = "Not a token Herald signed (or altered).", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn open_pixel(
    State(app): State<App>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let base = app.config.public_base();
    let links = link_service(&app, &base);
    engagement::track(app.store.as_ref(), &links, &token, false, Utc::now())
        .await
        .map_err(refused)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL,
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/t/c/{token}",
    operation_id = "trackClick",
    tag = "messages",
    summary = "Email click tracking redirect",
    description = "Where Herald points every http(s) link of the HTML of emails whose workflow has `tracking.clicks` on. Records the message as clicked (and seen), the first time only, and redirects to the original URL, which is inside the signed token: an altered token is refused, never redirected.",
    params(("token" = String, Path, description = "The signed token Herald put in the link.")),
    responses(
        (status = 302, description = "Location: the link's original URL."),
        (status = 404, description = "Not a token Herald signed (or altered).", body = crate::api::doc::ErrorBody)
    )
)]
pub async fn click(
    State(app): State<App>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let base = app.config.public_base();
    let links = link_service(&app, &base);
    let tracked = engagement::track(app.store.as_ref(), &links, &token, true, Utc::now())
        .await
        .map_err(refused)?;
    let url = tracked.url.unwrap_or_default();
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url.as_str()),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
    )
        .into_response())
}

/// The public tracking endpoints, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(open_pixel))
        .routes(routes!(click))
}
