//! The job queue: downscaling jobs submitted over HTTP, run by a fixed pool
//! of worker threads (never on the async executor), persisted as
//! `jobs/<id>.json` so that they survive restarts.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use finecast_grid::{Grid, Region};
use finecast_pipeline::{run_downscale, DownscaleRequest, JobControl, PipelineError, Target};
use finecast_tiles::TileSpec;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::ApiError;
use crate::ids::{file_in_dir, write_atomic};
use crate::priority::{lower_thread_priority, pool, JOB_NICE};
use crate::store::{RunOrigin, Store, OUTPUT_NC};

/// Methods a job may ask for (`model`: the shipped Burn networks).
pub const METHODS: &[&str] = &[
    "nearest", "bilinear", "bicubic", "lapse", "gradient", "model",
];

/// What `interrupted by shutdown` jobs say, so clients can resubmit them.
pub const INTERRUPTED: &str = "interrupted by shutdown";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A job request as clients send it (the JSON body, or the `request` part
/// of a multipart upload).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// A file in the server's input directory (not with an upload).
    #[serde(default)]
    pub input: Option<String>,
    /// DEM file in the input directory; default: the server's terrain.
    #[serde(default)]
    pub terrain: Option<String>,
    pub target: TargetRequest,
    /// Variable names or standard names; empty means all.
    #[serde(default)]
    pub vars: Vec<String>,
    #[serde(default = "default_method")]
    pub method: String,
    /// Valid times (ISO 8601); empty means all.
    #[serde(default)]
    pub times: Vec<String>,
    /// The forecast's reference time, when the input does not say.
    #[serde(default)]
    pub reference_time: Option<String>,
}

fn default_method() -> String {
    "lapse".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRequest {
    /// `[south, north, west, east]` in degrees.
    #[serde(default)]
    pub region: Option<[f64; 4]>,
    #[serde(default)]
    pub resolution_km: Option<f64>,
    /// A file in the input directory whose grid is the target.
    #[serde(default)]
    pub grid_like: Option<String>,
}

/// A validated job, with server-side paths (never shown to clients).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    pub input: PathBuf,
    pub terrain: PathBuf,
    pub target: TargetSpec,
    pub vars: Vec<String>,
    pub method: String,
    pub times: Vec<DateTime<Utc>>,
    pub reference_time: Option<DateTime<Utc>>,
    /// Directory of an uploaded input, removed when the job ends.
    pub upload_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSpec {
    Region {
        region: [f64; 4],
        resolution_km: f64,
    },
    GridLike {
        path: PathBuf,
    },
}

/// A job as stored in `jobs/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub status: JobStatus,
    pub progress: f32,
    pub step: String,
    pub created: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub run: Option<String>,
    #[serde(default)]
    pub demo: bool,
    #[serde(default)]
    pub cancel_requested: bool,
    /// The request as submitted.
    pub request: serde_json::Value,
    pub spec: JobSpec,
}

impl JobRecord {
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
            request,
            spec,
        }
    }

    /// The public view: OGC API - Processes status info, without server paths.
    pub fn view(&self) -> serde_json::Value {
        let mut links = vec![serde_json::json!({
            "href": format!("/v1/jobs/{}", self.id), "rel": "self", "type": "application/json"
        })];
        if let Some(run) = &self.run {
            links.push(serde_json::json!({
                "href": format!("/v1/runs/{run}"), "rel": "results", "type": "application/json"
            }));
        }
        serde_json::json!({
            "id": self.id,
            "jobID": self.id,
            "type": "process",
            "processID": "downscale",
            "status": self.status.name(),
            "progress": (self.progress.clamp(0.0, 100.0) * 10.0).round() / 10.0,
            "step": self.step,
            "created": crate::times::iso(&self.created),
            "started": self.started.as_ref().map(crate::times::iso),
            "finished": self.finished.as_ref().map(crate::times::iso),
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "demo": self.demo,
            "run": self.run,
            "request": self.request,
            "links": links,
        })
    }
}

struct JobEntry {
    record: Mutex<JobRecord>,
    cancel: AtomicBool,
    /// Set with `cancel` when the server stops: the job then fails as
    /// interrupted instead of counting as cancelled by a user.
    shutdown: AtomicBool,
}

pub struct Jobs {
    dir: PathBuf,
    runs_dir: PathBuf,
    entries: RwLock<BTreeMap<String, Arc<JobEntry>>>,
    queue: Mutex<VecDeque<String>>,
    wake: Condvar,
    max_queue: usize,
    stopping: AtomicBool,
    store: Arc<Store>,
    delay: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Jobs {
    /// Load the job records. A job found running was interrupted (the server
    /// died or stopped under it): it is marked failed, never silently lost.
    /// Queued jobs go back into the queue in submission order.
    pub fn open(config: &Config, store: Arc<Store>) -> Arc<Jobs> {
        let jobs = Arc::new(Jobs {
            dir: config.jobs_dir.clone(),
            runs_dir: config.runs_dir.clone(),
            entries: RwLock::new(BTreeMap::new()),
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            max_queue: config.max_queue,
            stopping: AtomicBool::new(false),
            store,
            delay: config.job_delay,
        });
        let mut records: Vec<JobRecord> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&jobs.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                match std::fs::read(&path).map(|b| serde_json::from_slice::<JobRecord>(&b)) {
                    Ok(Ok(r)) if crate::ids::check_id(&r.id).is_ok() => records.push(r),
                    Ok(Ok(_)) => tracing::error!("{}: invalid job id", path.display()),
                    Ok(Err(e)) => tracing::error!("{}: {e}", path.display()),
                    Err(e) => tracing::error!("{}: {e}", path.display()),
                }
            }
        }
        records.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        for mut r in records {
            if r.status == JobStatus::Running {
                tracing::warn!(
                    "job {} was running when the server stopped: marking it failed",
                    r.id
                );
                r.status = JobStatus::Failed;
                r.error = Some(INTERRUPTED.into());
                r.step = "failed".into();
                r.finished = Some(Utc::now());
                jobs.persist(&r);
            }
            if r.status == JobStatus::Queued {
                lock(&jobs.queue).push_back(r.id.clone());
            }
            jobs.insert_entry(r);
        }
        jobs
    }

    fn insert_entry(&self, r: JobRecord) {
        let entry = Arc::new(JobEntry {
            record: Mutex::new(r.clone()),
            cancel: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        });
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.id, entry);
    }

    fn entry(&self, id: &str) -> Result<Arc<JobEntry>, ApiError> {
        let id = crate::ids::check_id(id)?;
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("no job '{id}'")))
    }

    fn persist(&self, r: &JobRecord) {
        let path = self.dir.join(format!("{}.json", r.id));
        let result = serde_json::to_vec_pretty(r)
            .map_err(std::io::Error::other)
            .and_then(|b| write_atomic(&path, &b));
        if let Err(e) = result {
            tracing::error!("cannot save job {}: {e}", path.display());
        }
    }

    /// Queue a job; with `enforce_limit`, a full queue refuses it (429).
    pub fn submit(&self, record: JobRecord, enforce_limit: bool) -> Result<JobRecord, ApiError> {
        let mut queue = lock(&self.queue);
        if self.stopping.load(Ordering::SeqCst) {
            return Err(ApiError::NotReady("the server is shutting down".into()));
        }
        if enforce_limit && queue.len() >= self.max_queue {
            return Err(ApiError::QueueFull(queue.len()));
        }
        self.persist(&record);
        queue.push_back(record.id.clone());
        self.insert_entry(record.clone());
        drop(queue);
        self.wake.notify_one();
        tracing::info!(job = %record.id, "job queued");
        Ok(record)
    }

    pub fn get(&self, id: &str) -> Result<JobRecord, ApiError> {
        Ok(lock(&self.entry(id)?.record).clone())
    }

    /// All jobs, newest first.
    pub fn list(&self) -> Vec<JobRecord> {
        let entries: Vec<Arc<JobEntry>> = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out: Vec<JobRecord> = entries.iter().map(|e| lock(&e.record).clone()).collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        out
    }

    /// Cancel a queued job at once, or ask a running one to stop (the
    /// pipeline checks between tiles). Finished jobs cannot be cancelled.
    pub fn cancel(&self, id: &str) -> Result<JobRecord, ApiError> {
        let entry = self.entry(id)?;
        let mut r = lock(&entry.record);
        match r.status {
            JobStatus::Queued => {
                lock(&self.queue).retain(|q| q != &r.id);
                r.status = JobStatus::Cancelled;
                r.step = "cancelled".into();
                r.cancel_requested = true;
                r.finished = Some(Utc::now());
                self.persist(&r);
                remove_upload(&r.spec);
            }
            JobStatus::Running => {
                entry.cancel.store(true, Ordering::SeqCst);
                r.cancel_requested = true;
                r.step = "cancelling".into();
            }
            s => {
                return Err(ApiError::Conflict(format!(
                    "job '{}' has already finished ({})",
                    r.id,
                    s.name()
                )))
            }
        }
        Ok(r.clone())
    }

    pub fn queue_depth(&self) -> usize {
        lock(&self.queue).len()
    }

    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let list = self.list();
        JobStatus::ALL
            .iter()
            .map(|s| (s.name(), list.iter().filter(|r| r.status == *s).count()))
            .collect()
    }

    /// Whether the demo job has yet to finish (the server is not ready).
    pub fn demo_pending(&self) -> bool {
        self.list().iter().any(|r| r.demo && !r.status.is_final())
    }

    pub fn start_workers(self: &Arc<Self>, n: usize) -> Vec<JoinHandle<()>> {
        (0..n)
            .filter_map(|k| {
                let jobs = self.clone();
                std::thread::Builder::new()
                    .name(format!("finecast-job-{k}"))
                    .spawn(move || jobs.worker())
                    .map_err(|e| tracing::error!("cannot start a job worker: {e}"))
                    .ok()
            })
            .collect()
    }

    fn worker(&self) {
        // Jobs are batch work: their threads run at a lower CPU priority, so
        // tiles, maps and point forecasts keep their latency while a job
        // fills every core.
        lower_thread_priority(JOB_NICE);
        let pool = match pool("finecast-job-tiles", 0, JOB_NICE) {
            Ok(pool) => pool,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        loop {
            let id = {
                let mut queue = lock(&self.queue);
                loop {
                    if self.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Some(id) = queue.pop_front() {
                        break id;
                    }
                    queue = self.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
            };
            if let Ok(entry) = self.entry(&id) {
                pool.install(|| self.run_one(&entry));
            }
        }
    }

    fn run_one(&self, entry: &JobEntry) {
        let id = {
            let mut r = lock(&entry.record);
            if r.status != JobStatus::Queued {
                return;
            }
            r.status = JobStatus::Running;
            r.started = Some(Utc::now());
            r.step = "starting".into();
            self.persist(&r);
            r.id.clone()
        };
        let span = tracing::info_span!("job", job = %id);
        let _guard = span.enter();
        tracing::info!("job started");
        let started = Instant::now();
        let result = self.execute(entry);
        let mut r = lock(&entry.record);
        r.finished = Some(Utc::now());
        match result {
            Ok(run) => {
                r.status = JobStatus::Succeeded;
                r.progress = 100.0;
                r.step = "done".into();
                r.run = Some(run);
                tracing::info!(seconds = started.elapsed().as_secs_f64(), "job succeeded");
            }
            Err(Failure::Cancelled) if entry.shutdown.load(Ordering::SeqCst) => {
                r.status = JobStatus::Failed;
                r.step = "failed".into();
                r.error = Some(INTERRUPTED.into());
                tracing::warn!("job interrupted by shutdown");
            }
            Err(Failure::Cancelled) => {
                r.status = JobStatus::Cancelled;
                r.step = "cancelled".into();
                tracing::info!("job cancelled");
            }
            Err(Failure::Failed(msg)) => {
                r.status = JobStatus::Failed;
                r.step = "failed".into();
                tracing::warn!("job failed: {msg}");
                r.error = Some(msg);
            }
        }
        self.persist(&r);
        remove_upload(&r.spec);
    }

    fn execute(&self, entry: &JobEntry) -> Result<String, Failure> {
        let (id, spec, created, demo) = {
            let r = lock(&entry.record);
            (r.id.clone(), r.spec.clone(), r.created, r.demo)
        };
        let ctl = Control { entry };
        let deadline = Instant::now() + self.delay;
        while Instant::now() < deadline {
            if ctl.is_cancelled() {
                return Err(Failure::Cancelled);
            }
            ctl.progress(0.0, "waiting (debug delay)");
            std::thread::sleep(Duration::from_millis(20).min(deadline - Instant::now()));
        }
        let tmp = self.runs_dir.join(format!(".tmp-{id}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", tmp.display())))?;
        let result = (|| {
            let req = DownscaleRequest {
                input: spec.input.clone(),
                terrain: spec.terrain.clone(),
                land_mask: None,
                target: pipeline_target(&spec.target)?,
                method: downscale_method(&spec.method)?,
                vars: spec.vars.clone(),
                times: spec.times.clone(),
                out: tmp.join(OUTPUT_NC),
                tiles: TileSpec::new(256, 16, 16).map_err(|e| Failure::Failed(e.to_string()))?,
                command_line: format!("finecast serve job {id}: method {}", spec.method),
            };
            run_downscale(&req, &ctl).map_err(|e| match e {
                PipelineError::Cancelled => Failure::Cancelled,
                e => Failure::Failed(e.to_string()),
            })?;
            ctl.progress(99.0, "publishing the run");
            let origin = RunOrigin {
                id: id.clone(),
                job_id: Some(id.clone()),
                demo,
                created,
                reference_time: spec.reference_time,
            };
            let meta =
                Store::describe_output(&tmp, origin).map_err(|e| Failure::Failed(e.to_string()))?;
            let dir = self.runs_dir.join(&id);
            // The rename publishes the run: readers never see a partial one.
            std::fs::rename(&tmp, &dir)
                .map_err(|e| Failure::Failed(format!("publishing the run: {e}")))?;
            let run = Store::open_run(&dir, meta).map_err(|e| Failure::Failed(e.to_string()))?;
            self.store.insert(run);
            Ok(id.clone())
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Stop taking jobs, interrupt running ones and wait (up to `wait`) for
    /// the workers to record them as failed.
    pub fn shutdown(&self, workers: Vec<JoinHandle<()>>, wait: Duration) {
        {
            let _queue = lock(&self.queue);
            self.stopping.store(true, Ordering::SeqCst);
        }
        self.wake.notify_all();
        for entry in self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            if lock(&entry.record).status == JobStatus::Running {
                entry.shutdown.store(true, Ordering::SeqCst);
                entry.cancel.store(true, Ordering::SeqCst);
            }
        }
        let deadline = Instant::now() + wait;
        for w in workers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }
}

enum Failure {
    Cancelled,
    Failed(String),
}

/// Progress and cancellation for the pipeline, backed by the job's entry.
struct Control<'a> {
    entry: &'a JobEntry,
}

impl JobControl for Control<'_> {
    fn progress(&self, percent: f32, step: &str) {
        let mut r = lock(&self.entry.record);
        r.progress = percent;
        if !r.cancel_requested {
            r.step = step.to_string();
        }
        tracing::debug!(percent = format!("{percent:.0}"), "{step}");
    }

    fn is_cancelled(&self) -> bool {
        self.entry.cancel.load(Ordering::Relaxed)
    }
}

fn remove_upload(spec: &JobSpec) {
    if let Some(dir) = &spec.upload_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn pipeline_target(t: &TargetSpec) -> Result<Target, Failure> {
    Ok(match t {
        TargetSpec::Region {
            region,
            resolution_km,
        } => Target::Region {
            region: Region::new(region[0], region[1], region[2], region[3])
                .map_err(|e| Failure::Failed(e.to_string()))?,
            resolution_m: resolution_km * 1000.0,
        },
        TargetSpec::GridLike { path } => Target::GridLike(path.clone()),
    })
}

/// The pipeline method for a validated method name. Generic over what the
/// pipeline's request takes (a baseline, or a method type built from one),
/// so that this code does not depend on that choice.
fn downscale_method(name: &str) -> Result<finecast_pipeline::Method, Failure> {
    // `model` loads the shipped weights (or $FINECAST_WEIGHTS, $FINECAST_PRECIP_WEIGHTS, $FINECAST_WIND_WEIGHTS).
    finecast_pipeline::Method::parse(name, None).map_err(|e| Failure::Failed(e.to_string()))
}

/// The most variables a job request may name.
const MAX_REQUEST_VARS: usize = 64;
/// The most valid times a job request may name (a year of hourly steps fits).
const MAX_REQUEST_TIMES: usize = 10_000;

/// Check a request against the files it names and the server's limits, and
/// resolve it to server-side paths. Blocking: it opens the input.
pub fn prepare(
    config: &Config,
    req: &JobRequest,
    upload: Option<(&Path, &Path)>,
) -> Result<JobSpec, ApiError> {
    let invalid = ApiError::Unprocessable;
    // More entries than any input holds is a mistake or an attack: refused
    // before anything is read, kept or run.
    if req.vars.len() > MAX_REQUEST_VARS || req.times.len() > MAX_REQUEST_TIMES {
        return Err(invalid(format!(
            "{} 'vars' and {} 'times' given; at most {MAX_REQUEST_VARS} and {MAX_REQUEST_TIMES}",
            req.vars.len(),
            req.times.len()
        )));
    }
    if !METHODS.contains(&req.method.as_str()) {
        return Err(invalid(format!(
            "unknown method '{}'; available: {}",
            crate::ids::truncate(&req.method, 40),
            METHODS.join(", ")
        )));
    }
    let (input, upload_dir) = match (upload, &req.input) {
        (Some(_), Some(_)) => return Err(invalid("give either an uploaded file or 'input', not both".into())),
        (Some((file, dir)), None) => (file.to_path_buf(), Some(dir.to_path_buf())),
        (None, Some(name)) => (file_in_dir(&config.input_dir, name)?, None),
        (None, None) => {
            return Err(invalid(
                "name an input file of the input directory in 'input', or upload one (multipart part 'file')".into(),
            ))
        }
    };
    let terrain = match &req.terrain {
        Some(name) => file_in_dir(&config.input_dir, name)?,
        None => config.terrain.clone().ok_or_else(|| {
            invalid("this server has no default terrain: name a DEM file of the input directory in 'terrain'".into())
        })?,
    };
    let t = &req.target;
    let target = match (t.region, t.resolution_km, &t.grid_like) {
        (Some(r), Some(km), None) => {
            let region = Region::new(r[0], r[1], r[2], r[3]).map_err(|e| invalid(format!("target.region: {e}")))?;
            if !(km.is_finite() && (0.05..=200.0).contains(&km)) {
                return Err(invalid(format!("target.resolution_km {km} must be between 0.05 and 200")));
            }
            let grid = Grid::equal_area_for_region(&region, km * 1000.0).map_err(|e| invalid(format!("target: {e}")))?;
            check_cells(config, &grid)?;
            TargetSpec::Region {
                region: r,
                resolution_km: km,
            }
        }
        (None, None, Some(name)) => {
            let path = file_in_dir(&config.input_dir, name)?;
            let ds = finecast_io::open(&path).map_err(|e| invalid(format!("target.grid_like: {e}")))?;
            let first = ds
                .variables()
                .into_iter()
                .next()
                .ok_or_else(|| invalid(format!("target.grid_like '{name}' has no gridded variable")))?;
            let grid = ds.grid(&first.name).map_err(|e| invalid(format!("target.grid_like: {e}")))?;
            check_cells(config, &grid)?;
            TargetSpec::GridLike { path }
        }
        _ => {
            return Err(invalid(
                "target needs either 'region' [S,N,W,E] with 'resolution_km', or 'grid_like' (a file name)".into(),
            ))
        }
    };
    let mut times = req
        .times
        .iter()
        .map(|s| crate::times::parse_time(s))
        .collect::<Result<Vec<_>, _>>()?;
    // A time asked for twice is one time.
    let mut seen_times = std::collections::HashSet::new();
    times.retain(|t| seen_times.insert(*t));
    let reference_time = req
        .reference_time
        .as_deref()
        .map(crate::times::parse_time)
        .transpose()?;
    let ds = finecast_io::open(&input)
        .map_err(|e| invalid(format!("input: {}", shown(e.to_string(), &input))))?;
    let names: Vec<String> = if req.vars.is_empty() {
        ds.variables().into_iter().map(|v| v.name).collect()
    } else {
        req.vars
            .iter()
            .map(|v| {
                ds.resolve(v)
                    .map_err(|e| invalid(shown(e.to_string(), &input)))
            })
            .collect::<Result<_, _>>()?
    };
    if names.is_empty() {
        return Err(invalid("the input has no gridded variables".into()));
    }
    // A variable asked for twice (by name or standard name) is one variable.
    let mut seen_vars = std::collections::HashSet::new();
    let vars: Vec<String> = req
        .vars
        .iter()
        .zip(&names)
        .filter(|(_, name)| seen_vars.insert(name.to_string()))
        .map(|(asked, _)| asked.clone())
        .collect();
    if !times.is_empty() {
        for n in &names {
            let have = ds
                .times(n)
                .map_err(|e| invalid(shown(e.to_string(), &input)))?;
            if !have.is_empty() && !times.iter().any(|t| have.contains(t)) {
                return Err(ApiError::NotFound(format!(
                    "variable '{n}' has none of the requested times; it has {}",
                    have.iter()
                        .map(crate::times::iso)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    Ok(JobSpec {
        input,
        terrain,
        target,
        vars,
        method: req.method.clone(),
        times,
        reference_time,
        upload_dir,
    })
}

/// Error text with server directories reduced to the file name.
fn shown(msg: String, path: &Path) -> String {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => msg
            .replace(&path.display().to_string(), &name.to_string_lossy())
            .replace(&format!("{}/", dir.display()), ""),
        _ => msg,
    }
}

fn check_cells(config: &Config, grid: &Grid) -> Result<(), ApiError> {
    let cells = (grid.nx() as u64) * (grid.ny() as u64);
    if cells > config.max_bbox_cells {
        return Err(ApiError::Unprocessable(format!(
            "the target grid has {} x {} = {cells} cells, above this server's limit of {} (--max-bbox-cells)",
            grid.nx(),
            grid.ny(),
            config.max_bbox_cells
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: crate::ServeArgs,
    }

    fn sample(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/sample")
            .join(name)
    }

    fn setup(dir: &Path) -> (Config, Arc<Jobs>, Arc<Store>) {
        let cli = Cli::parse_from(["t", "--data-dir", &dir.display().to_string(), "--no-demo"]);
        let config = Config::from_args(&cli.serve).expect("config");
        let store = Arc::new(Store::open(&config.runs_dir, 1 << 20, Arc::default()));
        let jobs = Jobs::open(&config, store.clone());
        (config, jobs, store)
    }

    fn spec() -> JobSpec {
        JobSpec {
            input: sample("forecast_alps_0p25.nc"),
            terrain: sample("terrain_alps_etopo5.nc"),
            target: TargetSpec::Region {
                region: [46.0, 47.0, 7.0, 8.0],
                resolution_km: 3.0,
            },
            vars: vec!["t2m".into()],
            method: "lapse".into(),
            times: vec![],
            reference_time: None,
            upload_dir: None,
        }
    }

    /// The cancel flag reaches the pipeline (checked per tile and time step):
    /// the job ends cancelled and publishes nothing.
    #[test]
    fn a_cancelled_job_stops_in_the_pipeline_and_publishes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, jobs, store) = setup(dir.path());
        let r = jobs
            .submit(
                JobRecord::new("job-a".into(), serde_json::Value::Null, spec(), false),
                true,
            )
            .expect("submit");
        let entry = jobs.entry(&r.id).expect("entry");
        lock(&jobs.queue).clear();
        entry.cancel.store(true, Ordering::SeqCst);
        jobs.run_one(&entry);
        let done = jobs.get(&r.id).expect("job");
        assert_eq!(done.status, JobStatus::Cancelled);
        assert!(store.is_empty());
        assert_eq!(
            std::fs::read_dir(&config.runs_dir).expect("runs").count(),
            0
        );

        // The same job without the flag succeeds and publishes its run.
        let r = jobs
            .submit(
                JobRecord::new("job-b".into(), serde_json::Value::Null, spec(), false),
                true,
            )
            .expect("submit");
        lock(&jobs.queue).clear();
        jobs.run_one(&jobs.entry(&r.id).expect("entry"));
        let done = jobs.get(&r.id).expect("job");
        assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.error);
        let run = store.get("job-b").expect("run");
        assert_eq!(run.meta.method, "lapse");
        assert!(
            run.orography.is_some(),
            "the fine terrain travels with the run"
        );
        assert!(config.runs_dir.join("job-b/run.json").is_file());
    }

    /// A server configuration whose input directory holds the Alps sample
    /// as `f.nc`.
    fn config_with_sample_input(dir: &Path) -> Config {
        let (config, _, _) = setup(dir);
        std::fs::copy(
            sample("forecast_alps_0p25.nc"),
            config.input_dir.join("f.nc"),
        )
        .expect("copy");
        config
    }

    /// 20,000 copies of a variable are refused before anything is read;
    /// repeats within the limits are folded into one.
    #[test]
    fn prepare_refuses_runaway_lists_and_folds_repeats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_with_sample_input(dir.path());
        let target = serde_json::json!({"region": [46, 47, 7, 8], "resolution_km": 3});
        let runaway: JobRequest = serde_json::from_value(serde_json::json!({
            "input": "f.nc", "target": target, "vars": vec!["t2m"; 20_000]
        }))
        .expect("request");
        let err = prepare(&config, &runaway, None)
            .expect_err("runaway")
            .to_string();
        assert!(err.contains("20000 'vars'"), "{err}");
        let repeats: JobRequest = serde_json::from_value(serde_json::json!({
            "input": "f.nc", "target": target,
            "vars": ["t2m", "t2m", "air_temperature", "tp"],
            "times": ["2024-01-15T12:00Z", "2024-01-15T12:00:00Z"]
        }))
        .expect("request");
        let spec = prepare(&config, &repeats, None).expect("repeats are fine");
        assert_eq!(spec.vars, vec!["t2m", "tp"]);
        assert_eq!(spec.times.len(), 1);
    }

    #[test]
    fn prepare_validates_against_the_input_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_with_sample_input(dir.path());
        let req =
            |v: serde_json::Value| -> JobRequest { serde_json::from_value(v).expect("request") };
        let ok = req(
            serde_json::json!({"input": "f.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 3}}),
        );
        assert!(prepare(&config, &ok, None).is_ok());
        for (bad, why) in [
            (
                serde_json::json!({"input": "f.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 3}, "method": "kriging"}),
                "unknown method",
            ),
            (
                serde_json::json!({"input": "../f.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 3}}),
                "plain file name",
            ),
            (
                serde_json::json!({"input": "missing.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 3}}),
                "does not exist",
            ),
            (
                serde_json::json!({"input": "f.nc", "target": {"region": [47, 46, 7, 8], "resolution_km": 3}}),
                "south",
            ),
            (
                serde_json::json!({"input": "f.nc", "target": {"resolution_km": 3}}),
                "target needs",
            ),
            (
                serde_json::json!({"input": "f.nc", "target": {"region": [46, 47, 7, 8], "resolution_km": 3}, "vars": ["snow"]}),
                "snow",
            ),
        ] {
            let err = prepare(&config, &req(bad), None)
                .expect_err(why)
                .to_string();
            assert!(err.contains(why), "{why}: {err}");
            assert!(
                !err.contains(&config.input_dir.display().to_string()),
                "server paths leak: {err}"
            );
        }
    }
}
