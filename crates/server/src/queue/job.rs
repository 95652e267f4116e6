//! What a job is: its validated specification and the record kept of it in
//! `jobs/<id>.json`, from submission to its end.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a job is in its life; the last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// On a worker, downscaling.
    Running,
    /// Finished, and its run is published.
    Succeeded,
    /// Ended with an error (or was interrupted by a shutdown).
    Failed,
    /// Cancelled by a client before it finished.
    Cancelled,
}

impl JobStatus {
    /// Every status, in the order of a job's life (for the metrics).
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The status as the API and metrics spell it.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended (and can no longer be cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A validated job, with server-side paths (never shown to clients).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// The forecast to downscale (NetCDF or GRIB2).
    pub input: PathBuf,
    /// The fine DEM.
    pub terrain: PathBuf,
    /// The grid to downscale to.
    pub target: TargetSpec,
    /// Variables as the client named them; empty means all.
    pub vars: Vec<String>,
    /// One of [`super::METHODS`].
    pub method: String,
    /// Valid times to downscale, without repeats; empty means all.
    pub times: Vec<DateTime<Utc>>,
    /// The forecast's reference time, when the client gave one.
    pub reference_time: Option<DateTime<Utc>>,
    /// Directory of an uploaded input, removed when the job ends.
    pub upload_dir: Option<PathBuf>,
}

/// The target grid of a validated job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSpec {
    /// An equal-area grid over a region.
    Region {
        /// `[south, north, west, east]` in degrees.
        region: [f64; 4],
        /// Cell size in km.
        resolution_km: f64,
    },
    /// The grid of a file of the input directory.
    GridLike {
        /// The file, resolved inside the input directory.
        path: PathBuf,
    },
}

/// A job as stored in `jobs/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id, also the id of the run it publishes.
    pub id: String,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// Percent done, 0 to 100, as the pipeline reports it.
    pub progress: f32,
    /// What the job is doing now, in words.
    pub step: String,
    /// When it was submitted.
    pub created: DateTime<Utc>,
    /// When a worker took it.
    pub started: Option<DateTime<Utc>>,
    /// When it ended, however it ended.
    pub finished: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<String>,
    /// The run it published, once succeeded.
    pub run: Option<String>,
    /// The server's own demo job, which the server waits for before it is ready.
    #[serde(default)]
    pub demo: bool,
    /// A client asked to cancel it (a running job stops at its next tile).
    #[serde(default)]
    pub cancel_requested: bool,
    /// Times a worker has started it: a job the server stopped under is
    /// queued again at the next start, up to [`crate::queue::MAX_ATTEMPTS`].
    #[serde(default)]
    pub attempts: u32,
    /// The request as submitted.
    pub request: serde_json::Value,
    /// The request validated and resolved to server paths.
    pub spec: JobSpec,
}

impl JobRecord {
    /// A queued job, not yet started.
    pub fn new(id: String, request: serde_json::Value, spec: JobSpec, demo: bool) -> JobRecord {
        JobRecord {
            id,
            status: JobStatus::Queued,
            progress: 0.0,
            step: "queued".into(),
            created: Utc::now(),
            started: None,
            finished: None,
            error: None,
            run: None,
            demo,
            cancel_requested: false,
            attempts: 0,
            request,
            spec,
        }
    }
}
