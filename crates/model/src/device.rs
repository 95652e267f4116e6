//! Where the network runs: the CPU (finecast's engine or flex) or a
//! GPU through Burn's Vulkan backend (cargo feature `gpu`). Asking for a GPU
//! that this build or this machine cannot give falls back to the CPU with a
//! warning that says why, so a job never fails for want of a GPU.

use std::str::FromStr;

use burn::tensor::Device;

/// The device a user asks for (`--device cpu|gpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    /// The CPU: the best kernel of finecast's engine this CPU has, or the
    /// one `FINECAST_MODEL_KERNEL` names (`flex` for Burn's flex). The
    /// default.
    #[default]
    Cpu,
    /// The default Vulkan adapter (needs the cargo feature `gpu`); falls back
    /// to the CPU, with a warning, when this build or machine has none.
    Gpu,
}

impl FromStr for ComputeDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(ComputeDevice::Cpu),
            "gpu" => Ok(ComputeDevice::Gpu),
            other => Err(format!("unknown device '{other}' (expected cpu or gpu)")),
        }
    }
}

/// The flex CPU device.
pub fn cpu() -> Device {
    Device::flex()
}

/// The device to run on for a request, and whether it is a GPU.
pub fn resolve(choice: ComputeDevice) -> (Device, bool) {
    match choice {
        ComputeDevice::Cpu => (cpu(), false),
        ComputeDevice::Gpu => match gpu() {
            Ok(device) => (device, true),
            Err(why) => {
                tracing::warn!("--device gpu: {why}; running on the CPU");
                (cpu(), false)
            }
        },
    }
}

#[cfg(not(feature = "gpu"))]
fn gpu() -> Result<Device, String> {
    Err(
        "this finecast was built without the `gpu` feature (cargo build --release --features gpu)"
            .into(),
    )
}

/// The default Vulkan adapter, checked with a small round trip: wgpu panics
/// when there is no adapter or driver, which is turned into an error here.
#[cfg(feature = "gpu")]
fn gpu() -> Result<Device, String> {
    use burn::tensor::{DeviceKind, Tensor};
    let probe = std::panic::catch_unwind(|| {
        let device = Device::vulkan(DeviceKind::DefaultDevice);
        let t = Tensor::<1>::from_floats([1.0, 2.0], &device) * 2.0;
        let back = t.into_data().try_to_vec::<f32>().unwrap_or_default();
        (device, back)
    });
    match probe {
        Ok((device, back)) if back == [2.0, 4.0] => Ok(device),
        Ok((_, back)) => Err(format!("the Vulkan device computed {back:?} for [2, 4]")),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown error".into());
            Err(format!(
                "no usable Vulkan device ({})",
                why.lines().next().unwrap_or("")
            ))
        }
    }
}
