//! The `herald` binary's library: configuration, CLI commands, the HTTP API and the wiring of
//! concrete adapters. This is the only crate that sees the store and the providers together.

pub mod admin;
pub mod api;
pub mod cli;
pub mod config;
pub mod credential_cache;
pub mod dashboard;
pub mod import;
pub mod inbox;
pub mod keys;
pub mod metrics;
pub mod ndjson;
pub mod providers;
pub mod seed;
pub mod tasks;
pub mod worker;

use config::{Config, LogFormat};
use herald_core::store::Store;
use herald_store::StoreOptions;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// What every handler can reach.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub metrics: Arc<metrics::Metrics>,
    /// This node's copy of the preference-link keys (see [`herald_core::service::links`]).
    pub links: Arc<herald_core::service::links::LinkKeys>,
    /// Where dispatch finds providers (see [`providers`]).
    pub providers: Arc<dyn herald_core::delivery::Directory>,
    /// This node's live inbox streams (see [`inbox`]).
    pub inbox: Arc<inbox::Hub>,
    /// This node's credentials, trusted for `auth.credential_cache_ms` (see [`credential_cache`]).
    pub credentials: Arc<credential_cache::CredentialCache>,
}

/// The progress bar of CLI work over profiles (seed, copy, export).
pub fn profiles_bar(total: u64) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} profiles ({per_sec}, ETA {eta})",
        )
        .expect("a valid template"),
    )
}

/// Opens the database the configuration names, migrating it if the configuration says so.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    open_store_with(config, config.store.migrate_on_start).await
}

pub async fn open_store_with(config: &Config, migrate: bool) -> Result<Arc<dyn Store>, String> {
    let options = StoreOptions {
        pool_size: config.store.pool_size,
        migrate,
        sqlite_synchronous: config.store.sqlite_synchronous,
        statement_timeout: std::time::Duration::from_millis(config.store.statement_timeout_ms),
    };
    herald_store::connect(&config.database_url, &options)
        .await
        .map_err(|e| e.to_string())
}

/// Serves the API on `listener` until ctrl-c / SIGTERM. Tests call this with a port-0 listener.
pub async fn run(config: Config, listener: TcpListener) -> Result<(), String> {
    let store = open_store(&config).await?;
    declare(store.as_ref(), &config).await?;
    let directory = providers::Stored::new(store.clone(), &config.outbound)
        .map_err(|e| format!("configuration outbound.{e}"))?
        .calling_back_to(&config.public_url);
    if let Some(path) = keys::ensure_initial(store.as_ref(), &config.data_dir).await? {
        tracing::info!(path = %path.display(), "first start: created test and live keys; they are in this file (readable by you only)");
    }
    serve(
        App {
            store,
            credentials: Arc::new(credential_cache::CredentialCache::for_config(&config)),
            config: Arc::new(config),
            metrics: Arc::default(),
            links: Arc::default(),
            providers: Arc::new(directory),
            inbox: Arc::default(),
        },
        listener,
    )
    .await
}

/// Creates or replaces what the configuration file declares: categories, then the workflows
/// that may name them.
pub async fn declare(store: &dyn Store, config: &Config) -> Result<(), String> {
    declare_categories(store, config).await?;
    declare_workflows(store, config).await?;
    declare_providers(store, config).await
}

/// Puts the provider configurations the configuration file declares (`channel`, optional `env`,
/// and the body of `PUT /v1/provider/{channel}/`), checked as the API checks them.
pub async fn declare_providers(store: &dyn Store, config: &Config) -> Result<(), String> {
    let http = herald_channels::Http::new(&config.outbound)
        .map_err(|e| format!("configuration outbound.{e}"))?;
    for (i, raw) in config.providers.iter().enumerate() {
        let (mut body, envs) = declared_envs("providers", i, raw)?;
        let channel = match body.as_object_mut().and_then(|o| o.remove("channel")) {
            Some(serde_json::Value::String(name)) => providers::channel_named(&name),
            _ => Err(herald_core::Invalid::new(
                "channel",
                "is required: the channel it sends on",
            )),
        }
        .map_err(|e| format!("configuration providers[{i}].{e}"))?;
        for env in envs {
            providers::put(store, &http, operator(env).scope, channel, &body)
                .await
                .map_err(|e| format!("configuration providers[{i}] ({env}): {e}"))?;
        }
    }
    Ok(())
}

/// Creates or overwrites the categories the configuration file declares.
pub async fn declare_categories(store: &dyn Store, config: &Config) -> Result<(), String> {
    use herald_core::service;
    for (i, raw) in config.categories.iter().enumerate() {
        let (body, envs) = declared_envs("categories", i, raw)?;
        let category = api::preferences::parse_category(&body)
            .map_err(|e| format!("configuration categories[{i}]: {e}"))?;
        for env in envs {
            service::preferences::declare_categories(
                store,
                &operator(env),
                std::slice::from_ref(&category),
            )
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Creates or replaces the workflows the configuration file declares (after the categories,
/// which they may name).
pub async fn declare_workflows(store: &dyn Store, config: &Config) -> Result<(), String> {
    use herald_core::service;
    for (i, raw) in config.workflows.iter().enumerate() {
        let (body, envs) = declared_envs("workflows", i, raw)?;
        let input = api::workflows::parse_input(&body)
            .map_err(|e| format!("configuration workflows[{i}]: {e}"))?;
        for env in envs {
            service::workflows::declare(store, &operator(env), input.clone())
                .await
                .map_err(|e| format!("configuration workflows[{i}] ({env}): {e}"))?;
        }
    }
    Ok(())
}

/// A declaration of the configuration file without its `env`, and the environments it names
/// (`env = "test"` or `"live"`; both when absent).
fn declared_envs(
    section: &str,
    i: usize,
    raw: &serde_json::Value,
) -> Result<(serde_json::Value, Vec<herald_core::Env>), String> {
    use herald_core::Env;
    let mut body = raw.clone();
    let envs = match body.as_object_mut().and_then(|o| o.remove("env")) {
        None => vec![Env::Test, Env::Live],
        Some(serde_json::Value::String(e)) => vec![e
            .parse::<Env>()
            .map_err(|err| format!("{section}[{i}].env: {err}"))?],
        Some(other) => return Err(format!("{section}[{i}].env: {other} is not test or live")),
    };
    Ok((body, envs))
}

/// The operator's context in `env`, for what the configuration file declares.
fn operator(env: herald_core::Env) -> herald_core::service::Ctx {
    use herald_core::{history::Actor, EnvScope};
    herald_core::service::Ctx::new(EnvScope::operator(env), Actor::cli(), chrono::Utc::now())
}

/// Serves HTTP/1.1 on `listener` until ctrl-c / SIGTERM, then lets requests in flight finish.
pub async fn serve(app: App, listener: TcpListener) -> Result<(), String> {
    serve_until(app, listener, shutdown_signal()).await
}

/// Serves until `shutdown` completes: then stops accepting, lets requests in flight finish, and
/// only then cancels the background tasks and waits for them.
/// Served with hyper directly (not `axum::serve`) because only hyper's own builder can bound how
/// long a client may take to send its request head (`server.header_read_timeout_secs`).
pub async fn serve_until(
    app: App,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let background = start_tasks(&app);
    let limits = app.config.server.clone();
    let streams = app.inbox.clone();
    let router = api::router(app);
    let request_timeout = std::time::Duration::from_secs(limits.request_timeout_secs);
    // One service per connection, so each request carries its peer's address (the dashboard
    // throttles logins per address).
    let service_for = move |peer: std::net::SocketAddr| {
        let router = router.clone();
        tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let method = metrics::method_label(req.method());
            let started = std::time::Instant::now();
            let mut req = api::normalize(req.map(axum::body::Body::new));
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let handled = router.clone().oneshot(req);
            async move {
                use axum::response::IntoResponse;
                match tokio::time::timeout(request_timeout, handled).await {
                    Ok(response) => response,
                    Err(_) => {
                        let response = api::error::ApiError::timeout(request_timeout.as_secs())
                            .into_response();
                        // The router's middleware was dropped with the request, so the 5xx is
                        // logged here; the route is not known outside the router.
                        let ms = started.elapsed().as_secs_f64() * 1000.0;
                        let status = response.status().as_u16();
                        api::error::log_failure(method, "unknown", status, ms, &response);
                        Ok(response)
                    }
                }
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(
            limits.header_read_timeout_secs,
        ))
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    tracing::info!(%addr, "herald listening");
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(service_for(peer));
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: finishing requests in flight");
    drop(listener);
    // Live inbox streams never finish on their own: end them, so the rest can.
    streams.close();
    graceful.shutdown().await;
    tracing::info!("requests finished; stopping background tasks");
    background.shutdown().await;
    Ok(())
}

/// The background tasks the configuration enables.
fn start_tasks(app: &App) -> tasks::Supervisor {
    let mut supervisor = tasks::Supervisor::new();
    let store = app.store.clone();
    supervisor.start(
        "purge_idempotency_keys",
        app.config.tasks.purge_idempotency_keys,
        |cancel| forget_old_idempotency_keys(store, cancel),
    );
    let dispatcher = app.clone();
    supervisor.start("dispatch", app.config.tasks.dispatch, |cancel| {
        worker::run(dispatcher, cancel)
    });
    supervisor
}

/// How long an event's `$insert_id` is remembered: a client retrying within this window is
/// applied once. SuprSend documents 24 hours for its idempotency keys; Herald keeps the same.
pub const IDEMPOTENCY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Every node purges expired idempotency keys every ten minutes (unless `tasks.purge_idempotency_keys`
/// is off); concurrent purges are harmless. A purge under way finishes before the task stops.
async fn forget_old_idempotency_keys(
    store: Arc<dyn Store>,
    cancel: tasks::CancellationToken,
) -> Result<(), String> {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(()),
            _ = every.tick() => {}
        }
        match store
            .purge_applied_keys(chrono::Utc::now() - IDEMPOTENCY_WINDOW)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "forgot expired idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired idempotency keys"),
        }
        // Dashboard sessions past their expiry, and login-throttle windows long over.
        let now = chrono::Utc::now();
        match store.purge_sessions(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "forgot expired dashboard sessions"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired dashboard sessions"),
        }
        match store.purge_login_attempts(now - IDEMPOTENCY_WINDOW).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "forgot old login attempts"),
            Err(e) => tracing::warn!(error = %e, "could not purge old login attempts"),
        }
        // Triggers' `$idempotency_key`s share the window.
        match store
            .purge_trigger_keys(chrono::Utc::now() - IDEMPOTENCY_WINDOW)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "forgot expired trigger keys"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired trigger keys"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Logs go to stderr, as text or JSON. Secrets are never passed to the logger.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_store::testing::Scratch;

    /// A request in flight when shutdown begins is answered; then the server (and its background
    /// tasks) stop and `serve_until` returns.
    #[tokio::test]
    async fn shutdown_finishes_requests_then_stops_the_tasks() {
        let scratch = Scratch::sqlite();
        let mut config = Config::load(None, |_| None).expect("default config");
        config.database_url = scratch.url.clone();
        let app = App {
            store: open_store(&config).await.expect("a scratch store"),
            config: Arc::new(config),
            metrics: Arc::default(),
            links: Arc::default(),
            providers: Arc::new(crate::providers::Unconfigured),
            inbox: Arc::default(),
            credentials: Arc::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_until(app, listener, async {
            let _ = stopped.await;
        }));
        // A request whose body is still arriving when shutdown begins.
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(b"POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{")
            .await
            .expect("send the head");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stop.send(()).expect("the server waits for the signal");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        conn.write_all(b"}").await.expect("send the rest");
        let mut reply = String::new();
        conn.read_to_string(&mut reply).await.expect("a reply");
        assert!(reply.starts_with("HTTP/1.1 "), "answered: {reply}");
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the server stops")
            .expect("no panic")
            .expect("no error");
    }

    /// An open live inbox stream does not hold shutdown up: the hub ends it, then the server
    /// stops.
    #[tokio::test]
    async fn shutdown_ends_open_inbox_streams() {
        use herald_core::inbox;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let scratch = Scratch::sqlite();
        let mut config = Config::load(None, |_| None).expect("default config");
        config.database_url = scratch.url.clone();
        config.tasks.dispatch = false;
        let store = open_store(&config).await.expect("a scratch store");
        let keys = keys::create(store.as_ref(), herald_core::Env::Test)
            .await
            .expect("keys");
        let secret = store
            .server_secret(&inbox::secret_name(herald_core::Env::Test), "s3cret")
            .await
            .expect("the inbox secret");
        let ada = herald_core::DistinctId::parse("ada").unwrap();
        let app = App {
            store,
            config: Arc::new(config),
            metrics: Arc::default(),
            links: Arc::default(),
            providers: Arc::new(crate::providers::Unconfigured),
            inbox: Arc::default(),
            credentials: Arc::default(),
        };
        let hub = app.inbox.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_until(app, listener, async {
            let _ = stopped.await;
        }));
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET /inbox/{}/ada/stream/?subscriber_id={} HTTP/1.1\r\nhost: x\r\n\r\n",
            keys.credentials.workspace_key,
            inbox::subscriber_id(&secret, &ada)
        );
        conn.write_all(request.as_bytes()).await.expect("send");
        let mut head = vec![0u8; 4096];
        let n = conn.read(&mut head).await.expect("the stream answers");
        let head = String::from_utf8_lossy(&head[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(hub.streams(), 1);
        stop.send(()).expect("the server waits for the signal");
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the server stops although a stream was open")
            .expect("no panic")
            .expect("no error");
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
        assert_eq!(hub.streams(), 0, "the stream was ended");
    }
}
