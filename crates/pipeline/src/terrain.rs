//! Terrain for a target grid: the fine orography on the target cells and the
//! matching coarse orography, both derived from one DEM.

use std::path::Path;

use finecast_grid::{Field, Grid, Region};
use finecast_io::{Selection, TimeSel};
use finecast_methods::{area_mean, interpolate, regrid_terrain, Interp, Positions, TerrainRegrid};

use crate::PipelineError;

/// Names tried, in order, for the elevation variable of a DEM file.
const OROGRAPHY_NAMES: [&str; 4] = ["orog", "surface_altitude", "elevation", "HGT_M"];
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
        let (dem, fine, how) =
            load_static(path, target, margin_deg, &OROGRAPHY_NAMES, "orography")?;
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
    let ds = finecast_io::open(path)?;
    let var = names
        .iter()
        .find_map(|n| ds.resolve(n).ok())
        .ok_or_else(|| {
            PipelineError::input(
                path,
                format!("no {what} variable (looked for {})", names.join(", ")),
            )
        })?;
    let (w, s, e, n) = target.bbox_lonlat();
    let sel = Selection {
        time: TimeSel::First,
        bbox: Some((
            w - margin_deg,
            s - margin_deg,
            e + margin_deg,
            n + margin_deg,
        )),
    };
    let data = ds.read(&var, &sel)?;
    let (fine, how) = regrid_terrain(&data.field, target).map_err(|e| {
        PipelineError::input(
            path,
            format!("variable '{var}' does not cover the target grid: {e}"),
        )
    })?;
    Ok((data, fine, how))
}

/// Crop a field to the largest index rectangle whose cells all lie in `region`.
pub fn crop_to_region(field: &Field, region: &Region) -> Option<Field> {
    let (ny, nx) = field.grid.shape();
    let inside = ndarray::Array2::from_shape_fn((ny, nx), |(j, i)| {
        let (lon, lat) = field.grid.lonlat(j, i);
        region.contains(lon, lat)
    });
    let rows: Vec<usize> = (0..ny)
        .filter(|&j| inside.row(j).iter().any(|&b| b))
        .collect();
    let cols: Vec<usize> = (0..nx)
        .filter(|&i| inside.column(i).iter().any(|&b| b))
        .collect();
    let (mut j0, mut j1) = (*rows.first()?, *rows.last()? + 1);
    let (mut i0, mut i1) = (*cols.first()?, *cols.last()? + 1);
    // Trim the edge with the most outside cells until the rectangle is clean.
    loop {
        let outside = |js: std::ops::Range<usize>, is: std::ops::Range<usize>| {
            js.flat_map(|j| is.clone().map(move |i| (j, i)))
                .filter(|&idx| !inside[idx])
                .count()
        };
        let edges = [
            outside(j0..j0 + 1, i0..i1),
            outside(j1 - 1..j1, i0..i1),
            outside(j0..j1, i0..i0 + 1),
            outside(j0..j1, i1 - 1..i1),
        ];
        let (worst, &count) = edges.iter().enumerate().max_by_key(|(_, c)| **c)?;
        if count == 0 {
            break;
        }
        match worst {
            0 => j0 += 1,
            1 => j1 -= 1,
            2 => i0 += 1,
            _ => i1 -= 1,
        }
        if j0 >= j1 || i0 >= i1 {
            return None;
        }
    }
    let grid = field.grid.subset(j0, j1, i0, i1);
    let data = field.data.slice(ndarray::s![j0..j1, i0..i1]).to_owned();
    Some(Field { grid, data })
}
