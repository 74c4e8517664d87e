//! The training convolutions as matrix products (1x1, and im2col for the stem) against Burn's
//! convolution: forward values and the gradients of a scalar loss w.r.t. input, weight and bias
//! on an autodiff flex device.

use ant_kernels::conv::{im2col_matmul, pointwise_matmul, same_padding};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn random<const D: usize>(shape: [usize; D]) -> TensorData {
    Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex()).into_data()
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().iter::<f32>().collect()
}

fn close(ours: &[f32], theirs: &[f32], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let scale = theirs.iter().map(|v| v.abs()).fold(1e-3, f32::max);
    for (a, b) in ours.iter().zip(theirs) {
        assert!((a - b).abs() <= 1e-5 * scale, "{what}: {a} vs {b}");
    }
}

/// The inputs of one case: input, weight, bias and the loss weights `r` (the loss is
/// `sum(conv(x, w, b) * r)`).
struct Case {
    x: TensorData,
    weight: TensorData,
    bias: TensorData,
    r: TensorData,
}

/// What a convolution gives for a case: the output, then the input, weight and bias gradients.
type Results = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

fn run(case: &Case, conv: impl Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>) -> Results {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(case.x.clone(), &device).require_grad();
    let w = Tensor::<4>::from_data(case.weight.clone(), &device).require_grad();
    let b = Tensor::<1>::from_data(case.bias.clone(), &device).require_grad();
    let y = conv(x.clone(), w.clone(), b.clone());
    let grads = (y.clone() * Tensor::<4>::from_data(case.r.clone(), &device))
        .sum()
        .backward();
    (
        values(y),
        values(x.grad(&grads).unwrap()),
        values(w.grad(&grads).unwrap()),
        values(b.grad(&grads).unwrap()),
    )
}

fn check(ours: &Results, theirs: &Results, case: &str) {
    close(&ours.0, &theirs.0, &format!("{case}: output"));
    close(&ours.1, &theirs.1, &format!("{case}: input gradient"));
    close(&ours.2, &theirs.2, &format!("{case}: weight gradient"));
    close(&ours.3, &theirs.3, &format!("{case}: bias gradient"));
}

#[test]
fn should_match_burn_convolution_forward_and_gradients() {
    for (batch, channels, out, height, width) in [(2, 5, 7, 6, 9), (1, 8, 3, 1, 1), (3, 4, 4, 5, 5)]
    {
        let case = Case {
            x: random([batch, channels, height, width]),
            weight: random([out, channels, 1, 1]),
            bias: random([out]),
            r: random([batch, out, height, width]),
        };
        let ours = run(&case, |x, w, b| pointwise_matmul(x, w, Some(b)));
        let theirs = run(&case, |x, w, b| {
            conv2d(x, w, Some(b), ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
        });
        check(
            &ours,
            &theirs,
            &format!("{channels}->{out} {height}x{width}"),
        );
    }
}

/// The stem's im2col product against Burn's convolution with the same TF padding, at stride 1
/// and 2, on odd and even sizes (the odd pixel of padding goes after), and through
/// `conv2d_same`, which picks it on an autodiff device.
#[test]
fn should_match_burn_convolution_as_im2col() {
    for (batch, channels, out, height, width, kernel, stride) in [
        (2, 3, 8, 9, 12, 3, 2),
        (1, 3, 16, 16, 16, 3, 2),
        (2, 2, 5, 7, 6, 3, 1),
        (1, 4, 3, 11, 10, 5, 2),
    ] {
        let (out_h, out_w) = (
            usize::div_ceil(height, stride),
            usize::div_ceil(width, stride),
        );
        let case = Case {
            x: random([batch, channels, height, width]),
            weight: random([out, channels, kernel, kernel]),
            bias: random([out]),
            r: random([batch, out, out_h, out_w]),
        };
        let name = format!("{channels}->{out} {height}x{width} k{kernel} s{stride}");
        let shaped = |y: Tensor<4>| {
            assert_eq!(y.dims(), [batch, out, out_h, out_w], "{name}");
            y
        };
        let theirs = run(&case, |x, w, b| {
            let options = ConvOptions::new_with_padding(
                [stride, stride],
                [
                    same_padding(height, kernel, stride),
                    same_padding(width, kernel, stride),
                ],
                [1, 1],
                1,
            );
            shaped(conv2d(x, w, Some(b), options))
        });
        let ours = run(&case, |x, w, b| {
            shaped(im2col_matmul(x, w, Some(b), stride))
        });
        check(&ours, &theirs, &name);
        let picked = run(&case, |x, w, b| {
            shaped(ant_kernels::conv::conv2d_same(x, w, Some(b), stride, 1))
        });
        check(&picked, &theirs, &format!("{name} through conv2d_same"));
    }
}
