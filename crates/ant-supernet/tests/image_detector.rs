//! `ImageDetector`, the crate's entry point: a native checkpoint and a real UA-DETRAC frame
//! (960x540) in, detections in the frame's pixels out, equal to the pipeline written out by
//! hand (effdet's letterbox and normalisation, the model's own forward and post-processing,
//! the inverse box map), which does not go through the prepared CPU engine the detector
//! uses.

mod common;

use std::path::PathBuf;

use ant_geom::InputTransform;
use ant_geom::transform::boxes_to_frame;
use ant_supernet::{Detection, EfficientDet, EfficientDetConfig, ImageDetector, SubnetArch};
use burn::tensor::{Device, Tensor, TensorData};

/// The effdet parity checkpoint saved as a native checkpoint, and a real frame.
fn fixture(name: &str) -> Option<(PathBuf, image::RgbImage)> {
    let effdet = common::shared("fixtures/effdet-d0")?;
    let frame = common::shared("data/detrac-sample/MVI_20011/img00001.jpg")?;
    let pth = effdet.join("tf_efficientdet_d0_random.pth");
    // The fixture's class head has 9 anchors x 4 classes (generate.py, NUM_CLASSES=4).
    let config = EfficientDetConfig::d0(4);
    let model = EfficientDet::from_effdet(&config, &pth, &Device::flex()).unwrap();
    let dir =
        std::env::temp_dir().join(format!("ant-image-detector-{name}-{}", std::process::id()));
    let path = dir.join("model.bpk");
    model.save(&path).unwrap();
    Some((path, image::open(frame).unwrap().to_rgb8()))
}

/// The pipeline by hand, on Burn's ops.
fn by_hand(model: &EfficientDet, image: &image::RgbImage, arch: &SubnetArch) -> Vec<Detection> {
    let size = model.config.image_size;
    let transform = InputTransform::new(size as u32, size as u32);
    let (input, letterbox) = transform.letterbox_image(image);
    let device = model.backbone.stem.weight.val().device();
    let x = Tensor::<4>::from_data(
        TensorData::new(transform.normalize(&input), [1, 3, size, size]),
        &device,
    );
    let detections = model.detect(x, arch).unwrap().pop().unwrap();
    let boxes: Vec<_> = detections.items.iter().map(|d| d.bbox).collect();
    detections
        .items
        .iter()
        .zip(boxes_to_frame(&letterbox, &boxes))
        .map(|(d, bbox)| Detection { bbox, ..*d })
        .filter(|d| d.bbox.x2 > d.bbox.x1 && d.bbox.y2 > d.bbox.y1)
        .collect()
}

fn assert_same(found: &[Detection], expected: &[Detection]) {
    assert_eq!(found.len(), expected.len());
    for (a, b) in found.iter().zip(expected) {
        assert_eq!(a.class, b.class);
        assert!((a.score - b.score).abs() < 1e-4, "{a:?} vs {b:?}");
        for (x, y) in [
            (a.bbox.x1, b.bbox.x1),
            (a.bbox.y1, b.bbox.y1),
            (a.bbox.x2, b.bbox.x2),
            (a.bbox.y2, b.bbox.y2),
        ] {
            assert!((x - y).abs() < 0.05, "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn should_detect_on_a_real_frame_in_its_own_pixels_as_the_pipeline_by_hand() {
    let Some((path, frame)) = fixture("full") else {
        return;
    };
    assert_eq!((frame.width(), frame.height()), (960, 540));
    // The CPU engine (prepared) against the hand pipeline through the model's layers.
    let detector = ImageDetector::load(&path, &Device::flex()).unwrap();
    assert_eq!(detector.subnet(), SubnetArch::LARGEST);
    let found = detector.detect(&frame).unwrap();
    let reference = EfficientDet::load(&path, &Device::flex()).unwrap();
    let expected = by_hand(&reference, &frame, &SubnetArch::LARGEST);
    // The fixture's random weights with jittered class priors detect plenty (46 here).
    assert!(found.len() >= 20, "{} detections", found.len());
    assert_same(&found, &expected);
    for detection in &found {
        let b = detection.bbox;
        assert!(
            b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= 960.0 && b.y2 <= 540.0,
            "{b:?}"
        );
    }
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
    // A model still on the autodiff device (as training leaves it) detects in inference
    // mode all the same.
    let trained = EfficientDet::load(&path, &Device::flex().autodiff()).unwrap();
    assert_same(&ImageDetector::new(trained).detect(&frame).unwrap(), &found);
    // A mapping error would show as boxes cut off at the letterbox's 512x288 region.
    assert!(found.iter().any(|d| d.bbox.x2 > 600.0 || d.bbox.y2 > 320.0));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn should_run_the_chosen_subnet_and_name_a_missing_checkpoint() {
    let Some((path, frame)) = fixture("subnet") else {
        return;
    };
    let arch = SubnetArch::SMALLEST;
    let detector = ImageDetector::load(&path, &Device::flex())
        .unwrap()
        .with_subnet(arch)
        .unwrap();
    assert_eq!(detector.subnet(), arch);
    let found = detector.detect(&frame).unwrap();
    let reference = EfficientDet::load(&path, &Device::flex()).unwrap();
    assert_same(&found, &by_hand(&reference, &frame, &arch));
    assert_ne!(
        found,
        ImageDetector::load(&path, &Device::flex())
            .unwrap()
            .detect(&frame)
            .unwrap()
    );
    let missing = path.with_file_name("missing.bpk");
    let error = ImageDetector::load(&missing, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing"), "{error}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
