//! # ant-fixtures
//!
//! How the workspace's tests reach the data that is not ours to commit: real UA-DETRAC frames
//! and annotations, effdet's checkpoint and reference outputs, pycocotools' answers, all in
//! `shared/` beside the checkout (`../shared` from the repository root).
//!
//! A test that needs one calls [`shared`]: it gets the path, or, when the file is missing,
//! `None` with a note on stderr, and skips. Under CI (`CI=true`) a missing file fails the test
//! instead: a skipped test must never pass for a run that was meant to check it.
//! `examples/locate.rs` prints which shared sets are present.
//!
//! ```
//! // Outside CI a missing file is a skip, not a failure.
//! if std::env::var("CI").as_deref() != Ok("true") {
//!     assert!(ant_fixtures::shared("no/such/file").is_none());
//! }
//! ```
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// `shared/<relative>` beside the checkout, or `None` (with a note) when it is missing outside
/// CI.
///
/// # Panics
/// When it is missing and `CI=true`.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!(
            "shared file {} is missing; CI must have ../shared beside the clone",
            path.display()
        );
    }
    eprintln!("note: {} missing, test skipped outside CI", path.display());
    None
}

/// The `shared` directory beside the checkout (which need not exist).
pub fn shared_dir() -> PathBuf {
    let root = checkout_root();
    root.parent().unwrap_or(&root).join("shared")
}

/// The repository root: the nearest directory holding `Cargo.lock` above the running test's
/// package. The package directory is read when the test runs (cargo sets
/// `CARGO_MANIFEST_DIR`): a compile-time `env!` would keep the path of whichever checkout last
/// built the test binary when checkouts share a target directory, as the README recommends.
fn checkout_root() -> PathBuf {
    let start: PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into();
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map_or(start.clone(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_find_shared_beside_the_repository_root() {
        let root = checkout_root();
        assert!(root.join("Cargo.lock").is_file(), "{}", root.display());
        assert!(root.join("crates").is_dir());
        assert_eq!(shared_dir(), root.parent().unwrap().join("shared"));
    }
}
