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

#[test]
fn should_match_burn_convolution_forward_and_gradients() {
    let device = Device::flex().autodiff();
    for (batch, channels, out, height, width) in [(2, 5, 7, 6, 9), (1, 8, 3, 1, 1), (3, 4, 4, 5, 5)]
    {
        let x = random([batch, channels, height, width]);
        let weight = random([out, channels, 1, 1]);
        let bias = random([out]);
        let r = random([batch, out, height, width]);
        let run = |ours: bool| {
            let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
            let w = Tensor::<4>::from_data(weight.clone(), &device).require_grad();
            let b = Tensor::<1>::from_data(bias.clone(), &device).require_grad();
            let y = if ours {
                pointwise_matmul(x.clone(), w.clone(), Some(b.clone()))
            } else {
                conv2d(
                    x.clone(),
                    w.clone(),
                    Some(b.clone()),
                    ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                )
            };
            let grads = (y.clone() * Tensor::<4>::from_data(r.clone(), &device))
                .sum()
                .backward();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(w.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            )
        };
        let (ours, theirs) = (run(true), run(false));
        close(&ours.0, &theirs.0, "output");
        close(&ours.1, &theirs.1, "input gradient");
        close(&ours.2, &theirs.2, "weight gradient");
        close(&ours.3, &theirs.3, "bias gradient");
    }
}

/// The stem's im2col product against Burn's convolution with the same TF padding, at stride 1
/// and 2, on odd and even sizes (the odd pixel of padding goes after), and through
/// `conv2d_same`, which picks it on an autodiff device.
#[test]
fn should_match_burn_convolution_as_im2col() {
    let device = Device::flex().autodiff();
    for (batch, channels, out, height, width, kernel, stride) in [
        (2, 3, 8, 9, 12, 3, 2),
        (1, 3, 16, 16, 16, 3, 2),
        (2, 2, 5, 7, 6, 3, 1),
        (1, 4, 3, 11, 10, 5, 2),
    ] {
        let x = random([batch, channels, height, width]);
        let weight = random([out, channels, kernel, kernel]);
        let bias = random([out]);
        let out_h = height.div_ceil(stride);
        let out_w = width.div_ceil(stride);
        let r = random([batch, out, out_h, out_w]);
        let case = format!("{channels}->{out} {height}x{width} k{kernel} s{stride}");
        let run = |which: usize| {
            let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
            let w = Tensor::<4>::from_data(weight.clone(), &device).require_grad();
            let b = Tensor::<1>::from_data(bias.clone(), &device).require_grad();
            let y = match which {
                0 => im2col_matmul(x.clone(), w.clone(), Some(b.clone()), stride),
                1 => {
                    ant_kernels::conv::conv2d_same(x.clone(), w.clone(), Some(b.clone()), stride, 1)
                }
                _ => {
                    let options = ConvOptions::new_with_padding(
                        [stride, stride],
                        [
                            same_padding(height, kernel, stride),
                            same_padding(width, kernel, stride),
                        ],
                        [1, 1],
                        1,
                    );
                    conv2d(x.clone(), w.clone(), Some(b.clone()), options)
                }
            };
            assert_eq!(y.dims(), [batch, out, out_h, out_w], "{case}");
            let grads = (y.clone() * Tensor::<4>::from_data(r.clone(), &device))
                .sum()
                .backward();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(w.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            )
        };
        let theirs = run(2);
        for which in [0, 1] {
            let ours = run(which);
            close(&ours.0, &theirs.0, &format!("{case}: output"));
            close(&ours.1, &theirs.1, &format!("{case}: input gradient"));
            close(&ours.2, &theirs.2, &format!("{case}: weight gradient"));
            close(&ours.3, &theirs.3, &format!("{case}: bias gradient"));
        }
    }
}
