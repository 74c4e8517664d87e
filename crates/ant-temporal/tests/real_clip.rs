//! Key frames and costs on real UA-DETRAC footage (`../shared/data/detrac-clip/clip252`,
//! 252 consecutive frames of one camera). Models are randomly initialised: the properties
//! checked here (feature drift, key-frame counts, cost of narrow subnets) do not depend on
//! trained weights.

mod common;

use ant_scheduler::{KeyFramePolicy, KeyFrameScheduler, normalized_l1_deviation};
use ant_supernet::{EfficientDet, EfficientDetConfig, SubnetArch};
use ant_temporal::{AntDetector, AntTemporalConfig, Mode};
use burn::prelude::*;

const CLIP: &str = "data/detrac-clip/clip252";

fn stem_features(model: &EfficientDet, frame: Tensor<4>) -> Vec<f32> {
    model
        .backbone
        .forward_stem(frame)
        .into_data()
        .try_to_vec()
        .unwrap()
}

fn key_count(policy: KeyFramePolicy, stems: &[Vec<f32>]) -> usize {
    let mut scheduler = KeyFrameScheduler::new(policy).unwrap();
    stems
        .iter()
        .filter(|stem| scheduler.decide(Some(stem)).unwrap().key)
        .count()
}

#[test]
fn should_drift_away_from_the_first_frame_and_choose_fewer_key_frames_at_higher_thresholds() {
    let Some(dir) = common::shared(CLIP) else {
        return;
    };
    let device = Device::flex();
    let config = EfficientDetConfig::tiny(4).with_image_size(128);
    let model = EfficientDet::init(&config, &device);
    let paths = common::frame_paths(&dir);
    assert_eq!(paths.len(), 252);
    // Every second frame of the first 160: the stem is cheap, decoding dominates.
    let stems: Vec<Vec<f32>> = paths[..160]
        .iter()
        .step_by(2)
        .map(|path| stem_features(&model, common::load_frame(path, 128, &device)))
        .collect();

    // Deviation from frame 1 grows with distance (averaged over windows to smooth out noise).
    let deviation = |index: usize| normalized_l1_deviation(&stems[index], &stems[0]).unwrap();
    let window = |range: std::ops::Range<usize>| {
        let len = range.len() as f32;
        range.map(deviation).sum::<f32>() / len
    };
    let near = window(1..5);
    let middle = window(20..30);
    let far = window(70..80);
    eprintln!("stem deviation from frame 1: near {near:.4}, middle {middle:.4}, far {far:.4}");
    assert!(near > 0.0);
    assert!(near < middle && middle < far, "{near} {middle} {far}");

    // Threshold 0: every frame key. Huge threshold: only the first.
    let all = key_count(KeyFramePolicy::Adaptive { threshold: 0.0 }, &stems);
    assert_eq!(all, stems.len());
    let first_only = key_count(KeyFramePolicy::Adaptive { threshold: 1e9 }, &stems);
    assert_eq!(first_only, 1);

    // More threshold never gives more key frames.
    let thresholds = [
        0.0,
        0.5 * near,
        near,
        middle,
        0.5 * (middle + far),
        far,
        2.0 * far,
        1e9,
    ];
    let counts: Vec<usize> = thresholds
        .iter()
        .map(|&threshold| key_count(KeyFramePolicy::Adaptive { threshold }, &stems))
        .collect();
    eprintln!("key frames per threshold {thresholds:?}: {counts:?}");
    assert!(
        counts.windows(2).all(|pair| pair[1] <= pair[0]),
        "{counts:?}"
    );
    assert!(counts[2] > 1 && counts[2] < stems.len(), "{counts:?}");
}

#[test]
fn should_make_every_frame_key_at_threshold_zero_and_only_the_first_at_a_huge_one() {
    let Some(dir) = common::shared(CLIP) else {
        return;
    };
    let device = Device::flex();
    let config = EfficientDetConfig::tiny(4).with_image_size(128);
    let model = EfficientDet::init(&config, &device);
    let temporal = AntTemporalConfig::new().init(&config.backbone, &device);
    let frames: Vec<Tensor<4>> = common::frame_paths(&dir)[..6]
        .iter()
        .map(|path| common::load_frame(path, 128, &device))
        .collect();
    for (threshold, expected) in [
        (0.0, vec![true; 6]),
        (1e9, vec![true, false, false, false, false, false]),
    ] {
        let mut detector = AntDetector::new(
            model.clone(),
            Some(temporal.clone()),
            Mode::adaptive(threshold),
        )
        .unwrap();
        let keys: Vec<bool> = frames
            .iter()
            .map(|frame| detector.process(frame.clone()).unwrap().key)
            .collect();
        assert_eq!(keys, expected, "threshold {threshold}");
        // After reset the next frame is key again.
        detector.reset();
        assert!(detector.process(frames[3].clone()).unwrap().key);
    }
}

#[test]
fn should_spend_less_gmac_and_time_on_narrow_non_key_frames() {
    let Some(dir) = common::shared(CLIP) else {
        return;
    };
    let device = Device::flex();
    let config = EfficientDetConfig::tiny(4).with_image_size(256);
    let model = EfficientDet::init(&config, &device);
    let temporal = AntTemporalConfig::new().init(&config.backbone, &device);
    let mode = Mode::fixed_interval(3).with_fixed_width(SubnetArch::SMALLEST);
    let mut detector = AntDetector::new(model, Some(temporal), mode).unwrap();
    let frames: Vec<Tensor<4>> = common::frame_paths(&dir)[..13]
        .iter()
        .map(|path| common::load_frame(path, 256, &device))
        .collect();
    // Warm up (allocator, first-call costs), then measure a fresh stream.
    detector.process(frames[0].clone()).unwrap();
    detector.process(frames[1].clone()).unwrap();
    detector.reset();
    let results: Vec<_> = frames
        .iter()
        .map(|frame| detector.process(frame.clone()).unwrap())
        .collect();
    let median = |key: bool| {
        let mut times: Vec<f64> = results
            .iter()
            .filter(|r| r.key == key)
            .map(|r| r.latency_ms)
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let key = results.iter().find(|r| r.key).unwrap();
    let non_key = results.iter().find(|r| !r.key).unwrap();
    assert_eq!(non_key.arch, SubnetArch::SMALLEST);
    assert_eq!(key.arch, SubnetArch::LARGEST);
    assert!(non_key.gmac < key.gmac, "{} vs {}", non_key.gmac, key.gmac);
    let (key_ms, non_key_ms) = (median(true), median(false));
    eprintln!(
        "key {:.3} GMAC {key_ms:.1} ms, non-key {:.3} GMAC {non_key_ms:.1} ms (fusion {:.1} ms)",
        key.gmac, non_key.gmac, non_key.fusion_gate_ms
    );
    assert!(non_key_ms < 0.9 * key_ms, "{non_key_ms} ms vs {key_ms} ms");
}
