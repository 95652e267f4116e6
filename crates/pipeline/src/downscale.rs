//! A downscaling job: a coarse forecast file in, a CF-NetCDF file on the fine
//! target grid out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use finecast_grid::{Field, Grid, Region};
use finecast_io::{InputRef, OutputVar, Provenance, Selection, TimeSel};
use finecast_methods::{CoarseInput, Positions};
use finecast_tiles::{run_tiled_fields, TileSpec};
use ndarray::{s, Array2, Axis};
use serde::Serialize;

use crate::method::{coarse_input, field_of, Method, WindPartner};
use crate::{JobControl, PipelineError};
use finecast_io::wind::{find_partner, is_grid_relative, to_earth_relative, WindComponent};
use finecast_protocol::Quantity;
use finecast_protocol::{load_land_fraction, Terrain};

/// The fine grid to produce.
#[derive(Debug, Clone)]
pub enum Target {
    /// An equal-area grid over a region at a resolution in metres.
    Region { region: Region, resolution_m: f64 },
    /// The grid of a variable in an existing file.
    GridLike(PathBuf),
    /// An explicit grid (library callers, benchmarks); boxed, as a grid with
    /// its CRS is several times the size of the other targets.
    Grid(Box<Grid>),
}

#[derive(Debug, Clone)]
pub struct DownscaleRequest {
    pub input: PathBuf,
    pub terrain: PathBuf,
    /// Optional land mask or land fraction; written to the output as `sftlf`.
    pub land_mask: Option<PathBuf>,
    pub target: Target,
    pub method: Method,
    /// Variable names or standard names; empty means every variable of the input.
    pub vars: Vec<String>,
    /// Valid times to produce; empty means every time in the input.
    pub times: Vec<DateTime<Utc>>,
    pub out: PathBuf,
    pub tiles: TileSpec,
    /// Recorded in the output's history.
    pub command_line: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownscaleReport {
    pub out: PathBuf,
    pub grid: String,
    pub shape: (usize, usize),
    pub variables: Vec<VariableReport>,
    pub seconds: f64,
    /// Wall time of each phase in seconds, in order.
    pub phases: Vec<(String, f64)>,
}

/// Wall-clock time spent per phase of a job.
#[derive(Default)]
struct PhaseTimer(Vec<(String, f64)>);

impl PhaseTimer {
    fn add(&mut self, phase: &str, since: Instant) {
        let secs = since.elapsed().as_secs_f64();
        match self.0.iter_mut().find(|(p, _)| p == phase) {
            Some((_, total)) => *total += secs,
            None => self.0.push((phase.to_string(), secs)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VariableReport {
    pub name: String,
    pub units: String,
    pub method: String,
    pub times: usize,
}

/// The names a variable goes by: its name and CF standard name.
fn variable_names(field: &finecast_io::FieldData) -> Vec<&str> {
    std::iter::once(field.name.as_str())
        .chain(field.standard_name.as_deref())
        .collect()
}

/// The times of `var` a job downscales: all it has, or those of the request
/// it has (an error if none); `[None]` for a variable without a time axis.
fn selected_times(
    var: &str,
    times: &[DateTime<Utc>],
    req: &DownscaleRequest,
) -> Result<Vec<Option<DateTime<Utc>>>, PipelineError> {
    if times.is_empty() {
        return Ok(vec![None]);
    }
    let wanted: Vec<Option<DateTime<Utc>>> = times
        .iter()
        .filter(|t| req.times.is_empty() || req.times.contains(t))
        .map(|&t| Some(t))
        .collect();
    if wanted.is_empty() {
        return Err(PipelineError::input(
            &req.input,
            format!("variable '{var}' has none of the requested times"),
        ));
    }
    Ok(wanted)
}

/// Degrees of coarse data read around the target: room for the gradient
/// method's window and the bicubic stencil.
const COARSE_MARGIN_DEG: f64 = 2.5;

pub fn run_downscale(
    req: &DownscaleRequest,
    ctl: &dyn JobControl,
) -> Result<DownscaleReport, PipelineError> {
    let started = Instant::now();
    let mut timer = PhaseTimer::default();
    ctl.progress(0.0, "opening input");
    let input = finecast_io::open(&req.input)?;
    let vars = resolve_vars(&input, &req.vars)?;
    let target = target_grid(&req.target)?;
    tracing::info!(grid = ?target, "target grid");
    for (var, _) in &vars {
        check_covers(&input.grid(var)?, &target, &req.input, var)?;
    }

    timer.add("open and plan", started);
    ctl.progress(2.0, "regridding terrain");
    let t = Instant::now();
    let terrain = Terrain::load(&req.terrain, &target, COARSE_MARGIN_DEG)?;
    timer.add("terrain", t);

    let (w, s, e, n) = target.bbox_lonlat();
    let bbox = (
        w - COARSE_MARGIN_DEG,
        s - COARSE_MARGIN_DEG,
        e + COARSE_MARGIN_DEG,
        n + COARSE_MARGIN_DEG,
    );
    let selection = |time: &Option<DateTime<Utc>>| Selection {
        time: time.map(TimeSel::At).unwrap_or(TimeSel::First),
        bbox: Some(bbox),
    };
    let mut plan = Vec::with_capacity(vars.len());
    for (var, times) in &vars {
        plan.push((var, selected_times(var, times, req)?));
    }

    // The coarse orography of every input grid comes from the DEM before the
    // tiles run, so the DEM window (which grows with the domain) is not
    // resident during the tile phase, where a job peaks.
    // Each variable's first field, read here, is the first one downscaled.
    let t = Instant::now();
    let mut coarse_orography: Vec<Field> = Vec::new();
    let mut first_fields = Vec::with_capacity(plan.len());
    for (var, sels) in &plan {
        let first = input.read(var, &selection(&sels[0]))?;
        let quantity = Quantity::classify(&first.units, first.standard_name.as_deref());
        let grid = &first.field.grid;
        if req
            .method
            .for_variable(quantity, &variable_names(&first))
            .needs_terrain()
            && !coarse_orography.iter().any(|z| &z.grid == grid)
        {
            coarse_orography.push(terrain.coarse(grid));
        }
        first_fields.push(Some(first));
    }
    let Terrain {
        fine: fine_orography,
        how: terrain_regrid,
        ..
    } = terrain;
    timer.add("terrain", t);

    let mut outputs = Vec::new();
    let mut reports = Vec::new();
    let total_steps: usize = plan.iter().map(|(_, sels)| sels.len()).sum();
    let mut done = 0usize;
    // The wind network computes both components at once; the one of a
    // variable still to come is kept here, by (variable, time), and used
    // when its turn comes instead of running the network again.
    let mut computed: HashMap<(String, Option<DateTime<Utc>>), Array2<f32>> = HashMap::new();
    for (k, ((var, sels), first)) in plan.iter().zip(&mut first_fields).enumerate() {
        let mut data = Vec::new();
        let mut meta = None;
        for time in sels {
            if ctl.is_cancelled() {
                return Err(PipelineError::Cancelled);
            }
            ctl.progress(
                5.0 + 90.0 * done as f32 / total_steps as f32,
                &format!(
                    "downscaling {var}{}",
                    time.map(|t| format!(" at {t}")).unwrap_or_default()
                ),
            );
            let t = Instant::now();
            let mut coarse = match first.take() {
                Some(field) => field,
                None => input.read(var, &selection(time))?,
            };
            timer.add("read input", t);
            if coarse.field.valid_count() == 0 {
                return Err(PipelineError::input(
                    &req.input,
                    format!("variable '{var}' is all missing over the target region"),
                ));
            }
            check_covers(&coarse.field.grid, &target, &req.input, var)?;
            let quantity = Quantity::classify(&coarse.units, coarse.standard_name.as_deref());
            let mut method = req.method.for_variable(quantity, &variable_names(&coarse));
            // The wind network downscales a component with the other one,
            // and components along the input grid's axes (WRF, Lambert HRRR)
            // are turned to east/north with it, whatever the method: the
            // output grid has other axes.
            let grid_relative = is_grid_relative(coarse.standard_name.as_deref());
            // A component the wind network already gave with the other one
            // needs no second read, only its earth-relative name.
            let computed_before = computed.remove(&(var.to_string(), *time));
            if computed_before.is_some() && grid_relative {
                if let Some((component, _)) = WindComponent::of(&variable_names(&coarse)) {
                    coarse.standard_name = Some(component.standard_name().into());
                }
            }
            let partner = if computed_before.is_none()
                && (method.needs_wind_partner() || grid_relative)
            {
                match find_partner(&input, &variable_names(&coarse))? {
                    Some((component, name)) => {
                        let t = Instant::now();
                        let mut other = input.read(&name, &selection(time))?;
                        timer.add("read input", t);
                        to_earth_relative(&req.input, component, &mut coarse, &mut other)?;
                        Some((component, other))
                    }
                    None => {
                        if grid_relative {
                            tracing::warn!(
                                var = %var,
                                "lies along the input grid's axes and its counterpart is not in the input: it cannot be turned to east/north and is interpolated as it is"
                            );
                        }
                        if method.needs_wind_partner() {
                            tracing::warn!(
                                var = %var,
                                "the wind network needs both wind components and the other one is not in the input: using bilinear"
                            );
                            method = Method::Baseline(finecast_methods::Baseline::Bilinear);
                        }
                        None
                    }
                }
            } else {
                None
            };
            if let (Method::Model(_), Method::Baseline(b)) = (&req.method, &method) {
                match quantity {
                    // Networks of this kind exist, but none loaded serves the
                    // variable (`--weights` named another kind, or e.g. a
                    // dew point rather than an air temperature, or a 100 m
                    // wind).
                    Quantity::Temperature | Quantity::Precipitation | Quantity::Wind => {
                        tracing::warn!(
                            var = %var,
                            "no loaded network serves this {quantity:?} variable: using {b}"
                        )
                    }
                    Quantity::Other => {
                        tracing::info!(var = %var, "no network for {quantity:?}: using {b}")
                    }
                }
            }
            let z_c = if method.needs_terrain() {
                let z = coarse_orography
                    .iter()
                    .find(|z| z.grid == coarse.field.grid)
                    .ok_or_else(|| {
                        PipelineError::input(
                            &req.input,
                            format!("variable '{var}' changes its grid between times"),
                        )
                    })?;
                Some(z.clone())
            } else {
                None
            };
            let input_fields = coarse_input(&coarse.field, z_c.as_ref(), || {
                format!("{}: variable '{var}'", req.input.display())
            })?;
            let partner_fields = partner
                .as_ref()
                .map(|(_, other)| {
                    coarse_input(&other.field, z_c.as_ref(), || {
                        format!("{}: '{}'", req.input.display(), other.name)
                    })
                })
                .transpose()?;
            let wind_partner =
                partner
                    .as_ref()
                    .zip(partner_fields.as_ref())
                    .map(|((component, _), other)| WindPartner {
                        component: *component,
                        other,
                    });
            let t = Instant::now();
            let mut field = match computed_before {
                Some(field) => field,
                None => {
                    let fields = downscale_tiled(
                        &method,
                        &input_fields,
                        wind_partner.as_ref(),
                        &target,
                        Some(&fine_orography),
                        &req.tiles,
                        ctl,
                    )?;
                    let own = field_of(fields.dim().0, wind_partner.as_ref());
                    if let (2, Some((_, other))) = (fields.dim().0, &partner) {
                        if plan[k + 1..].iter().any(|(v, _)| **v == other.name) {
                            let theirs = fields.index_axis(Axis(0), 1 - own).to_owned();
                            computed.insert((other.name.clone(), *time), theirs);
                        }
                    }
                    fields.index_axis_move(Axis(0), own)
                }
            };
            quantity.bound(&mut field);
            timer.add("downscale", t);
            meta.get_or_insert((coarse.clone(), method.clone()));
            data.push(field);
            done += 1;
        }
        let (first, method) = meta.expect("at least one time per variable");
        reports.push(VariableReport {
            name: first.name.clone(),
            units: first.units.clone(),
            method: method.name().to_string(),
            times: data.len(),
        });
        outputs.push(OutputVar {
            name: first.name.clone(),
            standard_name: first.standard_name.clone(),
            long_name: first.long_name.clone(),
            units: first.units.clone(),
            grid: target.clone(),
            times: sels.iter().flatten().copied().collect(),
            data,
        });
    }

    // The static fields on the target grid travel with the output: users need
    // the terrain the method saw (and maps use it for hillshade).
    outputs.push(OutputVar {
        name: "orog".into(),
        standard_name: Some("surface_altitude".into()),
        long_name: Some(format!("surface altitude from {}", file_name(&req.terrain))),
        units: "m".into(),
        grid: target.clone(),
        times: vec![],
        // Moved, not copied: the job is done with the terrain.
        data: vec![fine_orography.data],
    });
    if let Some(mask) = &req.land_mask {
        ctl.progress(95.0, "regridding land mask");
        let sftlf = load_land_fraction(mask, &target)?;
        outputs.push(OutputVar {
            name: "sftlf".into(),
            standard_name: Some("land_area_fraction".into()),
            long_name: Some(format!("land area fraction from {}", file_name(mask))),
            units: "1".into(),
            grid: target.clone(),
            times: vec![],
            data: vec![sftlf.data],
        });
    }

    ctl.progress(96.0, "writing output");
    let t = Instant::now();
    let mut inputs = Vec::new();
    for p in [Some(&req.input), Some(&req.terrain), req.land_mask.as_ref()]
        .into_iter()
        .flatten()
    {
        inputs.push(InputRef {
            path: p.display().to_string(),
            sha256: finecast_io::sha256_file(p)?,
        });
    }
    let mut extra = vec![
        (
            "finecast_terrain_regrid".into(),
            format!("{terrain_regrid:?}"),
        ),
        (
            "finecast_tiles".into(),
            format!(
                "tile={} halo={} blend={}",
                req.tiles.tile, req.tiles.halo, req.tiles.blend
            ),
        ),
    ];
    if let Some(kernel) = req.method.kernel() {
        extra.push(("finecast_model_kernel".into(), kernel));
    }
    let prov = Provenance {
        inputs,
        method: req.method.name().to_string(),
        weights_sha256: req.method.weights_sha256(),
        command_line: req.command_line.clone(),
        extra,
    };
    finecast_io::write_netcdf(&req.out, &outputs, &prov)?;
    timer.add("write", t);
    ctl.progress(100.0, "done");
    Ok(DownscaleReport {
        out: req.out.clone(),
        grid: format!("{target:?}"),
        shape: target.shape(),
        variables: reports,
        seconds: started.elapsed().as_secs_f64(),
        phases: timer.0,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Run a method over the target grid tile by tile: every field it computes
/// ([`Method::predict_fields`]; both wind components for the wind network).
/// The halo is widened when the method's footprint needs more context than
/// `spec` gives, so tiles always blend seamlessly.
pub fn downscale_tiled(
    method: &Method,
    coarse: &CoarseInput,
    partner: Option<&WindPartner>,
    target: &Grid,
    fine_orography: Option<&Field>,
    spec: &TileSpec,
    ctl: &dyn JobControl,
) -> Result<ndarray::Array3<f32>, PipelineError> {
    let spec = if spec.context() < method.footprint() {
        let widened = TileSpec::for_footprint(spec.tile, method.footprint(), spec.blend)?;
        tracing::debug!(
            halo = widened.halo,
            "halo widened to the method's footprint"
        );
        widened
    } else {
        *spec
    };
    run_tiled_fields(target.shape(), method.n_fields(), &spec, |w| {
        if ctl.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let sub = target.subset(w.j0, w.j1, w.i0, w.i1);
        let pos = Positions::new(coarse.grid(), &sub);
        let z = fine_orography.map(|z| z.data.slice(s![w.j0..w.j1, w.i0..w.i1]));
        method.predict_fields(coarse, partner, &sub, &pos, z)
    })
}

/// A resolved variable name and its valid times (empty without a time axis).
type VarTimes = (String, Vec<DateTime<Utc>>);

fn resolve_vars(
    input: &finecast_io::Dataset,
    wanted: &[String],
) -> Result<Vec<VarTimes>, PipelineError> {
    let mut names: Vec<String> = if wanted.is_empty() {
        input.variables().into_iter().map(|v| v.name).collect()
    } else {
        wanted
            .iter()
            .map(|w| input.resolve(w))
            .collect::<Result<_, _>>()?
    };
    // A variable asked for twice (`t2m,t2m`, or by name and standard name)
    // is downscaled once, where it was first asked for.
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    if names.is_empty() {
        return Err(PipelineError::input(input.path(), "no gridded variables"));
    }
    names
        .into_iter()
        .map(|n| {
            let times = input.times(&n)?;
            Ok((n, times))
        })
        .collect()
}

fn target_grid(target: &Target) -> Result<Grid, PipelineError> {
    match target {
        Target::Region {
            region,
            resolution_m,
        } => Grid::equal_area_for_region(region, *resolution_m)
            .map_err(|e| PipelineError::Invalid(e.to_string())),
        Target::GridLike(path) => {
            let ds = finecast_io::open(path)?;
            let first = ds.variables().into_iter().next().ok_or_else(|| {
                PipelineError::input(path, "has no gridded variable to take a grid from")
            })?;
            Ok(ds.grid(&first.name)?)
        }
        Target::Grid(grid) => Ok(grid.as_ref().clone()),
    }
}

/// The target must lie inside the coarse input.
fn check_covers(coarse: &Grid, target: &Grid, path: &Path, var: &str) -> Result<(), PipelineError> {
    let (ny, nx) = target.shape();
    let corners_and_edges = (0..=8).flat_map(|k| {
        let j = k * (ny - 1) / 8;
        let i = k * (nx - 1) / 8;
        [(0, i), (ny - 1, i), (j, 0), (j, nx - 1)]
    });
    for (j, i) in corners_and_edges {
        let (lon, lat) = target.lonlat(j, i);
        if coarse.locate(lon, lat).is_none() {
            let (w, s, e, n) = coarse.bbox_lonlat();
            return Err(PipelineError::input(
                path,
                format!(
                    "variable '{var}': target point ({lon:.3}E, {lat:.3}N) is outside the input's coverage \
                     ({w:.2}..{e:.2}E, {s:.2}..{n:.2}N)"
                ),
            ));
        }
    }
    Ok(())
}
