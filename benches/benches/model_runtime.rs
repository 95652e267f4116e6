//! The network on flex (Burn, f32), on every kernel of finecast's CPU engine
//! this machine has (amx-bf16, avx512-bf16, avx512-f32, avx2-f32, neon-f32)
//! and on onnxruntime (f32): same weights, same tiles, one run. The report
//! names the CPU, its flags and the kernel a job would pick.
//!
//! `cargo bench -p finecast-benches --bench model_runtime`
//!
//! Exports the shipped weights as safetensors, writes the normalised feature
//! tiles and flex's outputs, then runs `scripts/onnx_model.py bench` (the
//! network rebuilt as ONNX) on them: onnxruntime must reproduce flex's output
//! before its speed counts. Both runtimes are timed three ways: one tile at a
//! time using every core, tiles side by side (one per thread), and all tiles
//! as one batch. Python comes from `$FINECAST_PYTHON` or `.venv` (made by
//! `scripts/python-env.sh`); without it only flex is timed.
//! Each runtime also runs the network over a CONUS-sized 1060×1800 domain
//! (in 256-row strips plus halo). Environment: `FINECAST_BENCH_TILES` (default 8),
//! `FINECAST_BENCH_TILE` (core cells, default 256; the halo the network needs
//! is added), `FINECAST_BENCH_DEVICE=gpu` to add the Vulkan GPU (a build with
//! `--features gpu`, see scripts/gpu-bench.sh).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use finecast_benches::{cpu_info, env_usize, json_report, python, workspace_root, write_report};
use finecast_model::{ComputeDevice, Downscaler, Kernel, ModelInputs, N_FEATURES};
use ndarray::{Array2, Array3, Array4, Axis};
use rayon::prelude::*;
use serde_json::json;

/// Smooth synthetic inputs with mountain-scale relief, different per tile.
fn tile_inputs(n: usize, seed: usize) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
    let phase = seed as f32 * 0.7;
    let zf = Array2::from_shape_fn((n, n), |(j, i)| {
        let (x, y) = (i as f32, j as f32);
        (1200.0
            + 700.0 * ((x * 0.031 + phase).sin() * (y * 0.027 - phase).cos())
            + 250.0 * (x * 0.17 + y * 0.11).cos()
            + 60.0 * (x * 0.61 - y * 0.43 + phase).sin())
        .max(0.0)
    });
    let zc = Array2::from_shape_fn((n, n), |(j, i)| {
        (1200.0 + 500.0 * ((i as f32 * 0.031 + phase).sin() * (j as f32 * 0.027 - phase).cos()))
            .max(0.0)
    });
    let t = Array2::from_shape_fn((n, n), |(j, i)| {
        290.0 - 0.0065 * zc[[j, i]] - 0.004 * j as f32 + 0.5 * (i as f32 * 0.01).sin()
    });
    (t, zc, zf)
}

/// Pixels per second of the fastest of `reps` calls, after a warm-up.
fn best_rate(pixels: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    pixels as f64 / best
}

fn write_tiles(path: &Path, feats: &Array4<f32>, expected: &Array4<f32>) {
    let bytes = |a: &Array4<f32>| -> Vec<u8> { a.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let (fb, eb) = (bytes(feats), bytes(expected));
    let view = |a: &Array4<f32>, data| {
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, a.shape().to_vec(), data)
            .expect("f32 tensor")
    };
    let views = [
        ("features", view(feats, &fb)),
        ("expected", view(expected, &eb)),
    ];
    safetensors::serialize_to_file(views, None, path).expect("writing the tiles");
}

fn main() {
    let model = Downscaler::load(&Downscaler::default_path()).expect("the shipped weights");
    let n_tiles = env_usize("FINECAST_BENCH_TILES", 8);
    let core = env_usize("FINECAST_BENCH_TILE", 256);
    let side = core + 2 * (model.receptive_radius() + 8);
    let threads = rayon::current_num_threads();
    let cpu = cpu_info();
    println!("CPU: {cpu}");
    println!("{n_tiles} tiles of {side}x{side} cells ({core} core + halo), {threads} threads");

    let feats: Vec<Array3<f32>> = (0..n_tiles)
        .map(|k| {
            let (t, zc, zf) = tile_inputs(side, k);
            let inputs = ModelInputs::new(t.view(), zc.view(), zf.view(), 3000.0);
            model.features(&inputs).expect("features").0
        })
        .collect();
    let views: Vec<_> = feats.iter().map(|f| f.view()).collect();
    let batch = ndarray::stack(Axis(0), &views).expect("equal tiles");

    let flex_out = model
        .on_flex()
        .forward_batch(batch.clone())
        .expect("flex forward");
    let runtimes = runtimes(&model);
    let finecast = tile_rates(&runtimes, &feats, &batch);
    let conus_rates = conus_rates(&model, &runtimes);
    let mut diffs = serde_json::Map::new();
    for (name, m) in runtimes.iter().skip(1) {
        let out = m.forward_batch(batch.clone()).expect("forward");
        let diff = out
            .iter()
            .zip(&flex_out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("max |{name} - flex-f32| on the tiles: {diff:.2e} (normalised residual units)");
        diffs.insert(name.to_string(), json!(diff));
    }

    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let mut report = json!({
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "cpu": cpu,
        "default_kernel": model.kernel().to_string(),
        "max_abs_diff_vs_flex": diffs,
        "threads": threads,
        "tiles": n_tiles,
        "tile_shape": [side, side],
        "macs_per_pixel": model.sidecar().model.macs_per_pixel(),
        "finecast_px_per_s": finecast,
        "conus_1060x1800_strips_px_per_s": conus_rates,
    });
    match python() {
        None => println!(
            "onnxruntime: skipped (no .venv/bin/python; run scripts/python-env.sh or set FINECAST_PYTHON)"
        ),
        Some(py) => {
            report["onnxruntime"] = onnxruntime(&py, &model, &dir, &batch, &flex_out, threads)
        }
    }
    print_table(&report, &runtimes);
    write_report(&dir.join("model-runtime.json"), &report);
}

/// The kernels this machine runs: flex first (the reference), then every
/// engine kernel the CPU has, then Vulkan with `FINECAST_BENCH_DEVICE=gpu`
/// where a GPU answers.
fn runtimes(model: &Downscaler) -> Vec<(&'static str, Downscaler)> {
    let mut runtimes = vec![("flex-f32", model.on_flex())];
    for kernel in Kernel::ALL {
        if kernel == Kernel::Flex || kernel == Kernel::Vulkan {
            continue;
        }
        match model.with_kernel(kernel) {
            Ok(m) => runtimes.push((kernel.name(), m)),
            Err(why) => println!("{kernel}: not timed ({why})"),
        }
    }
    if std::env::var("FINECAST_BENCH_DEVICE").is_ok_and(|d| d == "gpu") {
        let gpu = Downscaler::load_on(&Downscaler::default_path(), ComputeDevice::Gpu)
            .expect("the shipped weights");
        if gpu.kernel() == Kernel::Vulkan {
            runtimes.push(("vulkan-f32", gpu));
        } else {
            println!("vulkan-f32: no GPU (see the warning above)");
        }
    }
    runtimes
}

/// Pixels per second of every kernel on the tiles: one at a time, side by
/// side on rayon threads, and as one batch.
fn tile_rates(
    runtimes: &[(&'static str, Downscaler)],
    feats: &[Array3<f32>],
    batch: &ndarray::Array4<f32>,
) -> serde_json::Map<String, serde_json::Value> {
    let reps = 3;
    let pixels = feats.len() * feats[0].dim().1 * feats[0].dim().2;
    let mut finecast = serde_json::Map::new();
    for (name, m) in runtimes {
        let rates = json!({
            "one_tile_at_a_time": best_rate(pixels, reps, || {
                for f in feats {
                    std::hint::black_box(m.forward(f.clone()).expect("forward"));
                }
            }),
            "tiles_side_by_side": best_rate(pixels, reps, || {
                feats.par_iter().for_each(|f| {
                    std::hint::black_box(m.forward(f.clone()).expect("forward"));
                });
            }),
            "batched": best_rate(pixels, reps, || {
                std::hint::black_box(m.forward_batch(batch.clone()).expect("forward"));
            }),
        });
        finecast.insert(name.to_string(), rates);
    }
    finecast
}

/// The network over one CONUS-sized 3 km domain, in strips of 256 rows
/// with the halo the network needs (one pass would need 244 MB buffers,
/// over what GPU backends bind at once); scripts/torch_model.py times the
/// same shape in one pass on the GPU machine.
fn conus_rates(
    model: &Downscaler,
    runtimes: &[(&'static str, Downscaler)],
) -> serde_json::Map<String, serde_json::Value> {
    let (cy, cx) = (1060, 1800);
    let conus = Array3::from_shape_fn((N_FEATURES, cy, cx), |(c, j, i)| {
        ((c as f32 + 1.0) * 0.37 + j as f32 * 0.011).sin() * (i as f32 * 0.007 - c as f32).cos()
    });
    let halo = model.receptive_radius() + 8;
    let mut conus_rates = serde_json::Map::new();
    for (name, m) in runtimes {
        let r = best_rate(cy * cx, 2, || {
            for j0 in (0..cy).step_by(256) {
                let (w0, w1) = (j0.saturating_sub(halo), (j0 + 256 + halo).min(cy));
                let strip = conus.slice(ndarray::s![.., w0..w1, ..]).to_owned();
                std::hint::black_box(m.forward(strip).expect("forward"));
            }
        });
        println!(
            "{name:<12} {cy}x{cx} in 256-row strips: {:.1} ms, {r:.0} px/s",
            1e3 * (cy * cx) as f64 / r
        );
        conus_rates.insert(name.to_string(), json!(r));
    }
    conus_rates
}

/// onnxruntime on the same weights and tiles (scripts/onnx_model.py), after
/// checking it computes the same network.
fn onnxruntime(
    py: &Path,
    model: &Downscaler,
    dir: &Path,
    batch: &ndarray::Array4<f32>,
    flex_out: &ndarray::Array4<f32>,
    threads: usize,
) -> serde_json::Value {
    let weights = dir.join("model.safetensors");
    let tiles = dir.join("tiles.safetensors");
    model.export_safetensors(&weights).expect("export");
    write_tiles(&tiles, batch, flex_out);
    let ort = json_report(
        Command::new(py)
            .arg(workspace_root().join("scripts/onnx_model.py"))
            .args(["bench", "--weights"])
            .arg(&weights)
            .arg("--tiles")
            .arg(&tiles)
            .args(["--threads", &threads.to_string()]),
        "scripts/onnx_model.py",
    );
    let diff = ort["max_abs_diff_vs_flex"].as_f64().unwrap_or(f64::NAN);
    // Residuals are O(1) in normalised units: disagreement beyond float
    // rounding means the ONNX graph is not the same network.
    assert!(
        diff < 1e-3,
        "onnxruntime and flex disagree by {diff} on the same tiles"
    );
    ort
}

/// Every kernel's rates per mode, in px/s, GFLOP/s and as a ratio to
/// onnxruntime measured in the same run.
fn print_table(report: &serde_json::Value, runtimes: &[(&'static str, Downscaler)]) {
    let gflops = |px: f64| 2.0 * px * report["macs_per_pixel"].as_f64().unwrap_or(0.0) / 1e9;
    let ort = |mode: &str| {
        report["onnxruntime"]["px_per_s"][mode]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{:<12} {:<20} {:>12} {:>9} {:>15}",
        "runtime", "mode", "px/s", "GFLOP/s", "vs onnxruntime"
    );
    for mode in ["one_tile_at_a_time", "tiles_side_by_side", "batched"] {
        for (name, _) in runtimes {
            let r = report["finecast_px_per_s"][*name][mode]
                .as_f64()
                .unwrap_or(f64::NAN);
            println!(
                "{name:<12} {mode:<20} {r:>12.0} {:>9.1} {:>15.2}",
                gflops(r),
                r / ort(mode)
            );
        }
        let o = ort(mode);
        println!(
            "{:<12} {mode:<20} {o:>12.0} {:>9.1} {:>15.2}",
            "onnxrt",
            gflops(o),
            1.0
        );
    }
    if let Some(d) = report["onnxruntime"]["max_abs_diff_vs_flex"].as_f64() {
        println!("max |flex - onnxruntime| on the tiles: {d:.2e} (normalised residual units)");
    }
}
