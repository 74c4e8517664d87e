//! Resume exactness: a run stopped after its first epoch of each stage (0, 1 and the joint
//! stage 2, with drop path and Gumbel noise, two data-parallel replicas per step) and resumed
//! from the checkpoints ends with the same losses at every step and the same model as an
//! uninterrupted run: bit-identical on the flex CPU backend (a backend with non-deterministic reductions
//! would need a tolerance). A loss that turns non-finite stops training with an error naming
//! the last good checkpoint, which stays intact.

use std::path::{Path, PathBuf};

use ant_detrac::dataset::FrameDatasetConfig;
use ant_detrac::{
    ClipDataset, ClipDatasetConfig, DetracBatcher, FrameDataset, InputTransform, ReleaseLayout,
    Split, SynthConfig, load_split, write_dataset,
};
use ant_supernet::SubnetArch;
use ant_train::checkpoint::load_model;
use ant_train::joint::{JOINT_STAGE, train_joint};
use ant_train::metrics::read_epochs;
use ant_train::{ModelInit, RunOptions, Stage, TrainConfig, TrainData, train_stage};
use burn::tensor::{Device, Distribution, Tensor};

/// Burn's random initialisation draws from one process-wide generator per backend, seeded by
/// `device.seed`: tests that initialise models must not interleave, or the "same" seeded run
/// starts from other weights.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn small_config() -> TrainConfig {
    let path = manifest_dir().join("../../configs/default.json");
    let overrides = [
        "model.image_size=128",
        "standalone.epochs=2",
        "standalone.batch_size=2",
        "standalone.max_steps_per_epoch=2",
        "standalone.warmup_steps=2",
        "standalone.lr_milestones=[1]",
        "supernet.epochs=2",
        "supernet.batch_size=2",
        "supernet.max_steps_per_epoch=2",
        "standalone.drop_path=0.3",
        "supernet.drop_path=0.3",
        "joint.epochs=2",
        "joint.batch_size=2",
        "joint.max_steps_per_epoch=1",
        "joint.residual_fusion=true",
        // Two replicas per step: the data-parallel path, whose threads must not make the
        // run depend on their timing.
        "data_parallel=2",
    ]
    .map(String::from);
    TrainConfig::load(&path, &overrides).unwrap()
}

fn steps_csv(run_dir: &Path, stage: Stage) -> String {
    std::fs::read_to_string(run_dir.join(stage.name()).join("steps.csv")).unwrap()
}

#[test]
fn should_end_a_killed_and_resumed_run_identical_to_an_uninterrupted_one() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = std::env::temp_dir().join(format!("ant-train-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let synth = SynthConfig {
        sequences: 2,
        frames: 8,
        ..SynthConfig::default()
    };
    write_dataset(&synth, &root.join("data")).unwrap();
    let sequences = load_split(&ReleaseLayout::new(root.join("data")), Split::Train).unwrap();
    let config = small_config();
    let data = TrainData {
        dataset: FrameDataset::new(
            &sequences,
            FrameDatasetConfig {
                frame_step: 1,
                flip_probability: 0.5,
                seed: config.seed,
            },
        )
        .unwrap(),
        batcher: DetracBatcher::new(InputTransform::new(128, 128)),
    };
    let clips = ClipDataset::new(&sequences, ClipDatasetConfig::consecutive(3))
        .unwrap()
        .with_color_jitter(0.2);
    let options = |name: &str, resume: bool, stop: Option<usize>| RunOptions {
        resume,
        stop_after_epochs: stop,
        ..RunOptions::new(root.join(name), Device::flex())
    };
    let run = |name: &str, resume: bool, stop: Option<usize>| {
        let stage0 = train_stage(
            &config,
            Stage::Standalone,
            &ModelInit::Scratch,
            &data,
            &options(name, resume, stop),
        )
        .unwrap();
        if !stage0.finished {
            return None;
        }
        let init = ModelInit::Checkpoint(stage0.checkpoint.join("model.bpk"));
        let stage1 = train_stage(
            &config,
            Stage::Supernet,
            &init,
            &data,
            &options(name, resume, stop),
        )
        .unwrap();
        if !stage1.finished {
            return None;
        }
        let joint = train_joint(
            &config,
            &stage1.checkpoint.join("model.bpk"),
            &clips,
            &data.batcher,
            &options(name, resume, stop),
        )
        .unwrap();
        joint.finished.then_some(stage1.checkpoint)
    };
    let whole = run("whole", false, None).expect("an uninterrupted run finishes");
    // "Kill" after one epoch of each stage and resume.
    assert!(run("killed", false, Some(1)).is_none());
    assert!(run("killed", true, Some(1)).is_none());
    assert!(run("killed", true, Some(1)).is_none());
    let resumed = run("killed", true, None).expect("the resumed run finishes");
    let joint_steps = |name: &str| {
        std::fs::read_to_string(root.join(name).join(JOINT_STAGE).join("steps.csv")).unwrap()
    };
    assert_eq!(joint_steps("whole"), joint_steps("killed"), "joint steps");
    assert_eq!(
        joint_steps("whole").lines().count(),
        3,
        "header and two steps"
    );

    for stage in [Stage::Standalone, Stage::Supernet] {
        assert_eq!(
            steps_csv(&root.join("whole"), stage),
            steps_csv(&root.join("killed"), stage),
            "per-step losses and learning rates of {}",
            stage.name()
        );
    }
    let losses = |name: &str| -> Vec<(String, usize, f32)> {
        read_epochs(&root.join(name).join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .map(|r| (r.stage, r.epoch, r.loss))
            .collect()
    };
    assert_eq!(losses("whole"), losses("killed"));
    assert_eq!(losses("whole").len(), 6);

    let device = Device::flex();
    let a = load_model(&whole, &device).unwrap();
    let b = load_model(&resumed, &device).unwrap();
    device.seed(1);
    let input = Tensor::<4>::random([1, 3, 128, 128], Distribution::Default, &device);
    for arch in [SubnetArch::LARGEST, SubnetArch::SMALLEST] {
        let out_a = a.forward(input.clone(), &arch).unwrap();
        let out_b = b.forward(input.clone(), &arch).unwrap();
        for (x, y) in out_a
            .class
            .iter()
            .chain(&out_a.boxes)
            .zip(out_b.class.iter().chain(&out_b.boxes))
        {
            let difference: f32 = (x.clone() - y.clone()).abs().max().into_scalar();
            assert_eq!(difference, 0.0, "outputs differ by {difference}");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn should_stop_on_a_non_finite_loss_and_keep_the_last_good_checkpoint() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = std::env::temp_dir().join(format!("ant-train-nan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let synth = SynthConfig {
        sequences: 2,
        frames: 6,
        ..SynthConfig::default()
    };
    write_dataset(&synth, &root.join("data")).unwrap();
    let sequences = load_split(&ReleaseLayout::new(root.join("data")), Split::Train).unwrap();
    let config = small_config();
    let data = TrainData {
        dataset: FrameDataset::new(&sequences, FrameDatasetConfig::default()).unwrap(),
        batcher: DetracBatcher::new(InputTransform::new(128, 128)),
    };
    let options = |resume: bool, stop: Option<usize>| RunOptions {
        resume,
        stop_after_epochs: stop,
        ..RunOptions::new(root.join("run"), Device::flex())
    };
    let good = train_stage(
        &config,
        Stage::Standalone,
        &ModelInit::Scratch,
        &data,
        &options(false, Some(1)),
    )
    .unwrap();
    // An absurd learning rate from epoch 2 on makes the loss blow up.
    let mut exploding = config.clone();
    exploding.standalone.lr = 1e12;
    exploding.standalone.warmup_steps = 0;
    exploding.standalone.lr_milestones = vec![];
    exploding.standalone.epochs = 20;
    let error = train_stage(
        &exploding,
        Stage::Standalone,
        &ModelInit::Scratch,
        &data,
        &options(true, None),
    )
    .unwrap_err();
    match &error {
        ant_train::TrainError::NonFiniteLoss { last_good, .. } => {
            assert_eq!(PathBuf::from(last_good), good.checkpoint, "{error}")
        }
        other => panic!("expected a non-finite loss error, got {other}"),
    }
    assert!(good.checkpoint.join("model.bpk").is_file());
    assert!(load_model(&good.checkpoint, &Device::flex()).is_ok());
    let _ = std::fs::remove_dir_all(&root);
}

/// This package's directory, read when the test runs: a compile-time `env!` would keep the
/// path of whichever checkout last built the test binary when checkouts share a target
/// directory (as the README recommends), and the test would read that checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}

#[test]
fn should_refuse_to_resume_a_directory_without_a_run() {
    let root = std::env::temp_dir().join(format!("ant-train-no-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let options = |run_dir: PathBuf| RunOptions {
        resume: true,
        ..RunOptions::new(run_dir, Device::flex())
    };
    // A directory that does not exist: an error, and nothing is created or trained.
    let missing = root.join("typo");
    let error = ant_train::run_pipeline(&small_config(), &options(missing.clone())).unwrap_err();
    assert!(
        matches!(&error, ant_train::TrainError::NothingToResume { path } if *path == missing),
        "{error}"
    );
    assert!(error.to_string().contains("typo"), "{error}");
    assert!(!missing.exists());
    // An existing directory that holds no run: the same.
    let empty = root.join("empty");
    std::fs::create_dir_all(empty.join("stage0-standalone")).unwrap();
    assert!(matches!(
        ant_train::run_pipeline(&small_config(), &options(empty)),
        Err(ant_train::TrainError::NothingToResume { .. })
    ));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn should_refuse_a_second_training_on_a_run_directory_but_not_a_stale_lock() {
    let root = std::env::temp_dir().join(format!("ant-train-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let run_dir = root.join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    // A run to resume, saved with another config: a resume that gets past the lock stops at
    // the config check, before any data or training.
    let mut other = small_config();
    other.seed += 1;
    other.save(&run_dir.join("config.json")).unwrap();
    let options = RunOptions {
        resume: true,
        ..RunOptions::new(run_dir.clone(), Device::flex())
    };
    let lock_path = run_dir.join(ant_train::pipeline::LOCK_FILE);

    // Another training holds the lock: refused, naming the directory.
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    holder.lock().unwrap();
    let error = ant_train::run_pipeline(&small_config(), &options).unwrap_err();
    assert!(
        matches!(&error, ant_train::TrainError::RunInUse { path, .. } if *path == run_dir),
        "{error}"
    );

    // The holder is gone (as after a kill), its lock file left behind: not in the way.
    drop(holder);
    assert!(lock_path.is_file());
    let error = ant_train::run_pipeline(&small_config(), &options).unwrap_err();
    assert!(
        matches!(&error, ant_train::TrainError::ResumeMismatch { .. }),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
