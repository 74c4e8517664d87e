//! Key frames of a real traffic clip under the fixed 1-in-3 interval and the adaptive policy:
//!
//! `cargo run --release -p ant-scheduler --example key_frames -- DIR [THRESHOLD...]`
//!
//! `DIR` holds the frames as `img00001.jpg, img00002.jpg, ...` (a UA-DETRAC sequence folder,
//! e.g. `../shared/data/detrac-clip/clip252` from the repository root). The scheduler is free of
//! the model, so this example stands in for the detector's stem features with a cheap map of
//! the same kind (a low-resolution, per-channel picture of the frame): the frame averaged over
//! 8x8 pixel blocks, in RGB scaled to 0..1. It prints how the deviation from the first frame
//! grows over the clip (the paper's Fig. 3), the key frames of the fixed interval, then one
//! adaptive run per threshold (default 0.02, 0.04 and 0.08): the deviation is measured from
//! the last key frame, so a new key frame comes when the scene has moved on by the threshold.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ant_scheduler::{KeyFramePolicy, KeyFrameScheduler, SchedulerError, normalized_l1_deviation};

/// Side of the pixel blocks averaged into one feature value.
const BLOCK: u32 = 8;

/// The frame files of `dir`, `img*.jpg` in name order.
fn frame_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|path| {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        name.starts_with("img") && name.ends_with(".jpg")
    });
    paths.sort();
    Ok(paths)
}

/// The frame averaged over `BLOCK x BLOCK` pixel blocks: `[3, height / BLOCK, width / BLOCK]`
/// flattened, values in 0..1 (the last partial row and column of blocks are left out).
fn block_features(image: &image::RgbImage) -> Vec<f32> {
    let (columns, rows) = (image.width() / BLOCK, image.height() / BLOCK);
    let mut features = vec![0.0f32; 3 * (rows * columns) as usize];
    let plane = (rows * columns) as usize;
    let norm = 1.0 / (255.0 * (BLOCK * BLOCK) as f32);
    for row in 0..rows {
        for column in 0..columns {
            let mut sums = [0u32; 3];
            for y in row * BLOCK..(row + 1) * BLOCK {
                for x in column * BLOCK..(column + 1) * BLOCK {
                    let pixel = image.get_pixel(x, y).0;
                    for channel in 0..3 {
                        sums[channel] += u32::from(pixel[channel]);
                    }
                }
            }
            let cell = (row * columns + column) as usize;
            for channel in 0..3 {
                features[channel * plane + cell] = sums[channel] as f32 * norm;
            }
        }
    }
    features
}

/// Runs one policy over the clip; returns the key frames (0-based) and the deviations.
fn run(
    policy: KeyFramePolicy,
    features: &[Vec<f32>],
) -> Result<(Vec<usize>, Vec<Option<f32>>), SchedulerError> {
    let mut scheduler = KeyFrameScheduler::new(policy)?;
    let mut keys = Vec::new();
    let mut deviations = Vec::new();
    for (index, frame) in features.iter().enumerate() {
        let stem_features = scheduler.needs_features().then_some(frame.as_slice());
        let decision = scheduler.decide(stem_features)?;
        if decision.key {
            keys.push(index);
        }
        deviations.push(decision.deviation);
    }
    Ok((keys, deviations))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!(
            "usage: key_frames DIR [THRESHOLD...]\n  DIR: a folder of img00001.jpg, img00002.jpg, \
             ... (e.g. ../shared/data/detrac-clip/clip252)"
        );
        return ExitCode::from(2);
    };
    let thresholds: Vec<f32> = match args[1..].iter().map(|value| value.parse()).collect() {
        Ok(values) if args.len() > 1 => values,
        Ok(_) => vec![0.02, 0.04, 0.08],
        Err(error) => {
            eprintln!("error: a threshold is not a number: {error}");
            return ExitCode::from(2);
        }
    };
    match key_frames(&dir, &thresholds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn key_frames(dir: &Path, thresholds: &[f32]) -> Result<(), Box<dyn std::error::Error>> {
    let paths = frame_paths(dir).map_err(|error| format!("reading {}: {error}", dir.display()))?;
    if paths.is_empty() {
        return Err(format!("no img*.jpg frames in {}", dir.display()).into());
    }
    let started = std::time::Instant::now();
    let mut features = Vec::with_capacity(paths.len());
    for path in &paths {
        let image = image::open(path)
            .map_err(|error| format!("reading {}: {error}", path.display()))?
            .into_rgb8();
        features.push(block_features(&image));
    }
    println!(
        "{} frames of {}, {} feature values each (decoded in {:.2} s)",
        paths.len(),
        dir.display(),
        features[0].len(),
        started.elapsed().as_secs_f64()
    );

    // The paper's Fig. 3: the deviation from one key frame grows as the scene moves on.
    let track: Vec<String> = features
        .iter()
        .skip(1)
        .step_by(5)
        .take(8)
        .map(|frame| normalized_l1_deviation(frame, &features[0]).map(|d| format!("{d:.4}")))
        .collect::<Result<_, _>>()?;
    println!(
        "deviation from frame 0 at frames 1, 6, 11, ...: {}",
        track.join(", ")
    );

    let (keys, _) = run(KeyFramePolicy::interval(3)?, &features)?;
    println!(
        "fixed interval 3:    {:3} key frames ({:.1}% of the frames)",
        keys.len(),
        100.0 * keys.len() as f64 / features.len() as f64
    );
    for &threshold in thresholds {
        let (keys, deviations) = run(KeyFramePolicy::adaptive(threshold)?, &features)?;
        let measured: Vec<f32> = deviations.iter().flatten().copied().collect();
        let peak = measured.iter().copied().fold(0.0f32, f32::max);
        let longest_gap = keys
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .chain(std::iter::once(features.len() - keys[keys.len() - 1]))
            .max()
            .unwrap_or(features.len());
        println!(
            "adaptive {threshold:<10} {:3} key frames ({:.1}%), longest gap {longest_gap} frames, \
             peak deviation {peak:.4}",
            keys.len(),
            100.0 * keys.len() as f64 / features.len() as f64,
        );
        let shown: Vec<String> = keys.iter().take(16).map(usize::to_string).collect();
        let more = if keys.len() > 16 { ", ..." } else { "" };
        println!("    key frames (0-based): {}{more}", shown.join(", "));
    }
    Ok(())
}
