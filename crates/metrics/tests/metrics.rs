//! The public scores on hand-computable and synthetic fields: weighted
//! RMSE/MAE/bias/Pearson against hand sums, RAPSD peaks of sinusoids and the
//! flat spectrum of white noise, spectral ratios under smoothing and added
//! noise, FSS of blobs, and the errors each rejects bad input with.

use approx::assert_abs_diff_eq;
use finecast_metrics::{
    default_bands, fss, fss_useful_threshold, rapsd, scores, spectral_ratio, MetricsError,
};
use ndarray::{array, Array2};

const NAN: f32 = f32::NAN;

/// Deterministic uniform noise in [-1, 1) (SplitMix64), so tests need no RNG crate.
fn noise(ny: usize, nx: usize, seed: u64) -> Array2<f32> {
    let mut state = seed;
    Array2::from_shape_simple_fn((ny, nx), || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// 3×3 box blur with the window clipped at the domain edge.
fn box_blur(a: &Array2<f32>) -> Array2<f32> {
    let (ny, nx) = a.dim();
    Array2::from_shape_fn((ny, nx), |(j, i)| {
        let (mut sum, mut n) = (0.0, 0.0);
        for jj in j.saturating_sub(1)..(j + 2).min(ny) {
            for ii in i.saturating_sub(1)..(i + 2).min(nx) {
                sum += a[[jj, ii]];
                n += 1.0;
            }
        }
        sum / n
    })
}

fn ratio(bands: &[finecast_metrics::BandRatio], label: &str) -> Option<f64> {
    bands
        .iter()
        .find(|b| b.label == label)
        .unwrap_or_else(|| panic!("no band {label}"))
        .ratio
}

// ---------------------------------------------------------------- scores

#[test]
fn scores_match_hand_computation_with_weights_and_nan() {
    let pred = array![[1.0f32, 2.0], [3.0, NAN]];
    let truth = array![[0.0f32, 4.0], [3.0, 1.0]];
    let weights = array![[1.0, 2.0], [1.0, 1.0]];
    let s = scores(pred.view(), truth.view(), weights.view(), None).unwrap();
    // Scored cells: errors 1, -2, 0 with weights 1, 2, 1 (sum 4).
    assert_eq!(s.n, 3);
    assert_abs_diff_eq!(s.bias, -0.75, epsilon = 1e-12);
    assert_abs_diff_eq!(s.mae, 1.25, epsilon = 1e-12);
    assert_abs_diff_eq!(s.rmse, 1.5, epsilon = 1e-12);
    // Weighted means 2 and 2.75; cov 3, var_p 2, var_t 10.75.
    assert_abs_diff_eq!(s.pearson.unwrap(), 3.0 / 21.5f64.sqrt(), epsilon = 1e-12);
}

#[test]
fn scores_skip_masked_and_non_positive_weights() {
    let pred = array![[1.0f32, 2.0, 5.0], [3.0, 9.0, 7.0]];
    let truth = array![[0.0f32, 4.0, 5.0], [3.0, 0.0, 6.0]];
    let weights = array![[1.0, 2.0, 1.0], [1.0, 1.0, 0.0]];
    let mask = array![[true, true, false], [true, false, true]];
    let s = scores(pred.view(), truth.view(), weights.view(), Some(mask.view())).unwrap();
    // Same three cells as the hand-computed case: (0,2) and (1,1) masked, (1,2) zero weight.
    assert_eq!(s.n, 3);
    assert_abs_diff_eq!(s.bias, -0.75, epsilon = 1e-12);
    assert_abs_diff_eq!(s.rmse, 1.5, epsilon = 1e-12);
}

#[test]
fn pearson_of_linear_relation_is_one() {
    let x = noise(20, 30, 1);
    let y = x.mapv(|v| 2.0 * v + 1.0);
    let w = Array2::from_elem((20, 30), 1.0);
    let s = scores(y.view(), x.view(), w.view(), None).unwrap();
    assert_abs_diff_eq!(s.pearson.unwrap(), 1.0, epsilon = 1e-9);
    let s = scores(x.mapv(|v| -v).view(), x.view(), w.view(), None).unwrap();
    assert_abs_diff_eq!(s.pearson.unwrap(), -1.0, epsilon = 1e-9);
}

#[test]
fn pearson_keeps_precision_for_large_offsets() {
    // Temperatures in K: a naive one-pass formula would lose the small spread.
    let x = noise(50, 50, 2).mapv(|v| 285.0 + 0.01 * v);
    let w = Array2::from_elem((50, 50), 1.0);
    let s = scores(x.view(), x.view(), w.view(), None).unwrap();
    assert_abs_diff_eq!(s.pearson.unwrap(), 1.0, epsilon = 1e-9);
    assert_eq!(s.rmse, 0.0);
}

#[test]
fn constant_field_has_no_pearson_and_serialises_as_null() {
    let pred = Array2::from_elem((3, 3), 1.0f32);
    let truth = noise(3, 3, 3);
    let w = Array2::from_elem((3, 3), 1.0);
    let s = scores(pred.view(), truth.view(), w.view(), None).unwrap();
    assert_eq!(s.pearson, None);
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["pearson"].is_null());
    assert_eq!(json["n"], 9);
}

#[test]
fn scores_errors() {
    let a = Array2::<f32>::zeros((2, 3));
    let b = Array2::<f32>::zeros((3, 2));
    let w = Array2::<f64>::ones((2, 3));
    assert!(matches!(
        scores(a.view(), b.view(), w.view(), None),
        Err(MetricsError::ShapeMismatch { what: "pred", .. })
    ));
    let w_bad = Array2::<f64>::ones((3, 3));
    assert!(matches!(
        scores(a.view(), a.view(), w_bad.view(), None),
        Err(MetricsError::ShapeMismatch {
            what: "weights",
            ..
        })
    ));
    let mask = Array2::from_elem((1, 3), true);
    assert!(matches!(
        scores(a.view(), a.view(), w.view(), Some(mask.view())),
        Err(MetricsError::ShapeMismatch { what: "mask", .. })
    ));
    let nan = Array2::from_elem((2, 3), NAN);
    assert_eq!(
        scores(nan.view(), a.view(), w.view(), None),
        Err(MetricsError::NoValidCells)
    );
    let zero_w = Array2::<f64>::zeros((2, 3));
    assert_eq!(
        scores(a.view(), a.view(), zero_w.view(), None),
        Err(MetricsError::NoValidCells)
    );
}

// ---------------------------------------------------------------- spectra

/// A sinusoid of `wavelength_km` along x (or y) on a 3 km grid.
fn sinusoid(ny: usize, nx: usize, wavelength_km: f64, along_x: bool) -> Array2<f32> {
    Array2::from_shape_fn((ny, nx), |(j, i)| {
        let d = 3.0 * if along_x { i } else { j } as f64;
        (2.0 * std::f64::consts::PI * d / wavelength_km).sin() as f32 + 10.0
    })
}

fn peak_wavelength(s: &finecast_metrics::Spectrum) -> f64 {
    let (imax, _) = s
        .power
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    s.wavelength_km[imax]
}

fn nearest_bin(s: &finecast_metrics::Spectrum, wavelength_km: f64) -> f64 {
    *s.wavelength_km
        .iter()
        .min_by(|a, b| {
            (*a - wavelength_km)
                .abs()
                .total_cmp(&(*b - wavelength_km).abs())
        })
        .unwrap()
}

#[test]
fn rapsd_of_sinusoid_peaks_at_its_wavelength() {
    // Non-square on purpose: 128 x 100 cells of 3 km.
    for along_x in [true, false] {
        let field = sinusoid(100, 128, 30.0, along_x);
        let s = rapsd(field.view(), 3.0, 3.0).unwrap();
        assert_eq!(
            peak_wavelength(&s),
            nearest_bin(&s, 30.0),
            "along_x={along_x}"
        );
        assert!(s.power.iter().all(|p| p.is_finite() && *p >= 0.0));
    }
}

#[test]
fn rapsd_bins_run_from_domain_size_to_nyquist() {
    let s = rapsd(noise(64, 80, 4).view(), 3.0, 3.0).unwrap();
    // Domain 240 km, bin width 1/240 km⁻¹, Nyquist 1/6 km⁻¹ = bin 40.
    assert_eq!(s.wavelength_km.len(), 40);
    assert_eq!(s.wavelength_km[0], 240.0);
    assert_eq!(*s.wavelength_km.last().unwrap(), 6.0);
    assert!(s.wavelength_km.windows(2).all(|w| w[0] > w[1]));
}

#[test]
fn rapsd_of_white_noise_is_flat_at_variance_times_cell_area() {
    // Uniform noise on [-1, 1) has variance 1/3; PSD = σ² · dx · dy = 3 km².
    let s = rapsd(noise(128, 128, 5).view(), 3.0, 3.0).unwrap();
    let mean = s.power.iter().sum::<f64>() / s.power.len() as f64;
    assert!((mean - 3.0).abs() < 0.3, "mean PSD {mean}");
}

#[test]
fn rapsd_fills_missing_cells_and_rejects_mostly_missing_fields() {
    let mut field = sinusoid(64, 64, 30.0, true);
    field.slice_mut(ndarray::s![0..20, ..]).fill(NAN);
    let s = rapsd(field.view(), 3.0, 3.0).unwrap();
    assert_eq!(peak_wavelength(&s), nearest_bin(&s, 30.0));
    assert!(s.power.iter().all(|p| p.is_finite()));

    field.slice_mut(ndarray::s![0..33, ..]).fill(NAN);
    assert!(matches!(
        rapsd(field.view(), 3.0, 3.0),
        Err(MetricsError::TooManyMissing { .. })
    ));
    let all_nan = Array2::from_elem((16, 16), NAN);
    assert!(matches!(
        rapsd(all_nan.view(), 3.0, 3.0),
        Err(MetricsError::TooManyMissing { .. })
    ));
}

#[test]
fn rapsd_rejects_bad_grids() {
    let f = noise(16, 16, 6);
    for (dx, dy) in [(0.0, 3.0), (3.0, -1.0), (f64::NAN, 3.0)] {
        assert!(matches!(
            rapsd(f.view(), dx, dy),
            Err(MetricsError::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        rapsd(noise(3, 16, 7).view(), 3.0, 3.0),
        Err(MetricsError::InvalidArgument(_))
    ));
}

#[test]
fn spectral_ratio_of_field_with_itself_is_one() {
    let f = noise(128, 128, 8);
    let bands = spectral_ratio(f.view(), f.view(), 3.0, 3.0, &default_bands()).unwrap();
    let labels: Vec<&str> = bands.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["6-12km", "12-25km", "25-50km", "50-100km"]);
    for b in &bands {
        assert_abs_diff_eq!(b.ratio.unwrap(), 1.0, epsilon = 1e-12);
    }
}

#[test]
fn smoothing_lowers_short_wave_power_only() {
    let truth = noise(128, 128, 9);
    let smooth = box_blur(&truth);
    let bands = spectral_ratio(smooth.view(), truth.view(), 3.0, 3.0, &default_bands()).unwrap();
    assert!(ratio(&bands, "6-12km").unwrap() < 0.3, "{bands:?}");
    let long = ratio(&bands, "50-100km").unwrap();
    assert!((0.85..=1.05).contains(&long), "{bands:?}");
}

#[test]
fn added_noise_raises_short_wave_power() {
    let truth = box_blur(&box_blur(&noise(128, 128, 10)));
    let noisy = &truth + &noise(128, 128, 11).mapv(|v| 0.3 * v);
    let bands = spectral_ratio(noisy.view(), truth.view(), 3.0, 3.0, &default_bands()).unwrap();
    assert!(ratio(&bands, "6-12km").unwrap() > 1.5, "{bands:?}");
    let long = ratio(&bands, "50-100km").unwrap();
    assert!((0.9..=1.2).contains(&long), "{bands:?}");
}

#[test]
fn unresolved_and_out_of_domain_bands_are_none() {
    let f = noise(64, 64, 12);
    let g = box_blur(&f);
    // 3 km grid: 6 km is the finest resolved wavelength; domain is 192 km.
    let bands = [(3.0, 6.0), (5.9, 12.0), (6.0, 12.0), (200.0, 400.0)];
    let r = spectral_ratio(g.view(), f.view(), 3.0, 3.0, &bands).unwrap();
    assert_eq!(r[0].ratio, None);
    assert_eq!(r[1].ratio, None);
    assert!(r[2].ratio.is_some());
    assert_eq!(r[3].ratio, None);
    assert_eq!(r[1].label, "5.9-12km");
}

#[test]
fn spectral_ratio_fills_gaps_identically_in_both_fields() {
    let truth = noise(64, 64, 13);
    let mut pred = truth.clone();
    pred.slice_mut(ndarray::s![10..30, 5..25]).fill(NAN);
    let r = spectral_ratio(pred.view(), truth.view(), 3.0, 3.0, &default_bands()).unwrap();
    for b in r.iter().filter(|b| b.lo_km >= 6.0 && b.hi_km <= 100.0) {
        assert_abs_diff_eq!(b.ratio.unwrap(), 1.0, epsilon = 1e-9);
    }
}

#[test]
fn spectral_ratio_errors() {
    let a = noise(32, 32, 14);
    let b = noise(32, 31, 15);
    assert!(matches!(
        spectral_ratio(a.view(), b.view(), 3.0, 3.0, &default_bands()),
        Err(MetricsError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        spectral_ratio(a.view(), a.view(), 3.0, 3.0, &[(12.0, 6.0)]),
        Err(MetricsError::InvalidArgument(_))
    ));
    let nan = Array2::from_elem((32, 32), NAN);
    assert!(matches!(
        spectral_ratio(nan.view(), a.view(), 3.0, 3.0, &default_bands()),
        Err(MetricsError::TooManyMissing { .. })
    ));
}

// ---------------------------------------------------------------- FSS

fn blob(ny: usize, nx: usize, j0: usize, i0: usize, size: usize) -> Array2<f32> {
    let mut a = Array2::zeros((ny, nx));
    a.slice_mut(ndarray::s![j0..j0 + size, i0..i0 + size])
        .fill(5.0);
    a
}

#[test]
fn fss_of_identical_fields_is_one() {
    let f = noise(30, 40, 16);
    for scale in [1, 3, 9, 31] {
        assert_abs_diff_eq!(
            fss(f.view(), f.view(), 0.2, scale).unwrap().unwrap(),
            1.0,
            epsilon = 1e-12
        );
    }
}

#[test]
fn fss_of_disjoint_blobs_rises_from_zero_to_one_with_scale() {
    let pred = blob(40, 40, 5, 5, 5);
    let truth = blob(40, 40, 25, 28, 5);
    let scales = [1, 5, 11, 21, 41, 81];
    let values: Vec<f64> = scales
        .iter()
        .map(|&n| fss(pred.view(), truth.view(), 1.0, n).unwrap().unwrap())
        .collect();
    assert_eq!(values[0], 0.0);
    assert!(values.windows(2).all(|w| w[1] >= w[0]), "{values:?}");
    assert!(values[3] > 0.0);
    // 81 cells cover the whole 40x40 domain from every cell: equal fractions.
    assert_abs_diff_eq!(values[5], 1.0, epsilon = 1e-12);
}

#[test]
fn fss_neighbourhoods_are_clipped_at_the_edge() {
    // Fractions 1/2,1/3,0 vs 0,1/3,1/2: FSS = 1 - (1/2) / (1/2 + 2/9).
    let pred = array![[1.0f32, 0.0, 0.0]];
    let truth = array![[0.0f32, 0.0, 1.0]];
    let v = fss(pred.view(), truth.view(), 0.5, 3).unwrap().unwrap();
    assert_abs_diff_eq!(v, 1.0 - 0.5 / (0.5 + 2.0 / 9.0), epsilon = 1e-12);
}

#[test]
fn fss_ignores_cells_missing_in_either_field() {
    let truth = blob(20, 20, 5, 5, 6);
    let mut pred = truth.clone();
    // Gaps in pred: the same cells are dropped from truth too, so still perfect.
    pred.slice_mut(ndarray::s![0..8, 0..8]).fill(NAN);
    assert_abs_diff_eq!(
        fss(pred.view(), truth.view(), 1.0, 5).unwrap().unwrap(),
        1.0,
        epsilon = 1e-12
    );
}

#[test]
fn fss_without_any_exceedance_is_none() {
    let z = Array2::<f32>::zeros((10, 10));
    assert_eq!(fss(z.view(), z.view(), 1.0, 3), Ok(None));
}

#[test]
fn fss_errors() {
    let a = Array2::<f32>::zeros((10, 10));
    let b = Array2::<f32>::zeros((10, 9));
    assert!(matches!(
        fss(a.view(), b.view(), 1.0, 3),
        Err(MetricsError::ShapeMismatch { .. })
    ));
    for scale in [0, 4] {
        assert!(matches!(
            fss(a.view(), a.view(), 1.0, scale),
            Err(MetricsError::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        fss(a.view(), a.view(), NAN, 3),
        Err(MetricsError::InvalidArgument(_))
    ));
    let nan = Array2::from_elem((10, 10), NAN);
    assert_eq!(
        fss(nan.view(), a.view(), 1.0, 3),
        Err(MetricsError::NoValidCells)
    );
}

#[test]
fn useful_fss_threshold() {
    assert_abs_diff_eq!(fss_useful_threshold(0.0), 0.5);
    assert_abs_diff_eq!(fss_useful_threshold(0.1), 0.55);
}
