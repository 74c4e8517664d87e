//! Hand-made cases whose answers follow from the COCO rules by hand: perfect and missing
//! detections, crowd regions, the 100-detection limit, score ties, absent categories and a
//! JSON round trip.

use ant_metrics::{
    CocoDataset, Detection, EvalParams, MetricsError, evaluate_bbox, load_detections,
    save_detections,
};

/// `tp / (tp + fp + eps)` keeps a perfect precision a hair below 1, as in pycocotools.
fn assert_close(ours: f64, expected: f64) {
    assert!((ours - expected).abs() < 1e-12, "{ours} vs {expected}");
}

/// One 640x480 image per entry of `boxes_per_image`, category 1 ("car") and 2 ("bus").
fn ground_truth(boxes_per_image: &[&[[f64; 4]]]) -> CocoDataset {
    let mut dataset = CocoDataset::new();
    dataset.add_category(1, "car");
    dataset.add_category(2, "bus");
    for (index, boxes) in boxes_per_image.iter().enumerate() {
        let image_id = index as u64 + 1;
        dataset.add_image(image_id, 640, 480);
        for &bbox in boxes.iter() {
            dataset.add_annotation(image_id, 1, bbox, false);
        }
    }
    dataset
}

const SMALL: [f64; 4] = [10.0, 10.0, 20.0, 20.0];
const MEDIUM: [f64; 4] = [100.0, 100.0, 50.0, 50.0];
const LARGE: [f64; 4] = [200.0, 200.0, 200.0, 150.0];

#[test]
fn should_score_perfect_detections_as_one() {
    let dataset = ground_truth(&[&[SMALL, MEDIUM], &[LARGE]]);
    let detections: Vec<Detection> = dataset
        .annotations
        .iter()
        .map(|truth| Detection::new(truth.image_id, truth.category_id, truth.bbox, 0.9))
        .collect();
    let result = evaluate_bbox(&dataset, &detections, &EvalParams::default()).unwrap();
    for (index, &stat) in result.stats.iter().enumerate() {
        // AR1 is 2/3: one detection per image finds one box of each image, so the second box
        // of image 1 is found only with 10 or 100 detections.
        let expected = if index == 6 { 2.0 / 3.0 } else { 1.0 };
        assert_close(stat, expected);
    }
    assert_close(result.per_class_ap[&1].unwrap(), 1.0);
    assert_eq!(result.per_class_ap[&2], None, "bus has no ground truth");
}

#[test]
fn should_score_no_detections_as_zero() {
    let dataset = ground_truth(&[&[SMALL, MEDIUM]]);
    let result = evaluate_bbox(&dataset, &[], &EvalParams::default()).unwrap();
    assert_eq!(result.stats[0], 0.0);
    assert_eq!(result.stats[8], 0.0);
    // No large ground truth: pycocotools reports -1 for APl and ARl.
    assert_eq!(result.stats[5], -1.0);
    assert_eq!(result.stats[11], -1.0);
    assert_eq!(result.per_class_ap[&1], Some(0.0));
}

#[test]
fn should_ignore_detections_matching_crowd() {
    let mut dataset = ground_truth(&[&[MEDIUM]]);
    let detections = vec![
        Detection::new(1, 1, MEDIUM, 0.5),
        // Two top-scoring detections inside the far region: false positives without a crowd.
        Detection::new(1, 1, [400.0, 300.0, 40.0, 40.0], 0.9),
        Detection::new(1, 1, [450.0, 350.0, 40.0, 40.0], 0.8),
    ];
    let params = EvalParams::default();
    let without_crowd = evaluate_bbox(&dataset, &detections, &params).unwrap();
    assert_close(without_crowd.stats[0], 1.0 / 3.0);
    // A crowd region over both: any number of detections may match it (IoU = intersection
    // over detection area = 1), and matched detections are ignored.
    dataset.add_annotation(1, 1, [380.0, 280.0, 200.0, 150.0], true);
    let with_crowd = evaluate_bbox(&dataset, &detections, &params).unwrap();
    assert_close(with_crowd.stats[0], 1.0);
    // The crowd box is not ground truth to find: recall stays 1 with one regular box found.
    assert_close(with_crowd.stats[8], 1.0);
}

#[test]
fn should_keep_only_hundred_best_detections_per_image() {
    let dataset = ground_truth(&[&[MEDIUM]]);
    // 100 false positives outscore the true positive, which is ranked 101st.
    let mut detections: Vec<Detection> = (0..100)
        .map(|index| Detection::new(1, 1, [0.0, 300.0 + index as f64, 10.0, 10.0], 0.9))
        .collect();
    detections.push(Detection::new(1, 1, MEDIUM, 0.1));
    let result = evaluate_bbox(&dataset, &detections, &EvalParams::default()).unwrap();
    assert_eq!(result.stats[8], 0.0, "AR100");
    assert_eq!(result.stats[0], 0.0, "AP");
    detections.remove(0);
    let result = evaluate_bbox(&dataset, &detections, &EvalParams::default()).unwrap();
    assert_close(result.stats[8], 1.0);
}

#[test]
fn should_break_score_ties_in_file_order() {
    let dataset = ground_truth(&[&[MEDIUM]]);
    let hit = Detection::new(1, 1, MEDIUM, 0.5);
    let miss = Detection::new(1, 1, [400.0, 300.0, 50.0, 50.0], 0.5);
    let params = EvalParams::default();
    // Hit first: precision 1 at recall 1. Miss first: precision 1/2 at recall 1.
    let hit_first = evaluate_bbox(&dataset, &[hit, miss], &params).unwrap();
    let miss_first = evaluate_bbox(&dataset, &[miss, hit], &params).unwrap();
    assert_close(hit_first.stats[0], 1.0);
    assert_close(miss_first.stats[0], 0.5);
}

#[test]
fn should_count_detections_on_images_without_ground_truth() {
    let dataset = ground_truth(&[&[MEDIUM], &[]]);
    let detections = vec![
        Detection::new(1, 1, MEDIUM, 0.5),
        Detection::new(2, 1, MEDIUM, 0.9),
    ];
    let result = evaluate_bbox(&dataset, &detections, &EvalParams::default()).unwrap();
    assert_close(result.stats[0], 0.5);
}

#[test]
fn should_refuse_detection_for_unknown_image() {
    let dataset = ground_truth(&[&[MEDIUM]]);
    let error = evaluate_bbox(
        &dataset,
        &[Detection::new(7, 1, MEDIUM, 0.5)],
        &EvalParams::default(),
    )
    .unwrap_err();
    assert!(matches!(
        error,
        MetricsError::DetectionForUnknownImage {
            index: 0,
            image_id: 7
        }
    ));
    assert_eq!(
        error.to_string(),
        "detection 0 refers to image 7, which is not in the ground truth"
    );
}

#[test]
fn should_evaluate_identically_after_json_round_trip() {
    let dataset = ground_truth(&[&[SMALL, MEDIUM], &[LARGE, [5.5, 7.25, 33.125, 40.0]]]);
    let detections = vec![
        Detection::new(1, 1, [11.0, 10.0, 20.0, 21.0], 0.7),
        Detection::new(1, 1, [100.0, 104.0, 50.0, 45.0], 0.6),
        Detection::new(2, 1, [205.0, 190.0, 200.0, 150.0], 0.65),
        Detection::new(2, 2, [5.0, 7.0, 33.0, 40.0], 0.3),
    ];
    let directory =
        std::env::temp_dir().join(format!("ant-metrics-round-trip-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let (gt_path, dets_path) = (directory.join("gt.json"), directory.join("dets.json"));
    dataset.to_json_file(&gt_path).unwrap();
    save_detections(&dets_path, &detections).unwrap();
    let reloaded_dataset = CocoDataset::from_json_file(&gt_path).unwrap();
    let reloaded_detections = load_detections(&dets_path).unwrap();
    std::fs::remove_dir_all(&directory).unwrap();
    assert_eq!(reloaded_dataset, dataset);
    assert_eq!(reloaded_detections, detections);
    let params = EvalParams::default();
    let before = evaluate_bbox(&dataset, &detections, &params).unwrap();
    let after = evaluate_bbox(&reloaded_dataset, &reloaded_detections, &params).unwrap();
    assert_eq!(before, after);
}
