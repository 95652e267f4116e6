//! Downscaling methods that need no training: interpolation kernels,
//! conservative coarsening, terrain regridding and the physical baselines.

pub mod baselines;
pub mod coarsen;
pub mod interp;
pub mod terrain;

pub use baselines::{
    downscale, downscale_at, local_gradients, Baseline, CoarseInput, GradientParams,
    STANDARD_LAPSE_RATE,
};
pub use coarsen::{aligned_latlon_grid, area_mean, cell_areas};
pub use interp::{interpolate, regrid, Interp, Positions};
pub use terrain::{regrid_terrain, TerrainRegrid};

/// Why a training-free method could not run.
///
/// These are caller errors (a bad method name, missing or mismatched inputs),
/// not numerical failures: missing values in a field propagate as NaN instead.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// A method name that is not one of the [`Baseline`] names (parsing with
    /// `str::parse::<Baseline>`); carries the name as given.
    #[error("unknown method '{0}' (expected one of nearest, bilinear, bicubic, lapse, gradient)")]
    UnknownMethod(String),
    /// A terrain method (`lapse` or `gradient`) was asked for without the
    /// coarse orography (on the coarse grid) or the fine orography (on the
    /// target grid); carries the method name.
    #[error("method '{0}' needs terrain: give the coarse and fine orography")]
    NeedsTerrain(&'static str),
    /// Inputs that should share a grid do not: the coarse orography is not on
    /// the coarse field's grid, or the fine orography's `(ny, nx)` is not the
    /// target's. The message says which.
    #[error("grids do not match: {0}")]
    GridMismatch(String),
    #[error("the terrain covers only {:.1}% of the target grid", .fraction * 100.0)]
    /// A DEM (or mask) given to [`regrid_terrain`] does not reach every cell
    /// of the target grid, so fine terrain would have holes.
    NotCovered {
        /// Fraction (0..1, not percent) of target cells inside the DEM.
        fraction: f64,
    },
}

#[cfg(test)]
mod tests;
