//! Stage 1 of COCO evaluation: match detections to ground truth per image, category and area
//! range, as pycocotools' `COCOeval.evaluate`, `computeIoU` and `evaluateImg` do
//! (<https://github.com/cocodataset/cocoapi/blob/8c9bcc3cf640524c4c20a9c40e89cb6a2f2fa0e9/PythonAPI/pycocotools/cocoeval.py#L121-L313>).
//!
//! The rules, each as pycocotools has it:
//! - Images are the ground truth's (all of them, sorted by id); categories likewise.
//! - Per image and category, detections are sorted by descending score with a stable sort
//!   (numpy's mergesort on `-score`, so ties keep file order) and cut to the largest
//!   detection limit.
//! - IoU is `maskUtils.iou` on `[x, y, w, h]` boxes in double precision with no `+1`; against a
//!   crowd box it is the intersection over the detection's area.
//! - A ground-truth box is ignored when it is a crowd or its `area` field lies outside the area
//!   range; ignored boxes are moved last (stable).
//! - Greedy matching per IoU threshold `t`: each detection in score order takes the
//!   unmatched (or crowd) ground truth with the highest IoU `>= min(t, 1 - 1e-10)`, a later box
//!   winning an exact tie, and stops at the first ignored box once it holds a regular one.
//! - A detection matched to an ignored box is ignored; an unmatched one whose own area
//!   (`w * h`) lies outside the area range is ignored.
//! - As in pycocotools, a match is recorded by the ground-truth id, and an id of 0 reads as
//!   "unmatched" afterwards; COCO ids start at 1, so this only matters for unusual files.

use std::collections::BTreeMap;
use std::collections::HashMap;

use crate::{CocoAnnotation, CocoDataset, Detection, EvalParams};

/// pycocotools' `evaluateImg` result for one image, category and area range.
#[derive(Clone, Debug)]
pub(crate) struct ImageEvaluation {
    /// Scores of the kept detections, descending.
    pub dt_scores: Vec<f64>,
    /// `[threshold][detection]`: matched to a ground truth (pycocotools' `dtMatches != 0`).
    pub dt_matched: Vec<bool>,
    /// `[threshold][detection]`: ignored (pycocotools' `dtIgnore`).
    pub dt_ignore: Vec<bool>,
    /// Ground-truth boxes that are not ignored.
    pub num_gt_regular: usize,
}

impl ImageEvaluation {
    /// Number of detections kept for this image and category.
    pub fn num_dets(&self) -> usize {
        self.dt_scores.len()
    }
}

/// All per-image evaluations, grouped by category and area range; images in ascending id
/// order, those with neither ground truth nor detections left out (pycocotools' `None`).
#[derive(Clone, Debug)]
pub(crate) struct Evaluation {
    /// The evaluated category ids, ascending.
    pub category_ids: Vec<u64>,
    /// `cells[category][area range]`.
    pub cells: Vec<Vec<Vec<ImageEvaluation>>>,
}

/// Sort key that orders `-0.0` and `0.0` alike, as numpy's comparison does.
fn score_key(score: f64) -> f64 {
    score + 0.0
}

/// `maskUtils.iou` for boxes (`bbIou` in `maskApi.c`), one detection against one ground truth.
pub(crate) fn bbox_iou(detection: &[f64; 4], ground_truth: &[f64; 4], crowd: bool) -> f64 {
    let ground_truth_area = ground_truth[2] * ground_truth[3];
    let detection_area = detection[2] * detection[3];
    let width = (detection[2] + detection[0]).min(ground_truth[2] + ground_truth[0])
        - detection[0].max(ground_truth[0]);
    if width <= 0.0 {
        return 0.0;
    }
    let height = (detection[3] + detection[1]).min(ground_truth[3] + ground_truth[1])
        - detection[1].max(ground_truth[1]);
    if height <= 0.0 {
        return 0.0;
    }
    let intersection = width * height;
    let union = if crowd {
        detection_area
    } else {
        detection_area + ground_truth_area - intersection
    };
    intersection / union
}

/// Matches one image and category for every area range.
fn evaluate_cell(
    ground_truths: &[&CocoAnnotation],
    detections: &[(u64, &Detection)],
    params: &EvalParams,
) -> Vec<ImageEvaluation> {
    let num_thresholds = params.iou_thresholds.len();
    let num_gt = ground_truths.len();
    let num_dt = detections.len();
    // IoU of each detection (score order) with each ground truth (file order).
    let ious: Vec<f64> = detections
        .iter()
        .flat_map(|(_, detection)| {
            ground_truths
                .iter()
                .map(|truth| bbox_iou(&detection.bbox, &truth.bbox, truth.iscrowd))
        })
        .collect();
    let mut per_range = Vec::with_capacity(params.area_ranges.len());
    for range in &params.area_ranges {
        let ignored: Vec<bool> = ground_truths
            .iter()
            .map(|truth| truth.iscrowd || truth.area < range.min || truth.area > range.max)
            .collect();
        // Regular ground truth first, ignored last, each group in file order.
        let mut order: Vec<usize> = (0..num_gt).collect();
        order.sort_by_key(|&index| ignored[index]);
        let ignored_sorted: Vec<bool> = order.iter().map(|&index| ignored[index]).collect();

        let mut gt_taken_by = vec![0u64; num_thresholds * num_gt];
        let mut dt_match_id = vec![0u64; num_thresholds * num_dt];
        let mut dt_ignore = vec![false; num_thresholds * num_dt];
        if num_gt > 0 && num_dt > 0 {
            for (threshold_index, &threshold) in params.iou_thresholds.iter().enumerate() {
                let taken = &mut gt_taken_by[threshold_index * num_gt..][..num_gt];
                for (dt_index, &(dt_id, _)) in detections.iter().enumerate() {
                    let mut best_iou = threshold.min(1.0 - 1e-10);
                    let mut best: Option<usize> = None;
                    for (position, &gt_index) in order.iter().enumerate() {
                        if taken[position] > 0 && !ground_truths[gt_index].iscrowd {
                            continue;
                        }
                        if let Some(current) = best
                            && !ignored_sorted[current]
                            && ignored_sorted[position]
                        {
                            break;
                        }
                        let iou = ious[dt_index * num_gt + gt_index];
                        if iou < best_iou {
                            continue;
                        }
                        best_iou = iou;
                        best = Some(position);
                    }
                    if let Some(position) = best {
                        let slot = threshold_index * num_dt + dt_index;
                        dt_ignore[slot] = ignored_sorted[position];
                        dt_match_id[slot] = ground_truths[order[position]].id;
                        taken[position] = dt_id;
                    }
                }
            }
        }
        for (dt_index, (_, detection)) in detections.iter().enumerate() {
            let area = detection.bbox[2] * detection.bbox[3];
            if area < range.min || area > range.max {
                for threshold_index in 0..num_thresholds {
                    let slot = threshold_index * num_dt + dt_index;
                    if dt_match_id[slot] == 0 {
                        dt_ignore[slot] = true;
                    }
                }
            }
        }
        per_range.push(ImageEvaluation {
            dt_scores: detections
                .iter()
                .map(|(_, detection)| detection.score)
                .collect(),
            dt_matched: dt_match_id.iter().map(|&id| id != 0).collect(),
            dt_ignore,
            num_gt_regular: ignored.iter().filter(|&&flag| !flag).count(),
        });
    }
    per_range
}

/// Runs stage 1 over every image and category of the ground truth. Inputs must have passed
/// `CocoDataset::validate` and `check_detections`, and `params.validate`.
pub(crate) fn evaluate(
    ground_truth: &CocoDataset,
    detections: &[Detection],
    params: &EvalParams,
) -> Evaluation {
    let category_ids = ground_truth.category_ids();
    let image_ids = ground_truth.image_ids();
    let category_index: HashMap<u64, usize> = category_ids
        .iter()
        .enumerate()
        .map(|(index, &id)| (id, index))
        .collect();
    let image_index: HashMap<u64, usize> = image_ids
        .iter()
        .enumerate()
        .map(|(index, &id)| (id, index))
        .collect();

    // Cells keyed by (category, image) so that iteration visits images in ascending order.
    let mut cell_truths: BTreeMap<(usize, usize), Vec<&CocoAnnotation>> = BTreeMap::new();
    let mut cell_detections: BTreeMap<(usize, usize), Vec<(u64, &Detection)>> = BTreeMap::new();
    for truth in &ground_truth.annotations {
        if let (Some(&category), Some(&image)) = (
            category_index.get(&truth.category_id),
            image_index.get(&truth.image_id),
        ) {
            cell_truths
                .entry((category, image))
                .or_default()
                .push(truth);
        }
    }
    for (position, detection) in detections.iter().enumerate() {
        if let (Some(&category), Some(&image)) = (
            category_index.get(&detection.category_id),
            image_index.get(&detection.image_id),
        ) {
            // `loadRes` numbers detections 1..=N in file order.
            let id = position as u64 + 1;
            cell_detections
                .entry((category, image))
                .or_default()
                .push((id, detection));
        }
    }
    let mut cell_keys: Vec<(usize, usize)> = cell_truths
        .keys()
        .chain(cell_detections.keys())
        .copied()
        .collect();
    cell_keys.sort_unstable();
    cell_keys.dedup();

    let max_det = params.max_det();
    let mut cells = vec![vec![Vec::new(); params.area_ranges.len()]; category_ids.len()];
    for key in cell_keys {
        let truths = cell_truths.get(&key).map_or(&[][..], Vec::as_slice);
        let mut sorted: Vec<(u64, &Detection)> =
            cell_detections.get(&key).cloned().unwrap_or_default();
        // Stable, like numpy's mergesort of `-score`.
        sorted.sort_by(|a, b| score_key(b.1.score).total_cmp(&score_key(a.1.score)));
        sorted.truncate(max_det);
        for (range_index, result) in evaluate_cell(truths, &sorted, params)
            .into_iter()
            .enumerate()
        {
            cells[key.0][range_index].push(result);
        }
    }
    Evaluation {
        category_ids,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_compute_iou_without_plus_one() {
        // 10x10 boxes offset by 5: 50 / 150.
        let iou = bbox_iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 10.0, 10.0], false);
        assert!((iou - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn should_divide_by_detection_area_for_crowd() {
        // A 10x10 detection fully inside a 100x100 crowd region has IoU 1.
        assert_eq!(
            bbox_iou(&[5.0, 5.0, 10.0, 10.0], &[0.0, 0.0, 100.0, 100.0], true),
            1.0
        );
        // Half inside: 0.5.
        assert_eq!(
            bbox_iou(&[95.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 100.0, 100.0], true),
            0.5
        );
    }

    #[test]
    fn should_give_zero_iou_when_boxes_only_touch() {
        assert_eq!(
            bbox_iou(&[10.0, 0.0, 5.0, 5.0], &[0.0, 0.0, 10.0, 10.0], false),
            0.0
        );
    }
}
