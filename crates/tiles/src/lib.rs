//! Seamless tiling of a 2-D domain.
//!
//! The domain is cut into *core* tiles that partition it. Each tile is computed
//! over a *window*: its core grown by `halo` cells on every side (clipped to the
//! domain), so an operator sees the context it needs. Neighbouring windows
//! overlap; their outputs are cross-faded over `blend` cells centred on the core
//! boundary with raised-cosine weights that sum to exactly one (a partition of
//! unity), so no normalisation array is needed and memory stays at the output
//! plus the tiles in flight.
//!
//! Exactness: a tile's output is used only within `blend / 2` of its core, so
//! its values must be right at distance `halo - blend / 2` from its window edge.
//! Any operator whose footprint (the radius of cells it reads around a cell) is
//! at most [`TileSpec::context`] gives the same result tiled as untiled, up to
//! float rounding, whatever the tile size or thread count. Operators with wider
//! footprints (a neural network near its zero-padded border) are blended
//! smoothly instead of leaving seams.

use ndarray::{s, Array2, Array3, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Why tiling failed: a spec that cannot tile exactly, or a tile operator
/// that broke its contract. Operator errors of the caller's own type pass
/// through [`run_tiled`] unchanged; these convert into it via `From`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TileError {
    /// The [`TileSpec`] is invalid: a zero tile size, `blend > 2 * halo`
    /// (the cross-fade would reach past the halo into cells the tile did not
    /// compute) or `blend > tile` (two cross-fades of one tile would overlap).
    #[error("invalid tile spec: {0}")]
    Spec(String),
    /// The operator returned an array whose `(rows, columns)` differ from
    /// its window's (a bug in the operator).
    #[error("tile {window:?} returned shape {got:?}, expected {expected:?}")]
    Shape {
        /// The tile whose output was wrong.
        window: Window,
        /// `(rows, columns)` the operator returned.
        got: (usize, usize),
        /// `(rows, columns)` of the window, [`Window::shape`].
        expected: (usize, usize),
    },
    /// The operator of [`run_tiled_fields`] returned a different number of
    /// fields (length of axis 0) than asked for.
    #[error("tile {window:?} returned {got} fields, expected {expected}")]
    Fields {
        /// The tile whose output was wrong.
        window: Window,
        /// Number of fields returned.
        got: usize,
        /// Number of fields asked for (`n`).
        expected: usize,
    },
}

/// Tile geometry in cells. Deserialising validates it like
/// [`TileSpec::new`], so a stored spec cannot bypass the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedTileSpec")]
pub struct TileSpec {
    /// Core size (square); the last tile in a row or column may be smaller.
    pub tile: usize,
    /// Cells of context added around each core.
    pub halo: usize,
    /// Width of the cross-fade across each core boundary; at most `2 * halo`
    /// and at most `tile`.
    pub blend: usize,
}

/// A [`TileSpec`] as read, before [`TileSpec::new`] checks it.
#[derive(Deserialize)]
struct UncheckedTileSpec {
    tile: usize,
    halo: usize,
    blend: usize,
}

impl TryFrom<UncheckedTileSpec> for TileSpec {
    type Error = TileError;
    fn try_from(s: UncheckedTileSpec) -> Result<TileSpec, TileError> {
        TileSpec::new(s.tile, s.halo, s.blend)
    }
}

impl TileSpec {
    /// A validated spec; [`TileError::Spec`] when `tile` is 0, `blend`
    /// exceeds `2 * halo`, or `blend` exceeds `tile`.
    pub fn new(tile: usize, halo: usize, blend: usize) -> Result<TileSpec, TileError> {
        let spec = TileSpec { tile, halo, blend };
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), TileError> {
        if self.tile == 0 {
            return Err(TileError::Spec("tile size must be positive".into()));
        }
        if self.blend > 2 * self.halo {
            return Err(TileError::Spec(format!(
                "blend {} exceeds twice the halo {}",
                self.blend, self.halo
            )));
        }
        if self.blend > self.tile {
            return Err(TileError::Spec(format!(
                "blend {} exceeds the tile size {}",
                self.blend, self.tile
            )));
        }
        Ok(())
    }

    /// The footprint radius an operator may have for tiled == untiled.
    pub fn context(&self) -> usize {
        self.halo - self.blend.div_ceil(2)
    }

    /// A spec for an operator with footprint `radius`: blend over `blend` cells
    /// and a halo just large enough for exactness.
    pub fn for_footprint(tile: usize, radius: usize, blend: usize) -> Result<TileSpec, TileError> {
        TileSpec::new(tile, radius + blend.div_ceil(2), blend)
    }
}

/// One tile: its window (computed region) and core (owned region), as
/// half-open row `j` and column `i` ranges in domain cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First row of the window (core start minus halo, clipped at 0).
    pub j0: usize,
    /// One past the last row of the window (clipped to the domain's rows).
    pub j1: usize,
    /// First column of the window (core start minus halo, clipped at 0).
    pub i0: usize,
    /// One past the last column of the window (clipped to the domain's columns).
    pub i1: usize,
    /// Rows `[start, end)` of the core this tile owns; the cores of all
    /// tiles partition the domain.
    pub core_j: (usize, usize),
    /// Columns `[start, end)` of the core this tile owns.
    pub core_i: (usize, usize),
}

impl Window {
    /// `(rows, columns)` of the window: the shape the tile operator must
    /// return.
    pub fn shape(&self) -> (usize, usize) {
        (self.j1 - self.j0, self.i1 - self.i0)
    }
}

/// The tiles covering a domain of `shape`, in row-major order.
pub fn plan(shape: (usize, usize), spec: &TileSpec) -> Vec<Window> {
    let cores = |n: usize| -> Vec<(usize, usize)> {
        (0..n.div_ceil(spec.tile))
            .map(|k| (k * spec.tile, ((k + 1) * spec.tile).min(n)))
            .collect()
    };
    let (rows, cols) = (cores(shape.0), cores(shape.1));
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &(cj0, cj1) in &rows {
        for &(ci0, ci1) in &cols {
            out.push(Window {
                j0: cj0.saturating_sub(spec.halo),
                j1: (cj1 + spec.halo).min(shape.0),
                i0: ci0.saturating_sub(spec.halo),
                i1: (ci1 + spec.halo).min(shape.1),
                core_j: (cj0, cj1),
                core_i: (ci0, ci1),
            });
        }
    }
    out
}

/// Weight of window cell `p` (domain index) along one axis for a core
/// `[c0, c1)` in a domain of `n` cells: 1 inside the core away from its
/// boundaries, a raised-cosine ramp over `blend` cells centred on each interior
/// core boundary, 0 beyond. Ramps of neighbouring tiles sum to one.
fn axis_weight(p: usize, core: (usize, usize), n: usize, blend: usize) -> f32 {
    let ramp = |d: f64| -> f64 {
        // d: position relative to the start of the cross-fade, in cells.
        if blend == 0 {
            return if d >= 0.0 { 1.0 } else { 0.0 };
        }
        let t = ((d + 0.5) / blend as f64).clamp(0.0, 1.0);
        0.5 - 0.5 * (std::f64::consts::PI * t).cos()
    };
    let p = p as f64;
    let half = blend as f64 / 2.0;
    let rise = if core.0 == 0 {
        1.0
    } else {
        ramp(p - (core.0 as f64 - half))
    };
    let fall = if core.1 >= n {
        1.0
    } else {
        1.0 - ramp(p - (core.1 as f64 - half))
    };
    (rise * fall) as f32
}

/// Run `f` on every tile in parallel and blend the results into one array.
///
/// `f` receives the window and returns an array of the window's shape. Tiles are
/// computed a row of tiles at a time (in parallel across the row) and added in a
/// fixed order, so the result is the same for any number of threads.
pub fn run_tiled<F, E>(shape: (usize, usize), spec: &TileSpec, f: F) -> Result<Array2<f32>, E>
where
    F: Fn(&Window) -> Result<Array2<f32>, E> + Sync,
    E: From<TileError> + Send,
{
    let out = run_tiled_fields(shape, 1, spec, |w| {
        f(w).map(|tile| tile.insert_axis(Axis(0)))
    })?;
    Ok(out.index_axis_move(Axis(0), 0))
}

/// [`run_tiled`] for `n` fields computed together (e.g. the two components
/// of a vector): `f` returns `(n, window rows, window columns)` and every
/// field is blended the same way.
pub fn run_tiled_fields<F, E>(
    shape: (usize, usize),
    n: usize,
    spec: &TileSpec,
    f: F,
) -> Result<Array3<f32>, E>
where
    F: Fn(&Window) -> Result<Array3<f32>, E> + Sync,
    E: From<TileError> + Send,
{
    spec.validate()?;
    let mut out = Array3::<f32>::zeros((n, shape.0, shape.1));
    let windows = plan(shape, spec);
    let per_row = shape.1.div_ceil(spec.tile).max(1);
    for row in windows.chunks(per_row) {
        let results: Vec<Result<Array3<f32>, E>> = row.par_iter().map(&f).collect();
        for (w, res) in row.iter().zip(results) {
            let tile = res?;
            let (tn, ty, tx) = tile.dim();
            if (ty, tx) != w.shape() {
                return Err(TileError::Shape {
                    window: *w,
                    got: (ty, tx),
                    expected: w.shape(),
                }
                .into());
            }
            if tn != n {
                return Err(TileError::Fields {
                    window: *w,
                    got: tn,
                    expected: n,
                }
                .into());
            }
            for (mut field, tile) in out.outer_iter_mut().zip(tile.outer_iter()) {
                accumulate(
                    field.slice_mut(s![w.j0..w.j1, w.i0..w.i1]),
                    tile,
                    w,
                    shape,
                    spec.blend,
                );
            }
        }
    }
    Ok(out)
}

fn accumulate(
    mut dst: ArrayViewMut2<f32>,
    tile: ArrayView2<f32>,
    w: &Window,
    shape: (usize, usize),
    blend: usize,
) {
    let wi: Vec<f32> = (w.i0..w.i1)
        .map(|i| axis_weight(i, w.core_i, shape.1, blend))
        .collect();
    for (r, j) in (w.j0..w.j1).enumerate() {
        let wj = axis_weight(j, w.core_j, shape.0, blend);
        if wj == 0.0 {
            continue;
        }
        for (c, &wx) in wi.iter().enumerate() {
            let weight = wj * wx;
            if weight == 0.0 {
                continue;
            }
            let v = tile[[r, c]];
            // A missing value stays missing (NaN) rather than leaking a weighted 0.
            dst[[r, c]] += if v.is_nan() { f32::NAN } else { weight * v };
        }
    }
}

#[cfg(test)]
mod tests;
