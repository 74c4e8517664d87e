//! Loads one UA-DETRAC sequence and walks its frames as the detector's data pipeline does:
//!
//! `cargo run --release -p ant-detrac --example sequence -- ROOT SEQUENCE [INPUT_SIZE]`
//!
//! `ROOT` is a release (`Insight-MVT_Annotation_Train/`, `DETRAC-Train-Annotations-XML-v3/`,
//! ...) or the flat layout of a sample (`ROOT/MVI_20011/img00001.jpg` next to
//! `ROOT/MVI_20011_v3.xml`), e.g. `../shared/data/detrac-sample MVI_20011` from the repository
//! root. Prints the sequence's attributes and counts, then for every image of the sequence its
//! ground truth and the letterboxed network input (default 512x512) with the boxes mapped into
//! it.

use std::path::PathBuf;
use std::process::ExitCode;

use ant_detrac::{
    InputTransform, LoadedSequence, ReleaseLayout, SequenceStats, VehicleClass, load_frame,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!(
            "usage: sequence ROOT SEQUENCE [INPUT_SIZE]\n  e.g. sequence \
             ../shared/data/detrac-sample MVI_20011 (from the repository root)"
        );
        return ExitCode::from(2);
    }
    let input_size = match args.get(2).map(|size| size.parse::<u32>()) {
        None => 512,
        Some(Ok(size)) if size > 0 => size,
        Some(_) => {
            eprintln!("error: INPUT_SIZE must be a positive number of pixels");
            return ExitCode::from(2);
        }
    };
    match walk(PathBuf::from(&args[0]), &args[1], input_size) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn walk(root: PathBuf, name: &str, input_size: u32) -> Result<(), ant_detrac::DetracError> {
    let sequence = LoadedSequence::load(&ReleaseLayout::new(root), name)?;
    let annotation = &sequence.annotation;
    let stats = SequenceStats::of(annotation);
    println!(
        "{} ({:?} schema, camera {}, weather {}) from {}",
        annotation.name,
        annotation.schema,
        annotation.camera_state,
        annotation.weather,
        sequence.paths.annotation.display()
    );
    println!(
        "  {} annotated frames (highest {}), {} boxes, {} ignored regions",
        stats.annotated_frames, stats.max_frame, stats.targets, stats.ignored_regions
    );
    let classes: Vec<String> = stats
        .classes
        .iter()
        .map(|(class, count)| format!("{class} {count}"))
        .collect();
    let types: Vec<String> = stats
        .vehicle_types
        .iter()
        .map(|(vehicle_type, count)| format!("{vehicle_type} {count}"))
        .collect();
    println!("  classes: {}", classes.join(", "));
    println!("  vehicle types: {}", types.join(", "));

    if !sequence.paths.image_dir.is_dir() {
        println!(
            "no image directory {}: annotations only",
            sequence.paths.image_dir.display()
        );
        return Ok(());
    }
    let transform = InputTransform::new(input_size, input_size);
    let frames = sequence.video_frames()?;
    println!(
        "{} images in {}; network input {input_size}x{input_size}:",
        frames.len(),
        sequence.paths.image_dir.display()
    );
    for frame in &frames {
        let sample = load_frame(frame, &transform)?;
        let letterbox = sample.targets.letterbox;
        let per_class: Vec<String> = VehicleClass::ALL
            .iter()
            .filter_map(|class| {
                let count = frame.targets.iter().filter(|t| t.class == *class).count();
                (count > 0).then(|| format!("{} {count}", class.name()))
            })
            .collect();
        let label = if frame.annotated {
            format!("{} boxes ({})", frame.targets.len(), per_class.join(", "))
        } else {
            "not annotated".to_string()
        };
        println!(
            "  frame {:3}: {}x{} -> {}x{} (scale {:.4}), {label}",
            frame.frame,
            letterbox.src_width,
            letterbox.src_height,
            letterbox.resized_size().0,
            letterbox.resized_size().1,
            letterbox.scale,
        );
        if let Some(target) = frame.targets.first() {
            // The map the sample's boxes went through, clipped to the resized image as there.
            let (resized_width, resized_height) = letterbox.resized_size();
            let input_box = letterbox
                .forward(target.bbox)
                .clip(resized_width as f32, resized_height as f32);
            let b = target.bbox;
            println!(
                "    track {} ({}): frame ({:.1}, {:.1}, {:.1}, {:.1}) -> input ({:.1}, {:.1}, \
                 {:.1}, {:.1})",
                target.track_id,
                target.class.name(),
                b.x1,
                b.y1,
                b.x2,
                b.y2,
                input_box.x1,
                input_box.y1,
                input_box.x2,
                input_box.y2,
            );
        }
    }
    Ok(())
}
