//! Training targets and losses of EfficientDet: anchor labelling (IoU arg-max matching at 0.5
//! with a forced match per ground-truth box), focal loss (alpha 0.25, gamma 1.5) on class
//! logits and Huber loss (delta 0.1, weight 50) on box codes, both normalised by the number
//! of positive anchors (+1), as effdet's `DetBenchTrain` / `loss.py` compute them. Anchors
//! whose best match lies mostly inside an ignored region get no loss at all.
//!
//! Reference: effdet `anchors.py::AnchorLabeler`, `loss.py`,
//! <https://github.com/rwightman/efficientdet-pytorch/blob/v0.4.1/effdet/loss.py>

use ant_geom::BoxXyxy;
use burn::tensor::{Device, Tensor, TensorData};

use crate::anchors::{Anchors, encode_box};
use crate::detector::HeadOutputs;

/// Loss hyper-parameters (effdet's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossConfig {
    /// Focal loss alpha.
    pub alpha: f32,
    /// Focal loss gamma.
    pub gamma: f32,
    /// Huber delta.
    pub delta: f32,
    /// Weight of the box loss in the total.
    pub box_loss_weight: f32,
    /// IoU at or above which an anchor is positive.
    pub match_threshold: f32,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            alpha: 0.25,
            gamma: 1.5,
            delta: 0.1,
            box_loss_weight: 50.0,
            match_threshold: 0.5,
        }
    }
}

/// What each anchor of one image should predict.
#[derive(Clone, Debug, PartialEq)]
pub struct AnchorTargets {
    /// Per anchor: `Some(class)` for a positive, `None` for a negative.
    pub classes: Vec<Option<usize>>,
    /// Per anchor: whether it takes part in the class loss (false inside ignored regions).
    pub valid: Vec<bool>,
    /// Per anchor: encoded box target `(ty, tx, th, tw)` (zeros for negatives).
    pub boxes: Vec<[f32; 4]>,
    /// Number of positive anchors.
    pub num_positives: usize,
}

/// Fraction of `b` covered by any of `regions` (regions assumed disjoint enough; capped at 1).
fn covered_fraction(b: &BoxXyxy, regions: &[BoxXyxy]) -> f32 {
    let area = b.area();
    if area <= 0.0 {
        return 0.0;
    }
    (regions.iter().map(|r| r.intersection(b)).sum::<f32>() / area).min(1.0)
}

/// Labels the anchors of one image (boxes in input pixels, classes 0-based).
pub fn label_anchors(
    anchors: &Anchors,
    gt_boxes: &[BoxXyxy],
    gt_classes: &[usize],
    ignored_regions: &[BoxXyxy],
    config: &LossConfig,
) -> AnchorTargets {
    let n = anchors.len();
    let mut best_gt: Vec<Option<(usize, f32)>> = vec![None; n];
    let mut best_anchor_per_gt: Vec<(usize, f32)> = vec![(usize::MAX, -1.0); gt_boxes.len()];
    for (a, anchor) in anchors.boxes.iter().enumerate() {
        for (g, gt) in gt_boxes.iter().enumerate() {
            let iou = anchor.iou(gt);
            if iou > best_gt[a].map_or(-1.0, |(_, v)| v) {
                best_gt[a] = Some((g, iou));
            }
            if iou > best_anchor_per_gt[g].1 {
                best_anchor_per_gt[g] = (a, iou);
            }
        }
    }
    let mut matched: Vec<Option<usize>> = best_gt
        .iter()
        .map(|m| m.and_then(|(g, iou)| (iou >= config.match_threshold).then_some(g)))
        .collect();
    // Every ground-truth box keeps at least its best anchor (effdet's force_match_for_each_row).
    for (g, &(a, iou)) in best_anchor_per_gt.iter().enumerate() {
        if a != usize::MAX && iou > 0.0 {
            matched[a] = Some(g);
        }
    }
    let valid: Vec<bool> = anchors
        .boxes
        .iter()
        .zip(&matched)
        .map(|(anchor, m)| m.is_some() || covered_fraction(anchor, ignored_regions) < 0.5)
        .collect();
    let classes: Vec<Option<usize>> = matched.iter().map(|m| m.map(|g| gt_classes[g])).collect();
    let boxes = matched
        .iter()
        .zip(&anchors.boxes)
        .map(|(m, anchor)| m.map_or([0.0; 4], |g| encode_box(&gt_boxes[g], anchor)))
        .collect();
    let num_positives = matched.iter().filter(|m| m.is_some()).count();
    AnchorTargets {
        classes,
        valid,
        boxes,
        num_positives,
    }
}

/// The losses of a batch.
#[derive(Clone, Debug)]
pub struct DetectionLoss {
    /// `class + box_loss_weight * box`.
    pub total: Tensor<1>,
    /// Focal loss.
    pub class: Tensor<1>,
    /// Huber loss.
    pub boxes: Tensor<1>,
}

/// Concatenates per-level head outputs `[b, a*w, h, w]` into `[b, anchors, w]`, the anchors
/// in the order of [`crate::Anchors`] (level, y, x, anchor): what the loss, the distillation
/// loss and decoding read.
pub fn concat_levels(outputs: &[Tensor<4>], width: usize) -> Tensor<3> {
    let parts: Vec<Tensor<3>> = outputs
        .iter()
        .map(|x| {
            let [batch, channels, h, w] = x.dims();
            x.clone()
                .permute([0, 2, 3, 1])
                .reshape([batch, h * w * channels / width, width])
        })
        .collect();
    Tensor::cat(parts, 1)
}

/// The sum of every element in two stages, rows of `c` terms and then the `n / c` row sums,
/// `c` the largest divisor of `n` not above `sqrt(n)`: a loss sums a few hundred thousand
/// terms, and one `f32` reduction of that length rounds by up to 1e-3 of the total,
/// differently on each backend. The losses' counts (anchors x classes, a multiple of 9) have a
/// divisor near `sqrt(n)`; a prime `n` would fall back to one long row. The gradient is the
/// same as a plain sum's.
pub fn staged_sum<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let count = x.shape().num_elements();
    let mut columns = (count as f64).sqrt() as usize;
    while columns > 1 && !count.is_multiple_of(columns) {
        columns -= 1;
    }
    let columns = columns.max(1);
    x.reshape([count / columns, columns]).sum_dim(1).sum()
}

/// The mean of every element through [`staged_sum`].
pub fn staged_mean<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let count = x.shape().num_elements();
    staged_sum(x).div_scalar(count as f64)
}

/// Focal + Huber loss of raw head outputs against per-image targets.
pub fn detection_loss(
    outputs: &HeadOutputs,
    targets: &[AnchorTargets],
    num_classes: usize,
    config: &LossConfig,
    device: &Device,
) -> DetectionLoss {
    let logits = concat_levels(&outputs.class, num_classes); // [b, n, c]
    let codes = concat_levels(&outputs.boxes, 4); // [b, n, 4]
    let [batch, anchors, _] = logits.dims();
    let mut onehot = vec![0f32; batch * anchors * num_classes];
    let mut class_weight = vec![0f32; batch * anchors * num_classes];
    let mut box_target = vec![0f32; batch * anchors * 4];
    let mut box_weight = vec![0f32; batch * anchors * 4];
    let mut positives = 0usize;
    for (image, t) in targets.iter().enumerate() {
        positives += t.num_positives;
        for a in 0..anchors {
            let base = (image * anchors + a) * num_classes;
            if t.valid[a] {
                class_weight[base..base + num_classes].fill(1.0);
            }
            if let Some(class) = t.classes[a] {
                onehot[base + class] = 1.0;
                let b = (image * anchors + a) * 4;
                box_target[b..b + 4].copy_from_slice(&t.boxes[a]);
                box_weight[b..b + 4].fill(1.0);
            }
        }
    }
    let normaliser = positives as f32 + 1.0;
    let tensor = |values: Vec<f32>, width: usize| -> Tensor<3> {
        Tensor::from_data(TensorData::new(values, [batch, anchors, width]), device)
    };
    let onehot = tensor(onehot, num_classes);
    let class_weight = tensor(class_weight, num_classes);
    // Focal loss: alpha_t * (1 - p_t)^gamma * BCE(logits, targets).
    let probability = burn::tensor::activation::sigmoid(logits.clone());
    let p_t = onehot.clone() * probability.clone()
        + onehot.clone().neg().add_scalar(1.0) * probability.neg().add_scalar(1.0);
    let alpha_t = onehot.clone().mul_scalar(config.alpha)
        + onehot
            .clone()
            .neg()
            .add_scalar(1.0)
            .mul_scalar(1.0 - config.alpha);
    let modulating = p_t
        .neg()
        .add_scalar(1.0)
        .clamp_min(0.0)
        .powf_scalar(config.gamma);
    // BCE with logits, stable: max(x, 0) - x * y + log(1 + exp(-|x|)).
    let bce = logits.clone().clamp_min(0.0) - logits.clone() * onehot
        + logits.abs().neg().exp().add_scalar(1.0).log();
    let class_loss = staged_sum(alpha_t * modulating * bce * class_weight).div_scalar(normaliser);
    // Huber on box codes of positives.
    let difference = (codes - tensor(box_target, 4)).abs();
    let quadratic = difference.clone().clamp_max(config.delta);
    let linear = difference - quadratic.clone();
    let huber =
        quadratic.clone().powf_scalar(2.0).mul_scalar(0.5) + linear.mul_scalar(config.delta);
    let box_loss = staged_sum(huber * tensor(box_weight, 4)).div_scalar(normaliser * 4.0);
    DetectionLoss {
        total: class_loss.clone() + box_loss.clone().mul_scalar(config.box_loss_weight),
        class: class_loss,
        boxes: box_loss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_sum_a_loss_sized_tensor_to_f64_precision_with_a_plain_sums_gradient() {
        // Anchors x classes of the main job's 256 px model, batch 4: 196,416 terms.
        let device = Device::flex().autodiff();
        let dims = [4, 12_276, 4];
        let count: usize = dims.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|i| 0.37 + ((i as f32) * 0.618_034).fract() * 1e-3)
            .collect();
        let exact: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let x = Tensor::<3>::from_data(TensorData::new(values, dims), &device).require_grad();
        let total = staged_sum(x.clone());
        let ours = f64::from(total.clone().into_scalar::<f32>());
        assert!(((ours - exact) / exact).abs() < 1e-6, "{ours} vs {exact}");
        let grad: Vec<f32> = x
            .grad(&total.backward())
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(grad.iter().all(|g| *g == 1.0));
        let mean = f64::from(staged_mean(x).into_scalar::<f32>());
        assert!((mean - exact / count as f64).abs() < 1e-6 * mean);
    }
    use crate::config::EfficientDetConfig;

    #[test]
    fn should_match_gt_to_its_best_anchor_and_encode_zero_for_an_exact_anchor() {
        let config = EfficientDetConfig::d0(4).with_image_size(128);
        let anchors = Anchors::new(&config);
        let gt = anchors.boxes[40];
        let targets = label_anchors(&anchors, &[gt], &[2], &[], &LossConfig::default());
        assert_eq!(targets.classes[40], Some(2));
        assert_eq!(targets.boxes[40], [0.0, 0.0, 0.0, 0.0]);
        assert!(targets.num_positives >= 1);
        assert!(targets.valid.iter().all(|v| *v));
    }

    #[test]
    fn should_ignore_negative_anchors_inside_ignored_regions() {
        let config = EfficientDetConfig::d0(4).with_image_size(128);
        let anchors = Anchors::new(&config);
        let region = BoxXyxy {
            x1: 0.0,
            y1: 0.0,
            x2: 128.0,
            y2: 64.0,
        };
        let targets = label_anchors(&anchors, &[], &[], &[region], &LossConfig::default());
        assert_eq!(targets.num_positives, 0);
        let ignored = targets.valid.iter().filter(|v| !**v).count();
        assert!(ignored > 0 && ignored < anchors.len());
    }

    #[test]
    fn should_compute_focal_loss_like_effdet_for_one_logit() {
        // One image, all logits 0 (p = 0.5), no positives: every anchor-class contributes
        // (1 - alpha) * 0.5^gamma * ln 2, normalised by 1.
        let device = Device::flex();
        let config = EfficientDetConfig::tiny(1).with_image_size(128);
        let anchors = Anchors::new(&config);
        let sizes = config.level_sizes();
        let zeros = |width: usize| -> Vec<Tensor<4>> {
            sizes
                .iter()
                .map(|&s| Tensor::zeros([1, 9 * width, s, s], &device))
                .collect()
        };
        let outputs = HeadOutputs {
            class: zeros(1),
            boxes: zeros(4),
        };
        let targets = label_anchors(&anchors, &[], &[], &[], &LossConfig::default());
        let loss = detection_loss(&outputs, &[targets], 1, &LossConfig::default(), &device);
        let expected = anchors.len() as f32 * 0.75 * 0.5f32.powf(1.5) * std::f32::consts::LN_2;
        let class: f32 = loss.class.into_scalar();
        assert!(
            (class - expected).abs() / expected < 1e-4,
            "{class} vs {expected}"
        );
        let boxes: f32 = loss.boxes.into_scalar();
        assert_eq!(boxes, 0.0);
    }
}
