//! Line charts: power spectra (log–log) and generic x–y series (loss and
//! scaling curves).

use std::path::Path;

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

use crate::ticks::{format_log_value, format_tick, linear_ticks, log_labels_scientific, log_ticks};
use crate::{draw_err, encode_png, ensure_font, write_atomic, RenderError, FONT_FAMILY};

/// Size of chart figures in pixels.
const CHART_SIZE: (u32, u32) = (900, 600);

/// Okabe–Ito colours (colour-blind safe), without the yellow that is
/// unreadable on white.
const SERIES_COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Series with at most this many points also get a marker at each point, so
/// short curves (a few model sizes, one point) stay visible.
const MARKER_MAX_POINTS: usize = 40;

/// One spectrum to plot; `wavelength_km` and `power` have the same length.
pub struct SpectrumLine<'a> {
    /// Legend entry, e.g. the method's name.
    pub label: String,
    /// Wavelength of each point (km), as in `finecast_metrics::Spectrum`.
    pub wavelength_km: &'a [f64],
    /// Power spectral density of each point (field units² · km²).
    pub power: &'a [f64],
}

/// Log–log plot of power spectra against wavelength, long wavelengths on the
/// left (the usual orientation: scales get finer to the right), with a legend.
/// Points with non-positive or non-finite wavelength or power are skipped.
pub fn render_spectra_png(
    title: &str,
    lines: &[SpectrumLine],
    path: &Path,
) -> Result<(), RenderError> {
    let mut series = Vec::with_capacity(lines.len());
    for line in lines {
        if line.wavelength_km.len() != line.power.len() {
            return Err(RenderError::InvalidInput(format!(
                "spectrum '{}' has {} wavelengths but {} powers",
                line.label,
                line.wavelength_km.len(),
                line.power.len()
            )));
        }
        let points = line
            .wavelength_km
            .iter()
            .zip(line.power)
            .filter(|(&wl, &p)| positive(wl) && positive(p))
            .map(|(wl, p)| (wl.log10(), p.log10()))
            .collect();
        series.push((line.label.clone(), points));
    }
    let x = Axis::new(
        "Wavelength (km), finer scales to the right",
        Scale::Log10,
        series_values(&series, |p| p.0),
    )?
    .reversed();
    let y = Axis::new(
        "Power spectral density",
        Scale::Log10,
        series_values(&series, |p| p.1),
    )?;
    let png = draw_chart(title, &x, &y, &series)?;
    write_atomic(path, &png)
}

/// Generic line plot of `(label, points)` series, with a legend; `log_y` puts
/// the y axis on a log scale. Non-finite points (and non-positive y on a log
/// axis) are skipped.
pub fn render_lines_png(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
    log_y: bool,
) -> Result<(), RenderError> {
    let (y_scale, y_of): (Scale, fn(f64) -> f64) = if log_y {
        (Scale::Log10, f64::log10)
    } else {
        (Scale::Linear, |y| y)
    };
    let series: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(label, points)| {
            let kept = points
                .iter()
                .filter(|(x, y)| x.is_finite() && if log_y { positive(*y) } else { y.is_finite() })
                .map(|&(x, y)| (x, y_of(y)))
                .collect();
            (label.clone(), kept)
        })
        .collect();
    let x = Axis::new(x_label, Scale::Linear, series_values(&series, |p| p.0))?;
    let y = Axis::new(y_label, y_scale, series_values(&series, |p| p.1))?;
    let png = draw_chart(title, &x, &y, &series)?;
    write_atomic(path, &png)
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

fn series_values(series: &[(String, Vec<(f64, f64)>)], pick: fn(&(f64, f64)) -> f64) -> Vec<f64> {
    series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(pick))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Scale {
    Linear,
    /// Plot coordinates are log10 of the values; labels show the values.
    Log10,
}

/// How tick values are written.
#[derive(Debug, Clone, Copy)]
enum LabelFormat {
    Decimals(usize),
    /// Log axis: the value `10^tick`, plain or all scientific.
    Power {
        scientific: bool,
    },
}

/// One chart axis in plot coordinates (log10 of the values on a log axis),
/// with our own tick positions (plotters' key-point combinator loses the
/// formatter support of `f64` ranges).
#[derive(Debug, Clone)]
struct Axis {
    title: String,
    /// Left/bottom end and right/top end; `start > end` reverses the axis.
    start: f64,
    end: f64,
    major: Vec<f64>,
    minor: Vec<f64>,
    format: LabelFormat,
}

impl Axis {
    /// An axis covering `values` (plot coordinates) with a little padding.
    fn new(title: &str, scale: Scale, values: Vec<f64>) -> Result<Axis, RenderError> {
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if !(lo.is_finite() && hi.is_finite()) {
            return Err(RenderError::InvalidInput(
                "nothing to plot: no valid point in any series".to_string(),
            ));
        }
        let pad = if hi > lo {
            0.03 * (hi - lo)
        } else {
            // A single value: half a decade, or 10% (at least 1) on a linear axis.
            match scale {
                Scale::Log10 => 0.5,
                Scale::Linear => (0.1 * lo.abs()).max(1.0),
            }
        };
        let (start, end) = (lo - pad, hi + pad);
        let (major, minor, format) = match scale {
            Scale::Linear => {
                let (ticks, decimals) = linear_ticks(start, end, 8);
                (ticks, Vec::new(), LabelFormat::Decimals(decimals))
            }
            Scale::Log10 => {
                let (major, minor) = log_ticks(start, end);
                let scientific = log_labels_scientific(&major);
                (major, minor, LabelFormat::Power { scientific })
            }
        };
        Ok(Axis {
            title: title.to_string(),
            start,
            end,
            major,
            minor,
            format,
        })
    }

    fn reversed(self) -> Axis {
        Axis {
            start: self.end,
            end: self.start,
            ..self
        }
    }

    fn label(&self, v: f64) -> String {
        match self.format {
            LabelFormat::Decimals(decimals) => format_tick(v, decimals),
            LabelFormat::Power { scientific } => format_log_value(10f64.powf(v), scientific),
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.start) / (self.end - self.start);
        limit.0 + (f64::from(limit.1 - limit.0) * t).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.start..self.end
    }
}

/// Draws the series into a [`CHART_SIZE`] figure and encodes it as PNG.
fn draw_chart(
    title: &str,
    x: &Axis,
    y: &Axis,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<Vec<u8>, RenderError> {
    ensure_font()?;
    let (width, height) = CHART_SIZE;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT_FAMILY, 24))
            .margin(20)
            .x_label_area_size(56)
            .y_label_area_size(84)
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x.title.as_str())
            .y_desc(y.title.as_str())
            .x_label_formatter(&|v| x.label(*v))
            .y_label_formatter(&|v| y.label(*v))
            .label_style((FONT_FAMILY, 15))
            .axis_desc_style((FONT_FAMILY, 17))
            .bold_line_style(BLACK.mix(0.15))
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(draw_err)?;

        for (k, (label, points)) in series.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let line = chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?;
            if !label.is_empty() {
                line.label(label.as_str()).legend(move |(lx, ly)| {
                    PathElement::new(vec![(lx, ly), (lx + 24, ly)], color.stroke_width(2))
                });
            }
            if points.len() <= MARKER_MAX_POINTS {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(draw_err)?;
            }
        }
        if series.iter().any(|(label, _)| !label.is_empty()) {
            chart
                .configure_series_labels()
                .label_font((FONT_FAMILY, 15))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    encode_png(&rgb, width, height)
}
