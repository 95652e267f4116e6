//! Colour-bar legends (PNG), as drawn beside finecast's maps; shared by
//! `GET /v1/runs/{run}/legend.png` and WMS GetLegendGraphic, and cached with
//! the tiles.

use axum::body::Bytes;
use finecast_render::{map_layout, render_map_png_bytes, MapSpec, Palette};
use ndarray::Array2;

use super::response::etag_of;
use super::state::{App, RenderKind};
use crate::error::ApiError;
use crate::raster::Style;

/// Width of every colour bar image, as WMS capabilities advertise it.
pub const LEGEND_WIDTH: u32 = 110;
/// Height of a colour bar image when the request names none.
pub const LEGEND_DEFAULT_HEIGHT: u32 = 300;

/// A vertical colour bar with tick labels and `units`, exactly
/// [`LEGEND_WIDTH`] × `height` pixels (`height` clamped to 150..=2048), so
/// the size WMS capabilities advertise is the size clients get.
fn legend_png(
    units: &str,
    palette: &Palette,
    range: (f64, f64),
    height: u32,
) -> Result<Vec<u8>, ApiError> {
    // The map renderer lays out and labels colour bars; render a map of a
    // dummy field without a title and keep only the bar column.
    let dummy = Array2::from_shape_fn((64, 1), |(j, _)| j as f32);
    let spec = MapSpec {
        title: String::new(),
        subtitle: String::new(),
        units: units.to_string(),
        data: dummy.view(),
        north_up_rows: true,
        palette: palette.clone(),
        range,
        width: 320,
        height: height.clamp(150, 2048),
        hillshade: None,
    };
    let layout = map_layout(&spec).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let png = render_map_png_bytes(&spec).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().map_err(ApiError::internal)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(ApiError::internal)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let ch = info.color_type.samples();
    let x0 = (layout.colorbar.x as usize).saturating_sub(6);
    // Trim to the last column with ink, plus a small margin.
    let ink = |x: usize| {
        (0..h).any(|y| {
            buf[(y * w + x) * ch..(y * w + x) * ch + 3]
                .iter()
                .any(|&c| c < 250)
        })
    };
    let x1 = ((x0..w).rev().find(|&x| ink(x)).unwrap_or(w - 1) + 6).min(w);
    let y1 = ((layout.colorbar.y + layout.colorbar.height) as usize + 12).min(h);
    // The bar and its labels, left-aligned on a white canvas of the fixed size.
    let (cw, chh) = (LEGEND_WIDTH as usize, spec.height as usize);
    let mut rgba = vec![255u8; cw * chh * 4];
    for y in 0..y1.min(chh) {
        for (cx, x) in (x0..x1).take(cw).enumerate() {
            let p = &buf[(y * w + x) * ch..(y * w + x) * ch + 3];
            rgba[(y * cw + cx) * 4..][..3].copy_from_slice(p);
        }
    }
    crate::raster::encode_png_rgba(&rgba, cw as u32, chh as u32).map_err(ApiError::internal)
}

/// ETag of a colour bar image.
pub fn legend_etag(units: &str, style: &Style, height: u32) -> String {
    etag_of(&[
        "legend",
        units,
        style.palette.name,
        &format!("{:?}", style.range),
        &height.to_string(),
    ])
}

/// A colour bar PNG from the image cache, rendered once on a miss.
pub async fn cached_legend(
    app: &App,
    etag: &str,
    units: String,
    style: Style,
    height: u32,
) -> Result<Bytes, ApiError> {
    app.cached_or_render(etag, || async move {
        app.render(RenderKind::Tile, move || {
            legend_png(&units, &style.palette, style.range, height)
        })
        .await
        .map(Bytes::from)
    })
    .await
}
