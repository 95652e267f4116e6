//! Verification scores for the perfect-model evaluation protocol.
//!
//! Pure functions on `(ny, nx)` arrays (NaN = missing) plus grid spacing; no
//! I/O and no dependency on the grid crate, so the same code scores any pair of
//! fields on a common grid:
//!
//! * [`scores`]: weighted RMSE, MAE, bias (prediction − truth) and Pearson r,
//! * [`rapsd`]: radially averaged power spectral density,
//! * [`spectral_ratio`]: prediction/truth power per wavelength band (below 1 = too
//!   smooth, above 1 = too noisy),
//! * [`ScoringDomain`]: the cells every method is scored on (a margin from the
//!   edge, the common validity mask),
//! * [`fss`]: fractions skill score for threshold exceedance at a neighbourhood
//!   scale, with [`fss_useful_threshold`] for the "useful" skill level.
//!
//! Bad input (shape mismatch, no valid cell, nonsensical parameters) is reported
//! as a [`MetricsError`], never a panic. Results that are mathematically
//! undefined for valid input (Pearson r of a constant field, FSS when nothing
//! exceeds the threshold) are `None` rather than NaN, so they serialise to JSON
//! unambiguously.

mod domain;
mod fss;
mod scores;
mod spectrum;

pub use domain::ScoringDomain;
pub use fss::{fss, fss_useful_threshold};
pub use scores::{scores, Scores};
pub use spectrum::{default_bands, rapsd, spectral_ratio, BandRatio, Spectrum};

/// Why a score could not be computed. These are errors in the *input*
/// (caller bugs or unusable data); undefined-but-valid results are `None`
/// in the result types instead.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    /// An input array's shape differs from the truth's `(ny, nx)`.
    #[error("shape mismatch: {what} has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Which input: "pred", "weights", "mask" or "prediction".
        what: &'static str,
        /// The truth's `(ny, nx)`.
        expected: (usize, usize),
        /// The offending input's `(ny, nx)`.
        got: (usize, usize),
    },
    /// Not a single cell is finite in every input, inside the mask and with
    /// a positive finite weight.
    #[error("no valid cell to score (all missing, masked out or zero weight)")]
    NoValidCells,
    /// More than half the cells are missing (in either field, for a
    /// [`spectral_ratio`]): filling that many gaps would make the spectrum
    /// mostly an artefact of the filling.
    #[error("{missing_percent:.1}% of the cells are missing; at most 50% allowed for spectra")]
    TooManyMissing {
        /// Share of missing cells, in percent (above 50).
        missing_percent: f64,
    },
    /// A parameter out of its domain: an even or zero FSS scale, a NaN
    /// threshold, a field too small for a spectrum (under 4x4) or for the
    /// scoring margin, a non-positive grid spacing, or a band without
    /// `0 <= lo < hi`. The message says which.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Checks that `got` has the shape `expected`, naming the offending input.
fn check_shape(
    what: &'static str,
    expected: (usize, usize),
    got: (usize, usize),
) -> Result<(), MetricsError> {
    if expected == got {
        Ok(())
    } else {
        Err(MetricsError::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}
