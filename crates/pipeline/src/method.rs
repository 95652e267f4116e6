//! The downscaling methods a job can use: the physical baselines and the
//! trained network, behind one type so jobs, evaluation and the server treat
//! them alike.

use std::fmt;
use std::path::Path;

use finecast_grid::Grid;
use finecast_methods::{downscale_at, interpolate, Baseline, CoarseInput, Interp, Positions};
use finecast_model::{ComputeDevice, Downscaler, ModelInputs};
use ndarray::{Array2, ArrayView2};

use crate::quantity::Quantity;
use crate::PipelineError;

#[derive(Clone, Debug)]
pub enum Method {
    Baseline(Baseline),
    /// The terrain-conditioned network (2 m temperature).
    Model(Downscaler),
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
    /// weights) to run on the CPU.
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
            let path = weights
                .map(Path::to_path_buf)
                .unwrap_or_else(Downscaler::default_path);
            let model = Downscaler::load_on(&path, device).map_err(|e| PipelineError::Model {
                path: path.clone(),
                source: e,
            })?;
            return Ok(Method::Model(model));
        }
        name.parse::<Baseline>().map(Method::Baseline).map_err(|_| {
            PipelineError::Invalid(format!(
                "unknown method '{name}' (expected one of {})",
                Method::NAMES.join(", ")
            ))
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Method::Baseline(b) => b.name(),
            Method::Model(_) => "model",
        }
    }

    /// SHA-256 of the weights, for provenance.
    pub fn weights_sha256(&self) -> Option<&str> {
        match self {
            Method::Model(m) => Some(m.sha256()),
            Method::Baseline(_) => None,
        }
    }

    /// The code that runs the network (`amx-bf16`, `flex-f32`, `vulkan-f32`).
    pub fn kernel(&self) -> Option<String> {
        match self {
            Method::Model(m) => Some(m.kernel().to_string()),
            Method::Baseline(_) => None,
        }
    }

    /// Whether the method uses terrain, which ties it to temperature.
    pub fn needs_terrain(&self) -> bool {
        match self {
            Method::Baseline(b) => b.needs_terrain(),
            Method::Model(_) => true,
        }
    }

    /// The method that applies to a quantity: terrain methods and the
    /// network are for temperature; everything else falls back to bilinear.
    pub fn for_quantity(&self, quantity: Quantity) -> Method {
        if self.needs_terrain() && quantity != Quantity::Temperature {
            Method::Baseline(Baseline::Bilinear)
        } else {
            self.clone()
        }
    }

    /// Radius in cells of the input a predicted cell depends on, beyond the
    /// point interpolation: what the tiling halo must cover.
    pub fn footprint(&self) -> usize {
        match self {
            Method::Baseline(_) => 0,
            Method::Model(m) => m.receptive_radius(),
        }
    }

    /// Downscale onto `dst`, whose cells are at `pos` in the coarse grid.
    pub fn predict(
        &self,
        coarse: &CoarseInput,
        dst: &Grid,
        pos: &Positions,
        fine_orography: Option<ArrayView2<f32>>,
    ) -> Result<Array2<f32>, PipelineError> {
        match self {
            Method::Baseline(b) => {
                downscale_at(*b, coarse, pos, fine_orography).map_err(|e| PipelineError::Method {
                    context: format!("method {b}"),
                    source: e,
                })
            }
            Method::Model(model) => {
                let (Some(z_c), Some(z_f)) = (coarse.orography, fine_orography) else {
                    return Err(PipelineError::Invalid("method model needs terrain".into()));
                };
                let grid = coarse.grid();
                let t = interpolate(coarse.field.data.view(), grid, pos, Interp::Bilinear);
                let zc = interpolate(z_c.data.view(), grid, pos, Interp::Bilinear);
                let (dx, dy) = dst.spacing_m();
                let inputs = ModelInputs {
                    coarse_bilinear: t.view(),
                    coarse_orog_bilinear: zc.view(),
                    fine_orog: z_f.view(),
                    dx_m: (dx * dy).sqrt(),
                };
                model.predict(&inputs).map_err(|e| PipelineError::Model {
                    path: model.weights_path().to_path_buf(),
                    source: e,
                })
            }
        }
    }
}
