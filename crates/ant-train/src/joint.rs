//! Stage 2, joint training of ANT (Sec. 3.3): the supernet of stage 1 plus fusion modules and
//! dynamic gates (`ant-temporal`) at random initialisation, trained on clips with a fixed
//! key-frame schedule (a key frame, then `clip_len - 1` non-key frames: 1 in 3 by default).
//!
//! Per clip batch: the key frames run the full network; each non-key frame runs the gated
//! subnet, its stage features fused with the key frame's, the gates sampling widths with the
//! straight-through Gumbel-softmax at an exponentially annealed temperature. The loss of each
//! non-key frame is
//! - the detection loss (focal + Huber, no loss in ignored regions) of the fused pyramid;
//! - feature distillation: the mean squared error between each fused stage feature and the
//!   "golden" feature of the full network on the same frame (detached), summed over stages;
//! - a compute term `((E[GMAC] - target) / target)^2` on the gates' expected cost. The paper
//!   states none, but without one nothing pushes the gates to small widths (the detection and
//!   distillation losses both prefer the widest subnet); the target is a configurable
//!   fraction of the full network's GMAC.
//!
//! The stem is frozen (no gradient). `non_temporal` trains the dynamic baseline instead: gates
//! on the current frame's own features, no fusion, no key frame.

use std::path::Path;

use ant_detrac::{ClipBatch, ClipDataset, ClipRef, DetracBatcher};
use ant_supernet::loss::staged_mean;
use ant_supernet::{Anchors, EfficientDet, LossConfig, SubnetArch, detection_loss};
use ant_temporal::{AntModel, AntTemporalConfig, GateSampling, forward_non_key};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use crate::config::TrainConfig;
use crate::driver::{Shard, StageLoop, StageSpec, StepParts};
use crate::error::Result;
use crate::metrics::EpochRecord;
use crate::trainer::{
    RunOptions, Stage, distillation_loss, epoch_order, label_batch, steps_per_epoch,
};

/// The stage directory name.
pub const JOINT_STAGE: &str = "stage2-joint";

/// The directory of the non-temporal dynamic baseline the main job trains beside ANT
/// (`joint.non_temporal_baseline`): stage 2 with `non_temporal` set, from the same supernet.
pub const NON_TEMPORAL_STAGE: &str = "stage2-nontemporal";

/// The joint stage's index in per-step seeds (stages 0 and 1 are 0 and 1).
const JOINT_STAGE_INDEX: u64 = 2;

/// The trained joint model.
#[derive(Debug)]
pub struct JointOutcome {
    /// Detector and temporal modules on the plain device.
    pub model: AntModel,
    /// The newest checkpoint directory (`model.bpk` + `model.temporal.bpk`).
    pub checkpoint: std::path::PathBuf,
    /// The epochs trained by this invocation.
    pub epochs: Vec<EpochRecord>,
    /// Whether every configured epoch is done.
    pub finished: bool,
}

/// The temporal modules the joint settings ask for (fusion kind and stages, gate width).
pub fn temporal_config(settings: &crate::config::JointSettings) -> AntTemporalConfig {
    AntTemporalConfig::new()
        .with_gate_hidden(settings.gate_hidden)
        .with_residual_fusion(settings.residual_fusion)
        .with_fusion_anchor(settings.anchor())
        .with_fused_input(settings.fused_input)
        .with_fusion_stages(settings.temporal_fusion_stages())
}

/// The Gumbel temperature of step `step` of `total`: exponential from `start` to `end`.
pub fn temperature_at(start: f32, end: f32, step: usize, total: usize) -> f32 {
    let progress = if total <= 1 {
        1.0
    } else {
        step as f32 / (total - 1) as f32
    };
    start * (end / start).powf(progress.min(1.0))
}

/// What every shard of a joint step shares.
struct ShardContext<'a> {
    settings: &'a crate::config::JointSettings,
    anchors: &'a Anchors,
    loss_config: &'a LossConfig,
    num_classes: usize,
    temperature: f32,
    target_gmac: f32,
}

/// The loss of a shard of clips and its parts as numbers (each weighted by the shard's share
/// of the step's clips).
struct ShardLoss {
    total: Tensor<1>,
    detection: f32,
    distill: f32,
    gmac: f32,
}

/// The joint loss of one batch of clips: key frames through the full network, each non-key
/// frame through the gated, fused subnet (detection + feature distillation + compute term).
/// `noise_seed`: the Gumbel noise's seed (`None`: the device's generator).
fn shard_loss(
    model: &AntModel,
    batch: &ClipBatch,
    context: &ShardContext,
    noise_seed: Option<u64>,
    share: f32,
    device: &Device,
) -> Result<ShardLoss> {
    let settings = context.settings;
    let key_features = if settings.non_temporal {
        None
    } else {
        Some(
            model
                .detector
                .forward_backbone(batch.steps[0].images.clone(), &SubnetArch::LARGEST)?,
        )
    };
    let mut total: Option<Tensor<1>> = None;
    let (mut detection_value, mut distill_value, mut gmac_value) = (0f32, 0f32, 0f32);
    for (frame_index, frame) in batch.steps.iter().enumerate().skip(1) {
        let targets = label_batch(context.anchors, &frame.targets, context.loss_config);
        let output = forward_non_key(
            &model.detector,
            &model.temporal,
            key_features.as_ref(),
            frame.images.clone(),
            GateSampling::Gumbel {
                temperature: context.temperature,
                hard: true,
                seed: noise_seed.map(|seed| seed ^ ((frame_index as u64) << 32)),
            },
        )?;
        let golden = model
            .detector
            .forward_backbone(frame.images.clone(), &SubnetArch::LARGEST)?;
        let head_distill = (settings.head_distill_weight > 0.0).then(|| {
            let teacher = model.detector.forward_pyramid(golden.pyramid());
            distillation_loss(
                &output.outputs,
                &teacher,
                &targets,
                context.num_classes,
                context.loss_config,
                device,
            )
        });
        // Distil the fused features (every stage of the non-temporal network, which fuses
        // nothing): a stage without a fusion module passes the subnet's own feature, which
        // only a wider width brings closer to the golden one, so its error would only push
        // the gates (through their straight-through weights) to wide subnets.
        let mut distill: Option<Tensor<1>> = None;
        for (stage, (fused, target)) in output.fused_stages.iter().zip(&golden.stages).enumerate() {
            if !settings.non_temporal && model.temporal.fusion(stage).is_none() {
                continue;
            }
            let target = target.clone().detach();
            let mut term = staged_mean((fused.clone() - target.clone()).powf_scalar(2.0));
            if settings.distill_normalized {
                term = term / staged_mean(target.powf_scalar(2.0)).add_scalar(1e-6);
            }
            distill = Some(match distill {
                Some(sum) => sum + term,
                None => term,
            });
        }
        let distill = distill.expect("at least one fused stage");
        let detection = detection_loss(
            &output.outputs,
            &targets,
            context.num_classes,
            context.loss_config,
            device,
        )
        .total;
        let expected = output.expected_gmac.mean();
        let excess = expected
            .clone()
            .sub_scalar(context.target_gmac)
            .div_scalar(context.target_gmac);
        let excess = if settings.compute_penalty == "above" {
            excess.clamp_min(0.0)
        } else {
            excess
        };
        let compute = excess.powf_scalar(2.0);
        detection_value += detection.clone().into_scalar::<f32>() * share;
        distill_value += distill.clone().into_scalar::<f32>() * share;
        gmac_value += expected.into_scalar::<f32>() * share;
        let mut frame_loss = detection
            + distill.mul_scalar(settings.distill_weight)
            + compute.mul_scalar(settings.compute_weight);
        if let Some(head_distill) = head_distill {
            distill_value += head_distill.clone().into_scalar::<f32>() * share;
            frame_loss = frame_loss + head_distill.mul_scalar(settings.head_distill_weight);
        }
        total = Some(match total {
            Some(sum) => sum + frame_loss,
            None => frame_loss,
        });
    }
    let total = total.expect("clips have non-key frames").mul_scalar(share);
    Ok(ShardLoss {
        total,
        detection: detection_value,
        distill: distill_value,
        gmac: gmac_value,
    })
}

/// Trains stage 2 from the detector checkpoint `init` (resuming when asked and possible)
/// into `RUN/stage2-joint`.
pub fn train_joint(
    config: &TrainConfig,
    init: &Path,
    clips: &ClipDataset,
    batcher: &DetracBatcher,
    options: &RunOptions,
) -> Result<JointOutcome> {
    train_joint_into(JOINT_STAGE, config, init, clips, batcher, options)
}

/// [`train_joint`] into the stage directory `stage_name` (the non-temporal baseline of the
/// main job trains into [`NON_TEMPORAL_STAGE`]).
pub fn train_joint_into(
    stage_name: &str,
    config: &TrainConfig,
    init: &Path,
    clips: &ClipDataset,
    batcher: &DetracBatcher,
    options: &RunOptions,
) -> Result<JointOutcome> {
    let settings = &config.joint;
    let stage = &settings.stage;
    let device = options.device.clone().autodiff();
    let steps = steps_per_epoch(clips.len(), stage);
    let total_steps = steps * stage.epochs;
    let spec = StageSpec {
        name: stage_name,
        settings: stage,
        seed: config.seed,
        seed_index: JOINT_STAGE_INDEX,
        order: (config.seed ^ 0x2, Stage::Supernet),
        images_per_item: settings.clip_len,
        data_parallel: config.data_parallel,
    };
    let mut stage_loop = StageLoop::open(
        spec,
        options,
        |checkpoint| Ok(AntModel::load(checkpoint, &device)?),
        || {
            let detector = EfficientDet::load(init, &device)?;
            device.seed(config.seed ^ 2);
            let temporal = temporal_config(settings).init(&detector.config.backbone, &device);
            Ok(AntModel { detector, temporal })
        },
    )?;
    let mut model = stage_loop.model.freeze_stem();
    if settings.frozen_norms {
        model = model.freeze_detector_norms();
    }
    if settings.freeze_detector {
        model.detector = model.detector.no_grad();
    }
    stage_loop.model = model;
    if settings.stage.drop_path > 0.0 {
        // The golden features come from the full network of the same detector, and must be
        // deterministic targets.
        tracing::warn!(
            drop_path = settings.stage.drop_path,
            "drop path is not applied in the joint stage (its golden features would be noisy)"
        );
    }
    let detector = &stage_loop.model.detector;
    let full_gmac = detector.cost(&SubnetArch::LARGEST).total.macs as f64 / 1e9;
    let target_gmac = (settings.target_gmac_fraction * full_gmac) as f32;
    let anchors = Anchors::new(&detector.config);
    let loss_config: LossConfig = config.loss.into();
    let num_classes = config.model.num_classes;
    tracing::info!(
        clips = clips.len(),
        steps_per_epoch = steps,
        target_gmac,
        full_gmac,
        non_temporal = settings.non_temporal,
        "joint training"
    );
    let temperature = |step: usize| {
        temperature_at(
            settings.temperature_start,
            settings.temperature_end,
            step,
            total_steps,
        )
    };
    let non_key = (settings.clip_len - 1) as f32;
    let shard = |model: &mut AntModel, items: Vec<ClipRef>, device: &Device, at: Shard| {
        let context = ShardContext {
            settings,
            anchors: &anchors,
            loss_config: &loss_config,
            num_classes,
            temperature: temperature(at.step),
            target_gmac,
        };
        let batch = batcher.batch(items, device)?;
        // The gates' Gumbel noise is drawn on the host from the step's seed (and the replica),
        // never from the device's generator: a resumed joint run draws what an uninterrupted
        // one does, and a GPU run draws what a CPU run does.
        let noise = Some(match at.replica {
            None => at.seed,
            Some(index) => at.seed ^ ((index as u64 + 1) << 52),
        });
        let loss = shard_loss(model, &batch, &context, noise, at.share, device)?;
        let parts = StepParts {
            loss: loss.total.clone().into_scalar::<f32>(),
            detection: loss.detection,
            distill: loss.distill,
            gmac: loss.gmac / non_key,
        };
        Ok((
            GradientsParams::from_grads(loss.total.backward(), &*model),
            parts,
        ))
    };
    let describe = |step: usize, parts: &StepParts| {
        format!(
            " E[GMAC] {:.3}/{target_gmac:.3} tau {:.2}",
            parts.gmac,
            temperature(step)
        )
    };
    let run = stage_loop.run(
        options,
        clips,
        |model, f| model.for_each_norm(f),
        shard,
        describe,
        |dir, model: &AntModel| Ok(model.save(dir)?),
    )?;
    Ok(JointOutcome {
        model: run.model.valid(),
        checkpoint: run.checkpoint,
        finished: run.finished,
        epochs: run.epochs,
    })
}

/// A copy of `model` whose fusion modules' batch-norm statistics are the average batch
/// statistics of the streaming computation on `clips` (pairs of key and non-key plain-device
/// images; gates by argmax). The detector's own norms run on their running statistics during
/// the pass, as at inference, and keep them: they come from the recalibrated supernet stage 2
/// started from, and re-estimating the shared BiFPN/head norms on fused features alone ruins
/// the key frames (measured: AP50 0.09 -> 0.00 for the full network after 20 joint steps).
/// The result depends on the weights only, not on the runtime training flags of `model`
/// (Burn does not save them: a stage-2 model in memory with `frozen_norms` and the same model
/// loaded from its checkpoint recalibrate alike).
pub fn recalibrate_joint(
    model: &AntModel,
    clips: &[(Tensor<4>, Tensor<4>)],
    non_temporal: bool,
) -> Result<AntModel> {
    let mut copy = model.valid().train();
    let mut detector_flags = Vec::new();
    copy.detector.for_each_norm(|norm| {
        detector_flags.push(norm.training.clone());
        norm.training = norm.training.clone().with_value(false);
    });
    let fusion_momenta: Vec<f64> = copy
        .temporal
        .present_fusions()
        .flat_map(|f| [f.bn_pointwise.momentum, f.bn_depthwise.momentum])
        .collect();
    for (index, (key, non_key)) in clips.iter().enumerate() {
        let momentum = 1.0 / (index as f64 + 1.0);
        for fusion in copy.temporal.present_fusions_mut() {
            fusion.bn_pointwise.momentum = momentum;
            fusion.bn_depthwise.momentum = momentum;
        }
        let key = Tensor::from_inner(key.clone());
        let non_key = Tensor::from_inner(non_key.clone());
        let _ = ant_temporal::forward_clip(
            &copy.detector,
            &copy.temporal,
            key,
            non_key,
            GateSampling::Argmax,
            non_temporal,
        )?;
    }
    let mut restored = detector_flags.into_iter();
    copy.detector
        .for_each_norm(|norm| norm.training = restored.next().expect("same norms as before"));
    for (fusion, pair) in copy
        .temporal
        .present_fusions_mut()
        .zip(fusion_momenta.chunks(2))
    {
        fusion.bn_pointwise.momentum = pair[0];
        fusion.bn_depthwise.momentum = pair[1];
    }
    Ok(copy.valid())
}

/// The calibration batches of [`recalibrate_joint`] as `config` sets them: its
/// `eval.recalibration_batches` (key, non-key) image pairs of `joint.batch_size` (at least 2)
/// clips, the key frame and the last frame of each, in an order drawn from its seed. The
/// main job and `cargo xtask eval` both take them from here, so they recalibrate alike.
pub fn calibration_clips(
    clips: &ClipDataset,
    batcher: &DetracBatcher,
    config: &crate::config::TrainConfig,
    device: &burn::tensor::Device,
) -> Result<Vec<(Tensor<4>, Tensor<4>)>> {
    let count = config.eval.recalibration_batches;
    let batch_size = config.joint.stage.batch_size.max(2);
    let seed = config.seed;
    let order = epoch_order(
        clips.len(),
        seed ^ 0xca1c,
        crate::trainer::Stage::Supernet,
        0,
    );
    (0..count)
        .map(|batch| {
            let items: Vec<ClipRef> = (0..batch_size)
                .map(|offset| {
                    clips.clips()[order[(batch * batch_size + offset) % order.len()]].clone()
                })
                .collect();
            let mut steps = batcher.batch(items, device)?.steps;
            let last = steps.pop().expect("clips have frames").images;
            Ok((steps.swap_remove(0).images, last))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_anneal_the_temperature_from_start_to_end() {
        assert_eq!(temperature_at(5.0, 0.5, 0, 10), 5.0);
        assert!((temperature_at(5.0, 0.5, 9, 10) - 0.5).abs() < 1e-6);
        let middle = temperature_at(5.0, 0.5, 4, 9);
        assert!((middle - 5.0f32.sqrt() * 0.5f32.sqrt()).abs() < 1e-5);
    }
}
