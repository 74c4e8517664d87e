//! `joint::recalibrate_joint` depends on the weights only: a stage-2 model whose detector
//! norms carry the runtime "frozen" flag of training (`frozen_norms`, which Burn does not
//! save) and the same model as loaded from its checkpoint get the same fusion statistics, so
//! the main job's ANT row and `cargo xtask eval`'s agree.

use ant_temporal::AntModel;
use ant_train::TrainConfig;
use ant_train::joint::recalibrate_joint;
use ant_train::write_untrained_run;
use burn::tensor::{Device, Distribution, Tensor};

fn fusion_statistics(model: &AntModel) -> Vec<Vec<f32>> {
    model
        .temporal
        .present_fusions()
        .flat_map(|fusion| {
            [
                fusion.bn_pointwise.running_mean.value(),
                fusion.bn_pointwise.running_var.value(),
                fusion.bn_depthwise.running_mean.value(),
                fusion.bn_depthwise.running_var.value(),
            ]
        })
        .map(|tensor| tensor.into_data().try_to_vec::<f32>().unwrap())
        .collect()
}

#[test]
fn should_recalibrate_a_loaded_stage_2_model_as_the_trained_one_in_memory() {
    let root = std::env::temp_dir().join(format!("ant-recalibration-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let config = TrainConfig::load(
        &manifest_dir().join("../../configs/default.json"),
        &["model.image_size=128".to_string()],
    )
    .unwrap();
    assert!(config.joint.frozen_norms, "the default config freezes them");
    let device = Device::flex();
    let run_dir = root.join("run");
    write_untrained_run(&run_dir, &config, &device).unwrap();
    let loaded = AntModel::load(&run_dir.join("stage2-joint/epoch-0001"), &device).unwrap();
    // What the joint stage holds in memory: the same weights, detector norms frozen.
    let trained = AntModel::load(&run_dir.join("stage2-joint/epoch-0001"), &device)
        .unwrap()
        .freeze_detector_norms();

    device.seed(7);
    let clips: Vec<(Tensor<4>, Tensor<4>)> = (0..2)
        .map(|_| {
            let key =
                Tensor::<4>::random([2, 3, 128, 128], Distribution::Normal(0.0, 1.0), &device);
            let change =
                Tensor::<4>::random([2, 3, 128, 128], Distribution::Normal(0.0, 0.2), &device);
            (key.clone(), key + change)
        })
        .collect();
    let from_loaded = recalibrate_joint(&loaded, &clips, false).unwrap();
    let from_trained = recalibrate_joint(&trained, &clips, false).unwrap();
    let (a, b) = (
        fusion_statistics(&from_loaded),
        fusion_statistics(&from_trained),
    );
    assert_eq!(a.len(), 4 * config.joint.fusion_stages.len());
    assert_eq!(a, b, "fusion statistics depend on runtime flags");
    // The pass did estimate them (a fresh norm has mean 0, variance 1 everywhere).
    assert!(a[0].iter().any(|m| *m != 0.0));
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
