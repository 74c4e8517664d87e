//! A run's models ([`RunModels`]) and the Table 1 runner ([`evaluate_run`]): the models of
//! every method loaded and recalibrated as the main job does, the test pass, the outputs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ant_detrac::{DetracBatcher, InputTransform, LoadedSequence, ReleaseLayout, Split, load_split};
use ant_metrics::detections_to_json_string;
use ant_supernet::checkpoint::write_atomic;
use ant_supernet::skipconv::SkipKernel;
use ant_supernet::{EfficientDet, SubnetArch};
use ant_temporal::{AntModel, Mode};
use ant_train::TrainConfig;
use ant_train::checkpoint::latest_checkpoint;
use ant_train::joint::{JOINT_STAGE, NON_TEMPORAL_STAGE, calibration_clips, recalibrate_joint};
use ant_train::norms::recalibrate_norms;
use ant_train::pipeline::{training_clips, training_frames};
use ant_train::trainer::{Stage, calibration_batches, checkpoint_model};
use burn::module::Module;
use burn::tensor::Device;

use crate::error::{EvalError, Result};
use crate::latency::median;
use crate::methods::{MethodRun, MethodSpec, non_temporal_run};
use crate::options::EvalOptions;
use crate::report::{RunEvaluation, write_outputs};
use crate::search::{run_search, validation_sequences};
use crate::streaming::stream_pass;
use crate::subnet::EvalGroundTruth;

/// The checkpoints of a run.
#[derive(Clone, Debug)]
pub struct RunModels {
    /// The run's config.
    pub config: TrainConfig,
    /// Stage 0's newest `model.bpk`.
    pub standalone: Option<PathBuf>,
    /// Stage 1's newest `model.bpk`.
    pub supernet: Option<PathBuf>,
    /// Stage 2's newest checkpoint directory (`model.bpk` + `model.temporal.bpk`).
    pub joint: Option<PathBuf>,
    /// The newest checkpoint directory of the non-temporal baseline trained beside ANT
    /// (`RUN/stage2-nontemporal`, `joint.non_temporal_baseline`).
    pub non_temporal: Option<PathBuf>,
}

impl RunModels {
    /// Finds the config and the newest checkpoint of each stage of `run_dir`.
    ///
    /// # Errors
    /// [`EvalError::NotFound`] naming the missing directory or file.
    pub fn locate(run_dir: &Path) -> Result<Self> {
        if !run_dir.is_dir() {
            return Err(EvalError::NotFound {
                what: "run directory".into(),
                path: run_dir.to_path_buf(),
            });
        }
        let config_path = run_dir.join("config.json");
        if !config_path.is_file() {
            return Err(EvalError::NotFound {
                what: "run config (not a `cargo xtask train` run directory?)".into(),
                path: config_path,
            });
        }
        let config = TrainConfig::load_run(run_dir)?;
        let newest_model = |stage: &str| -> Result<Option<PathBuf>> {
            let Some(checkpoint) = latest_checkpoint(&run_dir.join(stage))? else {
                return Ok(None);
            };
            let model = checkpoint_model(&checkpoint);
            if !model.is_file() {
                return Err(EvalError::NotFound {
                    what: format!("{stage} checkpoint model"),
                    path: model,
                });
            }
            Ok(Some(model))
        };
        let standalone = newest_model(Stage::Standalone.name())?;
        let supernet = newest_model(Stage::Supernet.name())?;
        let checkpoint_dir = |stage: &str| -> Result<Option<PathBuf>> {
            Ok(newest_model(stage)?.map(|model| {
                model
                    .parent()
                    .expect("a checkpoint model lies in its directory")
                    .to_path_buf()
            }))
        };
        let joint = checkpoint_dir(JOINT_STAGE)?;
        let non_temporal = checkpoint_dir(NON_TEMPORAL_STAGE)?;
        if standalone.is_none() && supernet.is_none() {
            return Err(EvalError::NotFound {
                what: "stage-0 or stage-1 checkpoint (epoch-NNNN/model.bpk with state.json)".into(),
                path: run_dir.join(Stage::Standalone.name()),
            });
        }
        Ok(Self {
            config,
            standalone,
            supernet,
            joint,
            non_temporal,
        })
    }
}

pub(crate) fn info(progress: bool, message: &str) {
    if progress {
        tracing::info!("{message}");
    }
}

/// Evaluates every method on the run and writes the outputs (see [`write_outputs`]).
///
/// # Errors
/// A missing run directory, config or checkpoint ([`EvalError::NotFound`]), unreadable
/// data, or a failing model.
pub fn evaluate_run(options: &EvalOptions) -> Result<RunEvaluation> {
    let started_all = Instant::now();
    let mut seconds = Vec::new();
    let mut notes = Vec::new();
    let models = RunModels::locate(&options.run_dir)?;
    let config = &models.config;
    let out_dir = options.out_dir();
    let device = &options.device;
    let root = options
        .data_root
        .clone()
        .unwrap_or_else(|| config.data.root.clone());
    if !root.is_dir() {
        return Err(EvalError::NotFound {
            what: "dataset root (pass --data DIR)".into(),
            path: root,
        });
    }
    let layout = ReleaseLayout::new(root.clone());
    let mut sequences = if options.validation {
        validation_sequences(
            &load_split(&layout, Split::Train)?,
            options.search.val_sequences,
        )
    } else {
        load_split(&layout, options.split)?
    };
    if let Some(limit) = options.max_sequences {
        sequences.truncate(limit);
    }
    if sequences.is_empty() {
        return Err(EvalError::NotFound {
            what: format!("{} sequences", options.split),
            path: root,
        });
    }
    let frame_step = options.frame_step.unwrap_or(config.data.test_frame_step);
    let ground_truth = EvalGroundTruth::new(&sequences, &root, frame_step)?;

    // Calibration batches, built exactly as the main job builds them.
    let started = Instant::now();
    let train_sequences = if options.split == Split::Train && !options.validation {
        Vec::new()
    } else {
        load_split(&layout, Split::Train)?
    };
    let recalibrate = config.eval.recalibration_batches > 0 && !train_sequences.is_empty();
    if config.eval.recalibration_batches > 0 && train_sequences.is_empty() {
        notes.push(
            "no training sequences to recalibrate batch norms on: running statistics used".into(),
        );
    }
    let size = config.model.image_size;
    let batcher = DetracBatcher::new(InputTransform::new(size as u32, size as u32));
    let calibration = if recalibrate {
        let data = training_frames(config, &train_sequences)?;
        calibration_batches(
            &data,
            config.eval.recalibration_batches,
            config.standalone.batch_size.max(2),
            config.seed,
            device,
        )?
    } else {
        Vec::new()
    };
    let recalibrated = |model: &EfficientDet, arch: &SubnetArch| -> Result<EfficientDet> {
        if recalibrate {
            // Untracked parameters: the autodiff backend then records no graph for the
            // calibration forwards (with tracked ones, each recalibration kept about 1.5 GB
            // of graph alive, no backward ever freeing it: 12 search subnets ran out of
            // memory). Batch norms still take their training path (their flag is separate).
            Ok(recalibrate_norms(
                &model.clone().no_grad(),
                arch,
                &calibration,
            )?)
        } else {
            Ok(model.clone())
        }
    };
    seconds.push(("calibration-data".into(), started.elapsed().as_secs_f64()));

    let mut runs = Vec::new();
    // static-full.
    let started = Instant::now();
    let (full_path, full_stage) = match (&models.standalone, &models.supernet) {
        (Some(path), _) => (path.clone(), "stage 0"),
        (None, Some(path)) => (path.clone(), "stage 1 (no stage 0 in this run)"),
        (None, None) => unreachable!("RunModels::locate checks one exists"),
    };
    let full = EfficientDet::load(&full_path, device)?;
    let full_params = full.cost(&SubnetArch::LARGEST).total.params;
    let full = recalibrated(&full, &SubnetArch::LARGEST)?;
    let full_source = format!("{} ({full_stage})", full_path.display());
    runs.push(MethodRun::new(
        MethodSpec {
            name: "static-full".into(),
            family: "static-full",
            source: full_source.clone(),
            threshold: None,
            arch: Some(SubnetArch::LARGEST),
            params: full_params,
        },
        full.clone(),
        None,
        Mode::static_full(),
    )?);
    // D0 w/ Skip-Conv: the same network, each threshold with both kernels.
    let mut skipconv_thresholds = options.skipconv_thresholds.clone();
    skipconv_thresholds.sort_by(f32::total_cmp);
    skipconv_thresholds.dedup();
    if !skipconv_thresholds.is_empty() && (device.is_autodiff() || *device != Device::flex()) {
        notes.push(format!(
            "Skip-Conv runs on the CPU engine only: no skipconv rows on {device:?}"
        ));
    } else {
        for threshold in skipconv_thresholds {
            for (name, family, kernel) in [
                ("skipconv", "skipconv", SkipKernel::Dense),
                ("skipconv-sparse", "skipconv-sparse", SkipKernel::Sparse),
            ] {
                runs.push(MethodRun::new(
                    MethodSpec {
                        name: format!("{name}@{threshold}"),
                        family,
                        source: full_source.clone(),
                        threshold: Some(threshold),
                        arch: Some(SubnetArch::LARGEST),
                        params: full_params,
                    },
                    full.clone(),
                    None,
                    Mode::skip_conv(threshold, kernel),
                )?);
            }
        }
    }
    drop(full);

    // The static subnet search on the validation split.
    let mut search_report = None;
    if let Some(supernet_path) = &models.supernet {
        if options.search.samples > 0 {
            let supernet = EfficientDet::load(supernet_path, device)?;
            let (report, front) = run_search(
                &supernet,
                &recalibrated,
                &train_sequences,
                &root,
                frame_step,
                options,
                &out_dir,
            )?;
            for arch in front {
                runs.push(MethodRun::new(
                    MethodSpec {
                        name: format!("static-nas@{arch}"),
                        family: "static-nas",
                        source: format!("{} (stage 1)", supernet_path.display()),
                        threshold: None,
                        arch: Some(arch),
                        params: supernet.cost(&arch).total.params,
                    },
                    recalibrated(&supernet, &arch)?,
                    None,
                    Mode::static_subnet(arch),
                )?);
            }
            search_report = report;
        } else {
            notes.push("static subnet search disabled (--search-samples 0)".into());
        }
    } else {
        notes.push("no stage-1 supernet in the run: no static subnet search".into());
    }
    seconds.push(("search".into(), started.elapsed().as_secs_f64()));

    // Stage 2: ANT or the non-temporal dynamic network.
    let started = Instant::now();
    let joint_inputs = JointInputs {
        train_sequences: &train_sequences,
        batcher,
        recalibrate,
        device,
    };
    if let Some(joint_dir) = &models.joint {
        let joint = load_recalibrated_joint(joint_dir, config, &joint_inputs)?;
        let joint_settings = &config.joint;
        let source = format!("{} (stage 2)", joint_dir.display());
        if joint_settings.non_temporal {
            runs.push(non_temporal_run(&joint, source)?);
            notes.push("stage 2 trained the non-temporal dynamic network: no ANT methods".into());
        } else {
            let detector_params = joint.detector.cost(&SubnetArch::LARGEST).total.params;
            let params = detector_params + joint.temporal.num_params() as u64;
            let interval = joint_settings.clip_len.max(1);
            let mut temporal_methods = vec![(
                format!("ant-fixed{interval}"),
                "ant-fixed",
                None,
                Mode::fixed_interval(interval),
            )];
            // Where AP is lost between the supernet and ANT: the same key frames with the
            // non-key frames at fixed widths (fusion without gates), the widest and the
            // narrowest.
            for arch in [SubnetArch::LARGEST, SubnetArch::SMALLEST] {
                temporal_methods.push((
                    format!("ant-fixed{interval}+width@{arch}"),
                    "ant-ablation",
                    None,
                    Mode::fixed_interval(interval).with_fixed_width(arch),
                ));
            }
            let mut thresholds = options.thresholds.clone();
            thresholds.sort_by(f32::total_cmp);
            thresholds.dedup();
            for threshold in thresholds {
                temporal_methods.push((
                    format!("ant-adaptive@{threshold}"),
                    "ant-adaptive",
                    Some(threshold),
                    Mode::adaptive(threshold),
                ));
            }
            for (name, family, threshold, mode) in temporal_methods {
                runs.push(MethodRun::new(
                    MethodSpec {
                        name,
                        family,
                        source: source.clone(),
                        threshold,
                        arch: None,
                        params,
                    },
                    joint.detector.clone(),
                    Some(joint.temporal.clone()),
                    mode,
                )?);
            }
        }
    } else {
        notes.push("no stage-2 checkpoint in the run: ANT methods skipped".into());
    }
    match &options.non_temporal_run {
        Some(other_dir) => {
            let other = RunModels::locate(other_dir)?;
            let joint_dir = other.joint.ok_or_else(|| EvalError::NotFound {
                what: "stage-2 checkpoint of the non-temporal run".into(),
                path: other_dir.join(JOINT_STAGE),
            })?;
            if !other.config.joint.non_temporal {
                return Err(EvalError::InvalidRun {
                    path: other_dir.clone(),
                    reason: "it trained ANT, not the non-temporal network (its \
                             joint.non_temporal is false)"
                        .into(),
                });
            }
            let joint = load_recalibrated_joint(&joint_dir, &other.config, &joint_inputs)?;
            runs.push(non_temporal_run(
                &joint,
                format!("{} (stage 2, non-temporal run)", joint_dir.display()),
            )?);
        }
        None if !config.joint.non_temporal => match &models.non_temporal {
            Some(joint_dir) => {
                let mut baseline = config.clone();
                baseline.joint.non_temporal = true;
                let joint = load_recalibrated_joint(joint_dir, &baseline, &joint_inputs)?;
                runs.push(non_temporal_run(
                    &joint,
                    format!("{} (stage 2, non-temporal baseline)", joint_dir.display()),
                )?);
            }
            None => notes.push(
                "no non-temporal dynamic network: train one beside ANT \
                 (`--set joint.non_temporal_baseline=true`) or in its own run \
                 (`--set joint.non_temporal=true`, passed with --non-temporal-run)"
                    .into(),
            ),
        },
        None => {}
    }
    seconds.push(("load-temporal".into(), started.elapsed().as_secs_f64()));

    let started = Instant::now();
    info(
        options.progress,
        &format!(
            "streaming {} sequences through {} methods",
            sequences.len(),
            runs.len()
        ),
    );
    let decode_ms = stream_pass(
        &mut runs,
        &sequences,
        &ground_truth,
        size,
        options.warmup_frames,
        false,
        device,
    )?;
    seconds.push(("test-pass".into(), started.elapsed().as_secs_f64()));

    std::fs::create_dir_all(out_dir.join("detections"))
        .map_err(|source| EvalError::io(out_dir.join("detections"), source))?;
    let mut methods = Vec::new();
    for run in &runs {
        let report = run.report(&ground_truth)?;
        write_atomic(
            &out_dir.join(&report.detections_file),
            detections_to_json_string(&run.detections).as_bytes(),
        )?;
        info(
            options.progress,
            &format!(
                "{}: AP {:.3} AP50 {:.3} GMAC {:.3} {:.1} ms key rate {:.3}",
                report.name, report.ap, report.ap50, report.gmac, report.ms, report.key_rate
            ),
        );
        methods.push(report);
    }
    let first = &runs[0];
    seconds.push(("total".into(), started_all.elapsed().as_secs_f64()));
    let evaluation = RunEvaluation {
        run_dir: options.run_dir.display().to_string(),
        data_root: root.display().to_string(),
        split: if options.validation {
            format!("val ({} training sequences)", sequences.len())
        } else {
            options.split.to_string()
        },
        sequences: sequences.iter().map(|s| s.paths.name.clone()).collect(),
        frames: first.frames,
        scored_frames: first.scored,
        frame_step,
        image_size: size,
        threads: options.threads,
        device: format!("{device:?}"),
        decode_ms_median: median(&decode_ms),
        decode_ms_mean: decode_ms.iter().sum::<f64>() / decode_ms.len().max(1) as f64,
        warmup_frames: options.warmup_frames,
        methods,
        search: search_report,
        notes,
        seconds,
    };
    write_outputs(&evaluation, &out_dir)?;
    Ok(evaluation)
}

/// What loading a stage-2 model for evaluation needs.
struct JointInputs<'a> {
    train_sequences: &'a [LoadedSequence],
    batcher: DetracBatcher,
    recalibrate: bool,
    device: &'a Device,
}

/// Loads a stage-2 checkpoint and recalibrates its fusion norms as the main job does (the
/// same calibration clips of `config`), with untracked parameters.
fn load_recalibrated_joint(
    joint_dir: &Path,
    config: &TrainConfig,
    inputs: &JointInputs,
) -> Result<AntModel> {
    let joint = AntModel::load(joint_dir, inputs.device)?;
    if !inputs.recalibrate {
        return Ok(joint);
    }
    let settings = &config.joint;
    let clips = training_clips(config, inputs.train_sequences)?;
    let pairs = calibration_clips(&clips, &inputs.batcher, config, inputs.device)?;
    Ok(recalibrate_joint(
        &joint.no_grad(),
        &pairs,
        settings.non_temporal,
    )?)
}
