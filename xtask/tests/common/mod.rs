//! Shared by the xtask tests: locating `../shared` beside the repository.

use std::path::PathBuf;

/// `shared/<relative>`, or `None` (with a note) when absent outside CI. In CI
/// (`CI=true`) a missing file fails the test instead of skipping it.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(relative);
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
