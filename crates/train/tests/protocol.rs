//! One protocol: the model card (`finecast_train::skill`) and `finecast
//! evaluate` (`finecast_pipeline::run_evaluate`) score the same case to the
//! same numbers, and training pairs hold the same coarse fields as the
//! evaluation.

use std::path::PathBuf;

use finecast_grid::Region;
use finecast_model::{Downscaler, ModelKind};
use finecast_pipeline::{run_evaluate, EvaluateRequest, Method};
use finecast_train::skill::{evaluate_case, EvalCase};

#[path = "../../io/tests/common/shared_data.rs"]
mod shared_data;
use shared_data::shared_data;

/// Scores `case` both ways with `methods` and asserts they agree.
fn agree(root: &std::path::Path, kind: ModelKind, case: EvalCase, methods: &[&str]) {
    let model = Downscaler::load(&Downscaler::default_path_for(kind)).expect("shipped weights");
    let card = evaluate_case(&case, &model, root).expect("model card case");
    let parsed = methods
        .iter()
        .map(|m| Method::parse(m, None).expect("method"))
        .collect();
    let req = EvaluateRequest {
        terrain: Some(root.join(&case.terrain)),
        region: case
            .region
            .map(|[s, n, w, e]| Region::new(s, n, w, e).expect("region")),
        ..EvaluateRequest::new(root.join(&case.truth), &case.var, parsed)
    };
    let cli = run_evaluate(&req).expect("finecast evaluate");
    assert_eq!(card.n_scored, cli.n_scored, "{}", case.name);
    for m in methods {
        let (a, b) = (&card.methods[*m], &cli.methods[*m]);
        eprintln!(
            "{} {m}: card {:.6} evaluate {:.6}",
            case.name, a.rmse, b.rmse
        );
        for (what, x, y) in [
            ("RMSE", a.rmse, b.rmse),
            ("bias", a.bias, b.bias),
            ("MAE", a.mae, b.mae),
        ] {
            assert!(
                (x - y).abs() <= 1e-9 * (1.0 + x.abs()),
                "{}: {m} {what}: model card {x}, finecast evaluate {y}",
                case.name
            );
        }
        // Spectra agree to rounding (the FFT's sums run in parallel).
        for ((band, x), (other, y)) in a.spectral_ratio.0.iter().zip(&b.spectral_ratio.0) {
            assert_eq!(band, other);
            let close = match (x, y) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9,
                (x, y) => x == y,
            };
            assert!(
                close,
                "{}: {m} spectral ratio {band}: {x:?} vs {y:?}",
                case.name
            );
        }
    }
}

#[test]
fn model_card_and_finecast_evaluate_agree() {
    let Some(root) = shared_data() else { return };
    let case = |name: &str, var: &str, region: [f64; 4]| EvalCase {
        name: name.into(),
        truth: PathBuf::from("fine/prism_conus_20251103.nc"),
        var: var.into(),
        time_index: None,
        region: Some(region),
        terrain: PathBuf::from("static/etopo5_orog.nc"),
        status: "test".into(),
    };
    agree(
        &root,
        ModelKind::Temperature,
        case(
            "PRISM 2025-11-03 tmax, Colorado",
            "tmax",
            [37.0, 41.0, -109.0, -102.5],
        ),
        &["bilinear", "bicubic", "lapse", "gradient", "model"],
    );
    agree(
        &root,
        ModelKind::Precipitation,
        case(
            "PRISM 2025-11-03 ppt, Pacific Northwest",
            "ppt",
            [40.0, 49.9, -125.0, -116.0],
        ),
        &["bilinear", "bicubic", "model"],
    );
}
