//! Per-frame latency of the streaming ANT detector (`ant_temporal::AntDetector::process`:
//! forward, decoding and NMS) at 512x512, batch 1: a key frame (full network), non-key
//! frames at the largest and smallest widths with fusion (fixed ratios instead of gates), the
//! same widths as static subnets (no fusion), and gated non-key frames. The differences
//! between "non-key" and "static" at the same width are the fusion overhead. Random weights:
//! latency does not depend on them. Reported in docs/temporal.md.

use ant_benches::{D0Temporal, bench_size};
use ant_supernet::SubnetArch;
use ant_temporal::{AntDetector, Mode};
use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};

/// Large enough that a bench never reaches the next key frame.
const NEVER: usize = 1 << 40;

fn temporal_frames(c: &mut Criterion) {
    let device = Device::flex();
    let size = bench_size();
    let D0Temporal {
        model,
        temporal,
        input,
    } = D0Temporal::new(size, &device);
    let mut group = c.benchmark_group(format!("flex/ant_d0_{size}"));
    group.sample_size(10);
    let modes = [
        ("key_frame", Mode::fixed_interval(1)),
        (
            "non_key_6",
            Mode::fixed_interval(NEVER).with_fixed_width(SubnetArch::LARGEST),
        ),
        (
            "non_key_1",
            Mode::fixed_interval(NEVER).with_fixed_width(SubnetArch::SMALLEST),
        ),
        ("non_key_gated", Mode::fixed_interval(NEVER)),
        ("static_6", Mode::static_full()),
        ("static_1", Mode::static_subnet(SubnetArch::SMALLEST)),
        ("non_temporal_gated", Mode::non_temporal()),
    ];
    for (name, mode) in modes {
        let mut detector = AntDetector::new(model.clone(), Some(temporal.clone()), mode).unwrap();
        // The first frame of a temporal stream is key; measure the frames after it.
        detector.process(input.clone()).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| detector.process(input.clone()).unwrap().detections.len())
        });
    }
    group.finish();
}

criterion_group!(benches, temporal_frames);
criterion_main!(benches);
