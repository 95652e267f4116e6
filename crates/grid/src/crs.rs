//! Coordinate reference systems as CF grid mappings, with forward and inverse transforms.
//!
//! Projected systems go through `proj4rs` (a pure-Rust port of PROJ). The
//! latitude/longitude system of each projection is taken on the *same* figure of
//! the Earth, with no datum shift, because weather models define their 2-D
//! latitudes on the sphere or ellipsoid they were run on. A projection whose
//! [`Earth`] carries a datum shift (`towgs84`, e.g. the British National Grid
//! on OSGB36) reports WGS84 longitudes and latitudes instead, so that its cells
//! meet WGS84 terrain, masks and lat/lon grids where they really are; a
//! `latitude_longitude` grid's own coordinates are always taken as they are.
//! Rotated pole is a pure rotation of the sphere, which proj4rs does not
//! provide (`ob_tran`), so it is written out here.

use serde::{Deserialize, Serialize};

use crate::GridError;

/// The figure of the Earth a CRS is defined on and, where known, how its
/// datum sits relative to WGS84.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Earth {
    /// Semi-major axis in metres.
    pub semi_major_axis: f64,
    /// Inverse flattening; 0 means a sphere.
    pub inverse_flattening: f64,
    /// Helmert (Bursa-Wolf, position-vector) shift from this datum to WGS84,
    /// as CF's `towgs84`: dx, dy, dz (m), rx, ry, rz (arc-seconds), scale
    /// (ppm). With a shift, a grid's geographic coordinates are WGS84; without
    /// one they are latitudes and longitudes on this figure itself, which is
    /// what weather models mean (they have no datum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub towgs84: Option<[f64; 7]>,
}

impl Earth {
    /// The WGS84 ellipsoid (a = 6 378 137 m, 1/f = 298.257 223 563), no datum shift.
    pub const WGS84: Earth = Earth {
        semi_major_axis: 6_378_137.0,
        inverse_flattening: 298.257_223_563,
        towgs84: None,
    };

    /// A sphere of `radius` metres (inverse flattening 0), no datum shift, as
    /// CF's `earth_radius`.
    pub fn sphere(radius: f64) -> Earth {
        Earth {
            semi_major_axis: radius,
            inverse_flattening: 0.0,
            towgs84: None,
        }
    }

    /// Whether this figure is a sphere (inverse flattening exactly 0); CF
    /// writes spheres as `earth_radius`, ellipsoids as `semi_major_axis` plus
    /// `inverse_flattening`.
    pub fn is_sphere(&self) -> bool {
        self.inverse_flattening == 0.0
    }

    fn proj_params(&self) -> String {
        let figure = if self.is_sphere() {
            format!("+R={}", self.semi_major_axis)
        } else {
            format!(
                "+a={} +rf={}",
                self.semi_major_axis, self.inverse_flattening
            )
        };
        match self.towgs84 {
            Some(p) => format!("{figure} +towgs84={}", p.map(|v| v.to_string()).join(",")),
            None => figure,
        }
    }

    /// The PROJ parameters of the geographic system a grid on this figure
    /// reports longitudes and latitudes in (see [`Earth::towgs84`]).
    fn geographic_proj(&self) -> String {
        if self.towgs84.is_some() {
            "+proj=longlat +ellps=WGS84 +towgs84=0,0,0 +no_defs".to_string()
        } else {
            format!("+proj=longlat {} +no_defs", self.proj_params())
        }
    }
}

/// A CF grid mapping. Native coordinates are degrees for `LatLon` and
/// `RotatedPole`, metres for the projections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "grid_mapping_name", rename_all = "snake_case")]
pub enum Crs {
    /// CF `latitude_longitude`: x is longitude and y latitude in degrees on
    /// `earth` (no projection).
    #[serde(rename = "latitude_longitude")]
    LatLon {
        /// Figure of the Earth the longitudes and latitudes are on.
        earth: Earth,
    },
    /// CF `rotated_latitude_longitude` (COSMO, ICON-LAM, HARMONIE-style
    /// rotated grids): x is rotated longitude and y rotated latitude, in
    /// degrees, on a sphere whose pole has been moved. The sphere is fixed at
    /// radius 6 371 229 m (see [`Crs::earth`]).
    #[serde(rename = "rotated_latitude_longitude")]
    RotatedPole {
        /// Geographic latitude of the rotated grid's north pole (degrees).
        grid_north_pole_latitude: f64,
        /// Geographic longitude of the rotated grid's north pole (degrees).
        grid_north_pole_longitude: f64,
        /// Rotated longitude of the geographic north pole (degrees; CF
        /// default, and almost always, 0).
        north_pole_grid_longitude: f64,
    },
    /// CF `lambert_conformal_conic` (HRRR, AROME, many national LAMs):
    /// native x/y in metres.
    LambertConformalConic {
        /// The two standard parallels (degrees); equal for a tangent cone
        /// (CF's single-valued `standard_parallel`).
        standard_parallel: (f64, f64),
        /// Longitude (degrees) along which the cone's y axis points north.
        longitude_of_central_meridian: f64,
        /// Latitude (degrees) of the origin of y (before `false_northing`).
        latitude_of_projection_origin: f64,
        /// Added to every x coordinate (m).
        false_easting: f64,
        /// Added to every y coordinate (m).
        false_northing: f64,
        /// Figure of the Earth the projection is defined on.
        earth: Earth,
    },
    /// CF `polar_stereographic` (polar and some national grids): native x/y
    /// in metres.
    PolarStereographic {
        /// Longitude (degrees) of the meridian that runs straight up the y
        /// axis from the pole.
        straight_vertical_longitude_from_pole: f64,
        /// +90 or -90.
        latitude_of_projection_origin: f64,
        /// Latitude of true scale; when absent `scale_factor_at_projection_origin` is used.
        standard_parallel: Option<f64>,
        /// Scale factor at the pole (dimensionless); used only when
        /// `standard_parallel` is absent, and taken as 1 when both are.
        scale_factor_at_projection_origin: Option<f64>,
        /// Added to every x coordinate (m).
        false_easting: f64,
        /// Added to every y coordinate (m).
        false_northing: f64,
        /// Figure of the Earth the projection is defined on.
        earth: Earth,
    },
    /// CF `lambert_azimuthal_equal_area`: the output grid finecast builds for
    /// a region (see [`crate::Grid::equal_area_for_region`]), with native x/y
    /// in metres and cells of equal area.
    LambertAzimuthalEqualArea {
        /// Longitude (degrees) of the projection centre.
        longitude_of_projection_origin: f64,
        /// Latitude (degrees) of the projection centre.
        latitude_of_projection_origin: f64,
        /// Added to every x coordinate (m).
        false_easting: f64,
        /// Added to every y coordinate (m).
        false_northing: f64,
        /// Figure of the Earth the projection is defined on.
        earth: Earth,
    },
    /// CF `mercator` (tropical model grids): native x/y in metres.
    Mercator {
        /// Longitude (degrees) of the projection's central meridian (x = 0).
        longitude_of_projection_origin: f64,
        /// Latitude of true scale (degrees), PROJ's `lat_ts`.
        standard_parallel: f64,
        /// Added to every x coordinate (m).
        false_easting: f64,
        /// Added to every y coordinate (m).
        false_northing: f64,
        /// Figure of the Earth the projection is defined on.
        earth: Earth,
    },
    /// Transverse Mercator: national grids (British National Grid,
    /// Gauss-Krüger) and UTM zones (see [`Crs::utm`]).
    TransverseMercator {
        /// Scale factor on the central meridian (dimensionless; 0.9996 for
        /// UTM).
        scale_factor_at_central_meridian: f64,
        /// Longitude (degrees) of the central meridian.
        longitude_of_central_meridian: f64,
        /// Latitude (degrees) of the origin of y (before `false_northing`).
        latitude_of_projection_origin: f64,
        /// Added to every x coordinate (m; 500 000 for UTM).
        false_easting: f64,
        /// Added to every y coordinate (m; 10 000 000 for southern UTM zones).
        false_northing: f64,
        /// Figure of the Earth (and datum shift, e.g. OSGB36) of the grid.
        earth: Earth,
    },
}

/// A value of a CF grid-mapping attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A character attribute (e.g. `proj4_params`).
    Text(String),
    /// A scalar numeric attribute (e.g. `false_easting`, `earth_radius`).
    Number(f64),
    /// A numeric vector attribute (a two-parallel `standard_parallel`,
    /// `towgs84`).
    Numbers(Vec<f64>),
}

impl Crs {
    /// Plain longitude/latitude in degrees on the WGS84 ellipsoid: the CRS of
    /// [`crate::Grid::regular_latlon`] and of most global model output.
    pub fn wgs84() -> Crs {
        Crs::LatLon {
            earth: Earth::WGS84,
        }
    }

    /// UTM zone `zone` (1..=60) of the northern or southern hemisphere.
    pub fn utm(zone: u8, north: bool, earth: Earth) -> Result<Crs, GridError> {
        if !(1..=60).contains(&zone) {
            return Err(GridError::Projection(format!(
                "UTM zone {zone} is not in 1..=60"
            )));
        }
        Ok(Crs::TransverseMercator {
            scale_factor_at_central_meridian: 0.9996,
            longitude_of_central_meridian: f64::from(zone) * 6.0 - 183.0,
            latitude_of_projection_origin: 0.0,
            false_easting: 500_000.0,
            false_northing: if north { 0.0 } else { 10_000_000.0 },
            earth,
        })
    }

    /// The CF `grid_mapping_name`.
    pub fn grid_mapping_name(&self) -> &'static str {
        match self {
            Crs::LatLon { .. } => "latitude_longitude",
            Crs::RotatedPole { .. } => "rotated_latitude_longitude",
            Crs::LambertConformalConic { .. } => "lambert_conformal_conic",
            Crs::PolarStereographic { .. } => "polar_stereographic",
            Crs::LambertAzimuthalEqualArea { .. } => "lambert_azimuthal_equal_area",
            Crs::Mercator { .. } => "mercator",
            Crs::TransverseMercator { .. } => "transverse_mercator",
        }
    }

    /// True when native coordinates are degrees of (rotated) longitude/latitude.
    pub fn is_angular(&self) -> bool {
        matches!(self, Crs::LatLon { .. } | Crs::RotatedPole { .. })
    }

    /// The figure of the Earth (and datum shift) the CRS is defined on.
    pub fn earth(&self) -> Earth {
        match self {
            Crs::LatLon { earth }
            | Crs::LambertConformalConic { earth, .. }
            | Crs::PolarStereographic { earth, .. }
            | Crs::LambertAzimuthalEqualArea { earth, .. }
            | Crs::Mercator { earth, .. }
            | Crs::TransverseMercator { earth, .. } => *earth,
            Crs::RotatedPole { .. } => Earth::sphere(6_371_229.0),
        }
    }

    /// A PROJ string describing this CRS (written as `proj4_params`).
    pub fn proj4(&self) -> String {
        let e = self.earth().proj_params();
        match self {
            Crs::LatLon { .. } => format!("+proj=longlat {e} +no_defs"),
            Crs::RotatedPole {
                grid_north_pole_latitude,
                grid_north_pole_longitude,
                north_pole_grid_longitude,
            } => format!(
                "+proj=ob_tran +o_proj=longlat +o_lat_p={grid_north_pole_latitude} +o_lon_p={north_pole_grid_longitude} +lon_0={} {e} +no_defs",
                grid_north_pole_longitude + 180.0
            ),
            Crs::LambertConformalConic {
                standard_parallel: (lat1, lat2),
                longitude_of_central_meridian,
                latitude_of_projection_origin,
                false_easting,
                false_northing,
                ..
            } => format!(
                "+proj=lcc +lat_1={lat1} +lat_2={lat2} +lat_0={latitude_of_projection_origin} +lon_0={longitude_of_central_meridian} +x_0={false_easting} +y_0={false_northing} {e} +units=m +no_defs"
            ),
            Crs::PolarStereographic {
                straight_vertical_longitude_from_pole,
                latitude_of_projection_origin,
                standard_parallel,
                scale_factor_at_projection_origin,
                false_easting,
                false_northing,
                ..
            } => {
                let scale = match (standard_parallel, scale_factor_at_projection_origin) {
                    (Some(lat_ts), _) => format!("+lat_ts={lat_ts}"),
                    (None, Some(k)) => format!("+k_0={k}"),
                    (None, None) => "+k_0=1".to_string(),
                };
                format!(
                    "+proj=stere +lat_0={latitude_of_projection_origin} +lon_0={straight_vertical_longitude_from_pole} {scale} +x_0={false_easting} +y_0={false_northing} {e} +units=m +no_defs"
                )
            }
            Crs::LambertAzimuthalEqualArea {
                longitude_of_projection_origin,
                latitude_of_projection_origin,
                false_easting,
                false_northing,
                ..
            } => format!(
                "+proj=laea +lat_0={latitude_of_projection_origin} +lon_0={longitude_of_projection_origin} +x_0={false_easting} +y_0={false_northing} {e} +units=m +no_defs"
            ),
            Crs::Mercator {
                longitude_of_projection_origin,
                standard_parallel,
                false_easting,
                false_northing,
                ..
            } => format!(
                "+proj=merc +lon_0={longitude_of_projection_origin} +lat_ts={standard_parallel} +x_0={false_easting} +y_0={false_northing} {e} +units=m +no_defs"
            ),
            Crs::TransverseMercator {
                scale_factor_at_central_meridian,
                longitude_of_central_meridian,
                latitude_of_projection_origin,
                false_easting,
                false_northing,
                ..
            } => format!(
                "+proj=tmerc +lat_0={latitude_of_projection_origin} +lon_0={longitude_of_central_meridian} +k_0={scale_factor_at_central_meridian} +x_0={false_easting} +y_0={false_northing} {e} +units=m +no_defs"
            ),
        }
    }

    /// CF attributes of the grid-mapping variable (besides `grid_mapping_name`).
    pub fn cf_attributes(&self) -> Vec<(&'static str, AttrValue)> {
        use AttrValue::{Number as N, Numbers};
        let mut out: Vec<(&'static str, AttrValue)> = match self {
            Crs::LatLon { .. } => vec![],
            Crs::RotatedPole {
                grid_north_pole_latitude,
                grid_north_pole_longitude,
                north_pole_grid_longitude,
            } => vec![
                ("grid_north_pole_latitude", N(*grid_north_pole_latitude)),
                ("grid_north_pole_longitude", N(*grid_north_pole_longitude)),
                ("north_pole_grid_longitude", N(*north_pole_grid_longitude)),
            ],
            Crs::LambertConformalConic {
                standard_parallel: (a, b),
                longitude_of_central_meridian,
                latitude_of_projection_origin,
                false_easting,
                false_northing,
                ..
            } => vec![
                ("standard_parallel", Numbers(vec![*a, *b])),
                (
                    "longitude_of_central_meridian",
                    N(*longitude_of_central_meridian),
                ),
                (
                    "latitude_of_projection_origin",
                    N(*latitude_of_projection_origin),
                ),
                ("false_easting", N(*false_easting)),
                ("false_northing", N(*false_northing)),
            ],
            Crs::PolarStereographic {
                straight_vertical_longitude_from_pole,
                latitude_of_projection_origin,
                standard_parallel,
                scale_factor_at_projection_origin,
                false_easting,
                false_northing,
                ..
            } => {
                let mut v = vec![
                    (
                        "straight_vertical_longitude_from_pole",
                        N(*straight_vertical_longitude_from_pole),
                    ),
                    (
                        "latitude_of_projection_origin",
                        N(*latitude_of_projection_origin),
                    ),
                    ("false_easting", N(*false_easting)),
                    ("false_northing", N(*false_northing)),
                ];
                if let Some(s) = standard_parallel {
                    v.push(("standard_parallel", N(*s)));
                }
                if let Some(k) = scale_factor_at_projection_origin {
                    v.push(("scale_factor_at_projection_origin", N(*k)));
                }
                v
            }
            Crs::LambertAzimuthalEqualArea {
                longitude_of_projection_origin,
                latitude_of_projection_origin,
                false_easting,
                false_northing,
                ..
            } => vec![
                (
                    "longitude_of_projection_origin",
                    N(*longitude_of_projection_origin),
                ),
                (
                    "latitude_of_projection_origin",
                    N(*latitude_of_projection_origin),
                ),
                ("false_easting", N(*false_easting)),
                ("false_northing", N(*false_northing)),
            ],
            Crs::Mercator {
                longitude_of_projection_origin,
                standard_parallel,
                false_easting,
                false_northing,
                ..
            } => vec![
                (
                    "longitude_of_projection_origin",
                    N(*longitude_of_projection_origin),
                ),
                ("standard_parallel", N(*standard_parallel)),
                ("false_easting", N(*false_easting)),
                ("false_northing", N(*false_northing)),
            ],
            Crs::TransverseMercator {
                scale_factor_at_central_meridian,
                longitude_of_central_meridian,
                latitude_of_projection_origin,
                false_easting,
                false_northing,
                ..
            } => vec![
                (
                    "scale_factor_at_central_meridian",
                    N(*scale_factor_at_central_meridian),
                ),
                (
                    "longitude_of_central_meridian",
                    N(*longitude_of_central_meridian),
                ),
                (
                    "latitude_of_projection_origin",
                    N(*latitude_of_projection_origin),
                ),
                ("false_easting", N(*false_easting)),
                ("false_northing", N(*false_northing)),
            ],
        };
        let earth = self.earth();
        if earth.is_sphere() {
            out.push(("earth_radius", N(earth.semi_major_axis)));
        } else {
            out.push(("semi_major_axis", N(earth.semi_major_axis)));
            out.push(("inverse_flattening", N(earth.inverse_flattening)));
        }
        if let Some(shift) = earth.towgs84 {
            out.push(("towgs84", Numbers(shift.to_vec())));
        }
        out.push(("proj4_params", AttrValue::Text(self.proj4())));
        out
    }
}

/// Forward/inverse transform between geographic lon/lat (degrees) and native coordinates.
#[derive(Clone)]
pub(crate) enum Transformer {
    Identity,
    Rotated {
        sin_p: f64,
        cos_p: f64,
        lon_shift: f64,
        grid_lon: f64,
    },
    Proj {
        geo: Box<proj4rs::Proj>,
        native: Box<proj4rs::Proj>,
    },
}

impl Transformer {
    pub(crate) fn new(crs: &Crs) -> Result<Transformer, GridError> {
        match crs {
            Crs::LatLon { .. } => Ok(Transformer::Identity),
            Crs::RotatedPole {
                grid_north_pole_latitude,
                grid_north_pole_longitude,
                north_pole_grid_longitude,
            } => {
                let p = grid_north_pole_latitude.to_radians();
                Ok(Transformer::Rotated {
                    sin_p: p.sin(),
                    cos_p: p.cos(),
                    lon_shift: grid_north_pole_longitude + 180.0,
                    grid_lon: *north_pole_grid_longitude,
                })
            }
            _ => {
                let bad = |e: proj4rs::errors::Error| {
                    GridError::Projection(format!("{}: {e}", crs.proj4()))
                };
                let native = proj4rs::Proj::from_proj_string(&crs.proj4()).map_err(bad)?;
                let geo =
                    proj4rs::Proj::from_proj_string(&crs.earth().geographic_proj()).map_err(bad)?;
                Ok(Transformer::Proj {
                    geo: Box::new(geo),
                    native: Box::new(native),
                })
            }
        }
    }

    /// Geographic (lon, lat) degrees to native coordinates. `None` where undefined.
    pub(crate) fn forward(&self, lon: f64, lat: f64) -> Option<(f64, f64)> {
        match self {
            Transformer::Identity => Some((lon, lat)),
            Transformer::Rotated {
                sin_p,
                cos_p,
                lon_shift,
                grid_lon,
            } => {
                // Rotate about the polar axis so the grid pole sits at longitude 180,
                // then about the y axis so it becomes the rotated north pole.
                let (lam, phi) = ((lon - lon_shift).to_radians(), lat.to_radians());
                let (x, y, z) = (phi.cos() * lam.cos(), phi.cos() * lam.sin(), phi.sin());
                let xr = x * sin_p + z * cos_p;
                let zr = -x * cos_p + z * sin_p;
                let rlon = y.atan2(xr).to_degrees() + grid_lon;
                Some((wrap180(rlon), zr.clamp(-1.0, 1.0).asin().to_degrees()))
            }
            Transformer::Proj { geo, native } => {
                let mut p = (lon.to_radians(), lat.to_radians(), 0.0);
                proj4rs::transform::transform(geo, native, &mut p).ok()?;
                (p.0.is_finite() && p.1.is_finite()).then_some((p.0, p.1))
            }
        }
    }

    /// Native coordinates to geographic (lon, lat) degrees.
    pub(crate) fn inverse(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        match self {
            Transformer::Identity => Some((x, y)),
            Transformer::Rotated {
                sin_p,
                cos_p,
                lon_shift,
                grid_lon,
            } => {
                let (lam, phi) = ((x - grid_lon).to_radians(), y.to_radians());
                let (xr, yr, zr) = (phi.cos() * lam.cos(), phi.cos() * lam.sin(), phi.sin());
                let xg = xr * sin_p - zr * cos_p;
                let zg = xr * cos_p + zr * sin_p;
                let lon = yr.atan2(xg).to_degrees() + lon_shift;
                Some((wrap180(lon), zg.clamp(-1.0, 1.0).asin().to_degrees()))
            }
            Transformer::Proj { geo, native } => {
                let mut p = (x, y, 0.0);
                proj4rs::transform::transform(native, geo, &mut p).ok()?;
                (p.0.is_finite() && p.1.is_finite())
                    .then_some((wrap180(p.0.to_degrees()), p.1.to_degrees()))
            }
        }
    }
}

/// Longitude into [-180, 180).
pub fn wrap180(lon: f64) -> f64 {
    (lon + 180.0).rem_euclid(360.0) - 180.0
}
