//! Drawing boxes on frames, for looking at the data (`docs/detrac-sample-boxes.jpg`).

use ant_geom::BoxXyxy;
use image::{Rgb, RgbImage};

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

/// Draws the outline of a box, `thickness` pixels inwards, clipped to the image.
pub fn draw_box(image: &mut RgbImage, rect: BoxXyxy, color: [u8; 3], thickness: u32) {
    let (width, height) = (image.width() as i64, image.height() as i64);
    let x1 = (rect.x1.floor() as i64).clamp(0, width - 1);
    let y1 = (rect.y1.floor() as i64).clamp(0, height - 1);
    let x2 = (rect.x2.ceil() as i64 - 1).clamp(0, width - 1);
    let y2 = (rect.y2.ceil() as i64 - 1).clamp(0, height - 1);
    if x2 < x1 || y2 < y1 {
        return;
    }
    let thickness = i64::from(thickness.max(1));
    for y in y1..=y2 {
        for x in x1..=x2 {
            let on_edge = x - x1 < thickness
                || x2 - x < thickness
                || y - y1 < thickness
                || y2 - y < thickness;
            if on_edge {
                image.put_pixel(x as u32, y as u32, Rgb(color));
            }
        }
    }
}

/// Darkens a region and hatches it diagonally (for ignored regions).
pub fn shade_region(image: &mut RgbImage, rect: BoxXyxy) {
    let (width, height) = (image.width() as i64, image.height() as i64);
    let x1 = (rect.x1.floor() as i64).clamp(0, width);
    let y1 = (rect.y1.floor() as i64).clamp(0, height);
    let x2 = (rect.x2.ceil() as i64).clamp(0, width);
    let y2 = (rect.y2.ceil() as i64).clamp(0, height);
    for y in y1..y2 {
        for x in x1..x2 {
            let pixel = image.get_pixel_mut(x as u32, y as u32);
            if (x + y) % 8 == 0 {
                pixel.0 = [255, 80, 80];
            } else {
                pixel.0 = pixel.0.map(|value| value / 2);
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
    }
}
