//! The perfect-model protocol, one piece of code for training and evaluation.
//!
//! A fine truth field is averaged conservatively onto a lat/lon grid whose
//! cell edges lie on multiples of the coarse resolution ([`coarsen`]); the
//! DEM is brought onto the truth cells (area mean when over 2x finer, else
//! bilinear) and the coarse orography is the same coarse mean of that fine
//! DEM ([`Terrain`]); methods are scored on the cells at least one coarse cell
//! from the domain edge where every method and the truth are valid
//! ([`edge_margin`], [`Scorer`]). Training pairs (`finecast-train`) and
//! `finecast evaluate` (`finecast-pipeline`) both call these functions, so the
//! model card's numbers and a user's evaluation cannot drift apart.

mod coarsen;
mod quantity;
mod score;
mod terrain;

use std::path::{Path, PathBuf};

pub use coarsen::{ascending, coarse_grid, coarsen, edge_margin, MIN_COVERAGE};
pub use quantity::Quantity;
pub use score::{Labelled, MethodScore, Moments, Scorer};
pub use terrain::{load_land_fraction, Terrain};

/// Why a protocol step (loading a DEM or land mask, building the coarse
/// grid, reordering a field) failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Reading an input file failed (missing file or variable, corrupt data,
    /// unknown units); the message names the file and variable.
    #[error(transparent)]
    Io(#[from] finecast_io::IoError),
    /// A file that reads but cannot serve (wrong units, does not cover).
    #[error("{path}: {what}")]
    Input {
        /// The input file.
        path: PathBuf,
        /// What is wrong, naming the variable (e.g. a DEM not in m, or one
        /// that does not cover the target grid).
        what: String,
    },
    /// A grid could not be built: the coarse grid for the requested
    /// resolution, or a reordered copy of a truth grid.
    #[error("{0}")]
    Grid(#[from] finecast_grid::GridError),
}

impl ProtocolError {
    pub(crate) fn input(path: &Path, what: impl Into<String>) -> ProtocolError {
        ProtocolError::Input {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}
