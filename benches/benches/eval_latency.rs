//! The latencies behind `cargo xtask eval` (the item 4), batch 1, on one thread and
//! on all threads in the same run (each group runs inside its own rayon pool, which Burn
//! flex's matrix products and our kernels use):
//!
//! - `frame/`: a whole D0 frame (`static_full`), a key frame, and a gated non-key frame
//!   (fusion + gates + the widths the random gates pick), through `AntDetector::process`
//!   (forward, decoding, NMS);
//! - `stage/sS_rR`: elastic stage `S` (1..6) alone at expansion ratio `R` (1..6), on the full
//!   network's input feature of that stage (prepared blocks, as the engine runs them);
//! - `overhead/`: the seven fusion modules, the six gates (with the argmax read back), and
//!   both: what a non-key frame pays on top of its subnet.
//!
//! Groups are named `flex-t<threads>/<what>_<size>`. Random weights: latency does not depend
//! on them. `ANT_BENCH_SIZE=256` for a quicker run.

use std::time::{Duration, Instant};

use ant_benches::{D0Temporal, bench_size};
use ant_supernet::SubnetArch;
use ant_supernet::arch::MAX_RATIO;
use ant_temporal::gate::argmax_rows;
use ant_temporal::{AntDetector, Mode};
use burn::tensor::{Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

/// Large enough that a bench never reaches the next key frame.
const NEVER: usize = 1 << 40;

/// Reading one value forces the backend to finish the work.
fn finish(tensor: Tensor<4>) -> f32 {
    tensor.sum().into_scalar::<f32>()
}

fn eval_latency(c: &mut Criterion) {
    let device = Device::flex();
    let size = bench_size();
    let D0Temporal {
        model,
        temporal,
        input,
    } = D0Temporal::new(size, &device);
    let features = model
        .forward_backbone(input.clone(), &SubnetArch::LARGEST)
        .expect("the full network is valid")
        .stages;
    let all_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1];
    if all_threads > 1 {
        thread_counts.push(all_threads);
    }
    for threads in thread_counts {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        let prefix = format!("flex-t{threads}");

        let mut group = c.benchmark_group(format!("{prefix}/frame_{size}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for (name, mode) in [
            ("d0_static_full", Mode::static_full()),
            ("key_frame", Mode::fixed_interval(1)),
            ("non_key_gated", Mode::fixed_interval(NEVER)),
        ] {
            let mut detector =
                AntDetector::new(model.clone(), Some(temporal.clone()), mode).unwrap();
            // The first frame of a temporal stream is key; measure the frames after it.
            pool.install(|| detector.process(input.clone()).unwrap());
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    pool.install(|| {
                        let started = Instant::now();
                        for _ in 0..iters {
                            detector.process(input.clone()).unwrap();
                        }
                        started.elapsed()
                    })
                })
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("{prefix}/stage_{size}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        // Elastic stage `s` reads `features[s]` (index 0 is the MBConv1 stage's output).
        for (stage, (blocks_of_stage, input)) in
            model.backbone.stages.iter().zip(&features).enumerate()
        {
            for ratio in 1..=MAX_RATIO {
                let blocks: Vec<_> = blocks_of_stage
                    .iter()
                    .map(|block| block.extract(ratio))
                    .collect();
                let x = input.clone();
                group.bench_function(format!("s{}_r{ratio}", stage + 1), |b| {
                    b.iter_custom(|iters| {
                        pool.install(|| {
                            let started = Instant::now();
                            for _ in 0..iters {
                                let y = blocks
                                    .iter()
                                    .fold(x.clone(), |y, block| block.forward(y, ratio));
                                finish(y);
                            }
                            started.elapsed()
                        })
                    })
                });
            }
        }
        group.finish();

        let mut group = c.benchmark_group(format!("{prefix}/overhead_{size}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        let fusions = || {
            for (fusion, feature) in temporal.fusions.iter().zip(&features) {
                if let Some(fusion) = fusion {
                    finish(fusion.forward(feature.clone(), feature.clone()));
                }
            }
        };
        let gates = || {
            for (gate, feature) in temporal.gates.iter().zip(&features) {
                argmax_rows(gate.forward(feature.clone()));
            }
        };
        group.bench_function("fusion_all_7", |b| {
            b.iter_custom(|iters| {
                pool.install(|| {
                    let started = Instant::now();
                    (0..iters).for_each(|_| fusions());
                    started.elapsed()
                })
            })
        });
        group.bench_function("gates_all_6", |b| {
            b.iter_custom(|iters| {
                pool.install(|| {
                    let started = Instant::now();
                    (0..iters).for_each(|_| gates());
                    started.elapsed()
                })
            })
        });
        group.bench_function("fusion_and_gates", |b| {
            b.iter_custom(|iters| {
                pool.install(|| {
                    let started = Instant::now();
                    (0..iters).for_each(|_| {
                        fusions();
                        gates();
                    });
                    started.elapsed()
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, eval_latency);
criterion_main!(benches);
