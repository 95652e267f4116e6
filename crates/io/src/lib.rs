//! Input and output of gridded weather fields for finecast.
//!
//! * [`open`] reads CF-NetCDF (classic and NetCDF-4/HDF5) and GRIB2 files and
//!   presents every 2-D horizontal field as a variable with a
//!   [`finecast_grid::Grid`], an optional time axis and values converted to
//!   canonical SI units (see [`units`]).
//! * [`write_netcdf`] writes CF-1.8 NetCDF-4 output atomically, with
//!   provenance in the global attributes.
//!
//! Missing values are NaN everywhere. Errors name the file, the variable and
//! what is wrong; no input, however corrupt, makes this crate panic.

mod atomic;
mod cf;
mod cftime;
mod describe;
mod error;
mod grib2;
mod hdf5_quiet;
mod isotime;
mod nc;
pub mod units;
pub mod wind;
mod window;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use finecast_grid::{Field, Grid};

pub use atomic::write_atomic;
pub use describe::{DatasetInfo, GridSummary, TimeSummary, ValueStats, VariableSummary};
pub use error::IoError;
pub use isotime::parse_utc_time;
pub use units::UnitError;
pub use write::{sha256_file, write_netcdf, InputRef, OutputVar, Provenance};

/// Largest field (cells of one time step) read into memory at once. Larger
/// variables must be read through a bounding-box window.
pub const MAX_FIELD_CELLS: usize = 200_000_000;

/// The container format of a dataset, from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// NetCDF classic, 64-bit offset or CDF-5.
    NetCdfClassic,
    /// NetCDF-4 (HDF5).
    NetCdf4,
    /// GRIB edition 2.
    Grib2,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::NetCdfClassic => "NetCDF classic",
            Format::NetCdf4 => "NetCDF-4 (HDF5)",
            Format::Grib2 => "GRIB2",
        })
    }
}

/// A 2-D horizontal field variable of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct VarInfo {
    /// The variable's name in the file (for GRIB2, a conventional short name
    /// such as `t2m` or `tp` derived from the parameter, with the statistical
    /// period or a counter appended when two would clash). This is the name
    /// [`Dataset::resolve`] returns.
    pub name: String,
    /// CF `standard_name`, if the file gives one (or, for GRIB2, the one the
    /// parameter maps to).
    pub standard_name: Option<String>,
    /// CF `long_name`, a human-readable description.
    pub long_name: Option<String>,
    /// Units as stored in the file (before conversion to SI).
    pub units: Option<String>,
    /// Dimension names and lengths, slowest first; the last two are (y, x).
    pub dims: Vec<(String, usize)>,
    /// Whether one of the leading dimensions is a time axis, so that
    /// [`Dataset::times`] is non-empty and [`TimeSel`] picks a step.
    pub has_time: bool,
}

/// Which part of a variable to read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Selection {
    /// Which time step; [`TimeSel::First`] by default.
    pub time: TimeSel,
    /// `(west, south, east, north)` in degrees: read only the window of the
    /// grid that covers this box plus a margin of 2 cells. `east < west`
    /// means a box across the antimeridian.
    pub bbox: Option<(f64, f64, f64, f64)>,
}

/// Which time step to read.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum TimeSel {
    /// The first time step (or the only field of a variable without time).
    #[default]
    First,
    /// The time step at this index.
    Index(usize),
    /// The time step at exactly this instant.
    At(DateTime<Utc>),
}

/// One decoded 2-D field.
#[derive(Debug, Clone)]
pub struct FieldData {
    /// The variable's name in the file (after resolution of the name asked for).
    pub name: String,
    /// CF `standard_name`, if any. `x_wind`/`y_wind` mark wind components
    /// along the grid axes (see [`wind::to_earth_relative`]).
    pub standard_name: Option<String>,
    /// CF `long_name`, if any.
    pub long_name: Option<String>,
    /// Canonical SI units after conversion (see [`units::to_si`]).
    pub units: String,
    /// The values (NaN where missing) on the variable's grid, or on the
    /// window of it that the selection's bounding box asked for.
    pub field: Field,
    /// Valid time of the step read; `None` for a variable without time.
    pub time: Option<DateTime<Utc>>,
    /// CF `cell_methods` (e.g. `time: sum (interval: 1 hour)` for an
    /// accumulation), from the file or, for GRIB2, from the product's
    /// statistical processing.
    pub cell_methods: Option<String>,
}

/// The (start, end) of the period a value stands for.
pub type TimeBounds = (DateTime<Utc>, DateTime<Utc>);

/// An open input file.
pub struct Dataset {
    path: PathBuf,
    format: Format,
    backend: Backend,
}

enum Backend {
    NetCdf(nc::NcFile),
    Grib(grib2::GribFile),
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("path", &self.path)
            .field("format", &self.format)
            .finish()
    }
}

/// A catalogued variable: its public description plus what name resolution
/// needs (height above ground of near-surface fields).
#[derive(Debug, Clone)]
pub(crate) struct Catalogued {
    pub info: VarInfo,
    pub height_m: Option<f64>,
}

/// A decoded field before unit conversion.
pub(crate) struct RawField {
    pub grid: Grid,
    pub data: ndarray::Array2<f32>,
    pub units: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub cell_methods: Option<String>,
}

/// Names under which a DEM's elevation is found (CF standard name, ERA5/CMIP
/// short names, WRF geo_em).
pub const OROGRAPHY_NAMES: [&str; 4] = ["orog", "surface_altitude", "elevation", "HGT_M"];

/// A static field (DEM, land mask) over `target`'s lon/lat box widened by
/// `margin_deg`: the first of `names` (variable or standard names) that
/// `path` has, `what` naming it in the error when it has none.
pub fn read_static(
    path: &Path,
    names: &[&str],
    what: &str,
    target: &finecast_grid::Grid,
    margin_deg: f64,
) -> Result<FieldData, IoError> {
    let ds = open(path)?;
    let var = names
        .iter()
        .find_map(|n| ds.resolve(n).ok())
        .ok_or_else(|| IoError::NoSuchVariable {
            path: path.display().to_string(),
            name: what.to_string(),
            hint: format!(" (looked for {})", names.join(", ")),
            available: ds
                .variables()
                .into_iter()
                .map(|v| v.name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let sel = Selection {
        time: TimeSel::First,
        bbox: Some(widened_bbox(target, margin_deg)),
    };
    ds.read(&var, &sel)
}

/// `grid`'s lon/lat box `(west, south, east, north)` widened by `margin_deg`
/// on every side, as a read selection takes it: latitudes stop at the poles
/// (a target near a pole would otherwise ask for latitudes beyond ±90 and
/// be refused), and a box that would wrap the globe covers it once.
pub fn widened_bbox(grid: &Grid, margin_deg: f64) -> (f64, f64, f64, f64) {
    let (w, s, e, n) = grid.bbox_lonlat();
    let (s, n) = ((s - margin_deg).max(-90.0), (n + margin_deg).min(90.0));
    let (w, e) = (w - margin_deg, e + margin_deg);
    if e - w >= 360.0 {
        (-180.0, s, 180.0, n)
    } else {
        (w, s, e, n)
    }
}

/// Open a NetCDF or GRIB2 file, recognised by its leading bytes.
pub fn open(path: &Path) -> Result<Dataset, IoError> {
    let shown = path.display().to_string();
    let format = sniff_format(path, &shown)?;
    let backend = match format {
        Format::NetCdfClassic => Backend::NetCdf(nc::NcFile::open(path, &shown, true)?),
        Format::NetCdf4 => Backend::NetCdf(nc::NcFile::open(path, &shown, false)?),
        Format::Grib2 => Backend::Grib(grib2::GribFile::open(path, &shown)?),
    };
    tracing::debug!("opened {shown} as {format}");
    Ok(Dataset {
        path: path.to_path_buf(),
        format,
        backend,
    })
}

fn sniff_format(path: &Path, shown: &str) -> Result<Format, IoError> {
    use std::io::Read;
    let os_error = |action, source| IoError::Os {
        path: shown.to_string(),
        action,
        source,
    };
    let mut file = std::fs::File::open(path).map_err(|e| os_error("cannot open", e))?;
    let mut head = [0u8; 16];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(os_error("cannot read", e)),
        }
    }
    let head = &head[..filled];
    let unknown = |detail: String| IoError::UnknownFormat {
        path: shown.to_string(),
        detail,
    };
    if head.is_empty() {
        return Err(unknown("the file is empty".to_string()));
    }
    if head.starts_with(b"CDF") && head.len() >= 4 && matches!(head[3], 1 | 2 | 5) {
        return Ok(Format::NetCdfClassic);
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Ok(Format::NetCdf4);
    }
    if head.starts_with(b"GRIB") {
        return match head.get(7) {
            Some(2) => Ok(Format::Grib2),
            Some(edition) => Err(unknown(format!(
                "GRIB edition {edition} is not supported (only GRIB2)"
            ))),
            None => Err(IoError::Corrupt {
                path: shown.to_string(),
                format: "GRIB2",
                detail: "truncated indicator section".to_string(),
            }),
        };
    }
    let shown_bytes: String = head
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    Err(unknown(format!(
        "leading bytes {shown_bytes} are neither CDF, HDF5 nor GRIB"
    )))
}

impl Dataset {
    /// The path the dataset was opened from, as given to [`open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container format recognised from the file's leading bytes.
    pub fn format(&self) -> Format {
        self.format
    }

    fn shown_path(&self) -> String {
        self.path.display().to_string()
    }

    fn catalog(&self) -> &[Catalogued] {
        match &self.backend {
            Backend::NetCdf(f) => f.catalog(),
            Backend::Grib(f) => f.catalog(),
        }
    }

    /// The 2-D horizontal field variables (not coordinates, grid mappings or bounds).
    pub fn variables(&self) -> Vec<VarInfo> {
        self.catalog().iter().map(|c| c.info.clone()).collect()
    }

    /// The variable a user-given name refers to: the exact variable name, else
    /// a unique case-insensitive name, a unique `standard_name`, or a common
    /// alias (`t2m`, `d2m`, `tp`, `orog`, `u10`, `v10`, `sp`, `msl`, `prate`).
    pub fn resolve(&self, name: &str) -> Result<String, IoError> {
        resolve_in(self.catalog(), &self.shown_path(), name)
    }

    /// The horizontal grid of a variable.
    pub fn grid(&self, var: &str) -> Result<Grid, IoError> {
        let name = self.resolve(var)?;
        match &self.backend {
            Backend::NetCdf(f) => f.grid(&name),
            Backend::Grib(f) => f.grid(&name),
        }
    }

    /// Valid times of a variable; empty when it has no time axis.
    pub fn times(&self, var: &str) -> Result<Vec<DateTime<Utc>>, IoError> {
        let name = self.resolve(var)?;
        match &self.backend {
            Backend::NetCdf(f) => f.times(&name),
            Backend::Grib(f) => f.times(&name),
        }
    }

    /// The period each time of a variable stands for, from the CF `bounds`
    /// of its time coordinate: `None` where the file gives none (GRIB2 files
    /// state periods in their own way and give none here).
    pub fn time_bounds(&self, var: &str) -> Result<Option<Vec<TimeBounds>>, IoError> {
        let name = self.resolve(var)?;
        match &self.backend {
            Backend::NetCdf(f) => f.time_bounds(&name),
            Backend::Grib(_) => Ok(None),
        }
    }

    /// Read one time step (of a window) of a variable, in SI units.
    pub fn read(&self, var: &str, sel: &Selection) -> Result<FieldData, IoError> {
        let name = self.resolve(var)?;
        let path = self.shown_path();
        let raw = match &self.backend {
            Backend::NetCdf(f) => f.read(&name, sel)?,
            Backend::Grib(f) => f.read(&name, sel)?,
        };
        let info = self
            .catalog()
            .iter()
            .find(|c| c.info.name == name)
            .map(|c| c.info.clone())
            .ok_or_else(|| IoError::variable(&path, &name, "vanished from the catalogue"))?;
        finish_field(&path, info, raw)
    }

    /// A summary of the whole file for `finecast info`.
    pub fn describe(&self) -> Result<DatasetInfo, IoError> {
        describe::describe(self)
    }

    pub(crate) fn global_text(&self, name: &str) -> Option<String> {
        match &self.backend {
            Backend::NetCdf(f) => f.global_text(name),
            Backend::Grib(f) => f.global_text(name),
        }
    }

    /// Statistics of the first time step of a variable (in SI units), read in
    /// strips so that even variables above [`MAX_FIELD_CELLS`] can be summarised.
    pub(crate) fn first_step_stats(&self, name: &str) -> Result<ValueStats, IoError> {
        match &self.backend {
            Backend::NetCdf(f) => f.first_step_stats(name),
            Backend::Grib(f) => {
                let raw = f.read(name, &Selection::default())?;
                let info = self.catalog().iter().find(|c| c.info.name == name);
                let standard_name = info.and_then(|c| c.info.standard_name.as_deref());
                let (si_units, scale, offset) =
                    units::to_si(name, standard_name, raw.units.as_deref().unwrap_or("")).map_err(
                        |source| IoError::Units {
                            path: self.shown_path(),
                            source,
                        },
                    )?;
                let mut acc = describe::StatsAccumulator::default();
                acc.add(
                    raw.data
                        .iter()
                        .map(|v| (f64::from(*v) * scale + offset) as f32),
                );
                Ok(acc.finish(raw.time, &si_units))
            }
        }
    }
}

/// Unit conversion and checks shared by every backend.
fn finish_field(path: &str, info: VarInfo, raw: RawField) -> Result<FieldData, IoError> {
    let RawField {
        grid,
        mut data,
        units,
        time,
        cell_methods,
    } = raw;
    let (si_units, scale, offset) = units::to_si(
        &info.name,
        info.standard_name.as_deref(),
        units.as_deref().unwrap_or(""),
    )
    .map_err(|source| IoError::Units {
        path: path.to_string(),
        source,
    })?;
    if scale != 1.0 || offset != 0.0 {
        data.mapv_inplace(|v| (f64::from(v) * scale + offset) as f32);
    }
    if !data.iter().any(|v| v.is_finite()) {
        let when = time
            .map(|t| format!(" at {}", cftime::iso(&t)))
            .unwrap_or_default();
        return Err(IoError::AllMissing {
            path: path.to_string(),
            var: info.name,
            detail: format!("{} x {} cells{when}", grid.ny(), grid.nx()),
        });
    }
    let field =
        Field::new(grid, data).map_err(|e| IoError::variable(path, &info.name, e.to_string()))?;
    Ok(FieldData {
        name: info.name,
        standard_name: info.standard_name,
        long_name: info.long_name,
        units: si_units,
        field,
        time,
        cell_methods,
    })
}

/// Index of the selected time step among `n` (of a variable with a time
/// axis); `times` is consulted only for [`TimeSel::At`].
pub(crate) fn select_time_index(
    path: &str,
    var: &str,
    sel: &TimeSel,
    n: usize,
    times: impl FnOnce() -> Result<Vec<DateTime<Utc>>, IoError>,
) -> Result<usize, IoError> {
    if n == 0 {
        return Err(IoError::time(path, var, "the time axis is empty"));
    }
    match sel {
        TimeSel::First => Ok(0),
        TimeSel::Index(k) if *k < n => Ok(*k),
        TimeSel::Index(k) => Err(IoError::time(
            path,
            var,
            format!(
                "index {k} is out of range: there are {n} time steps (0..{})",
                n - 1
            ),
        )),
        TimeSel::At(t) => {
            let all = times()?;
            all.iter().position(|x| x == t).ok_or_else(|| {
                IoError::time(
                    path,
                    var,
                    format!(
                        "{} is not one of the {} available times: {}",
                        cftime::iso(t),
                        all.len(),
                        list_times(&all)
                    ),
                )
            })
        }
    }
}

/// Time selection for a variable without a time axis.
pub(crate) fn check_no_time_selection(path: &str, var: &str, sel: &TimeSel) -> Result<(), IoError> {
    match sel {
        TimeSel::First | TimeSel::Index(0) => Ok(()),
        TimeSel::Index(k) => Err(IoError::time(
            path,
            var,
            format!("index {k} requested but the variable has no time axis"),
        )),
        TimeSel::At(t) => Err(IoError::time(
            path,
            var,
            format!(
                "{} requested but the variable has no time axis",
                cftime::iso(t)
            ),
        )),
    }
}

/// A readable list of times, shortened in the middle when long.
fn list_times(times: &[DateTime<Utc>]) -> String {
    const SHOWN_AT_EACH_END: usize = 4;
    if times.len() <= 2 * SHOWN_AT_EACH_END + 1 {
        return times.iter().map(cftime::iso).collect::<Vec<_>>().join(", ");
    }
    let head: Vec<String> = times[..SHOWN_AT_EACH_END].iter().map(cftime::iso).collect();
    let tail: Vec<String> = times[times.len() - SHOWN_AT_EACH_END..]
        .iter()
        .map(cftime::iso)
        .collect();
    format!("{}, ..., {}", head.join(", "), tail.join(", "))
}

/// A user-facing alias: the names and standard names it may stand for, and
/// the height above ground that disambiguates near-surface fields.
struct Alias {
    keys: &'static [&'static str],
    names: &'static [&'static str],
    standard_names: &'static [&'static str],
    height_m: Option<f64>,
}

const ALIASES: &[Alias] = &[
    Alias {
        keys: &["t2m", "2t", "tas", "t2"],
        names: &["t2m", "2t", "tas", "t2"],
        standard_names: &["air_temperature"],
        height_m: Some(2.0),
    },
    Alias {
        keys: &["d2m", "2d", "td2m", "tdps"],
        names: &["d2m", "2d", "td2m", "tdps"],
        standard_names: &["dew_point_temperature"],
        height_m: Some(2.0),
    },
    Alias {
        keys: &["tp", "precipitation", "apcp"],
        names: &["tp", "apcp", "ppt", "precip", "prcp", "tot_prec"],
        standard_names: &[
            "precipitation_amount",
            "lwe_thickness_of_precipitation_amount",
        ],
        height_m: None,
    },
    Alias {
        keys: &["orog", "surface_altitude", "elevation", "hgt"],
        names: &[
            "orog",
            "hgt",
            "hsurf",
            "elevation",
            "elev",
            "topo",
            "z_sfc",
            "zs",
        ],
        standard_names: &["surface_altitude"],
        height_m: None,
    },
    Alias {
        keys: &["u10", "10u", "uas"],
        names: &["u10", "10u", "uas"],
        standard_names: &["eastward_wind", "x_wind"],
        height_m: Some(10.0),
    },
    Alias {
        keys: &["v10", "10v", "vas"],
        names: &["v10", "10v", "vas"],
        standard_names: &["northward_wind", "y_wind"],
        height_m: Some(10.0),
    },
    Alias {
        keys: &["sp", "ps", "psfc"],
        names: &["sp", "ps", "psfc"],
        standard_names: &["surface_air_pressure"],
        height_m: None,
    },
    Alias {
        keys: &["msl", "mslp", "prmsl"],
        names: &["msl", "mslp", "prmsl"],
        standard_names: &["air_pressure_at_mean_sea_level"],
        height_m: None,
    },
    Alias {
        keys: &["prate", "pr"],
        names: &["prate", "pr"],
        standard_names: &["precipitation_flux"],
        height_m: None,
    },
    Alias {
        keys: &["lsm"],
        names: &["lsm", "landmask"],
        standard_names: &["land_binary_mask"],
        height_m: None,
    },
    Alias {
        keys: &["sftlf"],
        names: &["sftlf"],
        standard_names: &["land_area_fraction"],
        height_m: None,
    },
];

fn resolve_in(catalog: &[Catalogued], path: &str, wanted: &str) -> Result<String, IoError> {
    let available = || {
        catalog
            .iter()
            .map(|c| match &c.info.standard_name {
                Some(sn) => format!("{} ({sn})", c.info.name),
                None => c.info.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let not_found = |hint: String| IoError::NoSuchVariable {
        path: path.to_string(),
        name: wanted.to_string(),
        hint,
        available: if catalog.is_empty() {
            "none".to_string()
        } else {
            available()
        },
    };
    let unique = |matches: Vec<&Catalogued>, how: &str| -> Result<Option<String>, IoError> {
        match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.info.name.clone())),
            many => Err(not_found(format!(
                " (ambiguous {how}: matches {})",
                many.iter()
                    .map(|c| c.info.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    };
    let wanted_trimmed = wanted.trim();
    if let Some(c) = catalog.iter().find(|c| c.info.name == wanted_trimmed) {
        return Ok(c.info.name.clone());
    }
    let lowered = wanted_trimmed.to_ascii_lowercase();
    let by_name: Vec<&Catalogued> = catalog
        .iter()
        .filter(|c| c.info.name.to_ascii_lowercase() == lowered)
        .collect();
    if let Some(name) = unique(by_name, "name")? {
        return Ok(name);
    }
    let by_standard_name: Vec<&Catalogued> = catalog
        .iter()
        .filter(|c| c.info.standard_name.as_deref() == Some(wanted_trimmed))
        .collect();
    if let Some(name) = unique(by_standard_name, "standard_name")? {
        return Ok(name);
    }
    if let Some(alias) = ALIASES.iter().find(|a| a.keys.contains(&lowered.as_str())) {
        let by_alias_name: Vec<&Catalogued> = catalog
            .iter()
            .filter(|c| {
                alias
                    .names
                    .contains(&c.info.name.to_ascii_lowercase().as_str())
            })
            .collect();
        if let Some(name) = unique(by_alias_name, "alias")? {
            return Ok(name);
        }
        // Standard names in order of preference (eastward_wind before x_wind).
        for standard_name in alias.standard_names {
            let candidates: Vec<&Catalogued> = catalog
                .iter()
                .filter(|c| c.info.standard_name.as_deref() == Some(*standard_name))
                .collect();
            let at_height: Vec<&Catalogued> = match alias.height_m {
                Some(h) if candidates.iter().any(|c| c.height_m.is_some()) => candidates
                    .iter()
                    .copied()
                    .filter(|c| c.height_m.is_some_and(|ch| (ch - h).abs() < 1e-6))
                    .collect(),
                _ => candidates,
            };
            if let Some(name) = unique(at_height, standard_name)? {
                return Ok(name);
            }
        }
    }
    Err(not_found(String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Near a pole the widened box stops at ±90° instead of asking for
    /// latitudes a read refuses; a box that would wrap covers the globe once;
    /// elsewhere it is the grid's box plus the margin.
    #[test]
    fn widened_bbox_stops_at_the_poles_and_wraps_once() {
        let arctic = Grid::regular_latlon(-20.0, 0.5, 40, 85.0, 0.5, 9).unwrap();
        let (w, s, e, n) = widened_bbox(&arctic, 2.5);
        assert_eq!((s, n), (82.5, 90.0));
        assert!(
            (w - (-22.5)).abs() < 1e-9 && (e - 2.0).abs() < 1e-9,
            "{w} {e}"
        );
        assert!(window::normalise_bbox((w, s, e, n)).is_ok());
        let global = Grid::regular_latlon(0.0, 1.0, 360, -89.5, 1.0, 180).unwrap();
        let (w, s, e, n) = widened_bbox(&global, 1.0);
        assert_eq!((w, s, e, n), (-180.0, -90.0, 180.0, 90.0));
        assert!(window::normalise_bbox((w, s, e, n)).is_ok());
        let alps = Grid::regular_latlon(6.0, 0.25, 8, 45.0, 0.25, 8).unwrap();
        let (w, s, e, n) = widened_bbox(&alps, 1.0);
        assert!(
            (w - 5.0).abs() < 1e-9 && (n - 47.75).abs() < 1e-9,
            "{w} {s} {e} {n}"
        );
    }

    fn entry(name: &str, sn: Option<&str>, height: Option<f64>) -> Catalogued {
        Catalogued {
            info: VarInfo {
                name: name.to_string(),
                standard_name: sn.map(str::to_string),
                long_name: None,
                units: None,
                dims: vec![],
                has_time: false,
            },
            height_m: height,
        }
    }

    #[test]
    fn resolves_names_standard_names_and_aliases() {
        let catalog = vec![
            entry("T2", Some("air_temperature"), Some(2.0)),
            entry("TMAX", Some("air_temperature"), None),
            entry("U_10M", Some("eastward_wind"), Some(10.0)),
            entry("U_100M", Some("eastward_wind"), Some(100.0)),
            entry("APCP_surface", Some("precipitation_amount"), None),
            entry("HSURF", Some("surface_altitude"), None),
        ];
        let r = |n: &str| resolve_in(&catalog, "f.nc", n);
        assert_eq!(r("TMAX").expect("exact"), "TMAX");
        assert_eq!(r("tmax").expect("case"), "TMAX");
        assert_eq!(r("t2m").expect("alias by name t2"), "T2");
        assert_eq!(r("u10").expect("alias by height"), "U_10M");
        assert_eq!(r("tp").expect("alias by standard name"), "APCP_surface");
        assert_eq!(r("orog").expect("orog"), "HSURF");
        assert_eq!(r("surface_altitude").expect("standard name"), "HSURF");
        let err = r("air_temperature").unwrap_err().to_string();
        assert!(
            err.contains("ambiguous") && err.contains("T2") && err.contains("TMAX"),
            "{err}"
        );
        let err = r("snow").unwrap_err().to_string();
        assert!(
            err.contains("f.nc") && err.contains("'snow'") && err.contains("HSURF"),
            "{err}"
        );
    }

    #[test]
    fn time_selection_errors_list_available_times() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let times: Vec<_> = (0..20).map(|h| t0 + chrono::Duration::hours(h)).collect();
        let sel = TimeSel::At(t0 + chrono::Duration::minutes(30));
        let err = select_time_index("f.nc", "t2m", &sel, times.len(), || Ok(times.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1970-01-01T00:30:00Z") && err.contains("20 available"),
            "{err}"
        );
        assert!(
            err.contains("1970-01-01T19:00:00Z") && err.contains("..."),
            "{err}"
        );
        let ok = select_time_index("f.nc", "t2m", &TimeSel::At(times[5]), 20, || {
            Ok(times.clone())
        });
        assert_eq!(ok.expect("found"), 5);
        assert!(select_time_index("f.nc", "t2m", &TimeSel::Index(20), 20, || Ok(vec![])).is_err());
    }
}
