//! Health, readiness, metrics, the OpenAPI document, the docs page and the
//! web viewer's embedded assets.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::{json_response, ApiPath, App};
use crate::error::ApiError;

pub async fn healthz() -> Response {
    json_response(StatusCode::OK, serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(app): State<App>) -> Result<Response, ApiError> {
    app.check_ready()?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({"status": "ready", "runs": app.store.len()}),
    ))
}

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

pub async fn openapi() -> Response {
    json_response(StatusCode::OK, crate::openapi::document())
}

pub async fn docs() -> Html<&'static str> {
    Html(include_str!("../../assets/docs.html"))
}

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

pub async fn asset(
    ApiPath(path): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A fixed table: no request path ever reaches the file system.
    let (_, ctype, bytes) = ASSETS.iter().find(|(p, _, _)| *p == path).ok_or_else(|| {
        ApiError::NotFound(format!("no asset '{}'", crate::ids::truncate(&path, 80)))
    })?;
    let etag = super::etag_of(&["asset", &path]);
    if super::not_modified(&headers, &etag) {
        return Ok(super::not_modified_response(&etag, 3600));
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
