//! Building responses: JSON, and cacheable images with strong ETags,
//! `Cache-Control` and `304 Not Modified`.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}

/// A PNG response with an ETag and cache lifetime (`max_age`, seconds);
/// `304` when the client already has it.
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

/// Whether the client's `If-None-Match` already names `etag`, so the
/// response (and often its render) can be skipped.
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// `304 Not Modified`, with the headers a `200` would have had.
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

/// A strong ETag from the parts that determine a response (and the server
/// version, since a new renderer may draw the same request differently).
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

/// Cache lifetime in seconds for a response about run `run_param`: runs are
/// immutable, but `latest` moves.
pub fn max_age_for(run_param: &str) -> u32 {
    if run_param == "latest" {
        60
    } else {
        86_400
    }
}
