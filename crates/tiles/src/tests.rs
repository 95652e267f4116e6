use approx::assert_relative_eq;
use ndarray::{s, Array2};

use super::*;

/// A (2r+1)² box mean with the window clipped at array edges: its footprint is `r`.
fn box_mean(a: &Array2<f32>, r: usize) -> Array2<f32> {
    let (ny, nx) = a.dim();
    Array2::from_shape_fn((ny, nx), |(j, i)| {
        let v = a.slice(s![
            j.saturating_sub(r)..(j + r + 1).min(ny),
            i.saturating_sub(r)..(i + r + 1).min(nx)
        ]);
        v.sum() / v.len() as f32
    })
}

fn field(ny: usize, nx: usize) -> Array2<f32> {
    Array2::from_shape_fn((ny, nx), |(j, i)| {
        280.0
            + 10.0 * ((j as f32) * 0.13).sin() * ((i as f32) * 0.07).cos()
            + (j * 31 + i * 17) as f32 % 7.0
    })
}

fn tiled_box(input: &Array2<f32>, spec: &TileSpec, r: usize) -> Array2<f32> {
    run_tiled::<_, TileError>(input.dim(), spec, |w| {
        Ok(box_mean(
            &input.slice(s![w.j0..w.j1, w.i0..w.i1]).to_owned(),
            r,
        ))
    })
    .unwrap()
}

#[test]
fn tiled_equals_untiled_for_any_tile_size_and_thread_count() {
    let input = field(157, 203);
    let r = 3;
    let reference = box_mean(&input, r);
    for tile in [8, 17, 32, 64, 500] {
        let spec = TileSpec::for_footprint(tile, r, 8.min(tile)).unwrap();
        assert!(spec.context() >= r);
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let out = pool.install(|| tiled_box(&input, &spec, r));
            for (a, b) in out.iter().zip(reference.iter()) {
                assert_relative_eq!(*a, *b, max_relative = 1e-5);
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count_bit_for_bit() {
    let input = field(90, 120);
    let spec = TileSpec::new(25, 10, 12).unwrap();
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| tiled_box(&input, &spec, 2))
    };
    assert_eq!(run(1), run(4));
}

#[test]
fn too_small_a_halo_breaks_exactness_so_the_test_can_fail() {
    let input = field(80, 80);
    let reference = box_mean(&input, 6);
    let spec = TileSpec::new(16, 4, 4).unwrap();
    let out = tiled_box(&input, &spec, 6);
    let worst = out
        .iter()
        .zip(reference.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst > 1e-3, "expected a visible difference, got {worst}");
}

#[test]
fn weights_form_a_partition_of_unity() {
    let spec = TileSpec::new(10, 6, 10).unwrap();
    let out = run_tiled::<_, TileError>((37, 53), &spec, |w| Ok(Array2::ones(w.shape()))).unwrap();
    for v in out.iter() {
        assert_relative_eq!(*v, 1.0, max_relative = 1e-6);
    }
}

#[test]
fn disagreeing_tiles_are_cross_faded_without_seams() {
    // Each tile returns its own constant; the blend must ramp between them.
    let spec = TileSpec::new(20, 8, 16).unwrap();
    let out = run_tiled::<_, TileError>((20, 60), &spec, |w| {
        Ok(Array2::from_elem(
            w.shape(),
            (w.core_i.0 / 20) as f32 * 10.0,
        ))
    })
    .unwrap();
    let row = out.row(10);
    let max_step = row
        .windows(2)
        .into_iter()
        .map(|p| (p[1] - p[0]).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_step < 2.5,
        "largest jump {max_step} between neighbouring cells"
    );
    assert_relative_eq!(row[0], 0.0);
    assert_relative_eq!(row[59], 20.0);
}

#[test]
fn missing_values_stay_missing() {
    let spec = TileSpec::new(10, 4, 4).unwrap();
    let out = run_tiled::<_, TileError>((20, 20), &spec, |w| {
        let mut a = Array2::ones(w.shape());
        if w.j0 == 0 && w.i0 == 0 {
            a[[0, 0]] = f32::NAN;
        }
        Ok(a)
    })
    .unwrap();
    assert!(out[[0, 0]].is_nan());
    assert_relative_eq!(out[[15, 15]], 1.0);
}

#[test]
fn invalid_specs_and_shapes_are_errors() {
    assert!(TileSpec::new(0, 4, 4).is_err());
    assert!(TileSpec::new(16, 2, 8).is_err());
    assert!(TileSpec::new(4, 8, 8).is_err());
    let spec = TileSpec::new(10, 2, 2).unwrap();
    let err =
        run_tiled::<_, TileError>((20, 20), &spec, |_| Ok(Array2::zeros((3, 3)))).unwrap_err();
    assert!(matches!(err, TileError::Shape { .. }));
}

#[test]
fn plan_cores_partition_the_domain() {
    let spec = TileSpec::new(16, 5, 6).unwrap();
    let mut count = Array2::<u32>::zeros((50, 41));
    for w in plan((50, 41), &spec) {
        count
            .slice_mut(s![w.core_j.0..w.core_j.1, w.core_i.0..w.core_i.1])
            .mapv_inplace(|c| c + 1);
        assert!(w.j0 <= w.core_j.0 && w.j1 >= w.core_j.1);
    }
    assert!(count.iter().all(|&c| c == 1));
}

/// Fields computed together blend exactly as each would alone, and a tile
/// with the wrong number of fields is an error.
#[test]
fn fields_computed_together_blend_like_single_fields() {
    let spec = TileSpec::new(16, 6, 8).unwrap();
    // Tile-dependent values, so the blend matters.
    let value = |w: &Window, k: f32| {
        Array2::from_shape_fn(w.shape(), |(j, i)| {
            k * (w.j0 + j) as f32 + (w.i0 + i) as f32 * 0.5 + (w.core_j.0 + w.core_i.0) as f32
        })
    };
    let together = run_tiled_fields::<_, TileError>((45, 50), 2, &spec, |w| {
        Ok(ndarray::stack(
            ndarray::Axis(0),
            &[value(w, 1.0).view(), value(w, -2.0).view()],
        )
        .unwrap())
    })
    .unwrap();
    for (c, k) in [1.0, -2.0].into_iter().enumerate() {
        let alone = run_tiled::<_, TileError>((45, 50), &spec, |w| Ok(value(w, k))).unwrap();
        assert_eq!(together.index_axis(ndarray::Axis(0), c), alone);
    }
    let err = run_tiled_fields::<_, TileError>((20, 20), 2, &spec, |w| {
        Ok(Array2::zeros(w.shape()).insert_axis(ndarray::Axis(0)))
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            TileError::Fields {
                got: 1,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
}

/// A stored spec is checked like a new one: a blend wider than twice the
/// halo (which would make `context` underflow) is refused when read.
#[test]
fn deserialised_specs_are_validated() {
    let ok: TileSpec = serde_json::from_str(r#"{"tile":64,"halo":8,"blend":16}"#).unwrap();
    assert_eq!(ok, TileSpec::new(64, 8, 16).unwrap());
    assert_eq!(ok.context(), 0);
    let err = serde_json::from_str::<TileSpec>(r#"{"tile":64,"halo":2,"blend":16}"#).unwrap_err();
    assert!(err.to_string().contains("twice the halo"), "{err}");
    assert!(serde_json::from_str::<TileSpec>(r#"{"tile":0,"halo":2,"blend":0}"#).is_err());
}
