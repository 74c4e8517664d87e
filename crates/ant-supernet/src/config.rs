//! Model configurations: the EfficientNet-B0 stage table and the EfficientDet variants.
//!
//! The stage table is timm's `tf_efficientnet_b0` (`_gen_efficientnet`, arch strings
//! `ds_r1_k3_s1_e1_c16_se0.25`, `ir_r2_k3_s2_e6_c24_se0.25`, ...) written as typed data.

use serde::{Deserialize, Serialize};

/// One MBConv stage of EfficientNet-B0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpec {
    /// Number of blocks.
    pub repeats: usize,
    /// Depthwise kernel size.
    pub kernel_size: usize,
    /// Stride of the first block.
    pub stride: usize,
    /// Expansion ratio of the full network (1 for the depthwise-separable first stage).
    pub expand_ratio: usize,
    /// Output channels before the width multiplier.
    pub channels: usize,
}

/// EfficientNet-B0: one MBConv1 stage, then the six MBConv6 stages that the supernet makes
/// elastic. Squeeze-excite everywhere at 0.25 of the block input.
pub const EFFICIENTNET_B0_STAGES: [StageSpec; 7] = [
    StageSpec {
        repeats: 1,
        kernel_size: 3,
        stride: 1,
        expand_ratio: 1,
        channels: 16,
    },
    StageSpec {
        repeats: 2,
        kernel_size: 3,
        stride: 2,
        expand_ratio: 6,
        channels: 24,
    },
    StageSpec {
        repeats: 2,
        kernel_size: 5,
        stride: 2,
        expand_ratio: 6,
        channels: 40,
    },
    StageSpec {
        repeats: 3,
        kernel_size: 3,
        stride: 2,
        expand_ratio: 6,
        channels: 80,
    },
    StageSpec {
        repeats: 3,
        kernel_size: 5,
        stride: 1,
        expand_ratio: 6,
        channels: 112,
    },
    StageSpec {
        repeats: 4,
        kernel_size: 5,
        stride: 2,
        expand_ratio: 6,
        channels: 192,
    },
    StageSpec {
        repeats: 1,
        kernel_size: 3,
        stride: 1,
        expand_ratio: 6,
        channels: 320,
    },
];

/// Stem output channels of EfficientNet-B0.
pub const STEM_CHANNELS: usize = 32;
/// Squeeze-excite reduction relative to the block input channels.
pub const SE_RATIO: f64 = 0.25;
/// Batch-norm epsilon of the TensorFlow-ported models.
pub const BN_EPSILON: f64 = 1e-3;
/// Batch-norm momentum (PyTorch convention: weight of the new batch), effdet's 0.01.
pub const BN_MOMENTUM: f64 = 0.01;
/// The backbone stages whose outputs feed the BiFPN (strides 8, 16, 32).
pub const PYRAMID_STAGES: [usize; 3] = [2, 4, 6];

/// timm's `make_divisible`: round to a multiple of `divisor`, never below 90% of `value`.
pub fn make_divisible(value: f64, divisor: usize) -> usize {
    let divisor_f = divisor as f64;
    let rounded = ((value + divisor_f / 2.0) / divisor_f).floor() as usize * divisor;
    let rounded = rounded.max(divisor);
    if (rounded as f64) < 0.9 * value {
        rounded + divisor
    } else {
        rounded
    }
}

/// The backbone's shape: channels per stage after the width multiplier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackboneConfig {
    /// Width multiplier (1.0 for B0, 1.1 for the paper's D0+).
    pub width_multiplier: f64,
    /// Depth multiplier: repeats are `ceil(repeats * depth)` (1.0 for B0).
    pub depth_multiplier: f64,
}

/// A resolved stage: the spec with real channel counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedStage {
    /// Number of blocks.
    pub repeats: usize,
    /// Depthwise kernel size.
    pub kernel_size: usize,
    /// Stride of the first block.
    pub stride: usize,
    /// Largest expansion ratio.
    pub expand_ratio: usize,
    /// Input channels of the first block.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
}

impl BackboneConfig {
    /// Channels after the width multiplier (timm's `round_chs_fn`).
    pub fn round_channels(&self, channels: usize) -> usize {
        if (self.width_multiplier - 1.0).abs() < f64::EPSILON {
            channels
        } else {
            make_divisible(channels as f64 * self.width_multiplier, 8)
        }
    }

    /// Stem output channels.
    pub fn stem_channels(&self) -> usize {
        self.round_channels(STEM_CHANNELS)
    }

    /// The seven stages with their real channel counts.
    pub fn stages(&self) -> Vec<ResolvedStage> {
        let mut in_channels = self.stem_channels();
        EFFICIENTNET_B0_STAGES
            .iter()
            .map(|spec| {
                let out_channels = self.round_channels(spec.channels);
                let stage = ResolvedStage {
                    repeats: (spec.repeats as f64 * self.depth_multiplier).ceil() as usize,
                    kernel_size: spec.kernel_size,
                    stride: spec.stride,
                    expand_ratio: spec.expand_ratio,
                    in_channels,
                    out_channels,
                };
                in_channels = out_channels;
                stage
            })
            .collect()
    }

    /// Channels of the three pyramid maps fed to the BiFPN.
    pub fn pyramid_channels(&self) -> [usize; 3] {
        let stages = self.stages();
        PYRAMID_STAGES.map(|index| stages[index].out_channels)
    }
}

/// An EfficientDet detector: backbone, BiFPN and heads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EfficientDetConfig {
    /// A short name (`d0`, `d0_plus`, `tiny`).
    pub name: String,
    /// Number of object classes.
    pub num_classes: usize,
    /// Square input size in pixels (a multiple of 128 keeps every level exact).
    pub image_size: usize,
    /// The backbone.
    pub backbone: BackboneConfig,
    /// BiFPN channels.
    pub fpn_channels: usize,
    /// BiFPN cells.
    pub fpn_cell_repeats: usize,
    /// Separable conv repeats in the class and box nets.
    pub box_class_repeats: usize,
    /// Lowest pyramid level (stride `2^min_level`).
    pub min_level: usize,
    /// Highest pyramid level.
    pub max_level: usize,
    /// Anchor scales per octave.
    pub num_scales: usize,
    /// Anchor aspect ratios as (x, y) multipliers.
    pub aspect_ratios: Vec<(f32, f32)>,
    /// Anchor size relative to the level stride.
    pub anchor_scale: f32,
    /// Candidates kept (by class logit) before NMS.
    pub max_detection_points: usize,
    /// Detections kept after NMS.
    pub max_detections: usize,
    /// NMS IoU threshold.
    pub nms_iou_threshold: f32,
}

impl EfficientDetConfig {
    fn base(name: &str, num_classes: usize, backbone: BackboneConfig) -> Self {
        Self {
            name: name.to_string(),
            num_classes,
            image_size: 512,
            backbone,
            fpn_channels: 64,
            fpn_cell_repeats: 3,
            box_class_repeats: 3,
            min_level: 3,
            max_level: 7,
            num_scales: 3,
            aspect_ratios: vec![(1.0, 1.0), (1.4, 0.7), (0.7, 1.4)],
            anchor_scale: 4.0,
            max_detection_points: 5000,
            max_detections: 100,
            nms_iou_threshold: 0.5,
        }
    }

    /// effdet's `tf_efficientdet_d0` (512 px, BiFPN 64 x 3, heads 3 repeats).
    pub fn d0(num_classes: usize) -> Self {
        Self::base(
            "d0",
            num_classes,
            BackboneConfig {
                width_multiplier: 1.0,
                depth_multiplier: 1.0,
            },
        )
    }

    /// The paper's D0+: the backbone widened by 1.1 (channels divisible by 8).
    pub fn d0_plus(num_classes: usize) -> Self {
        Self::base(
            "d0_plus",
            num_classes,
            BackboneConfig {
                width_multiplier: 1.1,
                depth_multiplier: 1.0,
            },
        )
    }

    /// A small detector for tests and the CPU default run: the B0 supernet backbone at
    /// 256 px, BiFPN with 32 channels and 2 cells, heads with 2 repeats.
    pub fn tiny(num_classes: usize) -> Self {
        let mut config = Self::d0(num_classes);
        config.name = "tiny".to_string();
        config.image_size = 256;
        config.fpn_channels = 32;
        config.fpn_cell_repeats = 2;
        config.box_class_repeats = 2;
        config
    }

    /// A config by name: `d0`, `d0_plus` or `tiny`.
    pub fn by_name(name: &str, num_classes: usize) -> Option<Self> {
        match name {
            "d0" => Some(Self::d0(num_classes)),
            "d0_plus" | "d0+" => Some(Self::d0_plus(num_classes)),
            "tiny" => Some(Self::tiny(num_classes)),
            _ => None,
        }
    }

    /// Sets the input size.
    pub fn with_image_size(mut self, image_size: usize) -> Self {
        self.image_size = image_size;
        self
    }

    /// Number of pyramid levels.
    pub fn num_levels(&self) -> usize {
        self.max_level - self.min_level + 1
    }

    /// Anchors per position.
    pub fn num_anchors(&self) -> usize {
        self.num_scales * self.aspect_ratios.len()
    }

    /// Feature-map side of each level for the configured input (TF "same" arithmetic).
    pub fn level_sizes(&self) -> Vec<usize> {
        let mut size = self.image_size;
        let mut sizes = Vec::new();
        for level in 1..=self.max_level {
            size = size.div_ceil(2);
            if level >= self.min_level {
                sizes.push(size);
            }
        }
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_match_timm_make_divisible() {
        assert_eq!(make_divisible(35.2, 8), 32);
        assert_eq!(make_divisible(44.0, 8), 48);
        assert_eq!(make_divisible(123.2, 8), 120);
        assert_eq!(make_divisible(211.2, 8), 208);
        assert_eq!(make_divisible(352.0, 8), 352);
    }

    #[test]
    fn should_resolve_b0_channels() {
        let config = EfficientDetConfig::d0(4);
        let stages = config.backbone.stages();
        let outs: Vec<usize> = stages.iter().map(|s| s.out_channels).collect();
        assert_eq!(outs, [16, 24, 40, 80, 112, 192, 320]);
        assert_eq!(config.backbone.pyramid_channels(), [40, 112, 320]);
        assert_eq!(config.level_sizes(), [64, 32, 16, 8, 4]);
    }

    #[test]
    fn should_widen_d0_plus_by_one_point_one() {
        let config = EfficientDetConfig::d0_plus(4);
        let outs: Vec<usize> = config
            .backbone
            .stages()
            .iter()
            .map(|s| s.out_channels)
            .collect();
        assert_eq!(outs, [16, 24, 48, 88, 120, 208, 352]);
    }
}
