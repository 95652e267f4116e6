//! `POST/GET/DELETE /v1/jobs`: downscaling jobs, OGC API - Processes style.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::io::AsyncWriteExt;

use super::extract::{require_key, ApiPath};
use super::response::json_response;
use super::state::{blocking, App};
use crate::error::ApiError;
use crate::queue::{prepare, JobRecord, JobRequest, JobStatus};

/// The public view of a job: OGC API - Processes status info, without
/// server paths.
fn job_view(r: &JobRecord) -> serde_json::Value {
    let mut links = vec![serde_json::json!({
        "href": format!("/v1/jobs/{}", r.id), "rel": "self", "type": "application/json"
    })];
    if let Some(run) = &r.run {
        links.push(serde_json::json!({
            "href": format!("/v1/runs/{run}"), "rel": "results", "type": "application/json"
        }));
    }
    serde_json::json!({
        "id": r.id,
        "jobID": r.id,
        "type": "process",
        "processID": "downscale",
        "status": r.status.name(),
        "progress": (r.progress.clamp(0.0, 100.0) * 10.0).round() / 10.0,
        "step": r.step,
        "created": crate::times::iso(&r.created),
        "started": r.started.as_ref().map(crate::times::iso),
        "finished": r.finished.as_ref().map(crate::times::iso),
        "error": r.error.as_deref().map(crate::error::relative_to_data_dir),
        "cancel_requested": r.cancel_requested,
        "attempts": r.attempts,
        "demo": r.demo,
        "run": r.run,
        "request": r.request,
        "links": links,
    })
}

/// `GET /v1/jobs`: every job, newest first.
pub async fn list(State(app): State<App>) -> Response {
    let jobs: Vec<serde_json::Value> = app.queue.list().iter().map(job_view).collect();
    json_response(StatusCode::OK, serde_json::json!({"jobs": jobs}))
}

/// `GET /v1/jobs/{id}`: a job's status and progress.
pub async fn get_one(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        job_view(&app.queue.get(&id)?),
    ))
}

/// `DELETE /v1/jobs/{id}`: cancel a queued job (200) or ask a running one
/// to stop (202).
pub async fn cancel(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_key(&app, &headers)?;
    let r = app.queue.cancel(&id)?;
    // A running job stops at its next tile: accepted, not yet done.
    let status = if r.status == JobStatus::Running {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, job_view(&r)))
}

/// A job request from JSON: 400 when it is not JSON, 422 when it is not a
/// job request; the JSON value is kept as the job's record of what was asked.
fn parse_request(bytes: &[u8]) -> Result<(JobRequest, serde_json::Value), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the job request is not valid JSON: {e}")))?;
    let req: JobRequest = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::Unprocessable(format!("job request: {e}")))?;
    Ok((req, value))
}

/// `POST /v1/jobs`: a JSON job request naming a file of the input
/// directory, or a multipart upload with parts `file` (NetCDF/GRIB2) and
/// `request` (the JSON). Answers 202 with the job and its `Location`.
pub async fn submit(State(app): State<App>, req: Request) -> Result<Response, ApiError> {
    require_key(&app, req.headers())?;
    // Refuse early, before an upload is stored, when the queue is full; the
    // queue checks again atomically when the job is added.
    let depth = app.queue.queue_depth();
    if depth >= app.config.max_queue {
        return Err(ApiError::QueueFull(depth));
    }
    let id = crate::ids::new_id();
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (request, value, upload) = if ctype.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(req, &app)
            .await
            .map_err(|e| ApiError::BadRequest(format!("multipart body: {}", e.body_text())))?;
        let dir = app.config.uploads_dir.join(&id);
        match read_upload(&app, multipart, &dir).await {
            Ok((r, v, file)) => (r, v, Some((file, dir))),
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(e);
            }
        }
    } else if ctype.starts_with("application/json") || ctype.is_empty() {
        let limit = super::MAX_JSON_BODY_BYTES.min(app.config.max_body_bytes);
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::JsonTooLarge {
                limit_kib: (limit >> 10) as u64,
            })?;
        let (r, v) = parse_request(&bytes)?;
        (r, v, None)
    } else {
        return Err(ApiError::BadRequest(format!(
            "Content-Type '{}' is not application/json or multipart/form-data",
            crate::ids::truncate(&ctype, 60)
        )));
    };
    let app2 = app.clone();
    let upload2 = upload.clone();
    let spec = blocking(move || {
        let up = upload2.as_ref().map(|(f, d)| (f.as_path(), d.as_path()));
        Ok(prepare(&app2.config, &request, up)?)
    })
    .await;
    let spec = match spec {
        Ok(s) => s,
        Err(e) => {
            if let Some((_, dir)) = &upload {
                let _ = tokio::fs::remove_dir_all(dir).await;
            }
            return Err(e);
        }
    };
    let record = JobRecord::new(id.clone(), value, spec, false);
    let record = match app.queue.submit(record, true) {
        Ok(r) => r,
        Err(e) => {
            if let Some((_, dir)) = &upload {
                let _ = tokio::fs::remove_dir_all(dir).await;
            }
            return Err(e.into());
        }
    };
    let mut resp = json_response(StatusCode::ACCEPTED, job_view(&record));
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Store the `file` part under `dir` and parse the `request` part.
async fn read_upload(
    app: &App,
    mut multipart: Multipart,
    dir: &std::path::Path,
) -> Result<(JobRequest, serde_json::Value, std::path::PathBuf), ApiError> {
    let limit_mb = (app.config.max_body_bytes >> 20) as u64;
    let part_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit_mb }
        } else {
            ApiError::BadRequest(format!("multipart body: {}", e.body_text()))
        }
    };
    let mut request = None;
    let mut file = None;
    while let Some(mut field) = multipart.next_field().await.map_err(part_error)? {
        match field.name().unwrap_or("") {
            "request" => {
                let bytes = field.bytes().await.map_err(part_error)?;
                request = Some(parse_request(&bytes)?);
            }
            "file" => {
                // Keep only a plain final component of the client's name.
                let name = field
                    .file_name()
                    .and_then(|n| n.rsplit(['/', '\\']).next())
                    .filter(|n| crate::ids::check_file_name(n).is_ok())
                    .unwrap_or("upload.nc")
                    .to_string();
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(ApiError::internal)?;
                let path = dir.join(&name);
                let mut out = tokio::fs::File::create(&path)
                    .await
                    .map_err(ApiError::internal)?;
                let mut size = 0usize;
                while let Some(chunk) = field.chunk().await.map_err(part_error)? {
                    size += chunk.len();
                    out.write_all(&chunk).await.map_err(ApiError::internal)?;
                }
                out.flush().await.map_err(ApiError::internal)?;
                if size == 0 {
                    return Err(ApiError::Unprocessable("the uploaded file is empty".into()));
                }
                file = Some(path);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected multipart part '{}': send 'file' and 'request'",
                    crate::ids::truncate(other, 40)
                )))
            }
        }
    }
    let (req, value) = request.ok_or_else(|| {
        ApiError::Unprocessable("the multipart body has no 'request' part".into())
    })?;
    let file = file
        .ok_or_else(|| ApiError::Unprocessable("the multipart body has no 'file' part".into()))?;
    Ok((req, value, file))
}
