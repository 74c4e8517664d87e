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
