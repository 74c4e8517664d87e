//! # ant-kernels
//!
//! The CPU kernels under ANT's detector (*Adapt Network Across Time for Efficient Video
//! Processing*, CVPR 2022 ECV workshop), kept below the model crate (`ant-supernet`), which
//! holds the layers: the code written against Burn's internals, the first to change on a Burn
//! upgrade.
//!
//! - Inference, on plain `f32` data or on tensors of a device without autodiff: [`fast`]
//!   (batch norm fused with a vectorised swish, the register-blocked depthwise kernel, the
//!   direct stem, max pooling) and [`matmul`] (the 1x1 convolutions' product with its
//!   epilogue), compiled for AVX-512, AVX2 + FMA and the baseline and picked at run time;
//!   their output buffers come from [`scratch`], which recycles the ones the engine is done
//!   with.
//! - Training on Burn's `flex` backend, as custom autodiff ops with their own backward:
//!   [`dwconv`] (depthwise convolution), [`act`] (swish and sigmoid), [`norm`] (batch norm
//!   with batch statistics accumulated in `f64`, which Burn's `f32` reductions round visibly);
//!   and [`conv`], the
//!   TensorFlow "same" convolutions and pooling, with 1x1 convolutions as matrix products.
//!
//! Every kernel falls back to Burn's ops where it does not apply (autodiff for the inference
//! kernels, other backends for the training ops), and each is tested against the Burn ops it
//! replaces (`tests/`, and the modules' own tests).
//!
//! ```
//! use ant_kernels::conv::same_padding;
//! use ant_kernels::matmul::{PointwiseEpilogue, pointwise};
//!
//! // TF "same" padding of a 3x3 stride-2 convolution over 256 pixels: 0 before, 1 after.
//! assert_eq!(same_padding(256, 3, 2), (0, 1));
//! // A 1x1 convolution of 2 input channels into 1 output channel over 3 pixels, plus bias.
//! let weight = [1.0, 2.0];
//! let input = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
//! let epilogue = PointwiseEpilogue { bias: &[0.5], addend: None, swish: false, residual: None };
//! let output = pointwise(&weight, [1, 2, 3], &input, epilogue);
//! assert_eq!(output, vec![21.5, 42.5, 63.5]);
//!
//! // The inference depthwise kernel against Burn's grouped convolution: a 3x3 box filter
//! // over one 3x3 channel, zero-padded to the same size.
//! use ant_kernels::{conv::conv2d_same, fast::depthwise_same};
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
//! let x = Tensor::<4>::from_floats([[rows]], &device);
//! let weight = Tensor::<4>::ones([1, 1, 3, 3], &device);
//! let ours = depthwise_same(x.clone(), weight.clone(), 1);
//! let burn = conv2d_same(x, weight, None, 1, 1);
//! let ours: Vec<f32> = ours.into_data().to_vec().unwrap();
//! let burn: Vec<f32> = burn.into_data().to_vec().unwrap();
//! assert_eq!(ours, vec![12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]);
//! assert_eq!(ours, burn);
//! ```
#![warn(missing_docs)]

pub mod act;
pub mod conv;
pub mod dwconv;
pub mod fast;
pub mod matmul;
pub mod norm;
pub mod scratch;
