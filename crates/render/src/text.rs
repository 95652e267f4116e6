//! Drawing straight into an RGB buffer: text with the bundled font, and
//! filled rectangles.
//!
//! Map labels do not go through plotters' text path: its ab_glyph backend
//! ignores each glyph's left side bearing, which spaces letters unevenly
//! ("gra dient", "1 981") — acceptable on chart axes, not on a map title.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

use crate::RenderError;

/// DejaVu Sans (see `assets/DejaVuSans-LICENSE`).
pub(crate) const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn font() -> Result<&'static FontRef<'static>, RenderError> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
        .ok_or(RenderError::Font)
}

/// Vertical metrics at font size `size` (pixels per line, as in plotters):
/// `(ascent, descent)`, both positive, in pixels.
pub(crate) fn vertical_metrics(size: f64) -> Result<(f64, f64), RenderError> {
    let scaled = font()?.as_scaled(PxScale::from(size as f32));
    Ok((f64::from(scaled.ascent()), f64::from(-scaled.descent())))
}

/// Advance width of `text` in pixels at font size `size`.
pub(crate) fn text_width(text: &str, size: f64) -> Result<f64, RenderError> {
    let scaled = font()?.as_scaled(PxScale::from(size as f32));
    let mut width = 0.0f32;
    let mut previous = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            width += scaled.kern(p, id);
        }
        width += scaled.h_advance(id);
        previous = Some(id);
    }
    Ok(f64::from(width))
}

/// An RGB8 image being drawn on.
pub(crate) struct Canvas<'a> {
    pub rgb: &'a mut [u8],
    pub width: u32,
    pub height: u32,
}

impl Canvas<'_> {
    /// Draws `text` with its baseline starting at `(x, baseline)`, blending
    /// anti-aliased coverage over what is there. Pixels outside are dropped.
    pub(crate) fn draw_text(
        &mut self,
        text: &str,
        size: f64,
        (x, baseline): (f64, f64),
        color: [u8; 3],
    ) -> Result<(), RenderError> {
        let font = font()?;
        let scale = PxScale::from(size as f32);
        let scaled = font.as_scaled(scale);
        let mut pen = x as f32;
        let mut previous = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                pen += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scale, point(pen, baseline as f32));
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let px = bounds.min.x as i64 + i64::from(gx);
                    let py = bounds.min.y as i64 + i64::from(gy);
                    self.blend(px, py, color, coverage);
                });
            }
            pen += scaled.h_advance(id);
            previous = Some(id);
        }
        Ok(())
    }

    /// Fills a `w` × `h` rectangle with top-left `(x, y)`, clipped to the canvas.
    pub(crate) fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: [u8; 3]) {
        let (x0, x1) = (x.max(0), (x + w).min(i64::from(self.width)));
        let (y0, y1) = (y.max(0), (y + h).min(i64::from(self.height)));
        for row in y0..y1 {
            let start = (row as usize * self.width as usize + x0 as usize) * 3;
            let end = (row as usize * self.width as usize + x1.max(x0) as usize) * 3;
            for pixel in self.rgb[start..end].chunks_exact_mut(3) {
                pixel.copy_from_slice(&color);
            }
        }
    }

    fn blend(&mut self, x: i64, y: i64, color: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let at = (y as usize * self.width as usize + x as usize) * 3;
        let alpha = alpha.clamp(0.0, 1.0);
        for (dst, &src) in self.rgb[at..at + 3].iter_mut().zip(&color) {
            *dst = (f32::from(*dst) * (1.0 - alpha) + f32::from(src) * alpha).round() as u8;
        }
    }
}
