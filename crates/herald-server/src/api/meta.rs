//! Operational endpoints: health, readiness, metrics and the OpenAPI document.

use crate::App;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use herald_core::service::profiles;
use herald_core::{Env, EnvScope};
use serde_json::json;
use std::time::Instant;
use utoipa_axum::{router::OpenApiRouter, routes};

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness",
    responses(
        (status = 200, description = "The process runs.", body = crate::api::doc::Healthy, example = json!({"status": "ok"}))
    )
)]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

fn readiness_probe() -> herald_core::DistinctId {
    herald_core::DistinctId::parse("herald-readiness-probe").expect("a valid id")
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness: the database answers",
    responses(
        (status = 200, description = "Ready.", body = crate::api::doc::Ready, example = json!({"status": "ready"})),
        (status = 503, description = "The database does not answer.", body = crate::api::doc::NotReady, example = json!({"status": "unavailable"}))
    )
)]
/// Ready when the database answers a read and the store can write (its writer is running).
pub async fn readyz(State(app): State<App>) -> Response {
    let probe = match app.store.ready().await {
        Ok(()) => app
            .store
            .get_profile(EnvScope::operator(Env::Test), &readiness_probe())
            .await
            .map(drop),
        Err(e) => Err(e),
    };
    match probe {
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

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "herald_http_requests_total{method,route,status} and herald_http_request_duration_seconds (histogram); route is the route template, never the path. Read at each scrape: herald_store_up (1 if the database answered) and herald_profiles{env} (from counters).",
    responses(
        (status = 200, description = "Text exposition format 0.0.4.", body = String, content_type = "text/plain")
    )
)]
pub async fn metrics(State(app): State<App>) -> Response {
    let mut text = app.metrics.render();
    text.push_str(&store_metrics(&app).await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Profiles per environment (the stores' own counters, not a scan) and whether the database
/// answers, read at each scrape.
async fn store_metrics(app: &App) -> String {
    let counts = profiles::counts_per_env(app.store.as_ref()).await.ok();
    let mut out = String::from(
        "# HELP herald_store_up Whether the database answered this scrape.\n\
         # TYPE herald_store_up gauge\n",
    );
    out.push_str(&format!("herald_store_up {}\n", u8::from(counts.is_some())));
    if let Some(counts) = counts {
        out.push_str("# HELP herald_profiles Profiles stored, per environment.\n");
        out.push_str("# TYPE herald_profiles gauge\n");
        for (env, n) in counts {
            out.push_str(&format!("herald_profiles{{env=\"{env}\"}} {n}\n"));
        }
    }
    out
}

/// The OpenAPI document, generated once when the router is built.
#[derive(Clone)]
pub struct OpenApiJson(pub std::sync::Arc<str>);

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document",
    responses(
        (status = 200, description = "OpenAPI 3.1.", body = Object)
    )
)]
pub async fn openapi(Extension(OpenApiJson(doc)): Extension<OpenApiJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

/// Counts requests and their latency per route and status.
pub async fn record_metrics(State(app): State<App>, request: Request, next: Next) -> Response {
    // The matched path is shared (an `Arc`): cloning it copies no text.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    // Fixed labels only: the route template (or `unmatched`) and a known method (or `other`).
    let method = crate::metrics::method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let (status, elapsed) = (response.status().as_u16(), started.elapsed());
    app.metrics.observe_request(method, route, status, elapsed);
    // The route template, never the path: ids and tokens stay out of the log.
    let ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        super::error::log_failure(method, route, status, ms, &response);
    } else if status >= 400 {
        tracing::info!(%method, %route, status, ms, "request refused");
    } else {
        tracing::debug!(%method, %route, status, ms, "request");
    }
    response
}

/// The operational endpoints, public, with their documentation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

#[cfg(test)]
mod tests {
    //! Keeps the generated document honest: every route the router serves is documented, with the
    //! right authentication, and every documented operation is really served.

    use crate::api::{documented_routes, normalize, router};
    use crate::config::Config;
    use crate::App;
    use axum::body::{to_bytes, Body};
    use axum::http::{Request, StatusCode};
    use herald_store::testing::Scratch;
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use tower::ServiceExt;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// `(method, path)` of an operation, the path as `router()` writes it.
    type Route = (String, String);

    fn doc() -> Value {
        serde_json::to_value(documented_routes().2).expect("the document serializes")
    }

    /// Every path the axum router knows, read from its debug form (axum has no route listing):
    /// the routers `documented_routes()` builds must hold no path the document lacks.
    fn served_paths(router: &axum::Router<App>) -> BTreeSet<String> {
        let text = format!("{router:?}");
        text.split('"')
            .filter(|s| s.starts_with('/') && !s.contains(' '))
            // The two catch-all routes axum adds for the fallback.
            .filter(|s| *s != "/" && !s.contains("__private__axum"))
            .map(str::to_owned)
            .collect()
    }

    /// The documented operations, keyed like [`registered`] (trailing slash dropped,
    /// `{distinct_id}` written `{id}` as the router names it), and whether they need credentials
    /// (public ones say `"security": []`).
    fn documented(doc: &Value) -> BTreeMap<Route, bool> {
        let mut ops = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let route = path.trim_end_matches('/').replace("{distinct_id}", "{id}");
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    let public = op["security"].as_array().is_some_and(Vec::is_empty);
                    ops.insert((method.to_owned(), route.clone()), !public);
                }
            }
        }
        ops
    }

    #[test]
    fn every_served_path_is_documented() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<String> = documented(&doc)
            .into_keys()
            .map(|(_, route)| route)
            .collect();
        let (authenticated, public, _) = documented_routes();
        let served: BTreeSet<String> = served_paths(&authenticated)
            .into_iter()
            .chain(served_paths(&public))
            .collect();
        assert!(served.len() >= 20, "read only {served:?} from the router");
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "the document lacks {undocumented:?}"
        );
        assert!(unrouted.is_empty(), "the router lacks {unrouted:?}");
    }

    /// Follows `#/...` references within the document.
    fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("a local reference");
            v = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{r} does not resolve"));
        }
        v
    }

    fn each_ref(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => each_ref(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| each_ref(x, out)),
            _ => {}
        }
    }

    #[test]
    fn openapi_operations_are_complete() {
        let doc = doc();
        let mut refs = Vec::new();
        each_ref(&doc, &mut refs);
        for r in &refs {
            resolve(&doc, &serde_json::json!({ "$ref": r }));
        }
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let declared = |op: &Value| -> BTreeSet<String> {
                [&item["parameters"], &op["parameters"]]
                    .into_iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .map(|p| resolve(&doc, p))
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().expect("a name").to_owned())
                    .collect()
            };
            let in_path: BTreeSet<String> = path
                .split('{')
                .skip(1)
                .map(|s| s.split('}').next().expect("a closing brace").to_owned())
                .collect();
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let at = format!("{method} {path}");
                assert!(op["summary"].is_string(), "{at}: no summary");
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{at}: no operationId"));
                assert!(
                    ids.insert(id.to_owned()),
                    "{at}: operationId {id} is used twice"
                );
                assert_eq!(declared(op), in_path, "{at}: path parameters");
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses
                        .keys()
                        .any(|s| s.starts_with('2') || s.starts_with('3')),
                    "{at}: no success response"
                );
                let public = op["security"].as_array().is_some_and(Vec::is_empty);
                if !public {
                    for status in ["401", "413", "500", "503"] {
                        assert!(responses.contains_key(status), "{at}: no {status} response");
                    }
                }
                for (status, response) in responses {
                    let response = resolve(&doc, response);
                    assert!(
                        response["description"].is_string(),
                        "{at} {status}: no description"
                    );
                    let json_error = &response["content"]["application/json"]["schema"];
                    if !public && status.starts_with(['4', '5']) {
                        // The envelope, or for calls that take arrays the envelope that may
                        // also carry an empty `records` (wire spec §2.7).
                        assert!(
                            [
                                "#/components/schemas/Error",
                                "#/components/schemas/BulkError"
                            ]
                            .contains(&json_error["$ref"].as_str().unwrap_or_default()),
                            "{at} {status}: errors use the one envelope, not {}",
                            json_error["$ref"]
                        );
                    }
                }
            }
        }
    }

    fn probe_path(route: &str) -> String {
        route
            .replace("{id}", "probe-user")
            .replace("{key}", "plan")
            .replace("{slug}", "news")
            .replace("{category}", "news")
            .replace("{token}", "not-a-token")
            .replace("{workspace_key}", "hk_probe")
            .replace("{message_id}", "msg_probe")
    }

    /// Sends every documented operation, as documented and with the other trailing-slash form, to
    /// the real router without credentials: each must reach a route (not the 404/405 fallbacks),
    /// and the ones documented as needing credentials must ask for them.
    #[tokio::test]
    async fn every_documented_operation_is_served() {
        let scratch = Scratch::sqlite();
        let mut config = Config::load(None, |_| None).expect("default config");
        config.database_url = scratch.url.clone();
        let store = crate::open_store(&config).await.expect("a scratch store");
        let app = App {
            store,
            config: Arc::new(config),
            metrics: Arc::default(),
            links: Arc::default(),
            providers: Arc::new(crate::providers::Unconfigured),
            inbox: Arc::default(),
            credentials: Arc::default(),
        };
        let doc = doc();
        let ops = documented(&doc);
        // A method the document does not give a path is refused there (405), so no served
        // (method, path) is undocumented.
        for (_, route) in ops.keys() {
            let path = probe_path(route);
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                if ops.contains_key(&(method.to_lowercase(), route.clone())) {
                    continue;
                }
                let request = Request::builder()
                    .method(method)
                    .uri(&path)
                    .body(Body::empty())
                    .expect("a request");
                let response = router(app.clone())
                    .oneshot(normalize(request))
                    .await
                    .expect("a response");
                assert_eq!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
            }
        }
        for ((method, route), needs_key) in ops {
            let path = probe_path(&route);
            for target in [format!("{path}/"), path.clone()] {
                let request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&target)
                    .body(Body::empty())
                    .expect("a request");
                let response = router(app.clone())
                    .oneshot(normalize(request))
                    .await
                    .expect("a response");
                let status = response.status();
                let body = to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("a body");
                let text = String::from_utf8_lossy(&body);
                let at = format!("{method} {target}");
                let fallback = serde_json::from_slice::<Value>(&body)
                    .is_ok_and(|v| v["message"] == "no such endpoint");
                assert!(!fallback, "{at}: the router has no such route");
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{at}: {text}");
                if needs_key {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{at}: {text}");
                } else {
                    assert_ne!(status, StatusCode::UNAUTHORIZED, "{at}: {text}");
                }
            }
        }
    }
}
