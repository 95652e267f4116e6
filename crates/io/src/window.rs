//! Sub-windows of a grid covering a geographic bounding box.
//!
//! A window is a contiguous range of rows and one or two ranges of columns:
//! two when a bounding box crosses the seam of a global longitude grid (for
//! example 170 E..170 W on a -180..180 grid), in which case the columns after
//! the seam get 360 added so the window's longitudes stay monotone.

use std::ops::Range;

use finecast_grid::{Crs, Grid};

/// Cells added on every side of the cells that cover a bounding box, so that
/// interpolation near the box edge has neighbours.
pub(crate) const MARGIN_CELLS: usize = 2;

/// Rows, column pieces and the grid of a window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub rows: Range<usize>,
    pub cols: Vec<Range<usize>>,
    pub grid: Grid,
}

impl Window {
    // A window has one or two column pieces; the Vec is not a range of values.
    #[allow(clippy::single_range_in_vec_init)]
    pub(crate) fn full(grid: &Grid) -> Window {
        Window {
            rows: 0..grid.ny(),
            cols: vec![0..grid.nx()],
            grid: grid.clone(),
        }
    }

    pub(crate) fn cells(&self) -> usize {
        self.grid.ny() * self.grid.nx()
    }

    /// Copy this window out of a full `(ny, nx)` array of the parent grid.
    pub(crate) fn cut(&self, full: &ndarray::Array2<f32>) -> ndarray::Array2<f32> {
        let mut out = ndarray::Array2::from_elem(self.grid.shape(), f32::NAN);
        let mut col0 = 0;
        for piece in &self.cols {
            let width = piece.len();
            out.slice_mut(ndarray::s![.., col0..col0 + width])
                .assign(&full.slice(ndarray::s![self.rows.clone(), piece.clone()]));
            col0 += width;
        }
        out
    }
}

/// Validate a `(west, south, east, north)` box; returns it with `east > west`
/// (adding 360 to `east` for a box across the antimeridian).
pub(crate) fn normalise_bbox(bbox: (f64, f64, f64, f64)) -> Result<(f64, f64, f64, f64), String> {
    let (west, south, mut east, north) = bbox;
    if [west, south, east, north].iter().any(|v| !v.is_finite()) {
        return Err("has a non-finite bound".to_string());
    }
    if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&north) || south >= north {
        return Err("latitudes must satisfy -90 <= south < north <= 90".to_string());
    }
    if !(-360.0..=360.0).contains(&west) || !(-360.0..=360.0).contains(&east) {
        return Err("longitudes must lie within -360..360".to_string());
    }
    if east <= west {
        east += 360.0;
    }
    Ok((west, south, east, north))
}

/// The window of `grid` covering `bbox` plus [`MARGIN_CELLS`] on every side.
pub(crate) fn for_bbox(grid: &Grid, bbox: (f64, f64, f64, f64)) -> Result<Window, String> {
    let (west, south, east, north) = normalise_bbox(bbox)?;
    let no_overlap = || {
        let (w, s, e, n) = grid.bbox_lonlat();
        format!("does not overlap the grid, which covers lon {w:.3}..{e:.3}, lat {s:.3}..{n:.3}")
    };
    let rows;
    let cols: (isize, isize);
    if matches!(grid.crs(), Crs::LatLon { .. }) {
        let (j0, j1) = index_span(grid.y(), south, north).ok_or_else(no_overlap)?;
        rows = with_margin(j0, j1, grid.ny());
        cols = longitude_span(grid, west, east).ok_or_else(no_overlap)?;
    } else {
        let (xmin, xmax, ymin, ymax) = native_extent(grid, west, south, east, north)
            .ok_or("cannot be projected onto the grid")?;
        let (j0, j1) = index_span(grid.y(), ymin, ymax).ok_or_else(no_overlap)?;
        let (i0, i1) = index_span(grid.x(), xmin, xmax).ok_or_else(no_overlap)?;
        rows = with_margin(j0, j1, grid.ny());
        let c = with_margin(i0, i1, grid.nx());
        cols = (c.start as isize, c.end as isize - 1);
    }
    build(grid, rows, cols)
}

// A window has one or two column pieces; the Vec is not a range of values.
#[allow(clippy::single_range_in_vec_init)]
/// Turn a row range and an inclusive column span in "unwrapped" column
/// indices (negative or beyond `nx` only on a globally wrapping grid) into a
/// window.
fn build(grid: &Grid, rows: Range<usize>, (c0, c1): (isize, isize)) -> Result<Window, String> {
    let nx = grid.nx() as isize;
    if c0 >= 0 && c1 < nx {
        let (i0, i1) = (c0 as usize, c1 as usize + 1);
        return Ok(Window {
            grid: grid.subset(rows.start, rows.end, i0, i1),
            rows,
            cols: vec![i0..i1],
        });
    }
    // Across the seam of a wrapping longitude axis.
    let x = grid.x();
    let unwrapped: Vec<f64> = (c0..=c1)
        .map(|k| x[k.rem_euclid(nx) as usize] + 360.0 * k.div_euclid(nx) as f64)
        .collect();
    let y = grid.y()[rows.clone()].to_vec();
    let cols = if c0 < 0 {
        vec![(c0 + nx) as usize..nx as usize, 0..(c1 + 1) as usize]
    } else {
        vec![c0 as usize..nx as usize, 0..(c1 - nx + 1) as usize]
    };
    let window_grid = Grid::new(grid.crs().clone(), unwrapped, y).map_err(|e| e.to_string())?;
    Ok(Window {
        grid: window_grid,
        rows,
        cols,
    })
}

fn with_margin(first: usize, last: usize, n: usize) -> Range<usize> {
    first.saturating_sub(MARGIN_CELLS)..(last + MARGIN_CELLS + 1).min(n)
}

/// Inclusive index span of the cells of strictly monotone `coords` whose
/// centres lie in `[lo, hi]`; when the interval falls between two centres,
/// those two cells. `None` when the interval misses the cells entirely.
pub(crate) fn index_span(coords: &[f64], lo: f64, hi: f64) -> Option<(usize, usize)> {
    let n = coords.len();
    if n == 0 || hi < lo {
        return None;
    }
    let ascending = n < 2 || coords[1] > coords[0];
    let at = |k: usize| {
        if ascending {
            coords[k]
        } else {
            coords[n - 1 - k]
        }
    };
    let half_first = if n > 1 { (at(1) - at(0)) * 0.5 } else { 0.5 };
    let half_last = if n > 1 {
        (at(n - 1) - at(n - 2)) * 0.5
    } else {
        0.5
    };
    if hi < at(0) - half_first || lo > at(n - 1) + half_last {
        return None;
    }
    // First centre >= lo and last centre <= hi, by binary search.
    let first = partition(n, |k| at(k) < lo);
    let after_last = partition(n, |k| at(k) <= hi);
    let (mut a, mut b) = if after_last == 0 || first > after_last - 1 {
        // No centre inside: the cells on either side of the interval.
        (after_last.saturating_sub(1), first)
    } else {
        (first, after_last - 1)
    };
    a = a.min(n - 1);
    b = b.min(n - 1);
    if ascending {
        Some((a, b))
    } else {
        Some((n - 1 - b, n - 1 - a))
    }
}

/// Number of leading `k` in `0..n` for which `pred(k)` holds (pred monotone).
fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Inclusive span of unwrapped column indices (see [`build`]) covering
/// longitudes `west..east` (east > west) on a lat/lon grid, margin included.
fn longitude_span(grid: &Grid, west: f64, east: f64) -> Option<(isize, isize)> {
    let x = grid.x();
    let n = x.len();
    let width = east - west;
    let wraps = grid.wraps_longitude();
    if wraps && width + (x[1] - x[0]).abs() >= 360.0 {
        return Some((0, n as isize - 1));
    }
    let ascending = n < 2 || x[1] > x[0];
    if wraps && ascending {
        let step = x[1] - x[0];
        // Move the box so that its west edge falls in the period that starts
        // half a cell before the first column.
        let start = x[0] - 0.5 * step;
        let w = start + (west - start).rem_euclid(360.0);
        let e = w + width;
        let first = partition(n, |k| x[k] < w) as isize;
        let periods = ((e - start) / 360.0).floor();
        let e_base = e - 360.0 * periods;
        let last = partition(n, |k| x[k] <= e_base) as isize - 1 + periods as isize * n as isize;
        let (a, b) = if last < first {
            (last, first)
        } else {
            (first, last)
        };
        let (a, b) = (a - MARGIN_CELLS as isize, b + MARGIN_CELLS as isize);
        if b - a + 1 >= n as isize {
            return Some((0, n as isize - 1));
        }
        return Some((a, b));
    }
    // A regional grid: try the box shifted by whole turns and keep the shift
    // that overlaps the grid most.
    let (xmin, xmax) = (x[0].min(x[n - 1]), x[0].max(x[n - 1]));
    let overlap = |shift: f64| (east + shift).min(xmax) - (west + shift).max(xmin);
    let best = [-720.0, -360.0, 0.0, 360.0, 720.0]
        .into_iter()
        .max_by(|a, b| overlap(*a).total_cmp(&overlap(*b)))
        .unwrap_or(0.0);
    let (i0, i1) = index_span(x, west + best, east + best)?;
    let c = with_margin(i0, i1, n);
    Some((c.start as isize, c.end as isize - 1))
}

/// Native `(xmin, xmax, ymin, ymax)` of a lon/lat box on a projected or
/// rotated grid. The extremes of a continuous map of a box lie on its
/// boundary, so the boundary is sampled densely; a coarse interior lattice is
/// added for boxes partly outside a projection's domain.
fn native_extent(
    grid: &Grid,
    west: f64,
    south: f64,
    east: f64,
    north: f64,
) -> Option<(f64, f64, f64, f64)> {
    const EDGE_SAMPLES: usize = 128;
    const LATTICE: usize = 16;
    let mut points = Vec::with_capacity(4 * (EDGE_SAMPLES + 1) + (LATTICE + 1) * (LATTICE + 1));
    for s in 0..=EDGE_SAMPLES {
        let f = s as f64 / EDGE_SAMPLES as f64;
        let lon = west + f * (east - west);
        let lat = south + f * (north - south);
        points.extend([(lon, south), (lon, north), (west, lat), (east, lat)]);
    }
    for a in 0..=LATTICE {
        for b in 0..=LATTICE {
            let lon = west + (east - west) * a as f64 / LATTICE as f64;
            let lat = south + (north - south) * b as f64 / LATTICE as f64;
            points.push((lon, lat));
        }
    }
    // Rotated longitudes are only defined modulo 360: bring them into the
    // turn centred on the grid.
    let angular = grid.crs().is_angular();
    let x = grid.x();
    let centre = 0.5 * (x[0] + x[x.len() - 1]);
    let mut extent: Option<(f64, f64, f64, f64)> = None;
    for (lon, lat) in points {
        let Some((mut px, py)) = grid.to_native(lon, lat) else {
            continue;
        };
        if angular {
            px = centre - 180.0 + (px - (centre - 180.0)).rem_euclid(360.0);
        }
        if !(px.is_finite() && py.is_finite()) {
            continue;
        }
        extent = Some(match extent {
            None => (px, px, py, py),
            Some((x0, x1, y0, y1)) => (x0.min(px), x1.max(px), y0.min(py), y1.max(py)),
        });
    }
    extent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global_grid() -> Grid {
        // 1-degree global grid, centres -179.5..179.5, north-up.
        let x: Vec<f64> = (0..360).map(|i| -179.5 + i as f64).collect();
        let y: Vec<f64> = (0..180).map(|j| 89.5 - j as f64).collect();
        Grid::new(Crs::wgs84(), x, y).expect("grid")
    }

    #[test]
    fn index_span_ascending_and_descending() {
        let asc = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(index_span(&asc, 0.5, 2.5), Some((1, 2)));
        assert_eq!(index_span(&asc, 1.2, 1.4), Some((1, 2)));
        assert_eq!(index_span(&asc, -3.0, 10.0), Some((0, 4)));
        assert_eq!(index_span(&asc, 5.0, 6.0), None);
        let desc = [4.0, 3.0, 2.0, 1.0, 0.0];
        assert_eq!(index_span(&desc, 0.5, 2.5), Some((2, 3)));
        assert_eq!(index_span(&desc, 3.9, 10.0), Some((0, 0)));
    }

    #[test]
    fn regional_window_with_margin() {
        let grid = global_grid();
        let w = for_bbox(&grid, (10.0, 40.0, 20.0, 50.0)).expect("window");
        assert_eq!(w.cols.len(), 1);
        // Centres 10.5..19.5 plus two cells each side.
        assert_eq!(w.grid.x()[0], 8.5);
        assert_eq!(*w.grid.x().last().expect("x"), 21.5);
        assert_eq!(w.grid.y()[0], 51.5);
        assert_eq!(*w.grid.y().last().expect("y"), 38.5);
    }

    #[test]
    fn window_across_the_antimeridian_is_split_and_unwrapped() {
        let grid = global_grid();
        let w = for_bbox(&grid, (170.0, -10.0, -170.0, 10.0)).expect("window");
        assert_eq!(w.cols.len(), 2);
        let x = w.grid.x();
        assert_eq!(x[0], 168.5);
        assert_eq!(*x.last().expect("x"), 191.5);
        assert!(x.windows(2).all(|p| (p[1] - p[0] - 1.0).abs() < 1e-9));
        // Cutting from a full array keeps the values of the right columns.
        let full = ndarray::Array2::from_shape_fn(grid.shape(), |(_, i)| i as f32);
        let cut = w.cut(&full);
        assert_eq!(cut[[0, 0]], 348.0);
        assert_eq!(cut[[0, x.len() - 1]], 11.0);
    }

    #[test]
    fn box_on_0_360_grid_given_in_negative_longitudes() {
        let x: Vec<f64> = (0..360).map(|i| i as f64).collect();
        let y: Vec<f64> = (0..10).map(|j| 50.0 + j as f64).collect();
        let grid = Grid::new(Crs::wgs84(), x, y).expect("grid");
        let w = for_bbox(&grid, (-5.0, 52.0, 5.0, 55.0)).expect("window");
        let x = w.grid.x();
        assert_eq!((x[0], *x.last().expect("x")), (353.0, 367.0));
    }

    #[test]
    fn box_outside_a_regional_grid_is_an_error() {
        let grid = Grid::regular_latlon(0.0, 1.0, 10, 0.0, 1.0, 10).expect("grid");
        assert!(for_bbox(&grid, (50.0, 0.0, 60.0, 5.0))
            .unwrap_err()
            .contains("does not overlap"));
        assert!(for_bbox(&grid, (0.0, 5.0, 1.0, 4.0)).is_err());
    }
}
