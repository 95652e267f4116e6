//! Terrain (and mask) regridding onto a target grid.

use finecast_grid::{Field, Grid};

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
    let pos = Positions::new(&dem.grid, dst);
    let coverage = pos.coverage();
    if coverage < 1.0 {
        return Err(MethodError::NotCovered { fraction: coverage });
    }
    let bilinear = interpolate(dem.data.view(), &dem.grid, &pos, Interp::Bilinear);
    let size = |g: &Grid| {
        let (dx, dy) = g.spacing_m();
        (dx * dy).sqrt()
    };
    if size(&dem.grid) * 2.0 > size(dst) {
        return Ok((
            Field {
                grid: dst.clone(),
                data: bilinear,
            },
            TerrainRegrid::Bilinear,
        ));
    }
    let mut mean = area_mean(dem, dst, 0.5);
    mean.data.zip_mut_with(&bilinear, |m, &b| {
        if !m.is_finite() {
            *m = b;
        }
    });
    Ok((mean, TerrainRegrid::AreaMean))
}
