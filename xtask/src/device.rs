//! `--device` parsing. Burn 0.22 picks the backend from the runtime `Device`: `cpu` is the
//! pure-Rust `flex` backend (the fastest CPU backend measured here, see docs/performance.md);
//! `wgpu`, `cuda` and `ndarray` exist when xtask is built with the cargo features of the same
//! name (`wgpu` and `cuda` with Burn's kernel fusion and autotuning).
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
    /// An NVIDIA GPU through burn-cuda (cargo feature `cuda`).
    Cuda,
    /// CPU through the deprecated `ndarray` backend (cargo feature `ndarray`).
    Ndarray,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            "ndarray" => Ok(Self::Ndarray),
            other => Err(format!(
                "unknown device {other:?}: expected cpu, wgpu, cuda or ndarray"
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
            #[cfg(feature = "cuda")]
            Self::Cuda => Ok(Device::cuda(0)),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda => anyhow::bail!(
                "this build has no cuda backend: run `cargo run --release -p xtask --features \
                 cuda -- ...` (needs the CUDA toolkit's NVRTC at run time)"
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

/// The devices of `count` data-parallel GPUs (`--gpus`) of `choice` (`wgpu`: discrete GPUs
/// `0..count`; `cuda`: CUDA devices `0..count`), or the error saying how to build.
pub fn gpu_devices(choice: DeviceChoice, count: usize) -> anyhow::Result<Vec<Device>> {
    match choice {
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu => Ok((0..count)
            .map(|index| Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index)))
            .collect()),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => Ok((0..count).map(Device::cuda).collect()),
        other => other.device().and_then(|_| {
            anyhow::bail!("--gpus {count} needs --device wgpu or cuda, not {other:?}")
        }),
    }
}
