//! The HTTP layer over the core: the router, its middleware and the
//! handlers, one module per resource. Handlers share only the modules that
//! are not handlers ([`state`], [`extract`], [`response`], [`legend`]), and
//! every error they return is an [`ApiError`].

mod data;
mod extract;
mod forecast;
mod jobs;
mod legend;
mod middleware;
mod ops;
mod response;
mod runs;
mod state;
mod wms;
mod xyz;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower_http::compression::predicate::{NotForContentType, Predicate};
use tower_http::compression::{CompressionLayer, DefaultPredicate};

pub use state::{App, AppState};
pub use xyz::start_prerender;

/// Largest JSON request body: a job request is a few hundred bytes, so
/// 1 MiB leaves room and bounds what one unauthenticated POST can make the
/// server buffer (uploads have their own `--max-body-mb`).
pub const MAX_JSON_BODY_BYTES: usize = 1 << 20;

use crate::error::ApiError;

/// Every route: (method, path as axum spells it). Tests check the router
/// and the OpenAPI document against this list, so that docs and router
/// cannot drift apart.
#[cfg(test)]
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
    ("DELETE", "/v1/runs/{run}"),
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

/// The service: every route (those of `ROUTES`, which the tests check) with
/// its handler, behind the layers of [`middleware`].
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
        .route("/v1/runs/{run}", get(runs::get_one).delete(runs::delete))
        .route("/v1/runs/{run}/data", get(data::data))
        .route("/v1/runs/{run}/map.png", get(runs::map_png))
        .route("/v1/runs/{run}/legend.png", get(runs::legend_png))
        .route("/v1/forecast", get(forecast::forecast))
        .route("/v1/tiles/{run}/tilejson.json", get(xyz::tilejson))
        .route("/v1/tiles/{run}/{var}/{z}/{x}/{y}", get(xyz::tile))
        .route("/wms", get(wms::wms))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn(middleware::label_route))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::observe,
        ))
        .layer(CompressionLayer::new().compress_when(compress))
        .with_state(app)
}

async fn fallback() -> ApiError {
    ApiError::NotFound("no such endpoint; see /docs".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("method not allowed on this endpoint; see /docs".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use clap::Parser;
    use std::sync::atomic::Ordering;
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
