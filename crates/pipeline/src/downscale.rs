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
    Region {
        /// The latitude/longitude box to cover (`S,N,W,E` on the command
        /// line); the grid is a Lambert azimuthal equal-area grid centred on
        /// it, covering all of it.
        region: Region,
        /// Side of the square cells, in metres (at least 10).
        resolution_m: f64,
    },
    /// The grid of a variable in an existing file.
    GridLike(PathBuf),
    /// An explicit grid (library callers, benchmarks); boxed, as a grid with
    /// its CRS is several times the size of the other targets.
    Grid(Box<Grid>),
}

/// Everything a downscaling job needs: what to read, what grid to make,
/// which method, and where to write. See [`run_downscale`].
#[derive(Debug, Clone)]
pub struct DownscaleRequest {
    /// The coarse forecast (NetCDF or GRIB); it must cover the whole target.
    pub input: PathBuf,
    /// The DEM (surface altitude in m, NetCDF or GRIB): regridded onto the
    /// target as the fine orography, and averaged onto each input grid as
    /// the coarse orography for the terrain methods. Missing DEM cells count
    /// as sea level. Always read: the output carries it as `orog`.
    pub terrain: PathBuf,
    /// Optional land mask or land fraction; written to the output as `sftlf`.
    pub land_mask: Option<PathBuf>,
    /// The fine grid to produce.
    pub target: Target,
    /// The method to run; with `model`, each variable gets the network of
    /// its kind, or bilinear where no loaded network serves it.
    pub method: Method,
    /// Variable names or standard names; empty means every variable of the input.
    pub vars: Vec<String>,
    /// Valid times to produce; empty means every time in the input.
    pub times: Vec<DateTime<Utc>>,
    /// The CF-NetCDF file to write (atomically: complete or absent).
    pub out: PathBuf,
    /// Tile size, halo and blend width in target cells. The halo is widened
    /// per method when a network needs more context, so any spec gives the
    /// same field as one big tile.
    pub tiles: TileSpec,
    /// Recorded in the output's history.
    pub command_line: String,
}

/// What a finished downscaling job produced (printed as JSON by the CLI and
/// returned by the server).
#[derive(Debug, Clone, Serialize)]
pub struct DownscaleReport {
    /// The file written.
    pub out: PathBuf,
    /// The target grid, described for people (its CRS, size and native
    /// coordinate ranges; not meant to be parsed).
    pub grid: String,
    /// `(ny, nx)` of the target grid: rows, then columns.
    pub shape: (usize, usize),
    /// One entry per variable written, in output order (the static `orog`
    /// and `sftlf` fields are not listed).
    pub variables: Vec<VariableReport>,
    /// Wall time of the whole job, in seconds.
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

/// One downscaled variable of a [`DownscaleReport`].
#[derive(Debug, Clone, Serialize)]
pub struct VariableReport {
    /// The variable's name in the input (and the output).
    pub name: String,
    /// Its units as read (finecast's readers convert to canonical SI units,
    /// e.g. `K`, `kg m-2`, `m s-1`), which the output keeps.
    pub units: String,
    /// The method that actually ran on it: the requested one, or the
    /// fallback (`bilinear`) where it did not apply.
    pub method: String,
    /// Number of time steps downscaled (1 for a variable without time).
    pub times: usize,
    /// For a network with a shrinkage: its factor `alpha` and the share of
    /// cells (over all times) whose inputs lay outside the training ranges,
    /// so the correction shrank further toward the baseline there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrinkage: Option<ShrinkReport>,
}

/// How a network's correction was shrunk on one variable (see
/// [`finecast_model::Shrinkage`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ShrinkReport {
    /// The network's factor on its whole correction.
    pub alpha: f32,
    /// Standard deviations beyond a training range at which the correction
    /// is gone.
    pub falloff: f32,
    /// Share of the network's cells, over all times, that ran shrunk (inputs
    /// outside the training ranges).
    pub shrunk_fraction: f64,
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

/// Run a downscaling job in named phases: plan (open the input, choose
/// variables, times and the target grid), terrain, every time step of every
/// variable (tiled), then the static fields and the atomic write.
pub fn run_downscale(
    req: &DownscaleRequest,
    ctl: &dyn JobControl,
) -> Result<DownscaleReport, PipelineError> {
    let started = Instant::now();
    let mut timer = PhaseTimer::default();
    ctl.progress(0.0, "opening input");
    let plan = Plan::make(req)?;
    timer.add("open and plan", started);

    ctl.progress(2.0, "regridding terrain");
    let t = Instant::now();
    let terrain = Terrain::load(&req.terrain, &plan.target, COARSE_MARGIN_DEG)?;
    let JobTerrain {
        coarse_orography,
        mut first_fields,
        fine_orography,
        regrid,
    } = JobTerrain::prepare(req, &plan, terrain)?;
    timer.add("terrain", t);

    let mut steps = Steps {
        req,
        ctl,
        plan: &plan,
        coarse_orography: &coarse_orography,
        fine_orography: &fine_orography,
        computed: HashMap::new(),
        shrunk: HashMap::new(),
        done: 0,
        total: plan.vars.iter().map(|(_, sels)| sels.len()).sum(),
        timer: &mut timer,
    };
    let mut outputs = Vec::new();
    let mut reports = Vec::new();
    for (k, first) in first_fields.iter_mut().enumerate() {
        let (output, report) = steps.variable(k, first.take())?;
        outputs.push(output);
        reports.push(report);
    }

    outputs.extend(static_outputs(req, &plan.target, fine_orography, ctl)?);
    ctl.progress(96.0, "writing output");
    // A job cancelled while its last fields ran is not written.
    if ctl.is_cancelled() {
        return Err(PipelineError::Cancelled);
    }
    let t = Instant::now();
    write_output(req, &outputs, &reports, regrid)?;
    timer.add("write", t);
    ctl.progress(100.0, "done");
    Ok(DownscaleReport {
        out: req.out.clone(),
        grid: format!("{:?}", plan.target),
        shape: plan.target.shape(),
        variables: reports,
        seconds: started.elapsed().as_secs_f64(),
        phases: timer.0,
    })
}

/// The output must not be one of the job's inputs: the atomic rename would
/// replace the input with the result, and the input would be lost.
fn refuse_overwriting_an_input(req: &DownscaleRequest) -> Result<(), PipelineError> {
    let Ok(out) = req.out.canonicalize() else {
        return Ok(()); // not there yet: it cannot be an input
    };
    let inputs = [Some(&req.input), Some(&req.terrain), req.land_mask.as_ref()];
    for input in inputs.into_iter().flatten() {
        if input.canonicalize().is_ok_and(|i| i == out) {
            return Err(PipelineError::Invalid(format!(
                "the output {} is the input file {}: writing it would replace the input; choose another --out",
                req.out.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// What a job reads and produces, fixed before any field is read: the
/// input, the target grid it must cover, and the times of every variable.
struct Plan {
    input: finecast_io::Dataset,
    target: Grid,
    /// The target's lon/lat box widened by [`COARSE_MARGIN_DEG`]: the part of
    /// the input that is read.
    bbox: (f64, f64, f64, f64),
    /// Every variable to downscale, in order, with its selected times.
    vars: Vec<(String, Vec<Option<DateTime<Utc>>>)>,
}

impl Plan {
    fn make(req: &DownscaleRequest) -> Result<Plan, PipelineError> {
        refuse_overwriting_an_input(req)?;
        let input = finecast_io::open(&req.input)?;
        let target = target_grid(&req.target)?;
        tracing::info!(grid = ?target, "target grid");
        let mut vars = Vec::new();
        for (var, times) in resolve_vars(&input, &req.vars)? {
            check_covers(&input.grid(&var)?, &target, &req.input, &var)?;
            let sels = selected_times(&var, &times, req)?;
            vars.push((var, sels));
        }
        Ok(Plan {
            input,
            bbox: finecast_io::widened_bbox(&target, COARSE_MARGIN_DEG),
            target,
            vars,
        })
    }

    fn read(
        &self,
        var: &str,
        time: &Option<DateTime<Utc>>,
    ) -> Result<finecast_io::FieldData, PipelineError> {
        let selection = Selection {
            time: time.map(TimeSel::At).unwrap_or(TimeSel::First),
            bbox: Some(self.bbox),
        };
        Ok(self.input.read(var, &selection)?)
    }
}

/// The terrain of a job once the tiles can start: the coarse orography of
/// every input grid a terrain method needs, taken from the DEM before the
/// tiles run so the DEM window (which grows with the domain) is not resident
/// during the tile phase, where a job peaks; each variable's first field,
/// read to learn its grid and downscaled first.
struct JobTerrain {
    coarse_orography: Vec<Field>,
    first_fields: Vec<Option<finecast_io::FieldData>>,
    fine_orography: Field,
    regrid: finecast_methods::TerrainRegrid,
}

impl JobTerrain {
    fn prepare(
        req: &DownscaleRequest,
        plan: &Plan,
        terrain: Terrain,
    ) -> Result<JobTerrain, PipelineError> {
        let mut coarse_orography: Vec<Field> = Vec::new();
        let mut first_fields = Vec::with_capacity(plan.vars.len());
        for (var, sels) in &plan.vars {
            let first = plan.read(var, &sels[0])?;
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
        Ok(JobTerrain {
            coarse_orography,
            first_fields,
            fine_orography: terrain.fine,
            regrid: terrain.how,
        })
    }
}

/// The time steps of a job, variable after variable, with what they share:
/// progress, phase times and the wind components computed ahead.
struct Steps<'a> {
    req: &'a DownscaleRequest,
    ctl: &'a dyn JobControl,
    plan: &'a Plan,
    coarse_orography: &'a [Field],
    fine_orography: &'a Field,
    /// The wind network computes both components at once; the one of a
    /// variable still to come is kept here, by (variable, time), and used
    /// when its turn comes instead of running the network again.
    computed: HashMap<(String, Option<DateTime<Utc>>), Array2<f32>>,
    /// Per variable, over its times: cells that ran shrunk (inputs outside
    /// the network's training ranges) and cells the network gave.
    shrunk: HashMap<String, (usize, usize)>,
    done: usize,
    total: usize,
    timer: &'a mut PhaseTimer,
}

/// The wind side of one time step: a component the wind network already
/// gave with its counterpart, or the counterpart read for the network or to
/// turn grid-relative components to east/north, or neither.
enum WindSide {
    Computed(Array2<f32>),
    Partner(WindComponent, Box<finecast_io::FieldData>),
    Alone,
}

impl Steps<'_> {
    /// Every time of variable `k`: its output and report.
    fn variable(
        &mut self,
        k: usize,
        mut first: Option<finecast_io::FieldData>,
    ) -> Result<(OutputVar, VariableReport), PipelineError> {
        let (var, sels) = &self.plan.vars[k];
        let mut data = Vec::with_capacity(sels.len());
        let mut meta = None;
        for time in sels {
            if self.ctl.is_cancelled() {
                return Err(PipelineError::Cancelled);
            }
            self.ctl.progress(
                5.0 + 90.0 * self.done as f32 / self.total as f32,
                &format!(
                    "downscaling {var}{}",
                    time.map(|t| format!(" at {t}")).unwrap_or_default()
                ),
            );
            let (field, coarse, method) = self.step(k, time, first.take())?;
            meta.get_or_insert((coarse, method));
            data.push(field);
            self.done += 1;
        }
        let (first, method) = meta.ok_or_else(|| {
            PipelineError::input(&self.req.input, format!("variable '{var}' has no time"))
        })?;
        let shrinkage = self.shrink_report(var, &method);
        let report = VariableReport {
            name: first.name.clone(),
            units: first.units.clone(),
            method: method.name().to_string(),
            times: data.len(),
            shrinkage,
        };
        let output = OutputVar {
            name: first.name,
            standard_name: first.standard_name,
            long_name: first.long_name,
            units: first.units,
            grid: self.plan.target.clone(),
            times: sels.iter().flatten().copied().collect(),
            data,
        };
        Ok((output, report))
    }

    /// The shrinkage the network of `method` ran `var` with, logged.
    fn shrink_report(&self, var: &str, method: &Method) -> Option<ShrinkReport> {
        let Method::Model(nets) = method else {
            return None;
        };
        let shrinkage = nets.iter().find_map(|m| m.shrinkage())?;
        let (alpha, falloff) = (shrinkage.alpha, shrinkage.falloff);
        let (shrunk, cells) = self.shrunk.get(var).copied().unwrap_or_default();
        let shrunk_fraction = shrunk as f64 / cells.max(1) as f64;
        tracing::info!(
            var = %var,
            alpha,
            shrunk_percent = format!("{:.2}", 100.0 * shrunk_fraction),
            "network correction shrunk toward the baseline by alpha everywhere, further where inputs lie outside the training ranges"
        );
        Some(ShrinkReport {
            alpha,
            falloff,
            shrunk_fraction,
        })
    }

    /// One time of variable `k` (`first`: its field, if already read): the
    /// fine field, the coarse field's metadata and the method that ran.
    fn step(
        &mut self,
        k: usize,
        time: &Option<DateTime<Utc>>,
        first: Option<finecast_io::FieldData>,
    ) -> Result<(Array2<f32>, finecast_io::FieldData, Method), PipelineError> {
        let (req, var) = (self.req, self.plan.vars[k].0.as_str());
        let t = Instant::now();
        let mut coarse = match first {
            Some(field) => field,
            None => self.plan.read(var, time)?,
        };
        self.timer.add("read input", t);
        if coarse.field.valid_count() == 0 {
            return Err(PipelineError::input(
                &req.input,
                format!("variable '{var}' is all missing over the target region"),
            ));
        }
        check_covers(&coarse.field.grid, &self.plan.target, &req.input, var)?;
        let quantity = Quantity::classify(&coarse.units, coarse.standard_name.as_deref());
        let mut method = req.method.for_variable(quantity, &variable_names(&coarse));
        let wind = self.wind_side(var, time, &mut coarse, &mut method)?;
        if let (Method::Model(_), Method::Baseline(b)) = (&req.method, &method) {
            warn_no_network(var, quantity, *b);
        }
        let t = Instant::now();
        let mut field = match wind {
            WindSide::Computed(field) => field,
            WindSide::Partner(component, other) => {
                self.downscale(k, time, &method, &coarse, Some((component, *other)))?
            }
            WindSide::Alone => self.downscale(k, time, &method, &coarse, None)?,
        };
        quantity.bound(&mut field);
        self.timer.add("downscale", t);
        Ok((field, coarse, method))
    }

    /// Wind components, in one place. A component the wind network already
    /// gave with the other one needs no second read, only its earth-relative
    /// name. Otherwise the wind network downscales a component with the other
    /// one, and components along the input grid's axes (WRF, Lambert HRRR)
    /// are turned to east/north with it, whatever the method: the output grid
    /// has other axes. Without a counterpart the network falls back to
    /// bilinear, with a warning.
    fn wind_side(
        &mut self,
        var: &str,
        time: &Option<DateTime<Utc>>,
        coarse: &mut finecast_io::FieldData,
        method: &mut Method,
    ) -> Result<WindSide, PipelineError> {
        let grid_relative = is_grid_relative(coarse.standard_name.as_deref());
        if let Some(field) = self.computed.remove(&(var.to_string(), *time)) {
            if grid_relative {
                if let Some((component, _)) = WindComponent::of(&variable_names(coarse)) {
                    coarse.standard_name = Some(component.standard_name().into());
                }
            }
            return Ok(WindSide::Computed(field));
        }
        if !(method.needs_wind_partner() || grid_relative) {
            return Ok(WindSide::Alone);
        }
        let Some((component, name)) = find_partner(&self.plan.input, &variable_names(coarse))?
        else {
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
                *method = Method::Baseline(finecast_methods::Baseline::Bilinear);
            }
            return Ok(WindSide::Alone);
        };
        let t = Instant::now();
        let mut other = self.plan.read(&name, time)?;
        self.timer.add("read input", t);
        to_earth_relative(&self.req.input, component, coarse, &mut other)?;
        Ok(WindSide::Partner(component, Box::new(other)))
    }

    /// Run `method` over the target tile by tile. When the wind network gave
    /// the other component too and a later variable is that component, it is
    /// kept for it.
    fn downscale(
        &mut self,
        k: usize,
        time: &Option<DateTime<Utc>>,
        method: &Method,
        coarse: &finecast_io::FieldData,
        partner: Option<(WindComponent, finecast_io::FieldData)>,
    ) -> Result<Array2<f32>, PipelineError> {
        let (req, var) = (self.req, self.plan.vars[k].0.as_str());
        let z_c = if method.needs_terrain() {
            let z = self
                .coarse_orography
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
        let fields = downscale_tiled(
            method,
            &input_fields,
            wind_partner.as_ref(),
            &self.plan.target,
            Some(self.fine_orography),
            &req.tiles,
            self.ctl,
        )?;
        let (fields, weight) = method.split_weight(fields);
        let share = weight.map(|w| finecast_model::shrink::shrunk_share(&w));
        let mut tally = |name: &str| {
            if let Some((shrunk, cells)) = share {
                let t = self.shrunk.entry(name.to_string()).or_default();
                t.0 += shrunk;
                t.1 += cells;
            }
        };
        tally(var);
        let own = field_of(fields.dim().0, wind_partner.as_ref());
        if let (2, Some((_, other))) = (fields.dim().0, &partner) {
            if self.plan.vars[k + 1..]
                .iter()
                .any(|(v, _)| *v == other.name)
            {
                tally(&other.name);
                let theirs = fields.index_axis(Axis(0), 1 - own).to_owned();
                self.computed.insert((other.name.clone(), *time), theirs);
            }
        }
        Ok(fields.index_axis_move(Axis(0), own))
    }
}

/// Say why `--method model` ran baseline `b` on a variable.
fn warn_no_network(var: &str, quantity: Quantity, b: finecast_methods::Baseline) {
    match quantity {
        // Networks of this kind exist, but none loaded serves the variable
        // (`--weights` named another kind, or e.g. a dew point rather than an
        // air temperature, or a 100 m wind).
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

/// The static fields on the target grid that travel with the output: users
/// need the terrain the method saw (maps use it for hillshade), and the land
/// fraction when a mask was given.
fn static_outputs(
    req: &DownscaleRequest,
    target: &Grid,
    fine_orography: Field,
    ctl: &dyn JobControl,
) -> Result<Vec<OutputVar>, PipelineError> {
    let mut outputs = vec![OutputVar {
        name: "orog".into(),
        standard_name: Some("surface_altitude".into()),
        long_name: Some(format!("surface altitude from {}", file_name(&req.terrain))),
        units: "m".into(),
        grid: target.clone(),
        times: vec![],
        // Moved, not copied: the job is done with the terrain.
        data: vec![fine_orography.data],
    }];
    if let Some(mask) = &req.land_mask {
        ctl.progress(95.0, "regridding land mask");
        let sftlf = load_land_fraction(mask, target)?;
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
    Ok(outputs)
}

/// Write the output with its provenance: the inputs and their SHA-256, the
/// method and weights, how terrain was regridded, the tiling, the kernel and
/// how each network's correction was shrunk.
fn write_output(
    req: &DownscaleRequest,
    outputs: &[OutputVar],
    reports: &[VariableReport],
    terrain_regrid: finecast_methods::TerrainRegrid,
) -> Result<(), PipelineError> {
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
    let shrunk: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            r.shrinkage.map(|s| {
                format!(
                    "{}: alpha {:.3}, {:.2} % of cells shrunk further (inputs beyond the training ranges; gone at {} std)",
                    r.name,
                    s.alpha,
                    100.0 * s.shrunk_fraction,
                    s.falloff
                )
            })
        })
        .collect();
    if !shrunk.is_empty() {
        extra.push(("finecast_model_shrinkage".into(), shrunk.join("; ")));
    }
    let prov = Provenance {
        inputs,
        method: req.method.name().to_string(),
        weights_sha256: req.method.weights_sha256(),
        command_line: req.command_line.clone(),
        extra,
    };
    finecast_io::write_netcdf(&req.out, outputs, &prov)?;
    Ok(())
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
