//! Locating `../shared` from the tests, and loading real frames.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};

use ant_detrac::transform::InputTransform;
use burn::prelude::*;
use burn::tensor::TensorData;

pub use ant_fixtures::shared;

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
