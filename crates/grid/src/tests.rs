use approx::assert_abs_diff_eq;

use super::*;

fn hrrr_crs() -> Crs {
    Crs::LambertConformalConic {
        standard_parallel: (38.5, 38.5),
        longitude_of_central_meridian: 262.5,
        latitude_of_projection_origin: 38.5,
        false_easting: 0.0,
        false_northing: 0.0,
        earth: Earth::sphere(6_371_229.0),
    }
}

#[test]
fn lambert_conformal_matches_hrrr_corner() {
    // HRRR's first grid point (NOAA documentation): 21.138123 N, 122.719528 W,
    // which pyproj places at x=-2697520.1425, y=-1587306.1526 on this projection.
    let t = crs::Transformer::new(&hrrr_crs()).unwrap();
    let (x, y) = t.forward(-122.719528, 21.138123).unwrap();
    assert_abs_diff_eq!(x, -2_697_520.142_5, epsilon = 5.0);
    assert_abs_diff_eq!(y, -1_587_306.152_6, epsilon = 5.0);
    let (lon, lat) = t.inverse(x, y).unwrap();
    assert_abs_diff_eq!(lon, -122.719528, epsilon = 1e-7);
    assert_abs_diff_eq!(lat, 21.138123, epsilon = 1e-7);
    // The projection origin maps to (0, 0).
    let (x0, y0) = t.forward(-97.5, 38.5).unwrap();
    assert_abs_diff_eq!(x0, 0.0, epsilon = 1e-6);
    assert_abs_diff_eq!(y0, 0.0, epsilon = 1e-6);
}

#[test]
fn polar_stereographic_hrap_round_trip_and_scale() {
    let crs = Crs::PolarStereographic {
        straight_vertical_longitude_from_pole: -105.0,
        latitude_of_projection_origin: 90.0,
        standard_parallel: Some(60.0),
        scale_factor_at_projection_origin: None,
        false_easting: 0.0,
        false_northing: 0.0,
        earth: Earth::sphere(6_371_200.0),
    };
    let t = crs::Transformer::new(&crs).unwrap();
    // On the central meridian a point lies straight "below" the pole: x = 0, y < 0.
    let (x, y) = t.forward(-105.0, 40.0).unwrap();
    assert_abs_diff_eq!(x, 0.0, epsilon = 1e-6);
    // Spherical polar stereographic true at 60N: rho = R (1 + sin 60) tan(pi/4 - phi/2).
    let r = 6_371_200.0 * (1.0 + 60f64.to_radians().sin()) * (25f64.to_radians()).tan();
    assert_abs_diff_eq!(y, -r, epsilon = 1e-3);
    let (lon, lat) = t.inverse(123_456.0, -4_000_000.0).unwrap();
    let (x2, y2) = t.forward(lon, lat).unwrap();
    assert_abs_diff_eq!(x2, 123_456.0, epsilon = 1e-4);
    assert_abs_diff_eq!(y2, -4_000_000.0, epsilon = 1e-4);
}

#[test]
fn utm_zones_match_pyproj_in_both_hemispheres() {
    // Reference values: pyproj 3 (PROJ 9), EPSG:4326 -> EPSG:32633 / 32756.
    for (zone, north, lon, lat, x_ref, y_ref) in [
        (
            33,
            true,
            16.3738,
            48.2082,
            602_065.207_411,
            5_340_353.594_304,
        ),
        (
            56,
            false,
            151.2093,
            -33.8688,
            334_368.633_648,
            6_250_948.345_385,
        ),
    ] {
        let crs = Crs::utm(zone, north, Earth::WGS84).unwrap();
        let t = crs::Transformer::new(&crs).unwrap();
        let (x, y) = t.forward(lon, lat).unwrap();
        assert_abs_diff_eq!(x, x_ref, epsilon = 1e-3);
        assert_abs_diff_eq!(y, y_ref, epsilon = 1e-3);
        let (lo, la) = t.inverse(x, y).unwrap();
        assert_abs_diff_eq!(lo, lon, epsilon = 1e-9);
        assert_abs_diff_eq!(la, lat, epsilon = 1e-9);
    }
    assert!(Crs::utm(0, true, Earth::WGS84).is_err());
    assert!(Crs::utm(61, true, Earth::WGS84).is_err());
}

fn british_national_grid(towgs84: Option<[f64; 7]>) -> Crs {
    Crs::TransverseMercator {
        scale_factor_at_central_meridian: 0.999_601_271_7,
        longitude_of_central_meridian: -2.0,
        latitude_of_projection_origin: 49.0,
        false_easting: 400_000.0,
        false_northing: -100_000.0,
        earth: Earth {
            semi_major_axis: 6_377_563.396,
            inverse_flattening: 299.324_964_6,
            towgs84,
        },
    }
}

#[test]
fn british_national_grid_with_and_without_the_osgb36_shift() {
    // pyproj: EPSG:27700 -> EPSG:4277 (OSGB36 itself) and -> EPSG:4326
    // (WGS84 through EPSG:1314), at the HadUK-Grid Cornwall file's first cell.
    let (x, y) = (134_500.0, 12_500.0);
    let own = crs::Transformer::new(&british_national_grid(None)).unwrap();
    let (lon, lat) = own.inverse(x, y).unwrap();
    assert_abs_diff_eq!(lon, -5.701_812_174, epsilon = 1e-8);
    assert_abs_diff_eq!(lat, 49.952_909_087, epsilon = 1e-8);
    let osgb36 = [446.448, -125.157, 542.06, 0.15, 0.247, 0.842, -20.489];
    let shifted = british_national_grid(Some(osgb36));
    assert!(shifted.proj4().contains("+towgs84=446.448,-125.157"));
    let wgs84 = crs::Transformer::new(&shifted).unwrap();
    let (lon, lat) = wgs84.inverse(x, y).unwrap();
    assert_abs_diff_eq!(lon, -5.702_736_538, epsilon = 1e-7);
    assert_abs_diff_eq!(lat, 49.953_526_211, epsilon = 1e-7);
    // And back: forward of WGS84 coordinates lands on the same cell.
    let (x2, y2) = wgs84.forward(lon, lat).unwrap();
    assert_abs_diff_eq!(x2, x, epsilon = 0.01);
    assert_abs_diff_eq!(y2, y, epsilon = 0.01);
}

#[test]
fn rotated_pole_puts_ukv_centre_on_rotated_origin() {
    let crs = Crs::RotatedPole {
        grid_north_pole_latitude: 37.5,
        grid_north_pole_longitude: 177.5,
        north_pole_grid_longitude: 0.0,
    };
    let t = crs::Transformer::new(&crs).unwrap();
    let (rlon, rlat) = t.forward(-2.5, 52.5).unwrap();
    assert_abs_diff_eq!(rlon, 0.0, epsilon = 1e-9);
    assert_abs_diff_eq!(rlat, 0.0, epsilon = 1e-9);
    // East of the origin is positive rotated longitude; the true pole sits at rlat = pole lat.
    assert!(t.forward(0.0, 52.5).unwrap().0 > 0.0);
    assert_abs_diff_eq!(t.forward(0.0, 90.0).unwrap().1, 37.5, epsilon = 1e-9);
    for &(lon, lat) in &[(-10.0, 50.0), (8.0, 61.0), (2.0, 46.4), (-16.7, 55.0)] {
        let (x, y) = t.forward(lon, lat).unwrap();
        let (lo, la) = t.inverse(x, y).unwrap();
        assert_abs_diff_eq!(lo, lon, epsilon = 1e-9);
        assert_abs_diff_eq!(la, lat, epsilon = 1e-9);
    }
}

#[test]
fn latlon_grid_locates_in_both_orientations_and_longitude_conventions() {
    // 0..360, north-up (lat descending) like GFS.
    let g = Grid::regular_latlon(0.0, 0.25, 1440, 90.0, -0.25, 721).unwrap();
    assert!(g.wraps_longitude());
    assert!(g.is_y_descending());
    let (fj, fi) = g.locate(-105.0, 40.0).unwrap();
    assert_abs_diff_eq!(fi, 255.0 * 4.0, epsilon = 1e-9);
    assert_abs_diff_eq!(fj, 200.0, epsilon = 1e-9);
    // -180..180, south-up like the shared ERA5 files.
    let g2 = Grid::regular_latlon(-125.0, 0.25, 237, 24.0, 0.25, 105).unwrap();
    let (fj, fi) = g2.locate(255.0, 40.0).unwrap(); // 255E == 105W
    assert_abs_diff_eq!(fi, 80.0, epsilon = 1e-9);
    assert_abs_diff_eq!(fj, 64.0, epsilon = 1e-9);
    assert!(g2.locate(-60.0, 40.0).is_none());
    assert_eq!(g2.lonlat(0, 0), (-125.0, 24.0));
}

#[test]
fn region_across_antimeridian_and_prime_meridian() {
    let r: Region = "50,60,170,-170".parse().unwrap();
    assert_eq!(r.east, 190.0);
    assert!(r.contains(-175.0, 55.0));
    assert!(r.contains(175.0, 55.0));
    assert!(!r.contains(0.0, 55.0));
    let g = Grid::equal_area_for_region(&r, 3000.0).unwrap();
    let (w, _, e, _) = g.bbox_lonlat();
    assert!(e - w > 20.0 && e - w < 30.0, "bbox {w}..{e}");
    assert!(
        wrap180(w - 170.0) < 0.5 && wrap180(e + 170.0) > -0.5,
        "bbox {w}..{e}"
    );
    // A grid in 0..360 longitudes covering a region across 0 E.
    let src = Grid::regular_latlon(0.0, 0.25, 1440, -90.0, 0.25, 721).unwrap();
    let (_, fi) = src.locate(-1.0, 45.0).unwrap();
    assert_abs_diff_eq!(fi, 1436.0, epsilon = 1e-9);
}

#[test]
fn equal_area_region_grid_has_requested_spacing() {
    let r = Region::new(36.0, 42.0, -110.0, -102.0).unwrap();
    let g = Grid::equal_area_for_region(&r, 3000.0).unwrap();
    let (dx, dy) = g.spacing_m();
    assert_abs_diff_eq!(dx, 3000.0, epsilon = 1e-6);
    assert_abs_diff_eq!(dy, 3000.0, epsilon = 1e-6);
    let (w, s, e, n) = g.bbox_lonlat();
    assert!(w <= -110.0 && e >= -102.0 && s <= 36.0 && n >= 42.0);
    // Every cell round-trips through geographic coordinates.
    let (lon, lat) = g.lonlat(10, 20);
    let (fj, fi) = g.locate(lon, lat).unwrap();
    assert_abs_diff_eq!(fj, 10.0, epsilon = 1e-6);
    assert_abs_diff_eq!(fi, 20.0, epsilon = 1e-6);
}

#[test]
fn bad_coordinates_and_regions_are_rejected() {
    assert!(Grid::new(Crs::wgs84(), vec![0.0, 1.0, 1.0], vec![0.0]).is_err());
    assert!(Grid::new(Crs::wgs84(), vec![], vec![0.0]).is_err());
    assert!("10,5,0,1".parse::<Region>().is_err());
    assert!("a,b,c,d".parse::<Region>().is_err());
    assert!("1,2,3".parse::<Region>().is_err());
}

#[test]
fn fractional_index_handles_descending_and_irregular_axes() {
    let asc = [0.0, 1.0, 3.0, 6.0];
    assert_abs_diff_eq!(fractional_index(&asc, 2.0).unwrap(), 1.5);
    assert_abs_diff_eq!(fractional_index(&asc, -0.5).unwrap(), -0.5);
    assert!(fractional_index(&asc, -0.6).is_none());
    let desc = [6.0, 3.0, 1.0, 0.0];
    assert_abs_diff_eq!(fractional_index(&desc, 2.0).unwrap(), 1.5);
    assert_abs_diff_eq!(fractional_index(&desc, 6.0).unwrap(), 0.0);
}

#[test]
fn bbox_of_a_grid_around_the_pole_spans_all_longitudes() {
    let crs = Crs::PolarStereographic {
        straight_vertical_longitude_from_pole: -68.0,
        latitude_of_projection_origin: 90.0,
        standard_parallel: Some(76.0),
        scale_factor_at_projection_origin: None,
        false_easting: 0.0,
        false_northing: 0.0,
        earth: Earth::sphere(6_370_000.0),
    };
    let axis: Vec<f64> = (0..101)
        .map(|k| -1_500_000.0 + 30_000.0 * k as f64)
        .collect();
    let g = Grid::new(crs, axis.clone(), axis).unwrap();
    let (w, s, e, n) = g.bbox_lonlat();
    assert_eq!((w, e, n), (-180.0, 180.0, 90.0));
    assert!(s > 60.0 && s < 80.0, "south edge {s}");
}

/// Evenly spaced axes are indexed by arithmetic; the answer must be the
/// binary search's, both ways up, and irregular axes keep the search.
#[test]
fn even_axis_lookup_agrees_with_the_search() {
    let even_up: Vec<f64> = (0..200).map(|k| -298_500.0 + 3000.0 * k as f64).collect();
    let even_down: Vec<f64> = even_up.iter().rev().copied().collect();
    let uneven: Vec<f64> = (0..50).map(|k| (k as f64).powf(1.3)).collect();
    for (coords, evenly) in [(&even_up, true), (&even_down, true), (&uneven, false)] {
        let even = super::even_spacing(coords);
        assert_eq!(even.is_some(), evenly);
        let (lo, hi) = (
            coords[0].min(coords[coords.len() - 1]),
            coords[0].max(coords[coords.len() - 1]),
        );
        let span = hi - lo;
        for k in 0..=1000 {
            let v = lo - 0.05 * span + 1.1 * span * k as f64 / 1000.0;
            match (
                super::axis_index(coords, even, v),
                fractional_index(coords, v),
            ) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{v}: {a} vs {b}"),
                (a, b) => assert_eq!(a.is_some(), b.is_some(), "{v}: {a:?} vs {b:?}"),
            }
        }
        assert_eq!(super::axis_index(coords, even, f64::NAN), None);
    }
}

/// The grid's +x axis turns from east by the meridian convergence: on a
/// tangent Lambert conformal grid that is −sin(φ0)·(λ − λ0), and 0 on a
/// longitude/latitude grid.
#[test]
fn x_axis_angle_is_the_meridian_convergence() {
    let x: Vec<f64> = (0..5)
        .map(|k| -2_000_000.0 + 1_000_000.0 * k as f64)
        .collect();
    let y: Vec<f64> = (0..3).map(|k| -500_000.0 + 500_000.0 * k as f64).collect();
    let grid = Grid::new(hrrr_crs(), x, y).unwrap();
    let angle = grid.x_axis_angle();
    let n = 38.5f64.to_radians().sin();
    for ((j, i), &a) in angle.indexed_iter() {
        let (lon, _) = grid.lonlat(j, i);
        let expected = -n * (lon + 97.5).to_radians();
        assert_abs_diff_eq!(a as f64, expected, epsilon = 1e-4);
    }
    // West of the central meridian the x axis points north of east.
    assert!(angle[[1, 0]] > 0.2);
    let latlon = Grid::regular_latlon(-10.0, 0.5, 8, 40.0, 0.5, 6).unwrap();
    assert!(latlon.x_axis_angle().iter().all(|&a| a == 0.0));
}
