//! Input features of the network, computed from the three per-tile inputs
//! (bilinear coarse field, bilinear coarse orography, fine orography) and the
//! grid spacing.
//!
//! Every feature at a cell depends only on inputs within [`FEATURE_RADIUS`]
//! cells of it (box means over windows truncated at the array edge, central
//! differences), so the features of a tile equal the features of the whole
//! field wherever the tile has that much context: this is what makes tiled
//! inference exact.

use ndarray::{Array2, Array3, ArrayView2, Zip};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Lapse rate of the physical baseline (K per metre of ascent).
pub const LAPSE_RATE: f32 = 0.0065;

/// Half-widths (cells) of the local-relief box means: z_f minus its mean over
/// (2r+1)² cells, for r = 2 (5x5), 7 (15x15) and 12 (25x25).
pub const RELIEF_RADII: [usize; 3] = [2, 7, 12];

/// Half-widths (cells) of the windows of the local regressions of the
/// bilinear coarse field on the bilinear coarse orography: estimates of the
/// coarse model's own lapse rate around the cell, on a local (±8 cells, about
/// ±1.3 coarse cells at 4 km) and a regional (±20 cells, about gridpp's 7x7
/// coarse-cell window) scale.
pub const REGRESSION_RADII: [usize; 2] = [8, 20];

/// Largest distance (cells) at which an input influences a feature.
pub const FEATURE_RADIUS: usize = 20;

/// Clamp range of the local regression slope (K/m), as gridpp's gradient method.
const SLOPE_MIN: f32 = -0.010;
const SLOPE_MAX: f32 = 0.005;
/// Below this standard deviation of coarse orography (m) the slope is not
/// fitted; the standard lapse rate is used.
const MIN_Z_STD: f32 = 30.0;

/// Names of the feature channels, in order. Stored in the sidecar so a weights
/// file made for another feature set is refused. There is deliberately no
/// absolute temperature or elevation: with a handful of training days they
/// let a network memorise the days instead of learning terrain effects.
pub const FEATURE_NAMES: [&str; 12] = [
    "z_anomaly",
    "relief_r2",
    "relief_r7",
    "relief_r12",
    "slope_x",
    "slope_y",
    "local_lapse_r8",
    "local_lapse_r8_minus_standard_times_anomaly",
    "local_lapse_r20",
    "local_lapse_r20_minus_standard_times_anomaly",
    "t_coarse_laplacian",
    "grid_spacing",
];

pub const N_FEATURES: usize = FEATURE_NAMES.len();

/// Per-channel affine normalisation `(x - mean) / std` of the raw features and
/// the scale of the residual target; computed on training data, stored with
/// the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    pub feature_names: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Standard deviation of `truth - baseline` (K) on the training data; the
    /// network predicts the residual in these units.
    pub residual_std: f32,
}

impl NormStats {
    /// Identity normalisation (used before statistics exist).
    pub fn identity() -> NormStats {
        NormStats {
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            mean: vec![0.0; N_FEATURES],
            std: vec![1.0; N_FEATURES],
            residual_std: 1.0,
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let names: Vec<&str> = self.feature_names.iter().map(String::as_str).collect();
        if names != FEATURE_NAMES {
            return Err(ModelError::Mismatch(format!(
                "the weights were trained on features {names:?}, this build computes {FEATURE_NAMES:?}"
            )));
        }
        if self.mean.len() != N_FEATURES || self.std.len() != N_FEATURES {
            return Err(ModelError::Mismatch(format!(
                "normalisation has {} means and {} stds for {N_FEATURES} features",
                self.mean.len(),
                self.std.len()
            )));
        }
        let bad = self
            .mean
            .iter()
            .chain(&self.std)
            .chain(std::iter::once(&self.residual_std))
            .any(|v| !v.is_finite())
            || self.std.iter().any(|&s| s <= 0.0)
            || self.residual_std <= 0.0;
        if bad {
            return Err(ModelError::Mismatch(
                "normalisation statistics are not finite and positive".into(),
            ));
        }
        Ok(())
    }
}

/// The physical baseline `bil(T_c) + Γ (bil(z_c) − z_f)`.
pub fn lapse_baseline(t: ArrayView2<f32>, zc: ArrayView2<f32>, zf: ArrayView2<f32>) -> Array2<f32> {
    let mut out = Array2::zeros(t.dim());
    Zip::from(&mut out)
        .and(t)
        .and(zc)
        .and(zf)
        .for_each(|o, &t, &zc, &zf| *o = t + LAPSE_RATE * (zc - zf));
    out
}

/// Summed-area table of `v` where valid (and of the valid count), with a zero
/// first row and column: shape `(ny + 1, nx + 1)`.
struct Integral {
    sum: Array2<f64>,
    count: Array2<f64>,
}

impl Integral {
    fn new(v: ArrayView2<f32>, valid: &Array2<bool>) -> Integral {
        let (ny, nx) = v.dim();
        let mut sum = Array2::<f64>::zeros((ny + 1, nx + 1));
        let mut count = Array2::<f64>::zeros((ny + 1, nx + 1));
        for j in 0..ny {
            let (mut rs, mut rc) = (0.0f64, 0.0f64);
            for i in 0..nx {
                if valid[[j, i]] {
                    rs += v[[j, i]] as f64;
                    rc += 1.0;
                }
                sum[[j + 1, i + 1]] = sum[[j, i + 1]] + rs;
                count[[j + 1, i + 1]] = count[[j, i + 1]] + rc;
            }
        }
        Integral { sum, count }
    }

    /// Sum and count of valid cells in the box of half-width `r` around
    /// `(j, i)`, truncated at the array edge.
    fn window(&self, j: usize, i: usize, r: usize) -> (f64, f64) {
        let (ny, nx) = (self.sum.nrows() - 1, self.sum.ncols() - 1);
        let (j0, j1) = (j.saturating_sub(r), (j + r + 1).min(ny));
        let (i0, i1) = (i.saturating_sub(r), (i + r + 1).min(nx));
        let rect = |a: &Array2<f64>| a[[j1, i1]] - a[[j0, i1]] - a[[j1, i0]] + a[[j0, i0]];
        (rect(&self.sum), rect(&self.count))
    }
}

/// Raw (unnormalised) features, shape `(N_FEATURES, ny, nx)`, plus the
/// validity mask (all three inputs finite). Invalid cells hold 0 in every
/// channel. Inputs must share one shape (checked by the caller).
pub fn raw_features(
    t: ArrayView2<f32>,
    zc: ArrayView2<f32>,
    zf: ArrayView2<f32>,
    dx_m: f64,
) -> (Array3<f32>, Array2<bool>) {
    let (ny, nx) = t.dim();
    let mut valid = Array2::from_elem((ny, nx), false);
    Zip::from(&mut valid)
        .and(t)
        .and(zc)
        .and(zf)
        .for_each(|m, &a, &b, &c| *m = a.is_finite() && b.is_finite() && c.is_finite());
    let mut f = Array3::<f32>::zeros((N_FEATURES, ny, nx));
    if ny == 0 || nx == 0 {
        return (f, valid);
    }

    let iz = Integral::new(zf, &valid);
    let it = Integral::new(t, &valid);
    let izc = Integral::new(zc, &valid);
    let zc2 = zc.mapv(|v| v * v);
    let tzc = Zip::from(t).and(zc).map_collect(|&a, &b| a * b);
    let izc2 = Integral::new(zc2.view(), &valid);
    let itzc = Integral::new(tzc.view(), &valid);

    // Central differences (one-sided at edges and next to gaps), per metre.
    let dx = dx_m.max(1.0) as f32;
    let diff = |a: ArrayView2<f32>, j: usize, i: usize, axis: usize| -> f32 {
        let (n, idx) = if axis == 1 { (nx, i) } else { (ny, j) };
        let at = |k: usize| -> Option<f32> {
            let (jj, ii) = if axis == 1 { (j, k) } else { (k, i) };
            valid[[jj, ii]].then(|| a[[jj, ii]])
        };
        let lo = if idx > 0 { at(idx - 1) } else { None };
        let hi = if idx + 1 < n { at(idx + 1) } else { None };
        let c = at(idx);
        match (lo, hi, c) {
            (Some(l), Some(h), _) => (h - l) / (2.0 * dx),
            (Some(l), None, Some(c)) => (c - l) / dx,
            (None, Some(h), Some(c)) => (h - c) / dx,
            _ => 0.0,
        }
    };

    let dx_feature = (dx_m / 1000.0) as f32;
    for j in 0..ny {
        for i in 0..nx {
            if !valid[[j, i]] {
                continue;
            }
            let (tv, zcv, zfv) = (t[[j, i]], zc[[j, i]], zf[[j, i]]);
            let anomaly = zfv - zcv;
            f[[0, j, i]] = anomaly;
            for (k, &r) in RELIEF_RADII.iter().enumerate() {
                let (s, c) = iz.window(j, i, r);
                f[[1 + k, j, i]] = zfv - (s / c) as f32;
            }
            f[[4, j, i]] = diff(zf, j, i, 1);
            f[[5, j, i]] = diff(zf, j, i, 0);
            for (k, &r) in REGRESSION_RADII.iter().enumerate() {
                let (st, n) = it.window(j, i, r);
                let (szc, _) = izc.window(j, i, r);
                let (szz, _) = izc2.window(j, i, r);
                let (stz, _) = itzc.window(j, i, r);
                let var = (szz / n - (szc / n).powi(2)).max(0.0);
                let slope = if var.sqrt() < MIN_Z_STD as f64 {
                    -LAPSE_RATE
                } else {
                    let cov = stz / n - (st / n) * (szc / n);
                    ((cov / var) as f32).clamp(SLOPE_MIN, SLOPE_MAX)
                };
                f[[6 + 2 * k, j, i]] = slope * 1000.0;
                f[[7 + 2 * k, j, i]] = (slope + LAPSE_RATE) * anomaly;
            }
            // Laplacian-like curvature of the bilinear coarse field (K).
            let (s1, c1) = it.window(j, i, 3);
            f[[10, j, i]] = (s1 / c1) as f32 - tv;
            f[[11, j, i]] = dx_feature;
        }
    }
    (f, valid)
}

/// Normalise raw features in place; invalid cells stay 0.
pub fn normalise(f: &mut Array3<f32>, valid: &Array2<bool>, stats: &NormStats) {
    for (c, mut ch) in f.outer_iter_mut().enumerate() {
        let (m, s) = (stats.mean[c], stats.std[c]);
        Zip::from(&mut ch).and(valid).for_each(|v, &ok| {
            *v = if ok { (*v - m) / s } else { 0.0 };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    fn inputs(ny: usize, nx: usize) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let t = Array2::from_shape_fn((ny, nx), |(j, i)| 280.0 + 0.05 * j as f32 - 0.03 * i as f32);
        let zc = Array2::from_shape_fn((ny, nx), |(j, i)| 500.0 + 3.0 * (j + i) as f32);
        let zf = Array2::from_shape_fn((ny, nx), |(j, i)| {
            500.0 + 3.0 * (j + i) as f32 + 200.0 * ((j as f32 * 0.4).sin() * (i as f32 * 0.3).cos())
        });
        (t, zc, zf)
    }

    #[test]
    fn features_are_local() {
        let (t, zc, zf) = inputs(100, 110);
        let (full, _) = raw_features(t.view(), zc.view(), zf.view(), 4000.0);
        let (j0, j1, i0, i1) = (10, 90, 5, 100);
        let mut compared = 0;
        let (part, _) = raw_features(
            t.slice(s![j0..j1, i0..i1]),
            zc.slice(s![j0..j1, i0..i1]),
            zf.slice(s![j0..j1, i0..i1]),
            4000.0,
        );
        let r = FEATURE_RADIUS;
        for c in 0..N_FEATURES {
            for j in (j0 + r)..(j1 - r) {
                for i in (i0 + r)..(i1 - r) {
                    let (a, b) = (full[[c, j, i]], part[[c, j - j0, i - i0]]);
                    assert!(
                        (a - b).abs() <= 1e-3 * (1.0 + a.abs()),
                        "channel {c} at {j},{i}: {a} vs {b}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 1000, "only {compared} values compared");
    }

    #[test]
    fn nan_inputs_give_zero_features() {
        let (mut t, zc, zf) = inputs(20, 20);
        t[[5, 5]] = f32::NAN;
        let (f, valid) = raw_features(t.view(), zc.view(), zf.view(), 3000.0);
        assert!(!valid[[5, 5]]);
        assert!(f.iter().all(|v| v.is_finite()));
        assert!((0..N_FEATURES).all(|c| f[[c, 5, 5]] == 0.0));
    }
}
