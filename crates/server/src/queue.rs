//! The job queue: downscaling jobs run by a fixed pool of worker threads
//! (never on the async executor), persisted as `jobs/<id>.json` so that they
//! survive restarts. It knows nothing of HTTP: its errors are
//! [`QueueError`]s, which the API maps to status codes in [`crate::error`].

mod job;
mod request;
mod worker;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;

pub use job::{JobRecord, JobSpec, JobStatus, TargetSpec};
pub use request::{prepare, JobRequest, METHODS};

use crate::config::Config;
use crate::ids::{write_atomic, IdError};
use crate::store::Store;
use crate::times::TimeError;

/// Starts of a job before the server gives up on it: a job the server stops
/// under (a crash, a kill, a shutdown) is queued again at the next start
/// until it has been started this many times.
pub const MAX_ATTEMPTS: u32 = 3;

/// Why the queue refused a request or a job request was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No job has this id.
    #[error("no job '{0}'")]
    NoSuchJob(String),
    /// `--max-queue` jobs (the number) are already waiting.
    #[error("the job queue is full ({0} jobs waiting)")]
    Full(usize),
    /// The server is stopping and takes no more jobs.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Only queued and running jobs can be cancelled.
    #[error("job '{id}' has already finished ({status})")]
    Finished {
        /// The job's id.
        id: String,
        /// How it finished (a [`JobStatus::name`]).
        status: &'static str,
    },
    /// A job request the server cannot run (bad method, target, variable,
    /// a limit exceeded); the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The job could not be recorded on disk (e.g. the disk is full), so it
    /// is not accepted: a job that would be lost at the next start is
    /// never acknowledged.
    #[error("cannot record the job: {0}")]
    Storage(String),
    /// Times were requested, but a variable has none of them.
    #[error("variable '{var}' has none of the requested times; it has {have}")]
    NoRequestedTime {
        /// The variable's name in the input.
        var: String,
        /// Its valid times, ISO 8601, comma-separated.
        have: String,
    },
    /// A job id, or a file name in a job request, that is refused.
    #[error(transparent)]
    Id(#[from] IdError),
    /// A time in a job request that is not ISO 8601.
    #[error(transparent)]
    Time(#[from] TimeError),
}

/// A job in memory: its record, and the flags its worker polls.
struct JobEntry {
    record: Mutex<JobRecord>,
    cancel: AtomicBool,
    /// Set with `cancel` when the server stops: the job then fails as
    /// interrupted instead of counting as cancelled by a user.
    shutdown: AtomicBool,
}

/// Every job the server knows, and the queue of those waiting for a worker.
pub struct JobQueue {
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

impl JobQueue {
    /// Load the job records. A job found running was interrupted (the server
    /// died or stopped under it): it is marked failed, never silently lost.
    /// Queued jobs go back into the queue in submission order.
    pub fn open(config: &Config, store: Arc<Store>) -> Arc<JobQueue> {
        let jobs = Arc::new(JobQueue {
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
                jobs.resume(&mut r);
            }
            if r.status == JobStatus::Queued {
                lock(&jobs.queue).push_back(r.id.clone());
            }
            jobs.insert_entry(r);
        }
        jobs
    }

    /// A job found running at start: the server stopped under it. If its
    /// run was published before the stop it succeeded; else it is queued
    /// again (its upload kept, a half-written run already cleaned by the
    /// store), unless it has been started [`MAX_ATTEMPTS`] times.
    fn resume(&self, r: &mut JobRecord) {
        if self
            .runs_dir
            .join(&r.id)
            .join(crate::store::RUN_JSON)
            .is_file()
        {
            tracing::info!(job = %r.id, "job published its run before the server stopped");
            r.status = JobStatus::Succeeded;
            r.progress = 100.0;
            r.step = "done".into();
            r.run = Some(r.id.clone());
            r.finished.get_or_insert_with(Utc::now);
        } else if r.attempts < MAX_ATTEMPTS {
            tracing::warn!(
                job = %r.id,
                attempt = r.attempts,
                "job was running when the server stopped: queued again"
            );
            r.status = JobStatus::Queued;
            r.progress = 0.0;
            r.step = format!(
                "queued again after the server stopped (attempt {} of {MAX_ATTEMPTS} next)",
                r.attempts + 1
            );
        } else {
            tracing::error!(job = %r.id, "job was running at {MAX_ATTEMPTS} server stops: failed");
            r.status = JobStatus::Failed;
            r.step = "failed".into();
            r.error = Some(format!(
                "the server stopped while this job ran, {MAX_ATTEMPTS} times; not retried again"
            ));
            r.finished = Some(Utc::now());
            remove_upload(&r.spec);
        }
        self.save(r);
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

    fn entry(&self, id: &str) -> Result<Arc<JobEntry>, QueueError> {
        let id = crate::ids::check_id(id)?;
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| QueueError::NoSuchJob(id.to_string()))
    }

    /// Record a job's progress on disk. A failure (logged) leaves the record
    /// in memory authoritative; a job whose end could not be saved is found
    /// running at the next start and runs again.
    fn save(&self, r: &JobRecord) {
        let _ = self.persist(r);
    }

    /// Record the job on disk; a failure is logged (and returned, for
    /// [`JobQueue::submit`] to refuse the job).
    fn persist(&self, r: &JobRecord) -> Result<(), QueueError> {
        let path = self.dir.join(format!("{}.json", r.id));
        let result = serde_json::to_vec_pretty(r)
            .map_err(std::io::Error::other)
            .and_then(|b| write_atomic(&path, &b));
        result.map_err(|e| {
            tracing::error!("cannot save job {}: {e}", path.display());
            QueueError::Storage(format!("{}: {e}", path.display()))
        })
    }

    /// Queue a job; with `enforce_limit`, a full queue refuses it (the demo
    /// job is queued whatever the limit).
    pub fn submit(&self, record: JobRecord, enforce_limit: bool) -> Result<JobRecord, QueueError> {
        let mut queue = lock(&self.queue);
        if self.stopping.load(Ordering::SeqCst) {
            return Err(QueueError::ShuttingDown);
        }
        if enforce_limit && queue.len() >= self.max_queue {
            return Err(QueueError::Full(queue.len()));
        }
        self.persist(&record)?;
        queue.push_back(record.id.clone());
        self.insert_entry(record.clone());
        drop(queue);
        self.wake.notify_one();
        tracing::info!(job = %record.id, "job queued");
        Ok(record)
    }

    /// A job's record as it is now.
    pub fn get(&self, id: &str) -> Result<JobRecord, QueueError> {
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
    pub fn cancel(&self, id: &str) -> Result<JobRecord, QueueError> {
        let entry = self.entry(id)?;
        let mut r = lock(&entry.record);
        match r.status {
            JobStatus::Queued => {
                lock(&self.queue).retain(|q| q != &r.id);
                r.status = JobStatus::Cancelled;
                r.step = "cancelled".into();
                r.cancel_requested = true;
                r.finished = Some(Utc::now());
                self.save(&r);
                remove_upload(&r.spec);
            }
            JobStatus::Running => {
                entry.cancel.store(true, Ordering::SeqCst);
                r.cancel_requested = true;
                r.step = "cancelling".into();
            }
            s => {
                return Err(QueueError::Finished {
                    id: r.id.clone(),
                    status: s.name(),
                })
            }
        }
        Ok(r.clone())
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Number of jobs in each status, by [`JobStatus::name`].
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

/// Delete the directory of an uploaded input once its job has ended.
fn remove_upload(spec: &JobSpec) {
    if let Some(dir) = &spec.upload_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

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

    fn setup(dir: &Path) -> (Config, Arc<JobQueue>, Arc<Store>) {
        let cli = Cli::parse_from(["t", "--data-dir", &dir.display().to_string(), "--no-demo"]);
        let config = Config::from_args(&cli.serve).expect("config");
        let store = Arc::new(Store::open(&config.runs_dir, 1 << 20, Arc::default()));
        let jobs = JobQueue::open(&config, store.clone());
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

    /// Jobs found running at start: queued again until their third start,
    /// then failed with a message; one whose run was already published is
    /// recorded as succeeded, not run twice.
    #[test]
    fn jobs_the_server_stopped_under_resume_up_to_three_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, jobs, store) = setup(dir.path());
        for (id, attempts) in [("job-a", 1), ("job-b", MAX_ATTEMPTS), ("job-c", 1)] {
            let mut r = JobRecord::new(id.into(), serde_json::Value::Null, spec(), false);
            r.status = JobStatus::Running;
            r.attempts = attempts;
            jobs.persist(&r).expect("persist");
        }
        std::fs::create_dir_all(config.runs_dir.join("job-c")).expect("run dir");
        std::fs::write(
            config.runs_dir.join("job-c").join(crate::store::RUN_JSON),
            b"{}",
        )
        .expect("run.json");
        drop(jobs);
        let reopened = JobQueue::open(&config, store);
        let a = reopened.get("job-a").expect("a");
        assert_eq!((a.status, a.attempts), (JobStatus::Queued, 1));
        assert!(a.step.contains("attempt 2 of 3"), "{}", a.step);
        assert_eq!(lock(&reopened.queue).iter().collect::<Vec<_>>(), ["job-a"]);
        let b = reopened.get("job-b").expect("b");
        assert_eq!(b.status, JobStatus::Failed);
        assert!(
            b.error.as_deref().unwrap_or("").contains("3 times"),
            "{:?}",
            b.error
        );
        let c = reopened.get("job-c").expect("c");
        assert_eq!(
            (c.status, c.run.as_deref()),
            (JobStatus::Succeeded, Some("job-c"))
        );
        // And the worker counts the next start.
        reopened.run_one(&reopened.entry("job-a").expect("entry"));
        let a = reopened.get("job-a").expect("a");
        assert_eq!(
            (a.status, a.attempts),
            (JobStatus::Succeeded, 2),
            "{:?}",
            a.error
        );
    }

    /// A deleted run disappears at once for new requests but its files stay
    /// until the last reader lets go; a restart finishes an unfinished
    /// deletion; retention keeps the newest runs by count and by age.
    #[test]
    fn deleted_runs_go_when_read_and_retention_keeps_the_newest() {
        use crate::store::{Retention, StoreError, DELETED_MARKER};
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, jobs, store) = setup(dir.path());
        for id in ["job-a", "job-b", "job-c", "job-d"] {
            let r = jobs
                .submit(
                    JobRecord::new(id.into(), serde_json::Value::Null, spec(), false),
                    true,
                )
                .expect("submit");
            lock(&jobs.queue).clear();
            jobs.run_one(&jobs.entry(&r.id).expect("entry"));
        }
        assert_eq!(store.len(), 4);

        let reading = store.get("job-a").expect("run");
        store.remove("job-a").expect("remove");
        assert!(matches!(store.get("job-a"), Err(StoreError::NoSuchRun(_))));
        assert!(matches!(
            store.remove("job-a"),
            Err(StoreError::NoSuchRun(_))
        ));
        let a_dir = reading.dir.clone();
        assert!(
            a_dir.join(crate::store::OUTPUT_NC).is_file(),
            "still being read"
        );
        drop(reading);
        assert!(!a_dir.exists(), "gone with its last reader");

        // A deletion the process did not finish is finished at start.
        std::fs::write(config.runs_dir.join("job-b").join(DELETED_MARKER), b"").expect("marker");
        drop(jobs);
        drop(store);
        let reopened = Store::open(&config.runs_dir, 1 << 20, Arc::default());
        assert!(reopened.get("job-b").is_err() && !config.runs_dir.join("job-b").exists());
        assert_eq!(reopened.len(), 2);

        // By count: the newest stays.
        let kept = reopened.with_retention(Retention {
            keep: Some(1),
            max_age: None,
        });
        assert_eq!(kept.list().len(), 1);
        assert_eq!(kept.get("latest").expect("latest").meta.id, "job-d");
        assert!(!config.runs_dir.join("job-c").exists());

        // By age: nothing is old yet; two hours on, everything is.
        let aged =
            Store::open(&config.runs_dir, 1 << 20, Arc::default()).with_retention(Retention {
                keep: None,
                max_age: Some(chrono::Duration::hours(1)),
            });
        assert_eq!(aged.len(), 1);
        let gone = aged.apply_retention(chrono::Utc::now() + chrono::Duration::hours(2));
        assert_eq!(gone, vec!["job-d".to_string()]);
        assert!(aged.is_empty() && !config.runs_dir.join("job-d").exists());
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

    /// A job is planned before it runs: cells × time steps over its
    /// variables beyond `--max-job-mb` is refused with the numbers; the
    /// same job within the budget, or with fewer times, is accepted.
    #[test]
    fn jobs_beyond_the_memory_budget_are_refused_with_the_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config_with_sample_input(dir.path());
        // 1 km over the Alps sample: ~100,000 cells, 4 times of 4 fields.
        let req: JobRequest = serde_json::from_value(serde_json::json!({
            "input": "f.nc", "target": {"region": [45.5, 48, 5.8, 10.6], "resolution_km": 1}
        }))
        .expect("request");
        config.max_job_bytes = 1 << 20;
        let err = prepare(&config, &req, None)
            .expect_err("over budget")
            .to_string();
        assert!(
            err.contains("--max-job-mb") && err.contains("MiB of fields"),
            "{err}"
        );
        let one_time: JobRequest = serde_json::from_value(serde_json::json!({
            "input": "f.nc", "target": {"region": [45.5, 48, 5.8, 10.6], "resolution_km": 1},
            "vars": ["t2m"], "times": ["2024-01-15T12:00:00Z"]
        }))
        .expect("request");
        assert!(
            prepare(&config, &one_time, None).is_ok(),
            "one field fits 1 MiB"
        );
        config.max_job_bytes = 64 << 20;
        assert!(prepare(&config, &req, None).is_ok());
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
