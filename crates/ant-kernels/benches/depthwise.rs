//! Depthwise convolution forward + backward on an autodiff flex device: Burn's grouped
//! convolution (`conv2d_same`) against the custom op (`depthwise_conv2d_same`), at three layer
//! shapes of EfficientNet-B0 training. Run single-threaded with `RAYON_NUM_THREADS=1`.

use ant_kernels::conv::conv2d_same;
use ant_kernels::dwconv::depthwise_conv2d_same;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

fn depthwise(c: &mut Criterion) {
    let device = Device::flex().autodiff();
    let mut group = c.benchmark_group("flex/depthwise_fwd_bwd");
    group.sample_size(10);
    // (kernel, stride, channels, size), batch 2.
    for (kernel, stride, channels, size) in [(3, 1, 144, 128), (5, 2, 144, 128), (5, 1, 672, 32)] {
        let x = Tensor::<4>::random(
            [2, channels, size, size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let weight = Tensor::<4>::random(
            [channels, 1, kernel, kernel],
            Distribution::Normal(0.0, 0.3),
            &device,
        );
        let name = format!("k{kernel}_s{stride}_c{channels}_{size}px");
        for ours in [false, true] {
            let label = if ours { "ours" } else { "burn" };
            group.bench_function(format!("{name}/{label}"), |b| {
                b.iter(|| {
                    let x = x.clone().require_grad();
                    let weight = weight.clone().require_grad();
                    let y = if ours {
                        depthwise_conv2d_same(x.clone(), weight.clone(), stride)
                    } else {
                        conv2d_same(x.clone(), weight.clone(), None, stride, channels)
                    };
                    let grads = y.sum().backward();
                    let dx = x.grad(&grads).expect("x gradient");
                    let dw = weight.grad(&grads).expect("weight gradient");
                    // Reading values forces the lazy backend to finish the work.
                    dx.sum().into_scalar::<f32>() + dw.sum().into_scalar::<f32>()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, depthwise);
criterion_main!(benches);
