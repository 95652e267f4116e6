//! finecast's jobs, from files to files: downscaling a coarse forecast onto a
//! fine grid, and the perfect-model evaluation protocol. The CLI and the server
//! are thin layers over this crate.

mod downscale;
mod evaluate;
mod evaluate_plots;
mod given_coarse;
mod maps;
mod method;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub use downscale::{
    downscale_tiled, run_downscale, DownscaleReport, DownscaleRequest, ShrinkReport, Target,
    VariableReport,
};
pub use evaluate::{run_evaluate, EvaluateReport, EvaluateRequest, TimeScores};
pub use finecast_protocol::{load_land_fraction, Labelled, MethodScore, Quantity, Terrain};
pub use maps::{render_file_map, robust_range, MapRequest};
pub use method::{Method, Networks, WindPartner};

/// Why a downscaling, evaluation or map job failed.
///
/// The variants separate what the caller can fix: a bad request
/// ([`PipelineError::Invalid`]), an input file that does not fit the job
/// ([`PipelineError::Input`], [`PipelineError::Io`]), or a failure inside a
/// stage (method, model, tiling, scoring, plotting, writing). The server maps
/// [`PipelineError::Cancelled`] to a cancelled job rather than a failure.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Opening, reading or writing a NetCDF/GRIB file failed, or a variable,
    /// time or coordinate asked for is not in it (`finecast-io`'s error).
    #[error(transparent)]
    Io(#[from] finecast_io::IoError),
    /// An input file that was read but does not suit the job: a variable
    /// without the requested times or all missing over the target, a target
    /// outside the coarse input, a region without truth cells, units that
    /// differ from the truth's, a wind component without its counterpart.
    #[error("{path}: {what}")]
    Input {
        /// The file at fault (input, truth, coarse or prediction file).
        path: PathBuf,
        /// What is wrong with it, naming the variable.
        what: String,
    },
    /// A request that cannot run whatever the files hold: an unknown method
    /// or palette, a coarse resolution outside (0, 5] degrees, no methods, a
    /// terrain method without a DEM, an invalid region or target grid.
    #[error("{0}")]
    Invalid(String),
    /// The job's [`JobControl::is_cancelled`] said stop; nothing was written.
    #[error("cancelled")]
    Cancelled,
    /// A training-free method failed (mismatched grids, missing terrain).
    #[error("{context}: {source}")]
    Method {
        /// Which method or input it was (file and variable).
        context: String,
        /// The method's own error.
        source: finecast_methods::MethodError,
    },
    /// Loading or running a network failed.
    #[error("model {path}: {source}")]
    Model {
        /// The weights file (`.bpk`) of the network.
        path: PathBuf,
        /// The model's own error.
        source: finecast_model::ModelError,
    },
    /// An invalid tile spec (a zero tile, a blend wider than twice the halo
    /// or than the tile), or a tile whose output had the wrong shape.
    #[error("tiling: {0}")]
    Tiles(#[from] finecast_tiles::TileError),
    /// Scoring a prediction against the truth failed: no cell valid in the
    /// truth and every prediction, too many missing cells for a spectrum,
    /// or mismatched shapes.
    #[error("metrics for {context}: {source}")]
    Metrics {
        /// What was being scored (method name or the scoring domain).
        context: String,
        /// The metrics crate's error.
        source: finecast_metrics::MetricsError,
    },
    /// Drawing or writing a PNG (a map or an evaluation plot) failed.
    #[error("plot {path}: {source}")]
    Render {
        /// The PNG being written.
        path: PathBuf,
        /// The renderer's error.
        source: finecast_render::RenderError,
    },
    /// A file-system error outside NetCDF I/O, such as creating the plots
    /// folder.
    #[error("{path}: {source}")]
    Write {
        /// The file or folder being created or written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl From<finecast_protocol::ProtocolError> for PipelineError {
    fn from(e: finecast_protocol::ProtocolError) -> PipelineError {
        use finecast_protocol::ProtocolError as P;
        match e {
            P::Io(e) => PipelineError::Io(e),
            P::Input { path, what } => PipelineError::Input { path, what },
            P::Grid(e) => PipelineError::Invalid(e.to_string()),
        }
    }
}

impl PipelineError {
    pub(crate) fn input(path: &Path, what: impl Into<String>) -> PipelineError {
        PipelineError::Input {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// Progress reporting and cancellation for long jobs.
pub trait JobControl: Sync {
    /// `percent` in 0..=100 and a short description of the current step.
    fn progress(&self, percent: f32, step: &str);
    /// Polled between time steps and before every tile; once it returns
    /// true the job stops with [`PipelineError::Cancelled`].
    fn is_cancelled(&self) -> bool;
}

/// A [`JobControl`] that logs progress and can be cancelled through a flag.
#[derive(Default)]
pub struct LogControl {
    /// Set to true (from any thread) to cancel the job at its next check.
    pub cancel: AtomicBool,
}

impl JobControl for LogControl {
    fn progress(&self, percent: f32, step: &str) {
        tracing::info!(percent = format!("{percent:.0}"), "{step}");
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Tune glibc's allocator for tile streaming: blocks of 4 MiB and more (a
/// tile's activations, features and results) are mapped and unmapped on
/// their own instead of staying in the heap after each tile, so peak memory
/// follows the live data (docs/performance.md: 2000² job 166 → 148 MiB).
/// Binaries call it once at start; it does nothing off glibc.
#[allow(unsafe_code)] // mallopt: see the SAFETY comment below
pub fn tune_allocator_for_tiles() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the
    // process starts its worker threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}
