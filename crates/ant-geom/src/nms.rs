//! Greedy non-maximum suppression with the semantics of `torchvision.ops.nms` and
//! `torchvision.ops.batched_nms`
//! (<https://github.com/pytorch/vision/blob/v0.20.0/torchvision/csrc/ops/cpu/nms_kernel.cpp>).
//!
//! Boxes are visited in descending score order; a box is kept unless a kept box overlaps it
//! with IoU strictly greater than the threshold. Scores are ordered with [`f32::total_cmp`]
//! and ties go to the lower index, so the result is deterministic (torchvision's unstable sort
//! leaves ties unspecified). A positive NaN score sorts above every number: filter NaN scores
//! before calling.
//!
//! IoU uses [`BoxXyxy::iou`], whose area is 0 for degenerate boxes; torchvision uses the
//! signed area there. The two agree for every box with `x1 <= x2` and `y1 <= y2`.
//!
//! [`mod@reference`] holds naive re-formulations that the tests compare the fast versions with, in
//! the manner of imageproc's `suppress.rs`.

use crate::BoxXyxy;

/// Indices of `scores` in descending score order, ties broken by lower index first.
fn descending_order(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // `sort_by` is stable, so equal scores keep ascending index order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Greedy NMS over `order`, where boxes of the same `group` (a class) may suppress each
/// other; stops once `limit` boxes are kept (boxes are visited best first, so these are the
/// first `limit` of the unlimited result).
///
/// Each visited box is compared with the boxes of its group kept so far and kept when none
/// overlaps it above the threshold. That is greedy NMS (a box is suppressed exactly when an
/// earlier kept box overlaps it) but costs one IoU per (visited box, kept box of its group)
/// instead of one per (kept box, later box): a detector keeping 100 of 5,000 candidates visits
/// few more than it keeps.
fn greedy_suppress(
    boxes: &[BoxXyxy],
    order: &[usize],
    iou_threshold: f32,
    limit: usize,
    group: impl Fn(usize) -> usize,
) -> Vec<usize> {
    let mut keep = Vec::new();
    let mut kept_by_group: Vec<(usize, Vec<BoxXyxy>)> = Vec::new();
    for &index in order {
        if keep.len() == limit {
            break;
        }
        let candidate = boxes[index];
        let key = group(index);
        let slot = match kept_by_group.iter().position(|(g, _)| *g == key) {
            Some(slot) => slot,
            None => {
                kept_by_group.push((key, Vec::new()));
                kept_by_group.len() - 1
            }
        };
        let kept = &mut kept_by_group[slot].1;
        if !kept
            .iter()
            .any(|kept_box| kept_box.iou(&candidate) > iou_threshold)
        {
            kept.push(candidate);
            keep.push(index);
        }
    }
    keep
}

/// Greedy NMS like `torchvision.ops.nms`: the indices of the kept boxes, in descending score
/// order (ties: lower index first).
///
/// A box is suppressed when its IoU with a kept, higher-ranked box is strictly greater than
/// `iou_threshold`.
///
/// # Panics
/// When `boxes` and `scores` differ in length.
pub fn nms(boxes: &[BoxXyxy], scores: &[f32], iou_threshold: f32) -> Vec<usize> {
    assert_eq!(boxes.len(), scores.len(), "nms needs one score per box");
    greedy_suppress(
        boxes,
        &descending_order(scores),
        iou_threshold,
        usize::MAX,
        |_| 0,
    )
}

/// Per-class NMS like `torchvision.ops.batched_nms`: boxes of different classes never suppress
/// each other. The kept indices are sorted by descending score (ties: lower index first).
///
/// # Panics
/// When `boxes`, `scores` and `classes` differ in length.
pub fn batched_nms(
    boxes: &[BoxXyxy],
    scores: &[f32],
    classes: &[usize],
    iou_threshold: f32,
) -> Vec<usize> {
    batched_nms_top(boxes, scores, classes, iou_threshold, usize::MAX)
}

/// The first `max_keep` indices of [`batched_nms`], computed without suppressing past them: a
/// detector that keeps its best 100 detections out of 5,000 candidates does 100 sweeps
/// instead of one per surviving box.
///
/// # Panics
/// When `boxes`, `scores` and `classes` differ in length.
pub fn batched_nms_top(
    boxes: &[BoxXyxy],
    scores: &[f32],
    classes: &[usize],
    iou_threshold: f32,
    max_keep: usize,
) -> Vec<usize> {
    assert_eq!(
        boxes.len(),
        scores.len(),
        "batched_nms needs one score per box"
    );
    assert_eq!(
        boxes.len(),
        classes.len(),
        "batched_nms needs one class per box"
    );
    greedy_suppress(
        boxes,
        &descending_order(scores),
        iou_threshold,
        max_keep,
        |index| classes[index],
    )
}

/// Naive re-formulations of [`nms`] and [`batched_nms`], kept as the reference the fast
/// versions are tested against.
pub mod reference {
    use crate::BoxXyxy;

    /// NMS by repeated selection: take the best remaining box (highest score, then lowest
    /// index), keep it, drop every remaining box that overlaps it with IoU above the threshold.
    pub fn nms(boxes: &[BoxXyxy], scores: &[f32], iou_threshold: f32) -> Vec<usize> {
        let mut remaining: Vec<usize> = (0..boxes.len()).collect();
        let mut keep = Vec::new();
        while !remaining.is_empty() {
            let mut best = 0;
            for candidate in 1..remaining.len() {
                let (a, b) = (remaining[candidate], remaining[best]);
                if scores[a].total_cmp(&scores[b]).is_gt() {
                    best = candidate;
                }
            }
            let chosen = remaining.remove(best);
            keep.push(chosen);
            remaining.retain(|&other| boxes[chosen].iou(&boxes[other]) <= iou_threshold);
        }
        keep
    }

    /// Per-class NMS by running [`nms`] on each class separately and merging the survivors in
    /// descending score order (ties: lower index first).
    pub fn batched_nms(
        boxes: &[BoxXyxy],
        scores: &[f32],
        classes: &[usize],
        iou_threshold: f32,
    ) -> Vec<usize> {
        let mut distinct_classes: Vec<usize> = classes.to_vec();
        distinct_classes.sort_unstable();
        distinct_classes.dedup();
        let mut keep = Vec::new();
        for class in distinct_classes {
            let members: Vec<usize> = (0..boxes.len()).filter(|&i| classes[i] == class).collect();
            let class_boxes: Vec<BoxXyxy> = members.iter().map(|&i| boxes[i]).collect();
            let class_scores: Vec<f32> = members.iter().map(|&i| scores[i]).collect();
            keep.extend(
                nms(&class_boxes, &class_scores, iou_threshold)
                    .into_iter()
                    .map(|k| members[k]),
            );
        }
        keep.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(x1: f32, y1: f32, x2: f32, y2: f32) -> BoxXyxy {
        BoxXyxy::new(x1, y1, x2, y2)
    }

    #[test]
    fn should_suppress_lower_scoring_overlap() {
        let boxes = [
            b(0.0, 0.0, 10.0, 10.0),
            b(1.0, 0.0, 11.0, 10.0),
            b(20.0, 20.0, 30.0, 30.0),
        ];
        let scores = [0.8, 0.9, 0.1];
        assert_eq!(nms(&boxes, &scores, 0.5), vec![1, 2]);
    }

    #[test]
    fn should_keep_overlap_exactly_at_threshold() {
        // IoU is exactly 0.5 (intersection 100, union 200): torchvision suppresses only above.
        let boxes = [b(0.0, 0.0, 10.0, 20.0), b(0.0, 0.0, 10.0, 10.0)];
        assert_eq!(boxes[0].iou(&boxes[1]), 0.5);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.5), vec![0, 1]);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.49), vec![0]);
    }

    #[test]
    fn should_break_score_ties_by_lower_index() {
        let boxes = [
            b(0.0, 0.0, 10.0, 10.0),
            b(0.0, 0.0, 10.0, 10.0),
            b(50.0, 0.0, 60.0, 10.0),
        ];
        assert_eq!(nms(&boxes, &[0.5, 0.5, 0.5], 0.5), vec![0, 2]);
    }

    #[test]
    fn should_not_suppress_across_classes() {
        let boxes = [
            b(0.0, 0.0, 10.0, 10.0),
            b(0.0, 0.0, 10.0, 10.0),
            b(0.0, 0.0, 10.0, 10.0),
        ];
        let scores = [0.3, 0.9, 0.6];
        assert_eq!(batched_nms(&boxes, &scores, &[0, 1, 0], 0.5), vec![1, 2]);
        assert_eq!(nms(&boxes, &scores, 0.5), vec![1]);
    }

    #[test]
    fn should_return_nothing_for_no_boxes() {
        assert!(nms(&[], &[], 0.5).is_empty());
        assert!(batched_nms(&[], &[], &[], 0.5).is_empty());
    }

    /// Boxes on a coarse grid, so that overlaps, exact ties and degenerate boxes all occur.
    fn detections() -> impl Strategy<Value = Vec<(BoxXyxy, f32, usize)>> {
        let one = (0u8..12, 0u8..12, 0u8..8, 0u8..8, 0u8..6, 0usize..3).prop_map(
            |(x, y, w, h, score, class)| {
                let (x, y) = (f32::from(x) * 2.0, f32::from(y) * 2.0);
                let the_box = BoxXyxy::new(x, y, x + f32::from(w) * 3.0, y + f32::from(h) * 3.0);
                (the_box, f32::from(score) / 5.0, class)
            },
        );
        prop::collection::vec(one, 0..40)
    }

    fn unzip(items: &[(BoxXyxy, f32, usize)]) -> (Vec<BoxXyxy>, Vec<f32>, Vec<usize>) {
        (
            items.iter().map(|item| item.0).collect(),
            items.iter().map(|item| item.1).collect(),
            items.iter().map(|item| item.2).collect(),
        )
    }

    /// The NMS invariants within each class: kept boxes overlap each other at most at the
    /// threshold, every dropped box overlaps a kept higher-ranked box above it, and the kept
    /// list is in descending score order.
    fn check_invariants(
        boxes: &[BoxXyxy],
        scores: &[f32],
        classes: &[usize],
        keep: &[usize],
        threshold: f32,
    ) -> Result<(), TestCaseError> {
        for (a_position, &a) in keep.iter().enumerate() {
            for &b_index in &keep[a_position + 1..] {
                prop_assert!(
                    scores[a] >= scores[b_index],
                    "kept list not sorted by score"
                );
                if classes[a] == classes[b_index] {
                    prop_assert!(boxes[a].iou(&boxes[b_index]) <= threshold);
                }
            }
        }
        let rank = |i: usize, j: usize| scores[i] > scores[j] || (scores[i] == scores[j] && i < j);
        for dropped in (0..boxes.len()).filter(|i| !keep.contains(i)) {
            let explained = keep.iter().any(|&k| {
                classes[k] == classes[dropped]
                    && rank(k, dropped)
                    && boxes[k].iou(&boxes[dropped]) > threshold
            });
            prop_assert!(explained, "box {dropped} dropped without a kept overlap");
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn should_match_reference_nms(items in detections(), threshold in 0.0f32..1.0) {
            let (boxes, scores, _) = unzip(&items);
            let keep = nms(&boxes, &scores, threshold);
            prop_assert_eq!(&keep, &reference::nms(&boxes, &scores, threshold));
            check_invariants(&boxes, &scores, &vec![0; boxes.len()], &keep, threshold)?;
        }

        #[test]
        fn should_match_reference_batched_nms(items in detections(), threshold in 0.0f32..1.0) {
            let (boxes, scores, classes) = unzip(&items);
            let keep = batched_nms(&boxes, &scores, &classes, threshold);
            prop_assert_eq!(&keep, &reference::batched_nms(&boxes, &scores, &classes, threshold));
            check_invariants(&boxes, &scores, &classes, &keep, threshold)?;
        }

        #[test]
        fn should_keep_the_first_of_batched_nms(
            items in detections(),
            threshold in 0.0f32..1.0,
            max_keep in 0usize..8,
        ) {
            let (boxes, scores, classes) = unzip(&items);
            let all = reference::batched_nms(&boxes, &scores, &classes, threshold);
            let top = batched_nms_top(&boxes, &scores, &classes, threshold, max_keep);
            prop_assert_eq!(&top[..], &all[..max_keep.min(all.len())]);
        }
    }
}
