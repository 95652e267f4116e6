//! Point interpolation of a source field at the cells of a destination grid.

use finecast_grid::{Field, Grid};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Interpolation kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interp {
    /// Value of the source cell whose centre is nearest (rounding the
    /// fractional index); keeps the coarse cells as blocks.
    Nearest,
    /// Bilinear on the 2x2 surrounding centres, with the weights renormalised
    /// over the finite corners, so values next to gaps (a coastline) survive;
    /// NaN only where all four corners are missing.
    Bilinear,
    /// Keys cubic convolution (a = -0.5) on 4x4 cells; falls back to bilinear
    /// next to missing values.
    Bicubic,
}

/// Where each destination cell falls in the source grid: fractional `(fj, fi)`
/// (NaN outside the source).
#[derive(Debug, Clone)]
pub struct Positions {
    /// Fractional source row (y axis, index `j`) of each destination cell, in
    /// the source grid's own row order (row 0 is `y[0]`, north or south);
    /// shape `(ny, nx)` of the destination; NaN outside the source.
    pub fj: Array2<f64>,
    /// Fractional source column (x axis, index `i`) of each destination cell;
    /// same shape and NaN convention as [`Positions::fj`].
    pub fi: Array2<f64>,
}

impl Positions {
    /// Locate every cell of `dst` in `src`.
    pub fn new(src: &Grid, dst: &Grid) -> Positions {
        let mut fj = Array2::from_elem(dst.shape(), f64::NAN);
        let mut fi = Array2::from_elem(dst.shape(), f64::NAN);
        // Rows in parallel, written in place: no per-cell temporaries.
        fj.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(fi.axis_iter_mut(Axis(0)).into_par_iter())
            .enumerate()
            .for_each(|(j, (mut row_j, mut row_i))| {
                for (i, (pj, pi)) in row_j.iter_mut().zip(row_i.iter_mut()).enumerate() {
                    let (lon, lat) = dst.lonlat(j, i);
                    if let Some((a, b)) = src.locate(lon, lat) {
                        *pj = a;
                        *pi = b;
                    }
                }
            });
        Positions { fj, fi }
    }

    /// Fraction of destination cells that fall inside the source grid.
    pub fn coverage(&self) -> f64 {
        let inside = self.fj.iter().filter(|v| v.is_finite()).count();
        inside as f64 / self.fj.len().max(1) as f64
    }
}

/// Access to source values with longitude wrap-around or edge clamping.
struct Source<'a> {
    data: ArrayView2<'a, f32>,
    wrap_x: bool,
}

impl Source<'_> {
    fn get(&self, j: isize, i: isize) -> f32 {
        let (ny, nx) = self.data.dim();
        let j = j.clamp(0, ny as isize - 1) as usize;
        let i = if self.wrap_x {
            i.rem_euclid(nx as isize) as usize
        } else {
            i.clamp(0, nx as isize - 1) as usize
        };
        self.data[[j, i]]
    }

    fn nearest(&self, fj: f64, fi: f64) -> f32 {
        self.get(fj.round() as isize, fi.round() as isize)
    }

    /// Bilinear with weights renormalised over the valid corners, so a field
    /// with gaps (a coastline) still gives values next to them.
    fn bilinear(&self, fj: f64, fi: f64) -> f32 {
        let (j0, i0) = (fj.floor(), fi.floor());
        let (tj, ti) = (fj - j0, fi - i0);
        let (j0, i0) = (j0 as isize, i0 as isize);
        let mut acc = 0.0f64;
        let mut wsum = 0.0f64;
        for (dj, wj) in [(0, 1.0 - tj), (1, tj)] {
            for (di, wi) in [(0, 1.0 - ti), (1, ti)] {
                let w = wj * wi;
                if w <= 0.0 {
                    continue;
                }
                let v = self.get(j0 + dj, i0 + di);
                if v.is_finite() {
                    acc += w * v as f64;
                    wsum += w;
                }
            }
        }
        if wsum > 1e-9 {
            (acc / wsum) as f32
        } else {
            f32::NAN
        }
    }

    fn bicubic(&self, fj: f64, fi: f64) -> f32 {
        let (j0, i0) = (fj.floor(), fi.floor());
        let wj = keys_weights(fj - j0);
        let wi = keys_weights(fi - i0);
        let (j0, i0) = (j0 as isize, i0 as isize);
        let mut acc = 0.0f64;
        for (a, wja) in wj.iter().enumerate() {
            for (b, wib) in wi.iter().enumerate() {
                let v = self.get(j0 + a as isize - 1, i0 + b as isize - 1);
                if !v.is_finite() {
                    return self.bilinear(fj, fi);
                }
                acc += wja * wib * v as f64;
            }
        }
        acc as f32
    }
}

/// Keys (1981) cubic convolution weights, a = -0.5, for offsets -1, 0, 1, 2.
fn keys_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.5;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Interpolate `src` (on `src_grid`) at precomputed positions.
pub fn interpolate(
    src: ArrayView2<f32>,
    src_grid: &Grid,
    pos: &Positions,
    method: Interp,
) -> Array2<f32> {
    let source = Source {
        data: src,
        wrap_x: src_grid.wraps_longitude(),
    };
    let mut out = Array2::from_elem(pos.fj.dim(), f32::NAN);
    out.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(j, mut row)| {
            for (i, v) in row.iter_mut().enumerate() {
                let (fj, fi) = (pos.fj[[j, i]], pos.fi[[j, i]]);
                if !(fj.is_finite() && fi.is_finite()) {
                    continue;
                }
                *v = match method {
                    Interp::Nearest => source.nearest(fj, fi),
                    Interp::Bilinear => source.bilinear(fj, fi),
                    Interp::Bicubic => source.bicubic(fj, fi),
                };
            }
        });
    out
}

/// Interpolate a field onto another grid.
pub fn regrid(src: &Field, dst: &Grid, method: Interp) -> Field {
    let pos = Positions::new(&src.grid, dst);
    Field {
        grid: dst.clone(),
        data: interpolate(src.data.view(), &src.grid, &pos, method),
    }
}
