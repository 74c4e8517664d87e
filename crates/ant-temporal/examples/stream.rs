//! Streams a directory of frames through ANT loaded from a stage-2 checkpoint: per frame,
//! whether it was a key frame, the widths the gates chose, its GMAC and time, and its
//! detections in the frame's pixels; a summary at the end.
//!
//! ```text
//! cargo run --release -p ant-temporal --example stream -- CHECKPOINT_DIR FRAMES_DIR \
//!     [--adaptive THRESHOLD | --interval N] [--limit N] [--min-score S]
//! ```
//!
//! `CHECKPOINT_DIR` is a stage-2 checkpoint of `cargo xtask train`
//! (`runs/<run>/stage2-joint/epoch-NNNN`, holding `model.bpk` and `model.temporal.bpk`).
//! Frames are the directory's JPEG and PNG files in name order (a UA-DETRAC sequence
//! directory, or `../shared/data/detrac-clip/clip252`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ant_temporal::{AntDetector, Mode};
use burn::tensor::Device;

const USAGE: &str = "usage: stream CHECKPOINT_DIR FRAMES_DIR [--adaptive T | --interval N] \
                     [--limit N] [--min-score S]";

struct Args {
    checkpoint: PathBuf,
    frames: PathBuf,
    mode: Mode,
    limit: usize,
    min_score: f32,
}

fn value<T: std::str::FromStr>(flag: &str, raw: Option<String>) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let text = raw.ok_or(format!("{flag} needs a value"))?;
    text.parse().map_err(|e| format!("{flag} {text}: {e}"))
}

fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut paths = Vec::new();
    let (mut mode, mut limit, mut min_score) = (Mode::fixed_interval(3), usize::MAX, 0.3);
    while let Some(arg) = raw.next() {
        match arg.as_str() {
            "--adaptive" => mode = Mode::adaptive(value(&arg, raw.next())?),
            "--interval" => mode = Mode::fixed_interval(value(&arg, raw.next())?),
            "--limit" => limit = value(&arg, raw.next())?,
            "--min-score" => min_score = value(&arg, raw.next())?,
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            path => paths.push(PathBuf::from(path)),
        }
    }
    let [checkpoint, frames] = <[PathBuf; 2]>::try_from(paths)
        .map_err(|_| "give a checkpoint directory and a frames directory".to_string())?;
    Ok(Args {
        checkpoint,
        frames,
        mode,
        limit,
        min_score,
    })
}

/// The image files of `dir` in name order.
fn frames(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let listing = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{}: no JPEG or PNG frames", dir.display()));
    }
    Ok(paths)
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut detector = AntDetector::load(&args.checkpoint, args.mode, &Device::flex())?;
    println!(
        "{}: mode {}, {} px input",
        args.checkpoint.display(),
        detector.mode().name(),
        detector.model().config.image_size
    );
    let (mut count, mut keys, mut gmac, mut ms) = (0usize, 0usize, 0f64, 0f64);
    for path in frames(&args.frames)?.into_iter().take(args.limit) {
        let image = image::open(&path)
            .map_err(|error| format!("{}: {error}", path.display()))?
            .to_rgb8();
        let result = detector.process_image(&image)?;
        let kept: Vec<_> = result
            .detections
            .items
            .iter()
            .filter(|d| d.score >= args.min_score)
            .collect();
        println!(
            "{} {} widths {} {:.3} GMAC {:.1} ms, {} detections{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            if result.key { "key    " } else { "non-key" },
            result.arch,
            result.gmac,
            result.latency_ms,
            kept.len(),
            kept.first().map_or(String::new(), |d| format!(
                " (best: class {} {:.2} at [{:.0}, {:.0}, {:.0}, {:.0}])",
                d.class, d.score, d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2
            ))
        );
        count += 1;
        keys += usize::from(result.key);
        gmac += result.gmac;
        ms += result.latency_ms;
    }
    let frames = count.max(1) as f64;
    println!(
        "{count} frames, {keys} key: mean {:.3} GMAC, {:.1} ms per frame",
        gmac / frames,
        ms / frames
    );
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
            eprintln!("stream: {error}");
            ExitCode::FAILURE
        }
    }
}
