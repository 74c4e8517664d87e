//! Shared helpers for the criterion benches of the ant workspace (see `benches/`).

use burn::tensor::{Device, Distribution, Tensor};

/// A normalised random input of `[1, 3, size, size]`.
pub fn random_input(size: usize, device: &Device) -> Tensor<4> {
    Tensor::random([1, 3, size, size], Distribution::Normal(0.0, 1.0), device)
}

/// The input size of the temporal benches: `ANT_BENCH_SIZE` (for a quicker run), else 512.
pub fn bench_size() -> usize {
    std::env::var("ANT_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
}

/// What the temporal benches run: a randomly initialised D0 supernet (4 classes) at `size`,
/// its fusion modules and gates, and one random input frame.
pub struct D0Temporal {
    /// The supernet detector.
    pub model: ant_supernet::EfficientDet,
    /// Fusion modules and gates.
    pub temporal: ant_temporal::AntTemporal,
    /// `[1, 3, size, size]`.
    pub input: Tensor<4>,
}

impl D0Temporal {
    /// Builds it on `device`.
    pub fn new(size: usize, device: &Device) -> Self {
        let config = ant_supernet::EfficientDetConfig::d0(4).with_image_size(size);
        let model = ant_supernet::EfficientDet::init(&config, device);
        let temporal = ant_temporal::AntTemporalConfig::new().init(&config.backbone, device);
        let input = random_input(size, device);
        Self {
            model,
            temporal,
            input,
        }
    }
}
