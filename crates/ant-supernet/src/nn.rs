//! Small building blocks shared by the backbone, BiFPN and heads: TensorFlow "same" padding,
//! convolution weights with optional bias, separable convolutions and batch norm.
//!
//! Layers keep their weights as plain parameters and run through Burn's functional ops
//! (`burn::tensor::module::conv2d`), so elastic layers can slice them per call.

use burn::module::{Module, Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use crate::config::{BN_EPSILON, BN_MOMENTUM};
use crate::error::Result;
use crate::weights::WeightMap;

pub use ant_kernels::conv::{
    conv2d_same, max_pool_same, max_pool_same_burn, pointwise_matmul, same_padding, swish,
};

/// Convolution weights, with an optional bias.
#[derive(Module, Debug)]
pub struct ConvWeight {
    /// `[out_channels, in_channels / groups, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// `[out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
}

impl ConvWeight {
    /// He-normal on fan-out (timm's `_init_weight_goog`), zero bias.
    pub fn init(
        out_channels: usize,
        in_per_group: usize,
        kernel_size: usize,
        groups: usize,
        bias: bool,
        device: &Device,
    ) -> Self {
        let fan_out = (kernel_size * kernel_size * out_channels / groups).max(1) as f64;
        let weight = Tensor::random(
            [out_channels, in_per_group, kernel_size, kernel_size],
            Distribution::Normal(0.0, (2.0 / fan_out).sqrt()),
            device,
        );
        Self {
            weight: Param::from_tensor(weight),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([out_channels], device))),
        }
    }

    /// Runs the convolution with TF "same" padding (a depthwise one without bias through
    /// [`ant_kernels::dwconv::depthwise_conv2d_same`], which has a fast backward for training on
    /// the CPU).
    pub fn forward(&self, x: Tensor<4>, stride: usize, groups: usize) -> Tensor<4> {
        let [out_channels, in_per_group, _, _] = self.weight.dims();
        if groups > 1 && in_per_group == 1 && out_channels == groups && self.bias.is_none() {
            return ant_kernels::fast::depthwise_same(x, self.weight.val(), stride);
        }
        conv2d_same(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            stride,
            groups,
        )
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Loads `{prefix}.weight` (and `{prefix}.bias` when present in the model).
    pub fn load(&mut self, weights: &mut WeightMap, prefix: &str, device: &Device) -> Result<()> {
        let shape = self.weight.dims().to_vec();
        let data = weights.take(&format!("{prefix}.weight"), &shape)?;
        self.weight = Param::from_tensor(Tensor::from_data(data, device));
        if let Some(bias) = &self.bias {
            let shape = bias.dims().to_vec();
            let data = weights.take(&format!("{prefix}.bias"), &shape)?;
            self.bias = Some(Param::from_tensor(Tensor::from_data(data, device)));
        }
        Ok(())
    }
}

/// A batch norm with effdet's epsilon and momentum.
pub fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(BN_EPSILON)
        .with_momentum(BN_MOMENTUM)
        .init(device)
}

/// Loads a PyTorch `BatchNorm2d` (`weight`, `bias`, `running_mean`, `running_var`) into
/// `bn`, taking the first `bn`-size channels when the checkpoint's layer is wider.
pub fn load_batch_norm(
    bn: &mut BatchNorm,
    weights: &mut WeightMap,
    prefix: &str,
    device: &Device,
) -> Result<()> {
    let [channels] = bn.gamma.dims();
    let mut take = |name: &str| -> Result<Tensor<1>> {
        let data = weights.take_prefix(&format!("{prefix}.{name}"), channels)?;
        Ok(Tensor::from_data(data, device))
    };
    bn.gamma = Param::from_tensor(take("weight")?);
    bn.beta = Param::from_tensor(take("bias")?);
    bn.running_mean = RunningState::new(take("running_mean")?);
    bn.running_var = RunningState::new(take("running_var")?);
    weights.mark_used(&format!("{prefix}.num_batches_tracked"));
    Ok(())
}

/// Depthwise then pointwise convolution (effdet's `SeparableConv2d`), optionally followed
/// by batch norm. No activation.
#[derive(Module, Debug)]
pub struct SeparableConv {
    /// `[channels, 1, 3, 3]`, no bias.
    pub depthwise: ConvWeight,
    /// `[out_channels, channels, 1, 1]` with bias.
    pub pointwise: ConvWeight,
    /// Present in the BiFPN, absent in the heads (which keep per-level norms).
    pub bn: Option<BatchNorm>,
}

impl SeparableConv {
    /// A 3x3 separable conv.
    pub fn init(channels: usize, out_channels: usize, with_bn: bool, device: &Device) -> Self {
        Self {
            depthwise: ConvWeight::init(channels, 1, 3, channels, false, device),
            pointwise: ConvWeight::init(out_channels, channels, 1, 1, true, device),
            bn: with_bn.then(|| batch_norm(out_channels, device)),
        }
    }

    /// # Shapes
    /// `[batch, channels, h, w] -> [batch, out_channels, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, channels, _, _] = x.dims();
        let x = self.depthwise.forward(x, 1, channels);
        let x = self.pointwise.forward(x, 1, 1);
        match &self.bn {
            Some(bn) => ant_kernels::fast::norm_act(bn, x, false),
            None => x,
        }
    }

    /// Loads effdet's `{prefix}.conv_dw`, `{prefix}.conv_pw` and `{prefix}.bn`.
    pub fn load(&mut self, weights: &mut WeightMap, prefix: &str, device: &Device) -> Result<()> {
        self.depthwise
            .load(weights, &format!("{prefix}.conv_dw"), device)?;
        self.pointwise
            .load(weights, &format!("{prefix}.conv_pw"), device)?;
        if let Some(bn) = &mut self.bn {
            load_batch_norm(bn, weights, &format!("{prefix}.bn"), device)?;
        }
        Ok(())
    }
}

/// Builds a 1-D tensor from values.
pub fn tensor_1d(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_pad_like_tensorflow_same() {
        // Stride 2, kernel 3, even input: one pixel after only.
        assert_eq!(same_padding(512, 3, 2), (0, 1));
        // Stride 2, kernel 5: one before, two after.
        assert_eq!(same_padding(64, 5, 2), (1, 2));
        // Stride 1 is symmetric for odd kernels.
        assert_eq!(same_padding(64, 5, 1), (2, 2));
        // Odd input with stride 2, kernel 3: symmetric.
        assert_eq!(same_padding(5, 3, 2), (1, 1));
    }
}
