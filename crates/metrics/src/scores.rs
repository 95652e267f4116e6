use ndarray::{ArrayView2, Zip};
use serde::Serialize;

use crate::{check_shape, MetricsError};

/// Weighted point-wise scores of a prediction against the truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// Number of cells that entered the scores.
    pub n: usize,
    /// Weighted root-mean-square error `sqrt(Σ w (pred − truth)² / Σ w)`, in
    /// the fields' units.
    pub rmse: f64,
    /// Weighted mean absolute error `Σ w |pred − truth| / Σ w`, in the
    /// fields' units.
    pub mae: f64,
    /// Weighted mean of `pred - truth`: positive means the prediction is too high.
    pub bias: f64,
    /// Weighted Pearson correlation; `None` when either field is constant over
    /// the scored cells (the correlation is undefined there).
    pub pearson: Option<f64>,
}

/// Weighted RMSE, MAE, bias and Pearson r of `pred` against `truth`.
///
/// A cell is scored when `pred` and `truth` are both finite, its weight is
/// finite and positive, and `mask` (if given) is `true` there. Weights are
/// relative (e.g. cos(lat) on lat/lon grids): they are normalised by their sum
/// over the scored cells. All accumulation is in `f64`.
///
/// Errors when the shapes of the inputs differ or no cell is scored.
pub fn scores(
    pred: ArrayView2<f32>,
    truth: ArrayView2<f32>,
    weights: ArrayView2<f64>,
    mask: Option<ArrayView2<bool>>,
) -> Result<Scores, MetricsError> {
    let shape = truth.dim();
    check_shape("pred", shape, pred.dim())?;
    check_shape("weights", shape, weights.dim())?;
    if let Some(m) = &mask {
        check_shape("mask", shape, m.dim())?;
    }

    // First pass: weighted sums for the means and the error moments.
    let mut n = 0usize;
    let (mut sw, mut sp, mut st) = (0.0f64, 0.0f64, 0.0f64);
    let (mut s_err, mut s_abs, mut s_sq) = (0.0f64, 0.0f64, 0.0f64);
    for_each_scored(&pred, &truth, &weights, &mask, |p, t, w| {
        n += 1;
        sw += w;
        sp += w * p;
        st += w * t;
        let e = p - t;
        s_err += w * e;
        s_abs += w * e.abs();
        s_sq += w * e * e;
    });
    if n == 0 {
        return Err(MetricsError::NoValidCells);
    }
    let mean_p = sp / sw;
    let mean_t = st / sw;

    // Second pass about the means: the one-pass "sum of squares" formula loses
    // all precision for fields like temperature in K (large mean, small spread).
    let (mut cov, mut var_p, mut var_t) = (0.0f64, 0.0f64, 0.0f64);
    for_each_scored(&pred, &truth, &weights, &mask, |p, t, w| {
        let (dp, dt) = (p - mean_p, t - mean_t);
        cov += w * dp * dt;
        var_p += w * dp * dp;
        var_t += w * dt * dt;
    });
    let pearson = (var_p > 0.0 && var_t > 0.0)
        .then(|| (cov / (var_p.sqrt() * var_t.sqrt())).clamp(-1.0, 1.0));

    Ok(Scores {
        n,
        rmse: (s_sq / sw).sqrt(),
        mae: s_abs / sw,
        bias: s_err / sw,
        pearson,
    })
}

/// Calls `f(pred, truth, weight)` (as `f64`) for every scored cell.
fn for_each_scored(
    pred: &ArrayView2<f32>,
    truth: &ArrayView2<f32>,
    weights: &ArrayView2<f64>,
    mask: &Option<ArrayView2<bool>>,
    mut f: impl FnMut(f64, f64, f64),
) {
    let mut visit = |p: f32, t: f32, w: f64, keep: bool| {
        if keep && p.is_finite() && t.is_finite() && w.is_finite() && w > 0.0 {
            f(f64::from(p), f64::from(t), w);
        }
    };
    match mask {
        Some(m) => Zip::from(pred)
            .and(truth)
            .and(weights)
            .and(m)
            .for_each(|&p, &t, &w, &keep| visit(p, t, w, keep)),
        None => Zip::from(pred)
            .and(truth)
            .and(weights)
            .for_each(|&p, &t, &w| visit(p, t, w, true)),
    }
}
