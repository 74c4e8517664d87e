//! Cost tables of the temporal detector: the MACs of each elastic stage at each ratio (from
//! `ant_supernet::detector_cost`, which counts like torch's `FlopCounterMode`), and the MACs of
//! the fusion modules and gates added on non-key frames.

use ant_supernet::arch::{MAX_RATIO, NUM_ELASTIC_STAGES};
use ant_supernet::{EfficientDetConfig, SubnetArch, detector_cost};

use crate::fusion::fusion_macs;
use crate::gate::gate_macs;
use crate::temporal::AntTemporalConfig;

/// Side of each of the seven stage-level feature maps at `config.image_size` (TF "same"
/// arithmetic: the stem halves, each stage divides by its first block's stride).
pub fn stage_sizes(config: &EfficientDetConfig) -> Vec<usize> {
    let mut size = config.image_size.div_ceil(2);
    config
        .backbone
        .stages()
        .iter()
        .map(|stage| {
            size = size.div_ceil(stage.stride);
            size
        })
        .collect()
}

/// Output channels of each of the seven stages.
pub fn stage_channels(config: &EfficientDetConfig) -> Vec<usize> {
    config
        .backbone
        .stages()
        .iter()
        .map(|stage| stage.out_channels)
        .collect()
}

/// The cost structure of a detector with temporal modules.
#[derive(Clone, Debug, PartialEq)]
pub struct TemporalCostTable {
    /// MACs of elastic stage `s` (0-based over the six) at ratio `r` (index `r - 1`).
    pub stage_ratio_macs: [[u64; MAX_RATIO]; NUM_ELASTIC_STAGES],
    /// MACs of everything outside the elastic stages (stem, MBConv1 stage, BiFPN, heads).
    pub fixed_macs: u64,
    /// MACs of the fusion module of each of the seven stages.
    pub fusion_macs: Vec<u64>,
    /// MACs of each of the six gates.
    pub gate_macs: Vec<u64>,
}

impl TemporalCostTable {
    /// The table of `config` with gates of `gate_hidden` units and depthwise fusion kernels of
    /// `fusion_kernel`.
    pub fn new(config: &EfficientDetConfig, gate_hidden: usize, fusion_kernel: usize) -> Self {
        let mut stage_ratio_macs = [[0u64; MAX_RATIO]; NUM_ELASTIC_STAGES];
        for (ratio_index, ratio) in (1..=MAX_RATIO).enumerate() {
            let cost = detector_cost(config, &SubnetArch::uniform(ratio).expect("ratio in 1..=6"));
            for (stage, macs) in stage_ratio_macs.iter_mut().enumerate() {
                macs[ratio_index] = cost.stages[stage + 1].macs;
            }
        }
        let smallest = detector_cost(config, &SubnetArch::SMALLEST);
        let elastic_smallest: u64 = stage_ratio_macs.iter().map(|row| row[0]).sum();
        let channels = stage_channels(config);
        let sizes = stage_sizes(config);
        Self {
            stage_ratio_macs,
            fixed_macs: smallest.total.macs - elastic_smallest,
            fusion_macs: channels
                .iter()
                .zip(&sizes)
                .map(|(&c, &size)| fusion_macs(c, fusion_kernel, size))
                .collect(),
            gate_macs: channels[..NUM_ELASTIC_STAGES]
                .iter()
                .map(|&c| gate_macs(c, gate_hidden))
                .collect(),
        }
    }

    /// The table of `config` with the temporal modules `temporal` describes: no fusion MACs
    /// on stages without a fusion module, gates of twice the inputs there.
    pub fn for_temporal(config: &EfficientDetConfig, temporal: &AntTemporalConfig) -> Self {
        let mut table = Self::new(config, temporal.gate_hidden, temporal.fusion_kernel);
        let channels = stage_channels(config);
        for (stage, macs) in table.fusion_macs.iter_mut().enumerate() {
            if !temporal.fusion_stages.contains(&stage) {
                *macs = 0;
            }
        }
        for (stage, macs) in table.gate_macs.iter_mut().enumerate() {
            if !temporal.fusion_stages.contains(&stage) {
                *macs = gate_macs(2 * channels[stage], temporal.gate_hidden);
            }
        }
        table
    }

    /// MACs of the detector running `arch` (no temporal modules).
    pub fn detector_macs(&self, arch: &SubnetArch) -> u64 {
        self.fixed_macs
            + (0..NUM_ELASTIC_STAGES)
                .map(|stage| self.stage_ratio_macs[stage][arch.ratio(stage) - 1])
                .sum::<u64>()
    }

    /// MACs of all fusion modules.
    pub fn total_fusion_macs(&self) -> u64 {
        self.fusion_macs.iter().sum()
    }

    /// MACs of all gates.
    pub fn total_gate_macs(&self) -> u64 {
        self.gate_macs.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_agree_with_the_supernet_cost_for_any_arch() {
        let config = EfficientDetConfig::d0(4);
        let table = TemporalCostTable::new(&config, 64, 3);
        for arch in ["6,6,6,6,6,6", "1,1,1,1,1,1", "1,3,2,6,4,5"] {
            let arch: SubnetArch = arch.parse().unwrap();
            assert_eq!(
                table.detector_macs(&arch),
                detector_cost(&config, &arch).total.macs
            );
        }
    }

    #[test]
    fn should_size_stages_like_the_backbone() {
        let config = EfficientDetConfig::d0(4);
        assert_eq!(stage_sizes(&config), [256, 128, 64, 32, 32, 16, 16]);
        assert_eq!(stage_channels(&config), [16, 24, 40, 80, 112, 192, 320]);
    }
}
