//! Locating `../shared` from the tests, and loading real frames.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};

use ant_detrac::transform::InputTransform;
use burn::prelude::*;
use burn::tensor::TensorData;

/// `shared/<relative>`, or `None` (with a note) when absent outside CI. In CI
/// (`CI=true`) a missing file fails the test instead of skipping it.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = manifest_dir().join("../../../shared").join(relative);
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

/// The JPEG frames of `dir` in name order.
pub fn frame_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    paths.sort();
    paths
}

/// A frame decoded, letterboxed to `size` and normalised: `[1, 3, size, size]`.
pub fn load_frame(path: &Path, size: usize, device: &Device) -> Tensor<4> {
    let image = image::open(path).unwrap().to_rgb8();
    let transform = InputTransform::new(size as u32, size as u32);
    let (input, _) = transform.letterbox_image(&image);
    let values = transform.normalize(&input);
    Tensor::from_data(TensorData::new(values, [1, 3, size, size]), device)
}

/// This package's directory, read when the test runs: a compile-time `env!` would keep the
/// path of whichever checkout last built the test binary when checkouts share a target
/// directory (as the README recommends), and the test would read that checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}
