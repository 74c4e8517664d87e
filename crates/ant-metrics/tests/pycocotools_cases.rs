//! Edge cases checked against pycocotools: the folders of `tests/fixtures/`, made by
//! `scripts/make_fixtures.py` with pycocotools 2.0.11 (perfect detections, no detections,
//! crowd regions, IoU and areas exactly at the thresholds with tied scores, a ground-truth id
//! of 0, more than 100 detections per image, random integer boxes with one-decimal scores, and
//! the two DETRAC ignored-region policies).
//!
//! Our evaluator follows pycocotools' arithmetic step by step, so these cases are held to
//! 1e-9, tighter than the 1e-4 of the project's parity contract.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ant_metrics::{
    CocoDataset, EvalParams, IgnorePolicy, IgnoreRegions, STAT_NAMES, evaluate_bbox,
    evaluate_detrac, load_detections,
};

const TOLERANCE: f64 = 1e-9;

fn fixtures() -> PathBuf {
    manifest_dir().join("tests/fixtures")
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The regions of `regions.json`, written as corners `[x1, y1, x2, y2]` (whole pixels, so
/// the conversion to `[x, y, width, height]` is exact).
fn load_regions(path: &Path) -> IgnoreRegions {
    let raw: BTreeMap<String, Vec<[f64; 4]>> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut regions = IgnoreRegions::new();
    for (image_id, boxes) in raw {
        let boxes = boxes
            .iter()
            .map(|&[x1, y1, x2, y2]| [x1, y1, x2 - x1, y2 - y1])
            .collect();
        regions.insert(image_id.parse().unwrap(), boxes);
    }
    regions
}

fn check_case(case: &Path) -> Vec<String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let ground_truth = CocoDataset::from_json_file(case.join("gt.json")).unwrap();
    let detections = load_detections(case.join("dets.json")).unwrap();
    let expected = read_json(&case.join("expected.json"));
    let params = EvalParams::default();
    let result = match expected["policy"].as_str() {
        None => evaluate_bbox(&ground_truth, &detections, &params).unwrap(),
        Some(policy) => {
            let policy = match policy {
                "drop_half_inside" => IgnorePolicy::DropHalfInside,
                "as_crowd" => IgnorePolicy::AsCrowd,
                other => panic!("unknown policy {other} in {name}"),
            };
            let regions = load_regions(&case.join("regions.json"));
            evaluate_detrac(&ground_truth, &detections, &regions, policy, &params).unwrap()
        }
    };
    let mut failures = Vec::new();
    for (index, theirs) in expected["stats"].as_array().unwrap().iter().enumerate() {
        let (ours, theirs) = (result.stats[index], theirs.as_f64().unwrap());
        if (ours - theirs).abs() > TOLERANCE {
            failures.push(format!(
                "{name} {}: ours {ours} pycocotools {theirs}",
                STAT_NAMES[index]
            ));
        }
    }
    let expected_per_class = expected["per_class_ap"].as_object().unwrap();
    assert_eq!(
        expected_per_class.len(),
        result.per_class_ap.len(),
        "{name}: category count"
    );
    for (category, theirs) in expected_per_class {
        let ours = result.per_class_ap[&category.parse::<u64>().unwrap()];
        let agree = match (ours, theirs.as_f64()) {
            (Some(ours), Some(theirs)) => (ours - theirs).abs() <= TOLERANCE,
            (None, None) => true,
            _ => false,
        };
        if !agree {
            failures.push(format!(
                "{name} AP of category {category}: ours {ours:?} pycocotools {theirs}"
            ));
        }
    }
    failures
}

#[test]
fn should_match_pycocotools_on_edge_cases() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("expected.json").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 9,
        "expected the committed cases in {}",
        fixtures().display()
    );
    let failures: Vec<String> = cases.iter().flat_map(|case| check_case(case)).collect();
    assert!(
        failures.is_empty(),
        "disagreements with pycocotools:\n{}",
        failures.join("\n")
    );
}

/// This package's directory, read when the test runs: a compile-time `env!` would keep the
/// path of whichever checkout last built the test binary when checkouts share a target
/// directory (as the README recommends), and the test would read that checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into()
}
