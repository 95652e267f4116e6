//! Perfect-model training pairs, made with `finecast-protocol` exactly as
//! `finecast evaluate` makes its cases: the fine truth is averaged
//! conservatively onto a 0.25° lat/lon grid whose cell edges lie on
//! multiples of 0.25°, the DEM is brought onto the truth cells (area mean when
//! over 2x finer, else bilinear), the coarse orography is the same coarse mean
//! of that fine DEM, and both coarse fields are interpolated bilinearly back
//! onto the truth cells.

use std::ops::Range;
use std::path::{Path, PathBuf};

use finecast_grid::{Field, Grid, Region};
use finecast_io::wind::{to_earth_relative, WindComponent};
use finecast_io::{Selection, TimeSel};
use finecast_methods::{interpolate, Interp, Positions};
use finecast_model::{ModelError, ModelInputs, ModelKind};
use finecast_protocol::{ascending, coarse_grid, coarsen, Terrain};
use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// One truth dataset: a variable of a fine file, some of its times, a DEM, an
/// optional crop region and boxes to blank out (held-out regions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// Label used in logs and reports.
    pub name: String,
    /// The data source the set comes from ("prism", "wrf", "rtma"...), for
    /// leave-one-source-out cross-validation (`crate::crossval`): every set
    /// of a source is left out together. Default: `name`.
    #[serde(default)]
    pub source: Option<String>,
    /// Truth file (relative paths are relative to the data root).
    pub truth: PathBuf,
    /// Variable name or standard name.
    pub var: String,
    /// Time indices to use; empty means the first time only.
    #[serde(default)]
    pub times: Vec<usize>,
    /// DEM file (relative to the data root).
    pub terrain: PathBuf,
    /// Crop to this box `[south, north, west, east]` (degrees) first.
    #[serde(default)]
    pub region: Option<[f64; 4]>,
    /// Boxes `[south, north, west, east]` whose truth cells are set missing
    /// before coarsening, so nothing of them reaches the inputs or the loss.
    #[serde(default)]
    pub exclude: Vec<[f64; 4]>,
    /// Relative sampling weight of this source in training.
    #[serde(default = "one")]
    pub weight: f64,
}

impl SourceSpec {
    /// The source label (see [`SourceSpec::source`]).
    pub fn source(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }
}

fn one() -> f64 {
    1.0
}

/// A truth field with its perfect-model inputs on the truth grid. For wind,
/// the fields here are the eastward component and [`Pair::wind`] holds the
/// northward one.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The set's name, with `[t]` appended for time index `t` (e.g.
    /// `prism-co[2]`); logs, validation columns and the sampler's grouping
    /// use it.
    pub name: String,
    /// The truth grid in ascending order (rows south to north, columns west
    /// to east): every array of the pair is on it.
    pub grid: Grid,
    /// The fine truth (SI units: K, kg m-2 or kg m-2 s-1, or the eastward
    /// wind in m s-1), NaN where missing or blanked out.
    pub truth: Array2<f32>,
    /// The conservatively coarsened truth, interpolated bilinearly back onto
    /// the truth cells: the model's `coarse_bilinear` input.
    pub coarse_bilinear: Array2<f32>,
    /// The coarse mean of the fine DEM, interpolated bilinearly back onto the
    /// truth cells (m).
    pub coarse_orog_bilinear: Array2<f32>,
    /// The DEM on the truth cells (m).
    pub fine_orog: Array2<f32>,
    /// Effective grid spacing of the truth grid (m), see
    /// [`effective_spacing`].
    pub dx_m: f64,
    /// Coarse field on the coarse lat/lon grid (`coarse_res_deg`, 0.25° by
    /// default), for the baselines.
    pub coarse: Field,
    /// Coarse orography (m) on the same coarse grid, for the terrain
    /// baselines.
    pub coarse_orog: Field,
    /// Sampling weight of the pair's source ([`SourceSpec::weight`]; 1 when
    /// made directly with [`make_pair`]).
    pub weight: f64,
    /// Wind pairs: the northward component and the grid's orientation.
    pub wind: Option<WindPair>,
}

/// The northward half of a wind pair (earth-relative, m s-1).
#[derive(Debug, Clone)]
pub struct WindPair {
    /// The northward fine truth (m s-1) on the pair's grid.
    pub truth: Array2<f32>,
    /// The coarsened northward component, interpolated bilinearly back onto
    /// the truth cells: the model's `northward_bilinear` input.
    pub coarse_bilinear: Array2<f32>,
    /// The coarsened northward component on the coarse grid (for the
    /// baselines).
    pub coarse: Field,
    /// [`Grid::x_axis_angle`] of the truth grid.
    pub x_axis_angle: Array2<f32>,
}

impl Pair {
    /// Cells where the truth and every input (both components for wind)
    /// are finite: the cells that can give a training target. Used to spread
    /// a source's sampling weight over its pairs.
    pub fn valid_count(&self) -> usize {
        let wind_ok = |j: usize, i: usize| {
            self.wind.as_ref().is_none_or(|w| {
                w.truth[[j, i]].is_finite() && w.coarse_bilinear[[j, i]].is_finite()
            })
        };
        ndarray::Zip::indexed(&self.truth)
            .and(&self.coarse_bilinear)
            .and(&self.coarse_orog_bilinear)
            .and(&self.fine_orog)
            .fold(0, |n, (j, i), a, b, c, d| {
                let ok = a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite();
                n + (ok && wind_ok(j, i)) as usize
            })
    }

    /// The model inputs of a window of the pair.
    pub fn inputs(&self, rows: Range<usize>, cols: Range<usize>) -> ModelInputs<'_> {
        let win = s![rows, cols];
        let inputs = ModelInputs::new(
            self.coarse_bilinear.slice(win),
            self.coarse_orog_bilinear.slice(win),
            self.fine_orog.slice(win),
            self.dx_m,
        );
        match &self.wind {
            Some(w) => inputs.with_wind(
                w.coarse_bilinear.slice(win),
                Some(w.x_axis_angle.slice(win)),
            ),
            None => inputs,
        }
    }

    /// The truth components of a window of the pair.
    pub fn truths(&self, rows: Range<usize>, cols: Range<usize>) -> Vec<ArrayView2<'_, f32>> {
        let win = s![rows, cols];
        let mut out = vec![self.truth.slice(win)];
        out.extend(self.wind.as_ref().map(|w| w.truth.slice(win)));
        out
    }

    /// Every row and column of the pair.
    pub fn whole(&self) -> (Range<usize>, Range<usize>) {
        let (ny, nx) = self.truth.dim();
        (0..ny, 0..nx)
    }
}

/// Effective grid spacing (m): geometric mean of the spacings along x and y.
pub fn effective_spacing(grid: &Grid) -> f64 {
    let (dx, dy) = grid.spacing_m();
    (dx * dy).sqrt()
}

/// Build the perfect-model pair of a truth field and the DEM on its cells
/// (both turned to ascending order first, see [`ascending`]).
pub fn make_pair(
    name: &str,
    truth: &Field,
    fine_orog: &Field,
    coarse_res_deg: f64,
) -> Result<Pair, ModelError> {
    if fine_orog.grid != truth.grid {
        return Err(ModelError::Data(format!(
            "{name}: the DEM is not on the truth grid"
        )));
    }
    let protocol = |e: finecast_protocol::ProtocolError| ModelError::Data(format!("{name}: {e}"));
    let (truth, fine_orog) = (
        &ascending(truth).map_err(protocol)?,
        &ascending(fine_orog).map_err(protocol)?,
    );
    let coarse_grid = coarse_grid(&truth.grid, coarse_res_deg).map_err(protocol)?;
    let coarse = coarsen(truth, &coarse_grid);
    let coarse_orog = coarsen(fine_orog, &coarse_grid);
    let pos = Positions::new(&coarse_grid, &truth.grid);
    let coarse_bilinear = interpolate(coarse.data.view(), &coarse_grid, &pos, Interp::Bilinear);
    let coarse_orog_bilinear = interpolate(
        coarse_orog.data.view(),
        &coarse_grid,
        &pos,
        Interp::Bilinear,
    );
    Ok(Pair {
        name: name.to_string(),
        grid: truth.grid.clone(),
        truth: truth.data.clone(),
        coarse_bilinear,
        coarse_orog_bilinear,
        fine_orog: fine_orog.data.clone(),
        dx_m: effective_spacing(&truth.grid),
        coarse,
        coarse_orog,
        weight: 1.0,
        wind: None,
    })
}

/// The perfect-model pair of a wind vector: `east` and `north` (earth-
/// relative) on one grid, both coarsened onto the same coarse grid.
pub fn make_wind_pair(
    name: &str,
    east: &Field,
    north: &Field,
    fine_orog: &Field,
    coarse_res_deg: f64,
) -> Result<Pair, ModelError> {
    if north.grid != east.grid {
        return Err(ModelError::Data(format!(
            "{name}: the two wind components are on different grids"
        )));
    }
    let mut pair = make_pair(name, east, fine_orog, coarse_res_deg)?;
    let north = ascending(north).map_err(|e| ModelError::Data(format!("{name}: {e}")))?;
    let coarse = coarsen(&north, &pair.coarse.grid);
    let pos = Positions::new(&pair.coarse.grid, &pair.grid);
    let coarse_bilinear = interpolate(coarse.data.view(), &coarse.grid, &pos, Interp::Bilinear);
    pair.wind = Some(WindPair {
        truth: north.data,
        coarse_bilinear,
        coarse,
        x_axis_angle: pair.grid.x_axis_angle(),
    });
    Ok(pair)
}

/// The DEM of `path` on `target` (area mean when the DEM is over 2x finer,
/// else bilinear; missing cells are sea level), as jobs and `finecast
/// evaluate` load it.
pub fn load_terrain(path: &Path, target: &Grid, margin_deg: f64) -> Result<Field, ModelError> {
    Terrain::load(path, target, margin_deg)
        .map(|t| t.fine)
        .map_err(|e| ModelError::Data(e.to_string()))
}

fn region_of(b: &[f64; 4]) -> Result<Region, ModelError> {
    Region::new(b[0], b[1], b[2], b[3]).map_err(|e| ModelError::Data(e.to_string()))
}

/// A truth file opened, `var` resolved in it, and the selection of one time
/// index (the first by default) around `region`.
fn open_truth(
    path: &Path,
    var: &str,
    time_index: Option<usize>,
    region: Option<&Region>,
) -> Result<(finecast_io::Dataset, String, Selection), ModelError> {
    let err = |e: finecast_io::IoError| ModelError::Data(format!("{}: {e}", path.display()));
    let ds = finecast_io::open(path).map_err(err)?;
    let name = ds.resolve(var).map_err(err)?;
    let sel = Selection {
        time: time_index.map(TimeSel::Index).unwrap_or(TimeSel::First),
        bbox: region.map(|r| (r.west, r.south, r.east, r.north)),
    };
    Ok((ds, name, sel))
}

/// Read a truth field (SI units) for a model of `kind` at one time index,
/// cropped to `region`; returns the field and its units.
pub fn read_truth(
    path: &Path,
    kind: ModelKind,
    var: &str,
    time_index: Option<usize>,
    region: Option<&Region>,
) -> Result<(Field, String), ModelError> {
    let err = |what: String| ModelError::Data(format!("{}: {what}", path.display()));
    let (ds, name, sel) = open_truth(path, var, time_index, region)?;
    let data = ds.read(&name, &sel).map_err(|e| err(e.to_string()))?;
    if !kind.accepts_units(&data.units) {
        return Err(err(format!(
            "'{name}' has units '{}', not those of a {kind} model",
            data.units
        )));
    }
    Ok((crop(path, data.field, region)?, data.units))
}

/// `field` cropped to `region` (when given); a region with no cells of
/// `path`'s grid is an error.
fn crop(path: &Path, field: Field, region: Option<&Region>) -> Result<Field, ModelError> {
    let Some(r) = region else {
        return Ok(field);
    };
    field
        .crop_to_region(r)
        .ok_or_else(|| ModelError::Data(format!("{}: region {r:?} holds no cells", path.display())))
}

/// Read the 10 m wind of a truth file as earth-relative eastward and
/// northward fields (m s-1): `var` names the eastward (or grid-x) component
/// and its counterpart is found by name. Components along the grid axes
/// (CF `x_wind`/`y_wind`, as WRF writes them) are turned to east/north with
/// the grid's [`Grid::x_axis_angle`].
pub fn read_wind_truth(
    path: &Path,
    var: &str,
    time_index: Option<usize>,
    region: Option<&Region>,
) -> Result<(Field, Field), ModelError> {
    let err = |what: String| ModelError::Data(format!("{}: {what}", path.display()));
    let (ds, east_name, sel) = open_truth(path, var, time_index, region)?;
    let Some((WindComponent::Eastward, partner)) = WindComponent::of(&[&east_name, var]) else {
        return Err(err(format!(
            "'{var}' is not an eastward 10 m wind component (u10, uas, 10u)"
        )));
    };
    let north_name = ds.resolve(partner).map_err(|_| {
        err(format!(
            "no northward counterpart '{partner}' of '{east_name}'"
        ))
    })?;
    let read = |name: &str| ds.read(name, &sel).map_err(|e| err(e.to_string()));
    let (mut east, mut north) = (read(&east_name)?, read(&north_name)?);
    if east.units != "m s-1" {
        return Err(err(format!(
            "'{east_name}' has units '{}', not m s-1",
            east.units
        )));
    }
    to_earth_relative(path, WindComponent::Eastward, &mut east, &mut north)
        .map_err(|e| ModelError::Data(e.to_string()))?;
    let (u, v) = (east.field, north.field);
    Ok((crop(path, u, region)?, crop(path, v, region)?))
}

/// Set the cells of `field` inside any of `boxes` missing.
pub fn blank_boxes(field: &mut Field, boxes: &[Region]) {
    if boxes.is_empty() {
        return;
    }
    let (ny, nx) = field.grid.shape();
    for j in 0..ny {
        for i in 0..nx {
            let (lon, lat) = field.grid.lonlat(j, i);
            if boxes.iter().any(|b| b.contains(lon, lat)) {
                field.data[[j, i]] = f32::NAN;
            }
        }
    }
}

/// Load every (source, time) pair of `specs` for a model of `kind`. DEMs are
/// loaded once per source.
pub fn load_pairs(
    kind: ModelKind,
    specs: &[SourceSpec],
    data_root: &Path,
    coarse_res_deg: f64,
) -> Result<Vec<Pair>, ModelError> {
    let mut pairs = Vec::new();
    for spec in specs {
        let truth_path = data_root.join(&spec.truth);
        let dem_path = data_root.join(&spec.terrain);
        let region = spec.region.as_ref().map(region_of).transpose()?;
        let exclude: Vec<Region> = spec
            .exclude
            .iter()
            .map(region_of)
            .collect::<Result<_, _>>()?;
        let times: Vec<Option<usize>> = if spec.times.is_empty() {
            vec![None]
        } else {
            spec.times.iter().map(|&t| Some(t)).collect()
        };
        let mut dem: Option<Field> = None;
        let started = std::time::Instant::now();
        for t in times {
            let (mut truth, mut northward) = if kind == ModelKind::Wind {
                let (u, v) = read_wind_truth(&truth_path, &spec.var, t, region.as_ref())?;
                (u, Some(v))
            } else {
                (
                    read_truth(&truth_path, kind, &spec.var, t, region.as_ref())?.0,
                    None,
                )
            };
            blank_boxes(&mut truth, &exclude);
            if let Some(v) = &mut northward {
                blank_boxes(v, &exclude);
            }
            let fine_orog = match dem.take() {
                Some(d) if d.grid == truth.grid => d,
                _ => load_terrain(&dem_path, &truth.grid, 0.5)?,
            };
            let name = match t {
                Some(t) => format!("{}[{t}]", spec.name),
                None => spec.name.clone(),
            };
            let mut pair = match &northward {
                Some(v) => make_wind_pair(&name, &truth, v, &fine_orog, coarse_res_deg)?,
                None => make_pair(&name, &truth, &fine_orog, coarse_res_deg)?,
            };
            dem = Some(fine_orog);
            pair.weight = spec.weight;
            tracing::info!(
                pair = %pair.name,
                shape = ?pair.truth.dim(),
                valid = pair.valid_count(),
                dx_m = format!("{:.0}", pair.dx_m),
                seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
                "loaded pair"
            );
            pairs.push(pair);
        }
    }
    Ok(pairs)
}

/// Where the shared sample data lives: `$FINECAST_SHARED_DATA`, else
/// `<workspace>/../shared/data` (i.e. `CARGO_MANIFEST_DIR/../../../shared/data`).
pub fn shared_data_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FINECAST_SHARED_DATA").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    p.is_dir().then_some(p)
}
