//! The stage driver: what every training stage shares, written once. Stages 0, 1 and 2
//! supply their step (the loss of one shard of a batch and its gradients); the driver does
//! the rest:
//!
//! - **resume**: the stage's newest complete checkpoint, its state checked against the run
//!   (stage, seed), the optimizer's moments and the model restored;
//! - **order**: a shuffled order of the dataset per epoch, a function of (seed, epoch);
//! - **seeds**: the device's generator reseeded at every step from (seed, stage, step), so a
//!   resumed run draws what an uninterrupted one does;
//! - **shards**: with `data_parallel > 1` each batch is split into contiguous shards, one
//!   model replica each ([`data_parallel_step`]), gradients summed;
//! - **the guard**: a non-finite loss stops the run naming the last good checkpoint;
//! - **records** (`steps.csv`, `metrics.jsonl`, `loss.svg`), the progress line, and an atomic
//!   checkpoint after every epoch (the last two kept); the stage's bar ([`crate::progress`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ant_detrac::{ClipDataset, ClipRef, FrameDataset, FrameRef};
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;

use crate::checkpoint::{
    TrainState, latest_checkpoint, load_optimizer, load_state, save_checkpoint_with,
};
use crate::config::StageSettings;
use crate::error::{Result, TrainError};
use crate::metrics::{EpochRecord, MetricsLog, StepRecord};
use crate::parallel::{NormVisitor, data_parallel_step, shard_ranges};
use crate::schedule::LrSchedule;
use crate::trainer::{
    RunOptions, Stage, check_finite, epoch_order, optimizer, step_seed, steps_per_epoch,
};

/// A stage's training items, shuffled per epoch by the driver.
pub(crate) trait StageData<I> {
    /// Items in an epoch.
    fn len(&self) -> usize;
    /// Reseeds the per-epoch augmentation.
    fn set_epoch(&self, epoch: u64);
    /// Item `index`.
    fn item(&self, index: usize) -> I;
}

impl StageData<FrameRef> for FrameDataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }
    fn set_epoch(&self, epoch: u64) {
        FrameDataset::set_epoch(self, epoch);
    }
    fn item(&self, index: usize) -> FrameRef {
        self.get(index).expect("frame datasets never fail get")
    }
}

impl StageData<ClipRef> for ClipDataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }
    fn set_epoch(&self, epoch: u64) {
        ClipDataset::set_epoch(self, epoch);
    }
    fn item(&self, index: usize) -> ClipRef {
        self.get(index).expect("clip datasets never fail get")
    }
}

/// Who a stage is, for the driver.
pub(crate) struct StageSpec<'a> {
    /// The stage's directory and record name.
    pub name: &'a str,
    /// Epochs, batch size, learning rate, ...
    pub settings: &'a StageSettings,
    /// The run's seed.
    pub seed: u64,
    /// The stage's index in per-step seeds (0, 1, 2).
    pub seed_index: u64,
    /// The seed and stage of the epoch order ([`epoch_order`]).
    pub order: (u64, Stage),
    /// Images per item (1 for frames, the clip length for clips), for images per second.
    pub images_per_item: usize,
    /// Model replicas per step.
    pub data_parallel: usize,
}

/// Where a shard runs, for the stage's step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shard {
    /// The global step.
    pub step: usize,
    /// The step's seed (the device's generator is seeded with it before the step).
    pub seed: u64,
    /// `None` for the whole batch on the model itself; `Some(i)` for replica `i`.
    pub replica: Option<usize>,
    /// The shard's share of the batch (its loss is weighted by it).
    pub share: f32,
}

/// The numbers of one step (summed over shards).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StepParts {
    /// The loss optimised.
    pub loss: f32,
    /// Its detection part.
    pub detection: f32,
    /// Its distillation part.
    pub distill: f32,
    /// The gates' expected GMAC per non-key frame (stage 2), 0 elsewhere.
    pub gmac: f32,
}

impl std::ops::Add for StepParts {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            loss: self.loss + other.loss,
            detection: self.detection + other.detection,
            distill: self.distill + other.distill,
            gmac: self.gmac + other.gmac,
        }
    }
}

/// What the driver returns.
pub(crate) struct StageRun<M> {
    /// The trained model (autodiff device).
    pub model: M,
    /// The newest checkpoint directory.
    pub checkpoint: PathBuf,
    /// The epochs trained by this invocation.
    pub epochs: Vec<EpochRecord>,
    /// Whether every configured epoch is done.
    pub finished: bool,
}

/// A stage opened for training: its model (fresh or resumed), optimizer, state and records.
/// The stage adjusts `model` (freezing, drop path) and then [`run`](Self::run)s it.
pub(crate) struct StageLoop<'a, M> {
    spec: StageSpec<'a>,
    /// The model, on the autodiff device.
    pub model: M,
    optim: ModuleOptimizer,
    state: TrainState,
    resumed_from: Option<PathBuf>,
    log: MetricsLog,
}

impl<'a, M: Module> StageLoop<'a, M> {
    /// Resumes from the stage's newest checkpoint when `options.resume` and there is one
    /// (`load` reads its model), else starts from `fresh()`.
    ///
    /// # Errors
    /// A checkpoint of another stage or seed ([`TrainError::ResumeMismatch`]), unreadable
    /// checkpoint files, `fresh`'s errors.
    pub fn open(
        spec: StageSpec<'a>,
        options: &RunOptions,
        load: impl FnOnce(&Path) -> Result<M>,
        fresh: impl FnOnce() -> Result<M>,
    ) -> Result<Self> {
        let stage_dir = options.run_dir.join(spec.name);
        let mut optim = optimizer(spec.settings);
        let resumed_from = if options.resume {
            latest_checkpoint(&stage_dir)?
        } else {
            None
        };
        let (model, state) = match &resumed_from {
            Some(checkpoint) => {
                let state = load_state(checkpoint)?;
                if state.stage != spec.name || state.seed != spec.seed {
                    return Err(TrainError::ResumeMismatch {
                        path: checkpoint.clone(),
                        reason: format!(
                            "checkpoint of stage {} seed {}, run is stage {} seed {}",
                            state.stage, state.seed, spec.name, spec.seed
                        ),
                    });
                }
                optim = load_optimizer(checkpoint, optim)?;
                tracing::info!(stage = spec.name, checkpoint = %checkpoint.display(),
                    epochs_done = state.epochs_done, "resuming");
                (load(checkpoint)?, state)
            }
            None => (
                fresh()?,
                TrainState {
                    stage: spec.name.to_string(),
                    epochs_done: 0,
                    global_step: 0,
                    seed: spec.seed,
                    last_loss: f32::NAN,
                },
            ),
        };
        let log = MetricsLog::open(&options.run_dir, spec.name, state.global_step)?;
        Ok(Self {
            spec,
            model,
            optim,
            state,
            resumed_from,
            log,
        })
    }

    /// Trains the remaining epochs (all of them, or `options.stop_after_epochs` more).
    ///
    /// `shard(model, items, device, shard)` computes one shard's loss on `model` (whose
    /// autodiff device is `device`), weighted by `shard.share`, runs its backward pass and
    /// returns the gradients and the step's numbers. `norms` visits the model's batch norms
    /// (replicas average their running statistics); `save` writes the model files into a
    /// checkpoint directory; `describe` adds the stage's own numbers to the progress line.
    ///
    /// # Errors
    /// A non-finite loss ([`TrainError::NonFiniteLoss`]), a failing step, an unwritable
    /// checkpoint or record.
    pub fn run<I, S, D, W>(
        mut self,
        options: &RunOptions,
        data: &dyn StageData<I>,
        norms: NormVisitor<M>,
        shard: S,
        describe: D,
        save: W,
    ) -> Result<StageRun<M>>
    where
        I: Clone + Send,
        S: Fn(&mut M, Vec<I>, &Device, Shard) -> Result<(GradientsParams, StepParts)> + Sync,
        D: Fn(usize, &StepParts) -> String,
        W: Fn(&Path, &M) -> Result<()>,
    {
        let spec = &self.spec;
        let settings = spec.settings;
        let stage_dir = options.run_dir.join(spec.name);
        let device = options.device.clone().autodiff();
        let steps = steps_per_epoch(data.len(), settings);
        let schedule = LrSchedule::for_stage(settings, steps);
        let mut checkpoint = self.resumed_from.clone();
        let mut epochs = Vec::new();
        let first_epoch = self.state.epochs_done;
        let last_epoch = options
            .stop_after_epochs
            .map_or(settings.epochs, |n| settings.epochs.min(first_epoch + n));
        let batch_size = settings.batch_size;
        let progress = options.progress.stage(
            spec.name,
            (steps * settings.epochs) as u64,
            self.state.global_step as u64,
        );
        for epoch in first_epoch..last_epoch {
            data.set_epoch(epoch as u64);
            let order = epoch_order(data.len(), spec.order.0, spec.order.1, epoch);
            let started = Instant::now();
            let mut sums = [0f64; 4];
            for batch_index in 0..steps {
                let step = self.state.global_step;
                // The step's draws (drop-path masks, Gumbel noise, anything from the device's
                // generator) are functions of (seed, stage, step).
                let seed = step_seed(spec.seed, spec.seed_index, step);
                device.seed(seed);
                let items: Vec<I> = (0..batch_size)
                    .map(|offset| order[(batch_index * batch_size + offset) % order.len()])
                    .map(|index| data.item(index))
                    .collect();
                let lr = schedule.lr_at(step);
                let count = items.len();
                let (grads, parts) = if spec.data_parallel > 1 {
                    let shards: Vec<Vec<I>> = shard_ranges(count, spec.data_parallel)
                        .into_iter()
                        .map(|range| items[range].to_vec())
                        .collect();
                    let (grads, parts) = data_parallel_step(
                        &mut self.model,
                        norms,
                        shards,
                        &options.device,
                        &options.replica_devices,
                        |index, replica, items: Vec<I>, device: &Device| {
                            let share = items.len() as f32 / count as f32;
                            let at = Shard {
                                step,
                                seed,
                                replica: Some(index),
                                share,
                            };
                            shard(replica, items, device, at)
                        },
                    )?;
                    let sum = parts
                        .into_iter()
                        .fold(StepParts::default(), |sum, part| sum + part);
                    (grads, sum)
                } else {
                    let at = Shard {
                        step,
                        seed,
                        replica: None,
                        share: count as f32 / batch_size as f32,
                    };
                    // On a worker of Rayon's pool, as data-parallel replicas run: the
                    // kernels' parallel loops then run on that worker (and spread to idle
                    // ones) instead of being handed over from this thread and waited for.
                    let model = &mut self.model;
                    rayon::scope(|_| shard(model, items, &device, at))?
                };
                check_finite(parts.loss, spec.name, epoch, step, checkpoint.as_deref())?;
                self.model = self.optim.step(lr, self.model, grads);
                self.state.global_step += 1;
                for (sum, part) in
                    sums.iter_mut()
                        .zip([parts.loss, parts.detection, parts.distill, parts.gmac])
                {
                    *sum += f64::from(part);
                }
                self.log.step(&StepRecord {
                    stage: spec.name.to_string(),
                    epoch,
                    step,
                    loss: parts.loss,
                    detection: parts.detection,
                    distill: parts.distill,
                    lr,
                })?;
                progress.step(|| {
                    let images = (batch_index + 1) * batch_size * spec.images_per_item;
                    format!(
                        "epoch {}/{} loss {:.4}{} lr {:.5} {:.2} img/s",
                        epoch + 1,
                        settings.epochs,
                        parts.loss,
                        describe(step, &parts),
                        lr,
                        images as f64 / started.elapsed().as_secs_f64()
                    )
                });
            }
            let seconds = started.elapsed().as_secs_f64();
            let record = EpochRecord {
                stage: spec.name.to_string(),
                epoch,
                global_step: self.state.global_step,
                loss: (sums[0] / steps as f64) as f32,
                detection: (sums[1] / steps as f64) as f32,
                distill: (sums[2] / steps as f64) as f32,
                lr: schedule.lr_at(self.state.global_step.saturating_sub(1)),
                images_per_s: (steps * batch_size * spec.images_per_item) as f64 / seconds,
                seconds,
            };
            self.state.epochs_done = epoch + 1;
            self.state.last_loss = record.loss;
            let model = &self.model;
            checkpoint = Some(save_checkpoint_with(
                &stage_dir,
                &self.optim,
                &self.state,
                |dir| save(dir, model),
            )?);
            self.log.epoch(&record)?;
            tracing::info!(
                stage = spec.name,
                epoch = epoch + 1,
                loss = record.loss,
                mean_expected_gmac = sums[3] / steps as f64,
                images_per_s = record.images_per_s,
                seconds,
                "epoch done"
            );
            epochs.push(record);
        }
        let checkpoint = match checkpoint {
            Some(path) => path,
            // Zero epochs configured: checkpoint the initial model so later stages can start.
            None => {
                let model = &self.model;
                save_checkpoint_with(&stage_dir, &self.optim, &self.state, |dir| save(dir, model))?
            }
        };
        Ok(StageRun {
            model: self.model,
            checkpoint,
            finished: self.state.epochs_done >= settings.epochs,
            epochs,
        })
    }
}
