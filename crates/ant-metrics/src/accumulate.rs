//! Stage 2 of COCO evaluation: precision/recall per IoU threshold, category, area range and
//! detection limit, with 101-point interpolated precision, as pycocotools'
//! `COCOeval.accumulate` computes them
//! (<https://github.com/cocodataset/cocoapi/blob/8c9bcc3cf640524c4c20a9c40e89cb6a2f2fa0e9/PythonAPI/pycocotools/cocoeval.py#L315-L420>).
//!
//! Per category, area range and limit `m`: the first `m` detections of every image are pooled
//! and stably sorted by descending score (numpy's mergesort; ties keep image order). With
//! `tp` and `fp` the running counts of matched and unmatched non-ignored detections and `n`
//! the non-ignored ground truth, recall is `tp / n` and precision `tp / (tp + fp + eps)`
//! (`eps = np.spacing(1)`). Precision is made non-increasing from the right, then read at the
//! first detection whose recall reaches each recall threshold (0 past the last detection).
//! Entries stay `-1` where the category has no non-ignored ground truth in that area range.

use crate::EvalParams;
use crate::evaluate::Evaluation;

/// The accumulated curves: pycocotools' `eval['precision']`, `eval['recall']` and
/// `eval['scores']`, with `-1` marking absent entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Accumulated {
    /// Category ids, in the order of the category axis.
    pub category_ids: Vec<u64>,
    /// `[T, R, K, A, M]`: IoU thresholds, recall thresholds, categories, area ranges, limits.
    pub shape: [usize; 5],
    /// Interpolated precision, `[T][R][K][A][M]` row-major.
    pub precision: Vec<f64>,
    /// Final recall, `[T][K][A][M]` row-major.
    pub recall: Vec<f64>,
    /// Score of the detection at which each precision entry was read, `[T][R][K][A][M]`.
    pub scores: Vec<f64>,
}

impl Accumulated {
    fn precision_index(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> usize {
        let [_, num_r, num_k, num_a, num_m] = self.shape;
        (((t * num_r + r) * num_k + k) * num_a + a) * num_m + m
    }

    fn recall_index(&self, t: usize, k: usize, a: usize, m: usize) -> usize {
        let [_, _, num_k, num_a, num_m] = self.shape;
        ((t * num_k + k) * num_a + a) * num_m + m
    }

    /// Interpolated precision at IoU threshold `t`, recall threshold `r`, category `k`,
    /// area range `a` and detection limit `m` (all indices); `-1` when absent.
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        self.precision[self.precision_index(t, r, k, a, m)]
    }

    /// Final recall at IoU threshold `t`, category `k`, area range `a` and detection limit `m`
    /// (all indices); `-1` when absent.
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        self.recall[self.recall_index(t, k, a, m)]
    }
}

/// Runs stage 2 on the output of stage 1.
pub(crate) fn accumulate(evaluation: &Evaluation, params: &EvalParams) -> Accumulated {
    let num_t = params.iou_thresholds.len();
    let num_r = params.recall_thresholds.len();
    let num_k = evaluation.category_ids.len();
    let num_a = params.area_ranges.len();
    let num_m = params.max_dets.len();
    let mut accumulated = Accumulated {
        category_ids: evaluation.category_ids.clone(),
        shape: [num_t, num_r, num_k, num_a, num_m],
        precision: vec![-1.0; num_t * num_r * num_k * num_a * num_m],
        recall: vec![-1.0; num_t * num_k * num_a * num_m],
        scores: vec![-1.0; num_t * num_r * num_k * num_a * num_m],
    };
    for (k, per_range) in evaluation.cells.iter().enumerate() {
        for (a, images) in per_range.iter().enumerate() {
            if images.is_empty() {
                continue;
            }
            let num_regular: usize = images.iter().map(|image| image.num_gt_regular).sum();
            for (m, &max_det) in params.max_dets.iter().enumerate() {
                if num_regular == 0 {
                    continue;
                }
                // (image, detection) pairs, the first `max_det` of each image, stably sorted.
                let mut pooled: Vec<(usize, usize)> = images
                    .iter()
                    .enumerate()
                    .flat_map(|(image, evaluation)| {
                        (0..evaluation.num_dets().min(max_det)).map(move |dt| (image, dt))
                    })
                    .collect();
                let score = |&(image, dt): &(usize, usize)| images[image].dt_scores[dt] + 0.0;
                pooled.sort_by(|a, b| score(b).total_cmp(&score(a)));
                let num_pooled = pooled.len();
                for t in 0..num_t {
                    let mut recall_curve = Vec::with_capacity(num_pooled);
                    let mut precision_curve = Vec::with_capacity(num_pooled);
                    let (mut true_positives, mut false_positives) = (0usize, 0usize);
                    for &(image, dt) in &pooled {
                        let evaluation = &images[image];
                        let slot = t * evaluation.num_dets() + dt;
                        if !evaluation.dt_ignore[slot] {
                            if evaluation.dt_matched[slot] {
                                true_positives += 1;
                            } else {
                                false_positives += 1;
                            }
                        }
                        let (tp, fp) = (true_positives as f64, false_positives as f64);
                        recall_curve.push(tp / num_regular as f64);
                        precision_curve.push(tp / (fp + tp + f64::EPSILON));
                    }
                    let recall_index = accumulated.recall_index(t, k, a, m);
                    accumulated.recall[recall_index] = recall_curve.last().copied().unwrap_or(0.0);
                    for i in (1..num_pooled).rev() {
                        if precision_curve[i] > precision_curve[i - 1] {
                            precision_curve[i - 1] = precision_curve[i];
                        }
                    }
                    for (r, &recall_threshold) in params.recall_thresholds.iter().enumerate() {
                        // `np.searchsorted(rc, recThrs, side='left')`.
                        let position =
                            recall_curve.partition_point(|&value| value < recall_threshold);
                        let index = accumulated.precision_index(t, r, k, a, m);
                        if position < num_pooled {
                            accumulated.precision[index] = precision_curve[position];
                            let (image, dt) = pooled[position];
                            accumulated.scores[index] = images[image].dt_scores[dt];
                        } else {
                            accumulated.precision[index] = 0.0;
                            accumulated.scores[index] = 0.0;
                        }
                    }
                }
            }
        }
    }
    accumulated
}
