//! Killed runs: `cargo xtask train` killed with SIGKILL mid-step, and aborted while a
//! checkpoint is being written (the `ANT_TEST_ABORT_AT` hook), then resumed with `--resume`,
//! ends with the same final model and `steps.csv` as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ant_supernet::{EfficientDet, SubnetArch};
use burn::tensor::{Device, Tensor, TensorData};

mod common;

/// A short stage-0-only run on a small synthetic set of its own.
fn train_args(root: &Path, run_dir: &Path, resume: bool) -> Vec<String> {
    let mut args = common::stage0_train_args(root, run_dir);
    for set in [
        "model.image_size=128",
        "standalone.epochs=3",
        "standalone.max_steps_per_epoch=10",
        "standalone.lr_milestones=[2]",
    ] {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    if resume {
        args.push("--resume".into());
    }
    args
}

fn xtask() -> Command {
    let mut command = common::xtask_command();
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

fn run_to_end(root: &Path, run_dir: &Path, resume: bool) {
    let mut command = xtask();
    command.args(train_args(root, run_dir, resume));
    common::run_to_end(command);
}

fn steps(run_dir: &Path) -> String {
    std::fs::read_to_string(run_dir.join("stage0-standalone/steps.csv")).unwrap()
}

/// The final model's head outputs on a fixed input (the checkpoint files themselves differ
/// between any two runs: Burn gives parameters random ids).
fn final_model(run_dir: &Path) -> Vec<f32> {
    let device = Device::flex();
    let model = EfficientDet::load(
        &run_dir.join("stage0-standalone/epoch-0003/model.bpk"),
        &device,
    )
    .unwrap();
    let input: Vec<f32> = (0..3 * 128 * 128)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let input = Tensor::<4>::from_data(TensorData::new(input, [1, 3, 128, 128]), &device);
    let outputs = model.forward(input, &SubnetArch::LARGEST).unwrap();
    outputs
        .class
        .iter()
        .chain(&outputs.boxes)
        .flat_map(|level| level.to_data().try_to_vec::<f32>().unwrap())
        .collect()
}

#[test]
fn killed_and_resumed_runs_should_end_like_an_uninterrupted_one() {
    let root: PathBuf = std::env::temp_dir().join(format!("ant-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let whole = root.join("whole");
    run_to_end(&root, &whole, false);
    assert_eq!(
        common::line_count(&whole.join("stage0-standalone/steps.csv")),
        1 + 24,
        "3 epochs of 8 steps"
    );

    // SIGKILL in the middle of the second epoch (8 steps an epoch: steps 9-16), then resume.
    let killed = root.join("killed");
    let mut child = xtask()
        .args(train_args(&root, &killed, false))
        .spawn()
        .expect("xtask starts");
    let steps_file = killed.join("stage0-standalone/steps.csv");
    let started = Instant::now();
    while common::line_count(&steps_file) < 1 + 12 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the run never reached step 12"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        common::line_count(&steps_file) < 1 + 24,
        "killed after the run ended: the test did not kill mid-run"
    );
    run_to_end(&root, &killed, true);
    assert_eq!(steps(&whole), steps(&killed), "steps.csv after a SIGKILL");
    assert!(
        final_model(&whole) == final_model(&killed),
        "final model after a SIGKILL"
    );

    // Aborted with every file of the first checkpoint written but its directory not yet
    // renamed into place: the half-made checkpoint is never read, the resume starts over.
    let aborted = root.join("aborted");
    let output = xtask()
        .args(train_args(&root, &aborted, false))
        .env("ANT_TEST_ABORT_AT", "checkpoint-before-rename")
        .output()
        .expect("xtask runs");
    assert!(!output.status.success(), "the hook aborts the run");
    assert!(aborted.join("stage0-standalone/epoch-0001.tmp").is_dir());
    assert!(!aborted.join("stage0-standalone/epoch-0001").exists());
    run_to_end(&root, &aborted, true);
    assert_eq!(
        steps(&whole),
        steps(&aborted),
        "steps.csv after an abort mid-save"
    );
    assert!(
        final_model(&whole) == final_model(&aborted),
        "final model after an abort mid-save"
    );
    let _ = std::fs::remove_dir_all(&root);
}
