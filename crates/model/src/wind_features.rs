//! The wind model's features and frame. The network corrects the bilinear
//! coarse wind vector `w_b = (bil(u_c), bil(v_c))`; its two outputs are the
//! correction along `w_b` and across it (to the left), so the prediction is
//! `w = w_b + σ (a ê + c ê⊥)` with `ê = w_b / max(|w_b|, 1 m s-1)`.
//!
//! Every feature is a scalar that does not change when the wind and the
//! terrain are rotated together (speed, terrain slope along and across the
//! wind, relief, open water), and the outputs are in the wind's own frame, so
//! the model does not depend on which way a grid's axes point: terrain
//! slopes along the grid axes are turned to east/north with the grid's
//! [`finecast_grid::Grid::x_axis_angle`] before they meet the earth-relative
//! wind. This is also what lets training rotate patches by multiples of 90°
//! (the outputs and features of a rotated world are the rotated outputs and
//! features), which a single model time badly needs. Near calm
//! (`s = |w_b| < 1 m s-1`) the frame vector has length `s`: the training
//! targets are the correction projected on it and the prediction adds the
//! outputs along it again, so a perfect network restores `s²` of the
//! correction there, fading it out where the coarse wind has no direction to
//! speak of.

use ndarray::{Array2, Array3, Zip};

use crate::features::{
    sea_level_mask, terrain_features, Frame, Integral, Prepared, FEATURE_RADIUS, SEA_LEVEL_RADII,
};
use crate::ModelInputs;

/// Names of the wind model's feature channels, in order.
///
/// There is no grid-spacing channel: the only training field is on a 4 km
/// grid, so the network could not learn what the spacing changes, and an
/// input it never saw vary would only add noise elsewhere.
pub const WIND_FEATURE_NAMES: [&str; 16] = [
    "z_anomaly",
    "relief_r2",
    "relief_r7",
    "relief_r12",
    "slope_along_wind",
    "slope_across_wind",
    "speed_bilinear",
    "sea_level_mask",
    "sea_level_fraction_r3",
    "sea_level_fraction_r12",
    "speed_times_anomaly",
    "speed_times_sea_level_contrast",
    "wind_curvature_along_r3",
    "wind_curvature_across_r3",
    "wind_curvature_along_r8",
    "wind_curvature_across_r8",
];

/// Below this coarse wind speed (m s-1) the along-wind frame vector is
/// shorter than 1.
pub const CALM_SPEED: f32 = 1.0;

/// Half-widths (cells) of the box means whose difference from the coarse
/// wind is its curvature (what bicubic interpolation uses to sharpen).
const CURVATURE_RADII: [usize; 2] = [3, 8];

// The features must stay within the radius the tiling halo is sized for.
const _: () = assert!(CURVATURE_RADII[1] <= FEATURE_RADIUS);

/// The bilinear coarse wind of a tile and its along-wind frame vector
/// `ê = w_b / max(|w_b|, CALM_SPEED)` (earth-relative components).
pub struct WindFrame {
    /// Eastward component of the bilinear coarse wind (m s-1), `(ny, nx)`.
    pub u: Array2<f32>,
    /// Northward component of the bilinear coarse wind (m s-1), `(ny, nx)`.
    pub v: Array2<f32>,
    /// Eastward component of `ê` (dimensionless): `u / max(|w_b|,
    /// CALM_SPEED)`, so `|ê| = 1` except near calm, where it is `|w_b|`.
    pub ex: Array2<f32>,
    /// Northward component of `ê`: `v / max(|w_b|, CALM_SPEED)`.
    pub ey: Array2<f32>,
}

impl WindFrame {
    fn new(u: Array2<f32>, v: Array2<f32>) -> WindFrame {
        let scale = |u: f32, v: f32| 1.0 / u.hypot(v).max(CALM_SPEED);
        let ex = Zip::from(&u).and(&v).map_collect(|&u, &v| u * scale(u, v));
        let ey = Zip::from(&u).and(&v).map_collect(|&u, &v| v * scale(u, v));
        WindFrame { u, v, ex, ey }
    }

    /// The correction from the coarse wind to `(u, v)` at a cell, along and
    /// across `ê`.
    pub fn residual(&self, j: usize, i: usize, u: f32, v: f32) -> [f32; 2] {
        let (du, dv) = (u - self.u[[j, i]], v - self.v[[j, i]]);
        let (ex, ey) = (self.ex[[j, i]], self.ey[[j, i]]);
        [du * ex + dv * ey, -du * ey + dv * ex]
    }

    /// The wind `(u, v)` at a cell after a correction along and across `ê`.
    pub fn apply(&self, j: usize, i: usize, along: f32, across: f32) -> (f32, f32) {
        let (ex, ey) = (self.ex[[j, i]], self.ey[[j, i]]);
        (
            self.u[[j, i]] + along * ex - across * ey,
            self.v[[j, i]] + along * ey + across * ex,
        )
    }
}

/// Features and frame of a wind tile: `inputs.coarse_bilinear` is the
/// eastward and `inputs.northward_bilinear` the northward component of the
/// bilinear coarse wind (m s-1). Cells where either component, either
/// orography or the grid angle is missing are invalid.
pub fn prepare(inputs: &ModelInputs) -> Prepared {
    let (u, zc, zf) = (
        inputs.coarse_bilinear,
        inputs.coarse_orog_bilinear,
        inputs.fine_orog,
    );
    let (ny, nx) = u.dim();
    let v = match inputs.northward_bilinear {
        Some(v) => v.to_owned(),
        None => Array2::from_elem((ny, nx), f32::NAN),
    };
    let angle = |j: usize, i: usize| inputs.x_axis_angle.map_or(0.0, |a| a[[j, i]]);
    let valid = Array2::from_shape_fn((ny, nx), |(j, i)| {
        u[[j, i]].is_finite()
            && v[[j, i]].is_finite()
            && zc[[j, i]].is_finite()
            && zf[[j, i]].is_finite()
            && angle(j, i).is_finite()
    });
    let frame = WindFrame::new(u.to_owned(), v);
    let n = WIND_FEATURE_NAMES.len();
    let mut f = Array3::<f32>::zeros((n, ny, nx));
    if ny == 0 || nx == 0 {
        return Prepared {
            features: f,
            valid,
            frame: Frame::Wind(frame),
        };
    }
    terrain_features(&mut f, zc, zf, &valid, inputs.dx_m);
    let sea = sea_level_mask(zf);
    let isea = Integral::new(sea.view(), &valid);
    let (iu, iv) = (
        Integral::new(frame.u.view(), &valid),
        Integral::new(frame.v.view(), &valid),
    );
    for ((j, i), &ok) in valid.indexed_iter() {
        if !ok {
            continue;
        }
        // Terrain gradient along the grid axes → east/north.
        let (gx, gy) = (f[[4, j, i]], f[[5, j, i]]);
        let (sin, cos) = angle(j, i).sin_cos();
        let (ge, gn) = (gx * cos - gy * sin, gx * sin + gy * cos);
        let (ex, ey) = (frame.ex[[j, i]], frame.ey[[j, i]]);
        f[[4, j, i]] = ge * ex + gn * ey;
        f[[5, j, i]] = -ge * ey + gn * ex;
        let speed = frame.u[[j, i]].hypot(frame.v[[j, i]]);
        f[[6, j, i]] = speed;
        f[[7, j, i]] = sea[[j, i]];
        let mut fractions = [0.0f32; 2];
        for (k, &r) in SEA_LEVEL_RADII.iter().enumerate() {
            let (s, c) = isea.window(j, i, r);
            fractions[k] = (s / c) as f32;
            f[[8 + k, j, i]] = fractions[k];
        }
        f[[10, j, i]] = speed * f[[0, j, i]] / 1000.0;
        f[[11, j, i]] = speed * (fractions[0] - fractions[1]);
        for (k, &r) in CURVATURE_RADII.iter().enumerate() {
            let ((su, c), (sv, _)) = (iu.window(j, i, r), iv.window(j, i, r));
            let du = (su / c) as f32 - frame.u[[j, i]];
            let dv = (sv / c) as f32 - frame.v[[j, i]];
            f[[12 + 2 * k, j, i]] = du * ex + dv * ey;
            f[[13 + 2 * k, j, i]] = -du * ey + dv * ex;
        }
    }
    Prepared {
        features: f,
        valid,
        frame: Frame::Wind(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terrain(ny: usize, nx: usize) -> (Array2<f32>, Array2<f32>) {
        let zc = Array2::from_shape_fn((ny, nx), |(j, i)| 300.0 + 2.0 * (j + i) as f32);
        let zf = Array2::from_shape_fn((ny, nx), |(j, i)| {
            // A coast along i = 12 and hills inland.
            if i < 12 {
                0.0
            } else {
                zc[[j, i]] + 250.0 * ((j as f32 * 0.3).sin() * (i as f32 * 0.2).cos())
            }
        });
        (zc, zf)
    }

    /// Turning the world (terrain and wind) by 90° turns the features'
    /// fields with it and leaves their values alone: the model does not
    /// care which way the grid faces.
    #[test]
    fn features_do_not_depend_on_the_grid_orientation() {
        let n = 48;
        let (zc, zf) = terrain(n, n);
        let u = Array2::from_shape_fn((n, n), |(j, i)| 6.0 + 0.05 * j as f32 - 0.02 * i as f32);
        let v = Array2::from_shape_fn((n, n), |(j, i)| -3.0 + 0.03 * (i + j) as f32);
        let inputs =
            ModelInputs::new(u.view(), zc.view(), zf.view(), 3000.0).with_wind(v.view(), None);
        let a = prepare(&inputs);
        // Rotate 90° counter-clockwise (rows are y, south to north):
        // new[j][i] = old[n-1-i][j], and vectors (u, v) → (−v, u).
        let rot = |x: &Array2<f32>| Array2::from_shape_fn((n, n), |(j, i)| x[[n - 1 - i, j]]);
        let (ur, vr) = (rot(&v).mapv(|x| -x), rot(&u));
        let (zcr, zfr) = (rot(&zc), rot(&zf));
        let rotated =
            ModelInputs::new(ur.view(), zcr.view(), zfr.view(), 3000.0).with_wind(vr.view(), None);
        let b = prepare(&rotated);
        // Away from the edges (one-sided differences there) every channel of
        // the turned world is the original's channel, turned.
        let channels = a.features.outer_iter().zip(b.features.outer_iter());
        for (name, (fa, bb)) in WIND_FEATURE_NAMES.iter().zip(channels) {
            let fa_rot = rot(&fa.to_owned());
            for j in 2..n - 2 {
                for i in 2..n - 2 {
                    let (x, y) = (fa_rot[[j, i]], bb[[j, i]]);
                    assert!(
                        (x - y).abs() <= 1e-3 * (1.0 + x.abs()),
                        "channel {name} at ({j},{i}): {x} vs {y}"
                    );
                }
            }
        }
    }

    /// A correction computed from a truth and applied back gives the truth
    /// wherever the coarse wind is not calm.
    #[test]
    fn residual_and_apply_are_inverse() {
        let u = Array2::from_shape_fn((3, 3), |(j, i)| 4.0 - 3.0 * j as f32 + i as f32);
        let v = Array2::from_shape_fn((3, 3), |(j, i)| -2.0 + 2.5 * i as f32 - j as f32);
        let frame = WindFrame::new(u.clone(), v.clone());
        for j in 0..3 {
            for i in 0..3 {
                let [a, c] = frame.residual(j, i, 7.0, -1.5);
                let (ut, vt) = frame.apply(j, i, a, c);
                if u[[j, i]].hypot(v[[j, i]]) >= CALM_SPEED {
                    assert!((ut - 7.0).abs() < 1e-4 && (vt + 1.5).abs() < 1e-4);
                }
            }
        }
        // Along the wind is along it: a faster wind in the same direction is
        // a pure along-wind correction.
        let [a, c] = frame.residual(0, 0, 8.0, -4.0);
        assert!(a > 0.0 && c.abs() < 1e-5, "{a} {c}");
    }
}
