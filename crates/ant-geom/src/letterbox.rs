//! The letterbox map of effdet's `ResizePad`: scale the image by one factor that keeps its
//! aspect ratio and fits it inside the network input, then pad at the bottom and right.
//!
//! Reference: effdet `data/transforms.py`, class `ResizePad`
//! (<https://github.com/rwightman/efficientdet-pytorch/blob/c6dff775a36cea0bf9b76c58e59f936411c5ce01/effdet/data/transforms.py#L77>):
//! `img_scale = min(target_h / height, target_w / width)`, the resized image is
//! `(int(width * img_scale), int(height * img_scale))` pasted at the top-left corner, boxes are
//! multiplied by `img_scale`, and predictions are mapped back by `1 / img_scale`.

use crate::BoxXyxy;

/// The resize-and-pad map from a source image to the network input, as effdet's `ResizePad`.
///
/// Box coordinates scale by `scale` about the origin; the padding sits at the bottom and right,
/// so no offset is involved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// Source image width in pixels.
    pub src_width: u32,
    /// Source image height in pixels.
    pub src_height: u32,
    /// Network input width in pixels.
    pub dst_width: u32,
    /// Network input height in pixels.
    pub dst_height: u32,
    /// `min(dst_width / src_width, dst_height / src_height)`.
    pub scale: f32,
}

impl Letterbox {
    /// The map from a `src_width x src_height` image into a `dst_width x dst_height` input.
    ///
    /// # Panics
    /// When any size is zero: a resize to or from an empty image is a programmer error.
    pub fn new(src_width: u32, src_height: u32, dst_width: u32, dst_height: u32) -> Self {
        assert!(
            src_width > 0 && src_height > 0 && dst_width > 0 && dst_height > 0,
            "letterbox sizes must be positive, got {src_width}x{src_height} -> \
             {dst_width}x{dst_height}"
        );
        Self {
            src_width,
            src_height,
            dst_width,
            dst_height,
            scale: Self::scale_f64_of(src_width, src_height, dst_width, dst_height) as f32,
        }
    }

    /// The scale in double precision, computed exactly as effdet's Python does.
    fn scale_f64_of(src_width: u32, src_height: u32, dst_width: u32, dst_height: u32) -> f64 {
        let scale_y = f64::from(dst_height) / f64::from(src_height);
        let scale_x = f64::from(dst_width) / f64::from(src_width);
        scale_y.min(scale_x)
    }

    /// Size `(width, height)` of the resized image before padding.
    ///
    /// effdet truncates (`int(width * img_scale)` in double precision), and so do we: a
    /// 1920x1080 frame into 512x512 gives (512, 288), and 1000x333 into 512x512 gives
    /// (512, 170) where rounding would give 171.
    pub fn resized_size(&self) -> (u32, u32) {
        let scale = Self::scale_f64_of(
            self.src_width,
            self.src_height,
            self.dst_width,
            self.dst_height,
        );
        // Truncation toward zero of a non-negative value is Python's `int()`.
        let width = (f64::from(self.src_width) * scale) as u32;
        let height = (f64::from(self.src_height) * scale) as u32;
        (width.min(self.dst_width), height.min(self.dst_height))
    }

    /// Maps a box from source pixels into network-input pixels (multiplies by `scale`).
    ///
    /// The result is not clipped; clip it to [`Letterbox::resized_size`] where the box must
    /// lie on the image, as effdet does for training targets.
    pub fn forward(&self, b: BoxXyxy) -> BoxXyxy {
        b.scale(self.scale)
    }

    /// Maps a box from network-input pixels back into source pixels (divides by `scale`).
    pub fn inverse(&self, b: BoxXyxy) -> BoxXyxy {
        BoxXyxy {
            x1: b.x1 / self.scale,
            y1: b.y1 / self.scale,
            x2: b.x2 / self.scale,
            y2: b.y2 / self.scale,
        }
    }

    /// Mirrors a box in an image of the given width: `x1' = width - x2`, `x2' = width - x1`.
    pub fn flip_horizontal(b: BoxXyxy, width: f32) -> BoxXyxy {
        BoxXyxy {
            x1: width - b.x2,
            y1: b.y1,
            x2: width - b.x1,
            y2: b.y2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn should_fit_detrac_frame_into_square_input() {
        let letterbox = Letterbox::new(960, 540, 512, 512);
        assert!((letterbox.scale - 512.0 / 960.0).abs() < 1e-7);
        assert_eq!(letterbox.resized_size(), (512, 288));
    }

    #[test]
    fn should_truncate_resized_size_like_effdet() {
        // 333 * 512 / 1000 = 170.496: effdet's int() gives 170.
        assert_eq!(
            Letterbox::new(1000, 333, 512, 512).resized_size(),
            (512, 170)
        );
        // Portrait images are limited by the height.
        assert_eq!(
            Letterbox::new(300, 600, 512, 512).resized_size(),
            (256, 512)
        );
    }

    #[test]
    fn should_scale_boxes_about_origin() {
        let letterbox = Letterbox::new(1024, 512, 512, 512);
        let mapped = letterbox.forward(BoxXyxy::new(100.0, 50.0, 300.0, 250.0));
        assert_eq!(mapped, BoxXyxy::new(50.0, 25.0, 150.0, 125.0));
        assert_eq!(
            letterbox.inverse(mapped),
            BoxXyxy::new(100.0, 50.0, 300.0, 250.0)
        );
    }

    #[test]
    fn should_flip_box_in_image_width() {
        let flipped = Letterbox::flip_horizontal(BoxXyxy::new(10.0, 5.0, 30.0, 25.0), 100.0);
        assert_eq!(flipped, BoxXyxy::new(70.0, 5.0, 90.0, 25.0));
    }

    #[test]
    #[should_panic(expected = "letterbox sizes must be positive")]
    fn should_panic_on_empty_image() {
        let _ = Letterbox::new(0, 10, 512, 512);
    }

    proptest! {
        #[test]
        fn should_invert_forward_map(
            src_width in 1u32..4000,
            src_height in 1u32..4000,
            dst_width in 1u32..2000,
            dst_height in 1u32..2000,
            corners in prop::array::uniform4(-100.0f32..4000.0),
        ) {
            let letterbox = Letterbox::new(src_width, src_height, dst_width, dst_height);
            let original = BoxXyxy::new(corners[0], corners[1], corners[2], corners[3]);
            let back = letterbox.inverse(letterbox.forward(original));
            for (got, want) in [
                (back.x1, original.x1),
                (back.y1, original.y1),
                (back.x2, original.x2),
                (back.y2, original.y2),
            ] {
                // 1e-4 relative to the coordinate (and absolute below 1 pixel): f32 keeps
                // about 7 significant digits through the multiply and divide.
                prop_assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{got} vs {want}");
            }
            let (width, height) = letterbox.resized_size();
            prop_assert!(width <= dst_width && height <= dst_height);
        }

        #[test]
        fn should_flip_twice_to_identity(corners in prop::array::uniform4(0.0f32..1000.0)) {
            let original = BoxXyxy::new(corners[0], corners[1], corners[2], corners[3]);
            let once = Letterbox::flip_horizontal(original, 1000.0);
            let twice = Letterbox::flip_horizontal(once, 1000.0);
            prop_assert!((twice.x1 - original.x1).abs() <= 1e-3);
            prop_assert!((twice.x2 - original.x2).abs() <= 1e-3);
            prop_assert_eq!(twice.y1, original.y1);
        }
    }
}
