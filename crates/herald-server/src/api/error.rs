//! The one error envelope. Every failure, from auth to storage, leaves Herald in this shape, which
//! all SuprSend SDKs can read (`message` for py and node, `error.message` for events, `detail` for go):
//! `{"code", "error_code", "type", "message", "detail", "field", "error": {"type", "message"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::service;
use herald_core::store::StoreError;
use herald_core::Invalid;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(e: Invalid) -> Self {
        let field = (!e.field.is_empty()).then(|| e.field.clone());
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "validation_error",
            message: e.to_string(),
            field,
        }
    }

    pub fn bad_request(field: &str, rule: impl std::fmt::Display) -> Self {
        Self::invalid(Invalid::new(field, rule.to_string()))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_failed", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// The request took longer than `server.request_timeout_secs` (a slow body or a slow store).
    pub fn timeout(secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("the request took longer than the server's limit of {secs}s; retry it"),
        )
    }

    /// A fault of Herald's own: the detail goes to the log, the caller gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the server log has the details",
        )
    }

    fn type_name(&self) -> &'static str {
        match self.code {
            "validation_error" | "idempotency_key_reused" => "ValidationError",
            "authentication_failed" => "AuthenticationError",
            "not_found" => "NotFound",
            "conflict" => "Conflict",
            "precondition_failed" => "PreconditionFailed",
            "payload_too_large" => "PayloadTooLarge",
            "method_not_allowed" => "MethodNotAllowed",
            "service_unavailable" => "ServiceUnavailable",
            _ => "InternalError",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "code": self.status.as_u16(),
            "error_code": self.code,
            "type": self.type_name(),
            "message": self.message,
            "detail": self.message,
            "field": self.field,
            "error": { "type": self.code, "message": self.message },
        })
    }
}

/// Seconds a client is asked to wait before retrying a 503 (a full write queue, a query over its
/// time limit, the database away): short, since these clear as soon as the load drops.
pub const RETRY_AFTER_SECS: u32 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> Self {
        match e {
            service::Error::Invalid(invalid) => ApiError::invalid(invalid),
            e @ (service::Error::NotFound { .. } | service::Error::Missing { .. }) => {
                ApiError::not_found(e.to_string())
            }
            e @ service::Error::Stale { .. } => ApiError {
                status: StatusCode::PRECONDITION_FAILED,
                code: "precondition_failed",
                message: format!("If-Match: {e}"),
                field: Some("If-Match".into()),
            },
            service::Error::Conflict(invalid) => ApiError {
                status: StatusCode::CONFLICT,
                code: "conflict",
                ..ApiError::invalid(invalid)
            },
            e @ service::Error::KeyReused => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "idempotency_key_reused",
                message: e.to_string(),
                field: Some("Idempotency-Key".into()),
            },
            service::Error::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable { .. } => {
                tracing::error!(error = %e, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "the database is unavailable; try again",
                )
            }
            StoreError::Internal { .. } => ApiError::internal(e.to_string()),
            StoreError::Conflict(detail) => {
                tracing::warn!(error = %detail, "store write conflict");
                ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("the write conflicted with another ({detail}); try again"),
                )
            }
            StoreError::Busy(detail) => {
                tracing::warn!(error = %detail, "store busy");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    format!("the database is busy ({detail}); try again shortly"),
                )
            }
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::invalid(e)
    }
}
