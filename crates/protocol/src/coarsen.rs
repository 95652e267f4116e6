//! The coarse side of a perfect-model case: the grid, the conservative mean
//! onto it, the edge margin scoring leaves out, and the row order networks see.

use finecast_grid::{Field, Grid};
use finecast_methods::{aligned_latlon_grid, area_mean};
use ndarray::Axis;

use crate::ProtocolError;

/// Fraction of a coarse cell that valid fine cells must cover for its mean
/// to count; below it the coarse cell is missing.
pub const MIN_COVERAGE: f64 = 0.5;

/// The coarse lat/lon grid of `res_deg` degrees over a truth grid, its cell
/// edges on multiples of `res_deg` (as a global model's grid would lie).
pub fn coarse_grid(truth: &Grid, res_deg: f64) -> Result<Grid, ProtocolError> {
    Ok(aligned_latlon_grid(truth, res_deg)?)
}

/// The conservative (area-weighted) mean of `field` in each cell of `coarse`:
/// the perfect-model coarse input, and the coarse orography from the DEM on
/// the truth cells.
pub fn coarsen(field: &Field, coarse: &Grid) -> Field {
    area_mean(field, coarse, MIN_COVERAGE)
}

/// One coarse cell expressed in truth cells, along (y, x): scores leave this
/// margin out, where interpolation has only one side of coarse cells.
pub fn edge_margin(truth: &Grid, coarse: &Grid) -> (usize, usize) {
    let (tdx, tdy) = truth.spacing_m();
    let (cdx, cdy) = coarse.spacing_m();
    ((cdy / tdy).ceil() as usize, (cdx / tdx).ceil() as usize)
}

/// The field with rows and columns in ascending coordinate order (south to
/// north, west to east on longitude/latitude grids), as the networks learn
/// and predict: a north-up raster would show them a mirrored world.
pub fn ascending(field: &Field) -> Result<Field, ProtocolError> {
    let (y_desc, x_desc) = (field.grid.is_y_descending(), field.grid.is_x_descending());
    if !(y_desc || x_desc) {
        return Ok(field.clone());
    }
    let mut data = field.data.view();
    let (mut x, mut y) = (field.grid.x().to_vec(), field.grid.y().to_vec());
    if y_desc {
        data.invert_axis(Axis(0));
        y.reverse();
    }
    if x_desc {
        data.invert_axis(Axis(1));
        x.reverse();
    }
    let grid = Grid::new(field.grid.crs().clone(), x, y)?;
    Ok(Field::new(grid, data.as_standard_layout().into_owned())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn coarse_cells_sit_on_multiples_of_the_resolution() {
        let truth = Grid::regular_latlon(5.02, 0.04, 60, 45.51, 0.04, 40).unwrap();
        let coarse = coarse_grid(&truth, 0.25).unwrap();
        assert!((coarse.x()[0] - 5.125).abs() < 1e-12, "{:?}", coarse.x());
        assert!((coarse.y()[0] - 45.625).abs() < 1e-12, "{:?}", coarse.y());
        // A constant field stays constant where it covers half a coarse
        // cell; the edge cells it covers less are missing.
        let field = Field::new(truth.clone(), Array2::from_elem((40, 60), 7.0)).unwrap();
        let mean = coarsen(&field, &coarse);
        let valid: Vec<f32> = mean
            .data
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        assert!(valid.len() >= 6 * 9, "{}", valid.len());
        assert!(valid.iter().all(|v| (v - 7.0).abs() < 1e-5));
        assert!(mean.data.iter().any(|v| v.is_nan()));
        let (my, mx) = edge_margin(&truth, &coarse);
        assert!((6..=8).contains(&my) && (6..=8).contains(&mx), "{my} {mx}");
    }

    #[test]
    fn ascending_turns_a_north_up_raster() {
        let grid = Grid::regular_latlon(0.0, 1.0, 3, 10.0, -1.0, 2).unwrap();
        let data = Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let turned = ascending(&Field::new(grid, data).unwrap()).unwrap();
        assert_eq!(turned.grid.y(), &[9.0, 10.0]);
        assert_eq!(turned.data.row(0).to_vec(), vec![4.0, 5.0, 6.0]);
    }
}
