//! Terrain for a target grid: the fine orography on the target cells and the
//! matching coarse orography, both derived from one DEM.

use std::path::Path;

use finecast_grid::{Field, Grid};
use finecast_methods::{area_mean, interpolate, regrid_terrain, Interp, Positions, TerrainRegrid};

use crate::PipelineError;

/// Names tried, in order, for a land mask or land area fraction.
const LAND_NAMES: [&str; 5] = [
    "sftlf",
    "land_area_fraction",
    "lsm",
    "land_binary_mask",
    "LANDMASK",
];

/// A DEM read for one target grid.
pub struct Terrain {
    pub path: std::path::PathBuf,
    /// The DEM itself, cropped to the target's surroundings.
    pub dem: Field,
    /// DEM on the target grid.
    pub fine: Field,
    pub how: TerrainRegrid,
}

impl Terrain {
    /// Read the DEM in `path` around `target` and bring it onto the target.
    /// `margin_deg` widens the read so coarse cells around the target are
    /// covered too.
    pub fn load(path: &Path, target: &Grid, margin_deg: f64) -> Result<Terrain, PipelineError> {
        let (dem, fine, how) = load_static(
            path,
            target,
            margin_deg,
            &finecast_io::OROGRAPHY_NAMES,
            "orography",
        )?;
        if dem.units != "m" {
            return Err(PipelineError::input(
                path,
                format!(
                    "variable '{}' has units '{}', expected an elevation in m",
                    dem.name, dem.units
                ),
            ));
        }
        Ok(Terrain {
            path: path.to_path_buf(),
            dem: dem.field,
            fine,
            how,
        })
    }

    /// The orography of a coarse grid derived the same way: area mean of the
    /// DEM in each coarse cell, bilinear where the DEM is too sparse. Cells the
    /// DEM does not reach stay missing.
    pub fn coarse(&self, coarse: &Grid) -> Field {
        let mut z = area_mean(&self.dem, coarse, 0.5);
        let pos = Positions::new(&self.dem.grid, coarse);
        let bil = interpolate(self.dem.data.view(), &self.dem.grid, &pos, Interp::Bilinear);
        z.data.zip_mut_with(&bil, |m, &b| {
            if !m.is_finite() {
                *m = b;
            }
        });
        z
    }
}

/// Land area fraction (0..1) on `target` from a land mask or fraction file:
/// the area mean of a binary mask is the fraction of land in each cell.
pub fn load_land_fraction(path: &Path, target: &Grid) -> Result<Field, PipelineError> {
    let (mask, mut fine, _) = load_static(path, target, 0.1, &LAND_NAMES, "land mask")?;
    // Percentages become fractions.
    let percent = mask.units == "%" || mask.field.range().is_some_and(|(_, hi)| hi > 1.5);
    if percent {
        fine.data.mapv_inplace(|v| v / 100.0);
    }
    fine.data.mapv_inplace(|v| v.clamp(0.0, 1.0));
    Ok(fine)
}

/// Read a static field (first match of `names`) around `target` and regrid it
/// onto the target; an error names the file and variable when it falls short.
fn load_static(
    path: &Path,
    target: &Grid,
    margin_deg: f64,
    names: &[&str],
    what: &str,
) -> Result<(finecast_io::FieldData, Field, TerrainRegrid), PipelineError> {
    let data = finecast_io::read_static(path, names, what, target, margin_deg)?;
    let (fine, how) = regrid_terrain(&data.field, target).map_err(|e| {
        PipelineError::input(
            path,
            format!(
                "variable '{}' does not cover the target grid: {e}",
                data.name
            ),
        )
    })?;
    Ok((data, fine, how))
}
