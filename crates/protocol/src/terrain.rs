//! Terrain for a target grid: the fine orography on the target cells and the
//! matching coarse orography, both derived from one DEM.

use std::path::Path;

use finecast_grid::{Field, Grid};
use finecast_methods::{interpolate, regrid_terrain, Interp, Positions, TerrainRegrid};

use crate::{coarsen, ProtocolError};

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
    /// The DEM file it was read from (for messages and provenance).
    pub path: std::path::PathBuf,
    /// The DEM itself, cropped to the target's surroundings.
    pub dem: Field,
    /// DEM on the target grid.
    pub fine: Field,
    /// How `fine` was made: area mean of the DEM cells in each target cell
    /// when the DEM is over twice as fine, else bilinear interpolation.
    pub how: TerrainRegrid,
}

impl Terrain {
    /// Read the DEM in `path` around `target` and bring it onto the target.
    /// `margin_deg` widens the read so coarse cells around the target are
    /// covered too.
    ///
    /// Missing DEM cells are sea level (0 m): national terrain models mark the
    /// sea as missing (the Cornwall DTMs, OS Terrain 50), and leaving it
    /// missing would blank every coarse cell that touches the coast.
    pub fn load(path: &Path, target: &Grid, margin_deg: f64) -> Result<Terrain, ProtocolError> {
        let mut dem = finecast_io::read_static(
            path,
            &finecast_io::OROGRAPHY_NAMES,
            "orography",
            target,
            margin_deg,
        )?;
        if dem.units != "m" {
            return Err(ProtocolError::input(
                path,
                format!(
                    "variable '{}' has units '{}', expected an elevation in m",
                    dem.name, dem.units
                ),
            ));
        }
        let mut sea = 0usize;
        dem.field.data.mapv_inplace(|z| {
            if z.is_finite() {
                z
            } else {
                sea += 1;
                0.0
            }
        });
        if sea > 0 {
            tracing::info!(
                "{}: {sea} missing DEM cells of {} taken as sea level (0 m)",
                path.display(),
                dem.field.data.len()
            );
        }
        let (fine, how) = regrid_static(path, &dem, target)?;
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
        let mut z = coarsen(&self.dem, coarse);
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
pub fn load_land_fraction(path: &Path, target: &Grid) -> Result<Field, ProtocolError> {
    let mask = finecast_io::read_static(path, &LAND_NAMES, "land mask", target, 0.1)?;
    let (mut fine, _) = regrid_static(path, &mask, target)?;
    // Percentages become fractions.
    let percent = mask.units == "%" || mask.field.range().is_some_and(|(_, hi)| hi > 1.5);
    if percent {
        fine.data.mapv_inplace(|v| v / 100.0);
    }
    fine.data.mapv_inplace(|v| v.clamp(0.0, 1.0));
    Ok(fine)
}

/// A static field brought onto `target`; an error names the file and variable
/// when it falls short.
fn regrid_static(
    path: &Path,
    data: &finecast_io::FieldData,
    target: &Grid,
) -> Result<(Field, TerrainRegrid), ProtocolError> {
    regrid_terrain(&data.field, target).map_err(|e| {
        ProtocolError::input(
            path,
            format!(
                "variable '{}' does not cover the target grid: {e}",
                data.name
            ),
        )
    })
}
