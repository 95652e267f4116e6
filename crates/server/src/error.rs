//! The one error type of the HTTP API and the one place where errors become
//! status codes and JSON bodies `{"error": true, "code": "...", "reason": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed parameters (not a number, bad syntax).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but unacceptable parameters (out of range, outside the domain).
    #[error("{0}")]
    Unprocessable(String),
    /// Unknown run, job, variable, time or path.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body exceeds the limit of {limit_mb} MiB (--max-body-mb)")]
    PayloadTooLarge { limit_mb: u64 },
    #[error("the job queue is full ({0} jobs waiting, --max-queue); retry later")]
    QueueFull(usize),
    #[error(
        "this endpoint needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
    )]
    Unauthorized,
    #[error("the API key is not valid")]
    Forbidden,
    #[error("{0}")]
    NotReady(String),
    #[error("the request took longer than {0} s (--request-timeout-s)")]
    Timeout(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotReady(_) | ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code, for clients that branch on errors.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unprocessable(_) => "invalid_parameter",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::QueueFull(_) => "queue_full",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotReady(_) => "not_ready",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": true, "code": self.code(), "reason": self.to_string()})
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, ApiError::NotReady(_) | ApiError::Timeout(_))
        {
            tracing::error!("{self}");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::QueueFull(_) | ApiError::NotReady(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

/// A WMS error: the same status mapping, but an OGC ServiceExceptionReport
/// body that WMS clients (QGIS, GDAL) know how to show.
#[derive(Debug)]
pub struct WmsError {
    pub code: &'static str,
    pub error: ApiError,
}

impl WmsError {
    pub fn new(code: &'static str, error: ApiError) -> WmsError {
        WmsError { code, error }
    }
}

impl From<ApiError> for WmsError {
    fn from(error: ApiError) -> WmsError {
        let code = match &error {
            ApiError::NotFound(_) => "LayerNotDefined",
            _ => "InvalidParameterValue",
        };
        WmsError { code, error }
    }
}

impl IntoResponse for WmsError {
    fn into_response(self) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ServiceExceptionReport version=\"1.3.0\" \
             xmlns=\"http://www.opengis.net/ogc\">\n  <ServiceException code=\"{}\">{}</ServiceException>\n\
             </ServiceExceptionReport>\n",
            self.code,
            crate::api::xml_escape(&self.error.to_string())
        );
        (
            self.error.status(),
            [(header::CONTENT_TYPE, "application/vnd.ogc.se_xml")],
            body,
        )
            .into_response()
    }
}
