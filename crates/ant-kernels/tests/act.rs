//! The fused swish and sigmoid against Burn's `x * sigmoid(x)` and `sigmoid(x)`: forward values
//! and the gradient of a scalar loss on an autodiff flex device, far out in the tails too.

use ant_kernels::act::{sigmoid_train, swish_train};
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn random(shape: [usize; 4], std: f64) -> TensorData {
    Tensor::<4>::random(shape, Distribution::Normal(0.0, std), &Device::flex()).into_data()
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().iter::<f32>().collect()
}

/// Largest element-wise `|a - b| / max(scale, FLOOR)`.
fn max_error(a: &[f32], b: &[f32], scale: impl Iterator<Item = f32>) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .zip(scale)
        .map(|((x, y), scale)| {
            assert!(x.is_finite(), "not finite: {x} (expected {y})");
            (x - y).abs() / scale.max(FLOOR)
        })
        .fold(0.0, f32::max)
}

/// Values below this count as this in relative errors: far in the negative tail both results
/// are below 1e-30 (Burn's flush to 0 from x < -104, ours from x < -1e8) and their ratio
/// means nothing.
const FLOOR: f32 = 1e-20;

/// Largest element-wise `|a - b| / |b|`.
fn max_relative(a: &[f32], b: &[f32]) -> f32 {
    max_error(a, b, b.iter().map(|v| v.abs()))
}

/// `max |a - b| / max |b|`, for results of several ops that may cancel.
fn max_norm_relative(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|v| v.abs()).fold(0.0, f32::max);
    max_error(a, b, std::iter::repeat(scale))
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Swish,
    Sigmoid,
}

/// Output and gradient w.r.t. x of `(op(x) * r).sum()`.
fn run(
    ours: bool,
    op: Op,
    x: &TensorData,
    r: &TensorData,
    device: &Device,
) -> (Vec<f32>, Vec<f32>) {
    let x = Tensor::<4>::from_data(x.clone(), device).require_grad();
    let y = match (ours, op) {
        (true, Op::Swish) => swish_train(x.clone()),
        (true, Op::Sigmoid) => sigmoid_train(x.clone()),
        (false, Op::Swish) => x.clone() * sigmoid(x.clone()),
        (false, Op::Sigmoid) => sigmoid(x.clone()),
    };
    let r = Tensor::<4>::from_data(r.clone(), device);
    let grads = (y.clone() * r).sum().backward();
    (values(y), values(x.grad(&grads).expect("x gradient")))
}

/// The forward relative to Burn's value, element-wise. The gradient element-wise against the
/// exact (f64) one, relative to the sum of the magnitudes of its terms, `|g| (s + |x| s (1 - s))`
/// for swish (its derivative crosses zero near x = -1.28) and `|g| s (1 - s)` for sigmoid; and
/// against Burn's relative to its largest element (Burn's `1 - s` from a rounded `s` loses its
/// relative precision for large x).
fn check(op: Op, x: &TensorData, r: &TensorData, device: &Device, case: &str) {
    let (y_burn, dx_burn) = run(false, op, x, r, device);
    let (y_ours, dx_ours) = run(true, op, x, r, device);
    let forward = max_relative(&y_ours, &y_burn);
    assert!(forward < 1e-6, "{case} {op:?}: forward {forward}");
    let xs: Vec<f32> = x.iter::<f32>().collect();
    let gs: Vec<f32> = r.iter::<f32>().collect();
    let (exact, scale): (Vec<f32>, Vec<f32>) = xs
        .iter()
        .zip(&gs)
        .map(|(&x, &g)| {
            let (x, g) = (f64::from(x), f64::from(g));
            let e = (-x).exp();
            let (s, one_minus_s) = (1.0 / (1.0 + e), e / (1.0 + e));
            let (value, terms) = match op {
                Op::Swish => (s * (1.0 + x * one_minus_s), s + x.abs() * s * one_minus_s),
                Op::Sigmoid => (s * one_minus_s, s * one_minus_s),
            };
            ((g * value) as f32, (g.abs() * terms) as f32)
        })
        .unzip();
    let backward = max_error(&dx_ours, &exact, scale.into_iter());
    assert!(
        backward < 1e-5,
        "{case} {op:?}: gradient vs exact {backward}"
    );
    let backward = max_norm_relative(&dx_ours, &dx_burn);
    assert!(
        backward < 1e-5,
        "{case} {op:?}: gradient vs Burn {backward}"
    );
}

#[test]
fn should_match_burn_forward_and_gradient() {
    let device = Device::flex().autodiff();
    // Small (one pass on the calling thread) and large (parallel chunks, ragged last chunk).
    for shape in [[2, 3, 5, 7], [2, 40, 33, 29]] {
        for std in [1.0, 4.0] {
            let x = random(shape, std);
            let r = random(shape, 1.0);
            for op in [Op::Swish, Op::Sigmoid] {
                check(op, &x, &r, &device, &format!("{shape:?} std {std}"));
            }
        }
    }
}

/// Far out in the tails (±30, ±90, ±1e4, ±inf-adjacent): finite, and equal to Burn's within
/// the tolerances of `check`.
#[test]
fn should_stay_finite_for_large_inputs() {
    let device = Device::flex().autodiff();
    let extremes = [
        -1e4f32, -200.0, -90.0, -88.5, -87.0, -30.0, -17.0, -1e-3, 0.0, 1e-3, 17.0, 30.0, 87.0,
        88.5, 90.0, 200.0, 1e4,
    ];
    let n = extremes.len();
    let x = TensorData::new(extremes.to_vec(), [1, 1, 1, n]);
    let r = TensorData::new(vec![1.5f32; n], [1, 1, 1, n]);
    for op in [Op::Swish, Op::Sigmoid] {
        let (y, dx) = run(true, op, &x, &r, &device);
        assert!(
            y.iter().chain(&dx).all(|v| v.is_finite()),
            "{op:?}: {y:?} {dx:?}"
        );
        check(op, &x, &r, &device, "extremes");
    }
}

/// Without autodiff, on an autodiff device without a gradient, and for other ranks the result
/// is Burn's.
#[test]
fn should_match_burn_without_gradients() {
    let x = random([2, 4, 10, 9], 3.0);
    for device in [Device::flex(), Device::flex().autodiff()] {
        let x = Tensor::<4>::from_data(x.clone(), &device);
        let expected = values(silu(x.clone()));
        let ours = values(swish_train(x.clone()));
        assert!(max_relative(&ours, &expected) < 1e-6);
        let expected = values(sigmoid(x.clone()));
        let ours = values(sigmoid_train(x.clone()));
        assert!(max_relative(&ours, &expected) < 1e-6);
        // The inference path of the model's swish is unchanged on plain flex.
        let fast = values(ant_kernels::conv::swish(x.clone()));
        assert!(max_relative(&fast, &values(silu(x.clone()))) < 1e-6);
        let flat: Tensor<2> = x.reshape([8, 90]);
        let ours = values(swish_train(flat.clone()));
        assert!(max_relative(&ours, &values(silu(flat))) < 1e-6);
    }
}

/// The gradient flows on through the op into earlier ops (here a batch-norm-like affine).
#[test]
fn should_chain_into_earlier_ops() {
    let device = Device::flex().autodiff();
    let x = random([2, 6, 8, 8], 2.0);
    let r = random([2, 6, 8, 8], 1.0);
    let w = random([1, 6, 1, 1], 1.0);
    let grads = |ours: bool| {
        let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
        let w = Tensor::<4>::from_data(w.clone(), &device).require_grad();
        let h = x.clone() * w.clone() + 0.5;
        let y = if ours {
            ant_kernels::conv::swish(h)
        } else {
            silu(h)
        };
        let r = Tensor::<4>::from_data(r.clone(), &device);
        let grads = (y * r).sum().backward();
        values(x.grad(&grads).expect("x gradient"))
    };
    let error = max_norm_relative(&grads(true), &grads(false));
    assert!(error < 1e-5, "{error}");
}

/// Under gradient checkpointing (the balanced strategy) the op is tracked the same way.
#[test]
fn should_match_burn_with_gradient_checkpointing() {
    let x = random([2, 3, 9, 8], 3.0);
    let r = random([2, 3, 9, 8], 1.0);
    let grads = |ours: bool| {
        let device = Device::flex().autodiff().gradient_checkpointing();
        let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
        // Memory-bound ops around the activation, so the checkpointer has something to recompute.
        let input = burn::tensor::activation::relu(x.clone()) * 2.0 - 1.0;
        let y = if ours {
            sigmoid_train(swish_train(input))
        } else {
            sigmoid(silu(input))
        };
        let r = Tensor::<4>::from_data(r.clone(), &device);
        let grads = ((y * 3.0).exp() * r).sum().backward();
        values(x.grad(&grads).expect("x gradient"))
    };
    let error = max_norm_relative(&grads(true), &grads(false));
    assert!(error < 1e-5, "{error}");
}
