//! Direct raster rendering of a run's field into any view (XYZ tiles, WMS
//! maps, GeoTIFF resampling): for each output pixel, view coordinates →
//! lon/lat → the grid's native coordinates → fractional cell index → value
//! (nearest or bilinear) → palette colour.
//!
//! Projecting every pixel exactly costs a proj transform per pixel; instead
//! the native coordinates are computed exactly on a lattice every
//! `LATTICE_STEP` (16) pixels and interpolated bilinearly in between, as GDAL's
//! approximate transformer does. The mappings are smooth, so the error is a
//! small fraction of a pixel at any zoom.

use std::f64::consts::PI;

use finecast_grid::Grid;
use finecast_render::Palette;
use ndarray::Array2;

/// Pixels between exactly projected lattice points.
const LATTICE_STEP: usize = 16;
/// Spherical Mercator radius (EPSG:3857), metres.
pub const MERCATOR_R: f64 = 6_378_137.0;
/// The latitude (degrees) where Web Mercator's square world ends; tiles
/// cover nothing beyond it.
pub const MERCATOR_MAX_LAT: f64 = 85.051_128_779_806_59;
/// Width and height of an XYZ tile, pixels.
pub const TILE_SIZE: u32 = 256;

/// How a value is read between cell centres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// The value of the cell the pixel falls in: shows the grid's cells.
    Nearest,
    /// Bilinear between the four nearest centres: smooth when zoomed in.
    Bilinear,
}

/// What to paint for values beyond the colour range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutOfRange {
    /// The end colour of the palette.
    Extend,
    /// Nothing: the background shows through.
    Transparent,
    /// A fixed RGB colour.
    Color([u8; 3]),
}

/// How values become colours.
#[derive(Debug, Clone)]
pub struct Style {
    /// The colour ramp.
    pub palette: Palette,
    /// Values mapped to the ramp's ends, in the field's units (`lo < hi`).
    pub range: (f64, f64),
    /// Number of colour bands (NUMCOLORBANDS), 2..=256.
    pub bands: usize,
    /// What values above the range get.
    pub above: OutOfRange,
    /// What values below the range get.
    pub below: OutOfRange,
}

impl Style {
    /// A continuous (256-band) ramp over `range`, extended beyond it.
    pub fn new(palette: Palette, range: (f64, f64)) -> Style {
        Style {
            palette,
            range,
            bands: 256,
            above: OutOfRange::Extend,
            below: OutOfRange::Extend,
        }
    }
}

/// Geographic `(lon, lat)` of the centre of pixel `(px, py)` of a view, or
/// `None` where the view has no such point.
pub trait View: Send + Sync {
    /// Geographic `(lon, lat)` in degrees of pixel coordinates `(px, py)`
    /// (pixel centres at half-integers), or `None` off the globe.
    fn lonlat(&self, px: f64, py: f64) -> Option<(f64, f64)>;
    /// `(width, height)` in pixels.
    fn size(&self) -> (u32, u32);
}

/// A rectangle in a CRS whose pixels map linearly to lon/lat (EPSG:4326, CRS:84).
pub struct LonLatView {
    /// Longitude of the left edge, degrees.
    pub west: f64,
    /// Latitude of the bottom edge, degrees.
    pub south: f64,
    /// Longitude of the right edge, degrees.
    pub east: f64,
    /// Latitude of the top edge, degrees.
    pub north: f64,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

impl View for LonLatView {
    fn lonlat(&self, px: f64, py: f64) -> Option<(f64, f64)> {
        let lon = self.west + px / f64::from(self.width) * (self.east - self.west);
        let lat = self.north - py / f64::from(self.height) * (self.north - self.south);
        (-90.0..=90.0).contains(&lat).then_some((lon, lat))
    }
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// A rectangle in spherical Mercator metres (EPSG:3857); XYZ tiles are these.
pub struct MercatorView {
    /// Left edge, metres east.
    pub min_x: f64,
    /// Bottom edge, metres north.
    pub min_y: f64,
    /// Right edge, metres east.
    pub max_x: f64,
    /// Top edge, metres north.
    pub max_y: f64,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

impl MercatorView {
    /// The view of XYZ tile `z/x/y`.
    pub fn tile(z: u32, x: u32, y: u32) -> MercatorView {
        let extent = PI * MERCATOR_R;
        let size = 2.0 * extent / f64::from(1u32 << z);
        MercatorView {
            min_x: -extent + f64::from(x) * size,
            max_x: -extent + f64::from(x + 1) * size,
            max_y: extent - f64::from(y) * size,
            min_y: extent - f64::from(y + 1) * size,
            width: TILE_SIZE,
            height: TILE_SIZE,
        }
    }

    /// `(west, south, east, north)` in degrees.
    pub fn bounds_lonlat(&self) -> (f64, f64, f64, f64) {
        let (w, s) = mercator_to_lonlat(self.min_x, self.min_y);
        let (e, n) = mercator_to_lonlat(self.max_x, self.max_y);
        (w, s, e, n)
    }
}

impl View for MercatorView {
    fn lonlat(&self, px: f64, py: f64) -> Option<(f64, f64)> {
        let x = self.min_x + px / f64::from(self.width) * (self.max_x - self.min_x);
        let y = self.max_y - py / f64::from(self.height) * (self.max_y - self.min_y);
        Some(mercator_to_lonlat(x, y))
    }
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// Degrees `(lon, lat)` of spherical Mercator metres `(x, y)`.
pub fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / MERCATOR_R).to_degrees();
    let lat = (2.0 * (y / MERCATOR_R).exp().atan() - PI / 2.0).to_degrees();
    (lon, lat)
}

/// Spherical Mercator metres of `(lon, lat)` in degrees; latitudes beyond
/// [`MERCATOR_MAX_LAT`] are clamped to it.
pub fn lonlat_to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-MERCATOR_MAX_LAT, MERCATOR_MAX_LAT);
    (
        MERCATOR_R * lon.to_radians(),
        MERCATOR_R * (PI / 4.0 + lat.to_radians() / 2.0).tan().ln(),
    )
}

/// The XYZ tile `(x, y)` at zoom `z` that holds `(lon, lat)` (clamped to
/// the Web Mercator square).
pub fn tile_of(z: u32, lon: f64, lat: f64) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let lat = lat.clamp(-MERCATOR_MAX_LAT, MERCATOR_MAX_LAT).to_radians();
    let fx = (lon + 180.0) / 360.0 * n;
    let fy = (1.0 - lat.tan().asinh() / PI) / 2.0 * n;
    let last = (1u32 << z) - 1;
    (
        (fx.max(0.0) as u32).min(last),
        (fy.max(0.0) as u32).min(last),
    )
}

/// Fractional `(fj, fi)` cell index of every pixel of a `width` x `height`
/// view (NaN where the pixel is off the grid), row-major.
pub fn cell_indices(grid: &Grid, view: &dyn View, width: usize, height: usize) -> Vec<(f32, f32)> {
    let native = |px: f64, py: f64| -> Option<(f64, f64)> {
        let (lon, lat) = view.lonlat(px, py)?;
        grid.to_native(lon, lat)
    };
    // Lattice columns/rows at pixel centres 0, STEP, 2 STEP, ..., and the last.
    let stops = |n: usize| -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).step_by(LATTICE_STEP).collect();
        if v.last() != Some(&(n - 1)) {
            v.push(n - 1);
        }
        v
    };
    let (cols, rows) = (stops(width), stops(height));
    let lattice: Option<Vec<(f64, f64)>> = rows
        .iter()
        .flat_map(|&r| cols.iter().map(move |&c| (c, r)))
        .map(|(c, r)| native(c as f64 + 0.5, r as f64 + 0.5))
        .collect();
    let index = |x: f64, y: f64| -> (f32, f32) {
        match grid.native_index(x, y) {
            Some((fj, fi)) => (fj as f32, fi as f32),
            None => (f32::NAN, f32::NAN),
        }
    };
    let mut out = Vec::with_capacity(width * height);
    match lattice {
        Some(mut lat) => {
            // With an affine index (evenly spaced projected axes), interpolate
            // the indices themselves: no per-pixel projection arithmetic.
            let affine = grid.affine_index();
            if let Some(((x0, dx), (y0, dy))) = affine {
                for p in lat.iter_mut() {
                    *p = ((p.0 - x0) / dx, (p.1 - y0) / dy);
                }
            }
            let (fi_max, fj_max) = (grid.nx() as f64 - 0.5, grid.ny() as f64 - 0.5);
            let nc = cols.len();
            // Which lattice interval each pixel column / row falls in, and where.
            let spans = |stops: &[usize], n: usize| -> Vec<(usize, f64)> {
                (0..n)
                    .map(|p| {
                        let k = (p / LATTICE_STEP).min(stops.len().saturating_sub(2));
                        let (a, b) = (stops[k], stops[(k + 1).min(stops.len() - 1)]);
                        let t = if b > a {
                            (p - a) as f64 / (b - a) as f64
                        } else {
                            0.0
                        };
                        (k, t)
                    })
                    .collect()
            };
            let (cspan, rspan) = (spans(&cols, width), spans(&rows, height));
            let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
            // One pixel row: the lattice interpolated to it once, then one
            // lerp per pixel between its two lattice columns.
            let mut row = vec![(0.0, 0.0); nc];
            for &(kr, tr) in &rspan {
                let (r0, r1) = (kr.min(rows.len() - 1), (kr + 1).min(rows.len() - 1));
                for (c, v) in row.iter_mut().enumerate() {
                    let (a, b) = (lat[r0 * nc + c], lat[r1 * nc + c]);
                    *v = (lerp(a.0, b.0, tr), lerp(a.1, b.1, tr));
                }
                for &(kc, tc) in &cspan {
                    let (a, b) = (row[kc.min(nc - 1)], row[(kc + 1).min(nc - 1)]);
                    let (x, y) = (lerp(a.0, b.0, tc), lerp(a.1, b.1, tc));
                    out.push(if affine.is_none() {
                        index(x, y)
                    } else if (-0.5..=fi_max).contains(&x) && (-0.5..=fj_max).contains(&y) {
                        (y as f32, x as f32)
                    } else {
                        (f32::NAN, f32::NAN)
                    });
                }
            }
        }
        // Part of the view does not project (e.g. beyond a pole): exact per pixel.
        None => {
            for r in 0..height {
                for c in 0..width {
                    out.push(match native(c as f64 + 0.5, r as f64 + 0.5) {
                        Some((x, y)) => index(x, y),
                        None => (f32::NAN, f32::NAN),
                    });
                }
            }
        }
    }
    out
}

/// The value at a fractional cell index: bilinear between the four nearest
/// centres when all are valid, else the nearest cell; NaN off the grid.
pub fn sample(data: &Array2<f32>, fj: f32, fi: f32, how: Sampling) -> f32 {
    let data = data.as_standard_layout();
    let (ny, nx) = data.dim();
    sample_rows(data.as_slice().unwrap_or(&[]), ny, nx, fj, fi, how)
}

/// [`sample`] on a row-major slice of `ny` x `nx` values (the per-pixel
/// inner loop of every render, so no per-access bounds arithmetic of ndarray).
#[inline]
fn sample_rows(data: &[f32], ny: usize, nx: usize, fj: f32, fi: f32, how: Sampling) -> f32 {
    if !(fj.is_finite() && fi.is_finite()) || data.len() < ny * nx || ny == 0 || nx == 0 {
        return f32::NAN;
    }
    // Float-to-int casts saturate (negative → 0) and truncate, which is
    // floor here and, after adding 0.5, round; unlike f32::floor/round they
    // compile to single instructions on baseline x86-64, in the hottest loop.
    let nearest = || {
        let j = ((fj + 0.5) as usize).min(ny - 1);
        let i = ((fi + 0.5) as usize).min(nx - 1);
        data[j * nx + i]
    };
    if how == Sampling::Nearest || ny < 2 || nx < 2 {
        return nearest();
    }
    let j0 = (fj as usize).min(ny - 2);
    let i0 = (fi as usize).min(nx - 2);
    let tj = (fj - j0 as f32).clamp(0.0, 1.0);
    let ti = (fi - i0 as f32).clamp(0.0, 1.0);
    let k = j0 * nx + i0;
    let (a, b, c, d) = (data[k], data[k + 1], data[k + nx], data[k + nx + 1]);
    if !(a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite()) {
        return nearest();
    }
    let top = a + (b - a) * ti;
    let bottom = c + (d - c) * ti;
    top + (bottom - top) * tj
}

/// RGBA pixels of a field in a view. `background` fills pixels without data
/// (alpha 0 for a transparent image).
pub fn render_rgba(
    grid: &Grid,
    data: &Array2<f32>,
    view: &dyn View,
    style: &Style,
    how: Sampling,
    background: [u8; 4],
) -> Vec<u8> {
    let (width, height) = view.size();
    let (w, h) = (width as usize, height as usize);
    let idx = cell_indices(grid, view, w, h);
    let bands = style.bands.clamp(2, 256);
    let lut: Vec<[u8; 4]> = style
        .palette
        .lut(bands)
        .iter()
        .map(|c| [c[0], c[1], c[2], 255])
        .collect();
    let (lo, hi) = style.range;
    let scale = (bands - 1) as f64 / (hi - lo);
    let paint = |out: OutOfRange, end: [u8; 4]| -> [u8; 4] {
        match out {
            OutOfRange::Extend => end,
            OutOfRange::Transparent => background,
            OutOfRange::Color(c) => [c[0], c[1], c[2], 255],
        }
    };
    // Decided once, not per pixel.
    let (below, above) = (
        paint(style.below, lut[0]),
        paint(style.above, lut[bands - 1]),
    );
    let values = data.as_standard_layout();
    let (ny, nx) = values.dim();
    let values = values.as_slice().unwrap_or(&[]);
    let mut rgba = vec![0u8; w * h * 4];
    for (px, &(fj, fi)) in rgba.chunks_exact_mut(4).zip(&idx) {
        let v = f64::from(sample_rows(values, ny, nx, fj, fi, how));
        let colour = if !v.is_finite() {
            background
        } else if v < lo {
            below
        } else if v > hi {
            above
        } else {
            // Same rounding as finecast-render's maps, so colours agree.
            // lo <= v <= hi, so this is round-half-up of a non-negative value.
            lut[(((v - lo) * scale + 0.5) as usize).min(bands - 1)]
        };
        px.copy_from_slice(&colour);
    }
    rgba
}

/// JPEG bytes (quality 90) of an RGBA buffer, its alpha dropped (the
/// caller fills transparent pixels with a background first).
pub fn encode_jpeg_rgba(rgba: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let side = |n: u32| {
        u16::try_from(n)
            .map_err(|_| format!("{width}x{height} px is too large for JPEG (65535 px a side)"))
    };
    let (w, h) = (side(width)?, side(height)?);
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| format!("JPEG encoding: {e}"))?;
    Ok(out)
}

/// PNG bytes of an RGBA buffer.
pub fn encode_png_rgba(
    rgba: &[u8],
    width: u32,
    height: u32,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    // Tiles are mostly flat colour runs: fast compression is nearly as small.
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgba)?;
    writer.finish()?;
    Ok(out)
}

/// A fully transparent PNG.
pub fn transparent_png(width: u32, height: u32) -> Vec<u8> {
    encode_png_rgba(
        &vec![0u8; width as usize * height as usize * 4],
        width,
        height,
    )
    .unwrap_or_default()
}

/// Parse `0xRRGGBB` or `#RRGGBB`.
pub fn parse_color(s: &str) -> Option<[u8; 3]> {
    let hex = s
        .trim()
        .strip_prefix("0x")
        .or_else(|| s.trim().strip_prefix("0X"))
        .or_else(|| s.trim().strip_prefix('#'))?;
    if hex.len() != 6 {
        return None;
    }
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mercator_round_trips() {
        for (lon, lat) in [(0.0, 0.0), (8.5, 47.3), (-120.0, -33.0)] {
            let (x, y) = lonlat_to_mercator(lon, lat);
            let (lo, la) = mercator_to_lonlat(x, y);
            assert!((lo - lon).abs() < 1e-9 && (la - lat).abs() < 1e-9);
        }
        let t = MercatorView::tile(0, 0, 0).bounds_lonlat();
        assert!((t.0 + 180.0).abs() < 1e-9 && (t.3 - MERCATOR_MAX_LAT).abs() < 1e-6);
    }

    #[test]
    fn lattice_matches_exact_projection() {
        let region = finecast_grid::Region::new(45.5, 48.0, 5.8, 10.6).expect("region");
        let grid = Grid::equal_area_for_region(&region, 3000.0).expect("grid");
        let view = LonLatView {
            west: 5.0,
            south: 45.0,
            east: 11.0,
            north: 48.5,
            width: 300,
            height: 200,
        };
        // The view is wider than the grid: pixels off it must be NaN.
        assert!(grid.affine_index().is_some(), "the fast path is tested");
        let idx = cell_indices(&grid, &view, 300, 200);
        let (mut worst, mut off, mut disagree) = (0.0f64, 0, 0);
        for (k, &(fj, fi)) in idx.iter().enumerate() {
            let (px, py) = ((k % 300) as f64 + 0.5, (k / 300) as f64 + 0.5);
            let (lon, lat) = view.lonlat(px, py).expect("inside");
            match (grid.locate(lon, lat), fj.is_finite()) {
                (Some((ej, ei)), true) => {
                    worst = worst
                        .max((ej - f64::from(fj)).abs())
                        .max((ei - f64::from(fi)).abs())
                }
                (None, false) => off += 1,
                // Only where the lattice's 0.01-cell error straddles the edge.
                _ => disagree += 1,
            }
        }
        assert!(worst < 0.01, "lattice error {worst} cells");
        assert!(off > 1000, "{off} pixels off the grid");
        assert!(
            disagree < 30,
            "{disagree} pixels disagree on being on the grid"
        );
    }

    #[test]
    fn bilinear_falls_back_to_nearest_next_to_missing_cells() {
        let a = ndarray::array![[0.0f32, 10.0], [f32::NAN, 30.0]];
        assert_eq!(sample(&a, 0.0, 0.5, Sampling::Nearest), 10.0); // rounds half away
        assert_eq!(sample(&a, 0.2, 0.2, Sampling::Bilinear), 0.0);
        let b = ndarray::array![[0.0f32, 10.0], [20.0, 30.0]];
        assert!((sample(&b, 0.5, 0.5, Sampling::Bilinear) - 15.0).abs() < 1e-6);
        assert!(sample(&b, f32::NAN, 0.5, Sampling::Bilinear).is_nan());
    }
}
