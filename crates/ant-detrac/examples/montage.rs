//! Draws annotated frames of a release with their boxes (class colours) and ignored regions
//! into one PNG grid, to look at the data:
//!
//! `cargo run --release -p ant-detrac --example montage -- ROOT SEQUENCE OUT.png [FRAME...]`

use std::path::PathBuf;

use ant_detrac::draw::{class_color, draw_box, shade_region};
use ant_detrac::{LoadedSequence, ReleaseLayout};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: montage ROOT SEQUENCE OUT.png [FRAME...]".into());
    }
    let layout = ReleaseLayout::new(PathBuf::from(&args[0]));
    let sequence = LoadedSequence::load(&layout, &args[1])?;
    let mut frames: Vec<u32> = args[3..]
        .iter()
        .map(|frame| frame.parse())
        .collect::<Result<_, _>>()?;
    if frames.is_empty() {
        frames = sequence
            .annotation
            .frames
            .keys()
            .copied()
            .step_by(10)
            .take(6)
            .collect();
    }
    let columns = 2u32;
    let mut tiles = Vec::new();
    for num in &frames {
        let path = sequence.paths.image_path(*num);
        let mut image = image::open(&path)?.into_rgb8();
        for region in sequence.annotation.ignored_boxes() {
            shade_region(&mut image, region);
        }
        if let Some(frame) = sequence.annotation.frames.get(num) {
            for target in &frame.targets {
                draw_box(
                    &mut image,
                    target.bbox.to_xyxy(),
                    class_color(target.class()),
                    1,
                );
            }
        }
        tiles.push(image);
    }
    let (width, height) = tiles[0].dimensions();
    let rows = (tiles.len() as u32).div_ceil(columns);
    let mut grid = image::RgbImage::new(columns * width, rows * height);
    for (index, tile) in tiles.iter().enumerate() {
        let (column, row) = (index as u32 % columns, index as u32 / columns);
        image::imageops::replace(
            &mut grid,
            tile,
            i64::from(column * width),
            i64::from(row * height),
        );
    }
    grid.save(&args[2])?;
    println!("frames {frames:?} of {} -> {}", args[1], args[2]);
    Ok(())
}
