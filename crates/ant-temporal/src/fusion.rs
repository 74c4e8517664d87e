//! The fusion module (paper Sec. 3.2): a non-key frame's stage-level feature is concatenated
//! with the key frame's feature of the same stage, then a 1x1 pointwise conv (2C -> C), batch
//! norm, swish, a 3x3 depthwise conv, batch norm, swish.
//!
//! Swish is the activation of the EfficientNet backbone it sits in; convolutions use TF "same"
//! padding like the rest of the model (`ant_supernet::nn`).
//!
//! Optionally (`residual`, our addition, off by default) the module's output is added to an
//! anchor feature and its last norm starts at zero scale, so a fresh module returns the
//! anchor: with [`FusionAnchor::Current`] a non-key frame starts as its gated subnet on its
//! own pixels and learns what to take from the key frame; with [`FusionAnchor::Key`] it
//! starts as the key frame's feature (the reused stage output of the full network) and learns
//! the change since the key frame from the current frame's feature. Either way the next stage
//! never starts from a random map it has never seen. The paper's module (no residual) needs
//! its 8 GPU epochs to recover from that; the CPU default trains stage 2 for a few hundred
//! steps.

use ant_kernels::act::sigmoid_train;
use ant_supernet::nn::{ConvWeight, batch_norm, swish};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::BatchNorm;
use burn::prelude::*;

/// What a residual [`Fusion`] adds its output to.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum FusionAnchor {
    /// The current frame's (gated subnet's) stage feature.
    Current,
    /// The key frame's stage feature (full network).
    Key,
    /// A blend of the two: `key + m * (current - key)` with a per-position, per-channel mask
    /// `m = sigmoid(...)` from the module's body (the last activation a sigmoid, its norm's
    /// shift starting at -4, so `m` starts near 0.02 and the module near the key frame's
    /// feature). The mask's gradient is the feature error times `current - key`, large
    /// exactly where the frame changed: it learns where to take the current frame in a few
    /// hundred steps, where a zero-scale residual branch barely moves.
    Blend,
}

/// The starting shift of a blend mask's last norm: `sigmoid(-4) = 0.018`.
pub const BLEND_MASK_SHIFT: f32 = -4.0;

/// Configuration of one [`Fusion`].
#[derive(Config, Debug)]
pub struct FusionConfig {
    /// Channels `C` of the stage-level feature (the output has the same).
    pub channels: usize,
    /// Depthwise kernel size.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Add the output to an anchor feature, the last norm's scale starting at zero.
    #[config(default = false)]
    pub residual: bool,
    /// The feature a residual module adds its output to.
    #[config(default = "FusionAnchor::Current")]
    pub anchor: FusionAnchor,
}

impl FusionConfig {
    /// A randomly initialised fusion module (He-normal convs, unit batch norms).
    pub fn init(&self, device: &Device) -> Fusion {
        let channels = self.channels;
        let mut bn_depthwise = batch_norm(channels, device);
        match (self.residual, self.anchor) {
            (true, FusionAnchor::Blend) => {
                bn_depthwise.beta = Param::from_tensor(
                    bn_depthwise
                        .beta
                        .val()
                        .zeros_like()
                        .add_scalar(BLEND_MASK_SHIFT),
                );
            }
            (true, _) => {
                bn_depthwise.gamma = Param::from_tensor(bn_depthwise.gamma.val().zeros_like());
            }
            (false, _) => {}
        }
        Fusion {
            pointwise: ConvWeight::init(channels, 2 * channels, 1, 1, false, device),
            bn_pointwise: batch_norm(channels, device),
            depthwise: ConvWeight::init(channels, 1, self.kernel_size, channels, false, device),
            bn_depthwise,
            channels,
            residual: self.residual,
            anchor: self.anchor,
        }
    }
}

/// Fuses the current frame's stage feature with the key frame's.
#[derive(Module, Debug)]
pub struct Fusion {
    /// `[C, 2C, 1, 1]`, over `cat(current, key)`.
    pub pointwise: ConvWeight,
    /// After the pointwise conv.
    pub bn_pointwise: BatchNorm,
    /// `[C, 1, k, k]`, groups = C.
    pub depthwise: ConvWeight,
    /// After the depthwise conv.
    pub bn_depthwise: BatchNorm,
    /// `C`.
    #[module(skip)]
    pub channels: usize,
    /// Whether the output is added to the anchor feature.
    #[module(skip)]
    pub residual: bool,
    /// The anchor feature of a residual module.
    #[module(skip)]
    pub anchor: FusionAnchor,
}

impl Fusion {
    /// # Shapes
    /// - `current`: `[batch, C, h, w]`, the non-key frame's stage feature
    /// - `key`: `[batch, C, h, w]` (or `[1, C, h, w]`, broadcast over the batch)
    /// - output: `[batch, C, h, w]`
    pub fn forward(&self, current: Tensor<4>, key: Tensor<4>) -> Tensor<4> {
        let [batch_size, channels, height, width] = current.dims();
        debug_assert_eq!(channels, self.channels, "fusion built for other channels");
        let key = if key.dims()[0] == batch_size {
            key
        } else {
            key.expand([batch_size, channels, height, width])
        };
        let blend = self.residual && self.anchor == FusionAnchor::Blend;
        let pair = (self.residual || blend).then(|| (current.clone(), key.clone()));
        let x = Tensor::cat(vec![current, key], 1); // [batch, 2C, h, w]
        let x = swish(self.bn_pointwise.forward(self.pointwise.forward(x, 1, 1)));
        let body = self
            .bn_depthwise
            .forward(self.depthwise.forward(x, 1, self.channels));
        match (pair, self.anchor) {
            (Some((current, key)), FusionAnchor::Blend) => {
                let mask = sigmoid_train(body);
                key.clone() + mask * (current - key)
            }
            (Some((current, _)), FusionAnchor::Current) => current + swish(body),
            (Some((_, key)), FusionAnchor::Key) => key + swish(body),
            (None, _) => swish(body),
        }
    }

    /// Multiply-accumulates at a `size x size` feature map (torch's counting: convs only).
    pub fn macs(&self, size: usize) -> u64 {
        fusion_macs(self.channels, self.depthwise.weight.dims()[2], size)
    }
}

/// Multiply-accumulates of a fusion module of `channels` at `size x size`.
pub fn fusion_macs(channels: usize, kernel_size: usize, size: usize) -> u64 {
    let pixels = (size * size) as u64;
    let pointwise = (channels * 2 * channels) as u64;
    let depthwise = (channels * kernel_size * kernel_size) as u64;
    (pointwise + depthwise) * pixels
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn should_keep_the_shape_of_the_stage_feature() {
        let device = Device::flex();
        let fusion = FusionConfig::new(8).init(&device);
        let current = Tensor::<4>::random([2, 8, 5, 7], Distribution::Default, &device);
        let key = Tensor::<4>::random([1, 8, 5, 7], Distribution::Default, &device);
        assert_eq!(fusion.forward(current, key).dims(), [2, 8, 5, 7]);
    }

    #[test]
    fn should_depend_on_the_key_frame_feature() {
        let device = Device::flex();
        let fusion = FusionConfig::new(4).init(&device);
        let current = Tensor::<4>::random([1, 4, 6, 6], Distribution::Default, &device);
        let key_a = Tensor::<4>::random([1, 4, 6, 6], Distribution::Default, &device);
        let key_b = key_a.clone() + 1.0;
        let a = fusion.forward(current.clone(), key_a);
        let b = fusion.forward(current, key_b);
        let difference: f32 = (a - b).abs().sum().into_scalar();
        assert!(difference > 1e-3);
    }

    #[test]
    fn should_start_as_the_identity_when_residual_and_learn_from_the_key() {
        let device = Device::flex();
        let fusion = FusionConfig::new(4).with_residual(true).init(&device);
        let current = Tensor::<4>::random([2, 4, 6, 6], Distribution::Default, &device);
        let key = Tensor::<4>::random([1, 4, 6, 6], Distribution::Default, &device);
        let fused = fusion.forward(current.clone(), key.clone());
        let difference: f32 = (fused - current.clone()).abs().max().into_scalar();
        assert_eq!(difference, 0.0);
        // Once the last norm has a scale, the key frame matters.
        let mut trained = fusion;
        trained.bn_depthwise.gamma =
            Param::from_tensor(trained.bn_depthwise.gamma.val().ones_like());
        let a = trained.forward(current.clone(), key.clone());
        let b = trained.forward(current, key + 1.0);
        assert!((a - b).abs().sum().into_scalar::<f32>() > 1e-3);
    }

    #[test]
    fn should_start_as_the_key_feature_when_anchored_on_the_key() {
        let device = Device::flex();
        let fusion = FusionConfig::new(4)
            .with_residual(true)
            .with_anchor(FusionAnchor::Key)
            .init(&device);
        let current = Tensor::<4>::random([2, 4, 6, 6], Distribution::Default, &device);
        let key = Tensor::<4>::random([1, 4, 6, 6], Distribution::Default, &device);
        let fused = fusion.forward(current.clone(), key.clone());
        let difference: f32 = (fused - key.clone().expand([2, 4, 6, 6]))
            .abs()
            .max()
            .into_scalar();
        assert_eq!(difference, 0.0);
        let mut trained = fusion;
        trained.bn_depthwise.gamma =
            Param::from_tensor(trained.bn_depthwise.gamma.val().ones_like());
        let a = trained.forward(current.clone(), key.clone());
        let b = trained.forward(current + 1.0, key);
        assert!((a - b).abs().sum().into_scalar::<f32>() > 1e-3);
    }

    #[test]
    fn should_blend_from_near_the_key_toward_the_current_feature() {
        let device = Device::flex();
        // Seeded: the draws would otherwise depend on which tests of this binary ran first.
        device.seed(7);
        let fusion = FusionConfig::new(4)
            .with_residual(true)
            .with_anchor(FusionAnchor::Blend)
            .init(&device);
        let current = Tensor::<4>::random([2, 4, 6, 6], Distribution::Default, &device);
        let key = Tensor::<4>::random([1, 4, 6, 6], Distribution::Default, &device);
        let key_batch = key.clone().expand([2, 4, 6, 6]);
        let fused = fusion.forward(current.clone(), key.clone());
        // m is about sigmoid(-4 + N(0, 1)) at first: the output is mostly the key's.
        let from_key: f32 = (fused.clone() - key_batch.clone())
            .abs()
            .mean()
            .into_scalar();
        let span: f32 = (current.clone() - key_batch.clone())
            .abs()
            .mean()
            .into_scalar();
        assert!(from_key < 0.2 * span, "{from_key} vs {span}");
        // Always between the two, per value.
        let low = current.clone().min_pair(key_batch.clone());
        let high = current.clone().max_pair(key_batch.clone());
        let below: f32 = (low - fused.clone()).clamp_min(0.0).max().into_scalar();
        let above: f32 = (fused.clone() - high).clamp_min(0.0).max().into_scalar();
        assert!(below < 1e-6 && above < 1e-6);
        // A mask shifted far up takes the current frame (at +20 a normalised input near -10
        // left 5e-5 of the key).
        let mut open = fusion;
        open.bn_depthwise.beta =
            Param::from_tensor(open.bn_depthwise.beta.val().zeros_like().add_scalar(40.0));
        let taken: f32 = (open.forward(current.clone(), key) - current)
            .abs()
            .max()
            .into_scalar();
        assert!(taken < 1e-5, "{taken}");
    }

    #[test]
    fn should_count_pointwise_and_depthwise_macs() {
        // 16 channels at 4x4: (16 * 32 + 16 * 9) * 16.
        assert_eq!(fusion_macs(16, 3, 4), (512 + 144) * 16);
    }
}
