//! D0 forward latency at 512x512, batch 1: the full network (every stage at ratio 6) and the
//! smallest subnet (every stage at ratio 1), backbone alone and whole detector (raw head
//! outputs, no NMS). Run single-threaded with `RAYON_NUM_THREADS=1`; compare with
//! `benches/effdet_pytorch.py` in the same session (docs/performance.md).

use ant_benches::random_input;
use ant_supernet::{EfficientDet, EfficientDetConfig, SubnetArch};
use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};

fn d0_forward(c: &mut Criterion) {
    let device = Device::flex();
    let model = EfficientDet::init(&EfficientDetConfig::d0(4), &device);
    let input = random_input(512, &device);
    let mut group = c.benchmark_group("flex/d0_512");
    group.sample_size(10);
    for (name, arch) in [
        ("full", SubnetArch::LARGEST),
        ("smallest", SubnetArch::SMALLEST),
    ] {
        group.bench_function(format!("backbone_{name}"), |b| {
            b.iter(|| {
                let features = model.forward_backbone(input.clone(), &arch).unwrap();
                // Reading one value forces the lazy backend to finish the work.
                features.stages[6].clone().sum().into_scalar::<f32>()
            })
        });
        group.bench_function(format!("detector_{name}"), |b| {
            b.iter(|| {
                let outputs = model.forward(input.clone(), &arch).unwrap();
                outputs
                    .class
                    .into_iter()
                    .map(|t| t.sum().into_scalar::<f32>())
                    .sum::<f32>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, d0_forward);
criterion_main!(benches);
