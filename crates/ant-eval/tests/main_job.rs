//! The main job end to end on a tiny synthetic set: stages 0, 1 and 2 for a few steps each,
//! evaluation of the static network, the supernet's extremes and ANT with the fixed 1-in-3
//! schedule, `summary.json` in the `cargo xtask eval --json` format, and the run files.

use ant_eval::{Summary, summarize};
use ant_train::{RunOptions, TrainConfig, run_pipeline};
use burn::tensor::Device;

#[test]
fn should_train_all_stages_and_write_the_summary_on_a_tiny_synthetic_set() {
    let root = std::env::temp_dir().join(format!("ant-train-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let path = manifest_dir().join("../../configs/default.json");
    let data_root = root.join("synth");
    let overrides = [
        format!("data.root={}", serde_json::to_string(&data_root).unwrap()),
        "data.test_frame_step=4".into(),
        "data.synth_sequences=12".into(),
        "data.synth_frames=8".into(),
        "model.image_size=128".into(),
        "standalone.epochs=1".into(),
        "standalone.max_steps_per_epoch=2".into(),
        "supernet.epochs=1".into(),
        "supernet.max_steps_per_epoch=1".into(),
        "joint.epochs=1".into(),
        "joint.max_steps_per_epoch=2".into(),
        "eval.recalibration_batches=1".into(),
    ];
    let config = TrainConfig::load(&path, &overrides).unwrap();
    let run_dir = root.join("run");
    let options = RunOptions::new(run_dir.clone(), Device::flex());
    // The synthetic set is generated because data.root is missing (12 sequences x 8 frames).
    let trained = run_pipeline(&config, &options).unwrap();
    let (summary, _) = summarize(&config, &trained, &options.device).unwrap();
    let names: Vec<&str> = summary.methods.iter().map(|m| m.name.as_str()).collect();
    // The default config trains the non-temporal baseline beside ANT.
    assert_eq!(
        names,
        [
            "static-full",
            "supernet-largest",
            "supernet-smallest",
            "ant-fixed4",
            "dynamic-non-temporal"
        ]
    );
    assert!(run_dir.join("stage2-nontemporal").is_dir());
    for method in &summary.methods {
        assert!((0.0..=1.0).contains(&method.ap) && (0.0..=1.0).contains(&method.ap50));
        assert!(method.gmac > 0.0 && method.ms > 0.0, "{method:?}");
    }
    let ant = &summary.methods[3];
    // 8-frame test sequences with a key frame every fourth: frames 1 and 5 of each are key.
    assert!(
        (ant.key_rate - 2.0 / 8.0).abs() < 1e-9,
        "key rate {}",
        ant.key_rate
    );
    // (Its GMAC may exceed the static network's after two joint steps: gates at random
    // initialisation choose wide stages, and fusion adds cost; the compute term is what
    // brings it down with training.)
    let written: Summary =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(written, summary);
    let saved = TrainConfig::load_run(&run_dir).unwrap();
    assert_eq!(saved, config);
    for file in [
        "metrics.jsonl",
        "stage0-standalone/loss.svg",
        "stage1-supernet/steps.csv",
        "stage2-joint/epoch-0001/model.temporal.bpk",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
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
