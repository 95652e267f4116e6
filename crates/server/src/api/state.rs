//! The state every handler shares: the core (run store, job queue,
//! metrics), the rendered-image cache and the thread pools that keep heavy
//! work off the async executor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use tokio::sync::OnceCell;

use crate::cache::ByteLru;
use crate::config::Config;
use crate::error::ApiError;
use crate::queue::JobQueue;
use crate::store::{Run, Store};
use crate::telemetry::{Gauges, Metrics};

/// The shared state behind every request.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The published runs.
    pub store: Arc<Store>,
    /// The downscaling jobs.
    pub queue: Arc<JobQueue>,
    /// Request and cache counters.
    pub metrics: Arc<Metrics>,
    /// Rendered tiles and legends by ETag.
    images: Mutex<ByteLru<String, Bytes>>,
    /// Renders in progress by ETag, shared by concurrent requests for the
    /// same image.
    rendering: Mutex<HashMap<String, Arc<OnceCell<Bytes>>>>,
    /// Threads for tile and legend renders, see [`AppState::render`].
    tile_pool: rayon::ThreadPool,
    /// Threads for map images (WMS GetMap, map.png), which take longer.
    map_pool: rayon::ThreadPool,
    /// Set once the run store is loaded and the demo (if any) is queued.
    pub started: AtomicBool,
}

/// The state as handlers hold it.
pub type App = Arc<AppState>;

/// Which render pool an image goes to.
#[derive(Debug, Clone, Copy)]
pub enum RenderKind {
    /// XYZ tiles and legends: small and latency-critical.
    Tile,
    /// WMS GetMap and framed maps: larger images.
    Map,
}

impl AppState {
    /// The state over a loaded store and queue, with its render pools
    /// started; the error says which pool could not start.
    pub fn new(
        config: Config,
        store: Arc<Store>,
        queue: Arc<JobQueue>,
        metrics: Arc<Metrics>,
    ) -> Result<AppState, String> {
        Ok(AppState {
            tile_pool: crate::priority::pool("finecast-tiles", 0, crate::priority::TILE_NICE)?,
            map_pool: crate::priority::pool("finecast-maps", 0, crate::priority::MAP_NICE)?,
            images: Mutex::new(ByteLru::new(config.tile_cache_bytes)),
            rendering: Mutex::new(HashMap::new()),
            config,
            store,
            queue,
            metrics,
            started: AtomicBool::new(false),
        })
    }

    /// Run a CPU-heavy render on a render pool of one thread per core, so a
    /// burst of renders queues instead of oversubscribing cores. Tiles and
    /// maps have pools of their own: a small tile never waits behind large
    /// maps, and map threads run at a lower priority (see [`crate::priority`]),
    /// so quick requests overtake them on a busy CPU.
    pub async fn render<T: Send + 'static>(
        &self,
        kind: RenderKind,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let pool = match kind {
            RenderKind::Tile => &self.tile_pool,
            RenderKind::Map => &self.map_pool,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        pool.spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .unwrap_or_else(|_| Err(ApiError::Internal("a render panicked".into())));
            // The request may have gone (client closed): nothing to tell.
            let _ = tx.send(result);
        });
        rx.await.map_err(ApiError::internal)?
    }

    /// 503 until the store is loaded and the demo run (if one is being made)
    /// exists.
    pub fn check_ready(&self) -> Result<(), ApiError> {
        if !self.started.load(Ordering::SeqCst) {
            return Err(ApiError::NotReady("the server is starting".into()));
        }
        if self.queue.demo_pending() {
            return Err(ApiError::NotReady("the demo run is being created".into()));
        }
        Ok(())
    }

    /// A run for a request; while the store is still empty because the demo
    /// run is being made, that is "not ready" rather than "not found".
    pub fn run(&self, id: &str) -> Result<Arc<Run>, ApiError> {
        match self.store.get(id).map_err(ApiError::from) {
            Err(ApiError::NotFound(m)) if self.store.is_empty() => {
                Err(self.check_ready().err().unwrap_or(ApiError::NotFound(m)))
            }
            other => other,
        }
    }

    /// The gauges of the metrics page, read now.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            queue_depth: self.queue.queue_depth(),
            jobs_by_state: self.queue.counts(),
            runs: self.store.len(),
            tile_cache_bytes: self.images.lock().map(|c| c.bytes()).unwrap_or(0),
            field_cache_bytes: self.store.cache_bytes(),
            ready: self.check_ready().is_ok(),
        }
    }

    fn cached_image(&self, key: &str) -> Option<Bytes> {
        let hit = self.images.lock().ok()?.get(&key.to_string());
        let counter = if hit.is_some() {
            &self.metrics.tile_cache_hits
        } else {
            &self.metrics.tile_cache_misses
        };
        Metrics::hit(counter);
        hit
    }

    fn cache_image(&self, key: String, png: Bytes) {
        if let Ok(mut c) = self.images.lock() {
            let n = png.len() + key.len();
            c.insert(key, png, n);
        }
    }

    /// The cached image for `key`, or `render` it once however many requests
    /// ask at the same moment: the others wait for that render instead of
    /// repeating it (a cold tile under load is rendered once, not once per
    /// connection). The result goes to the image cache.
    pub async fn cached_or_render<F, Fut>(&self, key: &str, render: F) -> Result<Bytes, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, ApiError>>,
    {
        if let Some(png) = self.cached_image(key) {
            return Ok(png);
        }
        let cell = match self.rendering.lock() {
            Ok(mut m) => m.entry(key.to_string()).or_default().clone(),
            Err(_) => Arc::new(OnceCell::new()),
        };
        let result = cell.get_or_try_init(render).await.cloned();
        if let Ok(png) = &result {
            self.cache_image(key.to_string(), png.clone());
        }
        // Waiters hold their own Arc; later requests find the cache.
        if let Ok(mut m) = self.rendering.lock() {
            m.remove(key);
        }
        result
    }
}

/// Run blocking work (file reads, encoding) on tokio's blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}
