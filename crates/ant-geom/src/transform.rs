//! Image and box transforms between a frame (any RGB image) and the detector input, as effdet's
//! evaluation/training pipeline does them (`effdet/data/transforms.py`, `ResizePad`,
//! `RandomFlip`, `ImageToNumpy` + normalisation in the loader:
//! <https://github.com/rwightman/efficientdet-pytorch/blob/c6dff775a36cea0bf9b76c58e59f936411c5ce01/effdet/data/transforms.py>).
//!
//! - Letterbox: scale by one factor that keeps the aspect ratio (bilinear, antialiased when
//!   shrinking like PIL's `BILINEAR`), paste at the top-left, pad bottom/right with the mean
//!   colour (so padding normalises to about 0). Boxes map by [`Letterbox`], whose
//!   `inverse` is exact (a division by the same scale), so predictions go back to the frame.
//! - Horizontal flip, applied to the source frame before the letterbox so the padding stays at
//!   the right and the inverse map is unchanged.
//! - Normalisation: `(pixel / 255 - mean) / std` per channel, ImageNet statistics, CHW `f32`.

use crate::{BoxXyxy, Letterbox};
use image::RgbImage;
use image::imageops::FilterType;

/// ImageNet channel means (RGB), as effdet's `IMAGENET_DEFAULT_MEAN`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), as effdet's `IMAGENET_DEFAULT_STD`.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How a frame becomes a network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputTransform {
    /// Network input width in pixels.
    pub input_width: u32,
    /// Network input height in pixels.
    pub input_height: u32,
    /// Per-channel mean subtracted after scaling pixels to 0..1.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after the mean.
    pub std: [f32; 3],
}

impl InputTransform {
    /// A square or rectangular input with ImageNet normalisation.
    pub fn new(input_width: u32, input_height: u32) -> Self {
        Self {
            input_width,
            input_height,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// The padding colour: the mean, as 8-bit RGB (effdet's `fill_color`).
    pub fn fill_color(&self) -> [u8; 3] {
        self.mean.map(|mean| (mean * 255.0).round() as u8)
    }

    /// The letterbox map of a `width x height` frame.
    pub fn letterbox(&self, width: u32, height: u32) -> Letterbox {
        Letterbox::new(width, height, self.input_width, self.input_height)
    }

    /// Resizes and pads `image` into the input size; returns the input image and its map.
    pub fn letterbox_image(&self, image: &RgbImage) -> (RgbImage, Letterbox) {
        let letterbox = self.letterbox(image.width(), image.height());
        let (resized_width, resized_height) = letterbox.resized_size();
        let resized = image::imageops::resize(
            image,
            resized_width.max(1),
            resized_height.max(1),
            FilterType::Triangle,
        );
        let mut canvas = RgbImage::from_pixel(
            self.input_width,
            self.input_height,
            image::Rgb(self.fill_color()),
        );
        image::imageops::replace(&mut canvas, &resized, 0, 0);
        (canvas, letterbox)
    }

    /// Normalises an input-sized RGB image into CHW `f32` (`3 * height * width` values).
    pub fn normalize(&self, image: &RgbImage) -> Vec<f32> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let plane = width * height;
        let mut out = vec![0.0f32; 3 * plane];
        let scale = self.std.map(|std| 1.0 / (255.0 * std));
        let offset = [0, 1, 2].map(|channel| self.mean[channel] / self.std[channel]);
        for (index, pixel) in image.pixels().enumerate() {
            for channel in 0..3 {
                out[channel * plane + index] =
                    f32::from(pixel[channel]) * scale[channel] - offset[channel];
            }
        }
        out
    }
}

/// Mirrors an image left-right in place.
pub fn flip_image_horizontal(image: &mut RgbImage) {
    image::imageops::flip_horizontal_in_place(image);
}

/// Mirrors boxes in an image of the given width.
pub fn flip_boxes_horizontal(boxes: &[BoxXyxy], width: f32) -> Vec<BoxXyxy> {
    boxes
        .iter()
        .map(|rect| Letterbox::flip_horizontal(*rect, width))
        .collect()
}

/// Maps frame boxes into the input: scaled, then clipped to the resized image (not the padding).
pub fn boxes_to_input(letterbox: &Letterbox, boxes: &[BoxXyxy]) -> Vec<BoxXyxy> {
    let (width, height) = letterbox.resized_size();
    boxes
        .iter()
        .map(|rect| letterbox.forward(*rect).clip(width as f32, height as f32))
        .collect()
}

/// Maps input boxes (for example predictions) back to frame pixels, clipped to the frame.
pub fn boxes_to_frame(letterbox: &Letterbox, boxes: &[BoxXyxy]) -> Vec<BoxXyxy> {
    boxes
        .iter()
        .map(|rect| {
            letterbox
                .inverse(*rect)
                .clip(letterbox.src_width as f32, letterbox.src_height as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_keep_aspect_and_pad_bottom_with_the_mean_colour() {
        let transform = InputTransform::new(320, 320);
        let image = RgbImage::from_pixel(960, 540, image::Rgb([255, 0, 0]));
        let (input, letterbox) = transform.letterbox_image(&image);
        assert_eq!(input.dimensions(), (320, 320));
        assert_eq!(letterbox.resized_size(), (320, 180));
        assert_eq!(input.get_pixel(10, 170).0, [255, 0, 0]);
        assert_eq!(input.get_pixel(10, 200).0, transform.fill_color());
        assert_eq!(transform.fill_color(), [124, 116, 104]);
    }

    #[test]
    fn should_map_boxes_to_input_and_back_exactly() {
        let transform = InputTransform::new(320, 320);
        let letterbox = transform.letterbox(960, 540);
        let original = [BoxXyxy::new(592.75, 378.8, 752.8, 541.0)];
        let input = boxes_to_input(&letterbox, &original);
        assert!((input[0].x1 - 592.75 / 3.0).abs() < 1e-4);
        // The box reaching one pixel past the frame is clipped to the resized image.
        assert_eq!(input[0].y2, 180.0);
        let back = boxes_to_frame(&letterbox, &input);
        assert!((back[0].x1 - 592.75).abs() < 1e-3);
        assert!((back[0].x2 - 752.8).abs() < 1e-3);
        assert_eq!(back[0].y2, 540.0);
    }

    #[test]
    fn should_normalise_into_chw_with_imagenet_statistics() {
        let transform = InputTransform::new(2, 1);
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(0, 0, image::Rgb([255, 0, 124]));
        image.put_pixel(1, 0, image::Rgb([0, 255, 0]));
        let values = transform.normalize(&image);
        assert_eq!(values.len(), 6);
        assert!((values[0] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((values[1] - (-0.485 / 0.229)).abs() < 1e-5);
        assert!((values[2] - (-0.456 / 0.224)).abs() < 1e-5);
        assert!((values[3] - (1.0 - 0.456) / 0.224).abs() < 1e-5);
        assert!((values[4] - (124.0 / 255.0 - 0.406) / 0.225).abs() < 1e-5);
    }

    #[test]
    fn should_flip_image_and_boxes_consistently() {
        let mut image = RgbImage::new(10, 2);
        image.put_pixel(1, 0, image::Rgb([9, 9, 9]));
        flip_image_horizontal(&mut image);
        assert_eq!(image.get_pixel(8, 0).0, [9, 9, 9]);
        let flipped = flip_boxes_horizontal(&[BoxXyxy::new(1.0, 0.0, 2.0, 1.0)], 10.0);
        assert_eq!(flipped[0], BoxXyxy::new(8.0, 0.0, 9.0, 1.0));
    }
}
