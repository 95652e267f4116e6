//! Fitting a network's [`Shrinkage`] by leave-one-source-out
//! cross-validation, never on a source the network trained on.
//!
//! For every fold of a [`CrossvalConfig`] (its network trained without one
//! source, made by `finecast crossval`), the left-out source's cases are
//! scored with `finecast evaluate`'s protocol at `α = 0, ½, 1` for every
//! candidate falloff. The pooled mean squared error of a case is a quadratic
//! in `α` — `MSE(α) = A − 2αB + α²C` with `A` the network's own baseline —
//! so three scores give it exactly. Sources count equally: each case's
//! quadratic is divided by its `A`, and a source's cases are averaged.
//!
//! The falloff and `α` that minimise the sum over sources are the fit. Each
//! fold is also scored with the fit of the *other* folds only (nested), which
//! is what a new source can expect; that is the number to quote.

use std::path::{Path, PathBuf};

use finecast_model::features::{self, ModelKind, NormStats};
use finecast_model::{Downscaler, ModelError, Shrinkage};
use finecast_pipeline::{EvaluateReport, Method, Networks};
use ndarray::Axis;
use serde::Serialize;

use crate::crossval::{CrossvalCase, CrossvalConfig};
use crate::data::{load_pairs, shared_data_dir, Pair, SourceSpec};

/// Candidate falloffs (standard deviations beyond a feature's training
/// range at which the correction is gone). The last is so wide that only
/// `α` acts: the fit may find the ranges do not help.
pub const FALLOFFS: [f32; 4] = [0.5, 1.0, 2.0, 1000.0];

/// Quantiles of the training cells that bound a feature's range.
const RANGE_QUANTILES: (f64, f64) = (0.001, 0.999);

/// Cells sampled per pair for the ranges (every k-th valid cell).
const RANGE_SAMPLES_PER_PAIR: usize = 200_000;

/// `[low, high]` per feature channel, in normalised units, of the cells of
/// `pairs` that have every input (with or without truth): the training
/// ranges a [`Shrinkage`] measures inputs against.
pub fn feature_ranges(
    kind: ModelKind,
    pairs: &[Pair],
    norm: &NormStats,
) -> Result<Vec<[f32; 2]>, ModelError> {
    let n = kind.n_features();
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); n];
    for p in pairs {
        let (rows, cols) = p.whole();
        let mut prepared = features::prepare(kind, &p.inputs(rows, cols));
        features::normalise(&mut prepared.features, &prepared.valid, norm);
        let valid = prepared.valid.iter().filter(|&&v| v).count();
        let stride = valid.div_ceil(RANGE_SAMPLES_PER_PAIR).max(1);
        for (k, channel) in prepared.features.axis_iter(Axis(0)).enumerate() {
            values[k].extend(
                channel
                    .iter()
                    .zip(&prepared.valid)
                    .filter(|(_, &ok)| ok)
                    .map(|(&v, _)| v)
                    .step_by(stride),
            );
        }
    }
    values
        .into_iter()
        .enumerate()
        .map(|(k, mut v)| {
            v.retain(|x| x.is_finite());
            if v.is_empty() {
                return Err(ModelError::Data(format!(
                    "no training cells to take the range of feature {k} from"
                )));
            }
            v.sort_by(f32::total_cmp);
            let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
            Ok([at(RANGE_QUANTILES.0), at(RANGE_QUANTILES.1)])
        })
        .collect()
}

/// A case's pooled MSE as a quadratic in `α`, divided by its baseline MSE
/// `A` (so it reads as a squared ratio to the network's baseline).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Quadratic {
    /// `B / A`.
    pub b: f64,
    /// `C / A`.
    pub c: f64,
}

impl Quadratic {
    /// From the MSEs at `α = 0, ½, 1`.
    fn from_mse(m0: f64, m_half: f64, m1: f64) -> Quadratic {
        let c = 2.0 * (m1 - 2.0 * m_half + m0);
        let b = (c - (m1 - m0)) / 2.0;
        Quadratic {
            b: b / m0,
            c: c / m0,
        }
    }

    /// `MSE(α) / A`.
    pub fn at(&self, alpha: f64) -> f64 {
        1.0 - 2.0 * alpha * self.b + alpha * alpha * self.c
    }
}

/// One case of a fold, scored.
#[derive(Debug, Clone, Serialize)]
pub struct CaseFit {
    /// The case's name.
    pub name: String,
    /// The best physical baseline and its RMSE.
    pub best_baseline: (String, f64),
    /// RMSE of the network's own baseline (`α = 0`).
    pub baseline_rmse: f64,
    /// RMSE of the network unshrunk (`α = 1`, no ranges).
    pub network_rmse: f64,
    /// Per candidate falloff ([`FALLOFFS`]), the case's quadratic.
    pub quadratics: Vec<Quadratic>,
}

/// One fold: the left-out source and its cases.
#[derive(Debug, Clone, Serialize)]
pub struct FoldFit {
    /// The source the fold's network never saw.
    pub left_out: String,
    /// The fold network's weights.
    pub weights: PathBuf,
    /// Its cases.
    pub cases: Vec<CaseFit>,
    /// `α` and falloff fitted on the other folds only, and this fold's RMSE
    /// per case with them (the nested cross-validation score).
    pub nested: Option<NestedScore>,
}

/// A fold scored with the shrinkage fitted without it.
#[derive(Debug, Clone, Serialize)]
pub struct NestedScore {
    /// The fitted factor.
    pub alpha: f64,
    /// The fitted falloff.
    pub falloff: f32,
    /// Per case: RMSE of the shrunk network.
    pub rmse: Vec<f64>,
}

/// The fit over every fold, and the folds.
#[derive(Debug, Clone, Serialize)]
pub struct ShrinkageFit {
    /// The factor on the correction, fitted on every fold.
    pub alpha: f64,
    /// The falloff, fitted on every fold.
    pub falloff: f32,
    /// The folds with their nested scores.
    pub folds: Vec<FoldFit>,
}

/// Score every fold of `cfg`, or those of `only` (their networks must
/// exist: `finecast crossval` first), and fit the shrinkage, nested and on
/// all of them.
pub fn fit_shrinkage(cfg: &CrossvalConfig, only: &[String]) -> Result<ShrinkageFit, ModelError> {
    let root = data_root(cfg.base.data_root.as_deref())?;
    let kind = cfg.base.kind;
    let mut folds = Vec::new();
    for source in cfg.sources() {
        if !only.is_empty() && !only.contains(&source) {
            continue;
        }
        let dir = cfg.crossval.output_dir.join(format!("without-{source}"));
        let weights = dir.join("model.bpk");
        if !weights.is_file() {
            return Err(ModelError::Data(format!(
                "{}: the fold without '{source}' has no network yet; run `finecast crossval --config ... --only {source}` first",
                weights.display()
            )));
        }
        let network = Downscaler::load(&weights)?;
        let specs: Vec<SourceSpec> = cfg
            .base
            .train
            .iter()
            .filter(|s| s.source() != source)
            .cloned()
            .collect();
        let pairs = load_pairs(kind, &specs, &root, cfg.base.coarse_res_deg)?;
        let ranges = feature_ranges(kind, &pairs, &network.sidecar().norm)?;
        drop(pairs);
        let mut cases = Vec::new();
        for case in cfg.crossval.case.iter().filter(|c| c.source == source) {
            cases.push(fit_case(kind, case, &root, &network, &ranges)?);
        }
        tracing::info!(source, "fold scored for shrinkage");
        folds.push(FoldFit {
            left_out: source,
            weights,
            cases,
            nested: None,
        });
    }
    nest(folds)
}

/// Fit on all folds, and each fold on the others.
fn nest(mut folds: Vec<FoldFit>) -> Result<ShrinkageFit, ModelError> {
    for k in 0..folds.len() {
        let others: Vec<&FoldFit> = folds
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != k)
            .map(|(_, f)| f)
            .collect();
        let Some((alpha, f)) = best_fit(&others) else {
            continue;
        };
        let rmse = folds[k]
            .cases
            .iter()
            .map(|c| c.baseline_rmse * c.quadratics[f].at(alpha).max(0.0).sqrt())
            .collect();
        folds[k].nested = Some(NestedScore {
            alpha,
            falloff: FALLOFFS[f],
            rmse,
        });
    }
    let all: Vec<&FoldFit> = folds.iter().collect();
    let (alpha, f) = best_fit(&all)
        .ok_or_else(|| ModelError::Data("no scored cases to fit the shrinkage on".into()))?;
    Ok(ShrinkageFit {
        alpha,
        falloff: FALLOFFS[f],
        folds,
    })
}

/// The `(α, falloff index)` minimising the summed per-source mean of
/// `MSE(α)/A`, `α` clamped to `[0, 1]`; `None` without cases.
fn best_fit(folds: &[&FoldFit]) -> Option<(f64, usize)> {
    let sources: Vec<&FoldFit> = folds
        .iter()
        .copied()
        .filter(|f| !f.cases.is_empty())
        .collect();
    if sources.is_empty() {
        return None;
    }
    (0..FALLOFFS.len())
        .map(|f| {
            // Each source's mean quadratic; the objective is their sum.
            let (mut b, mut c) = (0.0, 0.0);
            for fold in &sources {
                let n = fold.cases.len() as f64;
                b += fold.cases.iter().map(|x| x.quadratics[f].b).sum::<f64>() / n;
                c += fold.cases.iter().map(|x| x.quadratics[f].c).sum::<f64>() / n;
            }
            let alpha = if c > 0.0 {
                (b / c).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let objective = sources.len() as f64 - 2.0 * alpha * b + alpha * alpha * c;
            (objective, alpha, f)
        })
        .min_by(|x, y| x.0.total_cmp(&y.0))
        .map(|(_, alpha, f)| (alpha, f))
}

/// Score one case at `α = 0`, and at `α = ½, 1` for every falloff.
fn fit_case(
    kind: ModelKind,
    case: &CrossvalCase,
    root: &Path,
    network: &Downscaler,
    ranges: &[[f32; 2]],
) -> Result<CaseFit, ModelError> {
    let shrunk = |alpha: f32, falloff: f32| {
        network.with_shrinkage(Some(Shrinkage {
            alpha,
            falloff,
            ranges: ranges.to_vec(),
            fitted_by: String::new(),
        }))
    };
    let base = score(kind, case, root, &shrunk(0.0, 1.0)?)?;
    // Of the vector for wind: alpha scales both components.
    let model_mse = |r: &EvaluateReport| -> Result<f64, ModelError> {
        r.methods
            .get("model")
            .map(|m| m.headline_rmse().powi(2))
            .ok_or_else(|| {
                ModelError::Data(format!("case '{}': the network scored nothing", case.name))
            })
    };
    let m0 = model_mse(&base)?;
    if m0.is_nan() || m0 <= 0.0 {
        return Err(ModelError::Data(format!(
            "case '{}': the network's baseline is exact ({m0}); nothing to fit on",
            case.name
        )));
    }
    let best_baseline = base
        .methods
        .iter()
        .filter(|(name, _)| name.as_str() != "model")
        .min_by(|a, b| a.1.headline_rmse().total_cmp(&b.1.headline_rmse()))
        .map(|(name, s)| (name.clone(), s.headline_rmse()))
        .ok_or_else(|| ModelError::Data(format!("case '{}': no baseline scored", case.name)))?;
    let mut quadratics = Vec::new();
    let mut network_rmse = f64::NAN;
    for &falloff in &FALLOFFS {
        let m_half = model_mse(&score(kind, case, root, &shrunk(0.5, falloff)?)?)?;
        let m1 = model_mse(&score(kind, case, root, &shrunk(1.0, falloff)?)?)?;
        if falloff == FALLOFFS[FALLOFFS.len() - 1] {
            network_rmse = m1.sqrt();
        }
        quadratics.push(Quadratic::from_mse(m0, m_half, m1));
    }
    tracing::info!(
        case = case.name,
        baseline = format!("{:.4}", m0.sqrt()),
        network = format!("{network_rmse:.4}"),
        "case scored"
    );
    Ok(CaseFit {
        name: case.name.clone(),
        best_baseline,
        baseline_rmse: m0.sqrt(),
        network_rmse,
        quadratics,
    })
}

/// `finecast evaluate` of one case: the physical baselines of `kind` and the
/// network as given (with its shrinkage).
fn score(
    kind: ModelKind,
    case: &CrossvalCase,
    root: &Path,
    network: &Downscaler,
) -> Result<EvaluateReport, ModelError> {
    let network = Method::Model(Networks::single(network.clone()));
    crate::crossval::score_case(kind, case, root, network)
}

/// The shrinkage to ship with a network: the cross-validated `α` and
/// falloff, and the ranges of the network's own training pairs (those of
/// its training configuration).
pub fn shrinkage_for(
    fit: &ShrinkageFit,
    network: &Downscaler,
    train_specs: &[SourceSpec],
    data_root_dir: Option<&Path>,
    coarse_res_deg: f64,
    fitted_by: String,
) -> Result<Shrinkage, ModelError> {
    let root = data_root(data_root_dir)?;
    let kind = network.kind();
    let pairs = load_pairs(kind, train_specs, &root, coarse_res_deg)?;
    let ranges = feature_ranges(kind, &pairs, &network.sidecar().norm)?;
    let shrinkage = Shrinkage {
        alpha: fit.alpha as f32,
        falloff: fit.falloff,
        ranges,
        fitted_by,
    };
    shrinkage.check(kind.n_features())?;
    Ok(shrinkage)
}

/// The fit as a markdown table: per fold and case, the best baseline, the
/// network unshrunk, and shrunk with the shrinkage fitted on the other folds.
pub fn markdown_table(fit: &ShrinkageFit) -> String {
    let mut out = format!(
        "Shrinkage fitted on every fold: alpha = {:.3}, falloff = {} std.\n\n| left out | case | best baseline | RMSE | network | / best | shrunk (nested) | / best | alpha, falloff (other folds) |\n|---|---|---|---|---|---|---|---|---|\n",
        fit.alpha, fit.falloff
    );
    for fold in &fit.folds {
        for (k, case) in fold.cases.iter().enumerate() {
            let (name, best) = &case.best_baseline;
            let (shrunk, params) = match &fold.nested {
                Some(n) => (
                    format!("{:.3} | {:.2}", n.rmse[k], n.rmse[k] / best),
                    format!("{:.3}, {}", n.alpha, n.falloff),
                ),
                None => ("– | –".into(), "–".into()),
            };
            out.push_str(&format!(
                "| {} | {} | {name} | {best:.3} | {:.3} | {:.2} | {shrunk} | {params} |\n",
                fold.left_out,
                case.name,
                case.network_rmse,
                case.network_rmse / best,
            ));
        }
    }
    out
}

fn data_root(configured: Option<&Path>) -> Result<PathBuf, ModelError> {
    match configured {
        Some(r) => Ok(r.to_path_buf()),
        None => shared_data_dir().ok_or_else(|| {
            ModelError::Data("shared data folder not found; set FINECAST_SHARED_DATA".into())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three scores of a known quadratic give it back.
    #[test]
    fn quadratic_from_three_scores() {
        let (a, b, c) = (4.0, 1.5, 2.0);
        let mse = |alpha: f64| a - 2.0 * alpha * b + alpha * alpha * c;
        let q = Quadratic::from_mse(mse(0.0), mse(0.5), mse(1.0));
        assert!((q.b - b / a).abs() < 1e-12 && (q.c - c / a).abs() < 1e-12);
        assert!((q.at(0.3) - mse(0.3) / a).abs() < 1e-12);
    }

    fn fold(source: &str, b: f64, c: f64) -> FoldFit {
        FoldFit {
            left_out: source.into(),
            weights: PathBuf::new(),
            cases: vec![CaseFit {
                name: source.into(),
                best_baseline: ("lapse".into(), 1.0),
                baseline_rmse: 1.0,
                network_rmse: (1.0 - 2.0 * b + c).sqrt(),
                quadratics: vec![Quadratic { b, c }; FALLOFFS.len()],
            }],
            nested: None,
        }
    }

    /// A network that helps everywhere keeps its correction; one that only
    /// harms is shrunk to nothing; the nested fit of a fold ignores it.
    #[test]
    fn fit_is_least_squares_clamped_and_nested() {
        let fit = nest(vec![fold("a", 0.3, 0.4), fold("b", 0.3, 0.4)]).unwrap();
        assert!((fit.alpha - 0.75).abs() < 1e-12);
        let fit = nest(vec![fold("a", -0.1, 0.5), fold("b", -0.2, 0.5)]).unwrap();
        assert_eq!(fit.alpha, 0.0);
        // Fold "a" is scored with the fit of "b" alone (alpha 1, clamped).
        let fit = nest(vec![fold("a", 0.1, 0.5), fold("b", 0.6, 0.5)]).unwrap();
        let nested = fit.folds[0].nested.as_ref().unwrap();
        assert_eq!(nested.alpha, 1.0);
        assert!((nested.rmse[0] - (1.0f64 - 0.2 + 0.5).sqrt()).abs() < 1e-12);
    }
}
