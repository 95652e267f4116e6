//! The run store: finished downscaling runs on disk (one directory each,
//! `runs/<id>/output.nc` + `run.json`) and their decoded fields in memory.
//!
//! Runs are immutable once published (a job writes into `runs/.tmp-<id>` and
//! renames it into place), so cached fields, tiles and ETags never go stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use finecast_grid::Grid;
use finecast_io::{InputRef, Selection, TimeSel};
use finecast_render::{default_range, Palette};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::cache::ByteLru;
use crate::error::ApiError;
use crate::ids::write_atomic;
use crate::metrics::Metrics;

pub const OUTPUT_NC: &str = "output.nc";
pub const RUN_JSON: &str = "run.json";
/// Static variables written by the pipeline beside the downscaled ones.
pub const OROGRAPHY_VAR: &str = "orog";

/// Everything `GET /v1/runs/{id}` reports, stored as `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    pub id: String,
    pub job_id: Option<String>,
    #[serde(default)]
    pub demo: bool,
    /// When the job that made the run was submitted.
    pub created: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// The forecast's reference (analysis) time: given with the job, else the
    /// first valid time of the input.
    pub reference_time: Option<DateTime<Utc>>,
    pub method: String,
    /// `kind:sha256` of each network used, comma-separated; null for the baselines.
    pub weights_sha256: Option<String>,
    pub inputs: Vec<InputRef>,
    pub finecast_version: Option<String>,
    pub history: Option<String>,
    pub grid: GridMeta,
    /// `[west, south, east, north]` in degrees.
    pub bbox: [f64; 4],
    pub valid_times: Vec<DateTime<Utc>>,
    pub variables: Vec<VarMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridMeta {
    pub grid_mapping: String,
    pub proj4: String,
    pub nx: usize,
    pub ny: usize,
    /// Approximate cell size at the centre, metres.
    pub dx_m: f64,
    pub dy_m: f64,
    /// Native coordinates of the first and last centres.
    pub x: [f64; 2],
    pub y: [f64; 2],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VarMeta {
    pub name: String,
    pub standard_name: Option<String>,
    pub long_name: Option<String>,
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
    pub meta: RunMeta,
    pub grid: Grid,
    pub dir: PathBuf,
    /// Fine orography on the run's grid (point elevations, hillshade).
    pub orography: Option<Arc<Array2<f32>>>,
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
    pub fn nc_path(&self) -> PathBuf {
        self.dir.join(OUTPUT_NC)
    }

    /// A variable by name, case-insensitive name, standard name or an
    /// Open-Meteo alias.
    pub fn var(&self, name: &str) -> Result<&VarMeta, ApiError> {
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
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "run '{}' has no variable '{}'; it has {}",
                    self.meta.id,
                    crate::ids::truncate(name, 60),
                    vars.iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// Index of a valid time of `var` (the first when none is asked for;
    /// static fields ignore the time).
    pub fn time_index(&self, var: &VarMeta, time: Option<&str>) -> Result<usize, ApiError> {
        let Some(s) = time.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(0);
        };
        if var.times.is_empty() {
            return Ok(0);
        }
        let t = crate::times::parse_time(s)?;
        var.times.iter().position(|x| *x == t).ok_or_else(|| {
            ApiError::NotFound(format!(
                "variable '{}' of run '{}' has no time {}; valid times are {}",
                var.name,
                self.meta.id,
                crate::times::iso(&t),
                var.times
                    .iter()
                    .map(crate::times::iso)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

type FieldKey = (String, String, usize);

pub struct Store {
    runs_dir: PathBuf,
    runs: RwLock<BTreeMap<String, Arc<Run>>>,
    fields: Mutex<ByteLru<FieldKey, Arc<Array2<f32>>>>,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the job knew about a run that the NetCDF file does not say.
pub struct RunOrigin {
    pub id: String,
    pub job_id: Option<String>,
    pub demo: bool,
    pub created: DateTime<Utc>,
    pub reference_time: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {what}")]
    Run { path: PathBuf, what: String },
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
            runs_dir: runs_dir.to_path_buf(),
            runs: RwLock::new(BTreeMap::new()),
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
            match Store::load_run(&path, &name) {
                Ok(run) => store.insert(run),
                Err(e) => tracing::error!("skipping run: {e}"),
            }
        }
        tracing::info!("{} run(s) in {}", store.len(), runs_dir.display());
        store
    }

    pub fn runs_dir(&self) -> &Path {
        &self.runs_dir
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

    pub fn insert(&self, run: Run) {
        let id = run.meta.id.clone();
        self.runs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(run));
    }

    pub fn len(&self) -> usize {
        self.runs.read().unwrap_or_else(|e| e.into_inner()).len()
    }

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
    pub fn get(&self, id: &str) -> Result<Arc<Run>, ApiError> {
        if id == "latest" {
            return self.list().into_iter().next().ok_or_else(|| {
                ApiError::NotFound("there are no runs yet; submit a job to POST /v1/jobs".into())
            });
        }
        let id = crate::ids::check_id(id)?;
        self.runs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("no run '{id}'")))
    }

    /// One time step of a variable, decoded (blocking on a cache miss).
    pub fn field(&self, run: &Run, var: &str, t: usize) -> Result<Arc<Array2<f32>>, ApiError> {
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
        let ds = finecast_io::open(&run.nc_path()).map_err(ApiError::internal)?;
        let f = self.read_into_cache(&ds, run, var, t)?;
        Ok(f)
    }

    /// Every time step of a variable (one file open for all misses).
    pub fn series(&self, run: &Run, var: &VarMeta) -> Result<Vec<Arc<Array2<f32>>>, ApiError> {
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
            let ds = finecast_io::open(&run.nc_path()).map_err(ApiError::internal)?;
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
    ) -> Result<Arc<Array2<f32>>, ApiError> {
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
            Err(e) => return Err(ApiError::internal(e)),
        };
        if data.dim() != run.grid.shape() {
            return Err(ApiError::Internal(format!(
                "variable '{var}' of run '{}' is not on the run's grid",
                run.meta.id
            )));
        }
        let f = Arc::new(data);
        let bytes = f.len() * std::mem::size_of::<f32>();
        lock(&self.fields).insert((run.meta.id.clone(), var.to_string(), t), f.clone(), bytes);
        Ok(f)
    }

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
