//! GRIB2 input, checked against fixtures written by
//! `scripts/make-grib-fixtures.py` (ecCodes) from the shared data, and their
//! expected values.

mod common;

use chrono::{DateTime, Utc};
use common::{fixture, utc};
use finecast_grid::Crs;
use finecast_io::{open, Format, Selection, TimeSel};
use serde_json::Value;

struct Expected {
    name: String,
    valid_time: DateTime<Utc>,
    shape: (usize, usize),
    tolerance: f64,
    values: Vec<Vec<Option<f64>>>,
    /// (lon, lat, value)
    probes: Vec<(f64, f64, Option<f64>)>,
}

fn load_expected(stem: &str) -> Vec<Expected> {
    let text = std::fs::read_to_string(fixture(&format!("{stem}.expected.json")))
        .expect("expected values");
    let json: Value = serde_json::from_str(&text).expect("json");
    json["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| Expected {
            name: f["name"].as_str().expect("name").to_string(),
            valid_time: f["valid_time"]
                .as_str()
                .expect("time")
                .parse()
                .expect("iso time"),
            shape: (
                f["shape"][0].as_u64().expect("ny") as usize,
                f["shape"][1].as_u64().expect("nx") as usize,
            ),
            tolerance: f["tolerance"].as_f64().expect("tolerance"),
            values: f["values"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|row| {
                    row.as_array()
                        .expect("row")
                        .iter()
                        .map(Value::as_f64)
                        .collect()
                })
                .collect(),
            probes: f["probes"]
                .as_array()
                .expect("probes")
                .iter()
                .map(|p| {
                    (
                        p["lon"].as_f64().expect("lon"),
                        p["lat"].as_f64().expect("lat"),
                        p["value"].as_f64(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Every expected field decodes to the expected values, and every probe's
/// longitude/latitude falls on a cell centre holding the probe's value.
fn check_fixture(stem: &str, centre_tolerance: f64) {
    let dataset = open(&fixture(&format!("{stem}.grib2"))).expect("open fixture");
    assert_eq!(dataset.format(), Format::Grib2);
    for e in load_expected(stem) {
        let sel = Selection {
            time: TimeSel::At(e.valid_time),
            bbox: None,
        };
        let field = dataset
            .read(&e.name, &sel)
            .unwrap_or_else(|err| panic!("{stem}: {err}"));
        assert_eq!(field.time, Some(e.valid_time), "{stem} {}", e.name);
        let data = &field.field.data;
        assert_eq!(data.dim(), e.shape, "{stem} {}", e.name);
        for (j, row) in e.values.iter().enumerate() {
            for (i, expected) in row.iter().enumerate() {
                let got = data[[j, i]];
                match expected {
                    None => assert!(
                        got.is_nan(),
                        "{stem} {} ({j},{i}): {got} should be missing",
                        e.name
                    ),
                    Some(v) => assert!(
                        (f64::from(got) - v).abs() <= e.tolerance,
                        "{stem} {} ({j},{i}): {got} != {v}",
                        e.name
                    ),
                }
            }
        }
        let grid = &field.field.grid;
        for (lon, lat, value) in &e.probes {
            let (fj, fi) = grid
                .locate(*lon, *lat)
                .unwrap_or_else(|| panic!("{stem} {}: probe {lon},{lat} outside grid", e.name));
            assert!(
                (fj - fj.round()).abs() < centre_tolerance
                    && (fi - fi.round()).abs() < centre_tolerance,
                "{stem} {}: probe {lon},{lat} at fractional index ({fj}, {fi}), not a cell centre",
                e.name
            );
            let got = data[[fj.round() as usize, fi.round() as usize]];
            match value {
                None => assert!(got.is_nan()),
                Some(v) => assert!(
                    (f64::from(got) - v).abs() <= e.tolerance,
                    "{stem} {}: probe {lon},{lat}: {got} != {v}",
                    e.name
                ),
            }
        }
    }
}

#[test]
fn latlon_north_up_values_times_and_orientation() {
    check_fixture("era5_switzerland_latlon", 1e-3);
    let ds = open(&fixture("era5_switzerland_latlon.grib2")).expect("open");
    let names: Vec<String> = ds.variables().into_iter().map(|v| v.name).collect();
    assert_eq!(names, vec!["t2m", "u10", "tp"]);
    assert_eq!(
        ds.times("t2m").expect("times"),
        vec![utc(2016, 1, 1, 0), utc(2016, 1, 1, 1)]
    );
    let grid = ds.grid("t2m").expect("grid");
    assert!(grid.is_y_descending(), "north-up rows are kept as stored");
    assert!(matches!(grid.crs(), Crs::LatLon { earth } if earth.semi_major_axis == 6_367_470.0));
    let tp = ds.read("tp", &Selection::default()).expect("tp");
    assert_eq!(tp.units, "kg m-2");
    assert_eq!(tp.standard_name.as_deref(), Some("precipitation_amount"));
    assert_eq!(
        tp.cell_methods.as_deref(),
        Some("time: sum (interval: 1 hour)")
    );
    assert_eq!(
        tp.time,
        Some(utc(2016, 1, 1, 1)),
        "valid at the end of the sum"
    );
    let u10 = ds.read("10u", &Selection::default()).expect("alias");
    assert_eq!(u10.name, "u10");
    assert_eq!(u10.standard_name.as_deref(), Some("eastward_wind"));
}

#[test]
fn latlon_0_to_360_longitudes_and_bbox_in_negative_longitudes() {
    check_fixture("era5_conus_west_latlon", 1e-3);
    let ds = open(&fixture("era5_conus_west_latlon.grib2")).expect("open");
    let grid = ds.grid("t2m").expect("grid");
    assert_eq!(grid.x()[0], 235.0);
    assert_eq!(*grid.x().last().expect("x"), 255.0);
    let full = ds.read("t2m", &Selection::default()).expect("full");
    let sel = Selection {
        time: TimeSel::First,
        bbox: Some((-110.0, 38.0, -108.0, 40.0)),
    };
    let window = ds.read("t2m", &sel).expect("window");
    let wx = window.field.grid.x();
    let wy = window.field.grid.y();
    assert_eq!((wx[0], *wx.last().expect("x")), (249.5, 252.5));
    assert_eq!((wy[0], *wy.last().expect("y")), (40.5, 37.5));
    // The window holds the same values as the matching slice of the full field.
    let i0 = grid.x().iter().position(|x| *x == wx[0]).expect("column");
    let j0 = grid.y().iter().position(|y| *y == wy[0]).expect("row");
    for ((j, i), v) in window.field.data.indexed_iter() {
        assert_eq!(*v, full.field.data[[j0 + j, i0 + i]]);
    }
    let sp = ds
        .read("surface_air_pressure", &Selection::default())
        .expect("sp");
    assert_eq!((sp.name.as_str(), sp.units.as_str()), ("sp", "Pa"));
}

#[test]
fn lambert_with_bitmap_and_statistical_periods() {
    check_fixture("ndfd_lambert_tmax", 0.05);
    let ds = open(&fixture("ndfd_lambert_tmax.grib2")).expect("open");
    let info = ds.variables();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].name, "tmax_2m");
    assert_eq!(
        ds.times("tmax_2m").expect("times"),
        vec![utc(2011, 9, 30, 12), utc(2011, 10, 1, 12)]
    );
    let field = ds.read("tmax_2m", &Selection::default()).expect("read");
    assert_eq!(
        field.cell_methods.as_deref(),
        Some("time: maximum (interval: 12 hours)")
    );
    let missing = field.field.data.iter().filter(|v| v.is_nan()).count();
    assert_eq!(
        missing, 377,
        "cells outside the NDFD area come from the bit map"
    );
    let grid = ds.grid("tmax_2m").expect("grid");
    match grid.crs() {
        Crs::LambertConformalConic {
            standard_parallel,
            longitude_of_central_meridian,
            earth,
            ..
        } => {
            assert_eq!(*standard_parallel, (25.0, 25.0));
            assert_eq!(*longitude_of_central_meridian, -95.0);
            assert_eq!(earth.semi_major_axis, 6_371_200.0);
            assert!(earth.is_sphere());
        }
        other => panic!("expected Lambert conformal, got {other:?}"),
    }
    assert!((grid.x()[1] - grid.x()[0] - 5079.406).abs() < 1e-6);
    assert!(
        !grid.is_y_descending(),
        "scanning mode 0x40 gives rows south to north"
    );
}

#[test]
fn lambert_grid_relative_wind_is_x_wind() {
    check_fixture("wrf_lambert_wind", 0.05);
    let ds = open(&fixture("wrf_lambert_wind.grib2")).expect("open");
    let u = ds.read("u10", &Selection::default()).expect("u10");
    assert_eq!(u.standard_name.as_deref(), Some("x_wind"));
    assert_eq!(u.units, "m s-1");
    let t = ds.read("t2m", &Selection::default()).expect("t2m");
    assert_eq!(t.standard_name.as_deref(), Some("air_temperature"));
}

#[test]
fn describe_a_grib_file() {
    let ds = open(&fixture("ndfd_lambert_tmax.grib2")).expect("open");
    let info = ds.describe().expect("describe");
    let text = info.to_string();
    assert!(text.contains("GRIB2") && text.contains("tmax_2m"), "{text}");
    assert!(text.contains("lambert_conformal_conic"), "{text}");
    assert!(text.contains("377 missing"), "{text}");
    let json = serde_json::to_value(&info).expect("json");
    assert_eq!(json["variables"][0]["times"]["count"], 2);
}

/// Byte offset of the grid definition template number (section 3, octets 13-14).
fn grid_template_offset(bytes: &[u8]) -> usize {
    let mut pos = 16;
    loop {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if bytes[pos + 4] == 3 {
            return pos + 12;
        }
        pos += len;
    }
}

#[test]
fn unsupported_grid_template_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(fixture("wrf_lambert_wind.grib2")).expect("fixture");
    // Relabel every message's grid as template 3.90 (space view).
    let mut start = 0;
    while let Some(found) = bytes[start..].windows(4).position(|w| w == b"GRIB") {
        let message = start + found;
        let total = u64::from_be_bytes(bytes[message + 8..message + 16].try_into().expect("8"));
        let offset = message + grid_template_offset(&bytes[message..]);
        bytes[offset..offset + 2].copy_from_slice(&90u16.to_be_bytes());
        start = message + total as usize;
    }
    let path = dir.path().join("spaceview.grib2");
    std::fs::write(&path, &bytes).expect("write");
    let ds = open(&path).expect("index still works");
    let err = ds.grid("t2m").expect_err("template 3.90").to_string();
    assert!(err.contains("3.90") && err.contains("t2m"), "{err}");
    assert!(ds.read("t2m", &Selection::default()).is_err());
}

#[test]
fn truncated_or_corrupt_grib_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(fixture("ndfd_lambert_tmax.grib2")).expect("fixture");
    // The file holds two messages of equal size; every cut damages one.
    for cut in [8, 20, 100, bytes.len() / 2 + 100, bytes.len() - 10] {
        let path = dir.path().join(format!("cut{cut}.grib2"));
        std::fs::write(&path, &bytes[..cut]).expect("write");
        // Either opening or reading must fail cleanly.
        let result = open(&path).and_then(|ds| ds.read("tmax_2m", &Selection::default()));
        let err = result.expect_err("truncated file").to_string();
        assert!(err.contains(&format!("cut{cut}.grib2")), "{err}");
    }
    // Garbage after a valid GRIB2 indicator.
    let mut garbage = bytes[..16].to_vec();
    garbage.extend((0..4000u32).map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8));
    let path = dir.path().join("garbage.grib2");
    std::fs::write(&path, &garbage).expect("write");
    let err = open(&path)
        .and_then(|ds| ds.read("tmax_2m", &Selection::default()))
        .expect_err("garbage");
    assert!(err.to_string().contains("garbage.grib2"), "{err}");
    // GRIB edition 1 is recognised and refused.
    let mut edition1 = bytes[..16].to_vec();
    edition1[7] = 1;
    let path = dir.path().join("edition1.grb");
    std::fs::write(&path, &edition1).expect("write");
    let err = open(&path).expect_err("edition 1").to_string();
    assert!(err.contains("edition 1"), "{err}");
}
