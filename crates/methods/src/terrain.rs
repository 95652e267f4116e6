//! Terrain (and mask) regridding onto a target grid.

use finecast_grid::{Field, Grid};
use ndarray::{s, Array2};

use crate::coarsen::area_mean;
use crate::interp::{interpolate, Interp, Positions};
use crate::MethodError;

/// How a DEM was brought onto the target grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerrainRegrid {
    /// The DEM is more than twice as fine: area mean of the DEM cells inside each
    /// target cell (bilinear where too few DEM cells fall in a cell).
    AreaMean,
    /// The DEM is not much finer than the target: bilinear interpolation.
    Bilinear,
}

/// Regrid a DEM (or land mask) onto `dst`: area mean when coarsening, bilinear
/// when refining. Fails when the DEM does not cover every target cell.
pub fn regrid_terrain(dem: &Field, dst: &Grid) -> Result<(Field, TerrainRegrid), MethodError> {
    let size = |g: &Grid| {
        let (dx, dy) = g.spacing_m();
        (dx * dy).sqrt()
    };
    let how = if size(&dem.grid) * 2.0 > size(dst) {
        TerrainRegrid::Bilinear
    } else {
        TerrainRegrid::AreaMean
    };
    let (ny, nx) = dst.shape();
    let mut data = Array2::from_elem((ny, nx), f32::NAN);
    // Bilinear positions take 16 bytes a cell: locate a strip of rows at a
    // time so big targets need no more than the output itself.
    let mut covered = 0usize;
    for j0 in (0..ny).step_by(STRIP_ROWS) {
        let j1 = (j0 + STRIP_ROWS).min(ny);
        let strip = dst.subset(j0, j1, 0, nx);
        let pos = Positions::new(&dem.grid, &strip);
        covered += pos.fj.iter().filter(|v| v.is_finite()).count();
        let bilinear = interpolate(dem.data.view(), &dem.grid, &pos, Interp::Bilinear);
        data.slice_mut(s![j0..j1, ..]).assign(&bilinear);
    }
    if covered < ny * nx {
        return Err(MethodError::NotCovered {
            fraction: covered as f64 / (ny * nx).max(1) as f64,
        });
    }
    if how == TerrainRegrid::AreaMean {
        let mean = area_mean(dem, dst, 0.5);
        data.zip_mut_with(&mean.data, |b, &m| {
            if m.is_finite() {
                *b = m;
            }
        });
    }
    Ok((
        Field {
            grid: dst.clone(),
            data,
        },
        how,
    ))
}

/// Target rows located at once by [`regrid_terrain`].
const STRIP_ROWS: usize = 128;
