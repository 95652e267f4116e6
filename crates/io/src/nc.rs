//! CF-NetCDF input through the `netcdf` crate (libnetcdf).

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use finecast_grid::{Crs, Grid};
use ndarray::{s, Array2, ArrayView2};
use netcdf::types::{FloatType, IntType, NcVariableType};
use netcdf::{AttributeValue, Extent, Variable};

use crate::cf::{self, Attr, Attrs};
use crate::cftime::{self, TimeUnits};
use crate::describe::StatsAccumulator;
use crate::error::catch_decoder_panic;
use crate::hdf5_quiet;
use crate::window::{self, Window};
use crate::TimeBounds;
use crate::{
    check_no_time_selection, select_time_index, Catalogued, IoError, RawField, Selection,
    ValueStats, VarInfo, MAX_FIELD_CELLS,
};

const FORMAT: &str = "NetCDF";

/// Standard names of coordinates, which are never data variables.
const COORDINATE_STANDARD_NAMES: &[&str] = &[
    "latitude",
    "longitude",
    "grid_latitude",
    "grid_longitude",
    "projection_x_coordinate",
    "projection_y_coordinate",
    "time",
    "forecast_reference_time",
];

pub(crate) struct NcFile {
    path: String,
    file: netcdf::File,
    catalog: Vec<Catalogued>,
}

/// A 1-D coordinate variable's values and CF identity.
struct Coordinate {
    values: Vec<f64>,
    units: Option<String>,
    standard_name: Option<String>,
}

/// How a variable's dimensions map onto (time, y, x).
struct Layout {
    dims: Vec<(String, usize)>,
    time_axis: Option<usize>,
}

impl NcFile {
    pub(crate) fn open(path: &Path, shown: &str, classic: bool) -> Result<NcFile, IoError> {
        hdf5_quiet::silence_this_thread();
        catch_decoder_panic(shown, FORMAT, || {
            let file = netcdf::open(path).map_err(|e| IoError::Corrupt {
                path: shown.to_string(),
                format: FORMAT,
                detail: e.to_string(),
            })?;
            if classic {
                check_classic_size(&file, path, shown)?;
            }
            let catalog = build_catalog(&file);
            Ok(NcFile {
                path: shown.to_string(),
                file,
                catalog,
            })
        })
    }

    pub(crate) fn catalog(&self) -> &[Catalogued] {
        &self.catalog
    }

    pub(crate) fn global_text(&self, name: &str) -> Option<String> {
        hdf5_quiet::silence_this_thread();
        let attr = self.file.attribute(name)?;
        convert_attr(attr.value().ok()?).and_then(|a| a.text().map(str::to_string))
    }

    fn variable(&self, name: &str) -> Result<Variable<'_>, IoError> {
        self.file
            .variable(name)
            .ok_or_else(|| IoError::variable(&self.path, name, "is not in the file"))
    }

    pub(crate) fn grid(&self, name: &str) -> Result<Grid, IoError> {
        hdf5_quiet::silence_this_thread();
        catch_decoder_panic(&self.path, FORMAT, || {
            let var = self.variable(name)?;
            self.grid_of(&var, name)
        })
    }

    pub(crate) fn times(&self, name: &str) -> Result<Vec<DateTime<Utc>>, IoError> {
        hdf5_quiet::silence_this_thread();
        catch_decoder_panic(&self.path, FORMAT, || {
            let var = self.variable(name)?;
            let layout = self.layout(&var, name)?;
            self.times_of(&layout, name)
        })
    }

    /// The CF `bounds` of the variable's time axis, one (start, end) per time;
    /// `None` where the time coordinate names no bounds.
    pub(crate) fn time_bounds(&self, name: &str) -> Result<Option<Vec<TimeBounds>>, IoError> {
        hdf5_quiet::silence_this_thread();
        catch_decoder_panic(&self.path, FORMAT, || {
            let var = self.variable(name)?;
            let layout = self.layout(&var, name)?;
            let Some(axis) = layout.time_axis else {
                return Ok(None);
            };
            let dim = &layout.dims[axis].0;
            let fail = |detail: String| IoError::time(&self.path, name, detail);
            let Some(time_var) = self.file.variable(dim) else {
                return Ok(None);
            };
            let Some(bounds_name) = text_attr(&time_var, "bounds") else {
                return Ok(None);
            };
            let bounds = self.file.variable(&bounds_name).ok_or_else(|| {
                fail(format!(
                    "time bounds '{bounds_name}' named by '{dim}' are not in the file"
                ))
            })?;
            let units = text_attr(&bounds, "units")
                .or_else(|| text_attr(&time_var, "units"))
                .ok_or_else(|| fail(format!("coordinate '{dim}' has no units")))?;
            let calendar =
                text_attr(&bounds, "calendar").or_else(|| text_attr(&time_var, "calendar"));
            let time_units = TimeUnits::parse(&units, calendar.as_deref())
                .map_err(|e| fail(format!("time bounds '{bounds_name}': {e}")))?;
            let values = bounds
                .get_values::<f64, _>(..)
                .map_err(|e| fail(format!("time bounds '{bounds_name}': {e}")))?;
            let n = time_var.len();
            if values.len() != 2 * n {
                return Err(fail(format!(
                    "time bounds '{bounds_name}' hold {} values for {n} times, not 2 per time",
                    values.len()
                )));
            }
            values
                .chunks(2)
                .map(|pair| {
                    let start = time_units.decode(pair[0]);
                    let end = time_units.decode(pair[1]);
                    match (start, end) {
                        (Ok(a), Ok(b)) if a <= b => Ok((a, b)),
                        (Ok(a), Ok(b)) => Err(fail(format!(
                            "time bounds '{bounds_name}': start {a} is after end {b}"
                        ))),
                        (Err(e), _) | (_, Err(e)) => {
                            Err(fail(format!("time bounds '{bounds_name}': {e}")))
                        }
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })
    }

    pub(crate) fn read(&self, name: &str, sel: &Selection) -> Result<RawField, IoError> {
        hdf5_quiet::silence_this_thread();
        catch_decoder_panic(&self.path, FORMAT, || self.read_inner(name, sel))
    }

    fn read_inner(&self, name: &str, sel: &Selection) -> Result<RawField, IoError> {
        let var = self.variable(name)?;
        let layout = self.layout(&var, name)?;
        let grid = self.grid_of(&var, name)?;
        let (time_index, time) = match layout.time_axis {
            Some(axis) => {
                let n = layout.dims[axis].1;
                // A time dimension without a usable coordinate still reads by
                // index; only selecting by instant needs the decoded times.
                let times = self.times_of(&layout, name);
                let k = select_time_index(&self.path, name, &sel.time, n, || match &times {
                    Ok(t) => Ok(t.clone()),
                    Err(_) => self.times_of(&layout, name),
                })?;
                let time = match times {
                    Ok(t) => t.get(k).copied(),
                    Err(e) => {
                        tracing::warn!("{e}");
                        None
                    }
                };
                (k, time)
            }
            None => {
                check_no_time_selection(&self.path, name, &sel.time)?;
                (0, None)
            }
        };
        let window = match sel.bbox {
            Some(bbox) => window::for_bbox(&grid, bbox).map_err(|detail| IoError::BoundingBox {
                path: self.path.clone(),
                var: name.to_string(),
                bbox: format!("{bbox:?}"),
                detail,
            })?,
            None => Window::full(&grid),
        };
        if window.cells() > MAX_FIELD_CELLS {
            return Err(IoError::TooLarge {
                path: self.path.clone(),
                var: name.to_string(),
                ny: window.grid.ny(),
                nx: window.grid.nx(),
                cells: window.cells(),
                limit: MAX_FIELD_CELLS,
            });
        }
        let unpacker =
            Unpacker::for_variable(&var).map_err(|e| IoError::variable(&self.path, name, e))?;
        let mut data = Array2::from_elem(window.grid.shape(), f32::NAN);
        let rows = window.rows.clone();
        let mut col0 = 0;
        for piece in &window.cols {
            let extents = extents_for(&layout, time_index, rows.clone(), piece.clone());
            let values = read_decoded(&var, &extents, &unpacker)
                .map_err(|e| IoError::variable(&self.path, name, format!("reading values: {e}")))?;
            let block = ArrayView2::from_shape((rows.len(), piece.len()), &values)
                .map_err(|e| IoError::variable(&self.path, name, e.to_string()))?;
            data.slice_mut(s![.., col0..col0 + piece.len()])
                .assign(&block);
            col0 += piece.len();
        }
        Ok(RawField {
            grid: window.grid,
            data,
            units: text_attr(&var, "units"),
            time,
            cell_methods: text_attr(&var, "cell_methods"),
        })
    }

    /// Statistics of the first time step in SI units, read in row strips.
    pub(crate) fn first_step_stats(&self, name: &str) -> Result<ValueStats, IoError> {
        hdf5_quiet::silence_this_thread();
        catch_decoder_panic(&self.path, FORMAT, || {
            let var = self.variable(name)?;
            let layout = self.layout(&var, name)?;
            let standard_name = text_attr(&var, "standard_name");
            let units = text_attr(&var, "units").unwrap_or_default();
            let (si_units, scale, offset) =
                crate::units::to_si(name, standard_name.as_deref(), &units).map_err(|source| {
                    IoError::Units {
                        path: self.path.clone(),
                        source,
                    }
                })?;
            let time = match layout.time_axis {
                Some(axis) if layout.dims[axis].1 == 0 => {
                    return Err(IoError::time(&self.path, name, "the time axis is empty"))
                }
                Some(_) => self
                    .times_of(&layout, name)
                    .ok()
                    .and_then(|t| t.first().copied()),
                None => None,
            };
            let n = layout.dims.len();
            let (ny, nx) = (layout.dims[n - 2].1, layout.dims[n - 1].1);
            let unpacker =
                Unpacker::for_variable(&var).map_err(|e| IoError::variable(&self.path, name, e))?;
            // Read tile by tile, each tile one storage chunk (or a block of
            // whole rows for contiguous data), so that every chunk is
            // decompressed once and memory stays bounded whatever the size.
            const TILE_CELLS: usize = 16_000_000;
            let chunk = var.chunking().ok().flatten();
            let (tile_rows, tile_cols) = match chunk.as_deref() {
                Some(c) if c.len() == n && c[n - 2] * c[n - 1] <= TILE_CELLS => {
                    (c[n - 2].max(1), c[n - 1].max(1))
                }
                _ => ((TILE_CELLS / nx.max(1)).max(1), nx.max(1)),
            };
            let mut acc = StatsAccumulator::default();
            for j in (0..ny).step_by(tile_rows) {
                for i in (0..nx).step_by(tile_cols) {
                    let rows = j..(j + tile_rows).min(ny);
                    let cols = i..(i + tile_cols).min(nx);
                    let extents = extents_for(&layout, 0, rows, cols);
                    let values = read_decoded(&var, &extents, &unpacker).map_err(|e| {
                        IoError::variable(&self.path, name, format!("reading values: {e}"))
                    })?;
                    acc.add(
                        values
                            .into_iter()
                            .map(|v| (f64::from(v) * scale + offset) as f32),
                    );
                }
            }
            Ok(acc.finish(time, &si_units))
        })
    }

    fn layout(&self, var: &Variable, name: &str) -> Result<Layout, IoError> {
        let dims: Vec<(String, usize)> = var
            .dimensions()
            .iter()
            .map(|d| (d.name(), d.len()))
            .collect();
        let n = dims.len();
        if n < 2 {
            return Err(IoError::variable(
                &self.path,
                name,
                format!("has {n} dimension(s); a 2-D (y, x) field is needed"),
            ));
        }
        let mut time_axis = None;
        let mut unsupported = Vec::new();
        for (k, (dim, len)) in dims[..n - 2].iter().enumerate() {
            if time_axis.is_none() && is_time_dimension(&self.file, dim) {
                time_axis = Some(k);
            } else if *len != 1 {
                unsupported.push(format!("'{dim}' (size {len})"));
            }
        }
        if !unsupported.is_empty() {
            return Err(IoError::variable(
                &self.path,
                name,
                format!(
                    "dimension {} is not supported: only a time dimension and size-1 dimensions may precede ({}, {})",
                    unsupported.join(", "),
                    dims[n - 2].0,
                    dims[n - 1].0
                ),
            ));
        }
        Ok(Layout { dims, time_axis })
    }

    fn times_of(&self, layout: &Layout, name: &str) -> Result<Vec<DateTime<Utc>>, IoError> {
        let Some(axis) = layout.time_axis else {
            return Ok(Vec::new());
        };
        let dim = &layout.dims[axis].0;
        let time_var = self.file.variable(dim).ok_or_else(|| {
            IoError::time(
                &self.path,
                name,
                format!("time dimension '{dim}' has no coordinate variable"),
            )
        })?;
        let units = text_attr(&time_var, "units").ok_or_else(|| {
            IoError::time(&self.path, name, format!("coordinate '{dim}' has no units"))
        })?;
        let calendar = text_attr(&time_var, "calendar");
        let time_units = TimeUnits::parse(&units, calendar.as_deref())
            .map_err(|e| IoError::time(&self.path, name, format!("coordinate '{dim}': {e}")))?;
        let values = read_coordinate(&time_var)
            .map_err(|e| IoError::time(&self.path, name, format!("coordinate '{dim}': {e}")))?;
        values
            .iter()
            .map(|v| time_units.decode(*v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IoError::time(&self.path, name, format!("coordinate '{dim}': {e}")))
    }

    fn grid_of(&self, var: &Variable, name: &str) -> Result<Grid, IoError> {
        let grid_error = |detail: String| IoError::grid(&self.path, name, detail);
        let dims = var.dimensions();
        let n = dims.len();
        if n < 2 {
            return Err(grid_error(format!("it has {n} dimension(s), not (y, x)")));
        }
        let (y_dim, x_dim) = (dims[n - 2].name(), dims[n - 1].name());
        let coordinate = |dim: &str| -> Result<Coordinate, IoError> {
            let cvar = self
                .file
                .variable(dim)
                .filter(|v| v.dimensions().len() == 1)
                .ok_or_else(|| {
                    grid_error(format!(
                        "horizontal dimension '{dim}' has no 1-D coordinate variable"
                    ))
                })?;
            let values = read_coordinate(&cvar)
                .map_err(|e| grid_error(format!("coordinate '{dim}': {e}")))?;
            Ok(Coordinate {
                values,
                units: text_attr(&cvar, "units"),
                standard_name: text_attr(&cvar, "standard_name"),
            })
        };
        let Coordinate {
            values: mut x,
            units: x_units,
            standard_name: x_sn,
        } = coordinate(&x_dim)?;
        let Coordinate {
            values: mut y,
            units: y_units,
            standard_name: y_sn,
        } = coordinate(&y_dim)?;
        let x_is_lon = cf::is_longitude(x_units.as_deref(), x_sn.as_deref());
        let y_is_lat = cf::is_latitude(y_units.as_deref(), y_sn.as_deref());

        let crs = match grid_mapping_name(var) {
            Some(mapping) => {
                let mapping_var = self.file.variable(&mapping).ok_or_else(|| {
                    grid_error(format!(
                        "grid_mapping variable '{mapping}' is not in the file"
                    ))
                })?;
                cf::crs_from_grid_mapping(&attributes(&mapping_var))
                    .map_err(|e| grid_error(format!("grid mapping '{mapping}': {e}")))?
            }
            None if x_is_lon && y_is_lat => Crs::wgs84(),
            None => {
                if cf::is_latitude(x_units.as_deref(), x_sn.as_deref())
                    && cf::is_longitude(y_units.as_deref(), y_sn.as_deref())
                {
                    return Err(grid_error(format!(
                        "dimensions are ordered ({y_dim}, {x_dim}) = (lon, lat); (lat, lon) is required"
                    )));
                }
                return Err(grid_error(format!(
                    "no grid_mapping attribute, and coordinates '{x_dim}'/'{y_dim}' are not longitude/latitude"
                )));
            }
        };
        match &crs {
            Crs::LatLon { .. } => {
                if !(x_is_lon || looks_angular(x_units.as_deref()))
                    || !(y_is_lat || looks_angular(y_units.as_deref()))
                {
                    return Err(grid_error(format!(
                        "latitude_longitude grid mapping but coordinates '{x_dim}' ({}) and '{y_dim}' ({}) are not longitude/latitude in degrees",
                        x_units.as_deref().unwrap_or("no units"),
                        y_units.as_deref().unwrap_or("no units")
                    )));
                }
                cf::unwrap_longitudes(&mut x);
            }
            Crs::RotatedPole { .. } => {
                if !looks_angular(x_units.as_deref()) || !looks_angular(y_units.as_deref()) {
                    return Err(grid_error(format!(
                        "rotated-pole coordinates '{x_dim}'/'{y_dim}' must be in degrees"
                    )));
                }
                cf::unwrap_longitudes(&mut x);
            }
            _ => {
                let sx = cf::metres_per_unit(x_units.as_deref())
                    .map_err(|e| grid_error(format!("coordinate '{x_dim}': {e}")))?;
                let sy = cf::metres_per_unit(y_units.as_deref())
                    .map_err(|e| grid_error(format!("coordinate '{y_dim}': {e}")))?;
                x.iter_mut().for_each(|v| *v *= sx);
                y.iter_mut().for_each(|v| *v *= sy);
            }
        }
        Grid::new(crs, x, y)
            .map_err(|e| grid_error(format!("coordinates '{x_dim}'/'{y_dim}': {e}")))
    }
}

/// libnetcdf reads the missing tail of a truncated classic file as zeros, so
/// a damaged download would decode silently. The variables' data alone need
/// at least the sum of their (4-byte padded) sizes; a shorter file is cut.
fn check_classic_size(file: &netcdf::File, path: &Path, shown: &str) -> Result<(), IoError> {
    let size = std::fs::metadata(path)
        .map_err(|source| IoError::Os {
            path: shown.to_string(),
            action: "cannot inspect",
            source,
        })?
        .len();
    let needed: u64 = file
        .variables()
        .map(|v| (v.len() as u64 * v.vartype().size() as u64).div_ceil(4) * 4)
        .sum();
    if size < needed {
        return Err(IoError::Corrupt {
            path: shown.to_string(),
            format: FORMAT,
            detail: format!(
                "the file has {size} bytes but its variables need at least {needed}: it is truncated"
            ),
        });
    }
    Ok(())
}

fn looks_angular(units: Option<&str>) -> bool {
    units.is_none_or(|u| u.trim().to_ascii_lowercase().starts_with("degree"))
}

/// Extents selecting time step `time_index`, index 0 of squeezed dimensions
/// and the given rows and columns.
fn extents_for(
    layout: &Layout,
    time_index: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> Vec<Extent> {
    let n = layout.dims.len();
    let mut extents: Vec<Extent> = (0..n - 2)
        .map(|k| {
            if Some(k) == layout.time_axis {
                Extent::from(time_index)
            } else {
                Extent::from(0usize)
            }
        })
        .collect();
    extents.push(Extent::from(rows));
    extents.push(Extent::from(cols));
    extents
}

/// The grid-mapping variable named by a `grid_mapping` attribute, in its
/// short form (`crs`) or the extended form (`crs: x y`).
fn grid_mapping_name(var: &Variable) -> Option<String> {
    let text = text_attr(var, "grid_mapping")?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.split_whitespace().find(|t| t.ends_with(':')) {
        Some(token) => Some(token.trim_end_matches(':').to_string()),
        None => Some(text.split_whitespace().next()?.to_string()),
    }
}

fn is_time_dimension(file: &netcdf::File, dim: &str) -> bool {
    let name_says_time = dim.to_ascii_lowercase().starts_with("time");
    let Some(coordinate) = file.variable(dim).filter(|v| v.dimensions().len() == 1) else {
        return name_says_time;
    };
    name_says_time
        || text_attr(&coordinate, "units").is_some_and(|u| cftime::is_time_units(&u))
        || text_attr(&coordinate, "axis").is_some_and(|a| a.trim() == "T")
        || text_attr(&coordinate, "standard_name").is_some_and(|s| s.trim() == "time")
}

/// The 2-D field variables of a file: numeric, at least (y, x), and not
/// referenced as coordinates, bounds or grid mappings by other variables.
fn build_catalog(file: &netcdf::File) -> Vec<Catalogued> {
    let variables: Vec<Variable> = file.variables().collect();
    let mut referenced: HashSet<String> = HashSet::new();
    for var in &variables {
        for attr in ["coordinates", "bounds", "climatology"] {
            if let Some(text) = text_attr(var, attr) {
                referenced.extend(text.split_whitespace().map(str::to_string));
            }
        }
        if let Some(mapping) = grid_mapping_name(var) {
            referenced.insert(mapping);
        }
    }
    let mut catalog = Vec::new();
    for var in &variables {
        let name = var.name();
        let dims: Vec<(String, usize)> = var
            .dimensions()
            .iter()
            .map(|d| (d.name(), d.len()))
            .collect();
        let n = dims.len();
        let numeric = matches!(
            var.vartype(),
            NcVariableType::Int(_) | NcVariableType::Float(_)
        );
        if n < 2 || !numeric || referenced.contains(&name) {
            continue;
        }
        let standard_name = text_attr(var, "standard_name");
        if standard_name
            .as_deref()
            .is_some_and(|s| COORDINATE_STANDARD_NAMES.contains(&s))
        {
            continue;
        }
        if is_time_dimension(file, &dims[n - 2].0) || is_time_dimension(file, &dims[n - 1].0) {
            continue;
        }
        let has_time = dims[..n - 2]
            .iter()
            .any(|(d, _)| is_time_dimension(file, d));
        catalog.push(Catalogued {
            height_m: height_above_ground(file, var),
            info: VarInfo {
                name,
                standard_name,
                long_name: text_attr(var, "long_name"),
                units: text_attr(var, "units"),
                dims,
                has_time,
            },
        });
    }
    catalog
}

/// Height of a near-surface field from a scalar `height` coordinate named in
/// its `coordinates` attribute (CF's way of saying "2 m temperature").
fn height_above_ground(file: &netcdf::File, var: &Variable) -> Option<f64> {
    let coordinates = text_attr(var, "coordinates")?;
    coordinates.split_whitespace().find_map(|c| {
        let cvar = file.variable(c)?;
        let is_height = text_attr(&cvar, "standard_name").as_deref() == Some("height");
        if !is_height || !cvar.dimensions().is_empty() {
            return None;
        }
        let value = cvar.get_value::<f64, _>(()).ok()?;
        let scale = match text_attr(&cvar, "units").as_deref().map(str::trim) {
            Some("km") => 1000.0,
            _ => 1.0,
        };
        Some(value * scale)
    })
}

pub(crate) fn text_attr(var: &Variable, name: &str) -> Option<String> {
    let value = var.attribute(name)?.value().ok()?;
    convert_attr(value).and_then(|a| a.text().map(str::to_string))
}

fn numeric_attr(var: &Variable, name: &str) -> Option<Attr> {
    let value = var.attribute(name)?.value().ok()?;
    convert_attr(value).filter(|a| a.numbers().is_some())
}

fn attributes(var: &Variable) -> Attrs {
    var.attributes()
        .filter_map(|a| {
            let name = a.name().to_string();
            let value = convert_attr(a.value().ok()?)?;
            Some((name, value))
        })
        .collect()
}

fn convert_attr(value: AttributeValue) -> Option<Attr> {
    fn ints<T: Into<f64>>(v: Vec<T>) -> Attr {
        Attr::Numbers {
            values: v.into_iter().map(Into::into).collect(),
            float: false,
        }
    }
    fn floats<T: Into<f64>>(v: Vec<T>) -> Attr {
        Attr::Numbers {
            values: v.into_iter().map(Into::into).collect(),
            float: true,
        }
    }
    Some(match value {
        AttributeValue::Uchar(v) => ints(vec![v]),
        AttributeValue::Uchars(v) => ints(v),
        AttributeValue::Schar(v) => ints(vec![v]),
        AttributeValue::Schars(v) => ints(v),
        AttributeValue::Ushort(v) => ints(vec![v]),
        AttributeValue::Ushorts(v) => ints(v),
        AttributeValue::Short(v) => ints(vec![v]),
        AttributeValue::Shorts(v) => ints(v),
        AttributeValue::Uint(v) => ints(vec![v]),
        AttributeValue::Uints(v) => ints(v),
        AttributeValue::Int(v) => ints(vec![v]),
        AttributeValue::Ints(v) => ints(v),
        AttributeValue::Ulonglong(v) => Attr::Numbers {
            values: vec![v as f64],
            float: false,
        },
        AttributeValue::Ulonglongs(v) => Attr::Numbers {
            values: v.into_iter().map(|x| x as f64).collect(),
            float: false,
        },
        AttributeValue::Longlong(v) => Attr::Numbers {
            values: vec![v as f64],
            float: false,
        },
        AttributeValue::Longlongs(v) => Attr::Numbers {
            values: v.into_iter().map(|x| x as f64).collect(),
            float: false,
        },
        AttributeValue::Float(v) => floats(vec![v]),
        AttributeValue::Floats(v) => floats(v),
        AttributeValue::Double(v) => floats(vec![v]),
        AttributeValue::Doubles(v) => floats(v),
        AttributeValue::Str(s) => Attr::Text(s),
        AttributeValue::Strs(v) => Attr::Text(v.join(" ")),
    })
}

/// Values of a 1-D coordinate variable as f64, with CF packing applied.
fn read_coordinate(var: &Variable) -> Result<Vec<f64>, String> {
    let mut values = var
        .get_values::<f64, _>(..)
        .map_err(|e| format!("cannot read values: {e}"))?;
    let scale = numeric_attr(var, "scale_factor").and_then(|a| a.number());
    let offset = numeric_attr(var, "add_offset").and_then(|a| a.number());
    if scale.is_some() || offset.is_some() {
        let (scale, offset) = (scale.unwrap_or(1.0), offset.unwrap_or(0.0));
        values.iter_mut().for_each(|v| *v = *v * scale + offset);
    }
    Ok(values)
}

/// CF decoding of raw stored values: fill and missing values and the valid
/// range become NaN, then `scale_factor` and `add_offset` unpack the rest.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unpacker {
    fill: Option<f64>,
    missing: Vec<f64>,
    valid_min: Option<f64>,
    valid_max: Option<f64>,
    /// Whether the valid range is given in packed (stored) units.
    valid_range_packed: bool,
    scale: f64,
    offset: f64,
    /// `_Unsigned = "true"` on a signed integer type: reinterpret negatives.
    unsigned_bits: Option<i32>,
}

/// The netCDF library's default fill value of a type, which marks values
/// never written when a variable has no `_FillValue`. Byte types have none
/// in practice (the netCDF guide recommends not assuming one).
fn default_fill(vartype: &NcVariableType) -> Option<f64> {
    match vartype {
        NcVariableType::Int(IntType::I16) => Some(-32767.0),
        NcVariableType::Int(IntType::U16) => Some(65535.0),
        NcVariableType::Int(IntType::I32) => Some(-2_147_483_647.0),
        NcVariableType::Int(IntType::U32) => Some(4_294_967_295.0),
        NcVariableType::Int(IntType::I64) => Some(-9_223_372_036_854_775_806.0),
        NcVariableType::Int(IntType::U64) => Some(18_446_744_073_709_551_614.0),
        NcVariableType::Float(FloatType::F32) => Some(f64::from(crate::write::FILL_F32)),
        NcVariableType::Float(FloatType::F64) => Some(9.969_209_968_386_869e36),
        _ => None,
    }
}

impl Unpacker {
    pub(crate) fn for_variable(var: &Variable) -> Result<Unpacker, String> {
        let vartype = var.vartype();
        let is_integer = matches!(vartype, NcVariableType::Int(_));
        let is_f32 = matches!(vartype, NcVariableType::Float(FloatType::F32));
        let unsigned_bits = match (&vartype, text_attr(var, "_Unsigned").as_deref()) {
            (NcVariableType::Int(IntType::I8), Some("true")) => Some(8),
            (NcVariableType::Int(IntType::I16), Some("true")) => Some(16),
            (NcVariableType::Int(IntType::I32), Some("true")) => Some(32),
            _ => None,
        };
        // Attribute values are compared with stored values, so bring them to
        // the stored precision (a double _FillValue on a float variable).
        let as_stored = |v: f64| {
            let v = if is_f32 { f64::from(v as f32) } else { v };
            match unsigned_bits {
                Some(bits) if v < 0.0 => v + 2f64.powi(bits),
                _ => v,
            }
        };
        let fill = match numeric_attr(var, "_FillValue") {
            Some(a) => a.number().map(as_stored),
            None => default_fill(&vartype),
        };
        let missing = numeric_attr(var, "missing_value")
            .and_then(|a| {
                a.numbers()
                    .map(|v| v.iter().copied().map(as_stored).collect())
            })
            .unwrap_or_default();
        let scale_attr = numeric_attr(var, "scale_factor");
        let offset_attr = numeric_attr(var, "add_offset");
        let packed = scale_attr.is_some() || offset_attr.is_some();
        let scale = scale_attr.and_then(|a| a.number()).unwrap_or(1.0);
        let offset = offset_attr.and_then(|a| a.number()).unwrap_or(0.0);
        if !(scale.is_finite() && offset.is_finite()) || scale == 0.0 {
            return Err(format!(
                "invalid packing scale_factor={scale} add_offset={offset}"
            ));
        }
        let (mut valid_min, mut valid_max, mut range_is_float) = (None, None, false);
        if let Some(Attr::Numbers { values, float }) = numeric_attr(var, "valid_range") {
            if values.len() != 2 || values[0] > values[1] {
                return Err(format!(
                    "valid_range {values:?} must be two ascending values"
                ));
            }
            valid_min = Some(values[0]);
            valid_max = Some(values[1]);
            range_is_float = float;
        } else {
            if let Some(Attr::Numbers { values, float }) = numeric_attr(var, "valid_min") {
                valid_min = values.first().copied();
                range_is_float |= float;
            }
            if let Some(Attr::Numbers { values, float }) = numeric_attr(var, "valid_max") {
                valid_max = values.first().copied();
                range_is_float |= float;
            }
        }
        // CF: the valid range is in packed units, except that a float range
        // on integer-packed data is taken to be in unpacked units.
        let valid_range_packed = !(packed && is_integer && range_is_float);
        if valid_range_packed {
            valid_min = valid_min.map(as_stored);
            valid_max = valid_max.map(as_stored);
        }
        Ok(Unpacker {
            fill,
            missing,
            valid_min,
            valid_max,
            valid_range_packed,
            scale,
            offset,
            unsigned_bits,
        })
    }

    #[inline]
    fn decode(&self, stored: f64) -> f32 {
        let mut v = stored;
        if let Some(bits) = self.unsigned_bits {
            if v < 0.0 {
                v += 2f64.powi(bits);
            }
        }
        if v.is_nan() || self.fill == Some(v) || self.missing.contains(&v) {
            return f32::NAN;
        }
        let outside =
            |x: f64| self.valid_min.is_some_and(|m| x < m) || self.valid_max.is_some_and(|m| x > m);
        if self.valid_range_packed && outside(v) {
            return f32::NAN;
        }
        let unpacked = v * self.scale + self.offset;
        if !self.valid_range_packed && outside(unpacked) {
            return f32::NAN;
        }
        unpacked as f32
    }
}

/// Read values in their stored type and decode them to f32. Reading the
/// stored type (rather than asking libnetcdf for doubles) keeps memory at one
/// f32 per cell plus the stored bytes, which matters for 30" global grids.
fn read_decoded(
    var: &Variable,
    extents: &[Extent],
    unpacker: &Unpacker,
) -> Result<Vec<f32>, netcdf::Error> {
    macro_rules! decode_as {
        ($t:ty) => {
            var.get_values::<$t, _>(extents)?
                .into_iter()
                .map(|v| unpacker.decode(v as f64))
                .collect()
        };
    }
    let values: Vec<f32> = match var.vartype() {
        NcVariableType::Int(IntType::U8) => decode_as!(u8),
        NcVariableType::Int(IntType::I8) => decode_as!(i8),
        NcVariableType::Int(IntType::U16) => decode_as!(u16),
        NcVariableType::Int(IntType::I16) => decode_as!(i16),
        NcVariableType::Int(IntType::U32) => decode_as!(u32),
        NcVariableType::Int(IntType::I32) => decode_as!(i32),
        NcVariableType::Int(IntType::U64) => decode_as!(u64),
        NcVariableType::Int(IntType::I64) => decode_as!(i64),
        NcVariableType::Float(FloatType::F32) => decode_as!(f32),
        NcVariableType::Float(FloatType::F64) => decode_as!(f64),
        other => {
            return Err(netcdf::Error::Str(format!(
                "values of type {other:?} are not numeric"
            )))
        }
    };
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write a small NetCDF-4 file with one packed int16 variable.
    fn packed_file(dir: &Path) -> std::path::PathBuf {
        hdf5_quiet::silence_this_thread();
        let path = dir.join("packed.nc");
        let mut f = netcdf::create(&path).expect("create");
        f.add_dimension("lat", 2).expect("dim");
        f.add_dimension("lon", 3).expect("dim");
        let mut lat = f.add_variable::<f64>("lat", &["lat"]).expect("lat");
        lat.put_attribute("units", "degrees_north").expect("attr");
        lat.put_values(&[10.0, 11.0], ..).expect("values");
        let mut lon = f.add_variable::<f64>("lon", &["lon"]).expect("lon");
        lon.put_attribute("units", "degrees_east").expect("attr");
        lon.put_values(&[20.0, 21.0, 22.0], ..).expect("values");
        let mut t = f.add_variable::<i16>("t2m", &["lat", "lon"]).expect("var");
        t.put_attribute("units", "degC").expect("attr");
        t.put_attribute("scale_factor", 0.01f64).expect("attr");
        t.put_attribute("add_offset", 10.0f64).expect("attr");
        t.put_attribute("_FillValue", -32768i16).expect("attr");
        t.put_attribute("missing_value", -32000i16).expect("attr");
        t.put_attribute("valid_range", vec![-30000i16, 30000])
            .expect("attr");
        t.put_values(&[0i16, 100, -32768, -32000, 30001, -1000], ..)
            .expect("values");
        path
    }

    #[test]
    fn fill_missing_range_scale_and_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = packed_file(dir.path());
        let file = netcdf::open(&path).expect("open");
        let var = file.variable("t2m").expect("var");
        let unpacker = Unpacker::for_variable(&var).expect("unpacker");
        let values =
            read_decoded(&var, &[Extent::from(0..2), Extent::from(0..3)], &unpacker).expect("read");
        assert!((values[0] - 10.0).abs() < 1e-6);
        assert!((values[1] - 11.0).abs() < 1e-6);
        assert!(values[2].is_nan(), "_FillValue");
        assert!(values[3].is_nan(), "missing_value");
        assert!(values[4].is_nan(), "outside valid_range");
        assert!((values[5] - 0.0).abs() < 1e-6);
    }

    #[test]
    fn default_fill_applies_without_fill_attribute() {
        hdf5_quiet::silence_this_thread();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nofill.nc");
        {
            let mut f = netcdf::create(&path).expect("create");
            f.add_dimension("y", 1).expect("dim");
            f.add_dimension("x", 3).expect("dim");
            let mut v = f.add_variable::<f32>("v", &["y", "x"]).expect("var");
            // Only the first value is written; the rest keep the library fill.
            v.put_values(&[1.5f32], [0..1, 0..1]).expect("values");
            let mut b = f.add_variable::<u8>("mask", &["y", "x"]).expect("var");
            b.put_values(&[255u8, 0, 1], ..).expect("values");
        }
        let file = netcdf::open(&path).expect("open");
        let var = file.variable("v").expect("var");
        let values = read_decoded(
            &var,
            &[Extent::from(0..1), Extent::from(0..3)],
            &Unpacker::for_variable(&var).expect("unpacker"),
        )
        .expect("read");
        assert_eq!(values[0], 1.5);
        assert!(values[1].is_nan() && values[2].is_nan());
        // Bytes have no default fill: 255 stays a value.
        let mask = file.variable("mask").expect("mask");
        let values = read_decoded(
            &mask,
            &[Extent::from(0..1), Extent::from(0..3)],
            &Unpacker::for_variable(&mask).expect("unpacker"),
        )
        .expect("read");
        assert_eq!(values, vec![255.0, 0.0, 1.0]);
    }

    #[test]
    fn grid_mapping_attribute_forms() {
        hdf5_quiet::silence_this_thread();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gm.nc");
        {
            let mut f = netcdf::create(&path).expect("create");
            f.add_dimension("y", 1).expect("dim");
            let mut a = f.add_variable::<f32>("a", &["y"]).expect("var");
            a.put_attribute("grid_mapping", "crs").expect("attr");
            let mut b = f.add_variable::<f32>("b", &["y"]).expect("var");
            b.put_attribute("grid_mapping", "lcc: x y crs: lat lon")
                .expect("attr");
        }
        let file = netcdf::open(&path).expect("open");
        let a = file.variable("a").expect("a");
        let b = file.variable("b").expect("b");
        assert_eq!(grid_mapping_name(&a).as_deref(), Some("crs"));
        assert_eq!(grid_mapping_name(&b).as_deref(), Some("lcc"));
    }
}
