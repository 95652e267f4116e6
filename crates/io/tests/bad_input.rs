//! Bad or unusual input gives clear errors (never panics), and unusual but
//! valid layouts decode correctly.

use std::path::{Path, PathBuf};

use finecast_io::{open, Format, IoError, Selection, TimeSel};

/// Write a small file with `lat`/`lon` coordinates and one variable `name`
/// of shape `dims` (names and lengths, the last two being lat and lon),
/// with the given attributes and values.
fn write_file(
    path: &Path,
    options: netcdf::Options,
    dims: &[(&str, usize)],
    name: &str,
    attrs: &[(&str, netcdf::AttributeValue)],
    values: &[f32],
) {
    let mut f = netcdf::create_with(path, options).expect("create");
    for (d, n) in dims {
        f.add_dimension(d, *n).expect("dimension");
    }
    let n = dims.len();
    let (ny, nx) = (dims[n - 2].1, dims[n - 1].1);
    for (coordinate, units) in [("lat", "degrees_north"), ("lon", "degrees_east")] {
        let mut c = f
            .add_variable::<f64>(coordinate, &[coordinate])
            .expect(coordinate);
        c.put_attribute("units", units).expect("units");
    }
    let dim_names: Vec<&str> = dims.iter().map(|(d, _)| *d).collect();
    let mut v = f.add_variable::<f32>(name, &dim_names).expect("variable");
    for (key, value) in attrs {
        v.put_attribute(key, value.clone()).expect("attribute");
    }
    // Classic files must leave define mode before data are written.
    f.enddef().expect("enddef");
    let lat: Vec<f64> = (0..ny).map(|j| 40.0 + j as f64).collect();
    let lon: Vec<f64> = (0..nx).map(|i| -100.0 + i as f64).collect();
    let mut put = |var: &str, data: &[f64]| {
        f.variable_mut(var)
            .expect(var)
            .put_values(data, ..)
            .expect("coordinate values");
    };
    put("lat", &lat);
    put("lon", &lon);
    f.variable_mut(name)
        .expect(name)
        .put_values(values, ..)
        .expect("values");
}

fn text(s: &str) -> netcdf::AttributeValue {
    netcdf::AttributeValue::Str(s.to_string())
}

fn temp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn missing_variable_lists_the_available_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_path(&dir, "one.nc");
    write_file(
        &path,
        netcdf::Options::NETCDF4,
        &[("lat", 2), ("lon", 3)],
        "orog",
        &[
            ("units", text("m")),
            ("standard_name", text("surface_altitude")),
        ],
        &[1.0; 6],
    );
    let ds = open(&path).expect("open");
    let err = ds.read("t2m", &Selection::default()).expect_err("no t2m");
    assert!(matches!(err, IoError::NoSuchVariable { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("one.nc") && msg.contains("'t2m'") && msg.contains("orog (surface_altitude)"),
        "{msg}"
    );
    assert_eq!(
        ds.variables().len(),
        1,
        "lat and lon are coordinates, not fields"
    );
}

#[test]
fn all_missing_field_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_path(&dir, "empty.nc");
    write_file(
        &path,
        netcdf::Options::NETCDF4,
        &[("lat", 2), ("lon", 2)],
        "t2m",
        &[
            ("units", text("K")),
            ("_FillValue", netcdf::AttributeValue::Float(-999.0)),
        ],
        &[-999.0; 4],
    );
    let err = open(&path)
        .expect("open")
        .read("t2m", &Selection::default())
        .expect_err("all missing");
    assert!(matches!(err, IoError::AllMissing { .. }));
    assert!(err.to_string().contains("empty.nc") && err.to_string().contains("t2m"));
}

#[test]
fn unknown_units_name_file_variable_and_units() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_path(&dir, "units.nc");
    write_file(
        &path,
        netcdf::Options::NETCDF4,
        &[("lat", 2), ("lon", 2)],
        "t2m",
        &[
            ("units", text("furlongs")),
            ("standard_name", text("air_temperature")),
        ],
        &[280.0; 4],
    );
    let err = open(&path)
        .expect("open")
        .read("t2m", &Selection::default())
        .expect_err("units");
    assert!(matches!(err, IoError::Units { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("units.nc") && msg.contains("'t2m'") && msg.contains("furlongs"),
        "{msg}"
    );
}

#[test]
fn classic_format_with_fahrenheit_and_squeezed_dimension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_path(&dir, "classic.nc");
    write_file(
        &path,
        netcdf::Options::default(),
        &[("height", 1), ("lat", 2), ("lon", 2)],
        "tmax",
        &[
            ("units", text("degF")),
            ("missing_value", netcdf::AttributeValue::Float(-80.0)),
        ],
        &[32.0, 212.0, -80.0, 50.0],
    );
    let ds = open(&path).expect("open");
    assert_eq!(ds.format(), Format::NetCdfClassic);
    let f = ds.read("tmax", &Selection::default()).expect("read");
    assert_eq!(f.units, "K");
    let v = &f.field.data;
    assert!((v[[0, 0]] - 273.15).abs() < 1e-4);
    assert!((v[[0, 1]] - 373.15).abs() < 1e-4);
    assert!(v[[1, 0]].is_nan(), "missing_value");
    assert!((v[[1, 1]] - 283.15).abs() < 1e-4);
    assert!(!ds.variables()[0].has_time);
    let err = ds
        .read(
            "tmax",
            &Selection {
                time: TimeSel::Index(1),
                bbox: None,
            },
        )
        .expect_err("no time axis");
    assert!(err.to_string().contains("no time axis"));
}

#[test]
fn extra_dimension_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_path(&dir, "levels.nc");
    write_file(
        &path,
        netcdf::Options::NETCDF4,
        &[("level", 3), ("lat", 2), ("lon", 2)],
        "t",
        &[("units", text("K"))],
        &[280.0; 12],
    );
    let err = open(&path)
        .expect("open")
        .read("t", &Selection::default())
        .expect_err("level");
    let msg = err.to_string();
    assert!(
        msg.contains("'level' (size 3)") && msg.contains("levels.nc"),
        "{msg}"
    );
}

#[test]
fn longitudes_across_the_antimeridian_are_unwrapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_path(&dir, "pacific.nc");
    {
        let mut f = netcdf::create(&path).expect("create");
        f.add_dimension("lat", 2).expect("dim");
        f.add_dimension("lon", 4).expect("dim");
        let mut lat = f.add_variable::<f64>("lat", &["lat"]).expect("lat");
        lat.put_attribute("units", "degrees_north").expect("attr");
        lat.put_values(&[-18.0, -17.0], ..).expect("values");
        let mut lon = f.add_variable::<f64>("lon", &["lon"]).expect("lon");
        lon.put_attribute("units", "degrees_east").expect("attr");
        lon.put_values(&[178.0, 179.0, -180.0, -179.0], ..)
            .expect("values");
        let mut v = f.add_variable::<f32>("orog", &["lat", "lon"]).expect("var");
        v.put_attribute("units", "m").expect("attr");
        v.put_values(&[1.0f32; 8], ..).expect("values");
    }
    let grid = open(&path).expect("open").grid("orog").expect("grid");
    assert_eq!(grid.x(), &[178.0, 179.0, 180.0, 181.0]);
}

#[test]
fn projected_coordinates_without_grid_mapping_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_path(&dir, "nogm.nc");
    {
        let mut f = netcdf::create(&path).expect("create");
        f.add_dimension("y", 2).expect("dim");
        f.add_dimension("x", 2).expect("dim");
        for c in ["x", "y"] {
            let mut v = f.add_variable::<f64>(c, &[c]).expect("coord");
            v.put_attribute("units", "m").expect("attr");
            v.put_values(&[0.0, 1000.0], ..).expect("values");
        }
        let mut v = f.add_variable::<f32>("t2m", &["y", "x"]).expect("var");
        v.put_attribute("units", "K").expect("attr");
        v.put_values(&[280.0f32; 4], ..).expect("values");
    }
    let err = open(&path)
        .expect("open")
        .grid("t2m")
        .expect_err("no mapping");
    let msg = err.to_string();
    assert!(
        msg.contains("nogm.nc") && msg.contains("grid_mapping"),
        "{msg}"
    );
}

#[test]
fn corrupt_and_truncated_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A valid NetCDF-4 file, then truncated copies of it.
    let good = temp_path(&dir, "good.nc");
    let values: Vec<f32> = (0..400 * 300).map(|k| (k % 977) as f32).collect();
    write_file(
        &good,
        netcdf::Options::NETCDF4,
        &[("lat", 300), ("lon", 400)],
        "orog",
        &[("units", text("m"))],
        &values,
    );
    let bytes = std::fs::read(&good).expect("read");
    for fraction in [0.02, 0.3, 0.6, 0.9, 0.999] {
        let cut = (bytes.len() as f64 * fraction) as usize;
        let path = temp_path(&dir, &format!("cut{cut}.nc"));
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let result = open(&path).and_then(|ds| ds.read("orog", &Selection::default()));
        if let Err(e) = result {
            assert!(e.to_string().contains(&format!("cut{cut}.nc")), "{e}");
        }
        // Some truncations (unused tail space) still read: that is fine, as
        // long as nothing panics.
    }
    // The same for a classic file.
    let classic = temp_path(&dir, "classic.nc");
    write_file(
        &classic,
        netcdf::Options::default(),
        &[("lat", 30), ("lon", 40)],
        "orog",
        &[("units", text("m"))],
        &values[..1200],
    );
    let bytes = std::fs::read(&classic).expect("read");
    let path = temp_path(&dir, "classic_cut.nc");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let err = open(&path)
        .and_then(|ds| ds.read("orog", &Selection::default()))
        .expect_err("truncated classic file");
    assert!(err.to_string().contains("classic_cut.nc"), "{err}");

    for (name, contents) in [
        ("empty.nc", Vec::new()),
        ("text.nc", b"this is not a netcdf file at all".to_vec()),
        ("hdf5_garbage.nc", {
            let mut v = b"\x89HDF\r\n\x1a\n".to_vec();
            v.extend((0..5000u32).map(|k| (k.wrapping_mul(2_654_435_761) >> 11) as u8));
            v
        }),
        ("cdf_garbage.nc", {
            let mut v = b"CDF\x01".to_vec();
            v.extend((0..300u32).map(|k| (k.wrapping_mul(40_503) >> 3) as u8));
            v
        }),
    ] {
        let path = temp_path(&dir, name);
        std::fs::write(&path, contents).expect("write");
        let err = open(&path).expect_err(name).to_string();
        assert!(err.contains(name), "{err}");
    }
    let err = open(&temp_path(&dir, "does_not_exist.nc")).expect_err("missing");
    assert!(matches!(err, IoError::Os { .. }));
}

#[test]
fn bounding_box_outside_the_grid_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = temp_path(&dir, "small.nc");
    write_file(
        &path,
        netcdf::Options::NETCDF4,
        &[("lat", 3), ("lon", 3)],
        "orog",
        &[("units", text("m"))],
        &[5.0; 9],
    );
    let ds = open(&path).expect("open");
    let sel = |bbox| Selection {
        time: TimeSel::First,
        bbox: Some(bbox),
    };
    let err = ds
        .read("orog", &sel((10.0, 10.0, 20.0, 20.0)))
        .expect_err("outside");
    assert!(matches!(err, IoError::BoundingBox { .. }), "{err}");
    let err = ds
        .read("orog", &sel((-100.0, 42.0, -98.0, 41.0)))
        .expect_err("south > north");
    assert!(err.to_string().contains("south"), "{err}");
    let inside = ds
        .read("orog", &sel((-99.2, 40.8, -98.8, 41.2)))
        .expect("inside");
    assert_eq!(
        inside.field.grid.shape(),
        (3, 3),
        "margin clipped to the grid"
    );
}

/// Found by `cargo fuzz` (scripts/fuzz.sh, target grib2_open): a 43-byte
/// GRIB2 message whose section header declares 3 GB made the decoder
/// allocate it. Every section must now fit its message; the error names
/// the section and where it claims to end.
#[test]
fn grib2_section_longer_than_its_message_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "oom.grib2");
    let bytes: [u8; 43] = [
        0x47, 0x52, 0x49, 0x42, 0xc2, 0x52, 0x49, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x23, 0xc2, 0x42, 0x52, 0x49, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x23, 0x23,
        0x37, 0x37, 0x37, 0x37, 0x37, 0x17, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x0c,
    ];
    std::fs::write(&path, bytes).unwrap();
    let Err(err) = open(&path) else {
        panic!("accepted a malformed GRIB2 file")
    };
    let err = err.to_string();
    assert!(err.contains("beyond the message's end"), "{err}");
    assert!(err.contains("oom.grib2"), "{err}");
}

/// Found by `cargo fuzz` after the fix above: a message holding only a
/// section 6 made the decoder read past the message and panic (a capacity
/// overflow). Sections must now come in GRIB2's order.
#[test]
fn grib2_sections_out_of_order_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "order.grib2");
    let mut bytes = b"GRIB\xc2\x50\x49\x02".to_vec();
    bytes.extend_from_slice(&25u64.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 5, 6]);
    bytes.extend_from_slice(b"7777");
    bytes.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, b'7', b'7', b'7', b'7', 0, 0,
    ]);
    std::fs::write(&path, bytes).unwrap();
    let Err(err) = open(&path) else {
        panic!("accepted a malformed GRIB2 file")
    };
    let err = err.to_string();
    assert!(err.contains("the first section is not 1"), "{err}");
}
