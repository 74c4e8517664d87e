//! `ant_eval::evaluate_run` (behind `cargo xtask eval`) on an untrained tiny run and a tiny
//! synthetic set: every method in one pass with the documented names, key rates that follow
//! the schedules, every output file, the latency table reused on a second evaluation, and
//! clear errors for a bad run directory.

use std::path::{Path, PathBuf};

use ant_detrac::{SynthConfig, write_dataset};
use ant_eval::{EvalOptions, RunEvaluation, SearchOptions, Summary, evaluate_run};
use ant_train::{TrainConfig, write_untrained_run};
use burn::tensor::Device;

/// A tiny synthetic set (3 train, 2 test sequences of 6 frames) and an untrained run on it
/// (`name` under `root`; the set is generated once), with extra config overrides.
fn tiny_run(root: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let data_root = root.join("synth");
    if !data_root.exists() {
        write_dataset(
            &SynthConfig {
                sequences: 5,
                frames: 6,
                ..SynthConfig::default()
            },
            &data_root,
        )
        .unwrap();
    }
    let mut overrides = vec![
        format!("data.root={}", serde_json::to_string(&data_root).unwrap()),
        "data.test_frame_step=1".into(),
        "model.image_size=128".into(),
        "eval.recalibration_batches=1".into(),
        // 6-frame sequences: 1-in-3 clips of consecutive frames (the default's 4 frames 2
        // apart need 7).
        "joint.clip_len=3".into(),
        "joint.frame_gap=1".into(),
        "joint.clip_step=null".into(),
    ];
    overrides.extend(extra.iter().map(|o| o.to_string()));
    let config = TrainConfig::load(
        &manifest_dir().join("../../configs/default.json"),
        &overrides,
    )
    .unwrap();
    let run_dir = root.join(name);
    write_untrained_run(&run_dir, &config, &Device::flex()).unwrap();
    run_dir
}

fn options(run_dir: &Path) -> EvalOptions {
    let mut options = EvalOptions::new(run_dir, Device::flex());
    // Threshold 0: every frame is key; a huge threshold: only the first of each sequence.
    options.thresholds = vec![0.0, 1e9];
    // Skip-Conv: 0 recomputes every changed position; a huge threshold only first frames.
    options.skipconv_thresholds = vec![0.0, 1e9];
    options.search = SearchOptions {
        samples: 3,
        val_sequences: 1,
        max_front: 2,
        latency_table: None,
        seed: 0,
        remeasure_latency: false,
    };
    options.warmup_frames = 1;
    options
}

#[test]
fn should_evaluate_every_method_write_the_outputs_and_reuse_the_latency_table() {
    let root = std::env::temp_dir().join(format!("ant-evaluation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let run_dir = tiny_run(&root, "run", &[]);
    let evaluation: RunEvaluation = evaluate_run(&options(&run_dir)).unwrap();

    let names: Vec<&str> = evaluation.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names[0], "static-full");
    assert!(names.contains(&"ant-fixed3"), "{names:?}");
    assert!(names.contains(&"ant-adaptive@0"), "{names:?}");
    assert!(names.contains(&"ant-adaptive@1000000000"), "{names:?}");
    let static_nas = names
        .iter()
        .filter(|n| n.starts_with("static-nas@"))
        .count();
    assert!((1..=2).contains(&static_nas), "{names:?}");

    // 2 test sequences x 6 frames, every frame streamed and scored.
    assert_eq!(evaluation.sequences.len(), 2);
    assert_eq!(evaluation.frames, 12);
    assert_eq!(evaluation.scored_frames, 12);
    let method = |name: &str| evaluation.method(name).unwrap();
    assert_eq!(method("static-full").key_rate, 1.0);
    assert_eq!(method("ant-adaptive@0").key_rate, 1.0);
    assert!((method("ant-adaptive@1000000000").key_rate - 2.0 / 12.0).abs() < 1e-12);
    // Frames 1 and 4 of each 6-frame sequence are key frames.
    assert!((method("ant-fixed3").key_rate - 4.0 / 12.0).abs() < 1e-12);
    for m in &evaluation.methods {
        assert!(
            (0.0..=1.0).contains(&m.ap) && (0.0..=1.0).contains(&m.ap50),
            "{m:?}"
        );
        assert!(m.gmac > 0.0 && m.ms > 0.0 && m.params > 0, "{m:?}");
        assert_eq!(m.frames, 12, "{}", m.name);
        // Every frame that was not key is counted once per stage in the histogram.
        for row in &m.ratio_histogram {
            assert_eq!(
                row.iter().sum::<u64>() as usize,
                m.frames - m.key_frames,
                "{}",
                m.name
            );
        }
    }
    let full = method("static-full");
    assert_eq!(full.ratio_histogram[0][5], 12);
    // D0 w/ Skip-Conv, both kernels: the first frame of each sequence computes everything.
    for name in [
        "skipconv@0",
        "skipconv-sparse@0",
        "skipconv@1000000000",
        "skipconv-sparse@1000000000",
    ] {
        let skip = method(name);
        assert!((skip.key_rate - 2.0 / 12.0).abs() < 1e-12, "{name}");
        assert_eq!(skip.params, full.params, "{name}: static-full's network");
        assert!(skip.gmac <= full.gmac + 1e-12, "{name}");
        assert!(skip.ms_key_median.is_some() && skip.ms_non_key_median.is_some());
    }
    assert_eq!(method("skipconv@0").gmac, method("skipconv-sparse@0").gmac);
    assert!(
        method("skipconv-sparse@1000000000").gmac < 0.25 * full.gmac,
        "only the first frames compute: {} vs {}",
        method("skipconv-sparse@1000000000").gmac,
        full.gmac
    );
    assert!(full.ms_key_median.is_none() && full.ms_non_key_median.is_some());
    let fixed = method("ant-fixed3");
    assert!(fixed.ms_key_median.is_some() && fixed.fusion_gate_ms_median.is_some());
    assert!(
        fixed.params > full.params,
        "the temporal modules add parameters"
    );
    assert!(evaluation.decode_ms_median.unwrap() > 0.0);

    let search = evaluation.search.as_ref().unwrap();
    assert_eq!(search.samples.len(), 3);
    assert_eq!((search.cache_hits, search.measured), (0, 3));
    assert_eq!(search.samples[0].arch, "6,6,6,6,6,6");
    // The search holds out a training sequence, never a test one.
    assert_eq!(search.val_sequences.len(), 1);
    assert!(!evaluation.sequences.contains(&search.val_sequences[0]));
    assert!(!search.front.is_empty());
    assert!(search.samples.iter().filter(|s| s.on_front).count() == search.front.len());

    let out = run_dir.join("eval");
    for file in [
        "report.json",
        "summary.json",
        "table.md",
        "ap-vs-gmac.svg",
        "ap-vs-latency.svg",
        "latency-table.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let summary: Summary =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary, evaluation.summary());
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(table.contains("| static-full |") && table.contains("| ant-fixed3 |"));
    assert!(table.contains("D0 w/ Skip-Conv") && table.contains("| skipconv-sparse@0 |"));
    for m in &evaluation.methods {
        let detections = ant_metrics::load_detections(out.join(&m.detections_file)).unwrap();
        assert!(detections.iter().all(|d| d.score > 0.0), "{}", m.name);
    }

    // A second evaluation takes every latency from the table; with a non-temporal run beside.
    let non_temporal = tiny_run(&root, "non-temporal", &["joint.non_temporal=true"]);
    let mut second = options(&run_dir);
    second.non_temporal_run = Some(non_temporal);
    let again = evaluate_run(&second).unwrap();
    let dynamic = again.method("dynamic-non-temporal").unwrap();
    assert_eq!((dynamic.key_rate, dynamic.key_frames), (0.0, 0));
    assert_eq!(dynamic.ratio_histogram[0].iter().sum::<u64>(), 12);
    assert!(
        dynamic.fusion_gate_ms_median.is_some(),
        "its gates are timed"
    );
    assert!(
        again
            .method("static-full")
            .unwrap()
            .fusion_gate_ms_median
            .is_none(),
        "a static subnet has neither fusion nor gates"
    );
    // The ANT run itself is no non-temporal run.
    let mut wrong = options(&run_dir);
    wrong.non_temporal_run = Some(run_dir.clone());
    let error = evaluate_run(&wrong).unwrap_err().to_string();
    assert!(error.contains("not the non-temporal network"), "{error}");
    // Asked to, it measures again.
    let mut remeasure = options(&run_dir);
    remeasure.search.remeasure_latency = true;
    let fresh = evaluate_run(&remeasure).unwrap();
    let fresh_search = fresh.search.as_ref().unwrap();
    assert_eq!((fresh_search.cache_hits, fresh_search.measured), (0, 3));
    let search_again = again.search.as_ref().unwrap();
    assert_eq!((search_again.cache_hits, search_again.measured), (3, 0));
    for (first, second) in search.samples.iter().zip(&search_again.samples) {
        assert_eq!((&first.arch, first.ms), (&second.arch, second.ms));
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn should_name_what_is_missing_in_a_bad_run_directory() {
    let root = std::env::temp_dir().join(format!("ant-evaluation-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let missing = root.join("no-such-run");
    let error = evaluate_run(&EvalOptions::new(&missing, Device::flex()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("run directory") && error.contains("no-such-run"),
        "{error}"
    );
    std::fs::create_dir_all(&root).unwrap();
    let error = evaluate_run(&EvalOptions::new(&root, Device::flex()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("config.json"), "{error}");
    // A config but no checkpoints.
    let config =
        TrainConfig::load(&manifest_dir().join("../../configs/default.json"), &[]).unwrap();
    config.save(&root.join("config.json")).unwrap();
    let error = evaluate_run(&EvalOptions::new(&root, Device::flex()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("checkpoint") && error.contains("stage0-standalone"),
        "{error}"
    );
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
