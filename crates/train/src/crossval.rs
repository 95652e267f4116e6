//! Leave-one-source-out cross-validation: for every data source with cases
//! to score, train a network on every *other* source and score it on that
//! source with `finecast evaluate`'s protocol (every time pooled), next to
//! the physical baselines. Held-out slices of a source the network trained
//! on do not tell what happens on a new source; this does, so model
//! decisions (features, recipe, shrinkage) are made on these numbers.

use std::path::{Path, PathBuf};

use finecast_model::{ModelError, ModelKind};
use finecast_pipeline::{run_evaluate, EvaluateReport, EvaluateRequest, Method};
use serde::{Deserialize, Serialize};

use crate::data::shared_data_dir;
use crate::train::{train, Progress, TrainConfig};

/// A training configuration (its `train` sets name their `source`) and the
/// cases to score each left-out source on.
#[derive(Debug, Clone, Deserialize)]
pub struct CrossvalConfig {
    /// The training configuration every fold starts from (the TOML's top
    /// level); each fold drops the left-out source's `train` and
    /// `validation` sets and writes under [`CrossvalSection::output_dir`]
    /// instead of `output` and `checkpoint_dir`.
    #[serde(flatten)]
    pub base: TrainConfig,
    /// The `[crossval]` table: where the folds go and the cases they score.
    pub crossval: CrossvalSection,
}

/// The `[crossval]` table of a [`CrossvalConfig`].
#[derive(Debug, Clone, Deserialize)]
pub struct CrossvalSection {
    /// Where each fold's network, checkpoints and scores go.
    pub output_dir: PathBuf,
    /// The `[[crossval.case]]` entries; their sources, in order of first
    /// appearance, are the folds.
    pub case: Vec<CrossvalCase>,
}

/// One truth to score a left-out source on (all its times, pooled).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossvalCase {
    /// The source it belongs to: the fold that leaves this source out
    /// scores it.
    pub source: String,
    /// Row label in the results table.
    pub name: String,
    /// The fine truth file, relative to the data root.
    pub truth: PathBuf,
    /// The truth's variable, by name or standard name.
    pub var: String,
    /// The DEM file, relative to the data root.
    pub terrain: PathBuf,
    /// `[south, north, west, east]`.
    #[serde(default)]
    pub region: Option<[f64; 4]>,
}

/// One fold: the source left out, what the network trained on, its scores.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    /// The source this fold left out (and scored).
    pub left_out: String,
    /// Names of the training sets the fold's network trained on.
    pub trained_on: Vec<String>,
    /// The fold's network: `<output_dir>/without-<source>/model.bpk`.
    pub weights: PathBuf,
    /// Each case of the left-out source with its `finecast evaluate` report
    /// (the baselines of the model's kind and `model`, every time pooled).
    pub cases: Vec<(CrossvalCase, EvaluateReport)>,
}

impl CrossvalConfig {
    /// Read a configuration from a TOML file: a [`TrainConfig`] plus a
    /// `[crossval]` table. Unreadable files are [`ModelError::Io`], syntax or
    /// schema errors [`ModelError::Train`].
    pub fn from_toml_file(path: &Path) -> Result<CrossvalConfig, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        toml::from_str(&text).map_err(|e| ModelError::Train(format!("{}: {e}", path.display())))
    }

    /// The sources with cases, in the order of their first case.
    pub fn sources(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.crossval.case {
            if !out.contains(&c.source) {
                out.push(c.source.clone());
            }
        }
        out
    }
}

/// Run every fold (or those of `only`), training each network with
/// `progress`, and return the folds' scores.
pub fn run_crossval(
    cfg: &CrossvalConfig,
    only: &[String],
    progress: &dyn Progress,
) -> Result<Vec<Fold>, ModelError> {
    let root = match &cfg.base.data_root {
        Some(r) => r.clone(),
        None => shared_data_dir().ok_or_else(|| {
            ModelError::Data("shared data folder not found; set FINECAST_SHARED_DATA".into())
        })?,
    };
    let known: Vec<&str> = cfg.base.train.iter().map(|s| s.source()).collect();
    let mut folds = Vec::new();
    for source in cfg.sources() {
        if !only.is_empty() && !only.contains(&source) {
            continue;
        }
        if !known.contains(&source.as_str()) {
            tracing::warn!(
                "source '{source}' is in no training set: its fold trains on everything"
            );
        }
        let dir = cfg.crossval.output_dir.join(format!("without-{source}"));
        let mut fold_cfg = cfg.base.clone();
        fold_cfg.data_root = Some(root.clone());
        fold_cfg.train.retain(|s| s.source() != source);
        fold_cfg.validation.retain(|s| s.source() != source);
        if fold_cfg.train.is_empty() {
            return Err(ModelError::Train(format!(
                "leaving out '{source}' leaves nothing to train on"
            )));
        }
        fold_cfg.output = dir.join("model");
        fold_cfg.checkpoint_dir = dir.join("checkpoints");
        let trained_on: Vec<String> = fold_cfg.train.iter().map(|s| s.name.clone()).collect();
        tracing::info!(
            "fold without '{source}': training on {}",
            trained_on.join(", ")
        );
        let report = train(&fold_cfg, progress)?;
        let mut cases = Vec::new();
        for case in cfg.crossval.case.iter().filter(|c| c.source == source) {
            let network = Method::parse("model", Some(&report.weights))
                .map_err(|e| ModelError::Data(format!("case '{}': {e}", case.name)))?;
            let scored = score_case(cfg.base.kind, case, &root, network)?;
            cases.push((case.clone(), scored));
        }
        folds.push(Fold {
            left_out: source,
            trained_on,
            weights: report.weights,
            cases,
        });
    }
    Ok(folds)
}

/// `finecast evaluate` of one case with the baselines of `kind` and
/// `network` (a fold's network, or one with a trial shrinkage).
pub fn score_case(
    kind: ModelKind,
    case: &CrossvalCase,
    root: &Path,
    network: Method,
) -> Result<EvaluateReport, ModelError> {
    let fail = |e: finecast_pipeline::PipelineError| {
        ModelError::Data(format!("case '{}': {e}", case.name))
    };
    let mut methods = baseline_methods(kind).map_err(fail)?;
    methods.push(network);
    let region = case
        .region
        .map(|[s, n, w, e]| finecast_grid::Region::new(s, n, w, e))
        .transpose()
        .map_err(|e| ModelError::Data(format!("case '{}': {e}", case.name)))?;
    run_evaluate(&EvaluateRequest {
        terrain: Some(root.join(&case.terrain)),
        region,
        ..EvaluateRequest::new(root.join(&case.truth), &case.var, methods)
    })
    .map_err(fail)
}

/// The physical baselines a network of `kind` is compared with: the
/// terrain methods only for temperature.
pub fn baseline_methods(kind: ModelKind) -> Result<Vec<Method>, finecast_pipeline::PipelineError> {
    let names: &[&str] = match kind {
        ModelKind::Temperature => &["bilinear", "bicubic", "lapse", "gradient"],
        ModelKind::Precipitation | ModelKind::Wind => &["bilinear", "bicubic"],
    };
    names.iter().map(|m| Method::parse(m, None)).collect()
}

/// The folds as a markdown table: per case, the best baseline, the
/// network, their ratio and the network's bias.
pub fn markdown_table(folds: &[Fold]) -> String {
    let mut out = String::from(
        "| left out | case | times | cells | best baseline | RMSE | model RMSE | model / best | model bias |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for fold in folds {
        for (case, r) in &fold.cases {
            let best = r
                .methods
                .iter()
                .filter(|(name, _)| name.as_str() != "model")
                .min_by(|a, b| a.1.rmse.total_cmp(&b.1.rmse));
            let (Some((best_name, best)), Some(model)) = (best, r.methods.get("model")) else {
                continue;
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {best_name} | {:.3} | {:.3} | {:.2} | {:+.3} |\n",
                fold.left_out,
                case.name,
                r.n_times,
                r.n_scored,
                best.rmse,
                model.rmse,
                model.rmse / best.rmse,
                model.bias
            ));
        }
    }
    out
}
