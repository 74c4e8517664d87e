//! Where a frame's time goes, part by part, for any model the training configs can build:
//! stem, MBConv1 stage, each elastic stage at the given ratios, fusion, BiFPN + heads,
//! decoding + NMS on the prepared CPU engine, and whole frames through `AntDetector` (static
//! full, static arch, ANT key frame, ANT non-key frame at the arch). Medians over
//! iterations, batch 1.
//!
//! Usage: `cargo run --release -p ant-benches --example profile_frame -- [--preset tiny]
//! [--size 256] [--width 0.5] [--depth 0.5] [--arch 1,1,1,1,1,1] [--iterations 50] [--raw]`
//!
//! `--raw` prints only `raw d0` and `raw smallest`: the engine's forward to raw head outputs
//! (no decoding, no NMS) of the full network and the smallest subnet, the number
//! `benches/anchors.py` compares with ONNX Runtime. Threads: `RAYON_NUM_THREADS` (default 1).

use std::time::Instant;

use ant_benches::{Flags, in_pool, median, random_input};
use ant_supernet::prepared::{Map, PreparedDetector};
use ant_supernet::{EfficientDet, SubnetArch};
use ant_temporal::prepared::PreparedTemporal;
use ant_temporal::{AntDetector, AntTemporalConfig, Mode};
use burn::tensor::Device;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    in_pool(run);
}

fn run() {
    let flags = Flags::from_env();
    let preset = flags.get("--preset").unwrap_or_else(|| "tiny".into());
    let iterations: usize = flags.parse_or("--iterations", 50);
    let arch: SubnetArch = flags.parse_or("--arch", SubnetArch::SMALLEST);
    let device = Device::flex();
    let config = flags.model_config("tiny", 256, 0.5, 0.5);
    let (size, width, depth) = (
        config.image_size,
        config.backbone.width_multiplier,
        config.backbone.depth_multiplier,
    );
    let model = EfficientDet::init(&config, &device);
    let temporal = AntTemporalConfig::new()
        .with_residual_fusion(true)
        .init(&config.backbone, &device);
    let input = random_input(size, &device);

    // Parts, on the prepared CPU engine (what `AntDetector` runs on the CPU).
    let prepared = PreparedDetector::new(&model);
    if flags.has("--raw") {
        let image = Map::from_tensor(input.clone());
        for (name, arch) in [
            ("raw d0", SubnetArch::LARGEST),
            ("raw smallest", SubnetArch::SMALLEST),
        ] {
            let mut times = Vec::new();
            for iteration in 0..iterations + 3 {
                let t = Instant::now();
                let outputs = prepared.forward(&image, &arch).expect("ratio held");
                std::hint::black_box(&outputs);
                if iteration >= 3 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            println!("  {name:<28} {:7.3}", median(&times));
        }
        return;
    }
    let prepared_temporal = PreparedTemporal::new(&temporal);
    let image = Map::from_tensor(input.clone());
    let anchors = model.anchors();
    let mut samples: Vec<(String, f64)> = Vec::new();
    for iteration in 0..iterations + 3 {
        let mut record = |name: String, started: Instant| {
            if iteration >= 3 {
                samples.push((name, started.elapsed().as_secs_f64() * 1e3));
            }
        };
        let t = Instant::now();
        let stem = prepared.stem(&image);
        record("stem".into(), t);
        let t = Instant::now();
        let first = prepared.first_stage(&stem);
        record("mbconv1".into(), t);
        for (label, ratios) in [("r6", SubnetArch::LARGEST), ("arch", arch)] {
            let mut stages = vec![first.clone()];
            for stage in 0..6 {
                let ratio = ratios.ratio(stage);
                let t = Instant::now();
                let input = stages.last().expect("first stage");
                let y = prepared.stage(stage, input, ratio).expect("ratio held");
                record(format!("stage{} {label} (r={ratio})", stage + 1), t);
                stages.push(y);
            }
            if label == "r6" {
                for (stage, feature) in stages.iter().enumerate() {
                    let Some(fusion) = &prepared_temporal.fusions[stage] else {
                        continue;
                    };
                    let t = Instant::now();
                    let term = fusion.key_term(feature);
                    record(format!("fusion{stage} key term"), t);
                    let t = Instant::now();
                    let _ = fusion.run(feature, feature, &term);
                    record(format!("fusion{stage}"), t);
                }
                let t = Instant::now();
                let outputs = prepared.pyramid([&stages[2], &stages[4], &stages[6]]);
                record("bifpn+heads".into(), t);
                let t = Instant::now();
                let _ = prepared.postprocess(&outputs, &anchors);
                record("decode+nms".into(), t);
            }
        }
    }
    let mut parts: Vec<(String, Vec<f64>)> = Vec::new();
    for (name, ms) in samples {
        match parts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(ms),
            None => parts.push((name, vec![ms])),
        }
    }
    println!("{preset} {size}px width {width} depth {depth}, arch {arch}, medians (ms):");
    for (name, values) in &parts {
        println!("  {name:<28} {:7.3}", median(values));
    }

    // Whole frames through the streaming engine (prepared weights).
    let frames = |mode: Mode, every: usize| {
        let mut detector =
            AntDetector::new(model.clone(), Some(temporal.clone()), mode).expect("valid mode");
        let (mut key, mut other) = (Vec::new(), Vec::new());
        for index in 0..(iterations + 3) * every {
            let result = detector.process(input.clone()).expect("frame");
            if index >= 3 * every {
                if result.key {
                    key.push(result.latency_ms);
                } else {
                    other.push(result.latency_ms);
                }
            }
        }
        (
            (!key.is_empty()).then(|| median(&key)),
            (!other.is_empty()).then(|| median(&other)),
        )
    };
    let show = |name: &str, (key, other): (Option<f64>, Option<f64>)| {
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        println!("  {name:<28} key {:>8} other {:>8}", fmt(key), fmt(other));
    };
    println!("AntDetector::process medians (ms):");
    show("static-full", frames(Mode::static_full(), 1));
    show(
        &format!("static {arch}"),
        frames(Mode::static_subnet(arch), 1),
    );
    show(
        &format!("fixed3 non-key at {arch}"),
        frames(Mode::fixed_interval(3).with_fixed_width(arch), 3),
    );
}
