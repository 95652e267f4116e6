//! The crate's error type. Every message is one line naming the file, the
//! variable (where there is one) and what is wrong, so a command-line user can
//! act on it without a backtrace.

use crate::units::UnitError;

/// Everything that can go wrong reading or writing a dataset.
///
/// In every variant `path` is the file as the user gave it (displayed, so
/// possibly lossy for non-UTF-8 names) and `var` the variable's name in the
/// file after name resolution; `detail` is a one-line, human-readable
/// explanation. Callers match on the variant to decide what to do (for
/// example [`crate::wind::find_partner`] treats a [`IoError::NoSuchVariable`]
/// with an empty `hint` as "no partner"), and print the rest.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The operating system refused to open, read or write a file.
    #[error("{path}: {action}: {source}")]
    Os {
        /// The file concerned.
        path: String,
        /// What was being attempted: "cannot open", "cannot read",
        /// "cannot inspect".
        action: &'static str,
        /// The underlying OS error (not found, permission denied, ...).
        source: std::io::Error,
    },

    /// The file is neither NetCDF nor GRIB2.
    #[error("{path}: not a NetCDF or GRIB2 file: {detail}")]
    UnknownFormat {
        /// The file concerned.
        path: String,
        /// Why the leading bytes were rejected: an empty file, a GRIB edition
        /// other than 2, or the first bytes in hex.
        detail: String,
    },

    /// The file has a known format but cannot be parsed (truncated, corrupt).
    /// Panics inside the third-party decoders are caught and reported as this
    /// variant too.
    #[error("{path}: corrupt or unreadable {format} file: {detail}")]
    Corrupt {
        /// The file concerned.
        path: String,
        /// The container format that failed to parse ("NetCDF", "GRIB2").
        format: &'static str,
        /// What the decoder reported.
        detail: String,
    },

    /// The requested variable does not exist (or is not a 2-D field).
    #[error("{path}: no variable '{name}'{hint}; available variables: {available}")]
    NoSuchVariable {
        /// The file searched.
        path: String,
        /// The name as the caller asked for it (before resolution).
        name: String,
        /// Extra explanation, e.g. " (ambiguous: matches tmax, tmin)".
        /// Empty when nothing matched at all; non-empty when the name was
        /// ambiguous or a list of candidate names was searched.
        hint: String,
        /// Comma-separated names (with standard names in parentheses) of the
        /// file's 2-D field variables, or "none".
        available: String,
    },

    /// A variable exists but its layout, attributes or values cannot be used.
    #[error("{path}: variable '{var}': {detail}")]
    Variable {
        /// The file concerned.
        path: String,
        /// The variable concerned.
        var: String,
        /// What is wrong with it.
        detail: String,
    },

    /// The horizontal grid of a variable cannot be determined (missing or
    /// non-monotone coordinates, an unsupported or invalid grid mapping).
    #[error("{path}: variable '{var}': cannot determine grid: {detail}")]
    Grid {
        /// The file concerned.
        path: String,
        /// The variable whose grid was wanted.
        var: String,
        /// What is wrong with the coordinates or grid mapping.
        detail: String,
    },

    /// The time axis cannot be decoded or the requested time is not there.
    #[error("{path}: variable '{var}': time: {detail}")]
    Time {
        /// The file concerned.
        path: String,
        /// The variable whose time axis was used.
        var: String,
        /// What is wrong: undecodable CF time units or calendar, an index out
        /// of range, or a requested instant that is not among the (listed)
        /// available times.
        detail: String,
    },

    /// The units of a supported physical quantity are not understood.
    #[error("{path}: {source}")]
    Units {
        /// The file concerned.
        path: String,
        /// The variable, quantity and unrecognised units.
        source: UnitError,
    },

    /// The selected field holds no valid value at all.
    #[error("{path}: variable '{var}': every value of the selected field is missing ({detail})")]
    AllMissing {
        /// The file concerned.
        path: String,
        /// The variable read.
        var: String,
        /// The field's size and, when it has one, its valid time.
        detail: String,
    },

    /// The selected field is too large to hold in memory at once (more than
    /// [`crate::MAX_FIELD_CELLS`] cells); a bounding box reads a window of it.
    #[error("{path}: variable '{var}': {ny} x {nx} = {cells} cells exceeds the limit of {limit} cells; pass a bounding box to read a window")]
    TooLarge {
        /// The file concerned.
        path: String,
        /// The variable read.
        var: String,
        /// Rows of the selected field (or window).
        ny: usize,
        /// Columns of the selected field (or window).
        nx: usize,
        /// `ny * nx`.
        cells: usize,
        /// The limit exceeded ([`crate::MAX_FIELD_CELLS`]).
        limit: usize,
    },

    /// The bounding box of a selection is invalid or misses the grid.
    #[error("{path}: variable '{var}': bounding box {bbox}: {detail}")]
    BoundingBox {
        /// The file concerned.
        path: String,
        /// The variable read.
        var: String,
        /// The requested `(west, south, east, north)` box, as written by `Debug`.
        bbox: String,
        /// Why it was rejected: a non-finite bound, latitudes outside
        /// -90..=90 or not south < north, longitudes outside -360..=360, a
        /// box that cannot be projected, or one that does not overlap the
        /// grid (whose own extent is then given).
        detail: String,
    },

    /// Output cannot be written.
    #[error("{path}: cannot write {what}: {detail}")]
    Write {
        /// The output file.
        path: String,
        /// The part that failed: "file", "dimensions", "coordinates",
        /// "grid mapping 'crs'", "time", "global attributes", or
        /// "variable 'NAME'" (which also covers inputs rejected before
        /// anything is written: bad names, mixed grids, shape mismatches).
        what: String,
        /// The validation or libnetcdf error.
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
