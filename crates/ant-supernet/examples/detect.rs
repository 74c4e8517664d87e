//! Detects vehicles on images with a trained checkpoint, boxes in each image's own pixels.
//!
//! ```text
//! cargo run --release -p ant-supernet --example detect -- MODEL.bpk IMAGE... \
//!     [--subnet 6,6,6,6,6,6] [--min-score 0.3]
//! ```
//!
//! `MODEL.bpk` is a native checkpoint with its `MODEL.json` beside it: what `cargo xtask
//! train` writes into `runs/<run>/stage0-standalone/epoch-NNNN/model.bpk` (the detector) or
//! `stage1-supernet/...` (the supernet, any `--subnet` of it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ant_supernet::{ImageDetector, SubnetArch};
use burn::tensor::Device;

const USAGE: &str = "usage: detect MODEL.bpk IMAGE... [--subnet r1,r2,r3,r4,r5,r6] [--min-score S]";

struct Args {
    model: PathBuf,
    images: Vec<PathBuf>,
    subnet: Option<SubnetArch>,
    min_score: f32,
}

fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut paths = Vec::new();
    let (mut subnet, mut min_score) = (None, 0.3);
    while let Some(arg) = raw.next() {
        match arg.as_str() {
            "--subnet" => {
                let value = raw.next().ok_or("--subnet needs a value")?;
                subnet = Some(
                    value
                        .parse()
                        .map_err(|e| format!("--subnet {value}: {e}"))?,
                );
            }
            "--min-score" => {
                let value = raw.next().ok_or("--min-score needs a value")?;
                min_score = value
                    .parse()
                    .map_err(|e| format!("--min-score {value}: {e}"))?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            path => paths.push(PathBuf::from(path)),
        }
    }
    if paths.len() < 2 {
        return Err("give a checkpoint and at least one image".into());
    }
    let model = paths.remove(0);
    Ok(Args {
        model,
        images: paths,
        subnet,
        min_score,
    })
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut detector = ImageDetector::load(&args.model, &Device::flex())?;
    if let Some(arch) = args.subnet {
        detector = detector.with_subnet(arch)?;
    }
    println!(
        "{}: {} classes, {} px input, subnet {}",
        args.model.display(),
        detector.config().num_classes,
        detector.config().image_size,
        detector.subnet()
    );
    for path in &args.images {
        let image = image::open(path)
            .map_err(|error| format!("{}: {error}", path.display()))?
            .to_rgb8();
        let started = Instant::now();
        let detections = detector.detect(&image)?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let kept: Vec<_> = detections
            .iter()
            .filter(|d| d.score >= args.min_score)
            .collect();
        println!(
            "{} ({}x{}): {} detections at score >= {} ({:.1} ms)",
            path.display(),
            image.width(),
            image.height(),
            kept.len(),
            args.min_score,
            ms
        );
        for d in kept {
            let b = d.bbox;
            println!(
                "  class {} score {:.3} box [{:.1}, {:.1}, {:.1}, {:.1}]",
                d.class, d.score, b.x1, b.y1, b.x2, b.y2
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("detect: {error}");
            ExitCode::FAILURE
        }
    }
}
