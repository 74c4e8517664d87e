//! The EfficientDet detector over the width supernet: backbone, BiFPN, class and box nets,
//! anchors and post-processing, with effdet import and the native checkpoint format.
//!
//! Like effdet's `EfficientDet`, [`EfficientDet::forward`] returns raw per-level outputs;
//! [`EfficientDet::detect`] adds decoding and NMS (effdet's `DetBenchPredict`).

use std::path::Path;

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor};

use crate::anchors::Anchors;
use crate::arch::SubnetArch;
use crate::backbone::{Backbone, BackboneFeatures};
use crate::bifpn::BiFpn;
use crate::config::EfficientDetConfig;
use crate::cost::{DetectorCost, detector_cost};
use crate::error::Result;
use crate::head::HeadNet;
use crate::postprocess::{Detections, postprocess};
use crate::weights::WeightMap;

/// effdet's class-head prior: every anchor starts at probability 0.01.
pub const CLASS_PRIOR_BIAS: f32 = -4.595_12;

/// Raw head outputs, one tensor per pyramid level (P3..P7).
#[derive(Clone, Debug)]
pub struct HeadOutputs {
    /// `[batch, num_anchors * num_classes, h_l, w_l]` logits.
    pub class: Vec<Tensor<4>>,
    /// `[batch, num_anchors * 4, h_l, w_l]` box codes `(ty, tx, th, tw)`.
    pub boxes: Vec<Tensor<4>>,
}

/// EfficientDet with a width-supernet backbone.
#[derive(Module, Debug)]
pub struct EfficientDet {
    /// The EfficientNet-B0 width supernet.
    pub backbone: Backbone,
    /// The BiFPN.
    pub fpn: BiFpn,
    /// The class net.
    pub class_net: HeadNet,
    /// The box net.
    pub box_net: HeadNet,
    /// The configuration.
    #[module(skip)]
    pub config: EfficientDetConfig,
}

impl EfficientDet {
    /// A randomly initialised detector.
    pub fn init(config: &EfficientDetConfig, device: &Device) -> Self {
        let backbone = Backbone::init(&config.backbone, device);
        let fpn = BiFpn::init(
            config.backbone.pyramid_channels(),
            config.fpn_channels,
            config.fpn_cell_repeats,
            config.min_level,
            config.max_level,
            device,
        );
        let head = |outputs, bias| {
            HeadNet::init(
                config.fpn_channels,
                config.box_class_repeats,
                config.num_levels(),
                config.num_anchors(),
                outputs,
                bias,
                device,
            )
        };
        Self {
            backbone,
            fpn,
            class_net: head(config.num_classes, CLASS_PRIOR_BIAS),
            box_net: head(4, 0.0),
            config: config.clone(),
        }
    }

    /// Builds the detector of `config` from an effdet/timm PyTorch state dict (the layout of
    /// effdet's released `tf_efficientdet_d0_*.pth`). A class head for another number of
    /// classes (COCO's 90 vs UA-DETRAC's 4) is re-initialised; any other difference is an
    /// error naming the file and the tensor.
    pub fn from_effdet(config: &EfficientDetConfig, path: &Path, device: &Device) -> Result<Self> {
        let mut weights = WeightMap::from_pytorch(path)?;
        let mut model = Self::init(config, device);
        model.load_effdet(&mut weights, device)?;
        weights.finish()?;
        Ok(model)
    }

    /// Loads effdet weights from a [`WeightMap`].
    pub fn load_effdet(&mut self, weights: &mut WeightMap, device: &Device) -> Result<()> {
        self.backbone.load_effdet(weights, "backbone", device)?;
        self.fpn.load_effdet(weights, "fpn", device)?;
        let expected = self.config.num_anchors() * self.config.num_classes;
        let class_matches = weights
            .shape("class_net.predict.conv_pw.weight")
            .is_some_and(|shape| shape.first() == Some(&expected));
        self.class_net
            .load_effdet(weights, "class_net", class_matches, device)?;
        self.box_net.load_effdet(weights, "box_net", true, device)
    }

    /// Calls `f` on every batch norm: the stem's, the backbone blocks' (every private norm of
    /// every ratio), the BiFPN's, the heads' per-level ones.
    pub fn for_each_norm(&mut self, mut f: impl FnMut(&mut BatchNorm)) {
        let backbone = &mut self.backbone;
        f(&mut backbone.bn_stem);
        for block in &mut backbone.first_stage {
            f(&mut block.bn_depthwise);
            f(&mut block.bn_pointwise);
        }
        for block in backbone.stages.iter_mut().flatten() {
            for norm in block
                .bn_expand
                .iter_mut()
                .chain(block.bn_depthwise.iter_mut())
                .chain(block.bn_project.iter_mut())
            {
                f(norm);
            }
        }
        for extra in self.fpn.extra_levels.iter_mut().flatten() {
            f(&mut extra.bn);
        }
        for node in self
            .fpn
            .cells
            .iter_mut()
            .flat_map(|cell| cell.nodes.iter_mut())
        {
            for resample in node.resample.iter_mut().flatten() {
                f(&mut resample.bn);
            }
            if let Some(norm) = node.conv.bn.as_mut() {
                f(norm);
            }
        }
        for head in [&mut self.class_net, &mut self.box_net] {
            for norm in head.bn_rep.iter_mut().flatten() {
                f(norm);
            }
        }
    }

    /// Checks that the model holds subnet `arch`.
    pub fn validate(&self, arch: &SubnetArch) -> Result<()> {
        self.backbone.validate(arch)
    }

    /// The backbone features of subnet `arch`.
    pub fn forward_backbone(&self, x: Tensor<4>, arch: &SubnetArch) -> Result<BackboneFeatures> {
        self.validate(arch)?;
        Ok(self.backbone.forward(x, arch))
    }

    /// BiFPN and heads on the three pyramid maps (strides 8, 16, 32), as the temporal
    /// modules call it with fused features.
    pub fn forward_pyramid(&self, pyramid: [Tensor<4>; 3]) -> HeadOutputs {
        let levels = self.fpn.forward(pyramid);
        HeadOutputs {
            class: self.class_net.forward(&levels),
            boxes: self.box_net.forward(&levels),
        }
    }

    /// Raw per-level outputs of subnet `arch`.
    ///
    /// # Shapes
    /// `x`: `[batch, 3, image_size, image_size]`, normalised with ImageNet mean and std.
    pub fn forward(&self, x: Tensor<4>, arch: &SubnetArch) -> Result<HeadOutputs> {
        let features = self.forward_backbone(x, arch)?;
        Ok(self.forward_pyramid(features.pyramid()))
    }

    /// Decoded detections of subnet `arch`, one [`Detections`] per image, boxes in input
    /// pixels.
    pub fn detect(&self, x: Tensor<4>, arch: &SubnetArch) -> Result<Vec<Detections>> {
        let outputs = self.forward(x, arch)?;
        Ok(self.postprocess(&outputs))
    }

    /// Decoding and NMS of raw outputs.
    pub fn postprocess(&self, outputs: &HeadOutputs) -> Vec<Detections> {
        self.postprocess_with(outputs, &self.anchors())
    }

    /// [`Self::postprocess`] with this detector's anchors computed once by the caller
    /// ([`Self::anchors`]), as a stream of frames wants.
    pub fn postprocess_with(&self, outputs: &HeadOutputs, anchors: &Anchors) -> Vec<Detections> {
        postprocess(&outputs.class, &outputs.boxes, anchors, &self.config)
    }

    /// The anchors of this detector's config.
    pub fn anchors(&self) -> Anchors {
        Anchors::new(&self.config)
    }

    /// Stochastic depth of the backbone's residual blocks for training (see
    /// [`crate::backbone::Backbone::set_drop_path`]); 0 turns it off.
    pub fn set_drop_path(&mut self, rate: f32) {
        self.backbone.set_drop_path(rate);
    }

    /// Seeds the drop-path masks (see [`crate::backbone::Backbone::set_drop_path_seed`]).
    pub fn set_drop_path_seed(&mut self, seed: u64) {
        self.backbone.set_drop_path_seed(seed);
    }

    /// Starts every smaller subnet's private backbone norms from the full network's (see
    /// [`crate::backbone::ElasticMbConv::inherit_norms_from_largest`]); used when a supernet
    /// stage starts from a standalone detector.
    pub fn inherit_norms_from_largest(&mut self) {
        self.backbone.inherit_norms_from_largest();
    }

    /// Subnet `arch` exported as a standalone static model: only its own weights, sliced and
    /// copied, with its private batch norms. It runs with the same `arch`.
    pub fn extract(&self, arch: &SubnetArch) -> Result<Self> {
        Ok(Self {
            backbone: self.backbone.extract(arch)?,
            fpn: self.fpn.clone(),
            class_net: self.class_net.clone(),
            box_net: self.box_net.clone(),
            config: self.config.clone(),
        })
    }

    /// Trainable parameters this model holds (batch-norm running statistics excluded, which
    /// Burn's `num_params` includes). For an extracted subnet this equals
    /// `cost(arch).total.params`.
    pub fn trainable_params(&self) -> usize {
        let channels = |bn: &burn::nn::BatchNorm| bn.gamma.dims()[0];
        let mut norm_channels = channels(&self.backbone.bn_stem);
        for block in &self.backbone.first_stage {
            norm_channels += channels(&block.bn_depthwise) + channels(&block.bn_pointwise);
        }
        for block in self.backbone.stages.iter().flatten() {
            let norms = block
                .bn_expand
                .iter()
                .chain(&block.bn_depthwise)
                .chain(&block.bn_project);
            norm_channels += norms.map(channels).sum::<usize>();
        }
        for extra in self.fpn.extra_levels.iter().flatten() {
            norm_channels += channels(&extra.bn);
        }
        for node in self.fpn.cells.iter().flat_map(|cell| &cell.nodes) {
            norm_channels += node
                .resample
                .iter()
                .flatten()
                .map(|r| channels(&r.bn))
                .sum::<usize>();
            norm_channels += node.conv.bn.as_ref().map_or(0, channels);
        }
        for head in [&self.class_net, &self.box_net] {
            norm_channels += head.bn_rep.iter().flatten().map(channels).sum::<usize>();
        }
        // Each norm holds a running mean and variance per channel.
        self.num_params() - 2 * norm_channels
    }

    /// Parameters and MACs of subnet `arch`.
    pub fn cost(&self, arch: &SubnetArch) -> DetectorCost {
        detector_cost(&self.config, arch)
    }
}
