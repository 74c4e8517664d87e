//! Skip-Convolutions (Habibi et al., *Skip-Convolutions for Efficient Video Processing*,
//! CVPR 2021) over the prepared detector: the "D0 w/ SkipConv" row of ANT's Table 1.
//!
//! Reference code: <https://github.com/Qualcomm-AI-research/Skip-Conv> (`lib/skip_conv.py`,
//! norm gates in `lib/gates.py`). Two differences, on purpose: there the residual is taken
//! against the previous frame's input and a skipped residual is dropped (`z = z0 + g (W * r)`,
//! then `x0 = x`), so a change below the threshold is lost for good, where here it stays in
//! the residual until it crosses the threshold; and there the gate averages `|r|` over each
//! output's receptive field (an L1 norm over channels, scaled by the weights' mean `|W|` for
//! the default output gate), where here it thresholds the mean over channels at each input
//! position and recomputes an output when any input of its receptive field moved.
//!
//! A convolution is linear, so on a stream its output can follow its input's changes:
//! `W * x_t = W * x_ref + W * (x_t - x_ref)`, and where the residual `x_t - x_ref` is small
//! the output can be left as it was. Every convolution of the detector (the stem, every
//! expansion, depthwise and projection of the backbone, the BiFPN's resampling and
//! separable convolutions, both heads) becomes such a skip convolution with a **norm gate**:
//!
//! - each convolution keeps `x_ref`, the input its outputs were last computed from, and
//!   those outputs;
//! - an input position has *moved* when the mean over channels of `|x_t - x_ref|` there is
//!   above the threshold; `x_ref` takes `x_t`'s values at the moved positions, and keeps its
//!   own elsewhere, so a slow drift is caught once it adds up to the threshold (the gate
//!   compares with what was last computed, not with the previous frame);
//! - an output position is recomputed when a moved position lies in its receptive field (for
//!   a 1x1 convolution, the same position; for a k x k one, the mask dilated by the kernel at
//!   the stride); the others keep their values.
//!
//! Every output is thereby always the dense convolution of `x_ref` (the residual form above
//! with the residual summed over time), so errors do not accumulate across frames, and at
//! threshold 0 the outputs are the dense detector's (tested on a real clip). The first frame of
//! a stream computes everything.
//!
//! **What is not a convolution** runs dense on every frame, as in Skip-Conv: the batch norms
//! are folded into their convolutions (affine, so they stay inside the linear part); swish is
//! applied to each recomputed output; squeeze-excite recomputes its gate from the whole map
//! every frame (a global pool and two small dense layers) and scales the projection's input
//! with it, which the projection's norm gate then sees as input change (a small change of the
//! gate moves every position a little, under the threshold); residual additions, the BiFPN's
//! weighted fusion, max pooling and upsampling are element-wise passes.
//!
//! **Cost.** [`SkipFrame::macs`] counts the multiply-accumulates of the output positions
//! actually recomputed, per convolution, plus the squeeze-excite layers, the way
//! [`crate::detector_cost`] counts a dense frame ([`SkipFrame::dense_macs`] is that count and
//! equals it). Two kernels compute the same outputs:
//! - [`SkipKernel::Dense`]: every convolution runs whole on `x_ref`, as a CPU user of
//!   Skip-Conv gets without a sparse convolution (the paper's measured point: slower than the
//!   dense detector, since the gates cost on top of every convolution);
//! - [`SkipKernel::Sparse`]: only the recomputed positions run. A 1x1 convolution gathers the
//!   moved input columns, runs the engine's matrix product on them and scatters the result;
//!   a depthwise convolution runs its taps over the recomputed runs of each output row; the
//!   stem gathers the 27 taps of each recomputed position and runs one product.

use rayon::prelude::*;

use crate::arch::{MAX_RATIO, NUM_ELASTIC_STAGES, SubnetArch};
use crate::config::PYRAMID_STAGES;
use crate::error::{Result, SupernetError};
use crate::nn::same_padding;
use crate::prepared::{
    Activation, Depthwise, Map, Pointwise, PreparedBlock, PreparedDetector, PreparedFpn,
    PreparedHead, PreparedNode, PreparedOutputs, PreparedSeparable, max_pool, swish, upsample,
    weighted_add,
};
use ant_kernels::fast::{PARALLEL_MIN_OUTPUTS, fast_exp, simd};
use ant_kernels::matmul::{Columns, PointwiseEpilogue, pointwise, product_packed};

/// How a skip convolution computes its recomputed positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipKernel {
    /// The whole convolution on the reference input (what a dense CPU kernel gives).
    Dense,
    /// Only the recomputed output positions.
    Sparse,
}

impl SkipKernel {
    /// `dense` or `sparse`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Sparse => "sparse",
        }
    }
}

/// The gate and the kernel of a [`SkipConvDetector`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SkipConvOptions {
    /// An input position moved when the mean over channels of `|x_t - x_ref|` exceeds this.
    /// 0 recomputes every position whose input changed at all.
    pub threshold: f32,
    /// The kernel.
    pub kernel: SkipKernel,
}

/// What one frame of a [`SkipConvDetector`] computed.
#[derive(Clone, Debug)]
pub struct SkipFrame {
    /// The raw head outputs.
    pub outputs: PreparedOutputs,
    /// Multiply-accumulates of the recomputed positions (plus squeeze-excite).
    pub macs: u64,
    /// Multiply-accumulates of the dense detector on this frame.
    pub dense_macs: u64,
    /// The first frame of the stream (every position computed).
    pub first: bool,
    /// What each layer computed, in the order the frame ran them.
    pub layers: Vec<LayerWork>,
}

/// What one layer of a [`SkipFrame`] computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerWork {
    /// The layer.
    pub kind: LayerKind,
    /// Output positions recomputed.
    pub computed: usize,
    /// Output positions in all.
    pub positions: usize,
    /// Multiply-accumulates per output position.
    pub macs_per_position: u64,
}

/// The kinds of layer a [`SkipConvDetector`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// The 3x3 stride-2 stem convolution.
    Stem,
    /// A 1x1 convolution.
    Pointwise,
    /// A depthwise convolution.
    Depthwise,
    /// A squeeze-excite gate's two dense layers (one position, every frame).
    SqueezeExcite,
}

impl SkipFrame {
    /// `macs / dense_macs`.
    pub fn computed_fraction(&self) -> f64 {
        self.macs as f64 / self.dense_macs.max(1) as f64
    }
}

/// The full network of a prepared detector (every stage at ratio 6) as skip convolutions,
/// streaming frames. See the module docs.
#[derive(Debug)]
pub struct SkipConvDetector {
    detector: PreparedDetector,
    state: Stream,
}

impl SkipConvDetector {
    /// Skip convolutions over `detector`'s full network.
    ///
    /// # Errors
    /// [`SupernetError::InvalidThreshold`] for a negative or non-finite threshold;
    /// [`SupernetError::UnavailableRatio`] when the detector does not hold ratio 6 everywhere.
    pub fn new(detector: PreparedDetector, options: SkipConvOptions) -> Result<Self> {
        if !options.threshold.is_finite() || options.threshold < 0.0 {
            return Err(SupernetError::InvalidThreshold {
                threshold: options.threshold,
            });
        }
        detector.validate(&SubnetArch::LARGEST)?;
        Ok(Self {
            detector,
            state: Stream {
                options,
                first: true,
                sites: Vec::new(),
                cursor: 0,
                macs: 0,
                dense_macs: 0,
                layers: Vec::new(),
            },
        })
    }

    /// The options.
    pub fn options(&self) -> SkipConvOptions {
        self.state.options
    }

    /// The prepared detector (its [`PreparedDetector::postprocess`] decodes the outputs).
    pub fn detector(&self) -> &PreparedDetector {
        &self.detector
    }

    /// Starts a new stream: the next frame computes everything. The buffers are kept, so
    /// that the new stream's first frame does not allocate them again.
    pub fn reset(&mut self) {
        self.state.first = true;
        for site in &mut self.state.sites {
            site.fresh = true;
        }
    }

    /// Runs one frame (`[3, size, size]`, normalised) of the stream.
    ///
    /// # Panics
    /// When the image does not have the stem's input channels.
    pub fn forward(&mut self, image: &Map) -> SkipFrame {
        let detector = &self.detector;
        let state = &mut self.state;
        let first = std::mem::replace(&mut state.first, false);
        state.cursor = 0;
        state.macs = 0;
        state.dense_macs = 0;
        state.layers.clear();
        let stem = state.stem(detector, image);
        let mut current = state.blocks(&detector.first_stage, &stem);
        state.release(stem);
        let mut pyramid = Vec::with_capacity(PYRAMID_STAGES.len());
        for stage in 0..NUM_ELASTIC_STAGES {
            let blocks = detector.stages[stage][MAX_RATIO - 1]
                .as_ref()
                .expect("checked in SkipConvDetector::new");
            let next = state.blocks(blocks, &current);
            // `current` is stage-level feature `stage` (0 = the MBConv1 stage).
            if PYRAMID_STAGES.contains(&stage) {
                pyramid.push(current);
            } else {
                state.release(current);
            }
            current = next;
        }
        if PYRAMID_STAGES.contains(&NUM_ELASTIC_STAGES) {
            pyramid.push(current);
        } else {
            state.release(current);
        }
        let levels = state.fpn(&detector.fpn, pyramid);
        let class = state.head(&detector.class_net, &levels);
        let boxes = state.head(&detector.box_net, &levels);
        for level in levels {
            state.release(level);
        }
        SkipFrame {
            outputs: PreparedOutputs { class, boxes },
            macs: state.macs,
            dense_macs: state.dense_macs,
            first,
            layers: std::mem::take(&mut state.layers),
        }
    }
}

/// One convolution's memory between frames.
#[derive(Clone, Debug, Default)]
struct Site {
    /// The input its outputs were last computed from.
    reference: Vec<f32>,
    /// Its outputs.
    output: Vec<f32>,
    /// A new stream started: the next frame computes everything.
    fresh: bool,
}

/// A feature map; when its buffer is a convolution's stored output, that convolution, which
/// gets the buffer back once the map has been read ([`Stream::release`]); and the positions
/// where it may differ from the previous frame's map (`None`: anywhere).
struct Feature {
    map: Map,
    owner: Option<usize>,
    changed: Option<Vec<bool>>,
}

impl Feature {
    /// A map computed this frame, which may differ anywhere.
    fn owned(map: Map) -> Self {
        Self {
            map,
            owner: None,
            changed: None,
        }
    }
}

/// The input positions a norm gate found moved, the site's reference updated there.
struct Moved {
    /// Moved positions, ascending.
    positions: Vec<usize>,
    /// The input at the moved positions, `[channels, padded]` (when asked for), each row
    /// padded with zeros to [`padded_columns`].
    columns: Vec<f32>,
}

/// Columns a gathered matrix product runs on for `count` positions: whole vector blocks, so
/// that a few moved positions do not fall into the product's scalar tail.
fn padded_columns(count: usize) -> usize {
    count.next_multiple_of(32)
}

/// The state of a stream: every convolution's memory, visited in the same order each frame.
#[derive(Debug)]
struct Stream {
    options: SkipConvOptions,
    /// The next frame starts a stream.
    first: bool,
    sites: Vec<Site>,
    cursor: usize,
    macs: u64,
    dense_macs: u64,
    layers: Vec<LayerWork>,
}

/// Below this share of a plane, per-position (indexed) loops beat whole-plane passes.
const SPARSE_SHARE: usize = 4;

/// The sparse kernel runs a depthwise convolution's runs below this share (numerator,
/// denominator) of its plane, and the dense kernel on the whole plane above it (measured on
/// the main job's model: the runs cost about 3x the dense kernel per output).
const DEPTHWISE_DENSE_SHARE: (usize, usize) = (1, 3);

impl Stream {
    /// The next convolution's index (created empty on a stream's first frame).
    fn next_site(&mut self) -> usize {
        let index = self.cursor;
        if index == self.sites.len() {
            self.sites.push(Site::default());
        }
        self.cursor += 1;
        index
    }

    fn release(&mut self, feature: Feature) {
        if let Some(owner) = feature.owner {
            self.sites[owner].output = feature.map.into_data();
        }
    }

    fn count(&mut self, kind: LayerKind, computed: usize, total: usize, per_position: usize) {
        self.macs += (computed * per_position) as u64;
        self.dense_macs += (total * per_position) as u64;
        self.layers.push(LayerWork {
            kind,
            computed,
            positions: total,
            macs_per_position: per_position as u64,
        });
    }

    /// The norm gate of site `index` on its input `x * scale` (per channel, when given).
    ///
    /// Returns `None` on a stream's first frame, or when the site has no outputs for this
    /// shape yet: everything is computed and the reference becomes the input. Otherwise the
    /// moved positions, with the reference updated there. Only the positions of `changed` are examined: where the
    /// input equals the previous frame's, its distance to the reference is what the gate
    /// left there last frame, at most the threshold.
    fn gate(
        &mut self,
        index: usize,
        x: &Map,
        scale: Option<&[f32]>,
        changed: Option<&[bool]>,
        output_len: usize,
        want_columns: bool,
    ) -> Option<Moved> {
        let plane = x.plane();
        let channels = x.channels;
        let limit = self.options.threshold * channels as f32;
        let site = &mut self.sites[index];
        if site.fresh || site.reference.len() != x.data.len() || site.output.len() != output_len {
            site.fresh = false;
            site.reference.clear();
            site.reference.extend_from_slice(&x.data);
            if let Some(scale) = scale {
                scale_planes(&mut site.reference, plane, scale);
            }
            site.output.resize(output_len, 0.0);
            return None;
        }
        let reference = &mut site.reference;
        let candidates = changed
            .map(moved_positions)
            .filter(|list| list.len() * SPARSE_SHARE < plane);
        let positions: Vec<usize> = match candidates {
            Some(list) => {
                let mut sums = vec![0f32; list.len()];
                for channel in 0..channels {
                    let g = scale.map_or(1.0, |s| s[channel]);
                    let current = &x.data[channel * plane..(channel + 1) * plane];
                    let stored = &reference[channel * plane..(channel + 1) * plane];
                    for (sum, &p) in sums.iter_mut().zip(&list) {
                        *sum += (current[p] * g - stored[p]).abs();
                    }
                }
                list.iter()
                    .zip(&sums)
                    .filter_map(|(&p, &sum)| (sum > limit).then_some(p))
                    .collect()
            }
            None => {
                let mut sums = vec![0f32; plane];
                distance_sums(&mut sums, &x.data, reference, scale);
                moved_positions_where(&sums, limit)
            }
        };
        let mut columns = Vec::new();
        if positions.len() == plane {
            reference.copy_from_slice(&x.data);
            if let Some(scale) = scale {
                scale_planes(reference, plane, scale);
            }
        } else if !positions.is_empty() {
            let padding = padded_columns(positions.len()) - positions.len();
            if want_columns {
                columns.reserve(channels * (positions.len() + padding));
            }
            for channel in 0..channels {
                let g = scale.map_or(1.0, |s| s[channel]);
                let current = &x.data[channel * plane..(channel + 1) * plane];
                let stored = &mut reference[channel * plane..(channel + 1) * plane];
                for &p in &positions {
                    let value = current[p] * g;
                    stored[p] = value;
                    if want_columns {
                        columns.push(value);
                    }
                }
                if want_columns {
                    columns.extend(std::iter::repeat_n(0.0, padding));
                }
            }
        }
        Some(Moved { positions, columns })
    }

    /// A 1x1 convolution (with the activation after it) as a skip convolution on
    /// `x * scale`.
    fn pointwise(
        &mut self,
        conv: &Pointwise,
        x: &Map,
        scale: Option<&[f32]>,
        changed: Option<&[bool]>,
        activation: Activation,
    ) -> Feature {
        assert_eq!(x.channels, conv.in_channels, "pointwise input channels");
        let index = self.next_site();
        let plane = x.plane();
        let kernel = self.options.kernel;
        let moved = self.gate(
            index,
            x,
            scale,
            changed,
            conv.out_channels * plane,
            kernel == SkipKernel::Sparse,
        );
        let computed = moved.as_ref().map_or(plane, |m| m.positions.len());
        self.count(
            LayerKind::Pointwise,
            computed,
            plane,
            conv.in_channels * conv.out_channels,
        );
        let site = &mut self.sites[index];
        let mut output = std::mem::take(&mut site.output);
        if kernel == SkipKernel::Dense || computed == plane {
            let reference = Map::new(
                x.channels,
                x.height,
                x.width,
                std::mem::take(&mut site.reference),
            );
            output = conv.run(&reference, activation, None).into_data();
            self.sites[index].reference = reference.into_data();
        } else if computed > 0 {
            let moved = moved.as_ref().expect("a partial frame has moved positions");
            let product = product_packed(
                &conv.packed,
                padded_columns(computed),
                Columns::Rows(&moved.columns),
                PointwiseEpilogue {
                    bias: &conv.bias,
                    addend: None,
                    swish: activation == Activation::Swish,
                    residual: None,
                },
            );
            scatter_columns(&product, &mut output, plane, &moved.positions);
        }
        Feature {
            map: Map::new(conv.out_channels, x.height, x.width, output),
            owner: Some(index),
            changed: moved
                .filter(|_| computed < plane)
                .map(|m| position_mask(&m.positions, plane)),
        }
    }

    /// A depthwise convolution (norm and activation folded) as a skip convolution.
    fn depthwise(&mut self, conv: &Depthwise, x: &Feature) -> Feature {
        let x_changed = x.changed.as_deref();
        let x = &x.map;
        let index = self.next_site();
        let (out_h, out_w) = (
            x.height.div_ceil(conv.stride),
            x.width.div_ceil(conv.stride),
        );
        let moved = self.gate(index, x, None, x_changed, x.channels * out_h * out_w, false);
        let out_mask = moved.map(|moved| {
            dilate(
                &position_mask(&moved.positions, x.plane()),
                [x.height, x.width],
                conv.kernel,
                conv.stride,
            )
        });
        let computed = out_mask
            .as_ref()
            .map_or(out_h * out_w, |mask| mask.iter().filter(|&&m| m).count());
        self.count(
            LayerKind::Depthwise,
            computed,
            out_h * out_w,
            x.channels * conv.kernel * conv.kernel,
        );
        let kernel = self.options.kernel;
        let site = &mut self.sites[index];
        let mut output = std::mem::take(&mut site.output);
        let reference = Map::new(
            x.channels,
            x.height,
            x.width,
            std::mem::take(&mut site.reference),
        );
        let runs = match (kernel, &out_mask) {
            (SkipKernel::Sparse, Some(mask)) if computed > 0 => {
                let runs = row_runs(mask, out_w, MERGE_GAP);
                // The chunked columns the runs compute, against the dense kernel's plane.
                let work: usize = runs
                    .iter()
                    .map(|(_, start, end)| (end - start).next_multiple_of(16))
                    .sum();
                (work * DEPTHWISE_DENSE_SHARE.1 < out_h * out_w * DEPTHWISE_DENSE_SHARE.0)
                    .then_some(runs)
            }
            _ => None,
        };
        match runs {
            Some(runs) => {
                depthwise_runs(conv, &reference, &runs, [out_h, out_w], &mut output);
            }
            None if computed > 0 => output = conv.run(&reference).into_data(),
            None => {}
        }
        self.sites[index].reference = reference.into_data();
        Feature {
            map: Map::new(x.channels, out_h, out_w, output),
            owner: Some(index),
            changed: out_mask.filter(|_| computed < out_h * out_w),
        }
    }

    /// The stem (3x3 stride 2, norm, swish) as a skip convolution.
    fn stem(&mut self, detector: &PreparedDetector, image: &Map) -> Feature {
        let conv = &detector.stem;
        let kernel = detector.stem_kernel;
        let taps = image.channels * kernel * kernel;
        assert_eq!(taps, conv.in_channels, "stem input channels");
        let index = self.next_site();
        let (out_h, out_w) = (image.height.div_ceil(2), image.width.div_ceil(2));
        let moved = self.gate(
            index,
            image,
            None,
            None,
            conv.out_channels * out_h * out_w,
            false,
        );
        let out_mask = moved.map(|moved| {
            dilate(
                &position_mask(&moved.positions, image.plane()),
                [image.height, image.width],
                kernel,
                2,
            )
        });
        let positions = out_mask.as_ref().map(|mask| moved_positions(mask));
        let computed = positions.as_ref().map_or(out_h * out_w, Vec::len);
        self.count(
            LayerKind::Stem,
            computed,
            out_h * out_w,
            taps * conv.out_channels,
        );
        let skip_kernel = self.options.kernel;
        let site = &mut self.sites[index];
        let mut output = std::mem::take(&mut site.output);
        let reference = Map::new(
            image.channels,
            image.height,
            image.width,
            std::mem::take(&mut site.reference),
        );
        if skip_kernel == SkipKernel::Dense || computed == out_h * out_w {
            output = detector.stem(&reference).into_data();
        } else if computed > 0 {
            let positions = positions.expect("a partial frame has a mask");
            let columns = stem_columns(&reference, kernel, out_w, &positions);
            let product = pointwise(
                &conv.weight,
                [conv.out_channels, taps, padded_columns(positions.len())],
                &columns,
                PointwiseEpilogue {
                    bias: &conv.bias,
                    addend: None,
                    swish: true,
                    residual: None,
                },
            );
            scatter_columns(&product, &mut output, out_h * out_w, &positions);
        }
        self.sites[index].reference = reference.into_data();
        Feature {
            map: Map::new(conv.out_channels, out_h, out_w, output),
            owner: Some(index),
            changed: out_mask.filter(|_| computed < out_h * out_w),
        }
    }

    /// An inverted-residual block: expansion, depthwise and projection as skip convolutions,
    /// squeeze-excite and the residual addition dense. The squeeze-excite gate scales the
    /// projection's input as its norm gate reads it, never as a map of its own.
    fn block(&mut self, block: &PreparedBlock, x: &Feature) -> Feature {
        let expanded = block.expand.as_ref().map(|expand| {
            self.pointwise(
                expand,
                &x.map,
                None,
                x.changed.as_deref(),
                Activation::Swish,
            )
        });
        let depthwise = self.depthwise(&block.depthwise, expanded.as_ref().unwrap_or(x));
        if let Some(expanded) = expanded {
            self.release(expanded);
        }
        let gate = block.se.gate(&depthwise.map);
        let se_macs = block.se.reduce.weight.len() + block.se.expand.weight.len();
        self.count(LayerKind::SqueezeExcite, 1, 1, se_macs);
        let projected = self.pointwise(
            &block.project,
            &depthwise.map,
            Some(&gate),
            None,
            Activation::Identity,
        );
        self.release(depthwise);
        if !block.residual {
            return projected;
        }
        let mut sum = projected.map.data.clone();
        weighted_add(&mut sum, &x.map.data, None);
        let changed = match (&projected.changed, &x.changed) {
            (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(a, b)| *a || *b).collect()),
            _ => None,
        };
        let map = Map::new(
            projected.map.channels,
            projected.map.height,
            projected.map.width,
            sum,
        );
        self.release(projected);
        Feature {
            map,
            owner: None,
            changed,
        }
    }

    fn blocks(&mut self, blocks: &[PreparedBlock], x: &Feature) -> Feature {
        let (first, rest) = blocks.split_first().expect("a stage has blocks");
        let mut y = self.block(first, x);
        for block in rest {
            let next = self.block(block, &y);
            self.release(y);
            y = next;
        }
        y
    }

    fn separable(&mut self, conv: &PreparedSeparable, x: &Feature) -> Feature {
        let depthwise = self.depthwise(&conv.depthwise, x);
        let output = self.pointwise(
            &conv.pointwise,
            &depthwise.map,
            None,
            depthwise.changed.as_deref(),
            conv.activation,
        );
        self.release(depthwise);
        output
    }

    /// The BiFPN on the three pyramid features (as [`PreparedFpn`] runs it).
    fn fpn(&mut self, fpn: &PreparedFpn, pyramid: Vec<Feature>) -> Vec<Feature> {
        let mut features = pyramid;
        for extra in &fpn.extra_levels {
            let last = features.last().expect("three backbone maps");
            let pooled = match extra {
                Some(conv) => {
                    let resampled = self.pointwise(
                        conv,
                        &last.map,
                        None,
                        last.changed.as_deref(),
                        Activation::Identity,
                    );
                    let pooled = max_pool(&resampled.map);
                    self.release(resampled);
                    pooled
                }
                None => max_pool(&last.map),
            };
            features.push(Feature::owned(pooled));
        }
        let num_levels = features.len();
        let sizes: Vec<(usize, usize)> = features
            .iter()
            .map(|f| (f.map.height, f.map.width))
            .collect();
        for cell in &fpn.cells {
            let mut levels: Vec<usize> = (0..num_levels).map(|i| fpn.min_level + i).collect();
            let mut all = features;
            for node in cell {
                let size = sizes[node.level - fpn.min_level];
                let output = self.node(node, &all, &levels, size);
                all.push(output);
                levels.push(node.level);
            }
            features = all.split_off(all.len() - num_levels);
            for feature in all {
                self.release(feature);
            }
        }
        features
    }

    fn node(
        &mut self,
        node: &PreparedNode,
        features: &[Feature],
        levels: &[usize],
        size: (usize, usize),
    ) -> Feature {
        let mut fused: Option<Vec<f32>> = None;
        for (index, &offset) in node.inputs.iter().enumerate() {
            let input = &features[offset];
            let resampled = node.resample[index].as_ref().map(|conv| {
                self.pointwise(
                    conv,
                    &input.map,
                    None,
                    input.changed.as_deref(),
                    Activation::Identity,
                )
            });
            let mut x = resampled
                .as_ref()
                .map_or(&input.map, |feature| &feature.map);
            let owned;
            let from = levels[offset];
            if from < node.level {
                let mut pooled = max_pool(x);
                for _ in from + 1..node.level {
                    pooled = max_pool(&pooled);
                }
                owned = pooled;
                x = &owned;
            } else if from > node.level {
                owned = upsample(x, size.0, size.1);
                x = &owned;
            }
            let weight = node.weights[index];
            fused = Some(match fused {
                None => x.data.iter().map(|v| v * weight).collect(),
                Some(mut sum) => {
                    weighted_add(&mut sum, &x.data, Some(weight));
                    sum
                }
            });
            if let Some(resampled) = resampled {
                self.release(resampled);
            }
        }
        let mut fused = fused.expect("a node has inputs");
        simd(|| fused.iter_mut().for_each(|v| *v = swish(*v)));
        let channels = fused.len() / (size.0 * size.1);
        let fused = Feature::owned(Map::new(channels, size.0, size.1, fused));
        self.separable(&node.conv, &fused)
    }

    /// A class or box net on every level; returns copies of the outputs.
    fn head(&mut self, head: &PreparedHead, levels: &[Feature]) -> Vec<Map> {
        let mut outputs = Vec::with_capacity(levels.len());
        for (level, convs) in levels.iter().zip(&head.levels) {
            let mut y: Option<Feature> = None;
            for conv in convs {
                let next = self.separable(conv, y.as_ref().unwrap_or(level));
                if let Some(previous) = y.replace(next) {
                    self.release(previous);
                }
            }
            let predicted = self.separable(&head.predict, y.as_ref().unwrap_or(level));
            if let Some(previous) = y {
                self.release(previous);
            }
            outputs.push(predicted.map.clone());
            self.release(predicted);
        }
        outputs
    }
}

/// `sums[p] += |x[c, p] * scale[c] - reference[c, p]|` over every channel, vectorised.
fn distance_sums(sums: &mut [f32], x: &[f32], reference: &[f32], scale: Option<&[f32]>) {
    let plane = sums.len();
    simd(|| {
        for (channel, (current, stored)) in x
            .chunks_exact(plane)
            .zip(reference.chunks_exact(plane))
            .enumerate()
        {
            let g = scale.map_or(1.0, |s| s[channel]);
            for ((sum, a), b) in sums.iter_mut().zip(current).zip(stored) {
                *sum += (a * g - b).abs();
            }
        }
    });
}

/// Multiplies each plane of `values` by its channel's `scale`.
fn scale_planes(values: &mut [f32], plane: usize, scale: &[f32]) {
    simd(|| {
        for (values, &g) in values.chunks_exact_mut(plane).zip(scale) {
            values.iter_mut().for_each(|v| *v *= g);
        }
    });
}

/// The positions whose sum exceeds `limit`.
fn moved_positions_where(sums: &[f32], limit: f32) -> Vec<usize> {
    sums.iter()
        .enumerate()
        .filter_map(|(position, &sum)| (sum > limit).then_some(position))
        .collect()
}

/// A mask of `plane` positions with `positions` set.
fn position_mask(positions: &[usize], plane: usize) -> Vec<bool> {
    let mut mask = vec![false; plane];
    for &p in positions {
        mask[p] = true;
    }
    mask
}

/// The indices of the set positions of `mask`.
fn moved_positions(mask: &[bool]) -> Vec<usize> {
    mask.iter()
        .enumerate()
        .filter_map(|(position, &m)| m.then_some(position))
        .collect()
}

/// The output positions of a k x k convolution at `stride` (TF "same" padding) whose
/// receptive field holds a set position of the input `mask` (`height x width`).
fn dilate(mask: &[bool], [height, width]: [usize; 2], kernel: usize, stride: usize) -> Vec<bool> {
    let (pad_top, _) = same_padding(height, kernel, stride);
    let (pad_left, _) = same_padding(width, kernel, stride);
    let (out_h, out_w) = (height.div_ceil(stride), width.div_ceil(stride));
    // The input span `[start, end)` an output index reads along one axis.
    let span = |output: usize, pad: usize, size: usize| {
        let start = (output * stride).saturating_sub(pad);
        let end = (output * stride + kernel).saturating_sub(pad).min(size);
        start..end
    };
    // Columns first: per input row, which output columns see a set position.
    let mut columns = vec![false; height * out_w];
    for (row, out_row) in mask
        .chunks_exact(width)
        .zip(columns.chunks_exact_mut(out_w))
    {
        for (ox, out) in out_row.iter_mut().enumerate() {
            *out = row[span(ox, pad_left, width)].iter().any(|&m| m);
        }
    }
    let mut output = vec![false; out_h * out_w];
    for (oy, out_row) in output.chunks_exact_mut(out_w).enumerate() {
        for iy in span(oy, pad_top, height) {
            for (out, &seen) in out_row
                .iter_mut()
                .zip(&columns[iy * out_w..(iy + 1) * out_w])
            {
                *out |= seen;
            }
        }
    }
    output
}

/// Set positions closer than this along a row are computed as one run: the positions in
/// between cost less than starting another run of every tap (their values are recomputed
/// from the same reference, so they do not change).
const MERGE_GAP: usize = 8;

/// `(row, first column, end column)` of each run of set positions of a `width`-wide mask,
/// runs less than `merge_gap` apart joined.
fn row_runs(mask: &[bool], width: usize, merge_gap: usize) -> Vec<(usize, usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (row, values) in mask.chunks_exact(width).enumerate() {
        let mut column = 0;
        while column < width {
            if !values[column] {
                column += 1;
                continue;
            }
            let start = column;
            while column < width && values[column] {
                column += 1;
            }
            match runs.last_mut() {
                Some(last) if last.0 == row && start - last.2 < merge_gap => last.2 = column,
                _ => runs.push((row, start, column)),
            }
        }
    }
    runs
}

/// Writes `[rows, padded_columns(positions)]` values (the padding dropped) into the columns
/// `positions` of `[rows, plane]`.
fn scatter_columns(columns: &[f32], output: &mut [f32], plane: usize, positions: &[usize]) {
    for (source, row) in columns
        .chunks_exact(padded_columns(positions.len()))
        .zip(output.chunks_exact_mut(plane))
    {
        for (&value, &p) in source.iter().zip(positions) {
            row[p] = value;
        }
    }
}

/// The stem's im2col columns at output `positions`: `[channels * k * k, padded]` (see
/// [`padded_columns`]), zero where a tap falls in the image's padding.
fn stem_columns(image: &Map, kernel: usize, out_w: usize, positions: &[usize]) -> Vec<f32> {
    let stride = 2;
    let (pad_top, _) = same_padding(image.height, kernel, stride);
    let (pad_left, _) = same_padding(image.width, kernel, stride);
    let taps = image.channels * kernel * kernel;
    let padded = padded_columns(positions.len());
    let mut columns = vec![0f32; taps * padded];
    for (tap, row) in columns.chunks_exact_mut(padded).enumerate() {
        let channel = tap / (kernel * kernel);
        let (ky, kx) = ((tap / kernel) % kernel, tap % kernel);
        let plane = &image.data[channel * image.plane()..(channel + 1) * image.plane()];
        for (value, &position) in row.iter_mut().zip(positions) {
            let (oy, ox) = (position / out_w, position % out_w);
            let (Some(iy), Some(ix)) = (
                (oy * stride + ky).checked_sub(pad_top),
                (ox * stride + kx).checked_sub(pad_left),
            ) else {
                continue;
            };
            if iy < image.height && ix < image.width {
                *value = plane[iy * image.width + ix];
            }
        }
    }
    columns
}

/// The depthwise convolution `conv` of `input` at the output `runs` only, written into
/// `output` (`[channels, out_h, out_w]`); planes in parallel when the work is large.
fn depthwise_runs(
    conv: &Depthwise,
    input: &Map,
    runs: &[(usize, usize, usize)],
    [out_h, out_w]: [usize; 2],
    output: &mut [f32],
) {
    let computed: usize = runs.iter().map(|(_, start, end)| end - start).sum();
    let plane_in = input.plane();
    let taps = conv.kernel * conv.kernel;
    let compute = |(channel, out_plane): (usize, &mut [f32])| {
        let (scale, shift) = conv.affine.as_ref().map_or((1.0, 0.0), |(scale, shift)| {
            (scale[channel], shift[channel])
        });
        pulp::Arch::new().dispatch(DepthwiseRuns {
            input: &input.data[channel * plane_in..(channel + 1) * plane_in],
            height: input.height,
            width: input.width,
            filter: &conv.weights[channel * taps..(channel + 1) * taps],
            kernel: conv.kernel,
            stride: conv.stride,
            scale,
            shift,
            activate: conv.activation == Activation::Swish,
            runs,
            out_w,
            output: out_plane,
        });
    };
    if computed * input.channels < PARALLEL_MIN_OUTPUTS {
        output
            .chunks_exact_mut(out_h * out_w)
            .enumerate()
            .for_each(compute);
    } else {
        output
            .par_chunks_exact_mut(out_h * out_w)
            .enumerate()
            .for_each(compute);
    }
}

/// One plane of [`depthwise_runs`], compiled per instruction set.
struct DepthwiseRuns<'a> {
    input: &'a [f32],
    height: usize,
    width: usize,
    filter: &'a [f32],
    kernel: usize,
    stride: usize,
    scale: f32,
    shift: f32,
    activate: bool,
    runs: &'a [(usize, usize, usize)],
    out_w: usize,
    output: &'a mut [f32],
}

impl pulp::WithSimd for DepthwiseRuns<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            input,
            height,
            width,
            filter,
            kernel,
            stride,
            scale,
            shift,
            activate,
            runs,
            out_w,
            output,
        } = self;
        let (pad_top, _) = same_padding(height, kernel, stride);
        let (pad_left, _) = same_padding(width, kernel, stride);
        assert!(stride == 1 || stride == 2, "depthwise stride {stride}");
        // Output columns in chunks of `CHUNK`, each summed over every tap in registers; a
        // chunk whose taps all fall inside the row reads them as one slice. A run's last
        // chunk is whole where the row allows: the columns after the run are recomputed from
        // the same reference, which leaves them as they were, and costs less than a short
        // chunk's column-by-column bounds checks.
        const CHUNK: usize = 16;
        for &(oy, start, end) in runs {
            let mut column = start;
            while column < end {
                let len = CHUNK.min(out_w - column);
                let mut acc = [0f32; CHUNK];
                for ky in 0..kernel {
                    let Some(iy) = (oy * stride + ky).checked_sub(pad_top) else {
                        continue;
                    };
                    if iy >= height {
                        continue;
                    }
                    let row = &input[iy * width..(iy + 1) * width];
                    for kx in 0..kernel {
                        let weight = filter[ky * kernel + kx];
                        let first = column * stride + kx;
                        let last = (column + CHUNK - 1) * stride + kx;
                        if len == CHUNK && first >= pad_left && last - pad_left < width {
                            let base = first - pad_left;
                            if stride == 1 {
                                let source: &[f32; CHUNK] = row[base..base + CHUNK]
                                    .try_into()
                                    .expect("a chunk of the row");
                                for lane in 0..CHUNK {
                                    acc[lane] += weight * source[lane];
                                }
                            } else {
                                let source: &[f32; 2 * CHUNK - 1] = row[base..base + 2 * CHUNK - 1]
                                    .try_into()
                                    .expect("a chunk of the row");
                                for lane in 0..CHUNK {
                                    acc[lane] += weight * source[2 * lane];
                                }
                            }
                        } else {
                            for (lane, sum) in acc.iter_mut().enumerate().take(len) {
                                let Some(ix) =
                                    ((column + lane) * stride + kx).checked_sub(pad_left)
                                else {
                                    continue;
                                };
                                if ix < width {
                                    *sum += weight * row[ix];
                                }
                            }
                        }
                    }
                }
                let out_row = &mut output[oy * out_w + column..oy * out_w + column + len];
                for (out, &sum) in out_row.iter_mut().zip(&acc) {
                    let y = sum * scale + shift;
                    *out = if activate {
                        y / (1.0 + fast_exp(-y))
                    } else {
                        y
                    };
                }
                column += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output position whose receptive field holds a set input, found one by one.
    fn naive_dilate(
        mask: &[bool],
        [height, width]: [usize; 2],
        kernel: usize,
        stride: usize,
    ) -> Vec<bool> {
        let (pad_top, _) = same_padding(height, kernel, stride);
        let (pad_left, _) = same_padding(width, kernel, stride);
        let (out_h, out_w) = (height.div_ceil(stride), width.div_ceil(stride));
        let mut output = vec![false; out_h * out_w];
        for oy in 0..out_h {
            for ox in 0..out_w {
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let iy = (oy * stride + ky) as isize - pad_top as isize;
                        let ix = (ox * stride + kx) as isize - pad_left as isize;
                        if iy >= 0
                            && ix >= 0
                            && (iy as usize) < height
                            && (ix as usize) < width
                            && mask[iy as usize * width + ix as usize]
                        {
                            output[oy * out_w + ox] = true;
                        }
                    }
                }
            }
        }
        output
    }

    #[test]
    fn should_dilate_a_mask_as_the_receptive_fields_reach() {
        let mut state = 12345u64;
        for (height, width, kernel, stride) in [
            (9, 7, 3, 1),
            (9, 7, 3, 2),
            (8, 8, 5, 2),
            (10, 6, 5, 1),
            (1, 5, 3, 2),
        ] {
            for _ in 0..20 {
                let mask: Vec<bool> = (0..height * width)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (state >> 60) == 0
                    })
                    .collect();
                assert_eq!(
                    dilate(&mask, [height, width], kernel, stride),
                    naive_dilate(&mask, [height, width], kernel, stride),
                    "{height}x{width} k{kernel} s{stride}"
                );
            }
        }
    }

    #[test]
    fn should_find_runs_of_set_positions_per_row() {
        let mask = [true, true, false, true, false, false, true, true];
        assert_eq!(row_runs(&mask, 4, 0), vec![(0, 0, 2), (0, 3, 4), (1, 2, 4)]);
        assert_eq!(row_runs(&mask, 4, 2), vec![(0, 0, 4), (1, 2, 4)]);
    }

    #[test]
    fn should_compute_depthwise_runs_as_the_dense_kernel() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        // Narrow planes (every chunk cut by the border) and wide ones (whole chunks).
        for (kernel, stride, activation, width) in [
            (3, 1, Activation::Swish, 9),
            (3, 2, Activation::Identity, 9),
            (5, 2, Activation::Swish, 9),
            (5, 1, Activation::Identity, 9),
            (3, 1, Activation::Swish, 70),
            (3, 2, Activation::Swish, 70),
            (5, 1, Activation::Identity, 70),
            (5, 2, Activation::Identity, 71),
        ] {
            let (channels, height) = (3, 11);
            let conv = Depthwise {
                weights: (0..channels * kernel * kernel).map(|_| next()).collect(),
                kernel,
                stride,
                affine: Some((
                    (0..channels).map(|_| 1.0 + next()).collect(),
                    (0..channels).map(|_| next()).collect(),
                )),
                activation,
            };
            let input = Map::new(
                channels,
                height,
                width,
                (0..channels * height * width).map(|_| next()).collect(),
            );
            let dense = conv.run(&input);
            let (out_h, out_w) = (dense.height, dense.width);
            let mask: Vec<bool> = (0..out_h * out_w)
                .map(|i| i % 3 != 1 && i % 29 < 20)
                .collect();
            let mut output = vec![f32::NAN; channels * out_h * out_w];
            depthwise_runs(
                &conv,
                &input,
                &row_runs(&mask, out_w, 0),
                [out_h, out_w],
                &mut output,
            );
            // Every asked position computed; any other one the kernel wrote (the rest of a
            // chunk) holds the dense value too.
            for (index, (&sparse, &expected)) in output.iter().zip(&dense.data).enumerate() {
                if mask[index % (out_h * out_w)] || !sparse.is_nan() {
                    assert!(
                        (sparse - expected).abs() <= 1e-5,
                        "k{kernel} s{stride} at {index}: {sparse} vs {expected}"
                    );
                }
            }
        }
    }
}
