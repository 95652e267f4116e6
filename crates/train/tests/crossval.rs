//! Leave-one-source-out cross-validation runs end to end on a tiny recipe:
//! each fold trains without its source and scores it, every time pooled.

use finecast_train::crossval::{markdown_table, run_crossval, CrossvalConfig};
use finecast_train::train::NoProgress;

#[path = "../../io/tests/common/shared_data.rs"]
mod shared_data;
use shared_data::shared_data;

#[test]
fn each_fold_trains_without_its_source_and_scores_it() {
    let Some(root) = shared_data() else { return };
    if !root.join("fine/haduk_cornwall_1km_2018-05.nc").exists() {
        eprintln!("skipping: the HadUK-Grid Cornwall file is not in this copy of the shared data");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
output = "unused"
checkpoint_dir = "unused"
data_root = "{root}"
patch = 24
batch = 2
steps = 3
steps_per_epoch = 3
checkpoint_every = 3
seed = 1

[model]
width = 8
dilations = [1, 2]

[[train]]
name = "wrf-bc-t2m"
source = "wrf"
truth = "fine/wrf_bc_1980-01-12T17.nc"
var = "t2m"
terrain = "static/etopo5_orog.nc"

[[train]]
name = "haduk-tmax"
source = "haduk"
truth = "fine/haduk_cornwall_1km_2018-05.nc"
var = "tmax"
times = [0, 1]
terrain = "static/etopo5_orog.nc"

[crossval]
output_dir = "{out}"

[[crossval.case]]
source = "haduk"
name = "HadUK tmax"
truth = "fine/haduk_cornwall_1km_2018-05.nc"
var = "tmax"
terrain = "static/etopo5_orog.nc"

[[crossval.case]]
source = "wrf"
name = "WRF Columbia t2m"
truth = "fine/wrf_columbia_1980-01-12T17.nc"
var = "t2m"
terrain = "static/etopo5_orog.nc"
"#,
        root = root.display(),
        out = dir.path().display()
    );
    let path = dir.path().join("cv.toml");
    std::fs::write(&path, toml).unwrap();
    let cfg = CrossvalConfig::from_toml_file(&path).unwrap();
    assert_eq!(cfg.sources(), vec!["haduk", "wrf"]);
    let folds = run_crossval(&cfg, &[], &NoProgress).unwrap();
    assert_eq!(folds.len(), 2);
    let haduk = &folds[0];
    assert_eq!(haduk.left_out, "haduk");
    assert_eq!(haduk.trained_on, vec!["wrf-bc-t2m"]);
    assert!(haduk.weights.starts_with(dir.path().join("without-haduk")));
    let (case, report) = &haduk.cases[0];
    assert_eq!(case.name, "HadUK tmax");
    assert_eq!(report.n_times, 31);
    for m in ["bilinear", "bicubic", "lapse", "gradient", "model"] {
        assert!(report.methods[m].rmse.is_finite(), "{m}");
    }
    assert_eq!(folds[1].trained_on, vec!["haduk-tmax"]);
    let table = markdown_table(&folds);
    assert!(table.contains("| haduk | HadUK tmax | 31 |"), "{table}");
    assert!(table.contains("| wrf | WRF Columbia t2m | 1 |"), "{table}");
    // A fold with nothing left to train on is an error, not an empty run.
    let mut lonely = cfg.clone();
    lonely.base.train.retain(|s| s.source() == "haduk");
    let err = run_crossval(&lonely, &["haduk".to_string()], &NoProgress).unwrap_err();
    assert!(err.to_string().contains("nothing to train on"), "{err}");
}
