//! Shared helpers for the criterion benches of the ant workspace (see `benches/`).

use burn::tensor::{Device, Distribution, Tensor};

/// A normalised random input of `[1, 3, size, size]`.
pub fn random_input(size: usize, device: &Device) -> Tensor<4> {
    Tensor::random([1, 3, size, size], Distribution::Normal(0.0, 1.0), device)
}
