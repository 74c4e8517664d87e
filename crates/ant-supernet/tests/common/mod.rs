//! Locating `../shared` from the tests.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::PathBuf;

/// `shared/<relative>`, or `None` (with a note) when absent outside CI. In CI
/// (`CI=true`) a missing file fails the test instead of skipping it.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "shared file {} is missing; CI must have ../shared beside the clone",
            path.display()
        );
    }
    eprintln!("note: {} missing, test skipped outside CI", path.display());
    None
}
