//! The OpenAPI document: its fixed parts (info, servers, tags, security schemes, the responses
//! shared by every authenticated operation) and the finishing step that writes paths the way the
//! SDKs send them. The operations come from the `#[utoipa::path]` annotations on the handlers,
//! registered with their routes through `OpenApiRouter` (see [`super::router`]).

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{IntoParams, Modify, OpenApi, ToResponse, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Herald keeps user profiles (general properties, validated channel identities, custom properties, history, preferences) and speaks SuprSend's public wire API, so the official SuprSend SDKs work against it when their base_url points here. Human reference: docs/api.md.\n\n- **Paths**: written with the trailing slash the SDKs send; every path also works without it (and /healthz etc. with one).\n- **Environments**: the credentials pick test or live; nothing crosses between them.\n- **Auth**: every /v1/... and /event/ request carries a bearer API key, or a SuprSend HMAC signature (Authorization: <workspace_key>:<signature> plus a Date header). /healthz, /readyz, /metrics, /openapi.json, /preferences/{token} and the email tracking links /t/o/{token} and /t/c/{token} are public; /v1/callback/... take no key but a provider's signature (Twilio's X-Twilio-Signature, the bounce webhook's X-Herald-Signature); /inbox/{workspace_key}/{distinct_id}/... take the user's subscriber_id instead (the subscriber scheme).\n- **Errors**: every JSON failure is the Error envelope. A path that does not exist is 404 (`no such endpoint`) and a method a path does not take is 405 (`method_not_allowed`), both before authentication. A request body over limits.max_body_bytes (default 2 MiB) is 413, also before authentication.\n- **Bodies**: JSON; the Content-Type header is not checked (it is only part of what is signed).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "The default listen address.")),
    tags(
        (name = "users", description = "Profiles by distinct_id (SuprSend Users API, plus status, history, export)."),
        (name = "events", description = "Identity events: asynchronous edits (SuprSend POST /event/)."),
        (name = "properties", description = "The property registry (Herald's addition)."),
        (name = "preferences", description = "Categories and users' choices (SuprSend preferences API), hosted page."),
        (name = "templates", description = "Template preview."),
        (name = "workflows", description = "What a trigger or a track event sends: templates per channel, policy, events (Herald's addition)."),
        (name = "inbox", description = "The in-app inbox: items the inbox channel delivered, marks, counts, and the browser endpoints (subscriber_id instead of a key) with a live stream (Herald's addition)."),
        (name = "callbacks", description = "Later answers of providers about sent messages: Twilio's status callback and the email bounce webhook. No API key: each is verified by a signature keyed with the environment's provider secret (Herald's addition)."),
        (name = "operations", description = "Health, readiness, metrics, this document. No credentials.")
    ),
    components(
        schemas(ChannelName, crate::api::users::EmailAddress, crate::api::users::PhoneNumber, crate::api::users::PushToken, crate::api::users::WebPushSubscription, crate::api::users::SlackIdentity, crate::api::users::MsTeamsIdentity, crate::api::users::DiscordWebhook, crate::api::users::InboxId),
        responses(BadRequest, Unauthorized, UserNotFound, PayloadTooLarge, InternalError, Unavailable, PreconditionFailed)),
    modifiers(&Security),
)]
pub struct ApiDoc;

/// The one error envelope of every failure. `message`, `detail` and `error.message` carry the same
/// text (the SDKs read different ones); `field` is a path into the request
/// (`operations[0].$set.country`, `[1].$user_operations[0]...`, `limit`), or null when no single
/// field is at fault. A refused request changes nothing.
#[derive(ToSchema)]
#[schema(as = Error, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "operations[0].$set.country: 'Atlantis' is not an ISO 3166-1 country code or country name", "detail": "operations[0].$set.country: 'Atlantis' is not an ISO 3166-1 country code or country name", "field": "operations[0].$set.country", "error": {"type": "validation_error", "message": "operations[0].$set.country: 'Atlantis' is not an ISO 3166-1 country code or country name"}}))]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the shape that `ApiError::body` writes
pub struct ErrorBody {
    /// The HTTP status, repeated.
    code: u16,
    #[schema(inline)]
    error_code: ErrorCode,
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: ErrorType,
    /// `<field>: <rule>` for validation errors.
    message: String,
    /// Same as message.
    detail: String,
    /// The request field at fault, or null.
    #[schema(required = true)]
    field: Option<String>,
    #[schema(inline)]
    error: ErrorDetail,
}

/// The error envelope of a call that takes one item or an array: a refused array also carries
/// `records` (empty), because the py SDK reads `records` before the status (wire spec §2.7).
#[derive(ToSchema)]
#[schema(as = BulkError)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the shape that `trigger::refused_bulk` writes
pub struct BulkErrorBody {
    code: u16,
    #[schema(inline)]
    error_code: ErrorCode,
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: ErrorType,
    message: String,
    detail: String,
    #[schema(required = true)]
    field: Option<String>,
    #[schema(inline)]
    error: ErrorDetail,
    /// Present (and empty) when an array was refused as a whole.
    records: Option<Vec<serde_json::Value>>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ErrorCode {
    ValidationError,
    AuthenticationFailed,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    IdempotencyKeyReused,
    PayloadTooLarge,
    MethodNotAllowed,
    ServiceUnavailable,
    TooManyRequests,
    InternalError,
}

/// error_code in CamelCase.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum ErrorType {
    ValidationError,
    AuthenticationError,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    MethodNotAllowed,
    ServiceUnavailable,
    TooManyRequests,
    InternalError,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Same as error_code.
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// Invalid input: `field` names what is at fault, `message` the rule. Nothing changed.
#[derive(ToResponse)]
#[response(
    description = "Invalid input: `field` names what is at fault, `message` the rule. Nothing changed."
)]
#[allow(dead_code)] // documents a response; the body is an [`ErrorBody`]
pub struct BadRequest(ErrorBody);
/// Missing, malformed or unknown credentials, a bad signature, or a missing, unparseable or stale Date header.
#[derive(ToResponse)]
#[response(description = "Missing, malformed or unknown credentials, a bad signature, or a missing, unparseable or stale Date header.", example = json!({"code": 401, "error_code": "authentication_failed", "type": "AuthenticationError", "message": "signature mismatch: check the workspace secret and that the body is sent as signed", "detail": "signature mismatch: check the workspace secret and that the body is sent as signed", "field": null, "error": {"type": "authentication_failed", "message": "signature mismatch: check the workspace secret and that the body is sent as signed"}}))]
#[allow(dead_code)] // documents a response; the body is an [`ErrorBody`]
pub struct Unauthorized(ErrorBody);
/// No user with this distinct_id in the caller's environment.
#[derive(ToResponse)]
#[response(description = "No user with this distinct_id in the caller's environment.", example = json!({"code": 404, "error_code": "not_found", "type": "NotFound", "message": "user [distinct_id: 'ghost'] not found", "detail": "user [distinct_id: 'ghost'] not found", "field": null, "error": {"type": "not_found", "message": "user [distinct_id: 'ghost'] not found"}}))]
#[allow(dead_code)] // documents a response; the body is an [`ErrorBody`]
pub struct UserNotFound(ErrorBody);
/// The request body is over limits.max_body_bytes (default 2 MiB; checked before authentication).
#[derive(ToResponse)]
#[response(description = "The request body is over limits.max_body_bytes (default 2 MiB; checked before authentication).", example = json!({"code": 413, "error_code": "payload_too_large", "type": "PayloadTooLarge", "message": "the request body is larger than the limit of 2097152 bytes", "detail": "the request body is larger than the limit of 2097152 bytes", "field": null, "error": {"type": "payload_too_large", "message": "the request body is larger than the limit of 2097152 bytes"}}))]
#[allow(dead_code)] // documents a response; the body is an [`ErrorBody`]
pub struct PayloadTooLarge(ErrorBody);
/// Herald's fault; the details are in the server log only.
#[derive(ToResponse)]
#[response(description = "Herald's fault; the details are in the server log only.", example = json!({"code": 500, "error_code": "internal_error", "type": "InternalError", "message": "internal error; the server log has the details", "detail": "internal error; the server log has the details", "field": null, "error": {"type": "internal_error", "message": "internal error; the server log has the details"}}))]
#[allow(dead_code)] // documents a response; the body is an [`ErrorBody`]
pub struct InternalError(ErrorBody);
/// The database does not answer; retry.
#[derive(ToResponse)]
#[response(description = "The database does not answer; retry.", example = json!({"code": 503, "error_code": "service_unavailable", "type": "ServiceUnavailable", "message": "the database is unavailable; try again", "detail": "the database is unavailable; try again", "field": null, "error": {"type": "service_unavailable", "message": "the database is unavailable; try again"}}))]
#[allow(dead_code)] // documents a response; the body is an [`ErrorBody`]
pub struct Unavailable(ErrorBody);
/// `If-Match` names another version than the stored one (or the profile does not exist). Nothing changed.
#[derive(ToResponse)]
#[response(description = "`If-Match` names another version than the stored one (or the profile does not exist). Nothing changed.", example = json!({"code": 412, "error_code": "precondition_failed", "type": "PreconditionFailed", "message": "If-Match: the profile is at version 2, not 1: read it again, then retry with its ETag", "detail": "If-Match: the profile is at version 2, not 1: read it again, then retry with its ETag", "field": "If-Match", "error": {"type": "precondition_failed", "message": "If-Match: the profile is at version 2, not 1: read it again, then retry with its ETag"}}))]
#[allow(dead_code)] // documents a response; the body is an [`ErrorBody`]
pub struct PreconditionFailed(ErrorBody);

/// The `{distinct_id}` path segment.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct UserPath {
    /// The user's distinct_id, percent-encoded (`a%40b.com` is `a@b.com`); trimmed, 1-255 bytes of UTF-8, no control characters.
    distinct_id: String,
}

/// The preconditions of a profile edit (see [`super::EditCtx`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct EditPreconditions {
    /// Makes the edit conditional: it applies only if the profile is at this version (the `ETag` of a read or an earlier write: `"3"`, `W/"3"` or `3`). Otherwise 412 and nothing changes; a profile that does not exist is at no version.
    #[param(rename = "If-Match", example = "\"3\"")]
    if_match: Option<String>,
    /// 1-255 characters, e.g. a UUID. An edit sent again with a key already applied in this environment in the last 24 hours is not applied again: the answer is the profile as it is now (404 if it was deleted since). Keys share one store with events' $insert_id.
    #[param(rename = "Idempotency-Key", max_length = 255)]
    idempotency_key: Option<String>,
}

/// Bearer API keys and SuprSend's request signature, required by default; public operations say
/// `"security": []` (see [`finish`]).
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Authorization: Bearer <api_key> (hb_test_... or hb_live_...). The word Bearer and one space, exactly. The key picks the environment."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "SuprSend request signing: Authorization: <workspace_key>:<signature>, with the Date header (signatureDate). signature = base64(HMAC-SHA256(workspace_secret, METHOD + \"\\n\" + md5_hex(body) + \"\\n\" + Content-Type + \"\\n\" + Date + \"\\n\" + request_uri)), where md5_hex is empty for an empty body, Content-Type and Date are the headers exactly as sent (Content-Type empty when absent), and request_uri is the raw path as sent (percent-encoding and trailing slash included) plus ?query when the query is non-empty. Standard base64 with padding. Test vector: secret ws_secret_test, POST /v1/user/u1/merge/, body {\"from_user_id\": \"u_old\"}, Content-Type application/json; charset=utf-8, Date Sat, 28 Nov 2026 15:21:34 GMT -> oNQbB/U57KUMurIO9z2HLc0XAL94E8x1Xb0DQn58LW8=",
            ))),
        );
        components.add_security_scheme(
            "signatureDate",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Date",
                "Required with `signature`: RFC 1123 (Sat, 28 Nov 2026 15:21:34 GMT) or RFC 3339 (2026-11-28T15:21:34.000Z), within auth.max_clock_skew_secs (default 900 s) of the server clock, either way.",
            ))),
        );
        components.add_security_scheme(
            "subscriber",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "subscriber_id",
                "The browser endpoints of the inbox (/inbox/{workspace_key}/{distinct_id}/...): subscriber_id = lower-case hex of HMAC-SHA256 keyed with the environment's inbox secret (GET /v1/inbox/secret/, as UTF-8) over the distinct_id (UTF-8), e.g. printf %s \"$DISTINCT_ID\" | openssl dgst -sha256 -hmac \"$INBOX_SECRET\". GET /v1/user/{distinct_id}/inbox/subscriber/ computes it. Test vector: secret key, distinct_id The quick brown fox jumps over the lazy dog -> f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8.",
            ))),
        );
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("signature", Vec::<String>::new())
                .add("signatureDate", Vec::<String>::new()),
        ]);
    }
}

/// The operations behind the auth layer: the responses any of them may give (credentials
/// refused, a body over the limit, a fault, the database away) unless the operation says more,
/// and their paths as the SDKs send them.
pub fn secured(doc: &mut Document) {
    for (status, name) in [
        ("401", "Unauthorized"),
        ("413", "PayloadTooLarge"),
        ("500", "InternalError"),
        ("503", "Unavailable"),
    ] {
        for op in operations(doc) {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
        }
    }
    // utoipa has no container attribute for it: an operation object names at least one operator.
    if let Some(RefOr::T(Schema::Object(operation))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("Operation"))
    {
        operation.min_properties = Some(1);
    }
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (sdk_path(&path), item))
        .collect();
}

/// The router matches `/v1/user/{id}`; SuprSend's SDKs send `/v1/user/<distinct_id>/`, and the
/// document writes that form (every path works both ways, see [`super::normalize`]).
pub fn sdk_path(route: &str) -> String {
    format!("{}/", route.replace("{id}", "{distinct_id}"))
}

/// The inbox's browser operations: outside the auth layer, authenticated by the user's
/// subscriber_id (the `subscriber` scheme), refused like the others (401, 413, 500, 503), with
/// their paths written as the key holders' are.
pub fn subscriber(doc: &mut Document) {
    for op in operations(doc) {
        op.security = Some(vec![SecurityRequirement::new(
            "subscriber",
            Vec::<String>::new(),
        )]);
    }
    secured(doc);
}

/// The operations outside the auth layer need no credentials.
pub fn public(doc: &mut Document) {
    for op in operations(doc) {
        op.security = Some(Vec::new());
    }
}

fn operations(doc: &mut Document) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
    })
}

/// A channel as preferences and filters name it; the profile key is `$` + name.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ChannelName {
    Email,
    Sms,
    Whatsapp,
    Androidpush,
    Iospush,
    Webpush,
    Slack,
    MsTeams,
    Discord,
    Inbox,
}

/// A string schema with its limits, for wire values that are strings with rules (an email
/// address, a phone number): `string_schema!(/// doc  Name, min 1, max 4096)`.
macro_rules! string_schema {
    ($(#[doc = $doc:literal])* $name:ident $(, min $min:literal)? $(, max $max:literal)? $(, pattern $pattern:literal)?) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let description = [$($doc),*].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    $(.min_length(Some($min)))?
                    $(.max_length(Some($max)))?
                    $(.pattern(Some($pattern)))?
                    .description(Some(description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use string_schema;

fn of_type(kind: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(kind)
}

/// A string or an object (an identity's value).
pub fn string_or_object() -> Schema {
    OneOfBuilder::new()
        .item(of_type(Type::String))
        .item(of_type(Type::Object))
        .build()
        .into()
}

/// A list of strings or one string (`$unset`).
pub fn strings_or_string() -> Schema {
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(of_type(Type::String)))
        .item(of_type(Type::String))
        .build()
        .into()
}

/// A constant (as a one-value enum: utoipa has no `const`): `true` (a flag that is always set when present).
pub fn const_true() -> ObjectBuilder {
    of_type(Type::Boolean).enum_values(Some([true]))
}

/// A constant string (`{"status": "ok"}`).
pub fn const_string(value: &str) -> ObjectBuilder {
    of_type(Type::String).enum_values(Some([value.to_owned()]))
}

/// `POST /v1/user/{distinct_id}/preference/link/` (its handler is in `hosted.rs`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LinkBody {
    #[schema(minimum = 1, maximum = 365, default = 30, required = false)]
    expires_in_days: i64,
}

/// A signed link to a user's preference page.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Link {
    #[schema(format = "uri", required = false)]
    url: String,
    #[schema(required = false)]
    token: String,
    #[schema(format = DateTime, required = false)]
    expires_at: String,
}

/// Checkboxes `category:<slug>`, `channel:<slug>:<channel>` and `restrict:<channel>`; absent
/// means unticked.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PreferenceForm(std::collections::BTreeMap<String, String>);

/// `{"status": <one constant>}`, the body of the health and readiness answers.
macro_rules! status_reply {
    ($name:ident, $schema:ident, $status:literal) => {
        #[derive(ToSchema)]
        #[allow(dead_code)]
        pub struct $name {
            #[schema(schema_with = $schema, required = false)]
            status: String,
        }

        fn $schema() -> ObjectBuilder {
            const_string($status)
        }
    };
}
status_reply!(Healthy, healthy, "ok");
status_reply!(Ready, ready, "ready");
status_reply!(NotReady, not_ready, "unavailable");
