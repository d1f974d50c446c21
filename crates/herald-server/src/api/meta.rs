//! Operational endpoints: health, readiness, metrics and the OpenAPI document.

use crate::App;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::{Env, EnvScope};
use serde_json::json;
use std::time::Instant;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

fn readiness_probe() -> herald_core::DistinctId {
    herald_core::DistinctId::parse("herald-readiness-probe").expect("a valid id")
}

/// Ready when the database answers.
pub async fn readyz(State(app): State<App>) -> Response {
    match app
        .store
        .get_profile(EnvScope::new(Env::Test), &readiness_probe())
        .await
    {
        Ok(_) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

pub async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

/// Counts requests and their latency per route and status.
pub async fn record_metrics(State(app): State<App>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let (status, elapsed) = (response.status().as_u16(), started.elapsed());
    app.metrics
        .observe_request(method.as_str(), &route, status, elapsed);
    // The route template, never the path: ids and tokens stay out of the log.
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, %route, status, ms, "request failed");
    } else if status >= 400 {
        tracing::info!(%method, %route, status, ms, "request refused");
    } else {
        tracing::debug!(%method, %route, status, ms, "request");
    }
    response
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// `(method, path)` of every route registered in `router()`, read from its source so that a
    /// route added without documentation fails this test.
    fn routes() -> Vec<(String, String)> {
        let source = include_str!("mod.rs");
        let start = source.find("pub fn router").expect("router() in mod.rs");
        let end = source[start..].find(".fallback(").expect("fallback") + start;
        let mut routes = Vec::new();
        for chunk in source[start..end].split(".route(").skip(1) {
            let path = chunk.split('"').nth(1).expect("a path literal");
            for method in ["get", "post", "patch", "delete"] {
                let called = chunk
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| i == 0 || !chunk.as_bytes()[i - 1].is_ascii_alphanumeric());
                if called {
                    routes.push((method.to_owned(), path.replace("{id}", "{distinct_id}")));
                }
            }
        }
        routes
    }

    #[test]
    fn openapi_documents_every_route() {
        let doc: Value = serde_json::from_str(include_str!("openapi.json")).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let routes = routes();
        assert!(routes.len() >= 20, "found only {routes:?}");
        for (method, path) in routes {
            let documented = [format!("{path}/"), path.clone()]
                .iter()
                .any(|p| doc["paths"][p][method.as_str()].is_object());
            assert!(documented, "openapi.json lacks {method} {path}");
        }
    }
}
