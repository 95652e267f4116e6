//! The cells the perfect-model protocol scores: one coarse cell in from the
//! edge (where the coarse field's interpolation has no neighbour beyond the
//! edge), and only where the truth and every method's prediction are valid,
//! so all methods are scored on the same cells.

use ndarray::{s, Array2, ArrayView2, Zip};

use crate::{check_shape, MetricsError};

/// A common scoring mask and the margin it leaves at the edges.
#[derive(Debug, Clone)]
pub struct ScoringDomain {
    mask: Array2<bool>,
    margin: (usize, usize),
}

impl ScoringDomain {
    /// Cells at least `margin` = (rows, columns) from the edge where `truth`
    /// and every prediction are finite. A field that leaves no more than two
    /// cells per axis inside the margin is an error.
    pub fn new<'a>(
        truth: ArrayView2<f32>,
        predictions: impl IntoIterator<Item = ArrayView2<'a, f32>>,
        margin: (usize, usize),
    ) -> Result<ScoringDomain, MetricsError> {
        let (ny, nx) = truth.dim();
        let (mj, mi) = margin;
        if ny <= 2 * mj + 2 || nx <= 2 * mi + 2 {
            return Err(MetricsError::InvalidArgument(format!(
                "the truth area ({ny}x{nx} cells) is too small to leave a margin of {mj}x{mi} cells (one coarse cell)"
            )));
        }
        let mut mask = Array2::from_elem((ny, nx), false);
        mask.slice_mut(s![mj..ny - mj, mi..nx - mi]).fill(true);
        Zip::from(&mut mask)
            .and(truth)
            .for_each(|m, t| *m &= t.is_finite());
        for p in predictions {
            check_shape("prediction", (ny, nx), p.dim())?;
            Zip::from(&mut mask)
                .and(p)
                .for_each(|m, v| *m &= v.is_finite());
        }
        Ok(ScoringDomain { mask, margin })
    }

    /// The scored cells on the whole grid.
    pub fn mask(&self) -> ArrayView2<'_, bool> {
        self.mask.view()
    }

    /// `field` without the margin, NaN off the mask: what spectra and FSS
    /// are computed on.
    pub fn interior(&self, field: ArrayView2<f32>) -> Array2<f32> {
        let (ny, nx) = self.mask.dim();
        let (mj, mi) = self.margin;
        let window = s![mj..ny - mj, mi..nx - mi];
        let mut out = field.slice(window).to_owned();
        Zip::from(&mut out)
            .and(self.mask.slice(window))
            .for_each(|v, &m| {
                if !m {
                    *v = f32::NAN
                }
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_is_common_and_interior_is_cut() {
        let truth = Array2::from_shape_fn((10, 12), |(j, i)| (j * 12 + i) as f32);
        let mut a = truth.clone();
        a[[4, 5]] = f32::NAN;
        let mut b = truth.clone();
        b[[6, 7]] = f32::NAN;
        let d = ScoringDomain::new(truth.view(), [a.view(), b.view()], (2, 3)).unwrap();
        // Margins, and the gaps of both predictions, are off the mask.
        assert_eq!(d.mask().iter().filter(|&&m| m).count(), 6 * 6 - 2);
        assert!(!d.mask()[[1, 5]] && !d.mask()[[4, 2]]);
        assert!(!d.mask()[[4, 5]] && !d.mask()[[6, 7]] && d.mask()[[5, 5]]);
        let inner = d.interior(truth.view());
        assert_eq!(inner.dim(), (6, 6));
        assert_eq!(inner[[0, 0]], truth[[2, 3]]);
        assert!(inner[[2, 2]].is_nan() && inner[[4, 4]].is_nan());
    }

    #[test]
    fn too_small_or_mismatched_is_an_error() {
        let truth = Array2::<f32>::zeros((6, 20));
        let err = ScoringDomain::new(truth.view(), [], (2, 2)).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
        let other = Array2::<f32>::zeros((7, 20));
        let err = ScoringDomain::new(truth.view(), [other.view()], (1, 1)).unwrap_err();
        assert!(matches!(err, MetricsError::ShapeMismatch { .. }), "{err}");
    }
}
