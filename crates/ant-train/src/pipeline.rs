//! The main job's training: prepare the data (generate the synthetic UA-DETRAC-format set
//! when it is missing), train stages 0, 1 and 2, and hand the trained models over for
//! evaluation (`ant-eval`'s `summarize` writes `summary.json`; `cargo xtask train` runs both).

use std::path::{Path, PathBuf};

use ant_detrac::dataset::FrameDatasetConfig;
use ant_detrac::{
    ClipDataset, ClipDatasetConfig, DetracBatcher, FrameDataset, InputTransform, LoadedSequence,
    ReleaseLayout, Split, SynthConfig, SynthSummary, load_split, write_dataset,
};
use ant_supernet::EfficientDet;
use ant_temporal::AntModel;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Tensor};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::joint::{JOINT_STAGE, NON_TEMPORAL_STAGE, calibration_clips, train_joint_into};
use crate::norms::recalibrate_supernet;
use crate::trainer::{
    ModelInit, RunOptions, Stage, TrainData, calibration_batches, checkpoint_model,
    steps_per_epoch, train_stage,
};

/// One trained stage-2 variant.
#[derive(Debug)]
pub struct TrainedJoint {
    /// Its stage directory name ([`JOINT_STAGE`] or [`NON_TEMPORAL_STAGE`]).
    pub stage: &'static str,
    /// The config it trained with (the non-temporal baseline sets `joint.non_temporal`).
    pub config: TrainConfig,
    /// The trained model, on the plain device.
    pub model: AntModel,
    /// Its batch-norm calibration clips (key frames, non-key frames), as
    /// [`calibration_clips`] draws them for this variant.
    pub calibration: Vec<(Tensor<4>, Tensor<4>)>,
}

/// What the main job's training produced: the trained models (plain device), the data their
/// evaluation reuses, and the run directory's lock, held until the outcome is dropped (so no
/// other training starts on the directory while the models are evaluated).
#[derive(Debug)]
pub struct PipelineOutcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Wall-clock seconds per phase (`data`, stage names, `recalibrate-supernet`).
    pub seconds: Vec<(String, f64)>,
    /// Stage 0's detector, when the config trains it.
    pub standalone: Option<EfficientDet>,
    /// Stage 1's supernet (before the recalibration stage 2 starts from).
    pub supernet: Option<EfficientDet>,
    /// Stage 2: ANT, then the non-temporal baseline when it is trained beside it.
    pub joint: Vec<TrainedJoint>,
    /// The batch-norm calibration batches of stages 0 and 1 (`eval.recalibration_batches`
    /// training batches without augmentation).
    pub calibration: Vec<Tensor<4>>,
    /// The test split.
    pub test_sequences: Vec<LoadedSequence>,
    lock: std::fs::File,
}

impl PipelineOutcome {
    /// Releases the run directory's lock (dropping the outcome does the same).
    pub fn unlock(self) {
        drop(self.lock);
    }
}

/// Makes sure the dataset exists, generating the synthetic one when allowed. A synthetic set
/// already at `data.root` (it has a `synth.json`) must have been generated with the config's
/// generator options: training on a stale set would silently change the experiment.
pub fn prepare_data(config: &TrainConfig) -> Result<ReleaseLayout> {
    let root = &config.data.root;
    let synth = SynthConfig {
        sequences: config.data.synth_sequences,
        frames: config.data.synth_frames,
        zoom: config.data.synth_zoom,
        ..SynthConfig::default()
    };
    let summary_path = root.join("synth.json");
    if config.data.synthesize_if_missing && summary_path.is_file() {
        let text = std::fs::read_to_string(&summary_path)
            .map_err(|source| TrainError::io(&summary_path, source))?;
        let existing: SynthSummary =
            serde_json::from_str(&text).map_err(|error| TrainError::InvalidConfig {
                reason: format!(
                    "{}: not a synthetic set summary: {error}",
                    summary_path.display()
                ),
            })?;
        if existing.config != synth {
            return Err(TrainError::InvalidConfig {
                reason: format!(
                    "{} holds a synthetic set generated with {:?}, the config asks for {:?}: \
                     delete the directory to regenerate it, or point data.root elsewhere",
                    root.display(),
                    existing.config,
                    synth
                ),
            });
        }
    }
    if !root.exists() {
        if !config.data.synthesize_if_missing {
            return Err(TrainError::InvalidConfig {
                reason: format!(
                    "data.root {} does not exist (set data.synthesize_if_missing=true to \
                     generate the synthetic set)",
                    root.display()
                ),
            });
        }
        tracing::info!(root = %root.display(), "generating the synthetic dataset");
        write_dataset(&synth, root)?;
    }
    Ok(ReleaseLayout::new(root.clone()))
}

/// The training frames of stages 0 and 1 and their batcher, as the config asks (frame step,
/// flips, colour jitter, input size). Calibration batches read the same items without the
/// augmentation.
pub fn training_frames(config: &TrainConfig, sequences: &[LoadedSequence]) -> Result<TrainData> {
    let size = config.model.image_size as u32;
    Ok(TrainData {
        dataset: FrameDataset::new(
            sequences,
            FrameDatasetConfig {
                frame_step: config.data.train_frame_step,
                flip_probability: config.data.flip_probability,
                seed: config.seed,
            },
        )?
        .with_color_jitter(config.data.color_jitter),
        batcher: DetracBatcher::new(InputTransform::new(size, size)),
    })
}

/// The training clips of the joint stage: non-overlapping runs of `joint.clip_len`
/// consecutive frames (the fixed 1-in-`clip_len` key-frame schedule), flipped and jittered
/// per clip.
pub fn training_clips(config: &TrainConfig, sequences: &[LoadedSequence]) -> Result<ClipDataset> {
    let clip_len = config.joint.clip_len;
    Ok(ClipDataset::new(
        sequences,
        ClipDatasetConfig {
            clip_len,
            frame_gap: config.joint.frame_gap,
            clip_step: config
                .joint
                .clip_step
                .unwrap_or(clip_len as u32 * config.joint.frame_gap),
            flip_probability: config.data.flip_probability,
            seed: config.seed,
        },
    )?
    .with_color_jitter(config.data.color_jitter))
}

/// The name of a run directory's lock file.
pub const LOCK_FILE: &str = ".lock";

/// Takes the run directory's exclusive lock (an OS file lock on [`LOCK_FILE`], held while the
/// returned file lives): a second training on the same directory is refused, and the lock of
/// a killed training goes with its process, so a resume is never blocked by a stale one.
fn lock_run(run_dir: &Path) -> Result<std::fs::File> {
    let path = run_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| TrainError::io(&path, source))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::RunInUse {
            path: run_dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(TrainError::io(&path, source)),
    }
}

/// Whether any stage directory of `run_dir` holds a complete checkpoint.
fn has_checkpoint(run_dir: &Path) -> bool {
    std::fs::read_dir(run_dir).is_ok_and(|entries| {
        entries.flatten().any(|stage| {
            crate::checkpoint::list_checkpoints(&stage.path()).is_ok_and(|found| !found.is_empty())
        })
    })
}

/// Trains stages 0, 1 and 2 (as enabled) into `options.run_dir` and returns the trained
/// models for evaluation.
///
/// # Errors
/// [`TrainError::NothingToResume`] when `options.resume` is set and the directory holds
/// no run, [`TrainError::RunInUse`] when another training holds its lock; besides every
/// error of data preparation and training.
pub fn run_pipeline(config: &TrainConfig, options: &RunOptions) -> Result<PipelineOutcome> {
    let run_dir = &options.run_dir;
    let config_path = run_dir.join("config.json");
    if options.resume && !config_path.is_file() && !has_checkpoint(run_dir) {
        return Err(TrainError::NothingToResume {
            path: run_dir.clone(),
        });
    }
    std::fs::create_dir_all(run_dir).map_err(|source| TrainError::io(run_dir, source))?;
    let lock = lock_run(run_dir)?;
    if options.resume && config_path.is_file() {
        let saved = TrainConfig::load_run(run_dir)?;
        if &saved != config {
            return Err(TrainError::ResumeMismatch {
                path: config_path,
                reason: "the run was started with another config".into(),
            });
        }
    }
    config.save(&config_path)?;
    let mut seconds = Vec::new();
    let started = std::time::Instant::now();
    let layout = prepare_data(config)?;
    let train_sequences = load_split(&layout, Split::Train)?;
    let test_sequences = load_split(&layout, Split::Test)?;
    let data = training_frames(config, &train_sequences)?;
    seconds.push(("data".to_string(), started.elapsed().as_secs_f64()));

    let calibration = calibration_batches(
        &data,
        config.eval.recalibration_batches,
        config.standalone.batch_size.max(2),
        config.seed,
        &options.device,
    )?;
    // The job's length for its progress bar: every step of every stage it trains, and the
    // joint stage's clips once (they index the training sequences, decoding nothing).
    let clips = if config.joint.stage.enabled {
        Some(training_clips(config, &train_sequences)?)
    } else {
        None
    };
    let joint_variants =
        1 + usize::from(config.joint.non_temporal_baseline && !config.joint.non_temporal);
    let stage_steps = |len: usize, stage: &crate::config::StageSettings, enabled: bool| {
        if enabled {
            (steps_per_epoch(len, stage) * stage.epochs) as u64
        } else {
            0
        }
    };
    let job_steps = stage_steps(
        data.dataset.len(),
        &config.standalone,
        config.standalone.enabled,
    ) + stage_steps(
        data.dataset.len(),
        &config.supernet.stage,
        config.supernet.stage.enabled,
    ) + joint_variants as u64
        * clips.as_ref().map_or(0, |clips| {
            stage_steps(clips.len(), &config.joint.stage, true)
        });
    options.progress.set_job(job_steps, 0);
    let mut standalone = None;
    let mut supernet = None;
    let mut previous: Option<PathBuf> = None;
    if config.standalone.enabled {
        let started = std::time::Instant::now();
        let init = config
            .init
            .clone()
            .map_or(ModelInit::Scratch, ModelInit::Effdet);
        let outcome = train_stage(config, Stage::Standalone, &init, &data, options)?;
        seconds.push((
            Stage::Standalone.name().into(),
            started.elapsed().as_secs_f64(),
        ));
        previous = Some(checkpoint_model(&outcome.checkpoint));
        standalone = Some(outcome.model);
    }
    if config.supernet.stage.enabled {
        let started = std::time::Instant::now();
        let init = previous.map_or(ModelInit::Scratch, ModelInit::Checkpoint);
        let outcome = train_stage(config, Stage::Supernet, &init, &data, options)?;
        seconds.push((
            Stage::Supernet.name().into(),
            started.elapsed().as_secs_f64(),
        ));
        // Stage 2 starts from the supernet with statistics recalibrated for every ratio, the
        // shared ones for the full network (the key-frame path), not from the slowly updated
        // running statistics.
        let started = std::time::Instant::now();
        let recalibrated = recalibrate_supernet(&outcome.model, &calibration)?;
        let path = options
            .run_dir
            .join(Stage::Supernet.name())
            .join("recalibrated.bpk");
        recalibrated.save(&path)?;
        previous = Some(path);
        supernet = Some(outcome.model);
        seconds.push((
            "recalibrate-supernet".into(),
            started.elapsed().as_secs_f64(),
        ));
    }
    let mut joint = Vec::new();
    if config.joint.stage.enabled {
        let init = previous.ok_or_else(|| TrainError::InvalidConfig {
            reason: "the joint stage starts from stage 1: enable supernet (or standalone)".into(),
        })?;
        let clips = clips.expect("built above when the joint stage is enabled");
        let mut variants = vec![(JOINT_STAGE, config.clone())];
        if config.joint.non_temporal_baseline && !config.joint.non_temporal {
            let mut baseline = config.clone();
            baseline.joint.non_temporal = true;
            variants.push((NON_TEMPORAL_STAGE, baseline));
        }
        for (stage, variant) in variants {
            let started = std::time::Instant::now();
            let outcome = train_joint_into(stage, &variant, &init, &clips, &data.batcher, options)?;
            seconds.push((stage.into(), started.elapsed().as_secs_f64()));
            let calibration = calibration_clips(&clips, &data.batcher, &variant, &options.device)?;
            joint.push(TrainedJoint {
                stage,
                config: variant,
                model: outcome.model,
                calibration,
            });
        }
    }
    Ok(PipelineOutcome {
        run_dir: run_dir.clone(),
        seconds,
        standalone,
        supernet,
        joint,
        calibration,
        test_sequences,
        lock,
    })
}

/// Writes an untrained run (random weights, seeded by the config) with the layout of
/// `cargo xtask train`: `config.json`, one checkpoint per stage (`epoch-0001/model.bpk` +
/// `state.json`; stage 2 also `model.temporal.bpk`). For tests, and for timing the
/// evaluation without training first.
pub fn write_untrained_run(run_dir: &Path, config: &TrainConfig, device: &Device) -> Result<()> {
    std::fs::create_dir_all(run_dir).map_err(|source| TrainError::io(run_dir, source))?;
    config.save(&run_dir.join("config.json"))?;
    let detector_config = config.model.detector_config()?;
    let model = EfficientDet::init(&detector_config, device);
    for stage in [
        Stage::Standalone.name(),
        Stage::Supernet.name(),
        JOINT_STAGE,
    ] {
        let checkpoint = run_dir.join(stage).join("epoch-0001");
        let model_path = checkpoint_model(&checkpoint);
        model.save(&model_path)?;
        if stage == JOINT_STAGE {
            let temporal = crate::joint::temporal_config(&config.joint)
                .init(&detector_config.backbone, device);
            temporal.save(&ant_temporal::temporal_path(&model_path))?;
        }
        let state = crate::checkpoint::TrainState {
            stage: stage.to_string(),
            epochs_done: 1,
            global_step: 0,
            seed: config.seed,
            last_loss: 0.0,
        };
        let text = serde_json::to_string_pretty(&state).expect("a train state always serialises");
        ant_supernet::checkpoint::write_atomic(&checkpoint.join("state.json"), text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This package's directory, read when the test runs: a compile-time `env!` would keep the
    /// path of whichever checkout last built the test binary when checkouts share a target
    /// directory (as the README recommends), and the test would read that checkout's files.
    fn manifest_dir() -> std::path::PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
            .into()
    }

    #[test]
    fn should_generate_a_missing_set_and_refuse_one_generated_otherwise() {
        let root = std::env::temp_dir().join(format!("ant-prepare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let path = manifest_dir().join("../../configs/default.json");
        let mut config = TrainConfig::load(&path, &[]).unwrap();
        config.data.root = root.clone();
        config.data.synth_sequences = 2;
        config.data.synth_frames = 2;
        prepare_data(&config).unwrap();
        assert!(root.join("synth.json").is_file());
        // The same options reuse it.
        prepare_data(&config).unwrap();
        config.data.synth_zoom += 0.25;
        let error = prepare_data(&config).unwrap_err().to_string();
        assert!(error.contains("delete the directory"), "{error}");
        assert!(error.contains(&root.display().to_string()), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
