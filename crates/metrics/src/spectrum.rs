use std::f64::consts::PI;
use std::sync::Arc;

use ndarray::{ArrayView2, Zip};
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::Serialize;

use crate::{check_shape, MetricsError};

/// Smallest field, in cells per direction, that gives a meaningful spectrum.
const MIN_CELLS: usize = 4;

/// A radially averaged power spectral density.
///
/// Bins are ordered from the longest wavelength to the shortest. Power is
/// normalised as a PSD (field units² · km²), so that summing `power · Δk²` over
/// the full 2-D spectrum gives roughly the field's variance; only ratios and
/// slopes matter for the evaluation, but the normalisation makes spectra of
/// different grids comparable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spectrum {
    /// Centre wavelength of each bin (km), `1/|k|`, decreasing: from the
    /// domain's longer side down to about twice the coarser grid spacing
    /// (Nyquist).
    pub wavelength_km: Vec<f64>,
    /// Mean power spectral density in each bin (field units² · km²), one per
    /// entry of `wavelength_km`.
    pub power: Vec<f64>,
}

/// The power of a prediction relative to the truth in one wavelength band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandRatio {
    /// e.g. `"6-12km"`.
    pub label: String,
    /// Shortest wavelength of the band (km, inclusive).
    pub lo_km: f64,
    /// Longest wavelength of the band (km, exclusive; may be infinite).
    pub hi_km: f64,
    /// `Σ P_pred / Σ P_truth` over the spectrum bins with wavelength in
    /// `[lo_km, hi_km)`. `None` when the band is not resolved (`lo_km` below twice
    /// the grid spacing), holds no spectrum bin (e.g. longer than the domain),
    /// or the truth has no power in it.
    pub ratio: Option<f64>,
    /// `(Σ P_pred, Σ P_truth)` in the band where it is resolved and holds a
    /// bin: what pooling the ratio over several fields sums.
    pub power: Option<(f64, f64)>,
}

/// The bands reported by `finecast evaluate`: 6–12, 12–25, 25–50 and 50–100 km.
pub fn default_bands() -> Vec<(f64, f64)> {
    vec![(6., 12.), (12., 25.), (25., 50.), (50., 100.)]
}

/// Radially averaged power spectral density of `field` (shape `(ny, nx)`) on a
/// grid with spacing `dx_km` × `dy_km`.
///
/// Steps: subtract the mean, apply a 2-D Hann window, 2-D FFT, |F|², average
/// over annuli of the radial wavenumber `|k| = sqrt(kx² + ky²)` (signed
/// frequencies `kx = i/(nx·dx)`, `ky = j/(ny·dy)`) with bin width
/// `1/max(nx·dx, ny·dy)`, drop `k = 0`, and report `wavelength = 1/|k|`.
/// Bins stop at the smaller Nyquist wavenumber `1/(2·max(dx, dy))`: beyond it
/// an annulus holds only the corners of the spectrum, which would bias the
/// average towards one direction.
///
/// Missing cells (NaN or infinite) are filled with the mean of the valid
/// cells, i.e. they become zero anomalies and add no power of their own (they
/// do shrink the total power in proportion to the missing area). Errors when
/// more than half the cells are missing, the field is smaller than 4×4, or
/// the spacing is not positive and finite.
pub fn rapsd(field: ArrayView2<f32>, dx_km: f64, dy_km: f64) -> Result<Spectrum, MetricsError> {
    let (ny, nx) = field.dim();
    check_grid(ny, nx, dx_km, dy_km)?;
    let valid: Vec<bool> = field.iter().map(|v| v.is_finite()).collect();
    check_missing(&valid)?;
    let plan = SpectrumPlan::new(ny, nx, dx_km, dy_km);
    Ok(plan.spectrum(filled_anomalies(&field, &valid)))
}

/// Power of `pred` relative to `truth` in each of `bands_km` (`(lo, hi)` in km).
///
/// Both spectra are computed as in [`rapsd`]. So that the two fields are
/// treated identically, a cell missing in *either* field is filled in *both*,
/// each with its own mean over the cells valid in both; errors when more than
/// half the cells are missing in this sense. Bands must satisfy
/// `0 <= lo < hi` (`hi` may be infinite). See [`BandRatio`] for when a ratio
/// is `None`.
pub fn spectral_ratio(
    pred: ArrayView2<f32>,
    truth: ArrayView2<f32>,
    dx_km: f64,
    dy_km: f64,
    bands_km: &[(f64, f64)],
) -> Result<Vec<BandRatio>, MetricsError> {
    let (ny, nx) = truth.dim();
    check_shape("pred", (ny, nx), pred.dim())?;
    check_grid(ny, nx, dx_km, dy_km)?;
    if let Some(&(lo, hi)) = bands_km
        .iter()
        .find(|&&(lo, hi)| !(lo.is_finite() && lo >= 0.0 && hi > lo))
    {
        return Err(MetricsError::InvalidArgument(format!(
            "band ({lo}, {hi}) km: need 0 <= lo < hi"
        )));
    }

    let mut valid = Vec::with_capacity(ny * nx);
    Zip::from(&pred)
        .and(&truth)
        .for_each(|p, t| valid.push(p.is_finite() && t.is_finite()));
    check_missing(&valid)?;

    let plan = SpectrumPlan::new(ny, nx, dx_km, dy_km);
    let p_pred = plan.spectrum(filled_anomalies(&pred, &valid));
    let p_true = plan.spectrum(filled_anomalies(&truth, &valid));

    let finest_resolved_km = 2.0 * dx_km.max(dy_km);
    Ok(bands_km
        .iter()
        .map(|&(lo, hi)| {
            let power = if lo < finest_resolved_km {
                None
            } else {
                let in_band = |&(&wl, _): &(&f64, &f64)| wl >= lo && wl < hi;
                let sum = |s: &Spectrum| -> (usize, f64) {
                    s.wavelength_km
                        .iter()
                        .zip(&s.power)
                        .filter(in_band)
                        .fold((0, 0.0), |(n, acc), (_, &p)| (n + 1, acc + p))
                };
                let (bins, power_pred) = sum(&p_pred);
                let (_, power_true) = sum(&p_true);
                (bins > 0).then_some((power_pred, power_true))
            };
            BandRatio {
                label: format!("{lo}-{hi}km"),
                lo_km: lo,
                hi_km: hi,
                ratio: power.and_then(|(p, t)| (t > 0.0).then(|| p / t)),
                power,
            }
        })
        .collect())
}

fn check_grid(ny: usize, nx: usize, dx_km: f64, dy_km: f64) -> Result<(), MetricsError> {
    if ny < MIN_CELLS || nx < MIN_CELLS {
        return Err(MetricsError::InvalidArgument(format!(
            "field of {ny}x{nx} cells is too small for a spectrum (need at least {MIN_CELLS}x{MIN_CELLS})"
        )));
    }
    if !(dx_km.is_finite() && dx_km > 0.0 && dy_km.is_finite() && dy_km > 0.0) {
        return Err(MetricsError::InvalidArgument(format!(
            "grid spacing must be positive and finite, got dx={dx_km} km, dy={dy_km} km"
        )));
    }
    Ok(())
}

fn check_missing(valid: &[bool]) -> Result<(), MetricsError> {
    let missing = valid.iter().filter(|&&v| !v).count();
    if 2 * missing > valid.len() {
        return Err(MetricsError::TooManyMissing {
            missing_percent: 100.0 * missing as f64 / valid.len() as f64,
        });
    }
    Ok(())
}

/// Row-major anomalies of `field` from the mean of its `valid` cells, with
/// zero (i.e. the mean) at invalid cells. `valid` is row-major and non-empty
/// in `true` (checked by [`check_missing`]).
fn filled_anomalies(field: &ArrayView2<f32>, valid: &[bool]) -> Vec<f64> {
    let (sum, n) = field
        .iter()
        .zip(valid)
        .filter(|(_, &ok)| ok)
        .fold((0.0f64, 0usize), |(s, n), (&v, _)| {
            (s + f64::from(v), n + 1)
        });
    let mean = sum / n as f64;
    field
        .iter()
        .zip(valid)
        .map(|(&v, &ok)| if ok { f64::from(v) - mean } else { 0.0 })
        .collect()
}

/// Periodic ("DFT-even") Hann window, the usual choice for spectral estimates.
fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos())
        .collect()
}

/// Frequency of DFT index `i` of `n` in cycles per sample, signed so that the
/// upper half of the indices are the negative frequencies.
fn signed_frequency(i: usize, n: usize) -> f64 {
    if i <= n / 2 {
        i as f64 / n as f64
    } else {
        (i as f64 - n as f64) / n as f64
    }
}

/// Everything about a spectrum that depends only on the grid, so that both
/// fields of a [`spectral_ratio`] share the FFT plans and the window.
struct SpectrumPlan {
    ny: usize,
    nx: usize,
    dx_km: f64,
    dy_km: f64,
    row_fft: Arc<dyn Fft<f64>>,
    col_fft: Arc<dyn Fft<f64>>,
    window_x: Vec<f64>,
    window_y: Vec<f64>,
}

impl SpectrumPlan {
    fn new(ny: usize, nx: usize, dx_km: f64, dy_km: f64) -> SpectrumPlan {
        let mut planner = FftPlanner::new();
        SpectrumPlan {
            ny,
            nx,
            dx_km,
            dy_km,
            row_fft: planner.plan_fft_forward(nx),
            col_fft: planner.plan_fft_forward(ny),
            window_x: hann(nx),
            window_y: hann(ny),
        }
    }

    /// Chunk length (a whole number of transforms of length `len`) that gives
    /// each rayon task a few transforms, amortising rustfft's scratch buffer.
    fn chunk_len(len: usize, count: usize) -> usize {
        let per_task = count.div_ceil(4 * rayon::current_num_threads()).max(1);
        len * per_task
    }

    /// RAPSD of row-major anomalies (mean already removed, gaps filled).
    fn spectrum(&self, anomalies: Vec<f64>) -> Spectrum {
        let (ny, nx) = (self.ny, self.nx);

        // Window, then transform the rows in place.
        let mut rows: Vec<Complex<f64>> = anomalies
            .iter()
            .enumerate()
            .map(|(idx, &v)| {
                Complex::new(v * self.window_y[idx / nx] * self.window_x[idx % nx], 0.0)
            })
            .collect();
        rows.par_chunks_mut(Self::chunk_len(nx, ny))
            .for_each(|chunk| self.row_fft.process(chunk));

        // Transpose so that each column is contiguous, then transform them.
        let mut cols = vec![Complex::new(0.0, 0.0); nx * ny];
        cols.par_chunks_mut(ny).enumerate().for_each(|(i, col)| {
            for (j, c) in col.iter_mut().enumerate() {
                *c = rows[j * nx + i];
            }
        });
        drop(rows);
        cols.par_chunks_mut(Self::chunk_len(ny, nx))
            .for_each(|chunk| self.col_fft.process(chunk));

        // Radial binning. Bin b holds |k| in [(b - 1/2)·dk, (b + 1/2)·dk): bin 0
        // is only k = 0 because the smallest non-zero |k| is dk.
        let domain_km = (nx as f64 * self.dx_km).max(ny as f64 * self.dy_km);
        let dk = 1.0 / domain_km;
        let k_nyquist = 0.5 / self.dx_km.max(self.dy_km);
        // A tiny tolerance keeps the Nyquist bin when k_nyquist / dk is an
        // integer up to rounding.
        let last_bin = (k_nyquist / dk + 1e-9).floor() as usize;
        let ky: Vec<f64> = (0..ny)
            .map(|j| signed_frequency(j, ny) / self.dy_km)
            .collect();
        let (sums, counts) = cols
            .par_chunks(ny)
            .enumerate()
            .fold(
                || (vec![0.0f64; last_bin + 1], vec![0usize; last_bin + 1]),
                |(mut sums, mut counts), (i, col)| {
                    let kx = signed_frequency(i, nx) / self.dx_km;
                    for (c, &ky) in col.iter().zip(&ky) {
                        let bin = ((kx * kx + ky * ky).sqrt() / dk).round() as usize;
                        if bin <= last_bin {
                            sums[bin] += c.norm_sqr();
                            counts[bin] += 1;
                        }
                    }
                    (sums, counts)
                },
            )
            .reduce(
                || (vec![0.0f64; last_bin + 1], vec![0usize; last_bin + 1]),
                |(mut s1, mut c1), (s2, c2)| {
                    s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
                    c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
                    (s1, c1)
                },
            );

        // PSD normalisation: dx·dy / (N · mean(w²)) undoes the DFT's N scaling
        // (Parseval) and the variance the window removes.
        let mean_sq = |w: &[f64]| w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        let window_power = mean_sq(&self.window_x) * mean_sq(&self.window_y);
        let scale = self.dx_km * self.dy_km / ((nx * ny) as f64 * window_power);

        let (wavelength_km, power) = (1..=last_bin)
            .filter(|&b| counts[b] > 0)
            .map(|b| (domain_km / b as f64, sums[b] / counts[b] as f64 * scale))
            .unzip();
        Spectrum {
            wavelength_km,
            power,
        }
    }
}
