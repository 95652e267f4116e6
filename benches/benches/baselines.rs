//! Throughput of the baseline methods through the tiling engine, on the bundled
//! Alps sample downscaled to a ~1000x1000 grid (500 m), reported as cells per
//! second and as ratios against bilinear on one untiled window in the same run.
//!
//! cargo bench -p finecast-benches --bench baselines

use std::path::PathBuf;

use finecast_benches::median_time;
use finecast_grid::{Grid, Region};
use finecast_io::{Selection, TimeSel};
use finecast_methods::{Baseline, CoarseInput, GradientParams};
use finecast_pipeline::{LogControl, Terrain};
use finecast_tiles::TileSpec;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let region: Region = "45.2,49.2,5,11.5".parse().expect("valid region");
    let target = Grid::equal_area_for_region(&region, 500.0).expect("target grid");
    let cells = (target.nx() * target.ny()) as f64;
    let ds = finecast_io::open(&root.join("data/sample/forecast_alps_0p25.nc")).expect("sample");
    let coarse = ds
        .read(
            "t2m",
            &Selection {
                time: TimeSel::First,
                bbox: None,
            },
        )
        .expect("t2m")
        .field;
    let terrain = Terrain::load(
        &root.join("data/sample/terrain_alps_etopo5.nc"),
        &target,
        2.5,
    )
    .expect("terrain");
    let z_c = terrain.coarse(&coarse.grid);
    let input = CoarseInput::new(&coarse, Some(&z_c), &GradientParams::default()).expect("input");
    let ctl = LogControl::default();
    println!(
        "target {}x{} = {:.2} Mcells at 500 m; {} threads",
        target.ny(),
        target.nx(),
        cells / 1e6,
        rayon::current_num_threads()
    );

    let run = |method: Baseline, spec: TileSpec, threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        median_time(3, || {
            pool.install(|| {
                finecast_pipeline::downscale_tiled(
                    &method.into(),
                    &input,
                    None,
                    &target,
                    Some(&terrain.fine),
                    &spec,
                    &ctl,
                )
                .expect("downscale");
            })
        })
    };
    let whole = TileSpec::new(100_000, 0, 0).expect("spec");
    let tiled = TileSpec::new(256, 16, 16).expect("spec");
    let reference = run(Baseline::Bilinear, whole, 1);
    println!(
        "{:<10} {:>7} {:>8} {:>12} {:>9}",
        "method", "tiles", "threads", "Mcells/s", "vs ref"
    );
    for method in Baseline::ALL {
        for (label, spec) in [("whole", whole), ("256+16", tiled)] {
            for threads in [1, 2] {
                let t = run(method, spec, threads);
                println!(
                    "{:<10} {:>7} {:>8} {:>12.2} {:>9.2}",
                    method.name(),
                    label,
                    threads,
                    cells / t.as_secs_f64() / 1e6,
                    reference.as_secs_f64() / t.as_secs_f64()
                );
            }
        }
    }
}
