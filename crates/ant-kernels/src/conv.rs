//! Convolution helpers on Burn tensors: TensorFlow "same" padding, convolutions and max
//! pooling with it, 1x1 convolutions as matrix products for training, and swish.

use burn::tensor::Tensor;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};

/// TensorFlow "same" padding of one spatial dimension: (before, after).
///
/// Output size is `ceil(size / stride)`; the odd pixel of padding goes after, as in TF and
/// timm's `Conv2dSame`.
pub fn same_padding(size: usize, kernel_size: usize, stride: usize) -> (usize, usize) {
    let output = size.div_ceil(stride);
    let total = ((output - 1) * stride + kernel_size).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// A 2-D convolution with TF "same" padding.
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]`
/// - `weight`: `[out_channels, in_channels / groups, k, k]`
/// - output: `[batch, out_channels, ceil(height / stride), ceil(width / stride)]`
pub fn conv2d_same(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    groups: usize,
) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let [_, _, kernel_h, kernel_w] = weight.dims();
    if kernel_h == 1 && kernel_w == 1 && stride == 1 && groups == 1 && x.device().is_autodiff() {
        return pointwise_matmul(x, weight, bias);
    }
    let options = ConvOptions::new_with_padding(
        [stride, stride],
        [
            same_padding(height, kernel_h, stride),
            same_padding(width, kernel_w, stride),
        ],
        [1, 1],
        groups,
    );
    conv2d(x, weight, bias, options)
}

/// A 1x1 convolution (stride 1, no groups) as a batched matrix product, for training: Burn's
/// CPU backends compute a convolution's weight gradient as another convolution whose input
/// channels are the batch, which took 12% of a `flex` training step; as a matmul, the
/// forward and both gradients are GEMMs.
///
/// # Shapes
/// `x`: `[batch, in, h, w]`, `weight`: `[out, in, 1, 1]` -> `[batch, out, h, w]`.
pub fn pointwise_matmul(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [batch, channels, height, width] = x.dims();
    let [out_channels, _, _, _] = weight.dims();
    let weight =
        weight
            .reshape([1, out_channels, channels])
            .expand([batch, out_channels, channels]);
    let y = weight.matmul(x.reshape([batch, channels, height * width]));
    let y = match bias {
        Some(bias) => y + bias.reshape([1, out_channels, 1]),
        None => y,
    };
    y.reshape([batch, out_channels, height, width])
}

/// Max pooling with TF "same" padding (padding never wins: it is `-inf`); a fused CPU kernel
/// at inference (see [`crate::fast::max_pool_same`]).
pub fn max_pool_same(x: Tensor<4>, kernel_size: usize, stride: usize) -> Tensor<4> {
    crate::fast::max_pool_same(x, kernel_size, stride)
}

/// Max pooling with TF "same" padding through Burn's op.
pub fn max_pool_same_burn(x: Tensor<4>, kernel_size: usize, stride: usize) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let options = MaxPoolOptions::new([kernel_size, kernel_size])
        .with_stride([stride, stride])
        .with_padding_pairs([
            same_padding(height, kernel_size, stride),
            same_padding(width, kernel_size, stride),
        ]);
    max_pool2d(x, options)
}

/// Swish (SiLU), the activation of EfficientNet and EfficientDet.
pub fn swish(x: Tensor<4>) -> Tensor<4> {
    crate::fast::swish(x)
}
