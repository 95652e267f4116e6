//! Named colour palettes and fixed default value ranges per variable.
//!
//! Fixed ranges (rather than each map's own min/max) keep maps of the same
//! variable comparable across times, methods and neighbouring tiles.

/// A named colour ramp, linearly interpolated between its stops.
///
/// All built-in palettes are colour-blind safe (ColorBrewer diverging and
/// sequential schemes, a viridis approximation) and avoid the grey used for
/// missing data ([`crate::NO_DATA_RGB`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    /// The palette's name, one of [`Palette::NAMES`] (what
    /// [`Palette::by_name`] accepts).
    pub name: &'static str,
    stops: Vec<[u8; 3]>,
}

/// ColorBrewer RdYlBu, reversed: blue (cold) to red (warm) through pale yellow.
const TEMPERATURE: [[u8; 3]; 11] = [
    [0x31, 0x36, 0x95],
    [0x45, 0x75, 0xb4],
    [0x74, 0xad, 0xd1],
    [0xab, 0xd9, 0xe9],
    [0xe0, 0xf3, 0xf8],
    [0xff, 0xff, 0xbf],
    [0xfe, 0xe0, 0x90],
    [0xfd, 0xae, 0x61],
    [0xf4, 0x6d, 0x43],
    [0xd7, 0x30, 0x27],
    [0xa5, 0x00, 0x26],
];

/// Viridis sampled at 11 points.
const WIND: [[u8; 3]; 11] = [
    [0x44, 0x01, 0x54],
    [0x48, 0x24, 0x75],
    [0x41, 0x44, 0x87],
    [0x35, 0x5f, 0x8d],
    [0x2a, 0x78, 0x8e],
    [0x21, 0x91, 0x8c],
    [0x22, 0xa8, 0x84],
    [0x44, 0xbf, 0x70],
    [0x7a, 0xd1, 0x51],
    [0xbd, 0xdf, 0x26],
    [0xfd, 0xe7, 0x25],
];

/// White (no precipitation) through ColorBrewer Blues into Purples: lightness
/// falls monotonically, so intensity reads correctly without hue vision.
const PRECIPITATION: [[u8; 3]; 9] = [
    [0xff, 0xff, 0xff],
    [0xde, 0xeb, 0xf7],
    [0x9e, 0xca, 0xe1],
    [0x42, 0x92, 0xc6],
    [0x21, 0x71, 0xb5],
    [0x08, 0x51, 0x9c],
    [0x6a, 0x51, 0xa3],
    [0x54, 0x27, 0x8f],
    [0x3f, 0x00, 0x7d],
];

/// ColorBrewer RdBu, reversed, with a pure white centre so zero is neutral.
const DIFFERENCE: [[u8; 3]; 11] = [
    [0x05, 0x30, 0x61],
    [0x21, 0x66, 0xac],
    [0x43, 0x93, 0xc3],
    [0x92, 0xc5, 0xde],
    [0xd1, 0xe5, 0xf0],
    [0xff, 0xff, 0xff],
    [0xfd, 0xdb, 0xc7],
    [0xf4, 0xa5, 0x82],
    [0xd6, 0x60, 0x4d],
    [0xb2, 0x18, 0x2b],
    [0x67, 0x00, 0x1f],
];

/// Green lowlands, yellow and brown uplands, pale summits (ColorBrewer
/// YlGn/YlOrBr hues).
const TERRAIN: [[u8; 3]; 9] = [
    [0x00, 0x68, 0x37],
    [0x31, 0xa3, 0x54],
    [0xad, 0xdd, 0x8e],
    [0xf7, 0xfc, 0xb9],
    [0xfe, 0xc4, 0x4f],
    [0xd9, 0x5f, 0x0e],
    [0x99, 0x34, 0x04],
    [0xe0, 0xd0, 0xc0],
    [0xff, 0xff, 0xff],
];

impl Palette {
    /// Names accepted by [`Palette::by_name`].
    pub const NAMES: [&'static str; 5] = [
        "temperature",
        "wind",
        "precipitation",
        "difference",
        "terrain",
    ];

    /// A built-in palette by name (case-insensitive); see [`Palette::NAMES`].
    pub fn by_name(name: &str) -> Option<Palette> {
        let palette = match name.to_ascii_lowercase().as_str() {
            "temperature" => Palette::from_stops("temperature", &TEMPERATURE),
            "wind" => Palette::from_stops("wind", &WIND),
            "precipitation" => Palette::from_stops("precipitation", &PRECIPITATION),
            "difference" => Palette::from_stops("difference", &DIFFERENCE),
            "terrain" => Palette::from_stops("terrain", &TERRAIN),
            _ => return None,
        };
        Some(palette)
    }

    fn from_stops(name: &'static str, stops: &[[u8; 3]]) -> Palette {
        Palette {
            name,
            stops: stops.to_vec(),
        }
    }

    /// The palette conventionally used for a variable (short name such as
    /// `t2m`, `u10`, `tp`, or a CF standard name). Signed wind components use
    /// the diverging "difference" ramp; unknown variables get "wind" (viridis),
    /// a neutral perceptually uniform default.
    pub fn for_variable(var_or_standard_name: &str) -> Palette {
        match VariableKind::of(var_or_standard_name) {
            VariableKind::Temperature => Palette::from_stops("temperature", &TEMPERATURE),
            VariableKind::WindComponent | VariableKind::Difference => {
                Palette::from_stops("difference", &DIFFERENCE)
            }
            VariableKind::WindSpeed | VariableKind::Other => Palette::from_stops("wind", &WIND),
            VariableKind::Precipitation => Palette::from_stops("precipitation", &PRECIPITATION),
            VariableKind::Orography => Palette::from_stops("terrain", &TERRAIN),
        }
    }

    /// The RGB colours the ramp interpolates between, from the value at the
    /// low end of a range to the high end (evenly spaced).
    pub fn stops(&self) -> &[[u8; 3]] {
        &self.stops
    }

    /// Colour at `t` in `[0, 1]` (clamped; NaN gives the first stop).
    pub fn color(&self, t: f64) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let last = self.stops.len() - 1;
        let pos = t * last as f64;
        let i = (pos.floor() as usize).min(last.saturating_sub(1));
        let frac = pos - i as f64;
        let (a, b) = (self.stops[i], self.stops[(i + 1).min(last)]);
        std::array::from_fn(|c| {
            (f64::from(a[c]) + frac * (f64::from(b[c]) - f64::from(a[c]))).round() as u8
        })
    }

    /// `n` colours evenly spaced from the first stop to the last.
    pub fn lut(&self, n: usize) -> Vec<[u8; 3]> {
        match n {
            0 => Vec::new(),
            1 => vec![self.color(0.0)],
            _ => (0..n)
                .map(|k| self.color(k as f64 / (n - 1) as f64))
                .collect(),
        }
    }
}

/// Broad kinds of variable that share a palette and default range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VariableKind {
    Temperature,
    WindComponent,
    WindSpeed,
    Precipitation,
    Orography,
    Difference,
    Other,
}

impl VariableKind {
    /// Classifies ERA5/GRIB short names, CMIP and PRISM names, WRF names and
    /// CF standard names, falling back to substrings of descriptive names.
    fn of(var: &str) -> VariableKind {
        let v = var.trim().to_ascii_lowercase();
        let has = |parts: &[&str]| parts.iter().any(|p| v.contains(p));
        if v.starts_with("diff") || has(&["_diff", "difference", "error", "bias", "anomaly"]) {
            return VariableKind::Difference;
        }
        match v.as_str() {
            "t2m"
            | "2t"
            | "t2"
            | "t"
            | "tas"
            | "tasmax"
            | "tasmin"
            | "tmax"
            | "tmin"
            | "tmean"
            | "tmp"
            | "d2m"
            | "2d"
            | "tdmean"
            | "air_temperature"
            | "dew_point_temperature" => return VariableKind::Temperature,
            "u10" | "v10" | "10u" | "10v" | "u" | "v" | "uas" | "vas" | "eastward_wind"
            | "northward_wind" | "x_wind" | "y_wind" => return VariableKind::WindComponent,
            "si10" | "10si" | "ws" | "wspd" | "ws10" | "sfcwind" | "wind_speed" | "fg10"
            | "gust" | "wind_speed_of_gust" => return VariableKind::WindSpeed,
            "tp"
            | "pr"
            | "ppt"
            | "prcp"
            | "apcp"
            | "precip"
            | "rain"
            | "precipitation"
            | "precipitation_amount"
            | "lwe_thickness_of_precipitation_amount" => return VariableKind::Precipitation,
            "z" | "orog" | "hgt" | "dem" | "elevation" | "surface_altitude" | "height" | "topo"
            | "orography" => return VariableKind::Orography,
            _ => {}
        }
        if has(&["precip", "rain"]) {
            VariableKind::Precipitation
        } else if has(&["wind_speed", "windspeed", "gust"]) {
            VariableKind::WindSpeed
        } else if has(&[
            "eastward_wind",
            "northward_wind",
            "x_wind",
            "y_wind",
            "u_component",
            "v_component",
        ]) {
            VariableKind::WindComponent
        } else if has(&["temperature", "dew_point", "dewpoint"]) {
            VariableKind::Temperature
        } else if has(&["altitude", "elevation", "orograph", "terrain", "topograph"]) {
            VariableKind::Orography
        } else {
            VariableKind::Other
        }
    }
}

/// The fixed default colour range for a variable in the given units, so that
/// maps of the same variable are comparable: temperature 233.15–313.15 K
/// (−40–40 °C, −40–104 °F), wind components −25–25 m s⁻¹, wind speed 0–30 m s⁻¹,
/// precipitation 0–50 kg m⁻² (= mm), orography 0–4000 m; equivalents in other
/// common units.
///
/// `None` for difference fields (the caller picks a symmetric range from its
/// data), unknown variables and unrecognised units.
pub fn default_range(var: &str, units: &str) -> Option<(f64, f64)> {
    // "m s**-1", "m.s-1" and "m s-1" all become "ms-1".
    let u: String = units
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '*' | '^' | '_'))
        .collect();
    let u = u.as_str();
    let metres_per_second = ["ms-1", "m/s", "mps"].contains(&u);
    let knots = ["kt", "kts", "knot", "knots"].contains(&u);
    let km_per_hour = ["km/h", "kmh-1", "kph"].contains(&u);
    let metres = ["m", "meter", "meters", "metre", "metres"].contains(&u);
    match VariableKind::of(var) {
        VariableKind::Temperature => match u {
            "k" | "kelvin" => Some((233.15, 313.15)),
            "degc" | "°c" | "c" | "celsius" | "degreesc" | "degreec" | "degreescelsius"
            | "degreecelsius" => Some((-40.0, 40.0)),
            "degf" | "°f" | "f" | "fahrenheit" | "degreesf" | "degreesfahrenheit" => {
                Some((-40.0, 104.0))
            }
            _ => None,
        },
        VariableKind::WindComponent if metres_per_second => Some((-25.0, 25.0)),
        VariableKind::WindComponent if knots => Some((-50.0, 50.0)),
        VariableKind::WindComponent if km_per_hour => Some((-90.0, 90.0)),
        VariableKind::WindSpeed if metres_per_second => Some((0.0, 30.0)),
        VariableKind::WindSpeed if knots => Some((0.0, 60.0)),
        VariableKind::WindSpeed if km_per_hour => Some((0.0, 108.0)),
        VariableKind::Precipitation => match u {
            // "kg m**-2", "kg m^-2" and "kg/m^2" arrive here without their
            // spaces, dots, stars and carets.
            "kgm-2" | "kg/m2" | "mm" => Some((0.0, 50.0)),
            _ if metres => Some((0.0, 0.05)),
            _ => None,
        },
        VariableKind::Orography if metres => Some((0.0, 4000.0)),
        VariableKind::Orography if u == "km" => Some((0.0, 4.0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_accept_unit_spellings() {
        for units in ["kg m-2", "kg m**-2", "kg m^-2", "kg/m^2", "kg/m2", "mm"] {
            assert_eq!(default_range("tp", units), Some((0.0, 50.0)), "{units}");
        }
        assert_eq!(default_range("x_wind", "m s-1"), Some((-25.0, 25.0)));
        assert_eq!(default_range("tp", "kg m-2 s-1"), None);
    }

    #[test]
    fn classifies_common_names() {
        use VariableKind::*;
        for (name, kind) in [
            ("t2m", Temperature),
            ("tmin", Temperature),
            ("air_temperature", Temperature),
            ("temperature_2m", Temperature),
            ("u10", WindComponent),
            ("eastward_wind", WindComponent),
            ("x_wind", WindComponent),
            ("y_wind_10m", WindComponent),
            ("si10", WindSpeed),
            ("wind_speed_10m", WindSpeed),
            ("tp", Precipitation),
            ("precipitation_amount", Precipitation),
            ("orog", Orography),
            ("surface_altitude", Orography),
            ("t2m_error", Difference),
            ("diff", Difference),
            ("cape", Other),
        ] {
            assert_eq!(VariableKind::of(name), kind, "{name}");
        }
    }
}
