//! Downscaling jobs end to end: the bundled sample, real shared data, tiling
//! seams, target grids taken from real files, and bad input.

mod common;

use std::path::{Path, PathBuf};

use finecast_methods::Baseline;
use finecast_pipeline::{run_downscale, DownscaleRequest, LogControl, PipelineError, Target};
use finecast_tiles::TileSpec;

fn request(
    input: PathBuf,
    terrain: PathBuf,
    target: Target,
    out: &Path,
    method: Baseline,
    vars: &[&str],
) -> DownscaleRequest {
    DownscaleRequest {
        input,
        terrain,
        land_mask: None,
        target,
        method: method.into(),
        vars: vars.iter().map(|s| s.to_string()).collect(),
        times: vec![],
        out: out.to_path_buf(),
        tiles: TileSpec::new(64, 16, 16).unwrap(),
        command_line: "test".into(),
    }
}

fn alps() -> Target {
    Target::Region {
        region: "45.5,48,5.8,10.6".parse().unwrap(),
        resolution_m: 3000.0,
    }
}

fn read(path: &Path, var: &str, time: usize) -> finecast_io::FieldData {
    let ds = finecast_io::open(path).unwrap();
    ds.read(
        var,
        &finecast_io::Selection {
            time: finecast_io::TimeSel::Index(time),
            bbox: None,
        },
    )
    .unwrap()
}

#[test]
fn sample_downscales_every_variable_with_physical_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alps.nc");
    let req = request(
        common::sample("forecast_alps_0p25.nc"),
        common::sample("terrain_alps_etopo5.nc"),
        alps(),
        &out,
        Baseline::Lapse,
        &[],
    );
    let report = run_downscale(&req, &LogControl::default()).unwrap();
    assert_eq!(report.variables.len(), 4);
    let orog = read(&out, "orog", 0);
    assert_eq!(orog.units, "m");
    assert!(
        orog.field.range().unwrap().1 > 2500.0,
        "the Alps are in the terrain"
    );
    let methods: Vec<_> = report
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v.method.as_str()))
        .collect();
    assert!(methods.contains(&("t2m", "lapse")) && methods.contains(&("tp", "bilinear")));
    let ds = finecast_io::open(&out).unwrap();
    assert_eq!(ds.times("t2m").unwrap().len(), 4);
    let grid = ds.grid("t2m").unwrap();
    let (dx, dy) = grid.spacing_m();
    assert!((dx - 3000.0).abs() < 1e-6 && (dy - 3000.0).abs() < 1e-6);
    let t = read(&out, "t2m", 0);
    assert_eq!(t.units, "K");
    let (lo, hi) = t.field.range().unwrap();
    assert!(lo > 230.0 && hi < 300.0, "{lo}..{hi}");
    assert_eq!(t.field.valid_count(), t.field.data.len());
    let tp = read(&out, "tp", 2);
    assert!(tp.field.range().unwrap().0 >= 0.0);
}

#[test]
fn tiled_equals_untiled_on_real_data_without_seams() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = Target::Region {
        region: "37.5,40.5,-108,-104".parse().unwrap(),
        resolution_m: 3000.0,
    };
    let run = |tiles: TileSpec, name: &str| {
        let out = dir.path().join(name);
        let mut req = request(
            data.join("coarse/era5_conus_1995-07-14T12.nc"),
            data.join("static/colorado_orog_1arcmin.nc"),
            target.clone(),
            &out,
            Baseline::Gradient,
            &["t2m"],
        );
        req.tiles = tiles;
        run_downscale(&req, &LogControl::default()).unwrap();
        read(&out, "t2m", 0).field.data
    };
    let whole = run(TileSpec::new(4096, 0, 0).unwrap(), "whole.nc");
    for spec in [
        TileSpec::new(37, 8, 8).unwrap(),
        TileSpec::new(50, 4, 0).unwrap(),
    ] {
        let tiled = run(spec, "tiled.nc");
        for (a, b) in tiled.iter().zip(whole.iter()) {
            assert!((a - b).abs() <= 1e-5 * b.abs(), "{a} vs {b}");
        }
        // No seams: differences across tile boundaries look like differences inside tiles.
        let step = |i: usize| {
            let col = |k: usize| tiled.column(k).to_owned();
            (&col(i) - &col(i - 1)).mapv(f32::abs).mean().unwrap()
        };
        let boundary = step(spec.tile);
        let inside = step(spec.tile / 2);
        assert!(
            boundary < 3.0 * inside + 0.05,
            "boundary step {boundary} vs inside {inside}"
        );
    }
}

/// Crop `var` of `src` to `region`, write it to `out`, and return its grid.
fn write_cropped(src: &Path, var: &str, region: &str, out: &Path) -> finecast_grid::Grid {
    let field = read(src, var, 0)
        .field
        .crop_to_region(&region.parse().unwrap())
        .unwrap();
    finecast_io::write_netcdf(
        out,
        &[finecast_io::OutputVar {
            name: "orog".into(),
            standard_name: Some("surface_altitude".into()),
            long_name: None,
            units: "m".into(),
            grid: field.grid.clone(),
            times: vec![],
            data: vec![field.data.clone()],
        }],
        &finecast_io::Provenance {
            inputs: vec![],
            method: "crop".into(),
            weights_sha256: None,
            command_line: "test".into(),
            extra: vec![],
        },
    )
    .unwrap();
    field.grid
}

/// Downscale onto the grid of `like` and check the output grid is that grid.
fn assert_grid_like_round_trip(
    input: PathBuf,
    terrain: PathBuf,
    like: &Path,
    want: &finecast_grid::Grid,
    out: &Path,
) {
    let first_time = finecast_io::open(&input)
        .unwrap()
        .times("t2m")
        .unwrap()
        .into_iter()
        .next();
    let mut req = request(
        input,
        terrain,
        Target::GridLike(like.to_path_buf()),
        out,
        Baseline::Lapse,
        &["t2m"],
    );
    req.times = first_time.into_iter().collect();
    run_downscale(&req, &LogControl::default()).unwrap();
    let got = read(out, "t2m", 0);
    assert_eq!(got.field.grid.crs(), want.crs());
    assert_eq!(got.field.grid.shape(), want.shape());
    for (a, b) in got
        .field
        .grid
        .x()
        .iter()
        .zip(want.x())
        .chain(got.field.grid.y().iter().zip(want.y()))
    {
        assert!((a - b).abs() < 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
    // The same cells are at the same places on the Earth.
    let (lon, lat) = got.field.grid.lonlat(3, 5);
    let (lon2, lat2) = want.lonlat(3, 5);
    assert!((lon - lon2).abs() < 1e-9 && (lat - lat2).abs() < 1e-9);
    assert_eq!(got.field.valid_count(), got.field.data.len());
}

#[test]
fn rotated_pole_target_grid_round_trips() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ukv = data.join("static/ukv_orog_1p5km.nc");
    let era5 = data.join("coarse/era5_uk_t2m_2019-03.nc");
    // The whole UKV domain reaches beyond the ERA5 UK box: refused cleanly.
    let out = dir.path().join("ukv.nc");
    let req = request(
        era5.clone(),
        ukv.clone(),
        Target::GridLike(ukv.clone()),
        &out,
        Baseline::Lapse,
        &["t2m"],
    );
    let err = run_downscale(&req, &LogControl::default()).unwrap_err();
    assert!(
        err.to_string().contains("outside the input's coverage"),
        "{err}"
    );
    assert!(!out.exists());
    // A crop of it inside the box round-trips.
    let like = dir.path().join("ukv_crop.nc");
    let want = write_cropped(&ukv, "orog", "51,56,-5,1", &like);
    assert!(matches!(want.crs(), finecast_grid::Crs::RotatedPole { .. }));
    assert_grid_like_round_trip(era5, ukv, &like, &want, &out);
}

#[test]
fn lambert_target_grid_round_trips() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let etopo = data.join("static/etopo5_orog.nc");
    let like = dir.path().join("columbia_crop.nc");
    let want = write_cropped(
        &data.join("fine/wrf_columbia_1980-01-12T17.nc"),
        "t2m",
        "41,49,-124,-108",
        &like,
    );
    assert!(matches!(
        want.crs(),
        finecast_grid::Crs::LambertConformalConic { .. }
    ));
    let out = dir.path().join("columbia.nc");
    assert_grid_like_round_trip(
        data.join("coarse/era5_conus_1995-07-14T12.nc"),
        etopo,
        &like,
        &want,
        &out,
    );
}

#[test]
fn land_mask_becomes_a_land_fraction() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("coast.nc");
    // Inland Provence and Savoy: every target cell is land.
    let mut req = request(
        common::sample("forecast_alps_0p25.nc"),
        common::sample("terrain_alps_etopo5.nc"),
        Target::Region {
            region: "44.5,45.5,5,7".parse().unwrap(),
            resolution_m: 3000.0,
        },
        &out,
        Baseline::Lapse,
        &["t2m"],
    );
    req.land_mask = Some(data.join("static/globe_lsm_30s.nc"));
    run_downscale(&req, &LogControl::default()).unwrap();
    let f = read(&out, "sftlf", 0).field;
    let (lo, hi) = f.range().unwrap();
    assert!(lo >= 0.0 && hi <= 1.0);
    assert!((hi - 1.0).abs() < 1e-6, "inland cells are all land");
}

#[test]
fn bad_inputs_give_one_line_errors_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.nc");
    let ctl = LogControl::default();
    let base = || {
        request(
            common::sample("forecast_alps_0p25.nc"),
            common::sample("terrain_alps_etopo5.nc"),
            alps(),
            &out,
            Baseline::Lapse,
            &["t2m"],
        )
    };
    let expect = |req: DownscaleRequest, needle: &str| {
        let err = run_downscale(&req, &ctl).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle), "'{msg}' should mention '{needle}'");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(!out.exists());
        err
    };
    // Missing variable: names the file and the variable.
    let mut r = base();
    r.vars = vec!["snow_depth".into()];
    expect(r, "snow_depth");
    // Region outside the input's coverage.
    let mut r = base();
    r.target = Target::Region {
        region: "30,32,-100,-98".parse().unwrap(),
        resolution_m: 3000.0,
    };
    let e = expect(r, "forecast_alps_0p25.nc");
    assert!(matches!(
        e,
        PipelineError::Input { .. } | PipelineError::Io(_)
    ));
    // DEM that does not cover the target.
    let small_dem = dir.path().join("small_dem.nc");
    write_cropped(
        &common::sample("terrain_alps_etopo5.nc"),
        "orog",
        "46,47,6,8",
        &small_dem,
    );
    let mut r = base();
    r.terrain = small_dem;
    expect(r, "small_dem.nc");
    // The output is the input (or the DEM): refused before anything is
    // written, and the input is left as it was.
    let copy = dir.path().join("input-copy.nc");
    std::fs::copy(common::sample("forecast_alps_0p25.nc"), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let mut r = base();
    r.input = copy.clone();
    r.out = copy.clone();
    let msg = run_downscale(&r, &ctl).unwrap_err().to_string();
    assert!(msg.contains("is the input file"), "{msg}");
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    let mut r = base();
    r.out = dir.path().join(".").join("input-copy.nc");
    r.terrain = copy.clone();
    let msg = run_downscale(&r, &ctl).unwrap_err().to_string();
    assert!(msg.contains("is the input file"), "{msg}");
    // Truncated file.
    let truncated = dir.path().join("truncated.nc");
    let bytes = std::fs::read(common::sample("forecast_alps_0p25.nc")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let mut r = base();
    r.input = truncated;
    expect(r, "truncated.nc");
    // Garbage that is not a known format.
    let garbage = dir.path().join("garbage.nc");
    std::fs::write(&garbage, b"this is not a netcdf file at all").unwrap();
    let mut r = base();
    r.input = garbage;
    expect(r, "garbage.nc");
    // All-missing field: a downscaled file whose t2m is entirely fill.
    let empty = dir.path().join("allfill.nc");
    let grid = finecast_grid::Grid::regular_latlon(4.125, 0.25, 34, 44.125, 0.25, 22).unwrap();
    finecast_io::write_netcdf(
        &empty,
        &[finecast_io::OutputVar {
            name: "t2m".into(),
            standard_name: Some("air_temperature".into()),
            long_name: None,
            units: "K".into(),
            grid,
            times: vec![],
            data: vec![ndarray::Array2::from_elem((22, 34), f32::NAN)],
        }],
        &finecast_io::Provenance {
            inputs: vec![],
            method: "test".into(),
            weights_sha256: None,
            command_line: "test".into(),
            extra: vec![],
        },
    )
    .unwrap();
    let mut r = base();
    r.input = empty;
    expect(r, "t2m");
}

#[test]
fn cancellation_stops_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cancelled.nc");
    let req = request(
        common::sample("forecast_alps_0p25.nc"),
        common::sample("terrain_alps_etopo5.nc"),
        alps(),
        &out,
        Baseline::Bicubic,
        &[],
    );
    let ctl = LogControl::default();
    ctl.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        run_downscale(&req, &ctl),
        Err(PipelineError::Cancelled)
    ));
    assert!(!out.exists());
}

#[test]
fn grib2_north_up_0_360_input_matches_the_netcdf_it_came_from() {
    // The fixture is ERA5 CONUS t2m re-encoded as GRIB2 with rows north to
    // south and longitudes 0..360; the NetCDF has rows south to north and
    // longitudes -180..180. Downscaled, both must agree to packing precision.
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let grib = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../io/tests/fixtures/era5_conus_west_latlon.grib2");
    let target = Target::Region {
        region: "37,43,-122,-110".parse().unwrap(),
        resolution_m: 5000.0,
    };
    let run = |input: PathBuf, name: &str| {
        let out = dir.path().join(name);
        let req = request(
            input,
            data.join("static/etopo5_orog.nc"),
            target.clone(),
            &out,
            Baseline::Lapse,
            &["t2m"],
        );
        run_downscale(&req, &LogControl::default()).unwrap();
        read(&out, "t2m", 0).field.data
    };
    let from_grib = run(grib, "grib.nc");
    let from_nc = run(data.join("coarse/era5_conus_1995-07-14T12.nc"), "nc.nc");
    let worst = from_grib
        .iter()
        .zip(from_nc.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 0.02, "largest difference {worst} K");
}

/// A job cancelled once its fields are done, while it is about to write,
/// writes nothing (the server then publishes no run).
#[test]
fn a_job_cancelled_before_writing_writes_nothing() {
    struct CancelAtWrite(std::sync::atomic::AtomicBool);
    impl finecast_pipeline::JobControl for CancelAtWrite {
        fn progress(&self, _percent: f32, step: &str) {
            if step == "writing output" {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        fn is_cancelled(&self) -> bool {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cancelled.nc");
    let req = request(
        common::sample("forecast_alps_0p25.nc"),
        common::sample("terrain_alps_etopo5.nc"),
        alps(),
        &out,
        Baseline::Bilinear,
        &["t2m"],
    );
    let ctl = CancelAtWrite(false.into());
    let err = run_downscale(&req, &ctl).unwrap_err();
    assert!(matches!(err, PipelineError::Cancelled), "{err}");
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no leftovers"
    );
}
