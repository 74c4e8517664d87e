//! Depthwise convolution with TF "same" padding and a hand-written backward for training on
//! Burn's `flex` CPU backend.
//!
//! Burn's flex backend computes a depthwise weight gradient one channel group at a time (a tiny
//! convolution and a slice-assign per channel), which made it ~19% of a training step; its
//! depthwise forward and input gradient are 3-5x slower than PyTorch as well. Here all three run
//! as plain Rust kernels over `f32` planes, parallel over (batch, channel) planes, registered as
//! one custom op in Burn's autodiff graph.
//!
//! Every kernel works on the zero-padded plane, each padded row stored either as is (stride 1)
//! or as its even columns followed by its odd ones (stride 2), so that for every kernel tap
//! `(ky, kx)` the `ox`-run of an output row touches one contiguous run of a padded row:
//! - forward: `y_row[oy] += w[ky, kx] * pad_row[oy * s + ky][col(kx)..]`
//! - input gradient (the transpose): `dpad_row[oy * s + ky][col(kx)..] += w[ky, kx] * g_row[oy]`,
//!   then the interior of the padded gradient is the input gradient
//! - weight gradient: `acc[ky, kx][..] += g_row[oy] * pad_row[oy * s + ky][col(kx)..]`
//!   (element-wise, so it vectorises), summed at the end of the plane and over the batch.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{
    Autodiff, BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind, Flex,
};
use burn::tensor::{DType, GradientCheckpointingStrategy, Tensor, TensorData};
use rayon::prelude::*;

use crate::fast::PlaneGeometry;

/// The autodiff float primitive of `Autodiff<Flex, C>` (the same type for every strategy).
pub(crate) type AdTensor = <Autodiff<Flex> as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// Depthwise convolution with TF "same" padding: exactly
/// `crate::conv::conv2d_same(x, weight, None, stride, channels)`.
///
/// On an autodiff flex device (f32, stride 1 or 2) this runs the custom kernels and registers
/// one autodiff op with a hand-written backward; everywhere else it is Burn's convolution.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`
/// - `weight`: `[channels, 1, k, k]`
/// - output: `[batch, channels, ceil(h / stride), ceil(w / stride)]`
pub fn depthwise_conv2d_same(x: Tensor<4>, weight: Tensor<4>, stride: usize) -> Tensor<4> {
    let [_, channels, _, _] = x.dims();
    let [weight_channels, per_group, kernel_h, kernel_w] = weight.dims();
    let eligible = (stride == 1 || stride == 2)
        && weight_channels == channels
        && per_group == 1
        && kernel_h == kernel_w
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && x.device().is_autodiff()
        && weight.device().is_autodiff();
    if !eligible {
        return crate::conv::conv2d_same(x, weight, None, stride, channels);
    }
    let x = x.into_dispatch();
    let weight = weight.into_dispatch();
    match (flex_autodiff_strategy(&x), flex_autodiff_strategy(&weight)) {
        (Some(a), Some(b)) if a == b => match a {
            GradientCheckpointingStrategy::Disabled => {
                run_strategy::<NoCheckpointing>(x, weight, stride)
            }
            GradientCheckpointingStrategy::Balanced => {
                run_strategy::<BalancedCheckpointing>(x, weight, stride)
            }
        },
        _ => crate::conv::conv2d_same(
            Tensor::from_dispatch(x),
            Tensor::from_dispatch(weight),
            None,
            stride,
            channels,
        ),
    }
}

/// The checkpointing strategy of an autodiff flex float tensor; `None` for anything else.
pub(crate) fn flex_autodiff_strategy(
    tensor: &DispatchTensor,
) -> Option<GradientCheckpointingStrategy> {
    match (&tensor.kind, tensor.autodiff) {
        (DispatchTensorKind::Autodiff(inner), DispatchAutodiffContext::Enabled(strategy)) =>
        {
            #[allow(unreachable_patterns)]
            match inner.as_ref() {
                DispatchTensorKind::Flex(BackendTensor::Autodiff(_)) => Some(strategy),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A rank-`D` float tensor that [`flex_autodiff_strategy`] found on `Autodiff<Flex, C>`, as
/// that backend's primitive (what the custom ops of this crate take).
pub(crate) fn flex_primitive<C, const D: usize>(tensor: DispatchTensor) -> AdTensor
where
    C: CheckpointStrategy,
    DispatchTensor: burn::backend::DispatchKindConversion<Autodiff<Flex, C>>,
{
    Tensor::<D>::from_dispatch(tensor)
        .try_into_primitive::<Autodiff<Flex, C>>()
        .expect("checked: an autodiff flex float tensor")
}

/// Unwraps both tensors for `Autodiff<Flex, C>`, runs the op, wraps the output back.
fn run_strategy<C>(x: DispatchTensor, weight: DispatchTensor, stride: usize) -> Tensor<4>
where
    C: CheckpointStrategy,
    DispatchTensor: burn::backend::DispatchKindConversion<Autodiff<Flex, C>>,
{
    let x = flex_primitive::<C, 4>(x);
    let weight = flex_primitive::<C, 4>(weight);
    let output = depthwise_autodiff::<C>(x, weight, stride);
    Tensor::from_primitive::<Autodiff<Flex, C>>(output)
}

/// The backward step of [`depthwise_conv2d_same`].
#[derive(Debug)]
struct DepthwiseBackward;

/// Saved for the backward pass: the input, the weight and the stride.
#[derive(Clone, Debug)]
struct DepthwiseState {
    x: FlexTensor,
    weight: FlexTensor,
    stride: usize,
}

impl Backward<Flex, 2> for DepthwiseBackward {
    type State = DepthwiseState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let DepthwiseState { x, weight, stride } = ops.state;
        let geometry = Geometry::new(dims4(&x), dims4(&weight)[2], stride);
        let grad_values = contiguous_f32(&grad);
        if let Some(node) = node_weight {
            let x_values = contiguous_f32(&x);
            let values = weight_grad(&geometry, &x_values, &grad_values);
            let shape = dims4(&weight);
            grads.register::<Flex>(node.id, flex_from(values, shape));
        }
        if let Some(node) = node_x {
            let weight_values = contiguous_f32(&weight);
            let values = input_grad(&geometry, &weight_values, &grad_values);
            grads.register::<Flex>(node.id, flex_from(values, geometry.input_dims()));
        }
    }
}

fn depthwise_autodiff<C: CheckpointStrategy>(
    x: AdTensor,
    weight: AdTensor,
    stride: usize,
) -> AdTensor {
    let prep = DepthwiseBackward
        .prepare::<C>([x.node(), weight.node()])
        .compute_bound()
        .stateful();
    let x = x.into_primitive();
    let weight = weight.into_primitive();
    let geometry = Geometry::new(dims4(&x), dims4(&weight)[2], stride);
    let output = {
        let x_values = contiguous_f32(&x);
        let weight_values = contiguous_f32(&weight);
        flex_from(
            forward(&geometry, &x_values, &weight_values),
            geometry.output_dims(),
        )
    };
    match prep {
        OpsKind::Tracked(prep) => prep.finish(DepthwiseState { x, weight, stride }, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

fn dims4(tensor: &FlexTensor) -> [usize; 4] {
    use burn::backend::TensorMetadata;
    let shape = tensor.shape();
    assert_eq!(shape.num_dims(), 4, "depthwise conv takes 4-D tensors");
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The tensor's `f32` values in row-major order (borrowed when already contiguous).
pub(crate) fn contiguous_f32(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => std::borrow::Cow::Borrowed(values),
        None => std::borrow::Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec(),
        ),
    }
}

/// `tensor` as a uniquely owned, contiguous `f32` tensor whose storage holds exactly its
/// values (itself when it already is: a gradient handed to a backward step usually is), so
/// that a result of the same shape can be written over it with `storage_mut` and no copy.
pub(crate) fn whole_f32(tensor: FlexTensor) -> FlexTensor {
    let count = tensor.shape().num_elements();
    let whole = tensor.is_unique()
        && tensor.layout().contiguous_offsets() == Some((0, count))
        && tensor.storage::<f32>().len() == count;
    if whole {
        tensor
    } else {
        let shape = tensor.shape();
        FlexTensor::from_data(TensorData::new(contiguous_f32(&tensor).into_owned(), shape))
    }
}

fn flex_from(values: Vec<f32>, dims: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

/// Sizes of one depthwise convolution and of its padded planes.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    channels: usize,
    /// One plane's padding and (stride 2) column split, shared with the inference kernels.
    plane: PlaneGeometry,
    out_h: usize,
}

impl Geometry {
    fn new([batch, channels, height, width]: [usize; 4], kernel: usize, stride: usize) -> Self {
        Self {
            batch,
            channels,
            plane: PlaneGeometry::new([height, width], kernel, stride),
            out_h: height.div_ceil(stride),
        }
    }

    fn input_dims(&self) -> [usize; 4] {
        [
            self.batch,
            self.channels,
            self.plane.height,
            self.plane.width,
        ]
    }

    fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_h, self.plane.out_w]
    }

    fn plane_in(&self) -> usize {
        self.plane.height * self.plane.width
    }

    fn plane_out(&self) -> usize {
        self.out_h * self.plane.out_w
    }

    fn taps(&self) -> usize {
        self.plane.kernel * self.plane.kernel
    }

    /// The zero-padded (and for stride 2, column-split) copy of one input plane.
    #[inline(always)]
    fn pad(&self, plane: &[f32]) -> Vec<f32> {
        let mut padded = vec![0f32; self.plane.padded_h * self.plane.padded_w];
        self.plane.pad_plane(plane, &mut padded);
        padded
    }

    /// The interior of a padded (split) plane written back as an unpadded plane.
    #[inline(always)]
    fn unpad(&self, padded: &[f32], plane: &mut [f32]) {
        for (row, target) in plane.chunks_exact_mut(self.plane.width).enumerate() {
            let base = (row + self.plane.pad_top) * self.plane.padded_w;
            let source = &padded[base..base + self.plane.padded_w];
            if self.plane.stride == 1 {
                target.copy_from_slice(
                    &source[self.plane.pad_left..self.plane.pad_left + self.plane.width],
                );
            } else {
                for (i, value) in target.iter_mut().enumerate() {
                    *value = source[self.plane.tap_column(i + self.plane.pad_left)];
                }
            }
        }
    }

    /// The run of padded row `oy * stride + ky` that kernel column `kx` reads for one output row.
    #[inline(always)]
    fn run(&self, oy: usize, ky: usize, kx: usize) -> std::ops::Range<usize> {
        let start = (oy * self.plane.stride + ky) * self.plane.padded_w + self.plane.tap_column(kx);
        start..start + self.plane.out_w
    }
}

/// `y[n, c] = sum over taps of w[c, ky, kx] * shifted x[n, c]`.
fn forward(geometry: &Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let g = *geometry;
    let mut output = vec![0f32; g.batch * g.channels * g.plane_out()];
    if output.is_empty() {
        return output;
    }
    output
        .par_chunks_mut(g.plane_out())
        .enumerate()
        .for_each(|(index, out_plane)| {
            let channel = index % g.channels;
            let filter = &weight[channel * g.taps()..(channel + 1) * g.taps()];
            let x_plane = &x[index * g.plane_in()..(index + 1) * g.plane_in()];
            crate::fast::simd(
                #[inline(always)]
                || forward_plane(&g, filter, x_plane, out_plane),
            );
        });
    output
}

#[inline(always)]
fn forward_plane(g: &Geometry, filter: &[f32], x_plane: &[f32], out_plane: &mut [f32]) {
    let padded = g.pad(x_plane);
    for (oy, out_row) in out_plane.chunks_exact_mut(g.plane.out_w).enumerate() {
        for ky in 0..g.plane.kernel {
            for kx in 0..g.plane.kernel {
                let w = filter[ky * g.plane.kernel + kx];
                let source = &padded[g.run(oy, ky, kx)];
                for (o, i) in out_row.iter_mut().zip(source) {
                    *o += w * i;
                }
            }
        }
    }
}

/// The input gradient: the transposed depthwise convolution of the output gradient.
fn input_grad(geometry: &Geometry, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let g = *geometry;
    let mut dx = vec![0f32; g.batch * g.channels * g.plane_in()];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(g.plane_in())
        .enumerate()
        .for_each(|(index, dx_plane)| {
            let channel = index % g.channels;
            let filter = &weight[channel * g.taps()..(channel + 1) * g.taps()];
            let grad_plane = &grad[index * g.plane_out()..(index + 1) * g.plane_out()];
            crate::fast::simd(
                #[inline(always)]
                || input_grad_plane(&g, filter, grad_plane, dx_plane),
            );
        });
    dx
}

#[inline(always)]
fn input_grad_plane(g: &Geometry, filter: &[f32], grad_plane: &[f32], dx_plane: &mut [f32]) {
    let mut padded = vec![0f32; g.plane.padded_h * g.plane.padded_w];
    for (oy, grad_row) in grad_plane.chunks_exact(g.plane.out_w).enumerate() {
        for ky in 0..g.plane.kernel {
            for kx in 0..g.plane.kernel {
                let w = filter[ky * g.plane.kernel + kx];
                let target = &mut padded[g.run(oy, ky, kx)];
                for (t, d) in target.iter_mut().zip(grad_row) {
                    *t += w * d;
                }
            }
        }
    }
    g.unpad(&padded, dx_plane);
}

/// The weight gradient: per channel, the correlation of the input with the output gradient,
/// summed over the batch.
fn weight_grad(geometry: &Geometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let g = *geometry;
    let taps = g.taps();
    let mut partial = vec![0f32; g.batch * g.channels * taps];
    if partial.is_empty() || g.plane_out() == 0 {
        return vec![0f32; g.channels * taps];
    }
    partial
        .par_chunks_mut(taps)
        .enumerate()
        .for_each(|(index, plane_grad)| {
            let x_plane = &x[index * g.plane_in()..(index + 1) * g.plane_in()];
            let grad_plane = &grad[index * g.plane_out()..(index + 1) * g.plane_out()];
            crate::fast::simd(
                #[inline(always)]
                || weight_grad_plane(&g, x_plane, grad_plane, plane_grad),
            );
        });
    let mut total = vec![0f32; g.channels * taps];
    for batch_part in partial.chunks_exact(g.channels * taps) {
        for (t, p) in total.iter_mut().zip(batch_part) {
            *t += p;
        }
    }
    total
}

#[inline(always)]
fn weight_grad_plane(g: &Geometry, x_plane: &[f32], grad_plane: &[f32], plane_grad: &mut [f32]) {
    let taps = g.taps();
    let padded = g.pad(x_plane);
    // One running row per tap: element-wise accumulation vectorises, a dot product (a
    // sequential f32 sum) would not.
    let mut accumulators = vec![0f32; taps * g.plane.out_w];
    for (oy, grad_row) in grad_plane.chunks_exact(g.plane.out_w).enumerate() {
        for ky in 0..g.plane.kernel {
            for kx in 0..g.plane.kernel {
                let tap = ky * g.plane.kernel + kx;
                let accumulator = &mut accumulators[tap * g.plane.out_w..(tap + 1) * g.plane.out_w];
                let source = &padded[g.run(oy, ky, kx)];
                for ((a, d), i) in accumulator.iter_mut().zip(grad_row).zip(source) {
                    *a += d * i;
                }
            }
        }
    }
    for (value, accumulator) in plane_grad
        .iter_mut()
        .zip(accumulators.chunks_exact(g.plane.out_w))
    {
        *value = accumulator.iter().sum();
    }
}
