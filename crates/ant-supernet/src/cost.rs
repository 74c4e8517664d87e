//! Cost accounting: parameters and multiply-accumulates of any subnet, counted the way
//! torch's `FlopCounterMode` counts them (convolutions and linear layers only, no bias,
//! MACs = FLOPs / 2). Parameters count what `model.parameters()` counts for the active
//! subnet (batch-norm affine included, running statistics excluded).
//!
//! Checked against effdet: `tf_efficientdet_d0`, 4 classes, 512 px: 3,829,757 parameters,
//! 2.222 GMAC, backbone 1.901 GMAC.

use serde::{Deserialize, Serialize};

use crate::arch::SubnetArch;
use crate::backbone::se_channels;
use crate::bifpn::bifpn_nodes;
use crate::config::EfficientDetConfig;

/// Parameters and MACs of one part of the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates.
    pub macs: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Self) {
        self.params += other.params;
        self.macs += other.macs;
    }
}

/// The cost of the whole detector and of its parts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorCost {
    /// Stem (conv + BN).
    pub stem: Cost,
    /// Each of the seven backbone stages.
    pub stages: Vec<Cost>,
    /// The whole backbone.
    pub backbone: Cost,
    /// The BiFPN.
    pub fpn: Cost,
    /// Class and box nets.
    pub heads: Cost,
    /// Everything.
    pub total: Cost,
}

fn conv(out: usize, in_per_group: usize, k: usize, bias: bool, out_size: usize) -> Cost {
    let weights = (out * in_per_group * k * k) as u64;
    Cost {
        params: weights + if bias { out as u64 } else { 0 },
        macs: weights * (out_size * out_size) as u64,
    }
}

fn bn(channels: usize) -> Cost {
    Cost {
        params: 2 * channels as u64,
        macs: 0,
    }
}

fn se(channels: usize, reduced: usize) -> Cost {
    let mut cost = conv(reduced, channels, 1, true, 1);
    cost += conv(channels, reduced, 1, true, 1);
    cost
}

/// Counts the detector of `config` running subnet `arch` at `config.image_size`.
pub fn detector_cost(config: &EfficientDetConfig, arch: &SubnetArch) -> DetectorCost {
    let mut result = DetectorCost::default();
    let stages = config.backbone.stages();
    let mut size = config.image_size.div_ceil(2);
    let stem_channels = config.backbone.stem_channels();
    result.stem = conv(stem_channels, 3, 3, false, size);
    result.stem += bn(stem_channels);
    let mut pyramid_sizes = Vec::new();
    for (index, stage) in stages.iter().enumerate() {
        let mut cost = Cost::default();
        for block in 0..stage.repeats {
            let in_channels = if block == 0 {
                stage.in_channels
            } else {
                stage.out_channels
            };
            let stride = if block == 0 { stage.stride } else { 1 };
            let out_size = size.div_ceil(stride);
            let rd = se_channels(in_channels);
            if index == 0 {
                cost += conv(in_channels, 1, stage.kernel_size, false, out_size);
                cost += bn(in_channels);
                cost += se(in_channels, rd);
                cost += conv(stage.out_channels, in_channels, 1, false, out_size);
                cost += bn(stage.out_channels);
            } else {
                let mid = in_channels * arch.ratio(index - 1);
                cost += conv(mid, in_channels, 1, false, size);
                cost += bn(mid);
                cost += conv(mid, 1, stage.kernel_size, false, out_size);
                cost += bn(mid);
                cost += se(mid, rd);
                cost += conv(stage.out_channels, mid, 1, false, out_size);
                cost += bn(stage.out_channels);
            }
            size = out_size;
        }
        pyramid_sizes.push((size, stage.out_channels));
        result.stages.push(cost);
    }
    result.backbone = result.stem;
    for cost in &result.stages {
        result.backbone += *cost;
    }

    // BiFPN.
    let fpn = config.fpn_channels;
    let level_sizes = config.level_sizes();
    let mut channels: Vec<usize> = crate::config::PYRAMID_STAGES
        .iter()
        .map(|&i| pyramid_sizes[i].1)
        .collect();
    let mut fpn_cost = Cost::default();
    while channels.len() < config.num_levels() {
        let level = channels.len();
        let previous = *channels.last().unwrap();
        if previous != fpn {
            fpn_cost += conv(fpn, previous, 1, true, level_sizes[level - 1]);
            fpn_cost += bn(fpn);
        }
        channels.push(fpn);
    }
    let specs = bifpn_nodes(config.min_level, config.max_level);
    for cell in 0..config.fpn_cell_repeats {
        let mut available: Vec<usize> = if cell == 0 {
            channels.clone()
        } else {
            vec![fpn; config.num_levels()]
        };
        let mut levels: Vec<usize> = (config.min_level..=config.max_level).collect();
        for spec in &specs {
            for &offset in &spec.inputs {
                if available[offset] != fpn {
                    let input_size = level_sizes[levels[offset] - config.min_level];
                    fpn_cost += conv(fpn, available[offset], 1, true, input_size);
                    fpn_cost += bn(fpn);
                }
            }
            fpn_cost.params += spec.inputs.len() as u64;
            let node_size = level_sizes[spec.level - config.min_level];
            fpn_cost += conv(fpn, 1, 3, false, node_size);
            fpn_cost += conv(fpn, fpn, 1, true, node_size);
            fpn_cost += bn(fpn);
            available.push(fpn);
            levels.push(spec.level);
        }
    }
    result.fpn = fpn_cost;

    // Heads: weights shared over levels, MACs on every level.
    let mut heads = Cost::default();
    for outputs in [config.num_classes, 4] {
        let out = config.num_anchors() * outputs;
        for repeat in 0..config.box_class_repeats + 1 {
            let out_channels = if repeat == config.box_class_repeats {
                out
            } else {
                fpn
            };
            let dw = conv(fpn, 1, 3, false, 1);
            let pw = conv(out_channels, fpn, 1, true, 1);
            heads.params += dw.params + pw.params;
            for &level_size in &level_sizes {
                heads.macs += (dw.macs + pw.macs) * (level_size * level_size) as u64;
            }
            if repeat < config.box_class_repeats {
                heads.params += bn(fpn).params * config.num_levels() as u64;
            }
        }
    }
    result.heads = heads;
    result.total = result.backbone;
    result.total += result.fpn;
    result.total += result.heads;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_match_effdet_d0_with_four_classes() {
        let cost = detector_cost(&EfficientDetConfig::d0(4), &SubnetArch::LARGEST);
        assert_eq!(cost.total.params, 3_829_757);
        assert_eq!(
            (cost.total.macs as f64 / 1e9 * 1000.0).round() / 1000.0,
            2.222
        );
        assert_eq!(
            (cost.backbone.macs as f64 / 1e9 * 1000.0).round() / 1000.0,
            1.901
        );
    }

    #[test]
    fn should_match_effdet_d0_with_ninety_classes() {
        let cost = detector_cost(&EfficientDetConfig::d0(90), &SubnetArch::LARGEST);
        assert_eq!(cost.total.params, 3_880_067);
        assert_eq!(
            (cost.total.macs as f64 / 1e9 * 1000.0).round() / 1000.0,
            2.492
        );
    }

    #[test]
    fn should_cost_less_for_smaller_subnets() {
        let config = EfficientDetConfig::d0(4);
        let large = detector_cost(&config, &SubnetArch::LARGEST);
        let small = detector_cost(&config, &SubnetArch::SMALLEST);
        assert!(small.backbone.macs * 3 < large.backbone.macs);
        assert_eq!(small.fpn, large.fpn);
    }
}
