//! The real-data smoke test: a couple of hundred steps on the nine real UA-DETRAC frames of
//! `../shared/data/detrac-sample` (MVI_20011) with the small `configs/smoke.json` must drive
//! the loss down and detect the vehicles it trained on (AP50 on those frames far above
//! chance): the pipeline learns on real pixels, not only on synthetic ones.
//!
//! When the shared files are missing the test skips, except with `CI=true`, where it fails.

use std::path::PathBuf;

use ant_detrac::dataset::FrameDatasetConfig;
use ant_detrac::{DetracBatcher, FrameDataset, InputTransform, LoadedSequence};
use ant_eval::evaluate;
use ant_supernet::SubnetArch;
use ant_train::norms::recalibrate_norms;
use ant_train::trainer::calibration_batches;
use ant_train::{ModelInit, RunOptions, Stage, TrainConfig, TrainData, train_stage};
use burn::tensor::Device;

fn sample_dir() -> Option<PathBuf> {
    ant_fixtures::shared("data/detrac-sample")
}

#[test]
fn should_learn_to_detect_the_vehicles_of_the_nine_real_frames() {
    let Some(dir) = sample_dir() else { return };
    let config_path = manifest_dir().join("../../configs/smoke.json");
    let config = TrainConfig::load(&config_path, &[]).unwrap();
    let sequence =
        LoadedSequence::from_files(&dir.join("MVI_20011_v3.xml"), &dir.join("MVI_20011")).unwrap();
    let sequences = vec![sequence];
    let size = config.model.image_size as u32;
    let data = TrainData {
        dataset: FrameDataset::new(
            &sequences,
            FrameDatasetConfig {
                frame_step: 1,
                flip_probability: config.data.flip_probability,
                seed: config.seed,
            },
        )
        .unwrap(),
        batcher: DetracBatcher::new(InputTransform::new(size, size)),
    };
    let run_dir = std::env::temp_dir().join(format!("ant-train-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let options = RunOptions::new(run_dir.clone(), Device::flex());
    let started = std::time::Instant::now();
    let outcome = train_stage(
        &config,
        Stage::Standalone,
        &ModelInit::Scratch,
        &data,
        &options,
    )
    .unwrap();
    let train_seconds = started.elapsed().as_secs_f64();
    let first = outcome.epochs.first().unwrap().loss;
    let last = outcome.epochs.last().unwrap().loss;
    let steps = outcome.epochs.last().unwrap().global_step;
    let calibration = calibration_batches(
        &data,
        config.eval.recalibration_batches,
        2,
        config.seed,
        &Device::flex(),
    )
    .unwrap();
    let model = recalibrate_norms(&outcome.model, &SubnetArch::LARGEST, &calibration).unwrap();
    let report = evaluate(
        &model,
        &SubnetArch::LARGEST,
        &sequences,
        &dir,
        1,
        1,
        &Device::flex(),
    )
    .unwrap();
    eprintln!(
        "smoke: {steps} steps in {train_seconds:.1} s, loss {first:.3} -> {last:.3}, \
         AP {:.3} AP50 {:.3} on {} frames",
        report.ap, report.ap50, report.frames
    );
    assert!(run_dir.join("metrics.jsonl").is_file());
    assert!(run_dir.join("stage0-standalone/loss.svg").is_file());
    assert!(
        last < 0.5 * first,
        "loss did not drop enough: {first} -> {last}"
    );
    assert!(
        report.ap50 > 0.3,
        "AP50 {} on the training frames",
        report.ap50
    );
    let _ = std::fs::remove_dir_all(&run_dir);
}

#[test]
fn should_start_stage_zero_from_an_effdet_checkpoint_with_a_new_class_head() {
    let Some(dir) = sample_dir() else { return };
    let weights = dir.join("../../fixtures/effdet-d0/tf_efficientdet_d0_random.pth");
    let config_path = manifest_dir().join("../../configs/smoke.json");
    let overrides = [
        "model.preset=d0",
        "model.width_multiplier=1.0",
        "model.depth_multiplier=1.0",
        "model.anchor_scale=4.0",
        "model.image_size=128",
        "standalone.epochs=1",
        "standalone.max_steps_per_epoch=1",
    ]
    .map(String::from);
    let config = TrainConfig::load(&config_path, &overrides).unwrap();
    let sequence =
        LoadedSequence::from_files(&dir.join("MVI_20011_v3.xml"), &dir.join("MVI_20011")).unwrap();
    let data = TrainData {
        dataset: FrameDataset::new(&[sequence], FrameDatasetConfig::default()).unwrap(),
        batcher: DetracBatcher::new(InputTransform::new(128, 128)),
    };
    let run_dir = std::env::temp_dir().join(format!("ant-train-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let options = RunOptions::new(run_dir.clone(), Device::flex());
    let init = ModelInit::Effdet(weights);
    let outcome = train_stage(&config, Stage::Standalone, &init, &data, &options).unwrap();
    assert!(outcome.finished && outcome.epochs[0].loss.is_finite());
    // The 90-class COCO head became a 4-class head: 9 anchors x 4 classes per position.
    let [out_channels, _, _, _] = outcome
        .model
        .class_net
        .predict
        .pointwise
        .weight
        .val()
        .dims();
    assert_eq!(out_channels, 9 * 4);
    let _ = std::fs::remove_dir_all(&run_dir);
}

/// This package's directory, read when the test runs: a compile-time `env!` would keep the
/// path of whichever checkout last built the test binary when checkouts share a target
/// directory (as the README recommends), and the test would read that checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}
