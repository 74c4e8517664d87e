//! Stage 1's anchor to the standalone detector (`supernet.standalone_distill_weight`): the
//! largest subnet is distilled toward the frozen stage-0 weights on every batch. At the first
//! step the two are the same network, so the term is zero and the loss is the published
//! sandwich's to the bit; over the stage it keeps the full network nearer the standalone one
//! than the sandwich alone does.

use std::path::{Path, PathBuf};

use ant_detrac::dataset::FrameDatasetConfig;
use ant_detrac::{
    DetectionBatch, DetracBatcher, FrameDataset, InputTransform, ReleaseLayout, Split, SynthConfig,
    load_split, write_dataset,
};
use ant_supernet::{Anchors, EfficientDet, LossConfig, SubnetArch};
use ant_train::checkpoint::load_model;
use ant_train::trainer::{distillation_loss, label_batch};
use ant_train::{ModelInit, RunOptions, Stage, TrainConfig, TrainData, TrainError, train_stage};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::Device;

fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
}

fn config(weight: f32, seed: u64) -> TrainConfig {
    let path = manifest_dir().join("../../configs/default.json");
    let overrides = [
        "model.image_size=128".to_string(),
        "standalone.epochs=3".into(),
        "standalone.batch_size=2".into(),
        "standalone.max_steps_per_epoch=8".into(),
        "standalone.warmup_steps=0".into(),
        "standalone.lr_milestones=[]".into(),
        "supernet.epochs=1".into(),
        "supernet.batch_size=2".into(),
        // A small step: at lr 0.002 with the weight of 10 below, the anchored run overshoots
        // (the distance it ends at moved non-monotonically with the weight, 1 / 3 / 5 / 10 ->
        // 0.91 / 0.67 / 0.87 / 1.41 of the published run's on a 32 KiB-L1d machine, where a
        // 48 KiB-L1d machine had 0.47: gemm's blocking follows the L1 and so does the
        // trajectory). At lr 0.0005 the steps are small enough for the pull to show with room:
        // 0.32 over 16 steps here.
        "supernet.max_steps_per_epoch=16".into(),
        "supernet.lr=0.0005".into(),
        format!("supernet.standalone_distill_weight={weight}"),
        format!("seed={seed}"),
    ];
    TrainConfig::load(&path, &overrides).unwrap()
}

/// The per-step losses of a stage's `steps.csv` (the loss column, as written).
fn step_losses(run_dir: &Path, stage: Stage) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join(stage.name()).join("steps.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|name| *name == "loss").unwrap();
    lines
        .map(|line| line.split(',').nth(column).unwrap().to_string())
        .collect()
}

/// The distillation loss of `a`'s full network toward `b`'s (what the anchor minimises:
/// binary KL of the class probabilities plus the box term) on one batch.
fn distance(
    a: &EfficientDet,
    b: &EfficientDet,
    batch: &DetectionBatch,
    config: &TrainConfig,
) -> f32 {
    let device = batch.images.device();
    let loss_config: LossConfig = config.loss.into();
    let targets = label_batch(&Anchors::new(&a.config), &batch.targets, &loss_config);
    let out_a = a
        .forward(batch.images.clone(), &SubnetArch::LARGEST)
        .unwrap();
    let out_b = b
        .forward(batch.images.clone(), &SubnetArch::LARGEST)
        .unwrap();
    distillation_loss(
        &out_a,
        &out_b,
        &targets,
        a.config.num_classes,
        &loss_config,
        &device,
    )
    .into_scalar()
}

/// Stage 0 from scratch, then stage 1 without (published) and with the anchor (weight 10)
/// from its model, for one seed: the distances of the two full networks to the standalone
/// detector.
fn anchor_distances(root: &Path, sequences: &[ant_detrac::LoadedSequence], seed: u64) -> [f32; 2] {
    let plain = config(0.0, seed);
    let data = TrainData {
        dataset: FrameDataset::new(
            sequences,
            FrameDatasetConfig {
                frame_step: 1,
                flip_probability: 0.5,
                seed: plain.seed,
            },
        )
        .unwrap(),
        batcher: DetracBatcher::new(InputTransform::new(128, 128)),
    };
    let root = root.join(format!("seed{seed}"));
    let options = |name: &str| RunOptions::new(root.join(name), Device::flex());
    let stage0 = train_stage(
        &plain,
        Stage::Standalone,
        &ModelInit::Scratch,
        &data,
        &options("standalone"),
    )
    .unwrap();
    let standalone_path = stage0.checkpoint.join("model.bpk");
    let init = ModelInit::Checkpoint(standalone_path.clone());
    let supernet = |weight: f32, name: &str| {
        train_stage(
            &config(weight, seed),
            Stage::Supernet,
            &init,
            &data,
            &options(name),
        )
        .unwrap()
    };
    let published = supernet(0.0, "published");
    let anchored = supernet(10.0, "anchored");

    let published_losses = step_losses(&root.join("published"), Stage::Supernet);
    let anchored_losses = step_losses(&root.join("anchored"), Stage::Supernet);
    assert!(
        published_losses.len() >= 4,
        "{} steps",
        published_losses.len()
    );
    assert_eq!(
        published_losses[0], anchored_losses[0],
        "at the first step the largest subnet is the standalone detector: the term is zero"
    );
    assert_ne!(
        published_losses[1..],
        anchored_losses[1..],
        "later steps carry the anchor's gradient"
    );

    // Compared as the loss sees them: on training frames, on an autodiff device, where the
    // norms use the batch's statistics (the running ones of a short standalone stage mean
    // nothing).
    let device = Device::flex().autodiff();
    let load = |checkpoint: &Path| load_model(checkpoint, &device).unwrap().no_grad();
    let standalone = load(&stage0.checkpoint);
    let items: Vec<_> = (0..8).map(|i| data.dataset.get(i).unwrap()).collect();
    let batch = data.batcher.batch(items, &device).unwrap();
    let published_distance = distance(&load(&published.checkpoint), &standalone, &batch, &plain);
    let anchored_distance = distance(&load(&anchored.checkpoint), &standalone, &batch, &plain);
    eprintln!(
        "seed {seed}: distance to the standalone: published {published_distance}, anchored \
         {anchored_distance}"
    );
    assert!(
        published_distance.is_finite() && anchored_distance.is_finite(),
        "finite outputs"
    );
    assert!(published_distance > 0.0, "stage 1 moved the full network");
    [published_distance, anchored_distance]
}

/// Pooled over three seeds: one seed's ratio is a draw from a chaotic start (stage 0 from
/// scratch at 128 px, where one rounding of the start moves the losses by tens of percent
/// within a few steps): seeds 0-3 gave 0.97, 0.61, 0.47, 0.66, and seed 0 gave 0.32 before
/// the batch norms' statistics were summed exactly (`ant_kernels::norm`).
#[test]
fn should_start_at_zero_and_keep_the_full_network_near_the_standalone_detector() {
    let root = std::env::temp_dir().join(format!("ant-train-anchor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let synth = SynthConfig {
        sequences: 4,
        frames: 8,
        ..SynthConfig::default()
    };
    write_dataset(&synth, &root.join("data")).unwrap();
    let sequences = load_split(&ReleaseLayout::new(root.join("data")), Split::Train).unwrap();
    let mut sums = [0.0f32; 2];
    for seed in 0..3 {
        let [published, anchored] = anchor_distances(&root, &sequences, seed);
        assert!(
            anchored < published,
            "seed {seed}: anchored {anchored} vs published {published}"
        );
        sums[0] += published;
        sums[1] += anchored;
    }
    let [published, anchored] = sums;
    assert!(
        anchored < 0.7 * published,
        "pooled: anchored {anchored} vs published {published}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn should_refuse_an_anchor_without_a_standalone_checkpoint() {
    let mut config = config(1.0, 0);
    config.standalone.enabled = false;
    let error = config.validate().unwrap_err();
    assert!(
        error.to_string().contains("standalone_distill_weight"),
        "{error}"
    );
    config.standalone.enabled = true;
    config.supernet.standalone_distill_weight = -1.0;
    assert!(matches!(
        config.validate(),
        Err(TrainError::InvalidConfig { .. })
    ));
}
