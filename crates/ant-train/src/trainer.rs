//! The hand-written training loops of stages 0 and 1 (like burn's
//! `examples/custom-training-loop`: `device.autodiff()`, `GradientsParams::from_grads`,
//! `optim.step`), with per-epoch atomic checkpoints, exact resume, per-step and per-epoch
//! metrics, a progress line and a NaN guard.
//!
//! - Stage 0 ([`Stage::Standalone`]) trains the largest subnet, i.e. the plain detector.
//! - Stage 1 ([`Stage::Supernet`]) follows the sandwich rule of slimmable networks (Yu and
//!   Huang, "Universally Slimmable Networks", ICCV 2019), which ANT's supernet training uses
//!   (Sec. 3.3): every step runs the largest subnet, the smallest and `random_subnets` random
//!   ones on the same batch; the largest learns from the ground truth, the others from the
//!   ground truth plus in-place distillation toward the largest's detached outputs (binary KL
//!   on the class probabilities, Huber on the box codes of positive anchors). One backward
//!   pass over the summed losses accumulates every subnet's gradient before the update. Each
//!   elastic block keeps private batch norms per expansion ratio, so each subnet trains its own
//!   statistics; a stage started from a standalone checkpoint first copies the largest
//!   ratio's norms into the smaller ratios' (stage 0 never trained those).
//!
//! Reproducibility: the data order of epoch `e` is a ChaCha8 shuffle seeded by `(seed, stage,
//! e)`, flips and colour jitter are drawn by the dataset from `(seed, e, item)`, the random
//! subnets of step `s` from `(seed, s)`, the drop-path masks from `(seed, stage, s, replica)`
//! (and the device's generator is re-seeded from `(seed, stage, s)`), the learning rate is a
//! function of `s`; model, optimizer state and the step counter are in the checkpoint. A resumed run therefore takes
//! the same steps as an uninterrupted one.

use std::path::{Path, PathBuf};

use ant_detrac::{DetracBatcher, FrameDataset, FrameRef, FrameTargets};
use ant_supernet::loss::{concat_levels, staged_sum};
use ant_supernet::{
    AnchorTargets, Anchors, EfficientDet, HeadOutputs, LossConfig, SubnetArch, detection_loss,
    label_anchors,
};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::load_model;
use crate::config::{StageSettings, TrainConfig};
use crate::driver::{Shard, StageLoop, StageSpec, StepParts};
use crate::error::{Result, TrainError};
use crate::metrics::EpochRecord;
use crate::progress::Progress;

/// A training stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Stage 0: the standalone detector (largest subnet).
    Standalone,
    /// Stage 1: the supernet, sandwich rule with in-place distillation.
    Supernet,
}

impl Stage {
    /// The stage's directory name in the run directory.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Standalone => "stage0-standalone",
            Stage::Supernet => "stage1-supernet",
        }
    }

    pub(crate) fn index(self) -> u64 {
        match self {
            Stage::Standalone => 0,
            Stage::Supernet => 1,
        }
    }
}

/// Where a stage's weights start.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelInit {
    /// Random initialisation (seeded by the config's seed).
    Scratch,
    /// An effdet COCO checkpoint (`.pth`), class head re-initialised.
    Effdet(PathBuf),
    /// A native checkpoint (`model.bpk`), e.g. the previous stage's.
    Checkpoint(PathBuf),
}

/// The training frames and how to batch them.
#[derive(Debug)]
pub struct TrainData {
    /// The frames (with the config's flip probability and seed).
    pub dataset: FrameDataset,
    /// The decoder/letterbox at the model's input size.
    pub batcher: DetracBatcher,
}

/// Options of one stage run that are not part of the experiment.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run directory (config, metrics, one subdirectory per stage).
    pub run_dir: PathBuf,
    /// The device (plain; autodiff is added for training).
    pub device: Device,
    /// Where the data-parallel replicas run (plain devices, used in turn; `config.data_parallel`
    /// says how many replicas): empty, all on `device` (a CPU's cores); one GPU each for
    /// multi-GPU training.
    pub replica_devices: Vec<Device>,
    /// Continue from the stage's newest checkpoint when there is one.
    pub resume: bool,
    /// Where progress goes: [`Progress::quiet`] (the default), or [`Progress::stderr`] (bars
    /// with ETAs on a terminal, plain lines in a log).
    pub progress: Progress,
    /// Stop after this many epochs of this invocation (tests use it to "kill" a run).
    pub stop_after_epochs: Option<usize>,
}

impl RunOptions {
    /// A fresh, quiet run into `run_dir` on `device`: no replicas besides it, no resume, no
    /// progress line, every epoch. Change fields with struct-update syntax
    /// (`RunOptions { resume: true, ..RunOptions::new(dir, device) }`).
    pub fn new(run_dir: impl Into<PathBuf>, device: Device) -> Self {
        Self {
            run_dir: run_dir.into(),
            device,
            replica_devices: Vec::new(),
            resume: false,
            progress: Progress::quiet(),
            stop_after_epochs: None,
        }
    }
}

/// What a finished (or stopped) stage returns.
#[derive(Debug)]
pub struct StageOutcome {
    /// The trained model on the plain device, ready for evaluation.
    pub model: EfficientDet,
    /// The newest checkpoint directory.
    pub checkpoint: PathBuf,
    /// The epochs trained by this invocation.
    pub epochs: Vec<EpochRecord>,
    /// Whether every configured epoch is done.
    pub finished: bool,
}

/// The stage's optimizer: SGD with PyTorch momentum semantics (dampening 0) and L2 decay, or
/// AdamW with decoupled decay (`optimizer: "adamw"`).
pub fn optimizer(stage: &StageSettings) -> ModuleOptimizer {
    let clipping = stage.grad_clip_norm.map(GradientClippingConfig::Norm);
    if stage.optimizer == "adamw" {
        return AdamWConfig::new()
            .with_weight_decay(stage.weight_decay)
            .with_grad_clipping(clipping)
            .init();
    }
    let momentum = (stage.momentum > 0.0).then_some(MomentumConfig {
        momentum: stage.momentum,
        dampening: 0.0,
        nesterov: false,
    });
    let weight_decay = (stage.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: stage.weight_decay,
    });
    SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(weight_decay)
        .with_gradient_clipping(clipping)
        .init()
}

/// In-place distillation of a student subnet toward the (detached) largest subnet: binary KL
/// between the class probabilities over every anchor and class, plus the Huber loss between
/// box codes on the positive anchors, both normalised like the detection loss (positives + 1)
/// and the box term weighted like it.
pub fn distillation_loss(
    student: &HeadOutputs,
    teacher: &HeadOutputs,
    targets: &[AnchorTargets],
    num_classes: usize,
    config: &LossConfig,
    device: &Device,
) -> Tensor<1> {
    let student_logits = concat_levels(&student.class, num_classes);
    let teacher_logits = concat_levels(&teacher.class, num_classes).detach();
    let [batch, anchors, _] = student_logits.dims();
    // Binary KL(t || s) = t (log t - log s) + (1 - t) (log(1 - t) - log(1 - s)).
    let teacher_probability = burn::tensor::activation::sigmoid(teacher_logits.clone());
    let kl = teacher_probability.clone()
        * (log_sigmoid(teacher_logits.clone()) - log_sigmoid(student_logits.clone()))
        + teacher_probability.neg().add_scalar(1.0)
            * (log_sigmoid(teacher_logits.neg()) - log_sigmoid(student_logits.neg()));
    let positives: usize = targets.iter().map(|t| t.num_positives).sum();
    let normaliser = positives as f32 + 1.0;
    let mut mask = vec![0f32; batch * anchors * 4];
    for (image, target) in targets.iter().enumerate() {
        for (anchor, class) in target.classes.iter().enumerate() {
            if class.is_some() {
                let base = (image * anchors + anchor) * 4;
                mask[base..base + 4].fill(1.0);
            }
        }
    }
    let mask = Tensor::<3>::from_data(TensorData::new(mask, [batch, anchors, 4]), device);
    let difference =
        (concat_levels(&student.boxes, 4) - concat_levels(&teacher.boxes, 4).detach()).abs();
    let quadratic = difference.clone().clamp_max(config.delta);
    let linear = difference - quadratic.clone();
    let huber = quadratic.powf_scalar(2.0).mul_scalar(0.5) + linear.mul_scalar(config.delta);
    let box_term = staged_sum(huber * mask).div_scalar(normaliser * 4.0);
    staged_sum(kl).div_scalar(normaliser) + box_term.mul_scalar(config.box_loss_weight)
}

/// The subnets a supernet step trains: largest, smallest, then `random` random ones drawn
/// from `(seed, step)`.
pub fn sandwich_archs(random: usize, seed: u64, step: usize) -> Vec<SubnetArch> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0001 ^ ((step as u64) << 20));
    let mut archs = vec![SubnetArch::LARGEST, SubnetArch::SMALLEST];
    for _ in 0..random {
        let ratios: [usize; 6] = std::array::from_fn(|_| rng.random_range(1..=6));
        archs.push(SubnetArch::new(ratios).expect("ratios drawn in 1..=6"));
    }
    archs
}

/// The anchor targets of each image of a batch (stages 0-2 label the same way).
pub fn label_batch(
    anchors: &Anchors,
    targets: &[FrameTargets],
    loss_config: &LossConfig,
) -> Vec<AnchorTargets> {
    targets
        .iter()
        .map(|t| {
            label_anchors(
                anchors,
                &t.boxes,
                &t.classes,
                &t.ignored_regions,
                loss_config,
            )
        })
        .collect()
}

/// The NaN guard of every training loop: a non-finite loss stops the stage with an error that
/// names the last good checkpoint (which stays on disk untouched).
pub fn check_finite(
    value: f32,
    stage: &str,
    epoch: usize,
    step: usize,
    last_good: Option<&Path>,
) -> Result<()> {
    if value.is_finite() {
        return Ok(());
    }
    Err(TrainError::NonFiniteLoss {
        stage: stage.to_string(),
        epoch,
        step,
        value,
        last_good: last_good.map_or("none".to_string(), |p| p.display().to_string()),
    })
}

/// The seed of the device's generator for one training step of a stage (stages 0, 1 and the
/// joint stage 2).
pub fn step_seed(seed: u64, stage: u64, step: usize) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (stage << 56) ^ (step as u64) ^ 0x5eed);
    rng.random()
}

/// The shuffled frame order of an epoch.
pub fn epoch_order(len: usize, seed: u64, stage: Stage, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (stage.index() << 56) ^ ((epoch as u64) << 32) ^ 0xda7a);
    order.shuffle(&mut rng);
    order
}

/// Steps per epoch: full batches over the dataset (at least one), capped by the config.
pub fn steps_per_epoch(len: usize, stage: &StageSettings) -> usize {
    let full = (len / stage.batch_size).max(1);
    stage.max_steps_per_epoch.map_or(full, |cap| full.min(cap))
}

fn stage_settings(config: &TrainConfig, stage: Stage) -> &StageSettings {
    match stage {
        Stage::Standalone => &config.standalone,
        Stage::Supernet => &config.supernet.stage,
    }
}

fn init_model(config: &TrainConfig, init: &ModelInit, device: &Device) -> Result<EfficientDet> {
    let detector = config.model.detector_config()?;
    match init {
        ModelInit::Scratch => {
            device.seed(config.seed);
            Ok(EfficientDet::init(&detector, device))
        }
        ModelInit::Effdet(path) => {
            device.seed(config.seed);
            Ok(EfficientDet::from_effdet(&detector, path, device)?)
        }
        ModelInit::Checkpoint(path) => {
            let model = EfficientDet::load(path, device)?;
            if model.config != detector {
                return Err(TrainError::ResumeMismatch {
                    path: path.clone(),
                    reason: "the checkpoint's detector config differs from the run's".into(),
                });
            }
            Ok(model)
        }
    }
}

/// The loss of one step and its parts, as numbers.
struct StepLoss {
    total: Tensor<1>,
    detection: Tensor<1>,
    distill: Option<Tensor<1>>,
}

fn step_loss(
    model: &EfficientDet,
    anchor: Option<&EfficientDet>,
    stage: Stage,
    config: &TrainConfig,
    images: Tensor<4>,
    targets: &[AnchorTargets],
    step: usize,
    device: &Device,
) -> Result<StepLoss> {
    let num_classes = config.model.num_classes;
    let loss_config: LossConfig = config.loss.into();
    let teacher = model.forward(images.clone(), &SubnetArch::LARGEST)?;
    let teacher_loss = detection_loss(&teacher, targets, num_classes, &loss_config, device).total;
    if stage == Stage::Standalone {
        return Ok(StepLoss {
            total: teacher_loss.clone(),
            detection: teacher_loss,
            distill: None,
        });
    }
    let settings = &config.supernet;
    // With `head_from_largest_only` the students see BiFPN and heads as constants: their
    // gradients still flow through them into the backbone, never into them.
    let detached_head;
    let students = if settings.head_from_largest_only {
        detached_head = EfficientDet {
            backbone: model.backbone.clone(),
            fpn: model.fpn.clone().no_grad(),
            class_net: model.class_net.clone().no_grad(),
            box_net: model.box_net.clone().no_grad(),
            config: model.config.clone(),
        };
        &detached_head
    } else {
        model
    };
    let mut detection = teacher_loss.mul_scalar(settings.largest_weight);
    let mut distill: Option<Tensor<1>> = None;
    for arch in sandwich_archs(settings.random_subnets, config.seed, step)
        .into_iter()
        .skip(1)
    {
        let student = students.forward(images.clone(), &arch)?;
        let student_loss = detection_loss(&student, targets, num_classes, &loss_config, device);
        detection = detection + student_loss.total;
        let kd = distillation_loss(
            &student,
            &teacher,
            targets,
            num_classes,
            &loss_config,
            device,
        );
        distill = Some(match distill {
            Some(sum) => sum + kd,
            None => kd,
        });
    }
    let distill_sum = distill
        .clone()
        .expect("the sandwich has at least one student");
    let mut total = detection.clone() + distill_sum.mul_scalar(config.supernet.distill_weight);
    if let Some(anchor) = anchor {
        // The frozen standalone detector on the same images: its outputs are constants (the
        // loss detaches them) and its parameters take no gradient.
        let anchored = anchor.forward(images, &SubnetArch::LARGEST)?;
        let kd = distillation_loss(
            &teacher,
            &anchored,
            targets,
            num_classes,
            &loss_config,
            device,
        );
        total = total + kd.mul_scalar(settings.standalone_distill_weight);
    }
    Ok(StepLoss {
        total,
        detection,
        distill,
    })
}

/// Trains one stage (resuming when asked and possible); checkpoints every epoch.
pub fn train_stage(
    config: &TrainConfig,
    stage: Stage,
    init: &ModelInit,
    data: &TrainData,
    options: &RunOptions,
) -> Result<StageOutcome> {
    let settings = stage_settings(config, stage);
    let device = options.device.clone().autodiff();
    let spec = StageSpec {
        name: stage.name(),
        settings,
        seed: config.seed,
        seed_index: stage.index(),
        order: (config.seed, stage),
        images_per_item: 1,
        data_parallel: config.data_parallel,
    };
    let mut stage_loop = StageLoop::open(
        spec,
        options,
        |checkpoint| load_model(checkpoint, &device),
        || {
            let mut model = init_model(config, init, &device)?;
            if stage == Stage::Supernet && matches!(init, ModelInit::Checkpoint(_)) {
                // The standalone stage trained the largest ratio only: every smaller ratio
                // starts from its norms rather than from unit/zero ones.
                model.inherit_norms_from_largest();
            }
            Ok(model)
        },
    )?;
    // The supernet's anchor: the frozen standalone detector it starts from, one copy per
    // device a replica runs on.
    let standalone: Vec<(Device, EfficientDet)> = match (stage, init) {
        (Stage::Supernet, ModelInit::Checkpoint(path))
            if config.supernet.standalone_distill_weight > 0.0 =>
        {
            let anchor = EfficientDet::load(path, &device)?.no_grad();
            let mut on: Vec<Device> = vec![device.clone()];
            for replica in &options.replica_devices {
                let replica = replica.clone().autodiff();
                if !on.contains(&replica) {
                    on.push(replica);
                }
            }
            on.into_iter()
                .map(|target| {
                    let copy = if target == device {
                        anchor.clone()
                    } else {
                        anchor.clone().fork(&target)
                    };
                    (target, copy)
                })
                .collect()
        }
        (Stage::Supernet, _) if config.supernet.standalone_distill_weight > 0.0 => {
            return Err(TrainError::InvalidConfig {
                reason:
                    "supernet.standalone_distill_weight needs a standalone checkpoint to start from"
                        .into(),
            });
        }
        _ => Vec::new(),
    };
    // Stochastic depth is a training-time property of the blocks, never saved: set it on the
    // fresh or resumed model, clear it on the returned one.
    stage_loop.model.set_drop_path(settings.drop_path);
    let anchors = Anchors::new(&stage_loop.model.config);
    let loss_config: LossConfig = config.loss.into();
    tracing::info!(
        stage = stage.name(),
        frames = data.dataset.len(),
        steps_per_epoch = steps_per_epoch(data.dataset.len(), settings),
        epochs = settings.epochs,
        "training"
    );
    // Forward and backward of one shard of the batch (the whole batch without replicas), its
    // loss weighted by its share of the batch.
    let shard = |model: &mut EfficientDet, items: Vec<FrameRef>, device: &Device, at: Shard| {
        let drop_seed = match at.replica {
            None => at.seed,
            Some(index) => at.seed ^ (index as u64 + 1) << 48,
        };
        model.set_drop_path_seed(drop_seed);
        let batch = data.batcher.batch(items, device)?;
        let targets = label_batch(&anchors, &batch.targets, &loss_config);
        let anchor = standalone
            .iter()
            .find(|(on, _)| on == device)
            .map(|(_, anchor)| anchor);
        let loss = step_loss(
            model,
            anchor,
            stage,
            config,
            batch.images,
            &targets,
            at.step,
            device,
        )?;
        let total = loss.total.mul_scalar(at.share);
        let parts = StepParts {
            loss: total.clone().into_scalar::<f32>(),
            detection: loss.detection.into_scalar::<f32>() * at.share,
            distill: loss.distill.map_or(0.0, |d| d.into_scalar::<f32>()) * at.share,
            gmac: 0.0,
        };
        Ok((GradientsParams::from_grads(total.backward(), model), parts))
    };
    let mut run = stage_loop.run(
        options,
        &data.dataset,
        |model, f| model.for_each_norm(f),
        shard,
        |_, _| String::new(),
        |dir, model: &EfficientDet| Ok(model.valid().save(&dir.join("model.bpk"))?),
    )?;
    run.model.set_drop_path(0.0);
    Ok(StageOutcome {
        model: run.model.valid(),
        checkpoint: run.checkpoint,
        finished: run.finished,
        epochs: run.epochs,
    })
}

/// `count` batches of `batch_size` training images (a fixed shuffle, no flips) on `device`,
/// for batch-norm recalibration.
pub fn calibration_batches(
    data: &TrainData,
    count: usize,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<Tensor<4>>> {
    let order = epoch_order(data.dataset.len(), seed ^ 0xca1b, Stage::Standalone, 0);
    let items = data.dataset.items();
    (0..count)
        .map(|batch| {
            let frames: Vec<FrameRef> = (0..batch_size)
                .map(|offset| items[order[(batch * batch_size + offset) % order.len()]].clone())
                .collect();
            Ok(data.batcher.batch(frames, device)?.images)
        })
        .collect()
}

/// Path of the model file of a checkpoint directory.
pub fn checkpoint_model(checkpoint: &Path) -> PathBuf {
    checkpoint.join("model.bpk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_start_the_sandwich_with_largest_and_smallest_and_repeat_per_step() {
        let archs = sandwich_archs(2, 7, 11);
        assert_eq!(archs.len(), 4);
        assert_eq!(archs[0], SubnetArch::LARGEST);
        assert_eq!(archs[1], SubnetArch::SMALLEST);
        assert_eq!(archs, sandwich_archs(2, 7, 11));
        assert_ne!(archs[2..], sandwich_archs(2, 7, 12)[2..]);
    }

    #[test]
    fn should_shuffle_each_epoch_differently_but_reproducibly() {
        let a = epoch_order(50, 3, Stage::Standalone, 0);
        assert_eq!(a, epoch_order(50, 3, Stage::Standalone, 0));
        assert_ne!(a, epoch_order(50, 3, Stage::Standalone, 1));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn should_give_zero_distillation_loss_when_student_equals_teacher() {
        let device = Device::flex();
        let outputs = HeadOutputs {
            class: vec![Tensor::random(
                [1, 8, 2, 2],
                burn::tensor::Distribution::Normal(0.0, 2.0),
                &device,
            )],
            boxes: vec![Tensor::random(
                [1, 16, 2, 2],
                burn::tensor::Distribution::Default,
                &device,
            )],
        };
        let targets = AnchorTargets {
            classes: vec![Some(0); 4 * 4],
            valid: vec![true; 16],
            boxes: vec![[0.0; 4]; 16],
            num_positives: 16,
        };
        let loss = distillation_loss(
            &outputs,
            &outputs,
            &[targets],
            2,
            &LossConfig::default(),
            &device,
        );
        let value: f32 = loss.into_scalar();
        assert!(value.abs() < 1e-5, "{value}");
    }
}
