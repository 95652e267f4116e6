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
    pub path: String,
    pub format: Format,
    pub title: Option<String>,
    pub source: Option<String>,
    pub variables: Vec<VariableSummary>,
}

/// Summary of one variable. Parts that cannot be determined are `None`, with
/// the reason in `problems`, so one bad variable does not hide the others.
#[derive(Debug, Clone, Serialize)]
pub struct VariableSummary {
    pub name: String,
    pub standard_name: Option<String>,
    pub long_name: Option<String>,
    /// Units as stored in the file.
    pub units: Option<String>,
    pub dims: Vec<(String, usize)>,
    pub grid: Option<GridSummary>,
    pub times: Option<TimeSummary>,
    pub values: Option<ValueStats>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GridSummary {
    pub grid_mapping: String,
    pub nx: usize,
    pub ny: usize,
    /// Native coordinates of the first and last column / row centre.
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    /// "degrees" or "m".
    pub native_units: String,
    /// `(west, south, east, north)` in degrees.
    pub bbox_lonlat: (f64, f64, f64, f64),
    /// Approximate `(dx, dy)` in metres at the grid centre.
    pub spacing_m: (f64, f64),
    pub proj4: String,
    /// The Helmert shift that puts `bbox_lonlat` on WGS84, where the grid's
    /// datum has one (CF `towgs84`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub towgs84: Option<[f64; 7]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeSummary {
    /// ISO 8601 UTC.
    pub first: String,
    pub last: String,
    pub count: usize,
}

/// Statistics of the finite values of one time step, in SI units.
#[derive(Debug, Clone, Serialize)]
pub struct ValueStats {
    /// The time step summarised (ISO 8601), if the variable has time.
    pub time: Option<String>,
    pub units: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub valid: usize,
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
