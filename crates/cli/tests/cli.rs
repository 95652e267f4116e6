//! End-to-end tests of the built `finecast` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../io/tests/common/shared_data.rs"]
mod shared_data;
use shared_data::shared_data;

fn finecast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_finecast"))
        .args(args)
        .output()
        .expect("the finecast binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample(name: &str) -> String {
    repo().join("data/sample").join(name).display().to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `finecast downscale` of the bundled Alps sample onto a 3 km grid over
/// `region` at 2024-01-15T12Z, with more arguments in `extra`.
fn downscale_sample(region: &str, method: &str, extra: &[&str], out: &Path) -> Output {
    let (input, terrain, out) = (
        sample("forecast_alps_0p25.nc"),
        sample("terrain_alps_etopo5.nc"),
        s(out),
    );
    let mut args = vec![
        "downscale",
        "--input",
        &input,
        "--terrain",
        &terrain,
        "--region",
        region,
        "--resolution",
        "3km",
        "--method",
        method,
        "--times",
        "2024-01-15T12:00Z",
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    finecast(&args)
}

#[test]
fn quick_start_job_downscales_the_sample_and_maps_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alps.nc");
    let o = finecast(&[
        "downscale",
        "--input",
        &sample("forecast_alps_0p25.nc"),
        "--terrain",
        &sample("terrain_alps_etopo5.nc"),
        "--region",
        "45.5,48,5.8,10.6",
        "--resolution",
        "3km",
        "--method",
        "lapse",
        "--vars",
        "t2m,u10,v10,tp",
        "--out",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("t2m [K] 4 time(s), method lapse"),
        "{}",
        stdout(&o)
    );

    let info = finecast(&["info", &s(&out)]);
    assert!(info.status.success(), "{}", stderr(&info));
    let text = stdout(&info);
    assert!(text.contains("lambert_azimuthal_equal_area"), "{text}");
    assert!(text.contains("spacing ~3.00 x 3.00 km"), "{text}");

    let json = finecast(&["info", "--json", &s(&out)]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> = v["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t2m", "u10", "v10", "tp", "orog"]);

    let png = dir.path().join("t2m.png");
    let m = finecast(&[
        "map",
        &s(&out),
        "--var",
        "t2m",
        "--time",
        "2024-01-15T12:00Z",
        "--out",
        &s(&png),
    ]);
    assert!(m.status.success(), "{}", stderr(&m));
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn info_describes_every_shared_file() {
    let Some(data) = shared_data() else { return };
    let expect = [
        (
            "coarse/era5_uk_t2m_2019-03.nc",
            "744 from 2019-03-01T00:00:00Z to 2019-03-31T23:00:00Z",
        ),
        (
            "fine/hrrr_conus_tp_2020-12-14T12.nc",
            "lambert_conformal_conic 1799 x 1059",
        ),
        (
            "fine/stageiv_conus_tp_2022-08-10T04.nc",
            "polar_stereographic 1121 x 881",
        ),
        (
            "static/ukv_orog_1p5km.nc",
            "rotated_latitude_longitude 744 x 928",
        ),
        (
            "fine/prism_conus_19810929.nc",
            "latitude_longitude 1405 x 621",
        ),
    ];
    for (file, needle) in expect {
        let o = finecast(&["info", &s(&data.join(file))]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        assert!(
            stdout(&o).contains(needle),
            "{file}: expected '{needle}' in\n{}",
            stdout(&o)
        );
    }
}

/// `finecast info` names the British National Grid files' grid, datum shift
/// and extent (the shared data README's numbers).
#[test]
fn info_names_the_british_national_grid() {
    let Some(data) = shared_data() else { return };
    let expect = [
        (
            "fine/haduk_cornwall_1km_2018-05.nc",
            "transverse_mercator 70 x 71 (nx x ny), x 134500.0..203500.0, y 12500.0..82500.0 m",
            // Outer cell centres on WGS84 (pyproj, EPSG:27700 -> 4326:
            // -5.7518 W at the north-west corner, 50.6090 N at the north-east).
            "lon -5.752..-4.742, lat 49.954..50.609 (WGS84, datum shifted by towgs84 446.448,-125.157,542.06,0.15,0.247,0.842,-20.489); spacing ~1.00 x 1.00 km",
        ),
        (
            "static/cornwall_dtm_1km.nc",
            "transverse_mercator 70 x 60 (nx x ny), x 130500.0..199500.0, y 10500.0..69500.0 m",
            "spacing ~1.00 x 1.00 km",
        ),
        (
            "static/cornwall_dtm_50m.nc",
            "transverse_mercator 100 x 120 (nx x ny), x 162025.0..166975.0, y 23025.0..28975.0 m",
            "spacing ~0.05 x 0.05 km",
        ),
    ];
    for (file, grid, extent) in expect {
        let path = data.join(file);
        if !path.exists() {
            eprintln!("skipping {file}: not in this copy of the shared data");
            continue;
        }
        let o = finecast(&["info", &s(&path)]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains(grid), "{file}: expected '{grid}' in\n{text}");
        assert!(
            text.contains(extent),
            "{file}: expected '{extent}' in\n{text}"
        );
    }
}

/// The CF checker's verdict on `path` (scripts/cfchecks.sh), or `None` with a
/// message when the checker is not installed.
fn cf_check(path: &Path) -> Option<String> {
    let o = Command::new("bash")
        .arg(repo().join("scripts/cfchecks.sh"))
        .arg(path)
        .output()
        .expect("bash runs");
    if o.status.code() == Some(3) {
        eprintln!(
            "skipping the CF check: {} (scripts/install-cfchecker.sh installs it)",
            stderr(&o).trim()
        );
        return None;
    }
    Some(stdout(&o))
}

/// A job onto the British National Grid of the 1 km DTM (`--grid-like`),
/// with that DTM as terrain, writes a CF-checker-clean file on the same grid
/// whose 2-D lat/lon are WGS84.
#[test]
fn grid_like_british_national_grid_job_writes_cf_clean_output() {
    let Some(data) = shared_data() else { return };
    let dtm = data.join("static/cornwall_dtm_1km.nc");
    let input = data.join("coarse/era5_cornwall_2018-05.nc");
    if !dtm.exists() || !input.exists() {
        eprintln!("skipping: the Cornwall files are not in this copy of the shared data");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cornwall_bng.nc");
    let o = finecast(&[
        "downscale",
        "--input",
        &s(&input),
        "--terrain",
        &s(&dtm),
        "--grid-like",
        &s(&dtm),
        "--vars",
        "t2m",
        "--times",
        "2018-05-01T12:00:00Z,2018-05-01T13:00:00Z",
        "--method",
        "lapse",
        "--out",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = stdout(&finecast(&["info", &s(&out)]));
    assert!(
        info.contains(
            "transverse_mercator 70 x 60 (nx x ny), x 130500.0..199500.0, y 10500.0..69500.0 m"
        ),
        "{info}"
    );
    assert!(
        info.contains("times:  2 from 2018-05-01T12:00:00Z"),
        "{info}"
    );
    // Plausible May afternoon temperatures over land and sea, in kelvin.
    let nc = netcdf::open(&out).unwrap();
    let t2m: Vec<f32> = nc.variable("t2m").unwrap().get_values(..).unwrap();
    let valid: Vec<f32> = t2m
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v < 1e30)
        .collect();
    // Every cell, also where the DTM marks the sea as missing (sea level).
    assert_eq!(valid.len(), 2 * 70 * 60);
    assert!(
        valid.iter().all(|v| (275.0..300.0).contains(v)),
        "{:?}",
        valid
            .iter()
            .fold((f32::MAX, f32::MIN), |a, v| (a.0.min(*v), a.1.max(*v)))
    );
    let Some(report) = cf_check(&out) else { return };
    assert!(report.contains("ERRORS detected: 0"), "{report}");
    assert!(report.contains("WARNINGS given: 0"), "{report}");
}

#[test]
fn evaluate_writes_the_documented_json() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scores.json");
    let o = finecast(&[
        "evaluate",
        "--truth",
        &s(&data.join("fine/prism_conus_19810929.nc")),
        "--var",
        "tmax",
        "--terrain",
        &s(&data.join("static/colorado_orog_1arcmin.nc")),
        "--methods",
        "bilinear,bicubic,lapse,gradient",
        "--region",
        "37,41,-109,-102.5",
        "--json",
        &s(&json),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.lines().any(|l| l.starts_with("gradient")), "{table}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["var"], "tmax");
    for m in ["bilinear", "bicubic", "lapse", "gradient"] {
        let e = &v["methods"][m];
        for k in ["rmse", "mae", "bias", "pearson"] {
            assert!(e[k].is_number(), "{m}.{k}");
        }
        assert!(
            e["spectral_ratio"]["12-25km"].is_number(),
            "{m} spectral ratio"
        );
    }
    assert!(v["methods"]["gradient"]["rmse"].as_f64() < v["methods"]["bicubic"]["rmse"].as_f64());
}

/// `evaluate --methods ...,model` on a precipitation truth scores the
/// precipitation network (held-out PRISM 2025 daily totals in the Pacific
/// Northwest), with FSS, and refuses the temperature-only `lapse`.
#[test]
fn evaluate_scores_the_precipitation_network() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scores.json");
    let truth = s(&data.join("fine/prism_conus_20251103.nc"));
    let terrain = s(&data.join("static/etopo5_orog.nc"));
    let evaluate = |methods: &str| {
        finecast(&[
            "evaluate",
            "--truth",
            &truth,
            "--var",
            "ppt",
            "--terrain",
            &terrain,
            "--methods",
            methods,
            "--region",
            "40,49.9,-125,-116",
            "--json",
            &s(&json),
        ])
    };
    let o = evaluate("bilinear,bicubic,model");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(
        v["weights_sha256"]
            .as_str()
            .is_some_and(|h| h.starts_with("precipitation:")),
        "{}",
        v["weights_sha256"]
    );
    let rmse = |m: &str| v["methods"][m]["rmse"].as_f64().unwrap();
    assert!(rmse("model") < rmse("bicubic") && rmse("model") < rmse("bilinear"));
    assert!(v["methods"]["model"]["fss"]["1mm@10km"].is_number());

    let o = evaluate("bilinear,lapse");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("temperature only"), "{}", stderr(&o));
}

/// `evaluate --methods ...,model` on a WRF wind component scores the wind
/// network on the held-out Columbia domain: the grid-relative components are
/// turned to east/north first (said in the JSON), the network gets the other
/// component, and it beats bilinear on both.
#[test]
fn evaluate_scores_the_wind_network() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let truth = s(&data.join("fine/wrf_columbia_1980-01-12T17.nc"));
    let terrain = s(&data.join("static/etopo5_orog.nc"));
    for var in ["u10", "v10"] {
        let json = dir.path().join(format!("{var}.json"));
        let o = finecast(&[
            "evaluate",
            "--truth",
            &truth,
            "--var",
            var,
            "--terrain",
            &terrain,
            "--methods",
            "bilinear,bicubic,model",
            "--json",
            &s(&json),
        ]);
        assert!(o.status.success(), "{var}: {}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert!(
            v["wind_frame"]
                .as_str()
                .is_some_and(|n| n.contains("east/north")),
            "{}",
            v["wind_frame"]
        );
        assert!(
            v["weights_sha256"]
                .as_str()
                .is_some_and(|h| h.starts_with("wind:")),
            "{}",
            v["weights_sha256"]
        );
        let rmse = |m: &str| v["methods"][m]["rmse"].as_f64().unwrap();
        assert!(
            rmse("model") < rmse("bilinear"),
            "{var}: model {} vs bilinear {}",
            rmse("model"),
            rmse("bilinear")
        );
    }
}

/// A job on WRF winds, which lie along the WRF grid's axes (CF
/// `x_wind`/`y_wind`), turns them to east/north before interpolating onto
/// the output grid, whatever the method, and labels them so: the mean wind
/// over the region is the earth-relative one, not the grid-relative one.
#[test]
fn grid_relative_input_winds_are_turned_to_east_north() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = data.join("fine/wrf_columbia_1980-01-12T17.nc");
    let (east, north) = finecast_train::data::read_wind_truth(&input, "u10", None, None).unwrap();
    let raw = finecast_io::open(&input)
        .and_then(|ds| ds.read("u10", &finecast_io::Selection::default()))
        .unwrap();
    let (mut sums, mut n) = ([0.0f64; 3], 0.0f64);
    for ((j, i), &u) in east.data.indexed_iter() {
        let (lon, lat) = east.grid.lonlat(j, i);
        if (44.0..50.0).contains(&lat) && (-122.0..-112.0).contains(&lon) {
            sums[0] += u as f64;
            sums[1] += north.data[[j, i]] as f64;
            sums[2] += raw.field.data[[j, i]] as f64;
            n += 1.0;
        }
    }
    let (u_earth, v_earth, u_grid) = (sums[0] / n, sums[1] / n, sums[2] / n);
    assert!((u_earth - u_grid).abs() > 0.2, "the turn matters here");
    for method in ["bilinear", "model"] {
        let out = dir.path().join(format!("{method}.nc"));
        let o = finecast(&[
            "downscale",
            "--input",
            &s(&input),
            "--terrain",
            &s(&data.join("static/etopo5_orog.nc")),
            "--region",
            "44,50,-122,-112",
            "--resolution",
            "6km",
            "--method",
            method,
            "--vars",
            "u10,v10",
            "--out",
            &s(&out),
        ]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        let ds = finecast_io::open(&out).unwrap();
        let read = |var: &str| ds.read(var, &finecast_io::Selection::default()).unwrap();
        let (u, v) = (read("u10"), read("v10"));
        assert_eq!(u.standard_name.as_deref(), Some("eastward_wind"));
        assert_eq!(v.standard_name.as_deref(), Some("northward_wind"));
        let mean = |f: &finecast_io::FieldData| f.field.data.mean().unwrap() as f64;
        // The network changes the wind locally; the mean stays near.
        let tolerance = if method == "model" { 0.6 } else { 0.1 };
        assert!(
            (mean(&u) - u_earth).abs() < tolerance && (mean(&v) - v_earth).abs() < tolerance,
            "{method}: mean ({}, {}) vs earth-relative ({u_earth}, {v_earth}), grid-relative u {u_grid}",
            mean(&u),
            mean(&v)
        );
    }
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.nc");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["info".into(), s(&dir.path().join("missing.nc"))],
            "missing.nc",
        ),
        (
            vec![
                "downscale".into(),
                "--input".into(),
                sample("forecast_alps_0p25.nc"),
                "--terrain".into(),
                sample("terrain_alps_etopo5.nc"),
                "--region".into(),
                "45.5,48,5.8,10.6".into(),
                "--resolution".into(),
                "3km".into(),
                "--vars".into(),
                "nosuchvar".into(),
                "--out".into(),
                s(&out),
            ],
            "nosuchvar",
        ),
        (
            vec![
                "downscale".into(),
                "--input".into(),
                sample("forecast_alps_0p25.nc"),
                "--terrain".into(),
                sample("terrain_alps_etopo5.nc"),
                "--region".into(),
                "48,45,5.8,10.6".into(),
                "--resolution".into(),
                "3km".into(),
                "--out".into(),
                s(&out),
            ],
            "south",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = finecast(&args);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = stderr(&o);
        assert!(err.trim().lines().count() == 1, "one line: {err}");
        assert!(err.contains(needle), "'{err}' should mention {needle}");
        assert!(!out.exists());
        // The cause is said once, not repeated by the error chain.
        if let Some(cause) = err.rsplit(": ").next() {
            assert_eq!(err.matches(cause.trim()).count(), 1, "repeated: {err}");
        }
    }
}

/// `--device gpu` never fails a job for want of a GPU: without the `gpu`
/// feature (or without a Vulkan device) it says why and runs on the CPU.
#[test]
fn device_gpu_falls_back_to_the_cpu_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let run = |device: &str| {
        let out = dir.path().join(format!("{device}.nc"));
        let o = downscale_sample(
            "46,47.5,7,9.5",
            "model",
            &["--device", device, "--vars", "t2m"],
            &out,
        );
        assert!(o.status.success(), "--device {device}: {}", stderr(&o));
        let field = finecast_io::open(&out)
            .and_then(|ds| ds.read("t2m", &finecast_io::Selection::default()))
            .unwrap()
            .field;
        (stderr(&o), field.data)
    };
    let (log, gpu) = run("gpu");
    if !cfg!(feature = "gpu") {
        assert!(
            log.contains("built without the `gpu` feature") && log.contains("running on the CPU"),
            "{log}"
        );
    }
    let (_, cpu) = run("cpu");
    // Same network: bf16 (AMX) or f32 (flex, Vulkan) kernels agree to 0.05 K.
    let worst = gpu
        .iter()
        .zip(&cpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 0.05, "gpu and cpu runs differ by {worst} K");
    assert!(gpu.iter().all(|v| v.is_finite()));

    let bad = finecast(&[
        "downscale",
        "--device",
        "tpu",
        "--input",
        "x",
        "--terrain",
        "y",
        "--out",
        "z",
        "--grid-like",
        "w",
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("unknown device 'tpu'"),
        "{}",
        stderr(&bad)
    );
}

/// `finecast train --config` trains from a TOML file (a few steps on a real
/// PRISM crop), writes loadable weights, a sidecar and loss curves, and
/// resumes; a configuration naming a missing file fails with that file's name.
#[test]
#[cfg(feature = "train")]
fn train_command_trains_resumes_and_names_bad_input() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    let write_config = |truth: &str| {
        std::fs::write(
            &config,
            format!(
                r#"kind = "precipitation"
data_root = "{data}"
output = "{out}"
checkpoint_dir = "{ck}"
patch = 32
batch = 2
steps = 4
steps_per_epoch = 2
checkpoint_every = 2
[model]
width = 8
dilations = [1, 2]
[augment]
probability = 0.0
[[train]]
name = "prism-ppt-midwest"
truth = "{truth}"
var = "ppt"
region = [40.0, 45.0, -95.0, -88.0]
terrain = "static/etopo5_orog.nc"
[[validation]]
name = "prism-2025-ppt-midwest"
truth = "fine/prism_conus_20251103.nc"
var = "ppt"
region = [40.0, 45.0, -95.0, -88.0]
terrain = "static/etopo5_orog.nc"
"#,
                data = s(&data),
                out = s(&dir.path().join("tiny")),
                ck = s(&dir.path().join("ck")),
            ),
        )
        .unwrap();
    };
    write_config("fine/prism_conus_19810929.nc");
    let o = finecast(&["train", "--config", &s(&config), "--steps", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["steps"], 2);
    let o = finecast(&["train", "--config", &s(&config), "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["steps"], 4);
    let csv = std::fs::read_to_string(dir.path().join("ck/loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(dir.path().join("ck/loss.png").is_file());
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("tiny.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["kind"], "precipitation");
    // The weights load: export them.
    let o = finecast(&[
        "export-weights",
        "--weights",
        &s(&dir.path().join("tiny.bpk")),
        "--out",
        &s(&dir.path().join("tiny.safetensors")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    write_config("fine/no_such_file.nc");
    let o = finecast(&["train", "--config", &s(&config)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no_such_file.nc"), "{}", stderr(&o));
}

/// `--method model` uses the temperature network for t2m, the
/// precipitation network for tp and the wind network for u10 and v10 (all
/// recorded in the provenance). The downscaled precipitation is
/// non-negative and keeps the coarse field's amount over the region; the
/// wind keeps the coarse wind's mean.
#[test]
fn model_method_downscales_temperature_precipitation_and_wind() {
    let dir = tempfile::tempdir().unwrap();
    let run = |method: &str| {
        let out = dir.path().join(format!("{method}.nc"));
        let vars = "t2m,tp,u10,v10";
        let o = downscale_sample("45.5,48,5.8,10.6", method, &["--vars", vars], &out);
        assert!(o.status.success(), "--method {method}: {}", stderr(&o));
        out
    };
    let (model, bilinear) = (run("model"), run("bilinear"));
    let read = |path: &Path, var: &str| {
        finecast_io::open(path)
            .and_then(|ds| ds.read(var, &finecast_io::Selection::default()))
            .unwrap()
            .field
            .data
    };
    let (tp_model, tp_bilinear) = (read(&model, "tp"), read(&bilinear, "tp"));
    assert!(tp_model.iter().all(|v| v.is_finite() && *v >= 0.0));
    let (sum_m, sum_b) = (tp_model.sum(), tp_bilinear.sum());
    assert!(sum_b > 0.0, "the sample has precipitation");
    assert!(
        (sum_m / sum_b - 1.0).abs() < 0.15,
        "model total {sum_m} vs bilinear {sum_b}"
    );
    assert!(
        tp_model
            .iter()
            .zip(&tp_bilinear)
            .any(|(a, b)| (a - b).abs() > 0.01 * b.max(0.1)),
        "the network changes the field"
    );
    // The job runs the wind network once for both components and keeps v10
    // for its turn: the same field as a job that asks for v10 alone.
    let alone = dir.path().join("v10-alone.nc");
    let o = downscale_sample("45.5,48,5.8,10.6", "model", &["--vars", "v10"], &alone);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&alone, "v10"), read(&model, "v10"));
    // The wind network corrects both components, and keeps the mean wind.
    for var in ["u10", "v10"] {
        let (m, b) = (read(&model, var), read(&bilinear, var));
        assert!(m.iter().all(|v| v.is_finite() && v.abs() < 60.0), "{var}");
        assert!(
            m.iter().zip(&b).any(|(a, b)| (a - b).abs() > 0.1),
            "the network changes {var}"
        );
        let (mean_m, mean_b) = (m.mean().unwrap(), b.mean().unwrap());
        assert!(
            (mean_m - mean_b).abs() < 1.0,
            "{var}: mean {mean_m} vs bilinear {mean_b} m/s"
        );
    }
    let nc = netcdf::open(&model).unwrap();
    let provenance = nc
        .attribute("finecast_weights_sha256")
        .and_then(|a| a.value().ok());
    let Some(netcdf::AttributeValue::Str(hashes)) = provenance else {
        panic!("no weights provenance: {provenance:?}")
    };
    let kinds: Vec<&str> = hashes
        .split(',')
        .map(|h| h.split(':').next().unwrap())
        .collect();
    assert_eq!(kinds, ["temperature", "precipitation", "wind"], "{hashes}");
    // Only the precipitation network ships a (cross-validated) shrinkage,
    // and the output says how much of the domain ran shrunk.
    let shrinkage = nc
        .attribute("finecast_model_shrinkage")
        .and_then(|a| a.value().ok());
    let Some(netcdf::AttributeValue::Str(shrinkage)) = shrinkage else {
        panic!("no shrinkage attribute: {shrinkage:?}")
    };
    assert!(
        shrinkage.starts_with("tp: alpha 0.")
            && shrinkage.contains("% of cells shrunk further")
            && !shrinkage.contains("t2m"),
        "{shrinkage}"
    );
}

/// A variable asked for twice, by name or by standard name, is downscaled
/// and written once instead of failing at the write.
#[test]
fn a_variable_asked_for_twice_is_downscaled_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("twice.nc");
    let o = downscale_sample(
        "46,47,8,9",
        "bilinear",
        &["--vars", "t2m,t2m,air_temperature"],
        &out,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 variable(s)"), "{}", stdout(&o));
    let nc = netcdf::open(&out).unwrap();
    assert!(nc.variable("t2m").is_some());
}

/// SIGINT during a long `downscale` cancels it at the next tile: exit 130,
/// a message, and neither the output nor a temporary file left behind.
#[test]
fn sigint_cancels_a_job_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alps.nc");
    let (input, terrain) = (
        sample("forecast_alps_0p25.nc"),
        sample("terrain_alps_etopo5.nc"),
    );
    // Flex at 400 m: seconds of work, so the signal lands mid-job.
    let child = Command::new(env!("CARGO_BIN_EXE_finecast"))
        .args(["downscale", "--input", &input, "--terrain", &terrain])
        .args(["--region", "45.5,48,5.8,10.6", "--resolution", "400m"])
        .args(["--method", "model", "--out", &s(&out)])
        .env("FINECAST_MODEL_KERNEL", "flex")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
