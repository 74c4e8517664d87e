//! `--device` parsing. Burn 0.22 picks the backend from the runtime `Device`: `cpu` is the
//! pure-Rust `flex` backend (the fastest CPU backend measured here, see docs/performance.md);
//! `wgpu` and `ndarray` exist when xtask is built with the cargo features of the same name.
//! The device is always explicit: `Device::default()` would prefer wgpu when compiled in.

use std::str::FromStr;

use burn::tensor::Device;

/// A device a command can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CPU through Burn's `flex` backend (default).
    #[default]
    Cpu,
    /// The GPU through `wgpu` (cargo feature `wgpu`).
    Wgpu,
    /// CPU through the deprecated `ndarray` backend (cargo feature `ndarray`).
    Ndarray,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "ndarray" => Ok(Self::Ndarray),
            other => Err(format!(
                "unknown device {other:?}: expected cpu, wgpu or ndarray"
            )),
        }
    }
}

impl DeviceChoice {
    /// The Burn device, or an error saying which cargo feature to build with.
    pub fn device(self) -> anyhow::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            Self::Wgpu => anyhow::bail!(
                "this build has no wgpu backend: run `cargo xtask --features wgpu ...` \
                 (cargo run --release -p xtask --features wgpu -- ...)"
            ),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // Selectable on purpose: the design card names it.
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(not(feature = "ndarray"))]
            Self::Ndarray => anyhow::bail!(
                "this build has no ndarray backend: build xtask with `--features ndarray`"
            ),
        }
    }
}

/// The devices of `count` data-parallel GPUs (`--gpus`): discrete GPUs `0..count` through
/// wgpu, or the error saying how to build with wgpu.
pub fn gpu_devices(count: usize) -> anyhow::Result<Vec<Device>> {
    #[cfg(feature = "wgpu")]
    {
        Ok((0..count)
            .map(|index| Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index)))
            .collect())
    }
    #[cfg(not(feature = "wgpu"))]
    {
        DeviceChoice::Wgpu
            .device()
            .map(|_| vec![Device::flex(); count])
    }
}
