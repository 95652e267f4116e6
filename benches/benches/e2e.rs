//! End-to-end downscaling jobs of growing size: read NetCDF → terrain →
//! tiles → model → blend → write NetCDF, each size in its own process so its
//! peak RSS is its own.
//!
//! `cargo bench -p finecast-benches --bench e2e`
//!
//! Target: square LAEA grids at 3 km centred on 45N 100W (300², 1000² and
//! 2000² cells by default; `FINECAST_BENCH_SIZES=300,1000`), terrain from
//! the real ETOPO5 relief in `../shared/data` (skipped with a message where it
//! is absent). The coarse input is a SYNTHETIC 0.25° 2 m temperature written
//! by this bench (speed does not depend on the weather). Method: `model`
//! (`FINECAST_BENCH_METHOD` to change). Reports cells per second, the split
//! across phases and peak RSS per size, against the same job on a domain of
//! one tile (256²) and the network alone on one tile, and writes
//! `target/bench/e2e.json` plus the plots `target/bench/e2e-throughput.png`
//! and `target/bench/e2e-memory.png`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use finecast_benches::{json_report, python, workspace_root, write_report};
use finecast_grid::{Crs, Earth, Grid};
use finecast_io::{OutputVar, Provenance};
use finecast_model::{ComputeDevice, Downscaler, ModelInputs};
use finecast_pipeline::{run_downscale, DownscaleRequest, LogControl, Method, Target};
use finecast_tiles::TileSpec;
use ndarray::Array2;
use serde_json::{json, Value};

const CHILD_ENV: &str = "FINECAST_BENCH_E2E_CHILD";
const RESOLUTION_M: f64 = 3000.0;
const TILE: usize = 256;

fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("FINECAST_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/data"));
    dir.join("static/etopo5_orog.nc").is_file().then_some(dir)
}

fn work_dir() -> PathBuf {
    workspace_root().join("target/bench")
}

/// `FINECAST_BENCH_DEVICE=gpu` runs the network on the GPU (a build with
/// `--features gpu`).
fn device() -> ComputeDevice {
    std::env::var("FINECAST_BENCH_DEVICE")
        .ok()
        .map(|d| d.parse().expect("FINECAST_BENCH_DEVICE: cpu or gpu"))
        .unwrap_or_default()
}

fn method_name() -> String {
    std::env::var("FINECAST_BENCH_METHOD").unwrap_or_else(|_| "model".into())
}

/// A synthetic 0.25° 2 m temperature over 5–85N, 175–25W: a meridional
/// gradient with synoptic-scale waves.
fn write_coarse_input(path: &Path) {
    let lats: Vec<f64> = (0..=320).map(|k| 5.0 + 0.25 * k as f64).collect();
    let lons: Vec<f64> = (0..=600).map(|k| -175.0 + 0.25 * k as f64).collect();
    let data = Array2::from_shape_fn((lats.len(), lons.len()), |(j, i)| {
        let (lat, lon) = (lats[j], lons[i]);
        (300.0 - 0.55 * (lat - 5.0)
            + 4.0 * (lon.to_radians() * 5.0).sin() * (lat.to_radians() * 4.0).cos()) as f32
    });
    let grid = Grid::new(
        Crs::LatLon {
            earth: Earth::WGS84,
        },
        lons,
        lats,
    )
    .expect("lat/lon grid");
    let var = OutputVar {
        name: "t2m".into(),
        standard_name: Some("air_temperature".into()),
        long_name: Some("SYNTHETIC 2 m temperature (benchmark input)".into()),
        units: "K".into(),
        grid,
        times: vec![Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()],
        data: vec![data],
    };
    let prov = Provenance {
        inputs: vec![],
        method: "synthetic".into(),
        weights_sha256: None,
        command_line: "cargo bench -p finecast-benches --bench e2e".into(),
        extra: vec![],
    };
    finecast_io::write_netcdf(path, &[var], &prov).expect("writing the benchmark input");
}

/// `n`×`n` cells at 3 km, LAEA centred on 45N 100W.
fn target_grid(n: usize) -> Grid {
    let crs = Crs::LambertAzimuthalEqualArea {
        longitude_of_projection_origin: -100.0,
        latitude_of_projection_origin: 45.0,
        false_easting: 0.0,
        false_northing: 0.0,
        earth: Earth::WGS84,
    };
    let axis: Vec<f64> = (0..n)
        .map(|k| (k as f64 - (n as f64 - 1.0) / 2.0) * RESOLUTION_M)
        .collect();
    Grid::new(crs, axis.clone(), axis).expect("target grid")
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One job, in a child process: prints its report as JSON on stdout.
fn child(n: usize, shared: &Path) {
    // As the finecast binary does.
    finecast_pipeline::tune_allocator_for_tiles();
    let dir = work_dir();
    let out = dir.join(format!("e2e_{n}.nc"));
    let req = DownscaleRequest {
        input: dir.join("e2e_input.nc"),
        terrain: shared.join("static/etopo5_orog.nc"),
        land_mask: None,
        target: Target::Grid(Box::new(target_grid(n))),
        method: Method::parse_on(&method_name(), None, device()).expect("method"),
        vars: vec!["t2m".into()],
        times: vec![],
        out: out.clone(),
        tiles: TileSpec::new(TILE, 16, 16).expect("tile spec"),
        command_line: format!("bench e2e {n}"),
    };
    let report = run_downscale(&req, &LogControl::default()).expect("downscale job");
    let output_mib = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    let line = json!({
        "n": n,
        "cells": n * n,
        "seconds": report.seconds,
        "phases": report.phases,
        "peak_rss_mib": peak_rss_mib(),
        "file_mib": output_mib,
    });
    println!("{line}");
}

/// Cells per second of `Downscaler::predict` alone on one tile: `TILE`² core
/// cells with the halo the network needs, as the tiling engine feeds it.
fn single_tile_rate(model: &Downscaler) -> f64 {
    let side = TILE + 2 * (model.receptive_radius() + 8);
    let zf = Array2::from_shape_fn((side, side), |(j, i)| {
        1200.0 + 700.0 * ((i as f32 * 0.031).sin() * (j as f32 * 0.027).cos())
    });
    let zc = zf.mapv(|z| 0.7 * z + 300.0);
    let t = zc.mapv(|z| 290.0 - 0.0065 * z);
    let inputs = ModelInputs::new(t.view(), zc.view(), zf.view(), RESOLUTION_M);
    model.predict(&inputs).expect("warm-up");
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        std::hint::black_box(model.predict(&inputs).expect("predict"));
        best = best.min(start.elapsed().as_secs_f64());
    }
    (TILE * TILE) as f64 / best
}

fn main() {
    let Some(shared) = shared_data() else {
        println!(
            "e2e bench skipped: ../shared/data/static/etopo5_orog.nc not found (set FINECAST_SHARED_DATA)"
        );
        return;
    };
    if let Some(n) = std::env::var(CHILD_ENV).ok().and_then(|v| v.parse().ok()) {
        child(n, &shared);
        return;
    }
    let sizes: Vec<usize> = std::env::var("FINECAST_BENCH_SIZES")
        .unwrap_or_else(|_| "300,1000,2000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("FINECAST_BENCH_SIZES: comma-separated sizes")
        })
        .collect();
    let dir = work_dir();
    std::fs::create_dir_all(&dir).expect("target/bench");
    write_coarse_input(&dir.join("e2e_input.nc"));

    let method = method_name();
    let tile_rate = (method == "model").then(|| {
        let model = Downscaler::load_on(&Downscaler::default_path(), device())
            .expect("the shipped weights");
        println!("network kernel: {}", model.kernel());
        single_tile_rate(&model)
    });
    let threads = rayon::current_num_threads();
    println!("method {method}, {threads} threads, 3 km LAEA squares, tile {TILE}");
    // The reference for scaling: the same job on a domain of one tile.
    let one_tile = job(TILE);
    let _ = std::fs::remove_file(dir.join(format!("e2e_{TILE}.nc")));
    let one_tile_rate = rate(&one_tile);
    println!(
        "one-tile job ({TILE}x{TILE}): {one_tile_rate:.0} cells/s{}",
        tile_rate
            .map(|r| format!("; network on one tile (predict only): {r:.0} cells/s"))
            .unwrap_or_default()
    );
    println!(
        "{:>6} {:>10} {:>9} {:>12} {:>12} {:>10}  phases (s)",
        "n", "cells", "seconds", "cells/s", "vs one tile", "peak MiB"
    );
    let python = python_peer(&dir);
    let mut runs = Vec::new();
    for &n in &sizes {
        let mut run = job(n);
        let phases: Vec<String> = run["phases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        format!(
                            "{} {:.1}",
                            p[0].as_str().unwrap_or("?"),
                            p[1].as_f64().unwrap_or(0.0)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{n:>6} {:>10} {:>9.1} {:>12.0} {:>12.2} {:>10.0}  {}",
            n * n,
            run["seconds"].as_f64().unwrap(),
            rate(&run),
            rate(&run) / one_tile_rate,
            run["peak_rss_mib"].as_f64().unwrap(),
            phases.join(", ")
        );
        let finecast_out = dir.join(format!("e2e_{n}.nc"));
        if let Some((py, weights)) = &python {
            let peer = python_pipeline(py, weights, &dir, &shared, &finecast_out);
            println!(
                "{:>6} python (xarray + onnxruntime): {:.1} s, {:.0} cells/s; finecast is {:.1}x faster; RMSE vs finecast {:.3} K",
                "",
                peer["seconds"].as_f64().unwrap_or(f64::NAN),
                peer["cells_per_s"].as_f64().unwrap_or(f64::NAN),
                rate(&run) / peer["cells_per_s"].as_f64().unwrap_or(f64::NAN),
                peer["rmse_vs_finecast"].as_f64().unwrap_or(f64::NAN),
            );
            run["python_pipeline"] = peer;
        }
        let _ = std::fs::remove_file(&finecast_out);
        runs.push(run);
    }
    if runs.len() >= 2 {
        // The marginal growth between the two largest jobs: fixed costs
        // (libraries, weights, per-thread buffers) cancel out.
        let (a, b) = (&runs[runs.len() - 2], &runs[runs.len() - 1]);
        let d_rss = b["peak_rss_mib"].as_f64().unwrap() - a["peak_rss_mib"].as_f64().unwrap();
        let d_cells = b["cells"].as_f64().unwrap() - a["cells"].as_f64().unwrap();
        // t2m and orog are written, 4 bytes each per cell.
        let d_output = d_cells * 8.0 / 1048576.0;
        println!(
            "from {} to {} cells peak RSS grows {d_rss:.0} MiB while the output arrays grow {d_output:.0} MiB ({:.2} bytes of RSS per output byte)",
            a["cells"], b["cells"], d_rss / d_output
        );
    }

    let report = json!({
        "date": Utc::now().format("%Y-%m-%d").to_string(),
        "method": method,
        "threads": threads,
        "resolution_m": RESOLUTION_M,
        "tile": TILE,
        "network_single_tile_cells_per_s": tile_rate,
        "one_tile_job": one_tile,
        "runs": runs,
    });
    write_report(&dir.join("e2e.json"), &report);
    plot(&report, &dir);
}

/// Python with xarray and onnxruntime (`$FINECAST_PYTHON` or `.venv`, from
/// scripts/python-env.sh) and the weights exported for it, for the model
/// method; `None` (with a message) otherwise.
fn python_peer(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    if method_name() != "model" {
        return None;
    }
    let Some(py) = python() else {
        println!(
            "python peer skipped: no .venv (run scripts/python-env.sh or set FINECAST_PYTHON)"
        );
        return None;
    };
    let weights = dir.join("model.safetensors");
    Downscaler::load(&Downscaler::default_path())
        .and_then(|m| m.export_safetensors(&weights))
        .expect("exporting the weights");
    Some((py, weights))
}

/// The same job in scripts/python_pipeline.py, on finecast's output grid.
fn python_pipeline(
    py: &Path,
    weights: &Path,
    dir: &Path,
    shared: &Path,
    finecast_out: &Path,
) -> Value {
    let out = dir.join("e2e_python.nc");
    let report = json_report(
        Command::new(py)
            .arg(workspace_root().join("scripts/python_pipeline.py"))
            .arg("--input")
            .arg(dir.join("e2e_input.nc"))
            .arg("--terrain")
            .arg(shared.join("static/etopo5_orog.nc"))
            .arg("--grid-like")
            .arg(finecast_out)
            .arg("--weights")
            .arg(weights)
            .arg("--out")
            .arg(&out)
            .args(["--threads", &rayon::current_num_threads().to_string()]),
        "scripts/python_pipeline.py",
    );
    let _ = std::fs::remove_file(&out);
    report
}

/// Run one job of `n`×`n` cells in a child process and return its report.
fn job(n: usize) -> Value {
    json_report(
        Command::new(std::env::current_exe().expect("own path")).env(CHILD_ENV, n.to_string()),
        &format!("job {n}x{n}"),
    )
}

fn rate(run: &Value) -> f64 {
    run["cells"].as_f64().unwrap_or(f64::NAN) / run["seconds"].as_f64().unwrap_or(f64::NAN)
}

fn plot(report: &Value, dir: &Path) {
    let runs = report["runs"].as_array().cloned().unwrap_or_default();
    let mcells = |r: &Value| r["cells"].as_f64().unwrap() / 1e6;
    let mut throughput = vec![(
        "end-to-end job".to_string(),
        runs.iter()
            .map(|r| {
                (
                    mcells(r),
                    r["cells"].as_f64().unwrap() / r["seconds"].as_f64().unwrap() / 1e3,
                )
            })
            .collect::<Vec<_>>(),
    )];
    let python: Vec<(f64, f64)> = runs
        .iter()
        .filter_map(|r| {
            Some((
                mcells(r),
                r["python_pipeline"]["cells_per_s"].as_f64()? / 1e3,
            ))
        })
        .collect();
    if !python.is_empty() {
        throughput.push(("python: xarray + onnxruntime".into(), python));
    }
    if let Some(t) = report["one_tile_job"]["cells"].as_f64() {
        let t = t / report["one_tile_job"]["seconds"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let xs: Vec<f64> = runs.iter().map(mcells).collect();
        throughput.push((
            "one-tile job".into(),
            xs.iter().map(|&x| (x, t / 1e3)).collect(),
        ));
        throughput.push((
            "80 % of one-tile job".into(),
            xs.iter().map(|&x| (x, 0.8 * t / 1e3)).collect(),
        ));
    }
    finecast_render::render_lines_png(
        &format!(
            "finecast downscale throughput ({}, {} threads)",
            report["method"].as_str().unwrap_or("?"),
            report["threads"]
        ),
        "Target domain (million 3 km cells)",
        "Thousand cells per second",
        &throughput,
        &dir.join("e2e-throughput.png"),
        false,
    )
    .expect("throughput plot");
    let memory = vec![
        (
            "peak RSS".to_string(),
            runs.iter()
                .map(|r| (mcells(r), r["peak_rss_mib"].as_f64().unwrap()))
                .collect::<Vec<_>>(),
        ),
        (
            "output arrays (t2m + orog, float32)".to_string(),
            runs.iter()
                .map(|r| (mcells(r), r["cells"].as_f64().unwrap() * 8.0 / 1048576.0))
                .collect(),
        ),
    ];
    finecast_render::render_lines_png(
        "finecast downscale peak memory",
        "Target domain (million 3 km cells)",
        "MiB",
        &memory,
        &dir.join("e2e-memory.png"),
        false,
    )
    .expect("memory plot");
    println!(
        "plots: {}, {}",
        dir.join("e2e-throughput.png").display(),
        dir.join("e2e-memory.png").display()
    );
}
