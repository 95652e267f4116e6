//! Conservative (area-weighted) aggregation of a fine field onto a coarser grid.

use finecast_grid::{Crs, Field, Grid, EARTH_RADIUS_M};
use ndarray::Array2;
use rayon::prelude::*;

/// Approximate area (m²) of every cell of a grid. Angular grids use
/// R² dλ dφ cos φ (in their own, possibly rotated, frame); projected grids
/// dx·dy, ignoring the small scale-factor variation of conformal projections.
pub fn cell_areas(grid: &Grid) -> Array2<f64> {
    let widths = |c: &[f64]| -> Vec<f64> {
        let n = c.len();
        (0..n)
            .map(|k| {
                if n == 1 {
                    return 1.0;
                }
                let lo = if k == 0 {
                    c[0] - (c[1] - c[0]) * 0.5
                } else {
                    (c[k - 1] + c[k]) * 0.5
                };
                let hi = if k == n - 1 {
                    c[n - 1] + (c[n - 1] - c[n - 2]) * 0.5
                } else {
                    (c[k] + c[k + 1]) * 0.5
                };
                (hi - lo).abs()
            })
            .collect()
    };
    let (wx, wy) = (widths(grid.x()), widths(grid.y()));
    match grid.crs() {
        Crs::LatLon { .. } | Crs::RotatedPole { .. } => {
            let r2 = EARTH_RADIUS_M * EARTH_RADIUS_M;
            Array2::from_shape_fn(grid.shape(), |(j, i)| {
                r2 * wx[i].to_radians() * wy[j].to_radians() * grid.y()[j].to_radians().cos().abs()
            })
        }
        _ => Array2::from_shape_fn(grid.shape(), |(j, i)| wx[i] * wy[j]),
    }
}

/// Area-weighted mean of the `fine` cells whose centres fall inside each cell of
/// `coarse`. A coarse cell whose valid fine cells cover less than
/// `min_valid_fraction` of its area is missing (NaN).
///
/// Fine cells are weighted by their own area (cos φ on lat/lon grids), so the
/// mean is conservative.
pub fn area_mean(fine: &Field, coarse: &Grid, min_valid_fraction: f64) -> Field {
    let (ny, nx) = fine.grid.shape();
    let fine_area = cell_areas(&fine.grid);
    let coarse_area = cell_areas(coarse);
    let shape = coarse.shape();

    // Locating fine cells (a projection each) runs in parallel; adding them up
    // runs in row order, so the sums do not depend on the thread count.
    let mut sum = Array2::<f64>::zeros(shape);
    let mut area = Array2::<f64>::zeros(shape);
    const ROWS_PER_BATCH: usize = 256;
    for batch in (0..ny).step_by(ROWS_PER_BATCH) {
        let rows: Vec<Vec<(usize, usize, usize)>> = (batch..(batch + ROWS_PER_BATCH).min(ny))
            .into_par_iter()
            .map(|j| {
                (0..nx)
                    .filter(|&i| fine.data[[j, i]].is_finite())
                    .filter_map(|i| {
                        let (lon, lat) = fine.grid.lonlat(j, i);
                        let (cj, ci) = coarse.locate(lon, lat)?;
                        let (cj, ci) = (round_half_down(cj), round_half_down(ci));
                        (cj < shape.0 && ci < shape.1).then_some((i, cj, ci))
                    })
                    .collect()
            })
            .collect();
        for (row, j) in rows.iter().zip(batch..) {
            for &(i, cj, ci) in row {
                let a = fine_area[[j, i]];
                sum[[cj, ci]] += a * fine.data[[j, i]] as f64;
                area[[cj, ci]] += a;
            }
        }
    }
    let data = Array2::from_shape_fn(shape, |idx| {
        if area[idx] > 0.0 && area[idx] >= min_valid_fraction * coarse_area[idx] {
            (sum[idx] / area[idx]) as f32
        } else {
            f32::NAN
        }
    });
    Field {
        grid: coarse.clone(),
        data,
    }
}

/// Nearest cell for a fractional index, putting an exact half on the lower
/// cell so a fine centre on a coarse edge is counted once.
fn round_half_down(f: f64) -> usize {
    let r = (f - 0.5).ceil();
    r.max(0.0) as usize
}

/// A regular lat/lon grid of `res` degrees whose cell edges lie on multiples of
/// `res`, covering the geographic extent of `grid` (south to north rows).
pub fn aligned_latlon_grid(grid: &Grid, res: f64) -> Result<Grid, finecast_grid::GridError> {
    let (w, s, e, n) = grid.bbox_lonlat();
    let lo = |v: f64| (v / res).floor() * res;
    let hi = |v: f64| (v / res).ceil() * res;
    let (w0, e0) = (lo(w), hi(e));
    let (s0, n0) = (lo(s).max(-90.0), hi(n).min(90.0));
    let nx = ((e0 - w0) / res).round().max(1.0) as usize;
    let nyc = ((n0 - s0) / res).round().max(1.0) as usize;
    Grid::regular_latlon(w0 + res * 0.5, res, nx, s0 + res * 0.5, res, nyc)
}
