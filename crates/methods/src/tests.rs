use approx::assert_abs_diff_eq;
use finecast_grid::{Crs, Earth, Field, Grid};
use ndarray::Array2;

use super::*;

fn latlon_field(grid: &Grid, f: impl Fn(f64, f64) -> f64) -> Field {
    let data = Array2::from_shape_fn(grid.shape(), |(j, i)| {
        let (lon, lat) = grid.lonlat(j, i);
        f(lon, lat) as f32
    });
    Field::new(grid.clone(), data).unwrap()
}

fn lcc_target() -> Grid {
    let crs = Crs::LambertConformalConic {
        standard_parallel: (38.5, 38.5),
        longitude_of_central_meridian: -97.5,
        latitude_of_projection_origin: 38.5,
        false_easting: 0.0,
        false_northing: 0.0,
        earth: Earth::sphere(6_371_229.0),
    };
    let x = (0..40).map(|i| -300_000.0 + 3000.0 * i as f64).collect();
    let y = (0..30).map(|j| -200_000.0 + 3000.0 * j as f64).collect();
    Grid::new(crs, x, y).unwrap()
}

#[test]
fn bilinear_is_exact_for_linear_fields_across_projections() {
    let coarse = Grid::regular_latlon(-105.0, 0.25, 60, 33.0, 0.25, 40).unwrap();
    let lin = |lon: f64, lat: f64| 280.0 + 0.7 * lon + 1.3 * lat;
    let src = latlon_field(&coarse, lin);
    let dst = lcc_target();
    let out = regrid(&src, &dst, Interp::Bilinear);
    let expect = latlon_field(&dst, lin);
    for (a, b) in out.data.iter().zip(expect.data.iter()) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-3);
    }
}

#[test]
fn bicubic_beats_bilinear_on_smooth_fields_and_nearest_copies_values() {
    let coarse = Grid::regular_latlon(-105.0, 0.25, 60, 33.0, 0.25, 40).unwrap();
    let smooth = |lon: f64, lat: f64| 280.0 + 5.0 * (lon * 1.3).sin() * (lat * 0.9).cos();
    let src = latlon_field(&coarse, smooth);
    let dst = lcc_target();
    let truth = latlon_field(&dst, smooth);
    let err = |m| {
        let out = regrid(&src, &dst, m);
        out.data
            .iter()
            .zip(truth.data.iter())
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
    };
    assert!(err(Interp::Bicubic) < 0.2 * err(Interp::Bilinear));
    let near = regrid(&src, &dst, Interp::Nearest);
    for v in near.data.iter() {
        assert!(src.data.iter().any(|s| s == v));
    }
}

#[test]
fn interpolation_wraps_a_global_grid_across_its_seam() {
    let global = Grid::regular_latlon(0.0, 1.0, 360, -89.5, 1.0, 180).unwrap();
    let src = latlon_field(&global, |lon, _| if lon > 180.0 { 0.0 } else { 10.0 });
    // Halfway between lon 359 (value 0) and lon 0 == 360 (value 10).
    let dst = Grid::regular_latlon(-0.5, 1.0, 1, 10.0, 1.0, 1).unwrap();
    let out = regrid(&src, &dst, Interp::Bilinear);
    assert_abs_diff_eq!(out.data[[0, 0]], 5.0, epsilon = 1e-4);
}

#[test]
fn bilinear_renormalises_over_gaps_and_bicubic_falls_back() {
    let g = Grid::regular_latlon(0.0, 1.0, 4, 0.0, 1.0, 4).unwrap();
    let mut data = Array2::from_elem((4, 4), 1.0f32);
    data[[1, 2]] = f32::NAN;
    let src = Field::new(g, data).unwrap();
    let dst = Grid::regular_latlon(1.5, 1.0, 1, 1.5, 1.0, 1).unwrap();
    assert_abs_diff_eq!(regrid(&src, &dst, Interp::Bilinear).data[[0, 0]], 1.0);
    assert_abs_diff_eq!(regrid(&src, &dst, Interp::Bicubic).data[[0, 0]], 1.0);
}

#[test]
fn area_mean_is_conservative_and_drops_sparse_cells() {
    let fine = Grid::regular_latlon(0.0 + 0.025, 0.05, 100, 40.025, 0.05, 100).unwrap();
    let mut f = latlon_field(&fine, |lon, lat| lon * 2.0 + lat);
    // Blank out most of the fine cells in the first coarse cell (0..0.25, 40..40.25).
    for j in 0..5 {
        for i in 0..4 {
            f.data[[j, i]] = f32::NAN;
        }
    }
    let coarse = aligned_latlon_grid(&fine, 0.25).unwrap();
    assert_eq!(coarse.shape(), (20, 20));
    let c = area_mean(&f, &coarse, 0.5);
    assert!(c.data[[0, 0]].is_nan());
    // A full cell: mean of a linear field = value at the area-weighted centre.
    let (lon, lat) = coarse.lonlat(5, 7);
    assert_abs_diff_eq!(c.data[[5, 7]] as f64, lon * 2.0 + lat, epsilon = 2e-3);
    // Total (area-weighted) mass matches where every cell is complete.
    let fa = cell_areas(&fine);
    let ca = cell_areas(&coarse);
    let fine_mass: f64 = f
        .data
        .indexed_iter()
        .filter(|(_, v)| v.is_finite())
        .filter(|((j, i), _)| !(*j < 5 && *i < 5))
        .map(|(idx, v)| *v as f64 * fa[idx])
        .sum();
    let coarse_mass: f64 = c
        .data
        .indexed_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(idx, v)| *v as f64 * ca[idx])
        .sum();
    assert_abs_diff_eq!(fine_mass / coarse_mass, 1.0, epsilon = 1e-4);
}

#[test]
fn lapse_rate_restores_a_pure_lapse_profile() {
    let fine = Grid::regular_latlon(-106.0, 0.02, 100, 38.0, 0.02, 100).unwrap();
    let z = latlon_field(&fine, |lon, lat| {
        1500.0 + 800.0 * (lon * 7.0).sin() * (lat * 5.0).cos()
    });
    let mut t = z.clone();
    t.data
        .mapv_inplace(|z| (290.0 - STANDARD_LAPSE_RATE * z as f64) as f32);
    let coarse = aligned_latlon_grid(&fine, 0.25).unwrap();
    let (tc, zc) = (area_mean(&t, &coarse, 0.5), area_mean(&z, &coarse, 0.5));
    let input = CoarseInput::new(&tc, Some(&zc), &GradientParams::default()).unwrap();
    let lapse = downscale(Baseline::Lapse, &input, &fine, Some(z.data.view())).unwrap();
    let bil = downscale(Baseline::Bilinear, &input, &fine, None).unwrap();
    let rms = |a: &Array2<f32>| {
        (a.iter()
            .zip(t.data.iter())
            .map(|(p, q)| ((p - q) as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64)
            .sqrt()
    };
    assert!(rms(&lapse) < 1e-3, "lapse rmse {}", rms(&lapse));
    assert!(rms(&bil) > 0.5);
    assert!(matches!(
        downscale(Baseline::Lapse, &input, &fine, None),
        Err(MethodError::NeedsTerrain("lapse"))
    ));
}

#[test]
fn local_gradients_fit_clamp_and_default() {
    let z = Array2::from_shape_fn((9, 9), |(j, i)| (100.0 * (j + 2 * i) as f64) as f32);
    let p = GradientParams::default();
    let t = z.mapv(|z| 280.0 - 0.008 * z);
    let g = local_gradients(t.view(), z.view(), &p);
    assert_abs_diff_eq!(g[[4, 4]], -0.008, epsilon = 1e-5);
    let t_inv = z.mapv(|z| 280.0 + 0.02 * z);
    assert_abs_diff_eq!(local_gradients(t_inv.view(), z.view(), &p)[[4, 4]], 0.005);
    let flat = Array2::from_elem((9, 9), 500.0f32);
    assert_abs_diff_eq!(local_gradients(t.view(), flat.view(), &p)[[4, 4]], -0.0065);
}

#[test]
fn terrain_regrid_chooses_area_mean_or_bilinear_and_checks_coverage() {
    let dem_grid = Grid::regular_latlon(-106.0, 1.0 / 60.0, 240, 38.0, 1.0 / 60.0, 240).unwrap();
    let dem = latlon_field(&dem_grid, |lon, lat| {
        1000.0 + 100.0 * lon.sin() + 50.0 * lat
    });
    let target = Grid::regular_latlon(-105.5, 0.1, 20, 38.5, 0.1, 20).unwrap();
    let (_, how) = regrid_terrain(&dem, &target).unwrap();
    assert_eq!(how, TerrainRegrid::AreaMean);
    let fine_target = Grid::regular_latlon(-105.5, 0.01, 20, 38.5, 0.01, 20).unwrap();
    assert_eq!(
        regrid_terrain(&dem, &fine_target).unwrap().1,
        TerrainRegrid::Bilinear
    );
    let outside = Grid::regular_latlon(-103.0, 0.1, 20, 38.5, 0.1, 20).unwrap();
    assert!(matches!(
        regrid_terrain(&dem, &outside),
        Err(MethodError::NotCovered { .. })
    ));
}

#[test]
fn baseline_names_round_trip() {
    for b in Baseline::ALL {
        assert_eq!(b.name().parse::<Baseline>().unwrap(), b);
    }
    assert!("cubic".parse::<Baseline>().is_err());
}
