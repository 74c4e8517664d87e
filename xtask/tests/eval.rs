//! `cargo xtask eval` as a user runs it, on an untrained tiny run over a tiny synthetic set:
//! the `--json` last line with the documented names and keys, the thread count it ran with,
//! and a clear error for a bad run directory.

mod common;

use ant_detrac::{SynthConfig, write_dataset};
use ant_train::TrainConfig;
use ant_train::write_untrained_run;
use burn::tensor::Device;

use common::{manifest_dir, xtask};

#[test]
fn eval_should_print_the_summary_json_last_with_the_documented_names() {
    let root = std::env::temp_dir().join(format!("ant-xtask-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data_root = root.join("synth");
    write_dataset(
        &SynthConfig {
            sequences: 4,
            frames: 4,
            ..SynthConfig::default()
        },
        &data_root,
    )
    .unwrap();
    let config = TrainConfig::load(
        &manifest_dir().join("../configs/default.json"),
        &[
            format!("data.root={}", serde_json::to_string(&data_root).unwrap()),
            "model.image_size=128".into(),
            "eval.recalibration_batches=1".into(),
            // 4-frame sequences: 1-in-3 clips of consecutive frames.
            "joint.clip_len=3".into(),
            "joint.frame_gap=1".into(),
            "joint.clip_step=null".into(),
        ],
    )
    .unwrap();
    let run_dir = root.join("run");
    write_untrained_run(&run_dir, &config, &Device::flex()).unwrap();
    let (ok, stdout, stderr) = xtask(&[
        "eval",
        "--run",
        run_dir.to_str().unwrap(),
        "--thresholds",
        "0.05,0.2",
        "--skipconv-thresholds",
        "0.05",
        "--search-samples",
        "2",
        "--val-sequences",
        "1",
        "--warmup",
        "1",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| static-full |"),
        "the table is printed: {stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("output")).expect("last line is JSON");
    let methods = json["methods"].as_array().expect("methods");
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "static-full");
    for expected in [
        "ant-fixed3",
        "ant-adaptive@0.05",
        "ant-adaptive@0.2",
        "skipconv@0.05",
        "skipconv-sparse@0.05",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("static-nas@")),
        "{names:?}"
    );
    for method in methods {
        for key in ["name", "ap", "ap50", "ap75", "gmac", "ms", "key_rate"] {
            assert!(method.get(key).is_some(), "no {key} in {method}");
        }
        let ap = method["ap"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ap), "{method}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("eval/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["threads"], 2, "--threads sets the pool it reports");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn eval_should_refuse_a_negative_skipconv_threshold() {
    let (ok, _, stderr) = xtask(&[
        "eval",
        "--run",
        "runs/no-such-run-dir",
        "--skipconv-thresholds=0.01,-1",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--skipconv-thresholds") && stderr.contains("-1"),
        "{stderr}"
    );
}

#[test]
fn eval_should_name_a_missing_run_directory() {
    let (ok, _, stderr) = xtask(&["eval", "--run", "runs/no-such-run-dir"]);
    assert!(!ok);
    assert!(
        stderr.contains("run directory not found") && stderr.contains("no-such-run-dir"),
        "{stderr}"
    );
}
