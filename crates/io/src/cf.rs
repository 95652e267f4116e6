//! CF conventions independent of the file library: grid-mapping attributes to
//! [`Crs`], the figure of the Earth, coordinate units, longitude unwrapping.

use std::collections::BTreeMap;

use finecast_grid::{Crs, Earth};

/// A NetCDF attribute value reduced to what CF decoding needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attr {
    Text(String),
    /// Numbers, with whether the attribute had a floating-point type.
    Numbers {
        values: Vec<f64>,
        float: bool,
    },
}

impl Attr {
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Attr::Text(s) => Some(s),
            Attr::Numbers { .. } => None,
        }
    }

    pub(crate) fn numbers(&self) -> Option<&[f64]> {
        match self {
            Attr::Numbers { values, .. } => Some(values),
            // Some writers store numbers as text; CF does not, so do not guess.
            Attr::Text(_) => None,
        }
    }

    pub(crate) fn number(&self) -> Option<f64> {
        self.numbers().and_then(|v| v.first().copied())
    }
}

/// Attributes of one variable, by name.
pub(crate) type Attrs = BTreeMap<String, Attr>;

fn number(attrs: &Attrs, name: &str) -> Option<f64> {
    attrs.get(name).and_then(Attr::number)
}

fn required(attrs: &Attrs, mapping: &str, name: &str) -> Result<f64, String> {
    number(attrs, name)
        .ok_or_else(|| format!("grid mapping '{mapping}' lacks the numeric attribute '{name}'"))
}

/// The figure of the Earth from CF attributes, if any is given.
pub(crate) fn earth_from_attrs(attrs: &Attrs) -> Result<Option<Earth>, String> {
    if let Some(r) = number(attrs, "earth_radius") {
        return positive_radius(r, "earth_radius").map(|r| Some(Earth::sphere(r)));
    }
    let Some(a) = number(attrs, "semi_major_axis") else {
        return Ok(None);
    };
    let a = positive_radius(a, "semi_major_axis")?;
    if let Some(rf) = number(attrs, "inverse_flattening") {
        if rf == 0.0 {
            return Ok(Some(Earth::sphere(a)));
        }
        if !(rf.is_finite() && rf > 1.0) {
            return Err(format!("inverse_flattening {rf} is not a valid value"));
        }
        return Ok(Some(Earth {
            semi_major_axis: a,
            inverse_flattening: rf,
        }));
    }
    if let Some(b) = number(attrs, "semi_minor_axis") {
        return earth_from_axes(a, b).map(Some);
    }
    Ok(Some(Earth::sphere(a)))
}

/// Earth from semi-major and semi-minor axes (metres).
pub(crate) fn earth_from_axes(a: f64, b: f64) -> Result<Earth, String> {
    let a = positive_radius(a, "semi_major_axis")?;
    let b = positive_radius(b, "semi_minor_axis")?;
    if b > a {
        return Err(format!("semi_minor_axis {b} exceeds semi_major_axis {a}"));
    }
    if a == b {
        return Ok(Earth::sphere(a));
    }
    Ok(Earth {
        semi_major_axis: a,
        inverse_flattening: a / (a - b),
    })
}

fn positive_radius(r: f64, what: &str) -> Result<f64, String> {
    // Catch radii given in km as well as nonsense.
    if r.is_finite() && (6.0e6..7.0e6).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{what} {r} is not an Earth radius in metres"))
    }
}

/// A [`Crs`] from a CF grid-mapping variable's attributes.
pub(crate) fn crs_from_grid_mapping(attrs: &Attrs) -> Result<Crs, String> {
    let mapping = attrs
        .get("grid_mapping_name")
        .and_then(Attr::text)
        .map(|s| s.trim().to_string())
        .ok_or("the grid-mapping variable has no text attribute 'grid_mapping_name'")?;
    let earth = earth_from_attrs(attrs)?;
    let earth_or_wgs84 = || {
        earth.unwrap_or_else(|| {
            tracing::warn!(
                "grid mapping '{mapping}' does not give the figure of the Earth; assuming WGS84"
            );
            Earth::WGS84
        })
    };
    let fe = number(attrs, "false_easting").unwrap_or(0.0);
    let fn_ = number(attrs, "false_northing").unwrap_or(0.0);
    let m = mapping.as_str();
    let crs = match m {
        "latitude_longitude" => Crs::LatLon {
            earth: earth.unwrap_or(Earth::WGS84),
        },
        "rotated_latitude_longitude" => Crs::RotatedPole {
            grid_north_pole_latitude: required(attrs, m, "grid_north_pole_latitude")?,
            grid_north_pole_longitude: required(attrs, m, "grid_north_pole_longitude")?,
            north_pole_grid_longitude: number(attrs, "north_pole_grid_longitude").unwrap_or(0.0),
        },
        "lambert_conformal_conic" => {
            let parallels = attrs
                .get("standard_parallel")
                .and_then(Attr::numbers)
                .ok_or_else(|| format!("grid mapping '{m}' lacks 'standard_parallel'"))?;
            let standard_parallel = match parallels {
                [one] => (*one, *one),
                [first, second] => (*first, *second),
                other => {
                    return Err(format!(
                        "standard_parallel must have 1 or 2 values, not {}",
                        other.len()
                    ))
                }
            };
            Crs::LambertConformalConic {
                standard_parallel,
                longitude_of_central_meridian: required(attrs, m, "longitude_of_central_meridian")?,
                latitude_of_projection_origin: required(attrs, m, "latitude_of_projection_origin")?,
                false_easting: fe,
                false_northing: fn_,
                earth: earth_or_wgs84(),
            }
        }
        "polar_stereographic" => {
            let origin = required(attrs, m, "latitude_of_projection_origin")?;
            if (origin.abs() - 90.0).abs() > 1e-9 {
                return Err(format!(
                    "polar_stereographic latitude_of_projection_origin must be +90 or -90, not {origin}"
                ));
            }
            let straight = number(attrs, "straight_vertical_longitude_from_pole")
                .or_else(|| number(attrs, "longitude_of_projection_origin"))
                .ok_or_else(|| {
                    format!("grid mapping '{m}' lacks 'straight_vertical_longitude_from_pole'")
                })?;
            let standard_parallel = number(attrs, "standard_parallel");
            let scale = number(attrs, "scale_factor_at_projection_origin");
            if standard_parallel.is_none() && scale.is_none() {
                return Err(format!(
                    "grid mapping '{m}' needs 'standard_parallel' or 'scale_factor_at_projection_origin'"
                ));
            }
            Crs::PolarStereographic {
                straight_vertical_longitude_from_pole: straight,
                latitude_of_projection_origin: origin,
                standard_parallel,
                scale_factor_at_projection_origin: if standard_parallel.is_some() {
                    None
                } else {
                    scale
                },
                false_easting: fe,
                false_northing: fn_,
                earth: earth_or_wgs84(),
            }
        }
        "lambert_azimuthal_equal_area" => Crs::LambertAzimuthalEqualArea {
            longitude_of_projection_origin: required(attrs, m, "longitude_of_projection_origin")?,
            latitude_of_projection_origin: required(attrs, m, "latitude_of_projection_origin")?,
            false_easting: fe,
            false_northing: fn_,
            earth: earth_or_wgs84(),
        },
        "mercator" => {
            let standard_parallel = match (
                number(attrs, "standard_parallel"),
                number(attrs, "scale_factor_at_projection_origin"),
            ) {
                (Some(lat_ts), _) => lat_ts,
                // Scale k0 at the equator is cos(lat_ts) on the sphere; the
                // ellipsoidal difference is below 0.2 % of the latitude.
                (None, Some(k0)) if (0.0..=1.0).contains(&k0) => k0.acos().to_degrees(),
                _ => {
                    return Err(format!(
                        "grid mapping '{m}' needs 'standard_parallel' or 'scale_factor_at_projection_origin'"
                    ))
                }
            };
            Crs::Mercator {
                longitude_of_projection_origin: required(
                    attrs,
                    m,
                    "longitude_of_projection_origin",
                )?,
                standard_parallel,
                false_easting: fe,
                false_northing: fn_,
                earth: earth_or_wgs84(),
            }
        }
        other => return Err(format!("grid_mapping_name '{other}' is not supported")),
    };
    Ok(crs)
}

/// Scale from the units of a projection coordinate to metres.
pub(crate) fn metres_per_unit(units: Option<&str>) -> Result<f64, String> {
    let Some(units) = units.map(|u| u.trim().to_ascii_lowercase()) else {
        tracing::warn!("projection coordinate has no units; assuming metres");
        return Ok(1.0);
    };
    match units.as_str() {
        "m" | "meter" | "meters" | "metre" | "metres" | "" => Ok(1.0),
        "km" | "kilometer" | "kilometers" | "kilometre" | "kilometres" => Ok(1000.0),
        other => Err(format!(
            "projection coordinate units '{other}' are not metres or kilometres"
        )),
    }
}

/// Is this coordinate a geographic longitude (by units or standard name)?
pub(crate) fn is_longitude(units: Option<&str>, standard_name: Option<&str>) -> bool {
    standard_name == Some("longitude")
        || units.is_some_and(|u| {
            matches!(
                u.trim(),
                "degrees_east" | "degree_east" | "degree_E" | "degrees_E" | "degreeE" | "degreesE"
            )
        })
}

/// Is this coordinate a geographic latitude (by units or standard name)?
pub(crate) fn is_latitude(units: Option<&str>, standard_name: Option<&str>) -> bool {
    standard_name == Some("latitude")
        || units.is_some_and(|u| {
            matches!(
                u.trim(),
                "degrees_north"
                    | "degree_north"
                    | "degree_N"
                    | "degrees_N"
                    | "degreeN"
                    | "degreesN"
            )
        })
}

/// Make longitudes continuous: a jump of more than 180 degrees between
/// neighbours (e.g. 179.5 -> -179.5 across the antimeridian) is undone by
/// shifting everything after it by 360.
pub(crate) fn unwrap_longitudes(lon: &mut [f64]) {
    let mut shift = 0.0;
    for k in 1..lon.len() {
        let previous = lon[k - 1];
        let mut current = lon[k] + shift;
        let step = current - previous;
        if step < -180.0 {
            shift += 360.0;
            current += 360.0;
        } else if step > 180.0 {
            shift -= 360.0;
            current -= 360.0;
        }
        lon[k] = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(items: &[(&str, Attr)]) -> Attrs {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
    fn num(v: f64) -> Attr {
        Attr::Numbers {
            values: vec![v],
            float: true,
        }
    }
    fn text(s: &str) -> Attr {
        Attr::Text(s.to_string())
    }

    #[test]
    fn lambert_with_one_standard_parallel() {
        let a = attrs(&[
            ("grid_mapping_name", text("lambert_conformal_conic")),
            ("standard_parallel", num(38.5)),
            ("longitude_of_central_meridian", num(-97.5)),
            ("latitude_of_projection_origin", num(38.5)),
            ("earth_radius", num(6_371_229.0)),
        ]);
        let crs = crs_from_grid_mapping(&a).expect("lcc");
        assert_eq!(
            crs,
            Crs::LambertConformalConic {
                standard_parallel: (38.5, 38.5),
                longitude_of_central_meridian: -97.5,
                latitude_of_projection_origin: 38.5,
                false_easting: 0.0,
                false_northing: 0.0,
                earth: Earth::sphere(6_371_229.0),
            }
        );
    }

    #[test]
    fn polar_stereographic_with_scale_factor_and_ellipsoid() {
        let a = attrs(&[
            ("grid_mapping_name", text("polar_stereographic")),
            ("straight_vertical_longitude_from_pole", num(-45.0)),
            ("latitude_of_projection_origin", num(90.0)),
            ("scale_factor_at_projection_origin", num(0.994)),
            ("semi_major_axis", num(6_378_137.0)),
            ("semi_minor_axis", num(6_356_752.314_245)),
        ]);
        let Crs::PolarStereographic {
            scale_factor_at_projection_origin,
            standard_parallel,
            earth,
            ..
        } = crs_from_grid_mapping(&a).expect("ps")
        else {
            panic!("wrong variant")
        };
        assert_eq!(scale_factor_at_projection_origin, Some(0.994));
        assert_eq!(standard_parallel, None);
        assert!((earth.inverse_flattening - 298.257_223_563).abs() < 1e-3);
    }

    #[test]
    fn rejects_unknown_or_incomplete_mappings() {
        let a = attrs(&[("grid_mapping_name", text("transverse_mercator"))]);
        assert!(crs_from_grid_mapping(&a)
            .unwrap_err()
            .contains("transverse_mercator"));
        let a = attrs(&[
            ("grid_mapping_name", text("lambert_conformal_conic")),
            ("standard_parallel", num(25.0)),
        ]);
        assert!(crs_from_grid_mapping(&a)
            .unwrap_err()
            .contains("longitude_of_central_meridian"));
        let a = attrs(&[
            ("grid_mapping_name", text("latitude_longitude")),
            ("earth_radius", num(6371.0)),
        ]);
        assert!(crs_from_grid_mapping(&a).is_err());
    }

    #[test]
    fn unwraps_antimeridian_jump() {
        let mut lon = vec![170.0, 175.0, 180.0, -175.0, -170.0];
        unwrap_longitudes(&mut lon);
        assert_eq!(lon, vec![170.0, 175.0, 180.0, 185.0, 190.0]);
        let mut lon = vec![-10.0, 0.0, 10.0];
        unwrap_longitudes(&mut lon);
        assert_eq!(lon, vec![-10.0, 0.0, 10.0]);
        let mut lon = vec![-170.0, -175.0, 180.0, 175.0];
        unwrap_longitudes(&mut lon);
        assert_eq!(lon, vec![-170.0, -175.0, -180.0, -185.0]);
    }
}
