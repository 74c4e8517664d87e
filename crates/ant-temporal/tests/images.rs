//! The crate's entry point for a downstream user: ANT loaded from a stage-2 checkpoint
//! directory ([`AntModel`]) streaming real UA-DETRAC images (`clip252`, 960x540), detections
//! in the images' own pixels, against the pipeline written out by hand (the letterbox and
//! normalisation, `process` on the input tensor, the inverse box map).

mod common;

use ant_geom::InputTransform;
use ant_geom::transform::boxes_to_frame;
use ant_supernet::{EfficientDet, EfficientDetConfig};
use ant_temporal::{AntDetector, AntModel, AntTemporalConfig, Mode};
use burn::prelude::*;

const CLIP: &str = "data/detrac-clip/clip252";

#[test]
fn should_stream_images_from_a_checkpoint_with_boxes_in_their_pixels() {
    let Some(dir) = common::shared(CLIP) else {
        return;
    };
    let device = Device::flex();
    device.seed(3);
    let config = EfficientDetConfig::tiny(4).with_image_size(128);
    let detector = EfficientDet::init(&config, &device);
    let temporal = AntTemporalConfig::new().init(&config.backbone, &device);
    let checkpoint = std::env::temp_dir().join(format!("ant-images-{}", std::process::id()));
    std::fs::create_dir_all(&checkpoint).unwrap();
    AntModel { detector, temporal }.save(&checkpoint).unwrap();

    let mode = Mode::fixed_interval(3);
    let mut streaming = AntDetector::load(&checkpoint, mode, &device).unwrap();
    let loaded = AntModel::load(&checkpoint, &device).unwrap();
    let mut by_hand = AntDetector::new(loaded.detector, Some(loaded.temporal), mode).unwrap();
    let transform = InputTransform::new(128, 128);
    let images: Vec<image::RgbImage> = common::frame_paths(&dir)[..5]
        .iter()
        .map(|path| image::open(path).unwrap().to_rgb8())
        .collect();
    let mut detected = 0;
    for (index, image) in images.iter().enumerate() {
        let result = streaming.process_image(image).unwrap();
        let (input, letterbox) = transform.letterbox_image(image);
        let frame = Tensor::<4>::from_data(
            TensorData::new(transform.normalize(&input), [1, 3, 128, 128]),
            &device,
        );
        let expected = by_hand.process(frame).unwrap();
        assert_eq!(result.key, index % 3 == 0, "frame {index}");
        assert_eq!((result.key, result.arch), (expected.key, expected.arch));
        let boxes: Vec<_> = expected.detections.items.iter().map(|d| d.bbox).collect();
        let mapped: Vec<_> = boxes_to_frame(&letterbox, &boxes)
            .into_iter()
            .filter(|b| b.x2 > b.x1 && b.y2 > b.y1)
            .collect();
        assert_eq!(result.detections.len(), mapped.len(), "frame {index}");
        for (found, bbox) in result.detections.items.iter().zip(&mapped) {
            assert_eq!(found.bbox, *bbox);
            assert!(found.bbox.x2 <= 960.0 && found.bbox.y2 <= 540.0);
        }
        detected += result.detections.len();
    }
    assert!(detected > 0, "random weights detect something on 5 frames");
    // An image of another size starts a new stream: key again, mid-interval.
    let small = image::imageops::thumbnail(&images[0], 480, 270);
    let result = streaming.process_image(&small).unwrap();
    assert!(result.key);
    for detection in &result.detections.items {
        assert!(detection.bbox.x2 <= 480.0 && detection.bbox.y2 <= 270.0);
    }
    let missing = checkpoint.join("nothing-here");
    let error = AntDetector::load(&missing, mode, &device)
        .unwrap_err()
        .to_string();
    assert!(error.contains("nothing-here"), "{error}");
    std::fs::remove_dir_all(&checkpoint).unwrap();
}
