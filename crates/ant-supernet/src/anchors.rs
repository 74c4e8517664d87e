//! Anchors and the box coder of EfficientDet.
//!
//! Per level (stride `s = 2^level`), per position (row-major over the map), per anchor
//! config (for each octave scale `2^(i/num_scales)`, for each aspect ratio): a box of size
//! `anchor_scale * s * octave * aspect` centred at `(s/2 + x*s, s/2 + y*s)`. This is the
//! order of the flattened head outputs. Box codes are `(ty, tx, th, tw)` relative to the
//! anchor (Faster R-CNN coder without scale factors).
//!
//! Reference: effdet `anchors.py`,
//! <https://github.com/rwightman/efficientdet-pytorch/blob/v0.4.1/effdet/anchors.py>

use ant_geom::BoxXyxy;

use crate::config::EfficientDetConfig;

/// All anchors of a detector config, as `BoxXyxy` in input pixels, in head-output order.
#[derive(Clone, Debug)]
pub struct Anchors {
    /// The anchor boxes.
    pub boxes: Vec<BoxXyxy>,
    /// Number of anchors on each level.
    pub per_level: Vec<usize>,
}

impl Anchors {
    /// Generates the anchors of `config` at its input size.
    pub fn new(config: &EfficientDetConfig) -> Self {
        let image_size = config.image_size as f64;
        let mut boxes = Vec::new();
        let mut per_level = Vec::new();
        for (offset, size) in config.level_sizes().iter().enumerate() {
            let level = config.min_level + offset;
            let stride = (2u64.pow(level as u32)) as f64;
            let before = boxes.len();
            let mut configs = Vec::new();
            for scale in 0..config.num_scales {
                let octave = 2f64.powf(scale as f64 / config.num_scales as f64);
                for &(aspect_x, aspect_y) in &config.aspect_ratios {
                    let base = config.anchor_scale as f64 * stride * octave;
                    configs.push((base * aspect_x as f64 / 2.0, base * aspect_y as f64 / 2.0));
                }
            }
            // effdet: centres from np.arange(stride / 2, image_size, stride).
            let centres: Vec<f64> = (0..*size)
                .map(|i| stride / 2.0 + i as f64 * stride)
                .filter(|c| *c < image_size)
                .collect();
            for &cy in &centres {
                for &cx in &centres {
                    for &(half_w, half_h) in &configs {
                        boxes.push(BoxXyxy {
                            x1: (cx - half_w) as f32,
                            y1: (cy - half_h) as f32,
                            x2: (cx + half_w) as f32,
                            y2: (cy + half_h) as f32,
                        });
                    }
                }
            }
            per_level.push(boxes.len() - before);
        }
        Self { boxes, per_level }
    }

    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }
}

/// Decodes `(ty, tx, th, tw)` against an anchor.
pub fn decode_box(code: [f32; 4], anchor: &BoxXyxy) -> BoxXyxy {
    let [ty, tx, th, tw] = code;
    let ha = anchor.y2 - anchor.y1;
    let wa = anchor.x2 - anchor.x1;
    let yc = ty * ha + (anchor.y1 + anchor.y2) / 2.0;
    let xc = tx * wa + (anchor.x1 + anchor.x2) / 2.0;
    let h = th.exp() * ha;
    let w = tw.exp() * wa;
    BoxXyxy {
        x1: xc - w / 2.0,
        y1: yc - h / 2.0,
        x2: xc + w / 2.0,
        y2: yc + h / 2.0,
    }
}

/// Encodes a ground-truth box against an anchor as `(ty, tx, th, tw)`.
pub fn encode_box(target: &BoxXyxy, anchor: &BoxXyxy) -> [f32; 4] {
    const EPS: f32 = 1e-8;
    let ha = (anchor.y2 - anchor.y1).max(EPS);
    let wa = (anchor.x2 - anchor.x1).max(EPS);
    let h = (target.y2 - target.y1).max(EPS);
    let w = (target.x2 - target.x1).max(EPS);
    let ty = ((target.y1 + target.y2) / 2.0 - (anchor.y1 + anchor.y2) / 2.0) / ha;
    let tx = ((target.x1 + target.x2) / 2.0 - (anchor.x1 + anchor.x2) / 2.0) / wa;
    [ty, tx, (h / ha).ln(), (w / wa).ln()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_generate_effdet_anchor_count_and_first_box() {
        let anchors = Anchors::new(&EfficientDetConfig::d0(4));
        assert_eq!(
            anchors.len(),
            9 * (64 * 64 + 32 * 32 + 16 * 16 + 8 * 8 + 4 * 4)
        );
        // Level 3, first position, scale 1, aspect (1, 1): 32 px square centred at (4, 4).
        let first = anchors.boxes[0];
        assert_eq!(
            (first.x1, first.y1, first.x2, first.y2),
            (-12.0, -12.0, 20.0, 20.0)
        );
        // Second config: aspect (1.4, 0.7).
        let second = anchors.boxes[1];
        assert!((second.x2 - second.x1 - 44.8).abs() < 1e-4);
        assert!((second.y2 - second.y1 - 22.4).abs() < 1e-4);
    }

    #[test]
    fn should_decode_what_it_encodes() {
        let anchor = BoxXyxy {
            x1: 10.0,
            y1: 20.0,
            x2: 50.0,
            y2: 40.0,
        };
        let target = BoxXyxy {
            x1: 12.0,
            y1: 18.0,
            x2: 70.0,
            y2: 45.0,
        };
        let back = decode_box(encode_box(&target, &anchor), &anchor);
        for (a, b) in [
            (back.x1, target.x1),
            (back.y1, target.y1),
            (back.x2, target.x2),
            (back.y2, target.y2),
        ] {
            assert!((a - b).abs() < 1e-4);
        }
    }
}
