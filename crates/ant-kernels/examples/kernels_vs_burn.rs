//! The crate's kernels against the Burn ops they replace, at layer shapes of EfficientDet-D0 on
//! a 512x512 frame (the detector ANT builds on): the largest absolute difference of the outputs
//! and the median time of each.
//!
//! `cargo run --release -p ant-kernels --example kernels_vs_burn`
//!
//! Inference kernels run on a plain `flex` device: the depthwise convolution fused with its
//! batch norm and swish (against Burn's convolution, batch norm and `silu`), the depthwise
//! convolution alone, the 1x1 convolution with bias, swish, and max pooling. The training
//! depthwise convolution runs on an autodiff `flex` device and is compared on its output and
//! both gradients. The inputs are a fixed pseudo-random pattern, so every run prints the same
//! differences; the times are of one call each, conversions to and from tensors included, and
//! move with the machine's load (`RAYON_NUM_THREADS=1` for one thread, as the benchmarks run).

use std::time::Instant;

use ant_kernels::conv::{conv2d_same, max_pool_same_burn};
use ant_kernels::dwconv::depthwise_conv2d_same;
use ant_kernels::fast;
use ant_kernels::matmul::{PointwiseEpilogue, pointwise};
use burn::module::{Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

/// Timed runs of each op; the median is printed.
const RUNS: usize = 5;

/// Values in [-2, 2) from the golden-ratio sequence: deterministic and without structure.
fn pattern(len: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|index| {
            let phase = ((index + seed * 7919) as f64 * 0.618_033_988_749_895).fract();
            (phase as f32 - 0.5) * 4.0 * scale
        })
        .collect()
}

fn tensor(shape: [usize; 4], seed: usize, scale: f32, device: &Device) -> Tensor<4> {
    let len = shape.iter().product();
    Tensor::from_data(TensorData::new(pattern(len, seed, scale), shape), device)
}

/// A batch norm with running statistics and affine parameters that are not the identity.
fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    let vector = |seed: usize, scale: f32, offset: f32| {
        let data = pattern(channels, seed, scale)
            .into_iter()
            .map(|value| value + offset)
            .collect::<Vec<f32>>();
        Tensor::<1>::from_data(TensorData::new(data, [channels]), device)
    };
    let mut bn = BatchNormConfig::new(channels).init(device);
    bn.gamma = Param::from_tensor(vector(10, 0.2, 1.0));
    bn.beta = Param::from_tensor(vector(11, 0.1, 0.0));
    bn.running_mean = RunningState::new(vector(12, 0.1, 0.0));
    bn.running_var = RunningState::new(vector(13, 0.2, 1.0));
    bn
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().iter::<f32>().collect()
}

/// The result of `op` and its median time in milliseconds over [`RUNS`] runs.
fn timed<R>(mut op: impl FnMut() -> R) -> (R, f64) {
    let mut times = Vec::with_capacity(RUNS);
    let mut result = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        result = Some(op());
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (result.expect("RUNS > 0"), times[RUNS / 2])
}

fn max_abs_diff(ours: &[f32], burn: &[f32]) -> f32 {
    assert_eq!(ours.len(), burn.len(), "outputs of different sizes");
    ours.iter()
        .zip(burn)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// One line: the largest difference, the largest Burn value for scale, and the two times
/// (when given).
fn report(name: &str, ours: &[f32], burn: &[f32], times: Option<(f64, f64)>) {
    let magnitude = burn.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    let times = times.map_or(String::new(), |(ours, burn)| {
        format!("  ours {ours:7.2} ms  burn {burn:7.2} ms")
    });
    println!(
        "{name:<42} max |diff| {:8.2e} of max |value| {magnitude:6.2}{times}",
        max_abs_diff(ours, burn),
    );
}

fn main() {
    let device = Device::flex();

    // The depthwise convolutions of MBConv blocks at stages 2 and 3, each followed by its
    // batch norm and swish: one fused pass against Burn's three ops.
    for (kernel, stride, channels, size) in [(3, 1, 144, 128), (5, 2, 144, 128)] {
        let x = tensor([1, channels, size, size], 1, 1.0, &device);
        let weight = tensor([channels, 1, kernel, kernel], 2, 0.3, &device);
        let bn = batch_norm(channels, &device);
        let ours = timed(|| {
            values(fast::depthwise_norm_act(
                x.clone(),
                weight.clone(),
                stride,
                &bn,
                true,
            ))
        });
        let burn = timed(|| {
            let y = conv2d_same(x.clone(), weight.clone(), None, stride, channels);
            values(burn::tensor::activation::silu(bn.forward(y)))
        });
        let name =
            format!("dw {kernel}x{kernel} s{stride} + BN + swish, {channels} x {size}x{size}");
        report(&name, &ours.0, &burn.0, Some((ours.1, burn.1)));
    }

    // A depthwise convolution alone, as in the BiFPN's separable convolutions.
    let x = tensor([1, 64, 64, 64], 3, 1.0, &device);
    let weight = tensor([64, 1, 3, 3], 4, 0.3, &device);
    let ours = timed(|| values(fast::depthwise_same(x.clone(), weight.clone(), 1)));
    let burn = timed(|| values(conv2d_same(x.clone(), weight.clone(), None, 1, 64)));
    report(
        "depthwise 3x3 s1, 64 x 64x64",
        &ours.0,
        &burn.0,
        Some((ours.1, burn.1)),
    );

    // The projection of a stage-2 block: a 1x1 convolution of 144 channels into 24, with bias.
    let (inputs, outputs, size) = (144, 24, 128);
    let x = tensor([1, inputs, size, size], 5, 1.0, &device);
    let weight = tensor([outputs, inputs, 1, 1], 6, 0.1, &device);
    let bias = pattern(outputs, 7, 0.5);
    let x_values = values(x.clone());
    let weight_values = values(weight.clone());
    let ours = timed(|| {
        let epilogue = PointwiseEpilogue {
            bias: &bias,
            addend: None,
            swish: false,
            residual: None,
        };
        pointwise(
            &weight_values,
            [outputs, inputs, size * size],
            &x_values,
            epilogue,
        )
    });
    let bias_tensor = Tensor::<1>::from_data(TensorData::new(bias.clone(), [outputs]), &device);
    let burn = timed(|| {
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        values(conv2d(
            x.clone(),
            weight.clone(),
            Some(bias_tensor.clone()),
            options,
        ))
    });
    report(
        &format!("pointwise 1x1 + bias, {inputs} -> {outputs} x {size}x{size}"),
        &ours.0,
        &burn.0,
        Some((ours.1, burn.1)),
    );

    // Swish after the expansion of a stage-2 block.
    let x = tensor([1, 144, 128, 128], 6, 2.0, &device);
    let ours = timed(|| values(fast::swish(x.clone())));
    let burn = timed(|| values(burn::tensor::activation::silu(x.clone())));
    report(
        "swish, 144 x 128x128",
        &ours.0,
        &burn.0,
        Some((ours.1, burn.1)),
    );

    // The BiFPN's downsampling max pool, 3x3 stride 2.
    let x = tensor([1, 64, 64, 64], 7, 1.0, &device);
    let ours = timed(|| values(fast::max_pool_same(x.clone(), 3, 2)));
    let burn = timed(|| values(max_pool_same_burn(x.clone(), 3, 2)));
    report(
        "max pool 3x3 s2, 64 x 64x64",
        &ours.0,
        &burn.0,
        Some((ours.1, burn.1)),
    );

    // Training: the depthwise convolution with its own backward, on an autodiff device.
    let autodiff = Device::flex().autodiff();
    let (channels, size, stride) = (96, 64, 2);
    let x_data = tensor([2, channels, size, size], 8, 1.0, &device).into_data();
    let weight_data = tensor([channels, 1, 3, 3], 9, 0.3, &device).into_data();
    let forward_backward = |ours: bool| {
        let x = Tensor::<4>::from_data(x_data.clone(), &autodiff).require_grad();
        let weight = Tensor::<4>::from_data(weight_data.clone(), &autodiff).require_grad();
        let y = if ours {
            depthwise_conv2d_same(x.clone(), weight.clone(), stride)
        } else {
            conv2d_same(x.clone(), weight.clone(), None, stride, channels)
        };
        // A loss whose gradient differs per output element.
        let grads = (y.clone() * y.clone()).sum().backward();
        let x_grad = values(x.grad(&grads).expect("x gradient"));
        let weight_grad = values(weight.grad(&grads).expect("weight gradient"));
        (values(y), x_grad, weight_grad)
    };
    let ours = timed(|| forward_backward(true));
    let burn = timed(|| forward_backward(false));
    println!(
        "training depthwise 3x3 s{stride}, 2 x {channels} x {size}x{size}, forward + backward: \
         ours {:.2} ms, burn {:.2} ms",
        ours.1, burn.1
    );
    report("  output", &ours.0.0, &burn.0.0, None);
    report("  input gradient", &ours.0.1, &burn.0.1, None);
    report("  weight gradient", &ours.0.2, &burn.0.2, None);
}
