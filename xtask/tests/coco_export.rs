//! Numbers a user can re-derive (issue 17): detections scored by `cargo xtask coco-eval`
//! against `cargo xtask dataset to-coco` of the same split, as a user runs them, on a tiny
//! synthetic set whose test sequences have ignored regions.
//!
//! - `--protocol detrac` gives `cargo xtask eval`'s 12 numbers, bit for bit: those of
//!   `eval/report.json` for its own detections (an untrained tiny run), and those of eval's
//!   scoring for detections that find the vehicles;
//! - the plain protocol gives other numbers (so the regions matter on this data);
//! - `to-coco --ignored-as-crowd` scored plainly gives ant-metrics' `IgnorePolicy::AsCrowd`,
//!   bit for bit, and differs from both;
//! - `--protocol detrac` on a file without the `ignored_regions` key is an error naming it.

mod common;

use std::path::{Path, PathBuf};

use ant_detrac::{ReleaseLayout, Split, SynthConfig, load_split, write_dataset};
use ant_eval::EvalGroundTruth;
use ant_metrics::{
    Detection, DetracGroundTruth, EvalParams, IgnorePolicy, load_detections, save_detections,
};
use ant_train::TrainConfig;
use ant_train::write_untrained_run;
use burn::tensor::Device;

use common::{manifest_dir, xtask};

/// The 12 numbers of `coco-eval --json` (its last line).
fn coco_eval(gt: &Path, dets: &Path, protocol: &str) -> ([f64; 12], String) {
    let (ok, stdout, stderr) = xtask(&[
        "coco-eval",
        "--gt",
        gt.to_str().unwrap(),
        "--dets",
        dets.to_str().unwrap(),
        "--protocol",
        protocol,
        "--json",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let stats: Vec<f64> = serde_json::from_value(last["stats"].clone()).unwrap();
    (stats.try_into().unwrap(), stdout)
}

fn to_coco(data_root: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "dataset",
        "to-coco",
        "--root",
        data_root.to_str().unwrap(),
        "--split",
        "test",
        "--frame-step",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = xtask(&args);
    assert!(ok, "{stdout}\n{stderr}");
}

/// A synthetic release of 5 sequences (2 test sequences of 8 frames: 8 frames scored at the
/// default frame step 2) under a fresh `root`.
fn synthetic_release(name: &str) -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("ant-xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data_root = root.join("synth");
    write_dataset(
        &SynthConfig {
            sequences: 5,
            frames: 8,
            ..SynthConfig::default()
        },
        &data_root,
    )
    .unwrap();
    (root, data_root)
}

/// `cargo xtask eval` end to end: every method's `stats` in `report.json` are what `coco-eval
/// --protocol detrac` gives for its `detections/<method>.json` against `to-coco` of the test
/// split at the run's frame step. An untrained network's boxes cover whole frames, so these
/// numbers are all 0 (or -1): this checks the files, ids and frame step line up; the test
/// below checks the scoring on detections that find the vehicles.
#[test]
fn eval_report_should_equal_coco_eval_of_its_detections_against_the_export() {
    let (root, data_root) = synthetic_release("coco-eval-run");
    let config = TrainConfig::load(
        &manifest_dir().join("../configs/default.json"),
        &[
            format!("data.root={}", serde_json::to_string(&data_root).unwrap()),
            "model.image_size=128".into(),
            "eval.recalibration_batches=1".into(),
            "joint.clip_len=3".into(),
            "joint.frame_gap=1".into(),
            "joint.clip_step=null".into(),
        ],
    )
    .unwrap();
    assert_eq!(config.data.test_frame_step, 2, "to-coco below uses it");
    let run_dir = root.join("run");
    write_untrained_run(&run_dir, &config, &Device::flex()).unwrap();
    let (ok, stdout, stderr) = xtask(&[
        "eval",
        "--run",
        run_dir.to_str().unwrap(),
        "--thresholds",
        "0.05",
        "--search-samples",
        "0",
        "--warmup",
        "0",
        "--quiet",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let eval_dir = run_dir.join("eval");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval_dir.join("report.json")).unwrap())
            .unwrap();
    let methods = report["methods"].as_array().unwrap();
    assert!(methods.len() >= 3, "{methods:?}");
    assert_eq!(report["scored_frames"], 8);

    let gt = root.join("gt.json");
    to_coco(&data_root, &gt, &[]);
    for method in methods {
        let name = method["name"].as_str().unwrap();
        let expected: [f64; 12] = serde_json::from_value(method["stats"].clone()).unwrap();
        let dets = eval_dir.join(method["detections_file"].as_str().unwrap());
        assert!(!load_detections(&dets).unwrap().is_empty(), "{name}");
        let (detrac, _) = coco_eval(&gt, &dets, "detrac");
        assert_eq!(
            detrac.map(f64::to_bits),
            expected.map(f64::to_bits),
            "{name}: coco-eval --protocol detrac {detrac:?}, eval {expected:?}"
        );
        assert_eq!(method["ap"].as_f64().unwrap(), detrac[0].max(0.0), "{name}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Detections on `eval`'s ground truth that find most vehicles, with false positives inside
/// the ignored regions (wholly, and 60% inside), elsewhere, and boxes at IoU 0.5 with a vehicle
/// up to float rounding (whether they match depends on the exact values of the boxes).
fn detections_on(ground_truth: &EvalGroundTruth) -> Vec<Detection> {
    let mut detections = Vec::new();
    let score = |index: usize, low: f64| low + 0.5 * ((index * 37) % 101) as f64 / 101.0;
    for (index, truth) in ground_truth.dataset.annotations.iter().enumerate() {
        let [x, y, w, h] = truth.bbox;
        let bbox = if index % 5 == 4 {
            // The same box, wider: IoU 0.5 or 0.75 with it, but for rounding.
            let widening = if index % 2 == 0 { 2.0 } else { 4.0 / 3.0 };
            [x, y, widening * w, h]
        } else {
            let jitter = |k: usize| ((index * k) % 5) as f64 * 0.8 - 1.6;
            [x + jitter(7), y + jitter(3), w + jitter(11), h + jitter(13)]
        };
        let detection = Detection::new(truth.image_id, truth.category_id, bbox, score(index, 0.4));
        detections.push(detection);
    }
    for image in &ground_truth.dataset.images {
        for (index, &[x, y, w, h]) in ground_truth.regions.get(image.id).iter().enumerate() {
            let category_id = 1 + (image.id + index as u64) % 4;
            // The regions are at least 57 pixels wide; the strip's lower edge is the top of
            // the far-lane region, whose centre is left of the strip's.
            let inside = [x + 0.25 * w - 8.0, y + 0.2 * h, 16.0, 0.6 * h];
            let mostly_inside = [x + 0.5 * w - 15.0, y + h - 12.0, 30.0, 20.0];
            detections.push(Detection::new(image.id, category_id, inside, 0.95));
            detections.push(Detection::new(image.id, category_id, mostly_inside, 0.9));
        }
        let elsewhere = [f64::from(image.width) - 40.0, 5.0, 30.0, 20.0];
        detections.push(Detection::new(image.id, 1, elsewhere, 0.5));
    }
    detections
}

/// `coco-eval --protocol detrac` scores an export exactly as `eval` scores its ground truth
/// (`EvalGroundTruth::score`, the one scoring function of ant-train), on detections where the
/// regions and the exact box values matter; the plain protocol and the crowd export differ, and
/// the crowd export scored plainly is ant-metrics' `IgnorePolicy::AsCrowd`.
#[test]
fn coco_eval_should_score_an_export_exactly_as_eval_does() {
    let (root, data_root) = synthetic_release("coco-eval-scoring");
    let test = load_split(&ReleaseLayout::new(&data_root), Split::Test).unwrap();
    let ground_truth = EvalGroundTruth::new(&test, &data_root, 2).unwrap();
    let regions = ground_truth.regions.len();
    assert!(regions > 0, "the test sequences have ignored regions");
    let detections = detections_on(&ground_truth);
    let dets = root.join("dets.json");
    save_detections(&dets, &detections).unwrap();
    let expected = ground_truth.score(&detections).unwrap().stats;
    assert!(
        expected[0] > 0.3,
        "the detections find the vehicles: {expected:?}"
    );

    let gt = root.join("gt.json");
    to_coco(&data_root, &gt, &[]);
    let (detrac, stdout) = coco_eval(&gt, &dets, "detrac");
    assert_eq!(
        detrac.map(f64::to_bits),
        expected.map(f64::to_bits),
        "coco-eval --protocol detrac {detrac:?}, eval {expected:?}"
    );
    let dropped = stdout
        .lines()
        .find(|line| line.starts_with("DETRAC protocol:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        dropped.contains(&format!("{regions} ignored regions"))
            && dropped.ends_with(&format!(" {} detections", 2 * regions)),
        "{dropped}"
    );
    let (plain, _) = coco_eval(&gt, &dets, "coco");
    assert_ne!(plain, detrac, "the regions change the numbers");

    // The crowd export, scored plainly, is the AsCrowd policy of ant-metrics.
    let crowd_gt = root.join("gt-crowd.json");
    to_coco(&data_root, &crowd_gt, &["--ignored-as-crowd"]);
    let as_crowd = DetracGroundTruth::from_json_file(&gt)
        .unwrap()
        .evaluate(&detections, IgnorePolicy::AsCrowd, &EvalParams::default())
        .unwrap()
        .stats;
    let (crowd, _) = coco_eval(&crowd_gt, &dets, "coco");
    assert_eq!(
        crowd.map(f64::to_bits),
        as_crowd.map(f64::to_bits),
        "--ignored-as-crowd {crowd:?}, AsCrowd {as_crowd:?}"
    );
    assert_ne!(crowd, plain, "the crowd boxes change the numbers");
    assert_ne!(
        crowd, detrac,
        "60% inside: dropped by DETRAC, a crowd match up to IoU 0.6"
    );
    eprintln!("detrac {detrac:?}\nas crowd {crowd:?}\nplain {plain:?}");

    // That file has no ignored_regions key: the DETRAC protocol refuses it, naming it.
    let (ok, _, stderr) = xtask(&[
        "coco-eval",
        "--gt",
        crowd_gt.to_str().unwrap(),
        "--dets",
        dets.to_str().unwrap(),
        "--protocol",
        "detrac",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("gt-crowd.json")
            && stderr.contains("no `ignored_regions` key")
            && stderr.contains("--protocol coco"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
