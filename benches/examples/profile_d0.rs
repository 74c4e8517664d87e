//! Runs D0's forward in a loop for profilers (`perf record`), printing per-stage times.
//! Usage: `cargo run --release -p ant-benches --example profile_d0 -- [iterations] [ratio] [device]`
//! where device is `flex` (default) or `ndarray` (needs `--features ndarray`).

use std::time::Instant;

use ant_benches::random_input;
use ant_supernet::{EfficientDet, EfficientDetConfig, SubnetArch};
use burn::tensor::Device;

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let ratio: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let device = match args.next().as_deref() {
        None | Some("flex") => Device::flex(),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // Measured on purpose: the design card names this backend.
        Some("ndarray") => Device::ndarray(),
        Some(other) => panic!("unknown device {other:?} (ndarray needs --features ndarray)"),
    };
    let model = EfficientDet::init(&EfficientDetConfig::d0(4), &device);
    let arch = SubnetArch::uniform(ratio).expect("ratio in 1..=6");
    let input = random_input(512, &device);
    let sync = |x: &burn::tensor::Tensor<4>| x.clone().sum().into_scalar::<f32>();
    for iteration in 0..iterations {
        let mut times = Vec::new();
        let start = Instant::now();
        let t = Instant::now();
        let mut x = model.backbone.forward_stem(input.clone());
        sync(&x);
        times.push(("stem", t.elapsed()));
        let t = Instant::now();
        x = model.backbone.forward_first_stage(x);
        sync(&x);
        times.push(("stage1", t.elapsed()));
        let names = ["stage2", "stage3", "stage4", "stage5", "stage6", "stage7"];
        let mut stages = vec![x.clone()];
        for (index, name) in names.iter().enumerate() {
            let t = Instant::now();
            x = model.backbone.forward_stage(index, x, arch.ratio(index));
            sync(&x);
            times.push((name, t.elapsed()));
            stages.push(x.clone());
        }
        let t = Instant::now();
        let outputs =
            model.forward_pyramid([stages[2].clone(), stages[4].clone(), stages[6].clone()]);
        outputs.class.iter().for_each(|c| {
            sync(c);
        });
        times.push(("fpn+heads", t.elapsed()));
        let line: Vec<String> = times
            .iter()
            .map(|(n, d)| format!("{n} {:.1}", d.as_secs_f64() * 1e3))
            .collect();
        println!(
            "iter {iteration}: total {:.1} ms | {}",
            start.elapsed().as_secs_f64() * 1e3,
            line.join(" | ")
        );
    }
}
