//! Evaluation parameters; [`EvalParams::default`] is pycocotools' `Params(iouType='bbox')`
//! (<https://github.com/cocodataset/cocoapi/blob/8c9bcc3cf640524c4c20a9c40e89cb6a2f2fa0e9/PythonAPI/pycocotools/cocoeval.py#L502-L511>).
//!
//! The thresholds are built exactly as `np.linspace` builds them (`start + i * step`, with the
//! last value set to `stop`), so that they are bit-identical to pycocotools' and a box pair at
//! IoU 0.75 is matched or not exactly as there.

use crate::MetricsError;

/// A named interval of annotation areas, inclusive at both ends (pycocotools ignores a box
/// when `area < min` or `area > max`).
#[derive(Clone, Debug, PartialEq)]
pub struct AreaRange {
    /// `all`, `small`, `medium` or `large` for the COCO ranges.
    pub label: String,
    /// Smallest area in range.
    pub min: f64,
    /// Largest area in range.
    pub max: f64,
}

/// What to evaluate: IoU thresholds, recall points, detection limits and area ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalParams {
    /// IoU thresholds: 0.50, 0.55, ..., 0.95 (10 values).
    pub iou_thresholds: Vec<f64>,
    /// Recall points of the interpolated precision: 0.00, 0.01, ..., 1.00 (101 values).
    pub recall_thresholds: Vec<f64>,
    /// Detections kept per image and category, ascending: 1, 10, 100. The largest also bounds
    /// the detections considered for matching.
    pub max_dets: Vec<usize>,
    /// Area ranges: all `[0, 1e10]`, small `[0, 32^2]`, medium `[32^2, 96^2]`,
    /// large `[96^2, 1e10]`.
    pub area_ranges: Vec<AreaRange>,
}

/// `np.linspace(start, stop, num, endpoint=True)`, value for value.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut values: Vec<f64> = (0..num).map(|index| index as f64 * step + start).collect();
    if let Some(last) = values.last_mut() {
        *last = stop;
    }
    values
}

impl Default for EvalParams {
    fn default() -> Self {
        let range = |label: &str, min: f64, max: f64| AreaRange {
            label: label.to_owned(),
            min,
            max,
        };
        Self {
            iou_thresholds: linspace(0.5, 0.95, 10),
            recall_thresholds: linspace(0.0, 1.0, 101),
            max_dets: vec![1, 10, 100],
            area_ranges: vec![
                range("all", 0.0, 1e10),
                range("small", 0.0, 32.0 * 32.0),
                range("medium", 32.0 * 32.0, 96.0 * 96.0),
                range("large", 96.0 * 96.0, 1e10),
            ],
        }
    }
}

impl EvalParams {
    /// Checks that every list is non-empty and `max_dets` is ascending.
    pub fn validate(&self) -> Result<(), MetricsError> {
        let invalid = |reason| Err(MetricsError::InvalidParams { reason });
        if self.iou_thresholds.is_empty() {
            return invalid("no IoU thresholds");
        }
        if self.recall_thresholds.is_empty() {
            return invalid("no recall thresholds");
        }
        if self.area_ranges.is_empty() {
            return invalid("no area ranges");
        }
        if self.max_dets.is_empty() {
            return invalid("no detection limits");
        }
        if self.max_dets.windows(2).any(|pair| pair[0] > pair[1]) {
            return invalid("detection limits must be ascending");
        }
        Ok(())
    }

    /// The largest detection limit.
    pub fn max_det(&self) -> usize {
        self.max_dets.iter().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_build_thresholds_like_numpy_linspace() {
        let params = EvalParams::default();
        assert_eq!(params.iou_thresholds.len(), 10);
        assert_eq!(params.iou_thresholds[0], 0.5);
        // pycocotools finds AP75 with `np.where(0.75 == p.iouThrs)`: it must be exact.
        assert_eq!(params.iou_thresholds[5], 0.75);
        assert_eq!(params.iou_thresholds[9], 0.95);
        assert_eq!(params.recall_thresholds.len(), 101);
        assert_eq!(params.recall_thresholds[100], 1.0);
        assert_eq!(params.recall_thresholds[1], 0.01);
    }

    #[test]
    fn should_refuse_unsorted_detection_limits() {
        let params = EvalParams {
            max_dets: vec![100, 1],
            ..EvalParams::default()
        };
        assert!(params.validate().is_err());
        assert!(EvalParams::default().validate().is_ok());
    }
}
