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
use std::error::Error as StdError;
use std::sync::Arc;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// What went wrong inside Herald, for a 5xx: logged once by [`log_failure`], never sent.
    pub cause: Option<Cause>,
}

/// The cause of a 5xx, carried in the response's extensions from [`ApiError::into_response`] to
/// the request-logging middleware, which logs it once with the route.
#[derive(Debug, Clone)]
pub struct Cause(pub Arc<dyn StdError + Send + Sync>);

impl Cause {
    /// The error and its sources, outermost first: `a: b: c`.
    pub fn chain(&self) -> String {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            cause: None,
        }
    }

    /// Attaches what went wrong inside Herald (for the log, not the caller).
    pub fn caused_by(self, cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            cause: Some(Cause(Arc::from(cause.into()))),
            ..self
        }
    }

    pub fn invalid(e: Invalid) -> Self {
        let field = (!e.field.is_empty()).then(|| e.field.clone());
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "validation_error",
            message: e.to_string(),
            field,
            cause: None,
        }
    }

    pub fn bad_request(field: &str, rule: impl std::fmt::Display) -> Self {
        Self::invalid(Invalid::new(field, rule.to_string()))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_failed", message)
    }

    /// A callback whose signature does not verify (403: the credentials are the provider's, not
    /// an API key).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// The request took longer than `server.request_timeout_secs` (a slow body or a slow store).
    pub fn timeout(secs: u64) -> Self {
        let message =
            format!("the request took longer than the server's limit of {secs}s; retry it");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message.clone(),
        )
        .caused_by(message)
    }

    /// A fault of Herald's own: the cause goes to the log (once, by [`log_failure`]), the caller
    /// gets a generic message.
    pub fn internal(cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the server log has the details",
        )
        .caused_by(cause)
    }

    fn type_name(&self) -> &'static str {
        match self.code {
            "validation_error" | "idempotency_key_reused" => "ValidationError",
            "authentication_failed" => "AuthenticationError",
            "forbidden" => "Forbidden",
            "not_found" => "NotFound",
            "conflict" => "Conflict",
            "precondition_failed" => "PreconditionFailed",
            "payload_too_large" => "PayloadTooLarge",
            "method_not_allowed" => "MethodNotAllowed",
            "service_unavailable" => "ServiceUnavailable",
            "too_many_requests" => "TooManyRequests",
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
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}

/// Logs a failed request (5xx) as one error event: method, route template (never the path, so
/// ids and tokens stay out), status, time taken and the cause chain. Called once per request by
/// the request-logging middleware (`meta::record_metrics`); nothing else logs a 5xx. Bodies and
/// profile data are never logged; causes are Herald's own error texts.
pub fn log_failure(method: &str, route: &str, status: u16, ms: f64, response: &Response) {
    let cause = response
        .extensions()
        .get::<Cause>()
        .map_or_else(|| "no cause recorded".to_owned(), Cause::chain);
    tracing::error!(%method, %route, status, ms, error = %cause, "request failed");
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
                cause: None,
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
                cause: None,
            },
            service::Error::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let refusal = match &e {
            StoreError::Unavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the database is unavailable; try again",
            ),
            StoreError::Internal { .. } => return ApiError::internal(e),
            StoreError::Conflict(detail) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("the write conflicted with another ({detail}); try again"),
            ),
            StoreError::Busy(detail) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                format!("the database is busy ({detail}); try again shortly"),
            ),
        };
        refusal.caused_by(e)
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::invalid(e)
    }
}

#[cfg(test)]
mod tests {
    //! A 5xx is logged exactly once, with its cause, by the request-logging middleware; a 4xx is
    //! not logged as an error.

    use super::*;
    use crate::config::Config;
    use crate::App;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use herald_store::testing::Scratch;
    use std::sync::Mutex;
    use tower::ServiceExt;

    /// A log sink the test reads back: every event as one JSON line.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("the log buffer")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn errors(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().expect("the log buffer").clone();
            String::from_utf8(bytes)
                .expect("UTF-8 logs")
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON log line"))
                .filter(|e| e["level"] == "ERROR")
                .collect()
        }
    }

    async fn send(app: &App, path: &str) -> StatusCode {
        let router = Router::new()
            .route(
                "/boom/{id}",
                get(|| async {
                    Err::<(), _>(ApiError::from(StoreError::internal("disk on fire")))
                }),
            )
            .route(
                "/busy",
                get(|| async {
                    Err::<(), _>(ApiError::from(StoreError::Busy("write queue full".into())))
                }),
            )
            .route(
                "/refused",
                get(|| async { Err::<(), _>(ApiError::bad_request("name", "is too long")) }),
            )
            .layer(axum::middleware::from_fn_with_state(
                app.clone(),
                crate::api::meta::record_metrics,
            ))
            .with_state(app.clone());
        let request = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("a request");
        router.oneshot(request).await.expect("a response").status()
    }

    #[tokio::test]
    async fn a_5xx_is_logged_once_with_its_cause_and_a_4xx_not_as_an_error() {
        let scratch = Scratch::sqlite();
        let mut config = Config::load(None, |_| None).expect("default config");
        config.database_url = scratch.url.clone();
        let app = App {
            store: crate::open_store(&config).await.expect("a scratch store"),
            config: Arc::new(config),
            metrics: Arc::default(),
            links: Arc::default(),
            providers: Arc::new(crate::providers::Unconfigured),
            inbox: Arc::default(),
            credentials: Arc::default(),
        };
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let status = send(&app, "/boom/secret-user-id").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let errors = log.errors();
        assert_eq!(errors.len(), 1, "one error event per 5xx: {errors:?}");
        let fields = &errors[0]["fields"];
        assert_eq!(fields["method"], "GET");
        assert_eq!(fields["route"], "/boom/{id}");
        assert_eq!(fields["status"], 500);
        assert_eq!(fields["error"], "database error: disk on fire");
        assert!(
            !errors[0].to_string().contains("secret-user-id"),
            "the path (and the ids in it) stays out of the log: {errors:?}"
        );

        assert_eq!(send(&app, "/busy").await, StatusCode::SERVICE_UNAVAILABLE);
        let errors = log.errors();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            errors[1]["fields"]["error"],
            "the database is busy: write queue full"
        );

        assert_eq!(send(&app, "/refused").await, StatusCode::BAD_REQUEST);
        assert_eq!(log.errors().len(), 2, "a 4xx is not an error of Herald's");
    }
}
