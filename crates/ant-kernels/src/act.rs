//! Swish and sigmoid with a hand-written backward for training on Burn's `flex` CPU backend.
//!
//! Burn's autodiff records `x * sigmoid(x)` as a sigmoid (a scalar `expf` per element) and a
//! multiplication, and its backward runs several element-wise kernels over full activations;
//! profiling a training step on flex put ~8% in `expf` alone. Here the forward is one pass
//! (`s = 1 / (1 + fast_exp(-x))`, `y = x * s`, vectorised, parallel over chunks) registered as
//! one custom op whose state is only the input; the backward recomputes `s` from it and writes
//! `dx = g * s * (1 + x * (1 - s))` in one pass, over the output's gradient `g`. Both loops
//! are compiled for AVX-512, AVX2 + FMA and the baseline and picked at run time
//! ([`crate::fast::simd`]), with the same bits on each. The sigmoid (the squeeze-excite gate)
//! shares the machinery with `dx = g * s * (1 - s)`.
//!
//! Off autodiff flex (plain flex, wgpu, other dtypes) these are Burn's ops; plain flex keeps
//! its inference fast path in [`crate::fast`].

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, DispatchTensor, Flex, TensorMetadata};
use burn::tensor::{DType, GradientCheckpointingStrategy, Tensor, TensorData};
use rayon::prelude::*;

use crate::dwconv::{AdTensor, contiguous_f32, flex_autodiff_strategy, flex_primitive, whole_f32};
use crate::fast::{fast_exp, simd};

/// Elements per parallel task; smaller tensors run on the calling thread.
const CHUNK: usize = 1 << 14;

/// Which activation the op computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `x * sigmoid(x)`.
    Swish,
    /// `sigmoid(x)`.
    Sigmoid,
}

/// Swish (`x * sigmoid(x)`) for training: one custom autodiff op on an autodiff flex device
/// (f32), Burn's `silu` everywhere else.
pub fn swish_train<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activation(x, Kind::Swish)
}

/// `sigmoid(x)` for training: one custom autodiff op on an autodiff flex device (f32), Burn's
/// `sigmoid` everywhere else.
pub fn sigmoid_train<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activation(x, Kind::Sigmoid)
}

fn burn_op<const D: usize>(x: Tensor<D>, kind: Kind) -> Tensor<D> {
    match kind {
        Kind::Swish => burn::tensor::activation::silu(x),
        Kind::Sigmoid => burn::tensor::activation::sigmoid(x),
    }
}

fn activation<const D: usize>(x: Tensor<D>, kind: Kind) -> Tensor<D> {
    if x.dtype() != DType::F32 || !x.device().is_autodiff() {
        return burn_op(x, kind);
    }
    let x = x.into_dispatch();
    match flex_autodiff_strategy(&x) {
        Some(GradientCheckpointingStrategy::Disabled) => {
            run_strategy::<NoCheckpointing, D>(x, kind)
        }
        Some(GradientCheckpointingStrategy::Balanced) => {
            run_strategy::<BalancedCheckpointing, D>(x, kind)
        }
        None => burn_op(Tensor::from_dispatch(x), kind),
    }
}

/// Unwraps the tensor for `Autodiff<Flex, C>`, runs the op, wraps the output back.
fn run_strategy<C, const D: usize>(x: DispatchTensor, kind: Kind) -> Tensor<D>
where
    C: CheckpointStrategy,
    DispatchTensor: burn::backend::DispatchKindConversion<Autodiff<Flex, C>>,
{
    let x = flex_primitive::<C, D>(x);
    Tensor::from_primitive::<Autodiff<Flex, C>>(activation_autodiff::<C>(x, kind))
}

/// The backward step of [`swish_train`] and [`sigmoid_train`].
#[derive(Debug)]
struct ActivationBackward(Kind);

impl Backward<Flex, 1> for ActivationBackward {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node else {
            return;
        };
        let x = ops.state;
        let x_values = contiguous_f32(&x);
        // The input's gradient is written over the output's, which has its shape.
        let mut grad = whole_f32(grad);
        backward_in_place(self.0, &x_values, grad.storage_mut::<f32>());
        grads.register::<Flex>(node.id, grad);
    }
}

fn activation_autodiff<C: CheckpointStrategy>(x: AdTensor, kind: Kind) -> AdTensor {
    let prep = ActivationBackward(kind)
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful();
    let x = x.into_primitive();
    let output = {
        let x_values = contiguous_f32(&x);
        FlexTensor::from_data(TensorData::new(forward_values(kind, &x_values), x.shape()))
    };
    match prep {
        OpsKind::Tracked(prep) => prep.finish(x, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// `(s, 1 - s)` with `s = 1 / (1 + e)`, `e = exp(-x)`; `1 - s = e * s` keeps its relative
/// precision for large x (where `1 - s` from a rounded `s` would not). Finite everywhere, as
/// `fast_exp` clamps its argument to [-87, 88].
#[inline(always)]
fn sigmoid_pair(x: f32) -> (f32, f32) {
    let e = fast_exp(-x);
    let s = 1.0 / (1.0 + e);
    (s, e * s)
}

#[inline(always)]
fn sigmoid_scalar(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

/// `y = x * s` (swish) or `y = s` (sigmoid), `s = sigmoid(x)`.
#[inline(always)]
fn forward_chunk(kind: Kind, y: &mut [f32], x: &[f32]) {
    match kind {
        Kind::Swish => {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x * sigmoid_scalar(x);
            }
        }
        Kind::Sigmoid => {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = sigmoid_scalar(x);
            }
        }
    }
}

/// The output's gradient `g` in `grad` becomes the input's:
/// `g * s * (1 + x * (1 - s))` (swish) or `g * s * (1 - s)` (sigmoid).
#[inline(always)]
fn backward_chunk(kind: Kind, x: &[f32], grad: &mut [f32]) {
    match kind {
        Kind::Swish => {
            for (g, &x) in grad.iter_mut().zip(x) {
                let (s, one_minus_s) = sigmoid_pair(x);
                *g = *g * s * (1.0 + x * one_minus_s);
            }
        }
        Kind::Sigmoid => {
            for (g, &x) in grad.iter_mut().zip(x) {
                let (s, one_minus_s) = sigmoid_pair(x);
                *g = *g * s * one_minus_s;
            }
        }
    }
}

fn forward_values(kind: Kind, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    over_chunks(
        &mut y,
        x,
        #[inline(always)]
        |y, x| forward_chunk(kind, y, x),
    );
    y
}

fn backward_in_place(kind: Kind, x: &[f32], grad: &mut [f32]) {
    assert_eq!(x.len(), grad.len(), "gradient and input sizes differ");
    over_chunks(
        grad,
        x,
        #[inline(always)]
        |grad, x| backward_chunk(kind, x, grad),
    );
}

/// `kernel(out, x)` over matching chunks of `out` and `x`, compiled for this CPU's widest
/// instruction set ([`simd`]): in one call when small, else [`CHUNK`] values per parallel
/// task. Mark `kernel` `#[inline(always)]`, as [`simd`] asks.
#[inline(always)]
fn over_chunks(out: &mut [f32], x: &[f32], kernel: impl Fn(&mut [f32], &[f32]) + Sync) {
    if x.len() <= 2 * CHUNK {
        simd(
            #[inline(always)]
            || kernel(out, x),
        );
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(out, x)| {
                simd(
                    #[inline(always)]
                    || kernel(out, x),
                )
            });
    }
}
