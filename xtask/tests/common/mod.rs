//! Shared by the xtask tests: locating `../shared` beside the repository.

use std::path::PathBuf;

/// `shared/<relative>`, or `None` (with a note) when absent outside CI. In CI
/// (`CI=true`) a missing file fails the test instead of skipping it.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = manifest_dir().join("../../shared").join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{} missing in CI",
        path.display()
    );
    eprintln!("note: {} missing, test skipped outside CI", path.display());
    None
}

/// This package's directory, read when the test runs: a compile-time `env!` would keep the
/// path of whichever checkout last built the test binary when checkouts share a target
/// directory (as the README recommends), and the test would read that checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}
