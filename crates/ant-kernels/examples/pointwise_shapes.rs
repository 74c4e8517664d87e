//! Times `pointwise` on D0's 1x1 shapes at 512 px: best of N calls per shape and the sum
//! weighted by how often D0's backbone runs each shape (the BiFPN's and heads' 64-channel
//! products folded into one 64 x 64 x 4096 line of about the same work). For A/B runs of the
//! kernel alone: `RAYON_NUM_THREADS=1 cargo run --release -p ant-kernels --example
//! pointwise_shapes [calls]`.
use ant_kernels::matmul::{PointwiseEpilogue, pointwise};
use std::time::Instant;

fn main() {
    // (out, inputs, pixels, swish, residual, count in D0)
    let shapes: &[(usize, usize, usize, bool, bool, usize)] = &[
        (16, 32, 65536, false, false, 1),
        (96, 16, 65536, true, false, 1),
        (24, 96, 16384, false, false, 1),
        (144, 24, 16384, true, false, 2),
        (24, 144, 16384, false, true, 1),
        (40, 144, 4096, false, false, 1),
        (240, 40, 4096, true, false, 2),
        (40, 240, 4096, false, true, 1),
        (80, 240, 1024, false, false, 1),
        (480, 80, 1024, true, false, 3),
        (80, 480, 1024, false, true, 2),
        (112, 480, 1024, false, false, 1),
        (672, 112, 1024, true, false, 3),
        (112, 672, 1024, false, true, 2),
        (192, 672, 256, false, false, 1),
        (1152, 192, 256, true, false, 4),
        (192, 1152, 256, false, true, 3),
        (320, 1152, 256, false, false, 1),
        (64, 64, 4096, false, false, 10),
        (64, 40, 4096, false, false, 2),
    ];
    let reps: usize = std::env::args()
        .nth(1)
        .map_or(20, |s| s.parse().expect("calls per shape, a number"));
    let mut total = 0.0;
    let mut seed = 1u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    for &(out, inputs, pixels, swish, residual, count) in shapes {
        let weight: Vec<f32> = (0..out * inputs).map(|_| next()).collect();
        let input: Vec<f32> = (0..inputs * pixels).map(|_| next()).collect();
        let bias: Vec<f32> = (0..out).map(|_| next()).collect();
        let res: Vec<f32> = (0..out * pixels).map(|_| next()).collect();
        let epilogue = PointwiseEpilogue {
            bias: &bias,
            addend: None,
            swish,
            residual: residual.then_some(&res[..]),
        };
        let mut best = f64::MAX;
        let mut check = 0.0;
        for _ in 0..reps {
            let start = Instant::now();
            let y = pointwise(&weight, [out, inputs, pixels], &input, epilogue);
            best = best.min(start.elapsed().as_secs_f64());
            check += y[y.len() / 3] as f64;
            // Back to the kernel's buffers, as the engine's maps do: a fresh buffer each call
            // would time the allocator's zeroing and page faults instead of the product.
            ant_kernels::scratch::recycle(y);
        }
        let gflops = 2.0 * (out * inputs * pixels) as f64 / best / 1e9;
        total += best * count as f64;
        println!(
            "{out:5} x {inputs:5} x {pixels:6}: {:8.3} ms  {gflops:6.1} GFLOP/s  ({check:.3})",
            best * 1e3
        );
    }
    println!("weighted total {:.2} ms", total * 1e3);
}
