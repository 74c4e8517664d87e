//! From raw head outputs to detections: top-k candidates by class logit, box decoding,
//! per-class NMS, the best `max_detections` kept (effdet's `_post_process` and
//! `generate_detections`, without soft-NMS).

use ant_geom::transform::boxes_to_frame;
use ant_geom::{BoxXyxy, Letterbox, batched_nms_top};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::anchors::{Anchors, decode_box};
use crate::config::EfficientDetConfig;

/// One detected object.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Box in input-image pixels (x1, y1, x2, y2).
    pub bbox: BoxXyxy,
    /// Sigmoid of the class logit.
    pub score: f32,
    /// Class index, 0-based.
    pub class: usize,
}

/// The detections of one image, by descending score.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detections {
    /// The detections.
    pub items: Vec<Detection>,
}

impl Detections {
    /// The detections of a letterboxed input mapped back into its source frame's pixels
    /// (clipped to the frame); boxes that vanish in the mapping are dropped.
    pub fn to_frame(self, letterbox: &Letterbox) -> Self {
        let boxes: Vec<BoxXyxy> = self.items.iter().map(|d| d.bbox).collect();
        let items = self
            .items
            .into_iter()
            .zip(boxes_to_frame(letterbox, &boxes))
            .filter(|(_, bbox)| bbox.width() > 0.0 && bbox.height() > 0.0)
            .map(|(detection, bbox)| Detection { bbox, ..detection })
            .collect();
        Self { items }
    }

    /// Number of detections.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Flattens per-level outputs `[batch, anchors * width, h, w]` into, per image, rows of
/// `width` values in anchor order (level, y, x, anchor).
pub fn flatten_levels(outputs: &[Tensor<4>], width: usize) -> Vec<Vec<f32>> {
    let rows = crate::loss::concat_levels(outputs, width);
    let [batch, anchors, _] = rows.dims();
    let values: Vec<f32> = rows
        .into_data()
        .try_to_vec::<f32>()
        .expect("head outputs are f32");
    values
        .chunks_exact(anchors * width)
        .take(batch)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Turns head outputs into detections, one [`Detections`] per image.
pub fn postprocess(
    class_out: &[Tensor<4>],
    box_out: &[Tensor<4>],
    anchors: &Anchors,
    config: &EfficientDetConfig,
) -> Vec<Detections> {
    let num_classes = config.num_classes;
    let logits = flatten_levels(class_out, num_classes);
    let codes = flatten_levels(box_out, 4);
    logits
        .iter()
        .zip(&codes)
        .map(|(logits, codes)| detect_image(logits, codes, anchors, num_classes, config))
        .collect()
}

pub(crate) fn detect_image(
    logits: &[f32],
    codes: &[f32],
    anchors: &Anchors,
    num_classes: usize,
    config: &EfficientDetConfig,
) -> Detections {
    // (logit, index) pairs: the selection compares values in place instead of looking
    // every comparison up in `logits`. Order: logit descending, index ascending on ties.
    let mut order: Vec<(f32, usize)> = logits.iter().copied().zip(0..).collect();
    let keep = config.max_detection_points.min(order.len());
    let by_logit = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if keep < order.len() {
        order.select_nth_unstable_by(keep, by_logit);
        order.truncate(keep);
    }
    order.sort_unstable_by(by_logit);
    let mut boxes = Vec::with_capacity(keep);
    let mut scores = Vec::with_capacity(keep);
    let mut classes = Vec::with_capacity(keep);
    for &(_, flat) in &order {
        let anchor = flat / num_classes;
        let code = [
            codes[anchor * 4],
            codes[anchor * 4 + 1],
            codes[anchor * 4 + 2],
            codes[anchor * 4 + 3],
        ];
        boxes.push(decode_box(code, &anchors.boxes[anchor]));
        scores.push(1.0 / (1.0 + (-logits[flat]).exp()));
        classes.push(flat % num_classes);
    }
    let kept = batched_nms_top(
        &boxes,
        &scores,
        &classes,
        config.nms_iou_threshold,
        config.max_detections,
    );
    Detections {
        items: kept
            .into_iter()
            .map(|i| Detection {
                bbox: boxes[i],
                score: scores[i],
                class: classes[i],
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_map_detections_to_the_frame_and_drop_those_in_the_padding() {
        // A 960x540 frame letterboxed into 512x512: scale 512/960, content 512x288.
        let letterbox = Letterbox::new(960, 540, 512, 512);
        let detection = |bbox: BoxXyxy, class: usize| Detection {
            bbox,
            score: 0.5,
            class,
        };
        let detections = Detections {
            items: vec![
                detection(BoxXyxy::new(64.0, 32.0, 128.0, 96.0), 0),
                // Wholly in the bottom padding: clipped to nothing in the frame.
                detection(BoxXyxy::new(10.0, 300.0, 50.0, 400.0), 1),
                // Reaching into the padding: clipped at the frame's bottom edge.
                detection(BoxXyxy::new(256.0, 256.0, 320.0, 320.0), 2),
            ],
        };
        let mapped = detections.to_frame(&letterbox).items;
        let near = |a: BoxXyxy, b: BoxXyxy| {
            [(a.x1, b.x1), (a.y1, b.y1), (a.x2, b.x2), (a.y2, b.y2)]
                .iter()
                .all(|(p, q)| (p - q).abs() < 1e-3)
        };
        assert_eq!(mapped.len(), 2);
        assert!(near(
            mapped[0].bbox,
            BoxXyxy::new(120.0, 60.0, 240.0, 180.0)
        ));
        assert_eq!(mapped[1].class, 2);
        assert!(near(
            mapped[1].bbox,
            BoxXyxy::new(480.0, 480.0, 600.0, 540.0)
        ));
    }
}
