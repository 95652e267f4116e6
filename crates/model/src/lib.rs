//! finecast's learned downscalers: terrain-conditioned, fully convolutional
//! residual networks (Burn, pure-Rust `flex` CPU backend). The temperature
//! model predicts the correction to the lapse-rate baseline
//! `bil(T_c) + 0.0065 (bil(z_c) − z_f)`; the precipitation model the
//! correction to `sqrt(bil(P_c))`, relative to the local mean intensity; the
//! wind model the correction to the bilinear wind vector, along and across
//! it (see [`ModelKind`], [`wind_features`]).
//!
//! * [`Downscaler`]: shipped weights + normalisation + metadata; [`Downscaler::predict`]
//!   runs one tile. Every output cell depends only on inputs within
//!   [`Downscaler::receptive_radius`] cells, so tiles run through
//!   `finecast_tiles::run_tiled` with `halo >= receptive_radius + ceil(blend/2)`
//!   give the same field as one big tile.
//! * [`save_model`]: writes weights and their sidecar; training itself, on
//!   perfect-model pairs, is `finecast-train`'s.
//!
//! This crate only infers: it links Burn without autodiff or optimisers.

mod cpu;
pub mod device;
pub mod features;
pub mod net;
pub mod shrink;
pub mod wind_features;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::store::{ModuleRecord, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::parallel::prelude::*;
use ndarray::{Array2, Array3, Array4, ArrayView2, Axis, Zip};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use cpu::cpu_kernels;
pub use device::ComputeDevice;
pub use features::{
    ModelKind, NormStats, FEATURE_NAMES, FEATURE_RADIUS, LAPSE_RATE, N_FEATURES,
    PRECIP_FEATURE_NAMES,
};
pub use net::{ResidualNet, ResidualNetConfig};
pub use shrink::Shrinkage;

/// Version of the sidecar layout.
pub const SIDECAR_FORMAT: u32 = 1;

/// File stem of the shipped temperature weights under `<workspace>/weights/`.
pub const DEFAULT_WEIGHTS_NAME: &str = "finecast-t2m-resnet-v2";

/// File stem of the shipped precipitation weights under `<workspace>/weights/`.
pub const DEFAULT_PRECIP_WEIGHTS_NAME: &str = "finecast-precip-resnet-v1";

/// File stem of the shipped 10 m wind weights under `<workspace>/weights/`.
pub const DEFAULT_WIND_WEIGHTS_NAME: &str = "finecast-wind-resnet-v1";

/// Why a model could not be loaded, saved, trained or run.
///
/// Shared with `finecast-train`, which reports its data and training failures
/// through the same type ([`ModelError::Data`], [`ModelError::Train`]).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The weights file (`.bpk`) or its sidecar (`.json`) does not exist;
    /// carries the path that is missing. Usually the shipped weights were not
    /// found: the message names the environment variables that point at them.
    #[error("weights file {0} not found (set FINECAST_WEIGHTS / FINECAST_PRECIP_WEIGHTS / FINECAST_WIND_WEIGHTS or pass a path)")]
    Missing(PathBuf),
    /// A file exists but its contents cannot be used: a sidecar that is not
    /// valid JSON for [`Sidecar`], a weights file whose SHA-256 differs from
    /// the sidecar's, or bytes that are not a burnpack record.
    #[error("{path}: {what}")]
    Corrupt {
        /// The offending file (sidecar or weights).
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// Readable weights that do not fit this build or this model: another
    /// sidecar format, feature set, channel count, baseline or receptive
    /// radius, invalid normalisation statistics or shrinkage, or tensors of
    /// the wrong shape. Retrain (or use weights from the same finecast
    /// version).
    #[error("weights do not match this model: {0}")]
    Mismatch(String),
    /// The caller's inputs for a tile are unusable: arrays of different
    /// shapes, a wind model without both components or the x-axis angle, a
    /// scalar model given a vector, a grid spacing that is not finite and
    /// positive, or the wrong number of feature channels.
    #[error("invalid input: {0}")]
    Input(String),
    /// Reading or writing a file failed at the operating-system level.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder being read, written or created.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Training or evaluation data that cannot be found, read or used (a
    /// missing shared-data folder, a case file or region without cells), or
    /// a failure exporting the weights as safetensors.
    #[error("data: {0}")]
    Data(String),
    /// A bad training configuration or a failure while training or
    /// serialising a network (including an unexpected network output shape).
    #[error("training: {0}")]
    Train(String),
    /// The compute device failed while running the network (e.g. a GPU that
    /// cannot allocate the tile): an error of that tile, not a panic.
    #[error("compute device: {0}")]
    Device(String),
}

impl ModelError {
    /// An [`ModelError::Io`] naming `path`, for `map_err` on file operations.
    pub fn io(path: &Path, source: std::io::Error) -> ModelError {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The JSON sidecar written next to a weights file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sidecar {
    /// Layout version of this sidecar; [`Downscaler::load`] refuses any other
    /// than [`SIDECAR_FORMAT`].
    pub format: u32,
    /// What the model downscales (sidecars without it are temperature models).
    #[serde(default)]
    pub kind: ModelKind,
    /// File name of the burnpack weights, relative to the sidecar.
    pub weights_file: String,
    /// SHA-256 (hex) of the weights file.
    pub sha256: String,
    /// Architecture of the network; its input and output channel counts must
    /// match the kind's features and outputs.
    pub model: ResidualNetConfig,
    /// Feature normalisation and residual scale from the training data; its
    /// feature names must be exactly those this build computes for the kind.
    pub norm: NormStats,
    /// Variable names and standard names the model applies to.
    pub variables: Vec<String>,
    /// Physical baseline the residual is added to: the kind's own
    /// ([`ModelKind::baseline`]); recorded so a reader of the sidecar sees it.
    #[serde(deserialize_with = "baseline_of_any_version")]
    pub baseline: finecast_methods::Baseline,
    /// Output depends on inputs within this many cells.
    pub receptive_radius: usize,
    /// How the correction shrinks toward the baseline (fitted by
    /// cross-validation); none: the network's correction in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrinkage: Option<Shrinkage>,
    /// Free-form description of the training data, held-out sets and run.
    pub training: serde_json::Value,
}

/// Inputs of one tile, all of the same shape `(ny, nx)`, NaN = missing.
pub struct ModelInputs<'a> {
    /// Coarse field bilinearly interpolated to the tile (SI units: K for
    /// temperature, kg m-2 or kg m-2 s-1 for precipitation; the eastward
    /// component in m s-1 for wind).
    pub coarse_bilinear: ArrayView2<'a, f32>,
    /// Wind only: the northward component, bilinearly interpolated.
    pub northward_bilinear: Option<ArrayView2<'a, f32>>,
    /// Coarse orography bilinearly interpolated to the tile (m).
    pub coarse_orog_bilinear: ArrayView2<'a, f32>,
    /// DEM on the tile (m).
    pub fine_orog: ArrayView2<'a, f32>,
    /// Grid spacing of the tile (m).
    pub dx_m: f64,
    /// Wind only: angle (radians, counter-clockwise) from east to the grid's
    /// +x axis per cell (`finecast_grid::Grid::x_axis_angle`); `None` means
    /// 0, a longitude/latitude grid.
    pub x_axis_angle: Option<ArrayView2<'a, f32>>,
    /// Whether rows run against the grid's y axis (north-up rows on a
    /// longitude/latitude grid) and columns against its x axis. The networks
    /// learnt on rows south to north and columns west to east: the other
    /// orders would show them a mirrored world (north- and south-facing
    /// slopes swapped, winds turning the wrong way), so `predict` turns the
    /// arrays round first and the result back.
    pub descending: (bool, bool),
}

impl<'a> ModelInputs<'a> {
    /// The inputs of a scalar field.
    pub fn new(
        coarse_bilinear: ArrayView2<'a, f32>,
        coarse_orog_bilinear: ArrayView2<'a, f32>,
        fine_orog: ArrayView2<'a, f32>,
        dx_m: f64,
    ) -> ModelInputs<'a> {
        ModelInputs {
            coarse_bilinear,
            northward_bilinear: None,
            coarse_orog_bilinear,
            fine_orog,
            dx_m,
            x_axis_angle: None,
            descending: (false, false),
        }
    }

    /// The inputs of a grid whose rows (`y`) or columns (`x`) run against
    /// its axes (`finecast_grid::Grid::is_y_descending`).
    pub fn with_descending_axes(self, y: bool, x: bool) -> ModelInputs<'a> {
        ModelInputs {
            descending: (y, x),
            ..self
        }
    }

    /// The same inputs in ascending order (views, no copies).
    fn ascending(&self) -> ModelInputs<'a> {
        let (y, x) = self.descending;
        let turn = |mut a: ArrayView2<'a, f32>| {
            if y {
                a.invert_axis(Axis(0));
            }
            if x {
                a.invert_axis(Axis(1));
            }
            a
        };
        ModelInputs {
            coarse_bilinear: turn(self.coarse_bilinear),
            northward_bilinear: self.northward_bilinear.map(turn),
            coarse_orog_bilinear: turn(self.coarse_orog_bilinear),
            fine_orog: turn(self.fine_orog),
            dx_m: self.dx_m,
            x_axis_angle: self.x_axis_angle.map(turn),
            descending: (false, false),
        }
    }

    /// The inputs of a wind vector: `coarse_bilinear` is then the eastward
    /// component.
    pub fn with_wind(
        self,
        northward_bilinear: ArrayView2<'a, f32>,
        x_axis_angle: Option<ArrayView2<'a, f32>>,
    ) -> ModelInputs<'a> {
        ModelInputs {
            northward_bilinear: Some(northward_bilinear),
            x_axis_angle,
            ..self
        }
    }
}

struct Inner {
    net: ResidualNet,
    sidecar: Sidecar,
    weights_path: PathBuf,
    /// Where `net` lives and runs.
    device: Device,
    on_gpu: bool,
    /// The same weights for finecast's CPU engine (`None`: flex runs).
    cpu: Option<cpu::CpuNet>,
}

/// Which code runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kernel {
    /// Burn's flex CPU backend, f32 throughout: the reference, and the
    /// fallback where no engine kernel fits.
    Flex,
    /// Intel AMX tile instructions: bf16 products, f32 sums and residual
    /// stream (x86-64 CPUs with AMX-BF16, e.g. Xeon Sapphire Rapids).
    AmxBf16,
    /// AVX512-BF16 `VDPBF16PS`: the AMX kernel's bf16 arithmetic on CPUs
    /// without AMX (AMD Zen 4/5, Intel Cooper Lake).
    Avx512Bf16,
    /// AVX-512F f32 fused multiply-adds.
    Avx512F32,
    /// AVX2 + FMA f32 (x86-64 since Haswell / Zen 1).
    Avx2F32,
    /// aarch64 NEON f32 (Apple silicon, Graviton, Ampere).
    NeonF32,
    /// Burn's Vulkan (wgpu) backend on a GPU, f32 (cargo feature `gpu`).
    Vulkan,
}

impl Kernel {
    /// Every kernel, in the order of [`Kernel::name`]s listed in errors.
    pub const ALL: [Kernel; 7] = [
        Kernel::Flex,
        Kernel::AmxBf16,
        Kernel::Avx512Bf16,
        Kernel::Avx512F32,
        Kernel::Avx2F32,
        Kernel::NeonF32,
        Kernel::Vulkan,
    ];

    /// The name `FINECAST_MODEL_KERNEL` takes and the output attribute
    /// `finecast_model_kernel` records.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Flex => "flex-f32",
            Kernel::AmxBf16 => "amx-bf16",
            Kernel::Avx512Bf16 => "avx512-bf16",
            Kernel::Avx512F32 => "avx512-f32",
            Kernel::Avx2F32 => "avx2-f32",
            Kernel::NeonF32 => "neon-f32",
            Kernel::Vulkan => "vulkan-f32",
        }
    }

    /// Whether it computes its products in bf16 (8 significant bits).
    pub fn is_bf16(self) -> bool {
        matches!(self, Kernel::AmxBf16 | Kernel::Avx512Bf16)
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernel {
    type Err = String;
    /// A kernel's [`Kernel::name`]; `flex` also names flex.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        if s == "flex" {
            return Ok(Kernel::Flex);
        }
        Kernel::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Kernel::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown kernel '{s}' (expected auto or one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Loaded weights, normalisation and metadata. Cheap to clone (an `Arc`),
/// `Send + Sync`: tiles may call [`Downscaler::predict`] from many threads.
#[derive(Clone)]
pub struct Downscaler {
    inner: Arc<Inner>,
    /// The sidecar's shrinkage, or another one set with
    /// [`Downscaler::with_shrinkage`] (cross-validation tries several).
    shrinkage: Option<Arc<Shrinkage>>,
}

impl std::fmt::Debug for Downscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downscaler")
            .field("weights", &self.inner.weights_path)
            .field("sha256", &self.inner.sidecar.sha256)
            .field("model", &self.inner.sidecar.model)
            .finish()
    }
}

/// Hex SHA-256 of a byte buffer.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `(weights, sidecar)` paths for a path naming either of them (or their stem).
pub fn weights_and_sidecar(path: &Path) -> (PathBuf, PathBuf) {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => (path.with_extension("bpk"), path.to_path_buf()),
        Some("bpk") => (path.to_path_buf(), path.with_extension("json")),
        _ => {
            let base = path.as_os_str().to_owned();
            let mut w = base.clone();
            w.push(".bpk");
            let mut s = base;
            s.push(".json");
            (PathBuf::from(w), PathBuf::from(s))
        }
    }
}

impl Downscaler {
    /// Load a weights file (`.bpk`, Burn's burnpack record) and its sidecar
    /// (`.json`, same stem). `path` may name either file. Checks the SHA-256,
    /// the feature set, the variables and every tensor shape.
    pub fn load(path: &Path) -> Result<Downscaler, ModelError> {
        Downscaler::load_on(path, ComputeDevice::Cpu)
    }

    /// [`Downscaler::load`] onto a device; a GPU that is not available
    /// falls back to the CPU with a warning (see [`device::resolve`]).
    pub fn load_on(path: &Path, choice: ComputeDevice) -> Result<Downscaler, ModelError> {
        let (weights_path, sidecar_path) = weights_and_sidecar(path);
        for p in [&weights_path, &sidecar_path] {
            if !p.is_file() {
                return Err(ModelError::Missing(p.clone()));
            }
        }
        let text =
            std::fs::read_to_string(&sidecar_path).map_err(|e| ModelError::io(&sidecar_path, e))?;
        let sidecar: Sidecar = serde_json::from_str(&text).map_err(|e| ModelError::Corrupt {
            path: sidecar_path.clone(),
            what: format!("sidecar is not valid JSON for this model: {e}"),
        })?;
        if sidecar.format != SIDECAR_FORMAT {
            return Err(ModelError::Mismatch(format!(
                "sidecar format {} (this build reads {SIDECAR_FORMAT})",
                sidecar.format
            )));
        }
        let kind = sidecar.kind;
        sidecar.norm.validate(kind)?;
        if sidecar.model.in_channels != kind.n_features() {
            return Err(ModelError::Mismatch(format!(
                "the network takes {} input channels, this build computes {} {kind} features",
                sidecar.model.in_channels,
                kind.n_features()
            )));
        }
        if sidecar.model.out_channels != kind.n_outputs() {
            return Err(ModelError::Mismatch(format!(
                "the network has {} output channels, a {kind} model {}",
                sidecar.model.out_channels,
                kind.n_outputs()
            )));
        }
        if sidecar.variables.is_empty() {
            return Err(ModelError::Mismatch(
                "the sidecar lists no variables".into(),
            ));
        }
        if sidecar.baseline != kind.baseline() {
            return Err(ModelError::Mismatch(format!(
                "baseline '{}' does not apply to a {kind} model",
                sidecar.baseline
            )));
        }
        if let Some(shrinkage) = &sidecar.shrinkage {
            shrinkage.check(sidecar.model.in_channels)?;
        }
        let expected_radius = sidecar.model.conv_radius() + FEATURE_RADIUS;
        if sidecar.receptive_radius != expected_radius {
            return Err(ModelError::Mismatch(format!(
                "sidecar receptive radius {} differs from the architecture's {expected_radius}",
                sidecar.receptive_radius
            )));
        }
        let bytes = std::fs::read(&weights_path).map_err(|e| ModelError::io(&weights_path, e))?;
        let digest = sha256_hex(&bytes);
        if digest != sidecar.sha256 {
            return Err(ModelError::Corrupt {
                path: weights_path.clone(),
                what: format!(
                    "SHA-256 {digest} does not match the sidecar's {}",
                    sidecar.sha256
                ),
            });
        }
        let record =
            ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(|e| {
                ModelError::Corrupt {
                    path: weights_path.clone(),
                    what: format!("not a readable burnpack record: {e}"),
                }
            })?;
        let (dev, on_gpu) = device::resolve(choice);
        let net = sidecar
            .model
            .init(&dev)
            .try_load_record(record)
            .map_err(|e| ModelError::Mismatch(format!("{}: {e}", weights_path.display())))?;
        tracing::info!(weights = %weights_path.display(), sha256 = %sidecar.sha256, "loaded downscaling model");
        let model = Downscaler::from_parts(net.valid(), sidecar, weights_path, dev, on_gpu);
        tracing::info!(kernel = %model.kernel(), "network kernel");
        Ok(model)
    }

    /// A model with random weights and identity normalisation, for
    /// benchmarks and tests (its output is meaningless).
    pub fn untrained(
        kind: ModelKind,
        config: &ResidualNetConfig,
        seed: u64,
    ) -> Result<Downscaler, ModelError> {
        if config.in_channels != kind.n_features() {
            return Err(ModelError::Mismatch(format!(
                "{} input channels, this build computes {} {kind} features",
                config.in_channels,
                kind.n_features()
            )));
        }
        if config.out_channels != kind.n_outputs() {
            return Err(ModelError::Mismatch(format!(
                "{} output channels, a {kind} model has {}",
                config.out_channels,
                kind.n_outputs()
            )));
        }
        let dev = device::cpu();
        dev.seed(seed);
        let net = config.init(&dev).valid();
        let sidecar = Sidecar {
            format: SIDECAR_FORMAT,
            kind,
            weights_file: String::new(),
            sha256: "untrained".into(),
            model: config.clone(),
            norm: NormStats::identity(kind),
            variables: kind.variables(),
            baseline: kind.baseline(),
            receptive_radius: config.conv_radius() + FEATURE_RADIUS,
            shrinkage: None,
            training: serde_json::Value::Null,
        };
        Ok(Downscaler::from_parts(
            net,
            sidecar,
            PathBuf::new(),
            dev,
            false,
        ))
    }

    /// On the CPU, runs the best engine kernel this machine has (see
    /// [`Kernel`]) or the one `FINECAST_MODEL_KERNEL` names (`flex` keeps
    /// flex).
    pub(crate) fn from_parts(
        net: ResidualNet,
        sidecar: Sidecar,
        weights_path: PathBuf,
        device: Device,
        on_gpu: bool,
    ) -> Downscaler {
        let cpu = if on_gpu {
            None
        } else {
            cpu::choose(&net, &sidecar.model.dilations)
        };
        let shrinkage = sidecar.shrinkage.clone().map(Arc::new);
        Downscaler {
            shrinkage,
            inner: Arc::new(Inner {
                net,
                sidecar,
                weights_path,
                device,
                on_gpu,
                cpu,
            }),
        }
    }

    /// The code that runs [`Downscaler::forward`].
    pub fn kernel(&self) -> Kernel {
        if self.inner.on_gpu {
            return Kernel::Vulkan;
        }
        self.inner.cpu.as_ref().map_or(Kernel::Flex, |c| c.kernel())
    }

    /// The same model on flex (f32), whatever the CPU: for comparisons.
    pub fn on_flex(&self) -> Downscaler {
        self.on_cpu(None)
    }

    /// The same model on the CPU with `kernel` ([`Kernel::Flex`] or one of
    /// [`cpu_kernels`]), for tests and benchmarks; an error says why this
    /// machine or network cannot run it.
    pub fn with_kernel(&self, kernel: Kernel) -> Result<Downscaler, ModelError> {
        let cpu = match kernel {
            Kernel::Flex => None,
            k => Some(
                cpu::CpuNet::new(&self.inner.net, &self.inner.sidecar.model.dilations, k)
                    .map_err(ModelError::Device)?,
            ),
        };
        Ok(self.on_cpu(cpu))
    }

    fn on_cpu(&self, cpu: Option<cpu::CpuNet>) -> Downscaler {
        let net = self.inner.net.clone().to_device(&device::cpu());
        Downscaler {
            shrinkage: self.shrinkage.clone(),
            inner: Arc::new(Inner {
                net,
                sidecar: self.inner.sidecar.clone(),
                weights_path: self.inner.weights_path.clone(),
                device: device::cpu(),
                on_gpu: false,
                cpu,
            }),
        }
    }

    /// The shipped temperature weights (see [`Downscaler::default_path_for`]).
    pub fn default_path() -> PathBuf {
        Downscaler::default_path_for(ModelKind::Temperature)
    }

    /// The shipped weights of a kind: `$FINECAST_WEIGHTS` (temperature),
    /// `$FINECAST_PRECIP_WEIGHTS` (precipitation) or `$FINECAST_WIND_WEIGHTS`
    /// (wind) if set, else
    /// `weights/<stem>.bpk` in the first ancestor of the executable's folder
    /// that has it, else under the workspace this crate was built in
    /// (`CARGO_MANIFEST_DIR/../../weights`).
    pub fn default_path_for(kind: ModelKind) -> PathBuf {
        let (var, stem) = match kind {
            ModelKind::Temperature => ("FINECAST_WEIGHTS", DEFAULT_WEIGHTS_NAME),
            ModelKind::Precipitation => ("FINECAST_PRECIP_WEIGHTS", DEFAULT_PRECIP_WEIGHTS_NAME),
            ModelKind::Wind => ("FINECAST_WIND_WEIGHTS", DEFAULT_WIND_WEIGHTS_NAME),
        };
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let file = format!("{stem}.bpk");
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1) {
                let candidate = dir.join("weights").join(&file);
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../weights")
            .join(file)
    }

    /// Hex SHA-256 of the weights file, as recorded in (and checked against)
    /// the sidecar; `"untrained"` for [`Downscaler::untrained`]. Identifies
    /// the model in outputs' provenance.
    pub fn sha256(&self) -> &str {
        &self.inner.sidecar.sha256
    }

    /// What the model downscales.
    pub fn kind(&self) -> ModelKind {
        self.inner.sidecar.kind
    }

    /// Variable names and CF standard names the model applies to, as listed
    /// in the sidecar (see [`ModelKind::variables`]).
    pub fn variables(&self) -> &[String] {
        &self.inner.sidecar.variables
    }

    /// Whether the model applies to a variable name or CF standard name.
    pub fn supports(&self, standard_name_or_var: &str) -> bool {
        self.inner
            .sidecar
            .variables
            .iter()
            .any(|v| v.eq_ignore_ascii_case(standard_name_or_var))
    }

    /// Cells of input that influence one output cell; the tiling halo must be
    /// at least this plus `ceil(blend / 2)`.
    pub fn receptive_radius(&self) -> usize {
        self.inner.sidecar.receptive_radius
    }

    /// The full sidecar metadata: architecture, normalisation, baseline and
    /// the free-form training record.
    pub fn sidecar(&self) -> &Sidecar {
        &self.inner.sidecar
    }

    /// The `.bpk` file the weights were loaded from; empty for
    /// [`Downscaler::untrained`].
    pub fn weights_path(&self) -> &Path {
        &self.inner.weights_path
    }

    /// Downscale one tile: the field in SI units (baseline + learned
    /// residual, shrunk as the [`Shrinkage`] says), `(components, ny, nx)`
    /// (1 component; eastward and northward for wind), NaN where any input
    /// is NaN.
    pub fn predict(&self, inputs: &ModelInputs) -> Result<Array3<f32>, ModelError> {
        Ok(self.predict_with_weight(inputs)?.0)
    }

    /// [`Downscaler::predict`] and, for a network with a [`Shrinkage`], the
    /// in-range weight `w` of every cell (1 inside the training ranges, down
    /// to 0 beyond them; NaN where there is no output).
    pub fn predict_with_weight(
        &self,
        inputs: &ModelInputs,
    ) -> Result<(Array3<f32>, Option<Array2<f32>>), ModelError> {
        check_inputs(self.kind(), inputs)?;
        if inputs.descending != (false, false) {
            let (mut out, mut weight) = self.predict_with_weight(&inputs.ascending())?;
            let (y, x) = inputs.descending;
            for (flip, axis) in [(y, 0), (x, 1)] {
                if flip {
                    out.invert_axis(Axis(axis + 1));
                    if let Some(w) = weight.as_mut() {
                        w.invert_axis(Axis(axis));
                    }
                }
            }
            let out = out.as_standard_layout().into_owned();
            let weight = weight.map(|w| w.as_standard_layout().into_owned());
            return Ok((out, weight));
        }
        let (ny, nx) = inputs.coarse_bilinear.dim();
        if ny == 0 || nx == 0 {
            let weight = self.shrinkage.as_ref().map(|_| Array2::zeros((ny, nx)));
            return Ok((Array3::zeros((self.kind().n_outputs(), ny, nx)), weight));
        }
        let kind = self.kind();
        let norm = &self.inner.sidecar.norm;
        let mut prepared = features::prepare(kind, inputs);
        features::normalise(&mut prepared.features, &prepared.valid, norm);
        let weight = self
            .shrinkage
            .as_ref()
            .map(|s| s.in_range_weight(prepared.features.view(), &prepared.valid));
        let feats = std::mem::take(&mut prepared.features);
        let residual = self.forward(feats)?;
        let mut out = prepared.apply(kind, residual.view(), norm);
        let (Some(shrinkage), Some(mut weight)) = (&self.shrinkage, weight) else {
            return Ok((out, None));
        };
        shrinkage.apply(&mut out, &prepared.baseline(kind), &weight);
        Zip::from(&mut weight)
            .and(&prepared.valid)
            .for_each(|w, &ok| {
                if !ok {
                    *w = f32::NAN
                }
            });
        Ok((out, Some(weight)))
    }

    /// The shrinkage this network runs with, if any.
    pub fn shrinkage(&self) -> Option<&Shrinkage> {
        self.shrinkage.as_deref()
    }

    /// The same network with another shrinkage (or none): what
    /// cross-validation uses to score candidate shrinkages.
    pub fn with_shrinkage(&self, shrinkage: Option<Shrinkage>) -> Result<Downscaler, ModelError> {
        if let Some(s) = &shrinkage {
            s.check(self.inner.sidecar.model.in_channels)?;
        }
        Ok(Downscaler {
            inner: Arc::clone(&self.inner),
            shrinkage: shrinkage.map(Arc::new),
        })
    }

    /// The network's input for one tile: normalised features `(C, ny, nx)`
    /// (0 where an input is missing) and the mask of cells with every input.
    pub fn features(
        &self,
        inputs: &ModelInputs,
    ) -> Result<(Array3<f32>, Array2<bool>), ModelError> {
        check_inputs(self.kind(), inputs)?;
        if inputs.descending != (false, false) {
            return Err(ModelError::Input(
                "features are computed on rows south to north and columns west to east: turn the arrays first (predict does)".into(),
            ));
        }
        let (mut feats, valid) = features::raw_features(self.kind(), inputs);
        features::normalise(&mut feats, &valid, &self.inner.sidecar.norm);
        Ok((feats, valid))
    }

    /// The network alone: normalised features `(C, ny, nx)` → normalised
    /// residual `(outputs, ny, nx)`.
    pub fn forward(&self, feats: Array3<f32>) -> Result<Array3<f32>, ModelError> {
        let batch = self.forward_batch(feats.insert_axis(Axis(0)))?;
        Ok(batch.index_axis_move(Axis(0), 0))
    }

    /// The network on a batch of equally sized tiles: `(N, C, ny, nx)` →
    /// `(N, outputs, ny, nx)`.
    pub fn forward_batch(&self, feats: Array4<f32>) -> Result<Array4<f32>, ModelError> {
        let channels = self.inner.sidecar.model.in_channels;
        if feats.dim().1 != channels {
            return Err(ModelError::Input(format!(
                "{} feature channels, the network takes {channels}",
                feats.dim().1
            )));
        }
        if let Some(cpu) = &self.inner.cpu {
            // One tile per thread: the engine's kernels run a tile on one core.
            let (n, _, ny, nx) = feats.dim();
            let mut out = Array4::zeros((n, self.inner.sidecar.model.out_channels, ny, nx));
            out.outer_iter_mut()
                .into_par_iter()
                .zip(feats.outer_iter().into_par_iter())
                .for_each(|(mut dst, tile)| dst.assign(&cpu.forward(tile)));
            return Ok(out);
        }
        forward_features(&self.inner.net, feats, &self.inner.device)
    }

    /// Write the weights as safetensors (tensor names `stem.weight`,
    /// `body.<k>.bias`, ...; conv weights `[out, in, kh, kw]`), with the
    /// sidecar JSON under the metadata key `finecast_sidecar`, so other
    /// runtimes (scripts/onnx_model.py) can rebuild the same network.
    pub fn export_safetensors(&self, path: &Path) -> Result<(), ModelError> {
        let sidecar = serde_json::to_string(&self.inner.sidecar)
            .map_err(|e| ModelError::Data(format!("serialising the sidecar: {e}")))?;
        let mut store = SafetensorsStore::from_bytes(None).metadata("finecast_sidecar", sidecar);
        self.inner
            .net
            .save_into(&mut store)
            .map_err(|e| ModelError::Data(format!("exporting the weights: {e}")))?;
        let bytes = store
            .get_bytes()
            .map_err(|e| ModelError::Data(format!("exporting the weights: {e}")))?;
        finecast_io::write_atomic(path, &bytes).map_err(|e| ModelError::io(path, e))
    }
}

fn check_inputs(kind: ModelKind, inputs: &ModelInputs) -> Result<(), ModelError> {
    let shape = inputs.coarse_bilinear.dim();
    let wind = (kind == ModelKind::Wind).then_some(inputs.northward_bilinear);
    match wind {
        Some(None) => {
            return Err(ModelError::Input(
                "the wind model needs both wind components (northward_bilinear is missing)".into(),
            ))
        }
        None if inputs.northward_bilinear.is_some() => {
            return Err(ModelError::Input(format!(
                "a {kind} model takes one field, not a wind vector"
            )))
        }
        _ => {}
    }
    if kind == ModelKind::Wind && inputs.x_axis_angle.is_none() {
        return Err(ModelError::Input(
            "the wind model needs the grid's x-axis angle (0 on a longitude/latitude grid)".into(),
        ));
    }
    let optional = [
        ("northward_bilinear", inputs.northward_bilinear),
        ("x_axis_angle", inputs.x_axis_angle),
    ];
    for (name, a) in [
        ("coarse_orog_bilinear", Some(inputs.coarse_orog_bilinear)),
        ("fine_orog", Some(inputs.fine_orog)),
    ]
    .into_iter()
    .chain(optional)
    .filter_map(|(name, a)| a.map(|a| (name, a)))
    {
        if a.dim() != shape {
            return Err(ModelError::Input(format!(
                "{name} has shape {:?}, coarse_bilinear {shape:?}",
                a.dim()
            )));
        }
    }
    if !(inputs.dx_m.is_finite() && inputs.dx_m > 0.0) {
        return Err(ModelError::Input(format!(
            "grid spacing {} m must be finite and positive",
            inputs.dx_m
        )));
    }
    Ok(())
}

/// Run the network on normalised features `(N, C, ny, nx)` →
/// `(N, outputs, ny, nx)`.
pub fn forward_features(
    net: &ResidualNet,
    feats: ndarray::Array4<f32>,
    device: &Device,
) -> Result<Array4<f32>, ModelError> {
    let (n, c, ny, nx) = feats.dim();
    let data: Vec<f32> = if feats.is_standard_layout() {
        feats.into_raw_vec_and_offset().0
    } else {
        feats.iter().copied().collect()
    };
    let x = Tensor::<4>::from_data(TensorData::new(data, [n, c, ny, nx]), device);
    let y = net.forward(x);
    let outputs = y.dims()[1];
    // A device failure (e.g. a GPU that cannot allocate the tile) is an
    // error of this tile, not a panic.
    let values = y
        .try_into_data()
        .map_err(|e| ModelError::Device(format!("running the network: {e}")))?
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Device(format!("reading the network output: {e:?}")))?;
    Array4::from_shape_vec((n, outputs, ny, nx), values)
        .map_err(|e| ModelError::Train(format!("network output shape: {e}")))
}

/// A sidecar's `baseline`: today's method names, and the names sidecars
/// written before 2026-12-03 used for the same baselines (`sqrt-bilinear`
/// for precipitation, `vector-bilinear` for wind), so networks trained then
/// still load. The retired `local-gradient` base is refused by name.
fn baseline_of_any_version<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<finecast_methods::Baseline, D::Error> {
    let name = String::deserialize(d)?;
    match name.as_str() {
        "sqrt-bilinear" | "vector-bilinear" => Ok(finecast_methods::Baseline::Bilinear),
        "local-gradient" => Err(serde::de::Error::custom(
            "baseline 'local-gradient' is no longer supported: retrain the network over 'lapse'",
        )),
        other => other
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("unknown baseline '{other}'"))),
    }
}

/// Set (or clear) the [`Shrinkage`] in the sidecar of the network at
/// `weights`, checked against the network and written atomically; the
/// weights file is untouched.
pub fn set_shrinkage(weights: &Path, shrinkage: Option<Shrinkage>) -> Result<(), ModelError> {
    let network = Downscaler::load(weights)?;
    network.with_shrinkage(shrinkage.clone())?;
    let (_, sidecar_path) = weights_and_sidecar(weights);
    let mut sidecar = network.sidecar().clone();
    sidecar.shrinkage = shrinkage;
    let text =
        serde_json::to_string_pretty(&sidecar).map_err(|e| ModelError::Train(e.to_string()))?;
    finecast_io::write_atomic(&sidecar_path, (text + "\n").as_bytes())
        .map_err(|e| ModelError::io(&sidecar_path, e))
}

/// Save a network of `kind` and its sidecar: `<stem>.bpk` and
/// `<stem>.json`. Returns the SHA-256 of the weights file.
pub fn save_model(
    net: &ResidualNet,
    stem: &Path,
    kind: ModelKind,
    model: &ResidualNetConfig,
    norm: &NormStats,
    training: serde_json::Value,
) -> Result<String, ModelError> {
    let (weights_path, sidecar_path) = weights_and_sidecar(stem);
    if let Some(dir) = weights_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    let bytes = net
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| ModelError::Train(format!("serialising the weights: {e}")))?;
    let bytes: Vec<u8> = bytes.to_vec();
    finecast_io::write_atomic(&weights_path, &bytes)
        .map_err(|e| ModelError::io(&weights_path, e))?;
    let sha = sha256_hex(&bytes);
    let sidecar = Sidecar {
        format: SIDECAR_FORMAT,
        kind,
        weights_file: weights_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: sha.clone(),
        model: model.clone(),
        norm: norm.clone(),
        variables: kind.variables(),
        baseline: kind.baseline(),
        receptive_radius: model.conv_radius() + FEATURE_RADIUS,
        shrinkage: None,
        training,
    };
    let text =
        serde_json::to_string_pretty(&sidecar).map_err(|e| ModelError::Train(e.to_string()))?;
    finecast_io::write_atomic(&sidecar_path, (text + "\n").as_bytes())
        .map_err(|e| ModelError::io(&sidecar_path, e))?;
    Ok(sha)
}
