//! The crate's error type. Every message is one line naming the file, the
//! variable (where there is one) and what is wrong, so a command-line user can
//! act on it without a backtrace.

use crate::units::UnitError;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The operating system refused to open, read or write a file.
    #[error("{path}: {action}: {source}")]
    Os {
        path: String,
        action: &'static str,
        source: std::io::Error,
    },

    /// The file is neither NetCDF nor GRIB2.
    #[error("{path}: not a NetCDF or GRIB2 file: {detail}")]
    UnknownFormat { path: String, detail: String },

    /// The file has a known format but cannot be parsed (truncated, corrupt).
    #[error("{path}: corrupt or unreadable {format} file: {detail}")]
    Corrupt {
        path: String,
        format: &'static str,
        detail: String,
    },

    /// The requested variable does not exist (or is not a 2-D field).
    #[error("{path}: no variable '{name}'{hint}; available variables: {available}")]
    NoSuchVariable {
        path: String,
        name: String,
        /// Extra explanation, e.g. " (ambiguous: matches tmax, tmin)".
        hint: String,
        available: String,
    },

    /// A variable exists but its layout, attributes or values cannot be used.
    #[error("{path}: variable '{var}': {detail}")]
    Variable {
        path: String,
        var: String,
        detail: String,
    },

    /// The horizontal grid of a variable cannot be determined.
    #[error("{path}: variable '{var}': cannot determine grid: {detail}")]
    Grid {
        path: String,
        var: String,
        detail: String,
    },

    /// The time axis cannot be decoded or the requested time is not there.
    #[error("{path}: variable '{var}': time: {detail}")]
    Time {
        path: String,
        var: String,
        detail: String,
    },

    /// The units of a supported physical quantity are not understood.
    #[error("{path}: {source}")]
    Units { path: String, source: UnitError },

    /// The selected field holds no valid value at all.
    #[error("{path}: variable '{var}': every value of the selected field is missing ({detail})")]
    AllMissing {
        path: String,
        var: String,
        detail: String,
    },

    /// The selected field is too large to hold in memory at once.
    #[error("{path}: variable '{var}': {ny} x {nx} = {cells} cells exceeds the limit of {limit} cells; pass a bounding box to read a window")]
    TooLarge {
        path: String,
        var: String,
        ny: usize,
        nx: usize,
        cells: usize,
        limit: usize,
    },

    /// The bounding box of a selection is invalid or misses the grid.
    #[error("{path}: variable '{var}': bounding box {bbox}: {detail}")]
    BoundingBox {
        path: String,
        var: String,
        bbox: String,
        detail: String,
    },

    /// Output cannot be written.
    #[error("{path}: cannot write {what}: {detail}")]
    Write {
        path: String,
        what: String,
        detail: String,
    },
}

impl IoError {
    pub(crate) fn variable(path: &str, var: &str, detail: impl Into<String>) -> IoError {
        IoError::Variable {
            path: path.to_string(),
            var: var.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn grid(path: &str, var: &str, detail: impl Into<String>) -> IoError {
        IoError::Grid {
            path: path.to_string(),
            var: var.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn time(path: &str, var: &str, detail: impl Into<String>) -> IoError {
        IoError::Time {
            path: path.to_string(),
            var: var.to_string(),
            detail: detail.into(),
        }
    }
}

/// Runs `f`, turning a panic inside a third-party decoder into an error.
///
/// The GRIB2 and NetCDF bindings contain `unwrap`/`panic!` on paths that
/// corrupt input can reach; a library must report those, not abort the caller.
pub(crate) fn catch_decoder_panic<T>(
    path: &str,
    format: &'static str,
    f: impl FnOnce() -> Result<T, IoError>,
) -> Result<T, IoError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "decoder panicked".to_string());
            Err(IoError::Corrupt {
                path: path.to_string(),
                format,
                detail: format!("decoder failed: {message}"),
            })
        }
    }
}
