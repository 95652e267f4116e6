//! Single-band float32 GeoTIFF of a field, resampled to a regular EPSG:4326
//! (lon/lat) grid. Geographic output works for every source CRS and opens
//! in any GIS without a user-defined projection; the resampling is bilinear
//! at about the run's own resolution.

use std::io::Cursor;

use finecast_grid::Grid;
use ndarray::Array2;
use tiff::encoder::{colortype, TiffEncoder};
use tiff::tags::Tag;

use crate::raster::{cell_indices, sample, LonLatView, Sampling};

/// The lon/lat raster of a GeoTIFF: `(west, north)` is the outer corner of
/// the first pixel.
#[derive(Debug, Clone, Copy)]
pub struct GeoRaster {
    /// Longitude of the left edge, degrees.
    pub west: f64,
    /// Latitude of the top edge, degrees.
    pub north: f64,
    /// Pixel width, degrees of longitude.
    pub dlon: f64,
    /// Pixel height, degrees of latitude.
    pub dlat: f64,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

impl GeoRaster {
    /// A raster over `(west, south, east, north)` with pixels of about `dx_m`
    /// by `dy_m` metres.
    pub fn covering(bbox: (f64, f64, f64, f64), dx_m: f64, dy_m: f64) -> GeoRaster {
        let (w, s, e, n) = bbox;
        let mid = ((s + n) / 2.0).to_radians().cos().max(0.01);
        let dlat = (dy_m / 111_320.0).max(1e-6);
        let dlon = (dx_m / (111_320.0 * mid)).max(1e-6);
        let width = ((e - w) / dlon).ceil().max(1.0) as u32;
        let height = ((n - s) / dlat).ceil().max(1.0) as u32;
        GeoRaster {
            west: w,
            north: n,
            dlon: (e - w) / f64::from(width),
            dlat: (n - s) / f64::from(height),
            width,
            height,
        }
    }

    /// Number of pixels, to check against `--max-bbox-cells`.
    pub fn cells(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// The field `data` on `grid` sampled bilinearly at every pixel centre of
/// `r`, row-major from the north-west (NaN off the grid).
pub fn resample(grid: &Grid, data: &Array2<f32>, r: &GeoRaster) -> Vec<f32> {
    let view = LonLatView {
        west: r.west,
        east: r.west + r.dlon * f64::from(r.width),
        north: r.north,
        south: r.north - r.dlat * f64::from(r.height),
        width: r.width,
        height: r.height,
    };
    cell_indices(grid, &view, r.width as usize, r.height as usize)
        .into_iter()
        .map(|(fj, fi)| sample(data, fj, fi, Sampling::Bilinear))
        .collect()
}

/// Encode a GeoTIFF with GeoKeys for EPSG:4326 (pixel-is-area) and NaN as
/// the GDAL no-data value.
pub fn encode(
    values: &[f32],
    r: &GeoRaster,
    description: &str,
) -> Result<Vec<u8>, tiff::TiffError> {
    let mut buf = Cursor::new(Vec::new());
    {
        let mut enc = TiffEncoder::new(&mut buf)?;
        let mut image = enc.new_image::<colortype::Gray32Float>(r.width, r.height)?;
        let e = image.encoder();
        e.write_tag(Tag::ModelPixelScaleTag, &[r.dlon, r.dlat, 0.0][..])?;
        e.write_tag(
            Tag::ModelTiepointTag,
            &[0.0, 0.0, 0.0, r.west, r.north, 0.0][..],
        )?;
        // GeoKeyDirectory: version 1.1.0, 3 keys: model type geographic,
        // raster type pixel-is-area, geographic CRS EPSG:4326.
        let keys: [u16; 16] = [1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326];
        e.write_tag(Tag::GeoKeyDirectoryTag, &keys[..])?;
        e.write_tag(Tag::GdalNodata, "nan")?;
        e.write_tag(Tag::ImageDescription, description)?;
        image.write_data(values)?;
    }
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiff::decoder::{Decoder, DecodingResult};

    #[test]
    fn geotiff_is_georeferenced_and_north_up() {
        // A lat/lon field whose value is the latitude: row 0 of the TIFF must
        // be the northernmost.
        let grid = Grid::regular_latlon(5.0, 0.1, 40, 45.0, 0.1, 30).expect("grid");
        let data = Array2::from_shape_fn((30, 40), |(j, _)| 45.0 + 0.1 * j as f32);
        let r = GeoRaster::covering((5.5, 45.5, 8.0, 47.5), 11_000.0, 11_000.0);
        let values = resample(&grid, &data, &r);
        let bytes = encode(&values, &r, "t2m").expect("encode");
        let mut dec = Decoder::new(Cursor::new(bytes)).expect("decoder");
        let (w, h) = dec.dimensions().expect("dims");
        assert_eq!((w, h), (r.width, r.height));
        let scale = dec.get_tag_f64_vec(Tag::ModelPixelScaleTag).expect("scale");
        let tie = dec
            .get_tag_f64_vec(Tag::ModelTiepointTag)
            .expect("tiepoint");
        let keys = dec
            .get_tag_u16_vec(Tag::GeoKeyDirectoryTag)
            .expect("geokeys");
        assert!(
            (scale[0] - r.dlon).abs() < 1e-12
                && (tie[3] - 5.5).abs() < 1e-12
                && (tie[4] - 47.5).abs() < 1e-12
        );
        assert!(keys.windows(4).any(|k| k == [2048, 0, 1, 4326]));
        let DecodingResult::F32(px) = dec.read_image().expect("read") else {
            panic!("not float32")
        };
        let (top, bottom) = (
            px[w as usize / 2],
            px[(h as usize - 1) * w as usize + w as usize / 2],
        );
        assert!(top > bottom, "north-up: top {top} bottom {bottom}");
        assert!(
            (f64::from(top) - (47.5 - r.dlat / 2.0)).abs() < 0.02,
            "top row value {top}"
        );
    }
}
