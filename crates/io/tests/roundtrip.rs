//! write_netcdf -> open -> read returns what was written.

mod common;

use chrono::{DateTime, Utc};
use common::utc;
use finecast_grid::{Crs, Earth, Grid};
use finecast_io::{
    open, sha256_file, write_netcdf, InputRef, IoError, OutputVar, Provenance, Selection, TimeSel,
};
use ndarray::Array2;

fn provenance() -> Provenance {
    Provenance {
        inputs: vec![InputRef {
            path: "coarse/era5.nc".to_string(),
            sha256: "ab".repeat(32),
        }],
        method: "bilinear+lapse".to_string(),
        weights_sha256: Some("cd".repeat(32)),
        command_line: "finecast downscale --method bilinear+lapse".to_string(),
        extra: vec![("finecast_region".to_string(), "45,50,5,11".to_string())],
    }
}

/// A smooth test pattern with a few missing values.
fn pattern(grid: &Grid, t: usize) -> Array2<f32> {
    Array2::from_shape_fn(grid.shape(), |(j, i)| {
        if (i + 2 * j + t) % 17 == 0 {
            f32::NAN
        } else {
            270.0 + 0.37 * i as f32 - 0.11 * j as f32 + t as f32 * 0.5
        }
    })
}

fn t2m(grid: &Grid, times: &[DateTime<Utc>]) -> OutputVar {
    OutputVar {
        name: "t2m".to_string(),
        standard_name: Some("air_temperature".to_string()),
        long_name: Some("2 m air temperature".to_string()),
        units: "K".to_string(),
        grid: grid.clone(),
        times: times.to_vec(),
        data: (0..times.len().max(1)).map(|t| pattern(grid, t)).collect(),
    }
}

fn same_values(a: &Array2<f32>, b: &Array2<f32>) -> bool {
    a.dim() == b.dim()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y)
}

fn round_trip(grid: Grid) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.nc");
    let times = vec![
        utc(2022, 8, 9, 18),
        utc(2022, 8, 10, 0),
        utc(2022, 8, 10, 6),
    ];
    let orog = OutputVar {
        name: "orog".to_string(),
        standard_name: Some("surface_altitude".to_string()),
        long_name: None,
        units: "m".to_string(),
        grid: grid.clone(),
        times: vec![],
        data: vec![Array2::from_shape_fn(grid.shape(), |(j, i)| {
            (j * 10 + i) as f32
        })],
    };
    let vars = vec![t2m(&grid, &times), orog];
    write_netcdf(&path, &vars, &provenance()).expect("write");

    let ds = open(&path).expect("open");
    let names: Vec<String> = ds.variables().into_iter().map(|v| v.name).collect();
    assert_eq!(names, vec!["t2m", "orog"]);
    assert_eq!(ds.grid("t2m").expect("grid"), grid);
    assert_eq!(ds.times("t2m").expect("times"), times);
    assert!(ds.times("orog").expect("no times").is_empty());
    for (k, t) in times.iter().enumerate() {
        let f = ds
            .read(
                "t2m",
                &Selection {
                    time: TimeSel::At(*t),
                    bbox: None,
                },
            )
            .expect("read");
        assert_eq!(f.time, Some(*t));
        assert_eq!(f.units, "K");
        assert_eq!(f.standard_name.as_deref(), Some("air_temperature"));
        assert_eq!(f.long_name.as_deref(), Some("2 m air temperature"));
        assert_eq!(f.field.grid, grid);
        assert!(same_values(&f.field.data, &vars[0].data[k]), "time {k}");
    }
    let orog = ds.read("orog", &Selection::default()).expect("orog");
    assert!(same_values(&orog.field.data, &vars[1].data[0]));
    assert_eq!(orog.time, None);

    // CF attributes and provenance, read back through the netcdf crate.
    let nc = netcdf::open(&path).expect("netcdf");
    let text = |attr: &str| -> String {
        match nc.attribute(attr).expect(attr).value().expect("value") {
            netcdf::AttributeValue::Str(s) => s,
            other => panic!("{attr}: {other:?}"),
        }
    };
    assert_eq!(text("Conventions"), "CF-1.8");
    assert_eq!(text("institution"), "finecast");
    assert_eq!(text("finecast_method"), "bilinear+lapse");
    assert_eq!(text("finecast_weights_sha256"), "cd".repeat(32));
    assert_eq!(text("finecast_region"), "45,50,5,11");
    assert_eq!(text("finecast_version"), env!("CARGO_PKG_VERSION"));
    assert!(text("history").ends_with(": finecast downscale --method bilinear+lapse"));
    let inputs: Vec<InputRef> = serde_json::from_str(&text("finecast_inputs")).expect("json");
    assert_eq!(inputs, provenance().inputs);
    let data = nc.variable("t2m").expect("t2m");
    assert_eq!(
        data.vartype(),
        netcdf::types::NcVariableType::Float(netcdf::types::FloatType::F32)
    );
    assert!(data.chunking().expect("chunking").is_some());
    if !grid.is_latlon() {
        assert!(nc.variable("lat").is_some() && nc.variable("lon").is_some());
        let coordinates = data.attribute("coordinates").expect("coordinates");
        assert_eq!(
            coordinates.value().expect("value"),
            netcdf::AttributeValue::Str("lat lon".to_string())
        );
    }
    // Nothing but the output is left in the directory.
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("out.nc")]);
}

#[test]
fn latlon_round_trip() {
    // North-up rows, as many models write them.
    let x: Vec<f64> = (0..30).map(|i| 5.0 + 0.25 * i as f64).collect();
    let y: Vec<f64> = (0..20).map(|j| 48.0 - 0.25 * j as f64).collect();
    let grid = Grid::new(
        Crs::LatLon {
            earth: Earth::sphere(6_367_470.0),
        },
        x,
        y,
    )
    .expect("grid");
    round_trip(grid);
}

#[test]
fn lambert_round_trip() {
    let crs = Crs::LambertConformalConic {
        standard_parallel: (33.0, 45.0),
        longitude_of_central_meridian: -97.5,
        latitude_of_projection_origin: 38.5,
        false_easting: 1000.0,
        false_northing: -500.0,
        earth: Earth::WGS84,
    };
    let x: Vec<f64> = (0..40).map(|i| -500_000.0 + 3000.0 * i as f64).collect();
    let y: Vec<f64> = (0..25).map(|j| 200_000.0 + 3000.0 * j as f64).collect();
    round_trip(Grid::new(crs, x, y).expect("grid"));
}

#[test]
fn rotated_pole_round_trip() {
    let crs = Crs::RotatedPole {
        grid_north_pole_latitude: 37.5,
        grid_north_pole_longitude: 177.5,
        north_pole_grid_longitude: 0.0,
    };
    let x: Vec<f64> = (0..35).map(|i| -5.0 + 0.0135 * i as f64).collect();
    let y: Vec<f64> = (0..28).map(|j| -4.0 + 0.0135 * j as f64).collect();
    round_trip(Grid::new(crs, x, y).expect("grid"));
}

#[test]
fn polar_stereographic_round_trip() {
    let crs = Crs::PolarStereographic {
        straight_vertical_longitude_from_pole: -105.0,
        latitude_of_projection_origin: 90.0,
        standard_parallel: Some(60.0),
        scale_factor_at_projection_origin: None,
        false_easting: 0.0,
        false_northing: 0.0,
        earth: Earth::sphere(6_371_200.0),
    };
    let x: Vec<f64> = (0..20).map(|i| -1_000_000.0 + 4762.5 * i as f64).collect();
    let y: Vec<f64> = (0..15).map(|j| -4_000_000.0 + 4762.5 * j as f64).collect();
    round_trip(Grid::new(crs, x, y).expect("grid"));
}

#[test]
fn equal_area_round_trip() {
    // The grid finecast builds for a downscaling region.
    let region = finecast_grid::Region::new(45.5, 48.0, 5.5, 10.5).expect("region");
    let grid = Grid::equal_area_for_region(&region, 4000.0).expect("grid");
    round_trip(grid);
}

#[test]
fn mercator_round_trip() {
    let crs = Crs::Mercator {
        longitude_of_projection_origin: -90.0,
        standard_parallel: 20.0,
        false_easting: 0.0,
        false_northing: 0.0,
        earth: Earth::sphere(6_371_229.0),
    };
    let x: Vec<f64> = (0..20).map(|i| 100_000.0 + 2500.0 * i as f64).collect();
    let y: Vec<f64> = (0..15).map(|j| 2_000_000.0 + 2500.0 * j as f64).collect();
    round_trip(Grid::new(crs, x, y).expect("grid"));
}

#[test]
fn utm_zone_round_trip() {
    // UTM 32 S, the zone and hemisphere written as a CF transverse_mercator.
    let crs = Crs::utm(32, false, Earth::WGS84).expect("utm");
    let x: Vec<f64> = (0..20).map(|i| 400_000.0 + 1000.0 * i as f64).collect();
    let y: Vec<f64> = (0..15).map(|j| 7_000_000.0 + 1000.0 * j as f64).collect();
    round_trip(Grid::new(crs, x, y).expect("grid"));
}

#[test]
fn british_national_grid_keeps_its_datum_shift() {
    let crs = Crs::TransverseMercator {
        scale_factor_at_central_meridian: 0.9996012717,
        longitude_of_central_meridian: -2.0,
        latitude_of_projection_origin: 49.0,
        false_easting: 400_000.0,
        false_northing: -100_000.0,
        earth: Earth {
            semi_major_axis: 6_377_563.396,
            inverse_flattening: 299.3249646,
            towgs84: Some([446.448, -125.157, 542.06, 0.15, 0.247, 0.842, -20.489]),
        },
    };
    let x: Vec<f64> = (0..20).map(|i| 134_500.0 + 1000.0 * i as f64).collect();
    let y: Vec<f64> = (0..15).map(|j| 12_500.0 + 1000.0 * j as f64).collect();
    let grid = Grid::new(crs, x, y).expect("grid");
    round_trip(grid.clone());
    // The 2-D lat/lon written are the grid's WGS84 coordinates and say so.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bng.nc");
    write_netcdf(&path, &[t2m(&grid, &[])], &provenance()).expect("write");
    let nc = netcdf::open(&path).expect("open");
    let lon = nc.variable("lon").expect("lon");
    let comment = match lon.attribute_value("comment") {
        Some(Ok(netcdf::AttributeValue::Str(s))) => s,
        other => panic!("lon comment: {other:?}"),
    };
    assert!(comment.contains("WGS84"), "{comment}");
    let stored: Vec<f32> = lon.get_values(..).expect("lon values");
    assert!((f64::from(stored[0]) - grid.lonlat(0, 0).0).abs() < 1e-5);
}

#[test]
fn datasets_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<finecast_io::Dataset>();
    assert_send_sync::<finecast_io::FieldData>();
    assert_send_sync::<IoError>();
}

#[test]
fn sub_hourly_times_are_written_in_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rate.nc");
    let grid = Grid::regular_latlon(-95.0, 0.01, 12, 37.0, 0.01, 10).expect("grid");
    let times: Vec<_> = (0..3)
        .map(|k| utc(2019, 6, 10, 0) + chrono::Duration::minutes(10 * k))
        .collect();
    write_netcdf(&path, &[t2m(&grid, &times)], &Provenance::default()).expect("write");
    let ds = open(&path).expect("open");
    assert_eq!(ds.times("t2m").expect("times"), times);
}

#[test]
fn writing_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no/such/dir/out.nc");
    let grid = Grid::regular_latlon(0.0, 1.0, 4, 0.0, 1.0, 3).expect("grid");
    let err = write_netcdf(&path, &[t2m(&grid, &[])], &Provenance::default())
        .expect_err("missing directory");
    assert!(matches!(err, IoError::Write { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("out.nc") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(!path.exists());
}

#[test]
fn invalid_output_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.nc");
    let grid = Grid::regular_latlon(0.0, 1.0, 4, 0.0, 1.0, 3).expect("grid");
    let mut bad = t2m(&grid, &[utc(2020, 1, 1, 0)]);
    bad.data[0] = Array2::zeros((2, 2));
    let err = write_netcdf(&path, &[bad], &Provenance::default()).expect_err("shape");
    assert!(err.to_string().contains("t2m"), "{err}");
    let other_grid = Grid::regular_latlon(0.0, 1.0, 5, 0.0, 1.0, 3).expect("grid");
    let mut second = t2m(&other_grid, &[]);
    second.name = "t2m_b".to_string();
    let err = write_netcdf(&path, &[t2m(&grid, &[]), second], &Provenance::default())
        .expect_err("grids differ");
    assert!(err.to_string().contains("one file per grid"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[test]
fn overwrites_an_existing_output_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.nc");
    std::fs::write(&path, b"old contents").expect("write");
    let grid = Grid::regular_latlon(0.0, 1.0, 4, 0.0, 1.0, 3).expect("grid");
    write_netcdf(&path, &[t2m(&grid, &[])], &Provenance::default()).expect("write");
    assert!(open(&path).is_ok());
    let sha = sha256_file(&path).expect("sha");
    assert_eq!(sha.len(), 64);
    assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn sha256_of_known_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("abc.txt");
    std::fs::write(&path, b"abc").expect("write");
    assert_eq!(
        sha256_file(&path).expect("sha"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(sha256_file(&dir.path().join("missing")).is_err());
}
