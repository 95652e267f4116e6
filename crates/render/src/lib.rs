//! PNG figures for finecast: colour-mapped field maps (for `finecast evaluate
//! --plots` and, in memory, for HTTP), power spectra and generic line plots.
//!
//! Text uses DejaVu Sans, bundled in `assets/` and registered with plotters'
//! `ab_glyph` backend, so rendering needs no fontconfig or system fonts
//! (`scripts/vendor-font.sh` re-vendors it). Files are written atomically: a
//! reader never sees a half-written PNG.

mod chart;
mod map;
mod palette;
mod text;
mod ticks;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

pub use chart::{render_lines_png, render_spectra_png, SpectrumLine};
pub use map::{
    map_layout, render_map_png, render_map_png_bytes, MapLayout, MapSpec, PixelRect, NO_DATA_RGB,
};
pub use palette::{default_range, Palette};

/// Why a figure could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The caller's input cannot be drawn: an empty field, a figure size
    /// outside 200x150..8192x8192 or too small for its labels, a colour range
    /// that is not finite with `lo < hi`, a hillshade terrain of another
    /// shape, spectrum lengths that differ, or no plottable point at all.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The bundled DejaVu Sans could not be parsed or registered with
    /// plotters (a build problem, not an input problem).
    #[error("cannot load the bundled font")]
    Font,
    /// plotters failed while drawing a chart.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// The `png` encoder failed.
    #[error("PNG encoding failed: {0}")]
    Encode(String),
    /// The PNG could not be written (e.g. a missing directory); no partial
    /// or temporary file is left behind.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The destination file.
        path: PathBuf,
        /// The underlying OS error.
        source: std::io::Error,
    },
}

/// The font family name under which the bundled font is registered.
const FONT_FAMILY: &str = "sans-serif";

/// Registers the bundled font with plotters (once per process), for chart text.
fn ensure_font() -> Result<(), RenderError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, text::FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(RenderError::Font)
    }
}

/// Maps any plotters drawing error into ours.
fn draw_err(e: impl std::fmt::Display) -> RenderError {
    RenderError::Draw(e.to_string())
}

/// Encodes a packed RGB8 buffer as PNG.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, RenderError> {
    let encode_err = |e: png::EncodingError| RenderError::Encode(e.to_string());
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Maps are mostly flat colour runs; fast compression is within a few
    // percent of the default size at a fraction of the time.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(encode_err)?;
    writer.write_image_data(rgb).map_err(encode_err)?;
    writer.finish().map_err(encode_err)?;
    Ok(out)
}

/// Writes `bytes` to `path` atomically ([`finecast_io::write_atomic`]):
/// readers such as an HTTP server see the old file or the new one, never a
/// partial one, and a failed write leaves nothing behind.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RenderError> {
    finecast_io::write_atomic(path, bytes).map_err(|source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    })
}
