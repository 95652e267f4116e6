//! The edge between the core and HTTP: the API's one error type, how the
//! core's errors ([`StoreError`], [`QueueError`], [`IdError`], [`TimeError`])
//! become it, and the one place where errors become status codes and JSON
//! bodies `{"error": true, "code": "...", "reason": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ids::IdError;
use crate::queue::QueueError;
use crate::store::StoreError;
use crate::times::TimeError;

/// Every way a request can fail, one variant per HTTP status (see
/// [`ApiError::status`]); the message is the `reason` clients read.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed parameters (not a number, bad syntax): 400.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but unacceptable parameters (out of range, outside the
    /// domain, a job request the server cannot run): 422.
    #[error("{0}")]
    Unprocessable(String),
    /// Unknown run, job, variable, time or path: 404.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, but not for this method: 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request contradicts the resource's state (cancelling a finished
    /// job): 409.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than `--max-body-mb`: 413.
    #[error("the request body exceeds the limit of {limit_mb} MiB (--max-body-mb)")]
    PayloadTooLarge {
        /// The configured limit, in MiB.
        limit_mb: u64,
    },
    /// A JSON body (anything but a multipart upload) is larger than
    /// [`crate::api::MAX_JSON_BODY_BYTES`]: 413, refused before more than
    /// that is read, whatever `--max-body-mb` allows uploads.
    #[error("a JSON request body is limited to {limit_kib} KiB; files go in a multipart/form-data upload (up to --max-body-mb)")]
    JsonTooLarge {
        /// The limit, in KiB.
        limit_kib: u64,
    },
    /// `--max-queue` jobs are already waiting: 429 with `Retry-After`.
    #[error("the job queue is full ({0} jobs waiting, --max-queue); retry later")]
    QueueFull(usize),
    /// A write endpoint was called without a key while keys are configured:
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error(
        "this endpoint needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
    )]
    Unauthorized,
    /// A key was sent but is not one of the configured keys: 403.
    #[error("the API key is not valid")]
    Forbidden,
    /// Starting up, creating the demo run or shutting down: 503 with
    /// `Retry-After`, since the same request will succeed shortly.
    #[error("{0}")]
    NotReady(String),
    /// The render pool is saturated: its queue is full (`--render-queue`) or
    /// the render waited past `--render-deadline-ms`: 503 with
    /// `Retry-After`, so cheap requests keep their latency under overload.
    #[error("{0}")]
    Overloaded(String),
    /// The data directory cannot take the write the request needs (a job
    /// that could not be recorded): 507, and nothing was accepted.
    #[error("{0}")]
    InsufficientStorage(String),
    /// The handler ran past `--request-timeout-s` (the value, in seconds): 503.
    #[error("the request took longer than {0} s (--request-timeout-s)")]
    Timeout(u64),
    /// A fault of the server, not of the request (unreadable run file, a
    /// panicked render): 500, and logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } | ApiError::JsonTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotReady(_) | ApiError::Overloaded(_) | ApiError::Timeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
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
            ApiError::PayloadTooLarge { .. } | ApiError::JsonTooLarge { .. } => "payload_too_large",
            ApiError::QueueFull(_) => "queue_full",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotReady(_) => "not_ready",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::InsufficientStorage(_) => "insufficient_storage",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON body of this error; file names in it are relative to the
    /// data directory (see [`relative_to_data_dir`]).
    pub fn body(&self) -> serde_json::Value {
        let reason = relative_to_data_dir(&self.to_string());
        serde_json::json!({"error": true, "code": self.code(), "reason": reason})
    }

    /// A 500 carrying the text of any error (a join or I/O failure).
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

/// The data directory as error messages spell it, set by the server at
/// start (one server per process).
static DATA_DIR: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// Make [`relative_to_data_dir`] strip `dir` from messages.
pub fn set_data_dir(dir: &std::path::Path) {
    if let Ok(mut d) = DATA_DIR.write() {
        *d = Some(dir.display().to_string());
    }
}

/// `message` with the server's data directory removed from the paths in
/// it (`/srv/finecast/uploads/J/f.nc` → `uploads/J/f.nc`): clients see
/// which file, not where the server keeps it. Logs keep the full paths.
pub fn relative_to_data_dir(message: &str) -> String {
    let dir = DATA_DIR.read().ok().and_then(|d| d.clone());
    match dir {
        Some(dir) if !dir.is_empty() => message.replace(&format!("{dir}/"), "").replace(&dir, "."),
        _ => message.to_string(),
    }
}

/// A bad id is 404 (nothing by that name can exist); a bad input file name
/// in a job request is 422.
impl From<IdError> for ApiError {
    fn from(e: IdError) -> ApiError {
        match e {
            IdError::InvalidId(_) => ApiError::NotFound(e.to_string()),
            IdError::NotPlainFileName(_) | IdError::NoSuchFile(_) | IdError::OutsideDir(_) => {
                ApiError::Unprocessable(e.to_string())
            }
        }
    }
}

/// A time that does not parse is malformed syntax: 400.
impl From<TimeError> for ApiError {
    fn from(e: TimeError) -> ApiError {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            // The store does not know the API; the hint at what to do is added here.
            StoreError::NoRuns => ApiError::NotFound(format!("{e}; submit a job to POST /v1/jobs")),
            StoreError::NoSuchRun(_)
            | StoreError::NoVariables
            | StoreError::NoSuchVar { .. }
            | StoreError::NoSuchTime { .. } => ApiError::NotFound(e.to_string()),
            StoreError::Id(e) => e.into(),
            StoreError::Time(e) => e.into(),
            // Runs are immutable and were readable when loaded: failing to
            // read one now is the server's fault.
            StoreError::Run { .. } | StoreError::Read(_) | StoreError::OffGrid { .. } => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        match e {
            QueueError::NoSuchJob(_) | QueueError::NoRequestedTime { .. } => {
                ApiError::NotFound(e.to_string())
            }
            QueueError::Full(waiting) => ApiError::QueueFull(waiting),
            QueueError::ShuttingDown => ApiError::NotReady(e.to_string()),
            QueueError::Finished { .. } => ApiError::Conflict(e.to_string()),
            QueueError::Invalid(_) => ApiError::Unprocessable(e.to_string()),
            QueueError::Storage(_) => ApiError::InsufficientStorage(e.to_string()),
            QueueError::Id(e) => e.into(),
            QueueError::Time(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let expected = matches!(
            self,
            ApiError::NotReady(_) | ApiError::Overloaded(_) | ApiError::Timeout(_)
        );
        if status.is_server_error() && !expected {
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
            // A render slot frees within milliseconds.
            ApiError::Overloaded(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core's errors keep the statuses, codes and messages the API had
    /// when the core returned `ApiError` itself.
    #[test]
    fn core_errors_map_to_the_same_statuses_and_messages() {
        let cases: Vec<(ApiError, StatusCode, &str)> = vec![
            (
                StoreError::NoRuns.into(),
                StatusCode::NOT_FOUND,
                "there are no runs yet; submit a job to POST /v1/jobs",
            ),
            (
                StoreError::NoSuchRun("r1".into()).into(),
                StatusCode::NOT_FOUND,
                "no run 'r1'",
            ),
            (
                StoreError::Id(IdError::InvalidId("a/b".into())).into(),
                StatusCode::NOT_FOUND,
                "'a/b' is not a valid id (letters, digits, '-' and '_')",
            ),
            (
                StoreError::Time(crate::times::parse_time("noon").expect_err("noon")).into(),
                StatusCode::BAD_REQUEST,
                "time 'noon' is not ISO 8601 (e.g. 2024-01-15T06:00:00Z)",
            ),
            (
                QueueError::Full(3).into(),
                StatusCode::TOO_MANY_REQUESTS,
                "the job queue is full (3 jobs waiting, --max-queue); retry later",
            ),
            (
                QueueError::ShuttingDown.into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ),
            (
                QueueError::Finished {
                    id: "j".into(),
                    status: "failed",
                }
                .into(),
                StatusCode::CONFLICT,
                "job 'j' has already finished (failed)",
            ),
            (
                ApiError::Overloaded("the tile render queue is full".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "the tile render queue is full",
            ),
            (
                QueueError::Storage("jobs/j.json: No space left on device".into()).into(),
                StatusCode::INSUFFICIENT_STORAGE,
                "cannot record the job: jobs/j.json: No space left on device",
            ),
            (
                QueueError::NoSuchJob("j".into()).into(),
                StatusCode::NOT_FOUND,
                "no job 'j'",
            ),
            (
                QueueError::Invalid("bad".into()).into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad",
            ),
            (
                QueueError::Id(IdError::NoSuchFile("f.nc".into())).into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "input file 'f.nc' does not exist in the input directory",
            ),
        ];
        for (error, status, reason) in cases {
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.to_string(), reason);
        }
    }
}
