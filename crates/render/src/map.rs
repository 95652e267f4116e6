//! Colour-mapped field maps: title, subtitle, the field drawn pixel by pixel,
//! and a vertical colour bar with ticks and units.

use std::f64::consts::FRAC_1_SQRT_2;
use std::path::Path;

use ndarray::{Array2, ArrayView2};

use crate::palette::Palette;
use crate::text::{text_width, vertical_metrics, Canvas};
use crate::ticks::{format_tick, linear_ticks};
use crate::{encode_png, write_atomic, RenderError};

/// Colour of missing (NaN) cells; no built-in palette contains it.
pub const NO_DATA_RGB: [u8; 3] = [160, 160, 160];
const TEXT_COLOR: [u8; 3] = [25, 25, 25];
const FRAME_COLOR: [u8; 3] = [60, 60, 60];
const BACKGROUND: u8 = 255;
/// Colour-table resolution: finer than any screen can show on a colour bar.
const LUT_SIZE: usize = 256;
const MIN_WIDTH: u32 = 200;
const MIN_HEIGHT: u32 = 150;
const MAX_SIDE: u32 = 8192;

/// Cap height of DejaVu Sans as a fraction of the font size, for centring
/// tick labels on their ticks.
const CAP_HEIGHT: f64 = 0.63;

/// Everything needed to draw one map.
#[derive(Debug, Clone)]
pub struct MapSpec<'a> {
    /// First header line, e.g. variable and region; shrunk, then cut with an
    /// ellipsis, if it is wider than the figure. Empty to omit.
    pub title: String,
    /// Second header line, e.g. valid time, source and method.
    pub subtitle: String,
    /// Shown above the colour bar, e.g. `"K"`.
    pub units: String,
    /// The field, shape `(ny, nx)`; NaN cells are drawn in [`NO_DATA_RGB`].
    pub data: ArrayView2<'a, f32>,
    /// `true` if row 0 is the northernmost row (drawn at the top); `false`
    /// if row 0 is the southernmost (drawn at the bottom).
    pub north_up_rows: bool,
    /// Colour ramp from `range.0` to `range.1` (see
    /// [`Palette::for_variable`]).
    pub palette: Palette,
    /// Values mapped to the palette's first and last colour; values outside
    /// are clamped to the end colours. Must be finite with `lo < hi`.
    pub range: (f64, f64),
    /// Figure size in pixels (200×150 up to 8192×8192).
    pub width: u32,
    /// Figure height in pixels (see `width`).
    pub height: u32,
    /// Optional terrain (same shape and row order as `data`) whose Lambertian
    /// shading, lit from the north-west, darkens and lightens the colours.
    pub hillshade: Option<ArrayView2<'a, f32>>,
}

/// A rectangle of pixels; `x`, `y` is the top-left pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    /// Column of the left edge, counted from the figure's left (0).
    pub x: u32,
    /// Row of the top edge, counted down from the figure's top (0).
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Where [`render_map_png`] puts the field and the colour bar: for mapping
/// pixels back to cells (e.g. a click on a served map) and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapLayout {
    /// The field's pixels; cell `(row, col)` of an `(ny, nx)` field covers the
    /// pixels whose centres fall in its share of this rectangle.
    pub map: PixelRect,
    /// The colour bar's pixels, high values at the top.
    pub colorbar: PixelRect,
}

/// A line of text, positioned by the left end of its baseline.
struct Label {
    text: String,
    size: f64,
    x: f64,
    baseline: f64,
}

/// The full figure plan: layout, every label and the tick marks.
struct Plan {
    layout: MapLayout,
    labels: Vec<Label>,
    tick_rows: Vec<i64>,
    tick_len: i64,
}

/// The layout [`render_map_png`] would use for `spec`.
pub fn map_layout(spec: &MapSpec) -> Result<MapLayout, RenderError> {
    Ok(plan(spec)?.layout)
}

/// Renders `spec` to a PNG file at `path`, atomically (temporary file, then
/// rename). A missing directory is an error; no file is left behind.
pub fn render_map_png(spec: &MapSpec, path: &Path) -> Result<(), RenderError> {
    let png = render_map_png_bytes(spec)?;
    write_atomic(path, &png)
}

/// Renders `spec` to PNG bytes in memory (e.g. for an HTTP response).
pub fn render_map_png_bytes(spec: &MapSpec) -> Result<Vec<u8>, RenderError> {
    let plan = plan(spec)?;
    let (width, height) = (spec.width, spec.height);
    let mut rgb = vec![BACKGROUND; width as usize * height as usize * 3];

    let mut canvas = Canvas {
        rgb: &mut rgb,
        width,
        height,
    };

    // Pixels straight into the buffer: one plotted rectangle per cell would
    // be orders of magnitude slower.
    paint_field(spec, plan.layout.map, &mut canvas);
    paint_colorbar(&spec.palette, plan.layout.colorbar, &mut canvas);
    for rect in [plan.layout.map, plan.layout.colorbar] {
        // One pixel outside the rectangle, so every data pixel stays exact.
        let (x, y) = (i64::from(rect.x) - 1, i64::from(rect.y) - 1);
        let (w, h) = (i64::from(rect.width) + 2, i64::from(rect.height) + 2);
        canvas.fill_rect(x, y, w, 1, FRAME_COLOR);
        canvas.fill_rect(x, y + h - 1, w, 1, FRAME_COLOR);
        canvas.fill_rect(x, y, 1, h, FRAME_COLOR);
        canvas.fill_rect(x + w - 1, y, 1, h, FRAME_COLOR);
    }
    let bar = plan.layout.colorbar;
    let bar_right = i64::from(bar.x + bar.width);
    for &row in &plan.tick_rows {
        canvas.fill_rect(bar_right, row, plan.tick_len, 1, FRAME_COLOR);
    }
    for label in &plan.labels {
        canvas.draw_text(
            &label.text,
            label.size,
            (label.x, label.baseline),
            TEXT_COLOR,
        )?;
    }
    encode_png(&rgb, width, height)
}

fn validate(spec: &MapSpec) -> Result<(), RenderError> {
    let bad = |msg: String| Err(RenderError::InvalidInput(msg));
    let (ny, nx) = spec.data.dim();
    if ny == 0 || nx == 0 {
        return bad(format!("empty field ({ny}x{nx})"));
    }
    if !(MIN_WIDTH..=MAX_SIDE).contains(&spec.width)
        || !(MIN_HEIGHT..=MAX_SIDE).contains(&spec.height)
    {
        return bad(format!(
            "figure size {}x{} outside {MIN_WIDTH}x{MIN_HEIGHT}..{MAX_SIDE}x{MAX_SIDE}",
            spec.width, spec.height
        ));
    }
    let (lo, hi) = spec.range;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return bad(format!(
            "colour range ({lo}, {hi}) must be finite with lo < hi"
        ));
    }
    if let Some(terrain) = &spec.hillshade {
        if terrain.dim() != (ny, nx) {
            return bad(format!(
                "hillshade terrain has shape {:?}, field has {:?}",
                terrain.dim(),
                (ny, nx)
            ));
        }
    }
    Ok(())
}

/// `text` fitted into `max_width` pixels: first shrunk down to 70% of `size`
/// (but not below 9 px), then cut with an ellipsis, so that long titles are
/// never clipped at the figure edge. Returns the text, its size and width.
fn fit_text(text: &str, size: f64, max_width: f64) -> Result<(String, f64, f64), RenderError> {
    let width = text_width(text, size)?;
    if width <= max_width {
        return Ok((text.to_string(), size, width));
    }
    let size = (size * max_width / width)
        .floor()
        .max((0.7 * size).max(9.0).min(size));
    let mut fitted = text.to_string();
    let mut width = text_width(&fitted, size)?;
    while width > max_width && !fitted.is_empty() {
        fitted.pop();
        let shortened = format!("{}…", fitted.trim_end());
        width = text_width(&shortened, size)?;
        if width <= max_width {
            fitted = shortened;
            break;
        }
    }
    Ok((fitted, size, width))
}

fn plan(spec: &MapSpec) -> Result<Plan, RenderError> {
    validate(spec)?;
    let (fig_w, fig_h) = (f64::from(spec.width), f64::from(spec.height));
    let (ny, nx) = spec.data.dim();

    // Everything scales with one base font size so small and large figures
    // keep their proportions.
    let base = (fig_w.min(fig_h) / 48.0).clamp(10.0, 22.0);
    let margin = (base * 0.9).round();
    let text_room = fig_w - 2.0 * margin;

    // Header: title and subtitle lines.
    let mut header = Vec::new();
    let mut y = margin;
    for (text, size) in [(&spec.title, base * 1.4), (&spec.subtitle, base * 1.05)] {
        if text.trim().is_empty() {
            continue;
        }
        let (text, size, width) = fit_text(text, size, text_room)?;
        let (ascent, descent) = vertical_metrics(size)?;
        let baseline = (y + ascent).round();
        header.push((text, size, width, baseline));
        y = baseline + descent + 0.3 * size;
    }
    let header_bottom = if header.is_empty() {
        margin
    } else {
        y + 0.5 * margin
    };

    // Colour-bar column: units on top, then the bar with tick labels.
    let tick_size = base;
    let bar_w = (base * 1.4).round();
    let tick_len = (base * 0.4).round();
    let label_gap = (base * 0.3).round();
    let gap = (base * 1.2).round();
    let units = if spec.units.trim().is_empty() {
        None
    } else {
        Some(fit_text(&spec.units, base, fig_w * 0.3)?)
    };
    let unit_row = units
        .as_ref()
        .map_or(0.0, |(_, size, _)| (size * 1.7).round());
    let avail_h = fig_h - header_bottom - margin;
    let units_w = units.as_ref().map_or(0.0, |(_, _, w)| *w);

    // The map keeps the field's aspect ratio (square cells) and takes what
    // the colour-bar column leaves; returns the map and the bar rectangles.
    let arrange = |column_w: f64| -> Result<(PixelRect, PixelRect), RenderError> {
        let avail_w = fig_w - 2.0 * margin - gap - column_w;
        if avail_w < 40.0 || avail_h < 40.0 + unit_row {
            return Err(RenderError::InvalidInput(format!(
                "figure {}x{} is too small for its labels",
                spec.width, spec.height
            )));
        }
        let scale = (avail_w / nx as f64).min(avail_h / ny as f64);
        let map_w = (nx as f64 * scale).floor().clamp(1.0, avail_w);
        let map_h = (ny as f64 * scale).floor().clamp(1.0, avail_h);
        // A wide, flat map still gets a colour bar long enough to read.
        let column_h = map_h.max((unit_row + 10.0 * tick_size).min(avail_h));
        let group_h = map_h.max(column_h);
        let group_x = (margin + (text_room - (map_w + gap + column_w)) / 2.0).floor();
        // Top-aligned: the title stays next to its map whatever the aspect.
        let group_y = header_bottom.floor();
        let map = PixelRect {
            x: group_x as u32,
            y: (group_y + ((group_h - map_h) / 2.0).floor()) as u32,
            width: map_w as u32,
            height: map_h as u32,
        };
        let colorbar = PixelRect {
            x: (group_x + map_w + gap) as u32,
            y: (group_y + unit_row) as u32,
            width: bar_w as u32,
            height: (column_h - unit_row).max(2.0) as u32,
        };
        Ok((map, colorbar))
    };

    // Tick labels set the column width, which sets the bar length, which sets
    // how many ticks fit: start from the most the figure could take and
    // coarsen until they fit the bar.
    let (lo, hi) = spec.range;
    let mut target = ((avail_h - unit_row) / (tick_size * 2.2)).clamp(2.0, 8.0) as usize;
    let (map, colorbar, tick_values, tick_labels) = loop {
        let (values, decimals) = linear_ticks(lo, hi, target);
        let texts: Vec<String> = values.iter().map(|&v| format_tick(v, decimals)).collect();
        let mut labels_w: f64 = 0.0;
        for text in &texts {
            labels_w = labels_w.max(text_width(text, tick_size)?);
        }
        let (map, colorbar) = arrange((bar_w + tick_len + label_gap + labels_w).max(units_w))?;
        let room = (f64::from(colorbar.height) / (tick_size * 1.8)).floor() as usize;
        if values.len() <= room.max(2) || target <= 1 {
            break (map, colorbar, values, texts);
        }
        target -= 1;
    };
    let (group_x, group_y) = (f64::from(map.x), f64::from(colorbar.y) - unit_row);

    let mut labels = Vec::new();
    for (text, size, width, baseline) in header {
        // Align with the map's left edge unless that would push text off the figure.
        let x = group_x.min(fig_w - margin - width).max(margin);
        labels.push(Label {
            text,
            size,
            x,
            baseline,
        });
    }
    if let Some((text, size, _)) = units {
        labels.push(Label {
            text,
            size,
            x: f64::from(colorbar.x),
            baseline: (group_y + vertical_metrics(size)?.0).round(),
        });
    }

    let bar_h = f64::from(colorbar.height);
    let mut tick_rows = Vec::new();
    for (value, text) in tick_values.iter().zip(tick_labels) {
        let t = (value - lo) / (hi - lo);
        let row = (f64::from(colorbar.y) + (bar_h - 1.0) * (1.0 - t)).round();
        tick_rows.push(row as i64);
        labels.push(Label {
            text,
            size: tick_size,
            x: f64::from(colorbar.x) + bar_w + tick_len + label_gap,
            baseline: row + (CAP_HEIGHT * tick_size / 2.0).round(),
        });
    }

    Ok(Plan {
        layout: MapLayout { map, colorbar },
        labels,
        tick_rows,
        tick_len: tick_len as i64,
    })
}

/// Draws the field into `rect` by nearest-neighbour resampling: pixel centre
/// `(px + ½) / width` picks the column at that fraction of `nx` (rows alike).
fn paint_field(spec: &MapSpec, rect: PixelRect, canvas: &mut Canvas) {
    let (rgb, stride_px) = (&mut *canvas.rgb, canvas.width as usize);
    let (ny, nx) = spec.data.dim();
    let (w, h) = (rect.width as usize, rect.height as usize);
    let lut = spec.palette.lut(LUT_SIZE);
    let (lo, hi) = spec.range;
    let to_index = (LUT_SIZE - 1) as f64 / (hi - lo);
    let shade = spec
        .hillshade
        .as_ref()
        .map(|terrain| hillshade_factors(terrain, spec.north_up_rows));
    let cols: Vec<usize> = (0..w).map(|px| (2 * px + 1) * nx / (2 * w)).collect();

    let line_len = w * 3;
    let mut previous: Option<(usize, usize)> = None; // (data row, buffer offset)
    for py in 0..h {
        let from_top = (2 * py + 1) * ny / (2 * h);
        let row = if spec.north_up_rows {
            from_top
        } else {
            ny - 1 - from_top
        };
        let start = ((rect.y as usize + py) * stride_px + rect.x as usize) * 3;
        // When zoomed in, consecutive pixel rows show the same data row.
        if let Some((prev_row, prev_start)) = previous {
            if prev_row == row {
                rgb.copy_within(prev_start..prev_start + line_len, start);
                continue;
            }
        }
        let line = &mut rgb[start..start + line_len];
        for (pixel, &col) in line.chunks_exact_mut(3).zip(&cols) {
            let v = spec.data[[row, col]];
            let color = if v.is_finite() {
                let idx = ((f64::from(v) - lo) * to_index)
                    .round()
                    .clamp(0.0, (LUT_SIZE - 1) as f64);
                let c = lut[idx as usize];
                match &shade {
                    Some(factors) => {
                        let f = factors[[row, col]];
                        c.map(|ch| (f32::from(ch) * f).round().clamp(0.0, 255.0) as u8)
                    }
                    None => c,
                }
            } else {
                NO_DATA_RGB
            };
            pixel.copy_from_slice(&color);
        }
        previous = Some((row, start));
    }
}

/// Fills the colour bar, high values at the top.
fn paint_colorbar(palette: &Palette, rect: PixelRect, canvas: &mut Canvas) {
    let (rgb, stride_px) = (&mut *canvas.rgb, canvas.width as usize);
    let lut = palette.lut(LUT_SIZE);
    let h = rect.height as usize;
    for py in 0..h {
        let t = 1.0 - py as f64 / (h - 1).max(1) as f64;
        let color = lut[(t * (LUT_SIZE - 1) as f64).round() as usize];
        let start = ((rect.y as usize + py) * stride_px + rect.x as usize) * 3;
        for pixel in rgb[start..start + rect.width as usize * 3].chunks_exact_mut(3) {
            pixel.copy_from_slice(&color);
        }
    }
}

/// Per-cell brightness factors (1 on flat ground) from Lambertian shading of
/// `terrain` lit from the north-west, 45° above the horizon.
///
/// The grid spacing is not known here, so slopes are in terrain units per
/// cell and normalised by the 90th percentile of their magnitude (which then
/// shades like a 45° slope): relief is visible at any resolution without
/// tuning. Cells with missing terrain (or missing neighbours) are unshaded.
fn hillshade_factors(terrain: &ArrayView2<f32>, north_up_rows: bool) -> Array2<f32> {
    let (ny, nx) = terrain.dim();
    // Central differences, one-sided at the edges; None where terrain is missing.
    let gradient = |j: usize, i: usize| -> Option<(f64, f64)> {
        let diff = |a: f32, b: f32, cells: usize| -> Option<f64> {
            match cells {
                0 => Some(0.0),
                _ if a.is_finite() && b.is_finite() => Some(f64::from(a - b) / cells as f64),
                _ => None,
            }
        };
        let (w, e) = (i.saturating_sub(1), (i + 1).min(nx - 1));
        let (lo, hi) = (j.saturating_sub(1), (j + 1).min(ny - 1));
        let d_east = diff(terrain[[j, e]], terrain[[j, w]], e - w)?;
        let d_rows = diff(terrain[[hi, i]], terrain[[lo, i]], hi - lo)?;
        let d_north = if north_up_rows { -d_rows } else { d_rows };
        Some((d_east, d_north))
    };
    let gradients = Array2::from_shape_fn((ny, nx), |(j, i)| gradient(j, i));

    let mut magnitudes: Vec<f64> = gradients
        .iter()
        .flatten()
        .map(|(gx, gy)| gx.hypot(*gy))
        .filter(|&m| m > 0.0)
        .collect();
    if magnitudes.is_empty() {
        return Array2::ones((ny, nx));
    }
    let k = (magnitudes.len() * 9 / 10).min(magnitudes.len() - 1);
    let reference = *magnitudes.select_nth_unstable_by(k, f64::total_cmp).1;

    // Unit vector towards the light: azimuth 315° (north-west), altitude 45°.
    let light = (-0.5, 0.5, FRAC_1_SQRT_2);
    gradients.mapv(|g| match g {
        None => 1.0,
        Some((gx, gy)) => {
            // Surface normal (east, north, up) of the normalised slope.
            let normal = (-gx / reference, -gy / reference, 1.0);
            let norm = (normal.0 * normal.0 + normal.1 * normal.1 + 1.0).sqrt();
            let lambert =
                ((normal.0 * light.0 + normal.1 * light.1 + normal.2 * light.2) / norm).max(0.0);
            // Relief is 1 on flat ground; shade at half strength so the
            // palette stays readable.
            let relief = lambert / light.2;
            (1.0 + 0.5 * (relief - 1.0)).clamp(0.5, 1.2) as f32
        }
    })
}
