//! Skill of the model against the physical baselines on real fields, with
//! the perfect-model protocol of `finecast-pipeline`'s `evaluate` (truth →
//! conservative 0.25° mean → downscale back → score cells at least one coarse
//! cell from the edge, on the common validity mask; cos(lat) weights on
//! lat/lon grids; spectral ratios on the native grid).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use finecast_grid::{Grid, Region};
use finecast_methods::{downscale_at, Baseline, CoarseInput, GradientParams, Positions};
use finecast_metrics::{default_bands, scores, spectral_ratio, ScoringDomain};
use finecast_tiles::{run_tiled, TileError, TileSpec};
use ndarray::{s, Array2};
use serde::{Deserialize, Serialize};

use crate::data::{load_terrain, make_pair, read_truth};
use crate::{Downscaler, ModelError, ModelInputs, ModelKind};

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
        ModelKind::Precipitation => &[Baseline::Bilinear, Baseline::Bicubic],
    }
}

/// One evaluation case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalCase {
    pub name: String,
    pub truth: PathBuf,
    pub var: String,
    #[serde(default)]
    pub time_index: Option<usize>,
    /// `[south, north, west, east]`.
    #[serde(default)]
    pub region: Option<[f64; 4]>,
    pub terrain: PathBuf,
    /// How the case relates to the training data ("held out: time", ...).
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodSkill {
    pub rmse: f64,
    pub mae: f64,
    pub bias: f64,
    pub pearson: Option<f64>,
    /// Prediction/truth power per wavelength band ("6-12km", ...).
    pub spectral_ratio: BTreeMap<String, Option<f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseSkill {
    pub case: EvalCase,
    /// Units of the scores (those of the truth field).
    pub units: String,
    pub n_scored: usize,
    /// Keyed by method: bilinear, bicubic, lapse, gradient, model.
    pub methods: BTreeMap<String, MethodSkill>,
}

#[derive(Debug)]
struct TErr(String);
impl From<TileError> for TErr {
    fn from(e: TileError) -> TErr {
        TErr(e.to_string())
    }
}

/// The model over a whole field, tile by tile, as a pipeline would run it.
pub fn predict_tiled(
    model: &Downscaler,
    t: &Array2<f32>,
    zc: &Array2<f32>,
    zf: &Array2<f32>,
    dx_m: f64,
    tile: usize,
    blend: usize,
) -> Result<Array2<f32>, ModelError> {
    let spec = TileSpec::for_footprint(tile, model.receptive_radius(), blend)
        .map_err(|e| ModelError::Input(e.to_string()))?;
    run_tiled(t.dim(), &spec, |w| {
        let win = s![w.j0..w.j1, w.i0..w.i1];
        model
            .predict(&ModelInputs {
                coarse_bilinear: t.slice(win),
                coarse_orog_bilinear: zc.slice(win),
                fine_orog: zf.slice(win),
                dx_m,
            })
            .map_err(|e| TErr(e.to_string()))
    })
    .map_err(|e| ModelError::Input(e.0))
}

fn edge_margin(truth: &Grid, coarse: &Grid) -> (usize, usize) {
    let (tdx, tdy) = truth.spacing_m();
    let (cdx, cdy) = coarse.spacing_m();
    ((cdy / tdy).ceil() as usize, (cdx / tdx).ceil() as usize)
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
    let (truth, units) = read_truth(
        &data_root.join(&case.truth),
        model.kind(),
        &case.var,
        case.time_index,
        region.as_ref(),
    )?;
    let zf = load_terrain(&data_root.join(&case.terrain), &truth.grid, 0.5)?;
    let pair = make_pair(&case.name, &truth, &zf, 0.25)?;
    let input = CoarseInput::new(
        &pair.coarse,
        Some(&pair.coarse_orog),
        &GradientParams::default(),
    )
    .map_err(|e| ModelError::Data(e.to_string()))?;
    let pos = Positions::new(&pair.coarse.grid, &truth.grid);
    let mut preds: Vec<(String, Array2<f32>)> = Vec::new();
    let kind = model.kind();
    for &m in baselines_for(kind) {
        let mut p = downscale_at(m, &input, &pos, Some(zf.data.view()))
            .map_err(|e| ModelError::Data(e.to_string()))?;
        if kind == ModelKind::Precipitation {
            // As the pipeline: bicubic overshoot is not negative precipitation.
            p.mapv_inplace(|v| v.max(0.0));
        }
        preds.push((m.name().to_string(), p));
    }
    let model_pred = predict_tiled(
        model,
        &pair.coarse_bilinear,
        &pair.coarse_orog_bilinear,
        &pair.fine_orog,
        pair.dx_m,
        256,
        16,
    )?;
    preds.push(("model".to_string(), model_pred));

    let domain = ScoringDomain::new(
        truth.data.view(),
        preds.iter().map(|(_, p)| p.view()),
        edge_margin(&truth.grid, &pair.coarse.grid),
    )
    .map_err(|e| ModelError::Data(format!("{}: {e}", case.name)))?;
    let weights = truth.grid.area_weights();
    let (dx, dy) = truth.grid.spacing_m();
    let truth_interior = domain.interior(truth.data.view());
    let mut methods = BTreeMap::new();
    let mut n_scored = 0;
    for (name, p) in &preds {
        let sc = scores(
            p.view(),
            truth.data.view(),
            weights.view(),
            Some(domain.mask()),
        )
        .map_err(|e| ModelError::Data(format!("{}: {name}: {e}", case.name)))?;
        n_scored = sc.n;
        let ratios = spectral_ratio(
            domain.interior(p.view()).view(),
            truth_interior.view(),
            dx / 1000.0,
            dy / 1000.0,
            &default_bands(),
        )
        .map_err(|e| ModelError::Data(format!("{}: spectra of {name}: {e}", case.name)))?;
        methods.insert(
            name.clone(),
            MethodSkill {
                rmse: sc.rmse,
                mae: sc.mae,
                bias: sc.bias,
                pearson: sc.pearson,
                spectral_ratio: ratios.into_iter().map(|r| (r.label, r.ratio)).collect(),
            },
        );
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
    }
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

/// A markdown table of the skills.
pub fn markdown_table(skills: &[CaseSkill]) -> String {
    let mut out = String::from(
        "| Case | Status | Units | Method | RMSE | MAE | Bias | r | Spectral ratio 6-12 km | 12-25 km |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in skills {
        let best_baseline = ["bilinear", "bicubic", "lapse", "gradient"]
            .iter()
            .filter_map(|m| s.methods.get(*m).map(|x| x.rmse))
            .fold(f64::INFINITY, f64::min);
        for m in ["bilinear", "bicubic", "lapse", "gradient", "model"] {
            let Some(x) = s.methods.get(m) else { continue };
            let ratio = |band: &str| {
                x.spectral_ratio
                    .iter()
                    .find(|(k, _)| k.starts_with(band))
                    .and_then(|(_, v)| *v)
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into())
            };
            let name = if m == "model" {
                format!("**model** ({:.2}× best baseline)", x.rmse / best_baseline)
            } else {
                m.to_string()
            };
            out.push_str(&format!(
                "| {} | {} | {} | {name} | {:.3} | {:.3} | {:+.3} | {} | {} | {} |\n",
                s.case.name,
                s.case.status,
                s.units,
                x.rmse,
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
