//! Batch norm with the batch's statistics (training), with statistics that do not depend on
//! the backend's reduction order.
//!
//! Burn's `batch_norm_train` takes each channel's mean and variance as one `mean_dim` over
//! `batch * height * width` values in `f32`. On a stem map of four 256-px frames that is 65,536
//! values per channel, and the rounding of the long sum shows: against an `f64` reference the
//! mean was off by 5.5e-4 of the channel's standard deviation on `flex` and by 1.3e-4 on wgpu,
//! and the two backends' training forwards of the same model on the same frames differed by
//! 2.4e-3 at the heads (`crates/ant-train/tests/backends.rs`). At 512 px and batch 16 the sums
//! are 16 times longer.
//!
//! Here:
//! - on an autodiff `flex` device (f32) one custom op accumulates each channel's sums in `f64`
//!   (forward: mean and centred second moment; backward: the sums of `g` and `g * x_hat`;
//!   eight partial sums per plane, added in a fixed order, so that they vectorise and give
//!   the same bits on every instruction set), channels in parallel, with the analytic backward
//!   `dx = gamma / std * (g - mean(g) - x_hat * mean(g * x_hat))`;
//! - on every other autodiff device, Burn's ops with the statistics reduced one dimension at a
//!   time (width, height, then batch: sums of at most a few hundred terms each).
//!
//! Both agree with an `f64` reference within a few `f32` roundings (this module's tests), so
//! the backends agree with each other. The running statistics are updated as Burn's
//! `BatchNorm` does (momentum, biased variance).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, DispatchTensor, Flex, TensorMetadata};
use burn::nn::BatchNorm;
use burn::tensor::{DType, GradientCheckpointingStrategy, Tensor, TensorData};
use rayon::prelude::*;

use crate::dwconv::{AdTensor, contiguous_f32, flex_autodiff_strategy, flex_primitive, whole_f32};
use crate::fast::simd;

/// `bn` applied to `x` as Burn's `BatchNorm::forward` does it, with accurate batch statistics
/// in training (see the module docs): the batch's statistics when `x` is on an autodiff
/// device and the norm is in training, updating the running statistics; the running
/// statistics otherwise (Burn's own path).
///
/// # Shapes
/// `[batch, channels, h, w]` -> same.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let device = x.device();
    let BatchStats {
        output,
        mean,
        variance,
    } = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let momentum = bn.momentum;
    let update = |running: Tensor<1>, batch: Tensor<1>| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - momentum)
            .add(batch.detach().mul_scalar(momentum))
            .detach()
    };
    bn.running_mean
        .update(update(bn.running_mean.value_sync(), mean));
    bn.running_var
        .update(update(bn.running_var.value_sync(), variance));
    output
}

/// The normalised output and the batch's per-channel mean and biased variance.
pub struct BatchStats {
    /// `gamma * (x - mean) / sqrt(variance + epsilon) + beta`.
    pub output: Tensor<4>,
    /// Per-channel mean, `[channels]` (no gradient).
    pub mean: Tensor<1>,
    /// Per-channel biased variance, `[channels]` (no gradient).
    pub variance: Tensor<1>,
}

/// Batch norm with the batch's statistics: one custom op on an autodiff flex device (f32),
/// Burn's ops with staged reductions elsewhere ([`batch_norm_train_staged`]).
///
/// # Shapes
/// `x`: `[batch, channels, h, w]`; `gamma`, `beta`: `[channels]`.
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchStats {
    let eligible = x.dtype() == DType::F32
        && gamma.dtype() == DType::F32
        && beta.dtype() == DType::F32
        && x.device().is_autodiff();
    if !eligible {
        return batch_norm_train_staged(x, gamma, beta, epsilon);
    }
    let device = x.device();
    let (x, gamma, beta) = (
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
    );
    let strategies = [&x, &gamma, &beta].map(flex_autodiff_strategy);
    let strategy = match strategies {
        [Some(a), Some(b), Some(c)] if a == b && b == c => Some(a),
        _ => None,
    };
    let (output, stats) = match strategy {
        Some(GradientCheckpointingStrategy::Disabled) => {
            run_strategy::<NoCheckpointing>(x, gamma, beta, epsilon)
        }
        Some(GradientCheckpointingStrategy::Balanced) => {
            run_strategy::<BalancedCheckpointing>(x, gamma, beta, epsilon)
        }
        None => {
            return batch_norm_train_staged(
                Tensor::from_dispatch(x),
                Tensor::from_dispatch(gamma),
                Tensor::from_dispatch(beta),
                epsilon,
            );
        }
    };
    let channels = stats.mean.len();
    let to_tensor = |values: Vec<f64>| {
        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
        Tensor::<1>::from_data(TensorData::new(values, [channels]), &device).detach()
    };
    BatchStats {
        output,
        mean: to_tensor(stats.mean),
        variance: to_tensor(stats.variance),
    }
}

/// Batch norm with the batch's statistics through Burn's ops, each statistic reduced over
/// width, then height, then batch; differentiable on any backend.
pub fn batch_norm_train_staged(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchStats {
    let [batch, channels, height, width] = x.dims();
    let staged_mean = |t: Tensor<4>| t.mean_dim(3).mean_dim(2).mean_dim(0);
    // `[1, channels, 1, 1]` to the input's shape one dimension at a time: the backward of each
    // expansion sums one dimension, so the gradients of the statistics, gamma and beta are
    // staged sums too. A broadcast's backward sums all three dimensions in one reduction: on
    // lavapipe that put the stem norm's gamma update 7.2e-3 away from flex's (1.4e-5 staged).
    let expand = |t: Tensor<4>| {
        t.expand([1, channels, 1, width])
            .expand([1, channels, height, width])
            .expand([batch, channels, height, width])
    };
    let mean = staged_mean(x.clone());
    let centred = x - expand(mean.clone());
    let variance = staged_mean(centred.clone() * centred.clone());
    let scale =
        variance.clone().add_scalar(epsilon).sqrt().recip() * gamma.reshape([1, channels, 1, 1]);
    let output = centred * expand(scale) + expand(beta.reshape([1, channels, 1, 1]));
    BatchStats {
        output,
        mean: mean.reshape([channels]).detach(),
        variance: variance.reshape([channels]).detach(),
    }
}

/// Per-channel statistics of the flex op, in `f64`.
struct ChannelStats {
    mean: Vec<f64>,
    variance: Vec<f64>,
}

/// Unwraps the tensors for `Autodiff<Flex, C>`, runs the op, wraps the output back.
fn run_strategy<C>(
    x: DispatchTensor,
    gamma: DispatchTensor,
    beta: DispatchTensor,
    epsilon: f64,
) -> (Tensor<4>, ChannelStats)
where
    C: CheckpointStrategy,
    DispatchTensor: burn::backend::DispatchKindConversion<Autodiff<Flex, C>>,
{
    let x = flex_primitive::<C, 4>(x);
    let [gamma, beta] = [gamma, beta].map(flex_primitive::<C, 1>);
    let (output, stats) = batch_norm_autodiff::<C>(x, gamma, beta, epsilon);
    (Tensor::from_primitive::<Autodiff<Flex, C>>(output), stats)
}

/// The backward step of [`batch_norm_train`] on flex.
#[derive(Debug)]
struct BatchNormBackward;

/// Saved for the backward pass.
#[derive(Clone, Debug)]
struct BatchNormState {
    x: FlexTensor,
    gamma: Vec<f32>,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

impl Backward<Flex, 3> for BatchNormBackward {
    type State = BatchNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let BatchNormState {
            x,
            gamma,
            mean,
            inv_std,
        } = ops.state;
        let dims = dims4(&x);
        let x_values = contiguous_f32(&x);
        let grad_values = contiguous_f32(&grad);
        let planes = Planes::new(dims);
        // Per channel: sum(g) and sum(g * x_hat), in f64.
        let sums: Vec<(f64, f64)> = (0..planes.channels)
            .into_par_iter()
            .map(|channel| {
                let (m, s) = (mean[channel], inv_std[channel]);
                let mut sum_g = 0f64;
                let mut sum_gx = 0f64;
                for plane in planes.of(channel) {
                    let (xs, gs) = (&x_values[plane.clone()], &grad_values[plane]);
                    let (a, b) = simd(
                        #[inline(always)]
                        || lane_sums2(xs, gs, m),
                    );
                    sum_g += a;
                    sum_gx += b * s;
                }
                (sum_g, sum_gx)
            })
            .collect();
        let channel_tensor =
            |values: Vec<f32>| FlexTensor::from_data(TensorData::new(values, [planes.channels]));
        if let Some(node) = node_beta {
            let values = sums.iter().map(|(g, _)| *g as f32).collect();
            grads.register::<Flex>(node.id, channel_tensor(values));
        }
        if let Some(node) = node_gamma {
            let values = sums.iter().map(|(_, gx)| *gx as f32).collect();
            grads.register::<Flex>(node.id, channel_tensor(values));
        }
        if let Some(node) = node_x {
            let count = planes.count() as f64;
            let plane_len = planes.plane.max(1);
            // The input's gradient is written over the output's, which has its shape.
            drop(grad_values);
            let mut grad = whole_f32(grad);
            grad.storage_mut::<f32>()
                .par_chunks_mut(plane_len)
                .enumerate()
                .for_each(|(index, gs)| {
                    let channel = index % planes.channels;
                    let (m, s) = (mean[channel], inv_std[channel]);
                    let (sum_g, sum_gx) = sums[channel];
                    let (mean_g, mean_gx) = (sum_g / count, sum_gx / count);
                    let scale = gamma[channel] as f64 * s;
                    let start = index * plane_len;
                    let xs = &x_values[start..start + plane_len];
                    simd(
                        #[inline(always)]
                        || input_grad_plane(xs, gs, [m, s, scale, mean_g, mean_gx]),
                    );
                });
            grads.register::<Flex>(node.id, grad);
        }
    }
}

/// Independent partial sums per plane: enough to keep an `f64` add unit busy (a single
/// running sum waits for each add in turn), in a fixed order that no instruction set changes.
const LANES: usize = 8;

/// `sum(f(v as f64))` over `values`: value `i` goes to partial sum `i % LANES`, and the partial
/// sums are added pairwise in a fixed order.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0f64; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v as f64);
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += f(v as f64);
    }
    combine(lanes)
}

/// `(sum(g), sum(g * (x - mean)))` over a plane, as [`lane_sum`] adds.
#[inline(always)]
fn lane_sums2(xs: &[f32], gs: &[f32], mean: f64) -> (f64, f64) {
    let (mut a, mut b) = ([0f64; LANES], [0f64; LANES]);
    let (mut x_chunks, mut g_chunks) = (xs.chunks_exact(LANES), gs.chunks_exact(LANES));
    for (x_chunk, g_chunk) in (&mut x_chunks).zip(&mut g_chunks) {
        for lane in 0..LANES {
            let g = g_chunk[lane] as f64;
            a[lane] += g;
            b[lane] += g * (x_chunk[lane] as f64 - mean);
        }
    }
    for (lane, (&x, &g)) in x_chunks
        .remainder()
        .iter()
        .zip(g_chunks.remainder())
        .enumerate()
    {
        a[lane] += g as f64;
        b[lane] += g as f64 * (x as f64 - mean);
    }
    (combine(a), combine(b))
}

#[inline(always)]
fn combine(l: [f64; LANES]) -> f64 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// `out = x * scale + shift` over a plane.
#[inline(always)]
fn affine_plane(xs: &[f32], out: &mut [f32], scale: f32, shift: f32) {
    for (out, &x) in out.iter_mut().zip(xs) {
        *out = x * scale + shift;
    }
}

/// The input's gradient over a plane, written over the output's gradient `gs`:
/// `scale * (g - mean(g) - x_hat * mean(g * x_hat))`, `x_hat = (x - mean) * inv_std`, in `f64`.
#[inline(always)]
fn input_grad_plane(xs: &[f32], gs: &mut [f32], [m, s, scale, mean_g, mean_gx]: [f64; 5]) {
    for (g, &x) in gs.iter_mut().zip(xs) {
        let x_hat = (x as f64 - m) * s;
        *g = (scale * (*g as f64 - mean_g - x_hat * mean_gx)) as f32;
    }
}

/// The planes of a `[batch, channels, h, w]` tensor, by channel.
#[derive(Clone, Copy, Debug)]
struct Planes {
    batch: usize,
    channels: usize,
    plane: usize,
}

impl Planes {
    fn new([batch, channels, height, width]: [usize; 4]) -> Self {
        Self {
            batch,
            channels,
            plane: height * width,
        }
    }

    /// Values per channel.
    fn count(&self) -> usize {
        self.batch * self.plane
    }

    /// The index ranges of `channel`'s planes, one per sample.
    fn of(&self, channel: usize) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let Planes {
            channels, plane, ..
        } = *self;
        (0..self.batch).map(move |sample| {
            let start = (sample * channels + channel) * plane;
            start..start + plane
        })
    }
}

fn dims4(tensor: &FlexTensor) -> [usize; 4] {
    let shape = tensor.shape();
    assert_eq!(shape.num_dims(), 4, "batch norm takes 4-D tensors here");
    [shape[0], shape[1], shape[2], shape[3]]
}

fn batch_norm_autodiff<C: CheckpointStrategy>(
    x: AdTensor,
    gamma: AdTensor,
    beta: AdTensor,
    epsilon: f64,
) -> (AdTensor, ChannelStats) {
    let prep = BatchNormBackward
        .prepare::<C>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful();
    let x = x.into_primitive();
    let gamma = contiguous_f32(&gamma.into_primitive()).into_owned();
    let beta = contiguous_f32(&beta.into_primitive()).into_owned();
    let dims = dims4(&x);
    let planes = Planes::new(dims);
    let x_values = contiguous_f32(&x);
    let count = planes.count() as f64;
    // Two passes per channel in f64: the mean, then the centred second moment.
    let stats: Vec<(f64, f64)> = (0..planes.channels)
        .into_par_iter()
        .map(|channel| {
            let sum: f64 = planes
                .of(channel)
                .map(|p| {
                    simd(
                        #[inline(always)]
                        || lane_sum(&x_values[p], |v| v),
                    )
                })
                .sum();
            let mean = sum / count;
            let squares: f64 = planes
                .of(channel)
                .map(|p| {
                    simd(
                        #[inline(always)]
                        || lane_sum(&x_values[p], |v| (v - mean) * (v - mean)),
                    )
                })
                .sum();
            (mean, squares / count)
        })
        .collect();
    let mean: Vec<f64> = stats.iter().map(|(m, _)| *m).collect();
    let variance: Vec<f64> = stats.iter().map(|(_, v)| *v).collect();
    let inv_std: Vec<f64> = variance
        .iter()
        .map(|v| 1.0 / (v + epsilon).sqrt())
        .collect();
    let mut y = vec![0f32; x_values.len()];
    y.par_chunks_mut(planes.plane.max(1))
        .enumerate()
        .for_each(|(index, out)| {
            let channel = index % planes.channels;
            let scale = gamma[channel] as f64 * inv_std[channel];
            let shift = beta[channel] as f64 - mean[channel] * scale;
            let (scale, shift) = (scale as f32, shift as f32);
            let start = index * planes.plane;
            let xs = &x_values[start..start + planes.plane];
            simd(
                #[inline(always)]
                || affine_plane(xs, out, scale, shift),
            );
        });
    drop(x_values);
    let output = FlexTensor::from_data(TensorData::new(y, dims));
    let stats = ChannelStats {
        mean: mean.clone(),
        variance,
    };
    let output = match prep {
        OpsKind::Tracked(prep) => prep.finish(
            BatchNormState {
                x,
                gamma,
                mean,
                inv_std,
            },
            output,
        ),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    (output, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Values with a large offset against their spread, over long reductions: where a plain
    /// `f32` sum rounds visibly.
    fn input(dims: [usize; 4]) -> Vec<f32> {
        let count: usize = dims.iter().product();
        (0..count)
            .map(|i| {
                let channel = (i / (dims[2] * dims[3])) % dims[1];
                let wave = ((i as f32) * 0.618_034).fract() - 0.5;
                3.0 + channel as f32 + 0.05 * wave
            })
            .collect()
    }

    /// The f64 reference: output, and the input, gamma and beta gradients of
    /// `sum(output * r)`.
    fn reference(
        x: &[f32],
        dims: [usize; 4],
        gamma: &[f32],
        beta: &[f32],
        r: &[f32],
        epsilon: f64,
    ) -> [Vec<f64>; 4] {
        let planes = Planes::new(dims);
        let n = planes.count() as f64;
        let mut y = vec![0f64; x.len()];
        let mut dx = vec![0f64; x.len()];
        let mut dgamma = vec![0f64; planes.channels];
        let mut dbeta = vec![0f64; planes.channels];
        for c in 0..planes.channels {
            let idx: Vec<usize> = planes.of(c).flatten().collect();
            let mean = idx.iter().map(|&i| x[i] as f64).sum::<f64>() / n;
            let var = idx
                .iter()
                .map(|&i| (x[i] as f64 - mean).powi(2))
                .sum::<f64>()
                / n;
            let s = 1.0 / (var + epsilon).sqrt();
            let sum_g: f64 = idx.iter().map(|&i| r[i] as f64).sum();
            let sum_gx: f64 = idx
                .iter()
                .map(|&i| r[i] as f64 * (x[i] as f64 - mean) * s)
                .sum();
            dbeta[c] = sum_g;
            dgamma[c] = sum_gx;
            for &i in &idx {
                let x_hat = (x[i] as f64 - mean) * s;
                y[i] = gamma[c] as f64 * x_hat + beta[c] as f64;
                dx[i] = gamma[c] as f64 * s * (r[i] as f64 - sum_g / n - x_hat * sum_gx / n);
            }
        }
        [y, dx, dgamma, dbeta]
    }

    fn gap(ours: &[f32], reference: &[f64]) -> f64 {
        let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
        let diff = ours
            .iter()
            .zip(reference)
            .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        diff / scale
    }

    fn run(
        op: fn(Tensor<4>, Tensor<1>, Tensor<1>, f64) -> BatchStats,
        dims: [usize; 4],
    ) -> [f64; 4] {
        let device = Device::flex().autodiff();
        let x = input(dims);
        let channels = dims[1];
        let gamma: Vec<f32> = (0..channels).map(|c| 0.5 + 0.1 * c as f32).collect();
        let beta: Vec<f32> = (0..channels).map(|c| 0.2 - 0.05 * c as f32).collect();
        let r: Vec<f32> = (0..x.len())
            .map(|i| ((i as f32) * 0.754_877_7).fract() - 0.3)
            .collect();
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), dims), &device).require_grad();
        let gt = Tensor::<1>::from_data(TensorData::new(gamma.clone(), [channels]), &device)
            .require_grad();
        let bt = Tensor::<1>::from_data(TensorData::new(beta.clone(), [channels]), &device)
            .require_grad();
        let rt = Tensor::<4>::from_data(TensorData::new(r.clone(), dims), &device);
        let stats = op(xt.clone(), gt.clone(), bt.clone(), 1e-3);
        let grads = (stats.output.clone() * rt).sum().backward();
        let values = |t: Tensor<4>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let values1 = |t: Tensor<1>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let [y, dx, dgamma, dbeta] = reference(&x, dims, &gamma, &beta, &r, 1e-3);
        [
            gap(&values(stats.output), &y),
            gap(&values(xt.grad(&grads).unwrap()), &dx),
            gap(&values1(gt.grad(&grads).unwrap()), &dgamma),
            gap(&values1(bt.grad(&grads).unwrap()), &dbeta),
        ]
    }

    /// Gaps to the f64 reference (output, input, gamma and beta gradients) of Burn's
    /// `batch_norm_train` here: `[1.2e-3, 4.3e-4, 1.14, 3.4e-4]`. This data makes gamma's
    /// gradient cancel to about 1e-4 of its terms' magnitudes, so any `f32` sum of them
    /// rounds visibly: the staged ops keep it within 1.4e-2, the flex op (`f64` sums) within
    /// 3e-8.
    #[test]
    fn should_match_the_f64_reference_on_flex_and_through_staged_ops() {
        let dims = [4, 3, 96, 96];
        type Op = fn(Tensor<4>, Tensor<1>, Tensor<1>, f64) -> BatchStats;
        let cases: [(&str, Op, [f64; 4]); 2] = [
            ("flex op", batch_norm_train, [2e-5, 1e-6, 1e-6, 1e-6]),
            ("staged", batch_norm_train_staged, [2e-5, 1e-5, 2e-2, 1e-5]),
        ];
        for (name, op, bounds) in cases {
            let gaps = run(op, dims);
            let what = ["output", "input grad", "gamma grad", "beta grad"];
            for ((what, gap), bound) in what.iter().zip(gaps).zip(bounds) {
                assert!(gap <= bound, "{name}: {what} differs from f64 by {gap:e}");
            }
        }
    }

    #[test]
    fn should_be_more_exact_than_burns_batch_norm_on_long_reductions() {
        let dims = [4, 3, 96, 96];
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::from_data(TensorData::new(input(dims), dims), &device);
        let ones = Tensor::<1>::ones([3], &device);
        let zeros = Tensor::<1>::zeros([3], &device);
        let ours = batch_norm_train(x.clone(), ones.clone(), zeros.clone(), 1e-3);
        let burns = burn::tensor::module::batch_norm_train(x, ones.clone(), zeros.clone(), 1e-3);
        let values = |t: Tensor<4>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let x = input(dims);
        let r = vec![0f32; x.len()];
        let [y, ..] = reference(&x, dims, &[1.0; 3], &[0.0; 3], &r, 1e-3);
        let (ours, burns) = (
            gap(&values(ours.output), &y),
            gap(&values(burns.output), &y),
        );
        assert!(ours * 10.0 < burns, "ours {ours:e}, Burn's {burns:e}");
    }

    #[test]
    fn should_update_running_statistics_like_burns_batch_norm() {
        let device = Device::flex().autodiff();
        let dims = [2, 3, 8, 8];
        let x = Tensor::<4>::from_data(TensorData::new(input(dims), dims), &device);
        let ours = burn::nn::BatchNormConfig::new(3).init(&device);
        let burns = burn::nn::BatchNormConfig::new(3).init(&device);
        let a = batch_norm(&ours, x.clone());
        let b = burns.forward(x);
        let values = |t: Tensor<1>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let close = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).all(|(a, b)| (a - b).abs() <= 1e-5);
        assert!(close(
            values(ours.running_mean.value()),
            values(burns.running_mean.value())
        ));
        assert!(close(
            values(ours.running_var.value()),
            values(burns.running_var.value())
        ));
        let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
        let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() <= 1e-3));
    }
}
