//! Times `depthwise_planes` (folded norm and swish) on D0's depthwise shapes at 512 px: best
//! of N calls per shape and the sum weighted by how often D0's backbone runs each shape.
//! For A/B runs of the kernel alone: `RAYON_NUM_THREADS=1 cargo run --release -p ant-kernels
//! --example depthwise_shapes [calls]`.
use ant_kernels::fast::depthwise_planes;
use std::time::Instant;

fn main() {
    // (channels, size, kernel, stride, count in D0's backbone)
    let shapes: &[(usize, usize, usize, usize, usize)] = &[
        (32, 256, 3, 1, 1),
        (96, 256, 3, 2, 1),
        (144, 128, 3, 1, 1),
        (144, 128, 5, 2, 1),
        (240, 64, 5, 1, 1),
        (240, 64, 3, 2, 1),
        (480, 32, 3, 1, 2),
        (480, 32, 5, 1, 1),
        (672, 32, 5, 1, 2),
        (672, 32, 5, 2, 1),
        (1152, 16, 5, 1, 3),
        (1152, 16, 3, 1, 1),
        (64, 64, 3, 1, 10),
    ];
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(20, |s| s.parse().expect("calls per shape, a number"));
    let mut total = 0.0;
    for &(channels, size, kernel, stride, count) in shapes {
        let values = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect()
        };
        let input = values(channels * size * size);
        let weights = values(channels * kernel * kernel);
        let (scale, shift) = (values(channels), values(channels));
        let mut best = f64::MAX;
        let mut check = 0.0;
        for _ in 0..calls {
            let start = Instant::now();
            let y = depthwise_planes(
                &input,
                [channels, size, size],
                channels,
                &weights,
                kernel,
                stride,
                Some((&scale, &shift)),
                true,
            );
            best = best.min(start.elapsed().as_secs_f64());
            check += f64::from(y[y.len() / 3]);
            ant_kernels::scratch::recycle(y);
        }
        total += best * count as f64;
        println!(
            "{channels:5} x {size:3}^2 k{kernel} s{stride}: {:8.3} ms  ({check:.4})",
            best * 1e3
        );
    }
    println!("weighted total {:.2} ms", total * 1e3);
}
