//! `finecast serve`: an HTTP service over finecast's downscaling pipeline.
//!
//! The layout follows text-embeddings-inference's router over its core: a
//! core that knows no HTTP (the job `queue`, the `store` of finished runs,
//! the renderer in [`raster`]), each with its own error type, under a thin
//! router (`api`). The core's errors become HTTP status codes in one place,
//! `error`. Heavy work never runs on the async executor: jobs run on their
//! own worker threads, and reads and rendering go to tokio's blocking pool
//! and render pools.
//!
//! Outside the crate only [`serve`] (with its flags, [`ServeArgs`]) and the
//! renderer ([`raster`], for the benchmarks) are used.

mod api;
mod cache;
mod config;
mod error;
mod geotiff;
mod ids;
mod openapi;
mod priority;
mod queue;
pub mod raster;
mod store;
mod telemetry;
mod times;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use config::ServeArgs;

use crate::api::{App, AppState};
use crate::config::Config;
use crate::queue::{JobQueue, JobRecord, JobSpec, TargetSpec};
use crate::store::Store;
use crate::telemetry::Metrics;

/// Why `finecast serve` could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A flag is invalid, a data directory cannot be created, or a thread
    /// pool cannot start; the message names which.
    #[error("{0}")]
    Config(String),
    /// The listening socket cannot be bound (in use, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address of `--bind`.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The runtime or the connection loop failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Run `finecast serve` until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> Result<(), ServeError> {
    let config = Config::from_args(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("finecast-http")
        .build()?;
    runtime.block_on(run(config))
}

/// Build the core (store, job queue, workers) and the state the router
/// serves; the workers' handles, to wait for at shutdown.
fn build(config: Config) -> Result<(App, Vec<std::thread::JoinHandle<()>>), ServeError> {
    error::set_data_dir(&config.data_dir);
    let metrics = Arc::new(Metrics::default());
    let store = Arc::new(
        Store::open(&config.runs_dir, config.field_cache_bytes, metrics.clone())
            .with_retention(config.retention),
    );
    let queue = JobQueue::open(&config, store.clone());
    let state =
        AppState::new(config.clone(), store, queue.clone(), metrics).map_err(ServeError::Config)?;
    let workers = queue.start_workers(config.workers);
    Ok((Arc::new(state), workers))
}

/// Queue the demo job when there is no run yet, so that every endpoint has
/// something to show on a fresh machine.
fn ensure_demo(app: &App) {
    let cfg = &app.config;
    if !cfg.demo || !app.store.is_empty() || app.queue.demo_pending() {
        return;
    }
    let (Some(sample), Some(terrain)) = (&cfg.sample_dir, &cfg.terrain) else {
        tracing::warn!("no bundled sample found (--sample-dir): starting without a demo run");
        return;
    };
    let region = [45.5, 48.0, 5.8, 10.6];
    let spec = JobSpec {
        input: sample.join(config::SAMPLE_FORECAST),
        terrain: terrain.clone(),
        target: TargetSpec::Region {
            region,
            resolution_km: 3.0,
        },
        vars: vec![],
        method: "lapse".into(),
        times: vec![],
        reference_time: None,
        upload_dir: None,
    };
    let request = serde_json::json!({
        "input": config::SAMPLE_FORECAST,
        "terrain": terrain.file_name().map(|n| n.to_string_lossy().into_owned()),
        "target": {"region": region, "resolution_km": 3.0},
        "method": "lapse",
    });
    match app
        .queue
        .submit(JobRecord::new(ids::new_id(), request, spec, true), false)
    {
        Ok(r) => tracing::info!(job = %r.id, "creating the demo run from the bundled Alps sample"),
        Err(e) => tracing::error!("cannot queue the demo job: {e}"),
    }
}

/// Serve until a shutdown signal, then interrupt running jobs.
async fn run(config: Config) -> Result<(), ServeError> {
    let addr = config.bind;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr()?;
    let (app, workers) = tokio::task::spawn_blocking(move || build(config))
        .await
        .map_err(|e| ServeError::Config(format!("startup failed: {e}")))??;
    ensure_demo(&app);
    api::start_prerender(app.clone());
    if app.config.retention.max_age.is_some() {
        // Runs age without any event: look every 5 minutes.
        let store = app.store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(300));
            loop {
                every.tick().await;
                let store = store.clone();
                let _ =
                    tokio::task::spawn_blocking(move || store.apply_retention(chrono::Utc::now()))
                        .await;
            }
        });
    }
    app.started.store(true, Ordering::SeqCst);
    // Printed (not only logged) so that scripts and tests can wait for it.
    println!(
        "finecast serve: listening on http://{local} (data in {})",
        app.config.data_dir.display()
    );
    tracing::info!("listening on http://{local}");
    let router = api::router(app.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shutting down: interrupting running jobs");
    let queue = app.queue.clone();
    tokio::task::spawn_blocking(move || queue.shutdown(workers, Duration::from_secs(10)))
        .await
        .map_err(|e| ServeError::Config(format!("shutdown failed: {e}")))?;
    println!("finecast serve: stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
