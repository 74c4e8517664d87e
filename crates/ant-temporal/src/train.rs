//! The training-time forward of a (key, non-key) pair, differentiable through the gates.
//!
//! The key frame runs the full supernet (every ratio 6). The non-key frame runs the stem and
//! the MBConv1 stage, then for each elastic stage `s` (0-based over the six): the gate reads
//! the fused output of the previous stage, samples a ratio per sample, the stage runs at that
//! ratio on the fused feature (samples are grouped by ratio, so no width is computed twice
//! and none is wasted), its output is multiplied by the sample's straight-through weight
//! (value 1 in the forward pass, the Gumbel-softmax gradient in the backward pass), and the
//! result is fused with the key frame's feature of the same stage. The fused maps of stages
//! 2, 4, 6 go to BiFPN and heads.
//!
//! With the same choices this computes what the streaming engine computes
//! ([`crate::AntDetector`], which runs pre-sliced weights): see `tests/equivalence.rs`.

use std::collections::BTreeSet;

use ant_supernet::arch::{MAX_RATIO, NUM_ELASTIC_STAGES};
use ant_supernet::config::PYRAMID_STAGES;
use ant_supernet::{BackboneFeatures, EfficientDet, HeadOutputs, SubnetArch, SupernetError};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::softmax;

use crate::cost::TemporalCostTable;
use crate::error::{Result, TemporalError};
use crate::gate::{argmax_rows, gumbel_softmax, one_hot_rows};
use crate::temporal::AntTemporal;

/// How the gates choose each stage's ratio in [`forward_clip`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GateSampling {
    /// Straight-through Gumbel-softmax at `temperature` (training). With `hard`, the branch
    /// is multiplied by the straight-through one-hot (exactly 1 in the forward pass); without,
    /// by the soft sample's value at the choice.
    Gumbel {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Straight-through one-hot (`true`) or soft weights (`false`).
        hard: bool,
        /// Where the noise comes from: `None`, the device's generator; `Some(seed)`, a
        /// host-side hash of (seed, stage, sample), which does not depend on what other
        /// threads draw (data-parallel training).
        seed: Option<u64>,
    },
    /// The argmax of the gate scores, as at inference.
    Argmax,
    /// Fixed ratios, ignoring the gates' choices (the gates still run, for their
    /// probabilities).
    Fixed(SubnetArch),
}

/// The outputs of the non-key frames of a clip.
#[derive(Clone, Debug)]
pub struct NonKeyOutput {
    /// Raw head outputs on the fused pyramid.
    pub outputs: HeadOutputs,
    /// The seven stage-level features after fusion (`[batch, C_s, h_s, w_s]`), the targets of
    /// feature distillation from the full network. Without fusion (non-temporal), the raw
    /// stage outputs.
    pub fused_stages: Vec<Tensor<4>>,
    /// Softmax of each gate's scores, no noise (`[batch, 6]`, six gates): `gate_probs[s]`
    /// scores the ratios of elastic stage `s`.
    pub gate_probs: Vec<Tensor<2>>,
    /// Expected GMAC of each sample's non-key forward (`[batch]`): fixed parts, fusion (unless
    /// non-temporal) and gates, plus for each elastic stage `sum_r p_r * GMAC(stage, r)` with
    /// `p` = `gate_probs` under Gumbel sampling, the one-hot choice otherwise. Differentiable
    /// with respect to the gates.
    pub expected_gmac: Tensor<1>,
    /// The ratios each sample ran.
    pub choices: Vec<SubnetArch>,
}

/// The training-time forward of a clip: `key` runs the full supernet, `non_key` runs the
/// gated subnet with fusion (or, with `non_temporal`, gated on its own features without
/// fusion and without looking at `key`). Gates sample with the straight-through
/// Gumbel-softmax at `temperature`.
///
/// # Shapes
/// `key`, `non_key`: `[batch, 3, image_size, image_size]`, pairs by batch index.
///
/// # Errors
/// [`TemporalError::ClipShape`] when the shapes differ; [`TemporalError::Supernet`] when the
/// model does not hold ratio 6 or a sampled ratio (an extracted subnet).
pub fn forward_clip_train(
    model: &EfficientDet,
    temporal: &AntTemporal,
    key: Tensor<4>,
    non_key: Tensor<4>,
    temperature: f32,
    hard: bool,
    non_temporal: bool,
) -> Result<NonKeyOutput> {
    forward_clip(
        model,
        temporal,
        key,
        non_key,
        GateSampling::Gumbel {
            temperature,
            hard,
            seed: None,
        },
        non_temporal,
    )
}

/// [`forward_clip_train`] with any [`GateSampling`].
///
/// # Errors
/// As [`forward_clip_train`].
pub fn forward_clip(
    model: &EfficientDet,
    temporal: &AntTemporal,
    key: Tensor<4>,
    non_key: Tensor<4>,
    sampling: GateSampling,
    non_temporal: bool,
) -> Result<NonKeyOutput> {
    if key.dims() != non_key.dims() {
        return Err(TemporalError::ClipShape {
            key: key.dims(),
            non_key: non_key.dims(),
        });
    }
    if non_temporal {
        return forward_non_key(model, temporal, None, non_key, sampling);
    }
    let key_features = model.forward_backbone(key, &SubnetArch::LARGEST)?;
    forward_non_key(model, temporal, Some(&key_features), non_key, sampling)
}

/// The non-key forward against stored key-frame features (`None`: non-temporal, no fusion).
/// Lets a training loop reuse one key frame for several non-key frames.
///
/// # Shapes
/// `non_key`: `[batch, 3, image_size, image_size]`; `key_features.stages[s]` of batch
/// `batch` or 1.
///
/// # Errors
/// [`TemporalError::Supernet`] when the model does not hold a chosen ratio.
pub fn forward_non_key(
    model: &EfficientDet,
    temporal: &AntTemporal,
    key_features: Option<&BackboneFeatures>,
    non_key: Tensor<4>,
    sampling: GateSampling,
) -> Result<NonKeyOutput> {
    temporal.check(&model.config.backbone)?;
    let key_reading = temporal.key_reading_gates();
    if key_features.is_none() && !key_reading.is_empty() {
        return Err(TemporalError::GatesNeedKeyFrames {
            stages: key_reading,
        });
    }
    if let GateSampling::Fixed(arch) = sampling {
        model.validate(&arch)?;
    }
    let [batch_size, _, _, _] = non_key.dims();
    let device = non_key.device();
    let backbone = &model.backbone;
    let costs = TemporalCostTable::for_temporal(&model.config, &temporal.config);
    let fuse = |stage: usize, x: Tensor<4>| match (key_features, temporal.fusion(stage)) {
        (Some(key), Some(fusion)) => fusion.forward(x, key.stages[stage].clone()),
        _ => x,
    };
    // A gate on a stage without fusion reads the current and the key feature side by side.
    let score = |stage: usize, gate: &crate::gate::Gate, y: &Tensor<4>| match key_features {
        Some(key) if temporal.fusion(stage).is_none() => {
            gate.forward_pair(y.clone(), key.stages[stage].clone())
        }
        _ => gate.forward(y.clone()),
    };

    let stem = backbone.forward_stem(non_key);
    let first = backbone.forward_first_stage(stem);
    // The subnet's own feature chain, when stages do not read the fused features.
    let fused_input = temporal.config.fused_input || key_features.is_none();
    let mut raw = (!fused_input).then(|| first.clone());
    let mut y = fuse(0, first);
    let mut fused_stages = vec![y.clone()];
    let mut gate_probs = Vec::with_capacity(NUM_ELASTIC_STAGES);
    let mut choices = vec![[0usize; NUM_ELASTIC_STAGES]; batch_size];
    let mut expected = Tensor::<2>::zeros([batch_size, 1], &device);
    for (stage, gate) in temporal.gates.iter().enumerate() {
        let logits = score(stage, gate, &y); // [batch, 6]
        let probs = softmax(logits.clone(), 1);
        let (indices, weights, cost_weights) = match sampling {
            GateSampling::Gumbel {
                temperature,
                hard,
                seed,
            } => {
                let seed = seed.map(|seed| seed ^ ((stage as u64 + 1) << 40));
                let sample = gumbel_softmax(logits, temperature, hard, seed);
                (sample.choices, Some(sample.weights), probs.clone())
            }
            GateSampling::Argmax => {
                let indices = argmax_rows(logits);
                let one_hot = one_hot_rows(&indices, MAX_RATIO, &device);
                (indices, None, one_hot)
            }
            GateSampling::Fixed(arch) => {
                let indices = vec![arch.ratio(stage) - 1; batch_size];
                let one_hot = one_hot_rows(&indices, MAX_RATIO, &device);
                (indices, None, one_hot)
            }
        };
        let ratios: Vec<usize> = indices.iter().map(|index| index + 1).collect();
        let available = &backbone.stages[stage][0].ratios;
        if let Some(&ratio) = ratios.iter().find(|r| !available.contains(r)) {
            return Err(SupernetError::UnavailableRatio {
                stage: stage + 1,
                ratio,
                available: available.clone(),
            }
            .into());
        }
        for (sample, &ratio) in ratios.iter().enumerate() {
            choices[sample][stage] = ratio;
        }
        let macs: Vec<f32> = costs.stage_ratio_macs[stage]
            .iter()
            .map(|&m| (m as f64 / 1e9) as f32)
            .collect();
        let macs = Tensor::<2>::from_data(TensorData::new(macs, [1, MAX_RATIO]), &device);
        expected = expected + (cost_weights * macs).sum_dim(1); // [batch, 1]

        let input = match raw.take() {
            Some(raw) => raw,
            None => y,
        };
        let mut out = run_stage_grouped(model, stage, input, &ratios);
        if let Some(weights) = weights {
            let one_hot = one_hot_rows(&indices, MAX_RATIO, &device);
            let chosen = (weights * one_hot)
                .sum_dim(1)
                .reshape([batch_size, 1, 1, 1]);
            out = out * chosen;
        }
        if !fused_input {
            raw = Some(out.clone());
        }
        y = fuse(stage + 1, out);
        fused_stages.push(y.clone());
        gate_probs.push(probs);
    }
    let mut fixed = costs.fixed_macs + costs.total_gate_macs();
    if key_features.is_some() {
        fixed += costs.total_fusion_macs();
    }
    let expected_gmac = (expected + (fixed as f64 / 1e9)).reshape([batch_size]);
    let outputs = model.forward_pyramid(PYRAMID_STAGES.map(|index| fused_stages[index].clone()));
    let choices = choices
        .into_iter()
        .map(|ratios| SubnetArch::new(ratios).expect("ratios checked against the model"))
        .collect();
    Ok(NonKeyOutput {
        outputs,
        fused_stages,
        gate_probs,
        expected_gmac,
        choices,
    })
}

/// Runs elastic stage `stage` with a ratio per sample: samples are grouped by ratio, each
/// group runs once at its width, and the outputs are put back in batch order.
///
/// # Shapes
/// `[batch, C_in, h, w] -> [batch, C_out, h', w']`
fn run_stage_grouped(
    model: &EfficientDet,
    stage: usize,
    x: Tensor<4>,
    ratios: &[usize],
) -> Tensor<4> {
    let distinct: BTreeSet<usize> = ratios.iter().copied().collect();
    if distinct.len() == 1 {
        return model.backbone.forward_stage(stage, x, ratios[0]);
    }
    let device = x.device();
    let mut order = Vec::with_capacity(ratios.len());
    let mut parts = Vec::with_capacity(distinct.len());
    for ratio in distinct {
        let members: Vec<i32> = (0..ratios.len())
            .filter(|&sample| ratios[sample] == ratio)
            .map(|sample| sample as i32)
            .collect();
        let count = members.len();
        order.extend(members.iter().map(|&sample| sample as usize));
        let indices = Tensor::<1, Int>::from_ints(TensorData::new(members, [count]), &device);
        parts.push(
            model
                .backbone
                .forward_stage(stage, x.clone().select(0, indices), ratio),
        );
    }
    // `order[j]` is the sample at row j of the concatenation; invert it.
    let mut inverse = vec![0i32; order.len()];
    for (row, &sample) in order.iter().enumerate() {
        inverse[sample] = row as i32;
    }
    let count = inverse.len();
    let inverse = Tensor::<1, Int>::from_ints(TensorData::new(inverse, [count]), &device);
    Tensor::cat(parts, 0).select(0, inverse)
}
