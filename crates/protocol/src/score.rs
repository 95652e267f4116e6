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
    pub rmse: f64,
    pub mae: f64,
    pub bias: f64,
    pub pearson: Option<f64>,
    /// Power of the prediction over the truth per wavelength band, fine to
    /// coarse ("6-12km", ...); null where the band is finer than twice the
    /// grid spacing.
    pub spectral_ratio: Labelled,
    /// Fractions skill score by "threshold@scale_km", for precipitation.
    #[serde(skip_serializing_if = "Labelled::is_empty")]
    pub fss: Labelled,
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
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

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

    /// Scores of one prediction (no FSS, no vector RMSE), and the number of
    /// cells scored.
    pub fn score(&self, pred: ArrayView2<f32>) -> Result<(MethodScore, usize), MetricsError> {
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
        let score = MethodScore {
            rmse: sc.rmse,
            mae: sc.mae,
            bias: sc.bias,
            pearson: sc.pearson,
            spectral_ratio: Labelled(ratios.into_iter().map(|r| (r.label, r.ratio)).collect()),
            fss: Labelled::default(),
            vector_rmse: None,
        };
        Ok((score, sc.n))
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
