//! The EfficientNet-B0 backbone as a weight-sharing width supernet.
//!
//! Stem (3x3 s2, 32 ch), one MBConv1 stage, then six elastic MBConv6 stages. Each elastic
//! stage runs all its blocks at one expansion ratio `r` in {1..6}: the block's expansion
//! width is `k = in_channels * r`, and every weight is the first `k` channels of the largest
//! network's (expand conv outputs, depthwise channels, squeeze-excite reduce inputs and
//! expand outputs, project inputs). Layout and names follow timm's
//! `EfficientNetFeatures` for `tf_efficientnet_b0` (TF "same" padding, BN eps 1e-3, swish,
//! squeeze-excite at 0.25 of the block input).
//!
//! **Batch norm.** Slicing one set of running statistics is wrong for narrow subnets (their
//! activations have other statistics). Each elastic block therefore keeps *private* batch
//! norms per expansion ratio (slimmable networks' switchable BN): `bn_expand[r]`,
//! `bn_depthwise[r]` (k channels) and `bn_project[r]` (whose input width changes with `r`).
//! Convolution weights are shared; the norms cost 0.3% extra parameters. Layers after the
//! backbone share their norms across subnets (their inputs keep their widths).
//!
//! Reference: timm `efficientnet.py` / `_efficientnet_blocks.py`,
//! <https://github.com/huggingface/pytorch-image-models/blob/v1.0.15/timm/models/_efficientnet_blocks.py>

use burn::module::{Module, Param, RunningState};
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor, TensorData};

use crate::arch::{MAX_RATIO, NUM_ELASTIC_STAGES, SubnetArch};
use crate::config::{BackboneConfig, PYRAMID_STAGES, SE_RATIO};
use crate::error::{Result, SupernetError};
use crate::nn::{ConvWeight, batch_norm, conv2d_same, load_batch_norm, swish};
use crate::seeded::{splitmix64, uniform};
use crate::weights::WeightMap;
use ant_kernels::fast::{depthwise_norm_act, norm_act, pointwise_norm_act};

fn narrow_out(weight: Tensor<4>, channels: usize) -> Tensor<4> {
    if weight.dims()[0] == channels {
        weight
    } else {
        weight.narrow(0, 0, channels)
    }
}

fn narrow_in(weight: Tensor<4>, channels: usize) -> Tensor<4> {
    if weight.dims()[1] == channels {
        weight
    } else {
        weight.narrow(1, 0, channels)
    }
}

fn narrow_bias(bias: Tensor<1>, channels: usize) -> Tensor<1> {
    if bias.dims()[0] == channels {
        bias
    } else {
        bias.narrow(0, 0, channels)
    }
}

fn slice_param_out(param: &Param<Tensor<4>>, channels: usize) -> Param<Tensor<4>> {
    Param::from_tensor(narrow_out(param.val(), channels))
}

/// The squeeze-excite gate of the first `channels` channels of the expansion.
///
/// # Shapes
/// `x`: `[batch, channels, h, w]` -> gate `[batch, channels, 1, 1]`.
fn squeeze_excite_gate(
    x: &Tensor<4>,
    reduce: &ConvWeight,
    expand: &ConvWeight,
    channels: usize,
) -> Tensor<4> {
    let pooled = x.clone().mean_dim(3).mean_dim(2); // [batch, channels, 1, 1]
    let reduce_bias = reduce.bias.as_ref().map(|b| b.val());
    let reduce_weight = narrow_in(reduce.weight.val(), channels);
    let hidden = swish(conv2d_same(pooled, reduce_weight, reduce_bias, 1, 1));
    let expand_bias = expand.bias.as_ref().map(|b| narrow_bias(b.val(), channels));
    let expand_weight = narrow_out(expand.weight.val(), channels);
    ant_kernels::act::sigmoid_train(conv2d_same(hidden, expand_weight, expand_bias, 1, 1))
}

/// Squeeze-excite reduction width of a block: 0.25 of its input channels (timm rounds).
pub(crate) fn se_channels(in_channels: usize) -> usize {
    ((in_channels as f64) * SE_RATIO).round().max(1.0) as usize
}

/// The MBConv1 block of the first stage (timm's `DepthwiseSeparableConv`): depthwise, BN,
/// swish, squeeze-excite, pointwise, BN.
#[derive(Module, Debug)]
pub struct DepthwiseSeparable {
    /// `[in, 1, 3, 3]`.
    pub depthwise: ConvWeight,
    /// After the depthwise conv.
    pub bn_depthwise: BatchNorm,
    /// Squeeze-excite reduce, `[in/4, in, 1, 1]` with bias.
    pub se_reduce: ConvWeight,
    /// Squeeze-excite expand, `[in, in/4, 1, 1]` with bias.
    pub se_expand: ConvWeight,
    /// `[out, in, 1, 1]`.
    pub pointwise: ConvWeight,
    /// After the pointwise conv.
    pub bn_pointwise: BatchNorm,
    /// Whether a residual connection applies (stride 1, in == out).
    #[module(skip)]
    pub residual: bool,
}

impl DepthwiseSeparable {
    fn init(in_channels: usize, out_channels: usize, kernel_size: usize, device: &Device) -> Self {
        let rd = se_channels(in_channels);
        Self {
            depthwise: ConvWeight::init(in_channels, 1, kernel_size, in_channels, false, device),
            bn_depthwise: batch_norm(in_channels, device),
            se_reduce: ConvWeight::init(rd, in_channels, 1, 1, true, device),
            se_expand: ConvWeight::init(in_channels, rd, 1, 1, true, device),
            pointwise: ConvWeight::init(out_channels, in_channels, 1, 1, false, device),
            bn_pointwise: batch_norm(out_channels, device),
            residual: in_channels == out_channels,
        }
    }

    /// # Shapes
    /// `[batch, in, h, w] -> [batch, out, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, channels, _, _] = x.dims();
        let shortcut = self.residual.then(|| x.clone());
        let y = depthwise_norm_act(x, self.depthwise.weight.val(), 1, &self.bn_depthwise, true);
        let gate = squeeze_excite_gate(&y, &self.se_reduce, &self.se_expand, channels);
        let weight = self.pointwise.weight.val();
        let y = pointwise_norm_act(y, weight, Some(gate), &self.bn_pointwise, false);
        match shortcut {
            Some(shortcut) => y + shortcut,
            None => y,
        }
    }

    fn load(&mut self, weights: &mut WeightMap, prefix: &str, device: &Device) -> Result<()> {
        self.depthwise
            .load(weights, &format!("{prefix}.conv_dw"), device)?;
        load_batch_norm(
            &mut self.bn_depthwise,
            weights,
            &format!("{prefix}.bn1"),
            device,
        )?;
        self.se_reduce
            .load(weights, &format!("{prefix}.se.conv_reduce"), device)?;
        self.se_expand
            .load(weights, &format!("{prefix}.se.conv_expand"), device)?;
        self.pointwise
            .load(weights, &format!("{prefix}.conv_pw"), device)?;
        load_batch_norm(
            &mut self.bn_pointwise,
            weights,
            &format!("{prefix}.bn2"),
            device,
        )
    }
}

/// Drops the residual branch `x` of each sample with probability `rate` and scales the kept
/// ones by `1 / (1 - rate)` (timm's `drop_path`). The mask is a function of `seed` alone (a
/// host-side generator, not the device's): the training loops set a seed per step, block and
/// data-parallel replica, so masks do not depend on which thread draws first.
fn drop_path(x: Tensor<4>, rate: f32, seed: u64) -> Tensor<4> {
    let keep = 1.0 - rate;
    let [batch, _, _, _] = x.dims();
    let mask: Vec<f32> = (0..batch as u64)
        .map(|sample| {
            if uniform(seed ^ splitmix64(sample)) < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::<1>::from_data(TensorData::new(mask, [batch]), &x.device())
        .reshape([batch, 1, 1, 1]);
    x * mask
}

/// A copy of `bn` restricted to its first `channels` channels, with fresh parameter ids.
fn narrow_norm(bn: &BatchNorm, channels: usize) -> BatchNorm {
    let narrow = |tensor: Tensor<1>| tensor.narrow(0, 0, channels).detach();
    let mut out = bn.clone();
    out.gamma = Param::from_tensor(narrow(bn.gamma.val()));
    out.beta = Param::from_tensor(narrow(bn.beta.val()));
    out.running_mean = RunningState::new(narrow(bn.running_mean.value()));
    out.running_var = RunningState::new(narrow(bn.running_var.value()));
    out
}

/// An inverted-residual block whose expansion ratio is chosen per call.
#[derive(Module, Debug)]
pub struct ElasticMbConv {
    /// Expand 1x1, `[in * max_ratio, in, 1, 1]`.
    pub expand: ConvWeight,
    /// Depthwise, `[in * max_ratio, 1, k, k]`.
    pub depthwise: ConvWeight,
    /// Squeeze-excite reduce, `[in / 4, in * max_ratio, 1, 1]` with bias.
    pub se_reduce: ConvWeight,
    /// Squeeze-excite expand, `[in * max_ratio, in / 4, 1, 1]` with bias.
    pub se_expand: ConvWeight,
    /// Project 1x1, `[out, in * max_ratio, 1, 1]`.
    pub project: ConvWeight,
    /// Private batch norm after the expand conv, one per held ratio.
    pub bn_expand: Vec<BatchNorm>,
    /// Private batch norm after the depthwise conv, one per held ratio.
    pub bn_depthwise: Vec<BatchNorm>,
    /// Private batch norm after the project conv, one per held ratio.
    pub bn_project: Vec<BatchNorm>,
    /// The expansion ratios this block holds, ascending (all six in the supernet, one in an
    /// extracted subnet).
    #[module(skip)]
    pub ratios: Vec<usize>,
    /// Input channels.
    #[module(skip)]
    pub in_channels: usize,
    /// Depthwise stride.
    #[module(skip)]
    pub stride: usize,
    /// Whether a residual connection applies (stride 1, in == out).
    #[module(skip)]
    pub residual: bool,
    /// Stochastic depth: the probability of dropping the residual branch, per sample, in a
    /// training forward (0 otherwise; never saved, see [`Backbone::set_drop_path`]).
    #[module(skip)]
    pub drop_path: f32,
    /// The seed of this block's drop-path masks (see [`Backbone::set_drop_path_seed`]).
    #[module(skip)]
    pub drop_seed: u64,
}

impl ElasticMbConv {
    fn init(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        max_ratio: usize,
        device: &Device,
    ) -> Self {
        let wide = in_channels * max_ratio;
        let rd = se_channels(in_channels);
        let ratios: Vec<usize> = (1..=max_ratio).collect();
        Self {
            expand: ConvWeight::init(wide, in_channels, 1, 1, false, device),
            depthwise: ConvWeight::init(wide, 1, kernel_size, wide, false, device),
            se_reduce: ConvWeight::init(rd, wide, 1, 1, true, device),
            se_expand: ConvWeight::init(wide, rd, 1, 1, true, device),
            project: ConvWeight::init(out_channels, wide, 1, 1, false, device),
            bn_expand: ratios
                .iter()
                .map(|r| batch_norm(in_channels * r, device))
                .collect(),
            bn_depthwise: ratios
                .iter()
                .map(|r| batch_norm(in_channels * r, device))
                .collect(),
            bn_project: ratios
                .iter()
                .map(|_| batch_norm(out_channels, device))
                .collect(),
            ratios,
            in_channels,
            stride,
            residual: stride == 1 && in_channels == out_channels,
            drop_path: 0.0,
            drop_seed: 0,
        }
    }

    fn ratio_index(&self, ratio: usize) -> usize {
        self.ratios
            .iter()
            .position(|&r| r == ratio)
            .unwrap_or_else(|| {
                panic!(
                    "ratio {ratio} not held by this block ({:?}); validate the arch",
                    self.ratios
                )
            })
    }

    /// Runs the block at expansion ratio `ratio` (must be one of [`Self::ratios`]).
    ///
    /// # Shapes
    /// `[batch, in, h, w] -> [batch, out, ceil(h / stride), ceil(w / stride)]`
    pub fn forward(&self, x: Tensor<4>, ratio: usize) -> Tensor<4> {
        let index = self.ratio_index(ratio);
        let channels = self.in_channels * ratio;
        let shortcut = self.residual.then(|| x.clone());
        let expand = narrow_out(self.expand.weight.val(), channels);
        let y = pointwise_norm_act(x, expand, None, &self.bn_expand[index], true);
        let depthwise = narrow_out(self.depthwise.weight.val(), channels);
        let y = depthwise_norm_act(y, depthwise, self.stride, &self.bn_depthwise[index], true);
        let gate = squeeze_excite_gate(&y, &self.se_reduce, &self.se_expand, channels);
        let project = narrow_in(self.project.weight.val(), channels);
        let y = pointwise_norm_act(y, project, Some(gate), &self.bn_project[index], false);
        match shortcut {
            Some(shortcut) if self.drop_path > 0.0 => {
                let seed = self.drop_seed ^ splitmix64(ratio as u64);
                drop_path(y, self.drop_path, seed) + shortcut
            }
            Some(shortcut) => y + shortcut,
            None => y,
        }
    }

    /// Sets every smaller ratio's private norms from the largest ratio's: the first channels
    /// of its expand and depthwise norms (affine and running statistics), a copy of its
    /// project norm. A network trained at the largest ratio only (the standalone stage)
    /// leaves the other ratios' norms at their initial values; the supernet stage starts them
    /// here, as importing an effdet checkpoint does.
    pub fn inherit_norms_from_largest(&mut self) {
        let Some(last) = self.ratios.len().checked_sub(1) else {
            return;
        };
        for index in 0..last {
            let channels = self.in_channels * self.ratios[index];
            self.bn_expand[index] = narrow_norm(&self.bn_expand[last], channels);
            self.bn_depthwise[index] = narrow_norm(&self.bn_depthwise[last], channels);
            let [out] = self.bn_project[last].gamma.dims();
            self.bn_project[index] = narrow_norm(&self.bn_project[last], out);
        }
    }

    /// The block at one ratio as a standalone static block (weights sliced and copied).
    pub fn extract(&self, ratio: usize) -> Self {
        let index = self.ratio_index(ratio);
        let channels = self.in_channels * ratio;
        let se_expand_bias = self
            .se_expand
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(narrow_bias(b.val(), channels)));
        Self {
            expand: ConvWeight {
                weight: slice_param_out(&self.expand.weight, channels),
                bias: None,
            },
            depthwise: ConvWeight {
                weight: slice_param_out(&self.depthwise.weight, channels),
                bias: None,
            },
            se_reduce: ConvWeight {
                weight: Param::from_tensor(narrow_in(self.se_reduce.weight.val(), channels)),
                bias: self
                    .se_reduce
                    .bias
                    .as_ref()
                    .map(|b| Param::from_tensor(b.val())),
            },
            se_expand: ConvWeight {
                weight: slice_param_out(&self.se_expand.weight, channels),
                bias: se_expand_bias,
            },
            project: ConvWeight {
                weight: Param::from_tensor(narrow_in(self.project.weight.val(), channels)),
                bias: None,
            },
            bn_expand: vec![self.bn_expand[index].clone()],
            bn_depthwise: vec![self.bn_depthwise[index].clone()],
            bn_project: vec![self.bn_project[index].clone()],
            ratios: vec![ratio],
            in_channels: self.in_channels,
            stride: self.stride,
            residual: self.residual,
            // An extracted subnet is for inference.
            drop_path: 0.0,
            drop_seed: 0,
        }
    }

    /// Loads timm's `InvertedResidual` at `prefix`: shared convs as they are, and every
    /// private batch norm from the first channels of the full network's.
    fn load(&mut self, weights: &mut WeightMap, prefix: &str, device: &Device) -> Result<()> {
        self.expand
            .load(weights, &format!("{prefix}.conv_pw"), device)?;
        self.depthwise
            .load(weights, &format!("{prefix}.conv_dw"), device)?;
        self.se_reduce
            .load(weights, &format!("{prefix}.se.conv_reduce"), device)?;
        self.se_expand
            .load(weights, &format!("{prefix}.se.conv_expand"), device)?;
        self.project
            .load(weights, &format!("{prefix}.conv_pwl"), device)?;
        for index in 0..self.ratios.len() {
            load_batch_norm(
                &mut self.bn_expand[index],
                weights,
                &format!("{prefix}.bn1"),
                device,
            )?;
            load_batch_norm(
                &mut self.bn_depthwise[index],
                weights,
                &format!("{prefix}.bn2"),
                device,
            )?;
            load_batch_norm(
                &mut self.bn_project[index],
                weights,
                &format!("{prefix}.bn3"),
                device,
            )?;
        }
        Ok(())
    }
}

/// The output of the backbone: the stem map and the last map of every stage.
#[derive(Clone, Debug)]
pub struct BackboneFeatures {
    /// Stem output (stride 2): the adaptive key-frame scheduler compares these.
    pub stem: Tensor<4>,
    /// The last feature map of each of the seven stages (index 0 is the MBConv1 stage,
    /// 1..=6 the elastic stages): the stage-level features the temporal modules fuse.
    pub stages: Vec<Tensor<4>>,
}

impl BackboneFeatures {
    /// The three maps fed to the BiFPN (strides 8, 16, 32).
    pub fn pyramid(&self) -> [Tensor<4>; 3] {
        PYRAMID_STAGES.map(|index| self.stages[index].clone())
    }
}

/// The EfficientNet-B0 width supernet.
#[derive(Module, Debug)]
pub struct Backbone {
    /// Stem 3x3 stride 2.
    pub stem: ConvWeight,
    /// Stem norm.
    pub bn_stem: BatchNorm,
    /// The MBConv1 stage (one block in B0).
    pub first_stage: Vec<DepthwiseSeparable>,
    /// The six elastic MBConv6 stages.
    pub stages: Vec<Vec<ElasticMbConv>>,
}

impl Backbone {
    /// A randomly initialised supernet.
    pub fn init(config: &BackboneConfig, device: &Device) -> Self {
        let resolved = config.stages();
        let stem_channels = config.stem_channels();
        let first = resolved[0];
        let first_stage = (0..first.repeats)
            .map(|block| {
                let in_channels = if block == 0 {
                    first.in_channels
                } else {
                    first.out_channels
                };
                DepthwiseSeparable::init(in_channels, first.out_channels, first.kernel_size, device)
            })
            .collect();
        let stages = resolved[1..]
            .iter()
            .map(|stage| {
                (0..stage.repeats)
                    .map(|block| {
                        let (in_channels, stride) = if block == 0 {
                            (stage.in_channels, stage.stride)
                        } else {
                            (stage.out_channels, 1)
                        };
                        ElasticMbConv::init(
                            in_channels,
                            stage.out_channels,
                            stage.kernel_size,
                            stride,
                            stage.expand_ratio.min(MAX_RATIO),
                            device,
                        )
                    })
                    .collect()
            })
            .collect();
        Self {
            stem: ConvWeight::init(stem_channels, 3, 3, 1, false, device),
            bn_stem: batch_norm(stem_channels, device),
            first_stage,
            stages,
        }
    }

    /// Checks that every stage holds the ratio `arch` asks of it.
    pub fn validate(&self, arch: &SubnetArch) -> Result<()> {
        for (index, stage) in self.stages.iter().enumerate() {
            let ratio = arch.ratio(index);
            let available = &stage[0].ratios;
            if !available.contains(&ratio) {
                return Err(SupernetError::UnavailableRatio {
                    stage: index + 1,
                    ratio,
                    available: available.clone(),
                });
            }
        }
        Ok(())
    }

    /// The stem alone (for the key-frame scheduler, which looks before it runs the rest).
    ///
    /// # Shapes
    /// `[batch, 3, h, w] -> [batch, 32, ceil(h/2), ceil(w/2)]`
    pub fn forward_stem(&self, x: Tensor<4>) -> Tensor<4> {
        norm_act(
            &self.bn_stem,
            ant_kernels::fast::conv_im2col(x, self.stem.weight.val(), 2),
            true,
        )
    }

    /// The MBConv1 stage (stage index 0).
    pub fn forward_first_stage(&self, x: Tensor<4>) -> Tensor<4> {
        self.first_stage.iter().fold(x, |x, block| block.forward(x))
    }

    /// Elastic stage `index` (0-based over the six) at expansion ratio `ratio`.
    pub fn forward_stage(&self, index: usize, x: Tensor<4>, ratio: usize) -> Tensor<4> {
        self.stages[index]
            .iter()
            .fold(x, |x, block| block.forward(x, ratio))
    }

    /// Runs subnet `arch` (validated by the caller with [`Self::validate`]).
    ///
    /// # Shapes
    /// `[batch, 3, h, w]` -> stem `[batch, 32, h/2, w/2]` and seven stage maps with strides
    /// 2, 4, 8, 16, 16, 32, 32.
    pub fn forward(&self, x: Tensor<4>, arch: &SubnetArch) -> BackboneFeatures {
        let stem = self.forward_stem(x);
        let mut stages = Vec::with_capacity(NUM_ELASTIC_STAGES + 1);
        let mut y = self.forward_first_stage(stem.clone());
        stages.push(y.clone());
        for index in 0..NUM_ELASTIC_STAGES {
            y = self.forward_stage(index, y, arch.ratio(index));
            stages.push(y.clone());
        }
        BackboneFeatures { stem, stages }
    }

    /// Stochastic depth for training: block `i` of the `n` blocks of the backbone (the MBConv1
    /// stage counted) drops its residual branch with probability `rate * i / n`, as timm's
    /// EfficientNet does; blocks without a residual connection are unaffected. `0` turns it
    /// off; call that before evaluating a model that was trained with it.
    pub fn set_drop_path(&mut self, rate: f32) {
        let total = self.first_stage.len() + self.stages.iter().map(Vec::len).sum::<usize>();
        let first = self.first_stage.len();
        for (offset, block) in self.stages.iter_mut().flatten().enumerate() {
            block.drop_path = rate * (first + offset) as f32 / total as f32;
        }
    }

    /// Seeds the drop-path masks of the next forward passes: block `i` draws from a hash of
    /// (`seed`, `i`, the ratio it runs at). The training loops call this every step (and with
    /// a different seed per data-parallel replica), so a resumed run draws the same masks.
    pub fn set_drop_path_seed(&mut self, seed: u64) {
        for (index, block) in self.stages.iter_mut().flatten().enumerate() {
            block.drop_seed = splitmix64(seed ^ splitmix64(index as u64 + 1));
        }
    }

    /// [`ElasticMbConv::inherit_norms_from_largest`] on every elastic block.
    pub fn inherit_norms_from_largest(&mut self) {
        for block in self.stages.iter_mut().flatten() {
            block.inherit_norms_from_largest();
        }
    }

    /// Subnet `arch` as a standalone static backbone holding only its own weights.
    pub fn extract(&self, arch: &SubnetArch) -> Result<Self> {
        self.validate(arch)?;
        Ok(Self {
            stem: self.stem.clone(),
            bn_stem: self.bn_stem.clone(),
            first_stage: self.first_stage.clone(),
            stages: self
                .stages
                .iter()
                .enumerate()
                .map(|(index, stage)| {
                    stage
                        .iter()
                        .map(|block| block.extract(arch.ratio(index)))
                        .collect()
                })
                .collect(),
        })
    }

    /// Loads timm's `EfficientNetFeatures` weights under `prefix` (effdet: `backbone`).
    pub fn load_effdet(
        &mut self,
        weights: &mut WeightMap,
        prefix: &str,
        device: &Device,
    ) -> Result<()> {
        self.stem
            .load(weights, &format!("{prefix}.conv_stem"), device)?;
        load_batch_norm(&mut self.bn_stem, weights, &format!("{prefix}.bn1"), device)?;
        for (block_index, block) in self.first_stage.iter_mut().enumerate() {
            block.load(weights, &format!("{prefix}.blocks.0.{block_index}"), device)?;
        }
        for (stage_index, stage) in self.stages.iter_mut().enumerate() {
            for (block_index, block) in stage.iter_mut().enumerate() {
                let key = format!("{prefix}.blocks.{}.{block_index}", stage_index + 1);
                block.load(weights, &key, device)?;
            }
        }
        Ok(())
    }
}
