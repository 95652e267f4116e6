//! Scoring a method against the truth: one score type and one scorer for
//! `finecast evaluate` and the model card.

use finecast_grid::Grid;
use finecast_metrics::{default_bands, scores, spectral_ratio, MetricsError, ScoringDomain};
use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use crate::edge_margin;

/// Scores of one method. For a wind vector, RMSE, MAE, bias, r and the
/// spectra are those of the scored field (a component, or the speed) and
/// `vector_rmse` is the RMSE of the vector (square root of the mean squared
/// length of the error).
#[derive(Debug, Clone, Serialize)]
pub struct MethodScore {
    /// Area-weighted root-mean-square error against the truth, in the
    /// field's SI units (K, m s-1, kg m-2, ...).
    pub rmse: f64,
    /// Area-weighted mean absolute error, in the field's SI units.
    pub mae: f64,
    /// Area-weighted mean of prediction − truth: positive means the method
    /// is too high (too warm, too windy, too wet).
    pub bias: f64,
    /// Area-weighted Pearson correlation with the truth; `None` (JSON null)
    /// where either field is constant on the scored cells.
    pub pearson: Option<f64>,
    /// Power of the prediction over the truth per wavelength band, fine to
    /// coarse ("6-12km", ...); null where the band is finer than twice the
    /// grid spacing.
    pub spectral_ratio: Labelled,
    /// Fractions skill score by "threshold@scale_km", for precipitation.
    #[serde(skip_serializing_if = "Labelled::is_empty")]
    pub fss: Labelled,
    /// For wind, the RMSE of the (u, v) vector error (see
    /// [`Scorer::vector_rmse`]), in m s-1; `None`, and left out of the JSON,
    /// otherwise. The method ranking uses it when present
    /// ([`MethodScore::headline_rmse`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector_rmse: Option<f64>,
}

impl MethodScore {
    /// The RMSE methods are ranked by: of the vector for wind.
    pub fn headline_rmse(&self) -> f64 {
        self.vector_rmse.unwrap_or(self.rmse)
    }
}

/// Values by label, kept in insertion order (bands from fine to coarse) and
/// serialised as a JSON object.
#[derive(Debug, Clone, Default)]
pub struct Labelled(pub Vec<(String, Option<f64>)>);

impl Labelled {
    /// Whether there are no labels at all (e.g. no FSS for a
    /// non-precipitation variable), so the field is left out of the JSON.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value under `label` (e.g. "6-12km" or a "threshold@scale_km"
    /// key); `None` both when the label is absent and when its value is
    /// undefined.
    pub fn get(&self, label: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(l, _)| l == label)
            .and_then(|(_, v)| *v)
    }
}

impl Serialize for Labelled {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// Scores predictions against one truth field on the common domain of all
/// of them: cells one coarse cell in from the edge ([`edge_margin`]) where the
/// truth and every prediction are valid, area-weighted (cos(lat) on lat/lon
/// grids), spectra on the domain's interior.
pub struct Scorer {
    truth: Array2<f32>,
    domain: ScoringDomain,
    weights: Array2<f64>,
    truth_interior: Array2<f32>,
    spacing_km: (f64, f64),
}

impl Scorer {
    /// A scorer for `truth` on `grid`, whose methods came from `coarse`.
    pub fn new<'a>(
        truth: ArrayView2<f32>,
        grid: &Grid,
        coarse: &Grid,
        predictions: impl IntoIterator<Item = ArrayView2<'a, f32>>,
    ) -> Result<Scorer, MetricsError> {
        let domain = ScoringDomain::new(truth, predictions, edge_margin(grid, coarse))?;
        let (dx, dy) = grid.spacing_m();
        Ok(Scorer {
            truth_interior: domain.interior(truth),
            truth: truth.to_owned(),
            domain,
            weights: grid.area_weights(),
            spacing_km: (dx / 1000.0, dy / 1000.0),
        })
    }

    /// Scores of one prediction (no FSS, no vector RMSE), and the sums
    /// behind them for pooling over several times ([`Moments::merge`];
    /// [`Moments::n`] is the number of cells scored).
    pub fn score(&self, pred: ArrayView2<f32>) -> Result<(MethodScore, Moments), MetricsError> {
        let sc = scores(
            pred,
            self.truth.view(),
            self.weights.view(),
            Some(self.domain.mask()),
        )?;
        let (dx_km, dy_km) = self.spacing_km;
        let ratios = spectral_ratio(
            self.domain.interior(pred).view(),
            self.truth_interior.view(),
            dx_km,
            dy_km,
            &default_bands(),
        )?;
        let mut moments = self.moments(pred);
        moments.bands = ratios.iter().map(|r| (r.label.clone(), r.power)).collect();
        let score = MethodScore {
            rmse: sc.rmse,
            mae: sc.mae,
            bias: sc.bias,
            pearson: sc.pearson,
            spectral_ratio: Labelled(ratios.into_iter().map(|r| (r.label, r.ratio)).collect()),
            fss: Labelled::default(),
            vector_rmse: None,
        };
        debug_assert_eq!(moments.n, sc.n);
        Ok((score, moments))
    }

    /// The weighted sums over the scored cells of `pred`.
    fn moments(&self, pred: ArrayView2<f32>) -> Moments {
        let mut m = Moments::default();
        for ((j, i), &ok) in self.domain.mask().indexed_iter() {
            if ok {
                let (p, t) = (f64::from(pred[[j, i]]), f64::from(self.truth[[j, i]]));
                m.add(self.weights[[j, i]], p, t);
            }
        }
        m
    }

    /// RMSE of a vector (components in the same order in both) on the
    /// scoring domain, area-weighted.
    pub fn vector_rmse(&self, pred: &[Array2<f32>], truth: &[Array2<f32>]) -> f64 {
        let (mut sum, mut total) = (0.0f64, 0.0f64);
        for ((j, i), &ok) in self.domain.mask().indexed_iter() {
            if ok {
                let w = self.weights[[j, i]];
                let e2: f64 = pred
                    .iter()
                    .zip(truth)
                    .map(|(p, t)| ((p[[j, i]] - t[[j, i]]) as f64).powi(2))
                    .sum();
                sum += w * e2;
                total += w;
            }
        }
        (sum / total).sqrt()
    }

    /// `field` cut to the domain's interior, missing outside its mask.
    pub fn interior(&self, field: ArrayView2<f32>) -> Array2<f32> {
        self.domain.interior(field)
    }

    /// The truth cut to the domain's interior.
    pub fn truth_interior(&self) -> &Array2<f32> {
        &self.truth_interior
    }

    /// Grid spacing (dx, dy) in km.
    pub fn spacing_km(&self) -> (f64, f64) {
        self.spacing_km
    }
}

/// Area-weighted sums over scored cells of one method: what RMSE, MAE,
/// bias and Pearson's r of several times pooled together need (RMSE pooled
/// is the root of the mean squared error over all scored cells of all
/// times, each cell with its area weight).
#[derive(Debug, Clone, Default)]
pub struct Moments {
    n: usize,
    w: f64,
    we: f64,
    w_abs_e: f64,
    we2: f64,
    wp: f64,
    wt: f64,
    wpp: f64,
    wtt: f64,
    wpt: f64,
    /// Spectral power `(prediction, truth)` per band, where resolved.
    bands: Vec<(String, Option<(f64, f64)>)>,
}

impl Moments {
    fn add(&mut self, w: f64, p: f64, t: f64) {
        let e = p - t;
        self.n += 1;
        self.w += w;
        self.we += w * e;
        self.w_abs_e += w * e.abs();
        self.we2 += w * e * e;
        self.wp += w * p;
        self.wt += w * t;
        self.wpp += w * p * p;
        self.wtt += w * t * t;
        self.wpt += w * p * t;
    }

    /// Add another time's sums.
    pub fn merge(&mut self, o: &Moments) {
        self.n += o.n;
        self.w += o.w;
        self.we += o.we;
        self.w_abs_e += o.w_abs_e;
        self.we2 += o.we2;
        self.wp += o.wp;
        self.wt += o.wt;
        self.wpp += o.wpp;
        self.wtt += o.wtt;
        self.wpt += o.wpt;
        if self.bands.is_empty() {
            self.bands = o.bands.clone();
        } else {
            for ((label, mine), (other_label, theirs)) in self.bands.iter_mut().zip(&o.bands) {
                debug_assert_eq!(label, other_label);
                *mine = match (*mine, *theirs) {
                    (Some((p, t)), Some((q, u))) => Some((p + q, t + u)),
                    (a, b) => a.or(b),
                };
            }
        }
    }

    /// Cells the sums hold.
    pub fn n(&self) -> usize {
        self.n
    }

    /// RMSE, MAE, bias and Pearson's r (`None` where either side is
    /// constant) of the pooled cells.
    pub fn scores(&self) -> (f64, f64, f64, Option<f64>) {
        let w = self.w;
        let (mp, mt) = (self.wp / w, self.wt / w);
        let vp = self.wpp / w - mp * mp;
        let vt = self.wtt / w - mt * mt;
        let cov = self.wpt / w - mp * mt;
        let pearson = (vp > 0.0 && vt > 0.0).then(|| (cov / (vp * vt).sqrt()).clamp(-1.0, 1.0));
        (
            (self.we2 / w).sqrt(),
            self.w_abs_e / w,
            self.we / w,
            pearson,
        )
    }
}

impl MethodScore {
    /// One method's scores over several times: RMSE, MAE, bias, r and the
    /// spectral ratios (time-summed power of the prediction over that of the
    /// truth, per band) from the pooled `moments`; FSS as the mean over the
    /// times that have a value for the threshold and scale.
    pub fn pooled(per_time: &[&MethodScore], moments: &Moments) -> MethodScore {
        let (rmse, mae, bias, pearson) = moments.scores();
        let spectral_ratio = Labelled(
            moments
                .bands
                .iter()
                .map(|(label, power)| {
                    let ratio = power.and_then(|(p, t)| (t > 0.0).then(|| p / t));
                    (label.clone(), ratio)
                })
                .collect(),
        );
        let mean_by_label = |pick: fn(&MethodScore) -> &Labelled| {
            let labels: Vec<String> = per_time
                .first()
                .map(|s| pick(s).0.iter().map(|(l, _)| l.clone()).collect())
                .unwrap_or_default();
            Labelled(
                labels
                    .into_iter()
                    .map(|label| {
                        let values: Vec<f64> = per_time
                            .iter()
                            .filter_map(|s| pick(s).get(&label))
                            .collect();
                        let mean = (!values.is_empty())
                            .then(|| values.iter().sum::<f64>() / values.len() as f64);
                        (label, mean)
                    })
                    .collect(),
            )
        };
        MethodScore {
            rmse,
            mae,
            bias,
            pearson,
            spectral_ratio,
            fss: mean_by_label(|s| &s.fss),
            vector_rmse: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Pooling two times' sums gives the scores of both times' cells
    /// scored at once.
    #[test]
    fn pooled_moments_equal_scores_of_all_cells() {
        let grid = Grid::regular_latlon(5.0, 0.04, 40, 45.0, 0.04, 30).unwrap();
        let coarse = Grid::regular_latlon(5.125, 0.25, 7, 45.125, 0.25, 5).unwrap();
        let truth_a = Array2::from_shape_fn((30, 40), |(j, i)| 280.0 + 0.1 * (j * i) as f32 % 7.0);
        let pred_a =
            truth_a.mapv(|v| v + 0.3) + Array2::from_shape_fn((30, 40), |(j, _)| j as f32 * 0.01);
        let truth_b = truth_a.mapv(|v| v - 4.0);
        let pred_b =
            truth_b.mapv(|v| v - 0.5) + Array2::from_shape_fn((30, 40), |(_, i)| i as f32 * 0.02);
        let a = Scorer::new(truth_a.view(), &grid, &coarse, [pred_a.view()]).unwrap();
        let b = Scorer::new(truth_b.view(), &grid, &coarse, [pred_b.view()]).unwrap();
        // One time alone: the moments give the scorer's own numbers.
        let (sa, ma) = a.score(pred_a.view()).unwrap();
        let (rmse, mae, bias, r) = ma.scores();
        assert!((rmse - sa.rmse).abs() < 1e-9 && (mae - sa.mae).abs() < 1e-9);
        assert!((bias - sa.bias).abs() < 1e-9);
        assert!((r.unwrap() - sa.pearson.unwrap()).abs() < 1e-6);
        // Both times: the two fields side by side scored at once.
        let mut pooled = ma.clone();
        pooled.merge(&b.score(pred_b.view()).unwrap().1);
        let wide = |x: &Array2<f32>, y: &Array2<f32>| {
            ndarray::concatenate(ndarray::Axis(1), &[x.view(), y.view()]).unwrap()
        };
        let (truth_ab, pred_ab) = (wide(&truth_a, &truth_b), wide(&pred_a, &pred_b));
        let mut mask = Array2::from_elem((30, 80), false);
        let (my, mx) = edge_margin(&grid, &coarse);
        for j in my..30 - my {
            for i in mx..40 - mx {
                mask[[j, i]] = true;
                mask[[j, i + 40]] = true;
            }
        }
        let w = grid.area_weights();
        let weights = ndarray::concatenate(ndarray::Axis(1), &[w.view(), w.view()]).unwrap();
        let all = scores(
            pred_ab.view(),
            truth_ab.view(),
            weights.view(),
            Some(mask.view()),
        )
        .unwrap();
        let (rmse, mae, bias, r) = pooled.scores();
        assert_eq!(pooled.n(), all.n);
        assert!((rmse - all.rmse).abs() < 1e-6, "{rmse} {}", all.rmse);
        assert!((mae - all.mae).abs() < 1e-6 && (bias - all.bias).abs() < 1e-6);
        assert!((r.unwrap() - all.pearson.unwrap()).abs() < 1e-6);
    }
}
