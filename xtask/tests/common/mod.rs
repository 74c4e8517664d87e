//! Shared by the xtask tests: locating `../shared` beside the repository, and running the
//! `xtask` binary.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::process::Command;

#[allow(unused_imports)] // Not every test binary reads ../shared.
pub use ant_fixtures::shared;

/// Runs `xtask ARGS` from the repository root: (success, stdout, stderr).
pub fn xtask(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(manifest_dir().join(".."))
        .output()
        .expect("xtask runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// This package's directory, read when the test runs: a compile-time `env!` would keep the
/// path of whichever checkout last built the test binary when checkouts share a target
/// directory (as the README recommends), and the test would read that checkout's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}

/// The `xtask` binary as a command run from the repository root, for tests that spawn it,
/// wait on it or kill it themselves.
pub fn xtask_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.current_dir(manifest_dir().join(".."));
    command
}

/// Runs `command` to its end and fails the test, with its stderr, unless it succeeds.
pub fn run_to_end(mut command: Command) {
    let output = command.output().expect("xtask runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The arguments of a short stage-0-only `train` into `run_dir`, on a small synthetic set of
/// its own under `root/data` (6 sequences of 8 frames), without the recalibration before the
/// evaluation; each test adds its own `--set` overrides after them.
pub fn stage0_train_args(root: &std::path::Path, run_dir: &std::path::Path) -> Vec<String> {
    [
        "train",
        "--quiet",
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--set",
        &format!("data.root={}", root.join("data").display()),
        "--set",
        "data.synth_sequences=6",
        "--set",
        "data.synth_frames=8",
        "--set",
        "supernet.enabled=false",
        "--set",
        "joint.enabled=false",
        "--set",
        "eval.recalibration_batches=0",
    ]
    .map(String::from)
    .to_vec()
}

/// The lines of a text file (0 when it does not exist yet).
pub fn line_count(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}
