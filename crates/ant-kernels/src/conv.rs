//! Convolution helpers on Burn tensors: TensorFlow "same" padding, convolutions and max
//! pooling with it, 1x1 convolutions as matrix products for training, and swish.

use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions, PadMode};
use burn::tensor::{Slice, Tensor};

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
    if groups == 1 && x.device().is_autodiff() {
        if kernel_h == 1 && kernel_w == 1 && stride == 1 {
            return pointwise_matmul(x, weight, bias);
        }
        if kernel_h == kernel_w {
            return im2col_matmul(x, weight, bias, stride);
        }
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

/// A dense square convolution (no groups) with TF "same" padding as im2col + matrix product,
/// for training: the columns are `k * k` strided slices of the padded input, stacked, and the
/// product is [`pointwise_matmul`]'s. Burn's CPU backends run the stem (3 input channels) as a
/// direct convolution and its weight gradient as another one whose kernel is the whole
/// output map: 10-13% of a `flex` training step at about 1 GMAC/s. Here the forward and
/// the weight gradient are GEMMs over `in * k * k` columns. The columns cost
/// `in * k * k / stride^2` times the input's memory (6.75x for the stem), so this is meant for
/// convolutions with few input channels.
///
/// # Shapes
/// `x`: `[batch, in, h, w]`, `weight`: `[out, in, k, k]` ->
/// `[batch, out, ceil(h / stride), ceil(w / stride)]`
pub fn im2col_matmul(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
) -> Tensor<4> {
    let [batch, channels, height, width] = x.dims();
    let [out_channels, _, kernel, _] = weight.dims();
    let out_h = height.div_ceil(stride);
    let out_w = width.div_ceil(stride);
    let padded = x.pad(
        [
            (0, 0),
            (0, 0),
            same_padding(height, kernel, stride),
            same_padding(width, kernel, stride),
        ],
        PadMode::Constant(0.0),
    );
    // Tap (ky, kx) of every output pixel: rows ky, ky + stride, ... of the padded input.
    let tap = |start: usize, count: usize| {
        let end = start + stride * (count - 1) + 1;
        Slice::new(start as isize, Some(end as isize), stride as isize)
    };
    let taps = (0..kernel * kernel)
        .map(|index| {
            let (ky, kx) = (index / kernel, index % kernel);
            padded.clone().slice([
                Slice::from(0..batch),
                Slice::from(0..channels),
                tap(ky, out_h),
                tap(kx, out_w),
            ])
        })
        .collect();
    // [batch, in, k * k, oh, ow]: the column order of the weight's `[out, in, k, k]` layout.
    let columns: Tensor<5> = Tensor::stack(taps, 2);
    let columns = columns.reshape([batch, channels * kernel * kernel, out_h, out_w]);
    let weight = weight.reshape([out_channels, channels * kernel * kernel, 1, 1]);
    pointwise_matmul(columns, weight, bias)
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
