//! A real coarse input for `finecast evaluate --coarse FILE`: the coarse
//! field at each truth time or, where the truth stands for a period (a daily
//! maximum, a 6-hour sum) and the coarse file is finer in time, the coarse
//! fields of that period aggregated the same way (ERA5 hourly → HadUK-Grid
//! daily maximum, minimum, sum).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use finecast_grid::{Field, Grid};
use finecast_io::wind::{find_partner, is_grid_relative, to_earth_relative};
use finecast_io::{Dataset, FieldData, Selection, TimeBounds, TimeSel};
use ndarray::Zip;

use crate::PipelineError;

/// How a value gathers time (the CF `cell_methods` of its time axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeOp {
    Maximum,
    Minimum,
    Sum,
    Mean,
}

impl TimeOp {
    fn name(self) -> &'static str {
        match self {
            TimeOp::Maximum => "maximum",
            TimeOp::Minimum => "minimum",
            TimeOp::Sum => "sum",
            TimeOp::Mean => "mean",
        }
    }
}

/// The time method of CF `cell_methods` ("time: maximum (interval: 1 day)")
/// and its interval, if any; `None` for points or no time method.
pub(crate) fn time_method(cell_methods: Option<&str>) -> Option<(TimeOp, Option<Duration>)> {
    let text = cell_methods?;
    let rest = &text[text.find("time:")? + "time:".len()..];
    let word = rest.split_whitespace().next()?;
    let op = match word.trim_end_matches(|c: char| !c.is_alphabetic()) {
        "maximum" => TimeOp::Maximum,
        "minimum" => TimeOp::Minimum,
        "sum" => TimeOp::Sum,
        "mean" => TimeOp::Mean,
        _ => return None,
    };
    let interval = rest
        .find("interval:")
        .and_then(|k| parse_interval(&rest[k + "interval:".len()..]));
    Some((op, interval))
}

/// "1 day)", "6 hours", "30 minutes" → a duration.
fn parse_interval(text: &str) -> Option<Duration> {
    let mut words = text.split_whitespace();
    let n: f64 = words.next()?.parse().ok()?;
    let unit = words.next()?.trim_end_matches(|c: char| !c.is_alphabetic());
    let seconds = match unit {
        "day" | "days" | "d" => 86_400.0,
        "hour" | "hours" | "h" | "hr" | "hrs" => 3_600.0,
        "minute" | "minutes" | "min" | "mins" => 60.0,
        "second" | "seconds" | "s" => 1.0,
        _ => return None,
    };
    (n > 0.0).then(|| Duration::seconds((n * seconds).round() as i64))
}

/// The period the truth value at `time` stands for, and how it gathers it:
/// its CF bounds where the file gives them, else its interval centred on
/// the time (a daily value labelled 12 UTC covers that calendar day; PRISM's
/// 12-12 UTC day is labelled 00 UTC). `None` for a point in time.
pub(crate) fn truth_period(
    cell_methods: Option<&str>,
    bounds: Option<TimeBounds>,
    time: Option<DateTime<Utc>>,
) -> Result<Option<(TimeOp, TimeBounds)>, String> {
    let Some((op, interval)) = time_method(cell_methods) else {
        return Ok(None);
    };
    if let Some(b) = bounds {
        return Ok(Some((op, b)));
    }
    let (Some(time), Some(interval)) = (time, interval) else {
        return Err(format!(
            "the truth is a time {} but gives neither time bounds nor an interval in cell_methods, so its period is unknown",
            op.name()
        ));
    };
    Ok(Some((op, (time - interval / 2, time + interval / 2))))
}

/// A coarse file given by the user, opened once for every truth time.
pub(crate) struct GivenCoarse {
    path: PathBuf,
    ds: Dataset,
    name: String,
    times: Vec<DateTime<Utc>>,
}

/// The coarse input of one truth time.
pub(crate) struct CoarseAt {
    pub field: FieldData,
    /// The other wind component, where the wind network needs it.
    pub partner: Option<Field>,
    /// How it was made from the file ("maximum of 24 fields in ...").
    pub how: Option<String>,
}

impl GivenCoarse {
    /// Open `path` and resolve `var` in it (else the truth's variable or
    /// standard name).
    pub(crate) fn open(path: &Path, var: &[&str]) -> Result<GivenCoarse, PipelineError> {
        let ds = finecast_io::open(path)?;
        let mut last = None;
        for v in var {
            match ds.resolve(v) {
                Ok(name) => {
                    let times = ds.times(&name)?;
                    return Ok(GivenCoarse {
                        path: path.to_path_buf(),
                        ds,
                        name,
                        times,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .map(PipelineError::from)
            .unwrap_or_else(|| PipelineError::Invalid("no coarse variable named".into())))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The coarse field for the truth at `time` around `truth`: the field
    /// at that time, or the fields within the truth's `period` aggregated as
    /// the truth is. The wind counterpart comes along where the wind network
    /// needs it or both components must be turned to east/north.
    pub(crate) fn at(
        &self,
        truth: &Grid,
        time: Option<DateTime<Utc>>,
        period: Option<(TimeOp, TimeBounds)>,
        needs_partner: bool,
    ) -> Result<CoarseAt, PipelineError> {
        let bbox = Some(finecast_io::widened_bbox(truth, 1.0));
        let sel = |t: Option<DateTime<Utc>>| Selection {
            time: t.map(TimeSel::At).unwrap_or(TimeSel::First),
            bbox,
        };
        let first = self.ds.read(&self.name, &sel(time))?;
        // Already gathered the same way over the same length (a daily
        // maximum file for a daily maximum), or a truth that is a point in
        // time: the field at the truth's time.
        let gathered_alike = match (time_method(first.cell_methods.as_deref()), period) {
            (Some((op, Some(interval))), Some((truth_op, (start, end)))) => {
                op == truth_op && (interval - (end - start)).num_seconds().abs() < 60
            }
            _ => false,
        };
        let Some((op, (start, end))) = period.filter(|_| !gathered_alike && !self.times.is_empty())
        else {
            return self.with_partner(first, sel(time), needs_partner, None);
        };
        let inside: Vec<DateTime<Utc>> = self
            .times
            .iter()
            .copied()
            .filter(|t| *t > start && *t <= end)
            .collect();
        if inside.is_empty() {
            return Err(PipelineError::input(
                &self.path,
                format!(
                    "'{}' has no time in the truth's period ({start}, {end}]",
                    self.name
                ),
            ));
        }
        if needs_partner || is_grid_relative(first.standard_name.as_deref()) {
            return Err(PipelineError::input(
                &self.path,
                format!(
                    "'{}': wind is not aggregated over time; give a coarse file at the truth's times",
                    self.name
                ),
            ));
        }
        let mut acc: Option<FieldData> = None;
        for t in &inside {
            let next = self.ds.read(&self.name, &sel(Some(*t)))?;
            acc = Some(match acc {
                None => next,
                Some(mut a) => {
                    Zip::from(&mut a.field.data)
                        .and(&next.field.data)
                        .for_each(|x, &y| {
                            // A cell missing at any time is missing in the
                            // aggregate (`f32::max` would drop the gap).
                            *x = if x.is_nan() || y.is_nan() {
                                f32::NAN
                            } else {
                                match op {
                                    TimeOp::Maximum => x.max(y),
                                    TimeOp::Minimum => x.min(y),
                                    TimeOp::Sum | TimeOp::Mean => *x + y,
                                }
                            }
                        });
                    a
                }
            });
        }
        let mut field = acc.expect("at least one time inside");
        if op == TimeOp::Mean {
            let k = inside.len() as f32;
            field.field.data.mapv_inplace(|v| v / k);
        }
        field.time = time;
        field.cell_methods = Some(format!("time: {}", op.name()));
        let how = format!(
            "{} of the '{}' fields in each truth period: {} in the first, ({start}, {end}]",
            op.name(),
            self.name,
            inside.len()
        );
        Ok(CoarseAt {
            field,
            partner: None,
            how: Some(how),
        })
    }

    /// The field with its wind counterpart, turned to east/north where both
    /// are along their grid's axes.
    fn with_partner(
        &self,
        mut coarse: FieldData,
        sel: Selection,
        needs_partner: bool,
        how: Option<String>,
    ) -> Result<CoarseAt, PipelineError> {
        let names: Vec<String> = std::iter::once(self.name.clone())
            .chain(coarse.standard_name.clone())
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let grid_relative = is_grid_relative(coarse.standard_name.as_deref());
        if !(needs_partner || grid_relative) {
            return Ok(CoarseAt {
                field: coarse,
                partner: None,
                how,
            });
        }
        let Some((component, partner)) = find_partner(&self.ds, &names)? else {
            if needs_partner {
                return Err(PipelineError::input(
                    &self.path,
                    format!(
                        "the wind network needs the other component of '{}', which this file lacks",
                        self.name
                    ),
                ));
            }
            return Ok(CoarseAt {
                field: coarse,
                partner: None,
                how,
            });
        };
        let mut other = self.ds.read(&partner, &sel)?;
        to_earth_relative(&self.path, component, &mut coarse, &mut other)?;
        Ok(CoarseAt {
            field: coarse,
            partner: needs_partner.then_some(other.field),
            how,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cell_methods_give_the_operation_and_interval() {
        assert_eq!(
            time_method(Some("time: maximum (interval: 1 day)")),
            Some((TimeOp::Maximum, Some(Duration::days(1))))
        );
        assert_eq!(
            time_method(Some("time: sum (interval: 6 hours)")),
            Some((TimeOp::Sum, Some(Duration::hours(6))))
        );
        assert_eq!(
            time_method(Some("time: minimum")),
            Some((TimeOp::Minimum, None))
        );
        assert_eq!(time_method(Some("time: point")), None);
        assert_eq!(time_method(Some("area: mean")), None);
        assert_eq!(time_method(None), None);
    }

    #[test]
    fn the_period_comes_from_bounds_else_the_centred_interval() {
        let t = Utc.with_ymd_and_hms(2018, 5, 10, 12, 0, 0).unwrap();
        let day = |h| Utc.with_ymd_and_hms(2018, 5, 10, h, 0, 0).unwrap();
        let (op, (a, b)) = truth_period(Some("time: maximum (interval: 1 day)"), None, Some(t))
            .unwrap()
            .unwrap();
        assert_eq!(op, TimeOp::Maximum);
        assert_eq!((a, b), (day(0), day(0) + Duration::days(1)));
        let bounds = (day(6), day(12));
        let (_, got) = truth_period(Some("time: sum (interval: 6 hours)"), Some(bounds), Some(t))
            .unwrap()
            .unwrap();
        assert_eq!(got, bounds);
        assert!(truth_period(Some("time: point"), None, Some(t))
            .unwrap()
            .is_none());
        assert!(truth_period(Some("time: maximum"), None, Some(t)).is_err());
    }
}
