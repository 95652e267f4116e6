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
            towgs84: None,
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
        towgs84: None,
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
    // Projections only: a latitude_longitude grid's coordinates are taken as
    // they are (see `finecast_grid::Earth::towgs84`).
    let earth_or_wgs84 = || -> Result<Earth, String> {
        let mut earth = earth.unwrap_or_else(|| {
            tracing::warn!(
                "grid mapping '{mapping}' does not give the figure of the Earth; assuming WGS84"
            );
            Earth::WGS84
        });
        earth.towgs84 = datum_shift(attrs, &earth)?;
        Ok(earth)
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
                earth: earth_or_wgs84()?,
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
                earth: earth_or_wgs84()?,
            }
        }
        "lambert_azimuthal_equal_area" => Crs::LambertAzimuthalEqualArea {
            longitude_of_projection_origin: required(attrs, m, "longitude_of_projection_origin")?,
            latitude_of_projection_origin: required(attrs, m, "latitude_of_projection_origin")?,
            false_easting: fe,
            false_northing: fn_,
            earth: earth_or_wgs84()?,
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
                earth: earth_or_wgs84()?,
            }
        }
        "transverse_mercator" => {
            let scale = required(attrs, m, "scale_factor_at_central_meridian")?;
            if !(scale.is_finite() && scale > 0.0 && scale <= 1.1) {
                return Err(format!(
                    "transverse_mercator scale_factor_at_central_meridian {scale} is not a scale factor near 1"
                ));
            }
            Crs::TransverseMercator {
                scale_factor_at_central_meridian: scale,
                longitude_of_central_meridian: required(attrs, m, "longitude_of_central_meridian")?,
                latitude_of_projection_origin: required(attrs, m, "latitude_of_projection_origin")?,
                false_easting: fe,
                false_northing: fn_,
                earth: earth_or_wgs84()?,
            }
        }
        other => return Err(format!("grid_mapping_name '{other}' is not supported")),
    };
    Ok(crs)
}

/// A national datum finecast can shift to WGS84 when a file names it but
/// gives no parameters.
struct KnownDatum {
    /// Lower-case fragments of the names files use for it (WKT `DATUM`, CF
    /// `horizontal_datum_name`).
    names: &'static [&'static str],
    /// Semi-major axis of its ellipsoid: the name alone is not trusted.
    semi_major_axis: f64,
    towgs84: [f64; 7],
}

/// OSGB36 -> WGS84, EPSG:1314 ("OSGB36 to WGS 84 (6)", position vector,
/// about 2 m), as PROJ applies it without the OSTN15 grid.
const KNOWN_DATUMS: [KnownDatum; 1] = [KnownDatum {
    names: &[
        "ordnance survey of great britain 1936",
        "osgb 1936",
        "osgb_1936",
        "osgb36",
    ],
    semi_major_axis: 6_377_563.396,
    towgs84: [446.448, -125.157, 542.06, 0.15, 0.247, 0.842, -20.489],
}];

/// Datums whose difference from WGS84 (under 2 m) is below what a 1 km grid
/// resolves, so naming them without a shift is no cause for a warning.
const NEAR_WGS84: [&str; 7] = [
    "wgs",
    "world geodetic system",
    "etrs",
    "european terrestrial reference",
    "nad83",
    "north american datum 1983",
    "grs",
];

/// The shift of a grid mapping's datum to WGS84: CF `towgs84`, else a WKT1
/// `TOWGS84[...]` in `crs_wkt`, else the published parameters of a datum the
/// WKT or `horizontal_datum_name` names (OSGB36). `None` (with a warning when
/// an ellipsoid's datum other than a WGS84 realisation is named) means the
/// grid's latitudes and longitudes are taken as WGS84.
fn datum_shift(attrs: &Attrs, earth: &Earth) -> Result<Option<[f64; 7]>, String> {
    if let Some(attr) = attrs.get("towgs84") {
        let values = attr
            .numbers()
            .ok_or("towgs84 must be 3 or 7 numbers, not text")?;
        return helmert(values).map(Some);
    }
    let wkt = attrs.get("crs_wkt").and_then(Attr::text).unwrap_or("");
    if let Some(values) = wkt_towgs84(wkt)? {
        return helmert(&values).map(Some);
    }
    let name = attrs
        .get("horizontal_datum_name")
        .and_then(Attr::text)
        .map(str::to_string)
        .or_else(|| wkt_datum_name(wkt));
    let Some(name) = name else { return Ok(None) };
    let lower = name.to_ascii_lowercase();
    let known = KNOWN_DATUMS.iter().find(|d| {
        d.names.iter().any(|n| lower.contains(n))
            && (earth.semi_major_axis - d.semi_major_axis).abs() < 0.01
    });
    if let Some(datum) = known {
        return Ok(Some(datum.towgs84));
    }
    // A sphere is a weather model's figure, not a geodetic datum: nothing to
    // warn about (the RADOLAN grid names its sphere's datum "unknown").
    if !earth.is_sphere() && !NEAR_WGS84.iter().any(|n| lower.contains(n)) {
        tracing::warn!(
            "datum '{name}' comes with no shift to WGS84 (towgs84); its latitudes and longitudes are used as WGS84, which can be off by up to a few hundred metres"
        );
    }
    Ok(None)
}

/// A Helmert shift from 3 (translation only) or 7 CF `towgs84` values.
fn helmert(values: &[f64]) -> Result<[f64; 7], String> {
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(format!("towgs84 has a non-finite value {bad}"));
    }
    match values {
        [dx, dy, dz] => Ok([*dx, *dy, *dz, 0.0, 0.0, 0.0, 0.0]),
        [_, _, _, _, _, _, _] => {
            let mut out = [0.0; 7];
            out.copy_from_slice(values);
            Ok(out)
        }
        other => Err(format!(
            "towgs84 must have 3 or 7 values, not {}",
            other.len()
        )),
    }
}

/// The numbers of a WKT1 `TOWGS84[...]` clause, if there is one.
fn wkt_towgs84(wkt: &str) -> Result<Option<Vec<f64>>, String> {
    let upper = wkt.to_ascii_uppercase();
    let Some(start) = upper.find("TOWGS84[") else {
        return Ok(None);
    };
    let body = &wkt[start + "TOWGS84[".len()..];
    let body = &body[..body.find(']').ok_or("crs_wkt has an unclosed TOWGS84[")?];
    body.split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| format!("crs_wkt TOWGS84 value '{}' is not a number", v.trim()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The name in the first `DATUM["..."` of a WKT (1 or 2).
fn wkt_datum_name(wkt: &str) -> Option<String> {
    let upper = wkt.to_ascii_uppercase();
    let start = upper.find("DATUM[\"")? + "DATUM[\"".len();
    let rest = &wkt[start..];
    Some(rest[..rest.find('"')?].to_string())
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
        let a = attrs(&[("grid_mapping_name", text("sinusoidal"))]);
        assert!(crs_from_grid_mapping(&a)
            .unwrap_err()
            .contains("sinusoidal"));
        let a = attrs(&[
            ("grid_mapping_name", text("transverse_mercator")),
            ("longitude_of_central_meridian", num(-2.0)),
            ("latitude_of_projection_origin", num(49.0)),
        ]);
        assert!(crs_from_grid_mapping(&a)
            .unwrap_err()
            .contains("scale_factor_at_central_meridian"));
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

    /// The British National Grid's attributes as HadUK-Grid files carry them.
    fn british_national_grid(extra: &[(&str, Attr)]) -> Attrs {
        let mut a = attrs(&[
            ("grid_mapping_name", text("transverse_mercator")),
            ("semi_major_axis", num(6_377_563.396)),
            ("inverse_flattening", num(299.324_964_6)),
            ("latitude_of_projection_origin", num(49.0)),
            ("longitude_of_central_meridian", num(-2.0)),
            ("false_easting", num(400_000.0)),
            ("false_northing", num(-100_000.0)),
            ("scale_factor_at_central_meridian", num(0.999_601_271_7)),
        ]);
        a.extend(attrs(extra));
        a
    }

    fn shift_of(a: &Attrs) -> Option<[f64; 7]> {
        crs_from_grid_mapping(a).expect("tm").earth().towgs84
    }

    #[test]
    fn transverse_mercator_and_its_datum_shift() {
        let osgb36 = [446.448, -125.157, 542.06, 0.15, 0.247, 0.842, -20.489];
        let Crs::TransverseMercator {
            scale_factor_at_central_meridian,
            longitude_of_central_meridian,
            false_northing,
            earth,
            ..
        } = crs_from_grid_mapping(&british_national_grid(&[])).expect("bng")
        else {
            panic!("wrong variant")
        };
        assert_eq!(scale_factor_at_central_meridian, 0.999_601_271_7);
        assert_eq!(longitude_of_central_meridian, -2.0);
        assert_eq!(false_northing, -100_000.0);
        // Nothing names the datum: no shift.
        assert_eq!(earth.towgs84, None);
        // The WKT names OSGB36 (as the HadUK-Grid files do): EPSG:1314.
        let wkt = r#"PROJCRS["OSGB36 / British National Grid",BASEGEOGCRS["OSGB36",DATUM["Ordnance Survey of Great Britain 1936",ELLIPSOID["Airy 1830",6377563.396,299.3249646]]]]"#;
        assert_eq!(
            shift_of(&british_national_grid(&[("crs_wkt", text(wkt))])),
            Some(osgb36)
        );
        assert_eq!(
            shift_of(&british_national_grid(&[(
                "horizontal_datum_name",
                text("OSGB_1936")
            )])),
            Some(osgb36)
        );
        // The name alone on another ellipsoid is not trusted.
        let mut wrong_ellipsoid = british_national_grid(&[("crs_wkt", text(wkt))]);
        wrong_ellipsoid.insert("semi_major_axis".into(), num(6_378_137.0));
        wrong_ellipsoid.insert("inverse_flattening".into(), num(298.257_223_563));
        assert_eq!(shift_of(&wrong_ellipsoid), None);
        // A CF towgs84 attribute wins, 3 values are a translation.
        let given = Attr::Numbers {
            values: vec![375.0, -111.0, 431.0],
            float: true,
        };
        assert_eq!(
            shift_of(&british_national_grid(&[
                ("crs_wkt", text(wkt)),
                ("towgs84", given)
            ])),
            Some([375.0, -111.0, 431.0, 0.0, 0.0, 0.0, 0.0])
        );
        // A WKT1 TOWGS84 clause.
        let wkt1 = r#"PROJCS["x",GEOGCS["y",DATUM["Some_Datum",SPHEROID["Airy 1830",6377563.396,299.3249646],TOWGS84[1,2,3,0.1,0.2,0.3,4]]]]"#;
        assert_eq!(
            shift_of(&british_national_grid(&[("crs_wkt", text(wkt1))])),
            Some([1.0, 2.0, 3.0, 0.1, 0.2, 0.3, 4.0])
        );
        // Bad shifts are errors that name the attribute.
        let four = Attr::Numbers {
            values: vec![1.0, 2.0, 3.0, 4.0],
            float: true,
        };
        assert!(
            crs_from_grid_mapping(&british_national_grid(&[("towgs84", four)]))
                .unwrap_err()
                .contains("towgs84")
        );
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
