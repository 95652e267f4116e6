//! The physical baselines a meteorologist compares a downscaler against.
//!
//! * interpolation (nearest, bilinear, bicubic) for every variable;
//! * for 2 m temperature, a fixed lapse-rate correction
//!   `T_f = bil(T_c) + Γ (bil(z_c) − z_f)` with Γ = 6.5 K/km;
//! * MET Norway gridpp's "gradient" method: a local least-squares slope γ of
//!   temperature against elevation over a window of coarse cells, clamped to a
//!   physical range. gridpp applies it from the nearest coarse cell,
//!   `T_f = T_nn + γ_nn (z_f − z_nn)`; finecast interpolates all three
//!   bilinearly, `T_f = bil(T_c) + bil(γ) (z_f − bil(z_c))`, which removes the
//!   coarse-cell blocks and scored 0.306 K against 0.346 K for the nearest-cell
//!   form on PRISM tmax over Colorado (the reference implementation: 0.302 K).

use std::fmt;
use std::str::FromStr;

use finecast_grid::{Field, Grid};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::interp::{interpolate, Interp, Positions};
use crate::MethodError;

/// Standard atmosphere lapse rate (K per metre of ascent).
pub const STANDARD_LAPSE_RATE: f64 = 0.0065;

/// A training-free downscaling method, named in requests, files and the model
/// card by its lowercase [`Baseline::name`] (also its serde form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// Nearest coarse cell ([`Interp::Nearest`]): any variable.
    Nearest,
    /// Bilinear interpolation ([`Interp::Bilinear`]): any variable.
    Bilinear,
    /// Keys bicubic interpolation ([`Interp::Bicubic`]): any variable.
    Bicubic,
    /// Bilinear temperature plus a fixed [`STANDARD_LAPSE_RATE`] correction
    /// for the fine-minus-coarse elevation difference. Temperatures only;
    /// needs coarse and fine orography (m).
    Lapse,
    /// gridpp's gradient method: bilinear temperature plus a locally fitted,
    /// clamped elevation gradient ([`local_gradients`], [`GradientParams`])
    /// times the elevation difference. Temperatures only; needs orography.
    Gradient,
}

impl Baseline {
    /// Every baseline, in the order they are listed and scored.
    pub const ALL: [Baseline; 5] = [
        Baseline::Nearest,
        Baseline::Bilinear,
        Baseline::Bicubic,
        Baseline::Lapse,
        Baseline::Gradient,
    ];

    /// The lowercase name used on the command line, in the API and in
    /// outputs; [`FromStr`] accepts exactly these names.
    pub fn name(&self) -> &'static str {
        match self {
            Baseline::Nearest => "nearest",
            Baseline::Bilinear => "bilinear",
            Baseline::Bicubic => "bicubic",
            Baseline::Lapse => "lapse",
            Baseline::Gradient => "gradient",
        }
    }

    /// Whether the method uses terrain (and so only applies to temperatures).
    pub fn needs_terrain(&self) -> bool {
        matches!(self, Baseline::Lapse | Baseline::Gradient)
    }
}

impl fmt::Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Baseline {
    type Err = MethodError;
    fn from_str(s: &str) -> Result<Baseline, MethodError> {
        Baseline::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| MethodError::UnknownMethod(s.to_string()))
    }
}

/// Parameters of the gridpp gradient method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GradientParams {
    /// Half-width of the square window of coarse cells (3 gives 7x7).
    pub radius: usize,
    /// Lower clamp of the fitted gradient, K per metre (default −0.010,
    /// about the dry-adiabatic rate: faster cooling with height is noise).
    pub min_gradient: f64,
    /// Upper clamp of the fitted gradient, K per metre (default +0.005,
    /// allowing moderate inversions).
    pub max_gradient: f64,
    /// Gradient (K per metre) used where the window has fewer than 3 valid
    /// cells or its elevation spread is too small to fit a slope (default
    /// −[`STANDARD_LAPSE_RATE`]).
    pub default_gradient: f64,
    /// Minimum standard deviation of coarse elevation in the window (m).
    pub min_elevation_std: f64,
}

impl Default for GradientParams {
    fn default() -> Self {
        GradientParams {
            radius: 3,
            min_gradient: -0.010,
            max_gradient: 0.005,
            default_gradient: -STANDARD_LAPSE_RATE,
            min_elevation_std: 30.0,
        }
    }
}

/// Local elevation gradient (K/m) for every coarse cell: the least-squares slope
/// of `t` on `z` over the window around it.
pub fn local_gradients(t: ArrayView2<f32>, z: ArrayView2<f32>, p: &GradientParams) -> Array2<f32> {
    let (ny, nx) = t.dim();
    let r = p.radius as isize;
    Array2::from_shape_fn((ny, nx), |(j, i)| {
        let (mut n, mut sz, mut st, mut szz, mut szt) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
        for dj in -r..=r {
            for di in -r..=r {
                let (jj, ii) = (j as isize + dj, i as isize + di);
                if jj < 0 || ii < 0 || jj >= ny as isize || ii >= nx as isize {
                    continue;
                }
                let (tv, zv) = (t[[jj as usize, ii as usize]], z[[jj as usize, ii as usize]]);
                if !(tv.is_finite() && zv.is_finite()) {
                    continue;
                }
                let (tv, zv) = (tv as f64, zv as f64);
                n += 1.0;
                sz += zv;
                st += tv;
                szz += zv * zv;
                szt += zv * tv;
            }
        }
        if n < 3.0 {
            return p.default_gradient as f32;
        }
        let var_z = (szz / n - (sz / n).powi(2)).max(0.0);
        if var_z.sqrt() < p.min_elevation_std {
            return p.default_gradient as f32;
        }
        let cov = szt / n - (sz / n) * (st / n);
        (cov / var_z).clamp(p.min_gradient, p.max_gradient) as f32
    })
}

/// The coarse-grid inputs of a downscaling: the field and, for the terrain
/// methods, the coarse orography and the local gradients derived from both.
pub struct CoarseInput<'a> {
    /// The coarse field to downscale (any variable; K for the terrain methods).
    pub field: &'a Field,
    /// Coarse surface elevation (m) on the same grid as [`CoarseInput::field`];
    /// `None` for the interpolation-only methods.
    pub orography: Option<&'a Field>,
    /// [`local_gradients`] of the field against the orography (field units per
    /// metre, K/m for temperature), one per coarse cell; present exactly when
    /// the orography is. Fitted once in [`CoarseInput::new`] so that every
    /// tile or target downscaled from this input shares them.
    pub gradients: Option<Array2<f32>>,
}

impl<'a> CoarseInput<'a> {
    /// Bundle a coarse field with its optional orography, fitting the local
    /// gradients with `p` when orography is given.
    ///
    /// Fails with [`MethodError::GridMismatch`] when the orography is not on
    /// the field's grid.
    pub fn new(
        field: &'a Field,
        orography: Option<&'a Field>,
        p: &GradientParams,
    ) -> Result<Self, MethodError> {
        if let Some(z) = orography {
            if z.grid != field.grid {
                return Err(MethodError::GridMismatch(
                    "coarse orography is not on the grid of the coarse field".into(),
                ));
            }
        }
        let gradients = orography.map(|z| local_gradients(field.data.view(), z.data.view(), p));
        Ok(CoarseInput {
            field,
            orography,
            gradients,
        })
    }

    /// The coarse grid (that of [`CoarseInput::field`]).
    pub fn grid(&self) -> &Grid {
        &self.field.grid
    }
}

/// Downscale `coarse` onto `dst` with a baseline. Terrain methods need the
/// coarse orography (in `coarse`) and the fine orography on `dst`.
pub fn downscale(
    method: Baseline,
    coarse: &CoarseInput,
    dst: &Grid,
    fine_orography: Option<ArrayView2<f32>>,
) -> Result<Array2<f32>, MethodError> {
    let pos = Positions::new(coarse.grid(), dst);
    downscale_at(method, coarse, &pos, fine_orography)
}

/// As [`downscale`], with the destination cells already located in the coarse grid.
pub fn downscale_at(
    method: Baseline,
    coarse: &CoarseInput,
    pos: &Positions,
    fine_orography: Option<ArrayView2<f32>>,
) -> Result<Array2<f32>, MethodError> {
    let src = coarse.field.data.view();
    let grid = coarse.grid();
    match method {
        Baseline::Nearest => Ok(interpolate(src, grid, pos, Interp::Nearest)),
        Baseline::Bilinear => Ok(interpolate(src, grid, pos, Interp::Bilinear)),
        Baseline::Bicubic => Ok(interpolate(src, grid, pos, Interp::Bicubic)),
        Baseline::Lapse | Baseline::Gradient => {
            let (Some(zc), Some(zf)) = (coarse.orography, fine_orography) else {
                return Err(MethodError::NeedsTerrain(method.name()));
            };
            if zf.dim() != pos.fj.dim() {
                return Err(MethodError::GridMismatch(format!(
                    "fine orography shape {:?} differs from the target {:?}",
                    zf.dim(),
                    pos.fj.dim()
                )));
            }
            if method == Baseline::Lapse {
                let t = interpolate(src, grid, pos, Interp::Bilinear);
                let z = interpolate(zc.data.view(), grid, pos, Interp::Bilinear);
                Ok(ndarray::Zip::from(&t)
                    .and(&z)
                    .and(zf)
                    .map_collect(|&t, &z, &zf| {
                        t + (STANDARD_LAPSE_RATE * (z as f64 - zf as f64)) as f32
                    }))
            } else {
                let gradients = coarse
                    .gradients
                    .as_ref()
                    .ok_or(MethodError::NeedsTerrain(method.name()))?;
                let t = interpolate(src, grid, pos, Interp::Bilinear);
                let z = interpolate(zc.data.view(), grid, pos, Interp::Bilinear);
                let g = interpolate(gradients.view(), grid, pos, Interp::Bilinear);
                Ok(ndarray::Zip::from(&t)
                    .and(&z)
                    .and(&g)
                    .and(zf)
                    .map_collect(|&t, &z, &g, &zf| t + g * (zf - z)))
            }
        }
    }
}
