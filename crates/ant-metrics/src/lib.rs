//! ant-metrics: COCO bbox evaluation (pycocotools' 12 numbers, exactly) and the UA-DETRAC
//! ignored-region protocol, for the ANT video detector. No Burn dependency.
//!
//! The evaluator mirrors pycocotools' `cocoeval.py`
//! (<https://github.com/cocodataset/cocoapi/blob/8c9bcc3cf640524c4c20a9c40e89cb6a2f2fa0e9/PythonAPI/pycocotools/cocoeval.py>)
//! stage by stage, in the file layout of the hotcoco crate's `eval/`:
//! - [`coco`]: COCO JSON in and out (instances ground truth, results detections).
//! - [`params`]: [`EvalParams`], whose default is pycocotools' bbox `Params`.
//! - `evaluate`: per image and category matching (crowd, area ranges, detection limits).
//! - [`accumulate`]: 101-point interpolated precision and recall arrays.
//! - [`summarize`]: the 12 numbers of `COCOeval.stats` and their printed table.
//! - [`detrac`]: the DETRAC rule for ignored regions, switchable to "regions as crowd", and
//!   ground-truth files that carry their regions ([`DetracGroundTruth`]).
//!
//! Parity: `tests/parity.rs` checks every case of `shared/fixtures/coco-eval/` (made with
//! pycocotools 2.0.11) to 1e-4; in practice the numbers agree to rounding error.
//!
//! ```
//! use ant_metrics::{CocoDataset, Detection, EvalParams, evaluate_bbox};
//!
//! let mut ground_truth = CocoDataset::new();
//! ground_truth.add_image(1, 640, 480);
//! ground_truth.add_category(1, "car");
//! ground_truth.add_annotation(1, 1, [10.0, 20.0, 100.0, 50.0], false);
//! let detections = [Detection::new(1, 1, [10.0, 20.0, 100.0, 50.0], 0.9)];
//! let result = evaluate_bbox(&ground_truth, &detections, &EvalParams::default()).unwrap();
//! // Precision is `tp / (tp + fp + eps)`, as in pycocotools, hence "about 1".
//! assert!((result.stats[0] - 1.0).abs() < 1e-12); // AP
//! assert!((result.per_class_ap[&1].unwrap() - 1.0).abs() < 1e-12);
//! ```

#![warn(missing_docs)]

pub mod accumulate;
pub mod coco;
pub mod detrac;
mod error;
mod evaluate;
pub mod params;
pub mod summarize;

use std::collections::BTreeMap;

pub use accumulate::Accumulated;
pub use coco::{
    CocoAnnotation, CocoCategory, CocoDataset, CocoImage, Detection, detections_from_json_str,
    detections_to_json_string, load_detections, save_detections,
};
pub use detrac::{
    DetracGroundTruth, IgnorePolicy, IgnoreRegions, apply_ignore_regions, evaluate_detrac,
};
pub use error::MetricsError;
pub use params::{AreaRange, EvalParams};
pub use summarize::{STAT_NAMES, summary_lines};

/// Everything a COCO bbox evaluation produces.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    /// pycocotools' `COCOeval.stats`: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs,
    /// ARm, ARl (see [`STAT_NAMES`]); `-1` where nothing could be measured.
    pub stats: [f64; 12],
    /// AP per category id: precision averaged over all IoU thresholds and recall points, at
    /// area `all` and the largest detection limit (100 by default), i.e. the AP column of
    /// the usual per-class tables. `None` when the category has no non-crowd ground truth.
    pub per_class_ap: BTreeMap<u64, Option<f64>>,
    /// As `per_class_ap`, at IoU 0.5 only (`None` also when 0.5 is not a threshold).
    pub per_class_ap50: BTreeMap<u64, Option<f64>>,
    /// The accumulated precision/recall arrays, for curves and further statistics.
    pub accumulated: Accumulated,
    /// The parameters used.
    pub params: EvalParams,
}

impl EvalResult {
    /// The 12 lines pycocotools' `summarize()` prints.
    pub fn summary_lines(&self) -> Vec<String> {
        summary_lines(&self.stats, &self.params)
    }
}

/// Evaluates detections against a ground truth exactly as pycocotools'
/// `COCOeval(gt, gt.loadRes(dets), 'bbox')` with `evaluate(); accumulate(); summarize()`.
///
/// Fails when the ground truth is inconsistent ([`CocoDataset::validate`]), a detection names
/// an unknown image or category or holds a non-finite number
/// ([`CocoDataset::check_detections`]), or the parameters are unusable.
pub fn evaluate_bbox(
    ground_truth: &CocoDataset,
    detections: &[Detection],
    params: &EvalParams,
) -> Result<EvalResult, MetricsError> {
    params.validate()?;
    ground_truth.validate()?;
    ground_truth.check_detections(detections)?;
    let evaluation = evaluate::evaluate(ground_truth, detections, params);
    let accumulated = accumulate::accumulate(&evaluation, params);
    let stats = summarize::summarize(&accumulated, params);
    let per_class_ap = per_class(&accumulated, params, None);
    let per_class_ap50 = per_class(&accumulated, params, Some(0.5));
    Ok(EvalResult {
        stats,
        per_class_ap,
        per_class_ap50,
        accumulated,
        params: params.clone(),
    })
}

/// Mean precision per category at area `all` and the largest detection limit, over all IoU
/// thresholds or the one given.
fn per_class(
    accumulated: &Accumulated,
    params: &EvalParams,
    iou_threshold: Option<f64>,
) -> BTreeMap<u64, Option<f64>> {
    let [num_t, num_r, _, _, num_m] = accumulated.shape;
    let area = params
        .area_ranges
        .iter()
        .position(|range| range.label == "all");
    let thresholds: Vec<usize> = (0..num_t)
        .filter(|&t| iou_threshold.is_none_or(|value| params.iou_thresholds[t] == value))
        .collect();
    accumulated
        .category_ids
        .iter()
        .enumerate()
        .map(|(k, &category_id)| {
            let value = area.and_then(|a| {
                let values = thresholds.iter().flat_map(|&t| {
                    (0..num_r).map(move |r| accumulated.precision_at(t, r, k, a, num_m - 1))
                });
                let mean = summarize::mean_present(values);
                (mean > -1.0).then_some(mean)
            });
            (category_id, value)
        })
        .collect()
}
