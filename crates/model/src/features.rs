//! Input features of the network, computed from the three per-tile inputs
//! (bilinear coarse field, bilinear coarse orography, fine orography) and the
//! grid spacing, and the physical baseline the network corrects. Both depend
//! on the [`ModelKind`]: temperature uses the lapse-rate baseline and local
//! lapse-rate features; precipitation works on the square root of the amount,
//! relative to its local mean, so one model serves any accumulation period
//! and unit.
//!
//! Every feature at a cell depends only on inputs within [`FEATURE_RADIUS`]
//! cells of it (box means over windows truncated at the array edge, central
//! differences), so the features of a tile equal the features of the whole
//! field wherever the tile has that much context: this is what makes tiled
//! inference exact.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, Zip};
use serde::{Deserialize, Serialize};

use finecast_methods::Baseline;

use crate::wind_features::WindFrame;
use crate::{ModelError, ModelInputs};

/// Lapse rate of the physical baseline (K per metre of ascent).
pub const LAPSE_RATE: f32 = 0.0065;

/// Half-widths (cells) of the local-relief box means: z_f minus its mean over
/// (2r+1)² cells, for r = 2 (5x5), 7 (15x15) and 12 (25x25).
pub const RELIEF_RADII: [usize; 3] = [2, 7, 12];

/// Half-widths (cells) of the windows of the local regressions of the
/// bilinear coarse field on the bilinear coarse orography: estimates of the
/// coarse model's own lapse rate around the cell, on a local (±8 cells, about
/// ±1.3 coarse cells at 4 km) and a regional (±20 cells, about gridpp's 7x7
/// coarse-cell window) scale.
pub const REGRESSION_RADII: [usize; 2] = [8, 20];

/// Largest distance (cells) at which an input influences a feature.
pub const FEATURE_RADIUS: usize = 20;

/// Half-widths (cells) of the sea-level fractions (temperature and wind).
pub(crate) const SEA_LEVEL_RADII: [usize; 2] = [3, 12];

/// Half-width (cells) of the broad relief and of the window of the DEM
/// sharpness feature (which therefore reaches `2 ×` this far).
const SHARPNESS_RADIUS: usize = 7;

/// Added to the broad relief (m) so flat land has a sharpness near 0, not a
/// ratio of two tiny numbers.
const SHARPNESS_FLOOR_M: f32 = 10.0;

// The features must stay within the radius the tiling halo is sized for.
const _: () =
    assert!(SEA_LEVEL_RADII[1] <= FEATURE_RADIUS && 2 * SHARPNESS_RADIUS <= FEATURE_RADIUS);

/// Clamp range of the local regression slope (K/m), as gridpp's gradient method.
const SLOPE_MIN: f32 = -0.010;
const SLOPE_MAX: f32 = 0.005;
/// Below this standard deviation of coarse orography (m) the slope is not
/// fitted; the standard lapse rate is used.
const MIN_Z_STD: f32 = 30.0;

/// Half-width (cells) of the box over which precipitation's local mean
/// intensity is taken: the scale every precipitation feature and residual is
/// relative to.
pub const PRECIP_SCALE_RADIUS: usize = 20;

/// Names of the temperature model's feature channels, in order. Stored in the
/// sidecar so a weights file made for another feature set is refused. There
/// is deliberately no absolute temperature or elevation: with a handful of
/// training days they let a network memorise the days instead of learning
/// terrain effects. Nor is there a grid-spacing channel: the training grids
/// are all 4–5 km, so a 3 km or 1 km job would put it many standard
/// deviations outside anything the network saw.
pub const FEATURE_NAMES: [&str; 14] = [
    "z_anomaly",
    "relief_r2",
    "relief_r7",
    "relief_r12",
    "slope_x",
    "slope_y",
    "local_lapse_r8",
    "local_lapse_r8_minus_standard_times_anomaly",
    "local_lapse_r20",
    "local_lapse_r20_minus_standard_times_anomaly",
    "t_coarse_laplacian",
    "sea_level_fraction_r3",
    "sea_level_fraction_r12",
    "dem_fine_relief_ratio",
];

/// Feature channels of the temperature model.
pub const N_FEATURES: usize = FEATURE_NAMES.len();

/// Names of the precipitation model's feature channels. The intensity enters
/// only relative to its local mean (`q = bil(P_c) / mean_20(bil(P_c))`), so
/// the features do not change when the field is multiplied by a constant
/// (another unit or accumulation period).
pub const PRECIP_FEATURE_NAMES: [&str; 11] = [
    "z_anomaly",
    "relief_r2",
    "relief_r7",
    "relief_r12",
    "slope_x",
    "slope_y",
    "sqrt_relative_intensity",
    "sqrt_relative_intensity_curvature_r3",
    "sqrt_relative_intensity_curvature_r8",
    "sqrt_relative_intensity_times_anomaly",
    "grid_spacing",
];

/// The three kinds of network finecast trains: each has its own features,
/// baseline and working space (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// 2 m air temperature (K): residual over the lapse-rate baseline.
    #[default]
    Temperature,
    /// Precipitation amount or flux: residual of `sqrt(P)` over
    /// `sqrt(bil(P_c))`, in units of `sqrt` of the local mean intensity.
    Precipitation,
    /// 10 m wind vector (m s-1): residual over the bilinear coarse wind,
    /// along and across it (see [`crate::wind_features`]).
    Wind,
}

impl ModelKind {
    /// Names of the kind's feature channels, in channel order
    /// ([`FEATURE_NAMES`], [`PRECIP_FEATURE_NAMES`] or
    /// [`crate::wind_features::WIND_FEATURE_NAMES`]); a sidecar's
    /// [`NormStats::feature_names`] must equal them.
    pub fn feature_names(self) -> &'static [&'static str] {
        match self {
            ModelKind::Temperature => &FEATURE_NAMES,
            ModelKind::Precipitation => &PRECIP_FEATURE_NAMES,
            ModelKind::Wind => &crate::wind_features::WIND_FEATURE_NAMES,
        }
    }

    /// Components of the field the model predicts (and of its network's
    /// output): 1, or 2 for the wind vector.
    pub fn n_outputs(self) -> usize {
        match self {
            ModelKind::Wind => 2,
            ModelKind::Temperature | ModelKind::Precipitation => 1,
        }
    }

    /// Number of feature channels, the network's `in_channels`.
    pub fn n_features(self) -> usize {
        self.feature_names().len()
    }

    /// The physical baseline a network of this kind corrects (the same
    /// method `--method lapse` / `bilinear` runs, recorded in the sidecar):
    /// temperature the lapse-rate baseline `bil(T_c) + Γ (bil(z_c) − z_f)`;
    /// precipitation bilinear, corrected in `sqrt` space relative to the
    /// local intensity; wind the bilinear vector `(bil(u_c), bil(v_c))`,
    /// corrected along and across itself.
    pub fn baseline(self) -> Baseline {
        match self {
            ModelKind::Temperature => Baseline::Lapse,
            ModelKind::Precipitation | ModelKind::Wind => Baseline::Bilinear,
        }
    }

    /// SI units of the fields the model is trained on and applies to.
    pub fn accepts_units(self, units: &str) -> bool {
        match self {
            ModelKind::Temperature => units == "K",
            ModelKind::Precipitation => units == "kg m-2" || units == "kg m-2 s-1",
            ModelKind::Wind => units == "m s-1",
        }
    }

    /// Variable names and CF standard names the model serves.
    pub fn variables(self) -> Vec<String> {
        let names: &[&str] = match self {
            ModelKind::Temperature => &[
                "air_temperature",
                "t2m",
                "tmax",
                "tmin",
                "tas",
                "tasmax",
                "tasmin",
                "2t",
            ],
            ModelKind::Precipitation => &[
                "precipitation_amount",
                "precipitation_flux",
                "lwe_thickness_of_precipitation_amount",
                "lwe_precipitation_rate",
                "tp",
                "tp_1h",
                "ppt",
                "pr",
                "prate",
                "apcp",
            ],
            // 10 m winds by name only: the standard names `eastward_wind`
            // and `northward_wind` do not say the height.
            ModelKind::Wind => &["u10", "v10", "uas", "vas", "10u", "10v"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The model's working value of a physical value (identity for
    /// temperature, `sqrt(max(P, 0))` for precipitation).
    pub fn to_working(self, v: f32) -> f32 {
        match self {
            ModelKind::Temperature | ModelKind::Wind => v,
            ModelKind::Precipitation => v.max(0.0).sqrt(),
        }
    }

    /// Inverse of [`ModelKind::to_working`]; precipitation comes back
    /// non-negative.
    pub fn from_working(self, w: f32) -> f32 {
        match self {
            ModelKind::Temperature | ModelKind::Wind => w,
            ModelKind::Precipitation => {
                let w = w.max(0.0);
                w * w
            }
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Temperature => "temperature",
            ModelKind::Precipitation => "precipitation",
            ModelKind::Wind => "wind",
        })
    }
}

/// Per-channel affine normalisation `(x - mean) / std` of the raw features and
/// the scale of the residual target; computed on training data, stored with
/// the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    /// Names of the channels the statistics belong to, in order; checked
    /// against [`ModelKind::feature_names`] so weights trained on another
    /// feature set are refused.
    pub feature_names: Vec<String>,
    /// Per-channel mean of the raw features (each in its own units), one per
    /// entry of [`NormStats::feature_names`].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the raw features; finite and
    /// positive.
    pub std: Vec<f32>,
    /// Standard deviation of the working-space residual over the baseline
    /// (K for temperature; relative units for precipitation) on the training
    /// data; the network predicts the residual in these units.
    pub residual_std: f32,
    /// Factor applied to the physical output: 1 for temperature. For
    /// precipitation, the ratio of the training truth's total to the
    /// network's, set after training: squaring a conditional mean of
    /// `sqrt(P)` underestimates the mean of `P` (Jensen), a dry bias of a few
    /// per cent that this removes without creating drizzle in dry cells.
    #[serde(default = "unit_gain")]
    pub output_gain: f32,
}

fn unit_gain() -> f32 {
    1.0
}

impl NormStats {
    /// Identity normalisation (used before statistics exist).
    pub fn identity(kind: ModelKind) -> NormStats {
        let n = kind.n_features();
        NormStats {
            feature_names: kind.feature_names().iter().map(|s| s.to_string()).collect(),
            mean: vec![0.0; n],
            std: vec![1.0; n],
            residual_std: 1.0,
            output_gain: 1.0,
        }
    }

    /// Check that the statistics fit a model of `kind`: the same feature
    /// names in order, one finite mean and positive std per channel, a
    /// positive residual std, and an output gain of exactly 1 (temperature,
    /// wind) or within 0.5–2 (precipitation). Fails with
    /// [`ModelError::Mismatch`].
    pub fn validate(&self, kind: ModelKind) -> Result<(), ModelError> {
        let names: Vec<&str> = self.feature_names.iter().map(String::as_str).collect();
        let expected = kind.feature_names();
        if names != expected {
            return Err(ModelError::Mismatch(format!(
                "the weights were trained on features {names:?}, this build computes {expected:?} for {kind}"
            )));
        }
        let n = expected.len();
        if self.mean.len() != n || self.std.len() != n {
            return Err(ModelError::Mismatch(format!(
                "normalisation has {} means and {} stds for {n} features",
                self.mean.len(),
                self.std.len()
            )));
        }
        let bad = self
            .mean
            .iter()
            .chain(&self.std)
            .chain(std::iter::once(&self.residual_std))
            .any(|v| !v.is_finite())
            || self.std.iter().any(|&s| s <= 0.0)
            || self.residual_std <= 0.0;
        if bad {
            return Err(ModelError::Mismatch(
                "normalisation statistics are not finite and positive".into(),
            ));
        }
        let gain_ok = match kind {
            ModelKind::Temperature | ModelKind::Wind => self.output_gain == 1.0,
            ModelKind::Precipitation => {
                self.output_gain.is_finite() && (0.5..=2.0).contains(&self.output_gain)
            }
        };
        if !gain_ok {
            return Err(ModelError::Mismatch(format!(
                "output gain {} is not valid for a {kind} model",
                self.output_gain
            )));
        }
        Ok(())
    }
}

/// The baseline of a scalar tile in the model's working space and the
/// per-cell scale of the residual: the prediction is
/// `from_working(value + residual_std * scale * network)`.
pub struct BaselineFrame {
    /// The baseline in working units, per cell: the lapse-rate baseline (K)
    /// for temperature, `sqrt(bil(P_c))` for precipitation.
    pub value: Array2<f32>,
    /// Per-cell scale of the residual in working units: 1 for temperature;
    /// `sqrt` of the local mean intensity for precipitation (0 where the
    /// whole neighbourhood is dry, which keeps those cells at the baseline).
    pub scale: Array2<f32>,
}

/// What the network's residual is added to: a scalar baseline, or the
/// coarse wind vector and its along-wind direction.
pub enum Frame {
    /// Temperature and precipitation: one baseline value and residual scale
    /// per cell.
    Scalar(BaselineFrame),
    /// Wind: the bilinear coarse vector and its along-wind unit (or shorter,
    /// near calm) vector; the two outputs are along and across it.
    Wind(WindFrame),
}

/// A tile ready for the network: raw features, the mask of cells with
/// every input, and the frame of the baseline the network corrects.
pub struct Prepared {
    /// Raw (not yet normalised) features, `(n_features, ny, nx)`; 0 in every
    /// channel of an invalid cell. [`normalise`] them before the network.
    pub features: Array3<f32>,
    /// `(ny, nx)`: true where every input of the cell is finite; only these
    /// cells get a prediction or a training target.
    pub valid: Array2<bool>,
    /// The baseline the network's residual is added to.
    pub frame: Frame,
}

impl Prepared {
    /// Training targets: the truth's residual over the baseline in working
    /// units (divided by the cell's scale), one channel per network output,
    /// NaN where there is none (an input or the truth missing; a dry
    /// precipitation neighbourhood, which the model keeps dry). `truth` holds
    /// the field's components (eastward and northward for wind).
    /// Fewer truth components than the model has outputs give no targets.
    pub fn targets(&self, kind: ModelKind, truth: &[ArrayView2<f32>]) -> Array3<f32> {
        let (ny, nx) = self.valid.dim();
        let mut out = Array3::from_elem((kind.n_outputs(), ny, nx), f32::NAN);
        if truth.len() < kind.n_outputs() {
            return out;
        }
        match &self.frame {
            Frame::Scalar(frame) => {
                for ((j, i), &ok) in self.valid.indexed_iter() {
                    let (t, scale) = (truth[0][[j, i]], frame.scale[[j, i]]);
                    if ok && t.is_finite() && scale > 0.0 {
                        out[[0, j, i]] = (kind.to_working(t) - frame.value[[j, i]]) / scale;
                    }
                }
            }
            Frame::Wind(frame) => {
                for ((j, i), &ok) in self.valid.indexed_iter() {
                    let (u, v) = (truth[0][[j, i]], truth[1][[j, i]]);
                    if ok && u.is_finite() && v.is_finite() {
                        let [along, across] = frame.residual(j, i, u, v);
                        out[[0, j, i]] = along;
                        out[[1, j, i]] = across;
                    }
                }
            }
        }
        out
    }

    /// The field in physical units from the network's normalised residual
    /// `(outputs, ny, nx)`: `(components, ny, nx)`, NaN where an input is
    /// missing. Precipitation comes back non-negative, times the output gain.
    pub fn apply(
        &self,
        kind: ModelKind,
        residual: ArrayView3<f32>,
        norm: &NormStats,
    ) -> Array3<f32> {
        let (std, gain) = (norm.residual_std, norm.output_gain);
        let (ny, nx) = self.valid.dim();
        let mut out = Array3::from_elem((kind.n_outputs(), ny, nx), f32::NAN);
        match &self.frame {
            Frame::Scalar(frame) => {
                Zip::from(out.index_axis_mut(Axis(0), 0))
                    .and(&frame.value)
                    .and(&frame.scale)
                    .and(residual.index_axis(Axis(0), 0))
                    .and(&self.valid)
                    .for_each(|o, &value, &scale, &r, &ok| {
                        if ok {
                            *o = kind.from_working(value + std * scale * r) * gain;
                        }
                    });
            }
            Frame::Wind(frame) => {
                for ((j, i), &ok) in self.valid.indexed_iter() {
                    if ok {
                        let along = std * residual[[0, j, i]];
                        let across = std * residual[[1, j, i]];
                        let (u, v) = frame.apply(j, i, along, across);
                        out[[0, j, i]] = u;
                        out[[1, j, i]] = v;
                    }
                }
            }
        }
        out
    }

    /// The baseline alone in physical units, as [`Prepared::apply`] with a
    /// zero residual.
    pub fn baseline(&self, kind: ModelKind) -> Array3<f32> {
        let (ny, nx) = self.valid.dim();
        let zero = Array3::zeros((kind.n_outputs(), ny, nx));
        let identity = NormStats::identity(kind);
        self.apply(kind, zero.view(), &identity)
    }
}

/// Features of a model of `kind` and the frame of its baseline
/// ([`ModelKind::baseline`]) on one tile, built together so the local mean
/// intensity both use is computed once. Temperature (lapse rate): scale 1. Precipitation: `sqrt(bil(P_c))`, scale
/// `sqrt(mean_20(bil(P_c)))` (0 where the whole neighbourhood is dry, which
/// keeps those cells at exactly 0). Wind: see [`crate::wind_features`]. Inputs must
/// share one shape, and a wind tile needs its northward component (checked
/// by the caller: cells without one are invalid).
pub fn prepare(kind: ModelKind, inputs: &ModelInputs) -> Prepared {
    if kind == ModelKind::Wind {
        return crate::wind_features::prepare(inputs);
    }
    let (t, zc, zf) = (
        inputs.coarse_bilinear,
        inputs.coarse_orog_bilinear,
        inputs.fine_orog,
    );
    let (features, valid, mean_intensity) = features_and_stats(kind, t, zc, zf, inputs.dx_m);
    let frame = match mean_intensity {
        Some(mean) => BaselineFrame {
            value: t.mapv(|v| ModelKind::Precipitation.to_working(v)),
            scale: mean.mapv(f32::sqrt),
        },
        None => BaselineFrame {
            value: lapse_baseline(t, zc, zf),
            scale: Array2::ones(t.dim()),
        },
    };
    Prepared {
        features,
        valid,
        frame: Frame::Scalar(frame),
    }
}

/// Summed-area tables for local regressions of `t` on `zc`.
struct Regression {
    t: Integral,
    z: Integral,
    z2: Integral,
    tz: Integral,
}

impl Regression {
    fn new(t: ArrayView2<f32>, zc: ArrayView2<f32>, valid: &Array2<bool>) -> Regression {
        let zc2 = zc.mapv(|v| v * v);
        let tzc = Zip::from(t).and(zc).map_collect(|&a, &b| a * b);
        Regression {
            t: Integral::new(t, valid),
            z: Integral::new(zc, valid),
            z2: Integral::new(zc2.view(), valid),
            tz: Integral::new(tzc.view(), valid),
        }
    }

    fn slope(&self, j: usize, i: usize, r: usize) -> f32 {
        let (st, n) = self.t.window(j, i, r);
        let (szc, _) = self.z.window(j, i, r);
        let (szz, _) = self.z2.window(j, i, r);
        let (stz, _) = self.tz.window(j, i, r);
        let var = (szz / n - (szc / n).powi(2)).max(0.0);
        if var.sqrt() < MIN_Z_STD as f64 {
            -LAPSE_RATE
        } else {
            let cov = stz / n - (st / n) * (szc / n);
            ((cov / var) as f32).clamp(SLOPE_MIN, SLOPE_MAX)
        }
    }
}

/// Mean of `max(P, 0)` over the valid cells within [`PRECIP_SCALE_RADIUS`].
fn local_mean_intensity(p: ArrayView2<f32>, valid: &Array2<bool>) -> Array2<f32> {
    let positive = p.mapv(|v| v.max(0.0));
    let ip = Integral::new(positive.view(), valid);
    Array2::from_shape_fn(p.dim(), |(j, i)| {
        let (s, c) = ip.window(j, i, PRECIP_SCALE_RADIUS);
        if c > 0.0 {
            (s / c).max(0.0) as f32
        } else {
            0.0
        }
    })
}

/// The physical baseline `bil(T_c) + Γ (bil(z_c) − z_f)`.
pub fn lapse_baseline(t: ArrayView2<f32>, zc: ArrayView2<f32>, zf: ArrayView2<f32>) -> Array2<f32> {
    let mut out = Array2::zeros(t.dim());
    Zip::from(&mut out)
        .and(t)
        .and(zc)
        .and(zf)
        .for_each(|o, &t, &zc, &zf| *o = t + LAPSE_RATE * (zc - zf));
    out
}

/// Summed-area table of `v` where valid (and of the valid count), with a zero
/// first row and column: shape `(ny + 1, nx + 1)`.
pub(crate) struct Integral {
    sum: Array2<f64>,
    count: Array2<f64>,
}

impl Integral {
    pub(crate) fn new(v: ArrayView2<f32>, valid: &Array2<bool>) -> Integral {
        let (ny, nx) = v.dim();
        let mut sum = Array2::<f64>::zeros((ny + 1, nx + 1));
        let mut count = Array2::<f64>::zeros((ny + 1, nx + 1));
        for j in 0..ny {
            let (mut rs, mut rc) = (0.0f64, 0.0f64);
            for i in 0..nx {
                if valid[[j, i]] {
                    rs += v[[j, i]] as f64;
                    rc += 1.0;
                }
                sum[[j + 1, i + 1]] = sum[[j, i + 1]] + rs;
                count[[j + 1, i + 1]] = count[[j, i + 1]] + rc;
            }
        }
        Integral { sum, count }
    }

    /// Sum and count of valid cells in the box of half-width `r` around
    /// `(j, i)`, truncated at the array edge.
    pub(crate) fn window(&self, j: usize, i: usize, r: usize) -> (f64, f64) {
        let (ny, nx) = (self.sum.nrows() - 1, self.sum.ncols() - 1);
        let (j0, j1) = (j.saturating_sub(r), (j + r + 1).min(ny));
        let (i0, i1) = (i.saturating_sub(r), (i + r + 1).min(nx));
        let rect = |a: &Array2<f64>| a[[j1, i1]] - a[[j0, i1]] - a[[j1, i0]] + a[[j0, i0]];
        (rect(&self.sum), rect(&self.count))
    }
}

/// Raw (unnormalised) features of a model of `kind`, shape
/// `(kind.n_features(), ny, nx)`, plus the validity mask (every input
/// finite). Invalid cells hold 0 in every channel.
pub fn raw_features(kind: ModelKind, inputs: &ModelInputs) -> (Array3<f32>, Array2<bool>) {
    if kind == ModelKind::Wind {
        let p = crate::wind_features::prepare(inputs);
        return (p.features, p.valid);
    }
    let (features, valid, _) = features_and_stats(
        kind,
        inputs.coarse_bilinear,
        inputs.coarse_orog_bilinear,
        inputs.fine_orog,
        inputs.dx_m,
    );
    (features, valid)
}

/// Features of the scalar kinds (the wind's are in [`crate::wind_features`]), the
/// mask of cells with every input and, for precipitation, the local mean
/// intensity its baseline frame is scaled by.
fn features_and_stats(
    kind: ModelKind,
    t: ArrayView2<f32>,
    zc: ArrayView2<f32>,
    zf: ArrayView2<f32>,
    dx_m: f64,
) -> (Array3<f32>, Array2<bool>, Option<Array2<f32>>) {
    let (ny, nx) = t.dim();
    let mut valid = Array2::from_elem((ny, nx), false);
    Zip::from(&mut valid)
        .and(t)
        .and(zc)
        .and(zf)
        .for_each(|m, &a, &b, &c| *m = a.is_finite() && b.is_finite() && c.is_finite());
    let n = kind.n_features();
    let mut f = Array3::<f32>::zeros((n, ny, nx));
    if ny == 0 || nx == 0 {
        let mean = (kind == ModelKind::Precipitation).then(|| Array2::zeros((ny, nx)));
        return (f, valid, mean);
    }
    terrain_features(&mut f, zc, zf, &valid, dx_m);
    let mean_intensity = match kind {
        ModelKind::Temperature => {
            let regression = Regression::new(t, zc, &valid);
            lapse_features(&mut f, t, zc, zf, &valid, &regression);
            surface_features(&mut f, zf, &valid);
            None
        }
        ModelKind::Precipitation => {
            let mean = local_mean_intensity(t, &valid);
            intensity_features(&mut f, t, zc, zf, &valid, &mean);
            // Only precipitation has a grid-spacing channel: its training
            // grids span 1–5 km, the temperature network's only 4–5 km.
            let dx_km = (dx_m / 1000.0) as f32;
            Zip::from(f.index_axis_mut(Axis(0), n - 1))
                .and(&valid)
                .for_each(|v, &ok| {
                    if ok {
                        *v = dx_km
                    }
                });
            Some(mean)
        }
        // Built by `crate::wind_features` (`prepare` and `raw_features` dispatch there).
        ModelKind::Wind => None,
    };
    (f, valid, mean_intensity)
}

/// Channels 0–5, shared by every kind: terrain anomaly, local relief at
/// three scales and the two slope components along the grid axes.
pub(crate) fn terrain_features(
    f: &mut Array3<f32>,
    zc: ArrayView2<f32>,
    zf: ArrayView2<f32>,
    valid: &Array2<bool>,
    dx_m: f64,
) {
    let (ny, nx) = zf.dim();
    let iz = Integral::new(zf, valid);
    // Central differences (one-sided at edges and next to gaps), per metre.
    let dx = dx_m.max(1.0) as f32;
    let diff = |j: usize, i: usize, axis: usize| -> f32 {
        let (n, idx) = if axis == 1 { (nx, i) } else { (ny, j) };
        let at = |k: usize| -> Option<f32> {
            let (jj, ii) = if axis == 1 { (j, k) } else { (k, i) };
            valid[[jj, ii]].then(|| zf[[jj, ii]])
        };
        let lo = if idx > 0 { at(idx - 1) } else { None };
        let hi = if idx + 1 < n { at(idx + 1) } else { None };
        let c = at(idx);
        match (lo, hi, c) {
            (Some(l), Some(h), _) => (h - l) / (2.0 * dx),
            (Some(l), None, Some(c)) => (c - l) / dx,
            (None, Some(h), Some(c)) => (h - c) / dx,
            _ => 0.0,
        }
    };
    for j in 0..ny {
        for i in 0..nx {
            if !valid[[j, i]] {
                continue;
            }
            let zfv = zf[[j, i]];
            f[[0, j, i]] = zfv - zc[[j, i]];
            for (k, &r) in RELIEF_RADII.iter().enumerate() {
                let (s, c) = iz.window(j, i, r);
                f[[1 + k, j, i]] = zfv - (s / c) as f32;
            }
            f[[4, j, i]] = diff(j, i, 1);
            f[[5, j, i]] = diff(j, i, 0);
        }
    }
}

/// Temperature channels 6–10: the coarse field's local lapse rate at two
/// scales, its departure from the standard lapse rate times the terrain
/// anomaly, and the curvature of the coarse field.
fn lapse_features(
    f: &mut Array3<f32>,
    t: ArrayView2<f32>,
    zc: ArrayView2<f32>,
    zf: ArrayView2<f32>,
    valid: &Array2<bool>,
    regression: &Regression,
) {
    let (ny, nx) = t.dim();
    for j in 0..ny {
        for i in 0..nx {
            if !valid[[j, i]] {
                continue;
            }
            let anomaly = zf[[j, i]] - zc[[j, i]];
            for (k, &r) in REGRESSION_RADII.iter().enumerate() {
                let slope = regression.slope(j, i, r);
                f[[6 + 2 * k, j, i]] = slope * 1000.0;
                f[[7 + 2 * k, j, i]] = (slope + LAPSE_RATE) * anomaly;
            }
            // Laplacian-like curvature of the bilinear coarse field (K).
            let (s1, c1) = regression.t.window(j, i, 3);
            f[[10, j, i]] = (s1 / c1) as f32 - t[[j, i]];
        }
    }
}

/// Temperature channels 11–13: the fraction of DEM cells at or below sea
/// level within 3 and 12 cells (coastal cooling and warming; a DEM with sea
/// at 0 m or below, as ETOPO5, marks it), and how much of the DEM's local
/// relief is at the finest scales (RMS of `z_f` minus its 3×3 mean over the
/// RMS of `z_f` minus its 15×15 mean, both over 15×15 cells). The last one
/// tells a smooth DEM (ETOPO5 on a 4 km grid, where the truth has more relief
/// than the DEM) from a sharp one (where it has about as much), so the network
/// can learn how far to trust the terrain anomaly. Every DEM cell with a value
/// counts, including those where other inputs are missing (sea cells of a
/// land-only analysis).
fn surface_features(f: &mut Array3<f32>, zf: ArrayView2<f32>, valid: &Array2<bool>) {
    let has_dem = zf.mapv(f32::is_finite);
    let isea = Integral::new(sea_level_mask(zf).view(), &has_dem);
    let iz = Integral::new(zf, &has_dem);
    let departure = |r: usize| {
        Array2::from_shape_fn(zf.dim(), |(j, i)| {
            if !has_dem[[j, i]] {
                return 0.0;
            }
            let (s, c) = iz.window(j, i, r);
            (zf[[j, i]] - (s / c) as f32).powi(2)
        })
    };
    let (fine, broad) = (departure(1), departure(SHARPNESS_RADIUS));
    let (ifine, ibroad) = (
        Integral::new(fine.view(), &has_dem),
        Integral::new(broad.view(), &has_dem),
    );
    for ((j, i), &ok) in valid.indexed_iter() {
        if !ok {
            continue;
        }
        for (k, &r) in SEA_LEVEL_RADII.iter().enumerate() {
            let (s, c) = isea.window(j, i, r);
            f[[11 + k, j, i]] = (s / c) as f32;
        }
        let (sf, c) = ifine.window(j, i, SHARPNESS_RADIUS);
        let (sb, _) = ibroad.window(j, i, SHARPNESS_RADIUS);
        let rms = |s: f64| (s / c).max(0.0).sqrt() as f32;
        f[[13, j, i]] = rms(sf) / (rms(sb) + SHARPNESS_FLOOR_M);
    }
}

/// 1 where the DEM is at or below sea level (a DEM that stores the sea at
/// 0 m or below, as ETOPO5, marks it this way), else 0.
pub(crate) fn sea_level_mask(zf: ArrayView2<f32>) -> Array2<f32> {
    zf.mapv(|z| if z <= 0.0 { 1.0 } else { 0.0 })
}

/// Gaussian smoothing of `z` (standard deviation `sigma` cells) along both
/// axes, over the cells with a value (missing cells stay missing); `z`
/// itself where `sigma` is not a positive number. Used to show the
/// temperature network DEMs smoother than the one it trains on.
pub fn gaussian_smooth(z: ArrayView2<f32>, sigma: f32) -> Array2<f32> {
    if !(sigma > 0.0 && sigma.is_finite()) {
        return z.to_owned();
    }
    let radius = ((3.0 * sigma).ceil() as usize).clamp(1, z.nrows().max(z.ncols()));
    let weights: Vec<f32> = (0..=radius)
        .map(|k| (-(k as f32).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let pass = |src: ArrayView2<f32>, axis: Axis| -> Array2<f32> {
        let n = src.len_of(axis);
        Array2::from_shape_fn(src.dim(), |(j, i)| {
            if !src[[j, i]].is_finite() {
                return f32::NAN;
            }
            let at = if axis == Axis(0) { j } else { i };
            let (mut sum, mut norm) = (0.0f32, 0.0f32);
            for k in at.saturating_sub(radius)..(at + radius + 1).min(n) {
                let v = if axis == Axis(0) {
                    src[[k, i]]
                } else {
                    src[[j, k]]
                };
                if v.is_finite() {
                    let w = weights[k.abs_diff(at)];
                    sum += w * v;
                    norm += w;
                }
            }
            sum / norm
        })
    };
    let rows = pass(z, Axis(0));
    pass(rows.view(), Axis(1))
}

/// Precipitation channels 6–9: the square root of the intensity, its
/// curvature at two scales (box mean minus value) and its product with the
/// terrain anomaly (km), for orographic enhancement; all divided by the square
/// root of the cell's local mean intensity, so they do not depend on the unit.
/// Where the neighbourhood is dry they are 0.
fn intensity_features(
    f: &mut Array3<f32>,
    p: ArrayView2<f32>,
    zc: ArrayView2<f32>,
    zf: ArrayView2<f32>,
    valid: &Array2<bool>,
    mean: &Array2<f32>,
) {
    let (ny, nx) = p.dim();
    let root = p.mapv(|v| v.max(0.0).sqrt());
    let iroot = Integral::new(root.view(), valid);
    for j in 0..ny {
        for i in 0..nx {
            let m = mean[[j, i]];
            if !valid[[j, i]] || m <= 0.0 {
                continue;
            }
            let norm = 1.0 / m.sqrt();
            let q = root[[j, i]] * norm;
            f[[6, j, i]] = q;
            for (k, r) in [3usize, 8].into_iter().enumerate() {
                let (s, c) = iroot.window(j, i, r);
                f[[7 + k, j, i]] = (s / c) as f32 * norm - q;
            }
            f[[9, j, i]] = q * (zf[[j, i]] - zc[[j, i]]) / 1000.0;
        }
    }
}

/// Normalise raw features in place; invalid cells stay 0.
pub fn normalise(f: &mut Array3<f32>, valid: &Array2<bool>, stats: &NormStats) {
    for (c, mut ch) in f.outer_iter_mut().enumerate() {
        let (m, s) = (stats.mean[c], stats.std[c]);
        Zip::from(&mut ch).and(valid).for_each(|v, &ok| {
            *v = if ok { (*v - m) / s } else { 0.0 };
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    fn tile<'a>(
        t: ArrayView2<'a, f32>,
        zc: ArrayView2<'a, f32>,
        zf: ArrayView2<'a, f32>,
        dx_m: f64,
    ) -> ModelInputs<'a> {
        ModelInputs::new(t, zc, zf, dx_m)
    }

    fn scalar(frame: Frame) -> BaselineFrame {
        match frame {
            Frame::Scalar(f) => f,
            Frame::Wind(_) => panic!("a scalar kind has a scalar frame"),
        }
    }

    fn inputs(ny: usize, nx: usize) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let t = Array2::from_shape_fn((ny, nx), |(j, i)| 280.0 + 0.05 * j as f32 - 0.03 * i as f32);
        let zc = Array2::from_shape_fn((ny, nx), |(j, i)| 500.0 + 3.0 * (j + i) as f32);
        let zf = Array2::from_shape_fn((ny, nx), |(j, i)| {
            500.0 + 3.0 * (j + i) as f32 + 200.0 * ((j as f32 * 0.4).sin() * (i as f32 * 0.3).cos())
        });
        (t, zc, zf)
    }

    #[test]
    fn features_are_local() {
        let (t, zc, zf) = inputs(100, 110);
        // A precipitation field with dry patches, so the relative intensity
        // and its local mean vary.
        let p = Array2::from_shape_fn(t.dim(), |(j, i)| {
            (6.0 * (j as f32 * 0.1).sin() * (i as f32 * 0.07).cos()).max(0.0)
        });
        for (kind, field) in [(ModelKind::Temperature, &t), (ModelKind::Precipitation, &p)] {
            let (full, _) = raw_features(kind, &tile(field.view(), zc.view(), zf.view(), 4000.0));
            let (j0, j1, i0, i1) = (10, 90, 5, 100);
            let mut compared = 0;
            let (part, _) = raw_features(
                kind,
                &tile(
                    field.slice(s![j0..j1, i0..i1]),
                    zc.slice(s![j0..j1, i0..i1]),
                    zf.slice(s![j0..j1, i0..i1]),
                    4000.0,
                ),
            );
            let r = FEATURE_RADIUS;
            for c in 0..kind.n_features() {
                for j in (j0 + r)..(j1 - r) {
                    for i in (i0 + r)..(i1 - r) {
                        let (a, b) = (full[[c, j, i]], part[[c, j - j0, i - i0]]);
                        assert!(
                            (a - b).abs() <= 1e-3 * (1.0 + a.abs()),
                            "{kind} channel {c} at {j},{i}: {a} vs {b}"
                        );
                        compared += 1;
                    }
                }
            }
            assert!(compared > 1000, "only {compared} values compared");
        }
    }

    #[test]
    fn precipitation_features_do_not_depend_on_units() {
        let (_, zc, zf) = inputs(60, 70);
        let mm = Array2::from_shape_fn((60, 70), |(j, i)| {
            (6.0 * (j as f32 * 0.1).sin() * (i as f32 * 0.07).cos()).max(0.0)
        });
        let flux = mm.mapv(|v| v / 3600.0);
        let kind = ModelKind::Precipitation;
        let (a, _) = raw_features(kind, &tile(mm.view(), zc.view(), zf.view(), 3000.0));
        let (b, _) = raw_features(kind, &tile(flux.view(), zc.view(), zf.view(), 3000.0));
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
        }
        assert!(a.index_axis(Axis(0), 6).iter().any(|&v| v > 0.5));
        // The baseline scales with the square root of the unit change.
        let frame = |p: &Array2<f32>| {
            scalar(prepare(kind, &tile(p.view(), zc.view(), zf.view(), 3000.0)).frame)
        };
        let (fa, fb) = (frame(&mm), frame(&flux));
        for (x, y) in fa.scale.iter().zip(fb.scale.iter()) {
            assert!(
                (x / 60.0 - y).abs() <= 1e-4 * (1.0 + x / 60.0),
                "{x} vs {y}"
            );
        }
    }

    #[test]
    fn nan_inputs_give_zero_features() {
        for kind in [ModelKind::Temperature, ModelKind::Precipitation] {
            let (mut t, zc, zf) = inputs(20, 20);
            t[[5, 5]] = f32::NAN;
            let (f, valid) = raw_features(kind, &tile(t.view(), zc.view(), zf.view(), 3000.0));
            assert!(!valid[[5, 5]]);
            assert!(f.iter().all(|v| v.is_finite()));
            assert!((0..kind.n_features()).all(|c| f[[c, 5, 5]] == 0.0));
        }
    }

    #[test]
    fn sea_level_fractions_count_dem_cells_where_other_inputs_are_missing() {
        // Sea (DEM 0 m) fills the columns i < 30, where the coarse field is
        // missing, as in a land-only analysis.
        let (ny, nx) = (40, 60);
        let (mut t, zc, mut zf) = inputs(ny, nx);
        for j in 0..ny {
            for i in 0..30 {
                zf[[j, i]] = 0.0;
                t[[j, i]] = f32::NAN;
            }
        }
        let kind = ModelKind::Temperature;
        let (f, valid) = raw_features(kind, &tile(t.view(), zc.view(), zf.view(), 4000.0));
        assert!(!valid[[20, 29]] && valid[[20, 30]]);
        // On the coast 3 of the 7 columns within 3 cells and 12 of the 25
        // within 12 cells are sea; far inland none.
        assert!(
            (f[[11, 20, 30]] - 3.0 / 7.0).abs() < 1e-6,
            "{}",
            f[[11, 20, 30]]
        );
        assert!(
            (f[[12, 20, 30]] - 12.0 / 25.0).abs() < 1e-6,
            "{}",
            f[[12, 20, 30]]
        );
        assert_eq!((f[[11, 20, 45]], f[[12, 20, 45]]), (0.0, 0.0));
    }

    #[test]
    fn a_smoothed_dem_is_less_sharp() {
        let (t, zc, zf) = inputs(80, 80);
        // Relief at 2-3 cell wavelengths on top of the smooth hills.
        let sharp = Array2::from_shape_fn(zf.dim(), |(j, i)| {
            zf[[j, i]] + 80.0 * (2.3 * j as f32).sin() * (2.9 * i as f32).cos()
        });
        let smooth = gaussian_smooth(sharp.view(), 1.5);
        let kind = ModelKind::Temperature;
        let mean_sharpness = |z: &Array2<f32>| {
            let (f, _) = raw_features(kind, &tile(t.view(), zc.view(), z.view(), 4000.0));
            f.slice(s![13, 20..60, 20..60]).mean().unwrap()
        };
        let (a, b) = (mean_sharpness(&sharp), mean_sharpness(&smooth));
        assert!(a > 0.3 && b < 0.5 * a, "sharp {a}, smoothed {b}");
    }

    #[test]
    fn gaussian_smoothing_keeps_constants_and_gaps() {
        let mut z = Array2::from_elem((20, 30), 750.0f32);
        z[[5, 7]] = f32::NAN;
        assert_eq!(gaussian_smooth(z.view(), 0.0).get((0, 0)), Some(&750.0));
        let s = gaussian_smooth(z.view(), 2.0);
        assert!(s[[5, 7]].is_nan());
        for ((j, i), v) in s.indexed_iter() {
            if (j, i) != (5, 7) {
                assert!((v - 750.0).abs() < 1e-3, "{v} at {j},{i}");
            }
        }
    }
}
