//! Skill of the model against the physical baselines on real fields, with
//! the perfect-model protocol of `finecast-protocol` that `finecast evaluate`
//! uses too (truth → conservative 0.25° mean → downscale back → score cells at
//! least one coarse cell from the edge, on the common validity mask; cos(lat)
//! weights on lat/lon grids; spectral ratios on the native grid).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use finecast_grid::{Field, Region};
use finecast_methods::{downscale_at, Baseline, CoarseInput, GradientParams, Positions};
use finecast_model::{Downscaler, ModelError, ModelKind};
use finecast_protocol::{MethodScore, Quantity, Scorer};
use finecast_tiles::{run_tiled_fields, TileError, TileSpec};
use ndarray::{Array2, Zip};
use serde::{Deserialize, Serialize};

use crate::data::{load_terrain, make_pair, make_wind_pair, read_truth, read_wind_truth, Pair};

/// The physical baselines a model of `kind` is compared with: the terrain
/// methods only apply to temperature.
pub fn baselines_for(kind: ModelKind) -> &'static [Baseline] {
    match kind {
        ModelKind::Temperature => &[
            Baseline::Bilinear,
            Baseline::Bicubic,
            Baseline::Lapse,
            Baseline::Gradient,
        ],
        ModelKind::Precipitation | ModelKind::Wind => &[Baseline::Bilinear, Baseline::Bicubic],
    }
}

/// One evaluation case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalCase {
    /// Row label in the model card (truth, date, variable, region, DEM).
    pub name: String,
    /// The fine truth file, relative to the data root.
    pub truth: PathBuf,
    /// The truth's variable, by name or standard name (for wind, the
    /// eastward component; its counterpart is found by name).
    pub var: String,
    /// Time index in the truth file; `None` takes the first time.
    #[serde(default)]
    pub time_index: Option<usize>,
    /// `[south, north, west, east]`.
    #[serde(default)]
    pub region: Option<[f64; 4]>,
    /// The DEM file, relative to the data root.
    pub terrain: PathBuf,
    /// How the case relates to the training data ("held out: time", ...).
    pub status: String,
}

/// The scores of every baseline and the model on one [`EvalCase`].
#[derive(Debug, Clone, Serialize)]
pub struct CaseSkill {
    /// The case scored.
    pub case: EvalCase,
    /// Units of the scores (those of the truth field).
    pub units: String,
    /// Truth cells scored: one coarse cell in from the edge, where the truth
    /// and every method are valid.
    pub n_scored: usize,
    /// Keyed by method: bilinear, bicubic, lapse, gradient, model.
    pub methods: BTreeMap<String, MethodScore>,
}

#[derive(Debug)]
struct TErr(String);
impl From<TileError> for TErr {
    fn from(e: TileError) -> TErr {
        TErr(e.to_string())
    }
}

/// The model over a whole pair, tile by tile, as a pipeline would run it:
/// one field per component of the model's output.
pub fn predict_tiled(
    model: &Downscaler,
    pair: &Pair,
    tile: usize,
    blend: usize,
) -> Result<Vec<Array2<f32>>, ModelError> {
    let spec = TileSpec::for_footprint(tile, model.receptive_radius(), blend)
        .map_err(|e| ModelError::Input(e.to_string()))?;
    // One pass for all components (the wind network predicts both at once).
    let fields = run_tiled_fields(pair.truth.dim(), model.kind().n_outputs(), &spec, |w| {
        model
            .predict(&pair.inputs(w.j0..w.j1, w.i0..w.i1))
            .map_err(|e| TErr(e.to_string()))
    })
    .map_err(|e| ModelError::Input(e.0))?;
    Ok(fields.outer_iter().map(|f| f.to_owned()).collect())
}

/// Score the baselines and the model on one case.
pub fn evaluate_case(
    case: &EvalCase,
    model: &Downscaler,
    data_root: &Path,
) -> Result<CaseSkill, ModelError> {
    let region = case
        .region
        .map(|b| Region::new(b[0], b[1], b[2], b[3]))
        .transpose()
        .map_err(|e| ModelError::Data(e.to_string()))?;
    let kind = model.kind();
    let path = data_root.join(&case.truth);
    let (truth, northward, units) = if kind == ModelKind::Wind {
        let (u, v) = read_wind_truth(&path, &case.var, case.time_index, region.as_ref())?;
        (u, Some(v), "m s-1".to_string())
    } else {
        let (t, units) = read_truth(&path, kind, &case.var, case.time_index, region.as_ref())?;
        (t, None, units)
    };
    let zf = load_terrain(&data_root.join(&case.terrain), &truth.grid, 0.5)?;
    let pair = match &northward {
        Some(v) => make_wind_pair(&case.name, &truth, v, &zf, 0.25)?,
        None => make_pair(&case.name, &truth, &zf, 0.25)?,
    };
    let quantity = match kind {
        ModelKind::Temperature => Quantity::Temperature,
        ModelKind::Precipitation => Quantity::Precipitation,
        ModelKind::Wind => Quantity::Wind,
    };
    let coarse_fields: Vec<&Field> = std::iter::once(&pair.coarse)
        .chain(pair.wind.as_ref().map(|w| &w.coarse))
        .collect();
    // The pair is in ascending order (`make_pair`): score on its grid.
    let grid = pair.grid.clone();
    let pos = Positions::new(&pair.coarse.grid, &grid);
    // Every method's prediction, one field per component.
    let mut preds: Vec<(String, Vec<Array2<f32>>)> = Vec::new();
    for &m in baselines_for(kind) {
        let mut components = Vec::new();
        for coarse in &coarse_fields {
            let input =
                CoarseInput::new(coarse, Some(&pair.coarse_orog), &GradientParams::default())
                    .map_err(|e| ModelError::Data(e.to_string()))?;
            let mut p = downscale_at(m, &input, &pos, Some(pair.fine_orog.view()))
                .map_err(|e| ModelError::Data(e.to_string()))?;
            quantity.bound(&mut p);
            components.push(p);
        }
        preds.push((m.name().to_string(), components));
    }
    let mut model_fields = predict_tiled(model, &pair, 256, 16)?;
    model_fields.iter_mut().for_each(|f| quantity.bound(f));
    preds.push(("model".to_string(), model_fields));

    // Scalars are scored as they are, wind by its speed.
    let (rows, cols) = pair.whole();
    let truth_components: Vec<Array2<f32>> = pair
        .truths(rows, cols)
        .into_iter()
        .map(|t| t.to_owned())
        .collect();
    let scored = |components: &[Array2<f32>]| match components {
        [u, v] => Zip::from(u).and(v).map_collect(|&u, &v| u.hypot(v)),
        _ => components[0].clone(),
    };
    let truth_scored = scored(&truth_components);
    let preds_scored: Vec<Array2<f32>> = preds.iter().map(|(_, p)| scored(p)).collect();
    let scorer = Scorer::new(
        truth_scored.view(),
        &grid,
        &pair.coarse.grid,
        preds_scored.iter().map(|p| p.view()),
    )
    .map_err(|e| ModelError::Data(format!("{}: {e}", case.name)))?;
    let mut methods = BTreeMap::new();
    let mut n_scored = 0;
    for ((name, components), p) in preds.iter().zip(&preds_scored) {
        let (mut score, sums) = scorer
            .score(p.view())
            .map_err(|e| ModelError::Data(format!("{}: {name}: {e}", case.name)))?;
        n_scored = sums.n();
        score.vector_rmse =
            (components.len() == 2).then(|| scorer.vector_rmse(components, &truth_components));
        methods.insert(name.clone(), score);
    }
    Ok(CaseSkill {
        case: case.clone(),
        units,
        n_scored,
        methods,
    })
}

/// The held-out (and, for reference, training) cases of the model card for
/// a model of `kind`.
pub fn standard_cases(kind: ModelKind) -> Vec<EvalCase> {
    match kind {
        ModelKind::Temperature => temperature_cases(),
        ModelKind::Precipitation => precipitation_cases(),
        ModelKind::Wind => wind_cases(),
    }
}

/// Wind: the only fine wind truths here are the two WRF domains at one model
/// time; Columbia is held out (its box is blanked in the BC training field).
fn wind_cases() -> Vec<EvalCase> {
    let case = |name: &str, truth: &str, status: &str| EvalCase {
        name: name.into(),
        truth: PathBuf::from(truth),
        var: "u10".into(),
        time_index: None,
        region: None,
        terrain: PathBuf::from("static/etopo5_orog.nc"),
        status: status.into(),
    };
    vec![
        case(
            "WRF Columbia 1980-01-12T17 10 m wind, ETOPO5",
            "fine/wrf_columbia_1980-01-12T17.nc",
            "held out (domain)",
        ),
        case(
            "WRF BC 1980-01-12T17 10 m wind, ETOPO5",
            "fine/wrf_bc_1980-01-12T17.nc",
            "partly TRAINING (outside the Columbia box)",
        ),
    ]
}

fn temperature_cases() -> Vec<EvalCase> {
    let co = Some([37.0, 41.0, -109.0, -102.5]);
    let co_dem = PathBuf::from("static/colorado_orog_1arcmin.nc");
    let etopo = PathBuf::from("static/etopo5_orog.nc");
    let p81 = PathBuf::from("fine/prism_conus_19810929.nc");
    let p25 = PathBuf::from("fine/prism_conus_20251103.nc");
    let case = |name: &str,
                truth: &PathBuf,
                var: &str,
                region: Option<[f64; 4]>,
                terrain: &PathBuf,
                status: &str| EvalCase {
        name: name.into(),
        truth: truth.clone(),
        var: var.into(),
        time_index: None,
        region,
        terrain: terrain.clone(),
        status: status.into(),
    };
    vec![
        case(
            "PRISM 1981-09-29 tmax, Colorado, 1' DEM",
            &p81,
            "tmax",
            co,
            &co_dem,
            "held out (region)",
        ),
        case(
            "PRISM 1981-09-29 tmin, Colorado, 1' DEM",
            &p81,
            "tmin",
            co,
            &co_dem,
            "held out (region)",
        ),
        case(
            "PRISM 1981-09-29 tmax, Colorado, ETOPO5",
            &p81,
            "tmax",
            co,
            &etopo,
            "held out (region)",
        ),
        case(
            "PRISM 2025-11-03 tmax, Colorado, 1' DEM",
            &p25,
            "tmax",
            co,
            &co_dem,
            "held out (time + region)",
        ),
        case(
            "PRISM 2025-11-03 tmin, Colorado, 1' DEM",
            &p25,
            "tmin",
            co,
            &co_dem,
            "held out (time + region)",
        ),
        case(
            "PRISM 2025-11-03 tmax, CONUS, ETOPO5",
            &p25,
            "tmax",
            None,
            &etopo,
            "held out (time)",
        ),
        case(
            "PRISM 2025-11-03 tmin, CONUS, ETOPO5",
            &p25,
            "tmin",
            None,
            &etopo,
            "held out (time)",
        ),
        case(
            "WRF Columbia 1980-01-12T17 t2m, ETOPO5",
            &PathBuf::from("fine/wrf_columbia_1980-01-12T17.nc"),
            "t2m",
            None,
            &etopo,
            "held out (domain)",
        ),
        case(
            "WRF BC 1980-01-12T17 t2m, ETOPO5",
            &PathBuf::from("fine/wrf_bc_1980-01-12T17.nc"),
            "t2m",
            None,
            &etopo,
            "partly TRAINING (outside the Columbia box)",
        ),
    ]
}

/// Precipitation: held out by time (PRISM 2025-11-03 daily totals), by
/// domain (WRF Columbia) and one training field for reference.
fn precipitation_cases() -> Vec<EvalCase> {
    let etopo = PathBuf::from("static/etopo5_orog.nc");
    let case = |name: &str, truth: &str, var: &str, region, status: &str| EvalCase {
        name: name.into(),
        truth: PathBuf::from(truth),
        var: var.into(),
        time_index: None,
        region,
        terrain: etopo.clone(),
        status: status.into(),
    };
    vec![
        case(
            "PRISM 2025-11-03 ppt, CONUS, ETOPO5",
            "fine/prism_conus_20251103.nc",
            "ppt",
            None,
            "held out (time)",
        ),
        case(
            "PRISM 2025-11-03 ppt, Pacific Northwest, ETOPO5",
            "fine/prism_conus_20251103.nc",
            "ppt",
            Some([40.0, 49.9, -125.0, -116.0]),
            "held out (time)",
        ),
        case(
            "WRF Columbia 1980-01-12T17 tp, ETOPO5",
            "fine/wrf_columbia_1980-01-12T17.nc",
            "tp",
            None,
            "held out (domain)",
        ),
        case(
            "HRRR 2020-12-14T12 12 h tp, CONUS, ETOPO5",
            "fine/hrrr_conus_tp_2020-12-14T12.nc",
            "tp",
            None,
            "TRAINING (for reference)",
        ),
    ]
}

/// A markdown table of the skills. Wind rows show the vector RMSE (the
/// headline, compared with the baselines) and the speed's RMSE after it.
pub fn markdown_table(skills: &[CaseSkill]) -> String {
    let mut out = String::from(
        "| Case | Status | Units | Method | RMSE | MAE | Bias | r | Spectral ratio 6-12 km | 12-25 km |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in skills {
        let best_baseline = ["bilinear", "bicubic", "lapse", "gradient"]
            .iter()
            .filter_map(|m| s.methods.get(*m).map(MethodScore::headline_rmse))
            .fold(f64::INFINITY, f64::min);
        for m in ["bilinear", "bicubic", "lapse", "gradient", "model"] {
            let Some(x) = s.methods.get(m) else { continue };
            let ratio = |band: &str| {
                x.spectral_ratio
                    .0
                    .iter()
                    .find(|(k, _)| k.starts_with(band))
                    .and_then(|(_, v)| *v)
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into())
            };
            let name = if m == "model" {
                format!(
                    "**model** ({:.2}× best baseline)",
                    x.headline_rmse() / best_baseline
                )
            } else {
                m.to_string()
            };
            let rmse = match x.vector_rmse {
                Some(v) => format!("{v:.3} (speed {:.3})", x.rmse),
                None => format!("{:.3}", x.rmse),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {name} | {rmse} | {:.3} | {:+.3} | {} | {} | {} |\n",
                s.case.name,
                s.case.status,
                s.units,
                x.mae,
                x.bias,
                x.pearson
                    .map(|r| format!("{r:.3}"))
                    .unwrap_or_else(|| "-".into()),
                ratio("6"),
                ratio("12"),
            ));
        }
    }
    out
}
