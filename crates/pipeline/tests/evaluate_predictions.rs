//! `evaluate` scores other downscalers' outputs (`--prediction NAME=FILE`)
//! beside its methods, time by time, on the truth grid.

use std::path::Path;

use chrono::{TimeZone, Utc};
use finecast_grid::Grid;
use finecast_methods::Baseline;
use finecast_pipeline::{run_evaluate, EvaluateRequest};
use ndarray::Array2;

fn write(path: &Path, grid: &Grid, fields: Vec<Array2<f32>>) {
    let times = (0..fields.len())
        .map(|k| {
            Utc.with_ymd_and_hms(2024, 1, 15, 6 * k as u32, 0, 0)
                .unwrap()
        })
        .collect();
    let var = finecast_io::OutputVar {
        name: "t2m".into(),
        standard_name: Some("air_temperature".into()),
        long_name: None,
        units: "K".into(),
        grid: grid.clone(),
        times,
        data: fields,
    };
    finecast_io::write_netcdf(path, &[var], &Default::default()).unwrap();
}

/// A smooth temperature field at time step `k` on `grid`.
fn field(grid: &Grid, k: usize) -> Array2<f32> {
    Array2::from_shape_fn(grid.shape(), |(j, i)| {
        let (lon, lat) = grid.lonlat(j, i);
        (280.0 + 2.0 * k as f64 + 0.8 * (lon * 3.0).sin() + 0.5 * (lat * 4.0).cos()) as f32
    })
}

#[test]
fn other_models_outputs_are_scored_on_the_truth_grid() {
    let dir = tempfile::tempdir().unwrap();
    let truth_grid = Grid::regular_latlon(8.02, 0.04, 75, 45.02, 0.04, 50).unwrap();
    let truth: Vec<_> = (0..2).map(|k| field(&truth_grid, k)).collect();
    write(&dir.path().join("truth.nc"), &truth_grid, truth.clone());
    // A researcher's output 1 K too warm at the first time, 2 K too cold at
    // the second, on the truth grid.
    let shifted = vec![truth[0].mapv(|v| v + 1.0), truth[1].mapv(|v| v - 2.0)];
    write(&dir.path().join("warm.nc"), &truth_grid, shifted);
    // Another on a finer grid of its own: regridded bilinearly.
    let other_grid = Grid::regular_latlon(8.0, 0.01, 301, 45.0, 0.01, 201).unwrap();
    let other: Vec<_> = (0..2).map(|k| field(&other_grid, k)).collect();
    write(&dir.path().join("fine.nc"), &other_grid, other);

    let req = EvaluateRequest {
        predictions: vec![
            ("warm".into(), dir.path().join("warm.nc")),
            ("fine".into(), dir.path().join("fine.nc")),
        ],
        ..EvaluateRequest::new(
            dir.path().join("truth.nc"),
            "t2m",
            vec![Baseline::Bilinear.into()],
        )
    };
    let r = run_evaluate(&req).unwrap();
    assert_eq!(r.n_times, 2);
    let warm = &r.methods["warm"];
    // Equal cells at both times: RMSE sqrt((1 + 4) / 2), bias (1 - 2) / 2.
    assert!((warm.rmse - 2.5f64.sqrt()).abs() < 1e-4, "{}", warm.rmse);
    assert!((warm.bias + 0.5).abs() < 1e-4, "{}", warm.bias);
    assert!((r.per_time[0].methods["warm"].bias - 1.0).abs() < 1e-4);
    assert!((r.per_time[1].methods["warm"].bias + 2.0).abs() < 1e-4);
    // The finer field brought onto the truth grid is the truth, to the
    // curvature bilinear misses over 0.01 degree.
    assert!(r.methods["fine"].rmse < 2e-3, "{}", r.methods["fine"].rmse);
    assert!(r.methods["bilinear"].rmse > 10.0 * r.methods["fine"].rmse);

    // A name taken by a method, or a file in other units, is refused.
    let mut bad = req.clone();
    bad.predictions = vec![("bilinear".into(), dir.path().join("warm.nc"))];
    assert!(run_evaluate(&bad)
        .unwrap_err()
        .to_string()
        .contains("used twice"));
    let mut bad = req;
    bad.predictions = vec![("no=good".into(), dir.path().join("warm.nc"))];
    assert!(run_evaluate(&bad).is_err());
}
