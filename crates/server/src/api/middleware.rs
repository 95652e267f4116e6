//! The layers around every handler: request ids, a span per request, the
//! body-size pre-check, the request timeout, metrics by route, and JSON
//! bodies for the errors that axum and its layers answer themselves.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::state::{App, AppState};
use crate::error::ApiError;

/// The matched route template, handed from the routing layer to the
/// outer middleware so that metrics are labelled by route, not by URL.
#[derive(Clone)]
struct RouteLabel(String);

/// Routing layer: note the matched route on the response for [`observe`].
pub async fn label_route(req: Request, next: Next) -> Response {
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

/// The client's `X-Request-Id` when it is a sane token, else a new id.
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
pub async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
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
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let mut resp = async {
        if declared.is_some_and(|n| n > limit as u64) {
            return too_large(&app).into_response();
        }
        // Only an upload may be large: any other body over the JSON limit is
        // refused from its Content-Length, before it is read.
        let json_limit = super::MAX_JSON_BODY_BYTES.min(limit);
        if !multipart && declared.is_some_and(|n| n > json_limit as u64) {
            return ApiError::JsonTooLarge {
                limit_kib: (json_limit >> 10) as u64,
            }
            .into_response();
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
