//! Health, readiness, metrics, the OpenAPI document, the docs page and the
//! web viewer's embedded assets.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::extract::ApiPath;
use super::response::{etag_of, json_response, not_modified, not_modified_response};
use super::state::App;
use crate::error::ApiError;

/// `GET /healthz`: 200 while the process serves (liveness).
pub async fn healthz() -> Response {
    json_response(StatusCode::OK, serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 503 until the run store is loaded and the demo run (if
/// one is being made) exists, so load balancers hold traffic until then.
pub async fn readyz(State(app): State<App>) -> Result<Response, ApiError> {
    app.check_ready()?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({"status": "ready", "runs": app.store.len()}),
    ))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(app): State<App>) -> Response {
    let text = app.metrics.render(&app.gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /openapi.json`: the OpenAPI 3 description of this API.
pub async fn openapi() -> Response {
    json_response(StatusCode::OK, crate::openapi::document())
}

/// `GET /docs`: the API as an HTML page.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("../../assets/docs.html"))
}

/// `GET /`: the web viewer.
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../../assets/index.html"))
}

/// The embedded files: (path under /assets/, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "viewer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/viewer.js"),
    ),
    (
        "viewer.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/viewer.css"),
    ),
    (
        "leaflet/leaflet.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/leaflet/leaflet.js"),
    ),
    (
        "leaflet/leaflet.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/leaflet/leaflet.css"),
    ),
    (
        "leaflet/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/leaflet/LICENSE"),
    ),
    (
        "leaflet/images/layers.png",
        "image/png",
        include_bytes!("../../assets/leaflet/images/layers.png"),
    ),
    (
        "leaflet/images/layers-2x.png",
        "image/png",
        include_bytes!("../../assets/leaflet/images/layers-2x.png"),
    ),
    (
        "leaflet/images/marker-icon.png",
        "image/png",
        include_bytes!("../../assets/leaflet/images/marker-icon.png"),
    ),
    (
        "leaflet/images/marker-icon-2x.png",
        "image/png",
        include_bytes!("../../assets/leaflet/images/marker-icon-2x.png"),
    ),
    (
        "leaflet/images/marker-shadow.png",
        "image/png",
        include_bytes!("../../assets/leaflet/images/marker-shadow.png"),
    ),
];

/// `GET /assets/{*path}`: one of the viewer's embedded files.
pub async fn asset(
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A fixed table: no request path ever reaches the file system.
    let (_, ctype, bytes) = ASSETS.iter().find(|(p, _, _)| *p == path).ok_or_else(|| {
        ApiError::NotFound(format!("no asset '{}'", crate::ids::truncate(&path, 80)))
    })?;
    let etag = etag_of(&["asset", &path]);
    if not_modified(&headers, &etag) {
        return Ok(not_modified_response(&etag, 3600));
    }
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (header::CACHE_CONTROL, "public, max-age=3600".to_string()),
            (header::ETAG, etag),
        ],
        *bytes,
    )
        .into_response())
}
