//! The loader on the real UA-DETRAC files of `../shared/data/detrac-sample`: both schemas,
//! the frame gaps of MVI_39811, the nine frames of MVI_20011 through the whole pipeline, and a
//! picture of the boxes for a person to check (`docs/detrac-sample-boxes.jpg`).
//!
//! When the shared files are missing these tests skip, except with `CI=true`, where they fail.

use std::path::{Path, PathBuf};

use ant_detrac::annotation::Schema;
use ant_detrac::dataset::{ClipDataset, ClipDatasetConfig, FrameDataset, FrameDatasetConfig};
use ant_detrac::{
    DetracBatcher, InputTransform, LoadedSequence, ReleaseLayout, SequenceAnnotation,
    SequenceStats, SplitList, VehicleClass, VehicleType, to_coco,
};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;

/// The shared sample directory, or `None` (skip) when it is absent outside CI.
fn sample_dir() -> Option<PathBuf> {
    ant_fixtures::shared("data/detrac-sample")
}

#[test]
fn should_parse_the_v3_file_of_mvi_20011() {
    let Some(dir) = sample_dir() else { return };
    let sequence = SequenceAnnotation::from_file(&dir.join("MVI_20011_v3.xml")).unwrap();
    assert_eq!(sequence.name, "MVI_20011");
    assert_eq!(sequence.schema, Schema::V3);
    assert_eq!(sequence.camera_state, "unstable");
    assert_eq!(sequence.weather, "sunny");
    assert_eq!(sequence.frames.len(), 9);
    assert_eq!(sequence.num_targets(), 59);
    assert_eq!(sequence.ignored_regions.len(), 7);
    assert_eq!(sequence.max_frame(), 9);
    let first = &sequence.frames[&1].targets[0];
    assert_eq!(first.id, 1);
    assert_eq!(first.bbox.left, 592.75);
    assert_eq!(first.bbox.height, 162.2);
    assert_eq!(first.vehicle_type, VehicleType::Suv);
    assert_eq!(first.color.as_deref(), Some("Black"));
    assert_eq!(first.orientation, 18.488);
    assert_eq!(first.trajectory_length, 5);
    let occluded = &sequence.frames[&1].targets[2];
    assert_eq!(occluded.occlusions.len(), 1);
    assert_eq!(occluded.occlusions[0].occluder_id, 5);
    let stats = SequenceStats::of(&sequence);
    assert_eq!(stats.classes["car"] + stats.classes["van"], 59);
}

#[test]
fn should_parse_the_v1_file_and_agree_with_v3_on_boxes_and_classes() {
    let Some(dir) = sample_dir() else { return };
    let v1 = SequenceAnnotation::from_file(&dir.join("v1/MVI_20011.xml")).unwrap();
    let v3 = SequenceAnnotation::from_file(&dir.join("MVI_20011_v3.xml")).unwrap();
    assert_eq!(v1.schema, Schema::V1);
    assert_eq!(v1.frames[&1].targets.len(), 2);
    assert_eq!(v1.frames[&2].targets.len(), 3);
    assert_eq!(v1.ignored_regions, v3.ignored_regions);
    for (num, frame) in &v1.frames {
        for target in &frame.targets {
            assert_eq!(target.vehicle_type, VehicleType::Coarse(VehicleClass::Car));
            assert!(target.color.is_none());
            let twin = v3.frames[num]
                .targets
                .iter()
                .find(|other| other.id == target.id)
                .unwrap();
            assert_eq!(twin.bbox, target.bbox);
            // The v3 fine-grained type maps back to the v1 class.
            assert_eq!(twin.class(), target.class());
        }
    }
}

#[test]
fn should_keep_the_frame_gaps_of_mvi_39811_unannotated() {
    let Some(dir) = sample_dir() else { return };
    let sequence = SequenceAnnotation::from_file(&dir.join("MVI_39811_v3.xml")).unwrap();
    assert_eq!(sequence.weather, "night");
    assert_eq!(sequence.frames.len(), 500);
    assert_eq!(sequence.max_frame(), 786);
    let gaps: Vec<u32> = (1..=786)
        .filter(|num| !sequence.is_annotated(*num))
        .collect();
    assert_eq!(gaps.len(), 286);
    let stats = SequenceStats::of(&sequence);
    assert_eq!(stats.annotated_frames, 500);
    assert_eq!(stats.vehicle_types["MiniVan"], 51);
    // Only annotated frames become samples, and clips never span a gap.
    let loaded =
        LoadedSequence::from_files(&dir.join("MVI_39811_v3.xml"), &dir.join("MVI_39811")).unwrap();
    let frames =
        FrameDataset::new(std::slice::from_ref(&loaded), FrameDatasetConfig::default()).unwrap();
    assert_eq!(frames.len(), 500);
    assert!(
        frames
            .items()
            .iter()
            .all(|item| sequence.is_annotated(item.frame))
    );
    let clips = ClipDataset::new(&[loaded], ClipDatasetConfig::consecutive(3)).unwrap();
    assert!(!clips.is_empty());
    for clip in clips.clips() {
        let key = clip.frames[0].frame;
        for (offset, frame) in clip.frames.iter().enumerate() {
            assert_eq!(frame.frame, key + offset as u32);
            assert!(sequence.is_annotated(frame.frame));
        }
    }
}

#[test]
fn should_find_the_sample_in_the_flat_layout_and_prefer_v3() {
    let Some(dir) = sample_dir() else { return };
    let layout = ReleaseLayout::new(&dir);
    let paths = layout.locate("MVI_20011").unwrap();
    assert!(paths.annotation.ends_with("MVI_20011_v3.xml"));
    assert!(paths.image_path(1).is_file());
    let v1 = layout.preferring(Schema::V1).locate("MVI_20011").unwrap();
    assert!(
        v1.annotation.ends_with("MVI_20011_v3.xml") || v1.annotation.ends_with("MVI_20011.xml")
    );
    let names: Vec<String> = ReleaseLayout::new(&dir)
        .sequences()
        .unwrap()
        .into_iter()
        .map(|paths| paths.name)
        .collect();
    assert_eq!(names, ["MVI_20011", "MVI_39811"]);
}

#[test]
fn should_commit_the_official_split_list_verbatim() {
    let Some(dir) = sample_dir() else { return };
    let shared = std::fs::read_to_string(dir.join("splits.tsv")).unwrap();
    assert_eq!(shared, ant_detrac::split::OFFICIAL_SPLITS_TSV);
    assert_eq!(
        SplitList::from_file(&dir.join("splits.tsv")).unwrap(),
        SplitList::official()
    );
}

fn load_sample(dir: &Path) -> LoadedSequence {
    LoadedSequence::from_files(&dir.join("MVI_20011_v3.xml"), &dir.join("MVI_20011")).unwrap()
}

#[test]
fn should_batch_the_nine_real_frames_with_boxes_in_input_pixels() {
    let Some(dir) = sample_dir() else { return };
    let sequence = load_sample(&dir);
    let dataset = FrameDataset::new(
        std::slice::from_ref(&sequence),
        FrameDatasetConfig::default(),
    )
    .unwrap();
    dataset.check_images().unwrap();
    assert_eq!(dataset.len(), 9);
    let batcher = DetracBatcher::new(InputTransform::new(320, 320));
    let items: Vec<_> = (0..9).map(|index| dataset.get(index).unwrap()).collect();
    let batch = batcher.batch(items, &Device::flex()).unwrap();
    assert_eq!(batch.images.dims(), [9, 3, 320, 320]);
    let values = batch.images.into_data().try_to_vec::<f32>().unwrap();
    let plane = 320 * 320;
    // The padding below the 320x180 image normalises to about zero.
    assert!(values[200 * 320 + 5].abs() < 0.05);
    // Real pixels are not constant.
    let mean = values[..plane].iter().sum::<f32>() / plane as f32;
    assert!(
        values[..180 * 320]
            .iter()
            .any(|value| (value - mean).abs() > 0.5)
    );
    let first = &batch.targets[0];
    assert_eq!(first.frame, 1);
    assert_eq!(first.boxes.len(), 7);
    assert_eq!(first.ignored_regions.len(), 7);
    assert!((first.boxes[0].x1 - 592.75 / 3.0).abs() < 1e-3);
    assert!(
        first
            .boxes
            .iter()
            .all(|rect| rect.y2 <= 180.0 && rect.x2 <= 320.0)
    );
    assert_eq!(
        batch
            .targets
            .iter()
            .map(|targets| targets.boxes.len())
            .sum::<usize>(),
        59
    );
    // The inverse map brings the boxes back onto the frame.
    let back = ant_detrac::transform::boxes_to_frame(&first.letterbox, &first.boxes);
    assert!((back[0].x1 - 592.75).abs() < 1e-2 && (back[0].y1 - 378.8).abs() < 1e-2);
}

#[test]
fn should_batch_real_clips_of_a_key_frame_and_two_non_key_frames() {
    let Some(dir) = sample_dir() else { return };
    let sequence = load_sample(&dir);
    let clips = ClipDataset::new(&[sequence], ClipDatasetConfig::consecutive(3)).unwrap();
    assert_eq!(clips.len(), 3);
    let batcher = DetracBatcher::new(InputTransform::new(256, 256));
    let items = vec![clips.get(0).unwrap(), clips.get(2).unwrap()];
    let batch = batcher.batch(items, &Device::flex()).unwrap();
    assert_eq!(batch.steps.len(), 3);
    assert_eq!(batch.steps[0].images.dims(), [2, 3, 256, 256]);
    assert_eq!(batch.steps[0].targets[0].frame, 1);
    assert_eq!(batch.steps[0].targets[1].frame, 7);
    assert_eq!(batch.steps[2].targets[1].frame, 9);
}

#[test]
fn should_flip_real_frames_and_their_boxes_together() {
    let Some(dir) = sample_dir() else { return };
    let sequence = load_sample(&dir);
    let config = FrameDatasetConfig {
        flip_probability: 1.0,
        ..FrameDatasetConfig::default()
    };
    let dataset = FrameDataset::new(std::slice::from_ref(&sequence), config).unwrap();
    let item = dataset.get(0).unwrap();
    assert!(item.flip);
    let transform = InputTransform::new(960, 540);
    let flipped = ant_detrac::load_frame(&item, &transform).unwrap();
    let mut plain_item = item.clone();
    plain_item.flip = false;
    let plain = ant_detrac::load_frame(&plain_item, &transform).unwrap();
    let flipped_box = flipped.targets.boxes[0];
    let plain_box = plain.targets.boxes[0];
    assert!((flipped_box.x1 - (960.0 - plain_box.x2)).abs() < 1e-3);
    // Pixel (x, y) of the flipped input is pixel (959 - x, y) of the plain one.
    let plane = 960 * 540;
    let (x, y) = (100usize, 300usize);
    let left = flipped.image[y * 960 + x];
    let right = plain.image[y * 960 + (959 - x)];
    assert!((left - right).abs() < 1e-5);
    assert_eq!(flipped.image.len(), 3 * plane);
}

#[test]
fn should_export_the_sample_as_coco_ground_truth() {
    let Some(dir) = sample_dir() else { return };
    let sequence = load_sample(&dir);
    let coco = to_coco(&[sequence], &dir, 1).unwrap();
    assert_eq!(coco.images.len(), 9);
    assert_eq!(coco.annotations.len(), 59);
    assert_eq!(coco.images[0].file_name, "MVI_20011/img00001.jpg");
    assert_eq!((coco.images[0].width, coco.images[0].height), (960, 540));
    assert_eq!(coco.categories.len(), 4);
    assert_eq!(coco.categories[0].name, "car");
    assert_eq!(coco.categories[0].id, 1);
    let first = &coco.annotations[0];
    assert_eq!(first.bbox, [592.75, 378.8, 160.05, 540.0 - 378.8]);
    assert!((first.area - first.bbox[2] * first.bbox[3]).abs() < 1e-3);
    assert_eq!(first.iscrowd, 0);
    let ignored = coco.ignored_regions_by_image();
    assert_eq!(ignored[&1].len(), 7);
    assert_eq!(coco.image_id("MVI_20011", 9), Some(9));
    let json = serde_json::to_string(&coco).unwrap();
    let back: ant_detrac::CocoGroundTruth = serde_json::from_str(&json).unwrap();
    assert_eq!(back, coco);
}

/// Draws the nine frames (letterboxed to 480x270, as the model sees them) with their boxes
/// (car green, van cyan, bus yellow, others magenta) and hatched ignored regions into a 3x3
/// grid. Written to the test's temporary directory (PNG), and to `docs/detrac-sample-boxes.jpg`
/// with `REGENERATE=1`.
#[test]
fn should_draw_the_real_boxes_on_the_vehicles() {
    let Some(dir) = sample_dir() else { return };
    let sequence = load_sample(&dir);
    let dataset = FrameDataset::new(
        std::slice::from_ref(&sequence),
        FrameDatasetConfig::default(),
    )
    .unwrap();
    let transform = InputTransform::new(480, 270);
    let mut grid = image::RgbImage::new(3 * 480, 3 * 270);
    for index in 0..9 {
        let item = dataset.get(index).unwrap();
        let mut frame = ant_detrac::decode_frame(&item).unwrap();
        let (mut input, letterbox) = transform.letterbox_image(&frame);
        let sample = ant_detrac::load_frame(&item, &transform).unwrap();
        for region in &sample.targets.ignored_regions {
            ant_detrac::draw::shade_region(&mut input, *region);
        }
        for (rect, class) in sample.targets.boxes.iter().zip(&sample.targets.classes) {
            let class = VehicleClass::from_index(*class).unwrap();
            ant_detrac::draw::draw_box(&mut input, *rect, ant_detrac::draw::class_color(class), 2);
        }
        // The same boxes mapped back onto the full-size frame sit on the original boxes.
        let back = ant_detrac::transform::boxes_to_frame(&letterbox, &sample.targets.boxes);
        for (rect, target) in back.iter().zip(&item.targets) {
            let original = target.bbox.clip(960.0, 540.0);
            assert!(rect.iou(&original) > 0.999, "{rect:?} vs {original:?}");
        }
        ant_detrac::draw::draw_box(&mut frame, back[0], [255, 0, 0], 1);
        image::imageops::replace(
            &mut grid,
            &input,
            i64::from(index as u32 % 3 * 480),
            i64::from(index as u32 / 3 * 270),
        );
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("detrac-sample-boxes.png");
    grid.save(&out).unwrap();
    if std::env::var("REGENERATE").as_deref() == Ok("1") {
        // A JPEG in the repository: a tenth of the PNG's size.
        let docs = manifest_dir().join("../../docs");
        std::fs::create_dir_all(&docs).unwrap();
        grid.save(docs.join("detrac-sample-boxes.jpg")).unwrap();
    }
}

#[test]
fn should_reject_truncated_copies_of_the_real_file_with_the_file_name() {
    let Some(dir) = sample_dir() else { return };
    let path = dir.join("MVI_20011_v3.xml");
    let text = std::fs::read_to_string(&path).unwrap();
    for step in 0..200 {
        let cut = text.len() * step / 200;
        let error = SequenceAnnotation::parse(&text[..cut], &path).unwrap_err();
        assert!(
            error.to_string().contains("MVI_20011_v3.xml:"),
            "cut {cut}: {error}"
        );
    }
}

/// This package's directory, read when the test runs: a compile-time `env!` would keep the
/// path of whichever checkout last built the test binary when checkouts share a target
/// directory (as the README recommends), and the test would read that checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}
