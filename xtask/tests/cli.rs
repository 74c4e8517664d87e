//! The `cargo xtask` commands of the supernet issue, run as a user runs them.

mod common;

use common::{shared, xtask};

fn last_json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().expect("output")).expect("last line is JSON")
}

#[test]
fn info_should_agree_with_effdet_counts() {
    let (ok, stdout, _) = xtask(&["info", "--config", "d0", "--num-classes", "4", "--json"]);
    assert!(ok);
    let json = last_json(&stdout);
    assert_eq!(json["params"], 3_829_757);
    assert!((json["gmac"].as_f64().unwrap() - 2.222).abs() < 5e-4);
    assert!((json["backbone_gmac"].as_f64().unwrap() - 1.901).abs() < 5e-4);
    let (_, stdout, _) = xtask(&["info", "--num-classes", "90", "--json"]);
    let json = last_json(&stdout);
    assert_eq!(json["params"], 3_880_067);
    assert!((json["gmac"].as_f64().unwrap() - 2.492).abs() < 5e-4);
}

#[test]
fn info_should_cost_less_for_the_smallest_subnet() {
    let (ok, stdout, _) = xtask(&[
        "info",
        "--arch",
        "1,1,1,1,1,1",
        "--image-size",
        "256",
        "--json",
    ]);
    assert!(ok);
    let json = last_json(&stdout);
    assert!(json["gmac"].as_f64().unwrap() < 0.2);
    assert_eq!(json["arch"], serde_json::json!([1, 1, 1, 1, 1, 1]));
}

#[test]
fn info_should_reject_invalid_subnet_clearly() {
    let (ok, _, stderr) = xtask(&["info", "--arch", "6,6,7,6,6,6"]);
    assert!(!ok);
    assert!(stderr.contains("stage 3 has ratio 7"), "{stderr}");
    let (ok, _, stderr) = xtask(&["info", "--config", "d9"]);
    assert!(!ok);
    assert!(stderr.contains("unknown config \"d9\""), "{stderr}");
}

#[test]
fn parity_should_pass_on_the_shared_fixture_and_print_json() {
    let Some(dir) = shared("fixtures/effdet-d0") else {
        return;
    };
    let weights = dir.join("tf_efficientdet_d0_random.pth");
    let reference = dir.join("expected.safetensors");
    let (ok, stdout, stderr) = xtask(&[
        "parity",
        "--weights",
        weights.to_str().unwrap(),
        "--reference",
        reference.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let json = last_json(&stdout);
    assert_eq!(json["passed"], true);
    assert!(json["errors"]["class_out_3"].as_f64().unwrap() < 1e-3);
    assert!(json["errors"]["backbone_2"].as_f64().unwrap() < 1e-3);
}

#[test]
fn import_should_write_a_loadable_checkpoint_and_name_bad_files() {
    let Some(dir) = shared("fixtures/effdet-d0") else {
        return;
    };
    let out = std::env::temp_dir().join(format!("ant-import-{}/d0.bpk", std::process::id()));
    let weights = dir.join("tf_efficientdet_d0_random.pth");
    let (ok, stdout, stderr) = xtask(&[
        "import",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(out.is_file() && out.with_extension("json").is_file());
    let (ok, _, stderr) = xtask(&[
        "import",
        "--weights",
        weights.to_str().unwrap(),
        "--config",
        "d0_plus",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("tf_efficientdet_d0_random.pth") && stderr.contains("shape"),
        "{stderr}"
    );
    std::fs::remove_dir_all(out.parent().unwrap()).ok();
}

#[test]
fn train_should_refuse_gpus_off_wgpu_before_touching_anything() {
    let dir = std::env::temp_dir().join(format!("ant-xtask-gpus-{}", std::process::id()));
    let run_dir = dir.join("run");
    let (ok, _, stderr) = xtask(&[
        "train",
        "--gpus",
        "2",
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!ok);
    assert!(stderr.contains("--gpus needs --device wgpu"), "{stderr}");
    assert!(!run_dir.exists(), "no run directory for a refused command");
}

/// Without the `remote` feature (as CI builds), the remote commands say how to build them
/// before touching anything; with it, a URL that is not `ws://` is named.
#[test]
fn remote_commands_should_say_what_they_need_before_touching_anything() {
    let dir = std::env::temp_dir().join(format!("ant-xtask-remote-{}", std::process::id()));
    let run_dir = dir.join("run");
    let (ok, _, stderr) = xtask(&[
        "train",
        "--replica-device",
        "http://127.0.0.1:1",
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!ok);
    if cfg!(feature = "remote") {
        assert!(
            stderr.contains("http://127.0.0.1:1") && stderr.contains("expected ws://"),
            "{stderr}"
        );
    } else {
        assert!(stderr.contains("--features remote"), "{stderr}");
    }
    assert!(!run_dir.exists(), "no run directory for a refused command");
    if !cfg!(feature = "remote") {
        let (ok, _, stderr) = xtask(&["serve-device", "--listen", "127.0.0.1:0"]);
        assert!(!ok);
        assert!(stderr.contains("--features remote"), "{stderr}");
    }
}
