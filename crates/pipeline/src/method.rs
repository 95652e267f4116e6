//! The downscaling methods a job can use: the physical baselines and the
//! trained network, behind one type so jobs, evaluation and the server treat
//! them alike.

use std::fmt;
use std::path::Path;

use finecast_grid::Grid;
use finecast_io::wind::WindComponent;
use finecast_methods::{downscale_at, interpolate, Baseline, CoarseInput, Interp, Positions};
use finecast_model::{ComputeDevice, Downscaler, ModelInputs, ModelKind};
use ndarray::{Array3, ArrayView2, Axis};

use crate::PipelineError;
use finecast_protocol::Quantity;

/// A downscaling method as a job runs it, named by [`Method::name`] (one of
/// [`Method::NAMES`]).
#[derive(Clone, Debug)]
pub enum Method {
    /// A training-free baseline (interpolation, lapse rate, gridpp gradient).
    Baseline(Baseline),
    /// The terrain-conditioned networks (2 m temperature, precipitation,
    /// 10 m wind).
    Model(Networks),
}

/// A coarse field (and its orography) as the methods take it; `context`
/// names it in the error.
pub(crate) fn coarse_input<'a>(
    field: &'a finecast_grid::Field,
    orography: Option<&'a finecast_grid::Field>,
    context: impl FnOnce() -> String,
) -> Result<CoarseInput<'a>, PipelineError> {
    CoarseInput::new(
        field,
        orography,
        &finecast_methods::GradientParams::default(),
    )
    .map_err(|e| PipelineError::Method {
        context: context(),
        source: e,
    })
}

/// The other component of a wind vector, which the wind network needs
/// alongside the component being downscaled.
pub struct WindPartner<'a> {
    /// Which component the variable being downscaled is.
    pub component: WindComponent,
    /// The other component's coarse field (on the same grid).
    pub other: &'a CoarseInput<'a>,
}

/// The trained networks a `model` method uses, at most one per
/// [`ModelKind`]. A job resolves it per variable with
/// [`Method::for_variable`], which leaves exactly one.
#[derive(Clone, Debug)]
pub struct Networks(Vec<Downscaler>);

impl Networks {
    /// The shipped networks of every kind (see `Downscaler::default_path_for`).
    pub fn shipped(device: ComputeDevice) -> Result<Networks, PipelineError> {
        [
            ModelKind::Temperature,
            ModelKind::Precipitation,
            ModelKind::Wind,
        ]
        .into_iter()
        .map(|kind| load(&Downscaler::default_path_for(kind), device))
        .collect::<Result<Vec<_>, _>>()
        .map(Networks)
    }

    /// One network (e.g. `--weights PATH`): only variables of its kind get
    /// it (jobs fall back to bilinear for the rest).
    pub fn single(model: Downscaler) -> Networks {
        Networks(vec![model])
    }

    /// The loaded network of `kind`, if any.
    pub fn get(&self, kind: ModelKind) -> Option<&Downscaler> {
        self.0.iter().find(|m| m.kind() == kind)
    }

    /// Every loaded network (one per kind at most).
    pub fn iter(&self) -> impl Iterator<Item = &Downscaler> {
        self.0.iter()
    }
}

fn load(path: &Path, device: ComputeDevice) -> Result<Downscaler, PipelineError> {
    Downscaler::load_on(path, device).map_err(|e| PipelineError::Model {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The network kind that serves a quantity, if any.
fn kind_of(quantity: Quantity) -> Option<ModelKind> {
    match quantity {
        Quantity::Temperature => Some(ModelKind::Temperature),
        Quantity::Precipitation => Some(ModelKind::Precipitation),
        Quantity::Wind => Some(ModelKind::Wind),
        Quantity::Other => None,
    }
}

impl From<Baseline> for Method {
    fn from(b: Baseline) -> Method {
        Method::Baseline(b)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Method {
    /// Every method name a user can ask for.
    pub const NAMES: [&'static str; 6] = [
        "nearest", "bilinear", "bicubic", "lapse", "gradient", "model",
    ];

    /// Parse a method name; `model` loads `weights` (default: the shipped
    /// temperature, precipitation and wind weights) to run on the CPU.
    pub fn parse(name: &str, weights: Option<&Path>) -> Result<Method, PipelineError> {
        Method::parse_on(name, weights, ComputeDevice::Cpu)
    }

    /// [`Method::parse`], with the network on `device` (a GPU that is not
    /// available falls back to the CPU with a warning).
    pub fn parse_on(
        name: &str,
        weights: Option<&Path>,
        device: ComputeDevice,
    ) -> Result<Method, PipelineError> {
        if name == "model" {
            return Ok(Method::Model(match weights {
                Some(path) => Networks::single(load(path, device)?),
                None => Networks::shipped(device)?,
            }));
        }
        name.parse::<Baseline>().map(Method::Baseline).map_err(|_| {
            PipelineError::Invalid(format!(
                "unknown method '{name}' (expected one of {})",
                Method::NAMES.join(", ")
            ))
        })
    }

    /// The method's name as users give it and outputs record it (provenance,
    /// reports, score tables): the baseline's name, or `model`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Baseline(b) => b.name(),
            Method::Model(_) => "model",
        }
    }

    /// SHA-256 of the weights, for provenance: `kind:sha256` per network,
    /// comma-separated.
    pub fn weights_sha256(&self) -> Option<String> {
        match self {
            Method::Model(nets) => Some(
                nets.iter()
                    .map(|m| format!("{}:{}", m.kind(), m.sha256()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Method::Baseline(_) => None,
        }
    }

    /// The code that runs the networks (a `finecast_model::Kernel` name:
    /// `amx-bf16`, `avx512-f32`, `flex-f32`, `vulkan-f32`, ...).
    pub fn kernel(&self) -> Option<String> {
        match self {
            Method::Model(nets) => nets.iter().next().map(|m| m.kernel().to_string()),
            Method::Baseline(_) => None,
        }
    }

    /// Whether the method uses terrain.
    pub fn needs_terrain(&self) -> bool {
        match self {
            Method::Baseline(b) => b.needs_terrain(),
            Method::Model(_) => true,
        }
    }

    /// The method that applies to a variable of `quantity` known by `names`
    /// (its name and CF standard name), or `None`: the lapse and gradient
    /// baselines are for temperatures; `model` uses the network of the
    /// quantity's kind if one is loaded and serves one of the names (the
    /// temperature network is for air temperature, not dew point; the
    /// precipitation network not for other `kg m-2` fields such as water
    /// vapour).
    pub fn resolve(&self, quantity: Quantity, names: &[&str]) -> Option<Method> {
        match self {
            Method::Baseline(b) if b.needs_terrain() && quantity != Quantity::Temperature => None,
            Method::Baseline(_) => Some(self.clone()),
            Method::Model(nets) => kind_of(quantity)
                .and_then(|k| nets.get(k))
                .filter(|m| names.iter().any(|n| m.supports(n)))
                .map(|m| Method::Model(Networks::single(m.clone()))),
        }
    }

    /// [`Method::resolve`], falling back to bilinear where the method does
    /// not apply (what a job does for, e.g., wind under `--method model`).
    pub fn for_variable(&self, quantity: Quantity, names: &[&str]) -> Method {
        self.resolve(quantity, names)
            .unwrap_or(Method::Baseline(Baseline::Bilinear))
    }

    /// Radius in cells of the input a predicted cell depends on, beyond the
    /// point interpolation: what the tiling halo must cover.
    pub fn footprint(&self) -> usize {
        match self {
            Method::Baseline(_) => 0,
            Method::Model(nets) => nets
                .iter()
                .map(Downscaler::receptive_radius)
                .max()
                .unwrap_or(0),
        }
    }

    /// Whether this is the wind network, which downscales a component only
    /// together with the other one (see [`WindPartner`]).
    pub fn needs_wind_partner(&self) -> bool {
        matches!(self, Method::Model(nets) if nets.iter().any(|m| m.kind() == ModelKind::Wind))
    }

    /// How many fields [`Method::predict_fields`] returns: the outputs (2
    /// for the wind network, eastward and northward, else 1) and, for a
    /// network with a shrinkage, its in-range weight after them.
    pub fn n_fields(&self) -> usize {
        let outputs = if self.needs_wind_partner() { 2 } else { 1 };
        outputs + self.reports_weight() as usize
    }

    /// Whether [`Method::predict_fields`] ends with the network's in-range
    /// weight (a network with a [`finecast_model::Shrinkage`]), so jobs can
    /// say how much of the domain ran shrunk.
    pub fn reports_weight(&self) -> bool {
        matches!(self, Method::Model(nets) if nets.iter().any(|m| m.shrinkage().is_some()))
    }

    /// Split what [`Method::predict_fields`] gave (blended over the tiles)
    /// into the outputs and, where the method reports it, the in-range weight.
    pub fn split_weight(&self, fields: Array3<f32>) -> (Array3<f32>, Option<ndarray::Array2<f32>>) {
        if !self.reports_weight() {
            return (fields, None);
        }
        let n = fields.dim().0 - 1;
        let weight = fields.index_axis(Axis(0), n).to_owned();
        let outputs = fields
            .slice_axis(Axis(0), ndarray::Slice::from(..n))
            .to_owned();
        (outputs, Some(weight))
    }

    /// Downscale onto `dst`, whose cells are at `pos` in the coarse grid:
    /// every field the method computes, `(n_fields, ny, nx)`. The wind
    /// network needs the other wind component (`partner`) and gives both
    /// components, eastward then northward (the variable's own is the one
    /// at its [`WindPartner::component`]'s index). A network with a
    /// shrinkage appends its in-range weight ([`Method::reports_weight`]).
    pub fn predict_fields(
        &self,
        coarse: &CoarseInput,
        partner: Option<&WindPartner>,
        dst: &Grid,
        pos: &Positions,
        fine_orography: Option<ArrayView2<f32>>,
    ) -> Result<Array3<f32>, PipelineError> {
        match self {
            Method::Baseline(b) => downscale_at(*b, coarse, pos, fine_orography)
                .map(|out| out.insert_axis(Axis(0)))
                .map_err(|e| PipelineError::Method {
                    context: format!("method {b}"),
                    source: e,
                }),
            Method::Model(nets) => {
                let [model] = nets.0.as_slice() else {
                    return Err(PipelineError::Invalid(
                        "method model must be resolved to one network per variable (Method::for_variable)".into(),
                    ));
                };
                let (Some(z_c), Some(z_f)) = (coarse.orography, fine_orography) else {
                    return Err(PipelineError::Invalid("method model needs terrain".into()));
                };
                let grid = coarse.grid();
                let t = interpolate(coarse.field.data.view(), grid, pos, Interp::Bilinear);
                let zc = interpolate(z_c.data.view(), grid, pos, Interp::Bilinear);
                let (dx, dy) = dst.spacing_m();
                let inputs = ModelInputs::new(t.view(), zc.view(), z_f.view(), (dx * dy).sqrt())
                    .with_descending_axes(dst.is_y_descending(), dst.is_x_descending());
                let error = |e| PipelineError::Model {
                    path: model.weights_path().to_path_buf(),
                    source: e,
                };
                if model.kind() != ModelKind::Wind {
                    return predict_with_weight(model, &inputs).map_err(error);
                }
                // Checked by the jobs before the tiles run; a library caller
                // that skips them gets an error, not a wrong field.
                let Some(partner) = partner else {
                    return Err(PipelineError::Invalid(
                        "the wind network needs both wind components and was given one".into(),
                    ));
                };
                if partner.other.grid() != grid {
                    return Err(PipelineError::Invalid(
                        "the two wind components given to the wind network are on different grids"
                            .into(),
                    ));
                }
                let other =
                    interpolate(partner.other.field.data.view(), grid, pos, Interp::Bilinear);
                let (east, north) = match partner.component {
                    WindComponent::Eastward => (t.view(), other.view()),
                    WindComponent::Northward => (other.view(), t.view()),
                };
                let angle = dst.x_axis_angle();
                let inputs = ModelInputs {
                    coarse_bilinear: east,
                    ..inputs
                }
                .with_wind(north, Some(angle.view()));
                predict_with_weight(model, &inputs).map_err(error)
            }
        }
    }
}

/// The network's outputs, and its in-range weight after them where it has a
/// shrinkage (see [`Method::n_fields`]).
fn predict_with_weight(
    model: &Downscaler,
    inputs: &ModelInputs,
) -> Result<Array3<f32>, finecast_model::ModelError> {
    Ok(match model.predict_with_weight(inputs)? {
        (out, Some(weight)) => {
            let (n, ny, nx) = out.dim();
            let mut all = Array3::zeros((n + 1, ny, nx));
            all.slice_axis_mut(Axis(0), ndarray::Slice::from(..n))
                .assign(&out);
            all.index_axis_mut(Axis(0), n).assign(&weight);
            all
        }
        (out, None) => out,
    })
}

/// Which of `n` fields computed together is the variable being downscaled.
pub(crate) fn field_of(n: usize, partner: Option<&WindPartner>) -> usize {
    match partner {
        Some(p) if n == 2 => p.component.index(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `model` picks the network by quantity and name, and leaves variables
    /// no network serves to the fallback.
    #[test]
    fn model_resolves_per_variable() {
        let model = Method::parse("model", None).expect("the shipped weights");
        let kind = |m: Option<Method>| match m {
            Some(Method::Model(nets)) => nets.iter().map(|n| n.kind()).collect::<Vec<_>>(),
            other => panic!("expected one network, got {other:?}"),
        };
        assert_eq!(
            kind(model.resolve(Quantity::Temperature, &["t2m", "air_temperature"])),
            [ModelKind::Temperature]
        );
        assert_eq!(
            kind(model.resolve(Quantity::Precipitation, &["tp", "precipitation_amount"])),
            [ModelKind::Precipitation]
        );
        // A dew point is a temperature, but not what the network learnt.
        assert!(model
            .resolve(Quantity::Temperature, &["d2m", "dew_point_temperature"])
            .is_none());
        // Water vapour in kg m-2 is classified with precipitation by its units.
        assert!(model
            .resolve(
                Quantity::Precipitation,
                &["tcwv", "atmosphere_mass_content_of_water_vapor"]
            )
            .is_none());
        assert_eq!(
            kind(model.resolve(Quantity::Wind, &["u10", "eastward_wind"])),
            [ModelKind::Wind]
        );
        // The wind network is for 10 m winds; the standard name does not
        // say the height.
        assert_eq!(
            model
                .for_variable(Quantity::Wind, &["u100", "eastward_wind"])
                .name(),
            "bilinear"
        );
        let lapse = Method::parse("lapse", None).unwrap();
        assert!(lapse.resolve(Quantity::Precipitation, &["tp"]).is_none());
        assert_eq!(
            lapse.for_variable(Quantity::Temperature, &["t2m"]).name(),
            "lapse"
        );
    }
}
