//! Running one job on a worker thread: the pipeline, with progress and
//! cancellation wired to the job's record, then publishing the run into the
//! store by renaming its directory into place.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use finecast_grid::Region;
use finecast_pipeline::{run_downscale, DownscaleRequest, JobControl, PipelineError, Target};
use finecast_tiles::TileSpec;

use super::{lock, remove_upload, JobEntry, JobQueue, JobStatus, TargetSpec};
use crate::priority::{lower_thread_priority, pool, JOB_NICE};
use crate::store::{RunOrigin, Store, OUTPUT_NC};

/// How a job ended other than with a run.
enum Failure {
    Cancelled,
    Failed(String),
}

impl JobQueue {
    /// Start `n` worker threads, each taking jobs from the queue one at a
    /// time until [`JobQueue::shutdown`].
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

    /// Run a queued job to its end and record how it ended. A job that is no
    /// longer queued (cancelled meanwhile) is left alone.
    pub(super) fn run_one(&self, entry: &JobEntry) {
        let id = {
            let mut r = lock(&entry.record);
            if r.status != JobStatus::Queued {
                return;
            }
            r.status = JobStatus::Running;
            r.started = Some(Utc::now());
            r.step = "starting".into();
            r.attempts += 1;
            self.save(&r);
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
            // The server is stopping, not the client: the job runs again at
            // the next start, from its kept inputs.
            Err(Failure::Cancelled) if entry.shutdown.load(Ordering::SeqCst) => {
                r.status = JobStatus::Queued;
                r.progress = 0.0;
                r.finished = None;
                r.step = "queued again: the server stopped while it ran".into();
                tracing::warn!("job interrupted by shutdown: it resumes at the next start");
                self.save(&r);
                return;
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
        self.save(&r);
        remove_upload(&r.spec);
    }

    /// Downscale into `runs/.tmp-<id>` and publish it as `runs/<id>`; the id
    /// of the published run.
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
            // A cancel that came while the output was being written is
            // honoured: the run is not published.
            if ctl.is_cancelled() {
                return Err(Failure::Cancelled);
            }
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
