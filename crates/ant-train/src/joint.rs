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
use std::time::Instant;

use ant_detrac::{ClipBatch, ClipDataset, ClipRef, DetracBatcher};
use ant_supernet::{Anchors, EfficientDet, LossConfig, SubnetArch, detection_loss};
use ant_temporal::{AntModel, AntTemporalConfig, GateSampling, forward_non_key};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use crate::checkpoint::{
    TrainState, latest_checkpoint, load_optimizer, load_state, save_checkpoint_with,
};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::metrics::{EpochRecord, MetricsLog, StepRecord};
use crate::parallel::{data_parallel_step, shard_ranges};
use crate::schedule::LrSchedule;
use crate::trainer::{
    RunOptions, check_finite, distillation_loss, epoch_order, label_batch, optimizer, step_seed,
    steps_per_epoch,
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

impl ShardLoss {
    fn parts(&self) -> [f32; 4] {
        [
            self.total.clone().into_scalar::<f32>(),
            self.detection,
            self.distill,
            self.gmac,
        ]
    }
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
            let mut term = (fused.clone() - target.clone()).powf_scalar(2.0).mean();
            if settings.distill_normalized {
                term = term / target.powf_scalar(2.0).mean().add_scalar(1e-6);
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
    let stage_dir = options.run_dir.join(stage_name);
    let device = options.device.clone().autodiff();
    let steps = steps_per_epoch(clips.len(), stage);
    let total_steps = steps * stage.epochs;
    let schedule = LrSchedule::for_stage(stage, steps);
    let mut optim = optimizer(stage);
    let resume_from = if options.resume {
        latest_checkpoint(&stage_dir)?
    } else {
        None
    };
    let (model, mut state) = match &resume_from {
        Some(checkpoint) => {
            let state = load_state(checkpoint)?;
            if state.stage != stage_name || state.seed != config.seed {
                return Err(TrainError::ResumeMismatch {
                    path: checkpoint.clone(),
                    reason: format!("checkpoint of stage {} seed {}", state.stage, state.seed),
                });
            }
            optim = load_optimizer(checkpoint, optim)?;
            (AntModel::load(checkpoint, &device)?, state)
        }
        None => {
            let detector = EfficientDet::load(init, &device)?;
            device.seed(config.seed ^ 2);
            let temporal = AntTemporalConfig::new()
                .with_gate_hidden(settings.gate_hidden)
                .with_residual_fusion(settings.residual_fusion)
                .with_fusion_anchor(settings.anchor())
                .with_fused_input(settings.fused_input)
                .with_fusion_stages(settings.temporal_fusion_stages())
                .init(&detector.config.backbone, &device);
            let state = TrainState {
                stage: stage_name.to_string(),
                epochs_done: 0,
                global_step: 0,
                seed: config.seed,
                last_loss: f32::NAN,
            };
            (AntModel { detector, temporal }, state)
        }
    };
    let mut model = model.freeze_stem();
    if settings.frozen_norms {
        model = model.freeze_detector_norms();
    }
    if settings.freeze_detector {
        model.detector = model.detector.no_grad();
    }
    if settings.stage.drop_path > 0.0 {
        // The golden features come from the full network of the same detector, and must be
        // deterministic targets.
        tracing::warn!(
            drop_path = settings.stage.drop_path,
            "drop path is not applied in the joint stage (its golden features would be noisy)"
        );
    }
    let full_gmac = model.detector.cost(&SubnetArch::LARGEST).total.macs as f64 / 1e9;
    let target_gmac = (settings.target_gmac_fraction * full_gmac) as f32;
    let mut log = MetricsLog::open(&options.run_dir, stage_name, state.global_step)?;
    let anchors = Anchors::new(&model.detector.config);
    let loss_config: LossConfig = config.loss.into();
    let num_classes = config.model.num_classes;
    let mut checkpoint = resume_from.clone();
    let mut epochs = Vec::new();
    let first_epoch = state.epochs_done;
    let last_epoch = options
        .stop_after_epochs
        .map_or(stage.epochs, |n| stage.epochs.min(first_epoch + n));
    tracing::info!(
        clips = clips.len(),
        steps_per_epoch = steps,
        target_gmac,
        full_gmac,
        non_temporal = settings.non_temporal,
        "joint training"
    );
    for epoch in first_epoch..last_epoch {
        clips.set_epoch(epoch as u64);
        let order = epoch_order(
            clips.len(),
            config.seed ^ 0x2,
            crate::trainer::Stage::Supernet,
            epoch,
        );
        let started = Instant::now();
        let (mut loss_sum, mut detection_sum, mut distill_sum) = (0f64, 0f64, 0f64);
        let mut gmac_sum = 0f64;
        for batch_index in 0..steps {
            let step = state.global_step;
            // The gates' Gumbel noise comes from the device's generator (one replica) or from
            // this seed (replicas): either way a function of (seed, step), so a resumed joint
            // run draws what an uninterrupted one does.
            let seed = step_seed(config.seed, JOINT_STAGE_INDEX, step);
            device.seed(seed);
            let items: Vec<ClipRef> = (0..stage.batch_size)
                .map(|offset| order[(batch_index * stage.batch_size + offset) % order.len()])
                .map(|index| clips.get(index).expect("clip datasets never fail get"))
                .collect();
            let temperature = temperature_at(
                settings.temperature_start,
                settings.temperature_end,
                step,
                total_steps,
            );
            let context = ShardContext {
                settings,
                anchors: &anchors,
                loss_config: &loss_config,
                num_classes,
                temperature,
                target_gmac,
            };
            let lr = schedule.lr_at(step);
            let clip_count = items.len();
            let (grads, parts) = if config.data_parallel > 1 {
                let shards: Vec<Vec<ClipRef>> = shard_ranges(clip_count, config.data_parallel)
                    .into_iter()
                    .map(|range| items[range].to_vec())
                    .collect();
                let (grads, parts) = data_parallel_step(
                    &mut model,
                    |model, f| model.for_each_norm(f),
                    shards,
                    &options.device,
                    &options.replica_devices,
                    |index, replica, items: Vec<ClipRef>, device: &Device| {
                        let share = items.len() as f32 / clip_count as f32;
                        let batch = batcher.batch(items, device)?;
                        let noise = Some(seed ^ ((index as u64 + 1) << 52));
                        let loss = shard_loss(replica, &batch, &context, noise, share, device)?;
                        let parts = loss.parts();
                        Ok((
                            GradientsParams::from_grads(loss.total.backward(), replica),
                            parts,
                        ))
                    },
                )?;
                let sum = parts.iter().fold([0f32; 4], |acc, p| {
                    [acc[0] + p[0], acc[1] + p[1], acc[2] + p[2], acc[3] + p[3]]
                });
                (grads, sum)
            } else {
                let batch = batcher.batch(items, &device)?;
                let loss = shard_loss(&model, &batch, &context, None, 1.0, &device)?;
                let parts = loss.parts();
                (
                    GradientsParams::from_grads(loss.total.backward(), &model),
                    parts,
                )
            };
            let [value, detection_value, distill_value, gmac_value] = parts;
            check_finite(value, stage_name, epoch, step, checkpoint.as_deref())?;
            model = optim.step(lr, model, grads);
            state.global_step += 1;
            let non_key = (settings.clip_len - 1) as f32;
            loss_sum += f64::from(value);
            detection_sum += f64::from(detection_value);
            distill_sum += f64::from(distill_value);
            gmac_sum += f64::from(gmac_value / non_key);
            log.step(&StepRecord {
                stage: stage_name.to_string(),
                epoch,
                step,
                loss: value,
                detection: detection_value,
                distill: distill_value,
                lr,
            })?;
            if options.progress {
                let images = (batch_index + 1) * stage.batch_size * settings.clip_len;
                eprint!(
                    "\r[{stage_name}] epoch {}/{} step {}/{} loss {:.4} E[GMAC] {:.3}/{:.3} \
                     tau {:.2} lr {:.5} {:.2} img/s   ",
                    epoch + 1,
                    stage.epochs,
                    batch_index + 1,
                    steps,
                    value,
                    gmac_value / non_key,
                    target_gmac,
                    temperature,
                    lr,
                    images as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        if options.progress {
            eprintln!();
        }
        let seconds = started.elapsed().as_secs_f64();
        let record = EpochRecord {
            stage: stage_name.to_string(),
            epoch,
            global_step: state.global_step,
            loss: (loss_sum / steps as f64) as f32,
            detection: (detection_sum / steps as f64) as f32,
            distill: (distill_sum / steps as f64) as f32,
            lr: schedule.lr_at(state.global_step.saturating_sub(1)),
            images_per_s: (steps * stage.batch_size * settings.clip_len) as f64 / seconds,
            seconds,
        };
        state.epochs_done = epoch + 1;
        state.last_loss = record.loss;
        checkpoint = Some(save_checkpoint_with(&stage_dir, &optim, &state, |dir| {
            Ok(model.save(dir)?)
        })?);
        log.epoch(&record)?;
        tracing::info!(
            epoch = epoch + 1,
            loss = record.loss,
            mean_expected_gmac = gmac_sum / steps as f64,
            seconds,
            "joint epoch done"
        );
        epochs.push(record);
    }
    let checkpoint = match checkpoint {
        Some(path) => path,
        None => save_checkpoint_with(&stage_dir, &optim, &state, |dir| Ok(model.save(dir)?))?,
    };
    Ok(JointOutcome {
        model: model.valid(),
        checkpoint,
        finished: state.epochs_done >= stage.epochs,
        epochs,
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
