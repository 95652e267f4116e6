//! Human and JSON summaries of a dataset (`finecast info FILE`).

use std::fmt;

use chrono::{DateTime, Utc};
use finecast_grid::Grid;
use serde::Serialize;

use crate::cftime::iso;
use crate::{Dataset, Format, IoError};

/// Summary of a whole file.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    /// The file, as displayed.
    pub path: String,
    /// Its container format.
    pub format: Format,
    /// The global `title` attribute, if any.
    pub title: Option<String>,
    /// The global `source` attribute (the producing model), if any.
    pub source: Option<String>,
    /// One summary per 2-D field variable, in file order.
    pub variables: Vec<VariableSummary>,
}

/// Summary of one variable. Parts that cannot be determined are `None`, with
/// the reason in `problems`, so one bad variable does not hide the others.
#[derive(Debug, Clone, Serialize)]
pub struct VariableSummary {
    /// The variable's name (see [`crate::VarInfo::name`]).
    pub name: String,
    /// CF `standard_name`, if any.
    pub standard_name: Option<String>,
    /// CF `long_name`, if any.
    pub long_name: Option<String>,
    /// Units as stored in the file.
    pub units: Option<String>,
    /// Dimension names and lengths, slowest first; the last two are (y, x).
    pub dims: Vec<(String, usize)>,
    /// The horizontal grid; `None` when it cannot be determined.
    pub grid: Option<GridSummary>,
    /// The time axis; `None` for a variable without time (or an empty or
    /// undecodable axis, the latter reported in `problems`).
    pub times: Option<TimeSummary>,
    /// Statistics of the first time step; `None` when the grid is unknown or
    /// reading failed.
    pub values: Option<ValueStats>,
    /// One error message per part that could not be determined.
    pub problems: Vec<String>,
}

/// Summary of a variable's horizontal grid.
#[derive(Debug, Clone, Serialize)]
pub struct GridSummary {
    /// CF `grid_mapping_name` (e.g. `latitude_longitude`,
    /// `lambert_conformal_conic`).
    pub grid_mapping: String,
    /// Number of columns.
    pub nx: usize,
    /// Number of rows.
    pub ny: usize,
    /// Native coordinates of the first and last column / row centre.
    pub x_range: (f64, f64),
    /// Native y of the first and last row centre; first > last means a
    /// north-up (y descending) grid.
    pub y_range: (f64, f64),
    /// "degrees" or "m".
    pub native_units: String,
    /// `(west, south, east, north)` in degrees.
    pub bbox_lonlat: (f64, f64, f64, f64),
    /// Approximate `(dx, dy)` in metres at the grid centre.
    pub spacing_m: (f64, f64),
    /// PROJ string of the grid's CRS (as written to `proj4_params`).
    pub proj4: String,
    /// The Helmert shift that puts `bbox_lonlat` on WGS84, where the grid's
    /// datum has one (CF `towgs84`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub towgs84: Option<[f64; 7]>,
}

/// Summary of a variable's time axis.
#[derive(Debug, Clone, Serialize)]
pub struct TimeSummary {
    /// ISO 8601 UTC.
    pub first: String,
    /// Last valid time, ISO 8601 UTC.
    pub last: String,
    /// Number of time steps.
    pub count: usize,
}

/// Statistics of the finite values of one time step, in SI units.
#[derive(Debug, Clone, Serialize)]
pub struct ValueStats {
    /// The time step summarised (ISO 8601), if the variable has time.
    pub time: Option<String>,
    /// Canonical SI units the statistics are in (see [`crate::units::to_si`]).
    pub units: String,
    /// Smallest finite value; `None` when every value is missing.
    pub min: Option<f64>,
    /// Largest finite value; `None` when every value is missing.
    pub max: Option<f64>,
    /// Unweighted mean of the finite values; `None` when every value is missing.
    pub mean: Option<f64>,
    /// Number of finite values.
    pub valid: usize,
    /// Number of missing (NaN or fill) values.
    pub missing: usize,
}

/// Running min/max/mean/count over a stream of values.
#[derive(Debug, Default)]
pub(crate) struct StatsAccumulator {
    min: f64,
    max: f64,
    sum: f64,
    valid: usize,
    missing: usize,
}

impl StatsAccumulator {
    pub(crate) fn add(&mut self, values: impl Iterator<Item = f32>) {
        for v in values {
            if v.is_finite() {
                let v = f64::from(v);
                if self.valid == 0 {
                    self.min = v;
                    self.max = v;
                } else {
                    self.min = self.min.min(v);
                    self.max = self.max.max(v);
                }
                self.sum += v;
                self.valid += 1;
            } else {
                self.missing += 1;
            }
        }
    }

    pub(crate) fn finish(self, time: Option<DateTime<Utc>>, units: &str) -> ValueStats {
        let any = self.valid > 0;
        ValueStats {
            time: time.as_ref().map(iso),
            units: units.to_string(),
            min: any.then_some(self.min),
            max: any.then_some(self.max),
            mean: any.then(|| self.sum / self.valid as f64),
            valid: self.valid,
            missing: self.missing,
        }
    }
}

fn summarise_grid(grid: &Grid) -> GridSummary {
    let x = grid.x();
    let y = grid.y();
    GridSummary {
        grid_mapping: grid.crs().grid_mapping_name().to_string(),
        nx: grid.nx(),
        ny: grid.ny(),
        x_range: (x[0], x[x.len() - 1]),
        y_range: (y[0], y[y.len() - 1]),
        native_units: if grid.crs().is_angular() {
            "degrees"
        } else {
            "m"
        }
        .to_string(),
        bbox_lonlat: grid.bbox_lonlat(),
        spacing_m: grid.spacing_m(),
        proj4: grid.crs().proj4(),
        towgs84: grid.crs().earth().towgs84,
    }
}

pub(crate) fn describe(dataset: &Dataset) -> Result<DatasetInfo, IoError> {
    let mut variables = Vec::new();
    for info in dataset.variables() {
        let mut problems = Vec::new();
        let grid = match dataset.grid(&info.name) {
            Ok(g) => Some(summarise_grid(&g)),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let times = if info.has_time {
            match dataset.times(&info.name) {
                Ok(t) if !t.is_empty() => Some(TimeSummary {
                    first: iso(&t[0]),
                    last: iso(&t[t.len() - 1]),
                    count: t.len(),
                }),
                Ok(_) => None,
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        let values = if grid.is_some() {
            match dataset.first_step_stats(&info.name) {
                Ok(stats) => Some(stats),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        variables.push(VariableSummary {
            name: info.name,
            standard_name: info.standard_name,
            long_name: info.long_name,
            units: info.units,
            dims: info.dims,
            grid,
            times,
            values,
            problems,
        });
    }
    Ok(DatasetInfo {
        path: dataset.path().display().to_string(),
        format: dataset.format(),
        title: dataset.global_text("title"),
        source: dataset.global_text("source"),
        variables,
    })
}

impl fmt::Display for DatasetInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.path, self.format)?;
        if let Some(title) = &self.title {
            writeln!(f, "  title:  {title}")?;
        }
        if let Some(source) = &self.source {
            writeln!(f, "  source: {source}")?;
        }
        writeln!(f, "  {} variable(s)", self.variables.len())?;
        for v in &self.variables {
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl fmt::Display for VariableSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims = self
            .dims
            .iter()
            .map(|(d, n)| format!("{d}={n}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            f,
            "\n  {}  [{}]  {}  ({dims})",
            self.name,
            self.units.as_deref().unwrap_or("no units"),
            self.standard_name.as_deref().unwrap_or("no standard_name"),
        )?;
        if let Some(long_name) = &self.long_name {
            writeln!(f, "    {long_name}")?;
        }
        if let Some(g) = &self.grid {
            let precision = if g.native_units == "degrees" { 4 } else { 1 };
            writeln!(
                f,
                "    grid:   {} {} x {} (nx x ny), x {:.p$}..{:.p$}, y {:.p$}..{:.p$} {}",
                g.grid_mapping,
                g.nx,
                g.ny,
                g.x_range.0,
                g.x_range.1,
                g.y_range.0,
                g.y_range.1,
                g.native_units,
                p = precision
            )?;
            let (w, s, e, n) = g.bbox_lonlat;
            let datum = match g.towgs84 {
                Some(p) => format!(
                    " (WGS84, datum shifted by towgs84 {})",
                    p.map(|v| v.to_string()).join(",")
                ),
                None => String::new(),
            };
            writeln!(
                f,
                "            lon {w:.3}..{e:.3}, lat {s:.3}..{n:.3}{datum}; spacing ~{:.2} x {:.2} km",
                g.spacing_m.0 / 1000.0,
                g.spacing_m.1 / 1000.0
            )?;
        }
        if let Some(t) = &self.times {
            writeln!(f, "    times:  {} from {} to {}", t.count, t.first, t.last)?;
        }
        if let Some(s) = &self.values {
            let at = s
                .time
                .as_deref()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default();
            match (s.min, s.max, s.mean) {
                (Some(min), Some(max), Some(mean)) => writeln!(
                    f,
                    "    values{at} [{}]: min {min:.4} max {max:.4} mean {mean:.4}; {} missing of {}",
                    s.units,
                    s.missing,
                    s.valid + s.missing
                )?,
                _ => writeln!(f, "    values{at}: all {} missing", s.missing)?,
            }
        }
        for p in &self.problems {
            writeln!(f, "    problem: {p}")?;
        }
        Ok(())
    }
}
