//! The HTTP layer: routes, middleware (request ids, metrics, limits,
//! timeouts, compression) and the extractors that turn request data into
//! [`ApiError`]s instead of axum's plain-text rejections.

mod forecast;
mod jobs;
mod ops;
mod runs;
mod tiles;
mod wms;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::OnceCell;
use tower_http::compression::predicate::{NotForContentType, Predicate};
use tower_http::compression::{CompressionLayer, DefaultPredicate};
use tracing::Instrument;

use crate::cache::ByteLru;
use crate::config::Config;
use crate::error::ApiError;
use crate::jobs::Jobs;
use crate::metrics::{Gauges, Metrics};
use crate::store::Store;

pub struct AppState {
    pub config: Config,
    pub store: Arc<Store>,
    pub jobs: Arc<Jobs>,
    pub metrics: Arc<Metrics>,
    /// Rendered tiles and legends by ETag.
    pub images: Mutex<ByteLru<String, Bytes>>,
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
    pub fn new(
        config: Config,
        store: Arc<Store>,
        jobs: Arc<Jobs>,
        metrics: Arc<Metrics>,
    ) -> Result<AppState, String> {
        Ok(AppState {
            tile_pool: crate::priority::pool("finecast-tiles", 0, crate::priority::TILE_NICE)?,
            map_pool: crate::priority::pool("finecast-maps", 0, crate::priority::MAP_NICE)?,
            images: Mutex::new(ByteLru::new(config.tile_cache_bytes)),
            rendering: Mutex::new(HashMap::new()),
            config,
            store,
            jobs,
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
        if self.jobs.demo_pending() {
            return Err(ApiError::NotReady("the demo run is being created".into()));
        }
        Ok(())
    }

    /// A run for a request; while the store is still empty because the demo
    /// run is being made, that is "not ready" rather than "not found".
    pub fn run(&self, id: &str) -> Result<Arc<crate::store::Run>, ApiError> {
        match self.store.get(id) {
            Err(ApiError::NotFound(m)) if self.store.is_empty() => {
                Err(self.check_ready().err().unwrap_or(ApiError::NotFound(m)))
            }
            other => other,
        }
    }

    pub fn gauges(&self) -> Gauges {
        Gauges {
            queue_depth: self.jobs.queue_depth(),
            jobs_by_state: self.jobs.counts(),
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

/// Every route: (method, path as axum spells it). The OpenAPI document and a
/// test are checked against this list, so docs and router cannot drift apart.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/assets/{*path}"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{id}"),
    ("DELETE", "/v1/jobs/{id}"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{run}"),
    ("GET", "/v1/runs/{run}/data"),
    ("GET", "/v1/runs/{run}/map.png"),
    ("GET", "/v1/runs/{run}/legend.png"),
    ("GET", "/v1/forecast"),
    ("GET", "/v1/tiles/{run}/tilejson.json"),
    ("GET", "/v1/tiles/{run}/{var}/{z}/{x}/{y}"),
    ("GET", "/wms"),
];

pub fn router(app: App) -> Router {
    let body_limit = app.config.max_body_bytes;
    // JSON, XML and text compress well; PNG tiles, GeoTIFF and NetCDF
    // (internally deflated) do not, and are excluded.
    let compress = DefaultPredicate::new()
        .and(NotForContentType::const_new("application/x-netcdf"))
        .and(NotForContentType::const_new("image/"));
    Router::new()
        .route("/", get(ops::index))
        .route("/assets/{*path}", get(ops::asset))
        .route("/docs", get(ops::docs))
        .route("/openapi.json", get(ops::openapi))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::get_one).delete(jobs::cancel))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{run}", get(runs::get_one))
        .route("/v1/runs/{run}/data", get(runs::data))
        .route("/v1/runs/{run}/map.png", get(runs::map_png))
        .route("/v1/runs/{run}/legend.png", get(runs::legend_png_route))
        .route("/v1/forecast", get(forecast::forecast))
        .route("/v1/tiles/{run}/tilejson.json", get(tiles::tilejson))
        .route("/v1/tiles/{run}/{var}/{z}/{x}/{y}", get(tiles::tile))
        .route("/wms", get(wms::wms))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn(label_route))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .layer(CompressionLayer::new().compress_when(compress))
        .with_state(app)
}

async fn fallback() -> ApiError {
    ApiError::NotFound("no such endpoint; see /docs".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("method not allowed on this endpoint; see /docs".into())
}

/// The matched route template, handed from the routing layer to the
/// outer middleware so that metrics are labelled by route, not by URL.
#[derive(Clone)]
struct RouteLabel(String);

async fn label_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(RouteLabel(r));
    }
    resp
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(crate::ids::new_id)
}

/// Request id in and out, a span for the request's logs, the body-size
/// pre-check, the request timeout, metrics, and JSON bodies for errors that
/// axum produces itself.
async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let rid = request_id(req.headers());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %rid, method = %method, path = %path);
    let limit = app.config.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let timeout = app.config.request_timeout;
    let is_upload = req.method() == axum::http::Method::POST && path == "/v1/jobs";
    let mut resp = async {
        if declared.is_some_and(|n| n > limit as u64) {
            return too_large(&app).into_response();
        }
        // Uploads are bounded by --max-body-mb instead: a large file on a
        // slow link may legitimately take longer than any request.
        if is_upload {
            return next.run(req).await;
        }
        match tokio::time::timeout(timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::Timeout(timeout.as_secs()).into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    let status = resp.status();
    let bare = !resp.headers().contains_key(header::CONTENT_TYPE) || is_plain_text(resp.headers());
    if (status.is_client_error() || status.is_server_error()) && bare {
        resp = normalise_error(&app, status).into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "unmatched".to_string());
    let elapsed = started.elapsed();
    app.metrics
        .observe(&route, &method, status.as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            route = %route,
            latency_ms = format!("{:.2}", elapsed.as_secs_f64() * 1000.0),
            "request"
        )
    });
    resp
}

fn is_plain_text(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"))
}

fn too_large(app: &AppState) -> ApiError {
    ApiError::PayloadTooLarge {
        limit_mb: (app.config.max_body_bytes / (1024 * 1024)) as u64,
    }
}

/// An error answered by axum or a layer (not our handlers) as JSON.
fn normalise_error(app: &AppState, status: StatusCode) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(app),
        StatusCode::NOT_FOUND => ApiError::NotFound("not found".into()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed("method not allowed".into()),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable("invalid request".into()),
        s if s.is_client_error() => {
            ApiError::BadRequest(s.canonical_reason().unwrap_or("bad request").into())
        }
        s => ApiError::Internal(s.canonical_reason().unwrap_or("error").into()),
    }
}

/// Query parameters, decoded; `get` is case-sensitive (the JSON API), `get_ci`
/// case-insensitive (WMS, whose parameter names are case-insensitive).
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|e| ApiError::BadRequest(format!("query string: {}", e.body_text())))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn get_ci(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value.
    pub fn nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.nonempty(key)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "parameter '{key}': '{}' is not valid",
                        crate::ids::truncate(v, 40)
                    ))
                })
            })
            .transpose()
    }
}

/// Path parameters, with rejections as [`ApiError`].
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Write endpoints need one of the configured API keys (when there are any).
pub fn require_key(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if app.config.api_keys.is_empty() {
        return Ok(());
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let Some(given) = given else {
        return Err(ApiError::Unauthorized);
    };
    // Compare in time independent of where the strings differ.
    let matches = |key: &str| {
        key.len() == given.len()
            && key
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    };
    if app.config.api_keys.iter().any(|k| matches(k)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// `http://host:port` of this server as the client addressed it, for links
/// that must be absolute (WMS capabilities, TileJSON).
pub fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| app.config.bind.to_string());
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Run blocking work (file reads, rendering) on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// A PNG response with an ETag and cache lifetime; `304` when the client
/// already has it.
pub fn png_response(png: Bytes, etag: &str, max_age: u32, headers: &HeaderMap) -> Response {
    if not_modified(headers, etag) {
        return not_modified_response(etag, max_age);
    }
    let mut resp = Response::new(Body::from(png));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    set_cache_headers(h, etag, max_age);
    resp
}

pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

pub fn not_modified_response(etag: &str, max_age: u32) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    set_cache_headers(resp.headers_mut(), etag, max_age);
    resp
}

fn set_cache_headers(h: &mut HeaderMap, etag: &str, max_age: u32) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
}

/// A strong ETag from the parts that determine a response.
pub fn etag_of(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    format!("\"{}\"", &hex::encode(h.finalize())[..32])
}

/// Cache lifetime: runs are immutable, but `latest` moves.
pub fn max_age_for(run_param: &str) -> u32 {
    if run_param == "latest" {
        60
    } else {
        86_400
    }
}

pub fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;
    use clap::Parser;
    use tower::ServiceExt;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: crate::ServeArgs,
    }

    fn test_app(dir: &std::path::Path) -> App {
        let cli = Cli::parse_from(["t", "--data-dir", &dir.display().to_string(), "--no-demo"]);
        let config = Config::from_args(&cli.serve).expect("config");
        let (app, _) = crate::build(config).expect("server state");
        app.started.store(true, Ordering::SeqCst);
        app
    }

    /// Each route of ROUTES reaches a handler (not the 404/405 fallbacks).
    #[tokio::test]
    async fn every_listed_route_is_routed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = test_app(dir.path());
        for (method, path) in ROUTES {
            let uri = path
                .replace("{*path}", "viewer.js")
                .replace("{run}", "latest")
                .replace("{id}", "nope")
                .replace("{var}", "t2m")
                .replace("{z}", "0")
                .replace("{x}", "0")
                .replace("{y}", "0.png");
            let req = HttpRequest::builder()
                .method(*method)
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .expect("request");
            let resp = router(app.clone()).oneshot(req).await.expect("response");
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .expect("body");
            let text = String::from_utf8_lossy(&body);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert!(
                !text.contains("no such endpoint"),
                "{method} {uri} fell through to the fallback"
            );
        }
    }

    #[tokio::test]
    async fn errors_are_json_with_status_and_request_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = test_app(dir.path());
        let req = HttpRequest::builder()
            .method("PUT")
            .uri("/v1/runs")
            .body(Body::empty())
            .expect("request");
        let resp = router(app.clone()).oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(resp.headers().contains_key("x-request-id"));
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"], true);
        assert_eq!(v["code"], "method_not_allowed");
        // No runs and no demo: 404, not 503.
        let req = HttpRequest::builder()
            .uri("/v1/runs/latest")
            .body(Body::empty())
            .expect("request");
        let resp = router(app).oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
}
