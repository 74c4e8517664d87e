//! The bidirectional feature pyramid (BiFPN) of EfficientDet, wired from data.
//!
//! Levels P3..P7: P3-P5 come from the backbone (strides 8/16/32), P6 and P7 are made by a
//! 1x1 conv + BN and stride-2 max pooling. Each cell runs a top-down then a bottom-up pass
//! of fusion nodes; a node resamples its inputs to its level (1x1 conv + BN when the channel
//! count differs, max-pool 3x3 s2 down, nearest up), fuses them with fast normalised
//! weights `relu(w_i) / (sum relu(w) + 1e-4)`, then runs swish and a separable conv + BN.
//!
//! Reference: effdet `efficientdet.py` (`BiFpn`, `FpnCombine`, `Fnode`) and
//! `fpn_config.py::bifpn_config`,
//! <https://github.com/rwightman/efficientdet-pytorch/blob/v0.4.1/effdet/efficientdet.py>

use burn::module::{Module, Param};
use burn::nn::BatchNorm;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::nn::{ConvWeight, SeparableConv, batch_norm, load_batch_norm, max_pool_same, swish};
use crate::weights::WeightMap;

/// One fusion node of a BiFPN cell: its pyramid level and the offsets of its inputs in the
/// growing list of feature maps (the five input levels first, then each node's output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FpnNodeSpec {
    /// Pyramid level of the node's output.
    pub level: usize,
    /// Offsets of the inputs.
    pub inputs: Vec<usize>,
}

/// effdet's `bifpn_config(min_level, max_level)`: top-down nodes for levels max-1..=min,
/// then bottom-up nodes for min+1..=max.
pub fn bifpn_nodes(min_level: usize, max_level: usize) -> Vec<FpnNodeSpec> {
    let num_levels = max_level - min_level + 1;
    let mut node_ids: Vec<Vec<usize>> = (0..num_levels).map(|i| vec![i]).collect();
    let mut next_id = num_levels;
    let mut nodes = Vec::new();
    let slot = |level: usize| level - min_level;
    for level in (min_level..max_level).rev() {
        let inputs = vec![
            *node_ids[slot(level)].last().unwrap(),
            *node_ids[slot(level + 1)].last().unwrap(),
        ];
        nodes.push(FpnNodeSpec { level, inputs });
        node_ids[slot(level)].push(next_id);
        next_id += 1;
    }
    for level in min_level + 1..=max_level {
        let mut inputs = node_ids[slot(level)].clone();
        inputs.push(*node_ids[slot(level - 1)].last().unwrap());
        nodes.push(FpnNodeSpec { level, inputs });
        node_ids[slot(level)].push(next_id);
        next_id += 1;
    }
    nodes
}

/// A 1x1 conv (with bias) and batch norm that brings a map to the FPN width.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// `[fpn_channels, in, 1, 1]` with bias.
    pub conv: ConvWeight,
    /// Batch norm.
    pub bn: BatchNorm,
}

impl ConvBn {
    fn init(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        Self {
            conv: ConvWeight::init(out_channels, in_channels, 1, 1, true, device),
            bn: batch_norm(out_channels, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        ant_kernels::fast::norm_act(&self.bn, self.conv.forward(x, 1, 1), false)
    }

    fn load(&mut self, weights: &mut WeightMap, prefix: &str, device: &Device) -> Result<()> {
        self.conv.load(weights, &format!("{prefix}.conv"), device)?;
        load_batch_norm(&mut self.bn, weights, &format!("{prefix}.bn"), device)
    }
}

/// Brings `x` from `from_level` to a map of `size` at `to_level`.
fn resize(x: Tensor<4>, from_level: usize, to_level: usize, size: [usize; 2]) -> Tensor<4> {
    if from_level < to_level {
        (from_level..to_level).fold(x, |x, _| max_pool_same(x, 3, 2))
    } else if from_level > to_level {
        interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Nearest).with_output_size(size),
        )
    } else {
        x
    }
}

/// One fusion node.
#[derive(Module, Debug)]
pub struct FpnNode {
    /// Per input: a 1x1 conv + BN when the input is not yet FPN-wide.
    pub resample: Vec<Option<ConvBn>>,
    /// Fast normalised fusion weights, one per input.
    pub edge_weights: Param<Tensor<1>>,
    /// Separable 3x3 conv + BN after swish.
    pub conv: SeparableConv,
    /// Level of the output.
    #[module(skip)]
    pub level: usize,
    /// Input offsets.
    #[module(skip)]
    pub inputs: Vec<usize>,
}

impl FpnNode {
    /// # Shapes
    /// Each `features[offset]` is `[batch, c, h_l, w_l]` at its level; the output is
    /// `[batch, fpn_channels, h, w]` at `self.level`, `size` being `[h, w]`.
    fn forward(&self, features: &[Tensor<4>], levels: &[usize], size: [usize; 2]) -> Tensor<4> {
        let weights = burn::tensor::activation::relu(self.edge_weights.val());
        let total = weights.clone().sum().add_scalar(1e-4);
        let normalised = weights / total; // [num_inputs]
        let mut fused: Option<Tensor<4>> = None;
        for (index, &offset) in self.inputs.iter().enumerate() {
            let mut x = features[offset].clone();
            if let Some(resample) = &self.resample[index] {
                x = resample.forward(x);
            }
            let x = resize(x, levels[offset], self.level, size);
            let weight = normalised
                .clone()
                .slice(index..index + 1)
                .reshape([1, 1, 1, 1]);
            let term = x * weight;
            fused = Some(match fused {
                Some(sum) => sum + term,
                None => term,
            });
        }
        self.conv.forward(swish(fused.expect("a node has inputs")))
    }
}

/// One BiFPN cell.
#[derive(Module, Debug)]
pub struct BiFpnLayer {
    /// The fusion nodes, in execution order.
    pub nodes: Vec<FpnNode>,
}

/// The BiFPN: extra levels plus `fpn_cell_repeats` cells.
#[derive(Module, Debug)]
pub struct BiFpn {
    /// For each level above the backbone's: a 1x1 conv + BN when the channel count differs.
    pub extra_levels: Vec<Option<ConvBn>>,
    /// The cells.
    pub cells: Vec<BiFpnLayer>,
    /// Lowest level.
    #[module(skip)]
    pub min_level: usize,
}

impl BiFpn {
    /// A randomly initialised BiFPN over backbone maps with `in_channels` (strides 8/16/32).
    pub fn init(
        in_channels: [usize; 3],
        fpn_channels: usize,
        cell_repeats: usize,
        min_level: usize,
        max_level: usize,
        device: &Device,
    ) -> Self {
        let num_levels = max_level - min_level + 1;
        let mut channels: Vec<usize> = in_channels.to_vec();
        let mut extra_levels = Vec::new();
        while channels.len() < num_levels {
            let previous = *channels.last().unwrap();
            extra_levels.push(
                (previous != fpn_channels).then(|| ConvBn::init(previous, fpn_channels, device)),
            );
            channels.push(fpn_channels);
        }
        let specs = bifpn_nodes(min_level, max_level);
        let cells = (0..cell_repeats)
            .map(|cell| {
                let mut available = if cell == 0 {
                    channels.clone()
                } else {
                    vec![fpn_channels; num_levels]
                };
                let nodes = specs
                    .iter()
                    .map(|spec| {
                        let resample = spec
                            .inputs
                            .iter()
                            .map(|&offset| {
                                (available[offset] != fpn_channels)
                                    .then(|| ConvBn::init(available[offset], fpn_channels, device))
                            })
                            .collect();
                        available.push(fpn_channels);
                        FpnNode {
                            resample,
                            edge_weights: Param::from_tensor(Tensor::ones(
                                [spec.inputs.len()],
                                device,
                            )),
                            conv: SeparableConv::init(fpn_channels, fpn_channels, true, device),
                            level: spec.level,
                            inputs: spec.inputs.clone(),
                        }
                    })
                    .collect();
                BiFpnLayer { nodes }
            })
            .collect();
        Self {
            extra_levels,
            cells,
            min_level,
        }
    }

    /// # Shapes
    /// `backbone`: the three maps at strides 8, 16, 32. Output: five maps
    /// `[batch, fpn_channels, h_l, w_l]` for P3..P7.
    pub fn forward(&self, backbone: [Tensor<4>; 3]) -> Vec<Tensor<4>> {
        let mut features: Vec<Tensor<4>> = backbone.to_vec();
        for extra in &self.extra_levels {
            let mut x = features.last().unwrap().clone();
            if let Some(conv) = extra {
                x = conv.forward(x);
            }
            features.push(max_pool_same(x, 3, 2));
        }
        let num_levels = features.len();
        let sizes: Vec<[usize; 2]> = features
            .iter()
            .map(|x| {
                let [_, _, h, w] = x.dims();
                [h, w]
            })
            .collect();
        for cell in &self.cells {
            let mut levels: Vec<usize> = (0..num_levels).map(|i| self.min_level + i).collect();
            let mut all = features;
            for node in &cell.nodes {
                let output = node.forward(&all, &levels, sizes[node.level - self.min_level]);
                all.push(output);
                levels.push(node.level);
            }
            features = all.split_off(all.len() - num_levels);
        }
        features
    }

    /// Loads effdet's `fpn.*` weights.
    pub fn load_effdet(
        &mut self,
        weights: &mut WeightMap,
        prefix: &str,
        device: &Device,
    ) -> Result<()> {
        for (index, extra) in self.extra_levels.iter_mut().enumerate() {
            if let Some(conv) = extra {
                conv.load(
                    weights,
                    &format!("{prefix}.resample.{}.conv", index + 3),
                    device,
                )?;
            }
        }
        for (cell_index, cell) in self.cells.iter_mut().enumerate() {
            for (node_index, node) in cell.nodes.iter_mut().enumerate() {
                let node_prefix = format!("{prefix}.cell.{cell_index}.fnode.{node_index}");
                for (input, resample) in node.inputs.iter().zip(node.resample.iter_mut()) {
                    if let Some(conv) = resample {
                        conv.load(
                            weights,
                            &format!("{node_prefix}.combine.resample.{input}.conv"),
                            device,
                        )?;
                    }
                }
                let shape = node.edge_weights.dims().to_vec();
                let data = weights.take(&format!("{node_prefix}.combine.edge_weights"), &shape)?;
                node.edge_weights = Param::from_tensor(Tensor::from_data(data, device));
                node.conv.load(
                    weights,
                    &format!("{node_prefix}.after_combine.conv"),
                    device,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_wire_nodes_like_effdet_bifpn_config() {
        let nodes = bifpn_nodes(3, 7);
        let wiring: Vec<(usize, Vec<usize>)> =
            nodes.into_iter().map(|n| (n.level, n.inputs)).collect();
        assert_eq!(
            wiring,
            vec![
                (6, vec![3, 4]),
                (5, vec![2, 5]),
                (4, vec![1, 6]),
                (3, vec![0, 7]),
                (4, vec![1, 7, 8]),
                (5, vec![2, 6, 9]),
                (6, vec![3, 5, 10]),
                (7, vec![4, 11]),
            ]
        );
    }
}
