//! The same training on two backends. From one initial checkpoint, one step of each stage
//! (0: the standalone detector, 1: the supernet with the sandwich rule, 2: fusion + gates with
//! Gumbel noise) on the reference device and on the other gives the same loss, and every
//! parameter moves the same way: the step's update (for a first SGD step, the learning rate
//! times the gradient plus weight decay) agrees within max|diff| / max|ref| <= 1e-4 per tensor.
//! Every random draw of a step (data order, subnets, drop-path masks, Gumbel noise) is made on
//! the host, so both backends draw the same.
//!
//! `ANT_BACKENDS_VERBOSE=1` prints every tensor's update and gap; `ANT_BACKENDS_DROP_PATH`
//! overrides stage 0's drop-path rate (0.2).
//!
//! With the `wgpu` feature the other device is wgpu (a software Vulkan adapter works at this
//! tiny shape; the first step compiles its kernels for minutes, and autotuning is off):
//! `cargo test --release -p ant-train --features wgpu --test backends`. Without it the other
//! device is a second flex run, which checks the harness and that a step is deterministic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ant_detrac::{ClipDataset, ReleaseLayout, Split, SynthConfig, load_split, write_dataset};
use ant_supernet::EfficientDet;
use ant_temporal::AntModel;
use ant_train::checkpoint::{TrainState, save_checkpoint_with};
use ant_train::joint::{JOINT_STAGE, temporal_config, train_joint};
use ant_train::metrics::read_epochs;
use ant_train::pipeline::{training_clips, training_frames};
use ant_train::trainer::{checkpoint_model, optimizer};
use ant_train::{ModelInit, RunOptions, Stage, TrainConfig, TrainData, train_stage};
use burn::store::ModuleSnapshot;
use burn::store::bridge::to_data;
use burn::tensor::Device;

const SIZE: usize = 128;

fn other_device() -> Device {
    #[cfg(feature = "wgpu")]
    {
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
    }
    #[cfg(not(feature = "wgpu"))]
    {
        Device::flex()
    }
}

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}

/// The default config at 128 px, one replica, one step of batch 2 per stage.
fn tiny_config() -> TrainConfig {
    let path = manifest_dir().join("../../configs/default.json");
    let overrides = [
        format!("model.image_size={SIZE}"),
        "data_parallel=1".into(),
        "standalone.epochs=1".into(),
        "standalone.batch_size=2".into(),
        "standalone.max_steps_per_epoch=1".into(),
        format!(
            "standalone.drop_path={}",
            std::env::var("ANT_BACKENDS_DROP_PATH").unwrap_or("0.2".into())
        ),
        "supernet.epochs=1".into(),
        "supernet.batch_size=2".into(),
        "supernet.max_steps_per_epoch=1".into(),
        "supernet.drop_path=0.2".into(),
        "joint.epochs=1".into(),
        "joint.batch_size=2".into(),
        "joint.max_steps_per_epoch=1".into(),
    ];
    TrainConfig::load(&path, &overrides).unwrap()
}

/// Every float tensor of a module, by name.
/// Tensors by name.
type Tensors = BTreeMap<String, Vec<f32>>;

fn tensors(module: &impl ModuleSnapshot) -> Tensors {
    module
        .collect(None, None, false)
        .iter()
        .filter_map(|tensor| {
            let values = to_data(tensor).ok()?.try_to_vec::<f32>().ok()?;
            Some((tensor.name.clone(), values))
        })
        .collect()
}

/// `max |(after_b - before) - (after_a - before)| / max |after_a - before|` per tensor, the
/// worst over tensors that moved.
fn worst_update_gap(before: &Tensors, after_a: &Tensors, after_b: &Tensors) -> (f32, String) {
    let update = |name: &String, start: &Vec<f32>| {
        after_a[name]
            .iter()
            .zip(start)
            .map(|(a, s)| (a - s).abs())
            .fold(0.0, f32::max)
    };
    // Tensors whose update is below 1e-4 of the step's largest (a convolution's bias before a
    // batch norm, whose gradient is zero in exact arithmetic; running statistics of unused
    // ratios) hold rounding noise: their relative gap means nothing.
    let floor = 1e-4 * before.iter().map(|(n, s)| update(n, s)).fold(0.0, f32::max);
    let mut worst = (0.0f32, String::new());
    let mut moved = 0;
    for (name, start) in before {
        let (a, b) = (&after_a[name], &after_b[name]);
        let reference = update(name, start);
        if reference == 0.0 || reference < floor {
            continue;
        }
        moved += 1;
        let gap_abs = a
            .iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        if std::env::var_os("ANT_BACKENDS_VERBOSE").is_some() {
            eprintln!(
                "{name}: update {reference:e}, gap {gap_abs:e}, ratio {:e}",
                gap_abs / reference
            );
        }
        let gap = a
            .iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        if gap / reference > worst.0 {
            worst = (gap / reference, name.clone());
        }
    }
    if std::env::var_os("ANT_BACKENDS_VERBOSE").is_some() {
        eprintln!("{moved} tensors moved above the floor {floor:e}");
    }
    assert!(
        moved > 10,
        "only {moved} tensors moved: the step trained nothing"
    );
    worst
}

fn relative(a: f32, b: f32) -> f32 {
    (a - b).abs() / a.abs().max(1e-12)
}

struct Setup {
    root: PathBuf,
    config: TrainConfig,
    data: TrainData,
    clips: ClipDataset,
}

fn setup(name: &str) -> Setup {
    let root = std::env::temp_dir().join(format!("ant-backends-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let synth = SynthConfig {
        sequences: 2,
        frames: 9,
        ..SynthConfig::default()
    };
    write_dataset(&synth, &root.join("data")).unwrap();
    let sequences = load_split(&ReleaseLayout::new(root.join("data")), Split::Train).unwrap();
    let config = tiny_config();
    let data = training_frames(&config, &sequences).unwrap();
    let clips = training_clips(&config, &sequences).unwrap();
    // One initial checkpoint, written once and loaded by both backends; seeded, so the test
    // starts from the same weights on every run (unseeded, one start in a few made a step
    // whose largest update dwarfed all but 6 tensors).
    let detector = config.model.detector_config().unwrap();
    let device = Device::flex();
    device.seed(config.seed);
    EfficientDet::init(&detector, &device)
        .save(&root.join("init.bpk"))
        .unwrap();
    Setup {
        root,
        config,
        data,
        clips,
    }
}

/// The mean losses of `stage`'s epochs in `run_dir` (each epoch is one step here).
fn losses(run_dir: &Path, stage: &str) -> Vec<f32> {
    read_epochs(&run_dir.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|epoch| epoch.stage == stage)
        .map(|epoch| epoch.loss)
        .collect()
}

fn detector_tensors(model: &Path) -> Tensors {
    tensors(&EfficientDet::load(model, &Device::flex()).unwrap())
}

fn ant_tensors(dir: &Path) -> Tensors {
    tensors(&AntModel::load(dir, &Device::flex()).unwrap())
}

/// Checks one stage's step on both devices from the same start.
fn compare(stage: &str, start: &Tensors, runs: [(Vec<f32>, Tensors); 2]) {
    let [(ref_losses, ref_after), (other_losses, other_after)] = runs;
    assert_eq!(ref_losses.len(), other_losses.len(), "{stage}");
    for (a, b) in ref_losses.iter().zip(&other_losses) {
        assert!(relative(*a, *b) <= 1e-4, "{stage}: loss {a} vs {b}");
    }
    let (gap, name) = worst_update_gap(start, &ref_after, &other_after);
    assert!(
        gap <= 1e-4,
        "{stage}: the update of {name} differs by {gap:e}"
    );
}

#[test]
fn should_take_the_same_step_of_every_stage_on_both_backends() {
    let setup = setup("step");
    let devices = [Device::flex(), other_device()];
    let run_dir = |index: usize| setup.root.join(format!("run{index}"));
    let options = |index: usize| RunOptions::new(run_dir(index), devices[index].clone());
    // One stage's step on both devices from `init`; the models they end with.
    let both = |stage: Stage, init: &Path| -> [PathBuf; 2] {
        [0, 1].map(|index| {
            let init = ModelInit::Checkpoint(init.to_path_buf());
            let outcome =
                train_stage(&setup.config, stage, &init, &setup.data, &options(index)).unwrap();
            checkpoint_model(&outcome.checkpoint)
        })
    };
    let runs = |stage: &str, models: &[PathBuf; 2], tensors: &dyn Fn(&Path) -> Tensors| {
        [0, 1].map(|index| (losses(&run_dir(index), stage), tensors(&models[index])))
    };

    // Stage 0 from the shared initial checkpoint.
    let init = setup.root.join("init.bpk");
    let stage0 = both(Stage::Standalone, &init);
    let stage0_runs = runs(Stage::Standalone.name(), &stage0, &detector_tensors);
    assert_eq!(stage0_runs[0].0.len(), 1, "one step");
    compare("stage 0", &detector_tensors(&init), stage0_runs);

    // Stage 1 from the reference's stage-0 model, in both runs.
    let stage1 = both(Stage::Supernet, &stage0[0]);
    let stage1_runs = runs(Stage::Supernet.name(), &stage1, &detector_tensors);
    compare("stage 1", &detector_tensors(&stage0[0]), stage1_runs);

    // Stage 2 from one start: the reference's supernet and temporal modules initialised once,
    // written as the stage's epoch-0 checkpoint into both runs, which resume from it.
    let settings = &setup.config.joint;
    let detector = EfficientDet::load(&stage1[0], &Device::flex()).unwrap();
    let device = Device::flex();
    device.seed(setup.config.seed ^ 2); // as the joint stage seeds its own initialisation
    let temporal = temporal_config(settings).init(&detector.config.backbone, &device);
    let start = AntModel { detector, temporal };
    let state = TrainState {
        stage: JOINT_STAGE.to_string(),
        epochs_done: 0,
        global_step: 0,
        seed: setup.config.seed,
        last_loss: f32::NAN,
    };
    for index in 0..2 {
        save_checkpoint_with(
            &run_dir(index).join(JOINT_STAGE),
            &optimizer(&settings.stage),
            &state,
            |dir| Ok(start.save(dir)?),
        )
        .unwrap();
    }
    let stage2 = [0, 1].map(|index| {
        let options = RunOptions {
            resume: true,
            ..options(index)
        };
        train_joint(
            &setup.config,
            &stage1[0],
            &setup.clips,
            &setup.data.batcher,
            &options,
        )
        .unwrap()
        .checkpoint
    });
    let stage2_runs = runs(JOINT_STAGE, &stage2, &ant_tensors);
    compare("stage 2", &tensors(&start), stage2_runs);
    let _ = std::fs::remove_dir_all(&setup.root);
}
