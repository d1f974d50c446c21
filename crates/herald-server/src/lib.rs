//! The `herald` binary's library: configuration, CLI commands, the HTTP API and the wiring of
//! concrete adapters. This is the only crate that sees the store and the providers together.

pub mod api;
pub mod cli;
pub mod config;
pub mod keys;
pub mod metrics;
pub mod seed;

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
}

/// Opens the database the configuration names, migrating it if the configuration says so.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    open_store_with(config, config.store.migrate_on_start).await
}

pub async fn open_store_with(config: &Config, migrate: bool) -> Result<Arc<dyn Store>, String> {
    let options = StoreOptions {
        pool_size: config.store.pool_size,
        migrate,
    };
    herald_store::connect(&config.database_url, &options)
        .await
        .map_err(|e| e.to_string())
}

/// Serves the API on `listener` until ctrl-c / SIGTERM. Tests call this with a port-0 listener.
pub async fn run(config: Config, listener: TcpListener) -> Result<(), String> {
    let store = open_store(&config).await?;
    if let Some(path) = keys::ensure_initial(store.as_ref(), &config.data_dir).await? {
        tracing::info!(path = %path.display(), "first start: created test and live keys; they are in this file (readable by you only)");
    }
    serve(
        App {
            store,
            config: Arc::new(config),
            metrics: Arc::default(),
        },
        listener,
    )
    .await
}

pub async fn serve(app: App, listener: TcpListener) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let housekeeping = tokio::spawn(forget_old_idempotency_keys(app.store.clone()));
    let router = api::router(app);
    let service = tower::service_fn(move |req: axum::extract::Request| {
        router.clone().oneshot(api::normalize(req))
    });
    tracing::info!(%addr, "herald listening");
    axum::serve(listener, tower::make::Shared::new(service))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    housekeeping.abort();
    Ok(())
}

/// How long an event's `$insert_id` is remembered: a client retrying within this window is
/// applied once. SuprSend documents 24 hours for its idempotency keys; Herald keeps the same.
pub const IDEMPOTENCY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Every node purges expired idempotency keys every ten minutes; concurrent purges are harmless.
async fn forget_old_idempotency_keys(store: Arc<dyn Store>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        match store
            .purge_applied_keys(chrono::Utc::now() - IDEMPOTENCY_WINDOW)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "forgot expired idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired idempotency keys"),
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
    tracing::info!("shutting down: finishing requests in flight");
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
