//! Training on perfect-model pairs: random patches, Adam on Burn's autodiff
//! over the flex CPU backend, checkpoints with resume, loss curves as CSV and
//! held-out validation every epoch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{s, Array2, Array3, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::data::{load_pairs, shared_data_dir, Pair, SourceSpec};
use finecast_model::features::{self, ModelKind, NormStats};
use finecast_model::net::{ResidualNet, ResidualNetConfig};
use finecast_model::{save_model, ModelError};

/// Physically based augmentation applied to temperature training patches
/// (a precipitation model needs none: its features and target do not change
/// when the field is scaled; wind patches are turned by multiples of 90°
/// instead, see `sample_patch`). Both are exact
/// for the perfect-model pairs because conservative coarsening and bilinear
/// interpolation are linear: adding `γ z_f` to the truth adds `γ z_c` to the
/// coarse field and `γ bil(z_c)` to its interpolation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Probability that a patch is augmented.
    #[serde(default = "half")]
    pub probability: f64,
    /// Extra lapse rate `γ` drawn uniformly in `[-max, max]` (K/m), added as
    /// `γ z_f` to the truth and `γ bil(z_c)` to the coarse input.
    #[serde(default = "default_lapse_shift")]
    pub lapse_shift_max: f32,
    /// Constant offset drawn uniformly in `[-max, max]` (K).
    #[serde(default = "default_offset")]
    pub offset_max_k: f32,
    /// Probability (drawn independently of the lapse-rate shift) that a
    /// patch's DEM is smoothed before the features are computed, the truth
    /// kept: a DEM smoother than the truth's real terrain, as ETOPO5 is on a
    /// 4 km grid, next to the sharp 1′ DEM ones, so the network learns how
    /// much relief a DEM of a given sharpness misses instead of learning one
    /// DEM's.
    #[serde(default)]
    pub dem_smoothing_probability: f64,
    /// Largest standard deviation (cells) of that Gaussian smoothing; it is
    /// drawn uniformly from `[0.5, max]`.
    #[serde(default = "default_dem_smoothing")]
    pub dem_smoothing_max_cells: f32,
}

fn half() -> f64 {
    0.5
}
fn default_lapse_shift() -> f32 {
    0.003
}
fn default_offset() -> f32 {
    8.0
}
fn default_dem_smoothing() -> f32 {
    2.0
}

/// Largest DEM smoothing (cells) a configuration may ask for: a patch and
/// its feature context are about 100 cells, so more would flatten it.
const MAX_DEM_SMOOTHING_CELLS: f32 = 10.0;

impl Default for Augment {
    fn default() -> Self {
        Augment {
            probability: half(),
            lapse_shift_max: default_lapse_shift(),
            offset_max_k: default_offset(),
            dem_smoothing_probability: 0.0,
            dem_smoothing_max_cells: default_dem_smoothing(),
        }
    }
}

/// Model size in the TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSection {
    /// Channels of the hidden layers (default 32); see
    /// [`ResidualNetConfig::width`].
    #[serde(default = "default_width")]
    pub width: usize,
    /// Dilation of each 3x3 residual layer (default `[1, 2, 3, 2, 1]`); their
    /// sum plus 1 is the network's receptive radius in cells, added to
    /// [`features::FEATURE_RADIUS`] for the tiling halo.
    #[serde(default = "default_dilations")]
    pub dilations: Vec<usize>,
}

fn default_width() -> usize {
    32
}
fn default_dilations() -> Vec<usize> {
    vec![1, 2, 3, 2, 1]
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            width: default_width(),
            dilations: default_dilations(),
        }
    }
}

/// Training configuration, read from TOML (see `scripts/train-t2m.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// What the model downscales (default: temperature).
    #[serde(default)]
    pub kind: ModelKind,
    /// Root of the relative data paths; default: the shared data folder.
    #[serde(default)]
    pub data_root: Option<PathBuf>,
    /// Output stem: writes `<output>.bpk` and `<output>.json`.
    pub output: PathBuf,
    /// Folder for checkpoints and loss curves.
    pub checkpoint_dir: PathBuf,
    /// Resolution (degrees) of the lat/lon grid the truth is coarsened to
    /// for the perfect-model pairs (default 0.25).
    #[serde(default = "default_coarse_res")]
    pub coarse_res_deg: f64,
    /// Network width and dilations.
    #[serde(default)]
    pub model: ModelSection,
    /// Side of the square training patches in truth cells (default 64, at
    /// least 8); features are computed with [`features::FEATURE_RADIUS`]
    /// cells of context around them.
    #[serde(default = "default_patch")]
    pub patch: usize,
    /// Patches per optimisation step (default 8).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Total optimisation steps.
    pub steps: usize,
    /// Steps per epoch (validation, loss-curve row).
    #[serde(default = "default_epoch")]
    pub steps_per_epoch: usize,
    /// Save a checkpoint every this many steps.
    #[serde(default = "default_epoch")]
    pub checkpoint_every: usize,
    /// Peak learning rate (after a short warm-up), decayed by a cosine to `lr_final`.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Learning rate at the last step (default 1e-4).
    #[serde(default = "default_lr_final")]
    pub lr_final: f64,
    /// Seed of the weight initialisation and of the patch sampler, so a run
    /// draws the same patches from the same data (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Continue from the checkpoint in `checkpoint_dir` if there is one.
    #[serde(default)]
    pub resume: bool,
    /// Stop (after saving) once this much wall time has passed in this run.
    #[serde(default)]
    pub time_limit_s: Option<f64>,
    /// Temperature augmentation; must be switched off (probabilities 0) for
    /// the other kinds.
    #[serde(default)]
    pub augment: Augment,
    /// Minimum fraction of valid target cells for a patch to be used.
    #[serde(default = "default_min_valid")]
    pub min_valid_fraction: f64,
    /// The training sets (at least one), sampled by their weights.
    pub train: Vec<SourceSpec>,
    /// Held-out sets scored every epoch (never used for fitting).
    #[serde(default)]
    pub validation: Vec<SourceSpec>,
    /// Free text stored in the sidecar: what was held out and why.
    #[serde(default)]
    pub held_out: Vec<String>,
}

fn default_coarse_res() -> f64 {
    0.25
}
fn default_patch() -> usize {
    64
}
fn default_batch() -> usize {
    8
}
fn default_epoch() -> usize {
    200
}
fn default_lr() -> f64 {
    2e-3
}
fn default_lr_final() -> f64 {
    1e-4
}
fn default_min_valid() -> f64 {
    0.5
}

impl TrainConfig {
    /// Read a configuration from a TOML file. Unreadable files are
    /// [`ModelError::Io`], syntax or schema errors [`ModelError::Train`];
    /// the values themselves are checked when training starts.
    pub fn from_toml_file(path: &Path) -> Result<TrainConfig, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        toml::from_str(&text).map_err(|e| ModelError::Train(format!("{}: {e}", path.display())))
    }

    fn net_config(&self) -> ResidualNetConfig {
        ResidualNetConfig::new(self.kind.n_features())
            .with_out_channels(self.kind.n_outputs())
            .with_width(self.model.width)
            .with_dilations(self.model.dilations.clone())
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: &str| Err(ModelError::Train(m.to_string()));
        if self.patch < 8
            || self.batch == 0
            || self.steps == 0
            || self.steps_per_epoch == 0
            || self.checkpoint_every == 0
        {
            return bad(
                "patch must be >= 8 and batch, steps, steps_per_epoch, checkpoint_every positive",
            );
        }
        if !(self.lr > 0.0
            && self.lr.is_finite()
            && self.lr_final > 0.0
            && self.lr_final.is_finite())
        {
            return bad("learning rates (lr, lr_final) must be positive and finite");
        }
        if self.model.width == 0
            || self.model.dilations.is_empty()
            || self.model.dilations.contains(&0)
        {
            return bad("model width and dilations must be positive");
        }
        if self.kind != ModelKind::Temperature
            && (self.augment.probability > 0.0 || self.augment.dem_smoothing_probability > 0.0)
        {
            return Err(ModelError::Train(format!(
                "[augment] (lapse-rate shift, offset, DEM smoothing) is for temperature; set probability = 0 and dem_smoothing_probability = 0 for a {} model",
                self.kind
            )));
        }
        let augment = &self.augment;
        let smoothing_ok = (0.0..=1.0).contains(&augment.dem_smoothing_probability)
            && (0.5..=MAX_DEM_SMOOTHING_CELLS).contains(&augment.dem_smoothing_max_cells);
        if !smoothing_ok {
            return Err(ModelError::Train(format!(
                "[augment] dem_smoothing_probability must be in [0, 1] and dem_smoothing_max_cells in [0.5, {MAX_DEM_SMOOTHING_CELLS}]"
            )));
        }
        Ok(())
    }
}

/// Progress callbacks of a training run.
pub trait Progress {
    /// Called once before the first step: the configured total and the step
    /// the run starts from (above 0 when resumed from a checkpoint).
    fn start(&self, _total_steps: usize, _first_step: usize) {}
    /// After every optimisation step: the steps done so far and that batch's
    /// loss (masked MSE of the normalised residual).
    fn step(&self, _step: usize, _loss: f32) {}
    /// After every epoch's validation: a one-line summary (mean training
    /// loss, each held-out set's RMSE next to its baseline's).
    fn epoch(&self, _line: &str) {}
    /// Called once when the step loop ends (done or out of time).
    fn finish(&self) {}
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {}

/// An `indicatif` progress bar on stderr.
pub struct BarProgress(indicatif::ProgressBar);

impl BarProgress {
    /// A bar that stays hidden until [`Progress::start`], then redraws at
    /// most twice a second.
    pub fn new() -> BarProgress {
        BarProgress(indicatif::ProgressBar::hidden())
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        BarProgress::new()
    }
}

impl Progress for BarProgress {
    fn start(&self, total: usize, first: usize) {
        self.0
            .set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(2));
        self.0.set_length(total as u64);
        self.0.set_position(first as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta} {msg}",
        ) {
            self.0.set_style(style.progress_chars("=> "));
        }
    }
    fn step(&self, step: usize, loss: f32) {
        self.0.set_position(step as u64);
        self.0.set_message(format!("loss {loss:.4}"));
    }
    fn epoch(&self, line: &str) {
        self.0.println(line);
    }
    fn finish(&self) {
        self.0.finish();
    }
}

/// Summary of a training run (also stored in the sidecar).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// The weights file written (`<output>.bpk`; its sidecar is next to it).
    pub weights: PathBuf,
    /// Hex SHA-256 of the weights file, as in the sidecar.
    pub sha256: String,
    /// Optimisation steps done in total (fewer than configured when a time
    /// limit stopped the run).
    pub steps: usize,
    /// Trainable parameters of the network.
    pub parameters: usize,
    /// Multiply-adds per output cell ([`ResidualNetConfig::macs_per_pixel`]).
    pub macs_per_pixel: usize,
    /// Cells of input one output cell depends on: the halo tiling needs.
    pub receptive_radius: usize,
    /// Wall time of this process's part of the training, in seconds.
    pub seconds_this_run: f64,
    /// Total training seconds across resumed runs.
    pub seconds_total: f64,
    /// The last batch's loss (normalised MSE); NaN if no step ran.
    pub final_train_loss: f32,
    /// Validation RMSE (the truth's units) per held-out set at the end:
    /// (name, model, baseline).
    pub validation: Vec<(String, f64, f64)>,
    /// Valid cells over all training pairs (see [`Pair::valid_count`]).
    pub training_cells: usize,
    /// The loss curves: `loss.csv` in the checkpoint folder (with
    /// `loss.png` drawn next to it).
    pub loss_csv: PathBuf,
}

/// Small deterministic PRNG (SplitMix64), so runs are reproducible without
/// depending on a particular `rand` version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    /// Uniform in `[-max, max)`.
    pub fn symmetric(&mut self, max: f32) -> f32 {
        ((self.unit() * 2.0 - 1.0) as f32) * max
    }
}

/// Normalisation statistics of a model of `kind` on the
/// valid training cells (for precipitation, those with rain in their
/// neighbourhood).
pub fn compute_norm_stats(kind: ModelKind, pairs: &[Pair]) -> Result<NormStats, ModelError> {
    let nf = kind.n_features();
    let mut sum = vec![0.0f64; nf];
    let mut sum2 = vec![0.0f64; nf];
    let (mut n, mut rs2) = (0.0f64, 0.0f64);
    for p in pairs {
        let (rows, cols) = p.whole();
        let prepared = features::prepare(kind, &p.inputs(rows.clone(), cols.clone()));
        let targets = prepared.targets(kind, &p.truths(rows, cols));
        let f = &prepared.features;
        for ((j, i), &ok) in prepared.valid.indexed_iter() {
            let residual = targets.slice(s![.., j, i]);
            if !ok || residual.iter().any(|r| !r.is_finite()) {
                continue;
            }
            n += 1.0;
            for c in 0..nf {
                let v = f[[c, j, i]] as f64;
                sum[c] += v;
                sum2[c] += v * v;
            }
            // One scale for every output: the mean square per component.
            rs2 +=
                residual.iter().map(|&r| (r as f64).powi(2)).sum::<f64>() / residual.len() as f64;
        }
    }
    if n < 100.0 {
        let which = match kind {
            ModelKind::Temperature | ModelKind::Wind => "with every input and the truth",
            ModelKind::Precipitation => "with precipitation within 20 cells",
        };
        return Err(ModelError::Train(format!(
            "only {n} training cells {which}: too little data to train on"
        )));
    }
    // A feature that does not vary in the training data keeps unit scale:
    // dividing by a vanishing spread would turn any value unlike the
    // training one into a huge input.
    let std = |c: usize| {
        let spread = (sum2[c] / n - (sum[c] / n).powi(2)).max(0.0).sqrt();
        if spread > 1e-6 * (1.0 + (sum[c] / n).abs()) {
            (spread as f32).max(1e-3)
        } else {
            tracing::warn!(
                feature = kind.feature_names()[c],
                "constant in the training data: unit scale"
            );
            1.0
        }
    };
    Ok(NormStats {
        feature_names: kind.feature_names().iter().map(|s| s.to_string()).collect(),
        mean: sum.iter().map(|s| (s / n) as f32).collect(),
        std: (0..nf).map(std).collect(),
        residual_std: ((rs2 / n).sqrt() as f32).max(1e-3),
        output_gain: 1.0,
    })
}

/// Rotate a `(C, P, P)` patch by `quarter_turns` × 90° counter-clockwise
/// (rows run south to north).
fn rotate_patch(a: Array3<f32>, quarter_turns: usize) -> Array3<f32> {
    let mut a = a;
    for _ in 0..quarter_turns % 4 {
        // new[j][i] = old[P-1-i][j]: swap the axes, then mirror the columns.
        a = a
            .permuted_axes([0, 2, 1])
            .slice_move(s![.., .., ..;-1])
            .as_standard_layout()
            .into_owned();
    }
    a
}

/// One training sample: normalised features `(C, P, P)`, normalised residual
/// targets and loss mask `(outputs, P, P)`.
fn sample_patch(
    pairs: &[Pair],
    cumulative: &[f64],
    cfg: &TrainConfig,
    norm: &NormStats,
    rng: &mut Rng,
) -> (Array3<f32>, Array3<f32>, Array3<f32>) {
    let p = cfg.patch;
    let r = features::FEATURE_RADIUS;
    let kind = cfg.kind;
    let outputs = kind.n_outputs();
    for attempt in 0..200 {
        let u = rng.unit() * cumulative.last().copied().unwrap_or(1.0);
        let k = cumulative.partition_point(|&c| c <= u).min(pairs.len() - 1);
        let pair = &pairs[k];
        let (ny, nx) = pair.truth.dim();
        if ny < p || nx < p {
            continue;
        }
        let (j0, i0) = (rng.below(ny - p + 1), rng.below(nx - p + 1));
        // Window with the features' context, clipped to the domain.
        let (wj0, wi0) = (j0.saturating_sub(r), i0.saturating_sub(r));
        let (wj1, wi1) = ((j0 + p + r).min(ny), (i0 + p + r).min(nx));
        let (rows, cols) = (wj0..wj1, wi0..wi1);
        let mut inputs = pair.inputs(rows.clone(), cols.clone());
        let mut truths = pair.truths(rows, cols);
        // Lapse-rate augmentation (temperature): a synthetic vertical
        // gradient added to both the coarse field and the truth.
        let shifted = (rng.unit() < cfg.augment.probability).then(|| {
            let gamma = rng.symmetric(cfg.augment.lapse_shift_max);
            let offset = rng.symmetric(cfg.augment.offset_max_k);
            let shift = |v: ArrayView2<f32>, z: ArrayView2<f32>| {
                ndarray::Zip::from(v)
                    .and(z)
                    .map_collect(|&v, &z| v + gamma * z + offset)
            };
            (
                shift(inputs.coarse_bilinear, inputs.coarse_orog_bilinear),
                shift(truths[0], inputs.fine_orog),
            )
        });
        if let Some((t, truth)) = &shifted {
            inputs.coarse_bilinear = t.view();
            truths[0] = truth.view();
        }
        // Drawn only where enabled, so configurations without it sample the
        // same patches as before it existed.
        let smooth_dem = cfg.augment.dem_smoothing_probability > 0.0
            && rng.unit() < cfg.augment.dem_smoothing_probability;
        let smoothed = smooth_dem.then(|| {
            let sigma = 0.5 + rng.unit() as f32 * (cfg.augment.dem_smoothing_max_cells - 0.5);
            features::gaussian_smooth(inputs.fine_orog, sigma)
        });
        if let Some(z) = &smoothed {
            inputs.fine_orog = z.view();
        }
        let mut prepared = features::prepare(kind, &inputs);
        let targets = prepared.targets(kind, &truths);
        let (pj, pi) = (j0 - wj0, i0 - wi0);
        let patch = s![.., pj..pj + p, pi..pi + p];
        let target = targets.slice(patch).mapv(|t| {
            if t.is_finite() {
                t / norm.residual_std
            } else {
                f32::NAN
            }
        });
        let mask = target.mapv(|t| t.is_finite() as u8 as f32);
        let n_valid = mask.sum() as f64 / outputs as f64;
        if n_valid < cfg.min_valid_fraction * (p * p) as f64 && attempt < 199 {
            continue;
        }
        let target = target.mapv(|t| if t.is_finite() { t } else { 0.0 });
        features::normalise(&mut prepared.features, &prepared.valid, norm);
        let f = prepared.features.slice(patch).to_owned();
        if kind == ModelKind::Wind {
            // The wind's features and outputs do not depend on the grid's
            // orientation, so a turned patch is another valid sample.
            let turns = rng.below(4);
            return (
                rotate_patch(f, turns),
                rotate_patch(target, turns),
                rotate_patch(mask, turns),
            );
        }
        return (f, target, mask);
    }
    (
        Array3::zeros((kind.n_features(), p, p)),
        Array3::zeros((outputs, p, p)),
        Array3::zeros((outputs, p, p)),
    )
}

/// A held-out set prepared once: normalised features, baseline frame, truth
/// and the scoring mask (valid cells one coarse cell from the edge).
struct ValidationSet {
    name: String,
    kind: ModelKind,
    prepared: features::Prepared,
    truth: Vec<Array2<f32>>,
    mask: Array2<bool>,
}

impl ValidationSet {
    fn new(
        kind: ModelKind,
        pair: &Pair,
        norm: &NormStats,
        margin: (usize, usize),
    ) -> ValidationSet {
        let (rows, cols) = pair.whole();
        let mut prepared = features::prepare(kind, &pair.inputs(rows.clone(), cols.clone()));
        features::normalise(&mut prepared.features, &prepared.valid, norm);
        let truth: Vec<Array2<f32>> = pair
            .truths(rows, cols)
            .into_iter()
            .map(|t| t.to_owned())
            .collect();
        let (mj, mi) = margin;
        let (ny, nx) = pair.truth.dim();
        let mask = Array2::from_shape_fn((ny, nx), |(j, i)| {
            j >= mj
                && j + mj < ny
                && i >= mi
                && i + mi < nx
                && prepared.valid[[j, i]]
                && truth.iter().all(|t| t[[j, i]].is_finite())
        });
        ValidationSet {
            name: pair.name.clone(),
            kind,
            prepared,
            truth,
            mask,
        }
    }

    /// Root mean square error over the scored cells (of the vector, for
    /// wind: the square root of the mean squared length of the error).
    fn rmse(&self, pred: &Array3<f32>) -> f64 {
        let (mut s, mut n) = (0.0f64, 0.0f64);
        for ((j, i), &m) in self.mask.indexed_iter() {
            if m {
                for (c, t) in self.truth.iter().enumerate() {
                    let d = (pred[[c, j, i]] - t[[j, i]]) as f64;
                    s += d * d;
                }
                n += 1.0;
            }
        }
        if n > 0.0 {
            (s / n).sqrt()
        } else {
            f64::NAN
        }
    }

    /// The network's prediction on the whole field (physical units).
    fn predict(
        &self,
        net: &ResidualNet,
        norm: &NormStats,
        device: &Device,
    ) -> Result<Array3<f32>, ModelError> {
        let batch = self.prepared.features.clone().insert_axis(ndarray::Axis(0));
        let residual = finecast_model::forward_features(net, batch, device)?
            .index_axis_move(ndarray::Axis(0), 0);
        Ok(self.prepared.apply(self.kind, residual.view(), norm))
    }

    /// RMSE of a prediction and of the baseline.
    fn score(&self, pred: &Array3<f32>) -> (f64, f64) {
        (
            self.rmse(pred),
            self.rmse(&self.prepared.baseline(self.kind)),
        )
    }

    /// Sums of the truth and of a prediction over the scored cells (first
    /// component).
    fn totals(&self, pred: &Array3<f32>) -> (f64, f64) {
        let (mut truth, mut predicted) = (0.0f64, 0.0f64);
        for ((j, i), &m) in self.mask.indexed_iter() {
            if m {
                truth += self.truth[0][[j, i]] as f64;
                predicted += pred[[0, j, i]] as f64;
            }
        }
        (truth, predicted)
    }
}

/// The output gain of a precipitation network (see
/// [`NormStats::output_gain`]): total truth over total prediction on every
/// training cell, each pair weighted by its source's sampling weight.
fn output_gain(
    kind: ModelKind,
    net: &ResidualNet,
    norm: &NormStats,
    pairs: &[Pair],
    device: &Device,
) -> Result<f32, ModelError> {
    if kind != ModelKind::Precipitation {
        return Ok(1.0);
    }
    let (mut truth, mut predicted) = (0.0f64, 0.0f64);
    for pair in pairs {
        // No edge margin: every training cell counts.
        let set = ValidationSet::new(kind, pair, norm, (0, 0));
        let (t, p) = set.totals(&set.predict(net, norm, device)?);
        truth += pair.weight * t;
        predicted += pair.weight * p;
    }
    if !(truth > 0.0 && predicted > 0.0) {
        return Err(ModelError::Train(format!(
            "cannot calibrate the output: training total {truth}, predicted {predicted}"
        )));
    }
    Ok((truth / predicted) as f32)
}

/// Training state saved with each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    rng: Rng,
    norm: NormStats,
    model: ResidualNetConfig,
    seconds: f64,
    last_loss: f32,
}

/// The three files of a checkpoint in `checkpoint_dir`: the network, the
/// optimiser's moments and the [`CheckpointState`].
struct Checkpoint {
    model: PathBuf,
    optim: PathBuf,
    state: PathBuf,
}

impl Checkpoint {
    fn in_dir(dir: &Path) -> Result<Checkpoint, ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        Ok(Checkpoint {
            model: dir.join("checkpoint-model.bpk"),
            optim: dir.join("checkpoint-optim.bpk"),
            state: dir.join("checkpoint-state.json"),
        })
    }

    fn complete(&self) -> bool {
        self.state.is_file() && self.model.is_file() && self.optim.is_file()
    }

    /// The run saved here, and `optim` with the saved moments. The network
    /// must have the configured architecture.
    fn load(
        &self,
        net_cfg: &ResidualNetConfig,
        device: &Device,
        optim: burn::optim::ModuleOptimizer,
    ) -> Result<(Run, burn::optim::ModuleOptimizer), ModelError> {
        let corrupt = |path: &Path, what: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let text =
            std::fs::read_to_string(&self.state).map_err(|e| ModelError::io(&self.state, e))?;
        let st: CheckpointState =
            serde_json::from_str(&text).map_err(|e| corrupt(&self.state, e.to_string()))?;
        if &st.model != net_cfg {
            return Err(ModelError::Mismatch(format!(
                "checkpoint model {:?} differs from the configured {:?}",
                st.model, net_cfg
            )));
        }
        let record =
            ModuleRecord::load(&self.model).map_err(|e| corrupt(&self.model, e.to_string()))?;
        let net = net_cfg
            .init(device)
            .try_load_record(record)
            .map_err(|e| ModelError::Mismatch(e.to_string()))?;
        let optim = optim
            .load(&self.optim)
            .map_err(|e| corrupt(&self.optim, e.to_string()))?;
        tracing::info!(step = st.step, "resumed from checkpoint");
        let run = Run {
            net,
            norm: st.norm,
            rng: st.rng,
            step: st.step,
            seconds_before: st.seconds,
            last_loss: st.last_loss,
        };
        Ok((run, optim))
    }

    /// Save the run at its current step (`seconds`: training time so far).
    fn save(
        &self,
        run: &Run,
        optim: &burn::optim::ModuleOptimizer,
        net_cfg: &ResidualNetConfig,
        seconds: f64,
    ) -> Result<(), ModelError> {
        run.net
            .clone()
            .into_record()
            .save(&self.model)
            .map_err(|e| ModelError::Train(format!("saving checkpoint: {e}")))?;
        optim
            .save(&self.optim)
            .map_err(|e| ModelError::Train(format!("saving optimizer: {e}")))?;
        let st = CheckpointState {
            step: run.step,
            rng: run.rng.clone(),
            norm: run.norm.clone(),
            model: net_cfg.clone(),
            seconds,
            last_loss: run.last_loss,
        };
        let text =
            serde_json::to_string_pretty(&st).map_err(|e| ModelError::Train(e.to_string()))?;
        finecast_io::write_atomic(&self.state, text.as_bytes())
            .map_err(|e| ModelError::io(&self.state, e))
    }
}

/// A training run in progress: the network, its normalisation, the patch
/// sampler's random state, the steps done and the time they took before this
/// process (a resumed run), and the last batch's loss.
struct Run {
    net: ResidualNet,
    norm: NormStats,
    rng: Rng,
    step: usize,
    seconds_before: f64,
    last_loss: f32,
}

impl Run {
    /// A fresh run: seeded weights, normalisation from the training pairs.
    fn fresh(
        cfg: &TrainConfig,
        net_cfg: &ResidualNetConfig,
        device: &Device,
        train_pairs: &[Pair],
    ) -> Result<Run, ModelError> {
        device.seed(cfg.seed);
        let norm = compute_norm_stats(cfg.kind, train_pairs)?;
        tracing::info!(?norm, "normalisation statistics");
        Ok(Run {
            net: net_cfg.init(device),
            norm,
            rng: Rng::new(cfg.seed),
            step: 0,
            seconds_before: 0.0,
            last_loss: f32::NAN,
        })
    }
}

/// `loss.csv` in the checkpoint folder: one row per epoch with the training
/// loss and every validation set's RMSE and baseline RMSE.
struct LossLog {
    path: PathBuf,
    file: std::fs::File,
}

impl LossLog {
    /// Open for appending (a resumed run continues its curve; a fresh run
    /// starts a fresh one) and write the header to a new file.
    fn open(dir: &Path, validation: &[ValidationSet], resume: bool) -> Result<LossLog, ModelError> {
        let path = dir.join("loss.csv");
        if !resume && path.exists() {
            std::fs::remove_file(&path).map_err(|e| ModelError::io(&path, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ModelError::io(&path, e))?;
        let mut log = LossLog { path, file };
        if log.file.metadata().map(|m| m.len() == 0).unwrap_or(true) {
            let mut header = "step,epoch,seconds,lr,train_loss".to_string();
            for v in validation {
                header.push_str(&format!(
                    ",val_rmse_{0},val_baseline_rmse_{0}",
                    v.name.replace([',', ' '], "_")
                ));
            }
            header.push_str(",val_rmse_mean\n");
            log.write(&header)?;
        }
        Ok(log)
    }

    fn write(&mut self, text: &str) -> Result<(), ModelError> {
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| ModelError::io(&self.path, e))
    }

    /// Append an epoch's row, then redraw `loss.png` (a failed plot is only
    /// a warning: the CSV is the record).
    fn append_row(&mut self, row: &str) -> Result<(), ModelError> {
        self.write(row)?;
        if let Err(e) = plot_loss_csv(&self.path, &self.path.with_extension("png")) {
            tracing::warn!("loss plot: {e}");
        }
        Ok(())
    }
}

fn learning_rate(cfg: &TrainConfig, step: usize) -> f64 {
    let warm = (cfg.steps / 50).clamp(1, 100);
    if step < warm {
        return cfg.lr * (step + 1) as f64 / warm as f64;
    }
    let t = (step - warm) as f64 / (cfg.steps - warm).max(1) as f64;
    cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

/// Load the training and validation data of `cfg` and train. See [`train_on_pairs`].
pub fn train(cfg: &TrainConfig, progress: &dyn Progress) -> Result<TrainReport, ModelError> {
    cfg.validate()?;
    if cfg.train.is_empty() {
        return Err(ModelError::Train("no training sources".into()));
    }
    let root = match &cfg.data_root {
        Some(r) => r.clone(),
        None => shared_data_dir().ok_or_else(|| {
            ModelError::Data("shared data folder not found; set FINECAST_SHARED_DATA".into())
        })?,
    };
    let started = Instant::now();
    let train_pairs = load_pairs(cfg.kind, &cfg.train, &root, cfg.coarse_res_deg)?;
    let val_pairs = load_pairs(cfg.kind, &cfg.validation, &root, cfg.coarse_res_deg)?;
    tracing::info!(
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "data loaded"
    );
    train_on_pairs(cfg, &train_pairs, &val_pairs, progress)
}

/// Train on prepared pairs (the data part of `cfg` is only recorded), in
/// phases: check the pairs, start or resume, then step by step with
/// validation every epoch and checkpoints, and finally save the network with
/// its sidecar.
pub fn train_on_pairs(
    cfg: &TrainConfig,
    train_pairs: &[Pair],
    val_pairs: &[Pair],
    progress: &dyn Progress,
) -> Result<TrainReport, ModelError> {
    check_pairs(cfg, train_pairs, val_pairs)?;
    let run_started = Instant::now();
    let checkpoint = Checkpoint::in_dir(&cfg.checkpoint_dir)?;
    let net_cfg = cfg.net_config();
    let device = finecast_model::device::cpu().autodiff();
    let plain = finecast_model::device::cpu();
    let sampler = Sampler::new(train_pairs);

    let resume = cfg.resume && checkpoint.complete();
    let optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(1.0)))
        .init();
    let (mut run, mut optim) = if resume {
        checkpoint.load(&net_cfg, &device, optim)?
    } else {
        (Run::fresh(cfg, &net_cfg, &device, train_pairs)?, optim)
    };
    let parameters = run.net.num_params();
    tracing::info!(
        parameters,
        macs_per_pixel = net_cfg.macs_per_pixel(),
        "model"
    );
    let validation: Vec<ValidationSet> = val_pairs
        .iter()
        .map(|p| {
            let margin = finecast_protocol::edge_margin(&p.grid, &p.coarse.grid);
            ValidationSet::new(cfg.kind, p, &run.norm, margin)
        })
        .collect();
    let mut log = LossLog::open(&cfg.checkpoint_dir, &validation, resume)?;

    progress.start(cfg.steps, run.step);
    let mut epoch_loss = (0.0f64, 0usize);
    let mut final_validation = Vec::new();
    while run.step < cfg.steps {
        let lr = learning_rate(cfg, run.step);
        let loss = train_step(cfg, &mut run, &mut optim, &sampler, lr, &device)?;
        epoch_loss.0 += loss as f64;
        epoch_loss.1 += 1;
        progress.step(run.step, loss);

        let step = run.step;
        let elapsed = run.seconds_before + run_started.elapsed().as_secs_f64();
        let out_of_time = cfg
            .time_limit_s
            .is_some_and(|l| run_started.elapsed().as_secs_f64() >= l);
        if step % cfg.steps_per_epoch == 0 || step == cfg.steps || out_of_time {
            let mean_loss = epoch_loss.0 / epoch_loss.1.max(1) as f64;
            let mut row = format!(
                "{step},{},{elapsed:.1},{lr:.6},{mean_loss:.5}",
                step.div_ceil(cfg.steps_per_epoch),
            );
            let mut line = format!("step {step}: train loss {mean_loss:.4} (normalised MSE)");
            final_validation = validate(&validation, &run, &plain)?;
            for (name, rm, rb) in &final_validation {
                row.push_str(&format!(",{rm:.4},{rb:.4}"));
                line.push_str(&format!("; {name} {rm:.4} (baseline {rb:.4})"));
            }
            let sum: f64 = final_validation.iter().map(|(_, rm, _)| rm).sum();
            row.push_str(&format!(",{:.4}\n", sum / validation.len().max(1) as f64));
            log.append_row(&row)?;
            progress.epoch(&line);
            tracing::info!("{line}");
            epoch_loss = (0.0, 0);
        }
        if step % cfg.checkpoint_every == 0 || step == cfg.steps || out_of_time {
            checkpoint.save(&run, &optim, &net_cfg, elapsed)?;
        }
        if out_of_time {
            tracing::warn!(step, "time limit reached; stopping after the checkpoint");
            break;
        }
    }
    progress.finish();
    let seconds_total = run.seconds_before + run_started.elapsed().as_secs_f64();
    let report = Finished {
        parameters,
        training_cells: sampler.training_cells,
        seconds_this_run: run_started.elapsed().as_secs_f64(),
        seconds_total,
        validation: final_validation,
        loss_csv: log.path,
    };
    finish(cfg, run, &net_cfg, train_pairs, &plain, report)
}

/// The pairs must exist and be of the model's kind (wind pairs for a wind
/// model, scalar pairs otherwise).
fn check_pairs(
    cfg: &TrainConfig,
    train_pairs: &[Pair],
    val_pairs: &[Pair],
) -> Result<(), ModelError> {
    cfg.validate()?;
    if train_pairs.is_empty() {
        return Err(ModelError::Train("no training pairs".into()));
    }
    let wind = cfg.kind == ModelKind::Wind;
    if let Some(p) = train_pairs
        .iter()
        .chain(val_pairs)
        .find(|p| p.wind.is_some() != wind)
    {
        return Err(ModelError::Train(format!(
            "pair '{}' is {}a wind pair, and the model is a {} model",
            p.name,
            if wind { "not " } else { "" },
            cfg.kind
        )));
    }
    Ok(())
}

/// Where patches are drawn: each source's weight spread over its pairs by
/// valid cells, so a source with many small pairs weighs as much as one with
/// a single large pair.
struct Sampler<'a> {
    pairs: &'a [Pair],
    /// Cumulative sampling weight of the pairs, in order.
    cumulative: Vec<f64>,
    training_cells: usize,
}

impl<'a> Sampler<'a> {
    fn new(pairs: &'a [Pair]) -> Sampler<'a> {
        let counts: Vec<usize> = pairs.iter().map(Pair::valid_count).collect();
        let mut by_source: std::collections::HashMap<String, usize> = Default::default();
        for (p, &c) in pairs.iter().zip(&counts) {
            *by_source.entry(source_of(&p.name)).or_default() += c;
        }
        let mut cumulative = Vec::with_capacity(pairs.len());
        let mut acc = 0.0;
        for (p, &c) in pairs.iter().zip(&counts) {
            let total = by_source[&source_of(&p.name)].max(1) as f64;
            acc += p.weight * c as f64 / total;
            cumulative.push(acc);
        }
        Sampler {
            pairs,
            cumulative,
            training_cells: counts.iter().sum(),
        }
    }
}

/// One optimiser step on a batch of random patches; the batch's loss
/// (masked MSE of the normalised residual). A loss that is not finite stops
/// training with an error rather than writing a broken network.
fn train_step(
    cfg: &TrainConfig,
    run: &mut Run,
    optim: &mut burn::optim::ModuleOptimizer,
    sampler: &Sampler,
    lr: f64,
    device: &Device,
) -> Result<f32, ModelError> {
    let (b, p, c) = (cfg.batch, cfg.patch, cfg.kind.n_features());
    let outputs = cfg.kind.n_outputs();
    let mut xs: Vec<f32> = Vec::with_capacity(b * c * p * p);
    let mut ys: Vec<f32> = Vec::with_capacity(b * outputs * p * p);
    let mut ms: Vec<f32> = Vec::with_capacity(b * outputs * p * p);
    for _ in 0..b {
        let (f, t, m) = sample_patch(
            sampler.pairs,
            &sampler.cumulative,
            cfg,
            &run.norm,
            &mut run.rng,
        );
        xs.extend(f.iter());
        ys.extend(t.iter());
        ms.extend(m.iter());
    }
    let msum: f32 = ms.iter().sum::<f32>().max(1.0);
    let x = Tensor::<4>::from_data(TensorData::new(xs, [b, c, p, p]), device);
    let y = Tensor::<4>::from_data(TensorData::new(ys, [b, outputs, p, p]), device);
    let m = Tensor::<4>::from_data(TensorData::new(ms, [b, outputs, p, p]), device);
    let pred = run.net.forward(x);
    let diff = (pred - y) * m;
    let loss = (diff.clone() * diff).sum().div_scalar(msum);
    let loss_value: f32 = loss.clone().into_scalar::<f32>();
    if !loss_value.is_finite() {
        return Err(ModelError::Train(format!(
            "loss became {loss_value} at step {}",
            run.step
        )));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &run.net);
    run.net = optim.step(lr, run.net.clone(), grads);
    run.step += 1;
    run.last_loss = loss_value;
    Ok(loss_value)
}

/// Every validation set's (name, RMSE, baseline RMSE) for the network as it
/// is now, run without autodiff.
fn validate(
    validation: &[ValidationSet],
    run: &Run,
    plain: &Device,
) -> Result<Vec<(String, f64, f64)>, ModelError> {
    let net = run.net.valid();
    validation
        .iter()
        .map(|v| {
            let (rm, rb) = v.score(&v.predict(&net, &run.norm, plain)?);
            Ok((v.name.clone(), rm, rb))
        })
        .collect()
}

/// What the step loop hands to [`finish`] for the report.
struct Finished {
    parameters: usize,
    training_cells: usize,
    seconds_this_run: f64,
    seconds_total: f64,
    validation: Vec<(String, f64, f64)>,
    loss_csv: PathBuf,
}

/// Fix a precipitation network's output gain, record the training in the
/// sidecar and save the network.
fn finish(
    cfg: &TrainConfig,
    run: Run,
    net_cfg: &ResidualNetConfig,
    train_pairs: &[Pair],
    plain: &Device,
    f: Finished,
) -> Result<TrainReport, ModelError> {
    let valid_net = run.net.valid();
    let mut norm = run.norm;
    norm.output_gain = output_gain(cfg.kind, &valid_net, &norm, train_pairs, plain)?;
    if cfg.kind == ModelKind::Precipitation {
        tracing::info!(
            gain = norm.output_gain,
            "output gain (training total / predicted)"
        );
    }
    let training = serde_json::json!({
        "kind": cfg.kind,
        "baseline": cfg.kind.baseline(),
        "steps": run.step,
        "seconds": f.seconds_total,
        "patch": cfg.patch,
        "batch": cfg.batch,
        "lr": cfg.lr,
        "lr_final": cfg.lr_final,
        "seed": cfg.seed,
        "coarse_res_deg": cfg.coarse_res_deg,
        "augment": cfg.augment,
        "train_sources": cfg.train,
        "validation_sources": cfg.validation,
        "held_out": cfg.held_out,
        "training_cells": f.training_cells,
        "final_train_loss": run.last_loss,
        "validation_rmse": f.validation,
        "parameters": f.parameters,
        "macs_per_pixel": net_cfg.macs_per_pixel(),
    });
    let sha = save_model(&valid_net, &cfg.output, cfg.kind, net_cfg, &norm, training)?;
    let (weights, _) = finecast_model::weights_and_sidecar(&cfg.output);
    Ok(TrainReport {
        weights,
        sha256: sha,
        steps: run.step,
        parameters: f.parameters,
        macs_per_pixel: net_cfg.macs_per_pixel(),
        receptive_radius: net_cfg.conv_radius() + features::FEATURE_RADIUS,
        seconds_this_run: f.seconds_this_run,
        seconds_total: f.seconds_total,
        final_train_loss: run.last_loss,
        validation: f.validation,
        training_cells: f.training_cells,
        loss_csv: f.loss_csv,
    })
}

/// Plot the loss curves of a `loss.csv` written by [`train`]: the training
/// loss (normalised MSE) and every validation RMSE (in the truth's units)
/// against the step, on a log y axis.
pub fn plot_loss_csv(csv: &Path, png: &Path) -> Result<(), ModelError> {
    let text = std::fs::read_to_string(csv).map_err(|e| ModelError::io(csv, e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .filter(|r: &Vec<f64>| r.len() == header.len())
        .collect();
    let mut series = Vec::new();
    for (k, name) in header.iter().enumerate() {
        let label = if *name == "train_loss" {
            "train loss (normalised MSE)".to_string()
        } else if let Some(v) = name.strip_prefix("val_rmse_") {
            format!("held-out RMSE: {v}")
        } else {
            continue;
        };
        series.push((label, rows.iter().map(|r| (r[0], r[k])).collect::<Vec<_>>()));
    }
    finecast_render::render_lines_png(
        "finecast-model training",
        "step",
        "loss / RMSE (truth units)",
        &series,
        png,
        true,
    )
    .map_err(|e| ModelError::Train(format!("{}: {e}", png.display())))
}

/// Source label of a pair name (`"name[3]"` → `"name"`).
fn source_of(name: &str) -> String {
    name.split('[').next().unwrap_or(name).to_string()
}
