use ndarray::{ArrayView2, Zip};

use crate::{check_shape, MetricsError};

/// Fractions skill score of `pred` against `truth` for exceedance of
/// `threshold` (`x >= threshold`) over `scale_cells` × `scale_cells`
/// neighbourhoods (`scale_cells` odd, ≥ 1).
///
/// `FSS = 1 − Σ(S_f − S_o)² / (Σ S_f² + Σ S_o²)`, where `S` is the fraction of
/// exceeding cells in the neighbourhood centred on each cell.
///
/// Missing data: a cell where either field is NaN/infinite is left out
/// entirely, so both fields see the same cells. It neither exceeds nor counts
/// in a neighbourhood's denominator (the fraction is over the valid cells in
/// the neighbourhood), and no FSS term is summed at it. Neighbourhoods at the
/// domain edge likewise cover only in-domain cells, so there is no implicit
/// zero padding.
///
/// Returns `Ok(None)` when neither field exceeds the threshold anywhere: the
/// score is 0/0 there and a NaN would not survive JSON. Errors when the shapes
/// differ, `scale_cells` is even or zero, `threshold` is NaN, or no cell is
/// valid in both fields.
pub fn fss(
    pred: ArrayView2<f32>,
    truth: ArrayView2<f32>,
    threshold: f32,
    scale_cells: usize,
) -> Result<Option<f64>, MetricsError> {
    let (ny, nx) = truth.dim();
    check_shape("pred", (ny, nx), pred.dim())?;
    if scale_cells % 2 == 0 {
        return Err(MetricsError::InvalidArgument(format!(
            "FSS scale must be an odd number of cells, got {scale_cells}"
        )));
    }
    if threshold.is_nan() {
        return Err(MetricsError::InvalidArgument(
            "FSS threshold is NaN".to_string(),
        ));
    }

    let mut valid = SummedArea::new(ny, nx);
    let mut exceed_pred = SummedArea::new(ny, nx);
    let mut exceed_truth = SummedArea::new(ny, nx);
    let mut any_valid = false;
    Zip::indexed(&pred).and(&truth).for_each(|(j, i), &p, &t| {
        if p.is_finite() && t.is_finite() {
            any_valid = true;
            valid.set(j, i);
            if p >= threshold {
                exceed_pred.set(j, i);
            }
            if t >= threshold {
                exceed_truth.set(j, i);
            }
        }
    });
    if !any_valid {
        return Err(MetricsError::NoValidCells);
    }
    valid.integrate();
    exceed_pred.integrate();
    exceed_truth.integrate();

    let half = scale_cells / 2;
    let (mut sq_diff, mut sq_sum) = (0.0f64, 0.0f64);
    for j in 0..ny {
        let (j0, j1) = (j.saturating_sub(half), (j + half + 1).min(ny));
        for i in 0..nx {
            if !valid.is_set(j, i) {
                continue;
            }
            let (i0, i1) = (i.saturating_sub(half), (i + half + 1).min(nx));
            // At least the centre cell is valid, so this is never zero.
            let n = f64::from(valid.window(j0, j1, i0, i1));
            let s_pred = f64::from(exceed_pred.window(j0, j1, i0, i1)) / n;
            let s_truth = f64::from(exceed_truth.window(j0, j1, i0, i1)) / n;
            sq_diff += (s_pred - s_truth).powi(2);
            sq_sum += s_pred * s_pred + s_truth * s_truth;
        }
    }
    Ok((sq_sum > 0.0).then(|| 1.0 - sq_diff / sq_sum))
}

/// FSS above which a forecast is conventionally called "useful":
/// `0.5 + f_o / 2`, with `f_o` the fraction of observed (truth) cells
/// exceeding the threshold, in `[0, 1]`.
pub fn fss_useful_threshold(observed_fraction: f64) -> f64 {
    0.5 + observed_fraction / 2.0
}

/// Summed-area table of a 0/1 indicator: O(1) counts over any rectangle, so
/// FSS costs the same at every neighbourhood size.
struct SummedArea {
    nx: usize,
    /// `(ny + 1) × (nx + 1)`, row-major; row and column 0 are zero. Before
    /// [`SummedArea::integrate`] cell `(j + 1, i + 1)` holds the indicator itself.
    table: Vec<u32>,
}

impl SummedArea {
    fn new(ny: usize, nx: usize) -> SummedArea {
        SummedArea {
            nx,
            table: vec![0; (ny + 1) * (nx + 1)],
        }
    }

    fn at(&self, j: usize, i: usize) -> usize {
        j * (self.nx + 1) + i
    }

    fn set(&mut self, j: usize, i: usize) {
        let k = self.at(j + 1, i + 1);
        self.table[k] = 1;
    }

    /// The indicator at `(j, i)`, read back from the integrated table.
    fn is_set(&self, j: usize, i: usize) -> bool {
        self.window(j, j + 1, i, i + 1) > 0
    }

    /// Turns the indicator into running sums over rows and columns.
    fn integrate(&mut self) {
        let w = self.nx + 1;
        for row in 1..self.table.len() / w {
            for col in 1..w {
                let k = row * w + col;
                self.table[k] += self.table[k - 1] + self.table[k - w] - self.table[k - w - 1];
            }
        }
    }

    /// Count over rows `j0..j1` and columns `i0..i1` (half-open).
    fn window(&self, j0: usize, j1: usize, i0: usize, i1: usize) -> u32 {
        self.table[self.at(j1, i1)] + self.table[self.at(j0, i0)]
            - self.table[self.at(j0, i1)]
            - self.table[self.at(j1, i0)]
    }
}
