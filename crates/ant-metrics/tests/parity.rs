//! Parity with pycocotools on the shared fixtures: every `caseNN/` of
//! `shared/fixtures/coco-eval/` holds `gt.json`, `dets.json` and pycocotools 2.0.11's
//! `COCOeval(...,'bbox').stats` in `expected.json` (made by that folder's `generate.py`). Each of
//! our 12 numbers must be within 1e-4 of pycocotools'.
//!
//! The fixtures live outside the repository, at `../shared` from its root. Under CI
//! (`CI=true`) a missing folder fails the test; elsewhere it is skipped with a note.

use std::path::{Path, PathBuf};

use ant_metrics::{CocoDataset, EvalParams, STAT_NAMES, evaluate_bbox, load_detections};

const TOLERANCE: f64 = 1e-4;

fn expected_stats(path: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|number| number.as_f64().unwrap())
        .collect()
}

#[test]
fn should_match_pycocotools_on_shared_cases() {
    let Some(dir) = ant_fixtures::shared("fixtures/coco-eval") else {
        return;
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("expected.json").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    for case in &cases {
        let ground_truth = CocoDataset::from_json_file(case.join("gt.json")).unwrap();
        let detections = load_detections(case.join("dets.json")).unwrap();
        let result = evaluate_bbox(&ground_truth, &detections, &EvalParams::default()).unwrap();
        let expected = expected_stats(&case.join("expected.json"));
        assert_eq!(expected.len(), 12);
        for (index, (&ours, &theirs)) in result.stats.iter().zip(&expected).enumerate() {
            let difference = (ours - theirs).abs();
            if difference > TOLERANCE {
                failures.push(format!(
                    "{} {}: ours {ours} pycocotools {theirs}",
                    case.display(),
                    STAT_NAMES[index]
                ));
            }
        }
        eprintln!(
            "{}: max difference {:e}",
            case.file_name().unwrap().to_string_lossy(),
            result
                .stats
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        );
    }
    assert!(
        failures.is_empty(),
        "parity failures:\n{}",
        failures.join("\n")
    );
}
