//! Cold XYZ tile renders, phase by phase: pixel → grid cell indices,
//! colour mapping, PNG encoding. These set the server's latency for a tile
//! that is not in its cache.
//!
//! `cargo bench -p finecast-benches --bench tiles`
//!
//! Field: the bundled Alps sample downscaled to 3 km (lapse), rendered at
//! zooms 8 (native) to 11 (overzoom) over the domain.

use finecast_benches::{median_time, workspace_root};
use finecast_grid::Region;
use finecast_pipeline::{run_downscale, DownscaleRequest, LogControl, Method, Target};
use finecast_render::Palette;
use finecast_server::raster::{
    cell_indices, encode_png_rgba, render_rgba, MercatorView, Sampling, Style, View,
};
use finecast_tiles::TileSpec;

fn main() {
    let sample = workspace_root().join("data/sample");
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let out = dir.join("tiles_alps.nc");
    let region: Region = "45.5,48,5.8,10.6".parse().expect("region");
    run_downscale(
        &DownscaleRequest {
            input: sample.join("forecast_alps_0p25.nc"),
            terrain: sample.join("terrain_alps_etopo5.nc"),
            land_mask: None,
            target: Target::Region {
                region,
                resolution_m: 3000.0,
            },
            method: Method::parse("lapse", None).expect("lapse"),
            vars: vec!["t2m".into()],
            times: vec![],
            out: out.clone(),
            tiles: TileSpec::new(256, 16, 16).expect("tiles"),
            command_line: "bench tiles".into(),
        },
        &LogControl::default(),
    )
    .expect("downscaling the sample");
    let field = finecast_io::open(&out)
        .and_then(|ds| ds.read("t2m", &finecast_io::Selection::default()))
        .expect("reading the sample output")
        .field;
    let style = Style::new(
        Palette::by_name("temperature").expect("palette"),
        (250.0, 290.0),
    );

    // Tiles over the domain centre (8.2E 46.75N) at each zoom.
    println!(
        "{:>4} {:>12} {:>12} {:>12} {:>12} {:>9}",
        "zoom", "indices ms", "render ms", "png ms", "total ms", "png KiB"
    );
    for z in 8..=11u32 {
        let n = f64::from(1u32 << z);
        let x = ((8.2 + 180.0) / 360.0 * n) as u32;
        let lat = 46.75f64.to_radians();
        let y = ((1.0 - lat.tan().asinh() / std::f64::consts::PI) / 2.0 * n) as u32;
        let view = MercatorView::tile(z, x, y);
        let (w, h) = view.size();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let indices = median_time(20, || {
            std::hint::black_box(cell_indices(&field.grid, &view, w as usize, h as usize));
        });
        let colour = || {
            render_rgba(
                &field.grid,
                &field.data,
                &view,
                &style,
                Sampling::Bilinear,
                [0; 4],
            )
        };
        let render = median_time(20, || {
            std::hint::black_box(colour());
        });
        let rgba = colour();
        let png = median_time(20, || {
            std::hint::black_box(encode_png_rgba(&rgba, w, h).expect("png"));
        });
        let size = encode_png_rgba(&rgba, w, h).expect("png").len();
        let total = median_time(20, || {
            std::hint::black_box(encode_png_rgba(&colour(), w, h).expect("png"));
        });
        println!(
            "{z:>4} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>9.1}",
            ms(indices),
            ms(render),
            ms(png),
            ms(total),
            size as f64 / 1024.0
        );
    }
}
