//! Typed axis-aligned boxes: [`BoxXyxy`] (corners) and [`BoxXywh`] (corner plus size).
//!
//! Both hold continuous pixel coordinates: a box from `x1 = 0` to `x2 = 10` is 10 pixels wide,
//! and areas have no legacy `+1` (the COCO and torchvision rule; candle's
//! `object_detection.rs` and the Pascal VOC devkit use the `+1` form, which we never do).
//! IoU follows `torchvision.ops.box_iou`
//! (<https://github.com/pytorch/vision/blob/v0.20.0/torchvision/ops/boxes.py>).

use serde::{Deserialize, Serialize};

/// A box given by its top-left `(x1, y1)` and bottom-right `(x2, y2)` corners, in continuous
/// pixel coordinates (`width = x2 - x1`, no `+1`).
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct BoxXyxy {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

/// A box given by its top-left corner `(x, y)` and its size `(w, h)`: the COCO `bbox` layout.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct BoxXywh {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl BoxXyxy {
    /// Builds a box from its corners.
    pub fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// `x2 - x1`; negative for a box whose corners are swapped.
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    /// `y2 - y1`; negative for a box whose corners are swapped.
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    /// `width * height`, or 0 when the box is degenerate (a width or height that is not
    /// positive, or NaN).
    pub fn area(&self) -> f32 {
        let (width, height) = (self.width(), self.height());
        if width > 0.0 && height > 0.0 {
            width * height
        } else {
            0.0
        }
    }

    /// Whether the box has a positive width and height.
    pub fn is_valid(&self) -> bool {
        self.width() > 0.0 && self.height() > 0.0
    }

    /// Area of the overlap of the two boxes (0 when they do not overlap).
    pub fn intersection(&self, other: &BoxXyxy) -> f32 {
        let width = self.x2.min(other.x2) - self.x1.max(other.x1);
        let height = self.y2.min(other.y2) - self.y1.max(other.y1);
        if width > 0.0 && height > 0.0 {
            width * height
        } else {
            0.0
        }
    }

    /// Intersection over union, as `torchvision.ops.box_iou` computes it for valid boxes.
    ///
    /// Returns 0 when the union is empty (two degenerate boxes), where torchvision would
    /// return NaN.
    pub fn iou(&self, other: &BoxXyxy) -> f32 {
        let intersection = self.intersection(other);
        let union = self.area() + other.area() - intersection;
        if union > 0.0 {
            intersection / union
        } else {
            0.0
        }
    }

    /// The same box as corner plus size.
    pub fn to_xywh(&self) -> BoxXywh {
        BoxXywh {
            x: self.x1,
            y: self.y1,
            w: self.width(),
            h: self.height(),
        }
    }

    /// Clamps every coordinate into the image `[0, width] x [0, height]`, as
    /// `torchvision.ops.clip_boxes_to_image` does. A box fully outside becomes degenerate.
    pub fn clip(&self, width: f32, height: f32) -> BoxXyxy {
        BoxXyxy {
            x1: self.x1.clamp(0.0, width),
            y1: self.y1.clamp(0.0, height),
            x2: self.x2.clamp(0.0, width),
            y2: self.y2.clamp(0.0, height),
        }
    }

    /// The box multiplied by `factor` in both axes (about the origin).
    pub fn scale(&self, factor: f32) -> BoxXyxy {
        BoxXyxy {
            x1: self.x1 * factor,
            y1: self.y1 * factor,
            x2: self.x2 * factor,
            y2: self.y2 * factor,
        }
    }

    /// The centre `(cx, cy)` of the box.
    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) * 0.5, (self.y1 + self.y2) * 0.5)
    }
}

impl BoxXywh {
    /// Builds a box from its top-left corner and size.
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self { x, y, w, h }
    }

    /// The same box as two corners (`x2 = x + w`, `y2 = y + h`).
    pub fn to_xyxy(&self) -> BoxXyxy {
        BoxXyxy {
            x1: self.x,
            y1: self.y,
            x2: self.x + self.w,
            y2: self.y + self.h,
        }
    }

    /// `w * h`, or 0 when the box is degenerate.
    pub fn area(&self) -> f32 {
        if self.w > 0.0 && self.h > 0.0 {
            self.w * self.h
        } else {
            0.0
        }
    }
}

impl From<BoxXywh> for BoxXyxy {
    fn from(value: BoxXywh) -> Self {
        value.to_xyxy()
    }
}

impl From<BoxXyxy> for BoxXywh {
    fn from(value: BoxXyxy) -> Self {
        value.to_xywh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_measure_size_without_plus_one() {
        let b = BoxXyxy::new(0.0, 0.0, 10.0, 4.0);
        assert_eq!(b.width(), 10.0);
        assert_eq!(b.height(), 4.0);
        assert_eq!(b.area(), 40.0);
    }

    #[test]
    fn should_give_zero_area_for_degenerate_boxes() {
        assert_eq!(BoxXyxy::new(5.0, 0.0, 1.0, 4.0).area(), 0.0);
        assert_eq!(BoxXyxy::new(0.0, 0.0, 0.0, 4.0).area(), 0.0);
        assert_eq!(BoxXyxy::new(0.0, 0.0, f32::NAN, 4.0).area(), 0.0);
    }

    #[test]
    fn should_compute_iou_like_torchvision() {
        // Two 10x10 boxes overlapping by 5x10: 50 / (100 + 100 - 50) = 1/3.
        let a = BoxXyxy::new(0.0, 0.0, 10.0, 10.0);
        let b = BoxXyxy::new(5.0, 0.0, 15.0, 10.0);
        assert_eq!(a.intersection(&b), 50.0);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-7);
        assert_eq!(a.iou(&a), 1.0);
    }

    #[test]
    fn should_give_zero_iou_for_disjoint_or_touching_boxes() {
        let a = BoxXyxy::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&BoxXyxy::new(10.0, 0.0, 20.0, 10.0)), 0.0);
        assert_eq!(a.iou(&BoxXyxy::new(30.0, 30.0, 40.0, 40.0)), 0.0);
        let empty = BoxXyxy::default();
        assert_eq!(empty.iou(&empty), 0.0);
    }

    #[test]
    fn should_round_trip_between_xyxy_and_xywh() {
        let b = BoxXyxy::new(1.5, 2.0, 11.5, 7.0);
        let xywh = b.to_xywh();
        assert_eq!(xywh, BoxXywh::new(1.5, 2.0, 10.0, 5.0));
        assert_eq!(xywh.to_xyxy(), b);
        assert_eq!(BoxXyxy::from(xywh), b);
        assert_eq!(xywh.area(), b.area());
    }

    #[test]
    fn should_clip_into_image() {
        let b = BoxXyxy::new(-5.0, 3.0, 700.0, 500.0).clip(640.0, 480.0);
        assert_eq!(b, BoxXyxy::new(0.0, 3.0, 640.0, 480.0));
    }

    #[test]
    fn should_serialize_with_named_fields() {
        let text = serde_json::to_string(&BoxXyxy::new(1.0, 2.0, 3.0, 4.0)).unwrap();
        assert_eq!(text, r#"{"x1":1.0,"y1":2.0,"x2":3.0,"y2":4.0}"#);
        let back: BoxXyxy = serde_json::from_str(&text).unwrap();
        assert_eq!(back, BoxXyxy::new(1.0, 2.0, 3.0, 4.0));
    }
}
