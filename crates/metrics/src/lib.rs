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

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("shape mismatch: {what} has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        what: &'static str,
        expected: (usize, usize),
        got: (usize, usize),
    },
    #[error("no valid cell to score (all missing, masked out or zero weight)")]
    NoValidCells,
    #[error("{missing_percent:.1}% of the cells are missing; at most 50% allowed for spectra")]
    TooManyMissing { missing_percent: f64 },
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
