//! Skip-Convolutions against the dense detector on real footage, in one run: Table 1's "D0
//! w/ SkipConv" latency point (the paper: 480 ms against D0's 320 ms on one i7 core) with the
//! dense kernel a CPU user has, and with our sparse kernel.
//!
//! Consecutive frames of the real clip (`clip252`, 960x540 UA-DETRAC footage) are decoded
//! and letterboxed once; then, for each gate threshold, every frame goes through the dense
//! network (`PreparedDetector::forward`, every stage at ratio 6), Skip-Conv with the dense
//! kernel and Skip-Conv with the sparse kernel, in rotating order, so that the machine's
//! drift hits the three alike. Raw head outputs (no decoding or NMS, the same for all three).
//! The first frame of each Skip-Conv stream computes everything and is not timed.
//!
//! Usage: `cargo run --release -p ant-benches --example skipconv -- [--preset d0] [--size
//! 512] [--width 1] [--depth 1] [--frames 25] [--thresholds 0,0.01,0.03,0.1,0.3]
//! [--checkpoint MODEL.bpk] [--clip ../shared/data/detrac-clip/clip252]`. Threads:
//! `RAYON_NUM_THREADS` (default 1).
//!
//! Weights are random unless `--checkpoint` gives a model of the same config (a run's
//! `stage0-standalone/epoch-NNNN/model.bpk` with `--preset tiny --size 256 --width 0.5
//! --depth 0.5`): the computed fraction at a threshold depends on the weights' activation
//! scale, the time at a computed fraction much less, so read the D0 rows by their fraction.

use std::path::PathBuf;
use std::time::Instant;

use ant_benches::{Flags, in_pool, median};
use ant_detrac::frames::{FrameSource, SourceItem};
use ant_detrac::transform::InputTransform;
use ant_supernet::prepared::{Map, PreparedDetector};
use ant_supernet::skipconv::{SkipConvDetector, SkipConvOptions, SkipKernel};
use ant_supernet::{EfficientDet, SubnetArch};
use burn::tensor::Device;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    in_pool(run);
}

fn run() {
    let threads = rayon::current_num_threads();
    let flags = Flags::from_env();
    let flag = |name: &str| flags.get(name);
    let config = flags.model_config("d0", 512, 1.0, 1.0);
    let preset = flag("--preset").unwrap_or_else(|| "d0".into());
    let (size, width, depth) = (
        config.image_size,
        config.backbone.width_multiplier,
        config.backbone.depth_multiplier,
    );
    let count: usize = flags.parse_or("--frames", 25);
    let thresholds: Vec<f32> = flag("--thresholds")
        .unwrap_or_else(|| "0,0.01,0.03,0.1,0.3".into())
        .split(',')
        .map(|t| t.parse().expect("--thresholds"))
        .collect();
    let clip = PathBuf::from(
        flag("--clip").unwrap_or_else(|| "../shared/data/detrac-clip/clip252".into()),
    );
    let device = Device::flex();
    let model = match flag("--checkpoint") {
        Some(path) => {
            let model = EfficientDet::load(std::path::Path::new(&path), &device)
                .unwrap_or_else(|error| panic!("loading {path}: {error}"));
            assert_eq!(
                model.config.image_size, size,
                "{path} is a model for {} px: pass --size {}",
                model.config.image_size, model.config.image_size
            );
            model
        }
        None => EfficientDet::init(&config, &device),
    };
    let dense = PreparedDetector::new(&model);
    let full_gmac = ant_supernet::detector_cost(&model.config, &SubnetArch::LARGEST)
        .total
        .macs as f64
        / 1e9;

    let transform = InputTransform::new(size as u32, size as u32);
    let source = FrameSource::directory(&clip)
        .unwrap_or_else(|error| panic!("reading {}: {error}", clip.display()));
    let mut frames = Vec::with_capacity(count);
    for item in source.take(count) {
        let SourceItem::Frame(frame) = item.expect("a readable clip") else {
            panic!("a damaged frame in {}", clip.display());
        };
        let (input, _) = transform.letterbox_image(&frame.image);
        frames.push(Map::new(3, size, size, transform.normalize(&input)));
    }
    assert!(
        frames.len() >= 2,
        "{} has fewer than 2 frames",
        clip.display()
    );

    println!(
        "{preset} (width {width}, depth {depth}) at {size} px, {full_gmac:.3} GMAC dense, {} \
         frames of {}, {threads} thread(s), {} weights; medians over frames 2..{}",
        frames.len(),
        clip.display(),
        if flag("--checkpoint").is_some() {
            "trained"
        } else {
            "random"
        },
        frames.len()
    );
    println!(
        "| threshold | computed share of MACs | GMAC/frame | dense network ms | Skip-Conv, dense \
         kernel ms (vs dense network) | Skip-Conv, sparse kernel ms (vs dense network) |"
    );
    println!("|---|---|---|---|---|---|");
    for &threshold in &thresholds {
        let new = |kernel| {
            SkipConvDetector::new(dense.clone(), SkipConvOptions { threshold, kernel })
                .expect("a valid threshold")
        };
        let mut skips = [new(SkipKernel::Dense), new(SkipKernel::Sparse)];
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        let mut fractions = Vec::new();
        for (index, frame) in frames.iter().enumerate() {
            for turn in 0..3 {
                let which = (turn + index) % 3;
                let started = Instant::now();
                let fraction = match which {
                    0 => {
                        std::hint::black_box(
                            dense.forward(frame, &SubnetArch::LARGEST).expect("ratio 6"),
                        );
                        None
                    }
                    _ => Some(skips[which - 1].forward(frame).computed_fraction()),
                };
                let ms = started.elapsed().as_secs_f64() * 1e3;
                if index == 0 && which > 0 {
                    eprintln!("threshold {threshold}: first frame {ms:.1} ms ({which})");
                }
                if index > 0 {
                    times[which].push(ms);
                    if which == 2 {
                        fractions.push(fraction.expect("a Skip-Conv frame"));
                    }
                }
            }
        }
        let [full, skip_dense, skip_sparse] = times.map(|values| median(&values));
        let fraction = fractions.iter().sum::<f64>() / fractions.len() as f64;
        println!(
            "| {threshold} | {fraction:.3} | {:.3} | {full:.1} | {skip_dense:.1} ({:.2}x) | \
             {skip_sparse:.1} ({:.2}x) |",
            fraction * full_gmac,
            skip_dense / full,
            skip_sparse / full,
        );
    }
}
