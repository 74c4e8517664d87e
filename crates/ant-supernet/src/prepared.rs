//! The CPU inference engine: a detector's layers prepared once for batch-1 frames.
//!
//! [`EfficientDet::forward`] re-derives per call what inference never changes: it folds
//! every batch norm into its convolution, slices the supernet's weights for the chosen
//! ratio, and moves every activation through Burn tensors between small ops. A
//! [`PreparedDetector`] does that work once: batch norms folded into the weights and biases
//! of the convolutions before them, each (stage, ratio) sliced into its own blocks, and the
//! activations kept as plain [`Map`]s between layers. The 1x1 convolutions (most of the
//! arithmetic) run as one matrix product each through Burn's `flex` matmul (the `gemm`
//! crate), with bias, swish and the residual added in one pass over the product; the
//! depthwise convolutions run the kernels of [`ant_kernels::fast`]; the squeeze-excite gate is
//! folded into the projection's weight columns (`W (x * g) = (W * g) x`).
//!
//! Numerically the engine computes what [`EfficientDet::forward`] computes, up to the
//! rounding of folding (tests: `tests/prepared.rs`, and the effdet parity test runs through
//! it). It is for CPU inference: the weights live on the `flex` device.

use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor, TensorData};

use crate::anchors::Anchors;
use crate::arch::{MAX_RATIO, NUM_ELASTIC_STAGES, SubnetArch};
use crate::backbone::{DepthwiseSeparable, ElasticMbConv};
use crate::bifpn::{BiFpn, ConvBn, FpnNode};
use crate::config::{EfficientDetConfig, PYRAMID_STAGES};
use crate::detector::EfficientDet;
use crate::error::{Result, SupernetError};
use crate::head::HeadNet;
use crate::nn::{ConvWeight, SeparableConv};
use crate::postprocess::{Detections, detect_image};
use ant_kernels::fast::{
    Filters, batch_norm_affine, depthwise_planes, depthwise_planes_with_means, fast_exp,
    plane_means, simd,
};
use ant_kernels::matmul::{Columns, PackedWeights};

/// One image's feature map: `channels` planes of `height x width`, row-major.
#[derive(Debug, PartialEq)]
pub struct Map {
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels * height * width` values, plane by plane.
    pub data: Vec<f32>,
}

/// A map's buffer goes back to the kernels' scratch ([`ant_kernels::scratch`]) when the map
/// is dropped, for the next kernel output of this thread to reuse without zeroing.
impl Drop for Map {
    fn drop(&mut self) {
        ant_kernels::scratch::recycle(std::mem::take(&mut self.data));
    }
}

/// A copy in a buffer from the kernels' scratch, as every map of a frame: a buffer
/// allocated outside it would be recycled into it on drop, every frame, until same-sized
/// buffers crowded out the other sizes it keeps (D0 at 512: 54 of 64 kept buffers were
/// 64 x 64^2 maps, and every smaller map was allocated and zeroed afresh).
impl Clone for Map {
    fn clone(&self) -> Self {
        let mut data = ant_kernels::scratch::take(self.data.len());
        data.copy_from_slice(&self.data);
        Self {
            channels: self.channels,
            height: self.height,
            width: self.width,
            data,
        }
    }
}

impl Map {
    /// A map from its values.
    ///
    /// # Panics
    /// When `data` does not hold `channels * height * width` values.
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            channels * height * width,
            "a map of {channels}x{height}x{width} needs as many values"
        );
        Self {
            channels,
            height,
            width,
            data,
        }
    }

    /// Its values, taken out of the map (which then gives nothing back to the scratch).
    pub fn into_data(mut self) -> Vec<f32> {
        std::mem::take(&mut self.data)
    }

    /// The map of the single image of a `[1, C, H, W]` tensor.
    ///
    /// # Panics
    /// When the batch is not 1 or the tensor is not `f32`.
    pub fn from_tensor(x: Tensor<4>) -> Self {
        let [batch, channels, height, width] = x.dims();
        assert_eq!(batch, 1, "a map holds one image");
        let data = x
            .into_data()
            .try_into_vec::<f32>()
            .expect("float tensors hold f32");
        Self::new(channels, height, width, data)
    }

    /// As a `[1, C, H, W]` tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(
                self.data.clone(),
                [1, self.channels, self.height, self.width],
            ),
            device,
        )
    }

    /// `self += other` element-wise.
    ///
    /// # Panics
    /// When the shapes differ.
    pub fn add_assign(&mut self, other: &Map) {
        assert_eq!(
            (self.channels, self.height, self.width),
            (other.channels, other.height, other.width),
            "adding maps of different shapes"
        );
        weighted_add(&mut self.data, &other.data, None);
    }

    /// Turns `self` (mask logits) into `key + sigmoid(self) * (current - key)`.
    ///
    /// # Panics
    /// When the shapes differ.
    pub fn blend_mask(&mut self, current: &Map, key: &Map) {
        for other in [current, key] {
            assert_eq!(
                (self.channels, self.height, self.width),
                (other.channels, other.height, other.width),
                "blending maps of different shapes"
            );
        }
        pulp::Arch::new().dispatch(Blend {
            logits: &mut self.data,
            current: &current.data,
            key: &key.data,
        });
    }

    /// Values per plane.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }

    /// The mean of each channel (global average pooling), each a sum in a fixed order, so
    /// the result does not depend on the instruction set.
    pub fn channel_means(&self) -> Vec<f32> {
        let mut means = vec![0.0; self.channels];
        plane_means(&self.data, self.plane(), &mut means);
        means
    }
}

struct Blend<'a> {
    logits: &'a mut [f32],
    current: &'a [f32],
    key: &'a [f32],
}

impl pulp::WithSimd for Blend<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for ((v, c), k) in self.logits.iter_mut().zip(self.current).zip(self.key) {
            let mask = 1.0 / (1.0 + fast_exp(-*v));
            *v = k + mask * (c - k);
        }
    }
}

/// What runs on each value after a convolution's bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Nothing.
    Identity,
    /// `x * sigmoid(x)`.
    Swish,
}

#[inline(always)]
pub(crate) fn swish(x: f32) -> f32 {
    x / (1.0 + fast_exp(-x))
}

/// `sum += x * weight` (`weight` 1: `sum += x`) over the whole slice, vectorised.
pub(crate) fn weighted_add(sum: &mut [f32], x: &[f32], weight: Option<f32>) {
    pulp::Arch::new().dispatch(WeightedAdd { sum, x, weight });
}

struct WeightedAdd<'a> {
    sum: &'a mut [f32],
    x: &'a [f32],
    weight: Option<f32>,
}

impl pulp::WithSimd for WeightedAdd<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        match self.weight {
            Some(weight) => {
                for (s, v) in self.sum.iter_mut().zip(self.x) {
                    *s += v * weight;
                }
            }
            None => {
                for (s, v) in self.sum.iter_mut().zip(self.x) {
                    *s += v;
                }
            }
        }
    }
}

/// Host values of a tensor.
fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data()
        .try_into_vec::<f32>()
        .expect("float tensors hold f32")
}

/// A 1x1 convolution with its batch norm (and bias) folded in: `y = W x + b`, computed by
/// [`ant_kernels::matmul::product_packed`] (weights packed once, here) with the activation
/// and residual in its epilogue.
#[derive(Clone, Debug)]
pub struct Pointwise {
    /// `[out, in]`, row-major.
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) out_channels: usize,
    pub(crate) in_channels: usize,
    /// `weight` packed for the product's register blocks, once.
    pub(crate) packed: PackedWeights,
}

impl Pointwise {
    /// From a `[out, in, 1, 1]` weight, an optional conv bias and an optional batch norm
    /// after it (`W' = W * scale`, `b' = b * scale + shift`).
    pub fn fold(weight: Tensor<4>, conv_bias: Option<Tensor<1>>, bn: Option<&BatchNorm>) -> Self {
        let [out_channels, in_channels, kh, kw] = weight.dims();
        assert_eq!((kh, kw), (1, 1), "a pointwise convolution is 1x1");
        let mut weight = values(weight);
        let mut bias = conv_bias.map_or_else(|| vec![0.0; out_channels], values);
        if let Some(bn) = bn {
            let (scale, shift) = batch_norm_affine(bn);
            for (row, s) in weight.chunks_exact_mut(in_channels).zip(&scale) {
                row.iter_mut().for_each(|w| *w *= s);
            }
            for ((b, s), t) in bias.iter_mut().zip(&scale).zip(&shift) {
                *b = *b * s + t;
            }
        }
        Self::new(weight, bias, out_channels, in_channels)
    }

    fn new(weight: Vec<f32>, bias: Vec<f32>, out_channels: usize, in_channels: usize) -> Self {
        let packed = PackedWeights::new(&weight, [out_channels, in_channels]);
        Self {
            weight,
            bias,
            out_channels,
            in_channels,
            packed,
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// `W x + b`, the activation, `+ residual`.
    pub fn run(&self, x: &Map, activation: Activation, residual: Option<&Map>) -> Map {
        self.run_with(x, None, None, activation, residual)
    }

    /// [`Self::run`] on `x * gate` (a squeeze-excite gate, per input channel), the gate
    /// applied while the product packs its input.
    pub fn run_gated(
        &self,
        x: &Map,
        gate: &[f32],
        activation: Activation,
        residual: Option<&Map>,
    ) -> Map {
        self.run_with(x, Some(gate), None, activation, residual)
    }

    /// `W x + b` without activation: a partial sum other terms are added to (the key frame's
    /// half of a fusion module, whose bias is zero).
    pub fn product(&self, x: &Map) -> Vec<f32> {
        self.run_with(x, None, None, Activation::Identity, None)
            .into_data()
    }

    /// `W x + b + partial`, the activation, `+ residual`: a convolution over the channels of
    /// two maps when `partial` holds the other map's product.
    pub fn run_plus(
        &self,
        x: &Map,
        partial: &[f32],
        activation: Activation,
        residual: Option<&Map>,
    ) -> Map {
        self.run_with(x, None, Some(partial), activation, residual)
    }

    fn run_with(
        &self,
        x: &Map,
        gate: Option<&[f32]>,
        addend: Option<&[f32]>,
        activation: Activation,
        residual: Option<&Map>,
    ) -> Map {
        assert_eq!(x.channels, self.in_channels, "pointwise input channels");
        let columns = match gate {
            Some(gate) => Columns::Gated {
                input: &x.data,
                gate,
            },
            None => Columns::Rows(&x.data),
        };
        let data = ant_kernels::matmul::product_packed(
            &self.packed,
            x.plane(),
            columns,
            ant_kernels::matmul::PointwiseEpilogue {
                bias: &self.bias,
                addend,
                swish: activation == Activation::Swish,
                residual: residual.map(|r| r.data.as_slice()),
            },
        );
        Map::new(self.out_channels, x.height, x.width, data)
    }

    /// This convolution's left and right halves over its input channels (the first `split`
    /// and the rest), the bias kept by the left one.
    pub fn split_inputs(&self, split: usize) -> (Self, Self) {
        let (out, inp) = (self.out_channels, self.in_channels);
        let mut left = Vec::with_capacity(out * split);
        let mut right = Vec::with_capacity(out * (inp - split));
        for row in self.weight.chunks_exact(inp) {
            left.extend_from_slice(&row[..split]);
            right.extend_from_slice(&row[split..]);
        }
        (
            Self::new(left, self.bias.clone(), out, split),
            Self::new(right, vec![0.0; out], out, inp - split),
        )
    }
}

/// A depthwise convolution (TF "same" padding) with its batch norm folded into a per-channel
/// affine, and an activation.
#[derive(Clone, Debug)]
pub struct Depthwise {
    pub(crate) weights: Vec<f32>,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) affine: Option<(Vec<f32>, Vec<f32>)>,
    pub(crate) activation: Activation,
}

impl Depthwise {
    /// From a `[C, 1, k, k]` weight and the optional batch norm after it.
    pub fn fold(
        weight: Tensor<4>,
        stride: usize,
        bn: Option<&BatchNorm>,
        activation: Activation,
    ) -> Self {
        let [_, _, kernel, _] = weight.dims();
        Self {
            weights: values(weight),
            kernel,
            stride,
            affine: bn.map(batch_norm_affine),
            activation,
        }
    }

    /// Runs it.
    pub fn run(&self, x: &Map) -> Map {
        self.run_in(x, false).0
    }

    /// Runs it, and returns the mean of each output channel beside the output (a
    /// squeeze-excite gate's pooling, taken as each plane is written: the bits of
    /// [`Map::channel_means`]).
    pub fn run_with_means(&self, x: &Map) -> (Map, Vec<f32>) {
        self.run_in(x, true)
    }

    fn run_in(&self, x: &Map, with_means: bool) -> (Map, Vec<f32>) {
        let affine = self
            .affine
            .as_ref()
            .map(|(scale, shift)| (scale.as_slice(), shift.as_slice()));
        let (shape, activate) = (
            [x.channels, x.height, x.width],
            self.activation == Activation::Swish,
        );
        let (weights, kernel, stride) = (&self.weights[..], self.kernel, self.stride);
        let (data, means) = if with_means {
            let filters = Filters {
                weights,
                kernel,
                stride,
                affine,
                activate,
            };
            depthwise_planes_with_means(&x.data, shape, x.channels, filters)
        } else {
            let data = depthwise_planes(
                &x.data, shape, x.channels, weights, kernel, stride, affine, activate,
            );
            (data, Vec::new())
        };
        let map = Map::new(
            x.channels,
            x.height.div_ceil(self.stride),
            x.width.div_ceil(self.stride),
            data,
        );
        (map, means)
    }
}

/// A small dense layer on a vector: `y = W x + b`, `W` `[out, in]` row-major.
#[derive(Clone, Debug)]
pub struct Dense {
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) in_features: usize,
}

impl Dense {
    /// From `[out, in]` values and a bias.
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, in_features: usize) -> Self {
        assert_eq!(weight.len(), bias.len() * in_features, "dense layer shape");
        Self {
            weight,
            bias,
            in_features,
        }
    }

    /// From a 1x1 convolution on a `[C, 1, 1]` map (squeeze-excite's layers).
    fn from_conv(conv: &ConvWeight) -> Self {
        let [out, inp, _, _] = conv.weight.dims();
        let bias = conv
            .bias
            .as_ref()
            .map_or_else(|| vec![0.0; out], |b| values(b.val()));
        Self::new(values(conv.weight.val()), bias, inp)
    }

    /// `W x + b`.
    pub fn run(&self, x: &[f32]) -> Vec<f32> {
        self.weight
            .chunks_exact(self.in_features)
            .zip(&self.bias)
            .map(|(row, b)| {
                let mut sum = 0f32;
                for (w, v) in row.iter().zip(x) {
                    sum += w * v;
                }
                sum + b
            })
            .collect()
    }
}

/// Squeeze-excite: global average pool, reduce + swish, expand + sigmoid.
#[derive(Clone, Debug)]
pub(crate) struct SqueezeExcite {
    pub(crate) reduce: Dense,
    pub(crate) expand: Dense,
}

impl SqueezeExcite {
    fn new(reduce: &ConvWeight, expand: &ConvWeight) -> Self {
        Self {
            reduce: Dense::from_conv(reduce),
            expand: Dense::from_conv(expand),
        }
    }

    pub(crate) fn gate(&self, x: &Map) -> Vec<f32> {
        self.gate_from_means(&x.channel_means())
    }

    /// [`Self::gate`] from the map's channel means.
    pub(crate) fn gate_from_means(&self, means: &[f32]) -> Vec<f32> {
        let hidden: Vec<f32> = self.reduce.run(means).into_iter().map(swish).collect();
        self.expand
            .run(&hidden)
            .into_iter()
            .map(|v| 1.0 / (1.0 + fast_exp(-v)))
            .collect()
    }
}

/// An inverted-residual block (MBConv1 or an elastic block at one ratio), prepared.
#[derive(Clone, Debug)]
pub struct PreparedBlock {
    pub(crate) expand: Option<Pointwise>,
    pub(crate) depthwise: Depthwise,
    pub(crate) se: SqueezeExcite,
    pub(crate) project: Pointwise,
    pub(crate) residual: bool,
}

impl PreparedBlock {
    /// The MBConv1 block (no expansion).
    fn from_first(block: &DepthwiseSeparable) -> Self {
        Self {
            expand: None,
            depthwise: Depthwise::fold(
                block.depthwise.weight.val(),
                1,
                Some(&block.bn_depthwise),
                Activation::Swish,
            ),
            se: SqueezeExcite::new(&block.se_reduce, &block.se_expand),
            project: Pointwise::fold(
                block.pointwise.weight.val(),
                None,
                Some(&block.bn_pointwise),
            ),
            residual: block.residual,
        }
    }

    /// An elastic block at `ratio` (one of its ratios).
    fn from_elastic(block: &ElasticMbConv, ratio: usize) -> Self {
        let block = block.extract(ratio);
        Self {
            expand: Some(Pointwise::fold(
                block.expand.weight.val(),
                None,
                Some(&block.bn_expand[0]),
            )),
            depthwise: Depthwise::fold(
                block.depthwise.weight.val(),
                block.stride,
                Some(&block.bn_depthwise[0]),
                Activation::Swish,
            ),
            se: SqueezeExcite::new(&block.se_reduce, &block.se_expand),
            project: Pointwise::fold(block.project.weight.val(), None, Some(&block.bn_project[0])),
            residual: block.residual,
        }
    }

    /// Runs the block.
    pub fn run(&self, x: &Map) -> Map {
        // The squeeze-excite means taken by the depthwise kernel as it writes each plane.
        let (y, means) = match &self.expand {
            Some(expand) => {
                let expanded = expand.run(x, Activation::Swish, None);
                self.depthwise.run_with_means(&expanded)
            }
            None => self.depthwise.run_with_means(x),
        };
        let gate = self.se.gate_from_means(&means);
        let shortcut = self.residual.then_some(x);
        self.project
            .run_gated(&y, &gate, Activation::Identity, shortcut)
    }
}

/// A separable convolution (depthwise 3x3, pointwise with bias, optional batch norm folded
/// into the pointwise), then an activation.
#[derive(Clone, Debug)]
pub(crate) struct PreparedSeparable {
    pub(crate) depthwise: Depthwise,
    pub(crate) pointwise: Pointwise,
    pub(crate) activation: Activation,
}

impl PreparedSeparable {
    fn new(conv: &SeparableConv, bn: Option<&BatchNorm>, activation: Activation) -> Self {
        let bn = bn.or(conv.bn.as_ref());
        Self {
            depthwise: Depthwise::fold(conv.depthwise.weight.val(), 1, None, Activation::Identity),
            pointwise: Pointwise::fold(
                conv.pointwise.weight.val(),
                conv.pointwise.bias.as_ref().map(|b| b.val()),
                bn,
            ),
            activation,
        }
    }

    fn run(&self, x: &Map) -> Map {
        let y = self.depthwise.run(x);
        self.pointwise.run(&y, self.activation, None)
    }
}

fn fold_conv_bn(conv_bn: &ConvBn) -> Pointwise {
    Pointwise::fold(
        conv_bn.conv.weight.val(),
        conv_bn.conv.bias.as_ref().map(|b| b.val()),
        Some(&conv_bn.bn),
    )
}

/// Max pooling 3x3 stride 2 with TF "same" padding (padding never wins).
pub(crate) fn max_pool(x: &Map) -> Map {
    let (kernel, stride) = (3, 2);
    let data = ant_kernels::fast::max_pool_planes(
        &x.data,
        [x.channels, x.height, x.width],
        kernel,
        stride,
    );
    Map::new(
        x.channels,
        x.height.div_ceil(stride),
        x.width.div_ceil(stride),
        data,
    )
}

/// Burn's nearest index map: output `o` reads input `floor(o * in / out)`.
fn nearest_index_map(in_size: usize, out_size: usize) -> Vec<usize> {
    let ratio = in_size as f64 / out_size as f64;
    (0..out_size)
        .map(|o| ((o as f64 * ratio).floor() as usize).min(in_size - 1))
        .collect()
}

/// Nearest-neighbour resize to `height x width`.
pub(crate) fn upsample(x: &Map, height: usize, width: usize) -> Map {
    let rows = nearest_index_map(x.height, height);
    let columns = nearest_index_map(x.width, width);
    // From the kernels' scratch, as every map of a frame (see `Map`'s `Clone`).
    let mut data = ant_kernels::scratch::take(x.channels * height * width);
    let planes = x.data.chunks_exact(x.plane());
    for (plane, out_plane) in planes.zip(data.chunks_exact_mut(height * width)) {
        for (y, &row) in rows.iter().enumerate() {
            let (done, rest) = out_plane.split_at_mut(y * width);
            let out_row = &mut rest[..width];
            if y > 0 && rows[y - 1] == row {
                // The previous output row's source row again (every other row at 2x).
                out_row.copy_from_slice(&done[(y - 1) * width..]);
                continue;
            }
            let source = &plane[row * x.width..(row + 1) * x.width];
            if width == 2 * x.width {
                // Exactly 2x: output column `o` reads `o / 2`, each value twice.
                for (pair, &value) in out_row.as_chunks_mut::<2>().0.iter_mut().zip(source) {
                    *pair = [value; 2];
                }
            } else {
                for (out, &column) in out_row.iter_mut().zip(&columns) {
                    *out = source[column];
                }
            }
        }
    }
    Map::new(x.channels, height, width, data)
}

/// A BiFPN node, prepared.
#[derive(Clone, Debug)]
pub(crate) struct PreparedNode {
    pub(crate) resample: Vec<Option<Pointwise>>,
    /// `relu(w) / (sum relu(w) + 1e-4)`, computed once.
    pub(crate) weights: Vec<f32>,
    pub(crate) conv: PreparedSeparable,
    pub(crate) level: usize,
    pub(crate) inputs: Vec<usize>,
}

impl PreparedNode {
    fn new(node: &FpnNode) -> Self {
        let raw = values(node.edge_weights.val());
        let relu: Vec<f32> = raw.iter().map(|w| w.max(0.0)).collect();
        let mut total = 0f32;
        for w in &relu {
            total += w;
        }
        let total = total + 1e-4;
        Self {
            resample: node
                .resample
                .iter()
                .map(|r| r.as_ref().map(fold_conv_bn))
                .collect(),
            weights: relu.iter().map(|w| w / total).collect(),
            conv: PreparedSeparable::new(&node.conv, None, Activation::Identity),
            level: node.level,
            inputs: node.inputs.clone(),
        }
    }

    fn run(&self, features: &[Map], levels: &[usize], size: (usize, usize)) -> Map {
        let mut fused: Option<Vec<f32>> = None;
        for (index, &offset) in self.inputs.iter().enumerate() {
            let resampled;
            let mut x = match &self.resample[index] {
                Some(resample) => {
                    resampled = resample.run(&features[offset], Activation::Identity, None);
                    &resampled
                }
                None => &features[offset],
            };
            let mut owned;
            let from = levels[offset];
            if from < self.level {
                owned = max_pool(x);
                for _ in from + 1..self.level {
                    owned = max_pool(&owned);
                }
                x = &owned;
            } else if from > self.level {
                owned = upsample(x, size.0, size.1);
                x = &owned;
            }
            let weight = self.weights[index];
            fused = Some(match fused {
                None => {
                    // From the kernels' scratch, as every map of a frame (see `Map`'s `Clone`).
                    let mut sum = ant_kernels::scratch::take(x.data.len());
                    for (s, v) in sum.iter_mut().zip(&x.data) {
                        *s = v * weight;
                    }
                    sum
                }
                Some(mut sum) => {
                    weighted_add(&mut sum, &x.data, Some(weight));
                    sum
                }
            });
        }
        let mut fused = fused.expect("a node has inputs");
        simd(|| fused.iter_mut().for_each(|v| *v = swish(*v)));
        let channels = fused.len() / (size.0 * size.1);
        self.conv.run(&Map::new(channels, size.0, size.1, fused))
    }
}

/// The BiFPN, prepared.
#[derive(Clone, Debug)]
pub(crate) struct PreparedFpn {
    pub(crate) extra_levels: Vec<Option<Pointwise>>,
    pub(crate) cells: Vec<Vec<PreparedNode>>,
    pub(crate) min_level: usize,
}

impl PreparedFpn {
    fn new(fpn: &BiFpn) -> Self {
        Self {
            extra_levels: fpn
                .extra_levels
                .iter()
                .map(|e| e.as_ref().map(fold_conv_bn))
                .collect(),
            cells: fpn
                .cells
                .iter()
                .map(|cell| cell.nodes.iter().map(PreparedNode::new).collect())
                .collect(),
            min_level: fpn.min_level,
        }
    }

    fn run(&self, pyramid: [&Map; 3]) -> Vec<Map> {
        let mut features: Vec<Map> = pyramid.iter().map(|m| (*m).clone()).collect();
        for extra in &self.extra_levels {
            let last = features.last().expect("three backbone maps");
            let pooled = match extra {
                Some(conv) => max_pool(&conv.run(last, Activation::Identity, None)),
                None => max_pool(last),
            };
            features.push(pooled);
        }
        let num_levels = features.len();
        let sizes: Vec<(usize, usize)> = features.iter().map(|m| (m.height, m.width)).collect();
        for cell in &self.cells {
            let mut levels: Vec<usize> = (0..num_levels).map(|i| self.min_level + i).collect();
            let mut all = features;
            for node in cell {
                let output = node.run(&all, &levels, sizes[node.level - self.min_level]);
                all.push(output);
                levels.push(node.level);
            }
            features = all.split_off(all.len() - num_levels);
        }
        features
    }
}

/// A class or box net, prepared: per level, the shared separable convs with that level's
/// norms folded in.
#[derive(Clone, Debug)]
pub(crate) struct PreparedHead {
    /// `[level][repeat]`.
    pub(crate) levels: Vec<Vec<PreparedSeparable>>,
    pub(crate) predict: PreparedSeparable,
}

impl PreparedHead {
    fn new(head: &HeadNet, num_levels: usize) -> Self {
        Self {
            levels: (0..num_levels)
                .map(|level| {
                    head.conv_rep
                        .iter()
                        .zip(&head.bn_rep)
                        .map(|(conv, norms)| {
                            PreparedSeparable::new(conv, Some(&norms[level]), Activation::Swish)
                        })
                        .collect()
                })
                .collect(),
            predict: PreparedSeparable::new(&head.predict, None, Activation::Identity),
        }
    }

    fn run(&self, levels: &[Map]) -> Vec<Map> {
        levels
            .iter()
            .zip(&self.levels)
            .map(|(x, convs)| match convs.split_first() {
                Some((first, rest)) => {
                    let y = rest.iter().fold(first.run(x), |y, conv| conv.run(&y));
                    self.predict.run(&y)
                }
                None => self.predict.run(x),
            })
            .collect()
    }
}

/// Raw head outputs of one image, per level `[anchors * outputs, h, w]`.
#[derive(Clone, Debug)]
pub struct PreparedOutputs {
    /// Class logits per level.
    pub class: Vec<Map>,
    /// Box codes per level.
    pub boxes: Vec<Map>,
}

impl PreparedOutputs {
    /// As the tensors [`EfficientDet::forward_pyramid`] returns.
    pub fn to_tensors(&self, device: &Device) -> crate::detector::HeadOutputs {
        crate::detector::HeadOutputs {
            class: self.class.iter().map(|m| m.to_tensor(device)).collect(),
            boxes: self.boxes.iter().map(|m| m.to_tensor(device)).collect(),
        }
    }
}

/// Rows of `width` values in anchor order (level, y, x, anchor) from `[a * width, h, w]`
/// maps: the transpose [`crate::postprocess`] reads.
fn flatten(maps: &[Map], width: usize) -> Vec<f32> {
    let total: usize = maps.iter().map(|m| m.data.len()).sum();
    let mut out = Vec::with_capacity(total);
    for map in maps {
        let plane = map.plane();
        for position in 0..plane {
            out.extend((0..map.channels).map(|channel| map.data[channel * plane + position]));
        }
        debug_assert_eq!(map.channels % width, 0);
    }
    out
}

/// Runs `blocks` in turn from `x`.
fn run_blocks(blocks: &[PreparedBlock], x: &Map) -> Map {
    let (first, rest) = blocks.split_first().expect("a stage has blocks");
    let mut y = first.run(x);
    for block in rest {
        y = block.run(&y);
    }
    y
}

/// A detector prepared for CPU inference: every layer folded once, every (stage, ratio) the
/// model holds sliced into its own blocks. See the module docs.
#[derive(Clone, Debug)]
pub struct PreparedDetector {
    pub(crate) stem: Pointwise,
    pub(crate) stem_kernel: usize,
    pub(crate) first_stage: Vec<PreparedBlock>,
    /// `[stage][ratio - 1]`: the stage's blocks at that ratio, when the model holds it.
    pub(crate) stages: Vec<Vec<Option<Vec<PreparedBlock>>>>,
    pub(crate) available: Vec<Vec<usize>>,
    pub(crate) fpn: PreparedFpn,
    pub(crate) class_net: PreparedHead,
    pub(crate) box_net: PreparedHead,
    pub(crate) config: EfficientDetConfig,
}

impl PreparedDetector {
    /// Prepares `model` (its weights are read once; the model is not kept).
    pub fn new(model: &EfficientDet) -> Self {
        let backbone = &model.backbone;
        let [out, inp, kernel, _] = backbone.stem.weight.dims();
        let stem_weight = backbone
            .stem
            .weight
            .val()
            .reshape([out, inp * kernel * kernel, 1, 1]);
        let num_levels = model.config.num_levels();
        Self {
            stem: Pointwise::fold(stem_weight, None, Some(&backbone.bn_stem)),
            stem_kernel: kernel,
            first_stage: backbone
                .first_stage
                .iter()
                .map(PreparedBlock::from_first)
                .collect(),
            stages: backbone
                .stages
                .iter()
                .map(|stage| {
                    (1..=MAX_RATIO)
                        .map(|ratio| {
                            stage[0].ratios.contains(&ratio).then(|| {
                                stage
                                    .iter()
                                    .map(|block| PreparedBlock::from_elastic(block, ratio))
                                    .collect()
                            })
                        })
                        .collect()
                })
                .collect(),
            available: backbone
                .stages
                .iter()
                .map(|s| s[0].ratios.clone())
                .collect(),
            fpn: PreparedFpn::new(&model.fpn),
            class_net: PreparedHead::new(&model.class_net, num_levels),
            box_net: PreparedHead::new(&model.box_net, num_levels),
            config: model.config.clone(),
        }
    }

    /// The detector's configuration.
    pub fn config(&self) -> &EfficientDetConfig {
        &self.config
    }

    /// Checks that every stage holds the ratio `arch` asks of it.
    ///
    /// # Errors
    /// [`SupernetError::UnavailableRatio`].
    pub fn validate(&self, arch: &SubnetArch) -> Result<()> {
        for (stage, available) in self.available.iter().enumerate() {
            let ratio = arch.ratio(stage);
            if !available.contains(&ratio) {
                return Err(SupernetError::UnavailableRatio {
                    stage: stage + 1,
                    ratio,
                    available: available.clone(),
                });
            }
        }
        Ok(())
    }

    /// The stem (3x3 stride 2, norm, swish): the direct kernel of
    /// [`ant_kernels::fast::stem_conv3x3_s2`] for a 3x3 stem on RGB, else im2col and one matrix
    /// product.
    ///
    /// # Panics
    /// When `image` does not have the stem's input channels.
    pub fn stem(&self, image: &Map) -> Map {
        let kernel = self.stem_kernel;
        if kernel == 3 && image.channels == 3 {
            let data = ant_kernels::fast::stem_conv3x3_s2(
                &image.data,
                [image.height, image.width],
                &self.stem.weight,
                &self.stem.bias,
                true,
            );
            return Map::new(
                self.stem.out_channels,
                image.height.div_ceil(2),
                image.width.div_ceil(2),
                data,
            );
        }
        let stride = 2;
        let (pad_top, _) = crate::nn::same_padding(image.height, kernel, stride);
        let (pad_left, _) = crate::nn::same_padding(image.width, kernel, stride);
        let out_h = image.height.div_ceil(stride);
        let out_w = image.width.div_ceil(stride);
        let rows = image.channels * kernel * kernel;
        assert_eq!(rows, self.stem.in_channels, "stem input channels");
        let mut columns = vec![0f32; rows * out_h * out_w];
        for (row, column_row) in columns.chunks_exact_mut(out_h * out_w).enumerate() {
            let channel = row / (kernel * kernel);
            let (ky, kx) = ((row / kernel) % kernel, row % kernel);
            let plane = &image.data[channel * image.plane()..(channel + 1) * image.plane()];
            for (oy, out_row) in column_row.chunks_exact_mut(out_w).enumerate() {
                let Some(iy) = (oy * stride + ky).checked_sub(pad_top) else {
                    continue;
                };
                if iy >= image.height {
                    continue;
                }
                let source = &plane[iy * image.width..(iy + 1) * image.width];
                for (ox, value) in out_row.iter_mut().enumerate() {
                    if let Some(ix) = (ox * stride + kx).checked_sub(pad_left)
                        && ix < image.width
                    {
                        *value = source[ix];
                    }
                }
            }
        }
        let columns = Map::new(rows, out_h, out_w, columns);
        self.stem.run(&columns, Activation::Swish, None)
    }

    /// The MBConv1 stage (stage-level feature 0).
    pub fn first_stage(&self, x: &Map) -> Map {
        run_blocks(&self.first_stage, x)
    }

    /// Elastic stage `stage` (0-based over the six) at `ratio`.
    ///
    /// # Errors
    /// [`SupernetError::UnavailableRatio`] when the model does not hold it.
    pub fn stage(&self, stage: usize, x: &Map, ratio: usize) -> Result<Map> {
        let blocks = self.stages[stage]
            .get(ratio.wrapping_sub(1))
            .and_then(Option::as_ref)
            .ok_or_else(|| SupernetError::UnavailableRatio {
                stage: stage + 1,
                ratio,
                available: self.available[stage].clone(),
            })?;
        Ok(run_blocks(blocks, x))
    }

    /// The seven stage-level features of subnet `arch` (with the stem's output first).
    ///
    /// # Errors
    /// [`SupernetError::UnavailableRatio`].
    pub fn backbone(&self, image: &Map, arch: &SubnetArch) -> Result<(Map, Vec<Map>)> {
        self.validate(arch)?;
        let stem = self.stem(image);
        let mut stages = Vec::with_capacity(NUM_ELASTIC_STAGES + 1);
        stages.push(self.first_stage(&stem));
        for stage in 0..NUM_ELASTIC_STAGES {
            let input = stages.last().expect("the first stage is in");
            let output = self.stage(stage, input, arch.ratio(stage))?;
            stages.push(output);
        }
        Ok((stem, stages))
    }

    /// BiFPN and heads on the three pyramid maps (stage-level features 2, 4, 6).
    pub fn pyramid(&self, pyramid: [&Map; 3]) -> PreparedOutputs {
        let levels = self.fpn.run(pyramid);
        let (class, boxes) =
            rayon::join(|| self.class_net.run(&levels), || self.box_net.run(&levels));
        PreparedOutputs { class, boxes }
    }

    /// Raw head outputs of subnet `arch` on `image` (`[3, size, size]`, normalised).
    ///
    /// # Errors
    /// [`SupernetError::UnavailableRatio`].
    pub fn forward(&self, image: &Map, arch: &SubnetArch) -> Result<PreparedOutputs> {
        // On a worker of Rayon's pool: the kernels' parallel loops then run on that worker
        // (and spread to idle ones) instead of being handed over from the calling thread
        // and waited for, once per layer.
        rayon::scope(|_| {
            let (_, stages) = self.backbone(image, arch)?;
            Ok(self.pyramid(PYRAMID_STAGES.map(|index| &stages[index])))
        })
    }

    /// Decoding and NMS (as [`EfficientDet::postprocess_with`]).
    pub fn postprocess(&self, outputs: &PreparedOutputs, anchors: &Anchors) -> Detections {
        let num_classes = self.config.num_classes;
        let logits = flatten(&outputs.class, num_classes);
        let codes = flatten(&outputs.boxes, 4);
        detect_image(&logits, &codes, anchors, num_classes, &self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_upsample_as_the_nearest_index_map_reads() {
        // Exactly 2x (rows copied, values paired), and ratios that are not (3 -> 5: rows
        // 0, 0, 1, 1, 2; 4 -> 7; 6 -> 6), on two planes.
        for ((h, w), (height, width)) in [((4, 5), (8, 10)), ((3, 4), (5, 7)), ((6, 6), (6, 6))] {
            let x = Map::new(2, h, w, (0..2 * h * w).map(|v| v as f32).collect());
            let (rows, columns) = (nearest_index_map(h, height), nearest_index_map(w, width));
            let expected: Vec<f32> = (0..2)
                .flat_map(|c| {
                    let (rows, columns) = (&rows, &columns);
                    rows.iter().flat_map(move |&r| {
                        columns
                            .iter()
                            .map(move |&col| (c * h * w + r * w + col) as f32)
                    })
                })
                .collect();
            assert_eq!(
                upsample(&x, height, width).data,
                expected,
                "{h}x{w} -> {height}x{width}"
            );
        }
    }
}
