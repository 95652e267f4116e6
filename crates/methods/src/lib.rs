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

#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    #[error("unknown method '{0}' (expected one of nearest, bilinear, bicubic, lapse, gradient)")]
    UnknownMethod(String),
    #[error("method '{0}' needs terrain: give the coarse and fine orography")]
    NeedsTerrain(&'static str),
    #[error("grids do not match: {0}")]
    GridMismatch(String),
    #[error("the terrain covers only {:.1}% of the target grid", .fraction * 100.0)]
    NotCovered { fraction: f64 },
}

#[cfg(test)]
mod tests;
