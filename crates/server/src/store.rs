//! The run store: finished downscaling runs on disk (one directory each,
//! `runs/<id>/output.nc` + `run.json`) and their decoded fields in memory.
//!
//! Runs are immutable once published (a job writes into `runs/.tmp-<id>` and
//! renames it into place), so cached fields, tiles and ETags never go stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use finecast_grid::Grid;
use finecast_io::{InputRef, Selection, TimeSel};
use finecast_render::{default_range, Palette};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::cache::ByteLru;
use crate::ids::{write_atomic, IdError};
use crate::telemetry::Metrics;
use crate::times::TimeError;

/// The downscaled output of a run, in its directory.
pub const OUTPUT_NC: &str = "output.nc";
/// The run's metadata ([`RunMeta`]) beside its output.
pub const RUN_JSON: &str = "run.json";
/// Static variables written by the pipeline beside the downscaled ones.
pub const OROGRAPHY_VAR: &str = "orog";
/// Marker written into a deleted run's directory: the files go when the
/// last request reading them ends, and a restart before that finishes the
/// deletion instead of serving the run again.
pub const DELETED_MARKER: &str = ".deleted";

/// Why the store cannot load a run or answer a lookup.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A run directory that cannot be read or described; the file and why.
    #[error("{path}: {what}")]
    Run {
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// `latest` was asked for, but no run has been published yet.
    #[error("there are no runs yet")]
    NoRuns,
    /// No run has this id.
    #[error("no run '{0}'")]
    NoSuchRun(String),
    /// The run has no variables at all, so there is none to show by default.
    #[error("the run has no variables")]
    NoVariables,
    /// The run has no variable by this name, standard name or alias.
    #[error("run '{run}' has no variable '{name}'; it has {available}")]
    NoSuchVar {
        /// The run's id.
        run: String,
        /// The name asked for (shortened to 60 characters).
        name: String,
        /// The run's variable names, comma-separated.
        available: String,
    },
    /// The variable has no valid time equal to the one asked for.
    #[error("variable '{var}' of run '{run}' has no time {time}; valid times are {valid}")]
    NoSuchTime {
        /// The variable's name.
        var: String,
        /// The run's id.
        run: String,
        /// The time asked for, ISO 8601.
        time: String,
        /// The variable's valid times, ISO 8601, comma-separated.
        valid: String,
    },
    /// The run id is not a valid id.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The time asked for is not ISO 8601.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// A field of a loaded run cannot be read from its NetCDF file.
    #[error(transparent)]
    Read(#[from] finecast_io::IoError),
    /// A variable's field does not have the shape of the run's grid.
    #[error("variable '{var}' of run '{run}' is not on the run's grid")]
    OffGrid {
        /// The run's id.
        run: String,
        /// The variable's name.
        var: String,
    },
}

/// Everything `GET /v1/runs/{id}` reports, stored as `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    /// The run's id: its directory name, and the id of the job that made it.
    pub id: String,
    /// The job that made the run; `None` for an output copied in by hand.
    pub job_id: Option<String>,
    /// Made by the server itself from the bundled sample, not by a user.
    #[serde(default)]
    pub demo: bool,
    /// When the job that made the run was submitted.
    pub created: DateTime<Utc>,
    /// When the run was published (the newest is `latest`).
    pub finished: DateTime<Utc>,
    /// The forecast's reference (analysis) time: given with the job, else the
    /// first valid time of the input.
    pub reference_time: Option<DateTime<Utc>>,
    /// The downscaling method (`lapse`, `model`, ...), from the output's provenance.
    pub method: String,
    /// `kind:sha256` of each network used, comma-separated; null for the baselines.
    pub weights_sha256: Option<String>,
    /// The input files by file name (never the server's path) and checksum.
    pub inputs: Vec<InputRef>,
    /// The finecast version that wrote the output.
    pub finecast_version: Option<String>,
    /// The NetCDF `history` attribute: the command that made the output.
    pub history: Option<String>,
    /// The run's grid and projection.
    pub grid: GridMeta,
    /// `[west, south, east, north]` in degrees.
    pub bbox: [f64; 4],
    /// Every valid time of any variable, sorted.
    pub valid_times: Vec<DateTime<Utc>>,
    /// The run's variables, in the output's order.
    pub variables: Vec<VarMeta>,
}

/// The run's grid, as clients need it to place the data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridMeta {
    /// CF `grid_mapping_name` of the projection (`lambert_azimuthal_equal_area`, ...).
    pub grid_mapping: String,
    /// The projection as a proj4 string.
    pub proj4: String,
    /// Columns.
    pub nx: usize,
    /// Rows.
    pub ny: usize,
    /// Approximate cell width at the centre, metres.
    pub dx_m: f64,
    /// Approximate cell height at the centre, metres.
    pub dy_m: f64,
    /// Native x coordinates of the first and last column centres.
    pub x: [f64; 2],
    /// Native y coordinates of the first and last row centres.
    pub y: [f64; 2],
}

/// One variable of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VarMeta {
    /// The name in the output file (`t2m`, `tp`, ...).
    pub name: String,
    /// CF standard name, which requests may use instead of the name.
    pub standard_name: Option<String>,
    /// Human-readable title for maps and legends.
    pub long_name: Option<String>,
    /// Units as the output file states them (`K`, `m`, ...).
    pub units: String,
    /// Empty for static fields (orography).
    pub times: Vec<DateTime<Utc>>,
    /// Default palette for maps and tiles.
    pub palette: String,
    /// Default colour range: fixed per quantity where one is known, so that
    /// neighbouring tiles and successive runs agree; else the 2-98 % range.
    pub display_range: [f64; 2],
    /// Minimum and maximum over all times.
    pub value_range: Option<[f64; 2]>,
}

/// A run loaded for serving.
pub struct Run {
    /// What `run.json` says.
    pub meta: RunMeta,
    /// The grid of its fields, for locating points and rendering.
    pub grid: Grid,
    /// Its directory under the store.
    pub dir: PathBuf,
    /// Fine orography on the run's grid (point elevations, hillshade).
    pub orography: Option<Arc<Array2<f32>>>,
    /// Set by [`Store::remove`]: the directory is deleted when the last
    /// holder (the store or a request still reading) drops the run.
    deleted: AtomicBool,
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.deleted.load(Ordering::SeqCst) {
            match std::fs::remove_dir_all(&self.dir) {
                Ok(()) => tracing::info!(run = %self.meta.id, "deleted the run's files"),
                Err(e) => tracing::warn!("deleting {}: {e}", self.dir.display()),
            }
        }
    }
}

/// Which runs to keep (`--keep-runs`, `--max-run-age-h`); the rest are
/// deleted as by `DELETE /v1/runs/{id}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    /// Keep at most this many runs, the most recently finished.
    pub keep: Option<usize>,
    /// Delete runs that finished longer ago than this.
    pub max_age: Option<chrono::Duration>,
}

/// Open-Meteo style names users may ask for, and what they mean here.
const ALIASES: [(&str, &str); 8] = [
    ("temperature_2m", "t2m"),
    ("dew_point_2m", "d2m"),
    ("precipitation", "tp"),
    ("wind_u_component_10m", "u10"),
    ("wind_v_component_10m", "v10"),
    ("surface_pressure", "sp"),
    ("pressure_msl", "msl"),
    ("elevation", "orog"),
];

impl Run {
    /// The run's NetCDF output.
    pub fn nc_path(&self) -> PathBuf {
        self.dir.join(OUTPUT_NC)
    }

    /// A variable by name, case-insensitive name, standard name or an
    /// Open-Meteo alias.
    pub fn var(&self, name: &str) -> Result<&VarMeta, StoreError> {
        let vars = &self.meta.variables;
        let lower = name.trim().to_ascii_lowercase();
        let alias = ALIASES.iter().find(|(a, _)| *a == lower).map(|(_, v)| *v);
        vars.iter()
            .find(|v| v.name == name)
            .or_else(|| vars.iter().find(|v| v.name.to_ascii_lowercase() == lower))
            .or_else(|| {
                vars.iter()
                    .find(|v| v.standard_name.as_deref() == Some(name))
            })
            .or_else(|| alias.and_then(|a| vars.iter().find(|v| v.name == a)))
            .ok_or_else(|| StoreError::NoSuchVar {
                run: self.meta.id.clone(),
                name: crate::ids::truncate(name, 60),
                available: vars
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The variable `name` as [`Run::var`] finds it or, when `name` is absent
    /// or blank, the first time-dependent variable (the first static one if
    /// there is none): what a map shows when the client names nothing.
    pub fn var_or_default(&self, name: Option<&str>) -> Result<&VarMeta, StoreError> {
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => self.var(n),
            None => self
                .meta
                .variables
                .iter()
                .find(|v| !v.times.is_empty())
                .or(self.meta.variables.first())
                .ok_or(StoreError::NoVariables),
        }
    }

    /// Index of a valid time of `var` (the first when none is asked for;
    /// static fields ignore the time).
    pub fn time_index(&self, var: &VarMeta, time: Option<&str>) -> Result<usize, StoreError> {
        let Some(s) = time.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(0);
        };
        if var.times.is_empty() {
            return Ok(0);
        }
        let t = crate::times::parse_time(s)?;
        var.times
            .iter()
            .position(|x| *x == t)
            .ok_or_else(|| StoreError::NoSuchTime {
                var: var.name.clone(),
                run: self.meta.id.clone(),
                time: crate::times::iso(&t),
                valid: var
                    .times
                    .iter()
                    .map(crate::times::iso)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// A decoded field in the cache: (run id, variable, time index).
type FieldKey = (String, String, usize);

/// The published runs, and a byte-bounded cache of their decoded fields
/// shared by every request.
pub struct Store {
    runs: RwLock<BTreeMap<String, Arc<Run>>>,
    retention: Retention,
    fields: Mutex<ByteLru<FieldKey, Arc<Array2<f32>>>>,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the job knew about a run that the NetCDF file does not say.
pub struct RunOrigin {
    /// See [`RunMeta::id`].
    pub id: String,
    /// See [`RunMeta::job_id`].
    pub job_id: Option<String>,
    /// See [`RunMeta::demo`].
    pub demo: bool,
    /// See [`RunMeta::created`].
    pub created: DateTime<Utc>,
    /// The reference time given with the job; `None` takes the first valid time.
    pub reference_time: Option<DateTime<Utc>>,
}

fn run_err(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Run {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

impl Store {
    /// Load every run under `runs_dir`. A directory that cannot be read is
    /// logged and skipped, so one bad run does not take the service down;
    /// leftovers of interrupted jobs (`.tmp-*`) are removed.
    pub fn open(runs_dir: &Path, field_cache_bytes: usize, metrics: Arc<Metrics>) -> Store {
        let store = Store {
            runs: RwLock::new(BTreeMap::new()),
            retention: Retention::default(),
            fields: Mutex::new(ByteLru::new(field_cache_bytes)),
            metrics,
        };
        let entries = match std::fs::read_dir(runs_dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("cannot list {}: {e}", runs_dir.display());
                return store;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                tracing::info!("removing the unfinished run {}", path.display());
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            if !path.is_dir() || crate::ids::check_id(&name).is_err() {
                continue;
            }
            if path.join(DELETED_MARKER).exists() {
                tracing::info!("finishing the deletion of run {name}");
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            match Store::load_run(&path, &name) {
                Ok(run) => store.insert(run),
                Err(e) => tracing::error!("skipping run: {e}"),
            }
        }
        tracing::info!("{} run(s) in {}", store.len(), runs_dir.display());
        store
    }

    /// Read `run.json` (rebuilding it from the NetCDF provenance when it is
    /// missing, e.g. for a finecast output copied in by hand) and the grid.
    fn load_run(dir: &Path, id: &str) -> Result<Run, StoreError> {
        let json = dir.join(RUN_JSON);
        let meta = match std::fs::read(&json) {
            Ok(bytes) => {
                serde_json::from_slice::<RunMeta>(&bytes).map_err(|e| run_err(&json, e))?
            }
            Err(_) => {
                let created = std::fs::metadata(dir.join(OUTPUT_NC))
                    .and_then(|m| m.modified())
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_else(|_| Utc::now());
                let origin = RunOrigin {
                    id: id.to_string(),
                    job_id: None,
                    demo: false,
                    created,
                    reference_time: None,
                };
                return Store::build_run(dir, origin);
            }
        };
        Store::open_run(dir, meta)
    }

    /// Open the output in `dir` described by `meta`: its grid, and the
    /// orography kept in memory for point elevations and hillshading.
    pub fn open_run(dir: &Path, meta: RunMeta) -> Result<Run, StoreError> {
        let nc = dir.join(OUTPUT_NC);
        let ds = finecast_io::open(&nc).map_err(|e| run_err(&nc, e))?;
        let first = meta
            .variables
            .iter()
            .find(|v| v.name != OROGRAPHY_VAR)
            .or(meta.variables.first())
            .ok_or_else(|| run_err(&nc, "has no variables"))?;
        let grid = ds.grid(&first.name).map_err(|e| run_err(&nc, e))?;
        let orography = match meta.variables.iter().any(|v| v.name == OROGRAPHY_VAR) {
            true => Some(Arc::new(
                ds.read(OROGRAPHY_VAR, &Selection::default())
                    .map_err(|e| run_err(&nc, e))?
                    .field
                    .data,
            )),
            false => None,
        };
        Ok(Run {
            meta,
            grid,
            dir: dir.to_path_buf(),
            orography,
            deleted: AtomicBool::new(false),
        })
    }

    /// Describe the finished output in `dir` (from its data and NetCDF
    /// provenance), write `run.json` atomically and open the run.
    pub fn build_run(dir: &Path, origin: RunOrigin) -> Result<Run, StoreError> {
        let meta = Store::describe_output(dir, origin)?;
        Store::open_run(dir, meta)
    }

    /// The metadata of the output in `dir`, also written to `dir/run.json`.
    pub fn describe_output(dir: &Path, origin: RunOrigin) -> Result<RunMeta, StoreError> {
        let nc = dir.join(OUTPUT_NC);
        let ds = finecast_io::open(&nc).map_err(|e| run_err(&nc, e))?;
        let mut variables = Vec::new();
        let mut grid = None;
        let mut valid_times: Vec<DateTime<Utc>> = Vec::new();
        for info in ds.variables() {
            let times = ds.times(&info.name).map_err(|e| run_err(&nc, e))?;
            let mut units = String::new();
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            let mut first_field = None;
            for k in 0..times.len().max(1) {
                let sel = Selection {
                    time: TimeSel::Index(k),
                    bbox: None,
                };
                let sel = if times.is_empty() {
                    Selection::default()
                } else {
                    sel
                };
                let fd = ds.read(&info.name, &sel).map_err(|e| run_err(&nc, e))?;
                if let Some((a, b)) = fd.field.range() {
                    lo = lo.min(f64::from(a));
                    hi = hi.max(f64::from(b));
                }
                units = fd.units.clone();
                if grid.is_none() {
                    grid = Some(fd.field.grid.clone());
                }
                if first_field.is_none() {
                    first_field = Some(fd.field.data);
                }
            }
            let key = info
                .standard_name
                .clone()
                .unwrap_or_else(|| info.name.clone());
            let display = default_range(&info.name, &units)
                .or_else(|| default_range(&key, &units))
                .unwrap_or_else(|| {
                    first_field
                        .as_ref()
                        .map(finecast_pipeline::robust_range)
                        .unwrap_or((0.0, 1.0))
                });
            let palette = if info.name == OROGRAPHY_VAR {
                "terrain"
            } else {
                Palette::for_variable(&info.name).name
            };
            for t in &times {
                if !valid_times.contains(t) {
                    valid_times.push(*t);
                }
            }
            variables.push(VarMeta {
                name: info.name.clone(),
                standard_name: info.standard_name.clone(),
                long_name: info.long_name.clone(),
                units,
                times,
                palette: palette.to_string(),
                display_range: [display.0, display.1],
                value_range: lo.is_finite().then_some([lo, hi]),
            });
        }
        valid_times.sort();
        let grid = grid.ok_or_else(|| run_err(&nc, "has no gridded variables"))?;
        let attrs = global_attributes(&nc);
        let attr = |k: &str| attrs.get(k).cloned();
        // File names only: the server's directory layout is nobody's business,
        // and the checksum identifies the input anyway.
        let inputs: Vec<InputRef> = attr("finecast_inputs")
            .and_then(|s| serde_json::from_str::<Vec<InputRef>>(&s).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|i| InputRef {
                path: Path::new(&i.path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or(i.path),
                sha256: i.sha256,
            })
            .collect();
        let (w, s, e, n) = grid.bbox_lonlat();
        let (dx_m, dy_m) = grid.spacing_m();
        let meta = RunMeta {
            id: origin.id,
            job_id: origin.job_id,
            demo: origin.demo,
            created: origin.created,
            finished: Utc::now(),
            reference_time: origin
                .reference_time
                .or_else(|| valid_times.first().copied()),
            method: attr("finecast_method").unwrap_or_else(|| "unknown".into()),
            weights_sha256: attr("finecast_weights_sha256"),
            inputs,
            finecast_version: attr("finecast_version"),
            history: attr("history"),
            grid: GridMeta {
                grid_mapping: grid.crs().grid_mapping_name().to_string(),
                proj4: grid.crs().proj4(),
                nx: grid.nx(),
                ny: grid.ny(),
                dx_m,
                dy_m,
                x: [grid.x()[0], grid.x()[grid.nx() - 1]],
                y: [grid.y()[0], grid.y()[grid.ny() - 1]],
            },
            bbox: [w, s, e, n],
            valid_times,
            variables,
        };
        let text = serde_json::to_vec_pretty(&meta).map_err(|e| run_err(dir, e))?;
        write_atomic(&dir.join(RUN_JSON), &text).map_err(|e| run_err(&dir.join(RUN_JSON), e))?;
        Ok(meta)
    }

    /// Publish a run (replacing one with the same id), then delete what
    /// the retention no longer keeps.
    pub fn insert(&self, run: Run) {
        let id = run.meta.id.clone();
        self.runs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(run));
        for gone in self.apply_retention(Utc::now()) {
            tracing::info!(run = %gone, "run deleted by the retention (--keep-runs, --max-run-age-h)");
        }
    }

    /// Unpublish a run (an id, not `latest`): new requests no longer find
    /// it and its decoded fields leave the cache at once; its files are
    /// deleted when the last request still reading it ends (a marker file
    /// makes a restart finish the job).
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        let id = crate::ids::check_id(id)?;
        let run = self
            .runs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .ok_or_else(|| StoreError::NoSuchRun(id.to_string()))?;
        if let Err(e) = std::fs::write(run.dir.join(DELETED_MARKER), b"") {
            tracing::warn!("marking {} deleted: {e}", run.dir.display());
        }
        run.deleted.store(true, Ordering::SeqCst);
        lock(&self.fields).retain(|key| key.0 != id);
        tracing::info!(run = %id, "run deleted");
        Ok(())
    }

    /// The store keeping runs by `retention` from now on: applied at once,
    /// after every [`Store::insert`] and by [`Store::apply_retention`].
    pub fn with_retention(mut self, retention: Retention) -> Store {
        self.retention = retention;
        self.apply_retention(Utc::now());
        self
    }

    /// Delete the runs the retention does not keep (beyond the count, or
    /// finished before `now - max_age`); their ids.
    pub fn apply_retention(&self, now: DateTime<Utc>) -> Vec<String> {
        let retention = self.retention;
        if retention.keep.is_none() && retention.max_age.is_none() {
            return Vec::new();
        }
        let runs = self.list();
        let doomed: Vec<String> = runs
            .iter()
            .enumerate()
            .filter(|(k, run)| {
                retention.keep.is_some_and(|keep| *k >= keep)
                    || retention
                        .max_age
                        .is_some_and(|age| run.meta.finished < now - age)
            })
            .map(|(_, run)| run.meta.id.clone())
            .collect();
        drop(runs);
        doomed
            .into_iter()
            .filter(|id| self.remove(id).is_ok())
            .collect()
    }

    /// Number of runs.
    pub fn len(&self) -> usize {
        self.runs.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// No run published yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All runs, newest first.
    pub fn list(&self) -> Vec<Arc<Run>> {
        let mut runs: Vec<Arc<Run>> = self
            .runs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        runs.sort_by(|a, b| {
            b.meta
                .finished
                .cmp(&a.meta.finished)
                .then(b.meta.id.cmp(&a.meta.id))
        });
        runs
    }

    /// A run by id, or `latest` for the most recently finished one.
    pub fn get(&self, id: &str) -> Result<Arc<Run>, StoreError> {
        if id == "latest" {
            return self.list().into_iter().next().ok_or(StoreError::NoRuns);
        }
        let id = crate::ids::check_id(id)?;
        self.runs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::NoSuchRun(id.to_string()))
    }

    /// One time step of a variable, decoded (blocking on a cache miss).
    pub fn field(&self, run: &Run, var: &str, t: usize) -> Result<Arc<Array2<f32>>, StoreError> {
        if var == OROGRAPHY_VAR {
            if let Some(z) = &run.orography {
                return Ok(z.clone());
            }
        }
        let key = (run.meta.id.clone(), var.to_string(), t);
        if let Some(f) = lock(&self.fields).get(&key) {
            Metrics::hit(&self.metrics.field_cache_hits);
            return Ok(f);
        }
        Metrics::hit(&self.metrics.field_cache_misses);
        let ds = finecast_io::open(&run.nc_path())?;
        self.read_into_cache(&ds, run, var, t)
    }

    /// Every time step of a variable (one file open for all misses).
    pub fn series(&self, run: &Run, var: &VarMeta) -> Result<Vec<Arc<Array2<f32>>>, StoreError> {
        let n = var.times.len().max(1);
        let mut out: Vec<Option<Arc<Array2<f32>>>> = (0..n)
            .map(|t| {
                if var.name == OROGRAPHY_VAR {
                    return run.orography.clone();
                }
                lock(&self.fields).get(&(run.meta.id.clone(), var.name.clone(), t))
            })
            .collect();
        let missing = out.iter().filter(|f| f.is_none()).count();
        self.metrics
            .field_cache_hits
            .fetch_add((n - missing) as u64, std::sync::atomic::Ordering::Relaxed);
        if missing > 0 {
            self.metrics
                .field_cache_misses
                .fetch_add(missing as u64, std::sync::atomic::Ordering::Relaxed);
            let ds = finecast_io::open(&run.nc_path())?;
            for (t, slot) in out.iter_mut().enumerate() {
                if slot.is_none() {
                    *slot = Some(self.read_into_cache(&ds, run, &var.name, t)?);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn read_into_cache(
        &self,
        ds: &finecast_io::Dataset,
        run: &Run,
        var: &str,
        t: usize,
    ) -> Result<Arc<Array2<f32>>, StoreError> {
        let has_time = run.var(var).map(|v| !v.times.is_empty()).unwrap_or(true);
        let sel = Selection {
            time: if has_time {
                TimeSel::Index(t)
            } else {
                TimeSel::First
            },
            bbox: None,
        };
        let data = match ds.read(var, &sel) {
            Ok(fd) => fd.field.data,
            // A step with no valid value at all is a legitimate empty map.
            Err(finecast_io::IoError::AllMissing { .. }) => {
                Array2::from_elem(run.grid.shape(), f32::NAN)
            }
            Err(e) => return Err(e.into()),
        };
        if data.dim() != run.grid.shape() {
            return Err(StoreError::OffGrid {
                run: run.meta.id.clone(),
                var: var.to_string(),
            });
        }
        let f = Arc::new(data);
        let bytes = f.len() * std::mem::size_of::<f32>();
        lock(&self.fields).insert((run.meta.id.clone(), var.to_string(), t), f.clone(), bytes);
        Ok(f)
    }

    /// Bytes of decoded fields in memory.
    pub fn cache_bytes(&self) -> usize {
        lock(&self.fields).bytes()
    }
}

/// Text global attributes of a NetCDF file (the finecast provenance).
fn global_attributes(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(file) = netcdf::open(path) else {
        return out;
    };
    for a in file.attributes() {
        if let Ok(netcdf::AttributeValue::Str(s)) = a.value() {
            out.insert(a.name().to_string(), s);
        }
    }
    out
}
