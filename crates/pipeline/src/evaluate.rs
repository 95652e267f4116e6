//! The perfect-model evaluation protocol.
//!
//! 1. Read the fine truth (optionally cropped to a region).
//! 2. Coarsen it conservatively to a lat/lon grid whose cell edges lie on
//!    multiples of the coarse resolution (or take a given coarse file).
//! 3. Downscale back onto the truth's own grid with each method.
//! 4. Score each method against the truth on the cells at least one coarse cell
//!    away from the domain edge where every method and the truth are valid.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use finecast_grid::{Field, Region};
use finecast_io::{Selection, TimeSel};
use finecast_methods::{interpolate, Interp, Positions};
use finecast_metrics::fss;
use finecast_protocol::{coarse_grid, coarsen, MethodScore, Moments, Scorer, Terrain};
use finecast_tiles::TileSpec;
use ndarray::Array2;
use serde::Serialize;

use crate::downscale::downscale_tiled;
use crate::given_coarse::{truth_period, GivenCoarse};
use crate::method::{coarse_input, field_of, Method, WindPartner};
use crate::PipelineError;
use finecast_protocol::Quantity;

use finecast_io::wind::{find_partner, is_grid_relative, to_earth_relative, WindComponent};

/// A perfect-model evaluation (`finecast evaluate`): which truth, how to
/// make the coarse field, and which methods to score. See [`run_evaluate`].
#[derive(Debug, Clone)]
pub struct EvaluateRequest {
    /// The fine truth file (NetCDF); every method downscales back onto its
    /// grid.
    pub truth: PathBuf,
    /// The truth's variable, by name or CF standard name.
    pub var: String,
    /// DEM (m) for the terrain methods (`lapse`, `gradient`, `model`),
    /// regridded onto the truth grid; required when one of them is asked
    /// for.
    pub terrain: Option<PathBuf>,
    /// The methods to score, at least one; each must apply to the variable
    /// (a terrain baseline on a non-temperature, or a `model` with no
    /// network for it, is an error rather than a silent fallback).
    pub methods: Vec<Method>,
    /// Crop the truth to this box before anything else.
    pub region: Option<Region>,
    /// Score this valid time only; `None` scores every time in the file.
    pub time: Option<DateTime<Utc>>,
    /// Resolution in degrees (0 < res <= 5) of the lat/lon grid the truth is
    /// conservatively coarsened to; its cell edges lie on multiples of it.
    /// Ignored when `coarse` is given.
    pub coarse_res_deg: f64,
    /// A real coarse file (e.g. ERA5) to downscale instead of the coarsened
    /// truth: read at each truth time, or aggregated over the truth's period
    /// (CF `cell_methods` maximum, minimum, sum or mean) where it is finer in
    /// time. Its units must be the truth's.
    pub coarse: Option<PathBuf>,
    /// The variable of `coarse` (default: the truth's name, then its
    /// standard name).
    pub coarse_var: Option<String>,
    /// Outputs of other downscalers to score beside the methods, by name:
    /// the variable of the same name (or standard name) at each truth time,
    /// brought bilinearly onto the truth grid where it is on another grid.
    pub predictions: Vec<(String, PathBuf)>,
    /// Folder for PNG maps (truth, each prediction and its error) and power
    /// spectra, drawn for the first time scored; created if needed.
    pub plots: Option<PathBuf>,
}

impl EvaluateRequest {
    /// Score `methods` on `var` of `truth` with the defaults of `finecast
    /// evaluate`: every time, the truth coarsened to 0.25°, no terrain, no
    /// region, no other predictions, no plots.
    pub fn new(truth: PathBuf, var: &str, methods: Vec<Method>) -> EvaluateRequest {
        EvaluateRequest {
            truth,
            var: var.to_string(),
            terrain: None,
            methods,
            region: None,
            time: None,
            coarse_res_deg: 0.25,
            coarse: None,
            coarse_var: None,
            predictions: vec![],
            plots: None,
        }
    }
}

/// The scores of an evaluation (the JSON `finecast evaluate` prints).
#[derive(Debug, Clone, Serialize)]
pub struct EvaluateReport {
    /// The truth variable's resolved name in the file.
    pub var: String,
    /// Units of the truth, of every prediction, and of RMSE, MAE and bias.
    pub units: String,
    /// Path of the truth file.
    pub truth: String,
    /// The time scored, when only one was.
    pub time: Option<DateTime<Utc>>,
    /// How many times were scored (pooled in `methods`).
    pub n_times: usize,
    /// The crop box in degrees as `[south, north, west, east]` (the order of
    /// `--region`), with `east` unwrapped past `west`.
    pub region: Option<[f64; 4]>,
    /// As requested (meaningless when a coarse file was given).
    pub coarse_res_deg: f64,
    /// Where the coarse field came from: `conservative <res>° mean of the
    /// truth`, or the coarse file's path (with how it was aggregated in time).
    pub coarse: String,
    /// Path of the DEM, when one was given.
    pub terrain: Option<String>,
    /// SHA-256 of the network's weights when `model` is among the methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// How wind components were scored, where they were turned from the
    /// grid's axes to east/north.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wind_frame: Option<String>,
    /// Truth cells scored over all times (after the edge margin and the
    /// common validity mask).
    pub n_scored: usize,
    /// Scores pooled over every time: RMSE, MAE, bias and r over all scored
    /// cells of all times; spectral ratios and FSS as the mean over times.
    pub methods: BTreeMap<String, MethodScore>,
    /// The scores of each time on its own.
    pub per_time: Vec<TimeScores>,
}

/// The scores of one time of the truth.
#[derive(Debug, Clone, Serialize)]
pub struct TimeScores {
    /// The truth's valid time (`None` for a variable without time).
    pub time: Option<DateTime<Utc>>,
    /// Truth cells scored at this time: one coarse cell in from the edge,
    /// where the truth and every prediction are valid.
    pub n_scored: usize,
    /// Scores by method or prediction name.
    pub methods: BTreeMap<String, MethodScore>,
}

/// Neighbourhood sizes (km) at which FSS is reported for precipitation.
const FSS_SCALES_KM: [f64; 3] = [10.0, 25.0, 50.0];

/// Score every method against the truth at every time of the truth file (or
/// at `req.time`), pooled over the times and time by time.
pub fn run_evaluate(req: &EvaluateRequest) -> Result<EvaluateReport, PipelineError> {
    if !(req.coarse_res_deg > 0.0 && req.coarse_res_deg <= 5.0) {
        return Err(PipelineError::Invalid(format!(
            "--coarse-res {} must be in (0, 5] degrees",
            req.coarse_res_deg
        )));
    }
    if req.methods.is_empty() {
        return Err(PipelineError::Invalid("no methods to evaluate".into()));
    }
    let ds = finecast_io::open(&req.truth)?;
    let var = ds.resolve(&req.var)?;
    let given = open_predictions(req, &var)?;
    let coarse_file = match &req.coarse {
        Some(path) => {
            let standard_name = ds
                .variables()
                .into_iter()
                .find(|v| v.name == var)
                .and_then(|v| v.standard_name);
            let mut names: Vec<&str> = req.coarse_var.iter().map(String::as_str).collect();
            names.extend([req.var.as_str(), var.as_str()]);
            names.extend(standard_name.as_deref());
            Some(GivenCoarse::open(path, &names)?)
        }
        None => None,
    };
    let bounds = ds.time_bounds(&var)?;
    let times: Vec<Option<DateTime<Utc>>> = match req.time {
        Some(t) => vec![Some(t)],
        None => {
            let all = ds.times(&var)?;
            if all.is_empty() {
                vec![None]
            } else {
                all.into_iter().map(Some).collect()
            }
        }
    };
    let mut terrain: Option<Terrain> = None;
    let mut per_time = Vec::with_capacity(times.len());
    let mut moments: BTreeMap<String, Moments> = BTreeMap::new();
    let mut first: Option<TimeCase> = None;
    for (k, time) in times.iter().enumerate() {
        let inputs = TimeInputs {
            given: &given,
            coarse_file: coarse_file.as_ref(),
            bounds: bounds.as_ref().and_then(|b| b.get(k).copied()),
        };
        let case = score_time(req, &ds, &var, &inputs, *time, &mut terrain, k == 0)?;
        for (name, m) in &case.moments {
            moments.entry(name.clone()).or_default().merge(m);
        }
        per_time.push(case.scores.clone());
        first.get_or_insert(case);
    }
    let first = first.expect("at least one time");
    let methods = if per_time.len() == 1 {
        per_time[0].methods.clone()
    } else {
        moments
            .iter()
            .map(|(name, m)| {
                let each: Vec<&MethodScore> = per_time.iter().map(|t| &t.methods[name]).collect();
                (name.clone(), MethodScore::pooled(&each, m))
            })
            .collect()
    };
    Ok(EvaluateReport {
        var,
        units: first.units,
        truth: req.truth.display().to_string(),
        time: (per_time.len() == 1).then_some(per_time[0].time).flatten(),
        n_times: per_time.len(),
        region: req.region.map(|r| [r.south, r.north, r.west, r.east]),
        coarse_res_deg: req.coarse_res_deg,
        coarse: first.coarse_desc,
        terrain: terrain.map(|t| t.path.display().to_string()),
        weights_sha256: first.weights_sha256,
        wind_frame: first.frame_note,
        n_scored: per_time.iter().map(|t| t.n_scored).sum(),
        methods,
        per_time,
    })
}

/// One time of the truth scored, with what the report says once.
struct TimeCase {
    scores: TimeScores,
    /// Sums for pooling, by method name.
    moments: BTreeMap<String, Moments>,
    units: String,
    coarse_desc: String,
    weights_sha256: Option<String>,
    frame_note: Option<String>,
}

/// What one truth time reads besides the truth.
struct TimeInputs<'a> {
    given: &'a [GivenPrediction],
    coarse_file: Option<&'a GivenCoarse>,
    /// The truth's time bounds at this time, where the file gives them.
    bounds: Option<finecast_io::TimeBounds>,
}

/// Read the truth at `time`, coarsen it (or read the given coarse field),
/// run every method back onto the truth grid and score it. The DEM is loaded
/// into `terrain` once and kept while the truth grid stays the same. Plots
/// are written for the first time only (`plot`).
fn score_time(
    req: &EvaluateRequest,
    ds: &finecast_io::Dataset,
    var: &str,
    inputs: &TimeInputs,
    time: Option<DateTime<Utc>>,
    terrain: &mut Option<Terrain>,
    plot: bool,
) -> Result<TimeCase, PipelineError> {
    let truth = read_truth_at(req, ds, var, time)?;
    let coarse = coarse_at(req, inputs, &truth, time)?;
    load_terrain_once(req, terrain, &truth.field.grid)?;
    let terrain = terrain.as_ref();
    let (predictions, weights_sha256) = predict(req, inputs, &truth, &coarse, terrain, time)?;
    let scored = score(&truth, &coarse.field.grid, &predictions)?;
    if let Some(dir) = req.plots.as_ref().filter(|_| plot) {
        let interior = |a: &Array2<f32>| scored.scorer.interior(a.view());
        crate::evaluate_plots::write(
            dir,
            var,
            &truth.data.units,
            &truth.field,
            &predictions,
            scored.scorer.truth_interior(),
            interior,
            scored.scorer.spacing_km(),
            terrain.map(|t| &t.fine),
        )?;
    }
    Ok(TimeCase {
        scores: TimeScores {
            time: truth.data.time,
            n_scored: scored.n_scored,
            methods: scored.methods,
        },
        moments: scored.moments,
        units: truth.data.units,
        coarse_desc: coarse.desc,
        weights_sha256,
        frame_note: truth.frame_note,
    })
}

/// The truth at one time: the field (cropped to the region) and what was
/// read with it.
struct TruthAt {
    /// As read (its metadata: units, standard name, cell methods, time).
    data: finecast_io::FieldData,
    /// Cropped to the region.
    field: Field,
    /// The other wind component, cropped, where it was read.
    partner: Option<Field>,
    quantity: Quantity,
    /// The variable's name and standard name, as methods resolve them.
    names: Vec<String>,
    needs_partner: bool,
    frame_note: Option<String>,
}

impl TruthAt {
    fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }
}

/// Read the truth at `time`. A 10 m wind component along the grid's axes is
/// turned to east/north with its counterpart (read too where the wind
/// network needs it), so every method, the wind network included, answers
/// for the same field.
fn read_truth_at(
    req: &EvaluateRequest,
    ds: &finecast_io::Dataset,
    var: &str,
    time: Option<DateTime<Utc>>,
) -> Result<TruthAt, PipelineError> {
    let sel = Selection {
        time: time.map(TimeSel::At).unwrap_or(TimeSel::First),
        bbox: req.region.map(|r| (r.west, r.south, r.east, r.north)),
    };
    let mut data = ds.read(var, &sel)?;
    let quantity = Quantity::classify(&data.units, data.standard_name.as_deref());
    let names: Vec<String> = std::iter::once(var.to_string())
        .chain(data.standard_name.clone())
        .collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let needs_partner = req.methods.iter().any(|m| {
        m.resolve(quantity, &name_refs)
            .is_some_and(|m| m.needs_wind_partner())
    });
    let mut frame_note = None;
    let mut partner = None;
    let turn = is_grid_relative(data.standard_name.as_deref());
    let found = if needs_partner || turn {
        find_partner(ds, &name_refs)?
    } else {
        None
    };
    if let Some((component, name)) = found {
        let mut other = ds.read(&name, &sel)?;
        if to_earth_relative(&req.truth, component, &mut data, &mut other)? {
            frame_note = Some(format!(
                "'{var}' and '{name}' are along the grid axes; scored turned to east/north"
            ));
        }
        partner = Some(other.field);
    }
    let crop = |field: &Field| -> Result<Field, PipelineError> {
        let Some(region) = &req.region else {
            return Ok(field.clone());
        };
        field.crop_to_region(region).ok_or_else(|| {
            PipelineError::input(
                &req.truth,
                format!(
                    "variable '{var}': region {},{},{},{} holds no truth cells",
                    region.south, region.north, region.west, region.east
                ),
            )
        })
    };
    let field = crop(&data.field)?;
    let partner = partner.as_ref().map(crop).transpose()?;
    if field.valid_count() == 0 {
        return Err(PipelineError::input(
            &req.truth,
            format!("variable '{var}' is all missing in the evaluated area"),
        ));
    }
    Ok(TruthAt {
        data,
        field,
        partner,
        quantity,
        names,
        needs_partner,
        frame_note,
    })
}

/// The coarse side of one time.
struct CoarseSide {
    field: Field,
    /// The other wind component, where the wind network needs it.
    partner: Option<Field>,
    desc: String,
}

/// The coarse field: the conservative mean of the truth, or the given coarse
/// file at this time (aggregated over the truth's period where it is finer
/// in time; its wind components brought to east/north the same way).
fn coarse_at(
    req: &EvaluateRequest,
    inputs: &TimeInputs,
    truth: &TruthAt,
    time: Option<DateTime<Utc>>,
) -> Result<CoarseSide, PipelineError> {
    let var = &truth.data.name;
    let side = match inputs.coarse_file {
        None => {
            let grid = coarse_grid(&truth.field.grid, req.coarse_res_deg)?;
            CoarseSide {
                field: coarsen(&truth.field, &grid),
                partner: truth
                    .partner
                    .as_ref()
                    .filter(|_| truth.needs_partner)
                    .map(|f| coarsen(f, &grid)),
                desc: format!("conservative {}° mean of the truth", req.coarse_res_deg),
            }
        }
        Some(file) => {
            let period = truth_period(truth.data.cell_methods.as_deref(), inputs.bounds, time)
                .map_err(|e| PipelineError::input(&req.truth, format!("variable '{var}': {e}")))?;
            let coarse = file.at(&truth.field.grid, time, period, truth.needs_partner)?;
            if is_grid_relative(coarse.field.standard_name.as_deref())
                != is_grid_relative(truth.data.standard_name.as_deref())
            {
                return Err(PipelineError::input(
                    file.path(),
                    format!(
                        "'{}' and the truth's '{var}' are wind components in different frames (one along its grid's axes, one east/north), and the other component needed to turn them is missing",
                        coarse.field.name
                    ),
                ));
            }
            if coarse.field.units != truth.data.units {
                return Err(PipelineError::input(
                    file.path(),
                    format!(
                        "'{}' has units '{}', the truth's '{var}' '{}'",
                        coarse.field.name, coarse.field.units, truth.data.units
                    ),
                ));
            }
            CoarseSide {
                desc: match &coarse.how {
                    Some(how) => format!("{} ({how})", file.path().display()),
                    None => file.path().display().to_string(),
                },
                field: coarse.field.field,
                partner: coarse.partner,
            }
        }
    };
    if side.field.valid_count() == 0 {
        return Err(PipelineError::Invalid(
            "the coarse field has no valid cell".into(),
        ));
    }
    Ok(side)
}

/// The DEM on the truth cells, loaded once and again only when the truth
/// grid changes; an error where a terrain method has none.
fn load_terrain_once(
    req: &EvaluateRequest,
    terrain: &mut Option<Terrain>,
    grid: &finecast_grid::Grid,
) -> Result<(), PipelineError> {
    match &req.terrain {
        Some(path) if terrain.as_ref().is_none_or(|t| &t.fine.grid != grid) => {
            *terrain = Some(Terrain::load(path, grid, 0.5)?);
            Ok(())
        }
        Some(_) => Ok(()),
        None if req.methods.iter().any(Method::needs_terrain) => Err(PipelineError::Invalid(
            "methods lapse, gradient and model need --terrain DEM.nc".into(),
        )),
        None => Ok(()),
    }
}

/// A method's or a given prediction's field on the truth grid, by name.
type Prediction = (String, Array2<f32>);

/// Every method's field on the truth grid (the coarse orography being the
/// same coarse mean of the DEM on the truth cells), then every given
/// prediction; and the SHA-256 of the network's weights where one ran.
fn predict(
    req: &EvaluateRequest,
    inputs: &TimeInputs,
    truth: &TruthAt,
    coarse: &CoarseSide,
    terrain: Option<&Terrain>,
    time: Option<DateTime<Utc>>,
) -> Result<(Vec<Prediction>, Option<String>), PipelineError> {
    let var = &truth.data.name;
    let names = truth.names();
    let z_c = terrain.map(|t| coarsen(&t.fine, &coarse.field.grid));
    let input = coarse_input(&coarse.field, z_c.as_ref(), || "coarse input".into())?;
    let partner_input = coarse
        .partner
        .as_ref()
        .map(|field| {
            coarse_input(field, z_c.as_ref(), || {
                "coarse input of the other wind component".into()
            })
        })
        .transpose()?;
    let partner = WindComponent::of(&names)
        .zip(partner_input.as_ref())
        .map(|((component, _), other)| WindPartner { component, other });
    let mut predictions: Vec<Prediction> = Vec::new();
    let mut weights_sha256 = None;
    for requested in &req.methods {
        let Some(m) = requested.resolve(truth.quantity, &names) else {
            return Err(PipelineError::Invalid(format!(
                "method {requested} does not apply to variable '{var}' (units {}): {}",
                truth.data.units,
                if requested.name() == "model" {
                    "no loaded network serves it"
                } else {
                    "it is for temperature only"
                }
            )));
        };
        if m.needs_wind_partner() && partner.is_none() {
            return Err(PipelineError::input(
                &req.truth,
                format!(
                    "the wind network needs both components of '{var}' and the file has only one"
                ),
            ));
        }
        weights_sha256 = weights_sha256.or(m.weights_sha256());
        let tiles = TileSpec::new(256, 16, 16)?;
        let fields = downscale_tiled(
            &m,
            &input,
            partner.as_ref().filter(|_| m.needs_wind_partner()),
            &truth.field.grid,
            terrain.map(|t| &t.fine),
            &tiles,
            &crate::LogControl::default(),
        )?;
        let (fields, _) = m.split_weight(fields);
        let k = field_of(fields.dim().0, partner.as_ref());
        let mut pred = fields.index_axis_move(ndarray::Axis(0), k);
        truth.quantity.bound(&mut pred);
        predictions.push((m.name().to_string(), pred));
    }
    for g in inputs.given {
        let pred = g.read_onto(&truth.field, &truth.data.units, time, req.region.as_ref())?;
        predictions.push((g.name.clone(), pred));
    }
    Ok((predictions, weights_sha256))
}

/// Every prediction scored on the common domain.
struct Scored {
    scorer: Scorer,
    methods: BTreeMap<String, MethodScore>,
    moments: BTreeMap<String, Moments>,
    n_scored: usize,
}

/// Score every prediction on the cells one coarse cell in from the edge where
/// the truth and every prediction are valid; FSS for precipitation.
fn score(
    truth: &TruthAt,
    coarse_grid: &finecast_grid::Grid,
    predictions: &[Prediction],
) -> Result<Scored, PipelineError> {
    let metric_err = |context: String| move |e| PipelineError::Metrics { context, source: e };
    let scorer = Scorer::new(
        truth.field.data.view(),
        &truth.field.grid,
        coarse_grid,
        predictions.iter().map(|(_, p)| p.view()),
    )
    .map_err(metric_err("the scoring domain".into()))?;
    let (dx_km, dy_km) = scorer.spacing_km();
    let units = &truth.data.units;
    let mut methods = BTreeMap::new();
    let mut moments = BTreeMap::new();
    let mut n_scored = 0;
    for (m, pred) in predictions {
        let (mut entry, sums) = scorer
            .score(pred.view())
            .map_err(metric_err(format!("method {m}")))?;
        n_scored = sums.n();
        moments.insert(m.clone(), sums);
        if truth.quantity == Quantity::Precipitation {
            let pred_interior = scorer.interior(pred.view());
            for thr in truth.quantity.fss_thresholds(units) {
                for km in FSS_SCALES_KM {
                    let cells = ((km / dx_km.max(dy_km)).round() as usize) | 1;
                    let value = fss(
                        pred_interior.view(),
                        scorer.truth_interior().view(),
                        thr,
                        cells,
                    )
                    .map_err(metric_err(format!("FSS of method {m}")))?;
                    entry
                        .fss
                        .0
                        .push((format!("{}@{}km", format_threshold(thr, units), km), value));
                }
            }
        }
        methods.insert(m.clone(), entry);
    }
    Ok(Scored {
        scorer,
        methods,
        moments,
        n_scored,
    })
}

/// Another downscaler's output file to score, opened once.
struct GivenPrediction {
    name: String,
    path: PathBuf,
    ds: finecast_io::Dataset,
    var: String,
}

/// Open every `--prediction NAME=FILE`; names must be unique and not those
/// of the methods, and each file must hold the truth's variable.
fn open_predictions(
    req: &EvaluateRequest,
    truth_var: &str,
) -> Result<Vec<GivenPrediction>, PipelineError> {
    let mut out: Vec<GivenPrediction> = Vec::new();
    for (name, path) in &req.predictions {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !ok {
            return Err(PipelineError::Invalid(format!(
                "prediction name '{name}' must be letters, digits, '_', '-' or '.'"
            )));
        }
        if req.methods.iter().any(|m| m.name() == name) || out.iter().any(|g| &g.name == name) {
            return Err(PipelineError::Invalid(format!(
                "prediction name '{name}' is used twice (methods and predictions share names)"
            )));
        }
        let ds = finecast_io::open(path)?;
        let var = ds.resolve(&req.var).or_else(|_| ds.resolve(truth_var))?;
        out.push(GivenPrediction {
            name: name.clone(),
            path: path.clone(),
            ds,
            var,
        });
    }
    Ok(out)
}

impl GivenPrediction {
    /// The prediction at `time` on the truth's grid (cropped to `region`
    /// as the truth is), bilinear where it is on another grid; cells it does
    /// not cover are missing. Its units must be the truth's.
    fn read_onto(
        &self,
        truth: &Field,
        units: &str,
        time: Option<DateTime<Utc>>,
        region: Option<&Region>,
    ) -> Result<Array2<f32>, PipelineError> {
        let sel = Selection {
            time: time.map(TimeSel::At).unwrap_or(TimeSel::First),
            bbox: Some(finecast_io::widened_bbox(&truth.grid, 0.5)),
        };
        let data = self.ds.read(&self.var, &sel)?;
        if data.units != units {
            return Err(PipelineError::input(
                &self.path,
                format!(
                    "prediction '{}': variable '{}' has units '{}', the truth '{units}'",
                    self.name, self.var, data.units
                ),
            ));
        }
        // On the truth's own grid: the same cells, cropped as the truth was.
        let cropped = region
            .and_then(|r| data.field.crop_to_region(r))
            .filter(|f| f.grid == truth.grid);
        if let Some(f) = cropped {
            return Ok(f.data);
        }
        let field = data.field;
        if field.grid == truth.grid {
            return Ok(field.data);
        }
        let pos = Positions::new(&field.grid, &truth.grid);
        Ok(interpolate(
            field.data.view(),
            &field.grid,
            &pos,
            Interp::Bilinear,
        ))
    }
}

fn format_threshold(thr: f32, units: &str) -> String {
    if units == "kg m-2 s-1" {
        format!("{}mm/h", (thr * 3600.0).round())
    } else {
        format!("{thr}mm")
    }
}
