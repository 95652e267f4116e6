//! The public rendering API end to end: map PNGs (size, row order, colour
//! ramp, missing cells, square cells, label fitting, hillshade), palettes and
//! default ranges, spectra and line charts, and the errors for invalid specs
//! and unwritable paths.

use std::path::Path;

use finecast_render::{
    default_range, map_layout, render_lines_png, render_map_png, render_map_png_bytes,
    render_spectra_png, MapSpec, Palette, PixelRect, RenderError, SpectrumLine, NO_DATA_RGB,
};
use ndarray::Array2;

/// A decoded RGB8 image.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(png_bytes: &[u8]) -> Image {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("valid PNG header");
        let mut rgb = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut rgb).expect("valid PNG data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        rgb.truncate(info.buffer_size());
        Image {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    fn read(path: &Path) -> Image {
        Image::decode(&std::fs::read(path).expect("PNG written"))
    }

    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let at = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[at], self.rgb[at + 1], self.rgb[at + 2]]
    }
}

fn spec(data: &Array2<f32>) -> MapSpec<'_> {
    MapSpec {
        title: "2 m temperature".to_string(),
        subtitle: "valid 2025-11-03 12 UTC · test".to_string(),
        units: "K".to_string(),
        data: data.view(),
        north_up_rows: false,
        palette: Palette::by_name("temperature").unwrap(),
        range: (0.0, 1.0),
        width: 640,
        height: 480,
        hillshade: None,
    }
}

/// Centres of the top and bottom quarter of the map, in the middle column.
fn top_and_bottom(map: PixelRect) -> ((u32, u32), (u32, u32)) {
    let x = map.x + map.width / 2;
    ((x, map.y + map.height / 4), (x, map.y + 3 * map.height / 4))
}

#[test]
fn map_png_is_valid_with_requested_size() {
    let data = Array2::from_shape_fn((30, 40), |(j, i)| (i + j) as f32 / 70.0);
    for (width, height) in [(640, 480), (900, 700), (300, 600)] {
        let s = MapSpec {
            width,
            height,
            ..spec(&data)
        };
        let img = Image::decode(&render_map_png_bytes(&s).unwrap());
        assert_eq!((img.width, img.height), (width, height));
    }
}

#[test]
fn file_and_bytes_outputs_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.png");
    let data = Array2::from_shape_fn((10, 12), |(j, i)| (i * j) as f32 / 120.0);
    let s = spec(&data);
    render_map_png(&s, &path).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        render_map_png_bytes(&s).unwrap()
    );
    // Only the target file: the temporary file was renamed, not copied.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn west_east_ramp_spans_the_palette_left_to_right() {
    let (ny, nx) = (20, 100);
    let data = Array2::from_shape_fn((ny, nx), |(_, i)| i as f32);
    let palette = Palette::by_name("wind").unwrap();
    let s = MapSpec {
        palette: palette.clone(),
        range: (0.0, (nx - 1) as f64),
        ..spec(&data)
    };
    let img = Image::decode(&render_map_png_bytes(&s).unwrap());
    let map = map_layout(&s).unwrap().map;
    let y = map.y + map.height / 2;
    assert_eq!(img.pixel(map.x, y), palette.stops()[0]);
    assert_eq!(
        img.pixel(map.x + map.width - 1, y),
        *palette.stops().last().unwrap()
    );
    // Every pixel across is a palette colour, in palette order.
    let lut = palette.lut(256);
    let indices: Vec<usize> = (map.x..map.x + map.width)
        .map(|x| {
            let c = img.pixel(x, y);
            lut.iter()
                .position(|&l| l == c)
                .unwrap_or_else(|| panic!("{c:?} at x={x} is not a palette colour"))
        })
        .collect();
    assert!(indices.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn row_order_follows_north_up_rows() {
    // Rows 0..10 are NaN: the south half when row 0 is south.
    let mut data = Array2::from_elem((20, 20), 0.5f32);
    data.slice_mut(ndarray::s![0..10, ..]).fill(f32::NAN);

    let south_up = spec(&data);
    let img = Image::decode(&render_map_png_bytes(&south_up).unwrap());
    let (top, bottom) = top_and_bottom(map_layout(&south_up).unwrap().map);
    assert_eq!(img.pixel(bottom.0, bottom.1), NO_DATA_RGB);
    assert_ne!(img.pixel(top.0, top.1), NO_DATA_RGB);

    let north_up = MapSpec {
        north_up_rows: true,
        ..spec(&data)
    };
    let img = Image::decode(&render_map_png_bytes(&north_up).unwrap());
    assert_eq!(img.pixel(top.0, top.1), NO_DATA_RGB);
    assert_ne!(img.pixel(bottom.0, bottom.1), NO_DATA_RGB);
}

#[test]
fn single_nan_cell_is_drawn_as_no_data() {
    let mut data = Array2::from_elem((5, 5), 0.25f32);
    data[[2, 2]] = f32::NAN;
    let s = MapSpec {
        hillshade: None,
        ..spec(&data)
    };
    let img = Image::decode(&render_map_png_bytes(&s).unwrap());
    let map = map_layout(&s).unwrap().map;
    let centre = (map.x + map.width / 2, map.y + map.height / 2);
    assert_eq!(img.pixel(centre.0, centre.1), NO_DATA_RGB);
    assert_eq!(img.pixel(map.x + 2, map.y + 2), s.palette.color(0.25));
}

#[test]
fn map_keeps_square_cells_and_leaves_room_for_the_colour_bar() {
    let data = Array2::<f32>::zeros((200, 50));
    let s = MapSpec {
        width: 900,
        height: 700,
        ..spec(&data)
    };
    let layout = map_layout(&s).unwrap();
    let (map, bar) = (layout.map, layout.colorbar);
    let aspect = f64::from(map.height) / f64::from(map.width);
    assert!((aspect - 4.0).abs() < 0.1, "{map:?}");
    assert!(bar.x > map.x + map.width);
    assert!(bar.x + bar.width < s.width && map.y + map.height < s.height);
    assert!(bar.height > 100);
}

#[test]
fn long_labels_shrink_instead_of_running_off_the_figure() {
    let data = Array2::<f32>::zeros((10, 10));
    let s = MapSpec {
        title: "A very long title that would never fit on a small figure ".repeat(3),
        subtitle: "and a subtitle that is just as long, with units and times ".repeat(3),
        units: "kg m-2 s-1 (accumulated)".to_string(),
        width: 300,
        height: 200,
        ..spec(&data)
    };
    let img = Image::decode(&render_map_png_bytes(&s).unwrap());
    // The outermost columns and rows stay background: nothing was clipped.
    for y in 0..img.height {
        for x in [0, 1, img.width - 2, img.width - 1] {
            assert_eq!(img.pixel(x, y), [255, 255, 255], "({x}, {y})");
        }
    }
    for x in 0..img.width {
        assert_eq!(img.pixel(x, 0), [255, 255, 255], "({x}, 0)");
    }
}

#[test]
fn hillshade_is_neutral_on_flat_ground_and_lit_from_the_north_west() {
    let data = Array2::from_elem((20, 20), 0.5f32);
    let plain = render_map_png_bytes(&spec(&data)).unwrap();
    let flat = Array2::from_elem((20, 20), 300.0f32);
    let shaded_flat = render_map_png_bytes(&MapSpec {
        hillshade: Some(flat.view()),
        ..spec(&data)
    })
    .unwrap();
    assert_eq!(Image::decode(&plain).rgb, Image::decode(&shaded_flat).rgb);

    let brightness = |terrain: &Array2<f32>, north_up_rows: bool| -> u32 {
        let s = MapSpec {
            hillshade: Some(terrain.view()),
            north_up_rows,
            ..spec(&data)
        };
        let img = Image::decode(&render_map_png_bytes(&s).unwrap());
        let map = map_layout(&s).unwrap().map;
        let c = img.pixel(map.x + map.width / 2, map.y + map.height / 2);
        c.iter().map(|&v| u32::from(v)).sum()
    };
    let rising_east = Array2::from_shape_fn((20, 20), |(_, i)| 10.0 * i as f32);
    let rising_west = Array2::from_shape_fn((20, 20), |(_, i)| -10.0 * i as f32);
    assert!(brightness(&rising_east, false) > brightness(&rising_west, false) + 50);

    // The same south-facing slope, stored south-up and north-up.
    let south_up = Array2::from_shape_fn((20, 20), |(j, _)| 10.0 * j as f32);
    let north_up = Array2::from_shape_fn((20, 20), |(j, _)| 10.0 * (19 - j) as f32);
    assert_eq!(brightness(&south_up, false), brightness(&north_up, true));
    assert!(brightness(&south_up, false) < brightness(&flat, false));
}

#[test]
fn invalid_map_specs_are_errors() {
    let data = Array2::<f32>::zeros((10, 10));
    let other_shape = Array2::<f32>::zeros((10, 11));
    let empty = Array2::<f32>::zeros((0, 10));
    let cases = [
        MapSpec {
            range: (1.0, 1.0),
            ..spec(&data)
        },
        MapSpec {
            range: (0.0, f64::NAN),
            ..spec(&data)
        },
        MapSpec {
            width: 10,
            ..spec(&data)
        },
        MapSpec {
            height: 100_000,
            ..spec(&data)
        },
        MapSpec {
            hillshade: Some(other_shape.view()),
            ..spec(&data)
        },
        spec(&empty),
    ];
    for s in &cases {
        assert!(matches!(
            render_map_png_bytes(s),
            Err(RenderError::InvalidInput(_))
        ));
    }
}

#[test]
fn write_to_missing_directory_fails_without_leaving_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("map.png");
    let data = Array2::<f32>::zeros((10, 10));
    let err = render_map_png(&spec(&data), &path).unwrap_err();
    assert!(matches!(err, RenderError::Io { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn palettes_by_name_and_lut_endpoints() {
    for name in Palette::NAMES {
        let p = Palette::by_name(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(p.name, name);
        assert!(p.stops().len() >= 2);
        let lut = p.lut(100);
        assert_eq!(lut.len(), 100);
        assert_eq!(lut[0], p.stops()[0]);
        assert_eq!(lut[99], *p.stops().last().unwrap());
        assert_eq!(p.color(-1.0), p.stops()[0]);
        assert_eq!(p.color(2.0), *p.stops().last().unwrap());
        assert_eq!(p.color(f64::NAN), p.stops()[0]);
        assert!(!p.stops().contains(&NO_DATA_RGB));
    }
    assert_eq!(Palette::by_name("Temperature").unwrap().name, "temperature");
    assert!(Palette::by_name("jet").is_none());
    let wind = Palette::by_name("wind").unwrap();
    assert_eq!(wind.lut(1), vec![wind.stops()[0]]);
    assert!(wind.lut(0).is_empty());
    // 11 stops: t = 0.5 is exactly the middle stop.
    assert_eq!(wind.color(0.5), wind.stops()[5]);
}

#[test]
fn diverging_palettes_are_white_in_the_middle() {
    let d = Palette::by_name("difference").unwrap();
    assert_eq!(d.color(0.5), [255, 255, 255]);
    assert_eq!(
        Palette::by_name("precipitation").unwrap().color(0.0),
        [255, 255, 255]
    );
}

#[test]
fn palettes_for_variables() {
    for (var, name) in [
        ("t2m", "temperature"),
        ("air_temperature", "temperature"),
        ("u10", "difference"),
        ("si10", "wind"),
        ("tp", "precipitation"),
        ("orog", "terrain"),
        ("t2m_error", "difference"),
        ("something_else", "wind"),
    ] {
        assert_eq!(Palette::for_variable(var).name, name, "{var}");
    }
}

#[test]
fn default_ranges() {
    assert_eq!(default_range("t2m", "K"), Some((233.15, 313.15)));
    assert_eq!(
        default_range("tmax", "degrees Celsius"),
        Some((-40.0, 40.0))
    );
    assert_eq!(default_range("u10", "m s**-1"), Some((-25.0, 25.0)));
    assert_eq!(default_range("v10", "m/s"), Some((-25.0, 25.0)));
    assert_eq!(default_range("wind_speed", "m s-1"), Some((0.0, 30.0)));
    assert_eq!(default_range("tp", "kg m-2"), Some((0.0, 50.0)));
    assert_eq!(default_range("tp", "m"), Some((0.0, 0.05)));
    assert_eq!(default_range("orog", "m"), Some((0.0, 4000.0)));
    assert_eq!(default_range("t2m_diff", "K"), None);
    assert_eq!(default_range("t2m", "furlongs"), None);
    assert_eq!(default_range("cape", "J kg-1"), None);
}

#[test]
fn spectra_and_line_charts_are_valid_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let wavelength: Vec<f64> = (1..60).map(|b| 300.0 / f64::from(b)).collect();
    let truth: Vec<f64> = wavelength.iter().map(|w| w.powf(8.0 / 3.0)).collect();
    let smooth: Vec<f64> = wavelength.iter().map(|w| w.powi(4) * 0.01).collect();
    let spectra = dir.path().join("spectra.png");
    render_spectra_png(
        "Spectra",
        &[
            SpectrumLine {
                label: "truth".to_string(),
                wavelength_km: &wavelength,
                power: &truth,
            },
            SpectrumLine {
                label: "bilinear".to_string(),
                wavelength_km: &wavelength,
                power: &smooth,
            },
        ],
        &spectra,
    )
    .unwrap();
    let img = Image::read(&spectra);
    assert_eq!((img.width, img.height), (900, 600));

    let lines = dir.path().join("loss.png");
    let loss: Vec<(f64, f64)> = (0..50)
        .map(|e| (f64::from(e), (-f64::from(e) / 10.0).exp()))
        .chain([(50.0, f64::NAN), (51.0, 0.0)])
        .collect();
    for log_y in [false, true] {
        render_lines_png(
            "Loss",
            "epoch",
            "loss",
            &[("train".to_string(), loss.clone())],
            &lines,
            log_y,
        )
        .unwrap();
        assert_eq!(Image::read(&lines).width, 900);
    }
    // A single point still plots (with a padded range).
    render_lines_png(
        "One",
        "x",
        "y",
        &[("only".to_string(), vec![(1.0, 2.0)])],
        &lines,
        true,
    )
    .unwrap();
}

#[test]
fn chart_input_errors() {
    let path = std::env::temp_dir().join("finecast-render-never-written.png");
    let short = [1.0, 2.0];
    let err = render_spectra_png(
        "bad",
        &[SpectrumLine {
            label: "x".to_string(),
            wavelength_km: &short,
            power: &[1.0],
        }],
        &path,
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::InvalidInput(_)));
    let err = render_lines_png(
        "nothing",
        "x",
        "y",
        &[("neg".to_string(), vec![(1.0, -1.0), (f64::NAN, 1.0)])],
        &path,
        true,
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::InvalidInput(_)));
    assert!(!path.exists());
}

/// Snapshot of a small map's decoded pixels, to catch unintended visual
/// changes (layout, palette, text, hillshade). After an intended change,
/// regenerate with `FINECAST_UPDATE_SNAPSHOTS=1 cargo test -p finecast-render`
/// and look at the new image before committing the new hash.
#[test]
fn small_map_snapshot() {
    let (ny, nx) = (30, 40);
    let terrain = Array2::from_shape_fn((ny, nx), |(j, i)| {
        let (x, y) = (i as f32 - 20.0, j as f32 - 12.0);
        1500.0 - 3.0 * (x * x + y * y)
    });
    let mut field = terrain.mapv(|z| 288.15 - 0.0065 * z);
    field[[0, 0]] = f32::NAN;
    let s = MapSpec {
        title: "Snapshot".to_string(),
        subtitle: "t2m, lapse-rate method".to_string(),
        units: "K".to_string(),
        data: field.view(),
        north_up_rows: false,
        palette: Palette::for_variable("t2m"),
        range: default_range("t2m", "K").unwrap(),
        width: 320,
        height: 240,
        hillshade: Some(terrain.view()),
    };
    let img = Image::decode(&render_map_png_bytes(&s).unwrap());
    // FNV-1a over the decoded pixels, independent of PNG compression.
    let hash = img.rgb.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let actual = format!("{hash:016x}\n");
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/small_map.txt");
    if std::env::var_os("FINECAST_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&snapshot, &actual).unwrap();
        std::fs::write(
            snapshot.with_extension("png"),
            render_map_png_bytes(&s).unwrap(),
        )
        .unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap_or_else(|_| {
        panic!(
            "missing {}; run with FINECAST_UPDATE_SNAPSHOTS=1 to create it",
            snapshot.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "pixels differ from {}; if the change is intended, rerun with \
         FINECAST_UPDATE_SNAPSHOTS=1 and check {}",
        snapshot.display(),
        snapshot.with_extension("png").display()
    );
}
