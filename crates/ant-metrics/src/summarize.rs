//! Stage 3 of COCO evaluation: the 12 summary numbers of pycocotools' `COCOeval.stats` and
//! their printed table (`COCOeval.summarize`,
//! <https://github.com/cocodataset/cocoapi/blob/8c9bcc3cf640524c4c20a9c40e89cb6a2f2fa0e9/PythonAPI/pycocotools/cocoeval.py#L422-L493>).
//!
//! Each number is the mean of the entries above `-1` of a slice of the accumulated precision
//! (AP) or recall (AR) arrays, and `-1` when there are none. As in pycocotools, `stats[0]`
//! reads the detection limit 100 literally and the others read `max_dets[0..3]`; a missing
//! threshold, area label or limit gives `-1`.

use crate::{Accumulated, EvalParams};

/// Names of the 12 numbers, in their order.
pub const STAT_NAMES: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// One summary number: what it averages over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatSpec {
    /// Precision (AP) or recall (AR).
    pub average_precision: bool,
    /// One IoU threshold, or all of them.
    pub iou_threshold: Option<f64>,
    /// Area range label.
    pub area: &'static str,
    /// Detection limit.
    pub max_dets: usize,
}

/// The 12 specifications of `COCOeval.summarize` for `iouType='bbox'`.
pub fn stat_specs(params: &EvalParams) -> [StatSpec; 12] {
    let limit = |index: usize| params.max_dets.get(index).copied().unwrap_or(usize::MAX);
    let ap = |iou_threshold, area, max_dets| StatSpec {
        average_precision: true,
        iou_threshold,
        area,
        max_dets,
    };
    let ar = |area, max_dets| StatSpec {
        average_precision: false,
        iou_threshold: None,
        area,
        max_dets,
    };
    [
        ap(None, "all", 100),
        ap(Some(0.5), "all", limit(2)),
        ap(Some(0.75), "all", limit(2)),
        ap(None, "small", limit(2)),
        ap(None, "medium", limit(2)),
        ap(None, "large", limit(2)),
        ar("all", limit(0)),
        ar("all", limit(1)),
        ar("all", limit(2)),
        ar("small", limit(2)),
        ar("medium", limit(2)),
        ar("large", limit(2)),
    ]
}

/// Mean of the entries above -1, or -1 when there are none (pycocotools' `_summarize`).
pub(crate) fn mean_present(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for value in values.filter(|&value| value > -1.0) {
        sum += value;
        count += 1;
    }
    if count == 0 { -1.0 } else { sum / count as f64 }
}

/// One summary number over all categories.
pub fn summarize_one(accumulated: &Accumulated, params: &EvalParams, spec: StatSpec) -> f64 {
    let [num_t, num_r, num_k, _, _] = accumulated.shape;
    // Exact comparisons, like numpy's `iouThr == p.iouThrs` and pycocotools' list filters.
    let thresholds: Vec<usize> = (0..num_t)
        .filter(|&t| {
            spec.iou_threshold
                .is_none_or(|value| params.iou_thresholds[t] == value)
        })
        .collect();
    let areas: Vec<usize> = (0..params.area_ranges.len())
        .filter(|&a| params.area_ranges[a].label == spec.area)
        .collect();
    let limits: Vec<usize> = (0..params.max_dets.len())
        .filter(|&m| params.max_dets[m] == spec.max_dets)
        .collect();
    let mut values = Vec::new();
    for &t in &thresholds {
        for k in 0..num_k {
            for &a in &areas {
                for &m in &limits {
                    if spec.average_precision {
                        values.extend((0..num_r).map(|r| accumulated.precision_at(t, r, k, a, m)));
                    } else {
                        values.push(accumulated.recall_at(t, k, a, m));
                    }
                }
            }
        }
    }
    mean_present(values.into_iter())
}

/// The 12 numbers of `COCOeval.stats`.
pub fn summarize(accumulated: &Accumulated, params: &EvalParams) -> [f64; 12] {
    stat_specs(params).map(|spec| summarize_one(accumulated, params, spec))
}

/// The 12 lines `COCOeval.summarize` prints, e.g.
/// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.079`.
pub fn summary_lines(stats: &[f64; 12], params: &EvalParams) -> Vec<String> {
    let first = params.iou_thresholds.first().copied().unwrap_or(f64::NAN);
    let last = params.iou_thresholds.last().copied().unwrap_or(f64::NAN);
    stat_specs(params)
        .iter()
        .zip(stats)
        .map(|(spec, value)| {
            let (title, kind) = if spec.average_precision {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            let iou = match spec.iou_threshold {
                Some(threshold) => format!("{threshold:0.2}"),
                None => format!("{first:0.2}:{last:0.2}"),
            };
            format!(
                " {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6} | maxDets={max_dets:>3} ] = \
                 {value:0.3}",
                area = spec.area,
                max_dets = spec.max_dets,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_average_only_present_entries() {
        assert_eq!(mean_present([-1.0, 0.5, 1.0].into_iter()), 0.75);
        assert_eq!(mean_present([-1.0, -1.0].into_iter()), -1.0);
        assert_eq!(mean_present(std::iter::empty()), -1.0);
    }

    #[test]
    fn should_print_lines_like_pycocotools() {
        let mut stats = [0.0; 12];
        stats[0] = 0.07876689115891676;
        let lines = summary_lines(&stats, &EvalParams::default());
        assert_eq!(
            lines[0],
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.079"
        );
        assert_eq!(
            lines[1],
            " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.000"
        );
        assert_eq!(
            lines[9],
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.000"
        );
    }
}
