//! The evaluation protocol on real fields, checked against the independent
//! reference numbers in shared/reference/downscaling-notes.md.

mod common;

use finecast_methods::Baseline;
use finecast_pipeline::{run_evaluate, EvaluateRequest};

fn evaluate(
    truth: &str,
    var: &str,
    terrain: &str,
    region: Option<&str>,
) -> Option<finecast_pipeline::EvaluateReport> {
    let data = common::shared_data()?;
    let methods = [
        Baseline::Bilinear,
        Baseline::Bicubic,
        Baseline::Lapse,
        Baseline::Gradient,
    ]
    .map(Into::into)
    .to_vec();
    let req = EvaluateRequest {
        terrain: Some(data.join(terrain)),
        region: region.map(|r| r.parse().unwrap()),
        ..EvaluateRequest::new(data.join(truth), var, methods)
    };
    Some(run_evaluate(&req).unwrap())
}

/// RMSE (K) of bilinear, bicubic, lapse, gradient within 6 % of the reference.
fn check(report: &finecast_pipeline::EvaluateReport, reference: [f64; 4]) {
    for (name, want) in ["bilinear", "bicubic", "lapse", "gradient"]
        .iter()
        .zip(reference)
    {
        let got = report.methods[*name].rmse;
        assert!(
            (got / want - 1.0).abs() < 0.06,
            "{name}: rmse {got:.3} vs reference {want:.3}"
        );
    }
}

const COLORADO: &str = "37,41,-109,-102.5";

#[test]
fn prism_tmax_colorado_lapse_and_gradient_beat_bicubic() {
    let Some(r) = evaluate(
        "fine/prism_conus_19810929.nc",
        "tmax",
        "static/colorado_orog_1arcmin.nc",
        Some(COLORADO),
    ) else {
        return;
    };
    check(&r, [1.536, 1.429, 0.406, 0.302]);
    let rmse = |m: &str| r.methods[m].rmse;
    assert!(rmse("lapse") < 0.5 * rmse("bicubic"));
    assert!(rmse("gradient") < 0.5 * rmse("bicubic"));
    // Interpolation keeps almost no power below 25 km; terrain methods restore it.
    assert!(r.methods["bicubic"].spectral_ratio.get("12-25km").unwrap() < 0.05);
    assert!(r.methods["gradient"].spectral_ratio.get("12-25km").unwrap() > 0.5);
    assert!(r.methods["lapse"].bias.abs() < 0.1);
    assert!(r.n_scored > 10_000);
}

#[test]
fn prism_tmin_shows_the_lapse_rate_failing_under_inversions() {
    let Some(r) = evaluate(
        "fine/prism_conus_19810929.nc",
        "tmin",
        "static/colorado_orog_1arcmin.nc",
        Some(COLORADO),
    ) else {
        return;
    };
    check(&r, [0.919, 0.843, 1.475, 1.113]);
    assert!(r.methods["lapse"].rmse > r.methods["bicubic"].rmse);
}

#[test]
fn prism_2025_tmax_and_etopo5_terrain() {
    if let Some(r) = evaluate(
        "fine/prism_conus_20251103.nc",
        "tmax",
        "static/colorado_orog_1arcmin.nc",
        Some(COLORADO),
    ) {
        check(&r, [1.785, 1.701, 0.792, 0.654]);
    }
    if let Some(r) = evaluate(
        "fine/prism_conus_19810929.nc",
        "tmax",
        "static/etopo5_orog.nc",
        Some(COLORADO),
    ) {
        check(&r, [1.536, 1.429, 0.823, 0.739]);
    }
}

#[test]
fn wrf_lambert_truth_with_etopo5() {
    let Some(r) = evaluate(
        "fine/wrf_bc_1980-01-12T17.nc",
        "t2m",
        "static/etopo5_orog.nc",
        None,
    ) else {
        return;
    };
    check(&r, [1.202, 1.122, 1.022, 1.039]);
}

#[test]
fn precipitation_gets_fss_and_rejects_terrain_methods() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let mut req = EvaluateRequest::new(
        data.join("fine/stageiv_conus_tp_2022-08-10T04.nc"),
        "tp",
        vec![Baseline::Nearest.into(), Baseline::Bilinear.into()],
    );
    let r = run_evaluate(&req).unwrap();
    let fss = &r.methods["bilinear"].fss;
    assert!(!fss.is_empty());
    let small = fss.get("1mm@10km").unwrap();
    let large = fss.get("1mm@50km").unwrap();
    assert!(
        large >= small && large <= 1.0 && small > 0.3,
        "FSS {small} -> {large}"
    );
    req.methods = vec![Baseline::Lapse.into()];
    assert!(run_evaluate(&req).is_err());
}

#[test]
fn plots_are_written() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let req = EvaluateRequest {
        terrain: Some(data.join("static/colorado_orog_1arcmin.nc")),
        region: Some(COLORADO.parse().unwrap()),
        plots: Some(dir.path().to_path_buf()),
        ..EvaluateRequest::new(
            data.join("fine/prism_conus_19810929.nc"),
            "tmax",
            vec![Baseline::Bicubic.into(), Baseline::Gradient.into()],
        )
    };
    run_evaluate(&req).unwrap();
    for f in [
        "truth",
        "bicubic",
        "bicubic_error",
        "gradient",
        "gradient_error",
        "spectra",
    ] {
        let p = dir.path().join(format!("{f}.png"));
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{}", p.display());
    }
}

/// `evaluate` scores every time of a multi-time truth by default: the
/// pooled RMSE is the root of the mean squared error over all scored cells of
/// all times (on the British National Grid every cell weighs the same, so it
/// is the cell-weighted mean of the per-time MSEs), and `time` picks one.
#[test]
fn evaluate_pools_every_time_and_time_picks_one() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let truth = data.join("fine/haduk_cornwall_1km_2018-05.nc");
    if !truth.exists() {
        eprintln!("skipping: the HadUK-Grid Cornwall file is not in this copy of the shared data");
        return;
    }
    let methods = vec![Baseline::Bilinear.into(), Baseline::Lapse.into()];
    let mut req = EvaluateRequest {
        // The 1 km DTM stops 13 km short of the HadUK grid's north edge.
        terrain: Some(data.join("static/etopo5_orog.nc")),
        ..EvaluateRequest::new(truth, "tmax", methods)
    };
    let pooled = run_evaluate(&req).unwrap();
    assert_eq!(pooled.n_times, 31);
    assert_eq!(pooled.per_time.len(), 31);
    assert_eq!(pooled.time, None);
    assert_eq!(
        pooled.n_scored,
        pooled.per_time.iter().map(|t| t.n_scored).sum::<usize>()
    );
    for name in ["bilinear", "lapse"] {
        let (sum, n) = pooled.per_time.iter().fold((0.0, 0.0), |(s, n), t| {
            let k = t.n_scored as f64;
            (s + k * t.methods[name].rmse.powi(2), n + k)
        });
        let want = (sum / n).sqrt();
        let got = pooled.methods[name].rmse;
        assert!((got - want).abs() < 1e-6 * want, "{name}: {got} vs {want}");
    }
    // One time alone scores exactly as that time within the pooled run.
    let day = pooled.per_time[9].clone();
    req.time = day.time;
    let one = run_evaluate(&req).unwrap();
    assert_eq!((one.n_times, one.time), (1, day.time));
    assert_eq!(one.n_scored, day.n_scored);
    for name in ["bilinear", "lapse"] {
        assert_eq!(one.methods[name].rmse, day.methods[name].rmse);
    }
}

/// A real coarse input finer in time than the truth is aggregated over each
/// truth period as the truth is (ERA5 hourly → HadUK-Grid daily): daily
/// minimum of t2m for tmin, daily sum of tp for ppt. Read at the truth's
/// time stamp instead (12 UTC) ERA5 would be ~5 K too warm for tmin and
/// would hold one hour of rain out of 24.
#[test]
fn real_coarse_input_is_aggregated_to_the_truth_period() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let truth = data.join("fine/haduk_cornwall_1km_2018-05.nc");
    let era5 = data.join("coarse/era5_cornwall_2018-05.nc");
    if !truth.exists() || !era5.exists() {
        eprintln!("skipping: the Cornwall files are not in this copy of the shared data");
        return;
    }
    for (var, coarse_var, how, max_bias) in [
        ("tmin", "t2m", "minimum of the 't2m' fields", 2.5),
        ("tmax", "t2m", "maximum of the 't2m' fields", 2.5),
        ("ppt", "tp", "sum of the 'tp' fields", 0.5),
    ] {
        let req = EvaluateRequest {
            coarse: Some(era5.clone()),
            coarse_var: Some(coarse_var.into()),
            ..EvaluateRequest::new(truth.clone(), var, vec![Baseline::Bilinear.into()])
        };
        let r = run_evaluate(&req).unwrap();
        assert_eq!(r.n_times, 31, "{var}");
        assert!(r.coarse.contains(how), "{var}: {}", r.coarse);
        assert!(r.coarse.contains("24 in the first"), "{var}: {}", r.coarse);
        let bias = r.methods["bilinear"].bias;
        assert!(bias.abs() < max_bias, "{var}: bias {bias}");
    }
}
