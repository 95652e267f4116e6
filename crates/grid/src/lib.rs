//! Grids for finecast: a CRS plus 1-D native coordinates of cell centres.
//!
//! Every grid is a tensor product of two strictly monotone coordinate vectors
//! (ascending or descending, so south-up and north-up grids are both valid), in
//! the native units of its [`Crs`]. Fields on a grid are `ndarray::Array2` with
//! shape `(ny, nx)`: row `j` is `y[j]`, column `i` is `x[i]`.

mod crs;
mod region;

use std::fmt;
use std::sync::Arc;

use ndarray::{s, Array2};

pub use crs::{wrap180, AttrValue, Crs, Earth};
pub use region::Region;

/// Mean Earth radius used for distances and areas on lat/lon grids (m).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Why a grid, field, CRS or region could not be built.
///
/// Each variant carries a human-readable message naming the offending value.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// Coordinate vectors that cannot define a grid (empty, non-finite or not
    /// strictly monotone), or field data whose shape is not the grid's
    /// `(ny, nx)`.
    #[error("invalid grid coordinates: {0}")]
    Coordinates(String),
    /// A CRS that `proj4rs` rejects (the message quotes the PROJ string), or
    /// invalid CRS parameters such as a UTM zone outside 1..=60.
    #[error("projection error: {0}")]
    Projection(String),
    /// A latitude/longitude box that is malformed or unparsable (see
    /// [`Region::new`]), or a grid for a region that cannot be projected or
    /// would be too large (over 10^8 cells) or too fine (under 10 m).
    #[error("invalid region: {0}")]
    Region(String),
}

/// A horizontal grid: CRS plus native cell-centre coordinates.
#[derive(Clone)]
pub struct Grid {
    crs: Crs,
    x: Vec<f64>,
    y: Vec<f64>,
    /// `(first centre, step)` of each axis when evenly spaced (every grid
    /// finecast writes): locating a point is then arithmetic, not a search.
    x_even: Option<(f64, f64)>,
    y_even: Option<(f64, f64)>,
    transformer: Arc<crs::Transformer>,
}

impl fmt::Debug for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Grid({} {}x{}, x {:.4}..{:.4}, y {:.4}..{:.4})",
            self.crs.grid_mapping_name(),
            self.nx(),
            self.ny(),
            self.x[0],
            self.x[self.nx() - 1],
            self.y[0],
            self.y[self.ny() - 1]
        )
    }
}

impl PartialEq for Grid {
    fn eq(&self, other: &Grid) -> bool {
        self.crs == other.crs && self.x == other.x && self.y == other.y
    }
}

fn check_monotone(name: &str, v: &[f64]) -> Result<(), GridError> {
    if v.is_empty() {
        return Err(GridError::Coordinates(format!("{name} is empty")));
    }
    if let Some(bad) = v.iter().find(|c| !c.is_finite()) {
        return Err(GridError::Coordinates(format!(
            "{name} has a non-finite value {bad}"
        )));
    }
    if v.len() > 1 {
        let asc = v[1] > v[0];
        let ok = v
            .windows(2)
            .all(|w| if asc { w[1] > w[0] } else { w[1] < w[0] });
        if !ok {
            return Err(GridError::Coordinates(format!(
                "{name} is not strictly monotone"
            )));
        }
    }
    Ok(())
}

impl Grid {
    /// A grid from a CRS and 1-D cell-centre coordinates (strictly monotone).
    pub fn new(crs: Crs, x: Vec<f64>, y: Vec<f64>) -> Result<Grid, GridError> {
        check_monotone("x", &x)?;
        check_monotone("y", &y)?;
        let transformer = Arc::new(crs::Transformer::new(&crs)?);
        Ok(Grid::from_parts(crs, x, y, transformer))
    }

    fn from_parts(crs: Crs, x: Vec<f64>, y: Vec<f64>, transformer: Arc<crs::Transformer>) -> Grid {
        Grid {
            crs,
            x_even: even_spacing(&x),
            y_even: even_spacing(&y),
            x,
            y,
            transformer,
        }
    }

    /// A regular lat/lon grid with `n` cells of `step` degrees from the first centre.
    pub fn regular_latlon(
        lon0: f64,
        dlon: f64,
        nlon: usize,
        lat0: f64,
        dlat: f64,
        nlat: usize,
    ) -> Result<Grid, GridError> {
        let x = (0..nlon).map(|i| lon0 + dlon * i as f64).collect();
        let y = (0..nlat).map(|j| lat0 + dlat * j as f64).collect();
        Grid::new(Crs::wgs84(), x, y)
    }

    /// The coordinate reference system the native coordinates are in.
    pub fn crs(&self) -> &Crs {
        &self.crs
    }
    /// Cell-centre x coordinates (columns, index `i`): degrees of
    /// (rotated) longitude on angular grids, metres of easting on projected
    /// ones. Strictly monotone, ascending or descending.
    pub fn x(&self) -> &[f64] {
        &self.x
    }
    /// Cell-centre y coordinates (rows, index `j`): degrees of (rotated)
    /// latitude on angular grids, metres of northing on projected ones.
    /// Ascending (south-up) or descending (north-up).
    pub fn y(&self) -> &[f64] {
        &self.y
    }
    /// Number of columns (length of the x axis).
    pub fn nx(&self) -> usize {
        self.x.len()
    }
    /// Number of rows (length of the y axis).
    pub fn ny(&self) -> usize {
        self.y.len()
    }
    /// `(ny, nx)`, the shape of a field on this grid.
    pub fn shape(&self) -> (usize, usize) {
        (self.ny(), self.nx())
    }
    /// Whether the CRS is plain `latitude_longitude` (not rotated pole), so
    /// that x and y are geographic longitude and latitude themselves.
    pub fn is_latlon(&self) -> bool {
        matches!(self.crs, Crs::LatLon { .. })
    }

    /// Whether rows run north to south (y descending) on an angular grid, or
    /// y descending on a projected one.
    pub fn is_y_descending(&self) -> bool {
        self.ny() > 1 && self.y[1] < self.y[0]
    }

    /// Whether columns run against the x axis (x descending).
    pub fn is_x_descending(&self) -> bool {
        self.nx() > 1 && self.x[1] < self.x[0]
    }

    /// For lat/lon grids: does the x axis wrap all the way round the globe?
    pub fn wraps_longitude(&self) -> bool {
        if !self.crs.is_angular() || self.nx() < 2 {
            return false;
        }
        let step = (self.x[1] - self.x[0]).abs();
        ((self.nx() as f64) * step - 360.0).abs() < step * 0.5
    }

    /// Geographic longitude/latitude (degrees) of cell `(j, i)`.
    pub fn lonlat(&self, j: usize, i: usize) -> (f64, f64) {
        self.transformer
            .inverse(self.x[i], self.y[j])
            .unwrap_or((f64::NAN, f64::NAN))
    }

    /// Native coordinates of a geographic point.
    pub fn to_native(&self, lon: f64, lat: f64) -> Option<(f64, f64)> {
        self.transformer.forward(lon, lat)
    }

    /// Geographic point of native coordinates.
    pub fn to_geographic(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        self.transformer.inverse(x, y)
    }

    /// Fractional `(fj, fi)` index of a geographic point: cell centres are at
    /// integers, cell `k` spans `[k - 0.5, k + 0.5)`. `None` outside the grid
    /// (more than half a cell beyond the outer centres).
    pub fn locate(&self, lon: f64, lat: f64) -> Option<(f64, f64)> {
        let (x, y) = self.to_native(lon, lat)?;
        self.native_index(x, y)
    }

    /// Fractional `(fj, fi)` index of native coordinates (longitudes of an
    /// angular grid are taken modulo 360), as [`Grid::locate`].
    pub fn native_index(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let x = if self.crs.is_angular() {
            self.normalise_longitude(x)
        } else {
            x
        };
        let fi = axis_index(&self.x, self.x_even, x)?;
        let fj = axis_index(&self.y, self.y_even, y)?;
        Some((fj, fi))
    }

    /// Where the fractional cell index is an affine function of the native
    /// coordinates (both axes evenly spaced, not angular so no longitude
    /// wrap): `((x0, dx), (y0, dy))` with `fi = (x - x0) / dx`,
    /// `fj = (y - y0) / dy`, valid for `fi` in `[-0.5, nx - 0.5]` (and `fj`
    /// alike), as [`Grid::native_index`] computes them; `None` otherwise.
    /// Renderers interpolate indices instead of coordinates with it.
    pub fn affine_index(&self) -> Option<((f64, f64), (f64, f64))> {
        if self.crs.is_angular() {
            return None;
        }
        Some((self.x_even?, self.y_even?))
    }

    /// Shift an angular x coordinate by multiples of 360 into this grid's range.
    fn normalise_longitude(&self, x: f64) -> f64 {
        let n = self.nx();
        let lo = self.x[0].min(self.x[n - 1]);
        let half = if n > 1 {
            (self.x[1] - self.x[0]).abs() * 0.5
        } else {
            0.0
        };
        let start = lo - half;
        start + (x - start).rem_euclid(360.0)
    }

    /// Approximate cell spacing `(dx, dy)` in metres at the grid's centre.
    pub fn spacing_m(&self) -> (f64, f64) {
        let step = |v: &[f64]| {
            if v.len() > 1 {
                (v[v.len() - 1] - v[0]).abs() / (v.len() - 1) as f64
            } else {
                0.0
            }
        };
        let (sx, sy) = (step(&self.x), step(&self.y));
        if self.crs.is_angular() {
            let deg = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
            let ymid = self.y[self.ny() / 2];
            (sx * deg * ymid.to_radians().cos(), sy * deg)
        } else {
            (sx, sy)
        }
    }

    /// Geographic bounding box `(west, south, east, north)` in degrees, from the
    /// grid's outline. Longitudes are continuous, so `east` may exceed 180 for a
    /// grid across the antimeridian.
    pub fn bbox_lonlat(&self) -> (f64, f64, f64, f64) {
        let (ny, nx) = self.shape();
        let mut pts = Vec::new();
        let steps = 64usize;
        for s in 0..=steps {
            let i = (s * (nx - 1)) / steps;
            let j = (s * (ny - 1)) / steps;
            pts.push(self.lonlat(0, i));
            pts.push(self.lonlat(ny - 1, i));
            pts.push(self.lonlat(j, 0));
            pts.push(self.lonlat(j, nx - 1));
        }
        pts.retain(|p| p.0.is_finite() && p.1.is_finite());
        let (s, n) = pts
            .iter()
            .fold((90.0f64, -90.0f64), |(s, n), p| (s.min(p.1), n.max(p.1)));
        if self.is_latlon() {
            let (a, b) = (self.x[0].min(self.x[nx - 1]), self.x[0].max(self.x[nx - 1]));
            return (a, s, b, n);
        }
        // A pole inside the grid: every longitude is inside, and the outline
        // alone would miss the pole's latitude.
        let north_pole = self.locate(0.0, 90.0).is_some();
        let south_pole = self.locate(0.0, -90.0).is_some();
        if north_pole || south_pole {
            let n = if north_pole { 90.0 } else { n };
            let s = if south_pole { -90.0 } else { s };
            return (-180.0, s, 180.0, n);
        }
        // Unwrap longitudes around the grid's centre so an antimeridian grid stays contiguous.
        let centre = self.lonlat(ny / 2, nx / 2).0;
        let (w, e) = pts.iter().fold((f64::MAX, f64::MIN), |(w, e), p| {
            let lon = centre + wrap180(p.0 - centre);
            (w.min(lon), e.max(lon))
        });
        (w, s, e, n)
    }

    /// Sub-grid of rows `j0..j1` and columns `i0..i1`.
    pub fn subset(&self, j0: usize, j1: usize, i0: usize, i1: usize) -> Grid {
        Grid::from_parts(
            self.crs.clone(),
            self.x[i0..i1].to_vec(),
            self.y[j0..j1].to_vec(),
            self.transformer.clone(),
        )
    }

    /// Angle (radians, counter-clockwise) from geographic east to the grid's
    /// +x axis at every cell: 0 on longitude/latitude grids, the meridian
    /// convergence on projected ones. Vector components along the grid axes
    /// `(u_g, v_g)` are earth-relative as
    /// `u = u_g cos a − v_g sin a`, `v = u_g sin a + v_g cos a`.
    /// Measured from the projection itself (the geographic points a tenth of
    /// a cell either side along x), so it holds for every grid mapping.
    pub fn x_axis_angle(&self) -> Array2<f32> {
        if matches!(self.crs, Crs::LatLon { .. }) {
            return Array2::zeros(self.shape());
        }
        let (dx, _) = self.spacing_m();
        let step = if self.nx() > 1 {
            (self.x[1] - self.x[0]).abs() * 0.1
        } else {
            dx.max(1.0) * 0.1
        };
        Array2::from_shape_fn(self.shape(), |(j, i)| {
            let (x, y) = (self.x[i], self.y[j]);
            match (
                self.to_geographic(x - step, y),
                self.to_geographic(x + step, y),
            ) {
                (Some((lon0, lat0)), Some((lon1, lat1))) => {
                    let dlon = (lon1 - lon0 + 540.0).rem_euclid(360.0) - 180.0;
                    let east = dlon * ((lat0 + lat1) * 0.5).to_radians().cos();
                    (lat1 - lat0).atan2(east) as f32
                }
                _ => f32::NAN,
            }
        })
    }

    /// Cell area weights for statistics: cos(latitude) on lat/lon grids, equal
    /// weights on projected grids (whose cells are near-equal in area).
    pub fn area_weights(&self) -> Array2<f64> {
        match self.crs {
            Crs::LatLon { .. } => {
                Array2::from_shape_fn(self.shape(), |(j, _)| self.y[j].to_radians().cos().max(0.0))
            }
            Crs::RotatedPole { .. } => {
                Array2::from_shape_fn(self.shape(), |(j, _)| self.y[j].to_radians().cos())
            }
            _ => Array2::ones(self.shape()),
        }
    }

    /// A Lambert azimuthal equal-area grid centred on `region` with square cells
    /// of `resolution_m` metres covering the whole region.
    pub fn equal_area_for_region(region: &Region, resolution_m: f64) -> Result<Grid, GridError> {
        if !(resolution_m.is_finite() && resolution_m >= 10.0) {
            return Err(GridError::Region(format!(
                "resolution {resolution_m} m must be at least 10 m"
            )));
        }
        let (lon0, lat0) = region.centre();
        let crs = Crs::LambertAzimuthalEqualArea {
            longitude_of_projection_origin: round_to(lon0, 0.01),
            latitude_of_projection_origin: round_to(lat0, 0.01),
            false_easting: 0.0,
            false_northing: 0.0,
            earth: Earth::WGS84,
        };
        let t = crs::Transformer::new(&crs)?;
        let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (lon, lat) in region.outline(64) {
            let (x, y) = t.forward(lon, lat).ok_or_else(|| {
                GridError::Region(format!("point {lon},{lat} cannot be projected"))
            })?;
            xmin = xmin.min(x);
            xmax = xmax.max(x);
            ymin = ymin.min(y);
            ymax = ymax.max(y);
        }
        let axis = |lo: f64, hi: f64| -> Vec<f64> {
            let start = (lo / resolution_m).floor() * resolution_m + resolution_m * 0.5;
            let n = ((hi - start) / resolution_m).ceil() as usize + 1;
            (0..n).map(|k| start + k as f64 * resolution_m).collect()
        };
        let (x, y) = (axis(xmin, xmax), axis(ymin, ymax));
        let cells = x.len() * y.len();
        if cells > 100_000_000 {
            return Err(GridError::Region(format!(
                "{}x{} cells at {resolution_m} m is too large",
                x.len(),
                y.len()
            )));
        }
        Grid::new(crs, x, y)
    }
}

fn round_to(v: f64, step: f64) -> f64 {
    (v / step).round() * step
}

/// `(first centre, step)` when `coords` are evenly spaced (to rounding).
fn even_spacing(coords: &[f64]) -> Option<(f64, f64)> {
    let n = coords.len();
    (n >= 2)
        .then(|| (coords[0], coords[1] - coords[0]))
        .filter(|&(c0, step)| {
            coords
                .iter()
                .enumerate()
                .all(|(k, &c)| (c - (c0 + k as f64 * step)).abs() <= 1e-9 * step.abs() * n as f64)
        })
}

/// [`fractional_index`], in O(1) on an evenly spaced axis.
fn axis_index(coords: &[f64], even: Option<(f64, f64)>, v: f64) -> Option<f64> {
    match even {
        Some((c0, step)) => {
            let f = (v - c0) / step;
            (f >= -0.5 && f <= coords.len() as f64 - 0.5).then_some(f)
        }
        None => fractional_index(coords, v),
    }
}

/// Fractional position of `v` in strictly monotone `coords` (centres at integers),
/// allowing half a cell beyond each end.
pub fn fractional_index(coords: &[f64], v: f64) -> Option<f64> {
    let n = coords.len();
    if !v.is_finite() {
        return None;
    }
    if n == 1 {
        return (v == coords[0]).then_some(0.0);
    }
    let asc = coords[1] > coords[0];
    // Position in an ascending view.
    let key = |k: usize| if asc { coords[k] } else { coords[n - 1 - k] };
    let t = v;
    let first_step = key(1) - key(0);
    let last_step = key(n - 1) - key(n - 2);
    let f = if t < key(0) {
        (t - key(0)) / first_step
    } else if t >= key(n - 1) {
        (n - 1) as f64 + (t - key(n - 1)) / last_step
    } else {
        // Largest k with key(k) <= t.
        let (mut lo, mut hi) = (0usize, n - 1);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if key(mid) <= t {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo as f64 + (t - key(lo)) / (key(lo + 1) - key(lo))
    };
    if f < -0.5 || f > n as f64 - 0.5 {
        return None;
    }
    Some(if asc { f } else { (n - 1) as f64 - f })
}

#[cfg(test)]
mod tests;

/// A 2-D field on a grid; missing values are NaN.
#[derive(Debug, Clone)]
pub struct Field {
    /// The grid the values sit on.
    pub grid: Grid,
    /// Values with shape `(ny, nx)` of [`Field::grid`], in the row order of
    /// its y axis (row 0 is `y[0]`, which may be the north or the south edge).
    /// Units are the caller's (finecast's readers convert to canonical units).
    pub data: Array2<f32>,
}

impl Field {
    /// Crop a field to the largest index rectangle whose cells all lie in `region`.
    pub fn crop_to_region(&self, region: &Region) -> Option<Field> {
        let (ny, nx) = self.grid.shape();
        let inside = Array2::from_shape_fn((ny, nx), |(j, i)| {
            let (lon, lat) = self.grid.lonlat(j, i);
            region.contains(lon, lat)
        });
        let rows: Vec<usize> = (0..ny)
            .filter(|&j| inside.row(j).iter().any(|&b| b))
            .collect();
        let cols: Vec<usize> = (0..nx)
            .filter(|&i| inside.column(i).iter().any(|&b| b))
            .collect();
        let (mut j0, mut j1) = (*rows.first()?, *rows.last()? + 1);
        let (mut i0, mut i1) = (*cols.first()?, *cols.last()? + 1);
        // Trim the edge with the most outside cells until the rectangle is clean.
        loop {
            let outside = |js: std::ops::Range<usize>, is: std::ops::Range<usize>| {
                js.flat_map(|j| is.clone().map(move |i| (j, i)))
                    .filter(|&idx| !inside[idx])
                    .count()
            };
            let edges = [
                outside(j0..j0 + 1, i0..i1),
                outside(j1 - 1..j1, i0..i1),
                outside(j0..j1, i0..i0 + 1),
                outside(j0..j1, i1 - 1..i1),
            ];
            let (worst, &count) = edges.iter().enumerate().max_by_key(|(_, c)| **c)?;
            if count == 0 {
                break;
            }
            match worst {
                0 => j0 += 1,
                1 => j1 -= 1,
                2 => i0 += 1,
                _ => i1 -= 1,
            }
            if j0 >= j1 || i0 >= i1 {
                return None;
            }
        }
        let grid = self.grid.subset(j0, j1, i0, i1);
        let data = self.data.slice(s![j0..j1, i0..i1]).to_owned();
        Some(Field { grid, data })
    }

    /// A field, checking that the data shape matches the grid.
    pub fn new(grid: Grid, data: Array2<f32>) -> Result<Field, GridError> {
        if data.dim() != grid.shape() {
            return Err(GridError::Coordinates(format!(
                "data shape {:?} does not match grid shape {:?}",
                data.dim(),
                grid.shape()
            )));
        }
        Ok(Field { grid, data })
    }

    /// Number of finite values.
    pub fn valid_count(&self) -> usize {
        self.data.iter().filter(|v| v.is_finite()).count()
    }

    /// Minimum and maximum of the finite values, if any.
    pub fn range(&self) -> Option<(f32, f32)> {
        self.data
            .iter()
            .filter(|v| v.is_finite())
            .fold(None, |acc, &v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
    }
}
