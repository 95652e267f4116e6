//! GRIB2 input through the pure-Rust `grib` crate.
//!
//! Every (parameter, level, statistical period, grid) combination becomes a
//! variable, its messages at different valid times forming the time axis.
//! Common fields get the names finecast uses elsewhere (`t2m`, `d2m`, `u10`,
//! `v10`, `tp`, `sp`, `msl`, `orog`, `prate`); the rest are named by the NCEP
//! parameter abbreviation and level, e.g. `rh_2m`, `tmp_850hpa`, `tcdc_atm`.
//!
//! Grids: template 3.0 (regular lat/lon; longitudes as stored, e.g. 0..360;
//! rows in storage order, so north-up data give a descending y) and 3.30
//! (Lambert conformal). The file is indexed when opened and re-read for each
//! field, so a `Dataset` holds no file handle for GRIB2.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use finecast_grid::{wrap180, Crs, Grid};
use grib::codetables::grib2::Table4_4;
use grib::codetables::{CodeTable4_2, Lookup};
use grib::def::grib2::template::param_set::DateTime as GribDateTime;
use grib::def::grib2::ProductDefinitionTemplate;
use grib::{Code, GridDefinitionTemplateValues, MessageIndex, SubMessage};
use ndarray::Array2;

use crate::cf::earth_from_axes;
use crate::error::catch_decoder_panic;
use crate::window::{self, Window};
use crate::{
    select_time_index, Catalogued, IoError, RawField, Selection, VarInfo, MAX_FIELD_CELLS,
};

const FORMAT: &str = "GRIB2";

pub(crate) struct GribFile {
    path: PathBuf,
    shown: String,
    variables: Vec<GribVariable>,
    catalog: Vec<Catalogued>,
}

struct GribVariable {
    name: String,
    /// Messages sorted by valid time.
    steps: Vec<(MessageIndex, DateTime<Utc>)>,
    grid: Result<Grid, String>,
    units: String,
    cell_methods: Option<String>,
}

/// What identifies a variable among the messages of a file.
#[derive(Debug, Clone, PartialEq)]
struct VariableKey {
    discipline: u8,
    category: u8,
    number: u8,
    surface_type: u8,
    surface_value: f64,
    /// Statistical process (Code Table 4.10) and period in seconds.
    statistics: Option<(u8, i64)>,
    grid_definition: Vec<u8>,
}

/// Parameter metadata: NCEP abbreviation, long name, CF standard name, units.
struct Parameter {
    abbreviation: &'static str,
    long_name: &'static str,
    standard_name: &'static str,
    units: &'static str,
}

/// Shorthand for the table below.
const fn param(
    abbreviation: &'static str,
    long_name: &'static str,
    standard_name: &'static str,
    units: &'static str,
) -> Parameter {
    Parameter {
        abbreviation,
        long_name,
        standard_name,
        units,
    }
}

// One line per parameter reads better than rustfmt's layout.
#[rustfmt::skip]
const PARAMETERS: &[((u8, u8, u8), Parameter)] = &[
    ((0, 0, 0), param("TMP", "temperature", "air_temperature", "K")),
    ((0, 0, 4), param("TMAX", "maximum temperature", "air_temperature", "K")),
    ((0, 0, 5), param("TMIN", "minimum temperature", "air_temperature", "K")),
    ((0, 0, 6), param("DPT", "dew point temperature", "dew_point_temperature", "K")),
    ((0, 1, 0), param("SPFH", "specific humidity", "specific_humidity", "kg kg-1")),
    ((0, 1, 1), param("RH", "relative humidity", "relative_humidity", "%")),
    ((0, 1, 7), param("PRATE", "precipitation rate", "precipitation_flux", "kg m-2 s-1")),
    ((0, 1, 8), param("APCP", "total precipitation", "precipitation_amount", "kg m-2")),
    ((0, 1, 11), param("SNOD", "snow depth", "surface_snow_thickness", "m")),
    ((0, 1, 13), param("WEASD", "water equivalent of accumulated snow depth", "surface_snow_amount", "kg m-2")),
    ((0, 2, 1), param("WIND", "wind speed", "wind_speed", "m s-1")),
    ((0, 2, 2), param("UGRD", "u-component of wind", "eastward_wind", "m s-1")),
    ((0, 2, 3), param("VGRD", "v-component of wind", "northward_wind", "m s-1")),
    ((0, 2, 22), param("GUST", "wind speed (gust)", "wind_speed_of_gust", "m s-1")),
    ((0, 3, 0), param("PRES", "pressure", "air_pressure", "Pa")),
    ((0, 3, 1), param("PRMSL", "pressure reduced to mean sea level", "air_pressure_at_mean_sea_level", "Pa")),
    ((0, 3, 5), param("HGT", "geopotential height", "geopotential_height", "m")),
    ((0, 4, 7), param("DSWRF", "downward short-wave radiation flux", "surface_downwelling_shortwave_flux_in_air", "W m-2")),
    ((0, 5, 3), param("DLWRF", "downward long-wave radiation flux", "surface_downwelling_longwave_flux_in_air", "W m-2")),
    ((0, 6, 1), param("TCDC", "total cloud cover", "cloud_area_fraction", "%")),
    ((0, 19, 0), param("VIS", "visibility", "visibility_in_air", "m")),
    ((2, 0, 0), param("LAND", "land cover (1 = land, 0 = sea)", "land_binary_mask", "1")),
];

// Code Table 4.5 surface types used in names.
const SURFACE: u8 = 1;
const ISOBARIC: u8 = 100;
const MEAN_SEA_LEVEL: u8 = 101;
const HEIGHT_ABOVE_GROUND: u8 = 103;
const ENTIRE_ATMOSPHERE: u8 = 10;

/// How a GRIB2 variable is presented.
struct Naming {
    name: String,
    standard_name: Option<String>,
    long_name: String,
    units: String,
}

/// Name, standard name, long name and units of a variable.
fn naming(key: &VariableKey, grid_relative_wind: bool) -> Naming {
    let parameter = PARAMETERS
        .iter()
        .find(|(k, _)| *k == (key.discipline, key.category, key.number))
        .map(|(_, p)| p);
    let height = (key.surface_type == HEIGHT_ABOVE_GROUND).then_some(key.surface_value);
    let at_surface = key.surface_type == SURFACE;
    let at_msl = key.surface_type == MEAN_SEA_LEVEL;
    let code = (key.discipline, key.category, key.number);
    let conventional: Option<(&str, &str, &str)> = match code {
        (0, 0, 0) if height == Some(2.0) => Some(("t2m", "air_temperature", "K")),
        (0, 0, 6) if height == Some(2.0) => Some(("d2m", "dew_point_temperature", "K")),
        (0, 2, 2) if height == Some(10.0) => Some(("u10", "eastward_wind", "m s-1")),
        (0, 2, 3) if height == Some(10.0) => Some(("v10", "northward_wind", "m s-1")),
        (0, 2, 2) if height == Some(100.0) => Some(("u100", "eastward_wind", "m s-1")),
        (0, 2, 3) if height == Some(100.0) => Some(("v100", "northward_wind", "m s-1")),
        (0, 1, 8) => Some(("tp", "precipitation_amount", "kg m-2")),
        (0, 1, 7) if at_surface => Some(("prate", "precipitation_flux", "kg m-2 s-1")),
        (0, 3, 0) if at_surface => Some(("sp", "surface_air_pressure", "Pa")),
        (0, 3, 1) => Some(("msl", "air_pressure_at_mean_sea_level", "Pa")),
        (0, 3, 0) if at_msl => Some(("msl", "air_pressure_at_mean_sea_level", "Pa")),
        (0, 3, 5) if at_surface => Some(("orog", "surface_altitude", "m")),
        (0, 0, 0) if at_surface => Some(("tmp_sfc", "surface_temperature", "K")),
        _ => None,
    };
    let long_name = parameter
        .map(|p| p.long_name.to_string())
        .unwrap_or_else(|| {
            CodeTable4_2::new(key.discipline, key.category)
                .lookup(usize::from(key.number))
                .to_string()
        });
    let level = level_label(key);
    let long_name = format!("{long_name} ({level})");
    let wind_component = |sn: &str| -> String {
        match (grid_relative_wind, sn) {
            (true, "eastward_wind") => "x_wind".to_string(),
            (true, "northward_wind") => "y_wind".to_string(),
            _ => sn.to_string(),
        }
    };
    if let Some((name, sn, units)) = conventional {
        return Naming {
            name: name.to_string(),
            standard_name: Some(wind_component(sn)),
            long_name,
            units: units.to_string(),
        };
    }
    let abbreviation = parameter
        .map(|p| p.abbreviation.to_ascii_lowercase())
        .unwrap_or_else(|| format!("p{}_{}_{}", key.discipline, key.category, key.number));
    Naming {
        name: format!("{abbreviation}_{}", level_suffix(key)),
        standard_name: parameter.map(|p| wind_component(p.standard_name)),
        long_name,
        units: parameter.map(|p| p.units).unwrap_or("").to_string(),
    }
}

fn number_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}").replace('.', "p")
    }
}

fn level_suffix(key: &VariableKey) -> String {
    let v = key.surface_value;
    match key.surface_type {
        SURFACE => "sfc".to_string(),
        MEAN_SEA_LEVEL => "msl".to_string(),
        ENTIRE_ATMOSPHERE => "atm".to_string(),
        HEIGHT_ABOVE_GROUND if v.is_finite() => format!("{}m", number_label(v)),
        ISOBARIC if v.is_finite() => format!("{}hpa", number_label(v / 100.0)),
        t if v.is_finite() => format!("l{t}_{}", number_label(v)),
        t => format!("l{t}"),
    }
}

fn level_label(key: &VariableKey) -> String {
    let v = key.surface_value;
    match key.surface_type {
        SURFACE => "surface".to_string(),
        MEAN_SEA_LEVEL => "mean sea level".to_string(),
        ENTIRE_ATMOSPHERE => "entire atmosphere".to_string(),
        HEIGHT_ABOVE_GROUND => format!("{v} m above ground"),
        ISOBARIC => format!("{} hPa", v / 100.0),
        t => format!("level type {t}, value {v}"),
    }
}

fn cell_methods(statistics: Option<(u8, i64)>) -> Option<String> {
    let (process, seconds) = statistics?;
    let method = match process {
        0 => "mean",
        1 => "sum",
        2 => "maximum",
        3 => "minimum",
        _ => return None,
    };
    Some(format!(
        "time: {method} (interval: {})",
        duration_words(seconds)
    ))
}

/// "1 hour", "12 hours", "10 minutes": for `cell_methods`.
fn duration_words(seconds: i64) -> String {
    let (value, unit) = if seconds % 3600 == 0 {
        (seconds / 3600, "hour")
    } else if seconds % 60 == 0 {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    format!("{value} {unit}{}", if value == 1 { "" } else { "s" })
}

/// "1h", "10min", "30s": for variable names.
fn duration_short(seconds: i64) -> String {
    if seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds % 60 == 0 {
        format!("{}min", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// Everything read from one message when indexing.
struct MessageInfo {
    key: VariableKey,
    valid: DateTime<Utc>,
    grid_relative_wind: bool,
}

fn unit_seconds(unit: &Code<Table4_4, u8>) -> Result<i64, String> {
    match unit {
        Code::Name(Table4_4::Second) => Ok(1),
        Code::Name(Table4_4::Minute) => Ok(60),
        Code::Name(Table4_4::Hour) => Ok(3600),
        Code::Name(Table4_4::ThreeHours) => Ok(3 * 3600),
        Code::Name(Table4_4::SixHours) => Ok(6 * 3600),
        Code::Name(Table4_4::TwelveHours) => Ok(12 * 3600),
        Code::Name(Table4_4::Day) => Ok(86_400),
        Code::Name(other) => Err(format!("time unit {other:?} is not supported")),
        Code::Num(n) => Err(format!("time unit code {n} is not supported")),
    }
}

fn unit_seconds_from_code(code: u8) -> Result<i64, String> {
    unit_seconds(&Table4_4::try_from(code).map_or(Code::Num(code), Code::Name))
}

fn chrono_time(t: &GribDateTime) -> Result<DateTime<Utc>, String> {
    Utc.with_ymd_and_hms(
        i32::from(t.year),
        u32::from(t.month),
        u32::from(t.day),
        u32::from(t.hour),
        u32::from(t.minute),
        u32::from(t.second),
    )
    .single()
    .ok_or_else(|| {
        format!(
            "invalid date {}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        )
    })
}

fn message_info<R>(sub: &SubMessage<'_, R>) -> Result<MessageInfo, String> {
    let discipline = sub.indicator().discipline;
    let prod = sub.prod_def();
    let template = prod.prod_tmpl_num();
    let (category, number) = prod
        .parameter_category()
        .zip(prod.parameter_number())
        .ok_or_else(|| format!("product definition template 4.{template} is not supported"))?;
    let (surface_type, surface_value) = prod
        .fixed_surfaces()
        .map(|(first, _)| (first.surface_type, first.value()))
        .unwrap_or((255, f64::NAN));
    let reference = chrono_time(&sub.identification().ref_time_unchecked())?;
    // Statistically processed products (templates 4.8-4.12) are valid at the
    // end of their time interval, which the template states explicitly.
    let mut statistics = None;
    let mut valid = None;
    if let Ok(section4) = sub.section4() {
        let interval = match &section4.payload.template {
            ProductDefinitionTemplate::_4_8(t) => Some(&t.time_interval),
            ProductDefinitionTemplate::_4_9(t) => Some(&t.time_interval),
            ProductDefinitionTemplate::_4_10(t) => Some(&t.time_interval),
            ProductDefinitionTemplate::_4_11(t) => Some(&t.time_interval),
            ProductDefinitionTemplate::_4_12(t) => Some(&t.time_interval),
            _ => None,
        };
        if let Some(interval) = interval {
            valid = Some(chrono_time(&interval.end_of_overall_time_interval)?);
            if let Some(range) = interval.time_ranges.first() {
                let seconds = unit_seconds_from_code(range.time_range.unit)?
                    * i64::from(range.time_range.len);
                statistics = Some((range.statistical_process_type, seconds));
            }
        }
    }
    let valid = match valid {
        Some(v) => v,
        None => {
            let lead = prod
                .forecast_time()
                .map(|ft| unit_seconds(&ft.unit).map(|s| s * i64::from(ft.value)))
                .transpose()?
                .unwrap_or(0);
            reference
                .checked_add_signed(Duration::seconds(lead))
                .ok_or_else(|| format!("forecast time of {lead} s is out of range"))?
        }
    };
    let grid_definition: Vec<u8> = sub.grid_def().iter().copied().collect();
    let grid_relative_wind = match GridDefinitionTemplateValues::try_from(sub.grid_def()) {
        Ok(GridDefinitionTemplateValues::Template0(t)) => {
            t.lat_lon.grid.resolution_and_component_flags.0 & 0x08 != 0
        }
        Ok(GridDefinitionTemplateValues::Template30(t)) => {
            t.resolution_and_component_flags.0 & 0x08 != 0
        }
        _ => false,
    };
    Ok(MessageInfo {
        key: VariableKey {
            discipline,
            category,
            number,
            surface_type,
            surface_value,
            statistics,
            grid_definition,
        },
        valid,
        grid_relative_wind,
    })
}

/// Build the grid of a message's grid definition (templates 3.0 and 3.30).
fn grid_of<R>(sub: &SubMessage<'_, R>) -> Result<Grid, String> {
    let grid_def = sub.grid_def();
    let template = grid_def.grid_tmpl_num();
    let values = GridDefinitionTemplateValues::try_from(grid_def)
        .map_err(|e| format!("grid definition template 3.{template} cannot be decoded: {e}"))?;
    let grid = match values {
        GridDefinitionTemplateValues::Template0(t) => {
            let g = &t.lat_lon.grid;
            let (ni, nj) = (g.ni as usize, g.nj as usize);
            check_size(ni, nj, grid_def.num_points() as usize)?;
            let unit = match (g.initial_production_domain_basic_angle, g.basic_angle_subdivisions) {
                (0 | u32::MAX, _) => 1e-6,
                (_, 0 | u32::MAX) => return Err("invalid basic angle subdivisions".to_string()),
                (basic, sub) => f64::from(basic) / f64::from(sub),
            };
            let (lat0, lat1) = (f64::from(g.first_point_lat) * unit, f64::from(g.last_point_lat) * unit);
            let (lon0, lon1) = (f64::from(g.first_point_lon) * unit, f64::from(g.last_point_lon) * unit);
            let scanning = &t.lat_lon.scanning_mode;
            let x: Vec<f64> = if ni == 1 {
                vec![lon0]
            } else if scanning.scans_positively_for_i() {
                let span = if lon1 > lon0 { lon1 - lon0 } else { lon1 + 360.0 - lon0 };
                (0..ni).map(|i| lon0 + span * i as f64 / (ni - 1) as f64).collect()
            } else {
                let span = if lon0 > lon1 { lon0 - lon1 } else { lon0 + 360.0 - lon1 };
                (0..ni).map(|i| lon0 - span * i as f64 / (ni - 1) as f64).collect()
            };
            let y: Vec<f64> = if nj == 1 {
                vec![lat0]
            } else {
                (0..nj).map(|j| lat0 + (lat1 - lat0) * j as f64 / (nj - 1) as f64).collect()
            };
            let (a, b) = t
                .earth
                .radii()
                .ok_or_else(|| format!("shape of the Earth code {} is not supported", t.earth.shape))?;
            let earth = earth_from_axes(a, b)?;
            Grid::new(Crs::LatLon { earth }, x, y).map_err(|e| e.to_string())?
        }
        GridDefinitionTemplateValues::Template30(t) => {
            let (ni, nj) = (t.ni as usize, t.nj as usize);
            check_size(ni, nj, grid_def.num_points() as usize)?;
            if t.projection_centre.is_bipolar() {
                return Err("bipolar Lambert conformal projections are not supported".to_string());
            }
            let micro = 1e-6;
            let (a, b) = t.earth_shape.radii().ok_or_else(|| {
                format!("shape of the Earth code {} is not supported", t.earth_shape.shape)
            })?;
            let latin1 = f64::from(t.latin1) * micro;
            let latin2 = f64::from(t.latin2) * micro;
            let crs = Crs::LambertConformalConic {
                standard_parallel: (latin1, latin2),
                longitude_of_central_meridian: wrap180(f64::from(t.lov) * micro),
                latitude_of_projection_origin: latin1,
                false_easting: 0.0,
                false_northing: 0.0,
                earth: earth_from_axes(a, b)?,
            };
            // The grid is anchored by its first point: project it, then step
            // by Dx/Dy (given in mm) in the scanning directions.
            let (la1, lo1) = (f64::from(t.first_point_lat) * micro, f64::from(t.first_point_lon) * micro);
            let probe = Grid::new(crs.clone(), vec![0.0], vec![0.0]).map_err(|e| e.to_string())?;
            let (x0, y0) = probe
                .to_native(wrap180(lo1), la1)
                .ok_or_else(|| format!("first grid point {la1}N {lo1}E cannot be projected"))?;
            let dx = f64::from(t.dx) * 1e-3;
            let dy = f64::from(t.dy) * 1e-3;
            let sx = if t.scanning_mode.scans_positively_for_i() { 1.0 } else { -1.0 };
            let sy = if t.scanning_mode.scans_positively_for_j() { 1.0 } else { -1.0 };
            let x = (0..ni).map(|i| x0 + sx * dx * i as f64).collect();
            let y = (0..nj).map(|j| y0 + sy * dy * j as f64).collect();
            Grid::new(crs, x, y).map_err(|e| e.to_string())?
        }
        _ => {
            return Err(format!(
                "grid definition template 3.{template} is not supported (only 3.0 regular lat/lon and 3.30 Lambert conformal)"
            ))
        }
    };
    Ok(grid)
}

fn check_size(ni: usize, nj: usize, num_points: usize) -> Result<(), String> {
    if ni == 0 || nj == 0 || ni.checked_mul(nj) != Some(num_points) {
        return Err(format!(
            "grid of {ni} x {nj} points does not match the {num_points} points declared"
        ));
    }
    if num_points > MAX_FIELD_CELLS {
        return Err(format!(
            "{num_points} grid points exceed the limit of {MAX_FIELD_CELLS}"
        ));
    }
    Ok(())
}

/// Check that every message in the file is complete: its declared length
/// fits in the file and it ends with "7777". The GRIB2 parser silently drops
/// a truncated last message, which would hide a damaged download.
/// Why a message's section numbers break GRIB2's grammar: section 1, then
/// one or more fields of an optional 2, an optional 3 (required in the
/// first), 4, 5, 6, 7.
fn section_order_fault(numbers: &[u8]) -> Option<String> {
    let Some((&1, rest)) = numbers.split_first() else {
        return Some("the first section is not 1".into());
    };
    let (mut k, mut fields, mut grid_seen) = (0, 0, false);
    while k < rest.len() {
        if rest[k] == 2 {
            k += 1;
        }
        if rest.get(k) == Some(&3) {
            grid_seen = true;
            k += 1;
        }
        if !grid_seen {
            return Some("no grid definition (section 3) before the first field".into());
        }
        if rest.get(k..k + 4) != Some(&[4, 5, 6, 7][..]) {
            return Some(format!(
                "field {fields} is not sections 4, 5, 6, 7 in order"
            ));
        }
        k += 4;
        fields += 1;
    }
    (fields == 0).then(|| "no field (sections 4 to 7)".into())
}

fn check_message_framing(path: &Path, shown: &str) -> Result<(), IoError> {
    use std::io::{Read, Seek, SeekFrom};
    let os_error = |source| IoError::Os {
        path: shown.to_string(),
        action: "cannot read",
        source,
    };
    let corrupt = |detail: String| GribFile::corrupt(shown, detail);
    let mut file = File::open(path).map_err(os_error)?;
    let size = file.metadata().map_err(os_error)?.len();
    let read_at = |file: &mut File, pos: u64, buf: &mut [u8]| -> Result<usize, IoError> {
        file.seek(SeekFrom::Start(pos)).map_err(os_error)?;
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]).map_err(os_error)? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    };
    let mut pos = 0u64;
    let mut messages = 0usize;
    loop {
        // Find the next "GRIB" (messages may be separated by padding).
        let mut start = None;
        let mut chunk = vec![0u8; 1 << 16];
        let mut search = pos;
        while search < size {
            let n = read_at(&mut file, search, &mut chunk)?;
            if n < 4 {
                break;
            }
            if let Some(k) = chunk[..n].windows(4).position(|w| w == b"GRIB") {
                start = Some(search + k as u64);
                break;
            }
            search += (n - 3) as u64;
        }
        let Some(start) = start else { break };
        let mut header = [0u8; 16];
        if read_at(&mut file, start, &mut header)? < 16 {
            return Err(corrupt(format!(
                "message {messages} at byte {start} is truncated in its indicator section"
            )));
        }
        if header[7] != 2 {
            return Err(corrupt(format!(
                "message {messages} at byte {start} is GRIB edition {}, not 2",
                header[7]
            )));
        }
        let total = u64::from_be_bytes([
            header[8], header[9], header[10], header[11], header[12], header[13], header[14],
            header[15],
        ]);
        if total < 20 || start.saturating_add(total) > size {
            return Err(corrupt(format!(
                "message {messages} at byte {start} declares {total} bytes but the file ends after {} (truncated?)",
                size - start
            )));
        }
        let mut end = [0u8; 4];
        read_at(&mut file, start + total - 4, &mut end)?;
        if &end != b"7777" {
            return Err(corrupt(format!(
                "message {messages} at byte {start} does not end with '7777'"
            )));
        }
        // Every section must fit in its message (the decoder allocates what
        // a section header declares: a crafted 43-byte file asked for 3 GB)
        // and the sections must come in GRIB2's order (a message without
        // them made the decoder read past its end and panic).
        let mut numbers = Vec::new();
        let mut at = start + 16;
        while at < start + total - 4 {
            let mut section = [0u8; 5];
            if read_at(&mut file, at, &mut section)? < 5 {
                return Err(corrupt(format!(
                    "message {messages}: section header at byte {at} is truncated"
                )));
            }
            let length = u64::from(u32::from_be_bytes([
                section[0], section[1], section[2], section[3],
            ]));
            if length < 5 || at + length > start + total - 4 {
                return Err(corrupt(format!(
                    "message {messages}: section {} at byte {at} declares {length} bytes, beyond the message's end at byte {}",
                    section[4],
                    start + total - 4
                )));
            }
            numbers.push(section[4]);
            at += length;
        }
        if let Some(why) = section_order_fault(&numbers) {
            return Err(corrupt(format!(
                "message {messages} at byte {start}: {why} (sections {numbers:?})"
            )));
        }
        messages += 1;
        pos = start + total;
    }
    if messages == 0 {
        return Err(corrupt("no GRIB2 message found".to_string()));
    }
    Ok(())
}

impl GribFile {
    pub(crate) fn open(path: &Path, shown: &str) -> Result<GribFile, IoError> {
        catch_decoder_panic(shown, FORMAT, || Self::index(path, shown))
    }

    fn corrupt(shown: &str, detail: impl Into<String>) -> IoError {
        IoError::Corrupt {
            path: shown.to_string(),
            format: FORMAT,
            detail: detail.into(),
        }
    }

    fn index(path: &Path, shown: &str) -> Result<GribFile, IoError> {
        check_message_framing(path, shown)?;
        let file = File::open(path).map_err(|source| IoError::Os {
            path: shown.to_string(),
            action: "cannot open",
            source,
        })?;
        let grib = grib::from_reader(BufReader::new(file))
            .map_err(|e| Self::corrupt(shown, e.to_string()))?;
        if grib.is_empty() {
            return Err(Self::corrupt(shown, "no GRIB2 messages found"));
        }
        struct Group {
            key: VariableKey,
            grid_relative_wind: bool,
            grid: Result<Grid, String>,
            steps: Vec<(MessageIndex, DateTime<Utc>)>,
        }
        let mut groups: Vec<Group> = Vec::new();
        for (index, sub) in grib.iter() {
            let info = message_info(&sub).map_err(|e| {
                Self::corrupt(shown, format!("message {}.{}: {e}", index.0, index.1))
            })?;
            match groups.iter_mut().find(|g| g.key == info.key) {
                Some(group) => group.steps.push((index, info.valid)),
                None => groups.push(Group {
                    grid: grid_of(&sub),
                    key: info.key,
                    grid_relative_wind: info.grid_relative_wind,
                    steps: vec![(index, info.valid)],
                }),
            }
        }

        let mut variables = Vec::new();
        let mut catalog = Vec::new();
        let mut name_count: HashMap<String, usize> = HashMap::new();
        for mut group in groups {
            let Naming {
                name: base,
                standard_name,
                long_name,
                units,
            } = naming(&group.key, group.grid_relative_wind);
            // Two variables with one conventional name (tp over 12 h and over
            // 1 h): the later ones get their period, or a counter, appended.
            let seen = name_count.entry(base.clone()).or_insert(0);
            *seen += 1;
            let name = match (*seen, group.key.statistics) {
                (1, _) => base,
                (_, Some((_, seconds))) => format!("{base}_{}", duration_short(seconds)),
                (n, None) => format!("{base}_{n}"),
            };
            group.steps.sort_by_key(|(_, t)| *t);
            let before = group.steps.len();
            group.steps.dedup_by_key(|(_, t)| *t);
            if group.steps.len() < before {
                tracing::warn!(
                    "{shown}: variable '{name}': {} message(s) repeat a valid time and are ignored (ensemble members are not supported)",
                    before - group.steps.len()
                );
            }
            let (y_dim, x_dim) = match &group.grid {
                Ok(g) if g.is_latlon() => ("lat", "lon"),
                _ => ("y", "x"),
            };
            let (ny, nx) = group.grid.as_ref().map(Grid::shape).unwrap_or((0, 0));
            let height_m =
                (group.key.surface_type == HEIGHT_ABOVE_GROUND).then_some(group.key.surface_value);
            catalog.push(Catalogued {
                info: VarInfo {
                    name: name.clone(),
                    standard_name,
                    long_name: Some(long_name),
                    units: Some(units.clone()),
                    dims: vec![
                        ("time".to_string(), group.steps.len()),
                        (y_dim.to_string(), ny),
                        (x_dim.to_string(), nx),
                    ],
                    has_time: true,
                },
                height_m,
            });
            variables.push(GribVariable {
                name,
                steps: group.steps,
                grid: group.grid,
                units,
                cell_methods: cell_methods(group.key.statistics),
            });
        }
        Ok(GribFile {
            path: path.to_path_buf(),
            shown: shown.to_string(),
            variables,
            catalog,
        })
    }

    pub(crate) fn catalog(&self) -> &[Catalogued] {
        &self.catalog
    }

    pub(crate) fn global_text(&self, _name: &str) -> Option<String> {
        None
    }

    fn variable(&self, name: &str) -> Result<&GribVariable, IoError> {
        self.variables
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| IoError::variable(&self.shown, name, "is not in the file"))
    }

    pub(crate) fn grid(&self, name: &str) -> Result<Grid, IoError> {
        self.variable(name)?
            .grid
            .clone()
            .map_err(|e| IoError::grid(&self.shown, name, e))
    }

    pub(crate) fn times(&self, name: &str) -> Result<Vec<DateTime<Utc>>, IoError> {
        Ok(self.variable(name)?.steps.iter().map(|(_, t)| *t).collect())
    }

    pub(crate) fn read(&self, name: &str, sel: &Selection) -> Result<RawField, IoError> {
        let var = self.variable(name)?;
        let grid = self.grid(name)?;
        let k = select_time_index(&self.shown, name, &sel.time, var.steps.len(), || {
            self.times(name)
        })?;
        let (index, valid) = var.steps[k];
        let full = self.decode(name, index, &grid)?;
        let data = match sel.bbox {
            Some(bbox) => {
                let window =
                    window::for_bbox(&grid, bbox).map_err(|detail| IoError::BoundingBox {
                        path: self.shown.clone(),
                        var: name.to_string(),
                        bbox: format!("{bbox:?}"),
                        detail,
                    })?;
                let cut = window.cut(&full);
                (window, cut)
            }
            None => (Window::full(&grid), full),
        };
        Ok(RawField {
            grid: data.0.grid,
            data: data.1,
            units: Some(var.units.clone()),
            time: Some(valid),
            cell_methods: var.cell_methods.clone(),
        })
    }

    /// Decode one message's values onto the `(ny, nx)` array of its grid.
    fn decode(&self, name: &str, index: MessageIndex, grid: &Grid) -> Result<Array2<f32>, IoError> {
        let shown = self.shown.as_str();
        catch_decoder_panic(shown, FORMAT, || {
            let failed = |e: String| {
                IoError::variable(shown, name, format!("message {}.{}: {e}", index.0, index.1))
            };
            let file = File::open(&self.path).map_err(|source| IoError::Os {
                path: shown.to_string(),
                action: "cannot open",
                source,
            })?;
            let grib = grib::from_reader(BufReader::new(file))
                .map_err(|e| Self::corrupt(shown, e.to_string()))?;
            let (_, sub) = grib
                .iter()
                .find(|(i, _)| *i == index)
                .ok_or_else(|| failed("no longer in the file".to_string()))?;
            let positions: Vec<(usize, usize)> =
                sub.ij().map_err(|e| failed(e.to_string()))?.collect();
            let decoder =
                grib::Grib2SubmessageDecoder::from(sub).map_err(|e| failed(e.to_string()))?;
            let values = decoder.dispatch().map_err(|e| failed(e.to_string()))?;
            let (ny, nx) = grid.shape();
            let mut out = Array2::from_elem((ny, nx), f32::NAN);
            let mut count = 0usize;
            for ((i, j), v) in positions.iter().zip(values) {
                if let Some(cell) = out.get_mut((*j, *i)) {
                    *cell = v;
                }
                count += 1;
            }
            if count != ny * nx || positions.len() != ny * nx {
                return Err(failed(format!(
                    "decoded {count} values for a grid of {ny} x {nx} points"
                )));
            }
            tracing::debug!(
                "{shown}: decoded {name} from message {}.{}",
                index.0,
                index.1
            );
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parameter: (u8, u8, u8), surface_type: u8, surface_value: f64) -> VariableKey {
        VariableKey {
            discipline: parameter.0,
            category: parameter.1,
            number: parameter.2,
            surface_type,
            surface_value,
            statistics: None,
            grid_definition: vec![],
        }
    }

    #[test]
    fn conventional_and_generic_names() {
        let name = |k: VariableKey| naming(&k, false).name;
        assert_eq!(name(key((0, 0, 0), HEIGHT_ABOVE_GROUND, 2.0)), "t2m");
        assert_eq!(name(key((0, 0, 6), HEIGHT_ABOVE_GROUND, 2.0)), "d2m");
        assert_eq!(name(key((0, 1, 8), SURFACE, f64::NAN)), "tp");
        assert_eq!(name(key((0, 3, 1), MEAN_SEA_LEVEL, 0.0)), "msl");
        assert_eq!(name(key((0, 3, 0), SURFACE, 0.0)), "sp");
        assert_eq!(name(key((0, 3, 5), SURFACE, 0.0)), "orog");
        assert_eq!(name(key((0, 1, 1), HEIGHT_ABOVE_GROUND, 2.0)), "rh_2m");
        assert_eq!(name(key((0, 0, 0), ISOBARIC, 85_000.0)), "tmp_850hpa");
        assert_eq!(
            name(key((0, 6, 1), ENTIRE_ATMOSPHERE, f64::NAN)),
            "tcdc_atm"
        );
        assert_eq!(name(key((0, 2, 2), HEIGHT_ABOVE_GROUND, 80.0)), "ugrd_80m");
        assert_eq!(name(key((0, 19, 99), SURFACE, 0.0)), "p0_19_99_sfc");
        let relative = naming(&key((0, 2, 3), HEIGHT_ABOVE_GROUND, 10.0), true);
        assert_eq!(relative.name, "v10");
        assert_eq!(relative.standard_name.as_deref(), Some("y_wind"));
        let t = naming(&key((0, 0, 0), HEIGHT_ABOVE_GROUND, 2.0), false);
        assert_eq!(t.long_name, "temperature (2 m above ground)");
        assert_eq!(t.units, "K");
    }

    #[test]
    fn statistical_periods() {
        assert_eq!(
            cell_methods(Some((1, 3600))).as_deref(),
            Some("time: sum (interval: 1 hour)")
        );
        assert_eq!(
            cell_methods(Some((2, 12 * 3600))).as_deref(),
            Some("time: maximum (interval: 12 hours)")
        );
        assert_eq!(cell_methods(Some((9, 3600))), None);
        assert_eq!(duration_short(600), "10min");
        assert_eq!(duration_short(3 * 3600), "3h");
        assert_eq!(duration_words(90), "90 seconds");
    }
}
