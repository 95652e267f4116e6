//! Conversion of the physical quantities finecast works with to canonical SI
//! units.
//!
//! The quantity is decided by the CF `standard_name` first and by the variable
//! name only when there is no standard name, because names such as `t` or `pr`
//! are ambiguous across conventions while standard names are not.
//!
//! Quantities outside the supported set pass through unchanged, with one
//! exception: `land_area_fraction` given in percent is converted to the CF
//! canonical unit `1` (scale 0.01) so that land fractions from different
//! sources can be compared directly.

/// The units of a supported physical quantity were not recognised.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("variable '{var}': {quantity} units '{units}' are not recognised (accepted: {accepted})")]
pub struct UnitError {
    /// The variable whose units were not recognised.
    pub var: String,
    /// The quantity it was taken to be: "temperature", "wind",
    /// "precipitation amount", "precipitation flux", "altitude" or "pressure".
    pub quantity: &'static str,
    /// The units attribute as found, or "(no units attribute)".
    pub units: String,
    /// Comma-separated examples of accepted units (one spelling per
    /// conversion, e.g. "k, degc, degf").
    pub accepted: String,
}

/// A physical quantity with a canonical SI unit and the units accepted for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quantity {
    Temperature,
    WindSpeed,
    PrecipitationAmount,
    PrecipitationFlux,
    Altitude,
    Pressure,
}

impl Quantity {
    fn describe(self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::WindSpeed => "wind",
            Quantity::PrecipitationAmount => "precipitation amount",
            Quantity::PrecipitationFlux => "precipitation flux",
            Quantity::Altitude => "altitude",
            Quantity::Pressure => "pressure",
        }
    }

    fn si_units(self) -> &'static str {
        match self {
            Quantity::Temperature => "K",
            Quantity::WindSpeed => "m s-1",
            Quantity::PrecipitationAmount => "kg m-2",
            Quantity::PrecipitationFlux => "kg m-2 s-1",
            Quantity::Altitude => "m",
            Quantity::Pressure => "Pa",
        }
    }

    /// `(accepted spellings after normalisation, scale, offset)`: SI = value * scale + offset.
    fn conversions(self) -> &'static [(&'static [&'static str], f64, f64)] {
        const KNOT: f64 = 1852.0 / 3600.0;
        const DEGF_SCALE: f64 = 5.0 / 9.0;
        const DEGF_OFFSET: f64 = 273.15 - 32.0 * 5.0 / 9.0;
        match self {
            Quantity::Temperature => &[
                (
                    &[
                        "k",
                        "kelvin",
                        "kelvins",
                        "degk",
                        "deg_k",
                        "degree_k",
                        "degrees_k",
                        "°k",
                    ],
                    1.0,
                    0.0,
                ),
                (
                    &[
                        "degc",
                        "deg_c",
                        "deg c",
                        "degree_c",
                        "degrees_c",
                        "degree_celsius",
                        "degrees_celsius",
                        "degree celsius",
                        "degrees celsius",
                        "celsius",
                        "°c",
                        "c",
                    ],
                    1.0,
                    273.15,
                ),
                (
                    &[
                        "degf",
                        "deg_f",
                        "deg f",
                        "degree_f",
                        "degrees_f",
                        "degree_fahrenheit",
                        "degrees_fahrenheit",
                        "degree fahrenheit",
                        "degrees fahrenheit",
                        "fahrenheit",
                        "°f",
                        "f",
                    ],
                    DEGF_SCALE,
                    DEGF_OFFSET,
                ),
            ],
            Quantity::WindSpeed => &[
                (
                    &[
                        "m s-1",
                        "m/s",
                        "ms-1",
                        "m sec-1",
                        "meter/second",
                        "meters/second",
                        "metre/second",
                        "metres/second",
                        "meters per second",
                        "metres per second",
                    ],
                    1.0,
                    0.0,
                ),
                (&["knots", "knot", "kt", "kts", "kn"], KNOT, 0.0),
                (
                    &["km/h", "km h-1", "kmh", "kph", "km/hr", "km hr-1"],
                    1.0 / 3.6,
                    0.0,
                ),
                (
                    &[
                        "mph",
                        "mi/h",
                        "mi h-1",
                        "miles/hour",
                        "mile/hour",
                        "miles per hour",
                    ],
                    0.44704,
                    0.0,
                ),
            ],
            Quantity::PrecipitationAmount => &[
                (&["kg m-2", "kg/m2"], 1.0, 0.0),
                (
                    &[
                        "mm",
                        "millimeter",
                        "millimeters",
                        "millimetre",
                        "millimetres",
                    ],
                    1.0,
                    0.0,
                ),
                // Depth of liquid water: 1 m of water is 1000 kg m-2.
                (
                    &[
                        "m",
                        "meter",
                        "meters",
                        "metre",
                        "metres",
                        "m of water equivalent",
                    ],
                    1000.0,
                    0.0,
                ),
                (
                    &[
                        "cm",
                        "centimeter",
                        "centimeters",
                        "centimetre",
                        "centimetres",
                    ],
                    10.0,
                    0.0,
                ),
                (&["in", "inch", "inches"], 25.4, 0.0),
            ],
            Quantity::PrecipitationFlux => &[
                (
                    &["kg m-2 s-1", "kg/m2/s", "kg m-2s-1", "kg/(m2 s)"],
                    1.0,
                    0.0,
                ),
                (&["mm/s", "mm s-1", "mm/sec"], 1.0, 0.0),
                (
                    &["mm/h", "mm h-1", "mm/hr", "mm hr-1", "mm/hour"],
                    1.0 / 3600.0,
                    0.0,
                ),
                (
                    &["mm/day", "mm d-1", "mm day-1", "mm/d"],
                    1.0 / 86400.0,
                    0.0,
                ),
                // Liquid-water-equivalent rate.
                (&["m s-1", "m/s"], 1000.0, 0.0),
            ],
            Quantity::Altitude => &[
                (
                    &["m", "meter", "meters", "metre", "metres", "m asl", "gpm"],
                    1.0,
                    0.0,
                ),
                (
                    &["km", "kilometer", "kilometers", "kilometre", "kilometres"],
                    1000.0,
                    0.0,
                ),
                (&["ft", "feet", "foot"], 0.3048, 0.0),
            ],
            Quantity::Pressure => &[
                (&["pa", "pascal", "pascals"], 1.0, 0.0),
                (
                    &["hpa", "mb", "mbar", "millibar", "millibars", "hectopascal"],
                    100.0,
                    0.0,
                ),
                (&["kpa", "kilopascal"], 1000.0, 0.0),
            ],
        }
    }
}

const TEMPERATURE_STANDARD_NAMES: &[&str] = &[
    "air_temperature",
    "dew_point_temperature",
    "surface_temperature",
    "sea_surface_temperature",
    "soil_temperature",
    "virtual_temperature",
    "wet_bulb_temperature",
    "air_potential_temperature",
];
const WIND_STANDARD_NAMES: &[&str] = &[
    "eastward_wind",
    "northward_wind",
    "x_wind",
    "y_wind",
    "wind_speed",
    "wind_speed_of_gust",
];
const AMOUNT_STANDARD_NAMES: &[&str] = &[
    "precipitation_amount",
    "lwe_thickness_of_precipitation_amount",
    "thickness_of_rainfall_amount",
    "rainfall_amount",
];
const FLUX_STANDARD_NAMES: &[&str] = &[
    "precipitation_flux",
    "rainfall_flux",
    "lwe_precipitation_rate",
    "rainfall_rate",
];
const ALTITUDE_STANDARD_NAMES: &[&str] = &["surface_altitude", "height", "altitude"];
const PRESSURE_STANDARD_NAMES: &[&str] = &[
    "surface_air_pressure",
    "air_pressure_at_mean_sea_level",
    "air_pressure_at_sea_level",
    "air_pressure",
];

const TEMPERATURE_NAMES: &[&str] = &[
    "t2m", "d2m", "tmax", "tmin", "tmean", "tavg", "tsk", "t", "t2", "td", "td2m", "2t", "2d",
    "tas", "tasmax", "tasmin", "tdps", "temp", "tmp", "dpt", "skt", "sst", "dewpoint",
];
const WIND_NAMES: &[&str] = &[
    "u10", "v10", "u100", "v100", "u", "v", "uas", "vas", "10u", "10v", "100u", "100v", "ws",
    "wspd", "wind", "sfcwind", "gust", "fg10", "i10fg", "ugrd", "vgrd",
];
const AMOUNT_NAMES: &[&str] = &["tp", "ppt", "apcp", "precip", "prcp", "rain", "tot_prec"];
const FLUX_NAMES: &[&str] = &["prate", "pr", "precip_rate", "rr", "tprate"];
const ALTITUDE_NAMES: &[&str] = &[
    "orog",
    "hgt",
    "height",
    "elev",
    "elevation",
    "hsurf",
    "topo",
    "z_sfc",
    "zs",
    "surface_altitude",
];
const PRESSURE_NAMES: &[&str] = &["sp", "ps", "psfc", "msl", "mslp", "prmsl", "pres", "slp"];

/// The supported quantity of a variable, if any: by standard name, else by name.
pub(crate) fn quantity_of(var: &str, standard_name: Option<&str>) -> Option<Quantity> {
    let by_table = |key: &str, tables: [(&[&str], Quantity); 6]| {
        tables
            .iter()
            .find(|(names, _)| names.contains(&key))
            .map(|(_, q)| *q)
    };
    if let Some(sn) = standard_name.map(str::trim).filter(|s| !s.is_empty()) {
        return by_table(
            sn,
            [
                (TEMPERATURE_STANDARD_NAMES, Quantity::Temperature),
                (WIND_STANDARD_NAMES, Quantity::WindSpeed),
                (AMOUNT_STANDARD_NAMES, Quantity::PrecipitationAmount),
                (FLUX_STANDARD_NAMES, Quantity::PrecipitationFlux),
                (ALTITUDE_STANDARD_NAMES, Quantity::Altitude),
                (PRESSURE_STANDARD_NAMES, Quantity::Pressure),
            ],
        );
    }
    let name = var.trim().to_ascii_lowercase();
    by_table(
        &name,
        [
            (TEMPERATURE_NAMES, Quantity::Temperature),
            (WIND_NAMES, Quantity::WindSpeed),
            (AMOUNT_NAMES, Quantity::PrecipitationAmount),
            (FLUX_NAMES, Quantity::PrecipitationFlux),
            (ALTITUDE_NAMES, Quantity::Altitude),
            (PRESSURE_NAMES, Quantity::Pressure),
        ],
    )
}

/// Lower-case, unify exponent and product notation (`m s**-1`, `m s^-1`,
/// `m.s-1`, `m*s-1` all become `m s-1`) and collapse whitespace.
fn normalise_units(units: &str) -> String {
    let lowered = units
        .trim()
        .to_lowercase()
        .replace("**", "")
        .replace('^', "")
        .replace(['.', '*'], " ");
    lowered.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Canonical SI units of a variable and the linear conversion to them:
/// `si = value * scale + offset`.
///
/// Supported quantities (decided by `standard_name`, else by the variable
/// name) are temperature (K), wind (m s-1), precipitation amount (kg m-2),
/// precipitation flux (kg m-2 s-1), altitude (m) and pressure (Pa). Their
/// units must be recognised, otherwise a [`UnitError`] names the variable and
/// the units. Any other variable passes through with its own units (and scale
/// 1, offset 0), except `land_area_fraction` in percent, which becomes `1`.
pub fn to_si(
    var: &str,
    standard_name: Option<&str>,
    units: &str,
) -> Result<(String, f64, f64), UnitError> {
    let normalised = normalise_units(units);
    let Some(quantity) = quantity_of(var, standard_name) else {
        if standard_name == Some("land_area_fraction")
            && (normalised == "%" || normalised == "percent")
        {
            return Ok(("1".to_string(), 0.01, 0.0));
        }
        return Ok((units.trim().to_string(), 1.0, 0.0));
    };
    let conversions = quantity.conversions();
    for (spellings, scale, offset) in conversions {
        if spellings.contains(&normalised.as_str()) {
            return Ok((quantity.si_units().to_string(), *scale, *offset));
        }
    }
    let accepted = conversions
        .iter()
        .filter_map(|(spellings, _, _)| spellings.first())
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    Err(UnitError {
        var: var.to_string(),
        quantity: quantity.describe(),
        units: if units.trim().is_empty() {
            "(no units attribute)".to_string()
        } else {
            units.to_string()
        },
        accepted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn convert(var: &str, sn: Option<&str>, units: &str, value: f64) -> (String, f64) {
        let (si, scale, offset) = to_si(var, sn, units).expect("convertible");
        (si, value * scale + offset)
    }

    #[test]
    fn celsius_and_fahrenheit_to_kelvin() {
        for spelling in ["degC", "°C", "celsius", "deg_C", "degrees_Celsius", "C"] {
            let (si, v) = convert("t2m", Some("air_temperature"), spelling, 20.0);
            assert_eq!(si, "K");
            assert_abs_diff_eq!(v, 293.15, epsilon = 1e-9);
        }
        let (_, v) = convert("tmax", None, "degF", 212.0);
        assert_abs_diff_eq!(v, 373.15, epsilon = 1e-9);
        let (_, v) = convert("tmin", None, "fahrenheit", -40.0);
        assert_abs_diff_eq!(v, 233.15, epsilon = 1e-9);
        let (si, v) = convert("whatever", Some("dew_point_temperature"), "K", 280.0);
        assert_eq!((si.as_str(), v), ("K", 280.0));
    }

    #[test]
    fn wind_units() {
        let (si, v) = convert("u10", None, "knots", 10.0);
        assert_eq!(si, "m s-1");
        assert_abs_diff_eq!(v, 5.144_444, epsilon = 1e-6);
        let (_, v) = convert("u10", Some("eastward_wind"), "m s**-1", 3.0);
        assert_abs_diff_eq!(v, 3.0);
        let (_, v) = convert("ws", None, "km/h", 36.0);
        assert_abs_diff_eq!(v, 10.0, epsilon = 1e-12);
        let (_, v) = convert("v10", Some("northward_wind"), "mph", 1.0);
        assert_abs_diff_eq!(v, 0.44704);
        let (_, v) = convert("v10", Some("y_wind"), "m/s", 1.5);
        assert_abs_diff_eq!(v, 1.5);
    }

    #[test]
    fn precipitation_units() {
        let (si, v) = convert("tp", Some("precipitation_amount"), "mm", 2.5);
        assert_eq!((si.as_str(), v), ("kg m-2", 2.5));
        let (_, v) = convert("tp", None, "m", 0.0025);
        assert_abs_diff_eq!(v, 2.5, epsilon = 1e-12);
        let (_, v) = convert("ppt", None, "cm", 1.0);
        assert_abs_diff_eq!(v, 10.0);
        let (si, v) = convert("prate", None, "mm/h", 3.6);
        assert_eq!(si, "kg m-2 s-1");
        assert_abs_diff_eq!(v, 0.001, epsilon = 1e-15);
        let (_, v) = convert("prate", Some("precipitation_flux"), "kg m-2 s-1", 1e-4);
        assert_abs_diff_eq!(v, 1e-4);
    }

    #[test]
    fn altitude_and_pressure_units() {
        let (si, v) = convert("orog", None, "ft", 1000.0);
        assert_eq!(si, "m");
        assert_abs_diff_eq!(v, 304.8, epsilon = 1e-9);
        let (_, v) = convert("elev", Some("surface_altitude"), "km", 1.2);
        assert_abs_diff_eq!(v, 1200.0, epsilon = 1e-9);
        let (si, v) = convert("sp", None, "hPa", 1013.25);
        assert_eq!(si, "Pa");
        assert_abs_diff_eq!(v, 101_325.0, epsilon = 1e-9);
        let (_, v) = convert("msl", None, "mb", 1000.0);
        assert_abs_diff_eq!(v, 100_000.0);
    }

    #[test]
    fn standard_name_takes_precedence_over_name() {
        // `t` with a wind standard name is wind, not temperature.
        let (si, _, _) = to_si("t", Some("eastward_wind"), "knots").expect("wind");
        assert_eq!(si, "m s-1");
        // A variable named like a temperature with an unrelated standard name passes through.
        let (si, scale, offset) = to_si("tmp", Some("relative_humidity"), "%").expect("pass");
        assert_eq!((si.as_str(), scale, offset), ("%", 1.0, 0.0));
    }

    #[test]
    fn other_quantities_pass_through() {
        assert_eq!(
            to_si("minrh", Some("relative_humidity"), "%").expect("pass"),
            ("%".to_string(), 1.0, 0.0)
        );
        assert_eq!(
            to_si("lsm", Some("land_binary_mask"), "1").expect("pass"),
            ("1".to_string(), 1.0, 0.0)
        );
        assert_eq!(
            to_si("sftlf", Some("land_area_fraction"), "%").expect("percent"),
            ("1".to_string(), 0.01, 0.0)
        );
        assert_eq!(
            to_si("sftlf", Some("land_area_fraction"), "1").expect("fraction"),
            ("1".to_string(), 1.0, 0.0)
        );
    }

    #[test]
    fn unknown_units_are_an_error_naming_variable_and_units() {
        let err = to_si("t2m", Some("air_temperature"), "furlongs").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t2m") && msg.contains("furlongs") && msg.contains("temperature"));
        let err = to_si("tp", None, "").unwrap_err();
        assert!(err.to_string().contains("no units attribute"), "{err}");
        assert!(to_si("sp", None, "psi").is_err());
    }
}
