//! Inference speed of `Downscaler::predict` on the flex CPU backend.
//!
//! `cargo run --profile test -p finecast-model --example bench [--features x86-v4] -- [WEIGHTS]`
//! Without WEIGHTS (or if the file is missing) an untrained model of the
//! shipped architecture is timed (speed does not depend on the weights).

use std::time::Instant;

use finecast_model::evaluate::predict_tiled;
use finecast_model::{Downscaler, ModelInputs, ResidualNetConfig, N_FEATURES};
use ndarray::Array2;

fn inputs(n: usize) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
    let zf = Array2::from_shape_fn((n, n), |(j, i)| {
        1500.0
            + 600.0 * ((i as f32 * 0.13).sin() * (j as f32 * 0.11).cos())
            + 200.0 * (i as f32 * 0.4).cos()
    });
    let zc = Array2::from_shape_fn((n, n), |(j, i)| {
        1500.0 + 300.0 * ((i as f32 * 0.02).sin() * (j as f32 * 0.02).cos())
    });
    let t = Array2::from_shape_fn((n, n), |(j, i)| {
        285.0 - 0.0065 * zc[[j, i]] + 0.01 * i as f32
    });
    (t, zc, zf)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(Downscaler::default_path);
    let model = if path.is_file() {
        Downscaler::load(&path)?
    } else {
        eprintln!(
            "{} not found: timing an untrained model of the default architecture",
            path.display()
        );
        Downscaler::untrained(&ResidualNetConfig::new(N_FEATURES), 1)?
    };
    let features: Vec<&str> = [
        ("simd", cfg!(feature = "simd")),
        ("rayon", cfg!(feature = "rayon")),
        ("x86-v4", cfg!(feature = "x86-v4")),
    ]
    .iter()
    .filter(|f| f.1)
    .map(|f| f.0)
    .collect();
    println!(
        "features: {features:?}; rayon threads: {}",
        rayon::current_num_threads()
    );
    let (t, zc, zf) = inputs(256);
    let run = || {
        model.predict(&ModelInputs {
            coarse_bilinear: t.view(),
            coarse_orog_bilinear: zc.view(),
            fine_orog: zf.view(),
            dx_m: 4000.0,
        })
    };
    run()?; // warm-up
    let reps = 5;
    let start = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(run()?);
    }
    let per = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "predict 256x256 tile: {:.3} s/tile, {:.0} px/s",
        per,
        65536.0 / per
    );

    let start = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(finecast_model::features::raw_features(
            t.view(),
            zc.view(),
            zf.view(),
            4000.0,
        ));
    }
    println!(
        "  of which features: {:.3} s/tile",
        start.elapsed().as_secs_f64() / reps as f64
    );

    let (t, zc, zf) = inputs(1024);
    let start = Instant::now();
    let out = predict_tiled(&model, &t, &zc, &zf, 4000.0, 256, 16)?;
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(out);
    println!(
        "run_tiled 1024x1024 (tile 256, halo {}, blend 16): {:.2} s, {:.0} px/s",
        model.receptive_radius() + 8,
        secs,
        (1024.0 * 1024.0) / secs
    );
    Ok(())
}
