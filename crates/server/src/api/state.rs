//! The state every handler shares: the core (run store, job queue,
//! metrics), the rendered-image cache and the thread pools that keep heavy
//! work off the async executor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Admission to each pool.
    tile_gate: Arc<Gate>,
    map_gate: Arc<Gate>,
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

/// Admission to a render pool: at most `capacity` renders running or
/// waiting, each waiting at most `deadline`; the rest are answered 503 at
/// once, so a saturated pool sheds load instead of stretching every
/// request's latency (cached tiles and point forecasts never enter a pool).
struct Gate {
    pool: &'static str,
    pending: AtomicUsize,
    capacity: usize,
    deadline: Duration,
}

impl Gate {
    fn new(pool: &'static str, threads: usize, config: &Config) -> Arc<Gate> {
        Arc::new(Gate {
            pool,
            pending: AtomicUsize::new(0),
            capacity: threads + config.render_queue,
            deadline: config.render_deadline,
        })
    }

    /// A slot, or the 503 that says the pool is full.
    fn enter(self: &Arc<Gate>) -> Result<Slot, ApiError> {
        if self.pending.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::Overloaded(format!(
                "the {} render queue is full ({} renders running or waiting, --render-queue); retry shortly",
                self.pool, self.capacity
            )));
        }
        Ok(Slot(self.clone()))
    }
}

/// A place in a [`Gate`], given back when the render ends or is dropped.
struct Slot(Arc<Gate>);

impl Slot {
    /// The 503 for a render that waited past the deadline, if it did.
    fn too_late(&self, queued: Instant) -> Option<ApiError> {
        let (waited, gate) = (queued.elapsed(), &self.0);
        (waited > gate.deadline).then(|| {
            ApiError::Overloaded(format!(
                "the {} render waited {} ms for a thread (--render-deadline-ms {}); retry shortly",
                gate.pool,
                waited.as_millis(),
                gate.deadline.as_millis()
            ))
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::SeqCst);
    }
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
        let tile_pool = crate::priority::pool("finecast-tiles", 0, crate::priority::TILE_NICE)?;
        let map_pool = crate::priority::pool("finecast-maps", 0, crate::priority::MAP_NICE)?;
        Ok(AppState {
            tile_gate: Gate::new("tile", tile_pool.current_num_threads(), &config),
            map_gate: Gate::new("map", map_pool.current_num_threads(), &config),
            tile_pool,
            map_pool,
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
    /// maps, and render threads run at a lower priority than request
    /// handling (see [`crate::priority`]), so point forecasts and cached
    /// tiles overtake them on a busy CPU. Admission is bounded: a full queue
    /// (`--render-queue`) or a wait past `--render-deadline-ms` answers 503
    /// with `Retry-After` (counted in `finecast_renders_shed_total`), and a
    /// render whose client has gone is not drawn.
    pub async fn render<T: Send + 'static>(
        &self,
        kind: RenderKind,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (pool, gate) = match kind {
            RenderKind::Tile => (&self.tile_pool, &self.tile_gate),
            RenderKind::Map => (&self.map_pool, &self.map_gate),
        };
        let slot = gate
            .enter()
            .inspect_err(|_| Metrics::hit(&self.metrics.renders_shed))?;
        let queued = Instant::now();
        let metrics = self.metrics.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        pool.spawn(move || {
            if tx.is_closed() {
                return;
            }
            let result = match slot.too_late(queued) {
                Some(shed) => {
                    Metrics::hit(&metrics.renders_shed);
                    Err(shed)
                }
                None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                    .unwrap_or_else(|_| Err(ApiError::Internal("a render panicked".into()))),
            };
            drop(slot);
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

    /// Draw `key` into the image cache unless it is there already (without
    /// counting a hit or miss); whether it was drawn.
    pub fn warm(&self, key: &str, draw: impl FnOnce() -> Result<Bytes, ApiError>) -> bool {
        let cached = self
            .images
            .lock()
            .map(|c| c.contains(&key.to_string()))
            .unwrap_or(true);
        if cached {
            return false;
        }
        match draw() {
            Ok(png) => {
                self.cache_image(key.to_string(), png);
                Metrics::hit(&self.metrics.tiles_prerendered);
                true
            }
            Err(e) => {
                tracing::debug!("pre-rendering a tile: {e}");
                false
            }
        }
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
