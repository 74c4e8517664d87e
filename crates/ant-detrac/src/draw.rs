//! Drawing boxes, shaded regions and labels on frames, for looking at the data
//! (`docs/detrac-sample-boxes.jpg`, `cargo xtask infer --draw`): imageproc's shapes and
//! `font8x8`'s bitmap font.

use ant_geom::BoxXyxy;
use font8x8::legacy::BASIC_LEGACY;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;

use crate::classes::VehicleClass;

/// The outline colour of a class: car green, bus yellow, van cyan, others magenta.
pub fn class_color(class: VehicleClass) -> [u8; 3] {
    match class {
        VehicleClass::Car => [40, 230, 40],
        VehicleClass::Bus => [250, 220, 30],
        VehicleClass::Van => [40, 220, 250],
        VehicleClass::Others => [240, 50, 240],
    }
}

/// Draws the outline of a box, `thickness` pixels inwards, clipped to the image
/// (imageproc's hollow rectangles, one per pixel of thickness).
pub fn draw_box(image: &mut RgbImage, rect: BoxXyxy, color: [u8; 3], thickness: u32) {
    let (width, height) = (i64::from(image.width()), i64::from(image.height()));
    let x1 = (rect.x1.floor() as i64).clamp(0, width - 1);
    let y1 = (rect.y1.floor() as i64).clamp(0, height - 1);
    let x2 = (rect.x2.ceil() as i64 - 1).clamp(0, width - 1);
    let y2 = (rect.y2.ceil() as i64 - 1).clamp(0, height - 1);
    for inset in 0..i64::from(thickness.max(1)) {
        let (left, top, right, bottom) = (x1 + inset, y1 + inset, x2 - inset, y2 - inset);
        if right < left || bottom < top {
            break;
        }
        let outline = Rect::at(left as i32, top as i32)
            .of_size((right - left + 1) as u32, (bottom - top + 1) as u32);
        draw_hollow_rect_mut(image, outline, Rgb(color));
    }
}

/// Darkens a region and hatches it diagonally (for ignored regions).
pub fn shade_region(image: &mut RgbImage, rect: BoxXyxy) {
    let (width, height) = (i64::from(image.width()), i64::from(image.height()));
    let x1 = (rect.x1.floor() as i64).clamp(0, width);
    let y1 = (rect.y1.floor() as i64).clamp(0, height);
    let x2 = (rect.x2.ceil() as i64).clamp(0, width);
    let y2 = (rect.y2.ceil() as i64).clamp(0, height);
    if x2 <= x1 || y2 <= y1 {
        return;
    }
    let (w, h) = (x2 - x1, y2 - y1);
    for y in y1..y2 {
        for x in x1..x2 {
            let pixel = image.get_pixel_mut(x as u32, y as u32);
            pixel.0 = pixel.0.map(|value| value / 2);
        }
    }
    // Anti-diagonals x + y = 8k of the image, clipped to the region.
    let first = (x1 + y1 + 7) / 8 * 8;
    for sum in (first..x2 + y2 - 1).step_by(8) {
        let start_x = (sum - (y1 + h - 1)).max(x1);
        let end_x = (sum - y1).min(x1 + w - 1);
        if start_x > end_x {
            continue;
        }
        draw_line_segment_mut(
            image,
            (start_x as f32, (sum - start_x) as f32),
            (end_x as f32, (sum - end_x) as f32),
            Rgb([255, 80, 80]),
        );
    }
}

/// Writes `text` at (x, y) in the 8x8 bitmap font of `font8x8` (ASCII), each dot `scale`
/// pixels, on a black box; clipped to the image.
pub fn draw_label(image: &mut RgbImage, text: &str, x: u32, y: u32, scale: u32, color: [u8; 3]) {
    let scale = scale.max(1);
    let advance = 8 * scale;
    let width = advance * text.chars().count() as u32 + 2 * scale;
    let background = Rect::at(x as i32, y as i32).of_size(width.max(1), 10 * scale);
    draw_filled_rect_mut(image, background, Rgb([0, 0, 0]));
    for (index, c) in text.chars().enumerate() {
        let glyph = BASIC_LEGACY.get(c as usize).copied().unwrap_or([0; 8]);
        let left = x + scale + index as u32 * advance;
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..8u32 {
                if bits >> column & 1 == 1 {
                    let dot = Rect::at(
                        (left + column * scale) as i32,
                        (y + scale + row as u32 * scale) as i32,
                    )
                    .of_size(scale, scale);
                    draw_filled_rect_mut(image, dot, Rgb(color));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_draw_only_the_outline_and_clip_to_the_image() {
        let mut image = RgbImage::new(10, 10);
        draw_box(&mut image, BoxXyxy::new(2.0, 2.0, 6.0, 6.0), [255, 0, 0], 1);
        assert_eq!(image.get_pixel(2, 2).0, [255, 0, 0]);
        assert_eq!(image.get_pixel(5, 4).0, [255, 0, 0]);
        assert_eq!(image.get_pixel(3, 3).0, [0, 0, 0]);
        draw_box(
            &mut image,
            BoxXyxy::new(-5.0, -5.0, 50.0, 50.0),
            [0, 255, 0],
            1,
        );
        assert_eq!(image.get_pixel(9, 9).0, [0, 255, 0]);
        // Thickness 2: two outlines inwards.
        let mut thick = RgbImage::new(10, 10);
        draw_box(&mut thick, BoxXyxy::new(1.0, 1.0, 9.0, 9.0), [9, 9, 9], 2);
        assert_eq!(thick.get_pixel(2, 5).0, [9, 9, 9]);
        assert_eq!(thick.get_pixel(3, 5).0, [0, 0, 0]);
        assert_eq!(thick.get_pixel(7, 7).0, [9, 9, 9]);
    }

    #[test]
    fn should_hatch_and_darken_only_inside_the_region() {
        let mut image = RgbImage::from_pixel(20, 20, Rgb([200, 200, 200]));
        shade_region(&mut image, BoxXyxy::new(4.0, 4.0, 12.0, 12.0));
        assert_eq!(image.get_pixel(3, 3).0, [200, 200, 200]);
        assert_eq!(image.get_pixel(12, 12).0, [200, 200, 200]);
        // Inside: darkened, or on a hatch line x + y = 8k.
        for y in 4..12 {
            for x in 4..12 {
                let expected = if (x + y) % 8 == 0 {
                    [255, 80, 80]
                } else {
                    [100, 100, 100]
                };
                assert_eq!(image.get_pixel(x, y).0, expected, "({x}, {y})");
            }
        }
    }

    #[test]
    fn should_write_labels_in_the_bitmap_font() {
        let mut image = RgbImage::from_pixel(40, 12, Rgb([50, 50, 50]));
        draw_label(&mut image, "I", 0, 0, 1, [255, 255, 255]);
        // font8x8's 'I' has a full top bar (0x1E, columns 1-4) in its first row.
        let row: Vec<u8> = (1..9).map(|x| image.get_pixel(x, 1).0[0]).collect();
        assert_eq!(row, [0, 255, 255, 255, 255, 0, 0, 0]);
        // The black box behind one character, and nothing beyond it.
        assert_eq!(image.get_pixel(9, 9).0, [0, 0, 0]);
        assert_eq!(image.get_pixel(11, 5).0, [50, 50, 50]);
    }
}
