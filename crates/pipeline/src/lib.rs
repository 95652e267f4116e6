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

pub use downscale::{downscale_tiled, run_downscale, DownscaleReport, DownscaleRequest, Target};
pub use evaluate::{run_evaluate, EvaluateReport, EvaluateRequest, TimeScores};
pub use finecast_protocol::{load_land_fraction, Labelled, MethodScore, Quantity, Terrain};
pub use maps::{render_file_map, robust_range, MapRequest};
pub use method::{Method, Networks, WindPartner};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Io(#[from] finecast_io::IoError),
    #[error("{path}: {what}")]
    Input { path: PathBuf, what: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{context}: {source}")]
    Method {
        context: String,
        source: finecast_methods::MethodError,
    },
    #[error("model {path}: {source}")]
    Model {
        path: PathBuf,
        source: finecast_model::ModelError,
    },
    #[error("tiling: {0}")]
    Tiles(#[from] finecast_tiles::TileError),
    #[error("metrics for {context}: {source}")]
    Metrics {
        context: String,
        source: finecast_metrics::MetricsError,
    },
    #[error("plot {path}: {source}")]
    Render {
        path: PathBuf,
        source: finecast_render::RenderError,
    },
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
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
    fn is_cancelled(&self) -> bool;
}

/// A [`JobControl`] that logs progress and can be cancelled through a flag.
#[derive(Default)]
pub struct LogControl {
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
pub fn tune_allocator_for_tiles() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the
    // process starts its worker threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}
