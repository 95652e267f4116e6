//! Job requests as clients send them, and their validation: every file a
//! request names is resolved inside the input directory, every limit of the
//! server is checked, and the input is opened to check the variables and
//! times, before anything is queued.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use finecast_grid::{Grid, Region};
use serde::{Deserialize, Serialize};

use super::{JobSpec, QueueError, TargetSpec};
use crate::config::Config;
use crate::ids::file_in_dir;
use crate::times::parse_time;

/// Methods a job may ask for (`model`: the shipped Burn networks).
pub const METHODS: &[&str] = &[
    "nearest", "bilinear", "bicubic", "lapse", "gradient", "model",
];

/// The most variables a job request may name.
const MAX_REQUEST_VARS: usize = 64;
/// The most valid times a job request may name (a year of hourly steps fits).
const MAX_REQUEST_TIMES: usize = 10_000;

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
    /// The grid to downscale to.
    pub target: TargetRequest,
    /// Variable names or standard names; empty means all.
    #[serde(default)]
    pub vars: Vec<String>,
    /// One of [`METHODS`]; default `lapse`.
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

/// The target grid as requested: `region` with `resolution_km`, or `grid_like`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRequest {
    /// `[south, north, west, east]` in degrees.
    #[serde(default)]
    pub region: Option<[f64; 4]>,
    /// Cell size of the region's grid, km (0.05 to 200).
    #[serde(default)]
    pub resolution_km: Option<f64>,
    /// A file in the input directory whose grid is the target.
    #[serde(default)]
    pub grid_like: Option<String>,
}

/// Check a request against the files it names and the server's limits, and
/// resolve it to server-side paths. Blocking: it opens the input. The checks
/// run in this order, so a request with several faults always hears of the
/// same one first.
pub fn prepare(
    config: &Config,
    req: &JobRequest,
    upload: Option<(&Path, &Path)>,
) -> Result<JobSpec, QueueError> {
    check_sizes(req)?;
    let (input, upload_dir) = input(config, req, upload)?;
    let terrain = terrain(config, req)?;
    let (target, cells) = target(config, &req.target)?;
    let times = valid_times(&req.times)?;
    let reference_time = req.reference_time.as_deref().map(parse_time).transpose()?;
    let (vars, steps) = variables(&input, &req.vars, &times)?;
    check_budget(config, cells, steps)?;
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

/// The list lengths and the method name. More entries than any input holds
/// is a mistake or an attack: refused before anything is read, kept or run.
fn check_sizes(req: &JobRequest) -> Result<(), QueueError> {
    if req.vars.len() > MAX_REQUEST_VARS || req.times.len() > MAX_REQUEST_TIMES {
        return Err(QueueError::Invalid(format!(
            "{} 'vars' and {} 'times' given; at most {MAX_REQUEST_VARS} and {MAX_REQUEST_TIMES}",
            req.vars.len(),
            req.times.len()
        )));
    }
    if !METHODS.contains(&req.method.as_str()) {
        return Err(QueueError::Invalid(format!(
            "unknown method '{}'; available: {}",
            crate::ids::truncate(&req.method, 40),
            METHODS.join(", ")
        )));
    }
    Ok(())
}

/// The input file (an upload, or a file of the input directory) and the
/// upload's directory, to remove when the job ends.
fn input(
    config: &Config,
    req: &JobRequest,
    upload: Option<(&Path, &Path)>,
) -> Result<(PathBuf, Option<PathBuf>), QueueError> {
    match (upload, &req.input) {
        (Some(_), Some(_)) => Err(QueueError::Invalid(
            "give either an uploaded file or 'input', not both".into(),
        )),
        (Some((file, dir)), None) => Ok((file.to_path_buf(), Some(dir.to_path_buf()))),
        (None, Some(name)) => Ok((file_in_dir(&config.input_dir, name)?, None)),
        (None, None) => Err(QueueError::Invalid(
            "name an input file of the input directory in 'input', or upload one (multipart part 'file')"
                .into(),
        )),
    }
}

/// The DEM: the one named, else the server's default.
fn terrain(config: &Config, req: &JobRequest) -> Result<PathBuf, QueueError> {
    match &req.terrain {
        Some(name) => Ok(file_in_dir(&config.input_dir, name)?),
        None => config.terrain.clone().ok_or_else(|| {
            QueueError::Invalid(
                "this server has no default terrain: name a DEM file of the input directory in 'terrain'"
                    .into(),
            )
        }),
    }
}

/// The target grid, built once here to check it and its size against
/// `--max-bbox-cells`.
fn target(config: &Config, t: &TargetRequest) -> Result<(TargetSpec, u64), QueueError> {
    let invalid = QueueError::Invalid;
    match (t.region, t.resolution_km, &t.grid_like) {
        (Some(r), Some(km), None) => {
            let region = Region::new(r[0], r[1], r[2], r[3])
                .map_err(|e| invalid(format!("target.region: {e}")))?;
            if !(km.is_finite() && (0.05..=200.0).contains(&km)) {
                return Err(invalid(format!(
                    "target.resolution_km {km} must be between 0.05 and 200"
                )));
            }
            let grid = Grid::equal_area_for_region(&region, km * 1000.0)
                .map_err(|e| invalid(format!("target: {e}")))?;
            Ok((
                TargetSpec::Region {
                    region: r,
                    resolution_km: km,
                },
                check_cells(config, &grid)?,
            ))
        }
        (None, None, Some(name)) => {
            let path = file_in_dir(&config.input_dir, name)?;
            let ds = finecast_io::open(&path)
                .map_err(|e| invalid(format!("target.grid_like: {e}")))?;
            let first = ds.variables().into_iter().next().ok_or_else(|| {
                invalid(format!(
                    "target.grid_like '{name}' has no gridded variable"
                ))
            })?;
            let grid = ds
                .grid(&first.name)
                .map_err(|e| invalid(format!("target.grid_like: {e}")))?;
            Ok((TargetSpec::GridLike { path }, check_cells(config, &grid)?))
        }
        _ => Err(invalid(
            "target needs either 'region' [S,N,W,E] with 'resolution_km', or 'grid_like' (a file name)"
                .into(),
        )),
    }
}

/// The valid times asked for; a time asked for twice is one time.
fn valid_times(asked: &[String]) -> Result<Vec<DateTime<Utc>>, QueueError> {
    let mut times = asked
        .iter()
        .map(|s| parse_time(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::new();
    times.retain(|t| seen.insert(*t));
    Ok(times)
}

/// The variables as asked for, each checked against the input (which must
/// also have at least one of the requested times); a variable asked for
/// twice, by name or standard name, is one variable.
fn variables(
    input: &Path,
    asked: &[String],
    times: &[DateTime<Utc>],
) -> Result<(Vec<String>, u64), QueueError> {
    let invalid = |e: finecast_io::IoError| QueueError::Invalid(shown(e.to_string(), input));
    let ds = finecast_io::open(input)
        .map_err(|e| QueueError::Invalid(format!("input: {}", shown(e.to_string(), input))))?;
    let names: Vec<String> = if asked.is_empty() {
        ds.variables().into_iter().map(|v| v.name).collect()
    } else {
        asked
            .iter()
            .map(|v| ds.resolve(v).map_err(invalid))
            .collect::<Result<_, _>>()?
    };
    if names.is_empty() {
        return Err(QueueError::Invalid(
            "the input has no gridded variables".into(),
        ));
    }
    let mut seen = HashSet::new();
    let vars: Vec<String> = asked
        .iter()
        .zip(&names)
        .filter(|(_, name)| seen.insert(name.to_string()))
        .map(|(asked, _)| asked.clone())
        .collect();
    // Fields the job will hold: each variable's selected time steps (one
    // for a variable without time), each once.
    let mut steps = 0u64;
    let mut counted = HashSet::new();
    for n in &names {
        let have = ds.times(n).map_err(invalid)?;
        if counted.insert(n.clone()) {
            let selected = if times.is_empty() {
                have.len()
            } else {
                have.iter().filter(|t| times.contains(t)).count()
            };
            steps += selected.max(1) as u64;
        }
        if !times.is_empty() && !have.is_empty() && !times.iter().any(|t| have.contains(t)) {
            return Err(QueueError::NoRequestedTime {
                var: n.clone(),
                have: have
                    .iter()
                    .map(crate::times::iso)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok((vars, steps))
}

/// The fields a job holds (target cells × time steps over its variables,
/// f32, plus the fine terrain) fit `--max-job-mb`: a job is planned before
/// it runs, not discovered to need 80 GB half-way.
fn check_budget(config: &Config, cells: u64, steps: u64) -> Result<(), QueueError> {
    let bytes = cells.saturating_mul(steps + 1).saturating_mul(4);
    let mib = |b: u64| b.div_ceil(1 << 20);
    if bytes > config.max_job_bytes {
        return Err(QueueError::Invalid(format!(
            "the job would hold {} MiB of fields ({cells} cells x {steps} time steps over its variables, plus the terrain), above this server's budget of {} MiB (--max-job-mb); ask for fewer times or variables, a smaller region or a coarser grid",
            mib(bytes),
            mib(config.max_job_bytes)
        )));
    }
    Ok(())
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

/// The target grid is within `--max-bbox-cells`; its cells.
fn check_cells(config: &Config, grid: &Grid) -> Result<u64, QueueError> {
    let cells = (grid.nx() as u64) * (grid.ny() as u64);
    if cells > config.max_bbox_cells {
        return Err(QueueError::Invalid(format!(
            "the target grid has {} x {} = {cells} cells, above this server's limit of {} (--max-bbox-cells)",
            grid.nx(),
            grid.ny(),
            config.max_bbox_cells
        )));
    }
    Ok(cells)
}
