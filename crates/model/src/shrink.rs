//! Do no harm: a network's correction shrunk toward the baseline it corrects.
//!
//! The prediction is `baseline + α · w · (network − baseline)`, in physical
//! units, per output component:
//!
//! * `α ∈ [0, 1]` is one factor per network, fitted by leave-one-source-out
//!   cross-validation (`finecast-train`'s `shrinkage` module): the pooled
//!   least-squares factor on sources each fold's network never trained on.
//!   A network whose corrections do not carry over to new sources gets a small
//!   `α`, and one that cannot help at all gets 0 (the baseline exactly).
//! * `w ∈ [0, 1]` is per cell: 1 where every normalised feature lies inside
//!   its training range (the 0.1st to 99.9th percentile over the training
//!   pairs' cells that have every input), falling linearly to 0 at `falloff`
//!   standard deviations beyond it. A DEM sharper than any seen in training, a lapse rate never met or a
//!   grid spacing outside training push those cells back to the baseline
//!   rather than letting the network extrapolate.
//!
//! Cells with `w < 1` are the ones that "ran shrunk"; jobs report their
//! fraction per variable.

use ndarray::{Array2, Array3, ArrayView3, Axis, Zip};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// How a network's correction is shrunk (stored in the sidecar; see the
/// module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shrinkage {
    /// The factor on the whole correction, in `[0, 1]`.
    pub alpha: f32,
    /// Distance beyond a feature's training range, in that feature's
    /// standard deviations, at which the correction has shrunk to nothing;
    /// must be positive.
    pub falloff: f32,
    /// Per feature channel, in normalised units (`(x − mean) / std`): the
    /// `[low, high]` range of the training cells.
    pub ranges: Vec<[f32; 2]>,
    /// How `alpha` and `falloff` were fitted (the cross-validation run), for
    /// the reader of the sidecar.
    #[serde(default)]
    pub fitted_by: String,
}

impl Shrinkage {
    /// Whether this fits a network with `n_features` input channels.
    pub fn check(&self, n_features: usize) -> Result<(), ModelError> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(ModelError::Mismatch(format!(
                "shrinkage alpha {} is outside [0, 1]",
                self.alpha
            )));
        }
        if self.falloff.is_nan() || self.falloff <= 0.0 {
            return Err(ModelError::Mismatch(format!(
                "shrinkage falloff {} is not positive",
                self.falloff
            )));
        }
        if self.ranges.len() != n_features {
            return Err(ModelError::Mismatch(format!(
                "shrinkage has ranges for {} features, the network takes {n_features}",
                self.ranges.len()
            )));
        }
        if let Some((k, r)) = self
            .ranges
            .iter()
            .enumerate()
            .find(|(_, r)| !(r[0].is_finite() && r[1].is_finite() && r[0] <= r[1]))
        {
            return Err(ModelError::Mismatch(format!(
                "shrinkage range of feature {k} is not a range: {r:?}"
            )));
        }
        Ok(())
    }

    /// `w` per cell from normalised features `(C, ny, nx)`: 1 inside every
    /// training range, 0 at `falloff` beyond any of them (the worst feature
    /// decides). Cells without every input get 0.
    pub fn in_range_weight(&self, feats: ArrayView3<f32>, valid: &Array2<bool>) -> Array2<f32> {
        let mut excess = Array2::<f32>::zeros(valid.dim());
        for (channel, range) in feats.axis_iter(Axis(0)).zip(&self.ranges) {
            // A feature that is not a number is as far out as it gets.
            Zip::from(&mut excess).and(&channel).for_each(|e, &x| {
                *e = if x.is_finite() {
                    e.max(range[0] - x).max(x - range[1])
                } else {
                    f32::INFINITY
                }
            });
        }
        Zip::from(&mut excess).and(valid).for_each(|e, &ok| {
            *e = if ok {
                (1.0 - *e / self.falloff).clamp(0.0, 1.0)
            } else {
                0.0
            }
        });
        excess
    }

    /// Shrink `out` toward `baseline` (both `(components, ny, nx)`, physical
    /// units) by `α · weight`.
    pub fn apply(&self, out: &mut Array3<f32>, baseline: &Array3<f32>, weight: &Array2<f32>) {
        for (mut o, b) in out.outer_iter_mut().zip(baseline.outer_iter()) {
            Zip::from(&mut o)
                .and(&b)
                .and(weight)
                .for_each(|o, &b, &w| *o = b + self.alpha * w * (*o - b));
        }
    }
}

/// In a weight field ([`crate::Downscaler::predict_with_weight`], NaN where
/// there is no output): the number of cells that ran shrunk (`w < 1`) and
/// the number of cells with an output.
pub fn shrunk_share(weight: &Array2<f32>) -> (usize, usize) {
    let mut shrunk = 0;
    let mut total = 0;
    for &w in weight {
        if w.is_finite() {
            total += 1;
            // Blended over tiles, a weight of 1 can come back a rounding
            // step below 1 at tile corners: that is not a shrunk cell.
            shrunk += (w < 1.0 - 1e-4) as usize;
        }
    }
    (shrunk, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn shrinkage(alpha: f32) -> Shrinkage {
        Shrinkage {
            alpha,
            falloff: 2.0,
            ranges: vec![[-1.0, 1.0], [-3.0, 3.0]],
            fitted_by: String::new(),
        }
    }

    /// Inside every range `w` is 1; one feature 1 std beyond its range with
    /// a falloff of 2 gives 0.5; 2 std or more gives 0; invalid cells 0.
    #[test]
    fn weight_falls_off_beyond_the_training_range() {
        let s = shrinkage(1.0);
        let feats = Array3::from_shape_vec(
            (2, 1, 5),
            vec![0.0, 2.0, -3.5, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 0.0],
        )
        .unwrap();
        let valid = Array2::from_shape_vec((1, 5), vec![true, true, true, true, false]).unwrap();
        let w = s.in_range_weight(feats.view(), &valid);
        assert_eq!(w.as_slice().unwrap(), &[1.0, 0.5, 0.0, 0.0, 0.0]);
    }

    /// Where every input is out of range the prediction is exactly the
    /// baseline, whatever the network said; in range it is `b + α (n − b)`.
    #[test]
    fn out_of_range_is_exactly_the_baseline() {
        let s = shrinkage(0.6);
        let baseline = Array3::from_elem((2, 1, 3), 280.0f32);
        let mut out =
            Array3::from_shape_vec((2, 1, 3), vec![290.0, 283.0, 250.0, 270.0, 281.0, 300.0])
                .unwrap();
        let weight = Array2::from_shape_vec((1, 3), vec![0.0, 1.0, 0.0]).unwrap();
        s.apply(&mut out, &baseline, &weight);
        assert_eq!(out[[0, 0, 0]], 280.0);
        assert_eq!(out[[1, 0, 2]], 280.0);
        assert!((out[[0, 0, 1]] - 281.8).abs() < 1e-4);
        assert!((out[[1, 0, 1]] - 280.6).abs() < 1e-4);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(shrinkage(0.5).check(2).is_ok());
        assert!(shrinkage(1.5).check(2).is_err());
        assert!(shrinkage(0.5).check(3).is_err());
        let mut s = shrinkage(0.5);
        s.falloff = 0.0;
        assert!(s.check(2).is_err());
        s.falloff = 1.0;
        s.ranges[0] = [1.0, -1.0];
        assert!(s.check(2).is_err());
    }
}
