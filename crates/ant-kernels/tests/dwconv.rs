//! The custom depthwise convolution against Burn's grouped convolution: forward values and the
//! gradients of a scalar loss on an autodiff flex device.

use ant_kernels::conv::conv2d_same;
use ant_kernels::dwconv::depthwise_conv2d_same;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn random(shape: [usize; 4]) -> TensorData {
    Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex()).into_data()
}

fn values(tensor: Tensor<4>) -> Vec<f32> {
    tensor.into_data().iter::<f32>().collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

/// Output, gradient w.r.t. x and w.r.t. weight of `(conv(x, weight) * r).sum()`.
fn run(
    ours: bool,
    x: &TensorData,
    weight: &TensorData,
    r: &TensorData,
    stride: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
    let weight = Tensor::<4>::from_data(weight.clone(), &device).require_grad();
    let channels = x.dims()[1];
    let y = if ours {
        depthwise_conv2d_same(x.clone(), weight.clone(), stride)
    } else {
        conv2d_same(x.clone(), weight.clone(), None, stride, channels)
    };
    let r = Tensor::<4>::from_data(r.clone(), &device);
    let grads = (y.clone() * r).sum().backward();
    (
        values(y),
        values(x.grad(&grads).expect("x gradient")),
        values(weight.grad(&grads).expect("weight gradient")),
    )
}

#[test]
fn should_match_burn_forward_and_gradients() {
    let channels = 5;
    for kernel in [3, 5] {
        for stride in [1, 2] {
            for (height, width) in [(8, 8), (9, 7), (7, 10), (13, 13), (4, 5)] {
                let x = random([2, channels, height, width]);
                let weight = random([channels, 1, kernel, kernel]);
                let r = random([2, channels, height.div_ceil(stride), width.div_ceil(stride)]);
                let (y_burn, dx_burn, dw_burn) = run(false, &x, &weight, &r, stride);
                let (y_ours, dx_ours, dw_ours) = run(true, &x, &weight, &r, stride);
                let case = format!("k {kernel} s {stride} {height}x{width}");
                let forward = max_abs_diff(&y_ours, &y_burn);
                assert!(forward < 1e-5, "{case}: forward {forward}");
                let dx = max_abs_diff(&dx_ours, &dx_burn) / max_abs(&dx_burn).max(1.0);
                assert!(dx < 1e-4, "{case}: x gradient {dx}");
                let dw = max_abs_diff(&dw_ours, &dw_burn) / max_abs(&dw_burn).max(1.0);
                assert!(dw < 1e-4, "{case}: weight gradient {dw}");
            }
        }
    }
}

/// A sub-network's depthwise weight is the first channels of the supernet's parameter: the
/// gradient must land in the full parameter (zero in the unused channels), as with Burn.
#[test]
fn should_route_gradient_through_a_narrowed_parameter() {
    let (full, used) = (8, 5);
    for stride in [1, 2] {
        let x = random([2, used, 9, 11]);
        let weight = random([full, 1, 3, 3]);
        let r = random([2, used, 9usize.div_ceil(stride), 11usize.div_ceil(stride)]);
        let grad = |ours: bool| {
            let device = Device::flex().autodiff();
            let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
            let param =
                burn::module::Param::from_tensor(Tensor::<4>::from_data(weight.clone(), &device));
            let sliced = param.val().narrow(0, 0, used);
            let y = if ours {
                depthwise_conv2d_same(x.clone(), sliced, stride)
            } else {
                conv2d_same(x.clone(), sliced, None, stride, used)
            };
            let r = Tensor::<4>::from_data(r.clone(), &device);
            let grads = (y * r).sum().backward();
            values(param.val().grad(&grads).expect("parameter gradient"))
        };
        let (burn, ours) = (grad(false), grad(true));
        assert_eq!(ours.len(), full * 9);
        assert!(ours[used * 9..].iter().all(|v| *v == 0.0));
        let error = max_abs_diff(&ours, &burn) / max_abs(&burn).max(1.0);
        assert!(error < 1e-4, "stride {stride}: {error}");
    }
}

/// Without autodiff (and for a tensor that does not require a gradient) the result is the same.
#[test]
fn should_match_burn_without_gradients() {
    let x = random([2, 4, 10, 9]);
    let weight = random([4, 1, 5, 5]);
    for device in [Device::flex(), Device::flex().autodiff()] {
        let x = Tensor::<4>::from_data(x.clone(), &device);
        let weight = Tensor::<4>::from_data(weight.clone(), &device);
        let expected = values(conv2d_same(x.clone(), weight.clone(), None, 2, 4));
        let ours = values(depthwise_conv2d_same(x, weight, 2));
        assert!(max_abs_diff(&ours, &expected) < 1e-5);
    }
}

/// Under gradient checkpointing (the balanced strategy) the op is tracked the same way.
#[test]
fn should_match_burn_with_gradient_checkpointing() {
    let x = random([2, 3, 9, 8]);
    let weight = random([3, 1, 5, 5]);
    let r = random([2, 3, 5, 4]);
    let grads = |ours: bool| {
        let device = Device::flex().autodiff().gradient_checkpointing();
        let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
        let weight = Tensor::<4>::from_data(weight.clone(), &device).require_grad();
        // A memory-bound op before the conv, so the checkpointer has something to recompute.
        let input = burn::tensor::activation::relu(x.clone()) * 2.0;
        let y = if ours {
            depthwise_conv2d_same(input, weight.clone(), 2)
        } else {
            conv2d_same(input, weight.clone(), None, 2, 3)
        };
        let r = Tensor::<4>::from_data(r.clone(), &device);
        let grads = (y * r).sum().backward();
        (
            values(x.grad(&grads).expect("x gradient")),
            values(weight.grad(&grads).expect("weight gradient")),
        )
    };
    let ((dx_burn, dw_burn), (dx_ours, dw_ours)) = (grads(false), grads(true));
    assert!(max_abs_diff(&dx_ours, &dx_burn) / max_abs(&dx_burn).max(1.0) < 1e-4);
    assert!(max_abs_diff(&dw_ours, &dw_burn) / max_abs(&dw_burn).max(1.0) < 1e-4);
}
