//! Skip-Convolutions (`ant_supernet::skipconv`, `Mode::skip_conv`) on real UA-DETRAC
//! footage (`../shared/data/detrac-clip/clip252`): at threshold 0 the outputs are the dense
//! detector's, the work falls as the threshold rises, both kernels agree, and the MACs add
//! up to the dense count. Models are randomly initialised: what is checked here (equality
//! with the dense network, how the gates respond to change) does not depend on trained
//! weights.

mod common;

use ant_supernet::prepared::{Map, PreparedDetector, PreparedOutputs};
use ant_supernet::skipconv::{LayerKind, SkipConvDetector, SkipConvOptions, SkipKernel};
use ant_supernet::{EfficientDet, EfficientDetConfig, SubnetArch, detector_cost};
use ant_temporal::{AntDetector, Mode};
use burn::prelude::*;

const CLIP: &str = "data/detrac-clip/clip252";
const SIZE: usize = 256;

fn model() -> EfficientDet {
    EfficientDet::init(
        &EfficientDetConfig::tiny(4).with_image_size(SIZE),
        &Device::flex(),
    )
}

/// The first `count` frames of the clip, every `step`-th, as engine inputs.
fn frames(count: usize, step: usize) -> Option<Vec<Map>> {
    let dir = common::shared(CLIP)?;
    let device = Device::flex();
    Some(
        common::frame_paths(&dir)
            .iter()
            .step_by(step)
            .take(count)
            .map(|path| Map::from_tensor(common::load_frame(path, SIZE, &device)))
            .collect(),
    )
}

/// `max |a - b| / max(1, max |b|)` over every head output.
fn relative_difference(a: &PreparedOutputs, b: &PreparedOutputs) -> f32 {
    let mut worst = 0f32;
    for (x, y) in a
        .class
        .iter()
        .chain(&a.boxes)
        .zip(b.class.iter().chain(&b.boxes))
    {
        assert_eq!(x.data.len(), y.data.len());
        let scale = y.data.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (p, q) in x.data.iter().zip(&y.data) {
            worst = worst.max((p - q).abs() / scale);
        }
    }
    worst
}

fn skip(detector: &PreparedDetector, threshold: f32, kernel: SkipKernel) -> SkipConvDetector {
    SkipConvDetector::new(detector.clone(), SkipConvOptions { threshold, kernel }).unwrap()
}

#[test]
fn should_equal_the_dense_detector_at_threshold_zero_with_both_kernels() {
    let Some(frames) = frames(6, 1) else {
        return;
    };
    let model = model();
    let dense = PreparedDetector::new(&model);
    let expected_macs = detector_cost(&model.config, &SubnetArch::LARGEST)
        .total
        .macs;
    for kernel in [SkipKernel::Sparse, SkipKernel::Dense] {
        let mut detector = skip(&dense, 0.0, kernel);
        for (index, frame) in frames.iter().enumerate() {
            let result = detector.forward(frame);
            let reference = dense.forward(frame, &SubnetArch::LARGEST).unwrap();
            let difference = relative_difference(&result.outputs, &reference);
            eprintln!(
                "{kernel:?} frame {index}: computed {:.3} of the MACs, relative difference \
                 {difference:.2e}",
                result.computed_fraction()
            );
            assert!(difference <= 1e-4, "{kernel:?} frame {index}: {difference}");
            assert_eq!(result.first, index == 0);
            assert_eq!(
                result.dense_macs, expected_macs,
                "the dense count is detector_cost's"
            );
            if index == 0 {
                assert_eq!(
                    result.macs, expected_macs,
                    "the first frame computes everything"
                );
            } else {
                assert!(result.macs <= expected_macs);
            }
        }
    }
}

#[test]
fn should_compute_less_as_the_threshold_rises_and_nothing_for_a_repeated_frame() {
    let Some(frames) = frames(8, 2) else {
        return;
    };
    let model = model();
    let dense = PreparedDetector::new(&model);
    let thresholds = [0.0, 0.02, 0.05, 0.1, 0.2, 0.5];
    let mut fractions = Vec::new();
    for &threshold in &thresholds {
        let mut detector = skip(&dense, threshold, SkipKernel::Sparse);
        let mut sum = 0.0;
        for (index, frame) in frames.iter().enumerate() {
            let result = detector.forward(frame);
            if index > 0 {
                sum += result.computed_fraction();
            }
        }
        let fraction = sum / (frames.len() - 1) as f64;
        eprintln!("threshold {threshold}: mean computed fraction {fraction:.4}");
        fractions.push(fraction);
    }
    for pair in fractions.windows(2) {
        assert!(pair[1] <= pair[0] + 1e-3, "{fractions:?}");
    }
    assert!(
        fractions[fractions.len() - 1] < 0.5 * fractions[0],
        "{fractions:?}"
    );

    // The same frame again: every convolution skips every position; only squeeze-excite's
    // small dense layers run, and the outputs stay as they were.
    let mut detector = skip(&dense, 0.0, SkipKernel::Sparse);
    let first = detector.forward(&frames[0]);
    let again = detector.forward(&frames[0]);
    assert!(
        again.computed_fraction() < 0.01,
        "{}",
        again.computed_fraction()
    );
    assert_eq!(relative_difference(&again.outputs, &first.outputs), 0.0);
    // A reset stream computes everything again.
    detector.reset();
    assert_eq!(detector.forward(&frames[0]).macs, first.macs);
}

#[test]
fn should_give_the_same_outputs_and_work_with_the_dense_and_the_sparse_kernel() {
    let Some(frames) = frames(6, 3) else {
        return;
    };
    let model = model();
    let dense = PreparedDetector::new(&model);
    let mut sparse_run = skip(&dense, 0.05, SkipKernel::Sparse);
    let mut dense_run = skip(&dense, 0.05, SkipKernel::Dense);
    for (index, frame) in frames.iter().enumerate() {
        let a = sparse_run.forward(frame);
        let b = dense_run.forward(frame);
        let difference = relative_difference(&a.outputs, &b.outputs);
        assert!(difference <= 1e-4, "frame {index}: {difference}");
        let (a_macs, b_macs) = (a.macs as f64, b.macs as f64);
        assert!(
            (a_macs - b_macs).abs() <= 0.01 * b_macs,
            "frame {index}: {a_macs} vs {b_macs} MACs"
        );
    }
}

#[test]
fn should_run_as_a_mode_of_the_streaming_detector() {
    let Some(frames) = frames(4, 1) else {
        return;
    };
    let device = Device::flex();
    let model = model();
    let full_gmac = detector_cost(&model.config, &SubnetArch::LARGEST)
        .total
        .macs as f64
        / 1e9;
    let mut detector =
        AntDetector::new(model, None, Mode::skip_conv(0.1, SkipKernel::Sparse)).unwrap();
    assert_eq!(detector.mode().name(), "skipconv(0.1,sparse)");
    let to_tensor = |map: &Map| map.to_tensor(&device);
    let results: Vec<_> = frames
        .iter()
        .map(|frame| detector.process(to_tensor(frame)).unwrap())
        .collect();
    assert!(results[0].key);
    assert!((results[0].gmac - full_gmac).abs() < 1e-9);
    for result in &results[1..] {
        assert!(!result.key);
        assert!(result.gmac < full_gmac, "{} vs {full_gmac}", result.gmac);
    }
    detector.reset();
    assert!(detector.process(to_tensor(&frames[1])).unwrap().key);
    // Skip-Conv needs the CPU engine's buffers: a model on the autodiff device is refused.
    let tracked = EfficientDet::init(
        &EfficientDetConfig::tiny(4).with_image_size(SIZE),
        &Device::flex().autodiff(),
    );
    let error = AntDetector::new(tracked, None, Mode::skip_conv(0.1, SkipKernel::Dense))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("skip-conv runs on the prepared CPU engine"),
        "{error}"
    );
}

/// Output positions of the 3x3 stride-2 stem (TF "same" padding) whose window holds a pixel
/// where `a` and `b` differ in any channel, counted one by one.
fn naive_stem_count(a: &Map, b: &Map) -> usize {
    let out = SIZE.div_ceil(2);
    let pad = ((out - 1) * 2 + 3).saturating_sub(SIZE) / 2;
    let plane = SIZE * SIZE;
    let differs = |y: usize, x: usize| {
        (0..3).any(|c| a.data[c * plane + y * SIZE + x] != b.data[c * plane + y * SIZE + x])
    };
    let mut count = 0;
    for oy in 0..out {
        for ox in 0..out {
            let mut hit = false;
            for ky in 0..3 {
                for kx in 0..3 {
                    let (Some(y), Some(x)) = (
                        (oy * 2 + ky).checked_sub(pad),
                        (ox * 2 + kx).checked_sub(pad),
                    ) else {
                        continue;
                    };
                    hit |= y < SIZE && x < SIZE && differs(y, x);
                }
            }
            count += usize::from(hit);
        }
    }
    count
}

#[test]
fn should_count_the_work_of_every_layer_as_a_naive_count_does() {
    let Some(frames) = frames(2, 1) else {
        return;
    };
    let model = model();
    let dense = PreparedDetector::new(&model);
    let expected_macs = detector_cost(&model.config, &SubnetArch::LARGEST)
        .total
        .macs;
    // The first frame with a 12 x 12 patch changed: only what the patch reaches is recomputed.
    let mut patched = frames[0].clone();
    let plane = SIZE * SIZE;
    for channel in 0..3 {
        for y in 60..72 {
            for x in 101..113 {
                patched.data[channel * plane + y * SIZE + x] += 0.5;
            }
        }
    }
    for (previous, current) in [(&frames[0], &patched), (&frames[0], &frames[1])] {
        let mut detector = skip(&dense, 0.0, SkipKernel::Sparse);
        detector.forward(previous);
        let frame = detector.forward(current);
        // The totals are the layers' sums, and the dense one is detector_cost's.
        let computed: u64 = frame
            .layers
            .iter()
            .map(|layer| layer.computed as u64 * layer.macs_per_position)
            .sum();
        let whole: u64 = frame
            .layers
            .iter()
            .map(|layer| layer.positions as u64 * layer.macs_per_position)
            .sum();
        assert_eq!((computed, whole), (frame.macs, frame.dense_macs));
        assert_eq!(whole, expected_macs);
        // The stem recomputes exactly the outputs whose window holds a changed pixel.
        let stem = frame.layers[0];
        assert_eq!(stem.kind, LayerKind::Stem);
        assert_eq!(stem.positions, SIZE.div_ceil(2).pow(2));
        assert_eq!(stem.computed, naive_stem_count(previous, current));
        let stem_channels = model.config.backbone.stem_channels() as u64;
        assert_eq!(
            stem.macs_per_position,
            27 * stem_channels,
            "3 x 3 x 3 taps per channel"
        );
        for layer in &frame.layers {
            assert!(layer.computed <= layer.positions, "{layer:?}");
        }
    }
    // The stem recomputes 7 x 7 of its 128 x 128 outputs for the patch. At threshold 0 the
    // patch still reaches every position further on: each squeeze-excite gate pools its whole
    // map, so its change scales every position of the projection's input a little. A small
    // threshold stops that, and the work stays near the patch.
    for (threshold, most) in [(0.0, 1.0), (0.001, 0.1)] {
        let mut detector = skip(&dense, threshold, SkipKernel::Sparse);
        detector.forward(&frames[0]);
        let frame = detector.forward(&patched);
        assert_eq!(frame.layers[0].computed, 7 * 7);
        eprintln!(
            "patch at threshold {threshold}: {:.4} of the MACs",
            frame.computed_fraction()
        );
        assert!(
            frame.computed_fraction() <= most,
            "{}",
            frame.computed_fraction()
        );
    }
}
