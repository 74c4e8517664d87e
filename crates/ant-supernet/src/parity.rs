//! Numerical parity with effdet: run the reference input through a model built from an
//! effdet checkpoint and compare every reference tensor present (backbone maps, class and box
//! outputs per level, final detections).
//!
//! The reference file is a SafeTensors file as written by the fixture generator of
//! `shared/fixtures/effdet-d0/generate.py`: `input`, `backbone_{i}`, `class_out_{level}`,
//! `box_out_{level}`, `detections` (rows x1, y1, x2, y2, score, class 1-based, zero-padded).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::arch::SubnetArch;
use crate::config::{EfficientDetConfig, PYRAMID_STAGES};
use crate::detector::EfficientDet;
use crate::error::{Result, SupernetError};
use crate::postprocess::Detections;
use crate::prepared::{Map, PreparedDetector};
use crate::weights::WeightMap;

/// Tolerance for feature maps and head outputs.
pub const TENSOR_TOLERANCE: f32 = 1e-3;
/// Tolerance for detection box coordinates, in pixels.
pub const BOX_TOLERANCE: f32 = 1e-2;
/// Scores closer than this are ties to float precision (NMS may keep either box).
pub const NEAR_TIE_SCORE: f32 = 1e-6;

/// One compared tensor.
#[derive(Clone, Debug, Serialize)]
pub struct ParityEntry {
    /// Reference tensor name.
    pub name: String,
    /// Largest absolute difference.
    pub max_abs_error: f32,
    /// The bound it must stay within.
    pub tolerance: f32,
}

impl ParityEntry {
    /// Whether the error is within tolerance.
    pub fn passed(&self) -> bool {
        self.max_abs_error <= self.tolerance
    }
}

/// The result of a parity run.
#[derive(Clone, Debug, Serialize)]
pub struct ParityReport {
    /// One entry per compared tensor.
    pub entries: Vec<ParityEntry>,
}

impl ParityReport {
    /// Whether every entry passed.
    pub fn passed(&self) -> bool {
        self.entries.iter().all(ParityEntry::passed)
    }
}

fn max_abs_diff(ours: &[f32], reference: &[f32]) -> f32 {
    if ours.len() != reference.len() {
        return f32::INFINITY;
    }
    ours.iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn values(tensor: Tensor<4>) -> (Vec<usize>, Vec<f32>) {
    let shape = tensor.dims().to_vec();
    (shape, tensor.into_data().iter::<f32>().collect())
}

/// Runs the parity check of an effdet checkpoint against a reference file.
pub fn run_parity(weights: &Path, reference: &Path, device: &Device) -> Result<ParityReport> {
    let reference_map = WeightMap::from_safetensors(reference)?;
    let missing = |key: &str| SupernetError::MissingTensor {
        path: reference.to_path_buf(),
        key: key.to_string(),
    };
    let input_shape = reference_map
        .shape("input")
        .ok_or_else(|| missing("input"))?
        .to_vec();
    let class_shape = reference_map
        .shape("class_out_3")
        .ok_or_else(|| missing("class_out_3"))?
        .to_vec();
    let num_classes = class_shape[1] / 9;
    let config = EfficientDetConfig::d0(num_classes).with_image_size(input_shape[2]);
    let model = EfficientDet::from_effdet(&config, weights, device)?;
    let input_values = reference_map
        .values("input")
        .expect("checked above")
        .to_vec();
    let input: Tensor<4> = Tensor::from_data(TensorData::new(input_values, input_shape), device);
    let input_copy = input.clone();

    let mut entries = Vec::new();
    let compare = |name: String, tensor: Tensor<4>, entries: &mut Vec<ParityEntry>| {
        if let Some(expected) = reference_map.values(&name) {
            let (shape, ours) = values(tensor);
            let expected_shape = reference_map.shape(&name).unwrap_or_default();
            let error = if shape.as_slice() == expected_shape {
                max_abs_diff(&ours, expected)
            } else {
                f32::INFINITY
            };
            entries.push(ParityEntry {
                name,
                max_abs_error: error,
                tolerance: TENSOR_TOLERANCE,
            });
        }
    };
    let arch = SubnetArch::LARGEST;
    let features = model.forward_backbone(input, &arch)?;
    for (index, map) in features.pyramid().into_iter().enumerate() {
        compare(format!("backbone_{index}"), map, &mut entries);
    }
    let outputs = model.forward_pyramid(features.pyramid());
    for (offset, (class, boxes)) in outputs.class.iter().zip(&outputs.boxes).enumerate() {
        let level = config.min_level + offset;
        compare(format!("class_out_{level}"), class.clone(), &mut entries);
        compare(format!("box_out_{level}"), boxes.clone(), &mut entries);
    }
    if let Some(expected) = reference_map.values("detections") {
        let detections = &model.postprocess(&outputs)[0];
        compare_detections(
            "",
            detections,
            expected,
            model.config.max_detections,
            &mut entries,
        );
    }
    // The CPU inference engine (`prepared`), on the same input, against the same reference.
    if !device.is_autodiff() {
        let prepared = PreparedDetector::new(&model);
        let image = Map::from_tensor(input_copy);
        let (_, stages) = prepared.backbone(&image, &arch)?;
        for (index, &stage) in PYRAMID_STAGES.iter().enumerate() {
            if let Some(expected) = reference_map.values(&format!("backbone_{index}")) {
                entries.push(ParityEntry {
                    name: format!("prepared.backbone_{index}"),
                    max_abs_error: max_abs_diff(&stages[stage].data, expected),
                    tolerance: TENSOR_TOLERANCE,
                });
            }
        }
        let outputs = prepared.pyramid(PYRAMID_STAGES.map(|index| &stages[index]));
        for (offset, (class, boxes)) in outputs.class.iter().zip(&outputs.boxes).enumerate() {
            let level = config.min_level + offset;
            let name = |kind: &str| format!("prepared.{kind}_out_{level}");
            if let Some(expected) = reference_map.values(&format!("class_out_{level}")) {
                entries.push(ParityEntry {
                    name: name("class"),
                    max_abs_error: max_abs_diff(&class.data, expected),
                    tolerance: TENSOR_TOLERANCE,
                });
            }
            if let Some(expected) = reference_map.values(&format!("box_out_{level}")) {
                entries.push(ParityEntry {
                    name: name("box"),
                    max_abs_error: max_abs_diff(&boxes.data, expected),
                    tolerance: TENSOR_TOLERANCE,
                });
            }
        }
        if let Some(expected) = reference_map.values("detections") {
            let detections = prepared.postprocess(&outputs, &model.anchors());
            compare_detections(
                "prepared.",
                &detections,
                expected,
                model.config.max_detections,
                &mut entries,
            );
        }
    }
    Ok(ParityReport { entries })
}

/// Matches `detections` with the reference rows `expected` (`[x1, y1, x2, y2, score, class + 1]`
/// each) and pushes the box, score and unmatched entries, named with `prefix`.
fn compare_detections(
    prefix: &str,
    detections: &Detections,
    expected: &[f32],
    max_detections: usize,
    entries: &mut Vec<ParityEntry>,
) {
    // The fixture's weights are random, so many scores are near-ties (1e-5 apart) and the
    // order of equal-score detections, or which of two boxes at IoU ~0.5 NMS keeps, is
    // decided by float noise. Detections are therefore matched as sets: each reference
    // detection to our detection of the same class with the nearest box.
    let rows: Vec<&[f32]> = expected
        .chunks_exact(6)
        .filter(|row| row[4] > 0.0)
        .collect();
    let mut box_error: f32 = 0.0;
    let mut score_error: f32 = 0.0;
    let mut unmatched = 0usize;
    if std::env::var_os("ANT_PARITY_DEBUG").is_some() {
        for d in &detections.items {
            let b = d.bbox;
            eprintln!(
                "det {} {} {} {} {} {}",
                b.x1, b.y1, b.x2, b.y2, d.score, d.class
            );
        }
    }
    for row in &rows {
        let nearest = detections
            .items
            .iter()
            .filter(|d| (d.class + 1) as f32 == row[5])
            .map(|d| {
                let b = d.bbox;
                let error = [b.x1, b.y1, b.x2, b.y2]
                    .iter()
                    .zip(&row[..4])
                    .map(|(a, e)| (a - e).abs())
                    .fold(0.0, f32::max);
                (error, (d.score - row[4]).abs())
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        match nearest {
            Some((error, score)) if error <= BOX_TOLERANCE => {
                box_error = box_error.max(error);
                score_error = score_error.max(score);
            }
            _ => {
                // A near-tie NMS swap: we kept an overlapping neighbour (IoU > 0.5) of
                // the same class whose score is equal to float precision.
                let reference_box = ant_geom::BoxXyxy {
                    x1: row[0],
                    y1: row[1],
                    x2: row[2],
                    y2: row[3],
                };
                let swapped = detections.items.iter().any(|d| {
                    (d.class + 1) as f32 == row[5]
                        && (d.score - row[4]).abs() <= NEAR_TIE_SCORE
                        && d.bbox.iou(&reference_box) > 0.3
                });
                // Displaced at the `max_detections` cut by such a swap further up.
                let lowest_kept = detections.items.last().map_or(f32::INFINITY, |d| d.score);
                let displaced =
                    detections.len() == max_detections && row[4] <= lowest_kept + NEAR_TIE_SCORE;
                if !swapped && !displaced {
                    unmatched += 1;
                }
            }
        }
    }
    if rows.is_empty() || detections.len() != rows.len() {
        unmatched = unmatched.max(1).max(rows.len().abs_diff(detections.len()));
    }
    entries.push(ParityEntry {
        name: format!("{prefix}detections.boxes"),
        max_abs_error: box_error,
        tolerance: BOX_TOLERANCE,
    });
    entries.push(ParityEntry {
        name: format!("{prefix}detections.scores"),
        max_abs_error: score_error,
        tolerance: TENSOR_TOLERANCE,
    });
    entries.push(ParityEntry {
        name: format!("{prefix}detections.unmatched"),
        max_abs_error: unmatched as f32,
        tolerance: 0.0,
    });
}
